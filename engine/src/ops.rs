//! The operator's side of the engine: listing and deleting connections (`conntrack -L`,
//! `-G`, `-D`) and reloading rules and knobs without losing state. Control path only: every
//! call does a bounded amount of work, so a worker can serve it between bursts.
//!
//! # Filters
//! A [`Filter`] holds the selections of `conntrack -L` / `-D`, each optional, all of which
//! must hold: `-f` (family), `-p` (protocol), `--state` (TCP state), `-s` / `-d` (ORIGINAL
//! source and destination, here as prefixes: a single address is a host prefix),
//! `--sport` / `--dport` (ORIGINAL ports), `--icmp-type` / `--icmp-code` / `--icmp-id`, and
//! `--status ASSURED` / `[UNREPLIED]` (no SEEN_REPLY). As in conntrack-tools, everything is
//! matched on the ORIGINAL tuple, and the protocol-specific selections match only their
//! protocol: a TCP state only TCP entries; ports only TCP and UDP entries (ICMP entries have
//! no ports: their identity is type, code and identifier, matched by the ICMP selections;
//! other protocols are tracked without ports); ICMP fields only ICMP and ICMPv6 entries.
//!
//! "By tuple" is a filter with the family, protocol, both addresses as host prefixes and
//! both ports set (for ICMP: type, code and identifier instead of ports):
//! [`Filter::tuple`] builds it from an [`EntryView::orig`]-style tuple. [`Engine::get`] and
//! [`Engine::delete_tuple`] do the same through the hash index, in constant time.
//!
//! # Chunked walks
//! [`Engine::list`] and [`Engine::delete`] walk the table's pool from a [`Cursor`], at most
//! `max_examined` slots per call, and return where to resume. Entries never move in the pool,
//! so every entry present (and unexpired) for the whole walk is visited exactly once. An entry
//! created meanwhile is reported if its slot lies ahead of the cursor, not if behind; one
//! removed meanwhile is reported if the cursor passed it first. A walk's result is thus a
//! consistent set of the stable entries plus some of the churn, as with a netlink dump.
//!
//! # Reload
//! [`Engine::reload`] swaps the rule set and every knob that applies packet by packet
//! (tracking knobs and timeouts, parser knobs, fragment and non-IP policies, the drop-log
//! rate), keeping every table entry: an entry's deadline stays as it was until its next
//! refresh, as when Linux's sysctls change. What sizes memory or wiring (capacity, peers,
//! accounting, event and log buffers) needs a restart: reload refuses to change it, naming the
//! field. Rule hit counters restart from zero, since the rules they counted are gone: the
//! control plane reports them "since the last reload". The rule set's generation changes, so
//! every decision remembered per entry (`Engine::evaluate_memo`) goes stale at once; every
//! 255th reload the generation comes round again and the sweeper clears the old memos a step
//! at a time, none being used meanwhile.

use core::fmt;

use crate::flow::{FlowKey, KeyedPacket};
use crate::observe::{DestroyCause, EntryRecord, EventKind};
use crate::pipeline::{Engine, EngineConfig, push_event};
use crate::rules::{Prefix, RuleSet};
use crate::time::Instant;
use crate::track::tcp::TcpState;
use crate::view::{EntryView, Tuple};
use crate::wire::{Family, proto};

