//! Packets the TCP tracker lets through without updating their connection, one test per
//! [`Ignored`] reason: `nf_conntrack_tcp_packet` returns `NF_ACCEPT` before
//! `nf_ct_refresh_acct` (`TCP_CONNTRACK_IGNORE`, `tcp_in_window`'s `NFCT_TCP_IGNORE`, and the
//! SYN retransmitted in SYN_SENT). Each is forwarded with its conntrack state, as Linux
//! forwards it under the classic rules, leaves the entry's state and deadline alone, and is
//! counted under its reason and no other; none is INVALID.

use ctfw_engine::Ignored;
use ctfw_engine::flow::Direction;
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

/// Asserts `v` was ignored for `why`, forwarded as `ct` to the peer of `dir`'s side, and that
/// the engine has counted exactly one packet ignored, for `why`; the entry of `key` is still
/// in `state` with `timeout` seconds left.
#[track_caller]
fn assert_ignored(
    fw: &Fw,
    v: &Verdict,
    why: Ignored,
    ct: CtState,
    dir: Dir,
    key: &[u8],
    (state, timeout): (TcpState, u32),
) {
    assert_eq!(v.ignored, Some(why), "{v:?}");
    assert_fwd(v, ct, peer_of(dir.side()));
    for &r in Ignored::ALL {
        let want = u64::from(r == why);
        assert_eq!(fw.counters().ignored(r), want, "{r}: {:?}", fw.counters());
    }
    assert_tcp(fw.view(key), state, timeout);
}

/// A connection through the handshake and one exchange: ESTABLISHED, ASSURED, 5 days.
fn established(sim: &mut TcpSim) -> (Fw, Vec<u8>) {
    let mut fw = Fw::classic(64);
    let pkts = sim.handshake().exchange(100, 500).take_packets();
    for p in &pkts {
        let v = fw.pkt(p);
        assert!(v.forward.is_some() && v.ignored.is_none(), "{v:?}");
    }
    let key = pkts[0].data.clone();
    assert_tcp(fw.view(&key), TcpState::Established, 432_000);
    (fw, key)
}

fn sim() -> TcpSim {
    TcpSim::default_v4().isn(CLIENT_ISN, SERVER_ISN)
}

#[test]
fn a_syn_retransmitted_before_any_answer_keeps_its_deadline() {
    let mut sim = sim();
    let mut fw = Fw::classic(64);
    let syn = sim.syn().take_packets().remove(0);
    assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);
    fw.advance(3 * SEC);
    let v = fw.pkt(&syn);
    let left = (TcpState::SynSent, 120 - 3);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpSynRetransmit,
        CtState::New,
        Dir::C2s,
        &syn.data,
        left,
    );
}

#[test]
fn an_ack_before_the_synack_is_a_half_open_connection() {
    let mut sim = sim();
    let mut fw = Fw::classic(64);
    let syn = sim.syn().take_packets().remove(0);
    assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);
    let mut ack = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
    let t = ack.tcp_mut().expect("TCP");
    (t.seq, t.ack) = (SERVER_ISN, CLIENT_ISN + 1);
    let v = send(&mut fw, &mut sim, Dir::S2c, &ack);
    let left = (TcpState::SynSent, 120);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpUnexpectedAck,
        CtState::Established,
        Dir::S2c,
        &syn.data,
        left,
    );
}

#[test]
fn a_new_syn_on_an_established_connection_is_noted() {
    let mut sim = sim();
    let (mut fw, key) = established(&mut sim);
    fw.advance(SEC);
    let mut syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
    syn.tcp_mut().expect("TCP").seq = 1_500_000_000;
    let v = send(&mut fw, &mut sim, Dir::C2s, &syn);
    let left = (TcpState::Established, 432_000 - 1);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpUnexpectedSyn,
        CtState::Established,
        Dir::C2s,
        &key,
        left,
    );
}

#[test]
fn a_synack_answering_no_syn_is_ignored() {
    let mut sim = sim();
    let (mut fw, key) = established(&mut sim);
    fw.advance(SEC);
    let mut synack = sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0);
    let t = synack.tcp_mut().expect("TCP");
    (t.seq, t.ack) = (777_000_000, 888_000_000);
    let v = send(&mut fw, &mut sim, Dir::S2c, &synack);
    let left = (TcpState::Established, 432_000 - 1);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpUnmatchedSynAck,
        CtState::Established,
        Dir::S2c,
        &key,
        left,
    );
}

