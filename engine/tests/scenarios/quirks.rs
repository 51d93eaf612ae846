//! Rarely travelled paths of `nf_conntrack_tcp_packet`, each derived from the kernel source:
//! ignored packets that still count as replies, `nf_tcp_handle_invalid`, the RFC 5961
//! challenge ACK in LAST_ACK, simultaneous open, a tuple equal to its own inverse, and the
//! re-opening of TIME_WAIT from either side.

use ctfw_engine::Reason;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::{Dir, TcpFlags, TcpSim};

use crate::common::*;

/// Records a crafted frame in the sim (which leaves its TCP state alone) and sends it now.
fn send(
    fw: &mut Fw,
    sim: &mut TcpSim,
    dir: Dir,
    f: &ctfw_tracegen::Frame,
) -> ctfw_engine::pipeline::Verdict {
    sim.push(dir, f);
    let p = sim.take_packets().remove(0);
    fw.pkt(&p)
}

/// SYN_SENT + a reply ACK is `sIG`: the packet is ignored (no state change, no refresh), but
/// `nf_conntrack_tcp_packet` returns `NF_ACCEPT`, so `nf_conntrack_in` still sets
/// IPS_SEEN_REPLY for this REPLY packet. From then on the client's packets are ESTABLISHED,
/// and a retransmitted SYN is refreshed: the "do not renew timeout on SYN retransmit" branch
/// only runs `if (!test_bit(IPS_SEEN_REPLY_BIT, &ct->status))`.
#[test]
fn an_ignored_reply_still_counts_as_a_reply() {
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    sim.syn();
    let syn = sim.take_packets().remove(0);
    assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);

    fw.advance(10 * SEC);
    let ack = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
    assert_fwd(
        &send(&mut fw, &mut sim, Dir::S2c, &ack),
        CtState::Established,
        INSIDE,
    );
    let view = fw.view(&syn.data).expect("entry");
    assert_eq!(view.tcp_state, Some(TcpState::SynSent));
    assert_eq!(
        (view.seen_reply, view.timeout),
        (true, 110),
        "ignored: no refresh"
    );

    fw.advance(10 * SEC);
    sim.syn();
    let again = sim.take_packets().remove(0);
    assert_fwd(&fw.pkt(&again), CtState::Established, OUTSIDE);
    assert_tcp(fw.view(&syn.data), TcpState::SynSent, 120);
}

/// `nf_tcp_handle_invalid`: on an ASSURED connection, an out-of-window FIN or RST that
/// answers an (also out-of-window) FIN or RST from the other side lowers the timeout to
/// UNACK (300 s): "We don't want to have connections hanging around in ESTABLISHED state for
/// long time 'just because' conntrack deemed a FIN/RST out-of-window." The first one only
/// records itself in `last_index` / `last_dir`.
#[test]
fn out_of_window_fin_and_rst_shorten_an_assured_connection() {
    for with_fin in [true, false] {
        let mut sim = TcpSim::default_v4();
        let mut fw = Fw::classic(64);
        let pkts = sim.handshake().exchange(100, 500).take_packets();
        fw.pkts(&pkts);
        let key = &pkts[0].data;
        assert_tcp(fw.view(key), TcpState::Established, 432_000);

        if with_fin {
            // 10 MB beyond the window: overshot > td_maxwin: INVALID, state unchanged.
            let mut fin = sim.craft(Dir::C2s, TcpFlags::FIN | TcpFlags::ACK, 0);
            fin.tcp_mut().expect("TCP").seq += 10_000_000;
            let v = send(&mut fw, &mut sim, Dir::C2s, &fin);
            assert_invalid(&v, Reason::TcpSeqOverWindow);
            assert_tcp(fw.view(key), TcpState::Established, 432_000);
        }
        fw.advance(SEC);
        // The server's RST: beyond the client's td_maxack (not an "invalid rst"), not an
        // exact match (state kept for a challenge ACK), then out of window in
        // tcp_in_window: INVALID, and nf_tcp_handle_invalid runs.
        let mut rst = sim.craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0);
        rst.tcp_mut().expect("TCP").seq += 10_000_000;
        let v = send(&mut fw, &mut sim, Dir::S2c, &rst);
        assert_invalid(&v, Reason::TcpSeqOverWindow);
        let want = if with_fin { 300 } else { 432_000 - 1 };
        assert_tcp(fw.view(key), TcpState::Established, want);
    }
}

