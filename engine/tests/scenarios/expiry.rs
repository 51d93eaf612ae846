//! Expiry of every state: the timeout the kernel gives, the entry still there one tick before
//! its deadline (the next packet continues the connection), gone at the deadline (the next
//! packet starts over), and the sweeper reclaiming what expired.
//!
//! Kernel facts used:
//! - `tcp_timeouts[]` (`nf_conntrack_proto_tcp.c`): SYN_SENT 2 min, SYN_RECV 60 s,
//!   ESTABLISHED 5 days, FIN_WAIT 2 min, CLOSE_WAIT 60 s, LAST_ACK 30 s, TIME_WAIT 2 min,
//!   CLOSE 10 s, SYN_SENT2 2 min, RETRANS 5 min, UNACK 5 min;
//! - the timeout choice at the end of `nf_conntrack_tcp_packet`: `retrans >= tcp_max_retrans`
//!   caps at RETRANS, an RST takes CLOSE, `IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED` on either side
//!   caps at UNACK, `last_win == 0` caps at RETRANS; without SEEN_REPLY a SYN retransmitted in
//!   SYN_SENT does not refresh, and ESTABLISHED (a loose pickup) is capped at UNACK;
//! - `nf_conntrack_udp_packet`: 30 s until a reply has been seen *and* the flow is older than
//!   2 s (`time_after(jiffies, ct->proto.udp.stream_ts)`), then 120 s and ASSURED;
//! - `nf_conntrack_icmp_packet` / `nf_conntrack_icmpv6_packet`: 30 s, and an answer cannot
//!   create an entry (`valid_new[]`); `generic_packet`: 600 s;
//! - `nf_ct_is_expired`: `(__s32)(ct->timeout - nfct_time_stamp) <= 0`: expired at the
//!   deadline; `____nf_conntrack_find` skips (and reaps) expired entries, so the packet that
//!   arrives then creates a new entry.

use ctfw_engine::Reason;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::frame::Frame;
use ctfw_tracegen::{Dir, Packet, TcpFlags, TcpSim};

use crate::common::*;
use crate::traces::{C4, C6, S4, S6};

/// One TCP state to expire.
struct Case {
    state: TcpState,
    /// The packets that lead there, each with its time offset from T0 (ticks).
    drive: fn(&mut TcpSim) -> Vec<(u64, Packet)>,
    /// The timeout shown right after the last of them.
    timeout: u32,
    /// The deadline, ticks after T0.
    deadline: u64,
    /// A packet that continues the connection, its conntrack state, and the TCP state and
    /// timeout after it.
    cont: fn(&mut TcpSim) -> Packet,
    cont_ct: CtState,
    cont_state: TcpState,
    cont_timeout: u32,
}

fn at0(sim: &mut TcpSim) -> Vec<(u64, Packet)> {
    sim.take_packets().into_iter().map(|p| (0, p)).collect()
}

fn one(sim: &mut TcpSim) -> Packet {
    let mut p = sim.take_packets();
    assert_eq!(p.len(), 1);
    p.remove(0)
}