#[test]
fn a_challenge_ack_in_last_ack_is_not_the_last_ack() {
    let mut sim = sim();
    let (mut fw, key) = established(&mut sim);
    for p in sim.fin_c2s().fin_s2c().take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    assert_eq!(fw.tcp(&key).map(|c| c.state()), Some(TcpState::LastAck));
    // A SYN on the tuple in LAST_ACK is noted (and counted as unexpected), then the server's
    // RFC 5961 challenge ACK must not move the connection to TIME_WAIT.
    let mut syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
    syn.tcp_mut().expect("TCP").seq = 1_500_000_000;
    let v = send(&mut fw, &mut sim, Dir::C2s, &syn);
    assert_eq!(v.ignored, Some(Ignored::TcpUnexpectedSyn), "{v:?}");
    let challenge = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
    let v = send(&mut fw, &mut sim, Dir::S2c, &challenge);
    assert_eq!(v.ignored, Some(Ignored::TcpChallengeAck), "{v:?}");
    assert_fwd(&v, CtState::Established, INSIDE);
    assert_eq!(fw.counters().ignored(Ignored::TcpChallengeAck), 1);
    assert_eq!(fw.tcp(&key).map(|c| c.state()), Some(TcpState::LastAck));
}

#[test]
fn data_just_past_the_window_is_tolerated_and_ignored() {
    let mut sim = sim();
    let (mut fw, key) = established(&mut sim);
    let maxend = fw
        .tcp(&key)
        .expect("TCP")
        .window(Direction::Original)
        .td_maxend;
    let mut data = sim.craft(Dir::C2s, TcpFlags::PSH | TcpFlags::ACK, 100);
    data.tcp_mut().expect("TCP").seq = maxend.0 + 1;
    let v = send(&mut fw, &mut sim, Dir::C2s, &data);
    let left = (TcpState::Established, 432_000);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpWindowOverrun,
        CtState::Established,
        Dir::C2s,
        &key,
        left,
    );
}

#[test]
fn data_acknowledged_long_ago_sent_again_is_ignored() {
    // Without window scaling the windows stay below 64 KiB: 200 KB later, the first bytes
    // lie below the receiver's window.
    let mut sim = sim().wscale(None, None);
    let (mut fw, key) = established(&mut sim);
    for p in (0..200).flat_map(|_| sim.data_c2s(1000).ack_s2c().take_packets()) {
        assert!(fw.pkt(&p).forward.is_some());
    }
    fw.advance(SEC);
    let mut old = sim.craft(Dir::C2s, TcpFlags::PSH | TcpFlags::ACK, 100);
    old.tcp_mut().expect("TCP").seq = CLIENT_ISN + 1;
    let v = send(&mut fw, &mut sim, Dir::C2s, &old);
    let left = (TcpState::Established, 432_000 - 1);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpSeqUnderWindow,
        CtState::Established,
        Dir::C2s,
        &key,
        left,
    );
}

#[test]
fn a_blind_ack_below_the_window_is_ignored() {
    // The server has sent 80,000 bytes: an ACK for its first byte lags more than
    // MAXACKWINDOW (at least 66,000) behind.
    let mut sim = sim();
    let (mut fw, key) = established(&mut sim);
    for p in (0..10).flat_map(|_| sim.data_s2c(8000).ack_c2s().take_packets()) {
        assert!(fw.pkt(&p).forward.is_some());
    }
    fw.advance(SEC);
    let mut blind = sim.craft(Dir::C2s, TcpFlags::ACK, 0);
    blind.tcp_mut().expect("TCP").ack = SERVER_ISN + 1;
    let v = send(&mut fw, &mut sim, Dir::C2s, &blind);
    let left = (TcpState::Established, 432_000 - 1);
    assert_ignored(
        &fw,
        &v,
        Ignored::TcpAckUnderWindow,
        CtState::Established,
        Dir::C2s,
        &key,
        left,
    );
}

#[test]
fn ignored_packets_are_counted_whatever_the_rules_decide() {
    // Only the classic policy's rule for new connections from inside: the responder's early
    // ACK is ESTABLISHED, meets the default policy and is dropped, yet tracking ignored it
    // and counts it, as it counts INVALID verdicts whatever the rules decide.
    let only_new: Vec<_> = classic_rule_list()
        .into_iter()
        .filter(|(name, _)| name == "new_c2s_accept")
        .collect();
    let mut fw = Fw::new(linux_defaults(64), rule_set(only_new));
    let mut sim = sim();
    let syn = sim.syn().take_packets().remove(0);
    assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);
    let mut ack = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
    let t = ack.tcp_mut().expect("TCP");
    (t.seq, t.ack) = (SERVER_ISN, CLIENT_ISN + 1);
    let v = send(&mut fw, &mut sim, Dir::S2c, &ack);
    assert_eq!(v.ignored, Some(Ignored::TcpUnexpectedAck), "{v:?}");
    assert_eq!(v.ct, Some(CtState::Established), "{v:?}");
    assert_eq!(v.forward, None, "{v:?}");
    assert_eq!(fw.counters().ignored(Ignored::TcpUnexpectedAck), 1);
    assert_eq!((fw.counters().accepted, fw.counters().dropped), (1, 1));
}
