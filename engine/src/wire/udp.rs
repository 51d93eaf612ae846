//! UDP datagrams (RFC 768), checked as conntrack's `udp_error` checks them.
//!
//! The buffer is the whole IP payload. `udp_error` refuses a length field below 8 or above
//! the IP payload, and accepts one *shorter* than the IP payload without trimming anything:
//! the checksum is then still computed by `nf_checksum` over the whole IP payload, with the
//! IP payload length in the pseudo-header, which is what [`UdpPacket::verify_checksum`] does.
//! A zero checksum field means "no checksum" and is accepted for IPv4 *and* IPv6: Linux's
//! conntrack does not single out IPv6 (RFC 8200 forbids it, but that is enforced only by
//! the receiving host's UDP layer, not on the forwarding path).
//!
//! [`UdpPacket`] is a complete view, as smoltcp's are: the parser reads the ports, the length
//! and the checksum; [`UdpPacket::payload`] serves tests.
//!
//! `parse` turns the IP payload into a [`UdpDgram`] (the ports), or an `L4::Malformed`
//! reason.

use super::bytes::be16;
use super::{Bytes, IpAddrs, L4, checksum, proto};
use crate::counters::Reason;

/// A read-only view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 8 bytes and
    /// `payload` needs `check_len`.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wrap `buffer` (the whole IP payload) and run [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fewer than 8 bytes: `UdpTruncated`. Length field below 8 or above the buffer:
    /// `UdpBadLength`.
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        self.check_len_within(self.buffer.as_ref().len())
    }

    /// [`Self::check_len`] for an IP payload of `avail` bytes of which the buffer holds the
    /// first (a packet in several buffers, [`super::Span`]).
    #[inline]
    pub fn check_len_within(&self, avail: usize) -> Result<(), Reason> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Reason::UdpTruncated);
        }
        let field_len = usize::from(self.length());
        if field_len < HEADER_LEN || field_len > avail {
            return Err(Reason::UdpBadLength);
        }
        Ok(())
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length field (header included).
    #[inline]
    pub fn length(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum field (0: none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Whether the checksum is acceptable: absent (0), or verifying over the whole buffer
    /// with the pseudo-header of `addrs` and the buffer's length, as `nf_checksum` does.
    #[inline]
    pub fn verify_checksum(&self, addrs: &IpAddrs) -> bool {
        self.checksum() == 0
            || checksum::verify_with_pseudo_header(addrs, proto::UDP, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload as the length field delimits it. Needs `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }
}

/// A checked UDP datagram header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDgram {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The IP payload `l4` as a UDP datagram: its length checks, then (when `verify`) the
/// checksum with the pseudo-header of `addrs`.
#[inline]
pub(super) fn parse<'a>(addrs: &IpAddrs, l4: impl Bytes<'a>, verify: bool) -> L4<'a> {
    let udp = UdpPacket::new_unchecked(l4.head());
    if let Err(reason) = udp.check_len_within(l4.len()) {
        return L4::Malformed(reason);
    }
    if verify
        && udp.checksum() != 0
        && !checksum::verify_span_with_pseudo_header(addrs, proto::UDP, &l4)
    {
        return L4::Malformed(Reason::UdpBadChecksum);
    }
    L4::Udp(UdpDgram::of(&udp))
}

impl UdpDgram {
    /// The ports of a checked header.
    #[inline(always)]
    pub(super) fn of<T: AsRef<[u8]>>(udp: &UdpPacket<T>) -> UdpDgram {
        UdpDgram {
            sport: udp.src_port(),
            dport: udp.dst_port(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Family;

    /// The DNS-port query of traces/ipv6_udp_request_response.pcapng, checksum from the
    /// capture: fd00:1::2 port 53010 -> fd00:2::2 port 53, 30 bytes of 0x71.
    fn captured() -> (IpAddrs, Vec<u8>) {
        let addrs = IpAddrs {
            family: Family::V6,
            src: 0xfd00_0001_0000_0000_0000_0000_0000_0002,
            dst: 0xfd00_0002_0000_0000_0000_0000_0000_0002,
        };
        let mut d = vec![
            0xcf, 0x12, // source port 53010
            0x00, 0x35, // destination port 53
            0x00, 0x26, // length 38
            0x90, 0xac, // checksum
        ];
        d.extend_from_slice(&[0x71; 30]);
        (addrs, d)
    }

    #[test]
    fn captured_datagram() {
        let (addrs, d) = captured();
        let p = UdpPacket::new_checked(&d[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.length(), p.checksum()),
            (53010, 53, 38, 0x90ac)
        );
        assert_eq!(p.payload(), &[0x71; 30]);
        assert!(p.verify_checksum(&addrs));
    }

    #[test]
    fn bad_checksum_and_zero_checksum() {
        let (addrs, mut d) = captured();
        d[20] ^= 0xff;
        assert!(
            !UdpPacket::new_checked(&d[..])
                .unwrap()
                .verify_checksum(&addrs)
        );
        d[6..8].copy_from_slice(&[0, 0]);
        assert!(
            UdpPacket::new_checked(&d[..])
                .unwrap()
                .verify_checksum(&addrs)
        );
    }

    #[test]
    fn every_truncation() {
        let (_, d) = captured();
        for n in 0..d.len() {
            let want = if n < 8 {
                Reason::UdpTruncated
            } else {
                Reason::UdpBadLength
            };
            assert_eq!(
                UdpPacket::new_checked(&d[..n]).err(),
                Some(want),
                "length {n}"
            );
        }
    }

    #[test]
    fn impossible_length_fields() {
        let (_, mut d) = captured();
        for bad in [0u16, 3, 7, 39, 0xffff] {
            d[4..6].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&d[..]).err(),
                Some(Reason::UdpBadLength),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_length_field_is_tolerated_but_checksummed_over_everything() {
        let (addrs, mut d) = captured();
        d[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(p.payload().is_empty());
        // The sender's checksum covered 38 bytes with length 38; after the length field
        // changed, the sum over the IP payload no longer verifies (as in Linux).
        assert!(!p.verify_checksum(&addrs));
    }
}
