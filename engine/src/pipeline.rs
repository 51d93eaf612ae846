//! The burst pipeline: one worker's [`Engine`], from frames to verdicts.
//!
//! [`Engine::process_burst`] takes a burst of frames with their ingress ports, all at one
//! instant, and writes one [`Verdict`] per frame. It works in groups of [`BURST`] packets, in
//! four stages, each a loop over the whole group:
//! 1. parse each frame ([`wire::parse`]) and plan how it meets the table (`Engine::plan`):
//!    dropped before tracking (unparsable, or a fragment under [`FragmentPolicy::Drop`]), a
//!    state known without a lookup (UNTRACKED for a fragment under
//!    [`FragmentPolicy::Untracked`] or an untracked ICMPv6 type; INVALID for a TCP flag
//!    combination Linux's `tcp_error` refuses, a malformed transport header, an invalid ICMP
//!    type, or an ICMP error that cannot be RELATED: unreadable or unkeyable quote, or sent
//!    to someone other than the quoted packet's source), or a flow key and its hash (the
//!    packet's own connection, or the one an ICMP error quotes);
//! 2. fetch the two candidate buckets of every keyed packet;
//! 3. with the buckets in cache, pick each packet's candidate entry from the tags, then fetch
//!    the candidates;
//! 4. in packet order, track (find or create the entry, run the protocol tracker) and decide
//!    (the rules, then insertion of a new connection).
//!
//! Why stages 2 and 3 are loops of their own: the engine has no unsafe code, so its fetches
//! are plain loads, and a load must retire before the reorder buffer moves far past it.
//! Interleaved with parsing, one or two misses would be in flight; issued back to back, the
//! whole group's are. The candidates of stage 3 are only hints: stage 4 checks that the
//! candidate still holds the key (`Table::find_hinted`) and searches the buckets otherwise,
//! since an earlier packet of the group may have created or removed entries meanwhile.
//!
//! A new connection is inserted only if the rules accept its first packet, as Linux confirms
//! a conntrack only when the packet survives the hooks: tracking builds the entry and leaves
//! it pending, and a dropped packet leaves no entry behind (nor evicts one). Insertion may
//! reclaim or evict a neighbour (see [`crate::table`]); when it cannot, the packet is dropped
//! as `TableFull`.
//!
//! Invariants:
//! - every packet gets exactly one verdict: forwarded (`forward` set) or dropped (`dropped`
//!   set, and counted under that reason), never both; `packets == accepted + dropped`;
//! - packets of a burst are tracked in order, so a packet sees what earlier packets of the
//!   same burst did to the table, and the result does not depend on how packets are split
//!   into bursts given the same instants;
//! - an INVALID verdict is counted under its reason whether or not the rules then drop it;
//! - `rule_hits` counts every packet the rules decide, per rule and (last) for the default
//!   policy; packets that never reach the rules (unparsed frames, fragments dropped by
//!   policy, non-IP frames, packets on a port without a peer) are not in it;
//! - the pipeline, not the trackers, sets `SEEN_REPLY`, after a REPLY packet is accepted;
//!   an ICMP error found RELATED never refreshes the connection it quotes;
//! - nothing is allocated per packet: the group's state lives in fixed arrays on the stack.

use crate::counters::{Counters, Reason};
use crate::flow::{self, Direction, FlowHasher, KeyedPacket};
use crate::rules::{Action, PortId, RuleInput, RuleSet};
use crate::table::{Entry, Hashed, Table};
use crate::time::{Instant, Tick};
use crate::track::icmp::{self, IcmpClass};
use crate::track::tcp::{self, TcpConn};
use crate::track::udp::UdpConn;
use crate::track::{CtFlags, CtState, EntryMeta, ProtoState, TrackConfig, TrackVerdict, gre};
use crate::wire::{self, ChecksumHint, L4, Packet, ParseConfig};

/// Packets processed together: keys built, buckets and entries fetched for the whole group
/// before any of them is tracked. Longer bursts are processed in groups of this size.
pub const BURST: usize = 32;

/// What to do with IPv4/IPv6 fragments. The tracker cannot classify a non-first fragment (it
/// has no ports), and ctfw does not reassemble.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FragmentPolicy {
    /// Drop every fragment and count it (`Reason::Fragment`). The safe default.
    #[default]
    Drop,
    /// Give fragments the conntrack state UNTRACKED and let the rules decide.
    Untracked,
}

