//! A streaming capture reader for `ctfw replay`: classic pcap and pcapng.
//!
//! - pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) magic.
//! - pcapng: any number of sections (either byte order), interface description blocks with
//!   `if_name`, `if_tsresol` and `if_tsoffset`, enhanced, simple and obsolete packet blocks.
//!   Every other block type is skipped without being read into memory.
//!
//! Records come out one at a time from [`CaptureReader::next_record`], borrowed straight from
//! the reader's block buffer: the file is read in blocks of [`BLOCK_LEN`] bytes (the
//! underlying reader need not be buffered), and a record that straddles the end of a block is
//! moved to the front of the buffer before the next block is read behind it, so each byte is
//! copied once on its way from the reader to the caller and a capture of any size is read in
//! constant memory. Timestamps are converted to nanoseconds since the epoch.
//!
//! A caller that wants several records at once without copying them (`ctfw replay` builds a
//! burst) holds them: after [`CaptureReader::hold_from`], the bytes of the records read stay in
//! the buffer ([`CaptureReader::held`], where [`CaptureReader::last_held`] places each record's
//! data) until the hold moves past them; only the held records and the one being read are
//! kept, so memory stays bounded by what the caller holds.
//!
//! Invariants: no input makes the reader panic or allocate more than [`MAX_BLOCK_LEN`] bytes
//! for one record; a malformed or truncated file yields a [`ReadError`] naming the byte offset
//! of the offending record or block and what was wrong, after which the reader returns
//! nothing more. A file that ends exactly at a record boundary ends cleanly.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The largest packet record or packet-carrying block the reader buffers (16 MiB). Larger
/// values can only come from corruption: real snap lengths stay below 256 KiB.
pub const MAX_BLOCK_LEN: u32 = 16 << 20;

/// Bytes the reader asks the underlying reader for at a time (256 KiB: large enough that
/// system calls are rare, small enough to stay in a core's L2 cache while it is parsed). The
/// buffer grows past it only for a record larger than that.
pub const BLOCK_LEN: usize = 256 << 10;

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const BLOCK_IDB: u32 = 1;
const BLOCK_PB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;

/// A read failure: where it happened and what was wrong.
#[derive(Debug)]
pub struct ReadError {
    /// Byte offset in the file of the record or block (or header) at fault.
    pub offset: u64,
    /// What was wrong.
    pub kind: ErrorKind,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte offset {}: {}", self.offset, self.kind)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// What was wrong with a capture.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The underlying reader failed.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
    /// The file does not start with a pcap or pcapng magic number.
    #[error("not a pcap or pcapng file (magic {magic:#010x})")]
    BadMagic {
        /// The first four bytes, little-endian.
        magic: u32,
    },
    /// The file ends inside a header, record or block.
    #[error("truncated {what}: needed {needed} bytes, only {available} left in the file")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes that were there.
        available: u64,
    },
    /// A version this reader does not know.
    #[error("unsupported {what} version {major}.{minor}")]
    UnsupportedVersion {
        /// pcap or pcapng.
        what: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A pcapng section header whose byte-order magic is neither order.
    #[error("bad pcapng byte-order magic {magic:#010x}")]
    BadByteOrder {
        /// The value found.
        magic: u32,
    },
    /// A pcapng block length that is too small or not a multiple of 4.
    #[error("bad length {len} for pcapng block type {block_type:#x}")]
    BadBlockLength {
        /// The block type.
        block_type: u32,
        /// The length found.
        len: u32,
    },
    /// A pcapng block whose trailing length differs from its leading length.
    #[error("pcapng block type {block_type:#x}: trailing length {trailing} != leading {leading}")]
    LengthMismatch {
        /// The block type.
        block_type: u32,
        /// Leading length.
        leading: u32,
        /// Trailing length.
        trailing: u32,
    },
    /// A record or block larger than [`MAX_BLOCK_LEN`].
    #[error("{what} of {len} bytes exceeds the {max}-byte limit (corrupt length?)")]
    TooLarge {
        /// What it is.
        what: &'static str,
        /// Its claimed length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A field inside a block does not fit in the block.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The block or field.
        what: &'static str,
        /// What does not fit.
        detail: &'static str,
    },
    /// A packet names an interface that no interface description block defined.
    #[error("packet on interface {id}, but the section defines {count} interface(s)")]
    UnknownInterface {
        /// The interface id.
        id: u32,
        /// Interfaces defined so far in the section.
        count: usize,
    },
    /// A timestamp that does not fit in 64-bit nanoseconds since the epoch.
    #[error("timestamp out of range")]
    TimestampOverflow,
}

/// The kind of capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap.
    Pcap {
        /// Nanosecond timestamps (else microseconds).
        nanos: bool,
        /// Big-endian file.
        big_endian: bool,
    },
    /// pcapng.
    Pcapng,
}

/// The timestamp unit of a pcapng interface (`if_tsresol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResolution {
    /// 10^-n seconds.
    Decimal(u8),
    /// 2^-n seconds.
    Binary(u8),
}

/// One pcapng interface (or the single implicit interface of a pcap file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `if_name`, if given.
    pub name: Option<String>,
    /// Link type (1 = Ethernet).
    pub link_type: u16,
    /// Snap length (0 = none).
    pub snaplen: u32,
    /// Timestamp resolution (default microseconds).
    pub tsresol: TsResolution,
    /// `if_tsoffset` in seconds.
    pub tsoffset: i64,
}

