//! The pipeline's lanes: the established packet and the new connection in one piece each.
//!
//! Stage 4 takes a `Plan::Segment` (a TCP segment of a common frame, read by
//! [`crate::wire::parse_tcp`] while accounting and events are off) through
//! `Engine::decide_segment`: the lane for established packets (`Engine::established`) when
//! its entry is found, the lane for new connections (`Engine::opened`) when not. A lane does
//! what the general way (`Engine::decide` with `Engine::track`) does for its case, with every
//! test whose outcome the case fixes left out, or declines having changed nothing; a declined
//! segment gets the packet [`crate::wire::parse`] would have returned (`segment_packet`) and goes
//! the general way. The property test `the_lanes_decide_as_the_general_way`
//! (`tests/scenarios/fuzz.rs`) holds the two to the same verdicts, counters, rule hits and
//! table.

use super::track::{direction, new_entry, state, write_back};
use super::{CLASS_BITS, Engine, Lookup, Pkt, Plan, Verdict, packet_input};
use crate::flow::{Direction, KeyedPacket};
use crate::rules::{Dependence, PortId, RuleInput};
use crate::table::Hashed;
use crate::time::Tick;
use crate::track::tcp::TcpConn;
use crate::track::{CtFlags, CtState, EntryMeta, ProtoState, TrackVerdict};
use crate::wire::{Packet, TcpFlags, TcpSeg};

impl Engine {
    /// Stage 4 for a [`Plan::Segment`]: a lane when one takes the packet (the lane for
    /// established packets, [`Engine::established`], when it finds its entry, the lane for
    /// new connections, [`Engine::opened`], when not); else the general way.
    #[inline(always)]
    pub(super) fn decide_segment(
        &mut self,
        now: Tick,
        pkt: &Pkt<'_>,
        k: &KeyedPacket,
        h: &Hashed,
        seg: &TcpSeg<'_>,
        cand: u32,
    ) -> Verdict {
        let found = self
            .table
            .find_hinted(&k.key, h, cand, now, &mut self.counters.expired);
        if let Some(&out_port) = self.cfg.peers.get(pkt.port.0 as usize) {
            let laned = match found {
                Some(idx) => self.established(now, pkt, k, seg, idx, out_port),
                None => self.opened(now, pkt, k, h, seg, out_port),
            };
            if let Some(v) = laned {
                self.counters.packets += 1;
                self.counters.bytes += pkt.len() as u64;
                return v;
            }
        }
        let p = Ok(segment_packet(k, seg));
        self.decide(now, pkt, &p, &Plan::Track(*k, *h), Lookup::Done(found))
    }

    /// The common case of [`Engine::decide`] in one piece, for a packet whose entry was
    /// found at `idx`, with accounting and events off, leaving by `out_port`: an ACK or data
    /// segment of an ESTABLISHED TCP connection that the TCP fast path accepts
    /// ([`TcpConn::accept_established`]), then decided by the rules (the set's fixed
    /// decision or its ingress port's, the entry's memo, or an evaluation: [`Dependence`],
    /// `Engine::dependence`). Its verdict, counted;
    /// or `None`, having changed nothing, for any other packet, which `decide` then tracks
    /// and decides in full. What it does is what `track_found` and `decide` do for that case,
    /// with every test whose outcome the case fixes left out: no state change, an accepted
    /// packet, no pending entry.
    #[inline(always)]
    fn established(
        &mut self,
        now: Tick,
        pkt: &Pkt<'_>,
        k: &KeyedPacket,
        seg: &TcpSeg<'_>,
        idx: u32,
        out_port: PortId,
    ) -> Option<Verdict> {
        let tcp_cfg = &self.cfg.track.tcp;
        let entry = self.table.get_mut(idx);
        let ProtoState::Tcp(conn) = &mut entry.state else {
            return None;
        };
        if !conn.established_ack(seg) {
            return None;
        }
        let dir = direction(k, entry.flags);
        let mut meta = EntryMeta {
            flags: entry.flags,
            expires: entry.expires,
        };
        if !conn.accept_established(&mut meta, now, dir, seg, tcp_cfg) {
            return None;
        }
        let ct = state(dir, entry.flags);
        write_back(entry, dir, meta);
        let decision = match self.dependence(ct, pkt.port) {
            Some(Dependence::Fixed(d)) => d,
            Some(Dependence::PerFlow { flags_mask }) => {
                let tcp_flags = Some(seg.flags.0);
                self.evaluate_memo(idx, dir, ct, flags_mask, pkt.port, tcp_flags, || {
                    segment_input(pkt, k, seg, ct, out_port)
                })
            }
            // (`Ports` comes back fixed for every port with a peer.)
            Some(Dependence::Ports) | None => self
                .rules
                .evaluate(&segment_input(pkt, k, seg, ct, out_port)),
        };
        let verdict = Verdict {
            ct: Some(ct),
            dir: Some(dir),
            ..Verdict::default()
        };
        Some(self.conclude(decision, verdict, out_port, |_| Ok(())))
    }

