//! The burst pipeline: one worker's [`Engine`], from frames to verdicts.
//!
//! [`Engine::process_burst`] takes a burst of frames with their ingress ports, all at one
//! instant, and writes one [`Verdict`] per frame. It works in groups of [`BURST`] packets, in
//! four stages, each a loop over the whole group:
//! 1. parse each frame ([`wire::parse`]: a fast path for the common frame, the general
//!    parser for the rest; [`wire::parse_span`] for a frame in several buffers) and plan how
//!    it meets the table (`Engine::plan`):
//!    dropped before tracking (unparsable, or a fragment under [`FragmentPolicy::Drop`]), a
//!    state known without a lookup (UNTRACKED for a fragment under
//!    [`FragmentPolicy::Untracked`] or an untracked ICMPv6 type; INVALID for a TCP flag
//!    combination Linux's `tcp_error` refuses, a malformed transport header, an invalid ICMP
//!    type, or an ICMP error that cannot be RELATED: unreadable or unkeyable quote, or sent
//!    to someone other than the quoted packet's source), or a flow key and its hash (the
//!    packet's own connection, or the one an ICMP error quotes);
//! 2. prefetch the two candidate buckets of every keyed packet;
//! 3. pick each packet's candidate entry from the tags in its buckets, then prefetch the
//!    candidates (and their rule memos, when the rules use them; and in a full table, for a
//!    packet without a candidate, the neighbours its insert would evict from);
//! 4. in packet order, track (find or create the entry, run the protocol tracker) and decide
//!    (the rules, then insertion of a new connection).
//!
//! Most packets are TCP segments in common frames, and most of those either belong to an
//! ESTABLISHED connection and lie in window, or are SYNs opening one. For them the pipeline
//! keeps lanes, while accounting and events are off. Stage 1 reads such a frame as its
//! addresses and segment alone ([`wire::parse_tcp`], the same checks and values as
//! [`wire::parse`]) and plans it as a `Plan::Segment`: its key and hash, no [`Packet`]. In
//! stage 4, a segment whose entry is found goes through the lane for established packets
//! (`Engine::established`: the TCP fast path, the write-back, the rules' decision, fixed,
//! remembered or evaluated, the verdict); a SYN whose key is in no entry through the lane for
//! new connections (`Engine::opened`: the connection opened, the rules, the insert). Each
//! does what the general way does for its case, in one piece and without the general
//! tracking result, or declines having changed nothing; a declined segment gets its
//! [`Packet`] (built from the key and the segment, as [`wire::parse`] builds it) and goes the
//! general way. An engine recording accounting or events decides every packet the general
//! way; the property test `the_lanes_decide_as_the_general_way` (`tests/scenarios/fuzz.rs`)
//! holds the two to the same verdicts, counters, rule hits and table.
//!
//! The rules run on every packet but two kinds. The decision of an ESTABLISHED packet, and
//! of a NEW one, is often known without them: the rule set works out when it is built what
//! such a decision can depend on ([`Dependence`]). When nothing (for ESTABLISHED, an
//! `accept established` rule near the top, the classic policy), the packet takes the set's
//! fixed decision; when only the ports it crosses (for NEW, the classic policy's "NEW from
//! inside to outside"), the decision the engine worked out for its ingress port when the
//! rules were loaded (`Engine::port_decisions`); when only what one direction of a connection
//! keeps for life, the ports and some TCP flags, the decision is remembered in the entry's
//! memo and reused until the rule set changes (`Engine::evaluate_memo`; a NEW packet has an
//! entry once its connection's first packet was accepted: a one-way stream, or a handshake
//! retransmitted). All three are exactly what evaluating the rules gives: property tests in
//! `rules/classify/tests.rs`, scenarios in `tests/scenarios/rule_memo.rs`.
//!
//! Why stages 2 and 3 are loops of their own: a prefetch hint (`Table::prefetch_buckets`,
//! `Table::prefetch_entry`) does not wait for its line, but the next stage reads the lines
//! it asked for (stage 3 the buckets, stage 4 the entries): issuing a whole group's hints
//! first puts all its misses in flight while the first line is still on its way, so each
//! stage waits about once per group rather than once per packet.
//! The candidates of stage 3 are only hints: stage 4 checks that the
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
//! - an INVALID verdict is counted under its reason whether or not the rules then drop it,
//!   and so is a packet tracking ignores (`Verdict::ignored`, [`Ignored`]);
//! - `rule_hits` counts every packet the rules decide, per rule and (last) for the default
//!   policy; packets that never reach the rules (unparsed frames, fragments dropped by
//!   policy, non-IP frames, packets on a port without a peer) are not in it;
//! - the pipeline, not the trackers, sets `SEEN_REPLY`, after a REPLY packet is accepted;
//!   an ICMP error found RELATED never refreshes the connection it quotes;
//! - nothing is allocated per packet: the group's state lives in fixed arrays on the stack.
//!
//! Accounting and connection events ([`crate::observe`]) live in an out-of-line copy of the
//! tracking step for a found entry (`track_found::<true>`), which the plain pipeline reaches
//! through one test per packet; the removals and insertions of new connections test for them
//! where they happen. The drop log is written from the verdicts after each group, and only
//! when some rule logs (one test per group). The operator's side of the engine (listing,
//! deletion, reload) is in [`crate::ops`].
//!
//! This file holds the engine, the stages and the general way of deciding a packet (plan,
//! rules, rule memo, verdict, insert); the tracking step is in `pipeline/track.rs`, the
//! lanes in `pipeline/lanes.rs`, and what is recorded for operators (accounting, events,
//! the drop log) in `pipeline/record.rs`.