fn push(sim: &mut TcpSim, dir: Dir, f: &Frame) -> Packet {
    sim.push(dir, f);
    one(sim)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            state: TcpState::SynSent,
            drive: |s| at0(s.syn()),
            timeout: 120,
            deadline: 120 * SEC,
            cont: |s| one(s.synack()),
            cont_ct: CtState::Established,
            cont_state: TcpState::SynRecv,
            cont_timeout: 60,
        },
        Case {
            state: TcpState::SynRecv,
            drive: |s| at0(s.syn().synack()),
            timeout: 60,
            deadline: 60 * SEC,
            cont: |s| one(s.ack()),
            cont_ct: CtState::Established,
            cont_state: TcpState::Established,
            cont_timeout: 432_000,
        },
        Case {
            state: TcpState::Established,
            drive: |s| at0(s.handshake()),
            timeout: 432_000,
            deadline: 432_000 * SEC,
            // Unacknowledged data caps the timeout at UNACK.
            cont: |s| one(s.data_c2s(100)),
            cont_ct: CtState::Established,
            cont_state: TcpState::Established,
            cont_timeout: 300,
        },
        Case {
            state: TcpState::FinWait,
            drive: |s| at0(s.handshake().fin_c2s()),
            timeout: 120,
            deadline: 120 * SEC,
            cont: |s| one(s.ack_s2c()),
            cont_ct: CtState::Established,
            cont_state: TcpState::CloseWait,
            cont_timeout: 60,
        },
        Case {
            state: TcpState::CloseWait,
            drive: |s| at0(s.handshake().fin_c2s().ack_s2c()),
            timeout: 60,
            deadline: 60 * SEC,
            cont: |s| one(s.fin_s2c()),
            cont_ct: CtState::Established,
            cont_state: TcpState::LastAck,
            cont_timeout: 30,
        },
        Case {
            state: TcpState::LastAck,
            drive: |s| at0(s.handshake().fin_c2s().ack_s2c().fin_s2c()),
            timeout: 30,
            deadline: 30 * SEC,
            cont: |s| one(s.ack_c2s()),
            cont_ct: CtState::Established,
            cont_state: TcpState::TimeWait,
            cont_timeout: 120,
        },
        Case {
            state: TcpState::TimeWait,
            drive: |s| at0(s.handshake().close()),
            timeout: 120,
            deadline: 120 * SEC,
            // The last ACK retransmitted: TIME_WAIT -> TIME_WAIT, refreshed.
            cont: |s| {
                let f = s.craft(Dir::C2s, TcpFlags::ACK, 0);
                push(s, Dir::C2s, &f)
            },
            cont_ct: CtState::Established,
            cont_state: TcpState::TimeWait,
            cont_timeout: 120,
        },
        Case {
            state: TcpState::Close,
            drive: |s| at0(s.handshake().rst_c2s()),
            timeout: 10,
            deadline: 10 * SEC,
            // Another RST: CLOSE is a closing state (`tcp_can_early_drop`), no checks.
            cont: |s| one(s.rst_c2s()),
            cont_ct: CtState::Established,
            cont_state: TcpState::Close,
            cont_timeout: 10,
        },
        Case {
            state: TcpState::SynSent2,
            // The client's SYN, then 10 s later the server's own SYN (simultaneous open).
            // No reply had been seen and the old state is SYN_SENT: "do not renew timeout
            // on SYN retransmit" applies to this reply SYN too, so the deadline stays the
            // first SYN's: 110 s left.
            drive: |s| {
                s.syn();
                let first = one(s);
                let f = s.craft(Dir::S2c, TcpFlags::SYN, 0);
                vec![(0, first), (10 * SEC, push(s, Dir::S2c, &f))]
            },
            timeout: 110,
            deadline: 120 * SEC,
            // The client's SYN/ACK: SYN_SENT2 -> SYN_RECV (tcp_conntracks[0][synack][sS2]).
            cont: |s| {
                let mut f = s.craft(Dir::C2s, TcpFlags::SYN | TcpFlags::ACK, 0);
                let sisn = s.endpoint(Dir::S2c).isn;
                f.tcp_mut().expect("TCP").ack = sisn + 1;
                push(s, Dir::C2s, &f)
            },
            cont_ct: CtState::Established,
            cont_state: TcpState::SynRecv,
            cont_timeout: 60,
        },
    ]
}

/// Runs `case.drive` on a fresh engine; returns it, the sim and the key frame.
fn drive(case: &Case) -> (Fw, TcpSim, Vec<u8>) {
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    let pkts = (case.drive)(&mut sim);
    let key = pkts[0].1.data.clone();
    for (i, (offset, p)) in pkts.iter().enumerate() {
        fw.set_tick(T0 + offset);
        let v = fw.pkt(p);
        assert!(
            v.forward.is_some(),
            "{:?} drive packet {i}: {v:?}",
            case.state
        );
    }
    (fw, sim, key)
}

