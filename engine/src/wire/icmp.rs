//! ICMP (RFC 792) and ICMPv6 (RFC 4443) headers, and the packet an error message quotes.
//!
//! Both share the 8-byte layout type, code, checksum, then four bytes that queries use as
//! identifier and sequence number; [`IcmpPacket`] serves both. The ICMPv4 checksum covers the
//! message only, the ICMPv6 one adds the IPv6 pseudo-header.
//!
//! `parse` turns the IP payload into an [`IcmpMsg`] (type, code, identifier, and for an
//! error the quoted packet as an [`InnerTuple`]), or an `L4::Malformed` reason. Which types
//! are queries, errors or untracked is the tracker's business (`track::icmp::classify`);
//! both sides take the error types from [`v4::is_error`] and [`v6::is_error`].
//!
//! [`parse_quoted`] reads the packet inside an error message exactly as far as conntrack's
//! `nf_ct_get_tuplepr` does, since that decides whether the error is RELATED:
//! - IPv4: 20 bytes of header present, fragment offset 0 (MF alone is fine), IHL * 4 bytes
//!   present; the version nibble and the quoted total length are not looked at (only the
//!   first bytes of the original are quoted). One deviation: an IHL below 5, which Linux
//!   would follow into its own header bytes, is refused.
//! - IPv6: the 40-byte header present, then its extension headers walked as for any packet;
//!   a non-first fragment or No Next Header is refused.
//! - Transport: TCP and UDP need their 4 port bytes, ICMP and ICMPv6 their 8-byte header; a
//!   GRE header is read as `gre_pkt_to_tuple` reads it (a version 1 header that does not carry
//!   PPP has no tuple and is refused); other protocols need nothing.
//!
//! Any failure is `IcmpBadInner`.
//!
//! [`IcmpPacket`] is a complete view, as smoltcp's are: the checksum field and the sequence
//! number are read only by tests (the checksum is verified over the whole message).

use super::bytes::be16;
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::{Bytes, Family, IpAddrs, L4, checksum, gre, proto};
use crate::counters::Reason;

/// A read-only view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ_NO: Range<usize> = 6..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the ICMP / ICMPv6 header (Linux's `struct icmphdr` and `struct icmp6hdr`).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// ICMPv4 message types the engine names: the errors, and the queries conntrack tracks.
/// The parser and the ICMP tracker both read them from here.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (error).
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (error).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect (error).
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem (error).
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// Timestamp request.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Information request.
    pub const INFO_REQUEST: u8 = 15;
    /// Information reply.
    pub const INFO_REPLY: u8 = 16;
    /// Address mask request.
    pub const ADDRESS_MASK_REQUEST: u8 = 17;
    /// Address mask reply.
    pub const ADDRESS_MASK_REPLY: u8 = 18;

    /// Whether `t` is an error message quoting a packet (Linux's `icmp_is_err`).
    #[inline]
    pub const fn is_error(t: u8) -> bool {
        matches!(
            t,
            DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }
}

/// ICMPv6 message types the engine names: the errors, redirect, and the queries conntrack
/// tracks. The parser and the ICMP tracker both read them from here.
pub mod v6 {
    /// Destination unreachable (error).
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big (error).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem (error).
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Redirect (neighbour discovery, `NDISC_REDIRECT`).
    pub const REDIRECT: u8 = 137;
    /// Node information query (RFC 4620).
    pub const NODE_INFO_QUERY: u8 = 139;
    /// Node information response.
    pub const NODE_INFO_RESPONSE: u8 = 140;