use crate::counters::{Counters, Ignored, Reason};
use crate::flow::{self, Direction, FlowHasher, KeyedPacket};
use crate::observe::{Acct, Bounded, EntryRecord, Event, LogRecord, TokenBucket};
use crate::rules::{Action, Decision, Dependence, PortId, RuleInput, RuleSet};
use crate::table::{self, Entry, Hashed, OutOfMemory, Region, Table};
use crate::time::{Instant, Tick};
use crate::track::icmp::{self, IcmpClass};
use crate::track::tcp;
use crate::track::{CtState, TrackConfig};
use crate::wire::{self, ChecksumHint, L4, Packet, ParseConfig, Span, TcpFlags, TcpSeg};

mod lanes;
mod record;
mod track;

use lanes::segment_packet;
use record::destroy_kind;
pub(crate) use record::push_event;

/// The rule memo's code for "the default policy decided" (`Engine::evaluate_memo`).
const MEMO_DEFAULT: u16 = u16::MAX;
/// Ingress ports below this have their decisions remembered (`Engine::evaluate_memo`: seven
/// bits of the memo word; a rule's port set names at most [`RuleSet::MAX_PORTS`]).
const MEMO_PORTS: u8 = 128;
/// Rule memos [`Engine::sweep`] clears per call after the generation came round again
/// (64 KiB of stores: a few microseconds, like the sweep itself).
const MEMO_CLEAR_STEP: u32 = 8192;

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
    /// Count packets and bytes per direction of every connection (Linux
    /// `nf_conntrack_acct`, off by default): 32 bytes per table entry, allocated at start.
    /// Fixed for the engine's life ([`Engine::reload`] refuses to change it).
    pub accounting: bool,
    /// Connection events buffered between two `Engine::drain_events` (allocated at start;
    /// more are dropped and counted). Fixed for the engine's life.
    pub event_capacity: u32,
    /// Drop-log records buffered between two `Engine::drain_logs` (allocated at start; more
    /// are dropped and counted). Fixed for the engine's life.
    pub log_capacity: u32,
    /// Drop-log records admitted per second once the burst is spent (0: none after it).
    pub log_rate: u32,
    /// Drop-log records admitted at once (the token bucket's size).
    pub log_burst: u32,
}

impl EngineConfig {
    /// Default [`EngineConfig::event_capacity`].
    pub const DEFAULT_EVENT_CAPACITY: u32 = 4096;
    /// Default [`EngineConfig::log_capacity`].
    pub const DEFAULT_LOG_CAPACITY: u32 = 1024;
    /// Default [`EngineConfig::log_rate`], per second.
    pub const DEFAULT_LOG_RATE: u32 = 10;
    /// Default [`EngineConfig::log_burst`].
    pub const DEFAULT_LOG_BURST: u32 = 50;
}

impl EngineConfig {
    /// Linux's defaults: every `nf_conntrack_*` knob and timeout at its default
    /// ([`TrackConfig::default`]), checksums verified ([`ParseConfig::default`]), fragments and
    /// non-IP frames dropped, accounting off (`nf_conntrack_acct=0`); `capacity` entries and
    /// the `peers` map; the default event and log buffers and log rate (`DEFAULT_*`).
    pub fn linux_defaults(capacity: u32, peers: Vec<PortId>) -> EngineConfig {
        EngineConfig {
            capacity,
            track: TrackConfig::default(),
            parse: ParseConfig::default(),
            fragments: FragmentPolicy::Drop,
            non_ip: NonIpPolicy::Drop,
            peers,
            accounting: false,
            event_capacity: EngineConfig::DEFAULT_EVENT_CAPACITY,
            log_capacity: EngineConfig::DEFAULT_LOG_CAPACITY,
            log_rate: EngineConfig::DEFAULT_LOG_RATE,
            log_burst: EngineConfig::DEFAULT_LOG_BURST,
        }
    }
}

