//! The audio front end: from uploaded bytes to the speaker encoder's input.
//!
//! The GE2E encoder was trained on Resemblyzer 0.1.4's features, so every step here reproduces
//! that package (with librosa 0.11) as `../shared/README.md` ("fixtures") states it:
//!
//! 1. [`decode_audio`]: WAV, FLAC, MP3 or Ogg/Vorbis bytes → mono `f32` at [`SAMPLE_RATE`]
//!    (mean downmix, windowed-sinc resampling, hard limits on length and sample rate).
//! 2. [`normalize_volume`] to [`NORMALIZE_TARGET_DBFS`], increase only ([`rms_dbfs`] is its level).
//! 3. [`MelSpectrogram::compute`]: the 40-band power mel spectrogram, one frame per 10 ms.
//! 4. [`compute_partial_slices`]: the 1.6 s windows that the encoder embeds one by one.
//!
//! Fixture parity is checked in `tests/frontend_parity.rs`; decoding edge cases in
//! `tests/decode_errors.rs`.

use std::io::{Cursor, ErrorKind};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
    calculate_cutoff,
};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::conv::FromSample;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::sample::Sample;

/// Sample rate of all audio after decoding: Resemblyzer's `sampling_rate`, and the rate of
/// Silero VAD's 16 kHz branch.
pub const SAMPLE_RATE: u32 = 16_000;

/// Lowest input sample rate [`decode_audio`] accepts: narrow-band telephone audio. Lower rates
/// lose so much of the speech band that the encoder's output would be meaningless.
pub const MIN_INPUT_SAMPLE_RATE: u32 = 8_000;

/// Highest input sample rate [`decode_audio`] accepts: the usual ceiling of consumer audio.
/// Higher rates only cost decoding and resampling time for content that is discarded.
pub const MAX_INPUT_SAMPLE_RATE: u32 = 48_000;

/// Default of [`DecodeOptions::max_seconds`]: ten minutes, far beyond an enrollment or a
/// verification utterance, small enough that one request cannot hold much memory
/// (10 min at 48 kHz is 115 MB of `f32` before the downmix-resample).
pub const DEFAULT_MAX_SECONDS: f32 = 600.0;

/// Volume target of the encoder's preprocessing: Resemblyzer's `audio_norm_target_dBFS`.
pub const NORMALIZE_TARGET_DBFS: f32 = -30.0;

/// FFT size and window length: 25 ms at 16 kHz, Resemblyzer's `mel_window_length`.
pub const N_FFT: usize = 400;

/// Hop between mel frames: 10 ms at 16 kHz, Resemblyzer's `mel_window_step`.
pub const HOP_LENGTH: usize = 160;

/// Number of mel bands: Resemblyzer's `mel_n_channels`, the encoder's input width.
pub const N_MELS: usize = 40;

/// Number of one-sided FFT bins, `N_FFT / 2 + 1`.
pub const N_FREQS: usize = N_FFT / 2 + 1;

/// Frames per encoder window: 160 frames = 1.6 s, the encoder's training window
/// (Resemblyzer's `partials_n_frames`).
pub const PARTIAL_FRAMES: usize = 160;

/// Windows per second of audio: the default `rate` of Resemblyzer's `embed_utterance`
/// (one window every 77 frames = 0.77 s, so consecutive windows overlap by about half).
pub const PARTIAL_RATE: f32 = 1.3;

/// Minimum fraction of the last window that must be real audio for it to be kept: the default
/// `min_coverage` of Resemblyzer's `embed_utterance`.
pub const MIN_COVERAGE: f32 = 0.75;

/// Resemblyzer's `int16_max` (2^15 - 1), the scale its `normalize_volume` measures RMS in.
const INT16_MAX: f64 = 32767.0;

/// Length of the resampler's windowed sinc, in input samples: rubato's recommended starting
/// point (its README example uses 256 taps with `BlackmanHarris2`, as we do).
const RESAMPLER_SINC_LEN: usize = 256;

/// Sub-sample positions tabulated for the sinc (rubato's README uses 256 with linear
/// interpolation between them). Measured error on a 0.4-amplitude tone: below 1.2e-5, under
/// 16-bit quantisation (3e-5); see `resampler_is_time_aligned_at_all_rates`.
const RESAMPLER_OVERSAMPLING: usize = 256;

/// Input frames per resampler call; any size works, 1024 keeps the buffers in L1/L2.
const RESAMPLER_CHUNK: usize = 1024;

/// A header that claims more than this (about 116 days) is not believed for the early length
/// check: such values come from corrupt headers (e.g. symphonia's MP3 gapless arithmetic
/// wrapping around), and the decode loop's own limit still stops a real long stream.
const MAX_PLAUSIBLE_HEADER_SECONDS: f64 = 1.0e7;

/// Options for [`decode_audio`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    /// Longest accepted duration in seconds (default [`DEFAULT_MAX_SECONDS`]). Longer input is
    /// rejected with [`DecodeError::TooLong`]; `f32::INFINITY` disables the limit, and a NaN
    /// rejects everything (fail closed).
    pub max_seconds: f32,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_seconds: DEFAULT_MAX_SECONDS,
        }
    }
}

/// Why [`decode_audio`] rejected its input.
#[derive(thiserror::Error, Debug)]
pub enum DecodeError {
    /// The container or codec is not one we decode (or the bytes are not audio at all).
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// The bytes look like a supported format but cannot be read (truncated header, bad data).
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    /// The container holds no audio track.
    #[error("no audio track")]
    NoAudioTrack,
    /// The input holds zero audio samples (including zero input bytes).
    #[error("no audio samples")]
    Empty,
    /// A sample is NaN or infinite (only possible with floating-point input).
    #[error("audio contains NaN or infinite samples")]
    NonFinite,
    /// The sample rate is outside [`MIN_INPUT_SAMPLE_RATE`]..=[`MAX_INPUT_SAMPLE_RATE`].
    #[error("unsupported sample rate {0} Hz (accepted: 8000 to 48000 Hz)")]
    SampleRate(u32),
    /// The audio is longer than [`DecodeOptions::max_seconds`]. `seconds` is the length the
    /// header states, or, when decoding stopped at the limit, the length decoded so far (so it
    /// is a lower bound on the true length).
    #[error("audio is at least {seconds:.2} s long, the maximum is {max_seconds:.2} s")]
    TooLong {
        /// Length found, in seconds (a lower bound when decoding stopped early).
        seconds: f32,
        /// The configured maximum.
        max_seconds: f32,
    },
    /// The resampler could not be built or run.
    #[error("resampling failed: {0}")]
    Resample(String),
}

