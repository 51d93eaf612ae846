//! ICMP and ICMPv6 tracking, after Linux 6.x `nf_conntrack_proto_icmp.c`,
//! `nf_conntrack_proto_icmpv6.c` and the ICMP path of `nf_conntrack_in` (`nf_conntrack_core.c`).
//!
//! [`classify`] says what conntrack does with a message type; [`packet`] is the per-packet
//! work for a tracked query. How Linux reaches each class, for a message whose header (8 bytes)
//! is complete and whose checksum verifies (both are checked first, by the wire parser):
//!
//! IPv4 (`nf_conntrack_icmpv4_error`, then `resolve_normal_ct`, then `nf_conntrack_icmp_packet`):
//! - `if (icmph->type > NR_ICMP_TYPES)` (18): "invalid icmp type", INVALID.
//! - `if (!icmp_is_err(icmph->type)) return NF_ACCEPT;` otherwise the message is an error
//!   (`icmp_is_err`: 3 unreachable, 4 source quench, 5 redirect, 11 time exceeded, 12 parameter
//!   problem) and is RELATED to the flow it quotes, or INVALID.
//! - Any other type is looked up as a connection keyed on (type, code, id). A new entry needs
//!   the reply tuple: `init_conntrack` starts with `if (!nf_ct_invert_tuple(&repl_tuple, tuple))
//!   return NULL;` and `invmap` knows only echo 8/0, timestamp 13/14, information 15/16 and
//!   address mask 17/18, so types 1, 2, 6, 7, 9 and 10 get no conntrack: INVALID.
//! - Of the invertible types only the requests may create an entry (`valid_new[]`: 8, 13, 15,
//!   17); an answer without an entry is INVALID ("can't create new conn with this").
//!
//! IPv6 (`nf_conntrack_icmpv6_error`, ...):
//! - the `noct_valid_new[]` types (MLD 130, 131, 132, 143; neighbour discovery 133 to 136;
//!   multicast router discovery 151, 152) are `nf_ct_set(skb, NULL, IP_CT_UNTRACKED)`;
//! - 137 (redirect) goes to `nf_conntrack_icmpv6_redirect`, see [`classify`];
//! - `if (icmp6h->icmp6_type >= 128) return NF_ACCEPT;`: every type below 128 is an error;
//! - queries: echo 128/129 and node information 139/140 (`invmap`), of which 128 and 139 may
//!   create an entry (`valid_new[]`); every other type has no inverse: INVALID.
//!
//! The code never changes the class (except for the ICMPv6 redirect, whose every path ends
//! INVALID here). Linux does not reject an echo with a non-zero code: the code is part of the
//! tuple, kept by the inversion (`tuple->dst.u.icmp.code = orig->dst.u.icmp.code`), so a reply
//! must carry the request's code to match; [`crate::flow::FlowKey::icmp_query`] keys on it.
//!
//! A tracked query never becomes ASSURED: `nf_conntrack_icmp_packet` only refreshes.

use crate::counters::Reason;
use crate::time::Tick;
use crate::track::{EntryMeta, OtherTimeouts};
use crate::wire::Family;
use crate::wire::icmp::{v4, v6};

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

/// Highest ICMPv4 type conntrack knows (Linux `NR_ICMP_TYPES`).
const NR_ICMP_TYPES: u8 = 18;

/// Classify a message type.
///
/// `code` does not matter to Linux except for the ICMPv6 redirect (137), which it handles in
/// `nf_conntrack_icmpv6_redirect`: with `code != 0` it is tracked as a normal message and, having
/// no inverse, gets no conntrack (INVALID); with code 0 it is INVALID unless it has hop limit
/// 255, a link-local source and a Redirected Header option, in which case the quoted packet
/// makes it RELATED. A router never forwards a link-local source (`ip6_forward`), so every
/// redirect a forwarding firewall could pass is INVALID and this function says so for all codes.
pub fn classify(family: Family, type_: u8, code: u8) -> IcmpClass {
    match family {
        Family::V4 => classify_v4(type_),
        Family::V6 => classify_v6(type_, code),
    }
}