    /// Whether `t` is an error message (every type below 128, as conntrack decides).
    #[inline]
    pub const fn is_error(t: u8) -> bool {
        t < 128
    }
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wrap `buffer` (the whole IP payload) and run [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fewer than 8 bytes: `IcmpTruncated`.
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Reason::IcmpTruncated)
        } else {
            Ok(())
        }
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Bytes 4..6: the identifier of queries (conntrack reads it for every type).
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    /// Bytes 6..8: the sequence number of queries.
    #[inline]
    pub fn seq_number(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SEQ_NO])
    }

    /// Whether an ICMPv4 checksum verifies (over the whole buffer, no pseudo-header).
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }

    /// Whether an ICMPv6 checksum verifies (whole buffer plus the pseudo-header of `addrs`).
    #[inline]
    pub fn verify_checksum_v6(&self, addrs: &IpAddrs) -> bool {
        checksum::verify_with_pseudo_header(addrs, proto::ICMPV6, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> IcmpPacket<&'a T> {
    /// The bytes after the 8-byte header: for an error message, the quoted packet.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

/// The transport part of the packet an ICMP error quotes (the "inner" packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerTuple {
    /// The quoted packet's addresses, as the quoted packet had them.
    pub addrs: IpAddrs,
    /// The quoted packet's L4 protocol.
    pub proto: u8,
    /// Its ports (TCP, UDP, and other port-carrying protocols) or ICMP fields.
    pub l4: InnerL4,
}

/// L4 identity of a quoted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerL4 {
    /// TCP or UDP ports.
    Ports {
        /// Source port of the quoted packet.
        sport: u16,
        /// Destination port of the quoted packet.
        dport: u16,
    },
    /// A quoted ICMP / ICMPv6 message.
    Icmp {
        /// Type.
        type_: u8,
        /// Code.
        code: u8,
        /// Identifier (bytes 4..6 of the quoted ICMP header).
        id: u16,
    },
    /// A quoted GRE header: its PPTP call id, if it has one (see `gre::call_id`).
    Gre {
        /// Call id of a version 1 header carrying PPP.
        call_id: Option<u16>,
    },
    /// Any other protocol: identified by addresses and protocol only.
    None,
}

/// A checked ICMP or ICMPv6 message (the family tells which). Classification into queries,
/// errors and untracked messages is the tracker's job; the parser only reads the fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpMsg {
    /// Type.
    pub type_: u8,
    /// Code.
    pub code: u8,
    /// Identifier: bytes 4..6 of the header (meaningful for queries such as echo).
    pub id: u16,
    /// For error messages ([`v4::is_error`], [`v6::is_error`]): the quoted packet.
    /// `None` for non-error types.
    pub inner: Option<Result<InnerTuple, Reason>>,
}

/// The IP payload `l4` as an ICMP (`addrs.family` V4) or ICMPv6 (V6) message: its length
/// check, then (when `verify`) the checksum, then for an error type the quoted packet.
#[inline]
pub(super) fn parse<'a>(addrs: &IpAddrs, l4: impl Bytes<'a>, verify: bool) -> L4<'a> {
    let msg = match IcmpPacket::new_checked(l4.head()) {
        Ok(msg) => msg,
        Err(reason) => return L4::Malformed(reason),
    };
    let (sum_ok, is_error) = match addrs.family {
        Family::V4 => (
            !verify || checksum::verify_span(&l4),
            v4::is_error(msg.msg_type()),
        ),
        Family::V6 => (
            !verify || checksum::verify_span_with_pseudo_header(addrs, proto::ICMPV6, &l4),
            v6::is_error(msg.msg_type()),
        ),
    };
    if !sum_ok {
        return L4::Malformed(Reason::IcmpBadChecksum);
    }
    L4::Icmp(IcmpMsg {
        type_: msg.msg_type(),
        code: msg.msg_code(),
        id: msg.ident(),
        inner: is_error.then(|| parse_quoted(addrs.family, msg.payload())),
    })
}

/// ICMPv6 over IPv4 or ICMP over IPv6: conntrack reads the 8-byte header for the tuple, then
/// its ICMP tracker refuses the wrong family ("can't create new conn").
#[inline]
pub(super) fn parse_wrong_family(l4: &[u8]) -> L4<'static> {
    if l4.len() < HEADER_LEN {
        L4::Malformed(Reason::IcmpTruncated)
    } else {
        L4::Malformed(Reason::IcmpInvalidNew)
    }
}

