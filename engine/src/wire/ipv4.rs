//! IPv4 headers (RFC 791), checked the way Linux's `ip_rcv_core` checks them.
//!
//! [`Ipv4Packet::check_len`] runs Linux's input checks in Linux's order, minus the checksum,
//! which the caller verifies in between ([`Ipv4Packet::check_header`], then
//! [`Ipv4Packet::verify_checksum`], then [`Ipv4Packet::check_total_len`]) so that a packet
//! with several faults is blamed on the same one Linux counts. Once `check_len` has passed,
//! every accessor is in bounds, and [`Ipv4Packet::payload`] ends at the total length, so
//! Ethernet padding never reaches the transport layer.
//!
//! [`check_options`] is `__ip_options_compile` for a received packet plus the source-route
//! refusal of `ip_rcv_options` (`accept_source_route` is 0 by default for `all`). Linux runs
//! both after the PRE_ROUTING hook, so conntrack has already looked at such a packet; it is
//! dropped before being forwarded and its unconfirmed entry is never inserted. Refusing it
//! before tracking gives the same table and verdict, except that an existing entry is not
//! refreshed by the doomed packet.
//!
//! [`Ipv4Packet`] is a complete view, as smoltcp's are: `new_checked`/`check_len` and the
//! DSCP, ECN, identification, DF, TTL and checksum accessors serve tests and debugging; the
//! parser runs the three checks above in Linux's order and reads the rest.

use super::bytes::{be16, be32};
use crate::counters::Reason;