/// The answer type of a query's request type (Linux `invmap`), for printing an entry's REPLY
/// tuple; `None` if `request_type` is not a request conntrack tracks.
pub fn reply_type(family: Family, request_type: u8) -> Option<u8> {
    match (family, request_type) {
        (Family::V4, v4::ECHO_REQUEST) => Some(v4::ECHO_REPLY),
        (Family::V4, v4::TIMESTAMP) => Some(v4::TIMESTAMP_REPLY),
        (Family::V4, v4::INFO_REQUEST) => Some(v4::INFO_REPLY),
        (Family::V4, v4::ADDRESS_MASK_REQUEST) => Some(v4::ADDRESS_MASK_REPLY),
        (Family::V6, v6::ECHO_REQUEST) => Some(v6::ECHO_REPLY),
        (Family::V6, v6::NODE_INFO_QUERY) => Some(v6::NODE_INFO_RESPONSE),
        _ => None,
    }
}

/// Linux `nf_conntrack_icmp_packet` / `icmpv6_packet` for a tracked query: refresh the deadline
/// with the family's ICMP timeout. Never sets ASSURED (the kernel never does for ICMP).
#[inline]
pub fn packet(meta: &mut EntryMeta, now: Tick, family: Family, t: &OtherTimeouts) {
    let timeout = match family {
        Family::V4 => t.icmp,
        Family::V6 => t.icmpv6,
    };
    meta.expires = now.after(timeout);
}

/// IPv4: `nf_conntrack_icmpv4_error`, then `invmap` / `valid_new` of `nf_conntrack_icmp_packet`.
fn classify_v4(type_: u8) -> IcmpClass {
    let query = |request_type, is_request| IcmpClass::Query {
        request_type,
        is_request,
    };
    match type_ {
        // "invalid icmp type": RFC 1122 says unknown types must be discarded.
        t if t > NR_ICMP_TYPES => IcmpClass::Invalid(Reason::IcmpBadType),
        // icmp_is_err(): unreachable, source quench, redirect, time exceeded, parameter problem.
        // The parser reads a quoted packet for exactly these types (same function).
        t if v4::is_error(t) => IcmpClass::Error,
        v4::ECHO_REQUEST => query(v4::ECHO_REQUEST, true),
        v4::ECHO_REPLY => query(v4::ECHO_REQUEST, false),
        v4::TIMESTAMP => query(v4::TIMESTAMP, true),
        v4::TIMESTAMP_REPLY => query(v4::TIMESTAMP, false),
        v4::INFO_REQUEST => query(v4::INFO_REQUEST, true),
        v4::INFO_REPLY => query(v4::INFO_REQUEST, false),
        v4::ADDRESS_MASK_REQUEST => query(v4::ADDRESS_MASK_REQUEST, true),
        v4::ADDRESS_MASK_REPLY => query(v4::ADDRESS_MASK_REQUEST, false),
        // 1, 2, 6, 7, 9 (router advertisement), 10 (router solicitation): no inverse in
        // invmap, so init_conntrack cannot build a reply tuple and the packet has no conntrack.
        _ => IcmpClass::Invalid(Reason::IcmpInvalidNew),
    }
}

