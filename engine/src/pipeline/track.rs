//! Connection tracking proper, after the lookup: the protocol tracker run on a found entry
//! (with or without accounting and events), the first packet of a new connection (its entry
//! left pending until the rules accept it), and the ICMP error RELATED to the connection it
//! quotes.

use super::{Engine, Pending, Tracked};
use crate::counters::Reason;
use crate::flow::{Direction, KeyedPacket};
use crate::table::{Entry, Hashed};
use crate::time::Tick;
use crate::track::icmp;
use crate::track::tcp::{TcpConn, TcpState};
use crate::track::udp::UdpConn;
use crate::track::{CtFlags, CtState, EntryMeta, ProtoState, TrackVerdict, gre};
use crate::wire::{L4, Packet};

impl Engine {
    /// Connection tracking proper, after the lookup (`found`: the entry holding the packet's
    /// key, if any): run the protocol tracker on the entry, or see whether the packet may
    /// start a connection. `frame` is the packet's frame, for accounting.
    pub(super) fn track(
        &mut self,
        now: Tick,
        frame: &[u8],
        p: &Packet<'_>,
        k: &KeyedPacket,
        h: &Hashed,
        found: Option<u32>,
    ) -> Tracked {
        let Some(idx) = found else {
            if self.observe {
                // The lookup may have reclaimed the key's expired entry.
                self.drain_table_removed(now);
            }
            return self.track_new(now, p, k, h);
        };
        if self.observe {
            return self.track_found_observed(now, frame, p, k, h, idx);
        }
        self.track_found::<false>(now, frame, p, k, h, idx)
    }

    /// [`Engine::track_found`] with accounting and events, out of line: the plain pipeline
    /// pays one test for it.
    #[inline(never)]
    fn track_found_observed(
        &mut self,
        now: Tick,
        frame: &[u8],
        p: &Packet<'_>,
        k: &KeyedPacket,
        h: &Hashed,
        idx: u32,
    ) -> Tracked {
        self.track_found::<true>(now, frame, p, k, h, idx)
    }

