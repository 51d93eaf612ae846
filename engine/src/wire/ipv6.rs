//! IPv6 headers (RFC 8200) and their extension-header chain, checked the way Linux's
//! `ip6_rcv_core` and conntrack's `ipv6_skip_exthdr` see them.
//!
//! - [`Ipv6Packet::check_len`]: fixed header present, version 6, payload length within the
//!   buffer; a payload length of 0 with a Hop-by-Hop header (a jumbogram) is refused, as no
//!   frame this engine receives can carry one. Bytes beyond the payload length (padding) are
//!   ignored.
//! - [`Ipv6Packet::check_addrs`]: the address checks `ip6_rcv_core` makes before PRE_ROUTING
//!   (loopback source or destination, multicast source, multicast destination of scope 0 or
//!   1). Routing-table martian checks happen after conntrack in Linux and are not made here.
//! - [`check_hop_by_hop`]: `ipv6_parse_hopopts`, which `ip6_rcv_core` runs on a Hop-by-Hop
//!   header that directly follows the fixed header, before netfilter.
//! - [`walk_ext_headers`]: conntrack's `ipv6_skip_exthdr`, which walks Hop-by-Hop, Routing,
//!   Fragment, Authentication and Destination Options headers (only their length bytes:
//!   Linux does not process routing or destination options of a forwarded packet) and stops
//!   at the first other protocol. No Next Header (59) ends the walk with no transport header.
//!
//! The views are complete, as smoltcp's are: `new_checked`/`check_len`, the traffic class,
//! flow label and hop limit, and the Fragment header's identification serve tests and
//! debugging; the parser runs the checks above one by one and reads the rest.

use super::bytes::{be16, be32, be128};
use crate::counters::Reason;

/// A read-only view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;

    // Extension headers.
    pub const EXT_NXT_HDR: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const FRAG_OFF: Range<usize> = 2..4;
    pub const FRAG_IDENT: Range<usize> = 4..8;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Next Header values that are extension headers (and No Next Header).
pub mod next_header {
    /// Hop-by-Hop Options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing.
    pub const ROUTING: u8 = 43;
    /// Fragment.
    pub const FRAGMENT: u8 = 44;
    /// Authentication Header (its length is counted in 4-byte units).
    pub const AUTH: u8 = 51;
    /// No Next Header: nothing follows.
    pub const NO_NEXT: u8 = 59;
    /// Destination Options.
    pub const DEST_OPTS: u8 = 60;

