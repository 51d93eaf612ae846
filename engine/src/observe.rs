//! What the engine records for operators while packets pass: per-connection accounting
//! (`nf_conntrack_acct`), connection events (`conntrack -E`) and the drop log (iptables `LOG`,
//! nftables `log`). The types here are what the control plane reads; the pipeline fills them.
//!
//! Everything is bounded and allocated when the engine is built: accounting is a parallel
//! array of one [`Acct`] per pool slot (only when [`EngineConfig::accounting`] is on, so the
//! 96-byte entry does not grow), events and log records go into fixed-capacity buffers that
//! the control plane empties with `Engine::drain_events` and `Engine::drain_logs`. A full
//! buffer drops the newest record and counts it (`Counters::events_lost`,
//! `Counters::log_suppressed`); nothing is ever allocated or formatted per packet.
//!
//! Off, they cost the pipeline one predictable test per packet (accounting and events, which
//! run in an out-of-line copy of the tracking step) and one per group of packets (the drop
//! log, written from the verdicts when some rule logs).
//!
//! # Accounting, as Linux counts
//! Linux counts a packet in `nf_ct_acct_update`, called from `nf_ct_refresh_acct` (a tracker
//! accepted the packet and refreshed the entry) and `nf_ct_kill_acct` (TCP's RST before any
//! reply). So are not counted: packets judged INVALID, TCP segments the tracker ignores
//! (`NF_ACCEPT` before the refresh, [`crate::track::TrackVerdict::Ignore`], which includes a
//! SYN retransmitted in SYN_SENT), ICMP errors RELATED to a connection (conntrack assigns
//! them the connection without running its tracker), and the SYN that re-opens a closed
//! (TIME_WAIT or CLOSE) connection (counted in the new entry, not the old). Packets the rules drop after
//! tracking are counted, as conntrack runs before the filter hooks. Bytes are `skb->len` at
//! PREROUTING: the IP header and payload, without Ethernet, VLAN tags or padding
//! ([`crate::wire::ip_len`]).
//!
//! # Events, as ctnetlink reports them
//! - NEW when a connection's entry is inserted (its first packet accepted by the rules: the
//!   conntrack is confirmed);
//! - UPDATE when a packet changes the TCP state (`IPCT_PROTOINFO`), first sets SEEN_REPLY
//!   (`IPCT_REPLY`) or sets ASSURED (`IPCT_ASSURED`): at most one per packet, after the
//!   change, whatever the rules then decide (Linux caches the bits and delivers them later;
//!   ctfw reports them at once);
//! - DESTROY with a [`DestroyCause`]: expired (reclaimed by a lookup, an insert or the
//!   sweeper), closed by the tracker (an RST before any reply, or a re-opened TIME_WAIT
//!   connection), evicted (to make room, or by the sweeper under pressure), deleted by the
//!   operator. A connection killed by a packet gets only its DESTROY, as Linux does not
//!   deliver events cached on a dying conntrack.
//!
//! # Drop log
//! A rule with [`crate::rules::Rule::log`] (or a set whose default policy logs,
//! [`crate::rules::RuleSet::with_default_log`]) has every packet it decides recorded as a
//! [`LogRecord`], within a token bucket of `log_burst` records refilled at `log_rate` per
//! second of engine time (the packets' `now`), in integer arithmetic.
//!
//! [`EngineConfig::accounting`]: crate::pipeline::EngineConfig::accounting

use crate::counters::Reason;
use crate::flow::Direction;
use crate::rules::{Action, PortId};
use crate::table::Entry;
use crate::time::{Instant, Tick};
use crate::track::CtState;
use crate::view::EntryView;
use crate::wire::Family;

/// Packets and bytes in one direction of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirAcct {
    /// Packets counted.
    pub packets: u64,
    /// Their IP lengths, summed.
    pub bytes: u64,
}

/// Per-direction accounting of one connection (`conntrack -L -o extended` with
/// `nf_conntrack_acct=1`: `packets=` and `bytes=` after each tuple).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acct {
    /// The ORIGINAL direction.
    pub orig: DirAcct,
    /// The REPLY direction.
    pub reply: DirAcct,
}

impl Acct {
    /// Count one packet of `bytes` in `dir`.
    #[inline]
    pub fn add(&mut self, dir: Direction, bytes: u32) {
        let d = match dir {
            Direction::Original => &mut self.orig,
            Direction::Reply => &mut self.reply,
        };
        d.packets += 1;
        d.bytes += u64::from(bytes);
    }

    /// The counts of `dir`.
    pub fn dir(&self, dir: Direction) -> DirAcct {
        match dir {
            Direction::Original => self.orig,
            Direction::Reply => self.reply,
        }
    }
}