/// Decodes a WAV, FLAC, MP3 or Ogg/Vorbis file to mono `f32` samples at [`SAMPLE_RATE`].
///
/// The format is probed from the content, never from a name. Any sample rate from
/// [`MIN_INPUT_SAMPLE_RATE`] to [`MAX_INPUT_SAMPLE_RATE`] and any channel count is accepted:
/// channels are averaged, then the signal is resampled with a 256-tap Blackman-Harris² windowed
/// sinc (rubato) by [`resample_to_16k`], time-aligned so that output sample `m` is the input at
/// time `m / 16000` s (to 1/256 of an input sample), and of length `round(n * 16000 / rate)`. 16 kHz input is not resampled, so 16-bit PCM comes out as
/// exactly `pcm / 32768` (symphonia's integer-to-float conversion divides by 2^(bits-1)).
///
/// Robustness, by design (the bytes come from users):
/// - Never panics: a panic inside symphonia is caught and reported as [`DecodeError::Corrupt`].
///   (The default panic hook still prints it to stderr.)
/// - A length beyond [`DecodeOptions::max_seconds`] is rejected from the header when the header
///   states it, before decoding; otherwise decoding stops as soon as the limit is passed.
/// - A WAV whose RIFF or `data` lengths exceed the bytes present (a truncated upload, or a
///   stream written to a pipe with 0xFFFFFFFF lengths) decodes the audio that is there.
/// - A packet that fails to decode in the middle of a stream (a damaged MP3 frame) is skipped.
/// - A stream that ends in an I/O or format error after some audio (a truncated FLAC, MP3 or
///   Ogg file) returns the audio decoded up to the damage: for a voice service, the usable
///   prefix of a cut-off upload is worth more than an error. Zero decodable packets is
///   [`DecodeError::Corrupt`]; a well-formed file with no samples is [`DecodeError::Empty`].
///
/// The bytes are copied once, because symphonia's sources must be `'static`.
pub fn decode_audio(bytes: &[u8], opts: &DecodeOptions) -> Result<Vec<f32>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (samples, rate) = decode_native(bytes, opts)?;
        if samples.iter().any(|x| !x.is_finite()) {
            return Err(DecodeError::NonFinite);
        }
        resample_to_16k(&samples, rate)
    }));
    match result {
        Ok(decoded) => decoded,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(DecodeError::Corrupt(format!("decoder panicked: {what}")))
        }
    }
}

/// Converts little-endian signed 16-bit PCM to `f32` as `x / 32768` (the fixtures' convention).
/// A trailing odd byte is ignored.
pub fn pcm16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// Decodes to mono at the file's own rate. Returns the samples and that rate.
fn decode_native(bytes: &[u8], opts: &DecodeOptions) -> Result<(Vec<f32>, u32), DecodeError> {
    check_ogg_streams(bytes)?;
    let mut owned = bytes.to_vec();
    repair_wav_header(&mut owned)?;
    let mss = MediaSourceStream::new(Box::new(Cursor::new(owned)), Default::default());
    // Gapless: MP3 and Vorbis packets then carry the encoder delay and padding, which the
    // decoders trim, so the decoded length is the encoded signal's length.
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&Hint::new(), mss, &format_opts, &MetadataOptions::default())
        .map_err(open_error)?;
    let mut reader = probed.format;

    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(DecodeError::NoAudioTrack)?;
    let track_id = track.id;
    let params = track.codec_params.clone();

    let mut rate = params.sample_rate;
    if let Some(r) = rate {
        check_rate(r)?;
        if let Some(n_frames) = params.n_frames {
            let seconds = n_frames as f64 / f64::from(r);
            if seconds < MAX_PLAUSIBLE_HEADER_SECONDS && exceeds(seconds, opts.max_seconds) {
                return Err(DecodeError::TooLong {
                    seconds: seconds as f32,
                    max_seconds: opts.max_seconds,
                });
            }
        }
    }

    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(open_error)?;

    let mut mono = Vec::new();
    if let (Some(r), Some(n_frames)) = (rate, params.n_frames) {
        // Reserve what the header promises, but never more than the limit allows.
        let cap = (f64::from(opts.max_seconds) * f64::from(r)).clamp(0.0, 1.0e9) as u64;
        mono.reserve(usize::try_from(n_frames.min(cap)).unwrap_or(0));
    }

    let mut bad_packets = 0usize;
    let mut packets = 0usize;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // symphonia's normal end of stream.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // A chained Ogg stream with new parameters: keep the first stream only.
            Err(SymphoniaError::ResetRequired) => break,
            // Damage after some audio: keep the audio (see `decode_audio`'s docs).
            Err(_) if !mono.is_empty() => break,
            Err(e) => return Err(stream_error(e)),
        };
        // Every packet consumes at least one byte of input, so this bounds the loop even if a
        // demuxer misbehaved on hostile input.
        packets += 1;
        if packets > bytes.len() + 16 {
            return Err(DecodeError::Corrupt("demuxer made no progress".into()));
        }
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let buf_rate = buf.spec().rate;
                match rate {
                    None => {
                        check_rate(buf_rate)?;
                        rate = Some(buf_rate);
                    }
                    Some(r) if r != buf_rate => {
                        return Err(DecodeError::Unsupported(format!(
                            "sample rate changes mid-stream ({r} Hz to {buf_rate} Hz)"
                        )));
                    }
                    Some(_) => {}
                }
                append_mono(&buf, &mut mono);
                let seconds = mono.len() as f64 / f64::from(buf_rate);
                if exceeds(seconds, opts.max_seconds) {
                    return Err(DecodeError::TooLong {
                        seconds: seconds as f32,
                        max_seconds: opts.max_seconds,
                    });
                }
            }
            // One damaged packet (lossy formats resynchronise at the next frame): skip it.
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_)) => bad_packets += 1,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(stream_error(e)),
        }
    }

    match rate {
        Some(rate) if !mono.is_empty() => Ok((mono, rate)),
        _ if bad_packets > 0 => Err(DecodeError::Corrupt("no packet could be decoded".into())),
        _ => Err(DecodeError::Empty),
    }
}

/// True when `seconds` is over the limit; a NaN limit counts as exceeded (fail closed).
fn exceeds(seconds: f64, max_seconds: f32) -> bool {
    max_seconds.is_nan() || seconds > f64::from(max_seconds)
}

