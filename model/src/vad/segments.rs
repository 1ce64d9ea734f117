//! Speech segments from chunk probabilities, the way silero-vad's `get_speech_timestamps`
//! finds them, and helpers built on them.

use std::ops::Range;

use super::{CHUNK, ms_to_samples};

/// Segmentation parameters, as in silero-vad's `get_speech_timestamps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadParams {
    /// Speech starts at a chunk with probability ≥ this.
    pub threshold: f32,
    /// Speech may end at a chunk with probability < this (hysteresis; silero-vad's default is
    /// `threshold − 0.15`).
    pub neg_threshold: f32,
    /// Segments not longer than this are dropped.
    pub min_speech_ms: u32,
    /// Speech ends only after this long below `neg_threshold`; shorter gaps are bridged.
    pub min_silence_ms: u32,
    /// Added on each side of a segment (halved between segments closer than twice this).
    pub speech_pad_ms: u32,
}

impl Default for VadParams {
    /// silero-vad's defaults.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
        }
    }
}

/// Streaming hysteresis: feed chunk probabilities one at a time and get each speech segment (in
/// samples, *before* padding) as soon as it closes. [`speech_segments`] is this plus padding.
#[derive(Debug, Clone)]
pub struct SpeechSegmenter {
    params: VadParams,
    /// Chunks seen so far.
    chunks: usize,
    /// Start of the open segment, if speech is on.
    start: Option<usize>,
    /// Where the current run below `neg_threshold` began (silero-vad's `temp_end`).
    silence_from: Option<usize>,
}

impl SpeechSegmenter {
    /// A segmenter at the start of a stream.
    pub fn new(params: VadParams) -> Self {
        Self {
            params,
            chunks: 0,
            start: None,
            silence_from: None,
        }
    }

    /// Feeds the next chunk's probability; returns a segment (sample range) if one just closed.
    pub fn push(&mut self, p: f32) -> Option<Range<usize>> {
        let now = self.chunks * CHUNK;
        self.chunks += 1;
        let params = &self.params;
        if p >= params.threshold {
            self.silence_from = None;
            if self.start.is_none() {
                self.start = Some(now);
            }
            return None;
        }
        let start = self.start?;
        if p < params.neg_threshold {
            let silence_from = *self.silence_from.get_or_insert(now);
            if now - silence_from >= ms_to_samples(params.min_silence_ms) {
                self.start = None;
                self.silence_from = None;
                if silence_from - start > ms_to_samples(params.min_speech_ms) {
                    return Some(start..silence_from);
                }
            }
        }
        None
    }

    /// Ends the stream at `n_samples`: closes an open segment there if it is long enough.
    pub fn finish(&mut self, n_samples: usize) -> Option<Range<usize>> {
        let start = self.start.take()?;
        self.silence_from = None;
        (n_samples.saturating_sub(start) > ms_to_samples(self.params.min_speech_ms))
            .then_some(start..n_samples)
    }
}

/// Speech segments, in samples at 16 kHz, from per-chunk probabilities (as from
/// [`Vad::probabilities`](super::Vad::probabilities)), the way silero-vad's `get_speech_timestamps` finds them (without its
/// `max_speech_duration_s` split). The audio is taken to be `probs.len() * 512` samples long;
/// clamp to the real length if it had a partial last chunk ([`trim_silences`] does).
pub fn speech_segments(probs: &[f32], params: &VadParams) -> Vec<Range<usize>> {
    let n_samples = probs.len() * CHUNK;
    let mut segmenter = SpeechSegmenter::new(*params);
    let mut segments: Vec<Range<usize>> = probs.iter().filter_map(|&p| segmenter.push(p)).collect();
    segments.extend(segmenter.finish(n_samples));
    pad_segments(
        &mut segments,
        n_samples,
        ms_to_samples(params.speech_pad_ms),
    );
    segments
}

/// silero-vad's padding: `pad` samples on each side, except that a gap shorter than `2 * pad`
/// between two segments is split evenly between them.
fn pad_segments(segments: &mut [Range<usize>], n_samples: usize, pad: usize) {
    if let Some(first) = segments.first_mut() {
        first.start = first.start.saturating_sub(pad);
    }
    for i in 0..segments.len() {
        if i + 1 < segments.len() {
            let gap = segments[i + 1].start - segments[i].end;
            if gap < 2 * pad {
                segments[i].end += gap / 2;
                segments[i + 1].start -= gap / 2;
            } else {
                segments[i].end = (segments[i].end + pad).min(n_samples);
                segments[i + 1].start -= pad;
            }
        } else {
            segments[i].end = (segments[i].end + pad).min(n_samples);
        }
    }
}

/// The speech segments of `wav` concatenated (e.g. enrollment audio with long silences removed).
/// Segments are clamped to `wav`.
pub fn trim_silences(wav: &[f32], segments: &[Range<usize>]) -> Vec<f32> {
    let mut out = Vec::with_capacity(segments.iter().map(|s| s.len()).sum());
    for segment in segments {
        let end = segment.end.min(wav.len());
        out.extend_from_slice(&wav[segment.start.min(end)..end]);
    }
    out
}