/// One connection as the control plane receives it: the operator's view, plus its
/// accounting when [`crate::pipeline::EngineConfig::accounting`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    /// The `conntrack -L` view.
    pub view: EntryView,
    /// Packets and bytes per direction; `None` when accounting is off.
    pub acct: Option<Acct>,
}

impl EntryRecord {
    /// The record of `e`, at pool index `idx`, at `now`; `acct` is the engine's accounting
    /// array (empty when accounting is off).
    pub(crate) fn new(e: &Entry, idx: u32, now: Tick, acct: &[Acct]) -> EntryRecord {
        EntryRecord {
            view: EntryView::new(e, now),
            acct: acct.get(idx as usize).copied(),
        }
    }
}

/// Why a connection's entry went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestroyCause {
    /// Its timeout passed (reclaimed by a lookup, an insert or the sweeper).
    Expired,
    /// The tracker closed it: an RST before any reply, or a SYN re-opening a closed
    /// connection (the new connection gets an entry and a NEW event of its own).
    Closed,
    /// Evicted to make room: a non-ASSURED entry, or the ASSURED entry of a closing TCP
    /// connection, by an insert or by the sweeper under table pressure.
    Evicted,
    /// Deleted by the operator (`Engine::delete`, `Engine::delete_tuple`).
    Deleted,
}

impl DestroyCause {
    /// A stable snake_case name for JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            DestroyCause::Expired => "expired",
            DestroyCause::Closed => "closed",
            DestroyCause::Evicted => "evicted",
            DestroyCause::Deleted => "deleted",
        }
    }
}

/// What happened to a connection (the `[NEW]`, `[UPDATE]`, `[DESTROY]` of `conntrack -E`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Its entry was inserted.
    New,
    /// A packet changed its TCP state, or first set SEEN_REPLY or ASSURED.
    Update,
    /// Its entry was removed.
    Destroy(DestroyCause),
}

impl EventKind {
    /// `new`, `update` or `destroy`.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Update => "update",
            EventKind::Destroy(_) => "destroy",
        }
    }
}

/// One connection event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When: the instant of the burst, sweep or operator call that caused it.
    pub at: Instant,
    /// The connection after the change (for DESTROY, as it was when removed).
    pub record: EntryRecord,
}

/// One drop-log record: a packet decided by a rule (or the default policy) that logs. The
/// engine stores facts only; the control plane formats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// The instant of the packet's burst.
    pub at: Instant,
    /// The deciding rule's index, or `None` for the default policy.
    pub rule: Option<u16>,
    /// What the rule decided. (An accepted new connection can still be dropped afterwards
    /// as `table_full`; the record reports the rule's decision, as a `LOG` rule logs before
    /// the verdict.)
    pub action: Action,
    /// The port the packet arrived on.
    pub in_port: PortId,
    /// The port the rules saw it leaving on (the peer of `in_port`), whether or not it was
    /// forwarded.
    pub out_port: PortId,
    /// The conntrack state the packet was given, `None` if it never reached tracking.
    pub ct: Option<CtState>,
    /// Why tracking called it INVALID, if it did.
    pub invalid: Option<Reason>,
    /// Address family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
    /// Source address (IPv4 as `u32 as u128`).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// TCP or UDP source port.
    pub sport: Option<u16>,
    /// TCP or UDP destination port.
    pub dport: Option<u16>,
    /// TCP flag byte.
    pub tcp_flags: Option<u8>,
    /// ICMP or ICMPv6 type and code.
    pub icmp: Option<(u8, u8)>,
    /// IP length (header and payload), as iptables' `LEN=`.
    pub len: u32,
}

/// A buffer of at most `cap` items, allocated once: pushing never allocates.
#[derive(Debug)]
pub(crate) struct Bounded<T> {
    items: Vec<T>,
    cap: usize,
}

impl<T> Bounded<T> {
    pub(crate) fn with_capacity(cap: usize) -> Bounded<T> {
        Bounded {
            items: Vec::with_capacity(cap),
            cap,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.cap
    }

    /// Append `item`, or return `false` (and drop it) when full.
    pub(crate) fn push(&mut self, item: T) -> bool {
        if self.is_full() {
            return false;
        }
        // Below the capacity reserved at construction: no reallocation.
        self.items.push(item);
        true
    }

    /// Hand every item to `f`, oldest first, and empty the buffer (keeping its memory).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&T)) {
        for item in &self.items {
            f(item);
        }
        self.items.clear();
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.items.capacity() * core::mem::size_of::<T>()
    }

    /// What [`Bounded::memory_bytes`] is for a buffer of `cap` items.
    pub(crate) fn bytes_for(cap: usize) -> usize {
        cap * core::mem::size_of::<T>()
    }
}