/// RFC 5961: in LAST_ACK a new SYN from the client is ignored (`sIG`) and noted with
/// `IP_CT_EXP_CHALLENGE_ACK`; the server's challenge ACK that follows must not be taken for
/// the last ACK ("Detected RFC5961 challenge ACK": ignored, state kept). The client's real
/// last ACK then moves to TIME_WAIT. Without the SYN, the same server ACK is a last ACK.
#[test]
fn a_challenge_ack_in_last_ack_is_not_the_last_ack() {
    for with_syn in [true, false] {
        let mut sim = TcpSim::default_v4();
        let mut fw = Fw::classic(64);
        let pkts = sim
            .handshake()
            .exchange(10, 10)
            .fin_c2s()
            .fin_s2c()
            .take_packets();
        fw.pkts(&pkts);
        let key = &pkts[0].data;
        assert_tcp(fw.view(key), TcpState::LastAck, 30);
        fw.advance(SEC);
        if with_syn {
            let syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
            let v = send(&mut fw, &mut sim, Dir::C2s, &syn);
            assert_fwd(&v, CtState::Established, OUTSIDE);
            assert_tcp(fw.view(key), TcpState::LastAck, 29);
        }
        let challenge = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
        let v = send(&mut fw, &mut sim, Dir::S2c, &challenge);
        assert_fwd(&v, CtState::Established, INSIDE);
        if with_syn {
            assert_tcp(fw.view(key), TcpState::LastAck, 29);
            let last = sim.craft(Dir::C2s, TcpFlags::ACK, 0);
            let v = send(&mut fw, &mut sim, Dir::C2s, &last);
            assert_fwd(&v, CtState::Established, OUTSIDE);
        }
        assert_tcp(fw.view(key), TcpState::TimeWait, 120);
    }
}

/// Simultaneous open, both ways of finishing it:
/// SYN (orig): NONE -> SYN_SENT; SYN (reply): SYN_SENT -> SYN_SENT2, `last_flags |=
/// IP_CT_TCP_SIMULTANEOUS_OPEN`, not refreshed (still no reply seen, old state SYN_SENT);
/// SYN/ACK (orig): SYN_SENT2 -> SYN_RECV; SYN/ACK (reply): SYN_RECV -> `sIG`, ignored;
/// then either the client's ACK (orig: SYN_RECV -> ESTABLISHED) or the server's ACK (reply:
/// `sSR`, turned into ESTABLISHED because of the simultaneous-open flag). Both set ASSURED
/// (`old_state == TCP_CONNTRACK_SYN_RECV`, new ESTABLISHED, reply seen).
#[test]
fn simultaneous_open_reaches_established() {
    for client_acks_first in [true, false] {
        let mut sim = TcpSim::default_v4();
        let mut fw = Fw::classic(64);
        let (cisn, sisn) = (sim.endpoint(Dir::C2s).isn, sim.endpoint(Dir::S2c).isn);
        sim.syn();
        let syn = sim.take_packets().remove(0);
        let key = syn.data.clone();
        assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);

        fw.advance(SEC);
        let ssyn = sim.craft(Dir::S2c, TcpFlags::SYN, 0);
        let v = send(&mut fw, &mut sim, Dir::S2c, &ssyn);
        assert_fwd(&v, CtState::Established, INSIDE);
        assert_tcp(fw.view(&key), TcpState::SynSent2, 119);

        let mut csynack = sim.craft(Dir::C2s, TcpFlags::SYN | TcpFlags::ACK, 0);
        csynack.tcp_mut().expect("TCP").ack = sisn + 1;
        let v = send(&mut fw, &mut sim, Dir::C2s, &csynack);
        assert_fwd(&v, CtState::Established, OUTSIDE);
        assert_tcp(fw.view(&key), TcpState::SynRecv, 60);

        let mut ssynack = sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0);
        ssynack.tcp_mut().expect("TCP").ack = cisn + 1;
        let v = send(&mut fw, &mut sim, Dir::S2c, &ssynack);
        assert_fwd(&v, CtState::Established, INSIDE);
        assert_tcp(fw.view(&key), TcpState::SynRecv, 60);

        let (dir, seq, ack) = if client_acks_first {
            (Dir::C2s, cisn + 1, sisn + 1)
        } else {
            (Dir::S2c, sisn + 1, cisn + 1)
        };
        let f = sim.craft(dir, TcpFlags::ACK, 0).seq_ack(seq, ack);
        let v = send(&mut fw, &mut sim, dir, &f);
        assert_eq!(v.ct, Some(CtState::Established));
        assert!(v.forward.is_some());
        let view = fw.view(&key).expect("entry");
        assert_eq!(
            view.tcp_state,
            Some(TcpState::Established),
            "client first: {client_acks_first}"
        );
        assert!(view.assured, "client first: {client_acks_first}");
        assert_eq!(view.timeout, 432_000);
    }
}