/// One packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Nanoseconds since the epoch. A simple packet block has no timestamp; it gets the
    /// previous packet's (0 if none).
    pub ts_ns: u64,
    /// The pcapng interface id; `None` for classic pcap.
    pub interface: Option<u32>,
    /// The interface's `if_name`, if any.
    pub interface_name: Option<&'a str>,
    /// Link type of the packet's interface (1 = Ethernet).
    pub link_type: u16,
    /// Length on the wire (may exceed `data.len()` when the capture was cut).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Byte offset of the record or block in the file.
    pub offset: u64,
}

impl Record<'_> {
    /// An owned copy.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            ts_ns: self.ts_ns,
            interface: self.interface,
            interface_name: self.interface_name.map(str::to_owned),
            link_type: self.link_type,
            orig_len: self.orig_len,
            data: self.data.to_vec(),
            offset: self.offset,
        }
    }
}

/// One packet, owned (what the [`Iterator`] implementation yields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// See [`Record::ts_ns`].
    pub ts_ns: u64,
    /// See [`Record::interface`].
    pub interface: Option<u32>,
    /// See [`Record::interface_name`].
    pub interface_name: Option<String>,
    /// See [`Record::link_type`].
    pub link_type: u16,
    /// See [`Record::orig_len`].
    pub orig_len: u32,
    /// See [`Record::data`].
    pub data: Vec<u8>,
    /// See [`Record::offset`].
    pub offset: u64,
}

/// Where the current packet sits in the current block body, before it is lent out.
#[derive(Debug, Clone, Copy)]
struct Meta {
    ts_ns: u64,
    interface: Option<u32>,
    orig_len: u32,
    start: usize,
    end: usize,
    offset: u64,
}

/// The streaming reader. See the module documentation.
#[derive(Debug)]
pub struct CaptureReader<R> {
    inner: R,
    /// Offset of the next unread byte.
    pos: u64,
    format: Format,
    /// Byte order of the current pcapng section or of the pcap file.
    big_endian: bool,
    /// pcap: the one implicit interface; pcapng: the current section's interfaces.
    interfaces: Vec<Interface>,
    /// Bytes read from `inner`; `block[lo..hi]` are not consumed yet (the first of them is at
    /// file offset `pos`).
    block: Vec<u8>,
    lo: usize,
    hi: usize,
    /// How much to read at a time ([`BLOCK_LEN`] unless a test asks for less).
    block_len: usize,
    /// The body of the record or block read last, in `block`.
    body: std::ops::Range<usize>,
    /// The data of the record returned last, in `block` (`None` after a call that returned
    /// none).
    data: Option<std::ops::Range<usize>>,
    /// While records are held: where the held bytes start in `block` (at most `lo`).
    hold: Option<usize>,
    last_ts_ns: u64,
    /// Set after the end or an error: nothing more comes out.
    finished: bool,
}