/// One packet handed to the engine.
///
/// A frame may come in several buffers (a multi-segment mbuf): `data` then each of `tail`, in
/// order. Headers are read from the frame's first [`wire::HEADER_SPAN`] bytes, which `data`
/// must hold (all of a shorter frame); lengths and checksums cover every buffer
/// ([`wire::span`]). So the verdict does not depend on how the frame is split.
#[derive(Clone, Copy, Debug)]
pub struct Pkt<'a> {
    /// The frame, from the Ethernet header on: all of it, or its first buffer.
    pub data: &'a [u8],
    /// The frame's other buffers, in order (empty for a frame in one buffer).
    pub tail: &'a [&'a [u8]],
    /// The port it arrived on.
    pub port: PortId,
    /// What the NIC already verified.
    pub csum: ChecksumHint,
}

impl<'a> Pkt<'a> {
    /// A frame held in one buffer.
    pub const fn new(data: &'a [u8], port: PortId, csum: ChecksumHint) -> Pkt<'a> {
        Pkt {
            data,
            tail: &[],
            port,
            csum,
        }
    }

    /// The frame's length in bytes, every buffer included.
    #[inline]
    pub fn len(&self) -> usize {
        if self.tail.is_empty() {
            self.data.len()
        } else {
            self.data.len() + self.tail.iter().map(|b| b.len()).sum::<usize>()
        }
    }

    /// Whether the frame is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as the parser reads it.
    #[inline]
    pub fn frame(&self) -> Span<'a> {
        Span::frame(self.data, self.tail)
    }
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
    /// Why tracking let it through without updating its connection, if it did (counted
    /// whether or not it is forwarded; its conntrack state is in `ct`).
    pub ignored: Option<Ignored>,
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
    ignored: Option<Ignored>,
    dir: Option<Direction>,
    /// The pool index of the packet's entry, when the packet found one that stays in the
    /// table and tracking accepted or ignored the packet (for the per-entry rule memo).
    entry: Option<u32>,
    /// A new connection waiting for the rules' verdict: inserted only if the packet is
    /// accepted, as Linux confirms a conntrack only when its first packet survives the rules.
    pending: Option<Pending>,
}

/// A new connection's entry, built by tracking its first packet, not yet in the table.
#[derive(Clone, Copy, Debug)]
struct Pending {
    entry: Entry,
    h: Hashed,
    /// The tracker accepted and refreshed it (Linux `nf_ct_refresh_acct`): accounting counts
    /// the first packet.
    counted: bool,
}

impl Tracked {
    const fn state(ct: CtState) -> Tracked {
        Tracked {
            ct: Some(ct),
            invalid: None,
            ignored: None,
            dir: None,
            entry: None,
            pending: None,
        }
    }
    const fn invalid(r: Reason) -> Tracked {
        Tracked {
            ct: Some(CtState::Invalid),
            invalid: Some(r),
            ignored: None,
            dir: None,
            entry: None,
            pending: None,
        }
    }
}

/// How a parsed packet meets the table.
#[derive(Clone, Copy, Debug)]
enum Plan<'a> {
    /// Dropped before tracking (an unparsable frame, or a fragment under the drop policy).
    Drop(Reason),
    /// No lookup: the conntrack state (and INVALID reason) is already known.
    Fixed(Option<CtState>, Option<Reason>),
    /// Track as part of a connection.
    Track(KeyedPacket, Hashed),
    /// An ICMP error: RELATED if its inner flow is tracked.
    Related(KeyedPacket, Hashed),
    /// A TCP segment of a common-case frame with valid flags, read by [`wire::parse_tcp`]
    /// without building its [`Packet`] (which is `segment_packet` of the two): tracked as
    /// part of a connection like `Track`, through a lane when it can be.
    Segment(KeyedPacket, Hashed, TcpSeg<'a>),
}

impl Plan<'_> {
    /// The hash of the key the packet is looked up by, if it is looked up.
    #[inline(always)]
    fn hashed(&self) -> Option<&Hashed> {
        match self {
            Plan::Track(_, h) | Plan::Related(_, h) | Plan::Segment(_, h, _) => Some(h),
            Plan::Drop(_) | Plan::Fixed(..) => None,
        }
    }
}

/// The flag bits that tell a segment's class: ACK or data (ACK set, none of SYN, FIN,
/// RST), or SYN (SYN alone).
const CLASS_BITS: u8 = TcpFlags::ACK | TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST;

/// How stage 4 finds a tracked packet's entry: from the candidate of stage 3, or as already
/// looked up (the entry holding its key, if any).
#[derive(Clone, Copy, Debug)]
enum Lookup {
    Candidate(u32),
    Done(Option<u32>),
}

