//! A mixed trace shared by the scenarios that compare the same traffic in different wrappings
//! (VLAN tags, IPv6 extension headers, burst sizes): TCP and UDP over IPv4 and IPv6, ICMP and
//! ICMPv6 echo, an ICMP error quoting a tracked flow, and two packets conntrack calls INVALID.
//!
//! What the kernel does with each packet, in order (classic policy, nothing expired):
//! - TCP v4 and v6: handshake, request/response, close: the SYN NEW, the rest ESTABLISHED,
//!   ending in TIME_WAIT;
//! - UDP v4 and v6: request NEW, reply ESTABLISHED, two more ESTABLISHED;
//! - echo request NEW, reply ESTABLISHED (v4 and v6);
//! - port unreachable from the UDP server quoting the client's datagram: RELATED;
//! - SYN+FIN: `tcp_error`, "invalid tcp flag combination": INVALID;
//! - SYN/ACK from outside for a connection never seen: `tcp_new`,
//!   `tcp_conntracks[0][TCP_SYNACK_SET][TCP_CONNTRACK_NONE] == sIV`: INVALID.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use ctfw_engine::Reason;
use ctfw_engine::pipeline::Verdict;
use ctfw_engine::track::CtState;
use ctfw_tracegen::frame::{Frame, VlanTag, icmp};
use ctfw_tracegen::{Packet, Side, TcpFlags, TcpSim};

use crate::common::*;

pub const C4: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
pub const S4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const C6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
pub const S6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2);

fn pkt(side: Side, f: &Frame) -> Packet {
    Packet {
        ts_ns: 0,
        side,
        data: f.build(),
    }
}

/// Client-side frame (client MAC to the router's inside MAC), with `tags`.
fn from_client(f: Frame, tags: &[VlanTag]) -> Frame {
    let mut f = f.macs(
        ctfw_tracegen::frame::macs::CLIENT,
        ctfw_tracegen::frame::macs::ROUTER_INSIDE,
    );
    f.vlans = tags.to_vec();
    f
}

/// Server-side frame, with `tags`.
fn from_server(f: Frame, tags: &[VlanTag]) -> Frame {
    let mut f = f.macs(
        ctfw_tracegen::frame::macs::SERVER,
        ctfw_tracegen::frame::macs::ROUTER_OUTSIDE,
    );
    f.vlans = tags.to_vec();
    f
}

/// The mixed trace with every frame carrying `tags` (outermost first).
pub fn mixed(tags: &[VlanTag]) -> Vec<Packet> {
    let mut out = Vec::new();
    let v4 = TcpSim::new(
        SocketAddr::new(C4.into(), 40_000),
        SocketAddr::new(S4.into(), 80),
    );
    let v6 = TcpSim::new(
        SocketAddr::new(C6.into(), 40_200),
        SocketAddr::new(S6.into(), 80),
    );
    for sim in [v4, v6] {
        let mut sim = sim.vlans(tags.to_vec());
        sim.handshake().exchange(100, 500).close();
        out.extend(sim.take_packets());
    }
    // UDP request/response, both families.
    let udp = [
        (Frame::ipv4(C4, S4), Frame::ipv4(S4, C4)),
        (Frame::ipv6(C6, S6), Frame::ipv6(S6, C6)),
    ];
    let mut request4 = None;
    for (c2s, s2c) in udp {
        let req = from_client(c2s.udp(5353, 53), tags).payload(b"query");
        let rep = from_server(s2c.udp(53, 5353), tags).payload(b"answer");
        out.push(pkt(Side::Inside, &req));
        out.push(pkt(Side::Outside, &rep));
        out.push(pkt(Side::Inside, &req));
        out.push(pkt(Side::Outside, &rep));
        request4.get_or_insert(req);
    }
    // Echo request and reply, both families.
    for (c2s, s2c) in [
        (Frame::ipv4(C4, S4), Frame::ipv4(S4, C4)),
        (Frame::ipv6(C6, S6), Frame::ipv6(S6, C6)),
    ] {
        out.push(pkt(
            Side::Inside,
            &from_client(c2s.echo_request(0x1234, 1), tags),
        ));
        out.push(pkt(
            Side::Outside,
            &from_server(s2c.echo_reply(0x1234, 1), tags),
        ));
    }
    // Port unreachable from the DNS server quoting the client's request: RELATED.
    let quoted = request4.expect("the IPv4 request");
    let err = Frame::ipv4(S4, C4).icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &quoted);
    out.push(pkt(Side::Outside, &from_server(err, tags)));
    // Two INVALID packets.
    let synfin = Frame::ipv4(C4, S4)
        .tcp(41_000, 80)
        .flags(TcpFlags::SYN | TcpFlags::FIN)
        .seq_ack(7, 0)
        .window(1000);
    out.push(pkt(Side::Inside, &from_client(synfin, tags)));
    let synack = Frame::ipv4(S4, C4)
        .tcp(80, 41_001)
        .flags(TcpFlags::SYN | TcpFlags::ACK)
        .seq_ack(7, 8)
        .window(1000);
    out.push(pkt(Side::Outside, &from_server(synack, tags)));
    for (i, p) in out.iter_mut().enumerate() {
        p.ts_ns = i as u64;
    }
    out
}

/// Checks the verdicts of [`mixed`] against the kernel's (module documentation).
#[track_caller]
pub fn assert_mixed_verdicts(pkts: &[Packet], verdicts: &[Verdict]) {
    assert_eq!(pkts.len(), verdicts.len());
    let n = pkts.len();
    // 10 TCP segments per family, 4 UDP datagrams per family, 2 echo packets per family.
    let new_at = [0, 10, 20, 24, 28, 30];
    for (i, (p, v)) in pkts.iter().zip(verdicts).enumerate() {
        if i == n - 2 {
            assert_invalid(v, Reason::TcpBadFlags);
        } else if i == n - 1 {
            assert_invalid(v, Reason::TcpInvalidNew);
        } else if i == n - 3 {
            assert_fwd_pkt(v, CtState::Related, p);
        } else if new_at.contains(&i) {
            assert_fwd_pkt(v, CtState::New, p);
            assert_eq!(v.rule, Some(R_NEW_C2S));
        } else {
            assert_fwd_pkt(v, CtState::Established, p);
            assert_eq!(v.rule, Some(R_ESTREL));
        }
    }
}
