//! TCP segments (RFC 9293) and their options.
//!
//! [`TcpPacket::check_len`] makes conntrack's `tcp_error` length checks on a segment whose
//! buffer is exactly the IP payload: a 20-byte header present, a data offset of at least 5
//! words, and a header that fits. Flag combinations are not judged here (the tracker does
//! that with Linux's `tcp_valid_flags` table).
//!
//! [`TcpOptions`] walks the option bytes as Linux's `tcp_options` and `tcp_sack` do: it skips
//! NOPs, stops at End of Option List, and stops (rather than guessing) at a length byte below
//! 2 or one running past the end. A known option with the wrong length is returned as
//! [`TcpOption::Unknown`], so, like Linux, a malformed window scale is simply not seen.
//!
//! [`TcpPacket`] is a complete view, as smoltcp's are: the checksum field and the urgent
//! pointer are read only by tests (the checksum is verified over the whole segment).
//!
//! `parse` turns the IP payload into a [`TcpSeg`], the fields the tracker and the rules
//! read, or an `L4::Malformed` reason.

use super::bytes::{be16, be32};
use super::{Bytes, IpAddrs, L4, checksum, proto};
use crate::counters::Reason;

/// A read-only view of a TCP segment: header, options and payload.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap `buffer` without checking it; fixed-header accessors panic if it is shorter than
    /// 20 bytes, `options` and `payload` need `check_len`.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wrap `buffer` (the whole IP payload) and run [`Self::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Reason> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fewer than 20 bytes: `TcpTruncated`. Data offset below 5: `TcpBadDataOffset`. Data
    /// offset beyond the segment: `TcpTruncated`.
    #[inline]
    pub fn check_len(&self) -> Result<(), Reason> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Reason::TcpTruncated);
        }
        let hlen = self.header_len();
        if hlen < HEADER_LEN {
            return Err(Reason::TcpBadDataOffset);
        }
        if hlen > len {
            return Err(Reason::TcpTruncated);
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// Acknowledgment number (present whatever the ACK flag says).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flag byte (CWR ... FIN); the reserved bits and the historic NS bit are not in it.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Raw (unscaled) window.
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// Whether the checksum verifies over the whole buffer with the pseudo-header of `addrs`
    /// (length = buffer length, as Linux's `nf_checksum` uses the IP payload length).
    #[inline]
    pub fn verify_checksum(&self, addrs: &IpAddrs) -> bool {
        checksum::verify_with_pseudo_header(addrs, proto::TCP, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The option bytes (`header_len - 20` of them). Needs `check_len`.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload after the header. Needs `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// TCP flag bits as in byte 13 of the TCP header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// SYN is set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// ACK is set.
    #[inline]
    pub const fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// FIN is set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// RST is set.
    #[inline]
    pub const fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
}

/// TCP option kinds.
pub mod option {
    /// End of Option List.
    pub const END: u8 = 0;
    /// No-Operation.
    pub const NOP: u8 = 1;
    /// Maximum Segment Size.
    pub const MSS: u8 = 2;
    /// Window Scale.
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK Permitted.
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TIMESTAMPS: u8 = 8;
}

/// One TCP option. Known kinds appear under their own variant only with their exact length
/// (SACK: 2 + 8n bytes, n >= 1); anything else is [`TcpOption::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Maximum segment size.
    Mss(u16),
    /// Window scale shift count, as sent (Linux clamps it to 14 when using it).
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// SACK blocks.
    Sack(SackBlocks<'a>),
    /// Timestamps.
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other option, or a known kind with the wrong length.
    Unknown {
        /// Option kind.
        kind: u8,
        /// The bytes after the kind and length bytes.
        data: &'a [u8],
    },
}

/// Iterator over the options in a TCP header's option bytes. Never panics; ends at End of
/// Option List, at the end of the bytes, or at a malformed length.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterate over `options` (e.g. [`TcpPacket::options`] or [`TcpSeg::options`]).
    #[inline]
    pub const fn new(options: &'a [u8]) -> Self {
        TcpOptions { rest: options }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        loop {
            let (&kind, tail) = self.rest.split_first()?;
            match kind {
                option::END => {
                    self.rest = &[];
                    return None;
                }
                option::NOP => {
                    self.rest = tail;
                    continue;
                }
                _ => {}
            }
            // Linux: a length below 2 is a "silly option", one past the end a partial one; both
            // end the parse.
            let len = tail.first().map_or(0, |&l| usize::from(l));
            let Some(opt) = self.rest.get(..len).filter(|_| len >= 2) else {
                self.rest = &[];
                return None;
            };
            self.rest = &self.rest[len..];
            let data = &opt[2..];
            return Some(match (kind, data.len()) {
                (option::MSS, 2) => TcpOption::Mss(be16(data)),
                (option::WINDOW_SCALE, 1) => TcpOption::WindowScale(data[0]),
                (option::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
                (option::SACK, n) if n >= 8 && n % 8 == 0 => {
                    TcpOption::Sack(SackBlocks { rest: data })
                }
                (option::TIMESTAMPS, 8) => TcpOption::Timestamps {
                    tsval: be32(&data[..4]),
                    tsecr: be32(&data[4..]),
                },
                _ => TcpOption::Unknown { kind, data },
            });
        }
    }
}

/// Iterator over the `(left edge, right edge)` pairs of a SACK option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SackBlocks<'a> {
    rest: &'a [u8],
}

impl Iterator for SackBlocks<'_> {
    type Item = (u32, u32);

    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        let block = self.rest.get(..8)?;
        self.rest = &self.rest[8..];
        Some((be32(&block[..4]), be32(&block[4..])))
    }
}