/// One worker's engine: table, configuration, rules and counters, and what it records for
/// operators (accounting, events, drop log).
#[derive(Debug)]
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) rules: RuleSet,
    pub(crate) table: Table,
    pub(crate) counters: Counters,
    pub(crate) rule_hits: Vec<u64>,
    /// Per-connection accounting, indexed by pool index; empty when accounting is off.
    pub(crate) acct: Vec<Acct>,
    /// Whether connection events are recorded.
    pub(crate) events_on: bool,
    pub(crate) events: Bounded<Event>,
    pub(crate) logs: Bounded<LogRecord>,
    pub(crate) log_bucket: TokenBucket,
    /// Accounting or events are on: tracking takes the path that records them.
    pub(crate) observe: bool,
    /// The instant of the burst being processed (for event and log records).
    pub(crate) now: Instant,
    /// The rule set's generation, which stamps the per-entry rule memos
    /// (`Engine::evaluate_memo`): changed with the rules, never 0.
    pub(crate) rules_gen: u8,
    /// When the generation came round again: the next pool index whose memo
    /// [`Engine::sweep`] clears, a step at a time; memos are not used until it is done.
    pub(crate) memo_clear: Option<u32>,
    /// For NEW and ESTABLISHED (indexed by the state), the rules' decision per ingress port
    /// (leaving by its peer) when the set's decision in that state depends on nothing but
    /// the ports crossed ([`Dependence::Ports`]); empty for the state otherwise. Worked out
    /// when the engine is built and at each reload (`Engine::port_decisions`), so a few
    /// bytes per port, allocated then.
    pub(crate) by_port: [Box<[Decision]>; 2],
}

