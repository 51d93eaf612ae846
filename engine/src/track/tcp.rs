//! TCP connection tracking: the state machine, window tracking and timeouts of Linux 6.x
//! `net/netfilter/nf_conntrack_proto_tcp.c`, ported function by function.
//!
//! | Linux | here |
//! |---|---|
//! | `tcp_valid_flags` (in `tcp_error`) | [`flags_valid`] |
//! | `tcp_new` | [`TcpConn::new`]; with `nf_conntrack_tcp_packet` for the same segment, [`TcpConn::open`] (one step for a SYN, `tcp/open.rs`) |
//! | `nf_conntrack_tcp_packet` (minus `tcp_error`) | [`TcpConn::packet`]: `packet_full`, after a fast path for ACK and data segments of ESTABLISHED connections, in window or from a liberal sender (`tcp/fast.rs`) |
//! | `tcp_conntracks` | `TRANSITIONS` |
//! | `tcp_in_window`, `tcp_init_sender`, `tcp_options`, `tcp_sack` | `in_window`, `init_sender`, `tcp_options`, `tcp_sack` (private) |
//! | `nf_tcp_log_invalid`, `nf_tcp_handle_invalid` | `log_invalid`, `handle_invalid` |
//!
//! The port is deliberately literal, quirks included (the timestamp-only fast path of
//! `tcp_sack`, options parsing that stops at a silly or partial option, picked-up connections
//! whose window failures are accepted without updating anything, `last_flags` bits copied
//! into a direction's flags by the SYN/ACK resync): ctfw must give the same verdict, state,
//! flags and timeout as the kernel packet for packet, and every "improvement" would be a
//! divergence. Per-direction flags and `last_flags` keep Linux's bit values ([`dir_flags`]).
//!
//! The fast path is the same code specialised to its case, not a second model of TCP: it
//! declines (writing nothing) whatever it does not cover, and a property test
//! (`tcp/equivalence.rs`) runs it against `packet_full` on random segment sequences and
//! requires the same connection state, entry status, deadline and verdict.
//!
//! # How the pipeline drives it
//! - Every TCP segment first passes [`flags_valid`] (in `Engine::plan`, before any lookup, as
//!   Linux's `tcp_error` runs before the conntrack lookup), else it is INVALID.
//! - A segment that then finds no entry goes through [`TcpConn::open`]: [`TcpConn::new`]
//!   (Linux `tcp_new`), then the full port for the same segment with `meta.flags` empty and
//!   [`Direction::Original`], as Linux runs `nf_conntrack_tcp_packet` after `tcp_new`; for a
//!   SYN, both in one step specialised to it (`tcp/open.rs`, held to the two steps by a
//!   property test).
//! - `meta.flags.seen_reply()` is what it was *before* this packet: the pipeline sets
//!   `SEEN_REPLY` after a REPLY-direction packet returns [`TrackVerdict::Accept`] or
//!   [`TrackVerdict::Ignore`] (Linux does it in `nf_conntrack_in`, after the L4 handler).
//! - `meta.expires` is written exactly where Linux calls `nf_ct_refresh_acct` (and lowered
//!   where `nf_tcp_handle_invalid` lowers `ct->timeout`); nowhere else.
//!
//! # Layout
//! [`TcpConn`] must stay within 52 bytes (it shares a 96-byte table entry with the key), while
//! Linux's `struct ip_ct_tcp` is 60. The packing is lossless for every segment the parser can
//! produce:
//! - per direction `td_end`, `td_maxend`, `td_maxwin`, `td_maxack` as `u32` (2 x 16 B);
//! - per direction `flags` as two `u8`, both `td_scale` in one byte (each is at most 14,
//!   `TCP_MAX_WSCALE`, so four bits suffice);
//! - `last_seq`, `last_ack` (`u32`), `last_win` (`u16`), `state`, `retrans`, `last_flags`;
//! - `last_end` as a `u16` distance from `last_seq`: Linux only ever assigns the two together,
//!   from one segment, so `last_end - last_seq` = payload + SYN + FIN <= 65515 + 2 (an IPv6
//!   payload length is at most 65535 and includes the 20-byte TCP header; jumbograms are
//!   rejected by the parser; IPv4 allows less);
//! - `last_index` (3 bits, values 0..=5), `last_dir` (1 bit) and `last_wscale` (4 bits, <= 14)
//!   in one byte.
//!
//! That is 51 bytes, 52 with alignment (checked at compile time below).
//!
//! # Divergences from Linux (all outside what ctfw supports)
//! - No NAT: `nf_ct_seq_offset` is always 0. No synproxy, no per-connection timeout policy
//!   (`nf_ct_timeout_lookup`), no `IPS_FIXED_TIMEOUT`.
//! - `nf_ct_kill` cannot fail here, so the `NF_DROP` branch of the re-open path does not exist.
//! - A segment whose `payload_len` exceeds 65533 (impossible from the parser) would not fit
//!   the `last_end` packing: its distance is saturated at 65535, and only the exact
//!   `last_end` comparisons against it could differ from the kernel.

use core::ops::{Add, Sub};

use crate::counters::{Ignored, Reason};
use crate::flow::Direction;
use crate::time::{Tick, Ticks};
use crate::track::{CtFlags, EntryMeta, TrackVerdict};
use crate::wire::tcp::{TcpOption, TcpOptions, option};
use crate::wire::{TcpFlags, TcpSeg};

/// A TCP sequence number, compared modulo 2^32 exactly like Linux's `before()` / `after()`.
///
/// Arithmetic wraps: `SeqNumber + u32`, `SeqNumber - u32` and `SeqNumber - SeqNumber` (a
/// `u32` distance) are all modulo 2^32, as the kernel's `__u32` arithmetic is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Linux `before(self, other)`: `(s32)(self - other) < 0`.
    #[inline]
    pub const fn before(self, other: SeqNumber) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// Linux `after(self, other)`, which is `before(other, self)`.
    #[inline]
    pub const fn after(self, other: SeqNumber) -> bool {
        other.before(self)
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }
}

impl Sub for SeqNumber {
    type Output = u32;
    #[inline]
    fn sub(self, other: SeqNumber) -> u32 {
        self.0.wrapping_sub(other.0)
    }
}

/// TCP conntrack states (Linux `enum tcp_conntrack`, same order and values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No state yet.
    #[default]
    None = 0,
    /// SYN seen.
    SynSent,
    /// SYN/ACK seen.
    SynRecv,
    /// Handshake complete.
    Established,
    /// FIN seen.
    FinWait,
    /// ACK of the FIN seen.
    CloseWait,
    /// FIN seen both ways.
    LastAck,
    /// Last ACK seen.
    TimeWait,
    /// Closed (RST).
    Close,
    /// Simultaneous open: SYN seen from the reply direction (Linux reuses `LISTEN`'s value).
    SynSent2,
}

impl TcpState {
    /// Every state, in discriminant order.
    pub const ALL: [TcpState; 10] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::SynSent2,
    ];

    /// Name as `conntrack -L` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }
}

