//! Engine time.
//!
//! The engine never reads a clock. Callers pass an [`Instant`] (nanoseconds since an arbitrary
//! epoch: the packet timestamp in `ctfw replay`; in the data plane the TSC, read and converted
//! once per polling round and shared by every burst of the round and the sweep). Inside the
//! table, expiry is kept as a 32-bit [`Tick`] of 1/256 s so that an entry's deadline costs four
//! bytes; ticks wrap every 194 days and are compared with wrapping arithmetic, which is exact as
//! long as every deadline lies less than 97 days from `now` (timeouts are capped at
//! [`MAX_TIMEOUT_SECS`] by configuration, and the sweeper revisits every entry far more often
//! than that).

use core::fmt;

/// Ticks per second of [`Tick`]. A power of two, so conversions are shifts.
pub const TICKS_PER_SEC: u32 = 256;

/// The longest timeout the engine accepts (30 days): well inside the wrap-safe range of [`Tick`].
pub const MAX_TIMEOUT_SECS: u32 = 30 * 24 * 3600;

/// A point in time, in nanoseconds since an arbitrary epoch chosen by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// Nanoseconds since the epoch.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// This instant as a (wrapping) tick.
    #[inline]
    pub const fn tick(self) -> Tick {
        // ns * 256 / 1e9 == ns * 32 / 125_000_000; the u128 keeps it exact for any u64.
        Tick(((self.0 as u128 * 32) / 125_000_000) as u32)
    }
}

/// A wrapping timestamp of 1/256 s, as stored in table entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tick(pub u32);

impl Tick {
    /// The tick `d` after `self`.
    #[inline]
    pub const fn after(self, d: Ticks) -> Tick {
        Tick(self.0.wrapping_add(d.0))
    }

    /// Whether `self` lies strictly after `other` (wrapping comparison).
    #[inline]
    pub const fn is_after(self, other: Tick) -> bool {
        (self.0.wrapping_sub(other.0) as i32) > 0
    }

    /// Time left from `now` until `self`, or zero if `self` has passed.
    #[inline]
    pub const fn remaining(self, now: Tick) -> Ticks {
        let d = self.0.wrapping_sub(now.0) as i32;
        Ticks(if d > 0 { d as u32 } else { 0 })
    }
}

/// A duration in ticks (1/256 s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticks(pub u32);

impl Ticks {
    /// `secs` whole seconds. Callers validate `secs <= MAX_TIMEOUT_SECS`.
    #[inline]
    pub const fn from_secs(secs: u32) -> Ticks {
        Ticks(secs.saturating_mul(TICKS_PER_SEC))
    }

    /// Whole seconds, rounded down (as Linux prints `timeout / HZ`).
    #[inline]
    pub const fn whole_secs(self) -> u32 {
        self.0 / TICKS_PER_SEC
    }
}

impl fmt::Display for Ticks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.whole_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_to_tick_is_exact_on_second_boundaries() {
        assert_eq!(Instant(1_000_000_000).tick(), Tick(256));
        assert_eq!(Instant(2_500_000_000).tick(), Tick(640));
        assert_eq!(Instant(3_906_249).tick(), Tick(0));
        assert_eq!(Instant(3_906_250).tick(), Tick(1));
    }

    #[test]
    fn wrapping_comparison_survives_the_wrap() {
        let near_end = Tick(u32::MAX - 10);
        let later = near_end.after(Ticks(100));
        assert!(later.is_after(near_end));
        assert!(!near_end.is_after(later));
        assert_eq!(later.remaining(near_end), Ticks(100));
        assert_eq!(near_end.remaining(later), Ticks(0));
    }

    #[test]
    fn whole_seconds_round_down() {
        assert_eq!(Ticks(255).whole_secs(), 0);
        assert_eq!(Ticks::from_secs(120).whole_secs(), 120);
        assert_eq!(Ticks(Ticks::from_secs(120).0 - 1).whole_secs(), 119);
    }
}
