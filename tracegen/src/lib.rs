//! ctfw-tracegen: deterministic packet traces for tests, scenario checks and benchmarks, and
//! the streaming capture reader that `ctfw replay` uses.
//!
//! - [`frame`]: a field-by-field frame builder (Ethernet/VLAN, IPv4/IPv6 with options and
//!   extension headers, TCP/UDP/ICMP/ICMPv6), correct checksums by default, knobs to break them.
//! - [`tcpsim`]: a TCP connection simulator that produces handshakes, data, SACK, FIN and RST
//!   with consistent sequence numbers, acknowledgments and windows.
//! - [`write`]: classic pcap and pcapng writers (pcapng with the `inside`/`outside` interfaces of
//!   the conformance traces) and packet sinks.
//! - [`read`]: a streaming pcap/pcapng reader with typed errors that never panics.
//! - [`generate`]: whole-capture generators behind the `ctfw-tracegen` binary.
//! - [`random`]: many short random traces for the differential check against the kernel.
//!
//! Invariants: the same inputs and seed always give the same bytes (see [`rng`]); nothing here
//! shares code with `ctfw-engine`, so the generator is an independent oracle for its parsers.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod frame;
pub mod generate;
pub mod random;
pub mod read;
pub mod rng;
pub mod tcpsim;
pub mod write;

pub use frame::{Frame, TcpFlags, TcpOption};
pub use tcpsim::{Dir, TcpSim};
pub use write::{PacketSink, PcapWriter, PcapngWriter};

/// The firewall port a packet arrives on. Clients are inside, servers outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The client side: pcapng interface 0, named `inside`.
    Inside,
    /// The server side: pcapng interface 1, named `outside`.
    Outside,
}

impl Side {
    /// The pcapng interface id of this side in the captures written here.
    pub fn interface_id(self) -> u32 {
        match self {
            Side::Inside => 0,
            Side::Outside => 1,
        }
    }

    /// The interface name: `inside` or `outside`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Inside => "inside",
            Side::Outside => "outside",
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Inside => Side::Outside,
            Side::Outside => Side::Inside,
        }
    }
}

/// One captured packet: when, on which side, and the Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The ingress side.
    pub side: Side,
    /// The whole Ethernet frame.
    pub data: Vec<u8>,
}

/// The default start time of generated captures: 2023-11-14T22:13:20Z, as in the conformance
/// traces.
pub const DEFAULT_START_NS: u64 = 1_700_000_000_000_000_000;
