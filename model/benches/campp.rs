//! CAM++ throughput on one compute thread: 1.6 s windows (the service's window), fbank included,
//! through the serving form (`CamPlusEncoder`, matrix products with folded BatchNorms) at batch
//! 1, 8 and 32, and through the module form (`CamPlus`, burn-ndarray's direct convolutions) at
//! batch 1 for comparison. Criterion's `elem/s` is windows/s.
//! `taskset -c 1 cargo bench -p diglett-model --bench campp`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

mod common;

use burn::tensor::{Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::campp::fbank::{Fbank, N_MELS, num_frames};
use diglett_model::campp::{CamPlus, CamPlusEncoder};
use diglett_model::compute::{Compute, device};

const WINDOW: usize = 25_600;

fn bench(c: &mut Criterion) {
    let compute = Compute::new(1).unwrap();
    let encoder = CamPlusEncoder::pretrained().unwrap();
    let mut group = c.benchmark_group("campp");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for batch in [1usize, 8, 32] {
        let windows: Vec<Vec<f32>> = (0..batch as u32)
            .map(|seed| common::speech_like(WINDOW, seed))
            .collect();
        let refs: Vec<&[f32]> = windows.iter().map(Vec::as_slice).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("windows_1p6s_batch{batch}"), |b| {
            b.iter(|| black_box(encoder.embed_windows(&compute, black_box(&refs))));
        });
    }
    // The module form on the same window's features (fbank excluded: it is ~1 % of the cost).
    let module = CamPlus::pretrained(&device()).unwrap();
    let feats = Fbank::new().compute_cmn(&common::speech_like(WINDOW, 0));
    let x = Tensor::<3>::from_data(
        TensorData::new(feats, [1, num_frames(WINDOW), N_MELS]),
        &device(),
    );
    group.throughput(Throughput::Elements(1));
    group.bench_function("module_form_windows_1p6s_batch1", |b| {
        b.iter(|| compute.install(|| black_box(module.forward(black_box(x.clone())))));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
