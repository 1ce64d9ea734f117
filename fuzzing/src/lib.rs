//! The entry points of the fuzz targets in `fuzz/` (run with `cargo fuzz`, nightly), kept in the
//! workspace so that the stable test suite replays every committed corpus file through exactly
//! the code the fuzzer ran ([`TARGETS`], and the test below).
//!
//! Each entry takes arbitrary bytes and panics only when something the product promises breaks:
//! a crash, a hang, an out-of-range sample reaching the models, a message that does not survive
//! its own encoding.

use diglett_audio::{DecodeOptions, decode_audio};
use diglett_schemas::{
    EmbedReply, EmbedRequest, PartRequest, PcmPart, SessionEvent, WindowRequest, WindowResult,
    codec,
};
use diglett_tools::diarization::Reference;

/// Longest upload the audio target decodes (the gateway's default limit is 60 s).
const MAX_SECONDS: f32 = 60.0;

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and its entry point.
pub const TARGETS: [(&str, Entry); 4] = [
    ("audio_decode", audio_decode),
    ("ws_session", ws_session),
    ("bus_messages", bus_messages),
    ("eval_parsers", eval_parsers),
];

/// An upload's bytes through the decoder every REST endpoint uses (WAV, FLAC, MP3, Ogg/Vorbis,
/// any rate and channel count): either an error, or 16 kHz mono samples that are finite, within
/// ±1 and no longer than the limit.
pub fn audio_decode(data: &[u8]) {
    let opts = DecodeOptions {
        max_seconds: MAX_SECONDS,
    };
    if let Ok(samples) = decode_audio(data, &opts) {
        assert!(
            samples.len() <= (MAX_SECONDS * 16_000.0) as usize + 16_000,
            "{} samples decoded past the {MAX_SECONDS} s limit",
            samples.len()
        );
        assert!(
            samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0),
            "a decoded sample is not finite or outside ±1"
        );
    }
}

/// A WebSocket session fed arbitrary client messages (see
/// `diglett_gateway::session::fuzz`).
pub fn ws_session(data: &[u8]) {
    diglett_gateway::session::fuzz::ws_session(data);
}

/// The bytes as each bus message a worker or the gateway reads off NATS: decoding never panics,
/// and what decodes re-encodes to bytes that decode to the same message (compared through a
/// second encoding, so that NaN scores compare equal).
pub fn bus_messages(data: &[u8]) {
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
        if let Ok(msg) = codec::decode::<T>(data) {
            let once = codec::encode(&msg).expect("a decoded message encodes");
            let again: T = codec::decode(&once).expect("an encoded message decodes");
            assert_eq!(
                codec::encode(&again).expect("encodes"),
                once,
                "{} changed through its encoding",
                std::any::type_name::<T>()
            );
        }
    }
    round_trip::<WindowRequest>(data);
    round_trip::<WindowResult>(data);
    round_trip::<EmbedRequest>(data);
    round_trip::<PartRequest>(data);
    round_trip::<PcmPart>(data);
    round_trip::<EmbedReply>(data);
    round_trip::<SessionEvent>(data);
}

