//! Windows published and waiting for their results: deadlines, one retry, and the ordered
//! release of finished windows.
//!
//! A window without a result by its deadline is re-published once with a new deadline, then
//! given up (dropped). Results may arrive in any order; [`InFlight::pop_finished`] releases
//! windows strictly in sequence, so the client sees them in order.

use std::collections::BTreeMap;
use std::time::Duration;

use diglett_schemas::{ErrorKind, WindowResult};
use tokio::time::Instant;

/// How a window ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// A worker answered (possibly with an error result).
    Result(Box<WindowResult>),
    /// No answer even after the retry.
    Dropped,
}

/// A published window waiting for its result.
#[derive(Debug)]
struct Pending {
    /// First sample (16 kHz, from the stream start).
    first: u64,
    /// When its last sample arrived.
    arrival: Instant,
    deadline: Instant,
    retried: bool,
    outcome: Option<Outcome>,
}

/// A window released in order by [`InFlight::pop_finished`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    /// Its number.
    pub seq: u64,
    /// When its last sample arrived.
    pub arrival: Instant,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the deadlines due now ask for ([`InFlight::on_deadlines`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    /// `(seq, first sample)` of windows to publish again.
    pub retry: Vec<(u64, u64)>,
    /// Windows given up now.
    pub given_up: u64,
}

/// The session's windows in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    pending: BTreeMap<u64, Pending>,
    timeout: Duration,
    max: usize,
}

impl InFlight {
    /// At most `max` windows waiting at once, each given `timeout` per attempt.
    pub(crate) fn new(max: usize, timeout: Duration) -> Self {
        Self {
            pending: BTreeMap::new(),
            timeout,
            max: max.max(1),
        }
    }

    /// Windows still waiting for a result.
    pub(crate) fn waiting(&self) -> usize {
        self.pending
            .values()
            .filter(|p| p.outcome.is_none())
            .count()
    }

    /// Whether another window may be published.
    pub(crate) fn has_slot(&self) -> bool {
        self.waiting() < self.max
    }

    /// Nothing is waiting or waiting to be released.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// A window was published at `now`.
    pub(crate) fn insert(&mut self, seq: u64, first: u64, arrival: Instant, now: Instant) {
        self.pending.insert(
            seq,
            Pending {
                first,
                arrival,
                deadline: now + self.timeout,
                retried: false,
                outcome: None,
            },
        );
    }

    /// A worker's result. Late duplicates and results of windows already given up are
    /// ignored, and so is the "expired in the queue" answer to the first copy of a window that
    /// was re-published: the second copy is still on its way.
    pub(crate) fn on_result(&mut self, r: WindowResult) {
        let Some(p) = self.pending.get_mut(&r.seq) else {
            return;
        };
        if p.outcome.is_some() || (p.retried && expired(&r)) {
            return;
        }
        p.outcome = Some(Outcome::Result(Box::new(r)));
    }

    /// The windows still waiting for an answer.
    fn unanswered(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values().filter(|p| p.outcome.is_none())
    }

    /// The earliest deadline of a waiting window.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.unanswered().map(|p| p.deadline).min()
    }

    /// Applies the deadlines due at `now`: first misses are retried (with a new deadline),
    /// second misses are dropped.
    pub(crate) fn on_deadlines(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        for (&seq, p) in &mut self.pending {
            if p.outcome.is_some() || p.deadline > now {
                continue;
            }
            if p.retried {
                p.outcome = Some(Outcome::Dropped);
                due.given_up += 1;
            } else {
                p.retried = true;
                p.deadline = now + self.timeout;
                due.retry.push((seq, p.first));
            }
        }
        due
    }

    /// The first sample of the oldest window still waiting (its audio must stay in the ring).
    pub(crate) fn oldest_waiting_first(&self) -> Option<u64> {
        self.unanswered().map(|p| p.first).min()
    }

    /// The next window in sequence, once it has finished; `None` while the head still waits.
    pub(crate) fn pop_finished(&mut self) -> Option<Finished> {
        let entry = self.pending.first_entry()?;
        entry.get().outcome.as_ref()?;
        let (seq, p) = entry.remove_entry();
        Some(Finished {
            seq,
            arrival: p.arrival,
            outcome: p.outcome?,
        })
    }
}