    /// Whether `nh` is one of the headers `ipv6_skip_exthdr` walks over (Linux's
    /// `ipv6_ext_hdr`, less No Next Header, which ends the walk).
    #[inline]
    pub const fn is_ext(nh: u8) -> bool {
        matches!(nh, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTS)
    }
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 40 bytes and
    /// `payload` needs `check_len` to have passed.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap `buffer` and run [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fixed header present (`Ipv6Truncated`), version 6 (`Ipv6BadVersion`), payload within
    /// the buffer and not a jumbogram (`Ipv6BadPayloadLength`).
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        self.check_header()?;
        self.check_payload_len()
    }

    /// The first two checks of [`Self::check_len`].
    #[inline]
    pub fn check_header(&self) -> Result<(), Reason> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Reason::Ipv6Truncated);
        }
        if self.version() != 6 {
            return Err(Reason::Ipv6BadVersion);
        }
        Ok(())
    }

    /// The payload-length check of [`Self::check_len`]. Needs `check_header`.
    #[inline]
    pub fn check_payload_len(&self) -> Result<(), Reason> {
        self.check_payload_len_within(self.buffer.as_ref().len())
    }

    /// [`Self::check_payload_len`] for a packet of `avail` bytes of which the buffer holds the
    /// first (a packet in several buffers, [`super::Span`]).
    #[inline]
    pub fn check_payload_len_within(&self, avail: usize) -> Result<(), Reason> {
        let plen = usize::from(self.payload_len());
        // Linux treats 0 with a Hop-by-Hop header as a jumbogram announcement, which needs a
        // frame above 64 KiB; anything else with 0 is simply an empty payload.
        let jumbo = plen == 0 && self.next_header() == next_header::HOP_BY_HOP;
        if jumbo || HEADER_LEN + plen > avail {
            return Err(Reason::Ipv6BadPayloadLength);
        }
        Ok(())
    }

    /// The addresses `ip6_rcv_core` drops before netfilter: loopback source or destination,
    /// multicast source, multicast destination of scope 0 (reserved) or 1 (interface-local).
    #[inline]
    pub fn check_addrs(&self) -> Result<(), Reason> {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        let is_mcast = |a: u128| a >> 120 == 0xff;
        let mcast_scope = (dst >> 112) as u8 & 0x0f;
        if src == 1 || dst == 1 || is_mcast(src) || (is_mcast(dst) && mcast_scope <= 1) {
            return Err(Reason::Ipv6BadAddress);
        }
        Ok(())
    }

    /// Version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Next Header field of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address as a host-order integer.
    #[inline]
    pub fn src_addr(&self) -> u128 {
        be128(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address as a host-order integer.
    #[inline]
    pub fn dst_addr(&self) -> u128 {
        be128(&self.buffer.as_ref()[field::DST_ADDR])
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The payload (extension headers included), payload-length bytes. Needs `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

/// A read-only view of a Hop-by-Hop, Routing, Destination Options or Authentication header:
/// the Next Header and length bytes are all the walk needs.
#[derive(Debug, Clone, Copy)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 2 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }

    /// Wrap `buffer`, checking that the header's length bytes and `header_len(kind)` bytes are
    /// present (`Ipv6BadExtHeader` otherwise).
    #[inline]
    pub fn new_checked(buffer: T, kind: u8) -> Result<Self, Reason> {
        let len = buffer.as_ref().len();
        let h = Self::new_unchecked(buffer);
        if len < 2 || len < h.header_len(kind) {
            return Err(Reason::Ipv6BadExtHeader);
        }
        Ok(h)
    }

    /// The Next Header field.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NXT_HDR]
    }

    /// The length of this header in bytes, given the Next Header value that announced it:
    /// `(len + 2) * 4` for an Authentication Header, `(len + 1) * 8` for the others.
    #[inline]
    pub fn header_len(&self, kind: u8) -> usize {
        let len = usize::from(self.buffer.as_ref()[field::EXT_LEN]);
        if kind == next_header::AUTH {
            (len + 2) * 4
        } else {
            (len + 1) * 8
        }
    }
}

/// A read-only view of a Fragment header (8 bytes).
#[derive(Debug, Clone, Copy)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

/// Length of a Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = field::FRAG_IDENT.end;

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }

    /// Wrap `buffer`, checking that 8 bytes are present (`Ipv6BadExtHeader` otherwise).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        if buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(Reason::Ipv6BadExtHeader);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The Next Header field.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NXT_HDR]
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.off_field() & !0x7
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.off_field() & 1 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::FRAG_IDENT])
    }

    #[inline]
    fn off_field(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FRAG_OFF])
    }
}

/// Hop-by-Hop option types with their own checks in `ip6_parse_tlv`.
pub mod hbh_option {
    /// One byte of padding.
    pub const PAD1: u8 = 0;
    /// N bytes of padding.
    pub const PADN: u8 = 1;
    /// Router alert (RFC 2711).
    pub const ROUTER_ALERT: u8 = 5;
    /// CALIPSO (RFC 5570).
    pub const CALIPSO: u8 = 7;
    /// In-situ OAM (RFC 9486).
    pub const IOAM: u8 = 0x31;
    /// Jumbo payload (RFC 2675).
    pub const JUMBO: u8 = 0xc2;
}

/// Most non-padding options Linux accepts in a Hop-by-Hop header (`max_hbh_opts_cnt`, 8).
pub const MAX_HBH_OPTIONS: usize = 8;

/// Validate a Hop-by-Hop header that directly follows the fixed header, as
/// `ipv6_parse_hopopts` does before netfilter. `hbh` is the rest of the payload from the
/// header on; `Err(Ipv6BadExtHeader)` when Linux would drop the packet.
///
/// Refused: a header beyond the payload; a TLV running past the header; more than 7
/// consecutive padding bytes or non-zero PadN contents; more than 8 other options; a router
/// alert whose length is not 2; an IOAM option not 4-byte aligned; a Jumbo Payload option
/// (always wrong in a packet with a non-zero payload length); a CALIPSO option with
/// inconsistent lengths; an unknown option whose type's top two bits say "discard".
/// Accepted without further checks: CALIPSO contents (Linux checks them against configured
/// DOIs) and IOAM data (ignored while `ioam6_enabled` is 0, the default).
pub fn check_hop_by_hop(hbh: &[u8]) -> Result<(), Reason> {
    let bad = Err(Reason::Ipv6BadExtHeader);
    let Ok(h) = ExtHeader::new_checked(hbh, next_header::HOP_BY_HOP) else {
        return bad;
    };
    let tlvs = &hbh[2..h.header_len(next_header::HOP_BY_HOP)];
    let (mut off, mut padlen, mut count) = (0usize, 0usize, 0usize);
    while let Some(&kind) = tlvs.get(off) {
        if kind == hbh_option::PAD1 {
            padlen += 1;
            if padlen > 7 {
                return bad;
            }
            off += 1;
            continue;
        }
        let Some(&len_byte) = tlvs.get(off + 1) else {
            return bad;
        };
        let optlen = usize::from(len_byte) + 2;
        let Some(opt) = tlvs.get(off..off + optlen) else {
            return bad;
        };
        if kind == hbh_option::PADN {
            padlen += optlen;
            if padlen > 7 || opt[2..].iter().any(|&b| b != 0) {
                return bad;
            }
        } else {
            count += 1;
            if count > MAX_HBH_OPTIONS {
                return bad;
            }
            // Linux measures alignment from the start of the IPv6 header.
            let optoff = HEADER_LEN + 2 + off;
            let ok = match kind {
                hbh_option::ROUTER_ALERT => len_byte == 2,
                hbh_option::IOAM => optoff & 3 == 0,
                hbh_option::JUMBO => false,
                hbh_option::CALIPSO => len_byte >= 8 && usize::from(opt[6]) * 4 + 8 <= optlen - 2,
                // Unknown: the top two bits say skip (00) or discard (01, 10, 11).
                _ => kind >> 6 == 0,
            };
            if !ok {
                return bad;
            }
            padlen = 0;
        }
        off += optlen;
    }
    Ok(())
}

/// A Fragment header met by [`walk_ext_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The Fragment header's Next Header.
    pub next_header: u8,
    /// Fragment offset in bytes.
    pub offset: u16,
}

/// Where an extension-header walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    /// Offset of the first byte after the last header walked, from the start of the buffer
    /// given to the walk. It can lie beyond the buffer when the last header claims more bytes
    /// than there are (Linux's walk allows that; callers decide).
    pub offset: usize,
    /// The protocol found there (the last Next Header value).
    pub proto: u8,
    /// `Some` if the walk stopped just after a Fragment header (first or not).
    pub fragment: Option<Fragment>,
}

/// Why an extension-header walk found no transport header. Both callers treat every variant
/// alike (an invalid packet or quote); the distinction is for the tests and for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// No Next Header (59).
    NoNextHeader,
    /// An extension header starts beyond the bytes available (or its length bytes do).
    Truncated,
    /// More than [`MAX_EXT_HEADERS`] headers in one walk.
    TooMany,
}