#[test]
fn every_tcp_state_expires_at_its_kernel_timeout() {
    for case in cases() {
        let name = case.state.name();
        // Right after the drive: the state and the kernel's timeout.
        let (mut fw, mut sim, key) = drive(&case);
        let view = fw.view(&key);
        assert_eq!(view.and_then(|v| v.tcp_state), Some(case.state), "{name}");
        assert_eq!(view.map(|v| v.timeout), Some(case.timeout), "{name}");

        // One tick before the deadline: still there, and the connection goes on.
        fw.set_tick(T0 + case.deadline - 1);
        assert_tcp(fw.view(&key), case.state, 0);
        let p = (case.cont)(&mut sim);
        let v = fw.pkt(&p);
        assert_fwd_pkt(&v, case.cont_ct, &p);
        assert_tcp(fw.view(&key), case.cont_state, case.cont_timeout);
        assert_eq!(fw.counters().expired, 0, "{name}");

        // At the deadline: gone; a lone ACK from the client is a loose pickup: NEW,
        // ESTABLISHED without a reply, capped at UNACK (300 s).
        let (mut fw, sim, key) = drive(&case);
        fw.set_tick(T0 + case.deadline);
        assert!(fw.view(&key).is_none(), "{name}: expired at the deadline");
        let ack = sim.craft(Dir::C2s, TcpFlags::ACK, 0).build();
        assert_fwd(&fw.send(&ack, INSIDE), CtState::New, OUTSIDE);
        let view = fw.view(&key).expect("a new entry");
        assert_eq!(
            (view.tcp_state, view.seen_reply, view.assured, view.timeout),
            (Some(TcpState::Established), false, false, 300),
            "{name}"
        );
        let c = fw.counters();
        assert_eq!((c.expired, c.created), (1, 2), "{name}");
        fw.check();

        // At the deadline, a SYN opens a new connection: SYN_SENT, 120 s.
        let (mut fw, sim, key) = drive(&case);
        fw.set_tick(T0 + case.deadline);
        let syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0).build();
        assert_fwd(&fw.send(&syn, INSIDE), CtState::New, OUTSIDE);
        assert_tcp(fw.view(&key), TcpState::SynSent, 120);
        assert_eq!(fw.counters().expired, 1, "{name}");
    }
}

#[test]
fn a_retransmitted_syn_does_not_renew_the_timeout() {
    // "do not renew timeout on SYN retransmit. Else port reuse by client or NAT middlebox
    // can keep entry alive indefinitely".
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    let syn = one(sim.syn());
    assert_fwd(&fw.pkt(&syn), CtState::New, OUTSIDE);
    fw.advance(60 * SEC);
    assert_fwd(&fw.pkt(&one(sim.syn())), CtState::New, OUTSIDE);
    assert_tcp(fw.view(&syn.data), TcpState::SynSent, 60);
    fw.advance(60 * SEC);
    assert!(fw.view(&syn.data).is_none());
}

#[test]
fn unacknowledged_data_caps_established_at_unack() {
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    let pkts = sim.handshake().data_c2s(100).take_packets();
    fw.pkts(&pkts);
    assert_tcp(fw.view(&pkts[0].data), TcpState::Established, 300);
    // The ACK of all of it clears the flag (`ack == receiver->td_end`): 5 days.
    fw.pkt(&one(sim.ack_s2c()));
    assert_tcp(fw.view(&pkts[0].data), TcpState::Established, 432_000);
}

#[test]
fn an_unreplied_pickup_is_capped_until_the_other_side_answers() {
    let mut sim = TcpSim::default_v4().established();
    let mut fw = Fw::classic(64);
    // A lone ACK from the client: tcp_new picks it up (tcp_loose = 1): NEW, ESTABLISHED,
    // no reply, capped at UNACK.
    let first = one(sim.ack_c2s());
    assert_fwd(&fw.pkt(&first), CtState::New, OUTSIDE);
    let view = fw.view(&first.data).expect("entry");
    assert_eq!(
        (view.seen_reply, view.assured, view.timeout),
        (false, false, 300)
    );
    // The server answers: ESTABLISHED (reply direction), still refreshed with SEEN_REPLY
    // unset (it is set after the tracker, in nf_conntrack_in): 300 s again.
    fw.advance(SEC);
    assert_fwd(&fw.pkt(&one(sim.ack_s2c())), CtState::Established, INSIDE);
    let view = fw.view(&first.data).expect("entry");
    assert_eq!(
        (view.seen_reply, view.assured, view.timeout),
        (true, false, 300)
    );
    // The next client segment: "a valid answer for a picked up connection" -> ASSURED,
    // 5 days.
    fw.advance(SEC);
    assert_fwd(&fw.pkt(&one(sim.ack_c2s())), CtState::Established, OUTSIDE);
    let view = fw.view(&first.data).expect("entry");
    assert_eq!(
        (view.seen_reply, view.assured, view.timeout),
        (true, true, 432_000)
    );
}

