//! ICMP and ICMPv6 errors: RELATED to the connection they quote, or INVALID.
//!
//! Kernel facts used (`nf_conntrack_core.c`, `nf_conntrack_proto_icmp.c`,
//! `nf_conntrack_proto_icmpv6.c`):
//! - `nf_conntrack_icmpv4_error` / `nf_conntrack_icmpv6_error` hand an error type (v4: 3, 4, 5,
//!   11, 12; v6: below 128) to `nf_conntrack_inet_error`, which parses the quoted packet
//!   (`nf_ct_get_tuplepr`), inverts its tuple (`nf_ct_invert_tuple`: fails for a quoted ICMP
//!   error, which has no inverse), looks the inverse up (`nf_conntrack_find_get`: no entry ->
//!   INVALID), requires the outer destination to be the quoted packet's source ("outer daddr
//!   != inner", INVALID), then sets `IP_CT_RELATED` (plus `IP_CT_IS_REPLY` when the inverse
//!   matched the REPLY tuple);
//! - `nf_conntrack_in` then `goto out`s: no `resolve_normal_ct`, no L4 tracker, no
//!   SEEN_REPLY: a RELATED packet refreshes nothing and changes no state.

use ctfw_engine::Reason;
use ctfw_engine::flow::Direction;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::frame::{Frame, Icmp, L4, icmp};
use ctfw_tracegen::{Dir, TcpSim};

use crate::common::*;
use crate::traces::{C4, C6, S4, S6};

const ROUTER4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 9, 1);

fn udp_request() -> Frame {
    Frame::ipv4(C4, S4).udp(5353, 9999).payload(b"hello")
}

#[test]
fn port_unreachable_for_a_udp_flow_is_related_and_refreshes_nothing() {
    let mut fw = Fw::classic(64);
    let req = udp_request();
    assert_fwd(&fw.send(&req.build(), INSIDE), CtState::New, OUTSIDE);
    fw.advance(10 * SEC);
    // From the server back to the client: the inverse of the quoted datagram is the REPLY
    // tuple: IP_CT_RELATED_REPLY.
    let err = Frame::ipv4(S4, C4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &req);
    let v = fw.send(&err.build(), OUTSIDE);
    assert_fwd(&v, CtState::Related, INSIDE);
    assert_eq!(v.rule, Some(R_ESTREL));
    assert_eq!(v.dir, Some(Direction::Reply));
    // No refresh (30 - 10 s left), no SEEN_REPLY.
    let view = fw.view(&req.build()).expect("entry");
    assert_eq!((view.timeout, view.seen_reply), (20, false));
}

#[test]
fn an_error_about_the_reply_direction_is_related_original() {
    // The client refuses the server's datagram: the quote's inverse is the ORIGINAL tuple:
    // IP_CT_RELATED (not _REPLY), which the classic rules accept from the inside too.
    let mut fw = Fw::classic(64);
    let req = udp_request();
    fw.send(&req.build(), INSIDE);
    let rep = Frame::ipv4(S4, C4).udp(9999, 5353).payload(b"hi");
    assert_fwd(
        &fw.send(&rep.build(), OUTSIDE),
        CtState::Established,
        INSIDE,
    );
    let err = Frame::ipv4(C4, S4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &rep);
    let v = fw.send(&err.build(), INSIDE);
    assert_fwd(&v, CtState::Related, OUTSIDE);
    assert_eq!(v.dir, Some(Direction::Original));
}

#[test]
fn time_exceeded_for_a_syn_is_related_and_leaves_syn_sent_alone() {
    let mut sim = TcpSim::default_v4();
    let mut fw = Fw::classic(64);
    sim.syn();
    let syn = sim.take_packets().remove(0);
    fw.pkt(&syn);
    fw.advance(5 * SEC);
    // Quote the SYN as the router saw it: rebuild it from the sim's craft (same bytes).
    let quoted = TcpSim::default_v4().craft(Dir::C2s, ctfw_tracegen::TcpFlags::SYN, 0);
    assert_eq!(quoted.build(), syn.data);
    let err = Frame::ipv4(ROUTER4, C4).icmp_error(icmp::TIME_EXCEEDED, 0, &quoted);
    assert_fwd(&fw.send(&err.build(), OUTSIDE), CtState::Related, INSIDE);
    // Still SYN_SENT, deadline untouched (120 - 5 s).
    assert_tcp(fw.view(&syn.data), TcpState::SynSent, 115);
}

