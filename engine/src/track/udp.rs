//! UDP tracking, after Linux 6.x `nf_conntrack_udp_packet` (`net/netfilter/nf_conntrack_proto_udp.c`).
//!
//! UDP has no states: an entry is `[UNREPLIED]` until the first reply, then merely "replied",
//! and becomes a *stream* (ASSURED, long timeout) when it is still active more than 2 s after it
//! was created. The kernel logic, quoted:
//!
//! ```text
//! if ((status & IPS_CONFIRMED) == 0)
//!         ct->proto.udp.stream_ts = 2 * HZ + jiffies;
//! if (status & IPS_SEEN_REPLY) {
//!         unsigned long extra = timeouts[UDP_CT_UNREPLIED];
//!         if (time_after(jiffies, ct->proto.udp.stream_ts)) {
//!                 extra = timeouts[UDP_CT_REPLIED];
//!                 stream = (status & IPS_ASSURED) == 0;
//!         }
//!         nf_ct_refresh_acct(ct, ctinfo, skb, extra);
//!         ... if (stream) set IPS_ASSURED
//! } else {
//!         nf_ct_refresh_acct(ct, ctinfo, skb, timeouts[UDP_CT_UNREPLIED]);
//! }
//! ```
//!
//! Invariants the caller keeps (as Linux's `nf_conntrack_in` does):
//! - `meta.flags` holds SEEN_REPLY as it was *before* this packet: the pipeline sets SEEN_REPLY
//!   after the tracker returns, so the first reply itself is still refreshed with the unreplied
//!   timeout and never makes a stream.
//! - Header checks (`udp_error`: short header, bad length, bad checksum) happen in the wire
//!   parser; a datagram that reaches [`UdpConn::packet`] is valid and always accepted.
//!
//! The `IPS_NAT_CLASH` case of the kernel (never ASSURED) does not arise: the engine does no NAT.

use crate::time::{Tick, Ticks};
use crate::track::{CtFlags, EntryMeta, OtherTimeouts};

/// How long after creation a replied flow must still be active to count as a stream
/// (Linux `stream_ts = 2 * HZ + jiffies`).
pub const STREAM_DELAY: Ticks = Ticks::from_secs(2);

/// UDP connection state: when the flow counts as a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpConn {
    /// Creation time plus 2 s (Linux `stream_ts`).
    pub stream_ts: Tick,
}

impl UdpConn {
    /// State for a datagram that creates an entry at `now`.
    ///
    /// Linux sets `stream_ts` while the entry is unconfirmed, i.e. from the packet that creates
    /// it; the entry is confirmed at the end of that packet's path, so this is creation time.
    #[inline]
    pub fn new(now: Tick) -> UdpConn {
        UdpConn {
            stream_ts: now.after(STREAM_DELAY),
        }
    }

