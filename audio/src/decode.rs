//! Decoding uploads: WAV, FLAC, MP3 or Ogg/Vorbis bytes → mono `f32` at 16 kHz
//! ([`diglett_schemas::SAMPLE_RATE`]): mean downmix, windowed-sinc resampling
//! ([`crate::resample`]), hard limits on length and sample rate, and repairs of the WAV headers
//! that streaming recorders leave behind. Edge cases are tested in `tests/decode.rs`.

use std::io::{Cursor, ErrorKind};
use std::panic::{AssertUnwindSafe, catch_unwind};

use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::conv::FromSample;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::sample::Sample;

use crate::resample::resample_to_16k;

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

/// Decodes a WAV, FLAC, MP3 or Ogg/Vorbis file to mono `f32` samples at [`diglett_schemas::SAMPLE_RATE`].
///
/// The format is probed from the content, never from a name. Any sample rate from
/// [`MIN_INPUT_SAMPLE_RATE`] to [`MAX_INPUT_SAMPLE_RATE`] and any channel count is accepted:
/// channels are averaged, then the signal is resampled with a 256-tap Blackman-Harris² windowed
/// sinc (rubato) by [`resample_to_16k`], time-aligned so that output sample `m` is the input at
/// time `m / 16000` s (to 1/256 of an input sample), and of length `round(n * 16000 / rate)`. 16 kHz input is not resampled, so 16-bit PCM comes out as
/// exactly `pcm / 32768` (symphonia's integer-to-float conversion divides by 2^(bits-1)).
///
/// The samples are finite and within ±1 (clamped after resampling).
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
        // Within ±1 like every sample the models see: a float file may hold larger values, and
        // the sinc resampler overshoots a full-scale edge by up to ~10 % (found by the
        // `audio_decode` fuzz target: full-scale 8 kHz PCM came out at 1.09).
        resample_to_16k(&samples, rate).map(|mut out| {
            for x in &mut out {
                *x = x.clamp(-1.0, 1.0);
            }
            out
        })
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

/// Decodes to mono at the file's own rate. Returns the samples and that rate.
fn decode_native(bytes: &[u8], opts: &DecodeOptions) -> Result<(Vec<f32>, u32), DecodeError> {
    check_ogg_streams(bytes)?;
    check_ogg_comments(bytes)?;
    let mut owned = bytes.to_vec();
    repair_wav_header(&mut owned)?;
    skip_flac_metadata(&mut owned);
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
            b"fmt " => fix_extensible_mask(buf, body, len as usize)?,
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

/// `WAVE_FORMAT_EXTENSIBLE` with a channel mask whose bit count differs from the channel
/// count: symphonia 0.5 "fixes" the mask with shifts that overflow (a panic with overflow
/// checks, a garbage mask without) when the count is 32 or more or the mask's top bit is set —
/// found by the `audio_decode` fuzz target. The channels are averaged anyway, so their
/// positions do not matter: the mask becomes the first `channels` positions. More than 32
/// channels cannot have positions at all and are refused.
fn fix_extensible_mask(buf: &mut [u8], body: usize, len: usize) -> Result<(), DecodeError> {
    const EXTENSIBLE: u16 = 0xFFFE;
    let u16_at = |buf: &[u8], at: usize| {
        buf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    if len < 24 || u16_at(buf, body) != Some(EXTENSIBLE) {
        return Ok(());
    }
    let (Some(channels), Some(mask)) = (u16_at(buf, body + 2), read_u32_le(buf, body + 20)) else {
        return Ok(());
    };
    if channels > 32 {
        return Err(DecodeError::Unsupported(format!(
            "{channels} channels in a WAVE_FORMAT_EXTENSIBLE file (at most 32)"
        )));
    }
    if mask.count_ones() != u32::from(channels) {
        let fixed = if channels == 32 {
            u32::MAX
        } else {
            (1u32 << channels) - 1
        };
        buf[body + 20..body + 24].copy_from_slice(&fixed.to_le_bytes());
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

/// FLAC metadata blocks the decoder has no use for (application data, Vorbis comments, cue
/// sheets, pictures) become padding, which symphonia skips without reading. Why: symphonia 0.5
/// allocates a Vorbis comment's stated length before reading it, so a 3 KB upload claiming a
/// 3.5 GB comment made it allocate 3.5 GB (found by the `audio_decode` fuzz target).
fn skip_flac_metadata(buf: &mut [u8]) {
    const PADDING: u8 = 1;
    if !buf.starts_with(b"fLaC") {
        return;
    }
    let mut pos = 4usize;
    while let Some(header) = buf.get(pos..pos + 4) {
        let (last, kind) = (header[0] & 0x80, header[0] & 0x7f);
        let len =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        if matches!(kind, 2 | 4 | 5 | 6) {
            buf[pos] = last | PADDING;
        }
        if last != 0 {
            break;
        }
        pos += 4 + len;
    }
}

/// An Ogg file's Vorbis (or Opus) comment header whose stated lengths run past the end of the
/// file is refused before symphonia reads it: it allocates each stated length first (the FLAC
/// case of [`skip_flac_metadata`], here inside an Ogg packet, which cannot be rewritten without
/// redoing page checksums). Bounding by the whole file's length keeps every allocation below
/// the upload's own size.
fn check_ogg_comments(bytes: &[u8]) -> Result<(), DecodeError> {
    if !bytes.starts_with(b"OggS") {
        return Ok(());
    }
    for marker in [&b"\x03vorbis"[..], b"OpusTags"] {
        let mut from = 0usize;
        while let Some(i) = bytes[from..]
            .windows(marker.len())
            .position(|w| w == marker)
        {
            let start = from + i + marker.len();
            if !comment_lengths_fit(&bytes[start..]) {
                return Err(DecodeError::Corrupt(
                    "a comment header states more bytes than the file holds".into(),
                ));
            }
            from = start;
        }
    }
    Ok(())
}

/// Whether the vendor string and every comment of a comment header (`u32` lengths, little
/// endian) fit in `rest`; a header cut short is left to symphonia to report.
fn comment_lengths_fit(rest: &[u8]) -> bool {
    let limit = rest.len() as u64;
    let at = |pos: u64| usize::try_from(pos).ok().and_then(|p| read_u32_le(rest, p));
    let Some(vendor) = at(0) else { return true };
    let mut pos = 4 + u64::from(vendor);
    let Some(count) = at(pos) else {
        return pos <= limit;
    };
    pos += 4;
    for _ in 0..count {
        let Some(len) = at(pos) else {
            return pos <= limit;
        };
        pos += 4 + u64::from(len);
        if pos > limit {
            return false;
        }
    }
    true
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