    /// Run the protocol tracker on the packet's entry, found at `idx`. `OBSERVE`: account the
    /// packet and report events (each still checks whether it is on).
    #[inline(always)]
    fn track_found<const OBSERVE: bool>(
        &mut self,
        now: Tick,
        frame: &[u8],
        p: &Packet<'_>,
        k: &KeyedPacket,
        h: &Hashed,
        idx: u32,
    ) -> Tracked {
        let tcp_cfg = self.cfg.track.tcp;
        let other = self.cfg.track.other;
        let entry = self.table.get_mut(idx);
        let dir = direction(k, entry.flags);
        let ct = state(dir, entry.flags);
        let mut meta = EntryMeta {
            flags: entry.flags,
            expires: entry.expires,
        };
        // What an UPDATE event compares with (read only when observing).
        let before = (entry.flags, tcp_state_of(&entry.state));
        let mut moved = None;
        let action = match (&mut entry.state, &p.l4) {
            (ProtoState::Tcp(conn), L4::Tcp(seg)) => {
                let from = conn.state();
                let v = conn.packet(&mut meta, now, dir, seg, &tcp_cfg);
                if conn.state() != from {
                    moved = Some((from, conn.state()));
                }
                v
            }
            (ProtoState::Udp(conn), L4::Udp(_)) => {
                conn.packet(&mut meta, now, &other);
                TrackVerdict::Accept
            }
            (ProtoState::Icmp, L4::Icmp(_)) => {
                icmp::packet(&mut meta, now, p.addrs.family, &other);
                TrackVerdict::Accept
            }
            (ProtoState::Gre, _) => {
                gre::packet(&mut meta, now, &other);
                TrackVerdict::Accept
            }
            (ProtoState::Generic, _) => {
                meta.expires = now.after(other.generic);
                TrackVerdict::Accept
            }
            _ => {
                // Cannot happen: the key includes the family and the protocol, and an entry's
                // state was built from the same transport variant as every packet with its key
                // (a protocol parses to one variant, or to `Malformed`, which has no key).
                debug_assert!(
                    false,
                    "cannot happen: an entry's state does not fit its packet"
                );
                TrackVerdict::Invalid(Reason::TcpInvalidState)
            }
        };
        // The table counts entries by TCP state: tell it, before anything may remove the entry.
        let entry = match moved {
            Some((from, to)) => {
                self.table.restate_tcp(from, to);
                self.table.get_mut(idx)
            }
            None => entry,
        };
        match action {
            TrackVerdict::Accept | TrackVerdict::Ignore(_) => {
                write_back(entry, dir, meta);
                let ignored = match action {
                    TrackVerdict::Ignore(why) => {
                        self.counters.count_ignored(why);
                        Some(why)
                    }
                    _ => None,
                };
                if OBSERVE {
                    self.observe_packet(now, idx, dir, ignored.is_none(), before, frame);
                }
                Tracked {
                    ct: Some(ct),
                    invalid: None,
                    ignored,
                    dir: Some(dir),
                    entry: Some(idx),
                    pending: None,
                }
            }
            TrackVerdict::Invalid(r) => {
                entry.flags = meta.flags;
                entry.expires = meta.expires;
                Tracked {
                    dir: Some(dir),
                    ..Tracked::invalid(r)
                }
            }
            TrackVerdict::Kill => {
                if OBSERVE {
                    // Linux `nf_ct_kill_acct`: the killing packet is counted, then the entry
                    // goes.
                    self.observe_close(now, idx, Some((dir, frame)));
                }
                self.table.remove(idx);
                self.counters.closed += 1;
                Tracked {
                    ct: Some(ct),
                    invalid: None,
                    ignored: None,
                    dir: Some(dir),
                    entry: None,
                    pending: None,
                }
            }
            TrackVerdict::Reopen => {
                if OBSERVE {
                    // Not counted in the old entry: the packet belongs to the new one.
                    self.observe_close(now, idx, None);
                }
                self.table.remove(idx);
                self.counters.closed += 1;
                self.track_new(now, p, k, h)
            }
        }
    }

    /// A packet that found no entry: may it start a connection?
    pub(super) fn track_new(
        &mut self,
        now: Tick,
        p: &Packet<'_>,
        k: &KeyedPacket,
        h: &Hashed,
    ) -> Tracked {
        let mut meta = EntryMeta {
            flags: CtFlags::default(),
            expires: now,
        };
        let other = self.cfg.track.other;
        let mut ignored = None;
        let state = match p.l4 {
            L4::Tcp(seg) => {
                let (conn, verdict) = match TcpConn::open(&mut meta, now, &seg, &self.cfg.track.tcp)
                {
                    Ok(opened) => opened,
                    Err(r) => return Tracked::invalid(r),
                };
                match verdict {
                    TrackVerdict::Accept => ProtoState::Tcp(conn),
                    TrackVerdict::Ignore(why) => {
                        self.counters.count_ignored(why);
                        ignored = Some(why);
                        ProtoState::Tcp(conn)
                    }
                    TrackVerdict::Invalid(r) => return Tracked::invalid(r),
                    TrackVerdict::Kill | TrackVerdict::Reopen => {
                        // Cannot happen to a connection's first segment: `Reopen` needs an
                        // old state of TIME_WAIT or later and `Kill` an RST, which
                        // `TcpConn::open` refuses. Were it to, the packet would leave no entry
                        // behind, as Linux's unconfirmed conntrack would not.
                        debug_assert!(false, "cannot happen: Kill or Reopen on a first segment");
                        return Tracked {
                            dir: Some(Direction::Original),
                            ..Tracked::state(CtState::New)
                        };
                    }
                }
            }
            L4::Udp(_) => {
                let mut conn = UdpConn::new(now);
                conn.packet(&mut meta, now, &other);
                ProtoState::Udp(conn)
            }
            L4::Icmp(_) => {
                if k.swapped {
                    // An answer (echo reply, ...) without its question.
                    return Tracked::invalid(Reason::IcmpInvalidNew);
                }
                icmp::packet(&mut meta, now, p.addrs.family, &other);
                ProtoState::Icmp
            }
            L4::Gre { .. } => {
                gre::packet(&mut meta, now, &other);
                ProtoState::Gre
            }
            _ => {
                meta.expires = now.after(other.generic);
                ProtoState::Generic
            }
        };
        let entry = new_entry(k, &meta, state);
        Tracked {
            ct: Some(CtState::New),
            invalid: None,
            ignored,
            dir: Some(Direction::Original),
            entry: None,
            pending: Some(Pending {
                entry,
                h: *h,
                counted: ignored.is_none(),
            }),
        }
    }

