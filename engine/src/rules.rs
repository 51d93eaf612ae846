//! The compiled rule set: ordered rules, the first that matches decides, else the default
//! policy.
//!
//! A [`Rule`] is a conjunction of optional matchers (conntrack state set, ingress and egress
//! port, address family, L4 protocol, source and destination prefixes, source and destination
//! port ranges, TCP flags); within one matcher a list is a disjunction. A matcher that is absent
//! (`None`, or an empty list) places no constraint.
//!
//! Invariants, established by the constructors of the matcher types and by [`RuleSet::new`]:
//! - a [`Prefix`] has no host bits set and its length fits its family;
//! - a [`PortRange`] has `lo <= hi`;
//! - a [`TcpFlagsMatch`] compares only bits inside its mask;
//! - a [`RuleSet`] holds at most [`RuleSet::MAX_RULES`] rules, so a rule index fits the `u16`
//!   of [`Decision::rule`], and exactly one name per rule.
//!
//! Why this shape: evaluation runs per packet, so it walks no strings and allocates nothing.
//! Names live beside the rules, not in them, to keep the matchers that are read per packet
//! dense; addresses are `(net, mask)` pairs of `u128`, port ranges `(lo, hi)`, state sets
//! and port sets bitmasks. Matching follows nftables, whose behaviour the conformance traces
//! record: a packet that never reached conntrack matches no `ct state` test, a packet without
//! ports matches no port test, a non-TCP packet matches no TCP flags test, and an IPv4 prefix
//! never matches an IPv6 packet (nor the reverse).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::track::CtState;
use crate::wire::{Family, TcpFlags};

/// A port of the firewall (index into the configured port list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// What a rule does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Forward to the peer port.
    Accept,
    /// Drop.
    Drop,
}

impl Action {
    /// Lower-case name, as written in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the rules may look at, gathered once per packet. No strings, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleInput {
    /// Conntrack state, or `None` when the packet never reached connection tracking.
    pub ct: Option<CtState>,
    /// Port the packet arrived on.
    pub in_port: PortId,
    /// Port it would leave on (the peer of `in_port`).
    pub out_port: PortId,
    /// Address family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
    /// Source address (IPv4 as `u32 as u128`).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source and destination ports, when the packet is TCP or UDP with a readable header.
    pub ports: Option<(u16, u16)>,
    /// TCP flag byte, when the packet is TCP with a readable header.
    pub tcp_flags: Option<u8>,
}

/// The decision of the rule set for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Accept or drop.
    pub action: Action,
    /// Index of the matching rule, or `None` when the default policy decided.
    pub rule: Option<u16>,
}

/// A set of conntrack states, one bit per [`CtState`] (see [`CtState::bit`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtStateSet(u8);

impl CtStateSet {
    /// No state.
    pub const EMPTY: CtStateSet = CtStateSet(0);

    /// The set with `state` added.
    #[must_use]
    pub const fn with(self, state: CtState) -> CtStateSet {
        CtStateSet(self.0 | state.bit())
    }

    /// The set of `states`.
    pub fn of(states: &[CtState]) -> CtStateSet {
        states.iter().fold(CtStateSet::EMPTY, |set, &s| set.with(s))
    }

    /// Whether `state` is in the set.
    #[inline]
    pub const fn contains(self, state: CtState) -> bool {
        self.0 & state.bit() != 0
    }

    /// Whether the set is empty (such a matcher matches nothing).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The states in the set, in [`CtState::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = CtState> {
        CtState::ALL.into_iter().filter(move |&s| self.contains(s))
    }
}

impl fmt::Display for CtStateSet {
    /// Comma-separated upper-case names, as iptables prints `--ctstate`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for c in s.name().chars() {
                write!(f, "{}", c.to_ascii_uppercase())?;
            }
        }
        Ok(())
    }
}

/// A set of firewall ports, as a bitmask: port `p` is bit `p`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortSet(u64);

impl PortSet {
    /// No port.
    pub const EMPTY: PortSet = PortSet(0);

    /// The set with `port` added, or `None` if `port` is not below [`RuleSet::MAX_PORTS`].
    pub const fn with(self, port: PortId) -> Option<PortSet> {
        match 1u64.checked_shl(port.0 as u32) {
            Some(bit) => Some(PortSet(self.0 | bit)),
            None => None,
        }
    }

