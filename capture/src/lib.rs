//! ctfw-capture: the packet captures ctfw reads and writes.
//!
//! - [`read`]: a streaming pcap/pcapng reader with typed errors that never panics; `ctfw
//!   replay` reads every capture through it.
//! - [`mod@write`]: classic pcap and pcapng writers (pcapng with the `inside`/`outside` interfaces of
//!   the conformance traces) and packet sinks.
//!
//! It is separate from `ctfw-tracegen` so that the `ctfw` binary links the reader without the
//! generator.

#![forbid(unsafe_code)]

pub mod read;
pub mod write;

pub use read::CaptureReader;
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