/// A selection of connections, after `conntrack -L` / `-D`: every field that is set must
/// hold (see the module documentation for each field's scope).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Address family (`-f ipv4|ipv6`).
    pub family: Option<Family>,
    /// L4 protocol number (`-p`).
    pub proto: Option<u8>,
    /// TCP state (`--state`); matches TCP entries only.
    pub tcp_state: Option<TcpState>,
    /// ORIGINAL source address (`-s`); a prefix of the other family never matches.
    pub src: Option<Prefix>,
    /// ORIGINAL destination address (`-d`).
    pub dst: Option<Prefix>,
    /// ORIGINAL source port (`--sport`); matches TCP and UDP entries only.
    pub sport: Option<u16>,
    /// ORIGINAL destination port (`--dport`); matches TCP and UDP entries only.
    pub dport: Option<u16>,
    /// ICMP type of the ORIGINAL direction (`--icmp-type`); ICMP and ICMPv6 entries only.
    pub icmp_type: Option<u8>,
    /// ICMP code (`--icmp-code`); ICMP and ICMPv6 entries only.
    pub icmp_code: Option<u8>,
    /// ICMP identifier (`--icmp-id`); ICMP and ICMPv6 entries only.
    pub icmp_id: Option<u16>,
    /// `--status ASSURED` (`Some(true)`), or not ASSURED (`Some(false)`).
    pub assured: Option<bool>,
    /// `[UNREPLIED]`: no reply seen yet (`Some(true)`), or replied (`Some(false)`).
    pub unreplied: Option<bool>,
}

impl Filter {
    /// Every connection.
    pub const ALL: Filter = Filter {
        family: None,
        proto: None,
        tcp_state: None,
        src: None,
        dst: None,
        sport: None,
        dport: None,
        icmp_type: None,
        icmp_code: None,
        icmp_id: None,
        assured: None,
        unreplied: None,
    };

    /// The connection whose ORIGINAL tuple is `orig` (as [`EntryView::orig`] holds it: for
    /// ICMP, `sport` is the identifier and `dport` the request's `type << 8 | code`), of
    /// `family` and protocol `proto`. `None` when an address does not fit the family.
    pub fn tuple(family: Family, proto: u8, orig: &Tuple) -> Option<Filter> {
        let mut f = Filter {
            family: Some(family),
            proto: Some(proto),
            src: Some(Prefix::host(family, orig.src).ok()?),
            dst: Some(Prefix::host(family, orig.dst).ok()?),
            ..Filter::ALL
        };
        if is_icmp(family, proto) {
            f.icmp_id = Some(orig.sport);
            f.icmp_type = Some((orig.dport >> 8) as u8);
            f.icmp_code = Some(orig.dport as u8);
        } else {
            f.sport = Some(orig.sport);
            f.dport = Some(orig.dport);
        }
        Some(f)
    }

    /// Whether the connection `v` is selected.
    pub fn matches(&self, v: &EntryView) -> bool {
        let has_ports = matches!(v.proto, proto::TCP | proto::UDP);
        let icmp = v.icmp.map(|(orig, _)| orig);
        self.family.is_none_or(|f| f == v.family)
            && self.proto.is_none_or(|p| p == v.proto)
            && self.tcp_state.is_none_or(|s| v.tcp_state == Some(s))
            && self.src.is_none_or(|p| p.contains(v.family, v.orig.src))
            && self.dst.is_none_or(|p| p.contains(v.family, v.orig.dst))
            && self.sport.is_none_or(|p| has_ports && v.orig.sport == p)
            && self.dport.is_none_or(|p| has_ports && v.orig.dport == p)
            && self
                .icmp_type
                .is_none_or(|t| icmp.is_some_and(|i| i.type_ == t))
            && self
                .icmp_code
                .is_none_or(|c| icmp.is_some_and(|i| i.code == c))
            && self
                .icmp_id
                .is_none_or(|id| icmp.is_some_and(|i| i.id == id))
            && self.assured.is_none_or(|a| v.assured == a)
            && self.unreplied.is_none_or(|u| v.seen_reply != u)
    }
}

fn is_icmp(family: Family, proto: u8) -> bool {
    matches!(
        (family, proto),
        (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6)
    )
}

/// Where a chunked walk of the table resumes: a pool index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub u32);

impl Cursor {
    /// The beginning of the pool.
    pub const START: Cursor = Cursor(0);
}

/// A setting [`Engine::reload`] cannot change: it sizes memory or wiring fixed at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartField {
    /// [`EngineConfig::capacity`].
    Capacity,
    /// [`EngineConfig::peers`].
    Peers,
    /// [`EngineConfig::accounting`].
    Accounting,
    /// [`EngineConfig::event_capacity`].
    EventCapacity,
    /// [`EngineConfig::log_capacity`].
    LogCapacity,
}

