//! RSTs that answer a segment conntrack ignored and noted (`TCP_CONNTRACK_IGNORE`), from
//! either side. `nf_conntrack_tcp_packet`, `case TCP_CONNTRACK_CLOSE` (6.18.35 and later):
//!
//! ```c
//! if (((test_bit(IPS_SEEN_REPLY_BIT, &ct->status)
//!       && ct->proto.tcp.last_index == TCP_SYN_SET
//!       && ct->proto.tcp.last_dir != dir)          /* bed6e04be8e6 */
//!      || (!test_bit(IPS_ASSURED_BIT, &ct->status)
//!          && ct->proto.tcp.last_index == TCP_ACK_SET))
//!     && ntohl(th->ack_seq) == ct->proto.tcp.last_end) {
//!         /* RST sent to invalid SYN or ACK we had let through ... */
//!         goto in_window;                        /* no tcp_in_window() */
//! }
//! ```
//!
//! Before that fix, the side that sent the ignored SYN could also send an RST acknowledging
//! its own SYN and tear down an ESTABLISHED, ASSURED entry. Every expectation below was
//! also observed on Linux 6.18.44 (a netns router with the classic rule set, the same
//! frames): the `rst-*` traces of `tests/kernel-recorded/`, which CI replays.

use ctfw_engine::Reason;
use ctfw_engine::pipeline::Verdict;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::{Dir, Frame, TcpFlags, TcpSim};

use crate::common::*;

const CLIENT_ISN: u32 = 1_000_000;
const SERVER_ISN: u32 = 5_000_000;

/// Records a crafted frame in the sim (which leaves its TCP state alone) and sends it now.
fn send(fw: &mut Fw, sim: &mut TcpSim, dir: Dir, f: &Frame) -> Verdict {
    sim.push(dir, f);
    let p = sim.take_packets().remove(0);
    fw.pkt(&p)
}

/// An ESTABLISHED, ASSURED connection after some data, then a client SYN with a new ISN on
/// the same tuple: `tcp_conntracks[ORIGINAL][SYN][ESTABLISHED]` is `sIG`, so the SYN is
/// forwarded as ESTABLISHED without a state change and noted as the last segment
/// (`last_index = TCP_SYN_SET`, `last_dir = ORIGINAL`, `last_end = isn2 + 1`).
fn established_then_new_syn(isn2: u32) -> (Fw, TcpSim, Vec<u8>) {
    let mut sim = TcpSim::default_v4().isn(CLIENT_ISN, SERVER_ISN);
    let mut fw = Fw::classic(64);
    let pkts = sim.handshake().exchange(100, 500).take_packets();
    fw.pkts(&pkts);
    let key = pkts[0].data.clone();
    assert_tcp(fw.view(&key), TcpState::Established, 432_000);

    fw.advance(SEC);
    let mut syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
    syn.tcp_mut().expect("TCP").seq = isn2;
    let v = send(&mut fw, &mut sim, Dir::C2s, &syn);
    assert_fwd(&v, CtState::Established, OUTSIDE);
    assert_tcp(fw.view(&key), TcpState::Established, 432_000 - 1);
    (fw, sim, key)
}

/// An RST|ACK from `dir` acknowledging the noted SYN (`ack = isn2 + 1`), with the sender's
/// current sequence number or, with `seq_of_new_syn`, the new connection's (`isn2 + 1`).
fn rst_acking(sim: &TcpSim, dir: Dir, isn2: u32, seq_of_new_syn: bool) -> Frame {
    let mut rst = sim.craft(dir, TcpFlags::RST | TcpFlags::ACK, 0);
    let t = rst.tcp_mut().expect("TCP");
    t.ack = isn2.wrapping_add(1);
    if seq_of_new_syn {
        t.seq = isn2.wrapping_add(1);
    }
    rst
}

/// The connection still works: a request and a response pass as ESTABLISHED, and the entry
/// is ESTABLISHED and ASSURED.
fn still_established(fw: &mut Fw, sim: &mut TcpSim, key: &[u8]) {
    for p in sim.exchange(100, 500).take_packets() {
        assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
    }
    let view = fw.view(key).expect("entry");
    assert_eq!(view.tcp_state, Some(TcpState::Established));
    assert!(view.assured, "still ASSURED: {view:?}");
}

/// The answer from the other side (the server resets the new connection attempt): accepted
/// without window checks, the entry goes to CLOSE with the close timeout (10 s).
#[test]
fn the_peer_answering_an_ignored_syn_with_rst_closes() {
    let isn2 = 1_500_000_000;
    let (mut fw, mut sim, key) = established_then_new_syn(isn2);
    fw.advance(SEC);
    let rst = rst_acking(&sim, Dir::S2c, isn2, false);
    let v = send(&mut fw, &mut sim, Dir::S2c, &rst);
    assert_fwd(&v, CtState::Established, INSIDE);
    assert_tcp(fw.view(&key), TcpState::Close, 10);
}