#[test]
fn repeated_acks_cap_the_timeout_after_max_retrans() {
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    let pkts = sim.handshake().exchange(100, 200).take_packets();
    fw.pkts(&pkts);
    let key = &pkts[0].data;
    assert_tcp(fw.view(key), TcpState::Established, 432_000);
    // The client's last ACK again and again: tcp_in_window counts `retrans` when dir, seq,
    // ack, end and window all repeat; at tcp_max_retrans (3) the timeout drops to RETRANS.
    let dup = sim.craft(Dir::C2s, TcpFlags::ACK, 0).build();
    for (n, want) in [(1, 432_000), (2, 432_000), (3, 300), (4, 300)] {
        assert_fwd(&fw.send(&dup, INSIDE), CtState::Established, OUTSIDE);
        assert_tcp(fw.view(key), TcpState::Established, want);
        assert_eq!(fw.tcp(key).expect("entry").retrans(), n);
    }
    // Anything new resets the count.
    fw.pkts(&sim.exchange(10, 10).take_packets());
    assert_eq!(fw.tcp(key).expect("entry").retrans(), 0);
    assert_tcp(fw.view(key), TcpState::Established, 432_000);
}

#[test]
fn a_zero_window_caps_the_timeout_at_retrans() {
    // `else if (ct->proto.tcp.last_win == 0 && timeouts[new_state] > timeouts[RETRANS])`.
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    let pkts = sim.handshake().take_packets();
    fw.pkts(&pkts);
    let zero = sim.craft(Dir::S2c, TcpFlags::ACK, 0).window(0).build();
    assert_fwd(&fw.send(&zero, OUTSIDE), CtState::Established, INSIDE);
    assert_tcp(fw.view(&pkts[0].data), TcpState::Established, 300);
    let open = sim.craft(Dir::S2c, TcpFlags::ACK, 0).build();
    assert_fwd(&fw.send(&open, OUTSIDE), CtState::Established, INSIDE);
    assert_tcp(fw.view(&pkts[0].data), TcpState::Established, 432_000);
}

fn udp_pair() -> (Vec<u8>, Vec<u8>) {
    (
        Frame::ipv4(C4, S4).udp(5000, 53).payload(b"q").build(),
        Frame::ipv4(S4, C4).udp(53, 5000).payload(b"a").build(),
    )
}

#[test]
fn udp_unreplied_expires_after_30s() {
    let (req, rep) = udp_pair();
    let mut fw = Fw::classic(64);
    assert_fwd(&fw.send(&req, INSIDE), CtState::New, OUTSIDE);
    let view = fw.view(&req).expect("entry");
    assert_eq!(
        (view.timeout, view.seen_reply, view.assured),
        (30, false, false)
    );
    // One tick before: the reply continues it (and, being the first reply, still gets the
    // unreplied timeout: SEEN_REPLY is set after the tracker).
    fw.set_tick(T0 + 30 * SEC - 1);
    assert_fwd(&fw.send(&rep, OUTSIDE), CtState::Established, INSIDE);
    let view = fw.view(&req).expect("entry");
    assert_eq!(
        (view.timeout, view.seen_reply, view.assured),
        (30, true, false)
    );

    // At the deadline: gone. The reply is now a NEW packet from the outside, which the
    // classic policy drops (and, never confirmed, it leaves no entry); the request is NEW.
    let mut fw = Fw::classic(64);
    fw.send(&req, INSIDE);
    fw.set_tick(T0 + 30 * SEC);
    assert!(fw.view(&req).is_none());
    let v = fw.send(&rep, OUTSIDE);
    assert_eq!(v.ct, Some(CtState::New));
    assert_dropped(&v, Reason::DefaultPolicy);
    assert!(fw.view(&req).is_none());
    assert_fwd(&fw.send(&req, INSIDE), CtState::New, OUTSIDE);
    assert_eq!(fw.view(&req).expect("entry").timeout, 30);
    assert_eq!(fw.counters().created, 2);
}

