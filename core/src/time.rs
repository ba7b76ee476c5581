//! Time as an input: the host's monotonic clock, read by the host, passed in as `now`.
//!
//! The core never reads a clock. Every time-dependent method takes an [`Instant`], a count of
//! nanoseconds from an origin the host chooses (its process start, `performance.now()`'s
//! origin, `CLOCK_MONOTONIC`...). Arithmetic saturates; it never wraps or panics.
//!
//! Time that goes backwards is *clamped*: each state machine keeps a [`Monotonic`] guard and
//! treats `now` as `max(now, last_seen)`, so a host clock that steps back (or a NaN handed over
//! from JavaScript) can neither panic nor rewind a breaker's open period.

use core::time::Duration;
use serde::{Deserialize, Serialize};

/// A monotonic instant in nanoseconds since a host-chosen origin.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant ("never").
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` after the origin.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// An instant from milliseconds as a float (the JavaScript boundary).
    ///
    /// NaN, infinities and negative values are not instants: they map to [`Instant::ZERO`],
    /// which every state machine then clamps to the last instant it saw, so a broken host
    /// clock freezes time instead of corrupting state. Values past `u64::MAX` ns saturate.
    #[must_use]
    pub fn from_millis_f64(ms: f64) -> Instant {
        if !ms.is_finite() || ms <= 0.0 {
            return Instant::ZERO;
        }
        Instant(millis_f64_to_nanos(ms))
    }

    /// Milliseconds since the origin, as a float (the JavaScript boundary).
    #[must_use]
    pub fn as_millis_f64(self) -> f64 {
        nanos_to_millis_f64(self.0)
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self + nanos`, saturating at [`Instant::MAX`].
    #[must_use]
    pub const fn saturating_add_nanos(self, nanos: u64) -> Instant {
        Instant(self.0.saturating_add(nanos))
    }

    /// `self - d`, saturating at [`Instant::ZERO`].
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Nanoseconds from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub const fn nanos_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A duration's nanoseconds, saturating at `u64::MAX` (≈ 584 years).
#[must_use]
pub fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds (float) to nanoseconds, rounded to nearest, saturating; NaN and negatives give 0.
#[must_use]
pub fn millis_f64_to_nanos(ms: f64) -> u64 {
    let ns = (ms * 1_000_000.0).round();
    if ns.is_nan() || ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// Nanoseconds to milliseconds as a float.
#[must_use]
pub fn nanos_to_millis_f64(ns: u64) -> f64 {
    // Split so that whole milliseconds stay exact past 2^53 ns.
    (ns / 1_000_000) as f64 + (ns % 1_000_000) as f64 / 1_000_000.0
}

/// The clamp every state machine applies to its `now` inputs: time never goes backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Monotonic {
    last: Instant,
}

impl Monotonic {
    /// A guard that has seen nothing yet.
    #[must_use]
    pub const fn new() -> Monotonic {
        Monotonic {
            last: Instant::ZERO,
        }
    }

    /// `max(now, last_seen)`, remembering the result.
    #[inline]
    pub fn observe(&mut self, now: Instant) -> Instant {
        if now > self.last {
            self.last = now;
        }
        self.last
    }

    /// The latest instant observed.
    #[must_use]
    pub const fn last(&self) -> Instant {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_is_exact_for_whole_and_fractional_values() {
        for ms in [0.0, 1.0, 1.5, 1234.567891, 86_400_000.0 * 365.0] {
            let i = Instant::from_millis_f64(ms);
            assert!((i.as_millis_f64() - ms).abs() < 1e-6, "{ms}");
        }
    }

    #[test]
    fn broken_millis_map_to_zero_and_are_clamped() {
        let mut m = Monotonic::new();
        m.observe(Instant::from_nanos(5_000));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -0.0] {
            assert_eq!(
                m.observe(Instant::from_millis_f64(bad)),
                Instant::from_nanos(5_000)
            );
        }
        assert_eq!(Instant::from_millis_f64(1e300), Instant::MAX);
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Instant::MAX.saturating_add(Duration::from_secs(1)),
            Instant::MAX
        );
        assert_eq!(
            Instant::ZERO.saturating_sub(Duration::from_secs(1)),
            Instant::ZERO
        );
        assert_eq!(
            Instant::ZERO.saturating_duration_since(Instant::MAX),
            Duration::ZERO
        );
        assert_eq!(duration_nanos(Duration::MAX), u64::MAX);
    }
}
