//! Capture writers and packet sinks.
//!
//! - [`PcapWriter`]: classic pcap, little-endian, microsecond or nanosecond timestamps,
//!   Ethernet link type. It has no notion of interfaces, so the side is dropped.
//! - [`PcapngWriter`]: pcapng laid out exactly like the conformance traces: one section, one
//!   interface description per name (by default `inside` = 0 and `outside` = 1, Ethernet,
//!   snaplen 0, `if_tsresol` = nanoseconds) and one enhanced packet block per packet carrying
//!   its interface id.
//! - [`SplitBySide`]: one sink per side (e.g. `inside.pcap` and `outside.pcap` for DPDK
//!   `net_pcap` rx on two ports); [`Tee`]: two sinks at once; `Vec<Packet>` collects in memory.
//! - [`CaptureFile`]: a file writer chosen by extension (`.pcapng` or anything else = pcap).
//!
//! All writers are streaming; call `finish` (or drop after `flush`) to flush the buffer.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::{Packet, Side};

/// The link type written: Ethernet.
pub const LINKTYPE_ETHERNET: u16 = 1;

/// Something packets can be written to.
pub trait PacketSink {
    /// Writes one packet.
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()>;
}

impl PacketSink for Vec<Packet> {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        self.push(packet.clone());
        Ok(())
    }
}

impl<S: PacketSink + ?Sized> PacketSink for &mut S {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        (**self).write_packet(packet)
    }
}

impl<S: PacketSink + ?Sized> PacketSink for Box<S> {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        (**self).write_packet(packet)
    }
}

/// Counts packets and bytes, writing nowhere (for dry runs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets seen.
    pub packets: u64,
    /// Frame bytes seen.
    pub bytes: u64,
    /// Packets per side: inside, outside.
    pub per_side: [u64; 2],
}

impl PacketSink for Counter {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        self.packets += 1;
        self.bytes += packet.data.len() as u64;
        self.per_side[packet.side.interface_id() as usize] += 1;
        Ok(())
    }
}

/// Timestamp resolution of a classic pcap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// Microseconds (magic 0xa1b2c3d4): what every tool reads.
    #[default]
    Micro,
    /// Nanoseconds (magic 0xa1b23c4d).
    Nano,
}

/// A classic pcap writer.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    resolution: Resolution,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header (Ethernet, snaplen 262144).
    pub fn new(mut out: W, resolution: Resolution) -> io::Result<Self> {
        let magic: u32 = match resolution {
            Resolution::Micro => 0xa1b2_c3d4,
            Resolution::Nano => 0xa1b2_3c4d,
        };
        let snaplen: u32 = 262_144;
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&magic.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            resolution,
            snaplen,
        })
    }

    /// Writes one record; data longer than the snaplen is cut to it.
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let (sec, frac) = match self.resolution {
            Resolution::Micro => (ts_ns / 1_000_000_000, (ts_ns % 1_000_000_000) / 1000),
            Resolution::Nano => (ts_ns / 1_000_000_000, ts_ns % 1_000_000_000),
        };
        let sec = u32::try_from(sec)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timestamp beyond 2106"))?;
        let orig = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let incl = orig.min(self.snaplen);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        h[8..12].copy_from_slice(&incl.to_le_bytes());
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..incl as usize])
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> PacketSink for PcapWriter<W> {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        self.write(packet.ts_ns, &packet.data)
    }
}

/// A pcapng writer (little-endian, one section).
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    interfaces: u32,
    buf: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    /// A writer with the two interfaces `inside` (0) and `outside` (1).
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_interfaces(out, &[Side::Inside.name(), Side::Outside.name()])
    }

    /// A writer with these interface names, ids in order.
    pub fn with_interfaces(mut out: W, names: &[&str]) -> io::Result<Self> {
        let mut b = Vec::new();
        // Section header: byte-order magic, version 1.0, unknown section length, and an
        // explicit end-of-options, as the conformance traces have it.
        block(&mut b, 0x0a0d_0d0a, |b| {
            b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&(-1i64).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        });
        for name in names {
            block(&mut b, 1, |b| {
                b.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes()); // snaplen: no limit
                option(b, 2, name.as_bytes()); // if_name
                option(b, 9, &[9]); // if_tsresol: 10^-9
                b.extend_from_slice(&0u32.to_le_bytes()); // opt_endofopt
            });
        }
        out.write_all(&b)?;
        let interfaces = u32::try_from(names.len()).unwrap_or(u32::MAX);
        Ok(PcapngWriter {
            out,
            interfaces,
            buf: Vec::with_capacity(2048),
        })
    }

    /// Writes one enhanced packet block on interface `iface`.
    pub fn write(&mut self, ts_ns: u64, iface: u32, data: &[u8]) -> io::Result<()> {
        if iface >= self.interfaces {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no such interface",
            ));
        }
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too large"))?;
        self.buf.clear();
        block(&mut self.buf, 6, |b| {
            b.extend_from_slice(&iface.to_le_bytes());
            b.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts_ns as u32).to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(data);
            pad4(b);
        });
        self.out.write_all(&self.buf)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> PacketSink for PcapngWriter<W> {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        self.write(packet.ts_ns, packet.side.interface_id(), &packet.data)
    }
}