fn check_rate(rate: u32) -> Result<(), DecodeError> {
    if (MIN_INPUT_SAMPLE_RATE..=MAX_INPUT_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(DecodeError::SampleRate(rate))
    }
}

/// Maps an error from probing or opening the stream (before any audio).
fn open_error(e: SymphoniaError) -> DecodeError {
    match e {
        SymphoniaError::Unsupported(what) => DecodeError::Unsupported(what.to_owned()),
        SymphoniaError::LimitError(what) => DecodeError::Unsupported(format!("limit: {what}")),
        SymphoniaError::IoError(e) => DecodeError::Corrupt(format!("truncated header: {e}")),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// Maps an error that ended the stream before any audio was decoded.
fn stream_error(e: SymphoniaError) -> DecodeError {
    match e {
        SymphoniaError::Unsupported(what) => DecodeError::Unsupported(what.to_owned()),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

fn read_u32_le(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Makes a WAV file's RIFF and `data` lengths agree with the bytes actually present.
///
/// Why: a truncated upload keeps its original lengths, and a WAV written to a pipe has both
/// lengths at 0xFFFFFFFF (ffmpeg) or otherwise wrong. symphonia 0.5 then drops the whole last
/// packet (1152 frames) with an I/O error, or rejects a chunk longer than its parent. Clamped,
/// all the audio present decodes, and the header's frame count becomes truthful, so the early
/// length check in [`decode_native`] can trust it. A zero sample rate is rejected here because
/// symphonia 0.5 panics on it (`TimeBase::new(1, 0)`). Non-WAV input is left alone.
fn repair_wav_header(buf: &mut [u8]) -> Result<(), DecodeError> {
    if buf.len() < 12 || &buf[0..4] != b"RIFF" || &buf[8..12] != b"WAVE" {
        return Ok(());
    }
    let riff_len = u32::try_from(buf.len() - 8).unwrap_or(u32::MAX);
    buf[4..8].copy_from_slice(&riff_len.to_le_bytes());
    let mut pos = 12usize;
    while pos + 8 <= buf.len() {
        let Some(len) = read_u32_le(buf, pos + 4) else {
            break;
        };
        let body = pos + 8;
        let available = buf.len() - body;
        match &buf[pos..pos + 4] {
            b"fmt " if read_u32_le(buf, body + 4) == Some(0) => {
                return Err(DecodeError::SampleRate(0));
            }
            b"data" => {
                if len as usize > available {
                    let clamped = u32::try_from(available).unwrap_or(u32::MAX);
                    buf[pos + 4..pos + 8].copy_from_slice(&clamped.to_le_bytes());
                }
                break;
            }
            _ => {}
        }
        if len as usize > available {
            break; // A truncated chunk before the audio: symphonia reports it.
        }
        pos = body + len as usize + (len as usize & 1); // RIFF chunks are 2-byte aligned.
    }
    Ok(())
}

/// Classifies an Ogg file by the identification packets of its logical streams, which RFC 3533
/// puts first, one per beginning-of-stream page.
///
/// Why: symphonia 0.5 maps an unknown stream (Theora video, Skeleton, Speex, ...) to a null
/// codec that never yields packets, so its demuxer reads to the end of the file and reports
/// "end of stream", which cannot be told from a truncated file. Here a file whose streams are
/// all known not to be audio we decode is [`DecodeError::NoAudioTrack`] (or
/// [`DecodeError::Unsupported`] for Speex, which is audio). Anything else, including a
/// damaged first page, is left to symphonia.
fn check_ogg_streams(bytes: &[u8]) -> Result<(), DecodeError> {
    const AUDIO_IDS: [&[u8]; 3] = [b"\x01vorbis", b"\x7fFLAC", b"OpusHead"];
    let mut pos = 0usize;
    let (mut streams, mut speex) = (0usize, false);
    // Page header: "OggS", version, flags (0x02 = beginning of stream), granule position,
    // serial, sequence, CRC, segment count, then the lacing values and the body.
    while let Some(header) = bytes.get(pos..pos + 27) {
        if &header[0..4] != b"OggS" || header[5] & 0x02 == 0 {
            break;
        }
        let segments = usize::from(header[26]);
        let Some(lacing) = bytes.get(pos + 27..pos + 27 + segments) else {
            return Ok(());
        };
        let body_start = pos + 27 + segments;
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let Some(body) = bytes.get(body_start..body_start + body_len) else {
            return Ok(());
        };
        if AUDIO_IDS.iter().any(|id| body.starts_with(id)) {
            return Ok(());
        }
        speex |= body.starts_with(b"Speex   ");
        streams += 1;
        pos = body_start + body_len;
    }
    match (streams, speex) {
        (0, _) => Ok(()),
        (_, true) => Err(DecodeError::Unsupported("Speex in Ogg".into())),
        (_, false) => Err(DecodeError::NoAudioTrack),
    }
}

/// Appends one decoded buffer to `out` as the mean of its channels.
fn append_mono(buf: &AudioBufferRef<'_>, out: &mut Vec<f32>) {
    match buf {
        AudioBufferRef::U8(b) => mix_down(b, out),
        AudioBufferRef::U16(b) => mix_down(b, out),
        AudioBufferRef::U24(b) => mix_down(b, out),
        AudioBufferRef::U32(b) => mix_down(b, out),
        AudioBufferRef::S8(b) => mix_down(b, out),
        AudioBufferRef::S16(b) => mix_down(b, out),
        AudioBufferRef::S24(b) => mix_down(b, out),
        AudioBufferRef::S32(b) => mix_down(b, out),
        AudioBufferRef::F32(b) => mix_down(b, out),
        AudioBufferRef::F64(b) => mix_down(b, out),
    }
}

/// Mean over channels, using symphonia's sample conversion (`i16 → x / 32768`,
/// `i24 → x / 2^23`, ...). Mono is copied without arithmetic so it stays bit-exact.
fn mix_down<S: Sample>(buf: &AudioBuffer<S>, out: &mut Vec<f32>)
where
    f32: FromSample<S>,
{
    let channels = buf.spec().channels.count();
    let frames = buf.frames();
    if channels == 0 || frames == 0 {
        return;
    }
    let start = out.len();
    out.extend(buf.chan(0)[..frames].iter().map(|&s| f32::from_sample(s)));
    if channels == 1 {
        return;
    }
    let dst = &mut out[start..];
    for c in 1..channels {
        for (o, &s) in dst.iter_mut().zip(&buf.chan(c)[..frames]) {
            *o += f32::from_sample(s);
        }
    }
    let n = channels as f32;
    dst.iter_mut().for_each(|o| *o /= n);
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resamples mono audio from `from_rate` to [`SAMPLE_RATE`] (a copy when it is already 16 kHz).
///
/// rubato's `SincFixedIn` (256-tap Blackman-Harris² sinc, rubato's fitted cutoff for that
/// length) does the filtering. The output is time-aligned: sample `m` is the band-limited input
/// at time `m / 16000 + 1 / (256 * from_rate)` s, and there are `round(n * 16000 / from_rate)`
/// samples. The residual 1/256 of an input sample (at most 0.5 µs, at 8 kHz) is rubato 0.16's
/// sub-sample sinc table being one entry off; integer shifts cannot remove it and it is far
/// below anything audible or measurable in the features.
///
/// How the alignment is obtained: with a fresh `SincFixedIn`, output `j` is the input
/// interpolated at position `(j + 1) * from_rate / 16000 - 1 + 1/256` (its index starts at
/// `-sinc_len/2`, its first step lands one input step later, and its kernel peaks
/// `sinc_len/2 - 1 + 1/256` samples after the index). Prepending `lead` zeros and dropping
/// `skip` outputs with `(skip + 1) / 16000 = (lead + 1) / from_rate`, i.e.
/// `skip = 16000/g - 1` and `lead = from_rate/g - 1` with `g = gcd(from_rate, 16000)`, maps
/// output `m` to input position `m * from_rate / 16000 (+ 1/256)`. rubato's `output_delay()`
/// (half the sinc, in output frames) does not describe this time offset, so it is not used; the
/// unit test `resampler_is_time_aligned_at_all_rates` checks the alignment to 2e-5 at nine
/// rates. The tail is flushed with zeros until every output sample is computed.
pub fn resample_to_16k(input: &[f32], from_rate: u32) -> Result<Vec<f32>, DecodeError> {
    if from_rate == SAMPLE_RATE {
        return Ok(input.to_vec());
    }
    if from_rate == 0 {
        return Err(DecodeError::SampleRate(0));
    }
    let out_len = usize::try_from(
        (input.len() as u64 * u64::from(SAMPLE_RATE) + u64::from(from_rate / 2))
            / u64::from(from_rate),
    )
    .map_err(|_| DecodeError::Resample("input too long".into()))?;
    if out_len == 0 {
        return Ok(Vec::new());
    }
    let g = gcd(from_rate, SAMPLE_RATE);
    let skip = (SAMPLE_RATE / g - 1) as usize;
    let lead = (from_rate / g - 1) as usize;
    let ratio = f64::from(SAMPLE_RATE) / f64::from(from_rate);

    let params = SincInterpolationParameters {
        sinc_len: RESAMPLER_SINC_LEN,
        f_cutoff: calculate_cutoff::<f32>(RESAMPLER_SINC_LEN, WindowFunction::BlackmanHarris2),
        oversampling_factor: RESAMPLER_OVERSAMPLING,
        interpolation: SincInterpolationType::Linear,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut resampler = SincFixedIn::<f32>::new(ratio, 1.0, params, RESAMPLER_CHUNK, 1)
        .map_err(|e| DecodeError::Resample(e.to_string()))?;

    let mut chunk = vec![0.0f32; RESAMPLER_CHUNK];
    let mut produced = vec![vec![0.0f32; resampler.output_frames_max()]];
    let mut out = Vec::with_capacity(out_len);
    let mut to_skip = skip;
    // The virtual input stream is `lead` zeros, then `input`, then zeros for ever.
    let input_span = lead..lead + input.len();
    // Outputs trail inputs by about half a sinc plus one chunk; anything beyond this bound
    // means the resampler is not producing what it should.
    let needed_inputs = (skip + out_len) as f64 / ratio;
    let max_chunks = (needed_inputs as usize + 2 * RESAMPLER_SINC_LEN) / RESAMPLER_CHUNK + 8;
    let mut pos = 0usize;
    for _ in 0..max_chunks {
        chunk.fill(0.0);
        let a = pos.max(input_span.start);
        let b = (pos + RESAMPLER_CHUNK).min(input_span.end);
        if a < b {
            chunk[a - pos..b - pos].copy_from_slice(&input[a - lead..b - lead]);
        }
        pos += RESAMPLER_CHUNK;
        let (_, n) = resampler
            .process_into_buffer(&[&chunk[..]], &mut produced, None)
            .map_err(|e| DecodeError::Resample(e.to_string()))?;
        let fresh = &produced[0][..n];
        let skipped = to_skip.min(fresh.len());
        to_skip -= skipped;
        let take = (out_len - out.len()).min(fresh.len() - skipped);
        out.extend_from_slice(&fresh[skipped..skipped + take]);
        if out.len() == out_len {
            return Ok(out);
        }
    }
    Err(DecodeError::Resample(format!(
        "resampler produced {} of {out_len} samples",
        out.len()
    )))
}

/// [`resample_to_16k`] for a live stream: input arrives in pieces of any size, output comes out
/// as soon as the resampler can compute it, with the same filter and the same time alignment
/// (output sample `m` is the input at `m / 16000` s), so a stream's times in seconds are the
/// same as for the whole signal. Output trails input by about 10 ms of input plus half the
/// sinc (128 input samples). 16 kHz input passes through unchanged.
pub struct StreamResampler {
    inner: Option<SincFixedIn<f32>>,
    chunk: usize,
    pending: Vec<f32>,
    produced: Vec<Vec<f32>>,
    to_skip: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("chunk", &self.chunk)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A resampler from `from_rate` ([`MIN_INPUT_SAMPLE_RATE`]..=[`MAX_INPUT_SAMPLE_RATE`]) to
    /// 16 kHz.
    ///
    /// # Errors
    /// [`DecodeError::SampleRate`] outside the accepted range; [`DecodeError::Resample`] if
    /// rubato refuses the parameters.
    pub fn new(from_rate: u32) -> Result<Self, DecodeError> {
        if !(MIN_INPUT_SAMPLE_RATE..=MAX_INPUT_SAMPLE_RATE).contains(&from_rate) {
            return Err(DecodeError::SampleRate(from_rate));
        }
        if from_rate == SAMPLE_RATE {
            return Ok(Self {
                inner: None,
                chunk: 0,
                pending: Vec::new(),
                produced: Vec::new(),
                to_skip: 0,
            });
        }
        let g = gcd(from_rate, SAMPLE_RATE);
        let skip = (SAMPLE_RATE / g - 1) as usize;
        let lead = (from_rate / g - 1) as usize;
        let ratio = f64::from(SAMPLE_RATE) / f64::from(from_rate);
        let params = SincInterpolationParameters {
            sinc_len: RESAMPLER_SINC_LEN,
            f_cutoff: calculate_cutoff::<f32>(RESAMPLER_SINC_LEN, WindowFunction::BlackmanHarris2),
            oversampling_factor: RESAMPLER_OVERSAMPLING,
            interpolation: SincInterpolationType::Linear,
            window: WindowFunction::BlackmanHarris2,
        };
        // 10 ms of input per call: small enough for live latency, large enough to amortise.
        let chunk = (from_rate / 100) as usize;
        let inner = SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1)
            .map_err(|e| DecodeError::Resample(e.to_string()))?;
        let produced = vec![vec![0.0f32; inner.output_frames_max()]];
        let mut pending = Vec::with_capacity(chunk * 2 + lead);
        pending.resize(lead, 0.0);
        Ok(Self {
            inner: Some(inner),
            chunk,
            pending,
            produced,
            to_skip: skip,
        })
    }

    /// Feeds `input` and appends every 16 kHz sample that can now be computed to `out`.
    ///
    /// # Errors
    /// [`DecodeError::Resample`] if rubato fails (it does not with the parameters of `new`).
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), DecodeError> {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk {
            let (_, n) = inner
                .process_into_buffer(
                    &[&self.pending[start..start + self.chunk]],
                    &mut self.produced,
                    None,
                )
                .map_err(|e| DecodeError::Resample(e.to_string()))?;
            start += self.chunk;
            let fresh = &self.produced[0][..n];
            let skipped = self.to_skip.min(fresh.len());
            self.to_skip -= skipped;
            out.extend_from_slice(&fresh[skipped..]);
        }
        self.pending.drain(..start);
        Ok(())
    }
}

/// Level of a signal in dBFS, exactly as Resemblyzer's `normalize_volume` measures it:
/// `20 * log10(sqrt(mean((x * 32767)^2)) / 32767)`, computed in `f64`.
/// Empty or all-zero input gives `f32::NEG_INFINITY` (never NaN).
pub fn rms_dbfs(wav: &[f32]) -> f32 {
    if wav.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum_sq: f64 = wav
        .iter()
        .map(|&x| {
            let v = f64::from(x) * INT16_MAX;
            v * v
        })
        .sum();
    let rms = (sum_sq / wav.len() as f64).sqrt();
    if rms == 0.0 {
        return f32::NEG_INFINITY;
    }
    (20.0 * (rms / INT16_MAX).log10()) as f32
}

/// Scales `wav` to `target_dbfs` ([`rms_dbfs`]), as Resemblyzer's
/// `normalize_volume(wav, target_dBFS, increase_only)`: the gain `10^((target - dBFS) / 20)` is
/// applied unless it would lower the level while `increase_only` is set. A silent (all-zero) or
/// empty signal has no level and is left unchanged. The encoder's preprocessing uses
/// `normalize_volume(wav, NORMALIZE_TARGET_DBFS, true)`.
pub fn normalize_volume(wav: &mut [f32], target_dbfs: f32, increase_only: bool) {
    let level = rms_dbfs(wav);
    if !level.is_finite() {
        return;
    }
    let change = f64::from(target_dbfs) - f64::from(level);
    if change < 0.0 && increase_only {
        return;
    }
    let gain = 10f64.powf(change / 20.0) as f32;
    wav.iter_mut().for_each(|x| *x *= gain);
}

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The mel filterbank, `[N_MELS][N_FREQS]`, computed as librosa 0.11
/// `filters.mel(sr=16000, n_fft=400, n_mels=40)` does (fmin 0, fmax 8000, Slaney scale, Slaney
/// area normalisation, `dtype=float32`): in `f64`, with the triangles rounded to `f32` before
/// the normalisation and the product rounded again, because that is how numpy evaluates
/// librosa's in-place `weights *= enorm` on a `float32` array.
pub fn mel_filterbank() -> Vec<[f32; N_FREQS]> {
    let sr = f64::from(SAMPLE_RATE);
    // np.fft.rfftfreq(n=400, d=1/sr): k * (1 / (n * d)).
    let bin_hz = 1.0 / (N_FFT as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..N_FREQS).map(|k| k as f64 * bin_hz).collect();
    // mel_frequencies(n_mels + 2, fmin=0, fmax=sr/2): np.linspace in mel, then back to Hz.
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let n_points = N_MELS + 2;
    let step = (max_mel - min_mel) / (n_points - 1) as f64;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            // np.linspace sets its last point to `stop` exactly.
            let mel = if i == n_points - 1 {
                max_mel
            } else {
                i as f64 * step + min_mel
            };
            mel_to_hz(mel)
        })
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    (0..N_MELS)
        .map(|i| {
            let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
            let mut row = [0.0f32; N_FREQS];
            for (w, &f) in row.iter_mut().zip(&fft_freqs) {
                let lower = -(mel_f[i] - f) / fdiff[i];
                let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
                let tri = lower.min(upper).max(0.0) as f32;
                *w = (f64::from(tri) * enorm) as f32;
            }
            row
        })
        .collect()
}

/// The encoder's front end: a power mel spectrogram, exactly as the shared README states
/// (librosa 0.11 `feature.melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40,
/// center=True, pad_mode="constant")`, power 2, no log).
///
/// Frames are centred: frame `t` covers samples `160 t - 200 .. 160 t + 200`, zeros outside the
/// signal, so there are `1 + n / 160` frames. The window is a periodic Hann of 400; the FFT,
/// the power and the band sums run in `f64` and round to `f32` once, which keeps even the
/// quietest bands (1e-10 next to 0.07 in the same frame) within 1e-6 relative of librosa.
///
/// Build it once and share it: it is `Send + Sync`, and [`compute`](Self::compute) allocates
/// only per call (three small scratch buffers and the output), never per frame. Each band
/// touches only the FFT bins its triangle spans (about 400 multiply-adds per frame in total,
/// against 8040 for the dense matrix).
pub struct MelSpectrogram {
    fft: Arc<dyn RealToComplex<f64>>,
    /// Periodic Hann: `0.5 - 0.5 cos(2 pi n / 400)` (scipy `get_window("hann", 400)`).
    window: Vec<f64>,
    /// First FFT bin of each band's non-zero span.
    band_start: [usize; N_MELS],
    /// Band `m`'s weights are `weights[band_offset[m]..band_offset[m + 1]]`.
    band_offset: [usize; N_MELS + 1],
    weights: Vec<f32>,
}

impl std::fmt::Debug for MelSpectrogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelSpectrogram")
            .field("n_fft", &N_FFT)
            .field("hop_length", &HOP_LENGTH)
            .field("n_mels", &N_MELS)
            .field("non_zero_weights", &self.weights.len())
            .finish()
    }
}

impl Default for MelSpectrogram {
    fn default() -> Self {
        Self::new()
    }
}

impl MelSpectrogram {
    /// Plans the FFT and builds the window and the (sparse) filterbank.
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        let mut band_start = [0usize; N_MELS];
        let mut band_offset = [0usize; N_MELS + 1];
        let mut weights = Vec::new();
        for (m, row) in mel_filterbank().iter().enumerate() {
            // Each triangle is one contiguous run of non-zero bins.
            if let Some(first) = row.iter().position(|&w| w != 0.0) {
                let last = row.iter().rposition(|&w| w != 0.0).unwrap_or(first);
                band_start[m] = first;
                weights.extend_from_slice(&row[first..=last]);
            }
            band_offset[m + 1] = weights.len();
        }
        Self {
            fft,
            window,
            band_start,
            band_offset,
            weights,
        }
    }

    /// Number of frames for `n_samples` samples: `1 + n_samples / 160`, as librosa's centred STFT.
    pub fn n_frames(n_samples: usize) -> usize {
        1 + n_samples / HOP_LENGTH
    }

    /// The mel spectrogram of 16 kHz mono `wav`, flat and row-major `[n_frames, N_MELS]`:
    /// band `m` of frame `t` is at `t * N_MELS + m`.
    pub fn compute(&self, wav: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        self.compute_into(wav, &mut out);
        out
    }

    /// [`compute`](Self::compute) into a caller-owned buffer (cleared first), so that a stream
    /// processor can reuse its allocation.
    pub fn compute_into(&self, wav: &[f32], out: &mut Vec<f32>) {
        let n_frames = Self::n_frames(wav.len());
        out.clear();
        out.resize(n_frames * N_MELS, 0.0);
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0.0f64; N_FREQS];
        for (t, row) in out.chunks_exact_mut(N_MELS).enumerate() {
            self.fill_frame(wav, t, &mut frame);
            // The buffers come from the plan itself, so their lengths cannot be wrong.
            let planned = self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch);
            debug_assert!(planned.is_ok());
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = Complex::norm_sqr(c);
            }
            for (m, value) in row.iter_mut().enumerate() {
                let w = &self.weights[self.band_offset[m]..self.band_offset[m + 1]];
                let bins = &power[self.band_start[m]..self.band_start[m] + w.len()];
                let sum: f64 = w.iter().zip(bins).map(|(&w, &p)| f64::from(w) * p).sum();
                *value = sum as f32;
            }
        }
    }

    /// Writes frame `t` (samples `160 t - 200 .. 160 t + 200`, zero outside) times the window.
    fn fill_frame(&self, wav: &[f32], t: usize, frame: &mut [f64]) {
        let centre = t * HOP_LENGTH;
        // Signal indices covered, and where they land in the frame.
        let lo = centre.saturating_sub(N_FFT / 2);
        let hi = (centre + N_FFT / 2).min(wav.len());
        let offset = lo + N_FFT / 2 - centre;
        frame.fill(0.0);
        if lo < hi {
            let dst = &mut frame[offset..offset + (hi - lo)];
            for ((d, &x), &w) in dst.iter_mut().zip(&wav[lo..hi]).zip(&self.window[offset..]) {
                *d = f64::from(x) * w;
            }
        }
    }
}