    /// Whether `port` is in the set (ports past [`RuleSet::MAX_PORTS`] never are).
    #[inline]
    pub const fn contains(self, port: PortId) -> bool {
        match 1u64.checked_shl(port.0 as u32) {
            Some(bit) => self.0 & bit != 0,
            None => false,
        }
    }

    /// Whether the set is empty (such a matcher matches nothing).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The ports in the set, in increasing order.
    pub fn iter(self) -> impl Iterator<Item = PortId> {
        (0..RuleSet::MAX_PORTS as u16)
            .map(PortId)
            .filter(move |&p| self.contains(p))
    }
}

/// An address prefix of one family, stored as `(net, mask)` so that matching is an AND and a
/// compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    family: Family,
    len: u8,
    net: u128,
    mask: u128,
}

/// Why a [`Prefix`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// The length exceeds the family's address width.
    LengthTooLong {
        /// The length given.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
    /// The address does not fit the family (an IPv4 address above `u32::MAX`).
    AddressTooWide,
    /// The address has bits set past the prefix length (as nftables, this is refused rather
    /// than masked: it is most often a typo for a different prefix).
    HostBitsSet {
        /// The prefix with the host bits cleared, to suggest.
        masked: Prefix,
    },
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::LengthTooLong { len, max } => {
                write!(
                    f,
                    "prefix length /{len} is longer than the address ({max} bits)"
                )
            }
            PrefixError::AddressTooWide => f.write_str("address does not fit its family"),
            PrefixError::HostBitsSet { masked } => {
                write!(
                    f,
                    "address has host bits set past the prefix length (did you mean {masked}?)"
                )
            }
        }
    }
}

impl std::error::Error for PrefixError {}

/// Address width in bits of `family`.
const fn family_bits(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

impl Prefix {
    /// The prefix `addr/len` of `family` (IPv4 addresses as `u32 as u128`).
    pub const fn new(family: Family, addr: u128, len: u8) -> Result<Prefix, PrefixError> {
        let bits = family_bits(family);
        if len > bits {
            return Err(PrefixError::LengthTooLong { len, max: bits });
        }
        if bits < 128 && addr >> bits != 0 {
            return Err(PrefixError::AddressTooWide);
        }
        // The width mask keeps an IPv4 mask inside the low 32 bits; `len == 0` is the empty
        // mask, which a shift by the full width could not express.
        let width = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (bits - len)) & width
        };
        let net = addr & mask;
        let prefix = Prefix {
            family,
            len,
            net,
            mask,
        };
        if net != addr {
            return Err(PrefixError::HostBitsSet { masked: prefix });
        }
        Ok(prefix)
    }

    /// The single address `addr` (`/32` or `/128`).
    pub const fn host(family: Family, addr: u128) -> Result<Prefix, PrefixError> {
        Prefix::new(family, addr, family_bits(family))
    }

    /// Address family.
    pub const fn family(&self) -> Family {
        self.family
    }

    /// The prefix length in bits.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` of `family` lies inside the prefix.
    #[inline]
    pub const fn contains(&self, family: Family, addr: u128) -> bool {
        family as u8 == self.family as u8 && addr & self.mask == self.net
    }
}

impl fmt::Display for Prefix {
    /// `10.0.0.0/8`, `2001:db8::/32`; a single address without its length, as nftables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::V4 => write!(f, "{}", Ipv4Addr::from(self.net as u32))?,
            Family::V6 => write!(f, "{}", Ipv6Addr::from(self.net))?,
        }
        if self.len != family_bits(self.family) {
            write!(f, "/{}", self.len)?;
        }
        Ok(())
    }
}

/// An inclusive range of TCP/UDP ports, `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// `lo..=hi`, or `None` if the range is reversed.
    pub const fn new(lo: u16, hi: u16) -> Option<PortRange> {
        if lo <= hi {
            Some(PortRange { lo, hi })
        } else {
            None
        }
    }

    /// The single port `port`.
    pub const fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Whether `port` lies inside.
    #[inline]
    pub const fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl fmt::Display for PortRange {
    /// `80`, or `1024:65535` as iptables writes a range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}:{}", self.lo, self.hi)
        }
    }
}

/// A TCP flags test: `(flags & mask) == comp`, or `!=` when negated (nftables
/// `tcp flags & (fin|syn|rst|ack) != syn`, iptables `[!] --tcp-flags MASK COMP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpFlagsMatch {
    mask: u8,
    comp: u8,
    negate: bool,
}

