//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.
//!
//! [`EthernetFrame`] is the 14-byte MAC header; [`VlanTag`] the 4 bytes (TCI, inner EtherType)
//! that follow a TPID of 0x8100, 0x88a8 or the pre-standard 0x9100. [`network_layer`] strips
//! the MAC header and up to [`MAX_VLAN_TAGS`] tags and hands back the EtherType and bytes of
//! the network layer. Frame check sequences are not expected: NICs and pcap captures strip
//! them. Trailing padding (frames shorter than 60 bytes are padded) is left in the payload;
//! the IP layer trims it with its own length field.
//!
//! The views are complete, as smoltcp's are: the MAC addresses and the VLAN TCI fields are
//! read only by the tests and by whoever debugs a frame; the parser needs the EtherTypes.

use super::bytes::be16;
use crate::counters::Reason;

/// EtherType values the parser knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag still sent by some switches.
    pub const QINQ_LEGACY: u16 = 0x9100;

    /// Whether `t` introduces a VLAN tag.
    #[inline]
    pub const fn is_vlan(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_LEGACY)
    }
}

/// How many stacked VLAN tags [`network_layer`] strips; a third tag is refused
/// (`VlanTooManyTags`).
pub const MAX_VLAN_TAGS: usize = 2;

/// A read-only view of an Ethernet II header and its payload.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;

    pub const VLAN_TCI: Range<usize> = 0..2;
    pub const VLAN_ETHERTYPE: Range<usize> = 2..4;
    pub const VLAN_PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 14 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wrap `buffer`, checking that it holds a whole Ethernet header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(EthTruncated)` if the buffer is shorter than the header.
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Reason::EthTruncated)
        } else {
            Ok(())
        }
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::DST])
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::SRC])
    }

    /// The EtherType (or TPID, if a VLAN tag follows).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ETHERTYPE])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The bytes after the MAC header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

/// A read-only view of a 4-byte VLAN tag body (TCI and the next EtherType) and what follows.
/// The TPID that announced it is the previous header's EtherType.
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

/// Length of a VLAN tag body.
pub const VLAN_TAG_LEN: usize = field::VLAN_PAYLOAD.start;

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wrap `buffer` without checking it; accessors panic if it is shorter than 4 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wrap `buffer`, checking that it holds a whole tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// `Err(VlanTruncated)` if the buffer is shorter than a tag.
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(Reason::VlanTruncated)
        } else {
            Ok(())
        }
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (be16(&self.buffer.as_ref()[field::VLAN_TCI]) >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        be16(&self.buffer.as_ref()[field::VLAN_TCI]) & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::VLAN_TCI]) & 0x0fff
    }

    /// The EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::VLAN_ETHERTYPE])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanTag<&'a T> {
    /// The bytes after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::VLAN_PAYLOAD]
    }
}

/// Strip the Ethernet header and up to [`MAX_VLAN_TAGS`] VLAN tags from `frame`.
///
/// Returns the innermost EtherType and the bytes after it. Errors: `EthTruncated` for a frame
/// shorter than 14 bytes; `VlanTruncated` for a tag cut short; `VlanTooManyTags` for a third
/// stacked tag. Any
/// EtherType is returned as is: deciding that it is not IP is the caller's business.
#[inline]
pub fn network_layer(frame: &[u8]) -> Result<(u16, &[u8]), Reason> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();
    let mut tags = 0;
    while ethertype::is_vlan(ethertype) {
        if tags == MAX_VLAN_TAGS {
            return Err(Reason::VlanTooManyTags);
        }
        let tag = VlanTag::new_checked(rest)?;
        ethertype = tag.ethertype();
        rest = tag.payload();
        tags += 1;
    }
    Ok((ethertype, rest))
}

#[inline]
fn mac(b: &[u8]) -> [u8; 6] {
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An untagged frame carrying 4 bytes of "IPv4".
    const UNTAGGED: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x01, 0x02, // source MAC
        0x08, 0x00, // EtherType IPv4
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    /// 802.1ad outer tag (VID 100) then 802.1Q inner tag (VID 200, PCP 5) then IPv6.
    const DOUBLE: [u8; 24] = [
        0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x01, 0x02, // source MAC
        0x88, 0xa8, // TPID 802.1ad
        0x00, 0x64, // TCI: PCP 0, DEI 0, VID 100
        0x81, 0x00, // TPID 802.1Q
        0xa0, 0xc8, // TCI: PCP 5, DEI 0, VID 200
        0x86, 0xdd, // EtherType IPv6
        0x60, 0x00, // payload
    ];

    #[test]
    fn untagged_frame() {
        let eth = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(eth.dst_addr(), [2, 0, 0, 0, 1, 1]);
        assert_eq!(eth.src_addr(), [2, 0, 0, 0, 1, 2]);
        assert_eq!(eth.ethertype(), ethertype::IPV4);
        assert_eq!(eth.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            network_layer(&UNTAGGED),
            Ok((ethertype::IPV4, &UNTAGGED[14..]))
        );
    }

    #[test]
    fn single_tag() {
        let mut f = UNTAGGED.to_vec();
        // Insert TPID 0x8100, TCI VID 7 before the IPv4 EtherType.
        f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        let tag = VlanTag::new_checked(&f[14..]).unwrap();
        assert_eq!((tag.vid(), tag.pcp(), tag.dei()), (7, 0, false));
        assert_eq!(network_layer(&f), Ok((ethertype::IPV4, &f[18..])));
    }

    #[test]
    fn double_tag() {
        let tag = VlanTag::new_checked(&DOUBLE[18..]).unwrap();
        assert_eq!((tag.vid(), tag.pcp()), (200, 5));
        assert_eq!(network_layer(&DOUBLE), Ok((ethertype::IPV6, &DOUBLE[22..])));
    }

    #[test]
    fn legacy_qinq_tpid() {
        let mut f = DOUBLE;
        f[12..14].copy_from_slice(&[0x91, 0x00]);
        assert_eq!(network_layer(&f), Ok((ethertype::IPV6, &f[22..])));
    }

    #[test]
    fn third_tag_is_refused() {
        let mut f = DOUBLE.to_vec();
        f.splice(20..20, [0x81, 0x00, 0x00, 0x09]);
        assert_eq!(network_layer(&f), Err(Reason::VlanTooManyTags));
    }

    #[test]
    fn every_truncation() {
        for n in 0..DOUBLE.len() {
            let want = match n {
                0..14 => Err(Reason::EthTruncated),
                14..22 => Err(Reason::VlanTruncated),
                _ => Ok((ethertype::IPV6, &DOUBLE[22..n])),
            };
            assert_eq!(network_layer(&DOUBLE[..n]), want, "length {n}");
        }
    }

    #[test]
    fn non_ip_ethertype_is_returned() {
        let mut f = UNTAGGED;
        f[12..14].copy_from_slice(&[0x08, 0x06]); // ARP
        assert_eq!(network_layer(&f).map(|(t, _)| t), Ok(0x0806));
    }
}