/// What to do with frames that are neither IPv4 nor IPv6 (ARP, LLDP, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonIpPolicy {
    /// Drop and count (`Reason::NonIp`). The default: deny what is not understood.
    #[default]
    Drop,
    /// Forward to the peer port untouched (a bump-in-the-wire deployment needs ARP).
    Forward,
}

/// Everything one engine (one worker) needs to know, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Maximum number of connection entries this engine holds.
    pub capacity: u32,
    /// Tracking knobs and timeouts.
    pub track: TrackConfig,
    /// Parser knobs.
    pub parse: ParseConfig,
    /// Fragment policy.
    pub fragments: FragmentPolicy,
    /// Non-IP policy.
    pub non_ip: NonIpPolicy,
    /// `peers[p]` is the port a packet accepted on port `p` leaves on.
    pub peers: Vec<PortId>,
}

impl EngineConfig {
    /// Linux's defaults: every `nf_conntrack_*` knob and timeout at its default
    /// ([`TrackConfig::default`]), checksums verified ([`ParseConfig::default`]), fragments and
    /// non-IP frames dropped; `capacity` entries and the `peers` map.
    pub fn linux_defaults(capacity: u32, peers: Vec<PortId>) -> EngineConfig {
        EngineConfig {
            capacity,
            track: TrackConfig::default(),
            parse: ParseConfig::default(),
            fragments: FragmentPolicy::Drop,
            non_ip: NonIpPolicy::Drop,
            peers,
        }
    }
}

/// One packet handed to the engine.
#[derive(Clone, Copy, Debug)]
pub struct Pkt<'a> {
    /// The frame, from the Ethernet header on.
    pub data: &'a [u8],
    /// The port it arrived on.
    pub port: PortId,
    /// What the NIC already verified.
    pub csum: ChecksumHint,
}

/// The engine's decision for one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The port to send the packet out of, or `None` to drop it.
    pub forward: Option<PortId>,
    /// The conntrack state the packet was given, or `None` when it never reached tracking.
    pub ct: Option<CtState>,
    /// Why tracking called it INVALID, if it did (counted whether or not it is forwarded).
    pub invalid: Option<Reason>,
    /// Why it was dropped, if it was.
    pub dropped: Option<Reason>,
    /// Index of the rule that decided, or `None` for the default policy (or no rule at all).
    pub rule: Option<u16>,
    /// Direction of the packet in its connection, when it belongs to one.
    pub dir: Option<Direction>,
}

/// What tracking concluded, before the rules run.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    ct: Option<CtState>,
    invalid: Option<Reason>,
    dir: Option<Direction>,
    /// A new connection waiting for the rules' verdict: inserted only if the packet is
    /// accepted, as Linux confirms a conntrack only when its first packet survives the rules.
    pending: Option<(Entry, Hashed)>,
}

impl Tracked {
    const fn state(ct: CtState) -> Tracked {
        Tracked {
            ct: Some(ct),
            invalid: None,
            dir: None,
            pending: None,
        }
    }
    const fn invalid(r: Reason) -> Tracked {
        Tracked {
            ct: Some(CtState::Invalid),
            invalid: Some(r),
            dir: None,
            pending: None,
        }
    }
}

/// How a parsed packet meets the table.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Dropped before tracking (an unparsable frame, or a fragment under the drop policy).
    Drop(Reason),
    /// No lookup: the conntrack state (and INVALID reason) is already known.
    Fixed(Option<CtState>, Option<Reason>),
    /// Track as part of a connection.
    Track(KeyedPacket, Hashed),
    /// An ICMP error: RELATED if its inner flow is tracked.
    Related(KeyedPacket, Hashed),
}

/// One worker's engine: table, configuration, rules and counters.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    rules: RuleSet,
    table: Table,
    counters: Counters,
    rule_hits: Vec<u64>,
}