impl TcpFlagsMatch {
    /// iptables `--syn`: of SYN, ACK, FIN and RST exactly SYN is set.
    pub const SYN: TcpFlagsMatch = TcpFlagsMatch {
        mask: TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN | TcpFlags::RST,
        comp: TcpFlags::SYN,
        negate: false,
    };

    /// The test `(flags & mask) == comp` (`!=` if `negate`), or `None` when `comp` has a bit
    /// outside `mask`: such a test could never hold (or always would, negated), which is a
    /// mistake in the rule rather than a policy.
    pub const fn new(mask: u8, comp: u8, negate: bool) -> Option<TcpFlagsMatch> {
        if comp & !mask != 0 {
            None
        } else {
            Some(TcpFlagsMatch { mask, comp, negate })
        }
    }

    /// The same test, negated.
    #[must_use]
    pub const fn negated(self) -> TcpFlagsMatch {
        TcpFlagsMatch {
            negate: !self.negate,
            ..self
        }
    }

    /// Whether the flag byte `flags` passes the test.
    #[inline]
    pub const fn matches(&self, flags: u8) -> bool {
        (flags & self.mask == self.comp) != self.negate
    }
}

/// TCP flag names in iptables' order.
const FLAG_NAMES: [(u8, &str); 8] = [
    (TcpFlags::FIN, "FIN"),
    (TcpFlags::SYN, "SYN"),
    (TcpFlags::RST, "RST"),
    (TcpFlags::PSH, "PSH"),
    (TcpFlags::ACK, "ACK"),
    (TcpFlags::URG, "URG"),
    (TcpFlags::ECE, "ECE"),
    (TcpFlags::CWR, "CWR"),
];

/// Writes `bits` as iptables does: `SYN,ACK`, `NONE`, `ALL`.
fn write_flags(f: &mut fmt::Formatter<'_>, bits: u8) -> fmt::Result {
    match bits {
        0 => return f.write_str("NONE"),
        0xff => return f.write_str("ALL"),
        _ => {}
    }
    let mut first = true;
    for (bit, name) in FLAG_NAMES {
        if bits & bit != 0 {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    Ok(())
}

impl fmt::Display for TcpFlagsMatch {
    /// iptables notation: `--syn`, `! --syn`, `[!] --tcp-flags MASK COMP`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negate {
            f.write_str("! ")?;
        }
        if self.mask == Self::SYN.mask && self.comp == Self::SYN.comp {
            return f.write_str("--syn");
        }
        f.write_str("--tcp-flags ")?;
        write_flags(f, self.mask)?;
        f.write_str(" ")?;
        write_flags(f, self.comp)
    }
}

/// One compiled rule: every present matcher must hold; then `action` applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What to do with a matching packet.
    pub action: Action,
    /// Conntrack states (`ct state`). A packet that never reached conntrack does not match.
    pub ct: Option<CtStateSet>,
    /// Ingress ports.
    pub in_port: Option<PortSet>,
    /// Egress ports.
    pub out_port: Option<PortSet>,
    /// Address family.
    pub family: Option<Family>,
    /// L4 protocol number.
    pub proto: Option<u8>,
    /// Source prefixes; empty places no constraint.
    pub src: Box<[Prefix]>,
    /// Destination prefixes; empty places no constraint.
    pub dst: Box<[Prefix]>,
    /// Source port ranges; empty places no constraint. A packet without ports does not match.
    pub sport: Box<[PortRange]>,
    /// Destination port ranges; empty places no constraint.
    pub dport: Box<[PortRange]>,
    /// TCP flags test. A packet without a TCP header does not match.
    pub tcp_flags: Option<TcpFlagsMatch>,
    /// Record the packets this rule decides in the drop log (iptables `LOG`, nftables `log`),
    /// within the engine's rate limit. Not a matcher: it never changes what matches.
    pub log: bool,
}