/// Per-state TCP timeouts (Linux defaults in [`Default`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTimeouts {
    /// SYN_SENT (120 s).
    pub syn_sent: Ticks,
    /// SYN_RECV (60 s).
    pub syn_recv: Ticks,
    /// ESTABLISHED (432000 s).
    pub established: Ticks,
    /// FIN_WAIT (120 s).
    pub fin_wait: Ticks,
    /// CLOSE_WAIT (60 s).
    pub close_wait: Ticks,
    /// LAST_ACK (30 s).
    pub last_ack: Ticks,
    /// TIME_WAIT (120 s).
    pub time_wait: Ticks,
    /// CLOSE (10 s).
    pub close: Ticks,
    /// SYN_SENT2 (120 s).
    pub syn_sent2: Ticks,
    /// Cap after `max_retrans` retransmissions (300 s).
    pub retrans: Ticks,
    /// Cap while data is unacknowledged (300 s).
    pub unack: Ticks,
}

impl Default for TcpTimeouts {
    fn default() -> Self {
        TcpTimeouts {
            syn_sent: Ticks::from_secs(120),
            syn_recv: Ticks::from_secs(60),
            established: Ticks::from_secs(432_000),
            fin_wait: Ticks::from_secs(120),
            close_wait: Ticks::from_secs(60),
            last_ack: Ticks::from_secs(30),
            time_wait: Ticks::from_secs(120),
            close: Ticks::from_secs(10),
            syn_sent2: Ticks::from_secs(120),
            retrans: Ticks::from_secs(300),
            unack: Ticks::from_secs(300),
        }
    }
}

impl TcpTimeouts {
    /// The timeout of `state` (Linux `timeouts[state]`). NONE has SYN_SENT's, as
    /// `nf_conntrack_tcp_init_net` sets `timeouts[0]`.
    #[inline]
    pub const fn of(&self, state: TcpState) -> Ticks {
        match state {
            TcpState::None | TcpState::SynSent => self.syn_sent,
            TcpState::SynRecv => self.syn_recv,
            TcpState::Established => self.established,
            TcpState::FinWait => self.fin_wait,
            TcpState::CloseWait => self.close_wait,
            TcpState::LastAck => self.last_ack,
            TcpState::TimeWait => self.time_wait,
            TcpState::Close => self.close,
            TcpState::SynSent2 => self.syn_sent2,
        }
    }
}

/// TCP knobs (Linux sysctls `nf_conntrack_tcp_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Timeouts.
    pub timeouts: TcpTimeouts,
    /// Pick up connections mid-stream (`tcp_loose`, default on).
    pub loose: bool,
    /// Accept out-of-window segments (`tcp_be_liberal`, default off).
    pub be_liberal: bool,
    /// Retransmissions before the timeout is capped (`tcp_max_retrans`, default 3).
    pub max_retrans: u8,
    /// Do not mark out-of-window RSTs INVALID (`tcp_ignore_invalid_rst`, default off).
    pub ignore_invalid_rst: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            timeouts: TcpTimeouts::default(),
            loose: true,
            be_liberal: false,
            max_retrans: 3,
            ignore_invalid_rst: false,
        }
    }
}

/// Per-direction flag bits (Linux `IP_CT_TCP_FLAG_*`, same values), and the two extra bits
/// Linux keeps in `last_flags`.
pub mod dir_flags {
    /// Window scaling is advertised by the sender.
    pub const WINDOW_SCALE: u8 = 0x01;
    /// SACK is permitted by the sender.
    pub const SACK_PERM: u8 = 0x02;
    /// This sender sent FIN first.
    pub const CLOSE_INIT: u8 = 0x04;
    /// Be liberal in window checking (set for picked-up connections).
    pub const BE_LIBERAL: u8 = 0x08;
    /// The sender has unacknowledged data.
    pub const DATA_UNACKNOWLEDGED: u8 = 0x10;
    /// `td_maxack` has been set.
    pub const MAXACK_SET: u8 = 0x20;
    /// `last_flags` only: an RFC 5961 challenge ACK may follow (Linux `IP_CT_EXP_CHALLENGE_ACK`).
    pub const EXP_CHALLENGE_ACK: u8 = 0x40;
    /// `last_flags` only: simultaneous open seen (Linux `IP_CT_TCP_SIMULTANEOUS_OPEN`).
    pub const SIMULTANEOUS_OPEN: u8 = 0x80;
}

use dir_flags as F;

/// Which of RST/SYN/FIN/ACK a segment carries (Linux `enum tcp_bit_set`, same values), the
/// row of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlagClass {
    /// SYN without ACK.
    Syn = 0,
    /// SYN with ACK.
    SynAck = 1,
    /// FIN (without SYN or RST).
    Fin = 2,
    /// ACK only (of the four).
    Ack = 3,
    /// RST, whatever else is set.
    Rst = 4,
    /// None of RST, SYN, FIN, ACK.
    None = 5,
}

impl FlagClass {
    /// Every class, in discriminant order.
    pub const ALL: [FlagClass; 6] = [
        FlagClass::Syn,
        FlagClass::SynAck,
        FlagClass::Fin,
        FlagClass::Ack,
        FlagClass::Rst,
        FlagClass::None,
    ];

    /// Linux `get_conntrack_index`: RST wins, then SYN (split by ACK), then FIN, then ACK.
    #[inline]
    pub const fn of(flags: TcpFlags) -> FlagClass {
        if flags.rst() {
            FlagClass::Rst
        } else if flags.syn() {
            if flags.ack() {
                FlagClass::SynAck
            } else {
                FlagClass::Syn
            }
        } else if flags.fin() {
            FlagClass::Fin
        } else if flags.ack() {
            FlagClass::Ack
        } else {
            FlagClass::None
        }
    }

    /// Inverse of `as u8` for the packed `last_index` (3 bits; 6 and 7 never stored).
    #[inline]
    const fn from_bits(b: u8) -> FlagClass {
        match b {
            0 => FlagClass::Syn,
            1 => FlagClass::SynAck,
            2 => FlagClass::Fin,
            3 => FlagClass::Ack,
            4 => FlagClass::Rst,
            _ => FlagClass::None,
        }
    }
}

/// Linux `tcp_valid_flags`: whether a flag combination is acceptable at all. PSH, ECE and CWR
/// are masked off first: they are always valid.
pub fn flags_valid(flags: TcpFlags) -> bool {
    const FIN: u8 = TcpFlags::FIN;
    const SYN: u8 = TcpFlags::SYN;
    const RST: u8 = TcpFlags::RST;
    const ACK: u8 = TcpFlags::ACK;
    const URG: u8 = TcpFlags::URG;
    const SYN_URG: u8 = SYN | URG;
    const SYN_ACK: u8 = SYN | ACK;
    const RST_ACK: u8 = RST | ACK;
    const FIN_ACK: u8 = FIN | ACK;
    const FIN_ACK_URG: u8 = FIN | ACK | URG;
    const ACK_URG: u8 = ACK | URG;
    matches!(
        flags.0 & !(TcpFlags::ECE | TcpFlags::CWR | TcpFlags::PSH),
        SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
    )
}

