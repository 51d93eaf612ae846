//! Large transfers: 10 MiB each way in MSS-sized segments, delayed ACKs, a receive window
//! that grows, and initial sequence numbers just below 2^32 so that both directions wrap.
//!
//! Every segment is legitimate, so `tcp_in_window` must accept each one: the sender never
//! sends beyond the last window the receiver advertised (bound I), ACKs acknowledge exactly
//! what was sent (bound III), nothing is older than `MAXACKWINDOW` (bounds II and IV), and all
//! of it compares modulo 2^32 (`before()` / `after()`). At the end both directions have been
//! acknowledged completely, so `IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED` is clear on both sides
//! (`if (ack == receiver->td_end) receiver->flags &= ~...`), no ACK was repeated
//! (`retrans` is 0) and the last window is not zero: the timeout is the ESTABLISHED one,
//! 5 days (`nf_conntrack_tcp_packet`), and the handshake made the entry ASSURED.

use ctfw_engine::flow::Direction;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::{SeqNumber, TcpState};
use ctfw_tracegen::{Dir, TcpFlags, TcpSim};

use crate::common::*;

const MSS: u32 = 1460;
const TOTAL: u32 = 10 << 20;
const WSCALE: u8 = 7;
const MAX_WINDOW: u32 = 4 << 20;

/// One direction of the transfer.
#[derive(Debug)]
struct Flow {
    dir: Dir,
    sent: u32,
    acked: u32,
    /// The receiver's advertised window, in bytes.
    rwnd: u32,
    /// Segments per burst (slow-start-like growth).
    cwnd: u32,
}

/// Sends one burst in `f.dir`, then the receiver's delayed ACKs (one per two segments, and
/// one for an odd last segment), each advertising a window two segments larger.
fn round(sim: &mut TcpSim, f: &mut Flow) {
    let mut ends = Vec::new();
    // ISN + 1 of this direction: next_seq is ISN + 1 + bytes sent.
    let stream_start = sim.next_seq(f.dir).wrapping_sub(f.sent);
    let mut n = 0;
    while n < f.cwnd && f.sent < TOTAL && f.sent - f.acked + MSS <= f.rwnd {
        let len = MSS.min(TOTAL - f.sent);
        sim.data(f.dir, len);
        f.sent += len;
        ends.push(f.sent);
        n += 1;
    }
    f.cwnd = (f.cwnd * 2).min(64);
    let rx = f.dir.reverse();
    for pair in ends.chunks(2) {
        let acked = *pair.last().expect("chunks are never empty");
        f.rwnd = (f.rwnd + 2 * MSS).min(MAX_WINDOW);
        let mut ack = sim.craft(rx, TcpFlags::ACK, 0);
        let t = ack.tcp_mut().expect("a TCP frame");
        // The acknowledgment number `acked` bytes into this direction's stream.
        t.ack = stream_start.wrapping_add(acked);
        t.window = u16::try_from(f.rwnd >> WSCALE).expect("window fits the field");
        sim.push(rx, &ack);
        f.acked = acked;
    }
}

#[test]
fn ten_megabytes_each_way_with_wrapping_sequence_numbers() {
    let (cisn, sisn) = (0xffff_0000_u32, 0xffff_ff00_u32);
    let mut sim = TcpSim::default_v4()
        .isn(cisn, sisn)
        .wscale(Some(WSCALE), Some(WSCALE))
        .client_config(|c| c.window = 64 << 10)
        .server_config(|s| s.window = 64 << 10);
    sim.handshake();
    let mut fw = Fw::classic(64);
    let mut key = None;
    let mut flows = [Dir::C2s, Dir::S2c].map(|dir| Flow {
        dir,
        sent: 0,
        acked: 0,
        rwnd: 64 << 10,
        cwnd: 2,
    });
    let mut packets = 0u64;
    let mut feed = |fw: &mut Fw, sim: &mut TcpSim, first: bool| {
        for (i, p) in sim.take_packets().iter().enumerate() {
            // Packet timestamps advance by half an RTT each (3 ms): follow them.
            fw.advance(1);
            let v = fw.pkt(p);
            let ct = if first && i == 0 {
                CtState::New
            } else {
                CtState::Established
            };
            assert_fwd_pkt(&v, ct, p);
            if key.is_none() {
                key = Some(p.data.clone());
            }
            packets += 1;
        }
    };
    feed(&mut fw, &mut sim, true);
    while flows.iter().any(|f| f.acked < TOTAL) {
        for f in &mut flows {
            round(&mut sim, f);
            feed(&mut fw, &mut sim, false);
        }
    }
    let key = key.expect("the SYN");
    // Every byte in both directions, sequence numbers wrapped once.
    let conn = fw.tcp(&key).expect("entry");
    assert_eq!(
        conn.window(Direction::Original).td_end,
        SeqNumber(cisn.wrapping_add(1).wrapping_add(TOTAL))
    );
    assert_eq!(
        conn.window(Direction::Reply).td_end,
        SeqNumber(sisn.wrapping_add(1).wrapping_add(TOTAL))
    );
    let view = fw.view(&key).expect("entry");
    assert!(view.assured && view.seen_reply, "{view:?}");
    assert_tcp(Some(view), TcpState::Established, 432_000);
    let c = fw.counters();
    assert_eq!((c.packets, c.accepted, c.dropped), (packets, packets, 0));
    assert_eq!(c.created, 1);
    fw.check();
}