/// A checked TCP segment: what the tracker and the rules need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSeg<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (whatever the ACK flag says).
    pub ack: u32,
    /// Flag byte.
    pub flags: TcpFlags,
    /// Raw (unscaled) window.
    pub window: u16,
    /// Payload length in bytes: the IP payload length minus the TCP header (`doff * 4`).
    pub payload_len: u32,
    /// The option bytes (`doff * 4 - 20` bytes), unparsed: the tracker reads only what it needs.
    pub options: &'a [u8],
}

/// The IP payload `l4` as a TCP segment: its length checks (the header must lie in the
/// span's head), then (when `verify`) the checksum over the whole segment with the
/// pseudo-header of `addrs`.
#[inline]
pub(super) fn parse<'a>(addrs: &IpAddrs, l4: impl Bytes<'a>, verify: bool) -> L4<'a> {
    let tcp = match TcpPacket::new_checked(l4.head()) {
        Ok(tcp) => tcp,
        Err(reason) => return L4::Malformed(reason),
    };
    if verify && !checksum::verify_span_with_pseudo_header(addrs, proto::TCP, &l4) {
        return L4::Malformed(Reason::TcpBadChecksum);
    }
    L4::Tcp(TcpSeg::of(&tcp, l4.len()))
}

impl<'a> TcpSeg<'a> {
    /// The segment a checked header describes, in an IP payload of `len` bytes.
    #[inline(always)]
    pub(super) fn of(tcp: &TcpPacket<&'a [u8]>, len: usize) -> TcpSeg<'a> {
        TcpSeg {
            sport: tcp.src_port(),
            dport: tcp.dst_port(),
            seq: tcp.seq_number(),
            ack: tcp.ack_number(),
            flags: tcp.flags(),
            window: tcp.window_len(),
            // At most 65535 - 20: the IP length fields are 16-bit.
            payload_len: (len - tcp.header_len()) as u32,
            options: tcp.options(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Family;

    const ADDRS: IpAddrs = IpAddrs {
        family: Family::V4,
        src: 0x0a00_0102,
        dst: 0x0a00_0202,
    };

    /// The SYN of traces/tcp_bad_checksum.pcapng packet 1, checksum from the capture.
    const SYN: [u8; 32] = [
        0x9c, 0x9a, // source port 40090
        0x00, 0x50, // destination port 80
        0x00, 0x0f, 0x42, 0x40, // sequence 1000000
        0x00, 0x00, 0x00, 0x00, // acknowledgment 0
        0x80, // data offset 8 (32 bytes)
        0x02, // flags SYN
        0xfa, 0xf0, // window 64240
        0x7d, 0xe3, // checksum
        0x00, 0x00, // urgent pointer
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
        0x04, 0x02, // SACK permitted
        0x01, 0x01, // NOP NOP
    ];

    #[test]
    fn captured_syn() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40090);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1_000_000);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), TcpFlags(TcpFlags::SYN));
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0x7de3);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(&ADDRS));
        let opts: Vec<_> = TcpOptions::new(p.options()).collect();
        assert_eq!(
            opts,
            [
                TcpOption::Mss(1460),
                TcpOption::WindowScale(7),
                TcpOption::SackPermitted
            ]
        );
    }

    #[test]
    fn checksum_covers_payload_and_pseudo_header() {
        let mut seg = SYN.to_vec();
        seg.push(0);
        // A trailing zero byte changes the pseudo-header length only: no longer verifies.
        assert!(
            !TcpPacket::new_checked(&seg[..])
                .unwrap()
                .verify_checksum(&ADDRS)
        );
        let other = IpAddrs {
            src: 0x0a00_0103,
            ..ADDRS
        };
        assert!(
            !TcpPacket::new_checked(&SYN[..])
                .unwrap()
                .verify_checksum(&other)
        );
    }

    #[test]
    fn every_truncation() {
        for n in 0..SYN.len() {
            assert_eq!(
                TcpPacket::new_checked(&SYN[..n]).err(),
                Some(Reason::TcpTruncated)
            );
        }
    }

    #[test]
    fn impossible_data_offsets() {
        let mut seg = SYN;
        for doff in 0..5 {
            seg[12] = doff << 4;
            assert_eq!(
                TcpPacket::new_checked(&seg[..]).err(),
                Some(Reason::TcpBadDataOffset)
            );
        }
        seg[12] = 0xf0; // 60 bytes of header in 32
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).err(),
            Some(Reason::TcpTruncated)
        );
        seg[12] = 0x50; // plain header: options become payload
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 12);
    }

    #[test]
    fn sack_and_timestamps() {
        let opts = [
            0x01, 0x01, // NOP NOP
            0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2, // timestamps 1, 2
            0x01, 0x01, // NOP NOP
            0x05, 0x12, // SACK, two blocks
            0, 0, 0, 10, 0, 0, 0, 20, // block 10..20
            0, 0, 0, 30, 0xff, 0xff, 0xff, 0xff, // block 30..u32::MAX
        ];
        let got: Vec<_> = TcpOptions::new(&opts).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], TcpOption::Timestamps { tsval: 1, tsecr: 2 });
        let TcpOption::Sack(blocks) = got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(blocks.collect::<Vec<_>>(), [(10, 20), (30, u32::MAX)]);
    }

    #[test]
    fn wrong_lengths_and_unknown_kinds() {
        let opts = [
            0x03, 0x04, 7, 0, // window scale with length 4: not a window scale
            0x05, 0x06, 0, 0, 0, 1, // SACK without a whole block
            0x1e, 0x03, 9, // unknown kind 30
            0x02, 0x04, 0x05, 0xdc, // MSS 1500
        ];
        let got: Vec<_> = TcpOptions::new(&opts).collect();
        assert_eq!(
            got,
            [
                TcpOption::Unknown {
                    kind: 3,
                    data: &[7, 0]
                },
                TcpOption::Unknown {
                    kind: 5,
                    data: &[0, 0, 0, 1]
                },
                TcpOption::Unknown {
                    kind: 30,
                    data: &[9]
                },
                TcpOption::Mss(1500),
            ]
        );
    }

    #[test]
    fn parse_stops_like_linux() {
        // End of Option List: anything after it is ignored.
        assert_eq!(TcpOptions::new(&[0, 2, 4, 5, 0xb4]).count(), 0);
        // Length below 2 ("silly option") ends the parse.
        assert_eq!(TcpOptions::new(&[0x1e, 1, 2, 4, 5, 0xb4]).count(), 0);
        assert_eq!(TcpOptions::new(&[0x1e, 0, 2, 4, 5, 0xb4]).count(), 0);
        // A length past the end ("partial option") ends the parse.
        assert_eq!(
            TcpOptions::new(&[2, 4, 5, 0xb4, 3, 4, 7]).collect::<Vec<_>>(),
            [TcpOption::Mss(1460)]
        );
        // A lone kind byte with no length.
        assert_eq!(TcpOptions::new(&[1, 1, 3]).count(), 0);
    }

    #[test]
    fn options_never_panic_on_any_bytes() {
        // Every 3-byte pattern over an interesting alphabet, in every prefix.
        let alphabet = [0u8, 1, 2, 3, 4, 5, 8, 10, 255];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let bytes = [a, b, c, b, a, 0, 1, 2, 3, 4, 5];
                    for n in 0..bytes.len() {
                        for o in TcpOptions::new(&bytes[..n]) {
                            if let TcpOption::Sack(s) = o {
                                let _ = s.count();
                            }
                        }
                    }
                }
            }
        }
    }
}