/// Whether a worker answered that the window expired in its queue before being computed.
pub(crate) fn expired(r: &WindowResult) -> bool {
    r.error
        .as_ref()
        .is_some_and(|e| e.kind == ErrorKind::Expired)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use diglett_schemas::{Label, WindowError};

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(2000);

    fn result(seq: u64, label: Label) -> WindowResult {
        WindowResult::bare("s", seq, 0.0, label)
    }

    fn expired_result(seq: u64) -> WindowResult {
        WindowResult {
            error: Some(WindowError {
                kind: ErrorKind::Expired,
                message: "late".into(),
            }),
            ..result(seq, Label::Error)
        }
    }

    /// Room for `capacity` windows, windows 0 and 1 (half a window apart) sent now.
    fn two_waiting(capacity: usize) -> (InFlight, Instant) {
        let mut f = InFlight::new(capacity, TIMEOUT);
        let now = Instant::now();
        f.insert(0, 0, now, now);
        f.insert(1, 8000, now, now);
        (f, now)
    }

    fn seqs(f: &mut InFlight) -> Vec<u64> {
        std::iter::from_fn(|| f.pop_finished())
            .map(|x| x.seq)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn results_are_released_in_order_whatever_order_they_arrive_in() {
        let mut f = InFlight::new(8, TIMEOUT);
        let now = Instant::now();
        for seq in 0..4 {
            f.insert(seq, seq * 8000, now, now);
        }
        f.on_result(result(2, Label::Speaker));
        f.on_result(result(1, Label::Silence));
        assert!(f.pop_finished().is_none(), "window 0 still waits");
        f.on_result(result(0, Label::Unknown));
        // A late duplicate changes nothing.
        f.on_result(result(1, Label::Speaker));
        let got: Vec<_> = std::iter::from_fn(|| f.pop_finished()).collect();
        assert_eq!(got.iter().map(|x| x.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(matches!(&got[1].outcome, Outcome::Result(r) if r.label == Label::Silence));
        assert_eq!(f.waiting(), 1);
        assert_eq!(f.oldest_waiting_first(), Some(3 * 8000));
        assert!(!f.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_deadline_retries_once_then_drops() {
        let (mut f, t0) = two_waiting(8);
        assert_eq!(f.next_deadline(), Some(t0 + TIMEOUT));
        tokio::time::advance(TIMEOUT).await;
        let due = f.on_deadlines(Instant::now());
        assert_eq!(due.retry, [(0, 0), (1, 8000)]);
        assert_eq!(due.given_up, 0);
        assert_eq!(f.next_deadline(), Some(t0 + 2 * TIMEOUT));
        // The first copy of window 0 expired in a worker's queue: the retry is still coming.
        f.on_result(expired_result(0));
        // Window 1's retry is answered.
        f.on_result(result(1, Label::Speaker));
        assert!(f.pop_finished().is_none());
        tokio::time::advance(TIMEOUT).await;
        let due = f.on_deadlines(Instant::now());
        assert_eq!((due.retry.len(), due.given_up), (0, 1));
        let got: Vec<_> = std::iter::from_fn(|| f.pop_finished()).collect();
        assert_eq!(got[0].outcome, Outcome::Dropped);
        assert!(matches!(&got[1].outcome, Outcome::Result(r) if r.label == Label::Speaker));
        assert!(f.is_empty());
        assert_eq!(f.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_answer_to_a_window_never_retried_finishes_it() {
        let (mut f, _) = two_waiting(2);
        assert!(!f.has_slot());
        f.on_result(expired_result(0));
        assert!(f.has_slot());
        assert_eq!(seqs(&mut f), [0]);
    }
}
