//! ctfw-tracegen: deterministic packet traces for tests, scenario checks and benchmarks.
//!
//! - [`frame`]: a field-by-field frame builder (Ethernet/VLAN, IPv4/IPv6 with options and
//!   extension headers, TCP/UDP/ICMP/ICMPv6), correct checksums by default, knobs to break them.
//! - [`tcpsim`]: a TCP connection simulator that produces handshakes, data, SACK, FIN and RST
//!   with consistent sequence numbers, acknowledgments and windows.
//! - [`mod@write`] and [`read`]: the capture writers and reader of `ctfw-capture`, re-exported so
//!   that a user of the generator needs one crate.
//! - [`generate`]: whole-capture generators behind the `ctfw-tracegen` binary.
//! - [`random`]: many short random traces for the differential check against the kernel.
//! - [`conformance`]: where the Linux conformance data set is, for every test that reads it.
//!
//! Invariants: the same inputs and seed always give the same bytes (see [`rng`]); nothing here
//! shares code with `ctfw-engine`, so the generator is an independent oracle for its parsers.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod conformance;
pub mod frame;
pub mod generate;
pub mod random;
pub mod rng;
pub mod tcpsim;

pub use ctfw_capture::{Packet, PacketSink, PcapWriter, PcapngWriter, Side, read, write};
pub use frame::{Frame, TcpFlags, TcpOption};
pub use tcpsim::{Dir, TcpSim};

/// The default start time of generated captures: 2023-11-14T22:13:20Z, as in the conformance
/// traces.
pub const DEFAULT_START_NS: u64 = 1_700_000_000_000_000_000;