/// A read-only view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Flag and offset bits of the flags/fragment-offset field.
const FLAG_MF: u16 = 0x2000;
const FLAG_DF: u16 = 0x4000;
const OFFSET_MASK: u16 = 0x1fff;

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap `buffer` without checking it. Accessors of the fixed header panic if it is shorter
    /// than 20 bytes; `options`, `payload` and `verify_checksum` need `check_len` to have passed.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap `buffer` and run every structural check ([`Self::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Self::check_header`] then [`Self::check_total_len`].
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        self.check_header()?;
        self.check_total_len()
    }

    /// The checks before the checksum in `ip_rcv_core`: 20 bytes present (`Ipv4Truncated`),
    /// version 4 (`Ipv4BadVersion`), IHL at least 5 and the whole header present
    /// (`Ipv4BadIhl`). The header length is compared with the buffer, not the total length.
    #[inline]
    pub fn check_header(&self) -> Result<(), Reason> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Reason::Ipv4Truncated);
        }
        if self.version() != 4 {
            return Err(Reason::Ipv4BadVersion);
        }
        let hlen = self.header_len();
        if hlen < HEADER_LEN || hlen > len {
            return Err(Reason::Ipv4BadIhl);
        }
        Ok(())
    }

    /// The check after the checksum in `ip_rcv_core`: the total length neither exceeds the
    /// buffer nor is shorter than the header (`Ipv4BadTotalLength`). Bytes beyond the total
    /// length (link-layer padding) are allowed and ignored. Needs `check_header` first.
    #[inline]
    pub fn check_total_len(&self) -> Result<(), Reason> {
        self.check_total_len_within(self.buffer.as_ref().len())
    }

    /// [`Self::check_total_len`] for a packet of `avail` bytes of which the buffer holds the
    /// first (a packet in several buffers, [`super::Span`]).
    #[inline]
    pub fn check_total_len_within(&self, avail: usize) -> Result<(), Reason> {
        let total = usize::from(self.total_len());
        if total > avail || total < self.header_len() {
            return Err(Reason::Ipv4BadTotalLength);
        }
        Ok(())
    }

    /// Version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(&self.buffer.as_ref()[field::FLG_OFF]) & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (More Fragments set or a non-zero offset), Linux's
    /// `ip_is_fragment`.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol field.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address as a host-order integer.
    #[inline]
    pub fn src_addr(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address as a host-order integer.
    #[inline]
    pub fn dst_addr(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Whether the header checksum (over IHL * 4 bytes) verifies. Needs `check_header`.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        super::checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The option bytes (IHL * 4 - 20 of them). Needs `check_header`.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to the total length. Needs `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

/// IPv4 option types `check_options` looks at.
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation (padding).
    pub const NOOP: u8 = 1;
    /// Record route.
    pub const RR: u8 = 7;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 68;
    /// Loose source and record route.
    pub const LSRR: u8 = 131;
    /// Commercial IP security option.
    pub const CIPSO: u8 = 134;
    /// Strict source and record route.
    pub const SSRR: u8 = 137;
    /// Router alert.
    pub const RA: u8 = 148;
}

/// Timestamp option flag values (low nibble of the fourth byte).
const TS_TSANDADDR: u8 = 1;
const TS_PRESPEC: u8 = 3;

/// Validate IPv4 options as Linux does for a received packet (`__ip_options_compile` with an
/// skb, then the source-route refusal in `ip_rcv_options`). `Err(Ipv4BadOptions)` when Linux
/// would drop the packet.
///
/// Checked: every option's length (at least 2, within the header); record route and
/// timestamp pointers, lengths, duplicates and timestamp overflow; router alert length; a
/// second CIPSO option. Refused outright: loose and strict source routes (Linux's default
/// `accept_source_route=0` drops them). Not checked: CIPSO contents (`cipso_v4_validate`
/// depends on the configured DOIs, so anything structurally sound is accepted).
pub fn check_options(opts: &[u8]) -> Result<(), Reason> {
    let bad = Err(Reason::Ipv4BadOptions);
    let (mut seen_rr, mut seen_ts, mut seen_cipso) = (false, false, false);
    let mut rest = opts;
    while let [kind, tail @ ..] = rest {
        match *kind {
            option::END => return Ok(()),
            option::NOOP => {
                rest = tail;
                continue;
            }
            _ => {}
        }
        let Some(&optlen) = tail.first() else {
            return bad;
        };
        let optlen_usize = usize::from(optlen);
        if optlen < 2 || optlen_usize > rest.len() {
            return bad;
        }
        let opt = &rest[..optlen_usize];
        // `opt[2]` is the pointer of RR, TS and source routes; `opt[3]` the TS flags byte.
        let ptr = opt.get(2).copied();
        match *kind {
            option::LSRR | option::SSRR => return bad,
            option::RR => {
                if seen_rr || optlen < 3 {
                    return bad;
                }
                seen_rr = true;
                let ptr = ptr.unwrap_or(0);
                if ptr < 4 || (ptr <= optlen && u16::from(ptr) + 3 > u16::from(optlen)) {
                    return bad;
                }
            }
            option::TIMESTAMP => {
                if seen_ts || optlen < 4 {
                    return bad;
                }
                seen_ts = true;
                let ptr = ptr.unwrap_or(0);
                let flags = opt.get(3).copied().unwrap_or(0);
                if ptr < 5 {
                    return bad;
                }
                let (ptr16, len16) = (u16::from(ptr), u16::from(optlen));
                if ptr <= optlen {
                    if ptr16 + 3 > len16 {
                        return bad;
                    }
                    let needs_addr = matches!(flags & 0x0f, TS_TSANDADDR | TS_PRESPEC);
                    if needs_addr && ptr16 + 7 > len16 {
                        return bad;
                    }
                } else if flags & 0x0f != TS_PRESPEC && flags >> 4 == 15 {
                    // Full option whose overflow counter would wrap.
                    return bad;
                }
            }
            option::RA if optlen < 4 => return bad,
            option::CIPSO => {
                if seen_cipso {
                    return bad;
                }
                seen_cipso = true;
            }
            _ => {}
        }
        rest = &rest[optlen_usize..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured IPv4 header (traces/tcp_bad_checksum.pcapng, packet 1) plus 32 bytes of TCP
    /// and 6 bytes of Ethernet padding; the checksum 0x13bf is the capture's own.
    fn captured() -> Vec<u8> {
        let mut p = vec![
            0x45, // version 4, IHL 5
            0x00, // DSCP 0, ECN 0
            0x00, 0x34, // total length 52
            0x10, 0x02, // identification
            0x40, 0x00, // DF, offset 0
            0x40, // TTL 64
            0x06, // protocol TCP
            0x13, 0xbf, // header checksum
            0x0a, 0x00, 0x01, 0x02, // source 10.0.1.2
            0x0a, 0x00, 0x02, 0x02, // destination 10.0.2.2
        ];
        p.extend_from_slice(&[0x11; 32]); // transport bytes
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        p
    }

    #[test]
    fn accessors_on_captured_header() {
        let buf = captured();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 52);
        assert_eq!(p.ident(), 0x1002);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 6);
        assert_eq!(p.checksum(), 0x13bf);
        assert_eq!(p.src_addr(), 0x0a00_0102);
        assert_eq!(p.dst_addr(), 0x0a00_0202);
        assert!(p.verify_checksum());
        assert!(p.options().is_empty());
        // The payload stops at the total length: the padding is not in it.
        assert_eq!(p.payload(), &[0x11; 32]);
    }

    #[test]
    fn every_truncation_is_refused() {
        let buf = captured();
        for n in 0..52 {
            let want = if n < 20 {
                Reason::Ipv4Truncated
            } else {
                Reason::Ipv4BadTotalLength
            };
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..n]).err(),
                Some(want),
                "length {n}"
            );
        }
        for n in 52..=buf.len() {
            assert!(Ipv4Packet::new_checked(&buf[..n]).is_ok());
        }
    }

    #[test]
    fn bad_version() {
        let mut buf = captured();
        buf[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).err(),
            Some(Reason::Ipv4BadVersion)
        );
    }

    #[test]
    fn ihl_below_five_and_beyond_data() {
        let mut buf = captured();
        for ihl in 0..5 {
            buf[0] = 0x40 | ihl;
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..]).err(),
                Some(Reason::Ipv4BadIhl)
            );
        }
        // IHL 15 = 60 bytes of header in a 40-byte packet.
        buf[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..40]).err(),
            Some(Reason::Ipv4BadIhl)
        );
        // IHL 15 with enough bytes, but the total length (52) is shorter than the header.
        buf.resize(64, 0);
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).err(),
            Some(Reason::Ipv4BadTotalLength)
        );
    }

    #[test]
    fn total_length_beyond_frame_or_below_header() {
        let mut buf = captured();
        buf[2..4].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).err(),
            Some(Reason::Ipv4BadTotalLength)
        );
        buf[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).err(),
            Some(Reason::Ipv4BadTotalLength)
        );
        // Exactly the header: an empty payload.
        buf[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap().payload(),
            &[] as &[u8]
        );
    }

    #[test]
    fn fragment_fields() {
        let mut buf = captured();
        buf[6..8].copy_from_slice(&[0x20, 0x00]); // MF, offset 0: first fragment
        let p = Ipv4Packet::new_unchecked(&buf[..]);
        assert!(p.more_frags() && p.is_fragment() && p.frag_offset() == 0);
        buf[6..8].copy_from_slice(&[0x00, 0xb9]); // last fragment at 185 * 8
        let p = Ipv4Packet::new_unchecked(&buf[..]);
        assert!(!p.more_frags() && p.is_fragment() && p.frag_offset() == 1480);
    }

    #[test]
    fn checksum_detects_a_flipped_bit() {
        let mut buf = captured();
        buf[8] ^= 0x01;
        assert!(!Ipv4Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn options_region() {
        let mut buf = captured();
        buf[0] = 0x46; // IHL 6: four option bytes
        buf[20..24].copy_from_slice(&[option::NOOP, option::NOOP, option::NOOP, option::END]);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(check_options(p.options()), Ok(()));
        assert_eq!(p.payload().len(), 28);
    }

    #[test]
    fn good_options() {
        let good: &[&[u8]] = &[
            &[],
            &[option::END, 0xff, 0xff, 0xff], // bytes after END are ignored
            &[option::NOOP; 4],
            &[option::RA, 4, 0, 0],
            // Record route with room for one address, pointer at the first slot.
            &[option::RR, 7, 4, 0, 0, 0, 0, option::END],
            // Full record route (pointer past the end).
            &[option::RR, 7, 8, 1, 2, 3, 4, option::END],
            // Timestamp, timestamps only, one slot free.
            &[option::TIMESTAMP, 8, 5, 0x00, 0, 0, 0, 0],
            // Timestamp with addresses, room for one pair.
            &[option::TIMESTAMP, 12, 5, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
            // Full timestamp option, overflow counter 14.
            &[option::TIMESTAMP, 8, 9, 0xe0, 0, 0, 0, 1],
            // Unknown option type with a sane length.
            &[0x99, 4, 0, 0],
            &[option::CIPSO, 6, 0, 0, 0, 1, option::NOOP, option::END],
        ];
        for o in good {
            assert_eq!(check_options(o), Ok(()), "{o:?}");
        }
    }

    #[test]
    fn bad_options() {
        let bad: &[&[u8]] = &[
            &[0x99],                               // no length byte
            &[0x99, 1, 0, 0],                      // length below 2
            &[0x99, 5, 0, 0],                      // length beyond the header
            &[option::LSRR, 7, 4, 10, 0, 0, 1, 0], // source route: refused by default
            &[option::SSRR, 7, 4, 10, 0, 0, 1, 0],
            &[option::RR, 2, 0, 0],                       // RR shorter than 3
            &[option::RR, 7, 3, 0, 0, 0, 0, 0],           // RR pointer below 4
            &[option::RR, 6, 4, 0, 0, 0, 0, 0],           // RR slot not whole
            &[option::RR, 3, 4, option::RR, 3, 4, 0, 0],  // two RR options
            &[option::TIMESTAMP, 3, 5, 0],                // TS shorter than 4
            &[option::TIMESTAMP, 8, 4, 0, 0, 0, 0, 0],    // TS pointer below 5
            &[option::TIMESTAMP, 7, 5, 0, 0, 0, 0, 0],    // TS slot not whole
            &[option::TIMESTAMP, 8, 5, 0x01, 0, 0, 0, 0], // TS+addr needs 8 bytes
            &[option::TIMESTAMP, 8, 9, 0xf0, 0, 0, 0, 1], // full, overflow would wrap
            &[option::TIMESTAMP, 4, 5, 0, option::TIMESTAMP, 4, 5, 0], // two TS
            &[option::RA, 2, 0, 0],                       // RA shorter than 4
            &[option::CIPSO, 2, option::CIPSO, 2],        // two CIPSO
        ];
        for o in bad {
            assert_eq!(check_options(o), Err(Reason::Ipv4BadOptions), "{o:?}");
        }
    }

    #[test]
    fn options_never_panic_on_any_prefix() {
        let opts = [option::TIMESTAMP, 12, 5, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        for n in 0..opts.len() {
            let _ = check_options(&opts[..n]);
        }
    }
}
