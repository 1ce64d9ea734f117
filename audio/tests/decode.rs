//! `decode_audio` on bad and unusual input: one test per error, positive tests for every
//! container, channel layout, sample format and rate we accept, time alignment of the
//! resampler, and a fuzz-style run that must never panic.
//!
//! Real audio is read from `../shared` at test time; the MP3 and Ogg/Vorbis files in
//! `tests/data` are synthetic tones (see `tests/data/README.md`).
#![allow(clippy::unwrap_used)]

use diglett_audio::{DecodeError, DecodeOptions, decode_audio};
use diglett_schemas::SAMPLE_RATE;
use diglett_testkit::signal::upsample;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// 16 kHz mono PCM16 speech (3.2 s), the encoder fixture's input.
const SPEECH_WAV: &str = "fixtures/audio/3080-5032-0000.wav";
/// The FLAC the first fixture WAV was made from.
const SPEECH_FLAC: &str = "data/speakers/1688/1688-142285-0002.flac";
const SPEECH_FLAC_AS_WAV: &str = "fixtures/audio/1688-142285-0002.wav";
/// A longer FLAC (about 15 s) for the length limit.
const LONG_FLAC: &str = "data/speakers/1688/1688-142285-0000.flac";

fn shared(path: &str) -> Vec<u8> {
    std::fs::read(format!("{SHARED}/{path}")).unwrap()
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).unwrap()
}

fn decode(bytes: &[u8]) -> Result<Vec<f32>, DecodeError> {
    decode_audio(bytes, &DecodeOptions::default())
}

// ---------------------------------------------------------------------------------------------
// WAV writing, by hand, so that every header field is under the test's control.

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;

fn wav(rate: u32, channels: u16, format: u16, bits: u16, data: &[u8]) -> Vec<u8> {
    let len = u32::try_from(data.len()).expect("test data under 4 GiB");
    let mut out = diglett_audio::wav::header(rate, channels, format, bits, len);
    out.extend_from_slice(data);
    out
}

fn wav_i16(rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
    let data: Vec<u8> = interleaved.iter().flat_map(|s| s.to_le_bytes()).collect();
    wav(rate, channels, WAVE_FORMAT_PCM, 16, &data)
}

fn wav_i24(rate: u32, channels: u16, interleaved: &[i32]) -> Vec<u8> {
    let data: Vec<u8> = interleaved
        .iter()
        .flat_map(|s| s.to_le_bytes()[..3].to_vec())
        .collect();
    wav(rate, channels, WAVE_FORMAT_PCM, 24, &data)
}

fn wav_f32(rate: u32, channels: u16, interleaved: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = interleaved.iter().flat_map(|s| s.to_le_bytes()).collect();
    wav(rate, channels, WAVE_FORMAT_IEEE_FLOAT, 32, &data)
}

fn tone(freq: f64, rate: u32, seconds: f64, amp: f64) -> Vec<f64> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

fn to_i16(x: &[f64]) -> Vec<i16> {
    x.iter().map(|v| (v * 32767.0).round() as i16).collect()
}

