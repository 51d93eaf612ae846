//! GRE (RFC 2784, and the enhanced version 1 header of PPTP, RFC 2637), read the way Linux's
//! `gre_pkt_to_tuple` (`nf_conntrack_proto_gre.c`) reads it to build a conntrack tuple.
//!
//! Only what the tuple needs is read: the version bits, the protocol field and, for a
//! version 1 header carrying PPP, the call id. A version 0 header (or a header too short to
//! tell) is tracked like a generic protocol, on addresses alone; a version 1 header that
//! does not carry PPP has no tuple at all, which conntrack refuses. The same reading applies
//! to a GRE header quoted by an ICMP error (`icmp::parse_quoted`).

use super::L4;
use super::bytes::be16;
use crate::counters::Reason;

mod field {
    use core::ops::Range;

    pub const FLAGS_VERSION: usize = 1;
    pub const PROTOCOL: Range<usize> = 2..4;
    /// The call id of the version 1 (PPTP) header, after its payload length.
    pub const CALL_ID: Range<usize> = 6..8;
}

/// The version bits of the second header byte.
const VERSION_MASK: u8 = 0x07;
/// The enhanced header of PPTP.
const VERSION_1: u8 = 1;
/// The protocol a PPTP header carries (PPP).
const PROTO_PPP: u16 = 0x880b;

/// The key Linux's `gre_pkt_to_tuple` reads from a GRE header (top-level or quoted by an ICMP
/// error): `Some(None)` for a header tracked like a generic protocol (version 0, or fewer than
/// 4 bytes, or a version 1 header of fewer than the 8 bytes that reach the call id, whatever
/// it carries); `Some(Some(call_id))` for version 1 carrying PPP (0x880b), keyed on its call
/// id (bytes 6..8); `None` for version 1 with any other payload, which has no tuple at all.
pub(crate) fn call_id(l4: &[u8]) -> Option<Option<u16>> {
    match l4.get(..field::CALL_ID.end) {
        Some(h) if h[field::FLAGS_VERSION] & VERSION_MASK == VERSION_1 => {
            (be16(&h[field::PROTOCOL]) == PROTO_PPP).then_some(Some(be16(&h[field::CALL_ID])))
        }
        // Version 0 keeps the zeroed key. So does a version 1 header shorter than the PPTP
        // header: `if (!pgrehdr) return true;` comes before the protocol test, so the zeroed
        // key stands whatever the payload.
        _ => Some(None),
    }
}

/// The IP payload `l4` as a GRE packet: keyed on its call id as [`call_id`] says, or
/// `Malformed(GreUnsupported)` when it has no tuple.
#[inline]
pub(super) fn parse(l4: &[u8]) -> L4<'_> {
    match call_id(l4) {
        Some(call_id) => L4::Gre { call_id },
        None => L4::Malformed(Reason::GreUnsupported),
    }
}