impl Rule {
    /// A rule that matches every packet and applies `action`; set the matchers with struct
    /// update syntax (`Rule { ct: Some(..), ..Rule::new(Action::Accept) }`).
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ct: None,
            in_port: None,
            out_port: None,
            family: None,
            proto: None,
            src: Box::new([]),
            dst: Box::new([]),
            sport: Box::new([]),
            dport: Box::new([]),
            tcp_flags: None,
            log: false,
        }
    }

    /// Whether `p` satisfies every matcher of the rule.
    #[inline]
    pub fn matches(&self, p: &RuleInput) -> bool {
        // The scalar tests come first: each is a load and a compare, and they are what most
        // rules differ in. `&` rather than `&&` keeps them free of branches.
        let scalars = self
            .ct
            .is_none_or(|set| p.ct.is_some_and(|s| set.contains(s)))
            & self.in_port.is_none_or(|set| set.contains(p.in_port))
            & self.out_port.is_none_or(|set| set.contains(p.out_port))
            & self.family.is_none_or(|f| f == p.family)
            & self.proto.is_none_or(|n| n == p.proto)
            & self
                .tcp_flags
                .is_none_or(|t| p.tcp_flags.is_some_and(|b| t.matches(b)));
        scalars
            && any_prefix(&self.src, p.family, p.src)
            && any_prefix(&self.dst, p.family, p.dst)
            && any_port(&self.sport, p.ports.map(|(s, _)| s))
            && any_port(&self.dport, p.ports.map(|(_, d)| d))
    }
}

/// An empty list places no constraint; otherwise some prefix must contain `addr`.
#[inline]
fn any_prefix(list: &[Prefix], family: Family, addr: u128) -> bool {
    list.is_empty() || list.iter().any(|q| q.contains(family, addr))
}

/// An empty list places no constraint; otherwise the packet must have ports and some range
/// must contain this one.
#[inline]
fn any_port(list: &[PortRange], port: Option<u16>) -> bool {
    list.is_empty() || port.is_some_and(|n| list.iter().any(|r| r.contains(n)))
}

/// Why a [`RuleSet`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleSetError {
    /// More rules than [`RuleSet::MAX_RULES`].
    TooManyRules {
        /// Rules given.
        count: usize,
    },
    /// The number of names differs from the number of rules.
    NameCount {
        /// Rules given.
        rules: usize,
        /// Names given.
        names: usize,
    },
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSetError::TooManyRules { count } => {
                write!(
                    f,
                    "{count} rules: at most {} are supported",
                    RuleSet::MAX_RULES
                )
            }
            RuleSetError::NameCount { rules, names } => {
                write!(f, "{rules} rules but {names} names: give one name per rule")
            }
        }
    }
}

impl std::error::Error for RuleSetError {}

/// A compiled rule set: rules in order, their names, the default policy, and which of them
/// write to the drop log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    rules: Box<[Rule]>,
    names: Box<[Box<str>]>,
    default: Action,
    /// Whether the default policy's packets are logged.
    default_log: bool,
    /// Whether any rule or the default policy logs: the one test the pipeline makes per
    /// packet when nothing does.
    any_log: bool,
}

impl RuleSet {
    /// Most rules a set holds: a rule index must fit [`Decision::rule`].
    pub const MAX_RULES: usize = u16::MAX as usize;
    /// Most ports a [`PortSet`] can name.
    pub const MAX_PORTS: usize = 64;

    /// The rules `rules` in order, named `names` (one per rule), with default policy
    /// `default`.
    pub fn new(
        rules: Vec<Rule>,
        default: Action,
        names: Vec<String>,
    ) -> Result<RuleSet, RuleSetError> {
        if rules.len() > Self::MAX_RULES {
            return Err(RuleSetError::TooManyRules { count: rules.len() });
        }
        if names.len() != rules.len() {
            return Err(RuleSetError::NameCount {
                rules: rules.len(),
                names: names.len(),
            });
        }
        let any_log = rules.iter().any(|r| r.log);
        Ok(RuleSet {
            rules: rules.into_boxed_slice(),
            names: names.into_iter().map(String::into_boxed_str).collect(),
            default,
            default_log: false,
            any_log,
        })
    }

    /// The same set, with the default policy's packets logged (`log`) or not. A set starts
    /// with the default policy not logged.
    #[must_use]
    pub fn with_default_log(mut self, log: bool) -> RuleSet {
        self.default_log = log;
        self.any_log = log || self.rules.iter().any(|r| r.log);
        self
    }

    /// Whether the default policy's packets are logged.
    pub fn default_log(&self) -> bool {
        self.default_log
    }

    /// Whether some rule, or the default policy, logs.
    #[inline]
    pub fn any_log(&self) -> bool {
        self.any_log
    }

