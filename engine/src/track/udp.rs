//! UDP tracking, after Linux `nf_conntrack_proto_udp.c`. (Skeleton: its owner replaces it.)

use crate::time::Tick;
use crate::track::{EntryMeta, OtherTimeouts};

/// UDP connection state: when the flow counts as a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpConn {
    /// Creation time plus 2 s (Linux `stream_ts`).
    pub stream_ts: Tick,
}

impl UdpConn {
    /// State for a datagram that creates an entry at `now`.
    pub fn new(_now: Tick) -> UdpConn {
        todo!("owner of track/udp.rs")
    }

    /// Linux `nf_conntrack_udp_packet`: refresh the deadline, set ASSURED for streams.
    /// `meta.flags` carries SEEN_REPLY as it was before this packet.
    pub fn packet(&mut self, _meta: &mut EntryMeta, _now: Tick, _t: &OtherTimeouts) {
        todo!("owner of track/udp.rs")
    }
}
