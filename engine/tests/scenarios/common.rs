//! The harness every scenario shares: the classic policy, an engine with Linux's default
//! knobs, a clock in ticks, and lookups of a frame's table entry.
//!
//! The policy is `config/conformance/classic-loose1-liberal0.yaml` (the nft rule set of the
//! conformance traces), loaded by the real loader, `ctfw_config::Config::load` (an
//! integration test may dev-depend on `ctfw-config`: it links the same `ctfw_engine` the
//! loader builds rules for). Its rules, by index, as [`R_ESTREL`], [`R_NEW_C2S`] and
//! [`R_INVALID`] name them ([`classic_rules`] checks the names):
//!
//! ```text
//! 0 estrel_accept   ct state established,related accept
//! 1 new_c2s_accept  iif inside oif outside ct state new accept
//! 2 invalid_drop    ct state invalid drop
//!   policy drop
//! ```
//!
//! Port 0 is inside (clients), port 1 outside (servers), as in the conformance captures.
//!
//! Time: the engine keeps deadlines in ticks of 1/256 s. Scenarios set the clock in ticks
//! ([`Fw::set_tick`]) so that "one tick before the deadline" and "at the deadline" are exact;
//! Linux calls an entry expired at its deadline itself (`nf_ct_is_expired`:
//! `(__s32)(ct->timeout - nfct_time_stamp) <= 0`).

use std::sync::OnceLock;

use ctfw_engine::Instant;
use ctfw_engine::flow::FlowKey;
use ctfw_engine::pipeline::{Engine, EngineConfig, Pkt, Verdict};
use ctfw_engine::rules::{Action, CtStateSet, PortId, PortSet, Rule, RuleSet};
use ctfw_engine::table::Entry;
use ctfw_engine::time::TICKS_PER_SEC;
use ctfw_engine::track::tcp::{TcpConn, TcpState};
use ctfw_engine::track::{CtState, ProtoState};
use ctfw_engine::view::EntryView;
use ctfw_engine::wire::{self, ChecksumHint, ParseConfig};
use ctfw_engine::{Counters, Reason};
use ctfw_tracegen::Side;

/// The inside port (clients).
pub const INSIDE: PortId = PortId(0);
/// The outside port (servers).
pub const OUTSIDE: PortId = PortId(1);

/// Ticks per second, as `u64` for clock arithmetic.
pub const SEC: u64 = TICKS_PER_SEC as u64;
/// Nanoseconds per tick (1e9 / 256, exact).
const NS_PER_TICK: u64 = 3_906_250;
/// Where scenario clocks start: far from zero so that nothing depends on an epoch.
pub const T0: u64 = 10_000 * SEC;

/// Index of `estrel_accept` in [`classic_rules`].
pub const R_ESTREL: u16 = 0;
/// Index of `new_c2s_accept`.
pub const R_NEW_C2S: u16 = 1;
/// Index of `invalid_drop`.
pub const R_INVALID: u16 = 2;

/// The classic policy's configuration file.
const CLASSIC_YAML: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/conformance/classic-loose1-liberal0.yaml"
);

/// The classic policy (see the module documentation), as `ctfw_config` loads it. Loaded once
/// per test binary; panics if the file does not load or its rules and ports are not where the
/// scenarios expect them.
pub fn classic_rules() -> RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES
        .get_or_init(|| {
            let cfg = ctfw_config::Config::load(CLASSIC_YAML)
                .unwrap_or_else(|e| panic!("{CLASSIC_YAML}: {e}"));
            for (port, name) in [(INSIDE, "inside"), (OUTSIDE, "outside")] {
                assert_eq!(
                    cfg.port_by_name(name),
                    Some(port),
                    "{CLASSIC_YAML}: port {name}"
                );
            }
            for (idx, name) in [
                (R_ESTREL, "estrel_accept"),
                (R_NEW_C2S, "new_c2s_accept"),
                (R_INVALID, "invalid_drop"),
            ] {
                assert_eq!(cfg.rules.name(idx), name, "{CLASSIC_YAML}: rule {idx}");
            }
            assert_eq!(cfg.rules.len(), 3, "{CLASSIC_YAML}: rule count");
            assert_eq!(
                cfg.rules.default_action(),
                Action::Drop,
                "{CLASSIC_YAML}: policy"
            );
            cfg.rules
        })
        .clone()
}

