//! Silero VAD throughput on one compute thread.
//!
//! Throughput is in elements = audio samples at 16 kHz, so criterion's `elem/s` divided by
//! 16 000 is the real-time factor (seconds of audio per second). Run pinned to one core:
//! `taskset -c 1 cargo bench -p diglett-model --bench vad`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diglett_model::compute::{Compute, device};
use diglett_model::vad::{CHUNK, SAMPLE_RATE, Vad, VadStream};

fn signal(seconds: f32) -> Vec<f32> {
    common::speech_like((seconds * SAMPLE_RATE as f32) as usize, 0)
}

fn bench(c: &mut Criterion) {
    let vad = Vad::pretrained(&device()).unwrap();
    let compute = Compute::new(1).unwrap();
    let audio = signal(30.0);
    let mut group = c.benchmark_group("vad");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    // 30 s pushed one 512-sample chunk at a time: the latency-bound streaming case.
    let chunks = audio.len() / CHUNK;
    group.throughput(Throughput::Elements((chunks * CHUNK) as u64));
    group.bench_function("stream_chunk_by_chunk_30s", |b| {
        b.iter(|| {
            let mut stream = VadStream::new();
            for chunk in audio.chunks_exact(CHUNK) {
                black_box(stream.push(&vad, &compute, chunk.try_into().unwrap()));
            }
        })
    });

    group.bench_function("batch_30s", |b| {
        b.iter(|| black_box(vad.probabilities(&compute, &audio)))
    });

    // 32 windows of 1.6 s (25 600 samples, the encoder's window) from different streams.
    let window = 25_600;
    let windows: Vec<&[f32]> = (0..32)
        .map(|i| &audio[i * 12_000..i * 12_000 + window])
        .collect();
    group.throughput(Throughput::Elements((32 * window) as u64));
    group.bench_function("many_32x1.6s", |b| {
        b.iter(|| black_box(vad.probabilities_many(&compute, &windows)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
