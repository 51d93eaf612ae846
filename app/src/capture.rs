//! Capture input for `ctfw replay`: pcap and pcapng files, read as a stream.
//!
//! The reader lives in `ctfw-tracegen` (`ctfw_tracegen::read`) so that one implementation is
//! compiled and tested there, against every conformance trace and against truncated and
//! mutated files; this module only re-exports it.
//!
//! What replay gets from it, per packet: `ts_ns` (nanoseconds since the epoch, whatever the
//! file's resolution), the pcapng interface id and `if_name` (`inside` / `outside` in the
//! conformance traces; `None` for classic pcap, where the caller assigns a side, e.g. from
//! a file per port), the link type, and the captured bytes borrowed from a reusable buffer:
//!
//! ```ignore
//! let mut reader = CaptureReader::open(path)?;
//! while let Some(rec) = reader.next_record()? {
//!     let side = rec.interface_name; // Some("inside") | Some("outside") | None
//!     process(rec.ts_ns, side, rec.data);
//! }
//! ```
//!
//! Errors are [`ReadError`]s carrying the byte offset of the bad record and an
//! [`ErrorKind`]; the reader never panics and stops after the first error.

pub use ctfw_tracegen::read::*;