    /// Whether the packets decided by `rule` (`None`: the default policy, as in
    /// [`Decision::rule`]) are logged.
    #[inline]
    pub fn logs(&self, rule: Option<u16>) -> bool {
        match rule {
            Some(i) => self.rules.get(usize::from(i)).is_some_and(|r| r.log),
            None => self.default_log,
        }
    }

    /// Evaluate the rules in order; the first match decides, else the default policy.
    #[inline]
    pub fn evaluate(&self, input: &RuleInput) -> Decision {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(input) {
                // `new` bounds the length by `MAX_RULES`, so the index fits.
                return Decision {
                    action: rule.action,
                    rule: Some(i as u16),
                };
            }
        }
        Decision {
            action: self.default,
            rule: None,
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The default policy.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Name of rule `idx`, or `"?"` if there is no such rule.
    pub fn name(&self, idx: u16) -> &str {
        self.names.get(usize::from(idx)).map_or("?", |n| n)
    }

    /// Rule `idx`.
    pub fn rule(&self, idx: u16) -> Option<&Rule> {
        self.rules.get(usize::from(idx))
    }

    /// `(name, rule)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.names.iter().map(|n| &**n).zip(self.rules.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto;

    const V4_SRC: u128 = 0x0a00_0102; // 10.0.1.2
    const V4_DST: u128 = 0xc000_0201; // 192.0.2.1
    const V6_SRC: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001; // 2001:db8::1

    fn tcp_input(flags: u8) -> RuleInput {
        RuleInput {
            ct: Some(CtState::New),
            in_port: PortId(0),
            out_port: PortId(1),
            family: Family::V4,
            proto: proto::TCP,
            src: V4_SRC,
            dst: V4_DST,
            ports: Some((40000, 80)),
            tcp_flags: Some(flags),
        }
    }

    fn accept() -> Rule {
        Rule::new(Action::Accept)
    }

    fn ports(list: &[u16]) -> PortSet {
        list.iter().fold(PortSet::EMPTY, |s, &p| {
            s.with(PortId(p)).expect("port < 64")
        })
    }

    fn v4(addr: u128, len: u8) -> Prefix {
        Prefix::new(Family::V4, addr, len).expect("valid prefix")
    }

    #[test]
    fn empty_rule_matches_everything() {
        assert!(accept().matches(&tcp_input(TcpFlags::SYN)));
        let untracked = RuleInput {
            ct: None,
            ports: None,
            tcp_flags: None,
            ..tcp_input(0)
        };
        assert!(accept().matches(&untracked));
    }

    #[test]
    fn ct_state_set_matches_listed_states_only() {
        let rule = Rule {
            ct: Some(CtStateSet::of(&[CtState::Established, CtState::Related])),
            ..accept()
        };
        let mut p = tcp_input(TcpFlags::ACK);
        for s in CtState::ALL {
            p.ct = Some(s);
            let want = matches!(s, CtState::Established | CtState::Related);
            assert_eq!(rule.matches(&p), want, "{s:?}");
        }
    }

    #[test]
    fn ct_state_never_matches_a_packet_that_skipped_conntrack() {
        let every = CtState::ALL
            .iter()
            .fold(CtStateSet::EMPTY, |s, &c| s.with(c));
        let rule = Rule {
            ct: Some(every),
            ..accept()
        };
        let p = RuleInput {
            ct: None,
            ..tcp_input(TcpFlags::ACK)
        };
        assert!(!rule.matches(&p));
    }

    #[test]
    fn in_and_out_port_sets() {
        let rule = Rule {
            in_port: Some(ports(&[0, 2])),
            out_port: Some(ports(&[1])),
            ..accept()
        };
        let p = tcp_input(TcpFlags::SYN);
        assert!(rule.matches(&p));
        assert!(rule.matches(&RuleInput {
            in_port: PortId(2),
            ..p
        }));
        assert!(!rule.matches(&RuleInput {
            in_port: PortId(1),
            ..p
        }));
        assert!(!rule.matches(&RuleInput {
            out_port: PortId(0),
            ..p
        }));
        assert!(!rule.matches(&RuleInput {
            in_port: PortId(1000),
            ..p
        }));
    }

    #[test]
    fn port_set_rejects_ports_past_its_width() {
        assert!(PortSet::EMPTY.with(PortId(63)).is_some());
        assert!(PortSet::EMPTY.with(PortId(64)).is_none());
        assert!(!PortSet(u64::MAX).contains(PortId(64)));
        assert_eq!(
            ports(&[3, 1]).iter().collect::<Vec<_>>(),
            [PortId(1), PortId(3)]
        );
    }

    #[test]
    fn family_and_proto() {
        let p = tcp_input(TcpFlags::SYN);
        assert!(
            Rule {
                family: Some(Family::V4),
                ..accept()
            }
            .matches(&p)
        );
        assert!(
            !Rule {
                family: Some(Family::V6),
                ..accept()
            }
            .matches(&p)
        );
        assert!(
            Rule {
                proto: Some(proto::TCP),
                ..accept()
            }
            .matches(&p)
        );
        assert!(
            !Rule {
                proto: Some(proto::UDP),
                ..accept()
            }
            .matches(&p)
        );
    }

    #[test]
    fn source_and_destination_prefixes() {
        let p = tcp_input(TcpFlags::SYN);
        let src_in = Rule {
            src: Box::new([v4(0x0a00_0000, 8)]),
            ..accept()
        };
        assert!(src_in.matches(&p));
        let src_out = Rule {
            src: Box::new([v4(0x0b00_0000, 8)]),
            ..accept()
        };
        assert!(!src_out.matches(&p));
        let either = Rule {
            src: Box::new([v4(0x0b00_0000, 8), v4(0x0a00_0100, 24)]),
            ..accept()
        };
        assert!(either.matches(&p));
        let dst_host = Rule {
            dst: Box::new([Prefix::host(Family::V4, V4_DST).unwrap()]),
            ..accept()
        };
        assert!(dst_host.matches(&p));
        assert!(!dst_host.matches(&RuleInput {
            dst: V4_DST + 1,
            ..p
        }));
        let any_v4 = Rule {
            src: Box::new([v4(0, 0)]),
            ..accept()
        };
        assert!(any_v4.matches(&p));
    }

    #[test]
    fn v4_prefix_never_matches_v6_packet() {
        let any_v4 = Rule {
            src: Box::new([v4(0, 0)]),
            ..accept()
        };
        let p6 = RuleInput {
            family: Family::V6,
            src: V6_SRC,
            ..tcp_input(0)
        };
        assert!(!any_v4.matches(&p6));
        // Even when the low bits of the v6 address look like the v4 prefix.
        let low = RuleInput {
            family: Family::V6,
            src: V4_SRC,
            ..tcp_input(0)
        };
        let v4_exact = Rule {
            src: Box::new([v4(V4_SRC, 32)]),
            ..accept()
        };
        assert!(!v4_exact.matches(&low));
        let v6 = Prefix::new(Family::V6, 0x2001_0db8 << 96, 32).unwrap();
        let v6_rule = Rule {
            src: Box::new([v6]),
            ..accept()
        };
        assert!(v6_rule.matches(&p6));
        assert!(!v6_rule.matches(&tcp_input(0)));
    }

    #[test]
    fn prefix_construction_checks() {
        assert_eq!(
            Prefix::new(Family::V4, 0x0a00_0000, 33),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert_eq!(
            Prefix::new(Family::V4, 1 << 32, 0),
            Err(PrefixError::AddressTooWide)
        );
        let Err(PrefixError::HostBitsSet { masked }) = Prefix::new(Family::V4, 0x0a00_0001, 8)
        else {
            panic!("host bits accepted");
        };
        assert_eq!(masked.to_string(), "10.0.0.0/8");
        assert!(Prefix::new(Family::V6, u128::MAX, 128).is_ok());
        assert!(Prefix::new(Family::V6, 0, 0).is_ok());
        assert_eq!(v4(V4_DST, 32).to_string(), "192.0.2.1");
        assert_eq!(
            Prefix::new(Family::V6, 0x2001_0db8 << 96, 32)
                .unwrap()
                .to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn port_ranges_need_ports() {
        let p = tcp_input(TcpFlags::SYN);
        let web = Rule {
            dport: Box::new([PortRange::single(443), PortRange::new(80, 81).unwrap()]),
            ..accept()
        };
        assert!(web.matches(&p));
        assert!(!web.matches(&RuleInput {
            ports: Some((40000, 82)),
            ..p
        }));
        assert!(!web.matches(&RuleInput { ports: None, ..p }));
        let high_src = Rule {
            sport: Box::new([PortRange::new(1024, 65535).unwrap()]),
            ..accept()
        };
        assert!(high_src.matches(&p));
        assert!(!high_src.matches(&RuleInput {
            ports: Some((1023, 80)),
            ..p
        }));
        assert_eq!(PortRange::new(2, 1), None);
        assert_eq!(
            PortRange::new(1024, 65535).unwrap().to_string(),
            "1024:65535"
        );
    }

    #[test]
    fn tcp_flags_compare_under_mask() {
        let syn = Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN),
            ..accept()
        };
        let not_syn = Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN.negated()),
            ..accept()
        };
        let cases = [
            (TcpFlags::SYN, true),
            (TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, true), // outside the mask
            (TcpFlags::SYN | TcpFlags::PSH, true),
            (TcpFlags::SYN | TcpFlags::ACK, false),
            (TcpFlags::ACK, false),
            (TcpFlags::SYN | TcpFlags::FIN, false),
            (TcpFlags::RST, false),
            (0, false),
        ];
        for (flags, is_syn) in cases {
            assert_eq!(syn.matches(&tcp_input(flags)), is_syn, "{flags:#x}");
            assert_eq!(not_syn.matches(&tcp_input(flags)), !is_syn, "{flags:#x}");
        }
    }