/// The classic rules as `(name, rule)` pairs, so that variants can add to them.
pub fn classic_rule_list() -> Vec<(String, Rule)> {
    classic_rules()
        .iter()
        .map(|(name, rule)| (name.to_owned(), rule.clone()))
        .collect()
}

/// Zone rules, whose NEW decision (and, with `block` set, ESTABLISHED decision) depends on
/// the ports alone: the classic rules with NEW accepted when it crosses from `from` to the
/// other port (`from` INSIDE: the classic rules themselves), behind a logging drop of
/// ESTABLISHED packets entering by OUTSIDE when `block` is set.
pub fn zone_rules(from: PortId, block: bool) -> Vec<(String, Rule)> {
    let mut list = Vec::new();
    if block {
        let rule = Rule {
            ct: Some(CtStateSet::of(&[CtState::Established])),
            in_port: PortSet::default().with(OUTSIDE),
            log: true,
            ..Rule::new(Action::Drop)
        };
        list.push(("block_outside".to_owned(), rule));
    }
    for (name, mut rule) in classic_rule_list() {
        if name == "new_c2s_accept" {
            let to = if from == INSIDE { OUTSIDE } else { INSIDE };
            rule.in_port = PortSet::default().with(from);
            rule.out_port = PortSet::default().with(to);
        }
        list.push((name, rule));
    }
    list
}

/// A rule set from `(name, rule)` pairs with the classic policy's default, drop.
pub fn rule_set(list: Vec<(String, Rule)>) -> RuleSet {
    let (names, rules): (Vec<String>, Vec<Rule>) = list.into_iter().unzip();
    RuleSet::new(rules, Action::Drop, names).expect("a valid rule set")
}

/// Linux's default knobs ([`EngineConfig::linux_defaults`]: loose 1, be_liberal 0,
/// max_retrans 3, default timeouts, checksums verified, fragments and non-IP dropped), with
/// inside and outside each other's peer.
pub fn linux_defaults(capacity: u32) -> EngineConfig {
    EngineConfig::linux_defaults(capacity, vec![OUTSIDE, INSIDE])
}

/// The port a tracegen side arrives on.
pub fn port_of(side: Side) -> PortId {
    match side {
        Side::Inside => INSIDE,
        Side::Outside => OUTSIDE,
    }
}

/// The port a packet arriving on `side` leaves on.
pub fn peer_of(side: Side) -> PortId {
    port_of(side.opposite())
}

/// The engine instant of tick `t`.
pub fn instant(t: u64) -> Instant {
    Instant(t * NS_PER_TICK)
}

/// An engine plus the clock the scenario drives it with.
#[derive(Debug)]
pub struct Fw {
    /// The engine under test.
    pub eng: Engine,
    /// Current time, in ticks.
    pub tick: u64,
}

impl Fw {
    /// An engine with the classic policy and Linux defaults, clock at [`T0`].
    pub fn classic(capacity: u32) -> Fw {
        Fw::new(linux_defaults(capacity), classic_rules())
    }

    /// An engine with this configuration and rules, clock at [`T0`].
    pub fn new(cfg: EngineConfig, rules: RuleSet) -> Fw {
        Fw {
            eng: Engine::new(cfg, rules, [1, 2, 3, 4]),
            tick: T0,
        }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        instant(self.tick)
    }

    /// Set the clock (ticks).
    pub fn set_tick(&mut self, t: u64) {
        self.tick = t;
    }

    /// Advance the clock by `ticks`.
    pub fn advance(&mut self, ticks: u64) {
        self.tick += ticks;
    }

    /// Process one frame arriving on `port` now.
    pub fn send(&mut self, data: &[u8], port: PortId) -> Verdict {
        let now = self.now();
        self.eng.process(
            now,
            Pkt {
                data,
                tail: &[],
                port,
                csum: ChecksumHint::Unknown,
            },
        )
    }

    /// Process one captured packet now, on the port of its side (its timestamp is ignored).
    pub fn pkt(&mut self, p: &ctfw_tracegen::Packet) -> Verdict {
        self.send(&p.data, port_of(p.side))
    }