impl CaptureReader<File> {
    /// Opens a capture file (format detected from its magic).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let file = File::open(path).map_err(|e| ReadError {
            offset: 0,
            kind: ErrorKind::Io(e),
        })?;
        CaptureReader::new(file)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header (pcap) or first section header (pcapng) from `inner`, in blocks
    /// of [`BLOCK_LEN`] bytes (so `inner` need not be buffered).
    pub fn new(inner: R) -> Result<Self, ReadError> {
        CaptureReader::with_block_len(inner, BLOCK_LEN)
    }

    /// [`CaptureReader::new`], reading `block_len` bytes at a time (at least 1): tests use
    /// small blocks so that records straddle block ends.
    pub fn with_block_len(inner: R, block_len: usize) -> Result<Self, ReadError> {
        let mut r = CaptureReader {
            inner,
            pos: 0,
            format: Format::Pcapng,
            big_endian: false,
            interfaces: Vec::new(),
            block: Vec::new(),
            lo: 0,
            hi: 0,
            block_len: block_len.max(1),
            body: 0..0,
            data: None,
            hold: None,
            last_ts_ns: 0,
            finished: false,
        };
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic, "file header")?;
        let m = u32::from_le_bytes(magic);
        let pcap = match m {
            0xa1b2_c3d4 => Some((false, false)),
            0xa1b2_3c4d => Some((true, false)),
            0xd4c3_b2a1 => Some((false, true)),
            0x4d3c_b2a1 => Some((true, true)),
            PCAPNG_SHB => None,
            _ => {
                return Err(ReadError {
                    offset: 0,
                    kind: ErrorKind::BadMagic { magic: m },
                });
            }
        };
        match pcap {
            Some((nanos, big_endian)) => r.read_pcap_header(nanos, big_endian)?,
            None => r.read_section_header(0)?,
        }
        Ok(r)
    }

    /// The file format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The interfaces of the current pcapng section (one unnamed interface for pcap).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// The next packet, `Ok(None)` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, ReadError> {
        // Cleared first: `fill` moves the buffer's bytes without updating it.
        self.data = None;
        if self.finished {
            return Ok(None);
        }
        let meta = match self.next_meta() {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.finished = true;
                return Ok(None);
            }
            Err(e) => {
                self.finished = true;
                return Err(e);
            }
        };
        self.last_ts_ns = meta.ts_ns;
        self.data = Some(self.body.start + meta.start..self.body.start + meta.end);
        let iface = match meta.interface {
            Some(i) => self.interfaces.get(i as usize),
            None => self.interfaces.first(),
        };
        Ok(Some(Record {
            ts_ns: meta.ts_ns,
            interface: meta.interface,
            interface_name: iface.and_then(|i| i.name.as_deref()),
            link_type: iface.map_or(1, |i| i.link_type),
            orig_len: meta.orig_len,
            data: self.body().get(meta.start..meta.end).unwrap_or_default(),
            offset: meta.offset,
        }))
    }

    /// Holds records: the bytes from `at` in [`held`](Self::held) on (everything read since
    /// the hold began if `at` is past its end; everything read from now on if nothing is held)
    /// stay in the buffer, and are what `held` returns, until the next call. Offsets into
    /// `held` before the call, minus `at`, are offsets after it.
    pub fn hold_from(&mut self, at: usize) {
        let base = self.hold.unwrap_or(self.lo);
        self.hold = Some(base.saturating_add(at).min(self.lo));
    }

    /// The held bytes (empty unless [`hold_from`](Self::hold_from) was called).
    pub fn held(&self) -> &[u8] {
        self.hold
            .and_then(|h| self.block.get(h..self.lo))
            .unwrap_or_default()
    }

    /// Where the data of the record [`next_record`](Self::next_record) returned last is in
    /// [`held`](Self::held); `None` if it is not held.
    pub fn last_held(&self) -> Option<std::ops::Range<usize>> {
        let (h, data) = (self.hold?, self.data.as_ref()?);
        (data.start >= h && data.end <= self.lo).then(|| data.start - h..data.end - h)
    }

    fn next_meta(&mut self) -> Result<Option<Meta>, ReadError> {
        match self.format {
            Format::Pcap { nanos, .. } => self.next_pcap(nanos),
            Format::Pcapng => self.next_pcapng(),
        }
    }

    // ----- low-level reading -----

    /// Makes at least `n` unconsumed bytes available in `block[lo..]`, or as many as the file
    /// still has: returns how many are there, at most `n`. Held and unconsumed bytes move to
    /// the front of the buffer first, so whatever else was lent out before is overwritten.
    fn fill(&mut self, n: usize, at: u64) -> Result<usize, ReadError> {
        if self.hi - self.lo >= n {
            return Ok(n);
        }
        let keep = self.hold.unwrap_or(self.lo);
        self.block.copy_within(keep..self.hi, 0);
        self.hi -= keep;
        self.lo -= keep;
        self.hold = self.hold.map(|h| h - keep);
        let want = (self.lo + n).max(self.block_len);
        if self.block.len() < want {
            self.block.resize(want, 0);
        }
        while self.hi - self.lo < n {
            match self.inner.read(&mut self.block[self.hi..]) {
                Ok(0) => break,
                Ok(k) => self.hi += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ReadError {
                        offset: at,
                        kind: ErrorKind::Io(e),
                    });
                }
            }
        }
        Ok((self.hi - self.lo).min(n))
    }

    /// Consumes `n` available bytes, returning where they are in `block`.
    fn consume(&mut self, n: usize) -> std::ops::Range<usize> {
        let r = self.lo..self.lo + n;
        self.lo += n;
        self.pos += n as u64;
        r
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), ReadError> {
        let at = self.pos;
        let n = self.fill(buf.len(), at)?;
        if n < buf.len() {
            self.consume(n);
            return Err(truncated(at, what, buf.len(), n));
        }
        let r = self.consume(n);
        buf.copy_from_slice(&self.block[r]);
        Ok(())
    }

    /// Reads a record header; `Ok(false)` at a clean end of file.
    fn read_header_or_eof(
        &mut self,
        buf: &mut [u8],
        what: &'static str,
    ) -> Result<bool, ReadError> {
        let at = self.pos;
        match self.fill(buf.len(), at)? {
            0 => Ok(false),
            n if n < buf.len() => {
                self.consume(n);
                Err(truncated(at, what, buf.len(), n))
            }
            n => {
                let r = self.consume(n);
                buf.copy_from_slice(&self.block[r]);
                Ok(true)
            }
        }
    }

    /// Reads the next `len` bytes as the body of the record or block at `start`.
    fn read_body(&mut self, len: usize, start: u64, what: &'static str) -> Result<(), ReadError> {
        let at = self.pos;
        let n = self.fill(len, at)?;
        self.body = self.consume(n);
        if n < len {
            return Err(ReadError {
                offset: start,
                kind: ErrorKind::Truncated {
                    what,
                    needed: (at - start) + len as u64,
                    available: (at - start) + n as u64,
                },
            });
        }
        Ok(())
    }

    /// The body read last.
    fn body(&self) -> &[u8] {
        self.block.get(self.body.clone()).unwrap_or_default()
    }

    fn skip(&mut self, len: u64, start: u64, what: &'static str) -> Result<(), ReadError> {
        let at = self.pos;
        let buffered = (self.hi - self.lo).min(usize::try_from(len).unwrap_or(usize::MAX));
        self.consume(buffered);
        let rest = len - buffered as u64;
        let n = io::copy(&mut (&mut self.inner).take(rest), &mut io::sink()).map_err(|e| {
            ReadError {
                offset: start,
                kind: ErrorKind::Io(e),
            }
        })?;
        self.pos += n;
        let n = buffered as u64 + n;
        if n < len {
            return Err(ReadError {
                offset: start,
                kind: ErrorKind::Truncated {
                    what,
                    needed: (at - start) + len,
                    available: (at - start) + n,
                },
            });
        }
        Ok(())
    }

    fn u16(&self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn u32_in_buf(&self, at: usize) -> Option<u32> {
        Some(self.u32(self.body().get(at..at + 4)?.try_into().ok()?))
    }

    fn u16_in_buf(&self, at: usize) -> Option<u16> {
        Some(self.u16(self.body().get(at..at + 2)?.try_into().ok()?))
    }

    // ----- classic pcap -----

    fn read_pcap_header(&mut self, nanos: bool, big_endian: bool) -> Result<(), ReadError> {
        self.format = Format::Pcap { nanos, big_endian };
        self.big_endian = big_endian;
        let mut h = [0u8; 20];
        self.read_exact(&mut h, "pcap file header")?;
        let major = self.u16([h[0], h[1]]);
        let minor = self.u16([h[2], h[3]]);
        if major != 2 {
            return Err(ReadError {
                offset: 4,
                kind: ErrorKind::UnsupportedVersion {
                    what: "pcap",
                    major,
                    minor,
                },
            });
        }
        let snaplen = self.u32([h[12], h[13], h[14], h[15]]);
        // The upper bits of the link-type field carry FCS information, not the type.
        let link_type = (self.u32([h[16], h[17], h[18], h[19]]) & 0xffff) as u16;
        self.interfaces = vec![Interface {
            name: None,
            link_type,
            snaplen,
            tsresol: TsResolution::Decimal(if nanos { 9 } else { 6 }),
            tsoffset: 0,
        }];
        Ok(())
    }

    fn next_pcap(&mut self, nanos: bool) -> Result<Option<Meta>, ReadError> {
        let offset = self.pos;
        let mut h = [0u8; 16];
        if !self.read_header_or_eof(&mut h, "pcap record header")? {
            return Ok(None);
        }
        let sec = u64::from(self.u32([h[0], h[1], h[2], h[3]]));
        let frac = u64::from(self.u32([h[4], h[5], h[6], h[7]]));
        let incl = self.u32([h[8], h[9], h[10], h[11]]);
        let orig = self.u32([h[12], h[13], h[14], h[15]]);
        if incl > MAX_BLOCK_LEN {
            return Err(ReadError {
                offset,
                kind: ErrorKind::TooLarge {
                    what: "pcap record",
                    len: u64::from(incl),
                    max: MAX_BLOCK_LEN,
                },
            });
        }
        let frac_ns = if nanos { frac } else { frac * 1000 };
        let ts_ns = sec
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(frac_ns))
            .ok_or(ReadError {
                offset,
                kind: ErrorKind::TimestampOverflow,
            })?;
        self.read_body(incl as usize, offset, "pcap record")?;
        Ok(Some(Meta {
            ts_ns,
            interface: None,
            orig_len: orig,
            start: 0,
            end: incl as usize,
            offset,
        }))
    }

    // ----- pcapng -----

    /// Reads a section header block whose 4-byte type was just consumed at `start`.
    fn read_section_header(&mut self, start: u64) -> Result<(), ReadError> {
        self.format = Format::Pcapng;
        let mut h = [0u8; 8];
        self.read_exact(&mut h, "pcapng section header")?;
        let bom = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        self.big_endian = match bom {
            PCAPNG_BOM => false,
            0x4d3c_2b1a => true,
            magic => {
                return Err(ReadError {
                    offset: start,
                    kind: ErrorKind::BadByteOrder { magic },
                });
            }
        };
        let len = self.u32([h[0], h[1], h[2], h[3]]);
        // Type, length, BOM, version (4), section length (8), trailing length.
        if len < 28 || len % 4 != 0 {
            return Err(ReadError {
                offset: start,
                kind: ErrorKind::BadBlockLength {
                    block_type: PCAPNG_SHB,
                    len,
                },
            });
        }
        if len > MAX_BLOCK_LEN {
            return Err(too_large(start, "pcapng section header", len));
        }
        self.read_body(len as usize - 12, start, "pcapng section header")?;
        let major = self.u16_in_buf(0).unwrap_or(0);
        let minor = self.u16_in_buf(2).unwrap_or(0);
        if major != 1 {
            return Err(ReadError {
                offset: start,
                kind: ErrorKind::UnsupportedVersion {
                    what: "pcapng",
                    major,
                    minor,
                },
            });
        }
        self.check_trailer(PCAPNG_SHB, len, start)?;
        self.interfaces.clear();
        Ok(())
    }

    /// Checks the trailing length at the end of the body read last.
    fn check_trailer(&self, block_type: u32, len: u32, start: u64) -> Result<(), ReadError> {
        let trailing = self
            .body
            .len()
            .checked_sub(4)
            .and_then(|at| self.u32_in_buf(at));
        match trailing {
            Some(t) if t == len => Ok(()),
            Some(trailing) => Err(ReadError {
                offset: start,
                kind: ErrorKind::LengthMismatch {
                    block_type,
                    leading: len,
                    trailing,
                },
            }),
            None => Err(ReadError {
                offset: start,
                kind: ErrorKind::BadBlockLength { block_type, len },
            }),
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Meta>, ReadError> {
        loop {
            let start = self.pos;
            let mut ty = [0u8; 4];
            if !self.read_header_or_eof(&mut ty, "pcapng block header")? {
                return Ok(None);
            }
            // The section header's type reads the same in both byte orders.
            if u32::from_le_bytes(ty) == PCAPNG_SHB {
                self.read_section_header(start)?;
                continue;
            }
            let block_type = self.u32(ty);
            let mut l = [0u8; 4];
            self.read_exact(&mut l, "pcapng block header")?;
            let len = self.u32(l);
            if len < 12 || len % 4 != 0 {
                return Err(ReadError {
                    offset: start,
                    kind: ErrorKind::BadBlockLength { block_type, len },
                });
            }
            let wanted = matches!(block_type, BLOCK_IDB | BLOCK_EPB | BLOCK_SPB | BLOCK_PB);
            if !wanted {
                // Skip the body, then check the trailing length.
                self.skip(u64::from(len) - 12, start, "pcapng block")?;
                let mut t = [0u8; 4];
                self.read_exact(&mut t, "pcapng block trailer")?;
                let trailing = self.u32(t);
                if trailing != len {
                    return Err(ReadError {
                        offset: start,
                        kind: ErrorKind::LengthMismatch {
                            block_type,
                            leading: len,
                            trailing,
                        },
                    });
                }
                continue;
            }
            if len > MAX_BLOCK_LEN {
                return Err(too_large(start, "pcapng block", len));
            }
            // Body plus trailing length.
            self.read_body(len as usize - 8, start, "pcapng block")?;
            self.check_trailer(block_type, len, start)?;
            let body_len = self.body.len() - 4;
            match block_type {
                BLOCK_IDB => self.parse_idb(body_len, start)?,
                BLOCK_EPB => return self.parse_epb(body_len, start, false).map(Some),
                BLOCK_PB => return self.parse_epb(body_len, start, true).map(Some),
                _ => return self.parse_spb(body_len, start).map(Some),
            }
        }
    }

    fn parse_idb(&mut self, body_len: usize, start: u64) -> Result<(), ReadError> {
        let malformed = |detail| ReadError {
            offset: start,
            kind: ErrorKind::Malformed {
                what: "interface description block",
                detail,
            },
        };
        if body_len < 8 {
            return Err(malformed("shorter than its fixed fields"));
        }
        let link_type = self.u16_in_buf(0).ok_or_else(|| malformed("link type"))?;
        let snaplen = self.u32_in_buf(4).ok_or_else(|| malformed("snaplen"))?;
        let mut iface = Interface {
            name: None,
            link_type,
            snaplen,
            tsresol: TsResolution::Decimal(6),
            tsoffset: 0,
        };
        let mut at = 8;
        while at + 4 <= body_len {
            let code = self.u16_in_buf(at).unwrap_or(0);
            let olen = usize::from(self.u16_in_buf(at + 2).unwrap_or(0));
            if code == 0 {
                break;
            }
            let vstart = at + 4;
            let vend = vstart + olen;
            if vend > body_len {
                return Err(malformed("an option runs past the end of the block"));
            }
            let value = self.body().get(vstart..vend).unwrap_or_default();
            match code {
                2 => {
                    let name = String::from_utf8_lossy(value);
                    iface.name = Some(name.trim_end_matches('\0').to_owned());
                }
                9 => {
                    let &[v] = value else {
                        return Err(malformed("if_tsresol is not one byte"));
                    };
                    iface.tsresol = if v & 0x80 == 0 {
                        TsResolution::Decimal(v)
                    } else {
                        TsResolution::Binary(v & 0x7f)
                    };
                }
                14 => {
                    let b: [u8; 8] = value
                        .try_into()
                        .map_err(|_| malformed("if_tsoffset is not 8 bytes"))?;
                    iface.tsoffset = if self.big_endian {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
            at = vstart + olen.div_ceil(4) * 4;
        }
        self.interfaces.push(iface);
        Ok(())
    }

    fn interface(&self, id: u32, start: u64) -> Result<&Interface, ReadError> {
        self.interfaces.get(id as usize).ok_or(ReadError {
            offset: start,
            kind: ErrorKind::UnknownInterface {
                id,
                count: self.interfaces.len(),
            },
        })
    }

    /// An enhanced packet block, or with `obsolete` the old packet block (16-bit interface
    /// id and drop count in place of the 32-bit interface id).
    fn parse_epb(&self, body_len: usize, start: u64, obsolete: bool) -> Result<Meta, ReadError> {
        let what = if obsolete {
            "packet block"
        } else {
            "enhanced packet block"
        };
        let malformed = |detail| ReadError {
            offset: start,
            kind: ErrorKind::Malformed { what, detail },
        };
        if body_len < 20 {
            return Err(malformed("shorter than its fixed fields"));
        }
        let id = if obsolete {
            u32::from(self.u16_in_buf(0).unwrap_or(0))
        } else {
            self.u32_in_buf(0).unwrap_or(0)
        };
        let hi = self.u32_in_buf(4).unwrap_or(0);
        let lo = self.u32_in_buf(8).unwrap_or(0);
        let caplen = self.u32_in_buf(12).unwrap_or(0);
        let orig_len = self.u32_in_buf(16).unwrap_or(0);
        let end = 20usize.saturating_add(caplen as usize);
        if end > body_len {
            return Err(malformed("captured length runs past the end of the block"));
        }
        let iface = self.interface(id, start)?;
        let units = (u64::from(hi) << 32) | u64::from(lo);
        let ts_ns = to_ns(units, iface.tsresol, iface.tsoffset).ok_or(ReadError {
            offset: start,
            kind: ErrorKind::TimestampOverflow,
        })?;
        Ok(Meta {
            ts_ns,
            interface: Some(id),
            orig_len,
            start: 20,
            end,
            offset: start,
        })
    }

    fn parse_spb(&self, body_len: usize, start: u64) -> Result<Meta, ReadError> {
        if body_len < 4 {
            return Err(ReadError {
                offset: start,
                kind: ErrorKind::Malformed {
                    what: "simple packet block",
                    detail: "no length field",
                },
            });
        }
        let iface = self.interface(0, start)?;
        let orig_len = self.u32_in_buf(0).unwrap_or(0);
        // The captured length is implied: the original length, cut by the snaplen and by
        // the block.
        let mut caplen = (orig_len as usize).min(body_len - 4);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        Ok(Meta {
            ts_ns: self.last_ts_ns,
            interface: Some(0),
            orig_len,
            start: 4,
            end: 4 + caplen,
            offset: start,
        })
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<OwnedRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r.to_owned_record())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

fn truncated(at: u64, what: &'static str, needed: usize, available: usize) -> ReadError {
    ReadError {
        offset: at,
        kind: ErrorKind::Truncated {
            what,
            needed: needed as u64,
            available: available as u64,
        },
    }
}

fn too_large(start: u64, what: &'static str, len: u32) -> ReadError {
    ReadError {
        offset: start,
        kind: ErrorKind::TooLarge {
            what,
            len: u64::from(len),
            max: MAX_BLOCK_LEN,
        },
    }
}

/// Converts a pcapng timestamp in interface units to nanoseconds since the epoch.
fn to_ns(units: u64, res: TsResolution, offset_s: i64) -> Option<u64> {
    let units = u128::from(units);
    let ns: u128 = match res {
        TsResolution::Decimal(n) if n <= 9 => units * 10u128.pow(u32::from(9 - n)),
        TsResolution::Decimal(n) => {
            // 10^38 is the largest power of ten in a u128; beyond it every value rounds to 0.
            let div = 10u128.checked_pow(u32::from(n - 9));
            div.map_or(0, |d| units / d)
        }
        TsResolution::Binary(n) => (units * 1_000_000_000) >> n.min(127),
    };
    let offset_ns = i128::from(offset_s) * 1_000_000_000;
    let total = i128::try_from(ns).ok()?.checked_add(offset_ns)?;
    u64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{PcapWriter, PcapngWriter, Resolution};

    fn read_all(bytes: &[u8]) -> Result<Vec<OwnedRecord>, ReadError> {
        CaptureReader::new(bytes)?.collect()
    }

    fn sample_ng() -> Vec<u8> {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        for i in 0..5u32 {
            w.write(
                1_700_000_000_000_000_000 + u64::from(i) * 1000,
                i % 2,
                &vec![i as u8; 60 + i as usize],
            )
            .unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn pcapng_roundtrip() {
        let recs = read_all(&sample_ng()).unwrap();
        assert_eq!(recs.len(), 5);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.ts_ns, 1_700_000_000_000_000_000 + i as u64 * 1000);
            assert_eq!(r.interface, Some(i as u32 % 2));
            assert_eq!(
                r.interface_name.as_deref(),
                Some(["inside", "outside"][i % 2])
            );
            assert_eq!(r.data.len(), 60 + i);
            assert_eq!(r.orig_len as usize, 60 + i);
        }
    }

    /// Converts a little-endian pcap to big-endian, field by field.
    fn pcap_to_be(le: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let sw32 = |b: &[u8]| [b[3], b[2], b[1], b[0]];
        out.extend_from_slice(&sw32(&le[0..4]));
        out.extend_from_slice(&[le[5], le[4], le[7], le[6]]);
        for f in (8..24).step_by(4) {
            out.extend_from_slice(&sw32(&le[f..f + 4]));
        }
        let mut at = 24;
        while at < le.len() {
            for f in (at..at + 16).step_by(4) {
                out.extend_from_slice(&sw32(&le[f..f + 4]));
            }
            let incl = u32::from_le_bytes(le[at + 8..at + 12].try_into().unwrap()) as usize;
            out.extend_from_slice(&le[at + 16..at + 16 + incl]);
            at += 16 + incl;
        }
        out
    }

    #[test]
    fn pcap_both_resolutions_and_byte_orders() {
        for res in [Resolution::Micro, Resolution::Nano] {
            let mut w = PcapWriter::new(Vec::new(), res).unwrap();
            w.write(1_700_000_000_123_456_789, &[1; 42]).unwrap();
            w.write(1_700_000_001_000_000_000, &[2; 43]).unwrap();
            let le = w.finish().unwrap();
            for bytes in [le.clone(), pcap_to_be(&le)] {
                let r = CaptureReader::new(&bytes[..]).unwrap();
                assert!(matches!(r.format(), Format::Pcap { .. }));
                let recs: Vec<_> = r.collect::<Result<_, _>>().unwrap();
                assert_eq!(recs.len(), 2);
                let frac = if res == Resolution::Nano {
                    123_456_789
                } else {
                    123_456_000
                };
                assert_eq!(recs[0].ts_ns, 1_700_000_000_000_000_000 + frac);
                assert_eq!(recs[0].data, vec![1; 42]);
                assert_eq!(recs[1].data, vec![2; 43]);
                assert_eq!(recs[0].interface, None);
                assert_eq!(recs[0].link_type, 1);
            }
        }
    }

    /// A hand-built big-endian pcapng with a binary tsresol, a tsoffset, an unknown block, a
    /// simple packet block and an obsolete packet block.
    fn big_endian_ng() -> Vec<u8> {
        let mut f = Vec::new();
        let block = |f: &mut Vec<u8>, ty: u32, body: &[u8]| {
            let len = 12 + body.len() as u32;
            f.extend_from_slice(&ty.to_be_bytes());
            f.extend_from_slice(&len.to_be_bytes());
            f.extend_from_slice(body);
            f.extend_from_slice(&len.to_be_bytes());
        };
        let mut shb = Vec::new();
        shb.extend_from_slice(&PCAPNG_BOM.to_be_bytes());
        shb.extend_from_slice(&[0, 1, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_be_bytes());
        block(&mut f, PCAPNG_SHB, &shb);
        let mut idb = vec![0, 1, 0, 0, 0, 0, 0, 100];
        idb.extend_from_slice(&[0, 2, 0, 3, b'e', b't', b'h', 0]); // if_name "eth"
        idb.extend_from_slice(&[0, 9, 0, 1, 0x80 | 10, 0, 0, 0]); // 2^-10 s
        idb.extend_from_slice(&[0, 14, 0, 8]);
        idb.extend_from_slice(&5i64.to_be_bytes()); // +5 s
        idb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut f, BLOCK_IDB, &idb);
        block(&mut f, 0x0bad_0bad, &[9; 20]); // unknown: skipped
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_be_bytes());
        epb.extend_from_slice(&0u32.to_be_bytes());
        epb.extend_from_slice(&2048u32.to_be_bytes()); // 2 s
        epb.extend_from_slice(&3u32.to_be_bytes());
        epb.extend_from_slice(&3u32.to_be_bytes());
        epb.extend_from_slice(&[7, 7, 7, 0]);
        block(&mut f, BLOCK_EPB, &epb);
        let mut spb = Vec::new();
        spb.extend_from_slice(&200u32.to_be_bytes()); // cut by the snaplen of 100
        spb.extend_from_slice(&[5; 120]);
        block(&mut f, BLOCK_SPB, &spb);
        let mut pb = vec![0, 0, 0, 0];
        pb.extend_from_slice(&0u32.to_be_bytes());
        pb.extend_from_slice(&1024u32.to_be_bytes());
        pb.extend_from_slice(&2u32.to_be_bytes());
        pb.extend_from_slice(&2u32.to_be_bytes());
        pb.extend_from_slice(&[4, 4, 0, 0]);
        block(&mut f, BLOCK_PB, &pb);
        f
    }

    #[test]
    fn pcapng_big_endian_and_other_blocks() {
        let recs = read_all(&big_endian_ng()).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].ts_ns, 7_000_000_000);
        assert_eq!(recs[0].data, vec![7, 7, 7]);
        assert_eq!(recs[0].interface_name.as_deref(), Some("eth"));
        assert_eq!(recs[1].data.len(), 100);
        assert_eq!(recs[1].orig_len, 200);
        assert_eq!(recs[1].ts_ns, 7_000_000_000);
        assert_eq!(recs[2].ts_ns, 6_000_000_000);
        assert_eq!(recs[2].data, vec![4, 4]);
    }

    /// Records written across several default-sized blocks, one of them (header and the
    /// writer's largest body) larger than a block, come back exactly as written, in both pcap
    /// resolutions and byte orders.
    #[test]
    fn records_across_block_ends() {
        let sizes: Vec<usize> = (0..700)
            .map(|i| 60 + (i * 37) % 1450)
            .chain([BLOCK_LEN, 14])
            .collect();
        for res in [Resolution::Micro, Resolution::Nano] {
            let mut w = PcapWriter::new(Vec::new(), res).unwrap();
            for (i, &len) in sizes.iter().enumerate() {
                let data: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
                w.write(1_700_000_000_000_000_000 + i as u64 * 1000, &data)
                    .unwrap();
            }
            let le = w.finish().unwrap();
            assert!(le.len() > 3 * BLOCK_LEN);
            for bytes in [le.clone(), pcap_to_be(&le)] {
                let recs = read_all(&bytes).unwrap();
                assert_eq!(recs.len(), sizes.len());
                for (i, (r, &len)) in recs.iter().zip(&sizes).enumerate() {
                    let data: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
                    assert!(r.data == data, "record {i}: wrong bytes");
                    assert_eq!(r.ts_ns, 1_700_000_000_000_000_000 + i as u64 * 1000);
                }
            }
        }
    }

    /// Held records stay where [`CaptureReader::last_held`] placed them while more are read
    /// through any number of refills, and moving the hold keeps the records after it.
    #[test]
    fn held_records_stay_put() {
        let mut w = PcapWriter::new(Vec::new(), Resolution::Nano).unwrap();
        for i in 0..9u8 {
            w.write(u64::from(i), &vec![i; 40 + 13 * usize::from(i)])
                .unwrap();
        }
        let pcap = w.finish().unwrap();
        for bytes in [
            pcap.clone(),
            pcap_to_be(&pcap),
            sample_ng(),
            big_endian_ng(),
        ] {
            let expected = read_all(&bytes).unwrap();
            for block_len in [1, 7, 64, 1000, BLOCK_LEN] {
                let mut r = CaptureReader::with_block_len(&bytes[..], block_len).unwrap();
                assert_eq!(r.held(), &[] as &[u8]);
                r.hold_from(0);
                let mut spans = Vec::new();
                while r.next_record().unwrap().is_some() {
                    spans.push(r.last_held().expect("held"));
                }
                assert_eq!(spans.len(), expected.len());
                for (span, rec) in spans.iter().zip(&expected) {
                    assert_eq!(r.held()[span.clone()], rec.data[..], "block {block_len}");
                }
                // Drop the first two records: the others stay, `cut` bytes earlier.
                let cut = spans[2].start;
                r.hold_from(cut);
                for (span, rec) in spans.iter().zip(&expected).skip(2) {
                    assert_eq!(r.held()[span.start - cut..span.end - cut], rec.data[..]);
                }
                assert!(r.next_record().unwrap().is_none());
                assert_eq!(r.last_held(), None);
            }
            // Bursts of two, each carrying its second record into the next burst's hold.
            let mut r = CaptureReader::with_block_len(&bytes[..], 5).unwrap();
            let mut i = 0;
            let mut carried: Option<std::ops::Range<usize>> = None;
            loop {
                let keep = carried.as_ref().map_or(r.held().len(), |c| c.start);
                r.hold_from(keep);
                let mut spans: Vec<_> = carried.take().map(|c| 0..c.len()).into_iter().collect();
                while spans.len() < 2 && r.next_record().unwrap().is_some() {
                    spans.push(r.last_held().expect("held"));
                }
                if spans.len() < 2 {
                    break;
                }
                assert_eq!(r.held()[spans[0].clone()], expected[i].data[..]);
                assert_eq!(r.held()[spans[1].clone()], expected[i + 1].data[..]);
                i += 1;
                carried = Some(spans[1].clone());
            }
            assert_eq!(i + 1, expected.len());
        }
    }

    #[test]
    fn errors_carry_offsets() {
        let ng = sample_ng();
        // Cut inside the third packet block: the error names that block's offset.
        let third = read_all(&ng).unwrap()[2].offset as usize;
        let err = read_all(&ng[..third + 10]).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Truncated { .. }), "{err}");
        assert_eq!(err.offset, third as u64);
        let msg = err.to_string();
        assert!(msg.contains("offset") && msg.contains("truncated"), "{msg}");

        let err = read_all(b"GIF89a").unwrap_err();
        assert!(matches!(err.kind, ErrorKind::BadMagic { .. }));
        let err = read_all(&[]).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Truncated { .. }));

        // A packet on an interface that does not exist.
        let mut bad = ng.clone();
        bad[32 + 44 + 44 + 8] = 7;
        let err = read_all(&bad).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::UnknownInterface { id: 7, count: 2 }),
            "{err}"
        );

        // A huge pcap record length.
        let mut w = PcapWriter::new(Vec::new(), Resolution::Micro).unwrap();
        w.write(0, &[0; 10]).unwrap();
        let mut p = w.finish().unwrap();
        p[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_all(&p).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::TooLarge { .. }));
        assert_eq!(err.offset, 24);
    }

    #[test]
    fn stops_after_error() {
        let ng = sample_ng();
        let mut r = CaptureReader::new(&ng[..ng.len() - 1]).unwrap();
        let mut results = Vec::new();
        for item in &mut r {
            results.push(item.is_ok());
        }
        assert_eq!(results, vec![true, true, true, true, false]);
        assert!(r.next().is_none());
    }

    #[test]
    fn timestamp_conversion() {
        assert_eq!(to_ns(5, TsResolution::Decimal(0), 0), Some(5_000_000_000));
        assert_eq!(to_ns(5, TsResolution::Decimal(6), 0), Some(5_000));
        assert_eq!(to_ns(5_000, TsResolution::Decimal(12), 0), Some(5));
        assert_eq!(to_ns(u64::MAX, TsResolution::Decimal(127), 0), Some(0));
        assert_eq!(
            to_ns(1 << 30, TsResolution::Binary(30), 0),
            Some(1_000_000_000)
        );
        assert_eq!(to_ns(u64::MAX, TsResolution::Decimal(0), 0), None);
        assert_eq!(to_ns(1, TsResolution::Decimal(0), -2), None);
        assert_eq!(to_ns(u64::MAX, TsResolution::Binary(127), i64::MAX), None);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn pcap_sample() -> Vec<u8> {
            let mut w = PcapWriter::new(Vec::new(), Resolution::Nano).unwrap();
            for i in 0..4u8 {
                w.write(u64::from(i) * 7, &vec![i; 30 + usize::from(i)])
                    .unwrap();
            }
            w.finish().unwrap()
        }

        fn drain(bytes: &[u8]) -> usize {
            match CaptureReader::new(bytes) {
                Ok(mut r) => {
                    let mut n = 0;
                    while let Ok(Some(rec)) = r.next_record() {
                        assert!(rec.data.len() <= MAX_BLOCK_LEN as usize);
                        n += 1;
                    }
                    n
                }
                Err(_) => 0,
            }
        }

        /// Every result of reading `bytes`, errors as text (offset and message).
        fn results(bytes: &[u8], block_len: usize) -> Vec<Result<OwnedRecord, String>> {
            match CaptureReader::with_block_len(bytes, block_len) {
                Ok(r) => r.map(|x| x.map_err(|e| e.to_string())).collect(),
                Err(e) => vec![Err(e.to_string())],
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Where blocks end makes no difference: any block length, on whole and cut files
            /// of every kind, gives the records and the error of the default block length.
            #[test]
            fn block_length_changes_nothing(
                block_len in 1usize..200,
                cut in 0usize..700,
                kind in 0usize..5,
            ) {
                let mut f = match kind {
                    0 => pcap_sample(),
                    1 => pcap_to_be(&pcap_sample()),
                    2 => {
                        let mut w = PcapWriter::new(Vec::new(), Resolution::Micro).unwrap();
                        for i in 0..4u8 {
                            w.write(u64::from(i) * 1_000_000, &vec![i; 50 + usize::from(i)])
                                .unwrap();
                        }
                        w.finish().unwrap()
                    }
                    3 => sample_ng(),
                    _ => big_endian_ng(),
                };
                let whole = cut >= f.len();
                f.truncate(cut.max(f.len() / 2));
                let expected = results(&f, BLOCK_LEN);
                if whole {
                    prop_assert!(expected.iter().all(Result::is_ok));
                }
                prop_assert_eq!(results(&f, block_len), expected);
            }

            #[test]
            fn truncated_files_never_panic(cut in 0usize..600, ng in any::<bool>()) {
                let full = if ng { sample_ng() } else { pcap_sample() };
                let cut = cut.min(full.len());
                let n = drain(&full[..cut]);
                prop_assert!(n <= 5);
            }

            #[test]
            fn mutated_files_never_panic(
                edits in proptest::collection::vec((0usize..700, any::<u8>()), 1..8),
                ng in any::<bool>(),
            ) {
                let mut f = if ng { sample_ng() } else { pcap_sample() };
                for (at, v) in edits {
                    let len = f.len();
                    f[at % len] = v;
                }
                drain(&f);
            }

            #[test]
            fn random_bytes_never_panic(
                head in prop_oneof![Just(vec![0x0a, 0x0d, 0x0d, 0x0a]), Just(vec![0xd4, 0xc3, 0xb2, 0xa1]), Just(vec![])],
                tail in proptest::collection::vec(any::<u8>(), 0..400),
            ) {
                let mut f = head;
                f.extend(tail);
                drain(&f);
            }
        }
    }
}
