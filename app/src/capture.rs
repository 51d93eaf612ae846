//! Reading captures for `ctfw replay`: pcapng (interface names select ports) and classic pcap,
//! streamed packet by packet through the reader of `ctfw-capture`. Packets are not copied out
//! of the reader's buffer: they stay held there ([`Capture::frames`]) until
//! [`Capture::hold_from`] lets them go, so a burst is handed to the engine where it was read.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ctfw_capture::CaptureReader;

/// Link type of Ethernet frames: the only kind the engine parses.
const LINKTYPE_ETHERNET: u16 = 1;

/// What a packet came with besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Timestamp in nanoseconds since the epoch.
    pub ts_ns: u64,
    /// pcapng interface index (`None` for classic pcap).
    pub interface: Option<u32>,
}

/// An open capture.
pub struct Capture {
    reader: CaptureReader<File>,
    path: String,
}

impl Capture {
    /// Open `path` (format detected from its magic number).
    pub fn open(path: &Path) -> Result<Capture> {
        let mut reader = CaptureReader::open(path)
            .with_context(|| format!("cannot read capture {}", path.display()))?;
        reader.hold_from(0);
        Ok(Capture {
            reader,
            path: path.display().to_string(),
        })
    }

    /// Read the next packet: what came with it, and where it is in [`frames`](Self::frames);
    /// `None` at the end of the capture.
    pub fn next_held(&mut self) -> Result<Option<(Meta, Range<usize>)>> {
        let rec = self
            .reader
            .next_record()
            .with_context(|| format!("reading {}", self.path))?;
        let Some(rec) = rec else { return Ok(None) };
        if rec.link_type != LINKTYPE_ETHERNET {
            bail!(
                "{}: packet at offset {} has link type {}: only Ethernet (1) captures are supported",
                self.path,
                rec.offset,
                rec.link_type
            );
        }
        let meta = Meta {
            ts_ns: rec.ts_ns,
            interface: rec.interface,
        };
        let span = self
            .reader
            .last_held()
            .context("the capture reader did not hold the packet it read")?;
        Ok(Some((meta, span)))
    }

    /// The packets read and not let go by [`hold_from`](Self::hold_from).
    pub fn frames(&self) -> &[u8] {
        self.reader.held()
    }

    /// Let go of the packets before `at` in [`frames`](Self::frames); what is after `at` stays,
    /// `at` bytes earlier (everything, if `at` is `frames().len()`).
    pub fn hold_from(&mut self, at: usize) {
        self.reader.hold_from(at);
    }

    /// pcapng interfaces declared so far (0 for classic pcap).
    pub fn interface_count(&self) -> usize {
        self.reader.interfaces().len()
    }

    /// The name of pcapng interface `i`, if it has one.
    pub fn interface_name(&self, i: u32) -> Option<&str> {
        self.reader
            .interfaces()
            .get(i as usize)
            .and_then(|f| f.name.as_deref())
    }
}
