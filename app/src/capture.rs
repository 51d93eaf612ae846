//! Reading captures for `ctfw replay`: pcapng (interface names select ports) and classic pcap,
//! streamed packet by packet through the reader of `ctfw-capture`.

use std::fs::File;
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
        let reader = CaptureReader::open(path)
            .with_context(|| format!("cannot read capture {}", path.display()))?;
        Ok(Capture {
            reader,
            path: path.display().to_string(),
        })
    }

    /// Copy the next packet into `buf`; `None` at the end of the capture.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<Meta>> {
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
        buf.clear();
        buf.extend_from_slice(rec.data);
        Ok(Some(Meta {
            ts_ns: rec.ts_ns,
            interface: rec.interface,
        }))
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