/// A tuple equal to its own inverse (same address and port at both ends, as in a "LAND"
/// packet) has both of its tuplehashes in one hash chain. `__nf_conntrack_hash_insert` adds
/// the ORIGINAL one at the head, then the REPLY one at the head, and `____nf_conntrack_find`
/// returns the first match: every packet after the first is matched as REPLY
/// (`IP_CT_ESTABLISHED_REPLY`, which also sets IPS_SEEN_REPLY). For TCP the second SYN is
/// therefore a reply SYN: SYN_SENT -> SYN_SENT2.
#[test]
fn a_tuple_equal_to_its_inverse_is_matched_as_reply_like_linux() {
    use ctfw_engine::flow::Direction;
    use ctfw_tracegen::frame::Frame;
    let x = std::net::Ipv4Addr::new(10, 0, 2, 7);

    let udp = Frame::ipv4(x, x).udp(53, 53).payload(b"x").build();
    let mut fw = Fw::classic(64);
    assert_fwd(&fw.send(&udp, INSIDE), CtState::New, OUTSIDE);
    let v = fw.send(&udp, INSIDE);
    assert_eq!(
        (v.ct, v.dir),
        (Some(CtState::Established), Some(Direction::Reply)),
        "{v:?}"
    );
    assert!(fw.view(&udp).expect("entry").seen_reply);

    let syn = Frame::ipv4(x, x)
        .tcp(7000, 7000)
        .flags(TcpFlags::SYN)
        .seq_ack(1000, 0)
        .window(1000)
        .build();
    let mut fw = Fw::classic(64);
    assert_fwd(&fw.send(&syn, INSIDE), CtState::New, OUTSIDE);
    let v = fw.send(&syn, INSIDE);
    assert_eq!(
        (v.ct, v.dir),
        (Some(CtState::Established), Some(Direction::Reply)),
        "{v:?}"
    );
    assert_eq!(
        fw.view(&syn).and_then(|v| v.tcp_state),
        Some(TcpState::SynSent2)
    );
}

/// TIME_WAIT + SYN is `sSS`; the connection was closed by FINs (`IP_CT_TCP_FLAG_CLOSE_INIT`),
/// so `nf_conntrack_tcp_packet` kills the entry and returns `-NF_REPEAT`: the SYN is looked
/// up again and creates a fresh, unconfirmed entry with its sender as the originator. From
/// the client that entry is confirmed (NEW, accepted). From the server the SYN is NEW from
/// the outside: the classic policy drops it, the new entry is never confirmed, and the old
/// one is gone all the same (`nf_ct_kill` ran in PREROUTING).
#[test]
fn a_syn_reopens_time_wait_from_either_side() {
    for from_client in [true, false] {
        let mut sim = TcpSim::default_v4();
        let mut fw = Fw::classic(64);
        let pkts = sim.handshake().exchange(10, 10).close().take_packets();
        fw.pkts(&pkts);
        let key = &pkts[0].data;
        assert_tcp(fw.view(key), TcpState::TimeWait, 120);
        fw.advance(SEC);
        let dir = if from_client { Dir::C2s } else { Dir::S2c };
        let mut syn = sim.craft(dir, TcpFlags::SYN, 0);
        syn.tcp_mut().expect("TCP").seq = 0x1234_5678;
        let v = send(&mut fw, &mut sim, dir, &syn);
        assert_eq!(v.ct, Some(CtState::New), "{v:?}");
        if from_client {
            assert_fwd(&v, CtState::New, OUTSIDE);
            assert_tcp(fw.view(key), TcpState::SynSent, 120);
            let view = fw.view(key).expect("entry");
            assert!(!view.seen_reply && !view.assured);
        } else {
            assert_dropped(&v, Reason::DefaultPolicy);
            assert!(fw.view(key).is_none(), "the old entry was killed");
            assert!(fw.eng.table().is_empty());
        }
    }
}