    #[test]
    fn tcp_flags_never_match_without_a_tcp_header() {
        let udp = RuleInput {
            proto: proto::UDP,
            tcp_flags: None,
            ..tcp_input(0)
        };
        assert!(
            !Rule {
                tcp_flags: Some(TcpFlagsMatch::SYN),
                ..accept()
            }
            .matches(&udp)
        );
        assert!(
            !Rule {
                tcp_flags: Some(TcpFlagsMatch::SYN.negated()),
                ..accept()
            }
            .matches(&udp)
        );
    }

    #[test]
    fn tcp_flags_construction_and_display() {
        assert_eq!(
            TcpFlagsMatch::new(TcpFlags::SYN, TcpFlags::ACK, false),
            None
        );
        let m = TcpFlagsMatch::new(TcpFlags::SYN | TcpFlags::ACK, TcpFlags::SYN, true).unwrap();
        assert_eq!(m.to_string(), "! --tcp-flags SYN,ACK SYN");
        assert_eq!(TcpFlagsMatch::SYN.to_string(), "--syn");
        assert_eq!(TcpFlagsMatch::SYN.negated().to_string(), "! --syn");
        assert_eq!(
            TcpFlagsMatch::new(0xff, 0, false).unwrap().to_string(),
            "--tcp-flags ALL NONE"
        );
    }