/// Credit units per token: the bucket counts in billionths of a token so that a refill of
/// `rate` tokens per second is `rate` units per nanosecond, exactly.
const UNITS: u64 = 1_000_000_000;

/// A token bucket over engine time: holds at most `burst` tokens, gains `rate` per second,
/// starts full. Integer arithmetic throughout; time running backwards refills nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    rate: u32,
    burst: u32,
    /// Tokens held, in `UNITS` per token.
    credit: u64,
    /// The last instant seen, in nanoseconds.
    last: u64,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            credit: u64::from(burst) * UNITS,
            last: 0,
        }
    }

    /// New limits; the tokens held are kept, up to the new burst.
    pub(crate) fn set_limits(&mut self, rate: u32, burst: u32) {
        self.rate = rate;
        self.burst = burst;
        self.credit = self.credit.min(u64::from(burst) * UNITS);
    }

    /// Take one token at `now`, if there is one.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let cap = u64::from(self.burst) * UNITS;
        let elapsed = now.0.saturating_sub(self.last);
        self.last = self.last.max(now.0);
        // `burst * UNITS` is below 2^63, so the sum and the minimum fit a u64.
        let gained = (u128::from(elapsed) * u128::from(self.rate)).min(u128::from(cap)) as u64;
        self.credit = (self.credit + gained).min(cap);
        if self.credit >= UNITS {
            self.credit -= UNITS;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn bucket_admits_burst_then_rate() {
        let mut b = TokenBucket::new(10, 5);
        let t0 = 100 * SEC;
        let admitted = (0..20).filter(|_| b.admit(Instant(t0))).count();
        assert_eq!(admitted, 5, "the burst, all at once");
        // 10 per second: one every 100 ms, none in between.
        assert!(!b.admit(Instant(t0 + SEC / 10 - 1)));
        assert!(b.admit(Instant(t0 + SEC / 10)));
        assert!(!b.admit(Instant(t0 + SEC / 10)));
        // Asking every millisecond for ten seconds gets ten per second.
        let t1 = t0 + SEC / 10;
        let steady = (1..=10_000)
            .filter(|ms| b.admit(Instant(t1 + ms * SEC / 1000)))
            .count();
        assert_eq!(steady, 100);
        // A long idle period refills up to the burst only.
        let t2 = t1 + 3600 * SEC;
        assert_eq!((0..20).filter(|_| b.admit(Instant(t2))).count(), 5);
    }

    #[test]
    fn bucket_ignores_time_running_backwards() {
        let mut b = TokenBucket::new(1, 1);
        assert!(b.admit(Instant(50 * SEC)));
        assert!(!b.admit(Instant(10 * SEC)));
        assert!(!b.admit(Instant(50 * SEC + SEC - 1)));
        assert!(b.admit(Instant(51 * SEC)));
    }

    #[test]
    fn bucket_extremes_do_not_overflow() {
        let mut b = TokenBucket::new(u32::MAX, u32::MAX);
        assert!(b.admit(Instant(u64::MAX)));
        let mut z = TokenBucket::new(0, 0);
        assert!(!z.admit(Instant(u64::MAX)));
        let mut n = TokenBucket::new(0, 2);
        assert!(n.admit(Instant(0)) && n.admit(Instant(SEC)));
        assert!(!n.admit(Instant(1000 * SEC)), "a zero rate never refills");
    }

    #[test]
    fn new_limits_keep_tokens_up_to_the_new_burst() {
        let mut b = TokenBucket::new(1, 10);
        b.set_limits(1, 3);
        assert_eq!((0..10).filter(|_| b.admit(Instant(0))).count(), 3);
    }

    #[test]
    fn bounded_buffer_never_grows() {
        let mut buf = Bounded::with_capacity(2);
        assert!(buf.push(1) && buf.push(2));
        assert!(!buf.push(3));
        let mut seen = Vec::new();
        buf.drain(|&x| seen.push(x));
        assert_eq!(seen, [1, 2]);
        assert!(buf.push(4));
        assert_eq!(buf.memory_bytes(), 2 * core::mem::size_of::<i32>());
    }

    #[test]
    fn accounting_adds_per_direction() {
        let mut a = Acct::default();
        a.add(Direction::Original, 60);
        a.add(Direction::Reply, 40);
        a.add(Direction::Original, 100);
        assert_eq!(
            a.dir(Direction::Original),
            DirAcct {
                packets: 2,
                bytes: 160
            }
        );
        assert_eq!(
            a.dir(Direction::Reply),
            DirAcct {
                packets: 1,
                bytes: 40
            }
        );
    }
}