/// IPv6: `nf_conntrack_icmpv6_error`, then `invmap` / `valid_new` of `nf_conntrack_icmpv6_packet`.
fn classify_v6(type_: u8, _code: u8) -> IcmpClass {
    let query = |request_type, is_request| IcmpClass::Query {
        request_type,
        is_request,
    };
    match type_ {
        // noct_valid_new[]: MLD query/report/done, RS, RA, NS, NA, MLDv2 report, MRD adv/sol.
        130..=136 | 143 | 151 | 152 => IcmpClass::Untracked,
        // See `classify`: every redirect a router could forward ends INVALID.
        v6::REDIRECT => IcmpClass::Invalid(Reason::IcmpInvalidNew),
        // "is not error message ?": `icmp6_type >= 128` is not; everything below is. The
        // parser reads a quoted packet for exactly these types (same function).
        t if v6::is_error(t) => IcmpClass::Error,
        v6::ECHO_REQUEST => query(v6::ECHO_REQUEST, true),
        v6::ECHO_REPLY => query(v6::ECHO_REQUEST, false),
        v6::NODE_INFO_QUERY => query(v6::NODE_INFO_QUERY, true),
        v6::NODE_INFO_RESPONSE => query(v6::NODE_INFO_QUERY, false),
        // No inverse in invmap: init_conntrack fails, no conntrack.
        _ => IcmpClass::Invalid(Reason::IcmpInvalidNew),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Ticks;
    use crate::track::CtFlags;

    fn q(request_type: u8, is_request: bool) -> IcmpClass {
        IcmpClass::Query {
            request_type,
            is_request,
        }
    }

    const INVALID: IcmpClass = IcmpClass::Invalid(Reason::IcmpInvalidNew);

    /// The IPv4 table, from nf_conntrack_proto_icmp.c (6.x):
    /// - `nf_conntrack_icmpv4_error`: `if (icmph->type > NR_ICMP_TYPES)` -> invalid;
    ///   `if (!icmp_is_err(icmph->type)) return NF_ACCEPT;` (include/linux/icmp.h: 3, 4, 5,
    ///   11, 12 are errors) -> `nf_conntrack_inet_error`;
    /// - `invmap[]`: ECHO 8 <-> ECHOREPLY 0, TIMESTAMP 13 <-> 14, INFO_REQUEST 15 <-> 16,
    ///   ADDRESS 17 <-> 18; no entry -> `init_conntrack` returns NULL -> invalid;
    /// - `valid_new[]` of `nf_conntrack_icmp_packet`: ECHO, TIMESTAMP, INFO_REQUEST, ADDRESS.
    fn expected_v4(t: u8) -> IcmpClass {
        match t {
            3 | 4 | 5 | 11 | 12 => IcmpClass::Error,
            8 | 13 | 15 | 17 => q(t, true),
            0 => q(8, false),
            14 | 16 | 18 => q(t - 1, false),
            1 | 2 | 6 | 7 | 9 | 10 => INVALID,
            19..=255 => IcmpClass::Invalid(Reason::IcmpBadType),
        }
    }

    /// The IPv6 table, from nf_conntrack_proto_icmpv6.c (6.x):
    /// - `noct_valid_new[]` (indexed `type - 130`): MGM_QUERY 130, MGM_REPORT 131,
    ///   MGM_REDUCTION 132, NDISC RS 133, RA 134, NS 135, NA 136, MLD2_REPORT 143,
    ///   MRDISC_ADV 151, MRDISC_SOL 152 -> `IP_CT_UNTRACKED`;
    /// - `NDISC_REDIRECT` 137 -> `nf_conntrack_icmpv6_redirect` (invalid for a forwarder);
    /// - `if (icmp6h->icmp6_type >= 128) return NF_ACCEPT;` else -> `nf_conntrack_inet_error`;
    /// - `invmap[]` (indexed `type - 128`): ECHO_REQUEST 128 <-> 129, NI_QUERY 139 <-> 140;
    ///   `valid_new[]`: 128, 139; anything else has no inverse -> invalid.
    fn expected_v6(t: u8) -> IcmpClass {
        match t {
            0..=127 => IcmpClass::Error,
            128 | 139 => q(t, true),
            129 | 140 => q(t - 1, false),
            130 | 131 | 132 | 133 | 134 | 135 | 136 | 143 | 151 | 152 => IcmpClass::Untracked,
            137 => INVALID,
            138 | 141 | 142 | 144..=150 | 153..=255 => INVALID,
        }
    }

    #[test]
    fn every_ipv4_type_matches_the_kernel_table() {
        for t in 0..=255u8 {
            for code in [0u8, 1, 3, 255] {
                assert_eq!(
                    classify(Family::V4, t, code),
                    expected_v4(t),
                    "type {t} code {code}"
                );
            }
        }
    }

    #[test]
    fn every_ipv6_type_matches_the_kernel_table() {
        for t in 0..=255u8 {
            for code in [0u8, 1, 3, 255] {
                assert_eq!(
                    classify(Family::V6, t, code),
                    expected_v6(t),
                    "type {t} code {code}"
                );
            }
        }
    }

    #[test]
    fn ipv4_class_counts() {
        let classes: Vec<_> = (0..=255u8).map(|t| classify(Family::V4, t, 0)).collect();
        let errors = classes.iter().filter(|c| **c == IcmpClass::Error).count();
        let queries = classes
            .iter()
            .filter(|c| matches!(c, IcmpClass::Query { .. }))
            .count();
        assert_eq!((errors, queries), (5, 8));
        assert_eq!(classes.len() - errors - queries, 243);
        assert!(!classes.contains(&IcmpClass::Untracked));
    }

    #[test]
    fn ipv6_class_counts() {
        let classes: Vec<_> = (0..=255u8).map(|t| classify(Family::V6, t, 0)).collect();
        let count = |f: fn(&IcmpClass) -> bool| classes.iter().filter(|c| f(c)).count();
        assert_eq!(count(|c| *c == IcmpClass::Error), 128);
        assert_eq!(count(|c| matches!(c, IcmpClass::Query { .. })), 4);
        assert_eq!(count(|c| *c == IcmpClass::Untracked), 10);
        assert_eq!(count(|c| matches!(c, IcmpClass::Invalid(_))), 114);
    }

    #[test]
    fn echo_with_nonzero_code_is_still_a_query() {
        assert_eq!(classify(Family::V4, 8, 7), q(8, true));
        assert_eq!(classify(Family::V6, 129, 9), q(128, false));
    }

    #[test]
    fn reply_types_invert_the_requests() {
        for family in [Family::V4, Family::V6] {
            for t in 0..=255u8 {
                match classify(family, t, 0) {
                    IcmpClass::Query {
                        request_type,
                        is_request: true,
                    } => {
                        assert_eq!(request_type, t);
                        let r = reply_type(family, t).expect("a request has a reply type");
                        assert_eq!(classify(family, r, 0), q(t, false));
                    }
                    _ => assert_eq!(reply_type(family, t), None, "{family:?} type {t}"),
                }
            }
        }
    }

    #[test]
    fn packet_refreshes_with_the_family_timeout_and_never_assures() {
        let t = OtherTimeouts {
            icmp: Ticks::from_secs(30),
            icmpv6: Ticks::from_secs(45),
            ..OtherTimeouts::default()
        };
        let now = Tick(1000);
        let mut m = EntryMeta {
            flags: CtFlags(CtFlags::SEEN_REPLY),
            expires: Tick(5),
        };
        packet(&mut m, now, Family::V4, &t);
        assert_eq!(m.expires, now.after(Ticks::from_secs(30)));
        assert_eq!(m.flags, CtFlags(CtFlags::SEEN_REPLY));
        packet(&mut m, now, Family::V6, &t);
        assert_eq!(m.expires, now.after(Ticks::from_secs(45)));
        assert!(!m.flags.assured());
    }

    #[test]
    fn default_icmp_timeouts_match_the_kernel_records() {
        // icmp_echo_request_reply.jsonl / ipv6_icmpv6_echo_request_reply.jsonl: 29-30 s left
        // right after each packet, flags never ASSURED.
        let t = OtherTimeouts::default();
        for family in [Family::V4, Family::V6] {
            let mut m = EntryMeta {
                flags: CtFlags::default(),
                expires: Tick(0),
            };
            packet(&mut m, Tick(0), family, &t);
            assert_eq!(m.expires.remaining(Tick(0)).whole_secs(), 30);
            assert!(!m.flags.assured());
        }
    }
}
