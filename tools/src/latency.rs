//! Latency bookkeeping: which frame carried a window's last sample, and summary statistics.
//!
//! Window `seq` covers stream samples `seq · hop … seq · hop + 1.6 s` (README, "Timing"). The
//! client sends the stream in frames of [`crate::session::FRAME_SAMPLES`]; a window's result
//! cannot exist before the frame holding its last sample was sent, so its latency is measured
//! from that frame's send time to the result's arrival.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Window length in samples: 1.6 s at 16 kHz (the encoder's training window).
pub const WINDOW_SAMPLES: u64 = 25_600;

/// The windowing of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    /// Hop between windows (samples).
    pub hop: u64,
    /// Client frame (samples).
    pub frame: u64,
}

impl Windowing {
    /// `hop_ms` at 16 kHz, frames of `frame` samples.
    pub fn new(hop_ms: u32, frame: u64) -> Self {
        Self {
            hop: (u64::from(hop_ms) * 16).max(1),
            frame: frame.max(1),
        }
    }

    /// Windows complete once `samples` samples have been sent.
    pub fn windows_in(&self, samples: u64) -> u64 {
        if samples < WINDOW_SAMPLES {
            0
        } else {
            (samples - WINDOW_SAMPLES) / self.hop + 1
        }
    }

    /// The index of the frame that carries window `seq`'s last sample.
    pub fn last_frame(&self, seq: u64) -> u64 {
        (seq * self.hop + WINDOW_SAMPLES - 1) / self.frame
    }

    /// Latency of window `seq`'s result, which arrived at `at`: from the send time of the
    /// frame holding its last sample (`frames_sent[i]` = when frame `i` went out). `None` if
    /// that frame was never sent (a result the client cannot account for).
    pub fn latency(&self, seq: u64, frames_sent: &[Instant], at: Instant) -> Option<Duration> {
        let i = usize::try_from(self.last_frame(seq)).ok()?;
        frames_sent
            .get(i)
            .map(|&sent| at.saturating_duration_since(sent))
    }
}

/// A latency histogram in microseconds (1 µs to 1 h, 3 significant digits).
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|e| unreachable!("constant bounds are valid: {e}")),
        )
    }
}

impl LatencyHistogram {
    /// Records one latency (saturating at the histogram's bounds).
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds by construction, so `add` cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The summary, in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// Latency statistics in milliseconds (all 0 when `count` is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Observations.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Summary statistics of a small sample of seconds (mean, median, p90, max; nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondsSummary {
    /// Observations.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

impl SecondsSummary {
    /// Of `values` (NaNs ignored).
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: rank(0.5),
            p90: rank(0.9),
            max: v[v.len() - 1],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_their_last_frames() {
        // Hop 0.5 s, frames of 100 ms (1 600 samples).
        let w = Windowing::new(500, 1_600);
        assert_eq!(w.hop, 8_000);
        assert_eq!(w.windows_in(25_599), 0);
        assert_eq!(w.windows_in(25_600), 1);
        assert_eq!(w.windows_in(25_600 + 7_999), 1);
        assert_eq!(w.windows_in(25_600 + 8_000), 2);
        // Window 0 ends with sample 25 599, in frame 15 (samples 24 000..25 600).
        assert_eq!(w.last_frame(0), 15);
        // Window 1: 8 000..33 600 → last sample 33 599, frame 20.
        assert_eq!(w.last_frame(1), 20);
        // A window always becomes complete exactly with its last frame.
        for seq in 0..50 {
            let f = w.last_frame(seq);
            assert_eq!(w.windows_in((f + 1) * 1_600), seq + 1, "seq {seq}");
            assert_eq!(w.windows_in(f * 1_600), seq, "seq {seq}");
        }
        // An odd frame size (50 ms + 1) and hop 0.25 s.
        let w = Windowing::new(250, 801);
        assert_eq!(w.last_frame(3), (3 * 4_000 + 25_599) / 801);
    }

    #[test]
    fn latency_counts_from_the_frame_with_the_last_sample() {
        let w = Windowing::new(500, 1_600);
        let t0 = Instant::now();
        // Frame i sent at t0 + i × 100 ms.
        let sent: Vec<Instant> = (0..21)
            .map(|i| t0 + Duration::from_millis(100 * i))
            .collect();
        // Window 0's last frame is 15 (sent at 1.5 s); its result at 1.62 s → 120 ms.
        let at = t0 + Duration::from_millis(1_620);
        assert_eq!(w.latency(0, &sent, at), Some(Duration::from_millis(120)));
        // Window 1 needs frame 20 (2.0 s).
        let at = t0 + Duration::from_millis(2_050);
        assert_eq!(w.latency(1, &sent, at), Some(Duration::from_millis(50)));
        // Window 2 needs frame 25, never sent.
        assert_eq!(w.latency(2, &sent, at), None);
        // A result "before" its frame (clock oddities) is 0, not a panic.
        assert_eq!(w.latency(1, &sent, t0), Some(Duration::ZERO));
    }

    #[test]
    fn histogram_summary() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.summary().count, 0);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let mut other = LatencyHistogram::default();
        other.record(Duration::from_secs(2));
        h.merge(&other);
        let s = h.summary();
        assert_eq!(s.count, 101);
        assert!((s.p50 - 51.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 2_000.0).abs() < 2.0, "{s:?}");
    }

    #[test]
    fn seconds_summary() {
        let s = SecondsSummary::of(&[3.0, 1.0, 2.0, f64::NAN, 4.0]);
        assert_eq!(s.count, 4);
        assert_eq!((s.p50, s.p90, s.max), (2.0, 4.0, 4.0));
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert_eq!(SecondsSummary::of(&[]).count, 0);
    }
}
