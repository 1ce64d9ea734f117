//! Silero VAD v6 against the original implementation's probabilities (`shared/fixtures/vad`),
//! the fast path against the burn reference path, the streaming and batch APIs against each
//! other, and the speech segments of the conversation sample against its RTTM.
#![allow(clippy::unwrap_used)]

use crate::common;
use std::path::Path;

use diglett_model::compute::{Compute, device};
use diglett_model::vad::{
    CHUNK, SAMPLE_RATE, Vad, VadParams, VadStream, speech_segments, trim_silences, voiced_fraction,
};

/// Absolute tolerance on a probability (the brief's parity bar; the NumPy re-implementation of
/// the same recipe reaches 2e-6).
const TOLERANCE: f32 = 1e-3;

const STEMS: [&str; 4] = [
    "1688-142285-0002",
    "1998-15444-0000",
    "3080-5032-0000",
    "sample",
];

fn reference(stem: &str) -> Vec<f32> {
    let path = common::shared().join(format!("fixtures/vad/{stem}.json"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json["chunk"], 512);
    assert_eq!(json["context"], 64);
    json["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap() as f32)
        .collect()
}

fn audio(stem: &str) -> Vec<f32> {
    common::read_wav(&common::shared().join(format!("fixtures/audio/{stem}.wav")))
}

fn setup() -> (Vad, Compute) {
    (
        Vad::pretrained(&device()).unwrap(),
        Compute::new(1).unwrap(),
    )
}

#[test]
fn matches_the_original_probabilities() {
    let (vad, compute) = setup();
    for stem in STEMS {
        let wav = audio(stem);
        let want = reference(stem);

        let batch = vad.probabilities(&compute, &wav);
        let mut stream = VadStream::new();
        let streamed: Vec<f32> = wav
            .chunks_exact(CHUNK)
            .map(|chunk| stream.push(&vad, &compute, chunk.try_into().unwrap()))
            .collect();
        let burn = vad.probabilities_reference(&compute, &wav);

        let errors = [
            common::max_abs(&batch, &want),
            common::max_abs(&streamed, &want),
            common::max_abs(&burn, &want),
        ];
        println!(
            "{stem}: {} chunks, max abs error batch {:.2e}, streaming {:.2e}, burn {:.2e}, fast vs burn {:.2e}",
            want.len(),
            errors[0],
            errors[1],
            errors[2],
            common::max_abs(&batch, &burn),
        );
        assert!(errors.iter().all(|&e| e < TOLERANCE), "{stem}: {errors:?}");
    }
}

#[test]
fn streaming_any_push_size_equals_batch() {
    let (vad, compute) = setup();
    let wav = audio("3080-5032-0000");
    let batch = vad.probabilities(&compute, &wav);

    for sizes in [&[100, 1000, 7][..], &[512], &[1], &[4096, 3]] {
        let mut stream = VadStream::new();
        let mut streamed = Vec::new();
        let mut rest = &wav[..];
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(size.min(rest.len()));
            streamed.extend(stream.process(&vad, &compute, now));
            rest = later;
        }
        // The front end's batching must not change a single bit.
        assert_eq!(streamed, batch, "push sizes {sizes:?}");
        assert_eq!(stream.buffered(), wav.len() % CHUNK);
    }

    let mut stream = VadStream::new();
    let first = stream.process(&vad, &compute, &wav);
    stream.reset();
    assert_eq!(stream.buffered(), 0);
    assert_eq!(stream.process(&vad, &compute, &wav), first, "reset");
}

#[test]
fn many_buffers_equal_one_by_one() {
    let (vad, compute) = setup();
    let long = audio("1998-15444-0000");
    let other = audio("1688-142285-0002");
    // 1.6 s windows every 0.5 s, as the worker cuts them, plus buffers of other lengths
    // (including shorter than one chunk) so that the lockstep batch shrinks as it goes.
    let window = 25_600;
    let hop = 8_000;
    let mut buffers: Vec<&[f32]> = (0..20).map(|i| &long[i * hop..i * hop + window]).collect();
    buffers.extend([
        &other[..],
        &other[..1000],
        &long[..300],
        &[][..],
        &long[3..40_000],
    ]);

    let many = vad.probabilities_many(&compute, &buffers);
    assert_eq!(many.len(), buffers.len());
    for (buffer, got) in buffers.iter().zip(&many) {
        assert_eq!(got, &vad.probabilities(&compute, buffer));
    }

    // Same answers from a multi-threaded pool (the front end splits across threads) and from
    // several threads sharing one `Vad`.
    let two = Compute::new(2).unwrap();
    assert_eq!(vad.probabilities_many(&two, &buffers), many);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| vad.probabilities_many(&compute, &buffers)))
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), many);
        }
    });
}

/// 10 ms frames (the RTTM's resolution) covered by the reference speech turns.
fn rttm_speech_frames(path: &Path, n_frames: usize) -> Vec<bool> {
    let mut speech = vec![false; n_frames];
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        let start: f64 = fields[3].parse().unwrap();
        let duration: f64 = fields[4].parse().unwrap();
        let from = (start * 100.0).round() as usize;
        let to = (((start + duration) * 100.0).round() as usize).min(n_frames);
        speech[from..to].iter_mut().for_each(|s| *s = true);
    }
    speech
}

#[test]
fn segments_follow_the_conversation_rttm() {
    let (vad, compute) = setup();
    let conversation = common::shared().join("data/conversation");
    let wav = common::read_wav(&conversation.join("sample.wav"));
    let probs = vad.probabilities(&compute, &wav);
    let segments = speech_segments(&probs, &VadParams::default());

    let frame = SAMPLE_RATE / 100;
    let n_frames = wav.len() / frame;
    let reference = rttm_speech_frames(&conversation.join("sample.rttm"), n_frames);
    let mut detected = vec![false; n_frames];
    for segment in &segments {
        let to = segment.end.div_ceil(frame).min(n_frames);
        detected[segment.start / frame..to]
            .iter_mut()
            .for_each(|d| *d = true);
    }
    let count = |speech: bool, hit: bool| {
        reference
            .iter()
            .zip(&detected)
            .filter(|&(&r, &d)| r == speech && d == hit)
            .count() as f64
    };
    let coverage = count(true, true) / (count(true, true) + count(true, false));
    let false_alarm = count(false, true) / (count(false, true) + count(false, false));
    let trimmed = trim_silences(&wav, &segments);
    println!(
        "conversation: {} segments {:?} s, RTTM speech covered {:.1}%, non-speech flagged {:.1}% \
         ({} non-speech frames), voiced fraction {:.2}, trimmed {:.1} s of {:.1} s",
        segments.len(),
        segments
            .iter()
            .map(|s| (s.start as f32 / 16e3, s.end as f32 / 16e3))
            .collect::<Vec<_>>(),
        100.0 * coverage,
        100.0 * false_alarm,
        count(false, true) + count(false, false),
        voiced_fraction(&probs, 0.5),
        trimmed.len() as f32 / 16e3,
        wav.len() as f32 / 16e3,
    );
    assert!(coverage >= 0.90, "coverage {coverage}");
    assert!(false_alarm <= 0.25, "false alarm {false_alarm}");
    assert_eq!(
        trimmed.len(),
        segments.iter().map(|s| s.len()).sum::<usize>()
    );
}