impl Engine {
    /// An engine with the given configuration and rules. `seeds` key the flow hash: random per
    /// start in production, fixed for reproducible tests. Every buffer is allocated here;
    /// aborts, as `vec!` does, if the memory cannot be had (see [`Engine::try_new`]).
    pub fn new(cfg: EngineConfig, rules: RuleSet, seeds: [u64; 4]) -> Engine {
        let bytes = Engine::bytes_for(&cfg);
        match Engine::try_new(cfg, rules, seeds, |_| {}) {
            Ok(e) => e,
            Err(_) => std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(bytes.max(1), 64)
                    .unwrap_or_else(|_| std::alloc::Layout::new::<u64>()),
            ),
        }
    }

    /// As [`Engine::new`], but [`OutOfMemory`] (with the bytes the whole engine needs,
    /// [`Engine::bytes_for`]) if the table or the accounting array cannot be allocated. Their
    /// blocks are handed to `advise` before they are first written ([`Table::try_new`]).
    pub fn try_new(
        cfg: EngineConfig,
        rules: RuleSet,
        seeds: [u64; 4],
        mut advise: impl FnMut(Region),
    ) -> Result<Engine, OutOfMemory> {
        let out_of_memory = OutOfMemory {
            bytes: Engine::bytes_for(&cfg),
        };
        let table = Table::try_new(cfg.capacity, FlowHasher::with_seeds(seeds), &mut advise)
            .map_err(|_| out_of_memory)?;
        let rule_hits = vec![0; rules.len() + 1];
        let mut acct = Vec::new();
        if cfg.accounting {
            acct.try_reserve_exact(table.capacity())
                .map_err(|_| out_of_memory)?;
            advise(Region::of(&acct));
            acct.resize(table.capacity(), Acct::default());
        }
        let mut engine = Engine {
            events: Bounded::with_capacity(cfg.event_capacity as usize),
            logs: Bounded::with_capacity(cfg.log_capacity as usize),
            log_bucket: TokenBucket::new(cfg.log_rate, cfg.log_burst),
            cfg,
            rules,
            table,
            counters: Counters::default(),
            rule_hits,
            acct,
            events_on: false,
            observe: false,
            now: Instant::default(),
            rules_gen: 1,
            memo_clear: None,
            by_port: Default::default(),
        };
        engine.by_port = engine.port_decisions();
        engine.update_observe();
        Ok(engine)
    }

    /// Bytes an engine under `cfg` allocates at start, what [`Engine::memory_bytes`] then
    /// reports (the rule hit counters and per-port decisions aside: a few bytes per rule and
    /// per port): the table, the accounting array and the event and log buffers.
    pub fn bytes_for(cfg: &EngineConfig) -> usize {
        let capacity = cfg.capacity.clamp(table::MIN_CAPACITY, table::MAX_CAPACITY) as usize;
        Table::bytes_for(cfg.capacity)
            + if cfg.accounting {
                capacity * core::mem::size_of::<Acct>()
            } else {
                0
            }
            + Bounded::<Event>::bytes_for(cfg.event_capacity as usize)
            + Bounded::<LogRecord>::bytes_for(cfg.log_capacity as usize)
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Bytes of memory the engine holds: the table, the accounting array and the event and
    /// log buffers.
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
            + self.acct.capacity() * core::mem::size_of::<Acct>()
            + self.events.memory_bytes()
            + self.logs.memory_bytes()
    }

    /// Recompute whether tracking records accounting or events.
    fn update_observe(&mut self) {
        self.observe = !self.acct.is_empty() || self.events_on;
    }

    /// Record connection events from now on (`on`), or stop. Stopping keeps what is
    /// buffered for the next [`Engine::drain_events`].
    pub fn set_events(&mut self, on: bool) {
        self.events_on = on;
        self.table.set_report_removed(on);
        self.update_observe();
    }

    /// Whether connection events are recorded.
    pub fn events_enabled(&self) -> bool {
        self.events_on
    }

    /// Whether per-connection accounting is on ([`EngineConfig::accounting`]).
    pub fn accounting_enabled(&self) -> bool {
        !self.acct.is_empty()
    }

    /// Hand every buffered connection event to `f`, oldest first, and empty the buffer.
    pub fn drain_events(&mut self, f: impl FnMut(&Event)) {
        self.events.drain(f);
    }

    /// Hand every buffered drop-log record to `f`, oldest first, and empty the buffer.
    pub fn drain_logs(&mut self, f: impl FnMut(&LogRecord)) {
        self.logs.drain(f);
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
        self.now = now;
        for (group, verdicts) in pkts.chunks(BURST).zip(out.chunks_mut(BURST)) {
            self.process_group(tick, group, verdicts);
        }
    }

    fn process_group(&mut self, now: Tick, pkts: &[Pkt<'_>], out: &mut [Verdict]) {
        let parse_cfg = self.cfg.parse;
        let mut parsed = [Err(Reason::EthTruncated); BURST];
        let mut plans = [Plan::Drop(Reason::EthTruncated); BURST];
        // The lanes are for the plain pipeline (`Engine::decide_segment`).
        let lanes = !self.observe;
        // Stage 1: parse, key, hash. A TCP segment of a common frame is read as a segment
        // alone: the lanes need no more of the packet.
        for (i, pkt) in pkts.iter().enumerate() {
            let tcp = if lanes && pkt.tail.is_empty() {
                wire::parse_tcp(pkt.data, &parse_cfg, pkt.csum)
            } else {
                None
            };
            parsed[i] = match tcp {
                Some((addrs, seg)) if tcp::flags_valid(seg.flags) => {
                    // As `Engine::plan` plans its packet.
                    let k = flow::key_of_segment(addrs, &seg);
                    plans[i] = Plan::Segment(k, self.table.hash(&k.key), seg);
                    continue;
                }
                // What `wire::parse` returns for the frame.
                Some((addrs, seg)) => Ok(Packet::tcp(addrs, seg)),
                None if pkt.tail.is_empty() => wire::parse(pkt.data, &parse_cfg, pkt.csum),
                None => wire::parse_span(pkt.frame(), &parse_cfg, pkt.csum),
            };
            plans[i] = match &parsed[i] {
                Ok(p) => self.plan(p),
                Err(r) => Plan::Drop(*r),
            };
        }
        // Stage 2: prefetch every packet's buckets, back to back.
        for plan in &plans[..pkts.len()] {
            if let Some(h) = plan.hashed() {
                self.table.prefetch_buckets(h);
            }
        }
        // Stage 3: with the buckets in cache, find each packet's candidate entry, then fetch
        // the candidates (both cache lines of each, and its rule memo when ESTABLISHED
        // packets use memos: `Engine::evaluate_memo`) back to back. NEW packets of known
        // entries that use memos read theirs unprefetched: most sets (the classic policy
        // among them) decide every ESTABLISHED packet alike, and most packets are
        // ESTABLISHED, whose memo line a prefetch would fetch for nothing.
        let mut cands = [0u32; BURST];
        for (c, plan) in cands.iter_mut().zip(&plans[..pkts.len()]) {
            if let Some(h) = plan.hashed() {
                *c = self.table.candidate(h);
            }
        }
        let memos = matches!(self.rules.established(), Dependence::PerFlow { .. });
        for &c in &cands[..pkts.len()] {
            self.table.prefetch_entry(c);
            if memos {
                self.table.prefetch_memo(c);
            }
        }
        // In a full table, keys without a candidate (most likely new connections, whose
        // inserts must evict) have the neighbours their inserts will choose a victim from
        // prefetched too: about 12 % more SYNs per second into a full 1M table. Asked without a
        // branch per packet, so that a full table of established connections pays about 3
        // instructions per packet for it (a branch per packet, or the call every group: 7).
        if self.table.is_full()
            && cands[..pkts.len()]
                .iter()
                .fold(false, |any, &c| any | (c == 0))
        {
            self.prefetch_victims(&cands[..pkts.len()], &plans[..pkts.len()]);
        }
        // Stage 4: track and decide, in order (a packet may create the entry the next uses).
        for i in 0..pkts.len() {
            out[i] = match &plans[i] {
                Plan::Segment(k, h, seg) => self.decide_segment(now, &pkts[i], k, h, seg, cands[i]),
                plan => self.decide(now, &pkts[i], &parsed[i], plan, Lookup::Candidate(cands[i])),
            };
        }
        // The drop log, from the verdicts: one test per group when no rule logs.
        if self.rules.any_log() {
            for i in 0..pkts.len() {
                let p = match &plans[i] {
                    Plan::Segment(k, _, seg) => &segment_packet(k, seg),
                    _ => match &parsed[i] {
                        Ok(p) => p,
                        Err(_) => continue,
                    },
                };
                self.log_decided(&pkts[i], p, &plans[i], &out[i]);
            }
        }
    }

    /// Stage 3 in a full table: for each keyed packet without a candidate (a new connection,
    /// most likely, whose insert must evict), prefetch the neighbours the insert will choose
    /// a victim from (`Table::prefetch_neighbours`). Out of line: it runs only then.
    #[inline(never)]
    fn prefetch_victims(&self, cands: &[u32], plans: &[Plan<'_>]) {
        for (&c, plan) in cands.iter().zip(plans) {
            if let (0, Plan::Track(_, h) | Plan::Segment(_, h, _)) = (c, plan) {
                self.table.prefetch_neighbours(h);
            }
        }
    }

    /// Work out how a parsed packet meets the table (key and hash), or its fixed outcome.
    fn plan<'a>(&self, p: &Packet<'_>) -> Plan<'a> {
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

    /// Stage 4 for a parsed packet and its plan.
    fn decide(
        &mut self,
        now: Tick,
        pkt: &Pkt<'_>,
        parsed: &Result<Packet<'_>, Reason>,
        plan: &Plan<'_>,
        lookup: Lookup,
    ) -> Verdict {
        self.counters.packets += 1;
        self.counters.bytes += pkt.len() as u64;
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
            Plan::Drop(r) => return self.drop(Verdict::default(), *r),
            &Plan::Fixed(ct, invalid) => Tracked {
                ct,
                invalid,
                ignored: None,
                dir: None,
                entry: None,
                pending: None,
            },
            // (A segment's plan is decided by `decide_segment`, which hands its packet on as
            // `Track`: alike, were one to get here.)
            Plan::Track(k, h) | Plan::Segment(k, h, _) => {
                let found = match lookup {
                    Lookup::Candidate(cand) => {
                        self.table
                            .find_hinted(&k.key, h, cand, now, &mut self.counters.expired)
                    }
                    Lookup::Done(found) => found,
                };
                self.track(now, pkt.data, p, k, h, found)
            }
            Plan::Related(k, h) => {
                // (A related packet is only ever looked up here.)
                let cand = match lookup {
                    Lookup::Candidate(cand) => cand,
                    Lookup::Done(_) => 0,
                };
                self.related(now, k, h, cand)
            }
        };
        if let Some(r) = tracked.invalid {
            self.counters.count(r);
        }
        let verdict = Verdict {
            forward: None,
            ct: tracked.ct,
            invalid: tracked.invalid,
            ignored: tracked.ignored,
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
        let dependence = tracked.ct.and_then(|ct| self.dependence(ct, pkt.port));
        let decision = match (tracked.ct, dependence, tracked.entry, tracked.dir) {
            // Most packets: the rule set decides every ESTABLISHED (or NEW) packet alike, or
            // every one entering by this port alike.
            (_, Some(Dependence::Fixed(d)), _, _) => d,
            (Some(ct), Some(Dependence::PerFlow { flags_mask }), Some(idx), Some(dir)) => {
                let tcp_flags = match &p.l4 {
                    L4::Tcp(s) => Some(s.flags.0),
                    _ => None,
                };
                self.evaluate_memo(idx, dir, ct, flags_mask, pkt.port, tcp_flags, || {
                    packet_input(pkt, p, Some(ct), out_port)
                })
            }
            _ => self.evaluate(pkt, p, tracked.ct, out_port),
        };
        // A new connection is inserted only if the rules accept its first packet.
        let admit = |e: &mut Engine| match tracked.pending {
            Some(new) => e.insert_new(now, &new.h, new.entry, new.counted, pkt.data),
            None => Ok(()),
        };
        self.conclude(decision, verdict, out_port, admit)
    }

    /// The rules' decision for a packet in conntrack state `ct`, leaving by `out_port`.
    #[inline]
    fn evaluate(
        &self,
        pkt: &Pkt<'_>,
        p: &Packet<'_>,
        ct: Option<CtState>,
        out_port: PortId,
    ) -> Decision {
        self.rules.evaluate(&packet_input(pkt, p, ct, out_port))
    }

    /// [`Engine::evaluate`] for a packet of entry `idx` travelling `dir` in conntrack state
    /// `ct` (ESTABLISHED or NEW), when the rules' decision for that state depends only on
    /// what that direction of the connection keeps for its life, the ports crossed and the
    /// TCP flags under `flags_mask` ([`Dependence::PerFlow`]). The decision for packets
    /// entering by the same port in the same state with a plain ACK's flags under the mask
    /// (every data segment and ACK when the rules test only SYN, FIN, RST or ACK) is
    /// remembered in the entry's memo ([`Table::memo`]), stamped with the rule set's
    /// generation, and reused until the rule set changes; other packets are evaluated. The
    /// table clears the memo of a new entry.
    ///
    /// The memo holds one 32-bit word per direction (ORIGINAL low, REPLY high): the
    /// generation in bits 24..32 (never 0, so a cleared memo never matches), whether the
    /// state is NEW in bit 23, the ingress port in bits 16..23 (ports from 128 on are not
    /// remembered), the deciding rule's index in bits 0..16, or [`MEMO_DEFAULT`] for the
    /// default policy (rule indices are below [`RuleSet::MAX_RULES`]). A direction's word
    /// holds one state at a time: the ORIGINAL direction of a connection is NEW until the
    /// first reply and ESTABLISHED after it, and is evaluated once more at the change.
    ///
    /// The packet entered by `in_port`, with `tcp_flags` if it is TCP; `input` builds its
    /// input to the rules, in state `ct`, when they are evaluated.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_memo(
        &mut self,
        idx: u32,
        dir: Direction,
        ct: CtState,
        flags_mask: u8,
        in_port: PortId,
        tcp_flags: Option<u8>,
        input: impl FnOnce() -> RuleInput,
    ) -> Decision {
        let plain = match tcp_flags {
            Some(flags) => flags & flags_mask == TcpFlags::ACK & flags_mask,
            None => true,
        };
        let port = match u8::try_from(in_port.0) {
            Ok(port) if plain && port < MEMO_PORTS && self.memo_clear.is_none() => port,
            _ => return self.rules.evaluate(&input()),
        };
        let new = u32::from(ct == CtState::New);
        let stamp = u32::from(self.rules_gen) << 24 | new << 23 | u32::from(port) << 16;
        let shift = if dir == Direction::Original { 0 } else { 32 };
        let memo = self.table.memo(idx);
        let word = (memo >> shift) as u32;
        if word & 0xffff_0000 == stamp {
            let code = word as u16;
            return match self.rules.rule(code) {
                Some(r) if code != MEMO_DEFAULT => Decision {
                    action: r.action,
                    rule: Some(code),
                },
                _ => Decision {
                    action: self.rules.default_action(),
                    rule: None,
                },
            };
        }
        let d = self.rules.evaluate(&input());
        let word = stamp | u32::from(d.rule.unwrap_or(MEMO_DEFAULT));
        let memo = memo & !(0xffff_ffff << shift) | u64::from(word) << shift;
        self.table.set_memo(idx, memo);
        d
    }

    /// What the rules' decision for a packet in conntrack state `ct` entering by `in_port`
    /// depends on ([`RuleSet::dependence`]), with a decision that depends on the ports alone
    /// looked up as the fixed decision it is for this port (`None`, to be evaluated, for a
    /// port without a peer).
    #[inline(always)]
    fn dependence(&self, ct: CtState, in_port: PortId) -> Option<Dependence> {
        match self.rules.dependence(ct)? {
            Dependence::Ports => {
                let by_port = self.by_port.get(ct as usize)?;
                by_port
                    .get(usize::from(in_port.0))
                    .map(|&d| Dependence::Fixed(d))
            }
            d => Some(d),
        }
    }

    /// [`Engine::by_port`] for the current rules and peers: each port's decision, evaluated
    /// once for a packet that tests nothing the rules read but its state and ports.
    pub(crate) fn port_decisions(&self) -> [Box<[Decision]>; 2] {
        [CtState::New, CtState::Established].map(|ct| {
            if self.rules.dependence(ct) != Some(Dependence::Ports) {
                return Box::default();
            }
            let ports = (0..=u16::MAX).map(PortId).zip(&self.cfg.peers);
            ports
                .map(|(in_port, &out_port)| {
                    self.rules.evaluate(&RuleInput {
                        ct: Some(ct),
                        in_port,
                        out_port,
                        family: wire::Family::V4,
                        proto: 0,
                        src: 0,
                        dst: 0,
                        ports: None,
                        tcp_flags: None,
                    })
                })
                .collect()
        })
    }

    fn drop(&mut self, mut v: Verdict, why: Reason) -> Verdict {
        self.counters.dropped += 1;
        self.counters.count(why);
        v.forward = None;
        v.dropped = Some(why);
        v
    }

    /// The verdict on a packet the rules decided (`decision`) after tracking gave it
    /// `verdict` (state, direction, INVALID or ignored reason; not forwarded): the rule
    /// counted, then the packet forwarded by `out_port` if the rules and `admit` (a new
    /// connection's insert, which may find the table full) accept it, else dropped and
    /// counted under its reason.
    #[inline(always)]
    fn conclude(
        &mut self,
        decision: Decision,
        mut verdict: Verdict,
        out_port: PortId,
        admit: impl FnOnce(&mut Engine) -> Result<(), Reason>,
    ) -> Verdict {
        verdict.rule = decision.rule;
        let hit = decision
            .rule
            .map_or(self.rule_hits.len() - 1, |r| r as usize);
        self.rule_hits[hit] += 1;
        match decision.action {
            Action::Accept => match admit(self) {
                Ok(()) => {
                    self.counters.accepted += 1;
                    verdict.forward = Some(out_port);
                    verdict
                }
                Err(why) => self.drop(verdict, why),
            },
            Action::Drop if decision.rule.is_some() => self.drop(verdict, Reason::RuleDrop),
            Action::Drop => self.drop(verdict, Reason::DefaultPolicy),
        }
    }

    /// Insert a new connection's `entry` (hashed `h`), whose first packet is `frame`, and
    /// count it (and what the insert removed to make room); `counted`: accounting counts
    /// the packet. `TableFull` when its neighbourhood has no room.
    #[inline(always)]
    fn insert_new(
        &mut self,
        now: Tick,
        h: &Hashed,
        entry: Entry,
        counted: bool,
        frame: &[u8],
    ) -> Result<(), Reason> {
        match self.table.insert(h, entry, now) {
            Ok((idx, o)) => {
                self.counters.created += 1;
                self.counters.expired += o.reclaimed_expired as u64;
                self.counters.evicted += o.evicted as u64;
                self.counters.evicted_closing += o.evicted_closing as u64;
                if self.observe {
                    self.observe_insert(now, idx, frame, counted);
                }
                Ok(())
            }
            Err(_) => {
                if self.observe {
                    // A failed insert removes nothing; drained all the same.
                    self.drain_table_removed(now);
                }
                Err(Reason::TableFull)
            }
        }
    }

    /// Reclaim expired entries (and, under table pressure, evict those that may be dropped
    /// early) with at most `budget` entries examined. Call between bursts. Returns the
    /// number of entries removed (each a DESTROY event when events are on).
    pub fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        if let Some(from) = self.memo_clear {
            let next = self.table.clear_memos_from(from, MEMO_CLEAR_STEP);
            self.memo_clear = (next < self.table.capacity() as u32).then_some(next);
        }
        let tick = now.tick();
        let o = if self.events_on {
            let (events, counters, acct) = (&mut self.events, &mut self.counters, &self.acct);
            self.table.sweep_with(tick, budget, |idx, e, why| {
                let record = EntryRecord::new(e, idx, tick, acct);
                push_event(events, counters, destroy_kind(why), now, record);
            })
        } else {
            self.table.sweep(tick, budget)
        };
        self.counters.sweep_examined += u64::from(o.examined);
        self.counters.expired += u64::from(o.expired);
        self.counters.evicted += u64::from(o.evicted);
        self.counters.evicted_closing += u64::from(o.evicted_closing);
        o.removed() as usize
    }
}

/// A parsed packet's input to the rules, in conntrack state `ct`, leaving by `out_port`.
#[inline]
pub(super) fn packet_input(
    pkt: &Pkt<'_>,
    p: &Packet<'_>,
    ct: Option<CtState>,
    out_port: PortId,
) -> RuleInput {
    let (ports, tcp_flags) = match &p.l4 {
        L4::Tcp(s) => (Some((s.sport, s.dport)), Some(s.flags.0)),
        L4::Udp(d) => (Some((d.sport, d.dport)), None),
        _ => (None, None),
    };
    RuleInput {
        ct,
        in_port: pkt.port,
        out_port,
        family: p.addrs.family,
        proto: p.proto,
        src: p.addrs.src,
        dst: p.addrs.dst,
        ports,
        tcp_flags,
    }
}
