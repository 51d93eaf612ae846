//! TCP connection tracking: the state machine, window tracking and timeouts of Linux 6.x
//! `net/netfilter/nf_conntrack_proto_tcp.c`, ported function by function.
//!
//! | Linux | here |
//! |---|---|
//! | `tcp_valid_flags` (in `tcp_error`) | [`flags_valid`] |
//! | `tcp_new` | [`TcpConn::new`] |
//! | `nf_conntrack_tcp_packet` (minus `tcp_error`) | [`TcpConn::packet`] |
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
//! # How the pipeline drives it
//! - Every TCP segment first passes [`flags_valid`] (in `Engine::plan`, before any lookup, as
//!   Linux's `tcp_error` runs before the conntrack lookup), else it is INVALID.
//! - A segment that then finds no entry goes through [`TcpConn::new`] (Linux `tcp_new`), then
//!   [`TcpConn::packet`] for the same segment with `meta.flags` empty and
//!   [`Direction::Original`], as Linux runs `nf_conntrack_tcp_packet` after `tcp_new`.
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

use crate::counters::Reason;
use crate::flow::Direction;
use crate::time::{Tick, Ticks};
use crate::track::{CtFlags, EntryMeta, TrackVerdict};
use crate::wire::tcp::{TcpOption, TcpOptions};
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

/// The outcome of `tcp_in_window` (Linux `enum nf_ct_tcp_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WindowVerdict {
    Accept,
    Ignore,
    Invalid(Reason),
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
fn tcp_options(opts: &[u8], scale: &mut u8, flags: &mut u8) {
    if opts.is_empty() {
        return;
    }
    *scale = 0;
    *flags &= F::BE_LIBERAL;
    // The wire module's walk stops exactly where the kernel's does (EOL, silly or partial
    // options); a known kind with the wrong length comes back as `Unknown` and is skipped.
    for o in TcpOptions::new(opts) {
        match o {
            TcpOption::SackPermitted => *flags |= F::SACK_PERM,
            TcpOption::WindowScale(ws) => {
                *scale = ws.min(TCP_MAX_WSCALE);
                *flags |= F::WINDOW_SCALE;
            }
            _ => {}
        }
    }
}

