//! Front-end throughput, one thread: the mel spectrogram, and decoding + resampling, reported as
//! seconds of audio processed per second of wall time (criterion's "elements" are samples at
//! 16 kHz here, so elem/s ÷ 16 000 = × real time).
//!
//! Run: `taskset -c 0 cargo bench -p diglett-model --bench frontend`

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diglett_audio::wav::wav_bytes;
use diglett_audio::{DecodeOptions, decode_audio};
use diglett_model::frontend::MelSpectrogram;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared");

fn conversation() -> Vec<f32> {
    let bytes = std::fs::read(format!("{SHARED}/data/conversation/sample.wav"))
        .expect("../shared/data/conversation/sample.wav");
    decode_audio(&bytes, &DecodeOptions::default()).expect("decodes")
}

fn bench(c: &mut Criterion) {
    let wav = conversation();
    let mel = MelSpectrogram::new();
    let mut g = c.benchmark_group("frontend");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);

    // 1.6 s: the window the worker computes per stream every hop.
    let window = &wav[..25_600];
    g.throughput(Throughput::Elements(window.len() as u64));
    g.bench_function("mel/1.6s", |b| b.iter(|| mel.compute(window)));

    g.throughput(Throughput::Elements(wav.len() as u64));
    g.bench_function("mel/30s", |b| b.iter(|| mel.compute(&wav)));

    // A 48 kHz WAV of the same speech (each sample held ×3): decoding plus sinc resampling
    // to 16 kHz, the path a browser's 48 kHz recording takes at enrollment.
    let up: Vec<f32> = wav.iter().flat_map(|&x| [x, x, x]).collect();
    let wav48 = wav_bytes(&up, 48_000, 1);
    g.throughput(Throughput::Elements(wav.len() as u64));
    g.bench_function("decode+resample/48k-30s", |b| {
        b.iter(|| decode_audio(&wav48, &DecodeOptions::default()))
    });
    let wav16 = wav_bytes(&wav, 16_000, 1);
    g.bench_function("decode/16k-30s", |b| {
        b.iter(|| decode_audio(&wav16, &DecodeOptions::default()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