impl Engine {
    /// An engine with the given configuration and rules. `seeds` key the flow hash: random per
    /// start in production, fixed for reproducible tests.
    pub fn new(cfg: EngineConfig, rules: RuleSet, seeds: [u64; 4]) -> Engine {
        let table = Table::new(cfg.capacity, FlowHasher::with_seeds(seeds));
        let rule_hits = vec![0; rules.len() + 1];
        Engine {
            cfg,
            rules,
            table,
            counters: Counters::default(),
            rule_hits,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Packets decided by each rule, then (last) by the default policy.
    pub fn rule_hits(&self) -> &[u64] {
        &self.rule_hits
    }

    /// Process one packet (a burst of one).
    pub fn process(&mut self, now: Instant, pkt: Pkt<'_>) -> Verdict {
        let mut out = [Verdict::default()];
        self.process_burst(now, &[pkt], &mut out);
        out[0]
    }

    /// Process a burst: `out[i]` receives the verdict for `pkts[i]`, all at instant `now` (the
    /// data plane reads its clock once per polling round and passes the same `now` to every
    /// burst of the round). Panics if `out` is shorter than `pkts` (a caller bug, not input).
    pub fn process_burst(&mut self, now: Instant, pkts: &[Pkt<'_>], out: &mut [Verdict]) {
        assert!(
            out.len() >= pkts.len(),
            "verdict buffer shorter than the burst"
        );
        let tick = now.tick();
        for (group, verdicts) in pkts.chunks(BURST).zip(out.chunks_mut(BURST)) {
            self.process_group(tick, group, verdicts);
        }
    }

    fn process_group(&mut self, now: Tick, pkts: &[Pkt<'_>], out: &mut [Verdict]) {
        let parse_cfg = self.cfg.parse;
        let mut parsed = [Err(Reason::EthTruncated); BURST];
        let mut plans = [Plan::Drop(Reason::EthTruncated); BURST];
        // Stage 1: parse, key, hash.
        for (i, pkt) in pkts.iter().enumerate() {
            parsed[i] = wire::parse(pkt.data, &parse_cfg, pkt.csum);
            plans[i] = match &parsed[i] {
                Ok(p) => self.plan(p),
                Err(r) => Plan::Drop(*r),
            };
        }
        // Stage 2: fetch every packet's buckets, in a loop of its own. The fetches are plain
        // loads (the engine has no unsafe code for prefetch instructions), and a load must
        // retire before the reorder buffer moves far past it: interleaved with parsing only
        // one or two would be in flight; back to back, the whole burst's are.
        let mut sink = 0u32;
        for plan in &plans[..pkts.len()] {
            if let Plan::Track(_, h) | Plan::Related(_, h) = plan {
                sink ^= self.table.prefetch_buckets(h);
            }
        }
        // Stage 3: with the buckets in cache, find each packet's candidate entry, then fetch
        // the candidates (both cache lines of each) back to back.
        let mut cands = [0u32; BURST];
        for (c, plan) in cands.iter_mut().zip(&plans[..pkts.len()]) {
            if let Plan::Track(_, h) | Plan::Related(_, h) = plan {
                *c = self.table.candidate(h);
            }
        }
        for &c in &cands[..pkts.len()] {
            sink ^= self.table.prefetch_entry(c);
        }
        core::hint::black_box(sink);
        // Stage 4: track and decide, in order (a packet may create the entry the next uses).
        for i in 0..pkts.len() {
            out[i] = self.decide(now, &pkts[i], &parsed[i], plans[i], cands[i]);
        }
    }

    /// Work out how a parsed packet meets the table (key and hash), or its fixed outcome.
    fn plan(&self, p: &Packet<'_>) -> Plan {
        let invalid = |r| Plan::Fixed(Some(CtState::Invalid), Some(r));
        match p.l4 {
            L4::Tcp(seg) if !tcp::flags_valid(seg.flags) => return invalid(Reason::TcpBadFlags),
            L4::Fragment => {
                return match self.cfg.fragments {
                    FragmentPolicy::Drop => Plan::Drop(Reason::Fragment),
                    FragmentPolicy::Untracked => Plan::Fixed(Some(CtState::Untracked), None),
                };
            }
            L4::Malformed(r) => return invalid(r),
            _ => {}
        }
        if let Some(k) = flow::key_of(p) {
            return Plan::Track(k, self.table.hash(&k.key));
        }
        // What has no connection of its own is an ICMP message other than a query: `key_of`
        // keys every other transport except fragments and malformed headers, both planned
        // above. The arms marked "cannot happen" below are defensive: each would show up as a
        // plausible but wrong reason, so debug builds (tests, fuzzing) stop there instead.
        let L4::Icmp(m) = p.l4 else {
            debug_assert!(false, "cannot happen: an unkeyed packet that is not ICMP");
            return invalid(Reason::IcmpInvalidNew);
        };
        match icmp::classify(p.addrs.family, m.type_, m.code) {
            IcmpClass::Error => match m.inner {
                // Linux `nf_conntrack_inet_error`: the error must travel back to the quoted
                // packet's sender.
                Some(Ok(inner)) if inner.addrs.src != p.addrs.dst => {
                    invalid(Reason::IcmpBadErrorAddress)
                }
                Some(Ok(inner)) => match flow::key_of_inner(&inner) {
                    Some(k) => Plan::Related(k, self.table.hash(&k.key)),
                    None => invalid(Reason::IcmpNoRelated),
                },
                Some(Err(r)) => invalid(r),
                None => {
                    // Cannot happen: the parser reads a quote for exactly the types `classify`
                    // calls errors (both ask `wire::icmp::{v4, v6}::is_error`).
                    debug_assert!(false, "cannot happen: an ICMP error without its quote");
                    invalid(Reason::IcmpBadInner)
                }
            },
            IcmpClass::Untracked => Plan::Fixed(Some(CtState::Untracked), None),
            IcmpClass::Invalid(r) => invalid(r),
            IcmpClass::Query { .. } => {
                // Cannot happen: `key_of` keys every query, so a query never gets here.
                debug_assert!(false, "cannot happen: an unkeyed ICMP query");
                invalid(Reason::IcmpInvalidNew)
            }
        }
    }

    fn decide(
        &mut self,
        now: Tick,
        pkt: &Pkt<'_>,
        parsed: &Result<Packet<'_>, Reason>,
        plan: Plan,
        cand: u32,
    ) -> Verdict {
        self.counters.packets += 1;
        self.counters.bytes += pkt.data.len() as u64;
        let out_port = self.cfg.peers.get(pkt.port.0 as usize).copied();
        let p = match parsed {
            Ok(p) => p,
            Err(Reason::NonIp) if self.cfg.non_ip == NonIpPolicy::Forward && out_port.is_some() => {
                self.counters.accepted += 1;
                return Verdict {
                    forward: out_port,
                    ..Verdict::default()
                };
            }
            Err(r) => return self.drop(Verdict::default(), *r),
        };
        let tracked = match plan {
            Plan::Drop(r) => return self.drop(Verdict::default(), r),
            Plan::Fixed(ct, invalid) => Tracked {
                ct,
                invalid,
                dir: None,
                pending: None,
            },
            Plan::Track(k, h) => self.track(now, p, k, h, cand),
            Plan::Related(k, h) => self.related(now, k, h, cand),
        };
        if let Some(r) = tracked.invalid {
            self.counters.count(r);
        }
        let mut verdict = Verdict {
            forward: None,
            ct: tracked.ct,
            invalid: tracked.invalid,
            dropped: None,
            rule: None,
            dir: tracked.dir,
        };
        let Some(out_port) = out_port else {
            // A port without a peer cannot forward anything. Config validation gives every
            // port a peer, so only tests and fuzzing get here; the drop is counted as
            // `default_policy` (no rule ran, and `rule_hits` is not incremented) rather than
            // under a reason of its own that would always read zero in production.
            return self.drop(verdict, Reason::DefaultPolicy);
        };
        let (ports, tcp_flags) = match p.l4 {
            L4::Tcp(s) => (Some((s.sport, s.dport)), Some(s.flags.0)),
            L4::Udp(d) => (Some((d.sport, d.dport)), None),
            _ => (None, None),
        };
        let decision = self.rules.evaluate(&RuleInput {
            ct: tracked.ct,
            in_port: pkt.port,
            out_port,
            family: p.addrs.family,
            proto: p.proto,
            src: p.addrs.src,
            dst: p.addrs.dst,
            ports,
            tcp_flags,
        });
        verdict.rule = decision.rule;
        let hit = decision
            .rule
            .map_or(self.rule_hits.len() - 1, |r| r as usize);
        self.rule_hits[hit] += 1;
        match decision.action {
            Action::Drop => {
                let why = if decision.rule.is_some() {
                    Reason::RuleDrop
                } else {
                    Reason::DefaultPolicy
                };
                self.drop(verdict, why)
            }
            Action::Accept => {
                if let Some((entry, h)) = tracked.pending {
                    match self.table.insert(&h, entry, now) {
                        Ok((_, o)) => {
                            self.counters.created += 1;
                            self.counters.expired += o.reclaimed_expired as u64;
                            self.counters.evicted += o.evicted as u64;
                            self.counters.evicted_closing += o.evicted_closing as u64;
                        }
                        Err(_) => return self.drop(verdict, Reason::TableFull),
                    }
                }
                self.counters.accepted += 1;
                verdict.forward = Some(out_port);
                verdict
            }
        }
    }

    fn drop(&mut self, mut v: Verdict, why: Reason) -> Verdict {
        self.counters.dropped += 1;
        self.counters.count(why);
        v.forward = None;
        v.dropped = Some(why);
        v
    }

    /// Connection tracking proper: find or create the entry, run the protocol tracker.
    fn track(
        &mut self,
        now: Tick,
        p: &Packet<'_>,
        k: KeyedPacket,
        h: Hashed,
        cand: u32,
    ) -> Tracked {
        let found = self
            .table
            .find_hinted(&k.key, &h, cand, now, &mut self.counters.expired);
        let Some(idx) = found else {
            return self.track_new(now, p, k, h);
        };
        let tcp_cfg = self.cfg.track.tcp;
        let other = self.cfg.track.other;
        let entry = self.table.get_mut(idx);
        let dir = if k.key.is_self_inverse() {
            // Linux hashes both tuples of such a flow into one chain, REPLY last inserted and
            // so found first: every packet after the one that created the entry is a reply.
            Direction::Reply
        } else if k.swapped == entry.orig_swapped() {
            Direction::Original
        } else {
            Direction::Reply
        };
        let ct = if dir == Direction::Reply || entry.flags.seen_reply() {
            CtState::Established
        } else {
            CtState::New
        };
        let mut meta = EntryMeta {
            flags: entry.flags,
            expires: entry.expires,
        };
        let action = match (&mut entry.state, p.l4) {
            (ProtoState::Tcp(conn), L4::Tcp(seg)) => {
                conn.packet(&mut meta, now, dir, &seg, &tcp_cfg)
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
        match action {
            TrackVerdict::Accept | TrackVerdict::Ignore => {
                if dir == Direction::Reply {
                    meta.flags.set(CtFlags::SEEN_REPLY);
                }
                entry.flags = meta.flags;
                entry.expires = meta.expires;
                Tracked {
                    ct: Some(ct),
                    invalid: None,
                    dir: Some(dir),
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
                self.table.remove(idx);
                self.counters.closed += 1;
                Tracked {
                    ct: Some(ct),
                    invalid: None,
                    dir: Some(dir),
                    pending: None,
                }
            }
            TrackVerdict::Reopen => {
                self.table.remove(idx);
                self.counters.closed += 1;
                self.track_new(now, p, k, h)
            }
        }
    }

    /// A packet that found no entry: may it start a connection?
    fn track_new(&mut self, now: Tick, p: &Packet<'_>, k: KeyedPacket, h: Hashed) -> Tracked {
        let mut meta = EntryMeta {
            flags: CtFlags::default(),
            expires: now,
        };
        let other = self.cfg.track.other;
        let state = match p.l4 {
            L4::Tcp(seg) => {
                let tcp_cfg = self.cfg.track.tcp;
                let mut conn = match TcpConn::new(&seg, &tcp_cfg) {
                    Ok(c) => c,
                    Err(r) => return Tracked::invalid(r),
                };
                match conn.packet(&mut meta, now, Direction::Original, &seg, &tcp_cfg) {
                    TrackVerdict::Accept | TrackVerdict::Ignore => ProtoState::Tcp(conn),
                    TrackVerdict::Invalid(r) => return Tracked::invalid(r),
                    TrackVerdict::Kill | TrackVerdict::Reopen => {
                        // Cannot happen to a connection's first segment: `Reopen` needs an
                        // old state of TIME_WAIT or later and `Kill` an RST, which
                        // `TcpConn::new` refuses. Were it to, the packet would leave no entry
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
        let mut entry = Entry::new(&k.key, k.swapped, meta.expires, state);
        entry.flags.set(meta.flags.0);
        Tracked {
            ct: Some(CtState::New),
            invalid: None,
            dir: Some(Direction::Original),
            pending: Some((entry, h)),
        }
    }

    /// An ICMP error: RELATED to the connection it quotes, else INVALID. Never refreshes.
    fn related(&mut self, now: Tick, k: KeyedPacket, h: Hashed, cand: u32) -> Tracked {
        match self
            .table
            .find_hinted(&k.key, &h, cand, now, &mut self.counters.expired)
        {
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

    /// Reclaim expired entries (and, under table pressure, evict those that may be dropped
    /// early) with at most `budget` entries examined. Call between bursts. Returns the
    /// number of entries removed.
    pub fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        let o = self.table.sweep(now.tick(), budget);
        self.counters.expired += u64::from(o.expired);
        self.counters.evicted += u64::from(o.evicted);
        self.counters.evicted_closing += u64::from(o.evicted_closing);
        o.removed() as usize
    }
}
