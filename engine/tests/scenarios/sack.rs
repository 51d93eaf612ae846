//! Selective acknowledgments in `tcp_in_window`.
//!
//! Kernel facts used (`nf_conntrack_proto_tcp.c`):
//! - `if (receiver->flags & IP_CT_TCP_FLAG_SACK_PERM) tcp_sack(skb, dataoff, tcph, &sack);`:
//!   the SACK blocks of a segment count only when the *receiver* of the segment (the data
//!   sender) put SACK-permitted in its SYN (`tcp_options`); `tcp_sack` raises `sack` to the
//!   highest right edge;
//! - bound III: `if (!before(sack, receiver->td_end + 1))` -> "ACK is over upper bound",
//!   INVALID;
//! - updates: `swin = win + (sack - ack)` raises the sender's `td_maxwin`, and
//!   `receiver->td_maxend = sack + win` raises the data sender's upper bound.
//!
//! No window scaling here: the windows are the raw fields. Client ISN C = 1_000_000.

use ctfw_engine::Reason;
use ctfw_engine::flow::Direction;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::{SeqNumber, TcpState};
use ctfw_tracegen::{Dir, TcpFlags, TcpOption, TcpSim};

use crate::common::*;

const C: u32 = 1_000_000;

/// Handshake, then three 1000-byte client segments (client td_end = C+3001), all fed to a
/// classic engine. `sack` says whether both ends offer SACK-permitted.
fn setup(sack: bool) -> (Fw, TcpSim, Vec<u8>) {
    let mut sim = TcpSim::default_v4().wscale(None, None).sack(sack);
    sim.handshake().data_c2s(1000).data_c2s(1000).data_c2s(1000);
    let pkts = sim.take_packets();
    let mut fw = Fw::classic(64);
    let v = fw.pkts(&pkts);
    assert_fwd(&v[0], CtState::New, OUTSIDE);
    for (v, p) in v.iter().zip(&pkts).skip(1) {
        assert_fwd_pkt(v, CtState::Established, p);
    }
    (fw, sim, pkts[0].data.clone())
}

/// A server ACK for C+1001 (the first segment) with the given SACK blocks.
fn server_sack(sim: &TcpSim, blocks: Vec<(u32, u32)>) -> Vec<u8> {
    let mut f = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
    let t = f.tcp_mut().expect("a TCP frame");
    t.ack = C + 1001;
    t.options = vec![TcpOption::Nop, TcpOption::Nop, TcpOption::Sack(blocks)];
    f.build()
}

#[test]
fn sack_blocks_raise_the_senders_upper_bound_only_with_sack_permitted() {
    for sack in [true, false] {
        let (mut fw, sim, key) = setup(sack);
        // Before: td_maxend = C+1+64240 (SYN/ACK), the server's td_maxwin = 64240.
        let conn = fw.tcp(&key).expect("entry");
        assert_eq!(
            conn.window(Direction::Original).td_maxend,
            SeqNumber(C + 1 + 64240)
        );
        let v = fw.send(&server_sack(&sim, vec![(C + 2001, C + 3001)]), OUTSIDE);
        assert_fwd(&v, CtState::Established, INSIDE);
        let conn = fw.tcp(&key).expect("entry");
        let (maxend, maxwin) = if sack {
            // sack = C+3001: td_maxend = sack + win = C+3001+64256; swin = 64256 + 2000.
            (C + 3001 + 64256, 64256 + 2000)
        } else {
            // Blocks ignored: sack = ack = C+1001: td_maxend = C+1001+64256; swin = 64256.
            (C + 1001 + 64256, 64256)
        };
        assert_eq!(
            conn.window(Direction::Original).td_maxend,
            SeqNumber(maxend),
            "sack={sack}"
        );
        assert_eq!(
            conn.window(Direction::Reply).td_maxwin,
            maxwin,
            "sack={sack}"
        );
    }
}

#[test]
fn a_sack_block_beyond_the_data_sent_is_invalid_only_with_sack_permitted() {
    for sack in [true, false] {
        let (mut fw, sim, key) = setup(sack);
        // The block's right edge C+5001 lies beyond the client's td_end (C+3001).
        let v = fw.send(&server_sack(&sim, vec![(C + 3001, C + 5001)]), OUTSIDE);
        if sack {
            // tcp_sack: sack = C+5001; bound III fails: "ACK is over upper bound".
            assert_invalid(&v, Reason::TcpAckOverWindow);
        } else {
            // The client never permitted SACK: tcp_sack is not called, sack = ack = C+1001.
            assert_fwd(&v, CtState::Established, INSIDE);
        }
        // Either way the connection goes on: the INVALID path returned before any update.
        let mut sim = sim;
        sim.ack_s2c();
        for p in sim.take_packets() {
            assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
        }
        assert_tcp(fw.view(&key), TcpState::Established, 432_000);
    }
}

#[test]
fn only_the_highest_right_edge_of_the_first_sack_option_counts() {
    // tcp_sack walks every block of the first SACK option and keeps the highest right edge:
    // a block beyond td_end anywhere in the option makes the segment INVALID.
    let (mut fw, sim, _) = setup(true);
    let blocks = vec![
        (C + 2001, C + 2501),
        (C + 3001, C + 3002),
        (C + 2501, C + 3001),
    ];
    let v = fw.send(&server_sack(&sim, blocks), OUTSIDE);
    assert_invalid(&v, Reason::TcpAckOverWindow);
    // Right edges all within td_end: fine.
    let blocks = vec![(C + 2001, C + 2501), (C + 2501, C + 3001)];
    let v = fw.send(&server_sack(&sim, blocks), OUTSIDE);
    assert_fwd(&v, CtState::Established, INSIDE);
}

#[test]
fn loss_recovery_with_sack_stays_established() {
    // A realistic loss: the second segment is lost after the firewall, the server SACKs the
    // third, the client retransmits, the server acknowledges everything.
    let mut sim = TcpSim::default_v4().sack(true);
    sim.handshake()
        .data_c2s(1448)
        .lose_next(Dir::C2s)
        .data_c2s(1448)
        .data_c2s(1448)
        .data_c2s(1448)
        .ack_s2c()
        .retransmit(Dir::C2s)
        .ack_s2c()
        .data_s2c(500)
        .ack_c2s();
    let pkts = sim.take_packets();
    let mut fw = Fw::classic(64);
    for (i, p) in pkts.iter().enumerate() {
        let v = fw.pkt(p);
        let ct = if i == 0 {
            CtState::New
        } else {
            CtState::Established
        };
        assert_fwd_pkt(&v, ct, p);
    }
    assert_tcp(fw.view(&pkts[0].data), TcpState::Established, 432_000);
}