/// Linux `tcp_sack`: raises `sack` to the highest right edge of the first SACK option.
///
/// Quirks kept: exactly one timestamp option (NOP, NOP, TS) skips parsing; only the first
/// well-formed SACK option is read.
fn tcp_sack(opts: &[u8], sack: &mut SeqNumber) {
    if opts.is_empty() {
        return;
    }
    if opts.len() == opt::LEN_TSTAMP_ALIGNED
        && opts.get(..4) == Some(&[opt::NOP, opt::NOP, opt::TIMESTAMP, opt::LEN_TIMESTAMP][..])
    {
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
    /// and not a SYN). The pipeline then runs [`TcpConn::packet`] for the same segment.
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
    pub fn packet(
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
                    return TrackVerdict::Ignore;
                }
                old_state = TcpState::SynSent;
                TcpState::SynRecv
            }
            Next::Ignore => {
                if !self.ignore(dir, index, seg, old_state) {
                    return TrackVerdict::Ignore;
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
                    return TrackVerdict::Ignore;
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
                WindowVerdict::Ignore => return TrackVerdict::Ignore,
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
            // a NAT could keep the entry alive forever.
            if index == FlagClass::Syn && old_state == TcpState::SynSent {
                return TrackVerdict::Accept;
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
                return self.log_invalid(s, cfg, WindowVerdict::Ignore);
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
            return self.log_invalid(s, cfg, WindowVerdict::Ignore);
        }
        if !sack.after(self.seen[r].td_end - maxackwindow - 1) {
            // ACK under the lower bound: possibly overly delayed.
            return self.log_invalid(s, cfg, WindowVerdict::Ignore);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::CtFlags;
    use proptest::prelude::*;

    const ORIG: Direction = Direction::Original;
    const REPLY: Direction = Direction::Reply;
    const FIN: u8 = TcpFlags::FIN;
    const SYN: u8 = TcpFlags::SYN;
    const RST: u8 = TcpFlags::RST;
    const PSH: u8 = TcpFlags::PSH;
    const ACK: u8 = TcpFlags::ACK;
    const URG: u8 = TcpFlags::URG;

    /// The SYN options of the conformance traces: MSS 1460, NOP, WS 7, SACK_PERM, NOP, NOP.
    const SYN_OPTS: &[u8] = &[2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1];
    /// MSS and SACK_PERM, no window scale.
    const SYN_OPTS_NO_WS: &[u8] = &[2, 4, 5, 0xb4, 4, 2, 1, 1];
    const C_ISN: u32 = 1_000_000;
    const S_ISN: u32 = 5_000_000;
    /// Start time: far from zero so that deadlines are real additions.
    const T0: Tick = Tick(0x4000_0000);

    fn secs(s: u32) -> Ticks {
        Ticks::from_secs(s)
    }

    fn seg_opts(
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
        len: u32,
        options: &[u8],
    ) -> TcpSeg<'_> {
        TcpSeg {
            sport: 40000,
            dport: 80,
            seq,
            ack,
            flags: TcpFlags(flags),
            window,
            payload_len: len,
            options,
        }
    }

    fn seg(flags: u8, seq: u32, ack: u32, window: u16, len: u32) -> TcpSeg<'static> {
        seg_opts(flags, seq, ack, window, len, &[])
    }

    fn syn(seq: u32) -> TcpSeg<'static> {
        seg_opts(SYN, seq, 0, 64240, 0, SYN_OPTS)
    }

    fn synack(seq: u32, ack: u32) -> TcpSeg<'static> {
        seg_opts(SYN | ACK, seq, ack, 64240, 0, SYN_OPTS)
    }

    fn ack(seq: u32, ack: u32) -> TcpSeg<'static> {
        seg(ACK, seq, ack, 502, 0)
    }

    fn data(seq: u32, ack: u32, len: u32) -> TcpSeg<'static> {
        seg(PSH | ACK, seq, ack, 502, len)
    }

    fn fin(seq: u32, ack: u32) -> TcpSeg<'static> {
        seg(FIN | ACK, seq, ack, 502, 0)
    }

    /// A connection driven the way the pipeline drives the tracker: `new` then `packet` for
    /// the first segment, and SEEN_REPLY set after an accepted or ignored REPLY packet.
    #[derive(Clone, Debug)]
    struct Conn {
        conn: TcpConn,
        meta: EntryMeta,
        now: Tick,
        cfg: TcpConfig,
    }

    impl Conn {
        fn open_with(cfg: TcpConfig, first: TcpSeg<'_>) -> Result<Conn, Reason> {
            assert!(
                flags_valid(first.flags),
                "the pipeline checks flags before `new`"
            );
            let conn = TcpConn::new(&first, &cfg)?;
            let mut c = Conn {
                conn,
                meta: EntryMeta {
                    flags: CtFlags::default(),
                    expires: T0,
                },
                now: T0,
                cfg,
            };
            let action = c.send(ORIG, first);
            assert_eq!(action, TrackVerdict::Accept, "first segment of a new entry");
            Ok(c)
        }

        fn open(first: TcpSeg<'_>) -> Conn {
            Conn::open_with(TcpConfig::default(), first).expect("segment opens a connection")
        }

        fn send(&mut self, dir: Direction, seg: TcpSeg<'_>) -> TrackVerdict {
            let action = self
                .conn
                .packet(&mut self.meta, self.now, dir, &seg, &self.cfg);
            if dir == REPLY && matches!(action, TrackVerdict::Accept | TrackVerdict::Ignore) {
                self.meta.flags.set(CtFlags::SEEN_REPLY);
            }
            action
        }

        fn wait(&mut self, s: u32) {
            self.now = self.now.after(secs(s));
        }

        fn left(&self) -> Ticks {
            self.meta.expires.remaining(self.now)
        }

        fn state(&self) -> TcpState {
            self.conn.state()
        }

        /// State, exact time left, and (UNREPLIED, ASSURED) as `conntrack -L` shows them.
        #[track_caller]
        fn check(&self, state: TcpState, left_secs: u32, unreplied: bool, assured: bool) {
            assert_eq!(self.state(), state, "state");
            assert_eq!(self.left(), secs(left_secs), "time left");
            assert_eq!(!self.meta.flags.seen_reply(), unreplied, "UNREPLIED");
            assert_eq!(self.meta.flags.assured(), assured, "ASSURED");
        }
    }

    fn syn_sent() -> Conn {
        Conn::open(syn(C_ISN))
    }

    fn syn_sent2() -> Conn {
        let mut c = syn_sent();
        assert_eq!(c.send(REPLY, syn(S_ISN)), TrackVerdict::Accept);
        c
    }

    fn syn_recv() -> Conn {
        let mut c = syn_sent();
        assert_eq!(
            c.send(REPLY, synack(S_ISN, C_ISN + 1)),
            TrackVerdict::Accept
        );
        c
    }

    fn established() -> Conn {
        let mut c = syn_recv();
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        c
    }

    fn fin_wait() -> Conn {
        let mut c = established();
        assert_eq!(
            c.send(ORIG, fin(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        c
    }

    fn close_wait() -> Conn {
        let mut c = fin_wait();
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 2)),
            TrackVerdict::Accept
        );
        c
    }

    fn last_ack() -> Conn {
        let mut c = close_wait();
        assert_eq!(
            c.send(REPLY, fin(S_ISN + 1, C_ISN + 2)),
            TrackVerdict::Accept
        );
        c
    }

    fn time_wait() -> Conn {
        let mut c = last_ack();
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 2, S_ISN + 2)),
            TrackVerdict::Accept
        );
        c
    }

    /// ESTABLISHED, then an exact RST from the client.
    fn close() -> Conn {
        let mut c = established();
        assert_eq!(
            c.send(ORIG, seg(RST, C_ISN + 1, 0, 0, 0)),
            TrackVerdict::Accept
        );
        c
    }

    /// A connection in `state`, reached by real segments (NONE has no such path).
    fn in_state(state: TcpState) -> Option<Conn> {
        Some(match state {
            TcpState::None => return None,
            TcpState::SynSent => syn_sent(),
            TcpState::SynRecv => syn_recv(),
            TcpState::Established => established(),
            TcpState::FinWait => fin_wait(),
            TcpState::CloseWait => close_wait(),
            TcpState::LastAck => last_ack(),
            TcpState::TimeWait => time_wait(),
            TcpState::Close => close(),
            TcpState::SynSent2 => syn_sent2(),
        })
    }

    // ---- basics ----

    #[test]
    fn layout_fits_the_entry() {
        assert!(core::mem::size_of::<TcpConn>() <= 52);
        assert_eq!(core::mem::size_of::<TcpConn>(), 52);
        assert_eq!(core::mem::size_of::<TcpState>(), 1);
    }

    #[test]
    fn seq_numbers_compare_modulo_2_32() {
        let a = SeqNumber(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b, SeqNumber(4));
        assert!(a.before(b) && b.after(a));
        assert!(!a.before(a) && !a.after(a));
        assert_eq!(b - a, 10);
        assert_eq!(b - 10u32, a);
        // Exactly half the space apart: `before` is the sign of the difference, as in Linux.
        let c = SeqNumber(0x8000_0000);
        assert!(SeqNumber(0).after(c) && SeqNumber(0).before(c) == c.before(SeqNumber(0)));
    }

    #[test]
    fn state_names_and_order_match_linux() {
        let names: Vec<_> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "SYN_SENT",
                "SYN_RECV",
                "ESTABLISHED",
                "FIN_WAIT",
                "CLOSE_WAIT",
                "LAST_ACK",
                "TIME_WAIT",
                "CLOSE",
                "SYN_SENT2"
            ]
        );
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn default_timeouts_are_linux_defaults() {
        let t = TcpTimeouts::default();
        let got: Vec<u32> = TcpState::ALL
            .iter()
            .map(|&s| t.of(s).whole_secs())
            .collect();
        assert_eq!(got, [120, 120, 60, 432_000, 120, 60, 30, 120, 10, 120]);
        assert_eq!((t.retrans, t.unack), (secs(300), secs(300)));
        let c = TcpConfig::default();
        assert!(c.loose && !c.be_liberal && !c.ignore_invalid_rst && c.max_retrans == 3);
    }

    #[test]
    fn flags_valid_is_linux_tcp_valid_flags() {
        let valid: [u8; 9] = [
            SYN,
            SYN | URG,
            SYN | ACK,
            RST,
            RST | ACK,
            FIN | ACK,
            FIN | ACK | URG,
            ACK,
            ACK | URG,
        ];
        for f in 0..=255u8 {
            let core = f & !(TcpFlags::ECE | TcpFlags::CWR | PSH);
            assert_eq!(
                flags_valid(TcpFlags(f)),
                valid.contains(&core),
                "flags {f:#04x}"
            );
        }
        // The combinations Linux rejects that the conformance traces use.
        for f in [0, FIN, SYN | FIN, SYN | RST, FIN | PSH | URG] {
            assert!(!flags_valid(TcpFlags(f)));
        }
    }

    #[test]
    fn flag_class_priority_is_rst_syn_fin_ack() {
        assert_eq!(
            FlagClass::of(TcpFlags(RST | SYN | FIN | ACK)),
            FlagClass::Rst
        );
        assert_eq!(FlagClass::of(TcpFlags(SYN | FIN)), FlagClass::Syn);
        assert_eq!(FlagClass::of(TcpFlags(SYN | FIN | ACK)), FlagClass::SynAck);
        assert_eq!(FlagClass::of(TcpFlags(FIN)), FlagClass::Fin);
        assert_eq!(FlagClass::of(TcpFlags(FIN | ACK)), FlagClass::Fin);
        assert_eq!(FlagClass::of(TcpFlags(ACK | PSH)), FlagClass::Ack);
        assert_eq!(FlagClass::of(TcpFlags(PSH | URG)), FlagClass::None);
    }

    #[test]
    fn packed_fields_round_trip() {
        let mut c = TcpConn::default();
        for index in FlagClass::ALL {
            for dir in [ORIG, REPLY] {
                for ws in 0..=14 {
                    c.set_last_index(index);
                    c.set_last_dir(dir);
                    c.set_last_wscale(ws);
                    c.set_scale(0, 14 - ws);
                    c.set_scale(1, ws);
                    assert_eq!(
                        (c.last_index(), c.last_dir(), c.last_wscale()),
                        (index, dir, ws)
                    );
                    assert_eq!((c.scale(0), c.scale(1)), (14 - ws, ws));
                }
            }
        }
        // The largest segment the parser can produce: IPv6, 65515 bytes of payload, SYN+FIN.
        c.set_last_seq_end(SeqNumber(u32::MAX - 3), SeqNumber(u32::MAX - 3) + 65_517);
        assert_eq!(c.last_end(), SeqNumber(u32::MAX - 3) + 65_517);
    }

    // ---- options ----

    #[test]
    fn options_window_scale_and_sack_perm() {
        let (mut scale, mut flags) = (0, 0);
        tcp_options(SYN_OPTS, &mut scale, &mut flags);
        assert_eq!((scale, flags), (7, F::WINDOW_SCALE | F::SACK_PERM));
    }

    #[test]
    fn options_quirks() {
        let parse = |opts: &[u8], scale: u8, flags: u8| {
            let (mut s, mut f) = (scale, flags);
            tcp_options(opts, &mut s, &mut f);
            (s, f)
        };
        // No options: nothing is reset.
        assert_eq!(
            parse(&[], 5, F::SACK_PERM | F::MAXACK_SET),
            (5, F::SACK_PERM | F::MAXACK_SET)
        );
        // Options: every flag but BE_LIBERAL is reset first.
        assert_eq!(parse(&[1, 1, 1, 1], 5, 0xff), (0, F::BE_LIBERAL));
        // Scale capped at 14.
        assert_eq!(parse(&[3, 3, 200, 0], 0, 0), (14, F::WINDOW_SCALE));
        // EOL stops parsing.
        assert_eq!(parse(&[0, 3, 3, 7], 0, 0), (0, 0));
        // A silly option (length < 2) stops parsing.
        assert_eq!(parse(&[8, 1, 3, 3, 7, 0], 0, 0), (0, 0));
        // A partial option stops parsing; what came before it counts.
        assert_eq!(parse(&[4, 2, 3, 3], 0, 0), (0, F::SACK_PERM));
        // Wrong lengths are skipped, not taken.
        assert_eq!(parse(&[3, 4, 7, 0, 4, 3, 0, 1], 0, 0), (0, 0));
        // The last window-scale option wins.
        assert_eq!(parse(&[3, 3, 2, 3, 3, 9, 1, 1], 0, 0), (9, F::WINDOW_SCALE));
        // A single trailing byte that is not NOP/EOL: `length < 2` stops.
        assert_eq!(parse(&[4, 2, 3], 0, 0), (0, F::SACK_PERM));
    }

    #[test]
    fn sack_quirks() {
        let sack = |opts: &[u8], ack: u32| {
            let mut s = SeqNumber(ack);
            tcp_sack(opts, &mut s);
            s.0
        };
        let block = |l: u32, r: u32| {
            let mut v = vec![1, 1, 5, 10];
            v.extend_from_slice(&l.to_be_bytes());
            v.extend_from_slice(&r.to_be_bytes());
            v
        };
        assert_eq!(sack(&block(100, 200), 50), 200);
        // A right edge behind the ACK does not lower it.
        assert_eq!(sack(&block(10, 20), 50), 50);
        // The highest right edge of several blocks.
        let mut two = vec![1, 1, 5, 18];
        for (l, r) in [(300u32, 400u32), (100, 200)] {
            two.extend_from_slice(&l.to_be_bytes());
            two.extend_from_slice(&r.to_be_bytes());
        }
        assert_eq!(sack(&two, 50), 400);
        // The timestamp-only fast path returns before anything else.
        assert_eq!(sack(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 50), 50);
        // A malformed SACK length is skipped.
        let mut bad = block(100, 200);
        bad[3] = 9;
        assert_eq!(sack(&bad, 50), 50);
        // Only the first SACK option counts.
        let mut first_then_second = block(100, 200);
        first_then_second.extend_from_slice(&block(100, 900)[2..]);
        assert_eq!(sack(&first_then_second, 50), 200);
    }

    // ---- tcp_new ----

    #[test]
    fn new_accepts_syn_and_loose_ack_only() {
        let cfg = TcpConfig::default();
        assert!(TcpConn::new(&syn(C_ISN), &cfg).is_ok());
        assert!(TcpConn::new(&ack(C_ISN, S_ISN), &cfg).is_ok());
        assert!(TcpConn::new(&data(C_ISN, S_ISN, 10), &cfg).is_ok());
        for bad in [
            synack(S_ISN, C_ISN + 1),
            fin(C_ISN, S_ISN),
            seg(RST, C_ISN, 0, 0, 0),
        ] {
            assert_eq!(TcpConn::new(&bad, &cfg), Err(Reason::TcpInvalidNew));
        }
        assert_eq!(
            TcpConn::new(&seg(URG, 1, 0, 0, 0), &cfg),
            Err(Reason::TcpInvalidNew)
        );
    }

    #[test]
    fn new_syn_initialises_the_original_direction() {
        let c = TcpConn::new(&syn(C_ISN), &TcpConfig::default()).expect("SYN opens");
        let w = c.window(ORIG);
        assert_eq!(
            (w.td_end, w.td_maxend, w.td_maxwin),
            (SeqNumber(C_ISN + 1), SeqNumber(C_ISN + 1), 64240)
        );
        assert_eq!((w.td_scale, w.flags), (7, F::WINDOW_SCALE | F::SACK_PERM));
        assert_eq!(c.window(REPLY).td_maxwin, 0);
        assert_eq!(c.last_index(), FlagClass::None);
        // A zero window still counts as one.
        let z = TcpConn::new(&seg(SYN, 7, 0, 0, 0), &TcpConfig::default()).expect("SYN opens");
        assert_eq!(z.window(ORIG).td_maxwin, 1);
    }

    #[test]
    fn loose_off_rejects_midstream() {
        let cfg = TcpConfig {
            loose: false,
            ..TcpConfig::default()
        };
        assert_eq!(
            TcpConn::new(&ack(C_ISN, S_ISN), &cfg),
            Err(Reason::TcpInvalidNew)
        );
        assert_eq!(
            TcpConn::new(&data(C_ISN, S_ISN, 100), &cfg),
            Err(Reason::TcpInvalidNew)
        );
        assert_eq!(
            TcpConn::new(&synack(S_ISN, C_ISN), &cfg),
            Err(Reason::TcpInvalidNew)
        );
        assert!(TcpConn::new(&syn(C_ISN), &cfg).is_ok());
    }

    #[test]
    fn loose_pickup_established_unreplied() {
        let mut c = Conn::open(data(2_000_000, 7_000_000, 100));
        let w = c.conn.window(ORIG);
        assert_eq!(w.flags, F::SACK_PERM | F::BE_LIBERAL);
        assert_eq!(c.conn.window(REPLY).flags, F::SACK_PERM | F::BE_LIBERAL);
        // ESTABLISHED without a reply is capped at the UNACK timeout.
        c.check(TcpState::Established, 300, true, false);
        // The first reply: still capped (SEEN_REPLY is set after it), clears UNREPLIED.
        c.wait(1);
        assert_eq!(
            c.send(REPLY, ack(7_000_000, 2_000_100)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 300, false, false);
        // The next valid packet assures the connection and gets the full timeout.
        c.wait(1);
        assert_eq!(
            c.send(REPLY, data(7_000_000, 2_000_100, 300)),
            TrackVerdict::Accept
        );
        assert!(c.meta.flags.assured());
        c.wait(1);
        assert_eq!(
            c.send(ORIG, ack(2_000_100, 7_000_300)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
    }

    // ---- the handshake ----

    #[test]
    fn syn_opens_syn_sent() {
        syn_sent().check(TcpState::SynSent, 120, true, false);
    }

    #[test]
    fn syn_sent_synack_reply() {
        let mut c = syn_sent();
        c.wait(1);
        assert_eq!(
            c.send(REPLY, synack(S_ISN, C_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::SynRecv, 60, false, false);
        let w = c.conn.window(REPLY);
        assert_eq!((w.td_end, w.td_scale), (SeqNumber(S_ISN + 1), 7));
        assert_eq!(c.conn.window(ORIG).td_scale, 7);
    }

    #[test]
    fn assured_after_handshake() {
        let mut c = syn_recv();
        c.wait(1);
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
    }

    #[test]
    fn syn_retransmit_does_not_refresh() {
        let mut c = syn_sent();
        c.wait(10);
        assert_eq!(c.send(ORIG, syn(C_ISN)), TrackVerdict::Accept);
        c.check(TcpState::SynSent, 110, true, false);
        // Not even with a new ISN (port reuse): the deadline stays.
        c.wait(10);
        assert_eq!(c.send(ORIG, syn(C_ISN + 777)), TrackVerdict::Accept);
        c.check(TcpState::SynSent, 100, true, false);
        assert_eq!(c.conn.window(ORIG).td_end, SeqNumber(C_ISN + 778));
    }

    #[test]
    fn synack_ack_beyond_isn_is_invalid() {
        let mut c = syn_recv();
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1001)),
            TrackVerdict::Invalid(Reason::TcpAckOverWindow)
        );
        c.check(TcpState::SynRecv, 60, false, false);
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
    }

    #[test]
    fn rst_answering_syn_kills() {
        let mut c = syn_sent();
        assert_eq!(
            c.send(REPLY, seg(RST | ACK, 0, C_ISN + 1, 0, 0)),
            TrackVerdict::Kill
        );
        assert_eq!(c.state(), TcpState::Close);
        // An RST from the client before any reply kills too.
        let mut c = syn_sent();
        assert_eq!(
            c.send(ORIG, seg(RST, C_ISN + 1, 0, 0, 0)),
            TrackVerdict::Kill
        );
    }

    #[test]
    fn half_open_ack_in_syn_sent_is_ignored() {
        let mut c = syn_sent();
        c.wait(5);
        assert_eq!(c.send(REPLY, ack(S_ISN, C_ISN + 1)), TrackVerdict::Ignore);
        assert_eq!(c.state(), TcpState::SynSent);
        assert_eq!(c.left(), secs(115));
        assert_eq!(c.conn.last_ack, SeqNumber(C_ISN + 1));
        assert_eq!(
            (c.conn.last_index(), c.conn.last_dir()),
            (FlagClass::Ack, REPLY)
        );
    }

    #[test]
    fn simultaneous_open() {
        let mut c = syn_sent();
        assert_eq!(c.send(REPLY, syn(S_ISN)), TrackVerdict::Accept);
        c.check(TcpState::SynSent2, 120, false, false);
        assert_ne!(c.conn.last_flags() & F::SIMULTANEOUS_OPEN, 0);
        // Each side answers with a SYN/ACK.
        assert_eq!(c.send(ORIG, synack(C_ISN, S_ISN + 1)), TrackVerdict::Accept);
        c.check(TcpState::SynRecv, 60, false, false);
        assert_eq!(
            c.send(REPLY, synack(S_ISN, C_ISN + 1)),
            TrackVerdict::Ignore
        );
        assert_eq!(c.state(), TcpState::SynRecv);
        // A plain ACK from REPLY completes it only because SIMULTANEOUS_OPEN was noted.
        c.wait(1);
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
    }

    #[test]
    fn reply_ack_in_syn_recv_stays_without_simultaneous_open() {
        let mut c = syn_recv();
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::SynRecv, 60, false, false);
    }

    #[test]
    fn synack_resync_after_ignored_syn() {
        // The client re-opens an established connection we still hold: its SYN is ignored,
        // the server's SYN/ACK for it re-syncs the tracker.
        let mut c = established();
        let isn2 = 900_000_000;
        c.wait(1);
        assert_eq!(c.send(ORIG, syn(isn2)), TrackVerdict::Ignore);
        c.check(TcpState::Established, 431_999, false, true);
        assert_eq!(c.conn.last_flags(), F::WINDOW_SCALE | F::SACK_PERM);
        assert_eq!(c.conn.last_end(), SeqNumber(isn2 + 1));
        // A SYN/ACK that does not acknowledge the noted SYN is just ignored.
        assert_eq!(
            c.send(REPLY, synack(S_ISN + 9, isn2 + 2)),
            TrackVerdict::Ignore
        );
        assert_eq!(c.send(ORIG, syn(isn2)), TrackVerdict::Ignore);
        let s2 = 600_000_000;
        assert_eq!(
            c.send(
                REPLY,
                seg_opts(SYN | ACK, s2, isn2 + 1, 65000, 0, SYN_OPTS_NO_WS)
            ),
            TrackVerdict::Accept
        );
        c.check(TcpState::SynRecv, 60, false, true);
        // ORIGINAL restored from the noted SYN (its window), REPLY from the SYN/ACK.
        let o = c.conn.window(ORIG);
        assert_eq!((o.td_end, o.td_maxwin), (SeqNumber(isn2 + 1), 64240));
        assert_eq!(c.conn.window(REPLY).td_maxwin, 65000);
        // The server sent no window scale: scaling is off both ways.
        assert_eq!((o.td_scale, c.conn.window(REPLY).td_scale), (0, 0));
        assert_eq!(
            o.flags & (F::WINDOW_SCALE | F::SACK_PERM),
            F::WINDOW_SCALE | F::SACK_PERM
        );
        assert_eq!(c.conn.window(REPLY).td_end, SeqNumber(s2 + 1));
        assert_eq!(c.send(ORIG, ack(isn2 + 1, s2 + 1)), TrackVerdict::Accept);
        c.check(TcpState::Established, 432_000, false, true);
    }

    #[test]
    fn synack_resync_copies_last_flags_bits() {
        // Linux copies `last_flags` whole into the direction's flags, including the
        // SIMULTANEOUS_OPEN bit (0x80) when it is set: it is, after a simultaneous open.
        let mut c = syn_sent2();
        assert_eq!(c.send(ORIG, synack(C_ISN, S_ISN + 1)), TrackVerdict::Accept);
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
            TrackVerdict::Accept
        );
        assert_eq!(c.state(), TcpState::Established);
        // The ignored-SYN path clears last_flags before noting the options...
        assert_eq!(c.send(ORIG, syn(C_ISN + 50_000)), TrackVerdict::Ignore);
        assert_eq!(c.conn.last_flags(), F::WINDOW_SCALE | F::SACK_PERM);
        // ... so the copy carries only the options here.
        assert_eq!(
            c.send(REPLY, synack(S_ISN + 70_000, C_ISN + 50_001)),
            TrackVerdict::Accept
        );
        assert_eq!(c.conn.window(ORIG).flags, F::WINDOW_SCALE | F::SACK_PERM);

        // Without an ignored SYN in between, the SIMULTANEOUS_OPEN bit does travel: a reply
        // SYN/ACK answering an ignored SYN noted while last_flags held it.
        let mut c = syn_sent2();
        let mut noted = c.conn;
        noted.set_last_index(FlagClass::Syn);
        noted.set_last_dir(ORIG);
        noted.set_last_seq_end(SeqNumber(C_ISN), SeqNumber(C_ISN + 1));
        c.conn = noted;
        c.conn.state = TcpState::Established;
        assert_eq!(
            c.send(REPLY, synack(S_ISN, C_ISN + 1)),
            TrackVerdict::Accept
        );
        assert_eq!(c.conn.window(ORIG).flags, F::SIMULTANEOUS_OPEN);
        assert_eq!(c.state(), TcpState::SynRecv);
    }

    // ---- closing ----

    #[test]
    fn fin_handshake_timeouts() {
        let mut c = established();
        c.wait(1);
        assert_eq!(
            c.send(ORIG, fin(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::FinWait, 120, false, true);
        assert_ne!(c.conn.window(ORIG).flags & F::CLOSE_INIT, 0);
        assert_eq!(c.conn.window(REPLY).flags & F::CLOSE_INIT, 0);
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 2)),
            TrackVerdict::Accept
        );
        c.check(TcpState::CloseWait, 60, false, true);
        assert_eq!(
            c.send(REPLY, fin(S_ISN + 1, C_ISN + 2)),
            TrackVerdict::Accept
        );
        c.check(TcpState::LastAck, 30, false, true);
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 2, S_ISN + 2)),
            TrackVerdict::Accept
        );
        c.check(TcpState::TimeWait, 120, false, true);
    }

    #[test]
    fn fins_crossing_go_to_last_ack() {
        let mut c = fin_wait();
        assert_eq!(
            c.send(REPLY, fin(S_ISN + 1, C_ISN + 2)),
            TrackVerdict::Accept
        );
        c.check(TcpState::LastAck, 30, false, true);
    }

    #[test]
    fn time_wait_syn_reopens() {
        let mut c = time_wait();
        assert_eq!(c.send(ORIG, syn(C_ISN + 100_000)), TrackVerdict::Reopen);
        // REPLY may re-open too: the server may have switched roles.
        let mut c = time_wait();
        assert_eq!(c.send(REPLY, syn(S_ISN + 100_000)), TrackVerdict::Reopen);
    }

    #[test]
    fn close_syn_reopens() {
        // Closed by an RST from the client: the client's next SYN re-opens.
        let mut c = close();
        c.check(TcpState::Close, 10, false, true);
        assert_eq!(c.send(ORIG, syn(C_ISN + 100_000)), TrackVerdict::Reopen);
    }

    #[test]
    fn close_by_server_rst_then_client_syn_is_ignored_then_resynced() {
        let mut c = established();
        assert_eq!(
            c.send(REPLY, seg(RST, S_ISN + 1, 0, 0, 0)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Close, 10, false, true);
        // No FIN was seen and the RST came from the other side: the SYN is only noted.
        assert_eq!(c.send(ORIG, syn(C_ISN + 100_000)), TrackVerdict::Ignore);
        assert_eq!(c.state(), TcpState::Close);
        assert_eq!(
            c.send(REPLY, synack(S_ISN + 200_000, C_ISN + 100_001)),
            TrackVerdict::Accept
        );
        c.check(TcpState::SynRecv, 60, false, true);
    }

    #[test]
    fn challenge_ack_in_last_ack_ignored() {
        let mut c = last_ack();
        c.wait(1);
        // A spurious SYN in LAST_ACK is ignored and flags a possible challenge ACK.
        assert_eq!(c.send(ORIG, syn(C_ISN + 50)), TrackVerdict::Ignore);
        assert_ne!(c.conn.last_flags() & F::EXP_CHALLENGE_ACK, 0);
        // The server's challenge ACK is not the last ACK: no TIME_WAIT, no refresh.
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 2, C_ISN + 2)),
            TrackVerdict::Ignore
        );
        assert_eq!(c.conn.last_flags() & F::EXP_CHALLENGE_ACK, 0);
        c.check(TcpState::LastAck, 29, false, true);
        // The real last ACK still closes.
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 2, S_ISN + 2)),
            TrackVerdict::Accept
        );
        c.check(TcpState::TimeWait, 120, false, true);
    }

    #[test]
    fn rst_in_window_closes() {
        let mut c = established();
        c.wait(1);
        assert_eq!(
            c.send(REPLY, seg(RST, S_ISN + 1, 0, 0, 0)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Close, 10, false, true);
        // RST|ACK with a zero ACK (broken stacks) is treated as no ACK.
        let mut c = established();
        assert_eq!(
            c.send(ORIG, seg(RST | ACK, C_ISN + 1, 0, 0, 0)),
            TrackVerdict::Accept
        );
        assert_eq!(c.state(), TcpState::Close);
    }

    #[test]
    fn rst_after_data_train_closes() {
        // foo:80 > bar: P seq:end(19) ack, then R at end: the RST ends the train.
        let mut c = established();
        assert_eq!(
            c.send(REPLY, data(S_ISN + 1, C_ISN + 1, 19)),
            TrackVerdict::Accept
        );
        assert_eq!(
            c.send(REPLY, seg(RST, S_ISN + 20, 0, 0, 0)),
            TrackVerdict::Accept
        );
        assert_eq!(c.state(), TcpState::Close);
    }

    #[test]
    fn rst_inexact_keeps_established_with_close_timeout() {
        // In window but not at the acknowledged point: Linux keeps ESTABLISHED (allowing a
        // challenge ACK) yet refreshes with the CLOSE timeout, as index == RST.
        let mut c = established();
        assert_eq!(
            c.send(REPLY, seg(RST, S_ISN + 11, 0, 0, 0)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 10, false, true);
    }

    #[test]
    fn rst_out_of_window_invalid() {
        let mut c = established();
        c.wait(1);
        // Behind what the peer acknowledged: an invalid RST.
        assert_eq!(
            c.send(
                ORIG,
                seg(RST, (C_ISN + 1).wrapping_sub(500_000_000), 0, 0, 0)
            ),
            TrackVerdict::Invalid(Reason::TcpInvalidRst)
        );
        // Far ahead: passes the RST checks (keeping the state) and fails the window.
        assert_eq!(
            c.send(REPLY, seg(RST, S_ISN + 1 + 500_000_000, 0, 0, 0)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        c.check(TcpState::Established, 431_999, false, true);
    }

    #[test]
    fn ignore_invalid_rst_knob() {
        // Slightly behind the acknowledged point, but within the receive window.
        let rst = seg(RST, C_ISN + 1 - 10, 0, 0, 0);
        let mut c = established();
        assert_eq!(
            c.send(ORIG, rst),
            TrackVerdict::Invalid(Reason::TcpInvalidRst)
        );
        let mut c = established();
        c.cfg.ignore_invalid_rst = true;
        assert_eq!(c.send(ORIG, rst), TrackVerdict::Accept);
        c.check(TcpState::Established, 10, false, true);
    }

    #[test]
    fn rst_in_closing_states_skips_checks() {
        // FIN_WAIT..CLOSE: the tuple may be reused, every RST closes (even a wild one).
        for state in [
            TcpState::FinWait,
            TcpState::CloseWait,
            TcpState::LastAck,
            TcpState::TimeWait,
            TcpState::Close,
        ] {
            let mut c = in_state(state).expect("reachable");
            assert_eq!(
                c.send(REPLY, seg(RST, 12345, 0, 0, 0)),
                TrackVerdict::Accept,
                "{state:?}"
            );
            c.check(TcpState::Close, 10, false, true);
        }
    }

    #[test]
    fn rst_answering_ignored_syn_skips_window() {
        // ESTABLISHED, the client's SYN is ignored, the server answers with RST|ACK acking it:
        // the RST goes through without window checks.
        let mut c = established();
        let isn2 = 3_000_000_000;
        assert_eq!(c.send(ORIG, syn(isn2)), TrackVerdict::Ignore);
        assert_eq!(
            c.send(REPLY, seg(RST | ACK, 0, isn2 + 1, 0, 0)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Close, 10, false, true);
    }

    // ---- windows ----

    #[test]
    fn data_beyond_window_invalid() {
        let mut c = established();
        c.wait(1);
        assert_eq!(
            c.send(ORIG, data(C_ISN + 1 + 1_000_000_000, S_ISN + 1, 100)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        c.check(TcpState::Established, 431_999, false, true);
    }

    #[test]
    fn data_slightly_over_window_is_ignored_but_remembered() {
        // SEQ above td_maxend but within the receiver's window: Linux ignores the packet yet
        // moves td_end so the peer's ACK of it is acceptable.
        let mut c = established();
        let maxend = c.conn.window(ORIG).td_maxend;
        let seq = maxend.0 + 1;
        assert_eq!(
            c.send(ORIG, data(seq, S_ISN + 1, 100)),
            TrackVerdict::Ignore
        );
        assert_eq!(c.conn.window(ORIG).td_end, SeqNumber(seq + 100));
        assert_ne!(c.conn.window(ORIG).flags & F::DATA_UNACKNOWLEDGED, 0);
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, seq + 100)),
            TrackVerdict::Accept
        );
    }

    #[test]
    fn old_retransmission_ignored() {
        let mut c = established();
        assert_eq!(
            c.send(REPLY, data(S_ISN + 1, C_ISN + 1, 500)),
            TrackVerdict::Accept
        );
        c.wait(1);
        let before = c.meta;
        assert_eq!(
            c.send(
                REPLY,
                data((S_ISN + 1).wrapping_sub(1_000_000_000), C_ISN + 1, 100)
            ),
            TrackVerdict::Ignore
        );
        assert_eq!(c.meta, before);
        assert_eq!(c.state(), TcpState::Established);
    }

    #[test]
    fn ack_of_unsent_data_invalid() {
        let mut c = established();
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1 + 100_000_000)),
            TrackVerdict::Invalid(Reason::TcpAckOverWindow)
        );
        // An ACK of one byte too many is already over the bound.
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 2)),
            TrackVerdict::Invalid(Reason::TcpAckOverWindow)
        );
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
    }

    #[test]
    fn overly_delayed_ack_ignored() {
        let mut c = established();
        // The server sends 200000 bytes, the client acknowledges as they come.
        let mut seq = S_ISN + 1;
        for _ in 0..4 {
            assert_eq!(
                c.send(REPLY, data(seq, C_ISN + 1, 50_000)),
                TrackVerdict::Accept
            );
            seq += 50_000;
            assert_eq!(c.send(ORIG, ack(C_ISN + 1, seq)), TrackVerdict::Accept);
        }
        // An ACK lagging more than MAXACKWINDOW (the client's max window, at least 66000)
        // behind what the server sent is ignored as overly delayed.
        let lag = c.conn.window(ORIG).td_maxwin.max(66_000);
        let stale = seq - lag - 1;
        assert_eq!(c.send(ORIG, ack(C_ISN + 1, stale)), TrackVerdict::Ignore);
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, stale + 1)),
            TrackVerdict::Accept
        );
    }

    #[test]
    fn window_scaling_both_sides() {
        let mut c = established();
        assert_eq!(
            (c.conn.window(ORIG).td_scale, c.conn.window(REPLY).td_scale),
            (7, 7)
        );
        assert_eq!(
            c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
            TrackVerdict::Accept
        );
        // The client's window 502 << 7 bounds what the server may send.
        assert_eq!(
            c.conn.window(REPLY).td_maxend,
            SeqNumber(S_ISN + 1 + (502 << 7))
        );
        // Data starting 1000 bytes further is inside the scaled window.
        assert_eq!(
            c.send(REPLY, data(S_ISN + 1001, C_ISN + 101, 100)),
            TrackVerdict::Accept
        );
    }

    #[test]
    fn window_scaling_one_side_disabled() {
        let mut c = syn_sent();
        let sa = seg_opts(SYN | ACK, S_ISN, C_ISN + 1, 64240, 0, SYN_OPTS_NO_WS);
        assert_eq!(c.send(REPLY, sa), TrackVerdict::Accept);
        assert_eq!(
            (c.conn.window(ORIG).td_scale, c.conn.window(REPLY).td_scale),
            (0, 0)
        );
        assert_eq!(c.conn.window(ORIG).flags & F::WINDOW_SCALE, F::WINDOW_SCALE);
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        assert_eq!(
            c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
            TrackVerdict::Accept
        );
        // Unscaled: the server may start sending only up to 502 bytes past the ACK. Data
        // starting 1000 bytes further is over the bound; as it still lies within the
        // client's largest window, Linux ignores it ("bytes more than expected").
        assert_eq!(c.conn.window(REPLY).td_maxend, SeqNumber(S_ISN + 1 + 502));
        assert_eq!(
            c.send(REPLY, data(S_ISN + 1001, C_ISN + 101, 100)),
            TrackVerdict::Ignore
        );
        // Far beyond: INVALID.
        assert_eq!(
            c.send(REPLY, data(S_ISN + 1 + 200_000, C_ISN + 101, 100)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
    }

    #[test]
    fn sack_extends_ack_bound() {
        let sack_opt = |l: u32, r: u32| {
            let mut v = vec![1, 1, 5, 10];
            v.extend_from_slice(&l.to_be_bytes());
            v.extend_from_slice(&r.to_be_bytes());
            v
        };
        let mut c = established();
        assert_eq!(
            c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
            TrackVerdict::Accept
        );
        // The server acks byte 1 and SACKs 51..101: the right edge counts as its ACK.
        let opts = sack_opt(C_ISN + 51, C_ISN + 101);
        let s = seg_opts(ACK, S_ISN + 1, C_ISN + 1, 502, 0, &opts);
        assert_eq!(c.send(REPLY, s), TrackVerdict::Accept);
        assert_eq!(
            c.conn.window(ORIG).td_maxend,
            SeqNumber(C_ISN + 101 + (502 << 7))
        );
        // The SACK window adds to the server's max window: win + (sack - ack).
        assert!(c.conn.window(REPLY).td_maxwin >= (502 << 7) + 100);
        // A SACK edge beyond what the client sent is over the upper bound.
        let opts = sack_opt(C_ISN + 51, C_ISN + 201);
        let s = seg_opts(ACK, S_ISN + 1, C_ISN + 1, 502, 0, &opts);
        assert_eq!(
            c.send(REPLY, s),
            TrackVerdict::Invalid(Reason::TcpAckOverWindow)
        );
        // SACK is read only if the receiver permitted it.
        let mut c = syn_sent();
        let no_sack: &[u8] = &[2, 4, 5, 0xb4, 1, 3, 3, 7];
        let sa = seg_opts(SYN | ACK, S_ISN, C_ISN + 1, 64240, 0, no_sack);
        assert_eq!(c.send(REPLY, sa), TrackVerdict::Accept);
        let opts = sack_opt(S_ISN + 1, S_ISN + 999);
        let s = seg_opts(ACK, C_ISN + 1, S_ISN + 1, 502, 0, &opts);
        assert_eq!(
            c.send(ORIG, s),
            TrackVerdict::Accept,
            "client SACK ignored: server never permitted it"
        );
    }

    #[test]
    fn be_liberal_accepts_out_of_window() {
        let mut c = established();
        c.cfg.be_liberal = true;
        c.wait(1);
        assert_eq!(
            c.send(ORIG, data(C_ISN + 1 + 1_000_000_000, S_ISN + 1, 100)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
        // Liberal accepts old data too, and then refreshes.
        assert_eq!(
            c.send(
                REPLY,
                data((S_ISN + 1).wrapping_sub(1_000_000_000), C_ISN + 1, 100)
            ),
            TrackVerdict::Accept
        );
        // ... but never an RST behind the acknowledged point.
        assert_eq!(
            c.send(
                ORIG,
                seg(RST, (C_ISN + 1).wrapping_sub(500_000_000), 0, 0, 0)
            ),
            TrackVerdict::Invalid(Reason::TcpInvalidRst)
        );
    }

    // ---- timeouts ----

    #[test]
    fn timeouts_for_every_state() {
        let want = [
            (TcpState::SynSent, 120, true, false),
            (TcpState::SynRecv, 60, false, false),
            (TcpState::Established, 432_000, false, true),
            (TcpState::FinWait, 120, false, true),
            (TcpState::CloseWait, 60, false, true),
            (TcpState::LastAck, 30, false, true),
            (TcpState::TimeWait, 120, false, true),
            (TcpState::Close, 10, false, true),
            (TcpState::SynSent2, 120, false, false),
        ];
        for (state, left, unreplied, assured) in want {
            let c = in_state(state).expect("reachable");
            c.check(state, left, unreplied, assured);
        }
        // Custom timeouts are honoured per state.
        let mut cfg = TcpConfig::default();
        cfg.timeouts.syn_sent = secs(7);
        cfg.timeouts.syn_recv = secs(8);
        cfg.timeouts.established = secs(9_000);
        let mut c = Conn::open_with(cfg, syn(C_ISN)).expect("SYN opens");
        c.check(TcpState::SynSent, 7, true, false);
        assert_eq!(
            c.send(REPLY, synack(S_ISN, C_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::SynRecv, 8, false, false);
        assert_eq!(
            c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 9_000, false, true);
    }

    #[test]
    fn unacked_data_caps_timeout() {
        let mut c = established();
        assert_eq!(
            c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 300, false, true);
        // Acknowledged: the full timeout again.
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 101)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
        // A state whose own timeout is shorter than the cap keeps its own.
        assert_eq!(
            c.send(REPLY, seg(FIN | ACK | PSH, S_ISN + 1, C_ISN + 101, 502, 10)),
            TrackVerdict::Accept
        );
        c.check(TcpState::FinWait, 120, false, true);
    }

    #[test]
    fn max_retrans_caps_timeout() {
        let mut cfg = TcpConfig::default();
        cfg.timeouts.retrans = secs(200);
        cfg.timeouts.unack = secs(250);
        let mut c = established();
        c.cfg = cfg;
        let a = ack(C_ISN + 1, S_ISN + 1);
        // The handshake ACK was the first; three identical ones reach max_retrans.
        for n in 1..=3u8 {
            assert_eq!(c.send(ORIG, a), TrackVerdict::Accept);
            assert_eq!(c.conn.retrans(), n);
            let want = if n >= 3 { 200 } else { 432_000 };
            c.check(TcpState::Established, want, false, true);
        }
        // Anything new resets the count.
        assert_eq!(
            c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
            TrackVerdict::Accept
        );
        assert_eq!(c.conn.retrans(), 0);
        c.check(TcpState::Established, 432_000, false, true);
    }

    #[test]
    fn zero_window_caps_timeout() {
        let mut c = established();
        assert_eq!(
            c.send(REPLY, seg(ACK, S_ISN + 1, C_ISN + 1, 0, 0)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 300, false, true);
        assert_eq!(
            c.send(REPLY, seg(ACK, S_ISN + 1, C_ISN + 1, 10, 0)),
            TrackVerdict::Accept
        );
        c.check(TcpState::Established, 432_000, false, true);
    }

    #[test]
    fn handle_invalid_lowers_timeout() {
        let mut c = established();
        let far = 1_500_000_000;
        // An out-of-window FIN from the client is noted as the last FIN...
        assert_eq!(
            c.send(ORIG, fin(C_ISN + far, S_ISN + 1)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        c.check(TcpState::Established, 432_000, false, true);
        assert_eq!(
            (c.conn.last_index(), c.conn.last_dir()),
            (FlagClass::Fin, ORIG)
        );
        // ... and the server's out-of-window answer shows both ends are out of sync with us.
        c.wait(1);
        assert_eq!(
            c.send(REPLY, seg(RST, S_ISN + far, 0, 0, 0)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        c.check(TcpState::Established, 300, false, true);
    }

    #[test]
    fn handle_invalid_needs_assured_and_a_long_deadline() {
        // Not assured: nothing happens.
        let mut c = syn_recv();
        assert_eq!(
            c.send(ORIG, fin(C_ISN + 1_500_000_000, S_ISN + 1)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        assert_eq!(c.conn.last_index(), FlagClass::SynAck);
        // Deadline already under 120 s: left alone.
        let mut c = established();
        c.meta.expires = c.now.after(secs(100));
        assert_eq!(
            c.send(ORIG, fin(C_ISN + 1_500_000_000, S_ISN + 1)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        assert_eq!(
            c.send(REPLY, fin(S_ISN + 1_500_000_000, C_ISN + 1)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        assert_eq!(c.left(), secs(100));
        // Between 120 s and the UNACK timeout: left alone too.
        let mut c = established();
        c.meta.expires = c.now.after(secs(250));
        assert_eq!(
            c.send(ORIG, fin(C_ISN + 1_500_000_000, S_ISN + 1)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        assert_eq!(
            c.send(REPLY, fin(S_ISN + 1_500_000_000, C_ISN + 1)),
            TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
        );
        assert_eq!(c.left(), secs(250));
    }

    // ---- the whole table ----

    /// Linux's `tcp_conntracks`, transcribed independently of `TRANSITIONS` (copied from the
    /// kernel source text) so that the table test checks the table too.
    const KERNEL_TABLE: [[&str; 6]; 2] = [
        [
            "sSS sSS sIG sIG sIG sIG sIG sSS sSS sS2",
            "sIV sIV sSR sIV sIV sIV sIV sIV sIV sSR",
            "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
            "sES sIV sES sES sCW sCW sTW sTW sCL sIV",
            "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
            "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
        ],
        [
            "sIV sS2 sIV sIV sIV sIV sIV sSS sIV sS2",
            "sIV sSR sIG sIG sIG sIG sIG sIG sIG sSR",
            "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
            "sIV sIG sSR sES sCW sCW sTW sTW sCL sIG",
            "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
            "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
        ],
    ];

    fn kernel_cell(
        dir: Direction,
        class: FlagClass,
        from: TcpState,
    ) -> Option<Result<TcpState, &'static str>> {
        let row = KERNEL_TABLE[dir.index()][class as usize];
        let cell = row.split(' ').nth(from as usize)?;
        Some(match cell {
            "sIV" | "sIG" => Err(cell),
            name => {
                let short = |s: TcpState| match s {
                    TcpState::None => "sNO",
                    TcpState::SynSent => "sSS",
                    TcpState::SynRecv => "sSR",
                    TcpState::Established => "sES",
                    TcpState::FinWait => "sFW",
                    TcpState::CloseWait => "sCW",
                    TcpState::LastAck => "sLA",
                    TcpState::TimeWait => "sTW",
                    TcpState::Close => "sCL",
                    TcpState::SynSent2 => "sS2",
                };
                Ok(*TcpState::ALL.iter().find(|&&s| short(s) == name)?)
            }
        })
    }

    /// An in-window segment of `class` from `dir` for the connection as it stands.
    fn probe(c: &TcpConn, dir: Direction, class: FlagClass) -> TcpSeg<'static> {
        let me = c.window(dir);
        let peer = c.window(dir.opposite());
        let isn = if dir == ORIG { C_ISN } else { S_ISN };
        // A first SYN uses the side's ISN; later ones repeat its SYN.
        let syn_seq = if me.td_maxwin == 0 {
            isn
        } else {
            me.td_end.0.wrapping_sub(1)
        };
        let next = me.td_end.0;
        let acked = peer.td_end.0;
        match class {
            FlagClass::Syn => seg_opts(SYN, syn_seq, 0, 64240, 0, SYN_OPTS),
            FlagClass::SynAck => seg_opts(SYN | ACK, syn_seq, acked, 64240, 0, SYN_OPTS),
            FlagClass::Fin => fin(next, acked),
            FlagClass::Ack => ack(next, acked),
            FlagClass::Rst => seg(RST, next, 0, 0, 0),
            FlagClass::None => seg(URG, next, acked, 502, 0),
        }
    }

    /// Every cell of the kernel table: 2 directions x 6 flag classes x 10 states. Each state
    /// is reached by real segments, then an in-window segment of the class is applied.
    ///
    /// Besides the table, the outcome follows the rules Linux applies around it: a SYN that
    /// would take TIME_WAIT or CLOSE to SYN_SENT re-opens (the builders close by FIN, or by an
    /// RST from the client), an RST before any reply kills the entry, and a SYN retransmitted
    /// in SYN_SENT does not refresh the deadline.
    #[test]
    fn transition_table_every_cell() {
        let mut cells = 0;
        for dir in [ORIG, REPLY] {
            for class in FlagClass::ALL {
                for from in TcpState::ALL {
                    let expect = kernel_cell(dir, class, from).expect("table cell");
                    let what = format!("{dir:?} {class:?} in {}", from.name());
                    cells += 1;
                    let Some(mut c) = in_state(from) else {
                        check_none_cell(dir, class, expect, &what);
                        continue;
                    };
                    c.wait(1);
                    let before = c.clone();
                    let seg = probe(&c.conn, dir, class);
                    let action = c.send(dir, seg);
                    match expect {
                        Err("sIV") => {
                            assert_eq!(
                                action,
                                TrackVerdict::Invalid(Reason::TcpInvalidState),
                                "{what}"
                            );
                            assert_eq!((c.conn, c.meta), (before.conn, before.meta), "{what}");
                        }
                        Err(_) => {
                            assert_eq!(action, TrackVerdict::Ignore, "{what}");
                            assert_eq!(c.state(), from, "{what}");
                            assert_eq!(c.meta.expires, before.meta.expires, "{what}");
                        }
                        Ok(TcpState::SynSent)
                            if matches!(from, TcpState::TimeWait | TcpState::Close) =>
                        {
                            assert_eq!(action, TrackVerdict::Reopen, "{what}");
                        }
                        Ok(to) if class == FlagClass::Rst && !before.meta.flags.seen_reply() => {
                            assert_eq!(action, TrackVerdict::Kill, "{what}");
                            assert_eq!(c.state(), to, "{what}");
                        }
                        Ok(to) => {
                            assert_eq!(action, TrackVerdict::Accept, "{what}");
                            assert_eq!(c.state(), to, "{what}");
                            if from == TcpState::SynSent && class == FlagClass::Syn {
                                assert_eq!(
                                    c.meta.expires, before.meta.expires,
                                    "{what}: no refresh"
                                );
                            } else {
                                assert_ne!(
                                    c.meta.expires, before.meta.expires,
                                    "{what}: refreshed"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cells, 120);
    }

    /// The NONE column: ORIGINAL goes through `new` (as the pipeline does), REPLY can only be
    /// fed to a default connection, and is invalid throughout.
    fn check_none_cell(
        dir: Direction,
        class: FlagClass,
        expect: Result<TcpState, &str>,
        what: &str,
    ) {
        let c = TcpConn::default();
        let seg = probe(&c, dir, class);
        if dir == REPLY {
            let mut conn = c;
            let mut meta = EntryMeta {
                flags: CtFlags::default(),
                expires: T0,
            };
            let action = conn.packet(&mut meta, T0, dir, &seg, &TcpConfig::default());
            assert_eq!(expect, Err("sIV"), "{what}");
            assert_eq!(
                action,
                TrackVerdict::Invalid(Reason::TcpInvalidState),
                "{what}"
            );
            return;
        }
        match expect {
            Ok(to) => {
                let c = Conn::open(seg);
                assert_eq!(c.state(), to, "{what}");
            }
            Err(_) => {
                assert_eq!(
                    TcpConn::new(&seg, &TcpConfig::default()),
                    Err(Reason::TcpInvalidNew),
                    "{what}"
                );
            }
        }
    }

    // ---- properties ----

    /// One step of a random conversation: sequence numbers relative to what the tracker holds,
    /// so that segments land in, near and far from the windows.
    #[derive(Clone, Debug)]
    struct Step {
        reply: bool,
        flags: u8,
        seq_base: u8,
        seq_off: i32,
        ack_base: u8,
        ack_off: i32,
        window: u16,
        len: u32,
        options: Vec<u8>,
        wait: u16,
    }

    fn step() -> impl Strategy<Value = Step> {
        let options = prop_oneof![
            Just(Vec::new()),
            Just(SYN_OPTS.to_vec()),
            Just(vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
            prop::collection::vec(any::<u8>(), 0..40),
        ];
        let flags = prop_oneof![
            Just(SYN),
            Just(SYN | ACK),
            Just(ACK),
            Just(ACK | PSH),
            Just(FIN | ACK),
            Just(RST),
            Just(RST | ACK),
            any::<u8>(),
        ];
        let off = prop_oneof![-3i32..3, -70_000i32..70_000, any::<i32>()];
        (
            (any::<bool>(), flags, 0u8..3, off.clone(), 0u8..3, off),
            (
                any::<u16>(),
                prop_oneof![0u32..3, 0u32..70_000, any::<u32>()],
                options,
                0u16..400,
            ),
        )
            .prop_map(
                |(
                    (reply, flags, seq_base, seq_off, ack_base, ack_off),
                    (window, len, options, wait),
                )| Step {
                    reply,
                    flags,
                    seq_base,
                    seq_off,
                    ack_base,
                    ack_off,
                    window,
                    len,
                    options,
                    wait,
                },
            )
    }

    fn pick(c: &TcpConn, dir: Direction, base: u8, off: i32) -> u32 {
        let b = match base {
            0 => c.window(dir).td_end.0,
            1 => c.window(dir.opposite()).td_end.0,
            _ => 0,
        };
        b.wrapping_add(off as u32)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Random segment sequences both ways never panic, keep the state one of the ten, and
        /// respect what each verdict promises about the entry.
        #[test]
        fn random_segments_never_panic(
            first in step(),
            steps in prop::collection::vec(step(), 0..40),
            loose in any::<bool>(),
            liberal in any::<bool>(),
            ignore_rst in any::<bool>(),
            max_retrans in 0u8..5,
        ) {
            let cfg = TcpConfig { loose, be_liberal: liberal, ignore_invalid_rst: ignore_rst, max_retrans, ..TcpConfig::default() };
            let all_timeouts = {
                let t = &cfg.timeouts;
                let mut v: Vec<Ticks> = TcpState::ALL.iter().map(|&s| t.of(s)).collect();
                v.extend([t.retrans, t.unack]);
                v
            };
            let mut now = T0;
            let mut live: Option<(TcpConn, EntryMeta)> = None;
            for s in core::iter::once(&first).chain(steps.iter()) {
                now = now.after(Ticks(u32::from(s.wait) * 64));
                let dir = if s.reply && live.is_some() { REPLY } else { ORIG };
                let probe_conn = live.map(|(c, _)| c).unwrap_or_default();
                let seg = TcpSeg {
                    sport: 1,
                    dport: 2,
                    seq: pick(&probe_conn, dir, s.seq_base, s.seq_off),
                    ack: pick(&probe_conn, dir, s.ack_base, s.ack_off),
                    flags: TcpFlags(s.flags),
                    window: s.window,
                    payload_len: s.len,
                    options: &s.options,
                };
                let Some((mut conn, mut meta)) = live else {
                    // The pipeline: flags check, `new`, then `packet` for the same segment.
                    if !flags_valid(seg.flags) { continue; }
                    let Ok(mut conn) = TcpConn::new(&seg, &cfg) else { continue };
                    let mut meta = EntryMeta { flags: CtFlags::default(), expires: now };
                    let action = conn.packet(&mut meta, now, ORIG, &seg, &cfg);
                    prop_assert!(TcpState::ALL.contains(&conn.state()));
                    if action == TrackVerdict::Accept { live = Some((conn, meta)); }
                    continue;
                };
                let (conn0, meta0) = (conn, meta);
                // Invalid flag combinations never reach the tracker; feed them anyway.
                let action = conn.packet(&mut meta, now, dir, &seg, &cfg);
                prop_assert!(TcpState::ALL.contains(&conn.state()));
                match action {
                    TrackVerdict::Invalid(Reason::TcpInvalidState | Reason::TcpInvalidRst) => {
                        prop_assert_eq!((conn, meta), (conn0, meta0));
                    }
                    TrackVerdict::Invalid(r) => {
                        prop_assert!(matches!(r, Reason::TcpSeqOverWindow | Reason::TcpAckOverWindow));
                        prop_assert_eq!(meta.flags, meta0.flags);
                        // Only ever lowered, to the UNACK timeout.
                        prop_assert!(meta.expires == meta0.expires || meta.expires == now.after(cfg.timeouts.unack));
                    }
                    TrackVerdict::Ignore => prop_assert_eq!(meta, meta0),
                    TrackVerdict::Accept => {
                        prop_assert!(
                            meta.expires == meta0.expires
                                || all_timeouts.contains(&meta.expires.remaining(now))
                        );
                    }
                    TrackVerdict::Kill | TrackVerdict::Reopen => {}
                }
                match action {
                    TrackVerdict::Kill => live = None,
                    TrackVerdict::Reopen => {
                        live = None;
                        if flags_valid(seg.flags) && let Ok(mut c) = TcpConn::new(&seg, &cfg) {
                            let mut m = EntryMeta { flags: CtFlags::default(), expires: now };
                            if c.packet(&mut m, now, ORIG, &seg, &cfg) == TrackVerdict::Accept {
                                live = Some((c, m));
                            }
                        }
                    }
                    _ => {
                        if dir == REPLY && matches!(action, TrackVerdict::Accept | TrackVerdict::Ignore) {
                            meta.flags.set(CtFlags::SEEN_REPLY);
                        }
                        live = Some((conn, meta));
                    }
                }
            }
        }
    }

    /// Replays the TCP traces of the Linux conformance set through the tracker and compares
    /// states, flags and timeouts after every packet with what the kernel did.
    ///
    /// Test-only scaffolding stands in for the parts ctfw has elsewhere: a pcapng reader and a
    /// frame decoder (with the TCP checks of `tcp_error`), a table keyed by the ORIGINAL tuple
    /// with expiry, the pipeline's handling of the tracker's verdicts, and the `classic` /
    /// `classic_synchk` rulesets (a NEW entry is kept only if its packet is accepted, as Linux
    /// confirms conntracks only for accepted packets).
    mod conformance {
        use super::*;
        use crate::time::Instant;
        use std::fmt::Write as _;
        use std::path::{Path, PathBuf};

        // ---- a minimal JSON reader (the engine has no serde) ----

        #[derive(Clone, Debug, PartialEq)]
        enum Json {
            Null,
            Bool(bool),
            Num(f64),
            Str(String),
            Arr(Vec<Json>),
            Obj(Vec<(String, Json)>),
        }

        impl Json {
            fn get(&self, key: &str) -> Option<&Json> {
                match self {
                    Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                    _ => None,
                }
            }
            fn str(&self) -> Option<&str> {
                if let Json::Str(s) = self {
                    Some(s)
                } else {
                    None
                }
            }
            fn num(&self) -> Option<f64> {
                if let Json::Num(n) = self {
                    Some(*n)
                } else {
                    None
                }
            }
            fn arr(&self) -> Option<&[Json]> {
                if let Json::Arr(a) = self {
                    Some(a)
                } else {
                    None
                }
            }
            fn bool(&self) -> Option<bool> {
                if let Json::Bool(b) = self {
                    Some(*b)
                } else {
                    None
                }
            }
        }

        struct JsonParser<'a> {
            s: &'a [u8],
            i: usize,
        }

        impl JsonParser<'_> {
            fn parse(text: &str) -> Result<Json, String> {
                let mut p = JsonParser {
                    s: text.as_bytes(),
                    i: 0,
                };
                let v = p.value()?;
                p.ws();
                if p.i != p.s.len() {
                    return Err(format!("trailing data at byte {}", p.i));
                }
                Ok(v)
            }

            fn ws(&mut self) {
                while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
                    self.i += 1;
                }
            }

            fn peek(&self) -> Option<u8> {
                self.s.get(self.i).copied()
            }

            fn expect(&mut self, c: u8) -> Result<(), String> {
                if self.peek() == Some(c) {
                    self.i += 1;
                    Ok(())
                } else {
                    Err(format!("expected '{}' at byte {}", c as char, self.i))
                }
            }

            fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
                if self.s.get(self.i..self.i + word.len()) == Some(word.as_bytes()) {
                    self.i += word.len();
                    Ok(v)
                } else {
                    Err(format!("bad literal at byte {}", self.i))
                }
            }

            fn value(&mut self) -> Result<Json, String> {
                self.ws();
                match self.peek() {
                    Some(b'{') => {
                        self.i += 1;
                        let mut kv = Vec::new();
                        self.ws();
                        if self.peek() == Some(b'}') {
                            self.i += 1;
                            return Ok(Json::Obj(kv));
                        }
                        loop {
                            self.ws();
                            let k = self.string()?;
                            self.ws();
                            self.expect(b':')?;
                            kv.push((k, self.value()?));
                            self.ws();
                            match self.peek() {
                                Some(b',') => self.i += 1,
                                Some(b'}') => {
                                    self.i += 1;
                                    return Ok(Json::Obj(kv));
                                }
                                _ => return Err(format!("bad object at byte {}", self.i)),
                            }
                        }
                    }
                    Some(b'[') => {
                        self.i += 1;
                        let mut v = Vec::new();
                        self.ws();
                        if self.peek() == Some(b']') {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        loop {
                            v.push(self.value()?);
                            self.ws();
                            match self.peek() {
                                Some(b',') => self.i += 1,
                                Some(b']') => {
                                    self.i += 1;
                                    return Ok(Json::Arr(v));
                                }
                                _ => return Err(format!("bad array at byte {}", self.i)),
                            }
                        }
                    }
                    Some(b'"') => Ok(Json::Str(self.string()?)),
                    Some(b't') => self.lit("true", Json::Bool(true)),
                    Some(b'f') => self.lit("false", Json::Bool(false)),
                    Some(b'n') => self.lit("null", Json::Null),
                    Some(c) if c == b'-' || c.is_ascii_digit() => {
                        let start = self.i;
                        while self
                            .peek()
                            .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
                        {
                            self.i += 1;
                        }
                        let text = std::str::from_utf8(&self.s[start..self.i])
                            .map_err(|e| e.to_string())?;
                        text.parse()
                            .map(Json::Num)
                            .map_err(|e| format!("{text}: {e}"))
                    }
                    _ => Err(format!("unexpected input at byte {}", self.i)),
                }
            }

            fn string(&mut self) -> Result<String, String> {
                self.expect(b'"')?;
                let mut out = Vec::new();
                loop {
                    let c = self.peek().ok_or("unterminated string")?;
                    self.i += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let e = self.peek().ok_or("unterminated escape")?;
                            self.i += 1;
                            let ch = match e {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'b' => '\u{8}',
                                b'f' => '\u{c}',
                                b'u' => {
                                    let hex = self
                                        .s
                                        .get(self.i..self.i + 4)
                                        .and_then(|h| std::str::from_utf8(h).ok())
                                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                                        .ok_or("bad \\u escape")?;
                                    self.i += 4;
                                    char::from_u32(hex).unwrap_or('\u{fffd}')
                                }
                                other => other as char,
                            };
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => out.push(c),
                    }
                }
                String::from_utf8(out).map_err(|e| e.to_string())
            }
        }

        #[test]
        fn json_reader_reads_records() {
            let j = JsonParser::parse(
                r#"{"a":[1,-2.5e1,true,null],"b":{"c":"x\"\u0041"},"d":[],"e":{}}"#,
            )
            .expect("valid JSON");
            assert_eq!(j.get("a").and_then(|a| a.arr()).map(|a| a.len()), Some(4));
            assert_eq!(
                j.get("a").and_then(|a| a.arr()).and_then(|a| a[1].num()),
                Some(-25.0)
            );
            assert_eq!(
                j.get("b").and_then(|b| b.get("c")).and_then(Json::str),
                Some("x\"A")
            );
            assert!(JsonParser::parse("{\"a\":1,}").is_err());
            assert!(JsonParser::parse("[1 2]").is_err());
        }

        // ---- pcapng ----

        struct Frame {
            iface: u32,
            ts_ns: u64,
            data: Vec<u8>,
        }

        fn le32(b: &[u8], at: usize) -> Result<u32, String> {
            b.get(at..at + 4)
                .and_then(|w| w.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| format!("pcapng: short read at {at}"))
        }

        fn read_pcapng(b: &[u8]) -> Result<Vec<Frame>, String> {
            let mut frames = Vec::new();
            // Timestamp units per second, per interface (default: microseconds).
            let mut units: Vec<u64> = Vec::new();
            let mut i = 0;
            while i < b.len() {
                let kind = le32(b, i)?;
                let len = le32(b, i + 4)? as usize;
                if len < 12 || len % 4 != 0 || i + len > b.len() {
                    return Err(format!("pcapng: bad block length {len} at {i}"));
                }
                let body = &b[i + 8..i + len - 4];
                match kind {
                    0x0A0D_0D0A if le32(body, 0)? != 0x1A2B_3C4D => {
                        return Err("pcapng: only little-endian sections are supported".into());
                    }
                    1 => {
                        let mut u = 1_000_000u64;
                        let mut o = 8;
                        while o + 4 <= body.len() {
                            let code = u16::from_le_bytes([body[o], body[o + 1]]);
                            let olen = usize::from(u16::from_le_bytes([body[o + 2], body[o + 3]]));
                            if code == 0 {
                                break;
                            }
                            if code == 9 && olen == 1 {
                                let r = *body.get(o + 4).ok_or("pcapng: short if_tsresol")?;
                                u = if r & 0x80 == 0 {
                                    10u64.pow(u32::from(r))
                                } else {
                                    1u64 << (r & 0x7f)
                                };
                            }
                            o += 4 + olen.div_ceil(4) * 4;
                        }
                        units.push(u);
                    }
                    6 => {
                        let iface = le32(body, 0)?;
                        let ts = (u64::from(le32(body, 4)?) << 32) | u64::from(le32(body, 8)?);
                        let caplen = le32(body, 12)? as usize;
                        let data = body.get(20..20 + caplen).ok_or("pcapng: short packet")?;
                        let u = *units
                            .get(iface as usize)
                            .ok_or("pcapng: unknown interface")?;
                        let ts_ns = (u128::from(ts) * 1_000_000_000 / u128::from(u)) as u64;
                        frames.push(Frame {
                            iface,
                            ts_ns,
                            data: data.to_vec(),
                        });
                    }
                    _ => {}
                }
                i += len;
            }
            Ok(frames)
        }

        // ---- frames ----

        /// A TCP segment as decoded from a frame, owning its options.
        #[derive(Debug)]
        struct Pkt {
            src: u128,
            dst: u128,
            sport: u16,
            dport: u16,
            seq: u32,
            ack: u32,
            flags: u8,
            window: u16,
            payload_len: u32,
            options: Vec<u8>,
        }

        impl Pkt {
            fn seg(&self) -> TcpSeg<'_> {
                TcpSeg {
                    sport: self.sport,
                    dport: self.dport,
                    seq: self.seq,
                    ack: self.ack,
                    flags: TcpFlags(self.flags),
                    window: self.window,
                    payload_len: self.payload_len,
                    options: &self.options,
                }
            }
        }

        enum Decoded {
            Tcp(Pkt),
            /// Conntrack sees it and calls it INVALID (`tcp_error`: truncated, bad offset, bad
            /// checksum).
            Invalid,
            /// Never reaches conntrack.
            Unparsed,
        }

        fn be16(b: &[u8], at: usize) -> u16 {
            u16::from_be_bytes([b[at], b[at + 1]])
        }

        fn be32(b: &[u8], at: usize) -> u32 {
            u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
        }

        fn checksum_ok(pseudo: &[u8], l4: &[u8]) -> bool {
            let mut sum = 0u32;
            for chunk in pseudo.chunks(2).chain(l4.chunks(2)) {
                let hi = u32::from(chunk[0]) << 8;
                sum += hi | chunk.get(1).map_or(0, |&b| u32::from(b));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            sum == 0xffff
        }

        fn decode(f: &[u8]) -> Decoded {
            if f.len() < 14 {
                return Decoded::Unparsed;
            }
            let mut et = be16(f, 12);
            let mut off = 14;
            if et == 0x8100 {
                if f.len() < 18 {
                    return Decoded::Unparsed;
                }
                et = be16(f, 16);
                off = 18;
            }
            let ip = &f[off..];
            let (src, dst, l4, pseudo) = match et {
                0x0800 => {
                    if ip.len() < 20 || ip[0] >> 4 != 4 {
                        return Decoded::Unparsed;
                    }
                    let ihl = usize::from(ip[0] & 0x0f) * 4;
                    let total = usize::from(be16(ip, 2));
                    if ihl < 20 || total < ihl || total > ip.len() || ip[9] != 6 {
                        return Decoded::Unparsed;
                    }
                    if be16(ip, 6) & 0x3fff != 0 {
                        return Decoded::Unparsed; // fragment
                    }
                    let l4 = &ip[ihl..total];
                    let mut pseudo = ip[12..20].to_vec();
                    pseudo.extend_from_slice(&[0, 6]);
                    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                    (
                        u128::from(be32(ip, 12)),
                        u128::from(be32(ip, 16)),
                        l4,
                        pseudo,
                    )
                }
                0x86dd => {
                    if ip.len() < 40 || ip[0] >> 4 != 6 {
                        return Decoded::Unparsed;
                    }
                    let plen = usize::from(be16(ip, 4));
                    if ip[6] != 6 || 40 + plen > ip.len() {
                        return Decoded::Unparsed;
                    }
                    let l4 = &ip[40..40 + plen];
                    let mut pseudo = ip[8..40].to_vec();
                    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
                    pseudo.extend_from_slice(&[0, 0, 0, 6]);
                    let addr = |at: usize| {
                        ip[at..at + 16]
                            .iter()
                            .fold(0u128, |a, &b| (a << 8) | u128::from(b))
                    };
                    (addr(8), addr(24), l4, pseudo)
                }
                _ => return Decoded::Unparsed,
            };
            if l4.len() < 20 {
                return Decoded::Invalid;
            }
            let doff = usize::from(l4[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() || !checksum_ok(&pseudo, l4) {
                return Decoded::Invalid;
            }
            Decoded::Tcp(Pkt {
                src,
                dst,
                sport: be16(l4, 0),
                dport: be16(l4, 2),
                seq: be32(l4, 4),
                ack: be32(l4, 8),
                flags: l4[13],
                window: be16(l4, 14),
                payload_len: (l4.len() - doff) as u32,
                options: l4[20..doff].to_vec(),
            })
        }

        /// The kernel side's one-line summary (`... [SA] seq=.. ack=.. win=.. len=..`)
        /// must describe the segment we decoded.
        fn check_summary(summary: &str, p: &Pkt) -> Result<(), String> {
            if !summary.contains("seq=") || summary.contains('(') {
                return Ok(());
            }
            let field = |name: &str| -> Option<u64> {
                let rest = summary.split(&format!(" {name}=")).nth(1)?;
                rest.split(' ').next()?.parse().ok()
            };
            let got = (field("seq"), field("ack"), field("win"), field("len"));
            let want = (
                Some(u64::from(p.seq)),
                Some(u64::from(p.ack)),
                Some(u64::from(p.window)),
                Some(u64::from(p.payload_len)),
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("summary {got:?} != decoded {want:?}"))
            }
        }

        // ---- the mini pipeline ----

        type Tuple = (u128, u128, u16, u16);

        struct Entry {
            orig: Tuple,
            conn: TcpConn,
            meta: EntryMeta,
        }

        struct RunConfig {
            tcp: TcpConfig,
            synchk: bool,
        }

        /// The `classic` ruleset (and `classic_synchk`'s extra first rule).
        fn ruleset(cfg: &RunConfig, ct_state: &str, from_inside: bool, flags: u8) -> bool {
            let core = flags & (FIN | SYN | RST | ACK);
            if cfg.synchk && ct_state == "new" && core != SYN {
                return false;
            }
            ct_state == "established" || (ct_state == "new" && from_inside)
        }

        /// One packet through tracking and rules: (ct_state, forwarded).
        fn track(
            table: &mut Vec<Entry>,
            cfg: &RunConfig,
            p: &Pkt,
            now: Tick,
            from_inside: bool,
        ) -> Result<(&'static str, bool), String> {
            let seg = p.seg();
            if !flags_valid(seg.flags) {
                return Ok(("invalid", false));
            }
            let fwd: Tuple = (p.src, p.dst, p.sport, p.dport);
            let rev: Tuple = (p.dst, p.src, p.dport, p.sport);
            if let Some(pos) = table.iter().position(|e| e.orig == fwd || e.orig == rev) {
                let e = &mut table[pos];
                let dir = if e.orig == fwd { ORIG } else { REPLY };
                let ct_state = if dir == REPLY || e.meta.flags.seen_reply() {
                    "established"
                } else {
                    "new"
                };
                match e.conn.packet(&mut e.meta, now, dir, &seg, &cfg.tcp) {
                    TrackVerdict::Invalid(_) => return Ok(("invalid", false)),
                    TrackVerdict::Kill => {
                        table.remove(pos);
                        return Ok((ct_state, ruleset(cfg, ct_state, from_inside, p.flags)));
                    }
                    TrackVerdict::Reopen => {
                        table.remove(pos);
                    }
                    TrackVerdict::Accept | TrackVerdict::Ignore => {
                        if dir == REPLY {
                            e.meta.flags.set(CtFlags::SEEN_REPLY);
                        }
                        return Ok((ct_state, ruleset(cfg, ct_state, from_inside, p.flags)));
                    }
                }
            }
            let Ok(mut conn) = TcpConn::new(&seg, &cfg.tcp) else {
                return Ok(("invalid", false));
            };
            let mut meta = EntryMeta {
                flags: CtFlags::default(),
                expires: now,
            };
            match conn.packet(&mut meta, now, ORIG, &seg, &cfg.tcp) {
                TrackVerdict::Accept => {}
                TrackVerdict::Invalid(_) => return Ok(("invalid", false)),
                other => return Err(format!("new entry's first packet gave {other:?}")),
            }
            let forwarded = ruleset(cfg, "new", from_inside, p.flags);
            if forwarded {
                table.push(Entry {
                    orig: fwd,
                    conn,
                    meta,
                });
            }
            Ok(("new", forwarded))
        }

        fn parse_addr(s: &str) -> Option<u128> {
            match s.parse::<std::net::IpAddr>().ok()? {
                std::net::IpAddr::V4(a) => Some(u128::from(u32::from(a))),
                std::net::IpAddr::V6(a) => Some(u128::from(a)),
            }
        }

        /// Compares our table after one packet with the kernel's.
        fn compare_entries(
            table: &[Entry],
            rec: &Json,
            now: Tick,
            tol: f64,
            diffs: &mut Vec<String>,
            i: usize,
        ) -> Result<(), String> {
            let expected = rec
                .get("ct_entries")
                .and_then(Json::arr)
                .ok_or("no ct_entries")?;
            let mut matched = vec![false; table.len()];
            for x in expected {
                let s = |k: &str| {
                    x.get(k)
                        .and_then(Json::str)
                        .ok_or(format!("entry without {k}"))
                };
                let n = |k: &str| {
                    x.get(k)
                        .and_then(Json::num)
                        .ok_or(format!("entry without {k}"))
                };
                if s("proto")? != "tcp" {
                    diffs.push(format!("#{i}: unexpected non-TCP entry"));
                    continue;
                }
                let key: Tuple = (
                    parse_addr(s("src")?).ok_or("bad src")?,
                    parse_addr(s("dst")?).ok_or("bad dst")?,
                    n("sport")? as u16,
                    n("dport")? as u16,
                );
                let Some(pos) = table.iter().position(|e| e.orig == key) else {
                    diffs.push(format!("#{i}: missing entry {key:x?} ({})", s("state")?));
                    continue;
                };
                matched[pos] = true;
                let e = &table[pos];
                if e.conn.state().name() != s("state")? {
                    diffs.push(format!(
                        "#{i}: state {} != expected {}",
                        e.conn.state().name(),
                        s("state")?
                    ));
                }
                let mut want: Vec<&str> = x
                    .get("flags")
                    .and_then(Json::arr)
                    .ok_or("entry without flags")?
                    .iter()
                    .filter_map(Json::str)
                    .collect();
                want.sort_unstable();
                let mut got = Vec::new();
                if e.meta.flags.assured() {
                    got.push("ASSURED");
                }
                if !e.meta.flags.seen_reply() {
                    got.push("UNREPLIED");
                }
                if got != want {
                    diffs.push(format!("#{i}: flags {got:?} != expected {want:?}"));
                }
                let left = f64::from(e.meta.expires.remaining(now).whole_secs());
                let want_left = n("timeout")?;
                if (left - want_left).abs() > tol + 1e-9 {
                    diffs.push(format!("#{i}: timeout {left} != expected {want_left}"));
                }
            }
            for (e, m) in table.iter().zip(matched) {
                if !m {
                    diffs.push(format!(
                        "#{i}: extra entry {:x?} ({})",
                        e.orig,
                        e.conn.state().name()
                    ));
                }
            }
            Ok(())
        }

        /// Runs one trace; returns the differences.
        fn run_trace(cfg: &RunConfig, pcap: &Path, jsonl: &Path) -> Result<Vec<String>, String> {
            let bytes = std::fs::read(pcap).map_err(|e| format!("{}: {e}", pcap.display()))?;
            let frames = read_pcapng(&bytes)?;
            let text =
                std::fs::read_to_string(jsonl).map_err(|e| format!("{}: {e}", jsonl.display()))?;
            let records: Vec<Json> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(JsonParser::parse)
                .collect::<Result<_, _>>()?;
            let mut diffs = Vec::new();
            if frames.len() != records.len() {
                diffs.push(format!(
                    "{} frames but {} records",
                    frames.len(),
                    records.len()
                ));
            }
            let t0 = frames.first().map_or(0, |f| f.ts_ns);
            let mut table: Vec<Entry> = Vec::new();
            for (i, (frame, rec)) in frames.iter().zip(&records).enumerate() {
                let now = Instant(frame.ts_ns - t0).tick();
                table.retain(|e| e.meta.expires.is_after(now));
                let from_inside = frame.iface == 0;
                let want_dir = if from_inside { "c2s" } else { "s2c" };
                if rec.get("direction").and_then(Json::str) != Some(want_dir) {
                    diffs.push(format!(
                        "#{i}: interface {} disagrees with the record",
                        frame.iface
                    ));
                }
                let (ct_state, forwarded) = match decode(&frame.data) {
                    Decoded::Unparsed => (None, false),
                    Decoded::Invalid => (Some("invalid"), false),
                    Decoded::Tcp(p) => {
                        if let Some(summary) = rec.get("summary").and_then(Json::str) {
                            if let Err(e) = check_summary(summary, &p) {
                                diffs.push(format!("#{i}: {e}"));
                            }
                        }
                        let (s, f) = track(&mut table, cfg, &p, now, from_inside)?;
                        (Some(s), f)
                    }
                };
                let want_state = rec.get("ct_state").and_then(Json::str);
                if want_state != ct_state {
                    diffs.push(format!(
                        "#{i}: ct_state {ct_state:?} != expected {want_state:?}"
                    ));
                }
                let want_fwd = rec
                    .get("forwarded")
                    .and_then(Json::bool)
                    .ok_or("no forwarded")?;
                if want_fwd != forwarded {
                    diffs.push(format!(
                        "#{i}: forwarded {forwarded} != expected {want_fwd}"
                    ));
                }
                let t = rec.get("t").and_then(Json::num).unwrap_or(0.0);
                let wall = rec.get("wall_t").and_then(Json::num).unwrap_or(t);
                compare_entries(&table, rec, now, 2.0 + (wall - t).abs(), &mut diffs, i)?;
            }
            Ok(diffs)
        }

        /// The knobs of one config folder, from its `run_info.json`.
        fn run_config(dir: &Path) -> Result<RunConfig, String> {
            let path = dir.join("run_info.json");
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let info = JsonParser::parse(&text)?;
            let sys = info
                .get("sysctls_in_effect")
                .ok_or("no sysctls_in_effect")?;
            let knob = |name: &str| -> Result<u32, String> {
                let key = format!("nf_conntrack_tcp_{name}");
                sys.get(&key)
                    .and_then(Json::num)
                    .map(|v| v as u32)
                    .ok_or(format!("no {key}"))
            };
            let t = |name: &str| knob(&format!("timeout_{name}")).map(Ticks::from_secs);
            let timeouts = TcpTimeouts {
                syn_sent: t("syn_sent")?,
                syn_recv: t("syn_recv")?,
                established: t("established")?,
                fin_wait: t("fin_wait")?,
                close_wait: t("close_wait")?,
                last_ack: t("last_ack")?,
                time_wait: t("time_wait")?,
                close: t("close")?,
                // Linux has no sysctl for SYN_SENT2.
                syn_sent2: TcpTimeouts::default().syn_sent2,
                retrans: t("max_retrans")?,
                unack: t("unacknowledged")?,
            };
            let tcp = TcpConfig {
                timeouts,
                loose: knob("loose")? != 0,
                be_liberal: knob("be_liberal")? != 0,
                max_retrans: u8::try_from(knob("max_retrans")?).map_err(|e| e.to_string())?,
                ignore_invalid_rst: knob("ignore_invalid_rst")? != 0,
            };
            let synchk = match info.get("ruleset").and_then(Json::str) {
                Some("classic") => false,
                Some("classic_synchk") => true,
                other => return Err(format!("unknown ruleset {other:?}")),
            };
            Ok(RunConfig { tcp, synchk })
        }

        fn conformance_dir() -> PathBuf {
            match std::env::var_os("CTFW_CONFORMANCE_DIR") {
                Some(d) => PathBuf::from(d),
                None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/linux-conformance"),
            }
        }

        #[test]
        fn linux_tcp_traces_agree() {
            let root = conformance_dir();
            let expected = root.join("expected");
            assert!(
                expected.is_dir(),
                "conformance set not found at {}: set CTFW_CONFORMANCE_DIR to the folder holding \
                 expected/ and traces/ (the repository vendors one in tests/linux-conformance)",
                root.display()
            );
            let mut configs: Vec<PathBuf> = std::fs::read_dir(&expected)
                .expect("read expected/")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            configs.sort();
            let (mut passed, mut report) = (0, String::new());
            let mut failed = 0;
            for dir in &configs {
                let cfg = run_config(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                let mut names: Vec<String> = std::fs::read_dir(dir)
                    .expect("read config folder")
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| {
                        n.ends_with(".jsonl")
                            && (n.starts_with("tcp_") || n.starts_with("ipv6_tcp_"))
                    })
                    .collect();
                names.sort();
                for name in names {
                    let trace = name.trim_end_matches(".jsonl");
                    let pcap = root.join("traces").join(format!("{trace}.pcapng"));
                    let config = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                    let config = config.unwrap_or_default();
                    match run_trace(&cfg, &pcap, &dir.join(&name)) {
                        Ok(d) if d.is_empty() => passed += 1,
                        Ok(d) => {
                            failed += 1;
                            let _ = writeln!(report, "{config}/{trace}:");
                            for x in d.iter().take(10) {
                                let _ = writeln!(report, "    {x}");
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            let _ = writeln!(report, "{config}/{trace}: {e}");
                        }
                    }
                }
            }
            println!("conformance: {passed} TCP traces agree, {failed} differ");
            assert!(
                passed + failed > 0,
                "no TCP traces found under {}",
                expected.display()
            );
            assert!(failed == 0, "traces that differ from Linux:\n{report}");
        }
    }
}