    /// An ICMP error: RELATED to the connection it quotes, else INVALID. Never refreshes
    /// (nor counts in the connection's accounting).
    pub(super) fn related(&mut self, now: Tick, k: &KeyedPacket, h: &Hashed, cand: u32) -> Tracked {
        let found = self
            .table
            .find_hinted(&k.key, h, cand, now, &mut self.counters.expired);
        if self.observe && found.is_none() {
            // The lookup may have reclaimed the quoted connection's expired entry.
            self.drain_table_removed(now);
        }
        match found {
            Some(idx) => {
                let e = self.table.get(idx);
                // The quoted packet travelled the way `k.swapped` says; the error travels back.
                let quoted = if k.swapped == e.orig_swapped() {
                    Direction::Original
                } else {
                    Direction::Reply
                };
                Tracked {
                    dir: Some(quoted.opposite()),
                    ..Tracked::state(CtState::Related)
                }
            }
            None => Tracked::invalid(Reason::IcmpNoRelated),
        }
    }
}

/// Store what tracking made of a packet travelling `dir` that it accepted or ignored
/// (`meta`) in its entry: the pipeline, not the trackers, sets SEEN_REPLY, for a REPLY
/// packet.
#[inline(always)]
pub(super) fn write_back(entry: &mut Entry, dir: Direction, mut meta: EntryMeta) {
    if dir == Direction::Reply {
        meta.flags.set(CtFlags::SEEN_REPLY);
    }
    entry.flags = meta.flags;
    entry.expires = meta.expires;
}

/// The entry of a new connection keyed `k`, its first packet tracked into `meta` and `state`.
#[inline(always)]
pub(super) fn new_entry(k: &KeyedPacket, meta: &EntryMeta, state: ProtoState) -> Entry {
    let mut entry = Entry::new(&k.key, k.swapped, meta.expires, state);
    entry.flags.set(meta.flags.0);
    entry
}

/// The direction of a packet keyed `k` in the connection of an entry with status `flags`.
#[inline(always)]
pub(super) fn direction(k: &KeyedPacket, flags: CtFlags) -> Direction {
    if k.key.is_self_inverse() {
        // Linux hashes both tuples of such a flow into one chain, REPLY last inserted and so
        // found first: every packet after the one that created the entry is a reply.
        Direction::Reply
    } else if k.swapped == flags.orig_swapped() {
        Direction::Original
    } else {
        Direction::Reply
    }
}

/// The conntrack state of a packet travelling `dir` in the connection of an entry with
/// status `flags` (before the packet): ESTABLISHED once the connection has seen a reply, or
/// for the reply itself; else NEW.
#[inline(always)]
pub(super) fn state(dir: Direction, flags: CtFlags) -> CtState {
    if dir == Direction::Reply || flags.seen_reply() {
        CtState::Established
    } else {
        CtState::New
    }
}

/// The TCP state of an entry's protocol state, if it is TCP.
#[inline]
pub(super) fn tcp_state_of(s: &ProtoState) -> Option<TcpState> {
    match s {
        ProtoState::Tcp(c) => Some(c.state()),
        _ => None,
    }
}