impl RestartField {
    /// The field's name in [`EngineConfig`].
    pub const fn name(self) -> &'static str {
        match self {
            RestartField::Capacity => "capacity",
            RestartField::Peers => "peers",
            RestartField::Accounting => "accounting",
            RestartField::EventCapacity => "event_capacity",
            RestartField::LogCapacity => "log_capacity",
        }
    }
}

/// Why [`Engine::reload`] refused a configuration. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadError {
    /// The new configuration changes a setting fixed at start.
    NeedsRestart(RestartField),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::NeedsRestart(field) => write!(
                f,
                "`{}` cannot change on reload: keep the running value, or restart ctfw to \
                 apply the new one",
                field.name()
            ),
        }
    }
}

impl std::error::Error for ReloadError {}

impl Engine {
    /// Report every live, unexpired connection selected by `filter` among at most
    /// `max_examined` pool slots from `cursor`, in pool order, to `f`. Returns the cursor to
    /// resume from, or `None` when the walk has reached the end of the pool (see the module
    /// documentation for what a walk in chunks guarantees).
    pub fn list(
        &self,
        now: Instant,
        cursor: Cursor,
        filter: &Filter,
        max_examined: usize,
        mut f: impl FnMut(EntryRecord),
    ) -> Option<Cursor> {
        let tick = now.tick();
        let (from, to) = self.walk_range(cursor, max_examined);
        for idx in from..to {
            let Some(e) = self.table.live(idx) else {
                continue;
            };
            if e.is_expired(tick) {
                continue;
            }
            let record = EntryRecord::new(e, idx, tick, &self.acct);
            if filter.matches(&record.view) {
                f(record);
            }
        }
        self.resume(to)
    }

    /// Delete every live, unexpired connection selected by `filter` among at most
    /// `max_examined` pool slots from `cursor`, ASSURED ones included (the operator asked).
    /// Each is counted in `Counters::deleted` and, when events are on, reported as a DESTROY
    /// (`deleted`) event. Expired entries are left to the sweeper. Returns the number deleted
    /// and the cursor to resume from (`None`: end of the pool).
    pub fn delete(
        &mut self,
        now: Instant,
        cursor: Cursor,
        filter: &Filter,
        max_examined: usize,
    ) -> (usize, Option<Cursor>) {
        let tick = now.tick();
        let (from, to) = self.walk_range(cursor, max_examined);
        let mut deleted = 0;
        for idx in from..to {
            let Some(e) = self.table.live(idx) else {
                continue;
            };
            if e.is_expired(tick) {
                continue;
            }
            let record = EntryRecord::new(e, idx, tick, &self.acct);
            if filter.matches(&record.view) {
                self.remove_by_operator(now, idx, record);
                deleted += 1;
            }
        }
        (deleted, self.resume(to))
    }

    /// The connection whose ORIGINAL tuple is `orig` (as [`Filter::tuple`] takes it), found
    /// through the hash index (`conntrack -G`). `None` if there is none, it has expired, or
    /// `orig` is its REPLY tuple.
    pub fn get(
        &self,
        now: Instant,
        family: Family,
        proto: u8,
        orig: &Tuple,
    ) -> Option<EntryRecord> {
        let idx = self.find_orig(now, family, proto, orig)?;
        Some(EntryRecord::new(
            self.table.get(idx),
            idx,
            now.tick(),
            &self.acct,
        ))
    }

    /// Delete the connection whose ORIGINAL tuple is `orig`, found through the hash index
    /// (`conntrack -D` with a full tuple), ASSURED or not, counted and reported as
    /// [`Engine::delete`] does. Returns whether there was one.
    pub fn delete_tuple(&mut self, now: Instant, family: Family, proto: u8, orig: &Tuple) -> bool {
        let Some(idx) = self.find_orig(now, family, proto, orig) else {
            return false;
        };
        let record = EntryRecord::new(self.table.get(idx), idx, now.tick(), &self.acct);
        self.remove_by_operator(now, idx, record);
        true
    }

