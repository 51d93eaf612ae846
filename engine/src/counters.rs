//! Why a packet was dropped or judged INVALID, and the per-worker counters they index.
//!
//! [`Reason`] is a `Copy` enum whose discriminant indexes a flat counter array, so counting on
//! the hot path is one add. Every malformed input the engine can meet has its own reason: a
//! packet is never dropped silently.
//!
//! Reasons fall in three classes ([`ReasonClass`]):
//! - `Unparsed`: the frame never reached connection tracking (like Linux's IP input dropping a
//!   bad IPv4 header before netfilter sees it); the packet is dropped and its `ct_state` is none.
//! - `Invalid`: connection tracking judged the packet INVALID (a malformed L4 header, a bad
//!   checksum, an impossible TCP flag combination, an out-of-window segment, ...). The rule set
//!   still decides its fate, exactly as `ct state invalid` rules do in nftables.
//! - `Policy`: the packet was tracked and then dropped by a rule, the default policy, or
//!   resource limits (a full table).
//!
//! Packets the TCP tracker lets through without updating their connection are neither
//! dropped nor INVALID; they are counted apart, by [`Ignored`] reason.

use core::fmt;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident = $text:literal, $class:ident; )*) => {
        /// Why a packet was dropped or marked INVALID. Indexes [`Counters`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Reason {
            $( $(#[$doc])* $name, )*
        }

        impl Reason {
            /// Every reason, in discriminant order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];
            /// Number of reasons (the length of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// A stable snake_case name for logs, metrics and summaries.
            pub const fn name(self) -> &'static str {
                match self { $(Reason::$name => $text,)* }
            }

            /// Which class of outcome this reason belongs to.
            pub const fn class(self) -> ReasonClass {
                match self { $(Reason::$name => ReasonClass::$class,)* }
            }
        }
    };
}

