//! Connection tracking semantics, protocol by protocol, after Linux nf_conntrack.
//!
//! The per-protocol trackers ([`tcp`], [`udp`], [`icmp`], [`gre`]) are pure functions over a
//! connection's state and one packet; they know nothing of the table. This module holds what
//! they share: the conntrack state a packet is given ([`CtState`]), the entry status bits
//! ([`CtFlags`]), the per-protocol state stored in an entry ([`ProtoState`]) and the timeouts.

pub mod gre;
pub mod icmp;
pub mod tcp;
pub mod udp;

use crate::time::Ticks;

/// The conntrack state a packet is given (`ct state` in nftables, `--ctstate` in iptables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CtState {
    /// First packet(s) of a connection: ORIGINAL direction, no reply seen yet.
    New = 0,
    /// Part of a connection that has seen traffic both ways (or a reply-direction packet).
    Established = 1,
    /// An ICMP error quoting a tracked connection.
    Related = 2,
    /// Connection tracking could not make sense of the packet.
    Invalid = 3,
    /// Deliberately not tracked (IPv6 neighbour discovery and MLD, fragments by policy).
    Untracked = 4,
}

impl CtState {
    /// Every state, in discriminant order.
    pub const ALL: [CtState; 5] = [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ];

    /// Lower-case name as nftables and the conformance records write it.
    pub const fn name(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        }
    }

    /// Bit for state sets (rules match a set of states).
    #[inline]
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// What a protocol tracker decided for one packet of a connection: Linux's return value of
/// `nf_conntrack_handle_packet` (`NF_ACCEPT`, `-NF_ACCEPT`, `NF_REPEAT`) plus the deletion
/// some trackers ask for. The trackers that can only refresh (UDP, ICMP, GRE, generic) always
/// accept; TCP uses every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackVerdict {
    /// Accepted, and the entry refreshed: the state, the windows and the deadline were
    /// updated (Linux reaches `nf_ct_refresh_acct`, which also counts the packet in the
    /// entry's accounting).
    Accept,
    /// Accepted without a refresh (Linux returns `NF_ACCEPT` before `nf_ct_refresh_acct`): a
    /// segment the TCP tracker ignores, or a SYN retransmitted in SYN_SENT, which must not
    /// renew the deadline; why, for the counters. Not counted by accounting.
    Ignore(crate::Ignored),
    /// INVALID (Linux `-NF_ACCEPT`), with why.
    Invalid(crate::Reason),
    /// Accept the packet and delete the entry (an RST before any reply).
    Kill,
    /// Delete the entry and handle the packet again as a new connection (`-NF_REPEAT`).
    Reopen,
}

/// Entry status bits. The trackers read `SEEN_REPLY` (as it was before the packet) and set
/// `ASSURED`; the pipeline sets `SEEN_REPLY`; the table keeps its own bookkeeping in the other
/// bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtFlags(pub u8);

impl CtFlags {
    /// A packet was seen in the REPLY direction (Linux `IPS_SEEN_REPLY`; its absence is
    /// printed `[UNREPLIED]`).
    pub const SEEN_REPLY: u8 = 0x01;
    /// The connection is assured (Linux `IPS_ASSURED`): never evicted to make room, unless
    /// its protocol says it is closing ([`ProtoState::can_early_drop`]).
    pub const ASSURED: u8 = 0x02;
    /// Table bookkeeping: the ORIGINAL tuple runs `hi -> lo` of the canonical key.
    pub const ORIG_SWAPPED: u8 = 0x04;

    /// Whether a reply has been seen.
    #[inline]
    pub const fn seen_reply(self) -> bool {
        self.0 & Self::SEEN_REPLY != 0
    }
    /// Whether the entry is assured.
    #[inline]
    pub const fn assured(self) -> bool {
        self.0 & Self::ASSURED != 0
    }
    /// Whether the ORIGINAL tuple runs `hi -> lo` of the canonical key.
    #[inline]
    pub const fn orig_swapped(self) -> bool {
        self.0 & Self::ORIG_SWAPPED != 0
    }
    /// Set `bits`.
    #[inline]
    pub fn set(&mut self, bits: u8) {
        self.0 |= bits;
    }
    /// Clear `bits`.
    #[inline]
    pub fn clear(&mut self, bits: u8) {
        self.0 &= !bits;
    }
}

/// Protocol-specific state held in a table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoState {
    /// TCP: the state machine and both directions' windows.
    Tcp(tcp::TcpConn),
    /// UDP: when the connection becomes a "stream".
    Udp(udp::UdpConn),
    /// ICMP / ICMPv6 queries: nothing beyond the key.
    Icmp,
    /// GRE (Linux `nf_conntrack_proto_gre`): unreplied, then a stream once seen both ways.
    Gre,
    /// Any other protocol (generic tracking, like Linux's `nf_conntrack_generic`).
    Generic,
}

impl ProtoState {
    /// Linux's `l4proto->can_early_drop`: whether an ASSURED entry of this protocol may be
    /// evicted under table pressure. Only TCP's closing states (`tcp_can_early_drop`); UDP,
    /// ICMP, GRE and the generic tracker define no such hook. (Linux's SCTP tracker does, for
    /// its SHUTDOWN states; ctfw tracks SCTP generically.)
    #[inline]
    pub fn can_early_drop(&self) -> bool {
        match self {
            ProtoState::Tcp(c) => c.can_early_drop(),
            ProtoState::Udp(_) | ProtoState::Icmp | ProtoState::Gre | ProtoState::Generic => false,
        }
    }
}

/// Timeouts of the non-TCP protocols (Linux defaults in [`Default`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtherTimeouts {
    /// UDP before a reply or within 2 s of creation (`nf_conntrack_udp_timeout`, 30 s).
    pub udp_unreplied: Ticks,
    /// UDP seen both ways and still active after 2 s (`nf_conntrack_udp_timeout_stream`, 120 s).
    pub udp_stream: Ticks,
    /// ICMP queries (`nf_conntrack_icmp_timeout`, 30 s).
    pub icmp: Ticks,
    /// ICMPv6 queries (`nf_conntrack_icmpv6_timeout`, 30 s).
    pub icmpv6: Ticks,
    /// GRE before a reply (`nf_conntrack_gre_timeout`, 30 s).
    pub gre_unreplied: Ticks,
    /// GRE seen both ways (`nf_conntrack_gre_timeout_stream`, 180 s).
    pub gre_stream: Ticks,
    /// Any other protocol (`nf_conntrack_generic_timeout`, 600 s).
    pub generic: Ticks,
}

impl Default for OtherTimeouts {
    fn default() -> Self {
        OtherTimeouts {
            udp_unreplied: Ticks::from_secs(30),
            udp_stream: Ticks::from_secs(120),
            icmp: Ticks::from_secs(30),
            icmpv6: Ticks::from_secs(30),
            gre_unreplied: Ticks::from_secs(30),
            gre_stream: Ticks::from_secs(180),
            generic: Ticks::from_secs(600),
        }
    }
}

/// All tracking knobs of one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TrackConfig {
    /// TCP knobs and timeouts.
    pub tcp: tcp::TcpConfig,
    /// UDP, ICMP, GRE and generic timeouts.
    pub other: OtherTimeouts,
}

/// The parts of a table entry that trackers read and write besides their own state: the
/// status bits and the deadline. Trackers get a copy with `now` and the caller stores it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Status bits (`SEEN_REPLY`, `ASSURED`).
    pub flags: CtFlags,
    /// When the entry expires.
    pub expires: crate::time::Tick,
}
