//! The session's options turned into decision parameters, in both directions of the bus.
//!
//! The gateway turns a client's `start` options into the wire's
//! [`diglett_schemas::DecisionParams`] ([`wire_params`]); the worker turns those, with the number
//! of enrolled speakers, into the [`DecisionParams`] it labels with ([`resolve`]). Both steps
//! live here so the rule that labels a window can be read in one place.

use diglett_schemas::DecisionParams as WireParams;

use crate::scoring::DecisionParams;

/// A session's decision options as a client gives them (`start.options`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionOptions {
    /// Acceptance threshold; `None`: the default.
    pub threshold: Option<f32>,
    /// VAD gate; `None`: the default.
    pub min_voiced: Option<f32>,
    /// Whether `overlap` may be reported at all.
    pub overlap: bool,
}

/// The wire parameters a session sends with each window.
///
/// Overlap detection is opt-in: with two similar enrolled voices the pair-fit rule labels many
/// single-speaker windows `overlap` (`docs/decision.md`), and a false overlap is worse for a
/// client than a missed one. Switched off, both overlap rules get the values of
/// [`DecisionParams::without_overlap`].
pub fn wire_params(opts: &SessionOptions) -> WireParams {
    let mut p = WireParams {
        threshold: opts.threshold,
        min_voiced: opts.min_voiced,
        ..WireParams::default()
    };
    if !opts.overlap {
        let off = DecisionParams::default().without_overlap();
        p.overlap_min = Some(off.overlap_min);
        p.overlap_fit = Some(off.overlap_fit);
    }
    p
}

/// A wire parameter that no rule can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParam(pub &'static str);

impl std::fmt::Display for InvalidParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decision parameter {} is NaN", self.0)
    }
}

impl std::error::Error for InvalidParam {}

/// The parameters a worker labels a window with: the data-chosen defaults, the overlap rule as
/// strict as `n_enrolled` speakers need ([`DecisionParams::for_enrolled`]), then the request's
/// explicit values, which win. +∞ is meaningful (it switches an overlap rule off); NaN never is.
pub fn resolve(wire: &WireParams, n_enrolled: usize) -> Result<DecisionParams, InvalidParam> {
    let mut params = DecisionParams::default().for_enrolled(n_enrolled);
    for (name, value, field) in [
        ("threshold", wire.threshold, &mut params.threshold),
        ("overlap_min", wire.overlap_min, &mut params.overlap_min),
        (
            "overlap_margin",
            wire.overlap_margin,
            &mut params.overlap_margin,
        ),
        (
            "overlap_balance",
            wire.overlap_balance,
            &mut params.overlap_balance,
        ),
        ("overlap_fit", wire.overlap_fit, &mut params.overlap_fit),
        ("min_voiced", wire.min_voiced, &mut params.min_voiced),
    ] {
        if let Some(v) = value {
            if v.is_nan() {
                return Err(InvalidParam(name));
            }
            *field = v;
        }
    }
    Ok(params)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_off_unless_asked_for() {
        let off = resolve(&wire_params(&SessionOptions::default()), 2).unwrap();
        assert_eq!(off, DecisionParams::default().without_overlap());
        let on = SessionOptions {
            overlap: true,
            ..SessionOptions::default()
        };
        assert_eq!(
            resolve(&wire_params(&on), 2).unwrap(),
            DecisionParams::default()
        );
    }

    #[test]
    fn explicit_values_win_over_the_speaker_count_rule() {
        let wire = WireParams {
            threshold: Some(0.5),
            overlap_balance: Some(0.1),
            ..WireParams::default()
        };
        let p = resolve(&wire, 4).unwrap();
        assert_eq!(p.threshold, 0.5);
        assert_eq!(p.overlap_balance, 0.1);
        assert_eq!(
            p.overlap_fit,
            DecisionParams::default().for_enrolled(4).overlap_fit
        );
        let nan = WireParams {
            min_voiced: Some(f32::NAN),
            ..WireParams::default()
        };
        assert_eq!(resolve(&nan, 1), Err(InvalidParam("min_voiced")));
    }
}
