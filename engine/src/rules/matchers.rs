//! The matcher types a [`Rule`] is built from: conntrack state sets, port sets, address
//! prefixes, port ranges and TCP flag tests. Each constructor establishes the invariant listed
//! in the parent module's documentation, so matching never has to check it. Last, the form the
//! scan of small sets tests a rule's scalar matchers in ([`Scalars`]).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::{PortId, Rule, RuleInput, RuleSet};
use crate::track::CtState;
use crate::wire::{Family, TcpFlags};

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

    /// The first and last address inside the prefix (IPv4 as `u32 as u128`).
    pub const fn bounds(&self) -> (u128, u128) {
        let width = if self.family as u8 == Family::V4 as u8 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        (self.net, self.net | (!self.mask & width))
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

    /// The first and last port inside.
    pub const fn bounds(&self) -> (u16, u16) {
        (self.lo, self.hi)
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

    /// The flag bits the test looks at: packets whose flags agree under this mask are
    /// matched alike.
    pub const fn mask(&self) -> u8 {
        self.mask
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

/// A rule's scalar matchers (conntrack state, ingress and egress port, family, protocol, TCP
/// flags) compiled into masks when the set is built, for the scan of
/// [`RuleSet::evaluate`]: with the packet's values as one-hot bits ([`ScalarKey`]), a rule
/// accepts them when no bit falls in what it refuses, so the five matchers cost a few ANDs
/// and no test of whether each is present.
///
/// The refused bits are asked of the rule's own tests, value by value (`Rule::ct_ok` and the
/// others, which `Rule::matches` applies), so the two agree by construction; the property
/// tests of the classifier (`classify/tests.rs`) also hold [`RuleSet::evaluate`] to
/// [`RuleSet::evaluate_scan`], which applies `Rule::matches`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Scalars {
    /// [`ScalarKey::small`] bits the rule refuses.
    refuse: u16,
    /// Ingress ports below [`RuleSet::MAX_PORTS`] the rule refuses, one bit per port.
    in_refuse: u64,
    /// Egress ports likewise.
    out_refuse: u64,
    /// The protocol the rule wants under `proto_mask` (`0xff`, or 0 without a protocol test).
    proto: u8,
    proto_mask: u8,
    /// The TCP flags test (all 0 without one, which every flag byte passes; a packet without
    /// a TCP header is refused through `refuse`).
    flags_mask: u8,
    flags_comp: u8,
    flags_negate: bool,
    /// The rule has address or port lists, which `Rule::lists_match` checks after these.
    pub(super) lists: bool,
}

/// A packet's scalar fields as [`Scalars`] reads them, built once per evaluation.
#[derive(Clone, Copy, Debug)]
pub(super) struct ScalarKey {
    /// One bit per field: the conntrack state (bits 0..6: no conntrack, then each
    /// [`CtState`]), the family (bit 6 IPv4, 7 IPv6), an ingress (bit 8) or egress (bit 9)
    /// port past the last a [`PortSet`] names, no TCP header (bit 10).
    small: u16,
    /// The ingress port's bit, 0 for a port past the last a [`PortSet`] names.
    in_port: u64,
    /// The egress port's bit likewise.
    out_port: u64,
    proto: u8,
    /// The TCP flag byte, 0 without a TCP header.
    flags: u8,
}

const CT_BITS: u32 = 1 + CtState::ALL.len() as u32;
const FAMILY_SHIFT: u32 = CT_BITS;
const IN_PAST: u16 = 1 << (FAMILY_SHIFT + 2);
const OUT_PAST: u16 = IN_PAST << 1;
const NO_TCP: u16 = OUT_PAST << 1;

/// The conntrack bit: bit 0 for a packet that never reached conntrack, else bit 1 + the state.
#[inline]
const fn ct_bit(ct: Option<CtState>) -> u16 {
    match ct {
        Some(s) => 1 << (1 + s as u32),
        None => 1,
    }
}

#[inline]
const fn family_bit(family: Family) -> u16 {
    match family {
        Family::V4 => 1 << FAMILY_SHIFT,
        Family::V6 => 1 << (FAMILY_SHIFT + 1),
    }
}

/// A firewall port's bit, 0 past the last a [`PortSet`] names.
#[inline]
const fn port_bit(port: PortId) -> u64 {
    match 1u64.checked_shl(port.0 as u32) {
        Some(bit) => bit,
        None => 0,
    }
}

impl ScalarKey {
    #[inline]
    pub(super) fn of(p: &RuleInput) -> ScalarKey {
        let past = |port: PortId, bit: u16| if port_bit(port) == 0 { bit } else { 0 };
        ScalarKey {
            small: ct_bit(p.ct)
                | family_bit(p.family)
                | past(p.in_port, IN_PAST)
                | past(p.out_port, OUT_PAST)
                | if p.tcp_flags.is_none() { NO_TCP } else { 0 },
            in_port: port_bit(p.in_port),
            out_port: port_bit(p.out_port),
            proto: p.proto,
            flags: p.tcp_flags.unwrap_or(0),
        }
    }
}

impl Scalars {
    /// `rule`'s scalar matchers.
    pub(super) fn of(rule: &Rule) -> Scalars {
        let mut refuse = 0;
        let none_or_states = core::iter::once(None).chain(CtState::ALL.map(Some));
        for ct in none_or_states {
            if !rule.ct_ok(ct) {
                refuse |= ct_bit(ct);
            }
        }
        for family in [Family::V4, Family::V6] {
            if !rule.family_ok(family) {
                refuse |= family_bit(family);
            }
        }
        // Every port past the last a set names is alike: `RuleSet::MAX_PORTS` stands for them.
        let past = PortId(RuleSet::MAX_PORTS as u16);
        if !rule.in_port_ok(past) {
            refuse |= IN_PAST;
        }
        if !rule.out_port_ok(past) {
            refuse |= OUT_PAST;
        }
        if !rule.tcp_flags_ok(None) {
            refuse |= NO_TCP;
        }
        let (mut in_refuse, mut out_refuse) = (0, 0);
        for port in (0..RuleSet::MAX_PORTS as u16).map(PortId) {
            if !rule.in_port_ok(port) {
                in_refuse |= port_bit(port);
            }
            if !rule.out_port_ok(port) {
                out_refuse |= port_bit(port);
            }
        }
        let flags = rule.tcp_flags.unwrap_or(TcpFlagsMatch {
            mask: 0,
            comp: 0,
            negate: false,
        });
        Scalars {
            refuse,
            in_refuse,
            out_refuse,
            proto: rule.proto.unwrap_or(0),
            proto_mask: if rule.proto.is_some() { 0xff } else { 0 },
            flags_mask: flags.mask,
            flags_comp: flags.comp,
            flags_negate: flags.negate,
            lists: !(rule.src.is_empty()
                && rule.dst.is_empty()
                && rule.sport.is_empty()
                && rule.dport.is_empty()),
        }
    }

    /// Whether the packet `k` passes every scalar matcher.
    #[inline]
    pub(super) fn matches(&self, k: &ScalarKey) -> bool {
        let refused = u64::from(k.small & self.refuse)
            | k.in_port & self.in_refuse
            | k.out_port & self.out_refuse
            | u64::from((k.proto ^ self.proto) & self.proto_mask);
        refused == 0 && (k.flags & self.flags_mask == self.flags_comp) != self.flags_negate
    }
}