    #[test]
    fn all_matchers_are_anded() {
        let rule = Rule {
            ct: Some(CtStateSet::EMPTY.with(CtState::New)),
            in_port: Some(ports(&[0])),
            proto: Some(proto::TCP),
            dport: Box::new([PortRange::single(80)]),
            tcp_flags: Some(TcpFlagsMatch::SYN),
            ..accept()
        };
        let p = tcp_input(TcpFlags::SYN);
        assert!(rule.matches(&p));
        assert!(!rule.matches(&RuleInput {
            ct: Some(CtState::Established),
            ..p
        }));
        assert!(!rule.matches(&RuleInput {
            in_port: PortId(1),
            ..p
        }));
        assert!(!rule.matches(&RuleInput {
            ports: Some((1, 81)),
            ..p
        }));
        assert!(!rule.matches(&tcp_input(TcpFlags::ACK)));
    }

    /// A small rule set for these tests: accept established/related, accept new from port 0
    /// to port 1, drop invalid, default drop. It is shaped like the conformance policy but is
    /// not it: that one is `config/conformance/classic*.yaml`, compiled and evaluated by
    /// `ctfw-config`'s test `classic_rules_compile_and_decide`.
    fn three_rules() -> RuleSet {
        let rules = vec![
            Rule {
                ct: Some(CtStateSet::of(&[CtState::Established, CtState::Related])),
                ..accept()
            },
            Rule {
                ct: Some(CtStateSet::of(&[CtState::New])),
                in_port: Some(ports(&[0])),
                out_port: Some(ports(&[1])),
                ..accept()
            },
            Rule {
                ct: Some(CtStateSet::of(&[CtState::Invalid])),
                ..Rule::new(Action::Drop)
            },
        ];
        let names = ["estrel_accept", "new_c2s_accept", "invalid_drop"]
            .map(String::from)
            .to_vec();
        RuleSet::new(rules, Action::Drop, names).expect("valid rule set")
    }

