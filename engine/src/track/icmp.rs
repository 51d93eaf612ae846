//! ICMP and ICMPv6 tracking, after Linux `nf_conntrack_proto_icmp.c` and
//! `nf_conntrack_proto_icmpv6.c`. (Skeleton: its owner replaces it.)

use crate::counters::Reason;
use crate::time::Tick;
use crate::track::{EntryMeta, OtherTimeouts};
use crate::wire::Family;

/// How conntrack treats an ICMP / ICMPv6 message of a given type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpClass {
    /// A query or its answer, tracked as a connection keyed on the identifier.
    Query {
        /// The request type of the pair (echo request for an echo reply too).
        request_type: u8,
        /// This message is the request (may create an entry); else the answer.
        is_request: bool,
    },
    /// An error message: RELATED to the flow it quotes, or INVALID.
    Error,
    /// Deliberately untracked (ICMPv6 neighbour discovery, MLD, ...).
    Untracked,
    /// Never valid for conntrack (unknown type, a type without an answer, ...).
    Invalid(Reason),
}

/// Classify a message type.
pub fn classify(_family: Family, _type_: u8, _code: u8) -> IcmpClass {
    todo!("owner of track/icmp.rs")
}

/// Linux `nf_conntrack_icmp_packet` / `icmpv6_packet` for a tracked query: refresh.
pub fn packet(_meta: &mut EntryMeta, _now: Tick, _family: Family, _t: &OtherTimeouts) {
    todo!("owner of track/icmp.rs")
}
