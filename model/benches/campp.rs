//! CAM++ (burn-ndarray, the reference port) throughput on one compute thread: 1.6 s windows
//! (the service's window) at batch 1 and 8, fbank included. Criterion's `elem/s` is windows/s.
//! `taskset -c 1 cargo bench -p diglett-model --bench campp`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::campp::CamPlusEncoder;
use diglett_model::compute::Compute;

const WINDOW: usize = 25_600;

fn bench(c: &mut Criterion) {
    let encoder = CamPlusEncoder::pretrained(Compute::new(1).unwrap()).unwrap();
    let mut group = c.benchmark_group("campp");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for batch in [1usize, 8] {
        let windows: Vec<Vec<f32>> = (0..batch as u32)
            .map(|seed| common::speech_like(WINDOW, seed))
            .collect();
        let refs: Vec<&[f32]> = windows.iter().map(Vec::as_slice).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("windows_1p6s_batch{batch}"), |b| {
            b.iter(|| black_box(encoder.embed_windows(black_box(&refs))));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
