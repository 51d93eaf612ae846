//! ctfw's engine: everything between "here are some frame bytes" and "forward or drop".
//!
//! The engine is pure: it takes packet bytes, an ingress port and `now` (its own
//! [`time::Instant`], read by the caller once per polling round, so at most once per burst) and
//! returns verdicts. It never reads a clock, never touches an mbuf, never allocates or formats
//! per packet, which is what makes timeouts unit-testable and pcap replay exact. The DPDK data
//! plane and `ctfw replay` run the same code.
//!
//! - [`wire`]: checked, zero-copy views over headers; malformed input becomes a typed [`Reason`].
//! - [`flow`]: canonical flow keys and keyed hashing.
//! - [`track`]: per-protocol conntrack semantics after Linux nf_conntrack.
//! - [`table`]: the fixed-capacity connection table with incremental expiry and eviction.
//! - [`rules`]: the compiled rule set.
//! - [`pipeline`]: the burst pipeline tying them together.
//! - [`observe`]: what the engine records for operators as packets pass: per-connection
//!   accounting, connection events, the drop log.
//! - [`ops`]: the operator's calls: filtered listing and deletion in bounded chunks, reload
//!   without losing state.
//! - [`counters`]: the reasons a packet is dropped, INVALID or ignored by tracking, and the
//!   per-worker counters.
//! - [`time`]: the engine's clock types (`Instant`, and the 1/256 s `Tick` entries store).
//! - [`view`]: an entry as an operator reads it (`conntrack -L` style), for listings.
//! - [`rss`]: worker ownership: the software distributor's keyed symmetric hash, and the
//!   symmetric Toeplitz hash it shares with the NIC RETA when a port does hardware RSS, so
//!   both directions of a flow reach the worker that owns its entry.

#![forbid(unsafe_code)]

pub mod counters;
pub mod flow;
pub mod observe;
pub mod ops;
pub mod pipeline;
pub mod rss;
pub mod rules;
pub mod table;
pub mod time;
pub mod track;
pub mod view;
pub mod wire;

pub use counters::{Counters, Ignored, Reason, ReasonClass};
pub use time::Instant;