/// Read the packet quoted by an ICMP (`family` V4) or ICMPv6 (V6) error message, as
/// conntrack does to find the flow it belongs to. `quoted` is the message after its 8-byte
/// header, up to the end of the outer IP payload. Errors are `IcmpBadInner`.
pub fn parse_quoted(family: Family, quoted: &[u8]) -> Result<InnerTuple, Reason> {
    let bad = Reason::IcmpBadInner;
    let (addrs, proto, l4) = match family {
        Family::V4 => {
            if quoted.len() < ipv4::HEADER_LEN {
                return Err(bad);
            }
            let ip = Ipv4Packet::new_unchecked(quoted);
            let hlen = ip.header_len();
            if ip.frag_offset() != 0 || hlen < ipv4::HEADER_LEN || hlen > quoted.len() {
                return Err(bad);
            }
            let addrs = IpAddrs {
                family,
                src: u128::from(ip.src_addr()),
                dst: u128::from(ip.dst_addr()),
            };
            (addrs, ip.protocol(), quoted.get(hlen..))
        }
        Family::V6 => {
            if quoted.len() < ipv6::HEADER_LEN {
                return Err(bad);
            }
            let ip = Ipv6Packet::new_unchecked(quoted);
            let addrs = IpAddrs {
                family,
                src: ip.src_addr(),
                dst: ip.dst_addr(),
            };
            let mut chain = ipv6::walk_ext_headers(quoted, ipv6::HEADER_LEN, ip.next_header())
                .map_err(|_| bad)?;
            // A first fragment is walked through, as Linux's `ipv6_skip_exthdr` does; each
            // round consumes at least one 8-byte header, so this ends.
            while let Some(frag) = chain.fragment {
                if frag.offset != 0 {
                    return Err(bad);
                }
                chain =
                    ipv6::walk_ext_headers(quoted, chain.offset, chain.proto).map_err(|_| bad)?;
            }
            (addrs, chain.proto, quoted.get(chain.offset..))
        }
    };
    let l4 = match proto {
        proto::TCP | proto::UDP => {
            let h = l4.and_then(|b| b.get(..4)).ok_or(bad)?;
            InnerL4::Ports {
                sport: be16(&h[..2]),
                dport: be16(&h[2..]),
            }
        }
        proto::ICMP | proto::ICMPV6 => {
            let h = l4.and_then(|b| b.get(..HEADER_LEN)).ok_or(bad)?;
            let icmp = IcmpPacket::new_unchecked(h);
            InnerL4::Icmp {
                type_: icmp.msg_type(),
                code: icmp.msg_code(),
                id: icmp.ident(),
            }
        }
        // Linux reads the quoted GRE header with `gre_pkt_to_tuple` too: a quoted PPTP
        // packet is keyed on its call id, and a version 1 header with another payload has no
        // tuple (the error is INVALID).
        proto::GRE => InnerL4::Gre {
            call_id: gre::call_id(l4.unwrap_or(&[])).ok_or(bad)?,
        },
        _ => InnerL4::None,
    };
    Ok(InnerTuple { addrs, proto, l4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port unreachable of traces/icmp_unsolicited_port_unreachable.pcapng (ICMP part),
    /// checksums from the capture.
    const PORT_UNREACH: [u8; 56] = [
        0x03, 0x03, // type 3 (unreachable), code 3 (port)
        0x14, 0x2e, // checksum
        0x00, 0x00, 0x00, 0x00, // unused
        // quoted IPv4 header
        0x45, 0x00, 0x00, 0x30, // version 4, IHL 5, total length 48 (only 28 quoted)
        0x42, 0x42, 0x00, 0x00, // identification, no fragmentation
        0x40, 0x11, 0x21, 0x78, // TTL 64, UDP, checksum
        0x0a, 0x00, 0x01, 0x02, // source 10.0.1.2
        0x0a, 0x00, 0x02, 0x02, // destination 10.0.2.2
        // quoted UDP header
        0xcf, 0x0c, 0x27, 0x0f, // ports 53004 -> 9999
        0x00, 0x1c, 0x84, 0x28, // length 28, checksum
        // the first bytes of the quoted payload
        0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71,
        0x71, 0x71, 0x71, 0x71, 0x71,
    ];

    const V4_INNER: IpAddrs = IpAddrs {
        family: Family::V4,
        src: 0x0a00_0102,
        dst: 0x0a00_0202,
    };

    #[test]
    fn captured_port_unreachable() {
        let m = IcmpPacket::new_checked(&PORT_UNREACH[..]).unwrap();
        assert_eq!((m.msg_type(), m.msg_code(), m.checksum()), (3, 3, 0x142e));
        assert_eq!((m.ident(), m.seq_number()), (0, 0));
        assert!(m.verify_checksum_v4());
        assert!(v4::is_error(m.msg_type()));
        assert_eq!(
            parse_quoted(Family::V4, m.payload()),
            Ok(InnerTuple {
                addrs: V4_INNER,
                proto: proto::UDP,
                l4: InnerL4::Ports {
                    sport: 53004,
                    dport: 9999
                }
            })
        );
    }

    #[test]
    fn error_types() {
        let v4_errors: Vec<u8> = (0..=255).filter(|&t| v4::is_error(t)).collect();
        assert_eq!(v4_errors, [3, 4, 5, 11, 12]);
        assert!(v6::is_error(1) && v6::is_error(127) && !v6::is_error(128));
    }

    #[test]
    fn truncated_header() {
        for n in 0..8 {
            assert_eq!(
                IcmpPacket::new_checked(&PORT_UNREACH[..n]).err(),
                Some(Reason::IcmpTruncated)
            );
        }
    }

    #[test]
    fn quoted_v4_every_prefix() {
        let quoted = &PORT_UNREACH[8..];
        for n in 0..quoted.len() {
            let r = parse_quoted(Family::V4, &quoted[..n]);
            // 20 bytes of IP header and 4 of ports are all Linux needs.
            assert_eq!(r.is_ok(), n >= 24, "length {n}: {r:?}");
        }
    }

    #[test]
    fn quoted_v4_rules() {
        let mut q = PORT_UNREACH[8..].to_vec();
        // A first fragment (MF set, offset 0) is fine; a later one is not.
        q[6] = 0x20;
        assert!(parse_quoted(Family::V4, &q).is_ok());
        q[6..8].copy_from_slice(&[0x00, 0x01]);
        assert_eq!(parse_quoted(Family::V4, &q), Err(Reason::IcmpBadInner));
        q[6..8].copy_from_slice(&[0, 0]);
        // Linux does not look at the version nibble of the quoted header.
        q[0] = 0x65;
        assert!(parse_quoted(Family::V4, &q).is_ok());
        // IHL below 5 or beyond the quote.
        q[0] = 0x44;
        assert_eq!(parse_quoted(Family::V4, &q), Err(Reason::IcmpBadInner));
        q[0] = 0x4f;
        assert_eq!(parse_quoted(Family::V4, &q), Err(Reason::IcmpBadInner)); // 60 > 48
        // IHL 15 exactly fits: the ports are then read after the 60-byte header.
        let mut long = q.clone();
        long.resize(64, 0);
        long[60..64].copy_from_slice(&[0, 7, 0, 9]);
        assert_eq!(
            parse_quoted(Family::V4, &long).map(|t| t.l4),
            Ok(InnerL4::Ports { sport: 7, dport: 9 })
        );
    }

    #[test]
    fn quoted_v4_icmp_and_other_protocols() {
        let mut q = PORT_UNREACH[8..36].to_vec();
        q[9] = proto::ICMP;
        // Quoted echo request: type 8, code 0, checksum, id 0xbeef, seq 1.
        q[20..28].copy_from_slice(&[8, 0, 0x12, 0x34, 0xbe, 0xef, 0, 1]);
        assert_eq!(
            parse_quoted(Family::V4, &q).map(|t| t.l4),
            Ok(InnerL4::Icmp {
                type_: 8,
                code: 0,
                id: 0xbeef
            })
        );
        assert_eq!(
            parse_quoted(Family::V4, &q[..27]),
            Err(Reason::IcmpBadInner)
        );
        // GRE: nothing after the IP header needed (no call id: a generic-like key).
        q[9] = 47;
        assert_eq!(
            parse_quoted(Family::V4, &q[..20]),
            Ok(InnerTuple {
                addrs: V4_INNER,
                proto: 47,
                l4: InnerL4::Gre { call_id: None }
            })
        );
    }

    /// An ICMPv6 destination unreachable quoting a TCP SYN from fd00:1::2 port 40000 to
    /// fd00:2::2 port 80, with a Destination Options header in between.
    fn v6_unreach() -> Vec<u8> {
        let mut m = vec![
            0x01, 0x04, // type 1 (unreachable), code 4 (port)
            0x00, 0x00, // checksum (not verified here)
            0x00, 0x00, 0x00, 0x00, // unused
            0x60, 0x00, 0x00, 0x00, // quoted IPv6: version 6
            0x00, 0x1c, 60, 64, // payload length 28, next header Destination Options, hops
        ];
        m.extend_from_slice(&0xfd00_0001_0000_0000_0000_0000_0000_0002u128.to_be_bytes());
        m.extend_from_slice(&0xfd00_0002_0000_0000_0000_0000_0000_0002u128.to_be_bytes());
        m.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // Destination Options: next TCP, PadN
        m.extend_from_slice(&[
            0x9c, 0x40, 0x00, 0x50, // ports 40000 -> 80
            0x00, 0x0f, 0x42, 0x40, // sequence (quoted bytes are cut here and there)
        ]);
        m
    }

    #[test]
    fn quoted_v6_with_extension_header() {
        let m = v6_unreach();
        let msg = IcmpPacket::new_checked(&m[..]).unwrap();
        assert!(v6::is_error(msg.msg_type()));
        let t = parse_quoted(Family::V6, msg.payload()).unwrap();
        assert_eq!({ t.addrs.src }, 0xfd00_0001_0000_0000_0000_0000_0000_0002);
        assert_eq!(t.proto, proto::TCP);
        assert_eq!(
            t.l4,
            InnerL4::Ports {
                sport: 40000,
                dport: 80
            }
        );
        // Every prefix: OK exactly once the 40 + 8 + 4 bytes are there.
        let q = msg.payload();
        for n in 0..q.len() {
            assert_eq!(
                parse_quoted(Family::V6, &q[..n]).is_ok(),
                n >= 52,
                "length {n}"
            );
        }
    }

    #[test]
    fn quoted_v6_fragments_and_no_next_header() {
        let mut m = v6_unreach();
        // Turn the Destination Options header into a first fragment: walked through.
        m[14] = 44;
        m[48..56].copy_from_slice(&[6, 0, 0x00, 0x01, 0, 0, 0, 1]);
        assert!(parse_quoted(Family::V6, &m[8..]).is_ok());
        // A later fragment: refused.
        m[50..52].copy_from_slice(&[0x00, 0x08]);
        assert_eq!(parse_quoted(Family::V6, &m[8..]), Err(Reason::IcmpBadInner));
        // No Next Header: refused.
        let mut m = v6_unreach();
        m[48] = 59;
        assert_eq!(parse_quoted(Family::V6, &m[8..]), Err(Reason::IcmpBadInner));
    }
}