/// The bytes as an RTTM reference for `diglett-eval`: parsed, every turn well-formed, and the
/// frame grid and each speaker's enrollment spans computed without a panic.
pub fn eval_parsers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for word in text.split_whitespace().take(8) {
        let _ = diglett_tools::conversation::parse_label(word);
    }
    let Ok(reference) = Reference::parse(text) else {
        return;
    };
    for t in &reference.turns {
        assert!(
            t.start.is_finite() && t.start >= 0.0 && t.end >= t.start,
            "a turn from {} to {}",
            t.start,
            t.end
        );
    }
    let end = reference.turns.iter().map(|t| t.end).fold(0.0, f64::max);
    // The grid of a clip of up to 10 minutes (longer references are scored the same way).
    let frames = reference.frames(Reference::n_frames(end.min(600.0)));
    assert!(
        frames.iter().flatten().all(|&i| i < reference.names.len()),
        "a frame names a speaker not in the reference"
    );
    for i in 0..reference.names.len().min(8) {
        for (a, b) in reference.solo_spans(i, 5.0) {
            assert!(a <= b, "an enrollment span from {a} to {b}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::PathBuf;

    use super::TARGETS;

    /// `fuzz/` beside this crate.
    fn fuzz_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
    }

    /// Every committed corpus file (and every minimised crash kept under `fuzz/regressions/`)
    /// goes through its target's entry point, so CI guards what the fuzzers found without
    /// nightly. Each target must have a corpus.
    #[test]
    fn every_corpus_file_replays() {
        for (name, entry) in TARGETS {
            let mut files = 0;
            for sub in ["corpus", "regressions"] {
                let dir = fuzz_dir().join(sub).join(name);
                let Ok(read) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut paths: Vec<PathBuf> = read.map(|e| e.unwrap().path()).collect();
                paths.sort();
                for path in paths {
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| entry(&data));
                    assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                    files += 1;
                }
            }
            assert!(
                files >= 10,
                "{name}: a corpus of {files} files under fuzz/corpus/{name}"
            );
        }
    }

    /// Writes the hand-made seeds of the targets (`fuzz/corpus/<target>/seed-*`); run once with
    /// `cargo test -p diglett-fuzzing --release -- --ignored write_seeds`. The audio seeds in
    /// other containers come from `fuzz/make-audio-seeds.py`.
    #[test]
    #[ignore = "writes the seed files; a tool, not a check"]
    fn write_seeds() {
        for (target, name, bytes) in seeds::all() {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }

    mod seeds {
        use diglett_audio::wav::{WavFormat, wav_bytes, wav_bytes_with};
        use diglett_gateway::session::fuzz::frame;
        use diglett_schemas::{
            DecisionParams, EMBEDDING_DIM, EmbedOutcome, EmbedReply, EmbedRequest, EnrolledSpeaker,
            EventKind, Label, PartRequest, PcmPart, SessionEvent, WindowRequest, WindowResult,
            codec,
        };

        type Seed = (&'static str, String, Vec<u8>);

        fn tone(n: usize, rate: f32) -> Vec<f32> {
            (0..n)
                .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / rate).sin())
                .collect()
        }

        fn start(audio: &str, speakers: &str, options: &str) -> Vec<u8> {
            format!(r#"{{"type":"start","audio":{audio},"speakers":{speakers}{options}}}"#)
                .into_bytes()
        }

        pub(super) fn all() -> Vec<Seed> {
            let mut out: Vec<Seed> = Vec::new();
            // audio_decode: WAV in the encodings the decoder reads.
            let t = tone(8000, 16_000.0);
            out.push((
                "audio_decode",
                "s16-16k-mono.wav".into(),
                wav_bytes(&t, 16_000, 1),
            ));
            let stereo: Vec<f32> = tone(4410, 44_100.0).iter().flat_map(|&x| [x, -x]).collect();
            out.push((
                "audio_decode",
                "s16-44k-stereo.wav".into(),
                wav_bytes(&stereo, 44_100, 2),
            ));
            out.push((
                "audio_decode",
                "f32-48k-mono.wav".into(),
                wav_bytes_with(&tone(4800, 48_000.0), 48_000, 1, WavFormat::Float32),
            ));
            out.push((
                "audio_decode",
                "s16-8k-mono-cut.wav".into(),
                wav_bytes(&tone(800, 8000.0), 8000, 1)[..900].to_vec(),
            ));

            // ws_session
            let uuid = r#"["00000000-0000-4000-8000-000000000001","00000000-0000-4000-8000-000000000002"]"#;
            let s16 = r#"{"sample_rate":16000,"encoding":"pcm_s16le","channels":1}"#;
            let f32_44 = r#"{"sample_rate":44100,"encoding":"pcm_f32le","channels":2}"#;
            let pcm16: Vec<u8> = tone(16_000 * 2 / 3 + diglett_schemas::WINDOW_SAMPLES, 16_000.0)
                .iter()
                .flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes())
                .collect();
            let pcm44: Vec<u8> = tone(44_100 / 5, 44_100.0)
                .iter()
                .flat_map(|&x| [x.to_le_bytes(), (-x).to_le_bytes()].concat())
                .collect();
            let stop: &[u8] = br#"{"type":"stop"}"#;
            let mut parts: Vec<(u8, &[u8])> = Vec::new();
            let good = start(s16, uuid, "");
            parts.push((0, &good));
            parts.extend(pcm16[..57_600].chunks(3200).map(|c| (1u8, c)));
            parts.push((0, stop));
            out.push(("ws_session", "s16-two-profiles".into(), frame(&parts)));
            let opts =
                r#","options":{"hop_ms":250,"latency_ms":1500,"overlap":true,"threshold":0.5}"#;
            let f = start(f32_44, uuid, opts);
            let mut parts: Vec<(u8, &[u8])> = vec![(0, &f)];
            // Frames split mid-sample.
            parts.extend(pcm44.chunks(4099).map(|c| (1u8, c)));
            parts.push((2, b"ping"));
            parts.push((0, stop));
            out.push(("ws_session", "f32-44k-stereo-options".into(), frame(&parts)));
            let emb = vec!["0.0625"; EMBEDDING_DIM].join(",");
            let inline = format!(r#"[{{"name":"Ada","embedding":[{emb}]}}]"#);
            let i = start(s16, &inline, "");
            let mut parts: Vec<(u8, &[u8])> = vec![(0, &i)];
            parts.extend(pcm16[..57_600].chunks(16_000).map(|c| (1u8, c)));
            parts.push((0, &good));
            parts.push((3, b""));
            out.push((
                "ws_session",
                "inline-then-start-again".into(),
                frame(&parts),
            ));
            out.push((
                "ws_session",
                "audio-before-start".into(),
                frame(&[(1, &pcm16[..64])]),
            ));
            let bad = start(
                r#"{"sample_rate":7000,"encoding":"pcm_s16le","channels":3}"#,
                uuid,
                "",
            );
            out.push(("ws_session", "bad-format".into(), frame(&[(0, &bad)])));

            // bus_messages
            let speakers = vec![EnrolledSpeaker {
                id: "a".into(),
                name: Some("Ada".into()),
                embedding: vec![0.0625; EMBEDDING_DIM],
            }];
            let req = WindowRequest {
                model: diglett_schemas::SpeakerModel::Ge2e,
                v: diglett_schemas::SCHEMA_VERSION,
                session: "s".into(),
                seq: 3,
                start: 1.5,
                sample_rate: 16_000,
                pcm: pcm16[..diglett_schemas::WINDOW_SAMPLES * 2].to_vec(),
                speakers,
                params: DecisionParams::default(),
                expires_at_unix_ms: Some(1),
            };
            let mut result = WindowResult::bare("s", 3, 1.5, Label::Speaker);
            result.speaker_id = Some("a".into());
            result.best_score = Some(0.8);
            result.chunk_speech = vec![0.5; 50];
            let embed = EmbedRequest {
                v: diglett_schemas::SCHEMA_VERSION,
                request_id: "r".into(),
                name: Some("Ada".into()),
                sample_rate: 16_000,
                total_samples: 16_000,
                parts: 2,
                parts_subject: Some("p".into()),
                pcm: pcm16[..16_000].to_vec(),
                expires_at_unix_ms: None,
            };
            let reply = EmbedReply {
                v: diglett_schemas::SCHEMA_VERSION,
                request_id: "r".into(),
                outcome: EmbedOutcome::Error(diglett_schemas::EmbedError {
                    kind: diglett_schemas::ErrorKind::Empty,
                    message: "no audio".into(),
                }),
            };
            let event = SessionEvent {
                v: diglett_schemas::SCHEMA_VERSION,
                session: "s".into(),
                at_unix_ms: 1,
                event: EventKind::SpeakerTurn {
                    speaker_id: Some("a".into()),
                    speaker_name: None,
                    label: "speaker".into(),
                    start: 2.0,
                },
            };
            let part = PartRequest {
                v: diglett_schemas::SCHEMA_VERSION,
                request_id: "r".into(),
                index: 1,
            };
            let pcm_part = PcmPart {
                v: diglett_schemas::SCHEMA_VERSION,
                request_id: "r".into(),
                index: 1,
                pcm: pcm16[..64].to_vec(),
            };
            for (name, bytes) in [
                ("window-request", codec::encode(&req)),
                ("window-result", codec::encode(&result)),
                ("embed-request", codec::encode(&embed)),
                ("embed-reply", codec::encode(&reply)),
                ("session-event", codec::encode(&event)),
                ("part-request", codec::encode(&part)),
                ("pcm-part", codec::encode(&pcm_part)),
            ] {
                out.push(("bus_messages", name.into(), bytes.unwrap()));
            }

            // eval_parsers
            let rttm = "SPEAKER clip 1 0.00 2.50 <NA> <NA> ana <NA> <NA>\n\
                        SPEAKER clip 1 2.10 1.20 <NA> <NA> bea <NA> <NA>\n\
                        SPEAKER clip 1 4.00 6.00 <NA> <NA> ana <NA> <NA>\n\
                        SPKR-INFO clip 1 <NA> <NA> <NA> unknown ana <NA> <NA>\n";
            out.push((
                "eval_parsers",
                "two-speakers.rttm".into(),
                rttm.as_bytes().to_vec(),
            ));
            out.push((
                "eval_parsers",
                "bad-line.rttm".into(),
                b"SPEAKER clip 1 x 1.0 <NA> <NA> ana\n".to_vec(),
            ));
            out.push((
                "eval_parsers",
                "labels".into(),
                b"speaker unknown overlap silence".to_vec(),
            ));
            out
        }
    }
}