/// The same RST from the SYN's own side is no answer (`last_dir == dir`): it goes through
/// `tcp_in_window`, whose verdict decides. Here `ack = isn2 + 1` lies beyond what the server
/// has sent (`!before(sack, receiver->td_end + 1)`), or the sequence number of the new SYN
/// lies beyond the client's window (`!before(seq, sender->td_maxend + 1)`): INVALID, dropped
/// by `invalid_drop`; `nf_tcp_handle_invalid` only notes the RST. The entry keeps its state,
/// its timeout and ASSURED, and the connection goes on.
#[test]
fn the_syn_sender_cannot_close_the_entry_with_its_own_rst() {
    let isn2 = 1_500_000_000; // after the server's sequence space: ACK over the window
    for (seq_of_new_syn, why) in [
        (false, Reason::TcpAckOverWindow),
        (true, Reason::TcpSeqOverWindow),
    ] {
        let (mut fw, mut sim, key) = established_then_new_syn(isn2);
        fw.advance(SEC);
        let rst = rst_acking(&sim, Dir::C2s, isn2, seq_of_new_syn);
        let v = send(&mut fw, &mut sim, Dir::C2s, &rst);
        assert_invalid(&v, why);
        assert_tcp(fw.view(&key), TcpState::Established, 432_000 - 2);
        still_established(&mut fw, &mut sim, &key);
    }
}

/// When `ack = isn2 + 1` lies far behind the server's sequence space, `tcp_in_window` calls
/// the same-side RST an overly delayed ACK ("ignored ACK under lower bound") or old data:
/// `NFCT_TCP_IGNORE`, forwarded as ESTABLISHED with no state or timeout change. It still
/// cannot close the entry.
#[test]
fn a_same_side_rst_far_behind_the_window_is_ignored() {
    let isn2 = 3_500_000_000; // before the server's sequence space (mod 2^32)
    for seq_of_new_syn in [false, true] {
        let (mut fw, mut sim, key) = established_then_new_syn(isn2);
        fw.advance(SEC);
        let rst = rst_acking(&sim, Dir::C2s, isn2, seq_of_new_syn);
        let v = send(&mut fw, &mut sim, Dir::C2s, &rst);
        assert_fwd(&v, CtState::Established, OUTSIDE);
        assert_tcp(fw.view(&key), TcpState::Established, 432_000 - 2);
        still_established(&mut fw, &mut sim, &key);
    }
}

/// The ACK case (c) has no direction condition: after a bare ACK from the server in
/// SYN_SENT (`sIG`, noted with `last_end` = its sequence number), an RST with that
/// acknowledgment number closes the connection, from either side, because the connection
/// is not ASSURED. A new SYN from the client then re-opens the tuple after a client RST
/// (`last_dir == dir` of the RST: the "closed by us" re-open condition), and is an
/// ESTABLISHED packet of the CLOSE entry after a server RST.
#[test]
fn an_rst_after_an_ignored_ack_closes_from_either_side() {
    for rst_dir in [Dir::S2c, Dir::C2s] {
        let mut sim = TcpSim::default_v4().isn(CLIENT_ISN, SERVER_ISN);
        let mut fw = Fw::classic(64);
        let syn = sim.syn().take_packets().remove(0);
        assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);
        let key = syn.data.clone();

        let mut ack = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
        let t = ack.tcp_mut().expect("TCP");
        (t.seq, t.ack) = (SERVER_ISN, CLIENT_ISN + 1);
        let v = send(&mut fw, &mut sim, Dir::S2c, &ack);
        assert_fwd(&v, CtState::Established, INSIDE);
        assert_tcp(fw.view(&key), TcpState::SynSent, 120);

        let mut rst = sim.craft(rst_dir, TcpFlags::RST | TcpFlags::ACK, 0);
        let t = rst.tcp_mut().expect("TCP");
        t.ack = SERVER_ISN;
        t.seq = match rst_dir {
            Dir::C2s => CLIENT_ISN + 1,
            Dir::S2c => SERVER_ISN,
        };
        let v = send(&mut fw, &mut sim, rst_dir, &rst);
        assert_fwd(&v, CtState::Established, peer_of(rst_dir.side()));
        assert_tcp(fw.view(&key), TcpState::Close, 10);

        let mut again = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
        again.tcp_mut().expect("TCP").seq = CLIENT_ISN;
        let v = send(&mut fw, &mut sim, Dir::C2s, &again);
        match rst_dir {
            Dir::C2s => {
                assert_fwd(&v, CtState::New, OUTSIDE);
                assert_tcp(fw.view(&key), TcpState::SynSent, 120);
            }
            Dir::S2c => {
                assert_fwd(&v, CtState::Established, OUTSIDE);
                assert_tcp(fw.view(&key), TcpState::Close, 10);
            }
        }
    }
}
