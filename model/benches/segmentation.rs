//! pyannote segmentation-3.0 throughput on one compute thread, fast path and burn module.
//!
//! Throughput is in elements = 10 s chunks, so criterion's `elem/s` is chunks per second (with
//! pyannote's 1 s step, one chunk per second of audio). Run pinned to one core:
//! `taskset -c 1 cargo bench -p diglett-model --bench segmentation`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::compute::Compute;
use diglett_model::segmentation::{CHUNK_SAMPLES, SAMPLE_RATE, SpeakerSegmenter};

/// Deterministic speech-like chunk (the network's cost does not depend on the content).
fn chunk(seed: u32) -> Vec<f32> {
    let mut noise = 0x2545_f491_u32 ^ seed;
    (0..CHUNK_SAMPLES)
        .map(|i| {
            let t = i as f32 / SAMPLE_RATE as f32;
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let envelope = 0.5 + 0.5 * (std::f32::consts::TAU * 3.0 * t).sin();
            let voice: f32 = (1..6)
                .map(|h| (std::f32::consts::TAU * 140.0 * h as f32 * t).sin() / h as f32)
                .sum();
            0.1 * envelope * voice + 0.003 * (noise as f32 / u32::MAX as f32 - 0.5)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let seg = SpeakerSegmenter::pretrained(Compute::new(1).unwrap()).unwrap();
    let chunks: Vec<Vec<f32>> = (0..8).map(chunk).collect();
    let mut group = c.benchmark_group("segmentation");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for batch in [1usize, 8] {
        let refs: Vec<&[f32]> = chunks[..batch].iter().map(Vec::as_slice).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("fast_batch{batch}"), |b| {
            b.iter(|| black_box(seg.log_probs_batch(black_box(&refs)).unwrap()));
        });
        group.bench_function(format!("burn_batch{batch}"), |b| {
            b.iter(|| black_box(seg.log_probs_reference(black_box(&refs)).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