/// Frequency from upward zero crossings over the middle 80% of the signal (16 kHz).
fn zero_crossing_hz(x: &[f32]) -> f64 {
    let (a, b) = (x.len() / 10, x.len() * 9 / 10);
    let mid = &x[a..b];
    let ups = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    ups as f64 * f64::from(SAMPLE_RATE) / mid.len() as f64
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Normalised correlation of `a[i]` with `b[i + lag]` over the middle of the signals.
fn correlation(a: &[f32], b: &[f32], lag: isize) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 1000..n - 1000 {
        let (x, y) = (f64::from(a[i]), f64::from(b[(i as isize + lag) as usize]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

// ---------------------------------------------------------------------------------------------
// One test per error.

/// `bytes` are refused as not audio or as a broken file (which of the two depends on how much
/// of a container survives).
#[track_caller]
fn assert_unreadable(bytes: &[u8], what: &str) {
    let r = decode(bytes);
    assert!(
        matches!(
            r,
            Err(DecodeError::Unsupported(_) | DecodeError::Corrupt(_))
        ),
        "{what}: {r:?}"
    );
}

#[test]
fn zero_bytes_is_empty() {
    assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
}

#[test]
fn garbage_is_unsupported() {
    let text = "this is a plain text upload, not audio at all. ".repeat(100);
    assert!(
        matches!(decode(text.as_bytes()), Err(DecodeError::Unsupported(_))),
        "{:?}",
        decode(text.as_bytes())
    );
    // A lone container marker with nothing behind it.
    for bytes in [&b"RIFF"[..], b"fLaC", b"OggS", b"RIFF\x24\0\0\0WAVE"] {
        assert_unreadable(bytes, &format!("{bytes:?}"));
    }
}

#[test]
fn truncated_wav_header_is_corrupt() {
    let full = shared(SPEECH_WAV);
    for cut in [12, 20, 30, 40] {
        let r = decode(&full[..cut]);
        assert!(
            matches!(r, Err(DecodeError::Corrupt(_))),
            "cut at {cut}: {r:?}"
        );
    }
    // Header complete, no sample: the data chunk is there but empty.
    assert!(matches!(decode(&full[..44]), Err(DecodeError::Empty)));
}

#[test]
fn truncated_wav_keeps_the_audio_that_is_there() {
    let full = shared(SPEECH_WAV);
    let all = decode(&full).unwrap();
    // Cut mid-sample, too: the half sample is dropped.
    for cut in [full.len() / 2, full.len() / 2 + 1, 44 + 2 * 1153] {
        let part = decode(&full[..cut]).unwrap();
        assert_eq!(part.len(), (cut - 44) / 2, "cut at {cut}");
        assert_eq!(part[..], all[..part.len()]);
    }
}

#[test]
fn truncated_flac_header_is_corrupt() {
    let full = shared(SPEECH_FLAC);
    for cut in [4, 8, 20, 41] {
        assert_unreadable(&full[..cut], &format!("cut at {cut}"));
    }
}

#[test]
fn truncated_flac_keeps_the_frames_before_the_cut() {
    let full = shared(SPEECH_FLAC);
    let all = decode(&full).unwrap();
    let part = decode(&full[..full.len() / 2]).unwrap();
    assert!(!part.is_empty() && part.len() < all.len());
    // Roughly half the audio (FLAC blocks are 4096 samples), identical to the full decode.
    let fraction = part.len() as f64 / all.len() as f64;
    assert!((0.3..0.7).contains(&fraction), "{fraction}");
    assert_eq!(part[..], all[..part.len()]);
}

#[test]
fn digital_silence_is_not_an_error() {
    let silence = wav_i16(16_000, 1, &[0; 16_000]);
    let decoded = decode(&silence).unwrap();
    assert_eq!(decoded.len(), 16_000);
    assert!(decoded.iter().all(|&x| x == 0.0));
    // Silence at 44.1 kHz goes through the resampler and stays silent.
    let decoded = decode(&wav_i16(44_100, 2, &[0; 2 * 44_100])).unwrap();
    assert_eq!(decoded.len(), 16_000);
    assert!(decoded.iter().all(|&x| x == 0.0));
}

#[test]
fn zero_length_data_chunk_is_empty() {
    assert!(matches!(
        decode(&wav_i16(16_000, 1, &[])),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        decode(&wav_f32(48_000, 2, &[])),
        Err(DecodeError::Empty)
    ));
}

#[test]
fn nan_or_infinity_in_float_wav_is_non_finite() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut samples = vec![0.1f32; 8_000];
        samples[4_000] = bad;
        for rate in [16_000, 48_000] {
            let r = decode(&wav_f32(rate, 1, &samples));
            assert!(
                matches!(r, Err(DecodeError::NonFinite)),
                "{bad} at {rate}: {r:?}"
            );
        }
    }
}

#[test]
fn unsupported_sample_rates() {
    let samples = vec![0i16; 4_000];
    for rate in [0, 4_000, 7_999, 48_001, 96_000, 192_000] {
        let r = decode(&wav_i16(rate, 1, &samples));
        assert!(
            matches!(r, Err(DecodeError::SampleRate(r)) if r == rate),
            "{rate}: {r:?}"
        );
    }
    for rate in [8_000, 48_000] {
        assert!(decode(&wav_i16(rate, 1, &samples)).is_ok(), "{rate}");
    }
}

#[test]
fn too_long_is_rejected_from_the_header() {
    let three_seconds = wav_i16(16_000, 1, &vec![100; 48_000]);
    let opts = DecodeOptions { max_seconds: 2.0 };
    match decode_audio(&three_seconds, &opts) {
        // The header's length, exactly: nothing was decoded.
        Err(DecodeError::TooLong {
            seconds,
            max_seconds,
        }) => {
            assert_eq!(seconds, 3.0);
            assert_eq!(max_seconds, 2.0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decode_audio(&three_seconds, &DecodeOptions { max_seconds: 3.0 })
            .unwrap()
            .len(),
        48_000
    );
    // A NaN limit fails closed.
    assert!(matches!(
        decode_audio(
            &three_seconds,
            &DecodeOptions {
                max_seconds: f32::NAN
            }
        ),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn too_long_is_detected_while_decoding_when_the_header_is_silent() {
    let mut flac = shared(LONG_FLAC);
    let full_seconds = decode(&flac).unwrap().len() as f32 / 16_000.0;
    assert!(full_seconds > 5.0);
    // STREAMINFO starts at byte 8; its 36-bit total-samples field ends at byte 8 + 18.
    // Zero ("unknown") means symphonia has no length until it has decoded everything.
    flac[8 + 13] &= 0xF0;
    flac[8 + 14..8 + 18].fill(0);
    assert!((decode(&flac).unwrap().len() as f32 / 16_000.0 - full_seconds).abs() < 1e-6);
    match decode_audio(&flac, &DecodeOptions { max_seconds: 1.0 }) {
        // Stopped within one FLAC block (4096 samples) after the limit.
        Err(DecodeError::TooLong {
            seconds,
            max_seconds,
        }) => {
            assert_eq!(max_seconds, 1.0);
            assert!(
                seconds > 1.0 && seconds <= 1.0 + 4096.0 / 16_000.0,
                "{seconds}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn absurd_wav_header_sizes() {
    let speech = shared(SPEECH_WAV);
    let all = decode(&speech).unwrap();
    // Streaming writers (ffmpeg to a pipe) leave both lengths at 0xFFFFFFFF; other values are
    // plain lies. All of them decode exactly the audio that is present.
    for (riff, data) in [
        (u32::MAX, u32::MAX),
        (0, 0x7FFF_FFFF),
        (36, u32::MAX),
        (u32::MAX, 0xFFFF_FFF0),
        (12, 1_000_000_000),
    ] {
        let mut bytes = speech.clone();
        bytes[4..8].copy_from_slice(&riff.to_le_bytes());
        bytes[40..44].copy_from_slice(&data.to_le_bytes());
        let decoded = decode(&bytes).unwrap();
        assert!(decoded == all, "riff {riff:#x} data {data:#x}");
    }
    // Absurd format fields are refused, not trusted.
    let mut bytes = speech.clone();
    bytes[22..24].copy_from_slice(&u16::MAX.to_le_bytes()); // 65535 channels
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::Corrupt(_) | DecodeError::Unsupported(_))
    ));
    let mut bytes = speech.clone();
    bytes[34..36].copy_from_slice(&13u16.to_le_bytes()); // 13 bits per sample
    assert!(decode(&bytes).is_err());
    let mut bytes = speech.clone();
    bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes()); // fmt chunk of 4 GiB
    assert!(matches!(decode(&bytes), Err(DecodeError::Corrupt(_))));
}

/// Builds one Ogg page (RFC 3533) around one packet, with its CRC.
fn ogg_page(header_type: u8, granule: u64, sequence: u32, packet: &[u8]) -> Vec<u8> {
    assert!(packet.len() < 255);
    let mut page = Vec::new();
    page.extend_from_slice(b"OggS\0");
    page.push(header_type);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&0x1234_5678u32.to_le_bytes());
    page.extend_from_slice(&sequence.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    page.push(1);
    page.push(packet.len() as u8);
    page.extend_from_slice(packet);
    // CRC-32, polynomial 0x04C11DB7, not reflected, zero initial value and no final xor.
    let mut crc = 0u32;
    for &byte in &page {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

#[test]
fn ogg_without_an_audio_stream_has_no_audio_track() {
    // A video-only Ogg file: one Theora logical stream (identification header, then a data
    // page). The theora header body is made up; only its packet type and magic matter here.
    let mut bytes = ogg_page(
        0x02,
        0,
        0,
        b"\x80theora\x03\x02\x01not-a-real-theora-header",
    );
    bytes.extend(ogg_page(0x04, 1, 1, b"some video data"));
    let r = decode(&bytes);
    assert!(matches!(r, Err(DecodeError::NoAudioTrack)), "{r:?}");
    // Speex is audio, but not one we decode.
    let mut bytes = ogg_page(0x02, 0, 0, b"Speex   1.2.0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    bytes.extend(ogg_page(0x04, 1, 1, b"some speex data"));
    let r = decode(&bytes);
    assert!(matches!(r, Err(DecodeError::Unsupported(_))), "{r:?}");
    // The real Vorbis file still decodes: the check only looks at identification headers.
    assert!(decode(&data("tone440_48000_stereo.ogg")).is_ok());
}

// ---------------------------------------------------------------------------------------------
// What we accept.

#[test]
fn wav_16_bit_at_16k_is_pcm_over_32768() {
    let pcm: Vec<i16> = vec![i16::MIN, -1, 0, 1, 12_345, i16::MAX];
    let decoded = decode(&wav_i16(16_000, 1, &pcm)).unwrap();
    let expected: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    assert_eq!(decoded, expected);
}

#[test]
fn wav_24_bit_and_float() {
    let pcm24 = vec![-8_388_608, -1, 0, 1, 4_000_000, 8_388_607];
    let decoded = decode(&wav_i24(16_000, 1, &pcm24)).unwrap();
    let expected: Vec<f32> = pcm24.iter().map(|&s| s as f32 / 8_388_608.0).collect();
    assert_eq!(decoded, expected);
    let float = vec![-1.0f32, -0.25, 0.0, 1e-6, 0.5, 0.999];
    assert_eq!(decode(&wav_f32(16_000, 1, &float)).unwrap(), float);
}

#[test]
fn stereo_is_averaged() {
    let (left, right) = (
        to_i16(&tone(440.0, 16_000, 0.5, 0.5)),
        to_i16(&tone(1000.0, 16_000, 0.5, 0.3)),
    );
    let interleaved: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let decoded = decode(&wav_i16(16_000, 2, &interleaved)).unwrap();
    assert_eq!(decoded.len(), left.len());
    for (i, &d) in decoded.iter().enumerate() {
        let want = (f32::from(left[i]) / 32768.0 + f32::from(right[i]) / 32768.0) / 2.0;
        assert_eq!(d, want, "frame {i}");
    }
    // Float stereo at 48 kHz: left a tone, right silence, so the mean is the tone halved.
    let left = tone(440.0, 48_000, 1.0, 0.5);
    let interleaved: Vec<f32> = left.iter().flat_map(|&l| [l as f32, 0.0]).collect();
    let decoded = decode(&wav_f32(48_000, 2, &interleaved)).unwrap();
    assert_eq!(decoded.len(), 16_000);
    assert!(
        (rms(&decoded) - 0.25 / 2f64.sqrt()).abs() < 1e-3,
        "{}",
        rms(&decoded)
    );
}

#[test]
fn wav_at_other_rates_is_resampled() {
    for rate in [8_000, 11_025, 22_050, 32_000, 44_100, 48_000] {
        let n = (1.5 * f64::from(rate)) as usize;
        let x = tone(440.0, rate, 1.5, 0.5);
        let decoded = decode(&wav_i16(rate, 1, &to_i16(&x[..n]))).unwrap();
        let want_len = ((n as u64 * 16_000 + u64::from(rate) / 2) / u64::from(rate)) as usize;
        assert_eq!(decoded.len(), want_len, "{rate}");
        let hz = zero_crossing_hz(&decoded);
        assert!((hz - 440.0).abs() < 2.0, "{rate}: {hz} Hz");
        assert!(
            (rms(&decoded) - 0.5 / 2f64.sqrt()).abs() < 2e-3,
            "{rate}: rms {}",
            rms(&decoded)
        );
        // And sample by sample, the same tone generated at 16 kHz (time alignment).
        let want = tone(440.0, 16_000, 1.5, 0.5);
        for i in 800..decoded.len() - 800 {
            assert!(
                (f64::from(decoded[i]) - want[i]).abs() < 2e-3,
                "{rate}: sample {i}"
            );
        }
    }
    // 24-bit stereo at 22.05 kHz.
    let x = tone(440.0, 22_050, 1.0, 0.5);
    let interleaved: Vec<i32> = x
        .iter()
        .flat_map(|&v| [(v * 8_388_607.0) as i32; 2])
        .collect();
    let decoded = decode(&wav_i24(22_050, 2, &interleaved)).unwrap();
    assert_eq!(decoded.len(), 16_000);
    assert!((zero_crossing_hz(&decoded) - 440.0).abs() < 2.0);
}

#[test]
fn flac_decodes_to_the_same_samples_as_its_wav() {
    let from_flac = decode(&shared(SPEECH_FLAC)).unwrap();
    let from_wav = decode(&shared(SPEECH_FLAC_AS_WAV)).unwrap();
    assert_eq!(from_flac.len(), 45_360);
    assert!(from_flac == from_wav);
}

fn check_tone_file(name: &str) {
    let decoded = decode(&data(name)).unwrap();
    // 1.0 s, within 2%.
    let seconds = decoded.len() as f64 / 16_000.0;
    assert!((seconds - 1.0).abs() < 0.02, "{name}: {seconds} s");
    let hz = zero_crossing_hz(&decoded);
    assert!((hz - 440.0).abs() < 440.0 * 0.02, "{name}: {hz} Hz");
    // Left 0.5-amplitude sine, right silence: the mean is a 0.25 sine (RMS 0.177); taking
    // one channel or summing would give 0.354.
    let level = rms(&decoded[1600..14_400]);
    assert!(
        (level - 0.25 / 2f64.sqrt()).abs() < 0.02,
        "{name}: rms {level}"
    );
}

#[test]
fn mp3_decodes() {
    check_tone_file("tone440_44100_stereo.mp3");
    check_tone_file("tone440_48000_stereo.mp3");
}

#[test]
fn ogg_vorbis_decodes() {
    check_tone_file("tone440_44100_stereo.ogg");
    check_tone_file("tone440_48000_stereo.ogg");
}

#[test]
fn format_is_probed_from_content() {
    // Garbage before a RIFF header is skipped by symphonia's probe, and names play no part
    // (there are none): the same bytes decode whatever they would be called.
    let tone = data("tone440_48000_stereo.ogg");
    assert!(decode(&tone).is_ok());
    let mut prefixed = vec![0u8; 100];
    prefixed.extend_from_slice(&wav_i16(16_000, 1, &[1000; 1600]));
    assert_eq!(decode(&prefixed).unwrap().len(), 1600);
}

// ---------------------------------------------------------------------------------------------
// Time alignment of the resampler on real speech.

#[test]
fn resampled_speech_is_time_aligned() {
    let speech = decode(&shared(SPEECH_WAV)).unwrap();
    let speech = &speech[..32_000]; // 2 s
    for rate in [48_000, 44_100, 22_050] {
        let high = upsample(speech, rate);
        let back = decode(&wav_f32(rate, 1, &high)).unwrap();
        assert!(
            (back.len() as isize - speech.len() as isize).abs() <= 1,
            "{rate}: {}",
            back.len()
        );
        let at_zero = correlation(speech, &back, 0);
        assert!(at_zero > 0.99, "{rate}: correlation {at_zero}");
        for lag in [-3, -2, -1, 1, 2, 3] {
            let other = correlation(speech, &back, lag);
            assert!(
                other < at_zero,
                "{rate}: lag {lag} correlates better ({other} vs {at_zero})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz-style: mutated real headers must give an answer, never a panic.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        match rng.below(7) {
            0 => bytes.truncate(rng.below(len + 1)),
            1 => {
                // Flip bits in the header region.
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(len.min(128));
                    if i < len {
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
            }
            2 => {
                for _ in 0..1 + rng.below(16) {
                    let i = rng.below(len);
                    if i < len {
                        bytes[i] = rng.next() as u8;
                    }
                }
            }
            3 => {
                // Extreme 32-bit values in the header (lengths, rates, sample counts).
                let values = [
                    0u32,
                    1,
                    0x7FFF_FFFF,
                    0x8000_0000,
                    u32::MAX,
                    rng.next() as u32,
                ];
                let i = rng.below(len.min(96));
                if i + 4 <= len {
                    bytes[i..i + 4].copy_from_slice(&values[rng.below(values.len())].to_le_bytes());
                }
            }
            4 => {
                let values = [0u16, 1, 0x8000, u16::MAX, rng.next() as u16];
                let i = rng.below(len.min(96));
                if i + 2 <= len {
                    bytes[i..i + 2].copy_from_slice(&values[rng.below(values.len())].to_le_bytes());
                }
            }
            5 => {
                // A known magic followed by random bytes.
                let magics: [&[u8]; 6] = [
                    b"RIFF\xff\xff\xff\xffWAVEfmt ",
                    b"fLaC",
                    b"OggS\0\x02",
                    b"ID3\x04\0\0",
                    b"\xff\xfb\x90\x64",
                    b"",
                ];
                bytes = magics[rng.below(magics.len())].to_vec();
                bytes.extend((0..rng.below(2048)).map(|_| rng.next() as u8));
            }
            _ => {
                // Splice: the head of one file onto the body of another.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len.min(256) + 1);
                let from = rng.below(other.len());
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
    bytes
}

#[test]
fn fuzzed_headers_never_panic() {
    let sine: Vec<i32> = tone(440.0, 22_050, 0.2, 0.5)
        .iter()
        .flat_map(|&v| [(v * 8e6) as i32; 2])
        .collect();
    let seeds = vec![
        shared(SPEECH_WAV)[..8_192].to_vec(),
        shared(SPEECH_FLAC)[..16_384].to_vec(),
        wav_i24(22_050, 2, &sine),
        wav_f32(48_000, 1, &[0.25; 2_000]),
        data("tone440_44100_stereo.mp3"),
        data("tone440_48000_stereo.ogg"),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut errors, mut caught_panics) = (0, 0, 0);
    for _ in 0..2_000 {
        let bytes = mutate(&mut rng, &seeds);
        // A panic escaping here fails the test; decode_audio must turn everything into a value.
        match decode(&bytes) {
            Ok(samples) => {
                ok += 1;
                assert!(samples.iter().all(|x| x.is_finite()));
                assert!(samples.len() <= 600 * 16_000);
            }
            Err(DecodeError::Corrupt(msg)) if msg.starts_with("decoder panicked") => {
                caught_panics += 1
            }
            Err(_) => errors += 1,
        }
    }
    eprintln!(
        "fuzz: {ok} decoded, {errors} errors, {caught_panics} panics caught inside symphonia"
    );
    assert!(
        ok > 100 && errors > 100,
        "mutations should produce both outcomes"
    );
}

/// A full-scale square wave at 8 kHz overshoots ±1 through the sinc resampler; the decoder
/// clamps, so what it returns is within ±1 (the `audio_decode` fuzz target's first finding).
#[test]
fn resampled_full_scale_stays_within_one() {
    let square: Vec<i16> = (0..8000)
        .map(|i| {
            if (i / 20) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            }
        })
        .collect();
    let out = decode(&wav_i16(8000, 1, &square)).unwrap();
    assert_eq!(out.len(), 16_000);
    assert!(out.iter().all(|x| x.abs() <= 1.0));
    assert!(
        out.contains(&1.0),
        "the overshoot is clamped, not scaled away"
    );
}

/// A `WAVE_FORMAT_EXTENSIBLE` file of `channels` 16-bit channels with this channel mask.
fn extensible(channels: u16, mask: u32, frames: usize) -> Vec<u8> {
    let block = 2 * channels;
    let data_len = frames * usize::from(block);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&((4 + 8 + 40 + 8 + data_len) as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&40u32.to_le_bytes());
    v.extend_from_slice(&0xFFFEu16.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&16_000u32.to_le_bytes());
    v.extend_from_slice(&(16_000 * u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(&22u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(&mask.to_le_bytes());
    // KSDATAFORMAT_SUBTYPE_PCM
    v.extend_from_slice(&[
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B,
        0x71,
    ]);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data_len as u32).to_le_bytes());
    v.extend(std::iter::repeat_n([0x00, 0x10], data_len / 2).flatten());
    v
}

/// Channel masks that disagree with the channel count (symphonia's own repair of them
/// overflowed: the `audio_decode` fuzz target's second finding) decode, averaged as ever; more
/// than 32 channels are refused.
#[test]
fn extensible_wav_masks_that_disagree_with_the_channels() {
    for (channels, mask) in [(3, 0x8000_0000u32), (2, 0x0000_0007), (8, 1), (1, 0)] {
        let out = decode(&extensible(channels, mask, 1600)).unwrap();
        assert_eq!(out.len(), 1600, "{channels} channels, mask {mask:#x}");
        assert!(out.iter().all(|&x| (x - 4096.0 / 32768.0).abs() < 1e-4));
    }
    // More positions than symphonia names (32 here), and more than a mask can hold.
    for channels in [32, 40] {
        assert!(matches!(
            decode(&extensible(channels, 1, 160)),
            Err(DecodeError::Unsupported(_))
        ));
    }
}

/// A seed of the `audio_decode` fuzz target (made by `fuzz/make-audio-seeds.py`).
fn fuzz_seed(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/audio_decode")
            .join(name),
    )
    .unwrap()
}

/// A FLAC comment block stating a 4 GB comment is skipped, not allocated (symphonia allocates
/// a comment's stated length before reading it: the fuzz target's third finding), and the
/// audio decodes as without it.
#[test]
fn flac_comments_are_skipped_whatever_they_claim() {
    let flac = fuzz_seed("seed-flac-16k-mono.flac");
    let want = decode(&flac).unwrap();
    // After "fLaC": STREAMINFO (4-byte header + 34 bytes). Insert a comment block after it.
    let mut hostile = flac[..4 + 4 + 34].to_vec();
    hostile[4] &= 0x7f; // STREAMINFO is no longer the last block
    let body = [
        0u32.to_le_bytes(),
        1u32.to_le_bytes(),
        0xF000_0000u32.to_le_bytes(),
    ]
    .concat();
    hostile.extend_from_slice(&[0x04, 0, 0, body.len() as u8]);
    hostile.extend_from_slice(&body);
    if flac[4] & 0x80 != 0 {
        // The seed had STREAMINFO alone: the comment is now the last block.
        let at = 4 + 4 + 34;
        hostile[at] |= 0x80;
    }
    hostile.extend_from_slice(&flac[4 + 4 + 34..]);
    assert_eq!(decode(&hostile).unwrap(), want);
}

/// An Ogg Vorbis comment header stating more bytes than the file holds is refused before
/// symphonia would allocate them.
#[test]
fn ogg_comments_longer_than_the_file_are_refused() {
    let mut ogg = fuzz_seed("seed-ogg-22k-mono.ogg");
    assert!(decode(&ogg).is_ok());
    let at = ogg
        .windows(7)
        .position(|w| w == b"\x03vorbis")
        .expect("a comment header")
        + 7;
    ogg[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    match decode(&ogg) {
        Err(DecodeError::Corrupt(m)) => assert!(m.contains("comment header"), "{m}"),
        other => panic!("{other:?}"),
    }
}