/// Appends a block: type, length, body, length.
fn block(b: &mut Vec<u8>, ty: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = b.len();
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    body(b);
    let len = u32::try_from(b.len() - start + 4).unwrap_or(u32::MAX);
    b[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
}

fn option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    b.extend_from_slice(value);
    pad4(b);
}

fn pad4(b: &mut Vec<u8>) {
    b.resize(b.len().div_ceil(4) * 4, 0);
}

/// Sends each packet to the sink of its side.
#[derive(Debug)]
pub struct SplitBySide<A, B> {
    /// Receives inside packets.
    pub inside: A,
    /// Receives outside packets.
    pub outside: B,
}

impl<A: PacketSink, B: PacketSink> PacketSink for SplitBySide<A, B> {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        match packet.side {
            Side::Inside => self.inside.write_packet(packet),
            Side::Outside => self.outside.write_packet(packet),
        }
    }
}

/// Sends each packet to both sinks.
#[derive(Debug)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: PacketSink, B: PacketSink> PacketSink for Tee<A, B> {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        self.0.write_packet(packet)?;
        self.1.write_packet(packet)
    }
}

/// A capture file whose format follows its extension: `.pcapng` gives pcapng with the
/// `inside`/`outside` interfaces, anything else classic pcap.
#[derive(Debug)]
pub enum CaptureFile {
    /// Classic pcap.
    Pcap(PcapWriter<BufWriter<File>>),
    /// pcapng.
    Pcapng(PcapngWriter<BufWriter<File>>),
}

impl CaptureFile {
    /// Creates `path`; `resolution` applies to classic pcap only.
    pub fn create(path: &Path, resolution: Resolution) -> io::Result<Self> {
        let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let ng = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
        Ok(if ng {
            CaptureFile::Pcapng(PcapngWriter::new(out)?)
        } else {
            CaptureFile::Pcap(PcapWriter::new(out, resolution)?)
        })
    }

    /// Flushes everything to the file.
    pub fn finish(self) -> io::Result<()> {
        match self {
            CaptureFile::Pcap(w) => w.finish()?.flush(),
            CaptureFile::Pcapng(w) => w.finish()?.flush(),
        }
    }
}

impl PacketSink for CaptureFile {
    fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        match self {
            CaptureFile::Pcap(w) => w.write_packet(packet),
            CaptureFile::Pcapng(w) => w.write_packet(packet),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ts: u64, side: Side, len: usize) -> Packet {
        Packet {
            ts_ns: ts,
            side,
            data: (0..len).map(|i| i as u8).collect(),
        }
    }

    #[test]
    fn pcap_readable_by_pcap_file() {
        for res in [Resolution::Micro, Resolution::Nano] {
            let mut w = PcapWriter::new(Vec::new(), res).unwrap();
            w.write_packet(&pkt(1_700_000_000_123_456_789, Side::Inside, 60))
                .unwrap();
            w.write_packet(&pkt(1_700_000_001_000_000_001, Side::Outside, 61))
                .unwrap();
            let bytes = w.finish().unwrap();
            let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
            let a = r.next_packet().unwrap().unwrap();
            assert_eq!(a.data.len(), 60);
            let want = match res {
                Resolution::Micro => 123_456_000,
                Resolution::Nano => 123_456_789,
            };
            assert_eq!(a.timestamp.subsec_nanos(), want);
            let b = r.next_packet().unwrap().unwrap();
            assert_eq!(b.data.len(), 61);
            assert!(r.next_packet().is_none());
        }
    }

    #[test]
    fn pcapng_readable_by_pcap_file() {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.write_packet(&pkt(1_700_000_000_000_000_007, Side::Outside, 63))
            .unwrap();
        let bytes = w.finish().unwrap();
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut names = Vec::new();
        let mut seen = 0;
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(idb) => names.push(format!("{:?}", idb.options)),
                Block::EnhancedPacket(epb) => {
                    seen += 1;
                    assert_eq!(epb.interface_id, 1);
                    assert_eq!(epb.data.len(), 63);
                }
                _ => {}
            }
        }
        assert_eq!(seen, 1);
        assert_eq!(names.len(), 2);
        assert!(names[0].contains("inside") && names[1].contains("outside"));
    }

    #[test]
    fn split_and_count() {
        let mut s = SplitBySide {
            inside: Counter::default(),
            outside: Vec::new(),
        };
        s.write_packet(&pkt(1, Side::Inside, 10)).unwrap();
        s.write_packet(&pkt(2, Side::Outside, 10)).unwrap();
        s.write_packet(&pkt(3, Side::Inside, 10)).unwrap();
        assert_eq!(s.inside.packets, 2);
        assert_eq!(s.outside.len(), 1);
    }
}