#[test]
fn udp_becomes_a_stream_strictly_after_two_seconds() {
    let (req, rep) = udp_pair();
    let mut fw = Fw::classic(64);
    fw.send(&req, INSIDE);
    fw.set_tick(T0 + SEC);
    fw.send(&rep, OUTSIDE);
    // Exactly 2 s after creation: `time_after(jiffies, stream_ts)` is false: 30 s.
    fw.set_tick(T0 + 2 * SEC);
    assert_fwd(&fw.send(&req, INSIDE), CtState::Established, OUTSIDE);
    let view = fw.view(&req).expect("entry");
    assert_eq!((view.timeout, view.assured), (30, false));
    // One tick later: a stream: 120 s and ASSURED.
    fw.set_tick(T0 + 2 * SEC + 1);
    assert_fwd(&fw.send(&req, INSIDE), CtState::Established, OUTSIDE);
    let view = fw.view(&req).expect("entry");
    assert_eq!((view.timeout, view.assured), (120, true));
    let last = T0 + 2 * SEC + 1;
    fw.set_tick(last + 120 * SEC - 1);
    assert_fwd(&fw.send(&rep, OUTSIDE), CtState::Established, INSIDE);
    assert_eq!(fw.view(&req).expect("entry").timeout, 120);
    fw.set_tick(last + 120 * SEC - 1 + 120 * SEC);
    assert!(fw.view(&req).is_none());
    assert_fwd(&fw.send(&req, INSIDE), CtState::New, OUTSIDE);
    let view = fw.view(&req).expect("entry");
    assert_eq!(
        (view.timeout, view.assured, view.seen_reply),
        (30, false, false)
    );
}

/// An echo request and reply of one family.
fn echo(v6: bool) -> (Vec<u8>, Vec<u8>) {
    if v6 {
        (
            Frame::ipv6(C6, S6).echo_request(7, 1).build(),
            Frame::ipv6(S6, C6).echo_reply(7, 1).build(),
        )
    } else {
        (
            Frame::ipv4(C4, S4).echo_request(7, 1).build(),
            Frame::ipv4(S4, C4).echo_reply(7, 1).build(),
        )
    }
}

#[test]
fn icmp_and_icmpv6_echo_expire_after_30s() {
    for v6 in [false, true] {
        let (req, rep) = echo(v6);
        let mut fw = Fw::classic(64);
        assert_fwd(&fw.send(&req, INSIDE), CtState::New, OUTSIDE);
        assert_eq!(fw.view(&req).expect("entry").timeout, 30, "v6={v6}");
        fw.set_tick(T0 + 30 * SEC - 1);
        assert_fwd(&fw.send(&rep, OUTSIDE), CtState::Established, INSIDE);
        let view = fw.view(&req).expect("entry");
        // Refreshed, never ASSURED.
        assert_eq!((view.timeout, view.assured), (30, false), "v6={v6}");

        let mut fw = Fw::classic(64);
        fw.send(&req, INSIDE);
        fw.set_tick(T0 + 30 * SEC);
        // The reply alone cannot create an entry (`valid_new[]`): INVALID.
        assert_invalid(&fw.send(&rep, OUTSIDE), Reason::IcmpInvalidNew);
        assert_fwd(&fw.send(&req, INSIDE), CtState::New, OUTSIDE);
        assert_eq!(fw.counters().expired, 1, "v6={v6}");
    }
}

#[test]
fn a_generic_protocol_expires_after_600s() {
    // ESP (50) has no tracker in Linux 6.x: `nf_ct_l4proto_find` falls back to
    // `nf_conntrack_l4proto_generic`, `generic_packet` refreshes with 600 s.
    let out = Frame::ipv4(C4, S4)
        .raw(50)
        .payload(&[0, 0, 0, 1, 0, 0, 0, 1])
        .build();
    let back = Frame::ipv4(S4, C4)
        .raw(50)
        .payload(&[0, 0, 0, 2, 0, 0, 0, 1])
        .build();
    let mut fw = Fw::classic(64);
    assert_fwd(&fw.send(&out, INSIDE), CtState::New, OUTSIDE);
    assert_eq!(fw.view(&out).expect("entry").timeout, 600);
    fw.set_tick(T0 + 600 * SEC - 1);
    assert_fwd(&fw.send(&back, OUTSIDE), CtState::Established, INSIDE);
    let view = fw.view(&out).expect("entry");
    assert_eq!((view.timeout, view.assured), (600, false));
    fw.set_tick(T0 + 600 * SEC - 1 + 600 * SEC);
    assert!(fw.view(&out).is_none());
    assert_fwd(&fw.send(&out, INSIDE), CtState::New, OUTSIDE);
}