/// Resemblyzer 0.1.4's `VoiceEncoder.compute_partial_slices`: where the encoder windows of an
/// utterance of `n_samples` 16 kHz samples lie. Returns `(wav_slices, mel_slices)`: window `i`
/// covers mel frames `mel_slices[i]` ([`PARTIAL_FRAMES`] of them) and samples `wav_slices[i]`
/// (160 samples per frame). Windows start every `round(16000 / rate / 160)` frames; the last
/// one is dropped when less than `min_coverage` of it is audio, unless it is the only one.
/// Windows may run past the end of the audio: Resemblyzer zero-pads the wav to the last
/// window's end before computing the mel spectrogram.
///
/// The encoder uses `compute_partial_slices(n, PARTIAL_RATE, MIN_COVERAGE)`.
///
/// # Panics
/// As Resemblyzer's assertions: if `min_coverage` is not in `(0, 1]`, or `rate` puts windows
/// further apart than one window (`rate` below 0.625) or less than one frame apart.
pub fn compute_partial_slices(
    n_samples: usize,
    rate: f32,
    min_coverage: f32,
) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    assert!(
        0.0 < min_coverage && min_coverage <= 1.0,
        "min_coverage must be in (0, 1]"
    );
    let samples_per_frame = HOP_LENGTH; // int(16000 * 10 ms / 1000)
    let n_frames = (n_samples + 1).div_ceil(samples_per_frame);
    // np.round rounds half to even.
    let frame_step =
        ((f64::from(SAMPLE_RATE) / f64::from(rate)) / samples_per_frame as f64).round_ties_even();
    assert!(
        frame_step >= 1.0 && frame_step <= PARTIAL_FRAMES as f64,
        "rate {rate} gives a window step of {frame_step} frames, outside 1..=160"
    );
    let frame_step = frame_step as usize;
    let steps = (n_frames + frame_step + 1)
        .saturating_sub(PARTIAL_FRAMES)
        .max(1);
    let mel_slices: Vec<Range<usize>> = (0..steps)
        .step_by(frame_step)
        .map(|i| i..i + PARTIAL_FRAMES)
        .collect();
    let mut wav_slices: Vec<Range<usize>> = mel_slices
        .iter()
        .map(|m| m.start * samples_per_frame..m.end * samples_per_frame)
        .collect();
    let mut mel_slices = mel_slices;
    if let Some(last) = wav_slices.last() {
        let coverage =
            (n_samples as f64 - last.start as f64) / (last.end as f64 - last.start as f64);
        if coverage < f64::from(min_coverage) && mel_slices.len() > 1 {
            mel_slices.pop();
            wav_slices.pop();
        }
    }
    (wav_slices, mel_slices)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn mel_spectrogram_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MelSpectrogram>();
    }

    #[test]
    fn rms_dbfs_of_known_signals() {
        // A full-scale square wave has RMS 1: 0 dBFS.
        let square: Vec<f32> = (0..1000)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(rms_dbfs(&square).abs() < 1e-6);
        // A full-scale sine: 20 log10(1/sqrt 2) = -3.0103 dBFS.
        let s = sine(1000.0, 16_000, 16_000, 1.0);
        assert!((rms_dbfs(&s) + 3.0103).abs() < 1e-3, "{}", rms_dbfs(&s));
        // Halving the amplitude is -6.02 dB.
        let half: Vec<f32> = s.iter().map(|x| x * 0.5).collect();
        assert!((rms_dbfs(&half) - rms_dbfs(&s) + 6.0206).abs() < 1e-3);
        assert_eq!(rms_dbfs(&[0.0; 100]), f32::NEG_INFINITY);
        assert_eq!(rms_dbfs(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn normalize_volume_leaves_silence_alone() {
        let mut silence = vec![0.0f32; 1600];
        normalize_volume(&mut silence, -30.0, true);
        assert!(silence.iter().all(|&x| x == 0.0));
        normalize_volume(&mut silence, -30.0, false);
        assert!(silence.iter().all(|&x| x == 0.0));
        let mut empty: Vec<f32> = Vec::new();
        normalize_volume(&mut empty, -30.0, true);
    }

    #[test]
    fn normalize_volume_increase_only_never_lowers() {
        let loud = sine(440.0, 16_000, 16_000, 0.5); // about -9 dBFS
        let mut wav = loud.clone();
        normalize_volume(&mut wav, -30.0, true);
        assert_eq!(wav, loud);
        // Without increase_only, the level comes down to the target.
        normalize_volume(&mut wav, -30.0, false);
        assert!((rms_dbfs(&wav) + 30.0).abs() < 1e-3, "{}", rms_dbfs(&wav));
    }

    #[test]
    fn normalize_volume_raises_quiet_audio_to_target() {
        let mut wav = sine(440.0, 16_000, 16_000, 0.001); // about -63 dBFS
        normalize_volume(&mut wav, -30.0, true);
        assert!((rms_dbfs(&wav) + 30.0).abs() < 1e-3, "{}", rms_dbfs(&wav));
        // Already at the target: the gain is 1.
        let before = wav.clone();
        normalize_volume(&mut wav, rms_dbfs(&before), true);
        for (a, b) in wav.iter().zip(&before) {
            assert!((a - b).abs() <= 1e-6 * b.abs());
        }
    }

    #[test]
    fn filterbank_shape_and_row_sums() {
        let fb = mel_filterbank();
        assert_eq!(fb.len(), N_MELS);
        // Expected row sums from an independent NumPy transcription of librosa 0.11
        // `filters.mel(sr=16000, n_fft=400, n_mels=40)`, which reproduces the fixtures' mel
        // frames to 3e-7. Area normalisation makes wide bands sum to about 1 / 40 Hz = 0.025.
        let expected = [
            (0, 0.024_809_042_0),
            (1, 0.024_809_041_1),
            (10, 0.024_809_041_8),
            (20, 0.025_219_751_5),
            (30, 0.024_935_600_2),
            (39, 0.024_978_757_0),
        ];
        for (m, want) in expected {
            let sum: f64 = fb[m].iter().map(|&w| f64::from(w)).sum();
            assert!((sum - want).abs() < 1e-9, "band {m}: {sum} vs {want}");
        }
        for (m, row) in fb.iter().enumerate() {
            assert!(row.iter().all(|&w| w >= 0.0));
            // Each band is one contiguous run of non-zero bins.
            let first = row.iter().position(|&w| w > 0.0).unwrap();
            let last = row.iter().rposition(|&w| w > 0.0).unwrap();
            assert!(
                row[first..=last].iter().all(|&w| w > 0.0),
                "band {m} has a hole"
            );
            if m > 0 {
                let prev = fb[m - 1].iter().position(|&w| w > 0.0).unwrap();
                assert!(first >= prev, "bands must move up in frequency");
            }
        }
        // The top band reaches 8 kHz's neighbourhood, the DC bin belongs to no band.
        assert!(fb[N_MELS - 1][N_FREQS - 2] > 0.0);
        assert!(fb.iter().all(|row| row[0] == 0.0));
    }

    /// The FFT, the centring and the sparse filterbank against a dense O(n^2) DFT in f64.
    #[test]
    fn mel_matches_direct_dft() {
        let mut state = 12345u64;
        let wav: Vec<f32> = (0..2000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        let mel = MelSpectrogram::new();
        let got = mel.compute(&wav);
        let n_frames = MelSpectrogram::n_frames(wav.len());
        assert_eq!(n_frames, 13);
        assert_eq!(got.len(), n_frames * N_MELS);
        let fb = mel_filterbank();
        for t in [0, 1, 6, 12] {
            let frame: Vec<f64> = (0..N_FFT)
                .map(|j| {
                    let i = (t * HOP_LENGTH + j) as isize - (N_FFT / 2) as isize;
                    let x = usize::try_from(i)
                        .ok()
                        .and_then(|i| wav.get(i))
                        .copied()
                        .unwrap_or(0.0);
                    let w =
                        0.5 - 0.5 * (2.0 * std::f64::consts::PI * j as f64 / N_FFT as f64).cos();
                    f64::from(x) * w
                })
                .collect();
            let power: Vec<f64> = (0..N_FREQS)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (j, &x) in frame.iter().enumerate() {
                        let a = -2.0 * std::f64::consts::PI * (k * j) as f64 / N_FFT as f64;
                        re += x * a.cos();
                        im += x * a.sin();
                    }
                    re * re + im * im
                })
                .collect();
            for m in 0..N_MELS {
                let want: f64 = fb[m]
                    .iter()
                    .zip(&power)
                    .map(|(&w, &p)| f64::from(w) * p)
                    .sum();
                let have = f64::from(got[t * N_MELS + m]);
                assert!(
                    (have - want).abs() <= 1e-6 * want.abs() + 1e-12,
                    "t {t} m {m}: {have} vs {want}"
                );
            }
        }
    }

    #[test]
    fn mel_of_a_tone_peaks_in_its_band() {
        let wav = sine(1000.0, 16_000, 16_000, 0.5);
        let mel = MelSpectrogram::new().compute(&wav);
        let frame = &mel[50 * N_MELS..51 * N_MELS];
        let peak = (0..N_MELS)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        // Slaney band centres are linear below 1 kHz: centre m+1 is at (m+1) * 8000/41... the
        // 1 kHz tone falls in the band whose triangle peaks nearest 1 kHz.
        let fb = mel_filterbank();
        let bin = 1000 / 40; // 40 Hz per bin
        let best = (0..N_MELS)
            .max_by(|&a, &b| fb[a][bin].total_cmp(&fb[b][bin]))
            .unwrap();
        assert_eq!(peak, best);
        // Empty input still has one (silent) frame, as librosa's centred STFT.
        let empty = MelSpectrogram::new().compute(&[]);
        assert_eq!(empty, vec![0.0; N_MELS]);
    }

    #[test]
    fn partial_slices_short_input_gives_one_window() {
        for n in [0, 1, 160, 16_000, 25_599] {
            let (wav, mel) = compute_partial_slices(n, PARTIAL_RATE, MIN_COVERAGE);
            assert_eq!(wav, vec![0..25_600], "n = {n}");
            assert_eq!(mel, vec![0..160], "n = {n}");
        }
    }

    #[test]
    fn partial_slices_step_and_coverage() {
        // 1.3 windows/s: round(16000 / 1.3 / 160) = 77 frames = 12320 samples.
        let (wav, mel) = compute_partial_slices(45_360, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav, vec![0..25_600, 12_320..37_920, 24_640..50_240]);
        assert_eq!(mel, vec![0..160, 77..237, 154..314]);
        // The second window starts at 12320; it is kept once 0.75 of it is audio.
        let keep = 12_320 + 19_200; // coverage exactly 0.75
        let (wav, _) = compute_partial_slices(keep, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav.len(), 2);
        assert_eq!(wav[1], 12_320..37_920);
        let (wav, _) = compute_partial_slices(keep - 1, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav, vec![0..25_600]);
        // Every window is 160 frames, and wav slices are 160 samples per frame.
        let (wav, mel) = compute_partial_slices(480_000, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav.len(), 38);
        for (w, m) in wav.iter().zip(&mel) {
            assert_eq!(m.len(), PARTIAL_FRAMES);
            assert_eq!((w.start, w.end), (m.start * 160, m.end * 160));
        }
    }

    #[test]
    #[should_panic(expected = "min_coverage")]
    fn partial_slices_reject_zero_coverage() {
        let _ = compute_partial_slices(16_000, PARTIAL_RATE, 0.0);
    }

    /// Sub-sample time alignment: a resampled tone must match the same tone generated at
    /// 16 kHz, sample by sample, once rubato's documented 1/256-input-sample offset is
    /// accounted for. A misalignment of one input sample at 48 kHz would show an error of
    /// 2 pi 500 / 48000 * 0.4 = 0.026 here; without the offset the error would be 1e-4 to 6e-4.
    #[test]
    fn resampler_is_time_aligned_at_all_rates() {
        for rate in [
            8_000, 11_025, 12_000, 22_050, 24_000, 32_000, 44_100, 44_056, 48_000,
        ] {
            let n = rate as usize; // 1 s
            let input = sine(500.0, rate, n, 0.4);
            let out = resample_to_16k(&input, rate).unwrap();
            assert_eq!(out.len(), 16_000, "rate {rate}");
            let offset = 1.0 / (RESAMPLER_OVERSAMPLING as f64 * f64::from(rate));
            let want: Vec<f32> = (0..16_000)
                .map(|m| {
                    let t = f64::from(m) / 16_000.0 + offset;
                    (0.4 * (2.0 * std::f64::consts::PI * 500.0 * t).sin()) as f32
                })
                .collect();
            // Skip the edges, where the filter sees the signal's start and end.
            let err = out[1000..15_000]
                .iter()
                .zip(&want[1000..15_000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-5, "rate {rate}: max error {err}");
        }
    }

    /// The streaming resampler gives what the whole-signal one gives, whatever the piece sizes.
    #[test]
    fn stream_resampler_matches_whole_signal() {
        for rate in [8_000, 22_050, 44_100, 48_000, 16_000] {
            let input = sine(440.0, rate, rate as usize * 2, 0.3);
            let whole = resample_to_16k(&input, rate).unwrap();
            let mut stream = StreamResampler::new(rate).unwrap();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut size = 1;
            while pos < input.len() {
                let end = (pos + size).min(input.len());
                stream.push(&input[pos..end], &mut out).unwrap();
                pos = end;
                size = size * 7 % 3001 + 1;
            }
            // All but the last ~10 ms + half a sinc is out, sample for sample.
            assert!(
                out.len() + 400 >= whole.len(),
                "rate {rate}: {} of {}",
                out.len(),
                whole.len()
            );
            let err = out
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 1e-5, "rate {rate}: max difference {err}");
        }
        assert!(matches!(
            StreamResampler::new(7_999),
            Err(DecodeError::SampleRate(7_999))
        ));
        assert!(matches!(
            StreamResampler::new(96_000),
            Err(DecodeError::SampleRate(96_000))
        ));
    }

    #[test]
    fn resampler_lengths_round() {
        // round(n * 16000 / rate)
        assert_eq!(resample_to_16k(&[0.1; 441], 44_100).unwrap().len(), 160);
        assert_eq!(resample_to_16k(&[0.1; 3], 48_000).unwrap().len(), 1);
        assert_eq!(resample_to_16k(&[0.1; 1], 48_000).unwrap().len(), 0);
        assert_eq!(resample_to_16k(&[0.1; 5], 8_000).unwrap().len(), 10);
        assert_eq!(resample_to_16k(&[], 22_050).unwrap().len(), 0);
        let same = [0.25f32, -0.5];
        assert_eq!(resample_to_16k(&same, 16_000).unwrap(), same);
    }

    #[test]
    fn wav_header_repair_clamps_lengths() {
        // RIFF/WAVE, fmt (16 bytes), data claiming 0xFFFFFFFF with 4 bytes present.
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&u32::MAX.to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 1, 0]);
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.extend_from_slice(&[2, 0, 16, 0]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&u32::MAX.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 2, 0]);
        let mut fixed = wav.clone();
        repair_wav_header(&mut fixed).unwrap();
        assert_eq!(read_u32_le(&fixed, 4), Some(wav.len() as u32 - 8));
        assert_eq!(read_u32_le(&fixed, 40), Some(4));
        // A zero sample rate is refused before symphonia sees it.
        let mut zero_rate = wav.clone();
        zero_rate[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            repair_wav_header(&mut zero_rate),
            Err(DecodeError::SampleRate(0))
        ));
        // Not a WAV: untouched.
        let mut other = b"fLaC\0\0\0\x22".to_vec();
        repair_wav_header(&mut other).unwrap();
        assert_eq!(other, b"fLaC\0\0\0\x22");
    }
}
