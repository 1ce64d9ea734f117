//! Speaker-encoder throughput on one compute thread, real weights: the fused CPU path at batch
//! 1, 8 and 32, and the burn reference at batch 1 and 32 for comparison.
//!
//! Run pinned to one core: `taskset -c 0 cargo bench -p diglett-model --bench encoder`.
//! Targets (issue): ≤ 5 ms per window at batch 1, ≥ 240 windows/s at batch 32 (PyTorch on one
//! Zen 4 core: 10.4 ms and 239/s).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::compute::Compute;
use diglett_model::encoder::{Backend, Encoder};

#[path = "common/mels.rs"]
mod mels;

fn bench(c: &mut Criterion) {
    let encoder = Encoder::pretrained().expect("compiled-in weights load");
    let compute = Compute::new(1).expect("one compute thread");
    let mut group = c.benchmark_group("encoder");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let cases = [
        (Backend::Fused, 1),
        (Backend::Fused, 8),
        (Backend::Fused, 32),
        (Backend::Burn, 1),
        (Backend::Burn, 32),
    ];
    for (backend, batch) in cases {
        let input = mels::mel_like(batch, 0x2545_F491_4F6C_DD1D);
        group.throughput(Throughput::Elements(batch as u64));
        let name = match backend {
            Backend::Fused => "fused",
            Backend::Burn => "burn",
        };
        group.bench_with_input(BenchmarkId::new(name, batch), &input, |b, input| {
            b.iter(|| {
                encoder
                    .embed_windows_with(&compute, black_box(input), batch, backend)
                    .expect("whole windows")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