/// One cell of the transition table: the next state, or Linux's `sIV` / `sIG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    To(TcpState),
    /// `sIV`: truly invalid.
    Invalid,
    /// `sIG`: may be valid or invalid; the receiver will tell (by an RST or a SYN/ACK).
    Ignore,
}

const SS: Next = Next::To(TcpState::SynSent);
const SR: Next = Next::To(TcpState::SynRecv);
const ES: Next = Next::To(TcpState::Established);
const FW: Next = Next::To(TcpState::FinWait);
const CW: Next = Next::To(TcpState::CloseWait);
const LA: Next = Next::To(TcpState::LastAck);
const TW: Next = Next::To(TcpState::TimeWait);
const CL: Next = Next::To(TcpState::Close);
const S2: Next = Next::To(TcpState::SynSent2);
const IV: Next = Next::Invalid;
const IG: Next = Next::Ignore;

/// Linux `tcp_conntracks[dir][flag class][state]`, cell for cell. The firewall is the man in
/// the middle: a segment in window is assumed to reach its destination, and the table guesses
/// the state of the sender.
#[rustfmt::skip]
const TRANSITIONS: [[[Next; 10]; 6]; 2] = [
    // ORIGINAL
    [
        //      NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /*syn*/[SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // NO->SS new connection; SS->SS retransmitted SYN; S2->S2 late retransmitted SYN;
        // SR..LA->IG a SYN in window outside SYN_SENT is an error the receiver answers with an
        // RST, or we are out of sync and hold a dead connection; TW->SS re-open (RFC 1122);
        // CL->SS re-open.
        /*sya*/[IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // NO->IV too late; SS->IV a client cannot send SYN then SYN/ACK; S2->SR SYN/ACK sent to
        // SYN2 in simultaneous open; SR->SR late retransmitted SYN/ACK in simultaneous open;
        // ES..CL->IV invalid SYN/ACK from the client.
        /*fin*/[IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // NO->IV too late; SS->IV we wait for the SYN/ACK first; S2->IV; SR,ES->FW close
        // started; FW,CW->LA FIN seen both ways, waiting for the last ACK (or a retransmitted
        // FIN); LA->LA retransmitted FIN; TW->TW; CL->CL.
        /*ack*/[ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // NO->ES assumed (loose pickup); SS->IV no SYN/ACK seen yet; S2->IV; SR->ES established;
        // ES->ES; FW->CW close request answered by ACK; CW->CW; LA->TW last ACK (RFC 5961
        // challenge ACKs are told apart in `packet`); TW->TW retransmitted last ACK; CL->CL.
        /*rst*/[IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // NO->IV; any other state closes (whether the RST is acceptable is checked in `packet`).
        /*non*/[IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
        // None of SYN/FIN/ACK/RST: always invalid.
    ],
    // REPLY
    [
        //      NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /*syn*/[IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // NO->IV never reached; SS->S2 simultaneous open; S2->S2 retransmitted simultaneous
        // SYN; SR..LA->IV invalid SYN from the server; TW->SS re-open, the server may have
        // switched roles; CL->IV.
        /*sya*/[IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // SS->SR standard open; S2->SR simultaneous open; SR->IG retransmitted SYN/ACK;
        // ES->IG late retransmitted SYN/ACK?; FW..CL->IG may answer a SYN we ignored.
        /*fin*/[IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // SS->IV the server cannot send FIN yet; S2->IV; SR,ES->FW close started; FW,CW->LA
        // FIN seen both ways; LA->LA retransmitted FIN; TW->TW; CL->CL.
        /*ack*/[IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // SS->IG may be a half-open connection (or a challenge ACK); S2->IG; SR->SR may answer
        // a late resent SYN; ES->ES; FW->CW close request answered by ACK; CW->CW; LA->TW last
        // ACK; TW->TW retransmitted last ACK; CL->CL.
        /*rst*/[IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // NO->IV; any other state closes (acceptability checked in `packet`).
        /*non*/[IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
        // None of SYN/FIN/ACK/RST: always invalid.
    ],
];

/// Linux's `MAXACKWINCONST`: the lowest acceptable ACK lags the receiver's end by at least this.
const MAXACKWINCONST: u32 = 66_000;
/// Linux `TCP_MAX_WSCALE`.
const TCP_MAX_WSCALE: u8 = 14;
/// `nf_tcp_handle_invalid` leaves deadlines shorter than this (Linux `120 * HZ`) alone.
const HANDLE_INVALID_FLOOR: Ticks = Ticks::from_secs(120);

/// The TCP option bytes of `tcp_sack`'s timestamp-only fast path (Linux `TCPOPT_NOP`,
/// `TCPOPT_TIMESTAMP`, `TCPOLEN_TIMESTAMP`, `TCPOLEN_TSTAMP_ALIGNED`); everything else is
/// read through the wire module's option walk.
mod opt {
    pub const NOP: u8 = 1;
    pub const TIMESTAMP: u8 = 8;
    pub const LEN_TIMESTAMP: u8 = 10;
    pub const LEN_TSTAMP_ALIGNED: usize = 12;
}

/// One direction's window-tracking data (Linux `struct ip_ct_tcp_state` minus `td_scale` and
/// `flags`, which [`TcpConn`] packs separately to stay within its size budget).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    /// Max of seq + len seen from this sender.
    td_end: SeqNumber,
    /// Max of ack + max(win, 1) seen from the other side.
    td_maxend: SeqNumber,
    /// Max of (scaled) window seen from this sender.
    td_maxwin: u32,
    /// Max of ack seen from this sender.
    td_maxack: SeqNumber,
}

/// One direction's window-tracking state, for inspection by tests and when debugging
/// ([`TcpConn::window`]); nothing in the data path reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpWindow {
    /// Max of seq + len sent (`td_end`).
    pub td_end: SeqNumber,
    /// Upper bound for sequence numbers (`td_maxend`).
    pub td_maxend: SeqNumber,
    /// Largest window advertised (`td_maxwin`).
    pub td_maxwin: u32,
    /// Largest ACK sent (`td_maxack`).
    pub td_maxack: SeqNumber,
    /// Window scale in use (`td_scale`).
    pub td_scale: u8,
    /// [`dir_flags`] bits.
    pub flags: u8,
}

/// A TCP connection's tracking state (Linux `struct ip_ct_tcp`), packed into 52 bytes: see
/// the module documentation for the layout and why it is exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpConn {
    /// Window data per direction, indexed by [`Direction::index`].
    seen: [Seen; 2],
    /// Sequence number of the last segment that set `last_*`.
    last_seq: SeqNumber,
    /// Its ACK (or, on the ignore path, a possible challenge ACK's ack number).
    last_ack: SeqNumber,
    /// Its raw window.
    last_win: u16,
    /// `last_end - last_seq` (Linux stores `last_end`; see the module docs).
    last_len: u16,
    /// Per-direction [`dir_flags`] bits.
    flags: [u8; 2],
    /// `td_scale` of ORIGINAL in bits 0..4, of REPLY in bits 4..8.
    scales: u8,
    /// The state.
    state: TcpState,
    /// Retransmissions counted by `tcp_in_window` (wraps like Linux's `u8`).
    retrans: u8,
    /// Linux `last_flags` (option bits of an ignored SYN, plus the two `last_flags`-only bits).
    last_flags: u8,
    /// `last_index` in bits 0..3, `last_dir` in bit 3, `last_wscale` in bits 4..8.
    last: u8,
}

const _: () = assert!(core::mem::size_of::<TcpConn>() <= 52);

const LAST_INDEX_MASK: u8 = 0x07;
const LAST_DIR_BIT: u8 = 0x08;
const LAST_WSCALE_SHIFT: u8 = 4;

/// The outcome of `tcp_in_window` (Linux `enum nf_ct_tcp_action`), with why a segment is
/// ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WindowVerdict {
    Accept,
    Ignore(Ignored),
    Invalid(Reason),
}

/// Why a segment met `TCP_CONNTRACK_IGNORE` (a `sIG` cell of the table, or a SYN in
/// TIME_WAIT or CLOSE that may not re-open) and was not a SYN/ACK answering the SYN noted:
/// by its flag class. Only SYN, SYN/ACK and ACK rows have such cells.
fn ignored_in_state(index: FlagClass) -> Ignored {
    match index {
        FlagClass::Syn => Ignored::TcpUnexpectedSyn,
        FlagClass::SynAck => Ignored::TcpUnmatchedSynAck,
        FlagClass::Ack => Ignored::TcpUnexpectedAck,
        FlagClass::Fin | FlagClass::Rst | FlagClass::None => {
            // Cannot happen: TRANSITIONS has no `sIG` in the FIN, RST and no-flag rows, and
            // only a SYN re-opens. Debug builds (tests, fuzzing) stop here rather than count
            // a plausible but wrong reason.
            debug_assert!(false, "cannot happen: {index:?} ignored in state");
            Ignored::TcpUnexpectedAck
        }
    }
}

/// How the RST checks of the CLOSE transition let the segment go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RstPlan {
    /// The RST does not match exactly: keep the state to allow a challenge ACK.
    keep_state: bool,
    /// Skip `tcp_in_window` (Linux `goto in_window`).
    skip_window: bool,
}

/// Linux `segment_seq_plus_len`: the sequence number after this segment.
#[inline]
fn segment_end(seg: &TcpSeg<'_>) -> SeqNumber {
    SeqNumber(seg.seq) + seg.payload_len + u32::from(seg.flags.syn()) + u32::from(seg.flags.fin())
}

/// Linux `tcp_options`: reads window scale and SACK-permitted into `scale` and `flags`.
///
/// Like the kernel it resets `scale` and every flag but BE_LIBERAL only when there are
/// options at all, stops at EOL, at a "silly" option (length < 2) or a partial one, caps the
/// scale at 14, and lets a later option of a kind override an earlier one.
///
/// The walk is the wire module's ([`TcpOptions`], which stops exactly where the kernel's
/// does), written for the two kinds read here: every SYN and SYN/ACK runs it, and it reads
/// no other option's value. `options_walk_as_the_wire_module_does` (in `tests.rs`) holds it
/// to [`TcpOptions`] on random option bytes.
#[inline]
fn tcp_options(opts: &[u8], scale: &mut u8, flags: &mut u8) {
    if opts.is_empty() {
        return;
    }
    *scale = 0;
    *flags &= F::BE_LIBERAL;
    // The options of a SYN or SYN/ACK from Linux, in the order its `tcp_options_write` puts
    // them (MSS, SACK-permitted, timestamps, NOP, window scale): what the walk below reads
    // of them, without walking.
    if let &[
        option::MSS,
        4,
        _,
        _,
        option::SACK_PERMITTED,
        2,
        option::TIMESTAMPS,
        10,
        _,
        _,
        _,
        _,
        _,
        _,
        _,
        _,
        option::NOP,
        option::WINDOW_SCALE,
        3,
        ws,
    ] = opts
    {
        *scale = ws.min(TCP_MAX_WSCALE);
        *flags |= F::SACK_PERM | F::WINDOW_SCALE;
        return;
    }
    let mut rest = opts;
    while let [kind, tail @ ..] = rest {
        match *kind {
            option::END => return,
            option::NOP => {
                rest = tail;
                continue;
            }
            _ => {}
        }
        // A length below 2 ("silly") or past the end (partial) ends the walk.
        let len = tail.first().map_or(0, |&l| usize::from(l));
        let Some(opt) = rest.get(..len).filter(|_| len >= 2) else {
            return;
        };
        // A known kind with another length is skipped, as the kernel skips it (`opt` is the
        // whole option: as long as its length byte says).
        match (*kind, opt) {
            (option::SACK_PERMITTED, [_, _]) => *flags |= F::SACK_PERM,
            (option::WINDOW_SCALE, &[_, _, ws]) => {
                *scale = ws.min(TCP_MAX_WSCALE);
                *flags |= F::WINDOW_SCALE;
            }
            _ => {}
        }
        rest = &rest[len..];
    }
}

/// Whether `tcp_sack` returns before reading any option: none at all, or exactly one
/// timestamp option in its aligned layout (NOP, NOP, TS), which Linux skips unparsed.
#[inline]
fn sack_unread(opts: &[u8]) -> bool {
    opts.is_empty()
        || (opts.len() == opt::LEN_TSTAMP_ALIGNED
            && opts.get(..4) == Some(&[opt::NOP, opt::NOP, opt::TIMESTAMP, opt::LEN_TIMESTAMP][..]))
}

/// Linux `tcp_sack`: raises `sack` to the highest right edge of the first SACK option.
///
/// Quirks kept: exactly one timestamp option (NOP, NOP, TS) skips parsing; only the first
/// well-formed SACK option is read.
fn tcp_sack(opts: &[u8], sack: &mut SeqNumber) {
    if sack_unread(opts) {
        return;
    }
    for o in TcpOptions::new(opts) {
        if let TcpOption::Sack(blocks) = o {
            for (_, right) in blocks {
                let right = SeqNumber(right);
                if right.after(*sack) {
                    *sack = right;
                }
            }
            return;
        }
    }
}

#[cfg(test)]
impl TcpConn {
    /// A connection in `state` with nothing else known, for tests of code that reads only
    /// the state.
    pub(crate) fn in_state_for_tests(state: TcpState) -> TcpConn {
        TcpConn {
            state,
            ..TcpConn::default()
        }
    }
}

impl TcpConn {
    /// The connection's state.
    #[inline]
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Linux `tcp_can_early_drop`: the connection is closing (FIN_WAIT, CLOSE_WAIT,
    /// LAST_ACK, TIME_WAIT or CLOSE). Such an entry may be evicted under table pressure even
    /// when ASSURED, and an RST to it needs no validation, since the tuple may already be
    /// in use by a new connection.
    #[inline]
    pub fn can_early_drop(&self) -> bool {
        matches!(
            self.state,
            TcpState::FinWait
                | TcpState::LastAck
                | TcpState::TimeWait
                | TcpState::Close
                | TcpState::CloseWait
        )
    }

    /// One direction's window-tracking state.
    pub fn window(&self, dir: Direction) -> TcpWindow {
        let d = dir.index();
        let s = &self.seen[d];
        TcpWindow {
            td_end: s.td_end,
            td_maxend: s.td_maxend,
            td_maxwin: s.td_maxwin,
            td_maxack: s.td_maxack,
            td_scale: self.scale(d),
            flags: self.flags[d],
        }
    }

    /// Retransmissions counted since the last new segment (Linux `retrans`).
    #[inline]
    pub fn retrans(&self) -> u8 {
        self.retrans
    }

    /// Linux `last_flags`.
    #[inline]
    pub fn last_flags(&self) -> u8 {
        self.last_flags
    }

    /// Linux `last_index`: the flag class of the last segment that updated it.
    #[inline]
    pub fn last_index(&self) -> FlagClass {
        FlagClass::from_bits(self.last & LAST_INDEX_MASK)
    }

    /// Linux `last_dir`.
    #[inline]
    pub fn last_dir(&self) -> Direction {
        if self.last & LAST_DIR_BIT != 0 {
            Direction::Reply
        } else {
            Direction::Original
        }
    }

    /// Linux `last_end`: sequence number after the last segment that set `last_seq`.
    #[inline]
    pub fn last_end(&self) -> SeqNumber {
        self.last_seq + u32::from(self.last_len)
    }

    /// Linux `tcp_new`: the state for a segment that finds no entry, or why it cannot open one
    /// (`Err(TcpInvalidNew)`: a flag class that cannot start a connection, or loose pickup off
    /// and not a SYN). [`TcpConn::open`] then runs the full port for the same segment.
    pub fn new(seg: &TcpSeg<'_>, cfg: &TcpConfig) -> Result<TcpConn, Reason> {
        let index = FlagClass::of(seg.flags);
        let new_state = match TRANSITIONS[Direction::Original.index()][index as usize][0] {
            Next::To(s) => s,
            Next::Invalid | Next::Ignore => return Err(Reason::TcpInvalidNew),
        };
        let mut conn = TcpConn::default();
        let end = segment_end(seg);
        let maxwin = if seg.window == 0 {
            1
        } else {
            u32::from(seg.window)
        };
        let o = Direction::Original.index();
        if new_state == TcpState::SynSent {
            conn.seen[o].td_end = end;
            conn.seen[o].td_maxwin = maxwin;
            conn.seen[o].td_maxend = end;
            let (mut scale, mut flags) = (0, 0);
            tcp_options(seg.options, &mut scale, &mut flags);
            conn.set_scale(o, scale);
            conn.flags[o] = flags;
        } else if !cfg.loose {
            return Err(Reason::TcpInvalidNew);
        } else {
            // Mid-stream pickup: the history is lost, use what the segment shows and assume
            // SACK and liberal window checking (window scaling is unknown).
            conn.seen[o].td_end = end;
            conn.seen[o].td_maxwin = maxwin;
            conn.seen[o].td_maxend = end + maxwin;
            conn.flags = [F::SACK_PERM | F::BE_LIBERAL; 2];
        }
        // `packet` sets them.
        conn.set_last_index(FlagClass::None);
        Ok(conn)
    }

    /// Linux `nf_conntrack_tcp_packet` after `tcp_error` (and `tcp_new` for a new entry).
    ///
    /// `meta.flags` is the entry's status as it was before this packet (the pipeline sets
    /// SEEN_REPLY afterwards); this sets ASSURED and writes `meta.expires` where Linux
    /// refreshes or lowers the timeout, and leaves `meta` alone otherwise.
    ///
    /// An ACK or data segment of an ESTABLISHED connection, in window or out of window from a
    /// liberal sender, takes the fast path (`fast.rs`); every other segment, and any the fast
    /// path is unsure of, the full port. Both decide alike (the property test in
    /// `equivalence.rs`). The state and flag test is inlined into the caller, then one call:
    /// the fast path (which calls the full port when it declines), or the full port.
    #[inline]
    pub fn packet(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> TrackVerdict {
        if self.established_ack(seg) {
            self.packet_established(meta, now, dir, seg, cfg)
        } else {
            self.packet_full(meta, now, dir, seg, cfg)
        }
    }

    /// The full port of `nf_conntrack_tcp_packet`, for every segment (see [`TcpConn::packet`]).
    #[inline(never)]
    fn packet_full(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> TrackVerdict {
        let index = FlagClass::of(seg.flags);
        let mut old_state = self.state;
        let mut skip_window = false;
        let new_state = match TRANSITIONS[dir.index()][index as usize][old_state as usize] {
            Next::Invalid => return TrackVerdict::Invalid(Reason::TcpInvalidState),
            Next::To(TcpState::SynSent) if old_state as u8 >= TcpState::TimeWait as u8 => {
                // RFC 1122 lets a SYN re-open a TIME_WAIT connection; an aborted one (closed
                // by FIN, or by an RST from this side) is re-opened too: drop the entry and
                // let the segment create a new one.
                if self.closed_by_us_or_fin(dir) {
                    return TrackVerdict::Reopen;
                }
                if !self.ignore(dir, index, seg, old_state) {
                    return TrackVerdict::Ignore(ignored_in_state(index));
                }
                old_state = TcpState::SynSent;
                TcpState::SynRecv
            }
            Next::Ignore => {
                if !self.ignore(dir, index, seg, old_state) {
                    return TrackVerdict::Ignore(ignored_in_state(index));
                }
                // The SYN/ACK answers a SYN we ignored: client and server are in sync and we
                // were not. Resume from the SYN we noted, as if we had been in SYN_SENT.
                old_state = TcpState::SynSent;
                TcpState::SynRecv
            }
            Next::To(TcpState::TimeWait) => {
                // RFC 5961: a stack answers a spurious SYN with a challenge ACK, which must
                // not be taken for the ACK of the last FIN.
                if old_state == TcpState::LastAck
                    && index == FlagClass::Ack
                    && self.last_dir() != dir
                    && self.last_index() == FlagClass::Syn
                    && self.last_flags & F::EXP_CHALLENGE_ACK != 0
                {
                    self.last_flags &= !F::EXP_CHALLENGE_ACK;
                    return TrackVerdict::Ignore(Ignored::TcpChallengeAck);
                }
                TcpState::TimeWait
            }
            Next::To(TcpState::SynSent2) => {
                // The table alone cannot follow a simultaneous open: remember it.
                self.last_flags |= F::SIMULTANEOUS_OPEN;
                TcpState::SynSent2
            }
            Next::To(TcpState::SynRecv) => {
                if dir == Direction::Reply
                    && index == FlagClass::Ack
                    && self.last_flags & F::SIMULTANEOUS_OPEN != 0
                {
                    TcpState::Established
                } else {
                    TcpState::SynRecv
                }
            }
            Next::To(TcpState::Close) if index == FlagClass::Rst => {
                match self.check_rst(meta.flags, dir, seg, cfg, old_state) {
                    None => return TrackVerdict::Invalid(Reason::TcpInvalidRst),
                    Some(plan) => {
                        skip_window = plan.skip_window;
                        if plan.keep_state {
                            old_state
                        } else {
                            TcpState::Close
                        }
                    }
                }
            }
            Next::To(s) => s,
        };

        if !skip_window {
            match self.in_window(dir, index, seg, cfg) {
                WindowVerdict::Accept => {}
                WindowVerdict::Ignore(why) => return TrackVerdict::Ignore(why),
                WindowVerdict::Invalid(reason) => {
                    self.handle_invalid(meta, now, dir, index, cfg);
                    return TrackVerdict::Invalid(reason);
                }
            }
        }

        // From here on the segment is in window (Linux label `in_window`).
        self.set_last_index(index);
        self.set_last_dir(dir);
        self.set_state(new_state, dir);

        let t = &cfg.timeouts;
        let state_timeout = t.of(new_state);
        let unacked = (self.flags[0] | self.flags[1]) & F::DATA_UNACKNOWLEDGED != 0;
        let mut timeout = if self.retrans >= cfg.max_retrans && state_timeout > t.retrans {
            t.retrans
        } else if index == FlagClass::Rst {
            t.close
        } else if unacked && state_timeout > t.unack {
            t.unack
        } else if self.last_win == 0 && state_timeout > t.retrans {
            t.retrans
        } else {
            state_timeout
        };

        if !meta.flags.seen_reply() {
            // Only a RST came back (or the sender gave up): no connection to keep.
            if seg.flags.rst() {
                return TrackVerdict::Kill;
            }
            // A SYN retransmission does not renew the timeout, or port reuse by a client or
            // a NAT could keep the entry alive forever. Linux returns `NF_ACCEPT` before
            // `nf_ct_refresh_acct`: accepted, not refreshed, not counted.
            if index == FlagClass::Syn && old_state == TcpState::SynSent {
                return TrackVerdict::Ignore(Ignored::TcpSynRetransmit);
            }
            // ESTABLISHED without a reply is a loose pickup: no five-day timeout for it.
            if new_state == TcpState::Established && timeout > t.unack {
                timeout = t.unack;
            }
        } else if !meta.flags.assured()
            && matches!(old_state, TcpState::SynRecv | TcpState::Established)
            && new_state == TcpState::Established
        {
            // A valid ACK after SYN_RECV, or a valid answer for a picked-up connection.
            meta.flags.set(CtFlags::ASSURED);
        }
        meta.expires = now.after(timeout);
        TrackVerdict::Accept
    }

    /// The only place the state changes. Linux marks the direction that moved the connection
    /// into FIN_WAIT as the one that closed first (`IP_CT_TCP_FLAG_CLOSE_INIT`).
    fn set_state(&mut self, new_state: TcpState, dir: Direction) {
        if self.state != new_state && new_state == TcpState::FinWait {
            self.flags[dir.index()] |= F::CLOSE_INIT;
        }
        self.state = new_state;
    }

    /// The re-open condition of a SYN in TIME_WAIT or CLOSE: a FIN closed the connection, or
    /// the last segment was an RST from the SYN's own side.
    fn closed_by_us_or_fin(&self, dir: Direction) -> bool {
        (self.flags[0] | self.flags[1]) & F::CLOSE_INIT != 0
            || (self.last_dir() == dir && self.last_index() == FlagClass::Rst)
    }

    /// Linux's `TCP_CONNTRACK_IGNORE` case. Returns `true` when the segment is a SYN/ACK
    /// answering a SYN we ignored earlier: the tracker re-syncs from the noted SYN and the
    /// caller goes on as SYN_SENT -> SYN_RECV. Otherwise notes the segment (so that a later
    /// SYN/ACK or RST can be matched against it) and returns `false`: the packet is ignored.
    fn ignore(
        &mut self,
        dir: Direction,
        index: FlagClass,
        seg: &TcpSeg<'_>,
        old_state: TcpState,
    ) -> bool {
        if index == FlagClass::SynAck
            && self.last_index() == FlagClass::Syn
            && self.last_dir() != dir
            && SeqNumber(seg.ack) == self.last_end()
        {
            let ld = self.last_dir().index();
            let last_end = self.last_end();
            self.seen[ld].td_end = last_end;
            self.seen[ld].td_maxend = last_end;
            self.seen[ld].td_maxwin = if self.last_win == 0 {
                1
            } else {
                u32::from(self.last_win)
            };
            self.set_scale(ld, self.last_wscale());
            self.last_flags &= !F::EXP_CHALLENGE_ACK;
            // Linux copies all of `last_flags`, SIMULTANEOUS_OPEN bit included.
            self.flags[ld] = self.last_flags;
            self.reset_direction(dir.index());
            return true;
        }
        let seq = SeqNumber(seg.seq);
        self.set_last_index(index);
        self.set_last_dir(dir);
        self.set_last_seq_end(seq, segment_end(seg));
        self.last_win = seg.window;

        // A SYN in ORIGINAL: client and server may be in sync and we not. Note its options;
        // if it is valid the server answers with a SYN/ACK and we re-sync from the note,
        // otherwise it may answer with an RFC 5961 challenge ACK.
        if index == FlagClass::Syn && dir == Direction::Original {
            self.last_flags = 0;
            self.set_last_wscale(0);
            let (mut scale, mut flags) = (0u8, 0u8);
            tcp_options(seg.options, &mut scale, &mut flags);
            if flags & F::WINDOW_SCALE != 0 {
                self.last_flags |= F::WINDOW_SCALE;
                self.set_last_wscale(scale);
            }
            if flags & F::SACK_PERM != 0 {
                self.last_flags |= F::SACK_PERM;
            }
            // In LAST_ACK an ACK is read as the ACK of the last FIN: mark that a challenge
            // ACK may come instead.
            if old_state == TcpState::LastAck {
                self.last_flags |= F::EXP_CHALLENGE_ACK;
            }
        }

        // A possible challenge ACK answering the SYN.
        if old_state == TcpState::SynSent && index == FlagClass::Ack && dir == Direction::Reply {
            self.last_ack = SeqNumber(seg.ack);
        }
        false
    }

    /// The RST checks of Linux's `TCP_CONNTRACK_CLOSE` case. `None` is an invalid RST (its
    /// sequence number lies behind what the peer has acknowledged).
    fn check_rst(
        &self,
        ct: CtFlags,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
        old_state: TcpState,
    ) -> Option<RstPlan> {
        let check = |keep_state| {
            Some(RstPlan {
                keep_state,
                skip_window: false,
            })
        };
        let skip = |keep_state| {
            Some(RstPlan {
                keep_state,
                skip_window: true,
            })
        };
        let r = dir.opposite().index();

        // Closing: the tuple may already be reused and every field used for validation be
        // stale, so skip the checks.
        if self.can_early_drop() {
            return skip(false);
        }

        let mut keep_state = false;
        // td_maxack might be outdated if we let a SYN through earlier.
        if self.flags[r] & F::MAXACK_SET != 0 && self.last_index() != FlagClass::Syn {
            let seq = SeqNumber(seg.seq);
            let established = self.state == TcpState::Established && ct.assured();
            // Not established and seq 0: most likely the answer to a SYN we let through.
            if seq.0 == 0 && !established {
                return check(false);
            }
            if seq.before(self.seen[r].td_maxack) && !cfg.ignore_invalid_rst {
                return None;
            }
            if !established || seq == self.seen[r].td_maxack {
                return check(false);
            }
            // An RST at the end of a train of data from the same side.
            if self.last_index() == FlagClass::Ack
                && self.last_dir() == dir
                && seq == self.last_end()
            {
                return check(false);
            }
            // The RST does not match exactly: keep the state to allow a challenge ACK.
            keep_state = true;
        }

        // An RST answering a SYN (a) or an ACK of a half-open connection (c) that we let
        // through on the ignore path: delete the entry, and skip the window checks since the
        // RST may acknowledge segments we ignored. Since 6.18.35 (upstream bed6e04be8e6) only
        // the other side can answer the noted SYN: an RST from the SYN's own side goes
        // through the window checks like any other, or one end of an established connection
        // could tear its entry down by sending a SYN and then an RST acknowledging it. The
        // ACK case has no such condition (checked against 6.18.44: a same-side RST after a
        // noted ACK still closes a connection that is not ASSURED).
        let last_index = self.last_index();
        if ((ct.seen_reply() && last_index == FlagClass::Syn && self.last_dir() != dir)
            || (!ct.assured() && last_index == FlagClass::Ack))
            && SeqNumber(seg.ack) == self.last_end()
        {
            return skip(keep_state);
        }

        // An RST answering a challenge ACK we let through earlier.
        if old_state == TcpState::SynSent
            && last_index == FlagClass::Ack
            && self.last_dir() == Direction::Reply
            && SeqNumber(seg.seq) == self.last_ack
        {
            return skip(keep_state);
        }
        check(keep_state)
    }

    /// Linux `tcp_init_sender`: (re)initialise the sender from a SYN or SYN/ACK.
    fn init_sender(&mut self, dir: Direction, seg: &TcpSeg<'_>, end: SeqNumber, win: u32) {
        let (s, r) = (dir.index(), dir.opposite().index());
        self.seen[s].td_end = end;
        self.seen[s].td_maxend = end;
        self.seen[s].td_maxwin = if win == 0 { 1 } else { win };
        let (mut scale, mut flags) = (self.scale(s), self.flags[s]);
        tcp_options(seg.options, &mut scale, &mut flags);
        self.set_scale(s, scale);
        self.flags[s] = flags;
        // RFC 1323: window scaling is on only if both sides send the option.
        if dir == Direction::Reply
            && !(self.flags[s] & F::WINDOW_SCALE != 0 && self.flags[r] & F::WINDOW_SCALE != 0)
        {
            self.set_scale(s, 0);
            self.set_scale(r, 0);
        }
    }

    /// Linux `nf_tcp_log_invalid`: a liberal connection (or configuration) accepts what would
    /// be ignored or invalid.
    fn log_invalid(&self, s: usize, cfg: &TcpConfig, ret: WindowVerdict) -> WindowVerdict {
        if self.flags[s] & F::BE_LIBERAL != 0 || cfg.be_liberal {
            WindowVerdict::Accept
        } else {
            ret
        }
    }

    /// Linux `tcp_in_window`: the window checks after Rooij's "Real Stateful TCP Packet
    /// Filtering in IP Filter", with the RFC 793 bounds:
    ///
    /// - I.   seq <= sender.td_maxend
    /// - II.  seq + len >= sender.td_end - receiver.td_maxwin
    /// - III. sack <= receiver.td_end
    /// - IV.  sack >= receiver.td_end - MAXACKWINDOW
    ///
    /// where sack is the highest SACK right edge, or the ACK without SACK.
    fn in_window(
        &mut self,
        dir: Direction,
        index: FlagClass,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> WindowVerdict {
        let (s, r) = (dir.index(), dir.opposite().index());
        let mut seq = SeqNumber(seg.seq);
        let mut ack = SeqNumber(seg.ack);
        let mut sack = ack;
        let win_raw = seg.window;
        let mut win = u32::from(win_raw);
        let mut end = segment_end(seg);
        let (syn, has_ack, rst) = (seg.flags.syn(), seg.flags.ack(), seg.flags.rst());

        if self.flags[r] & F::SACK_PERM != 0 {
            tcp_sack(seg.options, &mut sack);
        }
        // No NAT: the sequence offset (`nf_ct_seq_offset`) is zero.

        if self.seen[s].td_maxwin == 0 {
            // First segment from this sender.
            if syn {
                // SYN/ACK answering a SYN, or SYN from REPLY in a simultaneous open.
                self.init_sender(dir, seg, end, win);
                if !has_ack {
                    return WindowVerdict::Accept; // simultaneous open
                }
            } else {
                // Mid-connection: use what this segment shows.
                self.seen[s].td_end = end;
                let swin = win << self.scale(s);
                self.seen[s].td_maxwin = if swin == 0 { 1 } else { swin };
                self.seen[s].td_maxend = end + self.seen[s].td_maxwin;
                if self.seen[r].td_maxwin == 0 {
                    // Nothing seen the other way yet: let III and IV pass until it is.
                    self.seen[r].td_end = sack;
                    self.seen[r].td_maxend = sack;
                } else if sack == self.seen[r].td_end + 1 {
                    // Likely a reply to a keepalive. Needed for III.
                    self.seen[r].td_end = self.seen[r].td_end + 1;
                }
            }
        } else if syn
            && end.after(self.seen[s].td_end)
            && matches!(self.state, TcpState::SynSent | TcpState::SynRecv)
        {
            // RFC 793: a reinitialised TCP only needs higher sequence numbers. Re-init this
            // direction as for the first SYN(/ACK): seq, ack or options may differ.
            self.init_sender(dir, seg, end, win);
            if dir == Direction::Reply && !has_ack {
                return WindowVerdict::Accept;
            }
        }

        if !has_ack {
            // No ACK: pretend it was set and fine.
            ack = self.seen[r].td_end;
            sack = ack;
        } else if rst && ack.0 == 0 {
            // Broken stacks set ACK with a zero ack number in RSTs.
            ack = self.seen[r].td_end;
            sack = ack;
        }

        if rst && seq.0 == 0 && self.state == TcpState::SynSent {
            // RST answering a SYN.
            seq = self.seen[s].td_end;
            end = seq;
        }

        let maxackwindow = self.seen[s].td_maxwin.max(MAXACKWINCONST);
        if !seq.before(self.seen[s].td_maxend + 1) {
            let overshot = (end - self.seen[s].td_maxend).wrapping_add(1);
            let ack_ok = sack.after(self.seen[r].td_end - maxackwindow - 1);
            let in_recv_win = self.seen[r].td_maxwin != 0
                && end.after(self.seen[s].td_end - self.seen[r].td_maxwin - 1);
            if in_recv_win
                && ack_ok
                && overshot <= self.seen[r].td_maxwin
                && sack.before(self.seen[r].td_end + 1)
            {
                // Work around stacks that send more than the receive window allows: if the
                // ruleset lets this INVALID packet through and the peer ACKs it, td_end must
                // already cover it or every later ACK would be "over upper bound".
                self.seen[s].td_end = end;
                self.flags[s] |= F::DATA_UNACKNOWLEDGED;
                return self.log_invalid(s, cfg, WindowVerdict::Ignore(Ignored::TcpWindowOverrun));
            }
            return self.log_invalid(s, cfg, WindowVerdict::Invalid(Reason::TcpSeqOverWindow));
        }

        if !sack.before(self.seen[r].td_end + 1) {
            return self.log_invalid(s, cfg, WindowVerdict::Invalid(Reason::TcpAckOverWindow));
        }

        // Is the end in the receive window (if known)? If not: already ACKed data retransmitted.
        let in_recv_win = self.seen[r].td_maxwin == 0
            || end.after(self.seen[s].td_end - self.seen[r].td_maxwin - 1);
        if !in_recv_win {
            return self.log_invalid(s, cfg, WindowVerdict::Ignore(Ignored::TcpSeqUnderWindow));
        }
        if !sack.after(self.seen[r].td_end - maxackwindow - 1) {
            // ACK under the lower bound: possibly overly delayed.
            return self.log_invalid(s, cfg, WindowVerdict::Ignore(Ignored::TcpAckUnderWindow));
        }

        // Window scaling (RFC 1323); SYN windows are never scaled.
        if !syn {
            win <<= self.scale(s);
        }

        // Update the sender.
        let swin = win.wrapping_add(sack - ack);
        if self.seen[s].td_maxwin < swin {
            self.seen[s].td_maxwin = swin;
        }
        if end.after(self.seen[s].td_end) {
            self.seen[s].td_end = end;
            self.flags[s] |= F::DATA_UNACKNOWLEDGED;
        }
        if has_ack {
            if self.flags[s] & F::MAXACK_SET == 0 {
                self.seen[s].td_maxack = ack;
                self.flags[s] |= F::MAXACK_SET;
            } else if ack.after(self.seen[s].td_maxack) {
                self.seen[s].td_maxack = ack;
            }
        }

        // Update the receiver.
        if self.seen[r].td_maxwin != 0 && end.after(self.seen[s].td_maxend) {
            self.seen[r].td_maxwin = self.seen[r]
                .td_maxwin
                .wrapping_add(end - self.seen[s].td_maxend);
        }
        if (sack + win).after(self.seen[r].td_maxend - 1) {
            self.seen[r].td_maxend = sack + win;
            if win == 0 {
                self.seen[r].td_maxend = self.seen[r].td_maxend + 1;
            }
        }
        if ack == self.seen[r].td_end {
            self.flags[r] &= !F::DATA_UNACKNOWLEDGED;
        }

        // Count retransmissions of the same ACK segment.
        if index == FlagClass::Ack {
            if self.last_dir() == dir
                && self.last_seq == seq
                && self.last_ack == ack
                && self.last_end() == end
                && self.last_win == win_raw
            {
                self.retrans = self.retrans.wrapping_add(1);
            } else {
                self.set_last_dir(dir);
                self.set_last_seq_end(seq, end);
                self.last_ack = ack;
                self.last_win = win_raw;
                self.retrans = 0;
            }
        }
        WindowVerdict::Accept
    }

    /// Linux `nf_tcp_handle_invalid`: an out-of-window FIN or RST answering an earlier FIN or
    /// RST from the other side shortens an assured connection's deadline to the UNACK timeout
    /// (conntrack and the endpoints are out of sync: do not hold the entry for days).
    fn handle_invalid(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        index: FlagClass,
        cfg: &TcpConfig,
    ) {
        if !meta.flags.assured() {
            return;
        }
        if !matches!(index, FlagClass::Rst | FlagClass::Fin) {
            return;
        }
        if self.last_dir() != dir && matches!(self.last_index(), FlagClass::Fin | FlagClass::Rst) {
            let expires = meta.expires.remaining(now);
            if expires < HANDLE_INVALID_FLOOR {
                return;
            }
            let timeout = cfg.timeouts.unack;
            if expires > timeout {
                meta.expires = now.after(timeout);
            }
        } else {
            self.set_last_index(index);
            self.set_last_dir(dir);
        }
    }

    /// Linux `nf_ct_tcp_state_reset`.
    fn reset_direction(&mut self, d: usize) {
        self.seen[d] = Seen::default();
        self.set_scale(d, 0);
        self.flags[d] &= F::BE_LIBERAL;
    }

    // ---- packed fields ----

    #[inline]
    fn scale(&self, d: usize) -> u8 {
        if d == 0 {
            self.scales & 0x0f
        } else {
            self.scales >> 4
        }
    }

    #[inline]
    fn set_scale(&mut self, d: usize, scale: u8) {
        let scale = scale & 0x0f;
        self.scales = if d == 0 {
            (self.scales & 0xf0) | scale
        } else {
            (self.scales & 0x0f) | (scale << 4)
        };
    }

    #[inline]
    fn last_wscale(&self) -> u8 {
        self.last >> LAST_WSCALE_SHIFT
    }

    #[inline]
    fn set_last_wscale(&mut self, scale: u8) {
        self.last =
            (self.last & (LAST_INDEX_MASK | LAST_DIR_BIT)) | ((scale & 0x0f) << LAST_WSCALE_SHIFT);
    }

    #[inline]
    fn set_last_index(&mut self, index: FlagClass) {
        self.last = (self.last & !LAST_INDEX_MASK) | (index as u8 & LAST_INDEX_MASK);
    }

    #[inline]
    fn set_last_dir(&mut self, dir: Direction) {
        self.last = match dir {
            Direction::Original => self.last & !LAST_DIR_BIT,
            Direction::Reply => self.last | LAST_DIR_BIT,
        };
    }

    /// Set `last_seq` and `last_end` (always assigned together, from one segment).
    #[inline]
    fn set_last_seq_end(&mut self, seq: SeqNumber, end: SeqNumber) {
        self.last_seq = seq;
        self.last_len = u16::try_from(end - seq).unwrap_or(u16::MAX);
    }
}

mod fast;
mod open;

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod tests;
