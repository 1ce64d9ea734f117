//! The session's audio ring and its windows: 16 kHz samples in, a 1.6 s window cut every hop.
//!
//! Samples are kept only as long as a window may still need them ([`Windower::trim`]); a
//! window's arrival time is when its last sample arrived, even when the in-flight cap held the
//! cut back, so latency counts from the audio, not from the cut.

use std::collections::VecDeque;

use diglett_schemas::WINDOW_SAMPLES;
use diglett_schemas::pcm::to_i16;
use tokio::time::Instant;

/// A window ready to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Window number in the session.
    pub seq: u64,
    /// First sample (16 kHz, from the stream start).
    pub first: u64,
    /// When its last sample arrived.
    pub arrival: Instant,
}

/// The ring and the window clock of one session.
#[derive(Debug)]
pub(crate) struct Windower {
    /// Samples between window starts.
    hop: u64,
    /// 16 kHz samples from `ring_start` on.
    ring: VecDeque<i16>,
    ring_start: u64,
    /// 16 kHz samples received so far.
    total: u64,
    /// End (exclusive) of the next window to cut.
    next_end: u64,
    next_seq: u64,
    /// `(samples received after the frame, its arrival)` for frames whose audio may end a
    /// window not yet cut.
    arrivals: VecDeque<(u64, Instant)>,
}

impl Windower {
    /// Windows every `hop` samples (≥ 1).
    pub(crate) fn new(hop: u64) -> Self {
        Self {
            hop: hop.max(1),
            ring: VecDeque::new(),
            ring_start: 0,
            total: 0,
            next_end: WINDOW_SAMPLES as u64,
            next_seq: 0,
            arrivals: VecDeque::new(),
        }
    }

    /// Appends samples that arrived at `at`.
    pub(crate) fn push(&mut self, samples: &[f32], at: Instant) {
        if samples.is_empty() {
            return;
        }
        self.ring.extend(samples.iter().map(|&x| to_i16(x)));
        self.total += samples.len() as u64;
        self.arrivals.push_back((self.total, at));
    }

    /// Samples received so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Samples held in the ring.
    pub(crate) fn buffered(&self) -> usize {
        self.ring.len()
    }

    /// Whether the audio holds a window not cut yet.
    pub(crate) fn ready(&self) -> bool {
        self.total >= self.next_end
    }

    /// First sample of the next window to cut.
    pub(crate) fn next_first(&self) -> u64 {
        self.next_end - WINDOW_SAMPLES as u64
    }

    /// Cuts the next window (call only when [`Self::ready`]); `now` stands in for an arrival
    /// that is no longer known.
    pub(crate) fn cut(&mut self, now: Instant) -> Cut {
        let cut = Cut {
            seq: self.next_seq,
            first: self.next_first(),
            arrival: self.arrival_of(self.next_end, now),
        };
        self.advance();
        cut
    }

    /// Skips the next window (overload): its number is used up, no window is cut.
    pub(crate) fn skip(&mut self) {
        self.advance();
    }

    fn advance(&mut self) {
        self.next_end += self.hop;
        self.next_seq += 1;
    }

    /// When the sample just before `end` arrived; forgets frames before it.
    fn arrival_of(&mut self, end: u64, now: Instant) -> Instant {
        while self.arrivals.len() > 1 && self.arrivals.front().is_some_and(|&(t, _)| t < end) {
            self.arrivals.pop_front();
        }
        self.arrivals
            .front()
            .filter(|&&(t, _)| t >= end)
            .map_or(now, |&(_, at)| at)
    }

    /// The window starting at sample `first` as 16-bit little-endian PCM, or `None` if the ring
    /// no longer (or not yet) holds all of it.
    pub(crate) fn pcm(&self, first: u64) -> Option<Vec<u8>> {
        let from = usize::try_from(first.checked_sub(self.ring_start)?).ok()?;
        if from + WINDOW_SAMPLES > self.ring.len() {
            return None;
        }
        let mut pcm = Vec::with_capacity(WINDOW_SAMPLES * 2);
        for &s in self.ring.range(from..from + WINDOW_SAMPLES) {
            pcm.extend_from_slice(&s.to_le_bytes());
        }
        Some(pcm)
    }

    /// Drops the samples before `oldest_needed` (the first sample of the oldest window still
    /// waiting for a result, if any) that no future window needs either. Returns how many were
    /// dropped.
    pub(crate) fn trim(&mut self, oldest_needed: Option<u64>) -> usize {
        let next_first = self.next_first();
        let keep_from = oldest_needed.map_or(next_first, |p| p.min(next_first));
        let n = keep_from
            .saturating_sub(self.ring_start)
            .min(self.ring.len() as u64) as usize;
        self.ring.drain(..n);
        self.ring_start += n as u64;
        n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HOP: u64 = 8_000;

    #[tokio::test(start_paused = true)]
    async fn windows_every_hop_with_the_arrival_of_their_last_sample() {
        let mut w = Windower::new(HOP);
        let t0 = Instant::now();
        // 1.5 s: no window yet.
        w.push(&vec![0.1; 24_000], t0);
        assert!(!w.ready());
        tokio::time::advance(Duration::from_millis(100)).await;
        let t1 = Instant::now();
        // +1.0 s: windows [0, 1.6) and [0.5, 2.1) are complete, both ended by this frame.
        w.push(&vec![0.2; 16_000], t1);
        let a = w.cut(Instant::now());
        assert_eq!((a.seq, a.first, a.arrival), (0, 0, t1));
        let b = w.cut(Instant::now());
        assert_eq!((b.seq, b.first, b.arrival), (1, HOP, t1));
        assert!(!w.ready());
        let pcm = w.pcm(b.first).unwrap();
        assert_eq!(pcm.len(), WINDOW_SAMPLES * 2);
        // Sample 16 000 of window 1 is the first of the second frame.
        let at = |i: usize| i16::from_le_bytes([pcm[2 * i], pcm[2 * i + 1]]);
        assert_eq!(at(15_999), to_i16(0.1));
        assert_eq!(at(16_000), to_i16(0.2));
    }

    #[tokio::test(start_paused = true)]
    async fn skipped_windows_use_up_their_number_and_trim_keeps_what_is_needed() {
        let mut w = Windower::new(HOP);
        w.push(&vec![0.0; 25_600 + 2 * HOP as usize], Instant::now());
        w.skip();
        let c = w.cut(Instant::now());
        assert_eq!((c.seq, c.first), (1, HOP));
        // Window 1 still waits for its result: nothing before it may go.
        assert_eq!(w.trim(Some(c.first)), HOP as usize);
        assert!(w.pcm(c.first).is_some());
        assert!(w.pcm(0).is_none());
        // Once it is answered, the ring keeps only what window 2 needs.
        assert_eq!(w.trim(None), HOP as usize);
        assert_eq!(w.buffered(), 25_600);
        let d = w.cut(Instant::now());
        assert_eq!((d.seq, d.first), (2, 2 * HOP));
        assert_eq!(w.total(), 25_600 + 2 * HOP);
    }
}