    /// Replace the rules and every per-packet knob with those of `cfg`, keeping the table
    /// (see the module documentation). Refuses, changing nothing, a `cfg` whose capacity,
    /// peers, accounting, event or log capacity differ from the running ones. Resets the rule
    /// hit counters.
    pub fn reload(&mut self, rules: RuleSet, cfg: &EngineConfig) -> Result<(), ReloadError> {
        let old = &self.cfg;
        let fixed = [
            (cfg.capacity != old.capacity, RestartField::Capacity),
            (cfg.peers != old.peers, RestartField::Peers),
            (cfg.accounting != old.accounting, RestartField::Accounting),
            (
                cfg.event_capacity != old.event_capacity,
                RestartField::EventCapacity,
            ),
            (
                cfg.log_capacity != old.log_capacity,
                RestartField::LogCapacity,
            ),
        ];
        if let Some(&(_, field)) = fixed.iter().find(|(changed, _)| *changed) {
            return Err(ReloadError::NeedsRestart(field));
        }
        self.cfg.track = cfg.track;
        self.cfg.parse = cfg.parse;
        self.cfg.fragments = cfg.fragments;
        self.cfg.non_ip = cfg.non_ip;
        self.cfg.log_rate = cfg.log_rate;
        self.cfg.log_burst = cfg.log_burst;
        self.log_bucket.set_limits(cfg.log_rate, cfg.log_burst);
        self.rule_hits = vec![0; rules.len() + 1];
        self.rules = rules;
        self.by_port = self.port_decisions();
        // The rule memos name rules of the old set: a new generation makes every one stale.
        // When the 8-bit generation comes round again (every 255 reloads), the old memos
        // could look valid: the sweeper clears them, a step per call (bounded work between
        // bursts, not 8 bytes times the capacity at once), and no memo is used until then.
        self.rules_gen = self.rules_gen.wrapping_add(1);
        if self.rules_gen == 0 {
            self.rules_gen = 1;
            self.memo_clear = Some(0);
        }
        Ok(())
    }

    /// The pool range `[from, to)` a walk from `cursor` examines.
    fn walk_range(&self, cursor: Cursor, max_examined: usize) -> (u32, u32) {
        let n = self.table.capacity() as u32;
        let from = cursor.0.min(n);
        let to = from
            .saturating_add(u32::try_from(max_examined).unwrap_or(u32::MAX))
            .min(n);
        (from, to)
    }

    /// Where a walk that stopped before `to` resumes, or `None` at the end of the pool.
    fn resume(&self, to: u32) -> Option<Cursor> {
        ((to as usize) < self.table.capacity()).then_some(Cursor(to))
    }

    /// The pool index of the live, unexpired entry whose ORIGINAL tuple is `orig`.
    fn find_orig(&self, now: Instant, family: Family, proto: u8, orig: &Tuple) -> Option<u32> {
        let k = key_of_orig(family, proto, orig);
        let idx = self.table.peek(&k.key, &self.table.hash(&k.key))?;
        let e = self.table.get(idx);
        let original = k.key.is_self_inverse() || k.swapped == e.orig_swapped();
        (original && !e.is_expired(now.tick())).then_some(idx)
    }

    /// Remove the entry at `idx` (whose record is `record`) for the operator.
    fn remove_by_operator(&mut self, now: Instant, idx: u32, record: EntryRecord) {
        if self.events_on {
            let kind = EventKind::Destroy(DestroyCause::Deleted);
            push_event(&mut self.events, &mut self.counters, kind, now, record);
        }
        self.table.remove(idx);
        self.counters.deleted += 1;
    }
}