    #[test]
    fn first_match_wins_then_default() {
        let set = three_rules();
        let p = tcp_input(TcpFlags::SYN);
        assert_eq!(
            set.evaluate(&p),
            Decision {
                action: Action::Accept,
                rule: Some(1)
            }
        );
        let est = RuleInput {
            ct: Some(CtState::Established),
            in_port: PortId(1),
            ..p
        };
        assert_eq!(
            set.evaluate(&est),
            Decision {
                action: Action::Accept,
                rule: Some(0)
            }
        );
        let inv = RuleInput {
            ct: Some(CtState::Invalid),
            ..p
        };
        assert_eq!(
            set.evaluate(&inv),
            Decision {
                action: Action::Drop,
                rule: Some(2)
            }
        );
        let s2c_new = RuleInput {
            in_port: PortId(1),
            out_port: PortId(0),
            ..p
        };
        assert_eq!(
            set.evaluate(&s2c_new),
            Decision {
                action: Action::Drop,
                rule: None
            }
        );
        let unparsed = RuleInput { ct: None, ..p };
        assert_eq!(
            set.evaluate(&unparsed),
            Decision {
                action: Action::Drop,
                rule: None
            }
        );
    }

    #[test]
    fn earlier_rule_shadows_later() {
        let rules = vec![Rule::new(Action::Drop), Rule::new(Action::Accept)];
        let set = RuleSet::new(rules, Action::Accept, vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(
            set.evaluate(&tcp_input(0)),
            Decision {
                action: Action::Drop,
                rule: Some(0)
            }
        );
    }

    #[test]
    fn default_policy_of_an_empty_set() {
        let p = tcp_input(TcpFlags::SYN);
        let accept_all = RuleSet::new(Vec::new(), Action::Accept, Vec::new()).expect("no rules");
        assert_eq!(
            accept_all.evaluate(&p),
            Decision {
                action: Action::Accept,
                rule: None
            }
        );
        assert!(accept_all.is_empty());
        assert_eq!(accept_all.default_action(), Action::Accept);
    }

    #[test]
    fn names_and_accessors() {
        let set = three_rules();
        assert_eq!(set.len(), 3);
        assert_eq!(set.name(1), "new_c2s_accept");
        assert_eq!(set.name(3), "?");
        assert!(set.rule(2).is_some_and(|r| r.action == Action::Drop));
        assert_eq!(
            set.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["estrel_accept", "new_c2s_accept", "invalid_drop"]
        );
    }

    #[test]
    fn construction_errors() {
        assert_eq!(
            RuleSet::new(vec![accept()], Action::Drop, vec![]),
            Err(RuleSetError::NameCount { rules: 1, names: 0 })
        );
        let many = vec![accept(); RuleSet::MAX_RULES + 1];
        let names = vec![String::new(); RuleSet::MAX_RULES + 1];
        assert_eq!(
            RuleSet::new(many, Action::Drop, names),
            Err(RuleSetError::TooManyRules {
                count: RuleSet::MAX_RULES + 1
            })
        );
    }

    #[test]
    fn log_flags_per_rule_and_default() {
        let logged = Rule {
            log: true,
            ..Rule::new(Action::Drop)
        };
        let set = RuleSet::new(
            vec![accept(), logged],
            Action::Drop,
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        assert!(set.any_log());
        assert!(!set.logs(Some(0)));
        assert!(set.logs(Some(1)));
        assert!(!set.logs(Some(2)), "no such rule");
        assert!(!set.logs(None));
        assert!(!set.default_log());
        let set = set.with_default_log(true);
        assert!(set.logs(None) && set.default_log());

        let quiet = RuleSet::new(vec![accept()], Action::Drop, vec!["a".into()]).unwrap();
        assert!(!quiet.any_log());
        assert!(quiet.clone().with_default_log(true).any_log());
        assert!(
            !quiet
                .with_default_log(true)
                .with_default_log(false)
                .any_log()
        );
    }

    #[test]
    fn state_set_display() {
        let s = CtStateSet::of(&[CtState::Related, CtState::Established]);
        assert_eq!(s.to_string(), "ESTABLISHED,RELATED");
    }
}