reasons! {
    // ---- frame and network layer: dropped before connection tracking ----
    /// Frame shorter than an Ethernet header.
    EthTruncated = "eth_truncated", Unparsed;
    /// A VLAN tag was cut short.
    VlanTruncated = "vlan_truncated", Unparsed;
    /// More stacked VLAN tags than the parser strips (two: `wire::ethernet::MAX_VLAN_TAGS`).
    VlanTooManyTags = "vlan_too_many_tags", Unparsed;
    /// Not IPv4 or IPv6 (ARP, LLDP, ...) and the configuration drops non-IP frames.
    NonIp = "non_ip", Unparsed;
    /// Shorter than a minimal IPv4 header.
    Ipv4Truncated = "ipv4_truncated", Unparsed;
    /// IPv4 version field is not 4 (or the EtherType lies).
    Ipv4BadVersion = "ipv4_bad_version", Unparsed;
    /// IPv4 IHL below 5 or beyond the packet.
    Ipv4BadIhl = "ipv4_bad_ihl", Unparsed;
    /// IPv4 total length smaller than the header or larger than the frame.
    Ipv4BadTotalLength = "ipv4_bad_total_length", Unparsed;
    /// IPv4 header checksum does not verify.
    Ipv4BadChecksum = "ipv4_bad_checksum", Unparsed;
    /// IPv4 options are malformed.
    Ipv4BadOptions = "ipv4_bad_options", Unparsed;
    /// Shorter than the fixed IPv6 header.
    Ipv6Truncated = "ipv6_truncated", Unparsed;
    /// IPv6 version field is not 6.
    Ipv6BadVersion = "ipv6_bad_version", Unparsed;
    /// IPv6 payload length runs past the frame (or is a jumbogram, unsupported).
    Ipv6BadPayloadLength = "ipv6_bad_payload_length", Unparsed;
    /// An IPv6 extension header is cut short or malformed.
    Ipv6BadExtHeader = "ipv6_bad_ext_header", Unparsed;
    /// IPv6 source or destination Linux drops at IP input (e.g. multicast source).
    Ipv6BadAddress = "ipv6_bad_address", Unparsed;
    /// An IPv4 or IPv6 fragment, dropped by the fragment policy (the default).
    Fragment = "fragment", Unparsed;

    // ---- transport layer, malformed: connection tracking says INVALID ----
    /// TCP header cut short, or data offset beyond the segment.
    TcpTruncated = "tcp_truncated", Invalid;
    /// TCP data offset below 5 words.
    TcpBadDataOffset = "tcp_bad_data_offset", Invalid;
    /// TCP checksum does not verify.
    TcpBadChecksum = "tcp_bad_checksum", Invalid;
    /// A TCP flag combination Linux rejects (SYN+FIN, SYN+RST, no flags, FIN without ACK, ...).
    TcpBadFlags = "tcp_bad_flags", Invalid;
    /// UDP header cut short.
    UdpTruncated = "udp_truncated", Invalid;
    /// UDP length field below 8 or beyond the IP payload (a shorter one is accepted, as
    /// `udp_error` accepts it).
    UdpBadLength = "udp_bad_length", Invalid;
    /// UDP checksum does not verify.
    UdpBadChecksum = "udp_bad_checksum", Invalid;
    /// ICMP / ICMPv6 header cut short.
    IcmpTruncated = "icmp_truncated", Invalid;
    /// ICMP / ICMPv6 checksum does not verify.
    IcmpBadChecksum = "icmp_bad_checksum", Invalid;
    /// An ICMP error whose quoted packet cannot be parsed.
    IcmpBadInner = "icmp_bad_inner", Invalid;
    /// An ICMP error quoting a flow that is not tracked.
    IcmpNoRelated = "icmp_no_related", Invalid;
    /// An ICMPv4 type above 18, which Linux calls "invalid icmp type".
    IcmpBadType = "icmp_bad_type", Invalid;
    /// An ICMP error whose outer destination is not the quoted packet's source.
    IcmpBadErrorAddress = "icmp_bad_error_address", Invalid;
    /// A GRE version 1 (PPTP) packet that does not carry PPP: Linux cannot build its tuple.
    GreUnsupported = "gre_unsupported", Invalid;
    /// An ICMP message that cannot start a connection (an echo reply without its request, ...).
    IcmpInvalidNew = "icmp_invalid_new", Invalid;

    // ---- TCP tracker: connection tracking says INVALID ----
    /// A segment that cannot open a connection (no SYN, with loose pickup off or impossible).
    TcpInvalidNew = "tcp_invalid_new", Invalid;
    /// A flag class the state table forbids in this state (e.g. SYN/ACK from the client).
    TcpInvalidState = "tcp_invalid_state", Invalid;
    /// Sequence number above the receiver's window (`SEQ is over upper bound`).
    TcpSeqOverWindow = "tcp_seq_over_window", Invalid;
    /// Acknowledges data never sent (`ACK is over upper bound`).
    TcpAckOverWindow = "tcp_ack_over_window", Invalid;
    /// An RST whose sequence number is behind the peer's highest acknowledgment.
    TcpInvalidRst = "tcp_invalid_rst", Invalid;

    // ---- policy and resources ----
    /// Dropped by a rule of the rule set.
    RuleDrop = "rule_drop", Policy;
    /// Dropped by the default policy (no rule matched). Also counts, without a rule hit, a
    /// packet on a port without a peer, which only tests and fuzzing can send (config
    /// validation gives every port a peer).
    DefaultPolicy = "default_policy", Policy;
    /// The table was full and held no entry that may be evicted (only live ASSURED
    /// connections nearby).
    TableFull = "table_full", Policy;
}

