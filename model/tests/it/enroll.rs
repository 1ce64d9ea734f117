//! Enrollment preprocessing: long silences are cut with the VAD, speech and short pauses kept.
#![allow(clippy::unwrap_used)]

use crate::common;
use diglett_audio::{DecodeOptions, decode_audio};
use diglett_decision::scoring::cosine;
use diglett_model::compute::{Compute, device};
use diglett_model::encoder::Encoder;
use diglett_model::enroll;
use diglett_model::vad::Vad;

fn utterance() -> Vec<f32> {
    let path = common::shared().join("data/speakers/1998/1998-15444-0001.flac");
    decode_audio(&std::fs::read(path).unwrap(), &DecodeOptions::default()).unwrap()
}

#[test]
fn long_silences_are_cut_and_the_embedding_does_not_move() {
    let compute = Compute::new(1).unwrap();
    let vad = Vad::pretrained(&device()).unwrap();
    let encoder = Encoder::pretrained().unwrap();
    let wav = utterance();

    let (plain, plain_emb) = enroll::embed_enrollment(&encoder, &vad, &compute, &wav);
    // The same speech with 2 s of digital silence at both ends and in the middle.
    let half = wav.len() / 2;
    let silence = vec![0.0f32; 32_000];
    let padded = [&silence[..], &wav[..half], &silence, &wav[half..], &silence].concat();
    let (trimmed, padded_emb) = enroll::embed_enrollment(&encoder, &vad, &compute, &padded);

    let padded_secs = padded.len() as f32 / 16_000.0;
    assert!(
        trimmed.speech_seconds < padded_secs - 5.5,
        "6 s of silence added, kept {} of {padded_secs} s",
        trimmed.speech_seconds
    );
    assert!(
        (trimmed.speech_seconds - plain.speech_seconds).abs() < 0.5,
        "{} vs {}",
        trimmed.speech_seconds,
        plain.speech_seconds
    );
    let (a, b) = (plain_emb.unwrap(), padded_emb.unwrap());
    let c = cosine(&a.embedding, &b.embedding);
    assert!(c > 0.99, "cosine {c}");
}

#[test]
fn silence_only_gives_no_embedding() {
    let compute = Compute::new(1).unwrap();
    let vad = Vad::pretrained(&device()).unwrap();
    let encoder = Encoder::pretrained().unwrap();
    let (pre, emb) = enroll::embed_enrollment(&encoder, &vad, &compute, &vec![0.0; 48_000]);
    assert_eq!(pre.speech_seconds, 0.0);
    assert!(emb.is_none());
}