    /// Linux `nf_conntrack_udp_packet`: refresh the deadline, set ASSURED for streams.
    /// `meta.flags` carries SEEN_REPLY as it was before this packet.
    #[inline]
    pub fn packet(&mut self, meta: &mut EntryMeta, now: Tick, t: &OtherTimeouts) {
        let extra = if meta.flags.seen_reply() {
            // `time_after(jiffies, stream_ts)`: strictly later than creation + 2 s.
            if now.is_after(self.stream_ts) {
                meta.flags.set(CtFlags::ASSURED);
                t.udp_stream
            } else {
                t.udp_unreplied
            }
        } else {
            t.udp_unreplied
        };
        meta.expires = now.after(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TICKS_PER_SEC;

    fn secs(s: f64) -> Tick {
        Tick((s * TICKS_PER_SEC as f64).round() as u32)
    }

    fn meta(flags: u8) -> EntryMeta {
        EntryMeta {
            flags: CtFlags(flags),
            expires: Tick(0),
        }
    }

    #[test]
    fn new_sets_stream_ts_two_seconds_after_creation() {
        assert_eq!(UdpConn::new(secs(10.0)).stream_ts, secs(12.0));
    }

    #[test]
    fn unreplied_packet_gets_unreplied_timeout_and_no_assured() {
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(0);
        c.packet(&mut m, secs(0.0), &t);
        assert_eq!(m.expires, secs(30.0));
        assert!(!m.flags.assured());
    }

    #[test]
    fn unreplied_packet_after_two_seconds_still_not_assured() {
        // Without SEEN_REPLY the age of the flow does not matter.
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(0);
        c.packet(&mut m, secs(50.0), &t);
        assert_eq!(m.expires, secs(80.0));
        assert!(!m.flags.assured());
    }

    #[test]
    fn replied_within_two_seconds_gets_unreplied_timeout() {
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(CtFlags::SEEN_REPLY);
        c.packet(&mut m, secs(1.0), &t);
        assert_eq!(m.expires, secs(31.0));
        assert!(!m.flags.assured());
    }

    #[test]
    fn replied_exactly_at_two_seconds_is_not_a_stream() {
        // time_after is strict: now == stream_ts is not after it.
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(CtFlags::SEEN_REPLY);
        c.packet(&mut m, secs(2.0), &t);
        assert_eq!(m.expires, secs(32.0));
        assert!(!m.flags.assured());
    }

    #[test]
    fn replied_one_tick_after_two_seconds_is_a_stream() {
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(CtFlags::SEEN_REPLY);
        let now = secs(2.0).after(Ticks(1));
        c.packet(&mut m, now, &t);
        assert_eq!(m.expires, now.after(Ticks::from_secs(120)));
        assert!(m.flags.assured());
    }

    #[test]
    fn assured_stream_keeps_stream_timeout_and_flag() {
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(CtFlags::SEEN_REPLY | CtFlags::ASSURED);
        c.packet(&mut m, secs(100.0), &t);
        assert_eq!(m.expires, secs(220.0));
        assert!(m.flags.assured() && m.flags.seen_reply());
    }

    #[test]
    fn configured_timeouts_are_used() {
        let t = OtherTimeouts {
            udp_unreplied: Ticks::from_secs(5),
            udp_stream: Ticks::from_secs(7),
            ..OtherTimeouts::default()
        };
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(0);
        c.packet(&mut m, secs(0.0), &t);
        assert_eq!(m.expires, secs(5.0));
        m.flags.set(CtFlags::SEEN_REPLY);
        c.packet(&mut m, secs(3.0), &t);
        assert_eq!(m.expires, secs(10.0));
    }

    #[test]
    fn stream_detection_survives_tick_wrap() {
        let t = OtherTimeouts::default();
        let start = Tick(u32::MAX - 100);
        let mut c = UdpConn::new(start);
        let mut m = meta(CtFlags::SEEN_REPLY);
        c.packet(&mut m, start.after(Ticks::from_secs(3)), &t);
        assert!(m.flags.assured());
    }

    /// Replays `expected/classic-loose1-liberal0/udp_stream_assured.jsonl` of the conformance
    /// set: (t, direction is reply, kernel timeout after the packet, kernel flags). The kernel
    /// ran slower than the trace, so its whole-second timeouts may be up to ~1 s lower; compare
    /// with the 2 s tolerance `compare.py` uses, and the flags exactly.
    #[test]
    fn matches_kernel_udp_stream_assured_trace() {
        // (t, is_reply, timeout, unreplied, assured)
        const KERNEL: [(f64, bool, u32, bool, bool); 5] = [
            (0.0, false, 29, true, false),
            (0.003, true, 29, false, false),
            (2.503, false, 119, false, true),
            (2.506, true, 120, false, true),
            (2.509, false, 120, false, true),
        ];
        let t = OtherTimeouts::default();
        let mut c = UdpConn::new(secs(0.0));
        let mut m = meta(0);
        for (i, &(at, is_reply, timeout, unreplied, assured)) in KERNEL.iter().enumerate() {
            let now = secs(at);
            c.packet(&mut m, now, &t);
            // The pipeline's part, as in nf_conntrack_in: SEEN_REPLY after the tracker.
            if is_reply {
                m.flags.set(CtFlags::SEEN_REPLY);
            }
            let left = m.expires.remaining(now).whole_secs();
            assert!(
                left.abs_diff(timeout) <= 2,
                "packet {i}: timeout {left} vs kernel {timeout}"
            );
            assert_eq!(!m.flags.seen_reply(), unreplied, "packet {i}: UNREPLIED");
            assert_eq!(m.flags.assured(), assured, "packet {i}: ASSURED");
        }
    }
}