/// Why connection tracking let a packet through without updating its connection.
///
/// Linux's TCP tracker ignores some segments: `nf_conntrack_tcp_packet` returns `NF_ACCEPT`
/// before `nf_ct_refresh_acct`, either from the `TCP_CONNTRACK_IGNORE` transitions and
/// `tcp_in_window`'s `NFCT_TCP_IGNORE` (what `nf_conntrack_log_invalid` logs as "ignored"),
/// or for a SYN retransmitted before any answer. Such a packet keeps its conntrack state (it
/// is not INVALID) and the rules decide it as any other; its connection's state, windows,
/// deadline and accounting stay as they were, apart from what the tracker notes to resync.
/// A flood of blind ACKs or unmatched SYN/ACKs shows up here, and nowhere else: Linux counts
/// none of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ignored {
    /// A SYN on a connection past its handshake (`sIG`), or one in TIME_WAIT or CLOSE that
    /// may not re-open it: possibly client and server in sync and the tracker not. Noted: the
    /// other side's SYN/ACK re-syncs, an RST closes.
    TcpUnexpectedSyn,
    /// A SYN/ACK answering no SYN the tracker noted (`sIG`): late, retransmitted, or forged.
    TcpUnmatchedSynAck,
    /// An ACK from the responder before its SYN/ACK (`sIG` in SYN_SENT): a half-open
    /// connection, or an RFC 5961 challenge ACK answering the SYN.
    TcpUnexpectedAck,
    /// An RFC 5961 challenge ACK answering a SYN in LAST_ACK, not the ACK of the last FIN.
    TcpChallengeAck,
    /// Data past the receiver's window by less than a window, which Linux tolerates from
    /// stacks that overrun it (`%u bytes more than expected`).
    TcpWindowOverrun,
    /// Data below the receiver's window: bytes it already acknowledged, sent again (`SEQ is
    /// under lower bound`).
    TcpSeqUnderWindow,
    /// An acknowledgment below the window's lower bound: overly delayed, or a blind ACK that
    /// guessed wrong (`ignored ACK under lower bound`).
    TcpAckUnderWindow,
    /// The client's SYN again before any answer: accepted, but the deadline is not renewed
    /// (or port reuse would keep the entry alive forever).
    TcpSynRetransmit,
}

impl Ignored {
    /// Every reason, in discriminant order.
    pub const ALL: &'static [Ignored] = &[
        Ignored::TcpUnexpectedSyn,
        Ignored::TcpUnmatchedSynAck,
        Ignored::TcpUnexpectedAck,
        Ignored::TcpChallengeAck,
        Ignored::TcpWindowOverrun,
        Ignored::TcpSeqUnderWindow,
        Ignored::TcpAckUnderWindow,
        Ignored::TcpSynRetransmit,
    ];
    /// Number of reasons (the length of a counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// A stable snake_case name for logs, metrics and summaries.
    pub const fn name(self) -> &'static str {
        match self {
            Ignored::TcpUnexpectedSyn => "tcp_unexpected_syn",
            Ignored::TcpUnmatchedSynAck => "tcp_unmatched_synack",
            Ignored::TcpUnexpectedAck => "tcp_unexpected_ack",
            Ignored::TcpChallengeAck => "tcp_challenge_ack",
            Ignored::TcpWindowOverrun => "tcp_window_overrun",
            Ignored::TcpSeqUnderWindow => "tcp_seq_under_window",
            Ignored::TcpAckUnderWindow => "tcp_ack_under_window",
            Ignored::TcpSynRetransmit => "tcp_syn_retransmit",
        }
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of a [`Reason`]: see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasonClass {
    /// Dropped before connection tracking saw it; no conntrack state.
    Unparsed,
    /// Connection tracking judged it INVALID; the rules decide.
    Invalid,
    /// Dropped by policy or by resource limits.
    Policy,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-worker counters. Plain integers: each worker owns its own copy and the control plane
/// reads them (or sums them) when the worker publishes a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Packets handed to the engine.
    pub packets: u64,
    /// Bytes handed to the engine (frame lengths).
    pub bytes: u64,
    /// Packets the engine decided to forward.
    pub accepted: u64,
    /// Packets the engine decided to drop.
    pub dropped: u64,
    /// Connection entries created.
    pub created: u64,
    /// Entries removed because they expired.
    pub expired: u64,
    /// Entries removed early by protocol logic (RST answering a SYN, re-opened connections).
    pub closed: u64,
    /// Non-ASSURED entries evicted to make room for a new connection, or by the sweeper
    /// under table pressure.
    pub evicted: u64,
    /// ASSURED entries of closing TCP connections (FIN_WAIT, CLOSE_WAIT, LAST_ACK,
    /// TIME_WAIT, CLOSE) evicted the same ways. Live connections are never evicted.
    pub evicted_closing: u64,
    /// Entries removed by the operator (`Engine::delete`, `Engine::delete_tuple`), ASSURED
    /// ones included.
    pub deleted: u64,
    /// Pool slots the sweeper examined (live or not): with `expired`, `evicted` and
    /// `evicted_closing`, how hard ageing works and how much it finds.
    pub sweep_examined: u64,
    /// Connection events (`Engine::set_events`) dropped because the event buffer was full.
    pub events_lost: u64,
    /// Drop-log records written (`Rule::log`, `RuleSet::with_default_log`).
    pub logged: u64,
    /// Drop-log records not written: refused by the rate limiter, or the log buffer was full.
    pub log_suppressed: u64,
    /// Packets per reason: drops (`Unparsed`, `Policy`) and INVALID verdicts (`Invalid`).
    pub by_reason: [u64; Reason::COUNT],
    /// Packets connection tracking let through without updating their connection, per
    /// [`Ignored`] reason (whatever the rules then decided).
    pub ignored_by_reason: [u64; Ignored::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            packets: 0,
            bytes: 0,
            accepted: 0,
            dropped: 0,
            created: 0,
            expired: 0,
            closed: 0,
            evicted: 0,
            evicted_closing: 0,
            deleted: 0,
            sweep_examined: 0,
            events_lost: 0,
            logged: 0,
            log_suppressed: 0,
            by_reason: [0; Reason::COUNT],
            ignored_by_reason: [0; Ignored::COUNT],
        }
    }
}