/// Fraction of chunks with probability ≥ `threshold` (0 for no chunks).
pub fn voiced_fraction(probs: &[f32], threshold: f32) -> f32 {
    if probs.is_empty() {
        return 0.0;
    }
    probs.iter().filter(|&&p| p >= threshold).count() as f32 / probs.len() as f32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vad::SAMPLE_RATE;

    /// `ms` of probability `p`, as chunks.
    fn run(p: f32, ms: usize) -> Vec<f32> {
        vec![p; (ms * SAMPLE_RATE / 1000).div_ceil(CHUNK)]
    }

    fn concat(parts: &[Vec<f32>]) -> Vec<f32> {
        parts.concat()
    }

    fn unpadded() -> VadParams {
        VadParams {
            speech_pad_ms: 0,
            ..VadParams::default()
        }
    }

    #[test]
    fn starts_at_threshold_and_ends_below_neg_threshold() {
        // 10 chunks of silence, 20 of speech, then 0.4 (between the thresholds: still speech),
        // then silence long enough to end.
        let probs = concat(&[vec![0.1; 10], vec![0.5; 20], vec![0.4; 10], vec![0.1; 10]]);
        let segments = speech_segments(&probs, &unpadded());
        assert_eq!(segments, vec![10 * CHUNK..40 * CHUNK]);
    }

    #[test]
    fn just_below_threshold_never_starts() {
        let probs = vec![0.499; 100];
        assert!(speech_segments(&probs, &VadParams::default()).is_empty());
    }

    #[test]
    fn min_speech_drops_short_blips() {
        // 200 ms of speech (7 chunks = 224 ms ≤ 250 ms) is dropped; 320 ms is kept.
        let probs = concat(&[
            run(0.0, 500),
            run(0.9, 200),
            run(0.0, 500),
            run(0.9, 320),
            run(0.0, 500),
        ]);
        let segments = speech_segments(&probs, &unpadded());
        assert_eq!(segments.len(), 1);
        let start = (run(0.0, 500).len() * 2 + run(0.9, 200).len()) * CHUNK;
        assert_eq!(segments[0], start..start + run(0.9, 320).len() * CHUNK);
    }

    #[test]
    fn min_silence_merges_short_gaps() {
        // A 64 ms gap (< 100 ms) is bridged; a 160 ms gap splits.
        let speech = run(0.9, 400);
        let short = concat(&[speech.clone(), vec![0.0; 2], speech.clone(), vec![0.0; 20]]);
        assert_eq!(speech_segments(&short, &unpadded()).len(), 1);
        let long = concat(&[speech.clone(), vec![0.0; 5], speech.clone(), vec![0.0; 20]]);
        assert_eq!(speech_segments(&long, &unpadded()).len(), 2);
    }

    #[test]
    fn speech_at_the_end_is_closed() {
        let probs = concat(&[vec![0.0; 10], vec![0.9; 20]]);
        assert_eq!(
            speech_segments(&probs, &unpadded()),
            vec![10 * CHUNK..30 * CHUNK]
        );
    }

    #[test]
    fn padding_is_clamped_and_split_between_close_segments() {
        let params = VadParams {
            min_silence_ms: 30,
            ..VadParams::default()
        };
        let pad = ms_to_samples(params.speech_pad_ms); // 480 samples
        // Segments at chunks 0..20 and 22..40: gap 1024 samples ≥ 2 * pad → full padding.
        let probs = concat(&[vec![0.9; 20], vec![0.0; 2], vec![0.9; 18]]);
        let segments = speech_segments(&probs, &params);
        assert_eq!(
            segments,
            vec![0..20 * CHUNK + pad, 22 * CHUNK - pad..40 * CHUNK]
        );
        // With 40 ms padding the same 1024-sample gap (< 1280) is split evenly.
        let params = VadParams {
            speech_pad_ms: 40,
            ..params
        };
        let segments = speech_segments(&probs, &params);
        assert_eq!(segments, vec![0..21 * CHUNK, 21 * CHUNK..40 * CHUNK]);
    }

    #[test]
    fn streaming_segmenter_matches_unpadded_offline() {
        let probs = concat(&[
            run(0.0, 300),
            run(0.9, 600),
            run(0.2, 90),
            run(0.9, 300),
            run(0.1, 400),
        ]);
        let mut segmenter = SpeechSegmenter::new(unpadded());
        let mut streamed: Vec<_> = probs.iter().filter_map(|&p| segmenter.push(p)).collect();
        streamed.extend(segmenter.finish(probs.len() * CHUNK));
        assert_eq!(streamed, speech_segments(&probs, &unpadded()));
        assert_eq!(streamed.len(), 1);
    }

    #[test]
    fn trims_and_measures() {
        let wav: Vec<f32> = (0..100).map(|i| i as f32).collect();
        assert_eq!(
            trim_silences(&wav, &[2..4, 90..120]),
            vec![
                2.0, 3.0, 90.0, 91.0, 92.0, 93.0, 94.0, 95.0, 96.0, 97.0, 98.0, 99.0
            ]
        );
        assert_eq!(voiced_fraction(&[0.1, 0.5, 0.9, 0.2], 0.5), 0.5);
        assert_eq!(voiced_fraction(&[], 0.5), 0.0);
    }
}
