//! What the pipeline records for operators: per-connection accounting, connection events
//! (NEW, UPDATE, DESTROY) and the drop log. All of it is off the plain pipeline's path: the
//! tracking step for a found entry has an out-of-line copy that records
//! (`Engine::track_found_observed`), inserts and removals test whether recording is on where
//! they happen, and the drop log is written after each group only when some rule logs.

use super::track::tcp_state_of;
use super::{Engine, Pkt, Plan, Verdict};
use crate::counters::Counters;
use crate::flow::Direction;
use crate::observe::{Acct, Bounded, DestroyCause, EntryRecord, Event, EventKind, LogRecord};
use crate::rules::Action;
use crate::table::Removal;
use crate::time::{Instant, Tick};
use crate::track::CtFlags;
use crate::track::tcp::TcpState;
use crate::wire::{self, L4, Packet};

impl Engine {
    /// After a tracked packet of an existing connection: count it (when the tracker
    /// refreshed the entry) and report an UPDATE if it changed the TCP state or first set
    /// SEEN_REPLY or ASSURED. `before` is the entry's flags and TCP state before the packet.
    #[inline(always)]
    pub(super) fn observe_packet(
        &mut self,
        now: Tick,
        idx: u32,
        dir: Direction,
        counted: bool,
        before: (CtFlags, Option<TcpState>),
        frame: &[u8],
    ) {
        if counted {
            if let Some(a) = self.acct.get_mut(idx as usize) {
                a.add(dir, wire::ip_len(frame).unwrap_or(0));
            }
        }
        if self.events_on {
            let e = self.table.get(idx);
            let (flags, tcp_state) = before;
            let newly = e.flags.0 & !flags.0;
            if tcp_state_of(&e.state) != tcp_state
                || newly & (CtFlags::SEEN_REPLY | CtFlags::ASSURED) != 0
            {
                self.event(EventKind::Update, now, idx);
            }
        }
    }

    /// A new connection's entry was inserted at `idx`: report what the insert removed to make
    /// room, start its accounting (with its first packet when `counted`), report NEW.
    #[cold]
    pub(super) fn observe_insert(&mut self, now: Tick, idx: u32, frame: &[u8], counted: bool) {
        // First, while the accounting of a neighbour evicted from this very slot is intact.
        self.drain_table_removed(now);
        if let Some(a) = self.acct.get_mut(idx as usize) {
            *a = Acct::default();
            if counted {
                a.add(Direction::Original, wire::ip_len(frame).unwrap_or(0));
            }
        }
        if self.events_on {
            self.event(EventKind::New, now, idx);
        }
    }

    /// The tracker closes the entry at `idx` (still in the table): count the closing packet
    /// (`counted`: its direction and frame), report DESTROY.
    #[cold]
    pub(super) fn observe_close(
        &mut self,
        now: Tick,
        idx: u32,
        counted: Option<(Direction, &[u8])>,
    ) {
        if let (Some((dir, frame)), Some(a)) = (counted, self.acct.get_mut(idx as usize)) {
            a.add(dir, wire::ip_len(frame).unwrap_or(0));
        }
        if self.events_on {
            self.event(EventKind::Destroy(DestroyCause::Closed), now, idx);
        }
    }

    /// Report the entry at `idx` (in the table, or about to leave it) as `kind`, at the
    /// burst's instant.
    fn event(&mut self, kind: EventKind, now: Tick, idx: u32) {
        let record = EntryRecord::new(self.table.get(idx), idx, now, &self.acct);
        push_event(&mut self.events, &mut self.counters, kind, self.now, record);
    }

    /// Report, as DESTROY events, what the table removed on its own during a lookup or an
    /// insert.
    #[cold]
    pub(super) fn drain_table_removed(&mut self, now: Tick) {
        if !self.events_on {
            return;
        }
        let at = self.now;
        let (events, counters, acct) = (&mut self.events, &mut self.counters, &self.acct);
        let lost = self.table.drain_removed(|idx, e, why| {
            let record = EntryRecord::new(e, idx, now, acct);
            push_event(events, counters, destroy_kind(why), at, record);
        });
        self.counters.events_lost += u64::from(lost);
    }

    /// After the verdict on a parsed packet: if the rules decided it and the deciding rule (or
    /// the default policy) logs, record it, if the buffer has room and the rate limit allows
    /// (else count it as suppressed).
    #[cold]
    pub(super) fn log_decided(
        &mut self,
        pkt: &Pkt<'_>,
        p: &Packet<'_>,
        plan: &Plan<'_>,
        v: &Verdict,
    ) {
        // The rules ran unless the packet was dropped before tracking or its port has no
        // peer (the two ways `decide` returns early for a parsed packet).
        let Some(out_port) = self.cfg.peers.get(pkt.port.0 as usize).copied() else {
            return;
        };
        if matches!(plan, Plan::Drop(_)) || !self.rules.logs(v.rule) {
            return;
        }
        let action = match v.rule {
            Some(i) => self.rules.rule(i).map_or(Action::Drop, |r| r.action),
            None => self.rules.default_action(),
        };
        if self.logs.is_full() || !self.log_bucket.admit(self.now) {
            self.counters.log_suppressed += 1;
            return;
        }
        let (ports, tcp_flags, icmp) = match p.l4 {
            L4::Tcp(s) => (Some((s.sport, s.dport)), Some(s.flags.0), None),
            L4::Udp(d) => (Some((d.sport, d.dport)), None, None),
            L4::Icmp(m) => (None, None, Some((m.type_, m.code))),
            _ => (None, None, None),
        };
        let record = LogRecord {
            at: self.now,
            rule: v.rule,
            action,
            in_port: pkt.port,
            out_port,
            ct: v.ct,
            invalid: v.invalid,
            family: p.addrs.family,
            proto: p.proto,
            src: p.addrs.src,
            dst: p.addrs.dst,
            sport: ports.map(|(s, _)| s),
            dport: ports.map(|(_, d)| d),
            tcp_flags,
            icmp,
            len: wire::ip_len(pkt.data).unwrap_or(0),
        };
        self.logs.push(record);
        self.counters.logged += 1;
    }
}

/// The DESTROY event of a removal the table decided.
pub(super) fn destroy_kind(why: Removal) -> EventKind {
    EventKind::Destroy(match why {
        Removal::Expired => DestroyCause::Expired,
        Removal::Evicted | Removal::EvictedClosing => DestroyCause::Evicted,
    })
}

/// Append an event, or count it lost when the buffer is full.
pub(crate) fn push_event(
    events: &mut Bounded<Event>,
    counters: &mut Counters,
    kind: EventKind,
    at: Instant,
    record: EntryRecord,
) {
    if !events.push(Event { kind, at, record }) {
        counters.events_lost += 1;
    }
}