impl Counters {
    /// Count one packet for `reason`.
    #[inline]
    pub fn count(&mut self, reason: Reason) {
        self.by_reason[reason as usize] += 1;
    }

    /// The count for `reason`.
    #[inline]
    pub fn get(&self, reason: Reason) -> u64 {
        self.by_reason[reason as usize]
    }

    /// Count one packet tracking ignored for `why`.
    #[inline]
    pub fn count_ignored(&mut self, why: Ignored) {
        self.ignored_by_reason[why as usize] += 1;
    }

    /// The count of packets ignored for `why`.
    #[inline]
    pub fn ignored(&self, why: Ignored) -> u64 {
        self.ignored_by_reason[why as usize]
    }

    /// Add `other` into `self` (the control plane sums workers this way).
    pub fn merge(&mut self, other: &Counters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.accepted += other.accepted;
        self.dropped += other.dropped;
        self.created += other.created;
        self.expired += other.expired;
        self.closed += other.closed;
        self.evicted += other.evicted;
        self.evicted_closing += other.evicted_closing;
        self.deleted += other.deleted;
        self.sweep_examined += other.sweep_examined;
        self.events_lost += other.events_lost;
        self.logged += other.logged;
        self.log_suppressed += other.log_suppressed;
        for (a, b) in self.by_reason.iter_mut().zip(other.by_reason.iter()) {
            *a += b;
        }
        for (a, b) in self
            .ignored_by_reason
            .iter_mut()
            .zip(other.ignored_by_reason.iter())
        {
            *a += b;
        }
    }

    /// Non-zero reason counters, in discriminant order.
    pub fn nonzero_reasons(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        names.extend(Ignored::ALL.iter().map(|r| r.name()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::COUNT + Ignored::COUNT);
        for (i, r) in Ignored::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn merge_adds_every_field() {
        let mut a = Counters::default();
        let mut b = Counters {
            packets: 3,
            evicted: 2,
            evicted_closing: 5,
            deleted: 7,
            sweep_examined: 11,
            events_lost: 13,
            logged: 17,
            log_suppressed: 19,
            ..Counters::default()
        };
        b.count(Reason::TableFull);
        b.count_ignored(Ignored::TcpAckUnderWindow);
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.packets, 6);
        assert_eq!(a.evicted, 4);
        assert_eq!(a.evicted_closing, 10);
        assert_eq!(a.deleted, 14);
        assert_eq!(a.sweep_examined, 22);
        assert_eq!(a.events_lost, 26);
        assert_eq!(a.logged, 34);
        assert_eq!(a.log_suppressed, 38);
        assert_eq!(a.get(Reason::TableFull), 2);
        assert_eq!(a.ignored(Ignored::TcpAckUnderWindow), 2);
    }
}
