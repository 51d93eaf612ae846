//! TCP connection tracking: the state machine and window tracking of Linux
//! `net/netfilter/nf_conntrack_proto_tcp.c`. (Skeleton: the owner of this file replaces it.)

use crate::counters::Reason;
use crate::flow::Direction;
use crate::time::{Tick, Ticks};
use crate::track::EntryMeta;
use crate::wire::{TcpFlags, TcpSeg};

/// TCP conntrack states (Linux `enum tcp_conntrack`, same order).
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
    /// Simultaneous open: SYN seen from the reply direction.
    SynSent2,
}

impl TcpState {
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

/// What the tracker decided for one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpAction {
    /// In window: state, windows and the deadline were updated.
    Accept,
    /// Accepted but ignored (Linux `NF_ACCEPT` without a state change).
    Ignore,
    /// INVALID (Linux `-NF_ACCEPT`), with why.
    Invalid(Reason),
    /// Accept the packet and delete the entry (an RST before any reply).
    Kill,
    /// Delete the entry and handle the packet again as a new connection (`-NF_REPEAT`).
    Reopen,
}

/// A TCP connection's tracking state. At most 52 bytes: it shares a 96-byte entry with the key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpConn {
    state: TcpState,
}

/// Linux `tcp_valid_flags`: whether a flag combination is acceptable at all.
pub fn flags_valid(_flags: TcpFlags) -> bool {
    todo!("owner of track/tcp.rs")
}

impl TcpConn {
    /// The connection's state.
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Linux `tcp_new`: the state for a segment that finds no entry, or why it cannot open one.
    pub fn new(_seg: &TcpSeg<'_>, _cfg: &TcpConfig) -> Result<TcpConn, Reason> {
        todo!("owner of track/tcp.rs")
    }

    /// Linux `nf_conntrack_tcp_packet` (after `tcp_error` and `tcp_new`).
    pub fn packet(
        &mut self,
        _meta: &mut EntryMeta,
        _now: Tick,
        _dir: Direction,
        _seg: &TcpSeg<'_>,
        _cfg: &TcpConfig,
    ) -> TcpAction {
        todo!("owner of track/tcp.rs")
    }
}