    /// Process packets one by one, now, returning their verdicts.
    pub fn pkts(&mut self, ps: &[ctfw_tracegen::Packet]) -> Vec<Verdict> {
        ps.iter().map(|p| self.pkt(p)).collect()
    }

    /// The live, unexpired entry the frame belongs to, if any.
    pub fn entry(&self, frame: &[u8]) -> Option<Entry> {
        let key = key_of(frame)?;
        let table = self.eng.table();
        let idx = table.peek(&key, &table.hash(&key))?;
        let e = *table.get(idx);
        (!e.is_expired(self.now().tick())).then_some(e)
    }

    /// The operator's view of the frame's entry now.
    pub fn view(&self, frame: &[u8]) -> Option<EntryView> {
        self.entry(frame)
            .map(|e| EntryView::new(&e, self.now().tick()))
    }

    /// The TCP state of the frame's entry.
    pub fn tcp(&self, frame: &[u8]) -> Option<TcpConn> {
        match self.entry(frame)?.state {
            ProtoState::Tcp(c) => Some(c),
            _ => None,
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        self.eng.counters()
    }

    /// Panics unless the table's invariants hold.
    pub fn check(&self) {
        if let Err(e) = self.eng.table().check_invariants() {
            panic!("table invariants broken: {e}");
        }
    }
}

/// The canonical key of the connection a frame belongs to (TCP, UDP, ICMP queries, other
/// protocols), or `None` when the frame has none (errors, fragments, non-IP, malformed).
pub fn key_of(frame: &[u8]) -> Option<FlowKey> {
    let p = wire::parse(frame, &ParseConfig::default(), ChecksumHint::Unknown).ok()?;
    ctfw_engine::flow::key_of(&p).map(|k| k.key)
}

/// Asserts the packet was tracked as `ct` and forwarded to `to`.
#[track_caller]
pub fn assert_fwd(v: &Verdict, ct: CtState, to: PortId) {
    assert_eq!(v.ct, Some(ct), "conntrack state of {v:?}");
    assert_eq!(v.invalid, None, "not invalid: {v:?}");
    assert_eq!(v.dropped, None, "not dropped: {v:?}");
    assert_eq!(v.forward, Some(to), "forwarded: {v:?}");
}

/// Asserts a captured packet was tracked as `ct` and forwarded to the other side.
#[track_caller]
pub fn assert_fwd_pkt(v: &Verdict, ct: CtState, p: &ctfw_tracegen::Packet) {
    assert_fwd(v, ct, peer_of(p.side));
}

/// Asserts the packet was judged INVALID for `why` and dropped by `invalid_drop`.
#[track_caller]
pub fn assert_invalid(v: &Verdict, why: Reason) {
    assert_eq!(v.ct, Some(CtState::Invalid), "conntrack state of {v:?}");
    assert_eq!(v.invalid, Some(why), "invalid reason of {v:?}");
    assert_eq!(v.forward, None, "dropped: {v:?}");
    assert_eq!(
        v.dropped,
        Some(Reason::RuleDrop),
        "dropped by a rule: {v:?}"
    );
    assert_eq!(v.rule, Some(R_INVALID), "dropped by invalid_drop: {v:?}");
}

/// Asserts the packet was dropped for `why`, not forwarded.
#[track_caller]
pub fn assert_dropped(v: &Verdict, why: Reason) {
    assert_eq!(v.forward, None, "dropped: {v:?}");
    assert_eq!(v.dropped, Some(why), "drop reason of {v:?}");
}

/// Asserts an entry view's TCP state and timeout (whole seconds).
#[track_caller]
pub fn assert_tcp(view: Option<EntryView>, state: TcpState, timeout: u32) {
    let v = view.expect("the connection has a live entry");
    assert_eq!(v.tcp_state, Some(state), "TCP state of {v:?}");
    assert_eq!(v.timeout, timeout, "timeout of {v:?}");
}

/// Every live entry's view now, in a canonical order (for comparing two engines).
pub fn all_views(fw: &Fw) -> Vec<String> {
    let now = fw.now().tick();
    let mut v: Vec<String> = fw
        .eng
        .table()
        .iter(now)
        .map(|(_, e)| format!("{:?}", EntryView::new(e, now)))
        .collect();
    v.sort();
    v
}
