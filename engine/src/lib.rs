//! ctfw's engine: everything between "here are some frame bytes" and "forward or drop".
//!
//! The engine is pure: it takes packet bytes, an ingress port and `now` (its own [`time::Instant`],
//! read once per burst by the caller) and returns verdicts. It never reads a clock, never touches
//! an mbuf, never allocates or formats per packet, which is what makes timeouts unit-testable
//! and pcap replay exact. The DPDK data plane and `ctfw replay` run the same code.
//!
//! - [`wire`]: checked, zero-copy views over headers; malformed input becomes a typed [`Reason`].
//! - [`flow`]: canonical flow keys and keyed hashing.
//! - [`track`]: per-protocol conntrack semantics after Linux nf_conntrack.
//! - [`table`]: the fixed-capacity connection table with incremental expiry and eviction.
//! - [`rules`]: the compiled rule set.
//! - [`pipeline`]: the burst pipeline tying them together.

#![forbid(unsafe_code)]

pub mod counters;
pub mod flow;
pub mod pipeline;
pub mod rss;
pub mod rules;
pub mod table;
pub mod time;
pub mod track;
pub mod view;
pub mod wire;

pub use counters::{Counters, Reason, ReasonClass};
pub use time::Instant;
