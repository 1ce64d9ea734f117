//! Speaker-encoder throughput on one compute thread, real weights: the fused CPU path at batch
//! 1, 8 and 32, and the burn reference at batch 1 and 32 for comparison; then every fused
//! kernel this CPU runs (AVX-512 with f16 `W_hh`, AVX-512, AVX2+FMA) at batch 1 and 32, so the
//! runtime dispatch's choice can be checked on each machine (`encoder_kernels/…`).
//!
//! Run pinned to one core: `taskset -c 0 cargo bench -p diglett-model --bench encoder`.
//! Targets (issue): ≤ 5 ms per window at batch 1, ≥ 240 windows/s at batch 32 (PyTorch on one
//! Zen 4 core: 10.4 ms and 239/s).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::compute::Compute;
use diglett_model::encoder::{Backend, Encoder, FusedEncoder, Kernel};

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

fn kernels(c: &mut Criterion) {
    let encoder = Encoder::pretrained().expect("compiled-in weights load");
    let mut group = c.benchmark_group("encoder_kernels");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, kernel) in [
        ("avx512_f16", Kernel::Avx512F16),
        ("avx512", Kernel::Avx512),
        ("avx2", Kernel::Avx2),
    ] {
        let Some(fused) = FusedEncoder::with_kernel(encoder.reference(), kernel) else {
            continue; // not on this CPU
        };
        for batch in [1usize, 32] {
            let input = mels::mel_like(batch, 0x2545_F491_4F6C_DD1D);
            let frames = diglett_model::encoder::WINDOW_FRAMES;
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(name, batch), &input, |b, input| {
                b.iter(|| fused.forward(black_box(input), batch, frames));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, kernels);
criterion_main!(benches);