#[test]
fn the_sweeper_reclaims_exactly_what_expired() {
    let mut fw = Fw::classic(256);
    // 50 UDP flows and 50 echoes (30 s), 50 ESTABLISHED connections (5 days).
    for i in 0..50u16 {
        let udp = Frame::ipv4(C4, S4).udp(10_000 + i, 53).build();
        assert_fwd(&fw.send(&udp, INSIDE), CtState::New, OUTSIDE);
        let ping = Frame::ipv4(C4, S4).echo_request(i, 1).build();
        assert_fwd(&fw.send(&ping, INSIDE), CtState::New, OUTSIDE);
        let mut sim = TcpSim::new(
            std::net::SocketAddr::new(C4.into(), 20_000 + i),
            std::net::SocketAddr::new(S4.into(), 80),
        );
        fw.pkts(&sim.handshake().take_packets());
    }
    assert_eq!(fw.eng.table().len(), 150);
    fw.set_tick(T0 + 30 * SEC - 1);
    assert_eq!(fw.eng.sweep(fw.now(), 256), 0);
    // Expired entries stay in the pool until a lookup or the sweeper meets them.
    fw.set_tick(T0 + 30 * SEC);
    assert_eq!(fw.eng.table().len(), 150);
    assert_eq!(fw.eng.table().iter(fw.now().tick()).count(), 50);
    // Bounded work: 16 slots per call, 16 calls to cover the pool.
    let mut total = 0;
    for _ in 0..16 {
        let n = fw.eng.sweep(fw.now(), 16);
        assert!(n <= 16);
        total += n;
    }
    assert_eq!(total, 100);
    assert_eq!(fw.eng.table().len(), 50);
    assert_eq!(fw.counters().expired, 100);
    fw.check();
}

/// GRE is not generic in the reference kernel: `sysctl_defaults.txt` (6.18) lists
/// `nf_conntrack_gre_timeout = 30` and `nf_conntrack_gre_timeout_stream = 180`, i.e.
/// `nf_conntrack_proto_gre.c` is built in (`CONFIG_NF_CT_PROTO_GRE`, selected by PPTP
/// support). For GRE version 0 `gre_pkt_to_tuple` zeroes the key ("try to behave like
/// nf_conntrack_proto_generic"), so the tuple is the generic one, but
/// `nf_conntrack_gre_packet` refreshes with 30 s until IPS_SEEN_REPLY, then with 180 s and
/// sets ASSURED.
#[test]
fn gre_uses_the_gre_tracker_like_the_reference_kernel() {
    // GRE v0 header: no flags, version 0, protocol IPv4; then a few bytes.
    let gre = [0, 0, 0x08, 0x00, 0x45, 0, 0, 20];
    let out = Frame::ipv4(C4, S4).raw(47).payload(&gre).build();
    let back = Frame::ipv4(S4, C4).raw(47).payload(&gre).build();
    let mut fw = Fw::classic(64);
    assert_fwd(&fw.send(&out, INSIDE), CtState::New, OUTSIDE);
    let view = fw.view(&out).expect("entry");
    assert_eq!((view.timeout, view.assured), (30, false), "unreplied");
    fw.advance(SEC);
    // The first reply: SEEN_REPLY is set after the tracker, so still the unreplied timeout.
    assert_fwd(&fw.send(&back, OUTSIDE), CtState::Established, INSIDE);
    assert_eq!(fw.view(&out).expect("entry").timeout, 30);
    fw.advance(SEC);
    assert_fwd(&fw.send(&out, INSIDE), CtState::Established, OUTSIDE);
    let view = fw.view(&out).expect("entry");
    assert_eq!((view.timeout, view.assured), (180, true), "replied: stream");
}