    /// The other common case of [`Engine::decide`] in one piece, for a packet whose key is
    /// in no entry, with accounting and events off, leaving by `out_port`: a SYN without
    /// ACK, FIN or RST (PSH, URG, ECE and CWR may be set) that opens a connection
    /// ([`TcpConn::open`] accepts it), which the rules then accept or drop. Its verdict,
    /// counted, the new connection inserted if accepted; or `None`, having changed nothing,
    /// for any other packet. What it does is what `track_new` and
    /// `decide` do for that case, with every test whose outcome the case fixes left out: an
    /// ORIGINAL packet in state NEW, with no entry whose memo could hold its decision.
    #[inline(always)]
    fn opened(
        &mut self,
        now: Tick,
        pkt: &Pkt<'_>,
        k: &KeyedPacket,
        h: &Hashed,
        seg: &TcpSeg<'_>,
        out_port: PortId,
    ) -> Option<Verdict> {
        if seg.flags.0 & CLASS_BITS != TcpFlags::SYN {
            return None;
        }
        let mut meta = EntryMeta {
            flags: CtFlags::default(),
            expires: now,
        };
        let Ok((conn, TrackVerdict::Accept)) =
            TcpConn::open(&mut meta, now, seg, &self.cfg.track.tcp)
        else {
            return None;
        };
        let ct = CtState::New;
        let decision = match self.dependence(ct, pkt.port) {
            Some(Dependence::Fixed(d)) => d,
            _ => self
                .rules
                .evaluate(&segment_input(pkt, k, seg, ct, out_port)),
        };
        // Inserted only if the rules accept it, as `decide` does; the tracker accepted the
        // SYN, so accounting would count it.
        let insert = |e: &mut Engine| {
            let entry = new_entry(k, &meta, ProtoState::Tcp(conn));
            e.insert_new(now, h, entry, true, pkt.data)
        };
        let verdict = Verdict {
            ct: Some(ct),
            dir: Some(Direction::Original),
            ..Verdict::default()
        };
        Some(self.conclude(decision, verdict, out_port, insert))
    }
}

/// The packet of a [`Plan::Segment`]: what [`crate::wire::parse`] returns for its frame.
#[inline]
pub(super) fn segment_packet<'a>(k: &KeyedPacket, seg: &TcpSeg<'a>) -> Packet<'a> {
    Packet::tcp(k.addrs(), *seg)
}

/// The rules' input for a TCP segment keyed `k`, in state `ct`, leaving by `out_port`: that
/// of its packet ([`segment_packet`]).
#[inline]
fn segment_input(
    pkt: &Pkt<'_>,
    k: &KeyedPacket,
    seg: &TcpSeg<'_>,
    ct: CtState,
    out_port: PortId,
) -> RuleInput {
    packet_input(pkt, &segment_packet(k, seg), Some(ct), out_port)
}