#[test]
fn packet_too_big_for_a_tcp_segment_is_related() {
    let mut sim = TcpSim::default_v6();
    let mut fw = Fw::classic(64);
    sim.handshake();
    fw.pkts(&sim.take_packets());
    let seg = sim.craft(
        Dir::C2s,
        ctfw_tracegen::TcpFlags::ACK | ctfw_tracegen::TcpFlags::PSH,
        1400,
    );
    sim.push(Dir::C2s, &seg);
    fw.pkts(&sim.take_packets());
    let router = "fd00:2::1".parse().expect("an address");
    let ptb = Frame::ipv6(router, C6).icmp_error(icmp::V6_PACKET_TOO_BIG, 0, &seg);
    let v = fw.send(&ptb.build(), OUTSIDE);
    assert_fwd(&v, CtState::Related, INSIDE);
    assert_eq!(v.dir, Some(Direction::Reply));
    // Nothing about the connection changed: ESTABLISHED, data unacknowledged (300 s).
    assert_tcp(fw.view(&seg.build()), TcpState::Established, 300);
}

#[test]
fn an_error_quoting_an_echo_request_is_related() {
    // The quoted echo request inverts to its echo reply, the REPLY tuple of the entry.
    for v6 in [false, true] {
        let (req, err) = if v6 {
            let req = Frame::ipv6(C6, S6).echo_request(42, 1);
            let router = "fd00:2::1".parse().expect("an address");
            let err = Frame::ipv6(router, C6).icmp_error(icmp::V6_DEST_UNREACH, 0, &req);
            (req, err)
        } else {
            let req = Frame::ipv4(C4, S4).echo_request(42, 1);
            let err = Frame::ipv4(ROUTER4, C4).icmp_error(icmp::DEST_UNREACH, 1, &req);
            (req, err)
        };
        let mut fw = Fw::classic(64);
        assert_fwd(&fw.send(&req.build(), INSIDE), CtState::New, OUTSIDE);
        let v = fw.send(&err.build(), OUTSIDE);
        assert_fwd(&v, CtState::Related, INSIDE);
        assert_eq!(v.dir, Some(Direction::Reply), "v6={v6}");
    }
}

#[test]
fn an_error_sent_elsewhere_than_the_quoted_source_is_invalid() {
    // "outer daddr != inner": the flow is tracked, but the error goes to 10.0.1.99, not to
    // the datagram's sender 10.0.1.2.
    let mut fw = Fw::classic(64);
    let req = udp_request();
    fw.send(&req.build(), INSIDE);
    let elsewhere = std::net::Ipv4Addr::new(10, 0, 1, 99);
    let err = Frame::ipv4(S4, elsewhere).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &req);
    assert_invalid(&fw.send(&err.build(), OUTSIDE), Reason::IcmpBadErrorAddress);
}

#[test]
fn an_error_quoting_an_untracked_flow_is_invalid() {
    let mut fw = Fw::classic(64);
    let err =
        Frame::ipv4(S4, C4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &udp_request());
    assert_invalid(&fw.send(&err.build(), OUTSIDE), Reason::IcmpNoRelated);
    // Nor does an error create anything.
    assert!(fw.eng.table().is_empty());
}

#[test]
fn an_error_for_an_expired_flow_is_invalid() {
    // nf_conntrack_find_get skips expired entries.
    let mut fw = Fw::classic(64);
    let req = udp_request();
    fw.send(&req.build(), INSIDE);
    fw.advance(30 * SEC);
    let err = Frame::ipv4(S4, C4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &req);
    assert_invalid(&fw.send(&err.build(), OUTSIDE), Reason::IcmpNoRelated);
}