/// Most extension headers one walk crosses. Linux has no limit (the packet length bounds it);
/// a bound keeps the per-packet cost flat. RFC 8200's recommended order has at most 7.
pub const MAX_EXT_HEADERS: usize = 16;

/// Walk extension headers in `buf` from `start`, where a header of kind `first` begins, the
/// way conntrack's `ipv6_skip_exthdr` does.
///
/// Stops at the first protocol that is not an extension header, or just after a Fragment
/// header (`fragment` is then `Some`; callers may continue from there for a first fragment).
/// Like Linux it only needs a header's first two bytes (four for a Fragment header) to be
/// present, so the returned offset may exceed `buf.len()`.
pub fn walk_ext_headers(buf: &[u8], start: usize, first: u8) -> Result<ExtChain, WalkError> {
    let (mut offset, mut proto) = (start, first);
    let mut count = 0;
    loop {
        if proto == next_header::NO_NEXT {
            return Err(WalkError::NoNextHeader);
        }
        if !next_header::is_ext(proto) {
            return Ok(ExtChain {
                offset,
                proto,
                fragment: None,
            });
        }
        if count == MAX_EXT_HEADERS {
            return Err(WalkError::TooMany);
        }
        count += 1;
        let rest = buf.get(offset..).ok_or(WalkError::Truncated)?;
        if proto == next_header::FRAGMENT {
            if rest.len() < field::FRAG_OFF.end {
                return Err(WalkError::Truncated);
            }
            let f = FragmentHeader::new_unchecked(rest);
            let fragment = Fragment {
                next_header: f.next_header(),
                offset: f.frag_offset(),
            };
            return Ok(ExtChain {
                offset: offset + FRAGMENT_HEADER_LEN,
                proto: fragment.next_header,
                fragment: Some(fragment),
            });
        }
        if rest.len() < 2 {
            return Err(WalkError::Truncated);
        }
        let h = ExtHeader::new_unchecked(rest);
        offset += h.header_len(proto);
        proto = h.next_header();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_0002;
    const DST: u128 = 0xfd00_0002_0000_0000_0000_0000_0000_0002;

    /// A fixed header (as in traces/ipv6_udp_request_response.pcapng) followed by `payload`.
    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
        ];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes()); // payload length
        p.push(next); // next header
        p.push(64); // hop limit
        p.extend_from_slice(&SRC.to_be_bytes()); // source fd00:1::2
        p.extend_from_slice(&DST.to_be_bytes()); // destination fd00:2::2
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn accessors() {
        let mut buf = packet(17, &[1, 2, 3, 4, 5, 6, 7, 8]);
        buf[1] = 0xa1; // traffic class 0x0a, flow label 0x1....
        buf[2..4].copy_from_slice(&[0x23, 0x45]);
        buf.extend_from_slice(&[0; 4]); // padding after the payload
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x0a);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr(), DST);
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p.check_addrs(), Ok(()));
    }

    #[test]
    fn every_truncation() {
        let buf = packet(17, &[0; 8]);
        for n in 0..buf.len() {
            let want = if n < 40 {
                Reason::Ipv6Truncated
            } else {
                Reason::Ipv6BadPayloadLength
            };
            assert_eq!(
                Ipv6Packet::new_checked(&buf[..n]).err(),
                Some(want),
                "length {n}"
            );
        }
    }

    #[test]
    fn bad_version_and_jumbogram() {
        let mut buf = packet(17, &[]);
        buf[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&buf[..]).err(),
            Some(Reason::Ipv6BadVersion)
        );
        // Payload length 0 is a plain empty payload, unless a Hop-by-Hop header follows.
        let buf = packet(59, &[]);
        assert!(Ipv6Packet::new_checked(&buf[..]).is_ok());
        let mut buf = packet(0, &[59, 0, 1, 4, 0, 0, 0, 0]);
        buf[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(
            Ipv6Packet::new_checked(&buf[..]).err(),
            Some(Reason::Ipv6BadPayloadLength)
        );
    }

    #[test]
    fn addresses_linux_drops_on_input() {
        let cases: &[(u128, u128, bool)] = &[
            (SRC, DST, true),
            (1, DST, false),                 // loopback source
            (SRC, 1, false),                 // loopback destination
            (0xff02 << 112 | 1, DST, false), // multicast source
            (SRC, 0xff01 << 112 | 1, false), // interface-local multicast
            (SRC, 0xff00 << 112 | 1, false), // reserved scope 0
            (SRC, 0xff02 << 112 | 1, true),  // link-local multicast is fine
            (0, DST, true),                  // unspecified source is fine
        ];
        for &(src, dst, ok) in cases {
            let mut buf = packet(17, &[]);
            buf[8..24].copy_from_slice(&src.to_be_bytes());
            buf[24..40].copy_from_slice(&dst.to_be_bytes());
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(p.check_addrs().is_ok(), ok, "{src:x} -> {dst:x}");
        }
    }

    #[test]
    fn fragment_header() {
        let f = [
            6, // next header TCP
            0, // reserved
            0x05, 0x41, // offset 168 * 8 = 1344, M = 1
            0xde, 0xad, 0xbe, 0xef, // identification
        ];
        let h = FragmentHeader::new_checked(&f[..]).unwrap();
        assert_eq!(h.next_header(), 6);
        assert_eq!(h.frag_offset(), 1344);
        assert!(h.more_frags());
        assert_eq!(h.ident(), 0xdead_beef);
        assert!(FragmentHeader::new_checked(&f[..7]).is_err());
    }

    /// Hop-by-Hop (8 bytes), Destination Options (16), Routing (24), then TCP.
    fn chain() -> Vec<u8> {
        let mut c = vec![
            60,
            0, // HBH: next = Destination Options, length 8
            hbh_option::PADN,
            4,
            0,
            0,
            0,
            0, // PadN of 6 bytes
        ];
        c.extend_from_slice(&[
            43, 1, // Destination Options: next = Routing, length 16
            0x1e, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // an unknown (skippable) option
        ]);
        c.extend_from_slice(&[
            6, 2, // Routing: next = TCP, length 24
            4, 0, // routing type 4 (segment routing), segments left 0
            0, 0, 0, 0, // last entry, flags, tag
        ]);
        c.extend_from_slice(&[0xaa; 16]); // one segment
        c
    }

    #[test]
    fn walk_over_hbh_dest_and_routing() {
        let c = chain();
        assert_eq!(
            walk_ext_headers(&c, 0, next_header::HOP_BY_HOP),
            Ok(ExtChain {
                offset: 48,
                proto: 6,
                fragment: None
            })
        );
        assert_eq!(check_hop_by_hop(&c), Ok(()));
    }

    #[test]
    fn walk_stops_at_upper_layer_immediately() {
        assert_eq!(
            walk_ext_headers(&[], 0, 6),
            Ok(ExtChain {
                offset: 0,
                proto: 6,
                fragment: None
            })
        );
    }

    #[test]
    fn walk_refuses_no_next_header_and_truncation() {
        let mut c = chain();
        c[24] = 59; // the routing header now says No Next Header
        assert_eq!(walk_ext_headers(&c, 0, 0), Err(WalkError::NoNextHeader));
        assert_eq!(walk_ext_headers(&[], 0, 59), Err(WalkError::NoNextHeader));
        // Cut inside the routing header's length bytes: cannot go on.
        assert_eq!(
            walk_ext_headers(&chain()[..25], 0, 0),
            Err(WalkError::Truncated)
        );
        // Cut after the routing header's length bytes: Linux's walk goes past the end.
        assert_eq!(
            walk_ext_headers(&chain()[..26], 0, 0),
            Ok(ExtChain {
                offset: 48,
                proto: 6,
                fragment: None
            })
        );
    }

    #[test]
    fn walk_is_bounded() {
        // 17 empty Destination Options headers in a row, the last followed by TCP.
        let mut c = Vec::new();
        for i in 0..17 {
            let next = if i == 16 { 6 } else { 60 };
            c.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(walk_ext_headers(&c, 0, 60), Err(WalkError::TooMany));
        assert_eq!(
            walk_ext_headers(&c[8..], 0, 60),
            Ok(ExtChain {
                offset: 128,
                proto: 6,
                fragment: None
            })
        );
    }

    #[test]
    fn walk_stops_after_fragment_header() {
        let c = [
            44, 0, 1, 4, 0, 0, 0, 0, // Destination Options: next = Fragment
            17, 0, 0x00, 0x01, 0, 0, 0, 9, // Fragment: next = UDP, offset 0, M = 1
            0, 53, 0, 53, 0, 8, 0, 0, // UDP
        ];
        let frag = Fragment {
            next_header: 17,
            offset: 0,
        };
        assert_eq!(
            walk_ext_headers(&c, 0, 60),
            Ok(ExtChain {
                offset: 16,
                proto: 17,
                fragment: Some(frag)
            })
        );
    }

    #[test]
    fn authentication_header_length_unit() {
        let ah = [
            6, 4, // next = TCP, payload length 4 -> (4 + 2) * 4 = 24 bytes
            0, 0, 0, 0, 0, 1, 0, 0, 0, 1, // reserved, SPI, sequence
        ];
        assert_eq!(
            walk_ext_headers(&ah, 0, 51),
            Ok(ExtChain {
                offset: 24,
                proto: 6,
                fragment: None
            })
        );
    }

    #[test]
    fn hop_by_hop_good_options() {
        let good: &[&[u8]] = &[
            &[6, 0, 1, 4, 0, 0, 0, 0],    // PadN 6
            &[6, 0, 0, 0, 0, 0, 0, 0],    // six Pad1
            &[6, 0, 5, 2, 0, 0, 1, 0],    // router alert (MLD), PadN 2
            &[6, 0, 0x1e, 4, 1, 2, 3, 4], // unknown, "skip" action
            &[6, 0, 1, 0, 0x31, 2, 0, 0], // IOAM at offset 44: aligned
        ];
        for h in good {
            assert_eq!(check_hop_by_hop(h), Ok(()), "{h:?}");
        }
        // Eight router alerts are the most Linux allows; nine are refused.
        let alerts = |n: usize| {
            let mut h = vec![6, 4]; // 40 bytes
            for _ in 0..n {
                h.extend_from_slice(&[5, 2, 0, 0]);
            }
            let pad = 40 - h.len();
            h.extend_from_slice(&[1, pad as u8 - 2]);
            h.resize(40, 0);
            h
        };
        assert_eq!(check_hop_by_hop(&alerts(8)), Ok(()));
        assert_eq!(check_hop_by_hop(&alerts(9)), Err(Reason::Ipv6BadExtHeader));
    }

    #[test]
    fn hop_by_hop_bad_options() {
        let bad: &[&[u8]] = &[
            &[6, 0, 1, 4, 0, 0, 0],    // header shorter than its length
            &[6, 1, 1, 4, 0, 0, 0, 0], // 16 announced, 8 present
            &[6, 0, 1, 5, 0, 0, 0, 0], // PadN runs past the header
            &[6, 0, 1, 4, 0, 0, 1, 0], // PadN with non-zero contents
            &[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0], // 8 Pad1 in a row
            &[6, 0, 5, 3, 0, 0, 0, 0], // router alert of length 3
            &[6, 0, 0x31, 4, 0, 0, 0, 0], // IOAM at offset 42: misaligned
            &[6, 0, 0xc2, 4, 0, 1, 0, 0], // Jumbo Payload
            &[6, 0, 7, 4, 0, 0, 0, 0], // CALIPSO shorter than 8
            &[6, 0, 0x5e, 4, 0, 0, 0, 0], // unknown, "discard"
            &[6, 0, 0x9e, 4, 0, 0, 0, 0], // unknown, "discard + ICMP"
            &[6, 0, 0xde, 4, 0, 0, 0, 0], // unknown, "discard + ICMP unless mcast"
            &[6, 0, 0, 0, 0, 0, 0, 0x1e], // TLV header cut by the end
        ];
        for h in bad {
            assert_eq!(check_hop_by_hop(h), Err(Reason::Ipv6BadExtHeader), "{h:?}");
        }
    }
}
