//! pyannote segmentation-3.0 throughput on one compute thread, fast path and burn module.
//!
//! Throughput is in elements = 10 s chunks, so criterion's `elem/s` is chunks per second (with
//! pyannote's 1 s step, one chunk per second of audio). Run pinned to one core:
//! `taskset -c 1 cargo bench -p diglett-model --bench segmentation`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::compute::Compute;
use diglett_model::segmentation::{CHUNK_SAMPLES, SpeakerSegmenter};

fn bench(c: &mut Criterion) {
    let seg = SpeakerSegmenter::pretrained(Compute::new(1).unwrap()).unwrap();
    let chunks: Vec<Vec<f32>> = (0..8)
        .map(|seed| common::speech_like(CHUNK_SAMPLES, seed))
        .collect();
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