#[test]
fn an_error_quoting_an_error_is_invalid() {
    // A tracked UDP flow, an error about it (RELATED), then an error quoting that error:
    // the inner ICMP error has no inverse (`nf_ct_invert_tuple` fails): INVALID.
    let mut fw = Fw::classic(64);
    let req = udp_request();
    fw.send(&req.build(), INSIDE);
    let first = Frame::ipv4(S4, C4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &req);
    assert_fwd(&fw.send(&first.build(), OUTSIDE), CtState::Related, INSIDE);
    let second = Frame::ipv4(C4, S4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &first);
    assert_invalid(&fw.send(&second.build(), INSIDE), Reason::IcmpNoRelated);
    // An ICMPv6 error quoting an ICMPv6 error, likewise.
    let mut fw = Fw::classic(64);
    let v6req = Frame::ipv6(C6, S6).udp(5353, 9999);
    fw.send(&v6req.build(), INSIDE);
    let mut inner = Frame::ipv6(S6, C6);
    inner.l4 = L4::Icmpv6(Icmp {
        ty: icmp::V6_DEST_UNREACH,
        code: icmp::V6_PORT_UNREACH,
        rest: [0; 4],
        checksum: Default::default(),
    });
    inner.payload = v6req.build_ip();
    let outer = Frame::ipv6(C6, S6).icmp_error(icmp::V6_DEST_UNREACH, 0, &inner);
    assert_invalid(&fw.send(&outer.build(), INSIDE), Reason::IcmpNoRelated);
}

/// `nf_ct_get_tuplepr` needs only the quoted IP header and the 4 port bytes of TCP or UDP
/// (`nf_ct_get_tuple_ports`), and does not check the quoted total length: a quote cut right
/// after the ports still relates.
#[test]
fn a_quote_of_header_and_ports_is_enough() {
    for v6 in [false, true] {
        let (req, outer, ip_len) = if v6 {
            (
                Frame::ipv6(C6, S6).udp(5353, 9999).payload(b"hello"),
                Frame::ipv6(S6, C6),
                40,
            )
        } else {
            (udp_request(), Frame::ipv4(S4, C4), 20)
        };
        let mut fw = Fw::classic(64);
        fw.send(&req.build(), INSIDE);
        let mut err = outer;
        let (ty, code) = if v6 {
            (icmp::V6_DEST_UNREACH, icmp::V6_PORT_UNREACH)
        } else {
            (icmp::DEST_UNREACH, icmp::PORT_UNREACH)
        };
        let hdr = Icmp {
            ty,
            code,
            rest: [0; 4],
            checksum: Default::default(),
        };
        err.l4 = if v6 { L4::Icmpv6(hdr) } else { L4::Icmp(hdr) };
        err.payload = req.build_ip()[..ip_len + 4].to_vec();
        let v = fw.send(&err.build(), OUTSIDE);
        assert_fwd(&v, CtState::Related, INSIDE);
        // Three port bytes are not enough: the tuple cannot be built, INVALID.
        err.payload.truncate(ip_len + 3);
        let v = fw.send(&err.build(), OUTSIDE);
        assert_eq!(v.ct, Some(CtState::Invalid), "v6={v6}: {v:?}");
        assert_eq!(v.forward, None);
    }
}

/// A quoted GRE header is read with `gre_pkt_to_tuple` too (`nf_ct_get_tuplepr` on the
/// quote): a quoted PPTP packet (version 1, PPP) is keyed on its call id, so an error about
/// a PPTP flow is RELATED; a quoted version 1 header with another payload has no tuple
/// (`return false`): INVALID.
#[test]
fn an_error_quoting_pptp_gre_finds_its_flow_by_call_id() {
    let pptp = |call_id: u16, proto: [u8; 2]| {
        let [c0, c1] = call_id.to_be_bytes();
        let gre = [0x30, 0x81, proto[0], proto[1], 0, 0, c0, c1];
        Frame::ipv4(C4, S4).raw(47).payload(&gre)
    };
    let mut fw = Fw::classic(64);
    let flow = pptp(0x1234, [0x88, 0x0b]);
    assert_fwd(&fw.send(&flow.build(), INSIDE), CtState::New, OUTSIDE);

    let err = |quoted: &Frame| {
        Frame::ipv4(S4, C4)
            .icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, quoted)
            .build()
    };
    assert_fwd(&fw.send(&err(&flow), OUTSIDE), CtState::Related, INSIDE);
    // Another call id between the same hosts is another flow: no entry, INVALID.
    assert_invalid(
        &fw.send(&err(&pptp(0x9999, [0x88, 0x0b])), OUTSIDE),
        Reason::IcmpNoRelated,
    );
    // Version 1 carrying IPv4 instead of PPP: no tuple for the quote.
    assert_invalid(
        &fw.send(&err(&pptp(0x1234, [0x08, 0x00])), OUTSIDE),
        Reason::IcmpBadInner,
    );
}
