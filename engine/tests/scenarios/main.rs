//! Scenario tests of the whole engine, beyond the Linux conformance traces: window scaling,
//! SACK, bulk transfers with sequence wrap, thousands of flows, VLANs, IPv6 extension headers,
//! fragments, a full table, the expiry of every state, RELATED ICMP errors, untracked ICMPv6,
//! rarely travelled tracker paths, random input, and burst equivalence; and what operators
//! get from the engine: accounting, connection events, the drop log, filtered listing and
//! deletion, reload; and a large rule set, compiled, deciding as its few matching rules do.
//!
//! Every expectation is derived from the Linux source (`net/netfilter/nf_conntrack_*.c`, 6.x),
//! cited at the assertion, never from what the engine happens to print: the engine must agree
//! with the kernel packet for packet. Frames come from `ctfw-tracegen` (its `TcpSim` keeps
//! sequence numbers, acknowledgments and windows consistent), which shares no code with the
//! engine.
//!
//! Where ctfw departs from Linux by design, the test says so and checks ctfw's documented
//! behaviour instead: fragments (Linux reassembles; ctfw's `FragmentPolicy` decides) and
//! non-IP frames (`NonIpPolicy`). Where it departs without a design reason, the test states
//! the kernel's behaviour and fails until the engine matches it.

mod common;
mod traces;

mod accounting;
mod bulk;
mod burst;
mod drop_log;
mod events;
mod expiry;
mod fragments;
mod fuzz;
mod icmpv6_nonip;
mod ignored;
mod ipv6_ext;
mod listing;
mod many_flows;
mod quirks;
mod related;
mod reload;
mod rst_after_ignored;
mod rule_memo;
mod rules_at_scale;
mod sack;
mod table_full;
mod vlan;
mod wscale;