/// The canonical key of the connection whose ORIGINAL tuple is `orig`, and whether that
/// tuple runs `hi -> lo`.
fn key_of_orig(family: Family, proto: u8, orig: &Tuple) -> KeyedPacket {
    if is_icmp(family, proto) {
        // ICMP query keys are oriented by the request: `lo` is its source.
        KeyedPacket {
            key: FlowKey {
                lo_addr: orig.src,
                hi_addr: orig.dst,
                lo_port: orig.sport,
                hi_port: orig.dport,
                proto,
                family,
            },
            swapped: false,
        }
    } else {
        FlowKey::from_ports(crate::flow::Endpoints {
            addrs: crate::wire::IpAddrs {
                family,
                src: orig.src,
                dst: orig.dst,
            },
            sport: orig.sport,
            dport: orig.dport,
            proto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::IcmpFields;

    const A: u128 = 0x0a00_0102; // 10.0.1.2
    const B: u128 = 0x0a00_0202; // 10.0.2.2

    fn tcp_view() -> EntryView {
        EntryView {
            family: Family::V4,
            proto: proto::TCP,
            tcp_state: Some(TcpState::Established),
            timeout: 100,
            orig: Tuple {
                src: A,
                dst: B,
                sport: 40000,
                dport: 80,
            },
            reply: Tuple {
                src: B,
                dst: A,
                sport: 80,
                dport: 40000,
            },
            icmp: None,
            seen_reply: true,
            assured: true,
        }
    }

    fn icmp_view() -> EntryView {
        let req = IcmpFields {
            type_: 8,
            code: 0,
            id: 0x1234,
        };
        EntryView {
            proto: proto::ICMP,
            tcp_state: None,
            orig: Tuple {
                src: A,
                dst: B,
                sport: 0x1234,
                dport: 8 << 8,
            },
            reply: Tuple {
                src: B,
                dst: A,
                sport: 8 << 8,
                dport: 0x1234,
            },
            icmp: Some((req, IcmpFields { type_: 0, ..req })),
            seen_reply: false,
            assured: false,
            ..tcp_view()
        }
    }

    fn host(a: u128) -> Option<Prefix> {
        Prefix::host(Family::V4, a).ok()
    }

    fn sel(f: Filter) -> (bool, bool) {
        (f.matches(&tcp_view()), f.matches(&icmp_view()))
    }

    #[test]
    fn empty_filter_selects_everything() {
        assert_eq!(sel(Filter::ALL), (true, true));
        assert_eq!(Filter::default(), Filter::ALL);
    }

    #[test]
    fn family_and_protocol() {
        let f = |family, proto| Filter {
            family,
            proto,
            ..Filter::ALL
        };
        assert_eq!(sel(f(Some(Family::V4), None)), (true, true));
        assert_eq!(sel(f(Some(Family::V6), None)), (false, false));
        assert_eq!(sel(f(None, Some(proto::TCP))), (true, false));
        assert_eq!(sel(f(None, Some(proto::ICMP))), (false, true));
        assert_eq!(sel(f(None, Some(proto::UDP))), (false, false));
    }

    #[test]
    fn tcp_state_selects_tcp_entries_in_that_state() {
        let f = |s| Filter {
            tcp_state: Some(s),
            ..Filter::ALL
        };
        assert_eq!(sel(f(TcpState::Established)), (true, false));
        assert_eq!(sel(f(TcpState::TimeWait)), (false, false));
    }

    #[test]
    fn addresses_match_the_original_tuple() {
        let src = |p| Filter {
            src: p,
            ..Filter::ALL
        };
        let dst = |p| Filter {
            dst: p,
            ..Filter::ALL
        };
        assert_eq!(sel(src(host(A))), (true, true));
        assert_eq!(sel(src(host(B))), (false, false), "B is the REPLY source");
        assert_eq!(sel(dst(host(B))), (true, true));
        assert_eq!(sel(dst(host(A))), (false, false));
        let net = Prefix::new(Family::V4, 0x0a00_0000, 8).ok();
        assert_eq!(
            sel(src(net)),
            (true, true),
            "a prefix selects its addresses"
        );
        let other = Prefix::new(Family::V4, 0xc000_0200, 24).ok();
        assert_eq!(sel(src(other)), (false, false));
        let v6 = Prefix::new(Family::V6, A, 128).ok();
        assert_eq!(sel(src(v6)), (false, false), "another family never matches");
    }

    #[test]
    fn ports_match_tcp_and_udp_original_ports_only() {
        let sport = |p| Filter {
            sport: Some(p),
            ..Filter::ALL
        };
        let dport = |p| Filter {
            dport: Some(p),
            ..Filter::ALL
        };
        assert_eq!(sel(sport(40000)), (true, false));
        assert_eq!(
            sel(sport(80)),
            (false, false),
            "80 is the REPLY source port"
        );
        assert_eq!(sel(dport(80)), (true, false));
        // An ICMP entry's tuple words are not ports: even its identifier does not match.
        assert_eq!(sel(sport(0x1234)), (false, false));
        assert_eq!(sel(dport(8 << 8)), (false, false));
        let mut udp = tcp_view();
        udp.proto = proto::UDP;
        udp.tcp_state = None;
        assert!(dport(80).matches(&udp));
        let mut gre = udp;
        gre.proto = proto::GRE;
        assert!(!dport(80).matches(&gre), "GRE keys are not ports");
    }

    #[test]
    fn icmp_fields_match_icmp_entries_only() {
        let f = |t, c, id| Filter {
            icmp_type: t,
            icmp_code: c,
            icmp_id: id,
            ..Filter::ALL
        };
        assert_eq!(sel(f(Some(8), None, None)), (false, true));
        assert_eq!(
            sel(f(Some(0), None, None)),
            (false, false),
            "the REPLY type"
        );
        assert_eq!(sel(f(None, Some(0), None)), (false, true));
        assert_eq!(sel(f(None, Some(1), None)), (false, false));
        assert_eq!(sel(f(None, None, Some(0x1234))), (false, true));
        assert_eq!(sel(f(None, None, Some(0x1235))), (false, false));
    }

    #[test]
    fn status_assured_and_unreplied() {
        let assured = |a| Filter {
            assured: Some(a),
            ..Filter::ALL
        };
        let unreplied = |u| Filter {
            unreplied: Some(u),
            ..Filter::ALL
        };
        assert_eq!(sel(assured(true)), (true, false));
        assert_eq!(sel(assured(false)), (false, true));
        assert_eq!(sel(unreplied(true)), (false, true));
        assert_eq!(sel(unreplied(false)), (true, false));
    }

    #[test]
    fn every_field_must_hold() {
        let f = Filter {
            proto: Some(proto::TCP),
            dport: Some(80),
            assured: Some(false),
            ..Filter::ALL
        };
        assert_eq!(sel(f), (false, false));
    }

    #[test]
    fn a_tuple_filter_selects_exactly_its_connection() {
        let t = tcp_view();
        let f = Filter::tuple(Family::V4, proto::TCP, &t.orig).expect("v4 tuple");
        assert_eq!(sel(f), (true, false));
        let reverse = Filter::tuple(Family::V4, proto::TCP, &t.reply).expect("v4 tuple");
        assert_eq!(
            sel(reverse),
            (false, false),
            "the REPLY tuple is another connection"
        );
        let i = icmp_view();
        let f = Filter::tuple(Family::V4, proto::ICMP, &i.orig).expect("v4 tuple");
        assert_eq!(sel(f), (false, true));
        let wide = Tuple {
            src: u128::MAX,
            ..t.orig
        };
        assert_eq!(Filter::tuple(Family::V4, proto::TCP, &wide), None);
    }

    #[test]
    fn reload_errors_name_the_field() {
        let e = ReloadError::NeedsRestart(RestartField::EventCapacity);
        assert!(e.to_string().contains("`event_capacity`"), "{e}");
    }
}
