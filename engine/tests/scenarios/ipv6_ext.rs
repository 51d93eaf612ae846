//! IPv6 extension headers before TCP, UDP and ICMPv6 are tracked like plain IPv6.
//!
//! Linux: `ip6_rcv_core` validates a leading Hop-by-Hop header (`ipv6_parse_hopopts`); a
//! forwarded packet's Routing header with Segments Left 0 and its Destination Options are not
//! processed; conntrack finds the transport header with `ipv6_skip_exthdr` (called from
//! `ipv6_get_l4proto`), which walks Hop-by-Hop, Routing, Fragment, AH and Destination Options
//! by their length bytes. The tuple, hence every verdict and state, is that of the packet
//! without the headers. The transport checksums do not change either: the pseudo-header
//! holds the upper-layer length, and with no segments left the destination is final.

use ctfw_engine::track::CtState;
use ctfw_tracegen::frame::{Frame, icmp};
use ctfw_tracegen::{Side, TcpFlags, TcpSim};

use crate::common::*;
use crate::traces::{C6, S6, assert_mixed_verdicts, mixed};

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const DEST_OPTS: u8 = 60;

/// Hop-by-Hop or Destination Options of 8 bytes: one PadN option of 4 zero bytes.
const PADN_OPTS: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
/// Hop-by-Hop with a router alert (as MLD carries) and PadN(0).
const ROUTER_ALERT: [u8; 8] = [0, 0, 5, 2, 0, 0, 1, 0];
/// Routing header type 0, Segments Left 0, no addresses.
const ROUTING_SL0: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0];

/// Inserts extension headers (kind, 8-byte header whose first byte is overwritten with the
/// next header) between the fixed IPv6 header and the transport header of an untagged
/// frame; other frames are returned unchanged.
fn with_ext(frame: &[u8], exts: &[(u8, [u8; 8])]) -> Vec<u8> {
    const IP: usize = 14;
    if frame.get(12..14) != Some(&[0x86, 0xdd][..]) || exts.is_empty() {
        return frame.to_vec();
    }
    let mut out = frame[..IP + 40].to_vec();
    let upper = out[IP + 6];
    out[IP + 6] = exts[0].0;
    for (i, (_, hdr)) in exts.iter().enumerate() {
        let mut h = *hdr;
        h[0] = exts.get(i + 1).map_or(upper, |e| e.0);
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(&frame[IP + 40..]);
    let plen = u16::from_be_bytes([out[IP + 4], out[IP + 5]]) + 8 * exts.len() as u16;
    out[IP + 4..IP + 6].copy_from_slice(&plen.to_be_bytes());
    out
}

#[test]
fn extension_headers_change_nothing() {
    let plain = mixed(&[]);
    let mut fw = Fw::classic(256);
    let plain_v = fw.pkts(&plain);
    assert_mixed_verdicts(&plain, &plain_v);
    let plain_t = all_views(&fw);
    for exts in [
        vec![(HOP_BY_HOP, PADN_OPTS)],
        vec![(HOP_BY_HOP, ROUTER_ALERT)],
        vec![(DEST_OPTS, PADN_OPTS)],
        vec![(ROUTING, ROUTING_SL0)],
        vec![
            (HOP_BY_HOP, ROUTER_ALERT),
            (DEST_OPTS, PADN_OPTS),
            (ROUTING, ROUTING_SL0),
            (DEST_OPTS, PADN_OPTS),
        ],
    ] {
        let pkts: Vec<_> = plain
            .iter()
            .map(|p| ctfw_tracegen::Packet {
                data: with_ext(&p.data, &exts),
                ..p.clone()
            })
            .collect();
        assert!(pkts.iter().zip(&plain).any(|(a, b)| a.data != b.data));
        let mut fw = Fw::classic(256);
        let v = fw.pkts(&pkts);
        assert_eq!(v, plain_v, "verdicts with {exts:?}");
        assert_eq!(all_views(&fw), plain_t, "entries with {exts:?}");
        fw.check();
    }
}

#[test]
fn a_plain_segment_continues_a_connection_opened_with_extension_headers() {
    // Same tuple with or without the headers: one connection.
    let mut sim = TcpSim::default_v6();
    sim.handshake().exchange(10, 20).close();
    let pkts = sim.take_packets();
    let mut fw = Fw::classic(64);
    for (i, p) in pkts.iter().enumerate() {
        let data = if i % 2 == 0 {
            with_ext(&p.data, &[(DEST_OPTS, PADN_OPTS)])
        } else {
            p.data.clone()
        };
        let v = fw.send(&data, port_of(p.side));
        let ct = if i == 0 {
            CtState::New
        } else {
            CtState::Established
        };
        assert_fwd_pkt(&v, ct, p);
    }
}

#[test]
fn an_error_quoting_a_packet_with_extension_headers_is_related() {
    // nf_conntrack_inet_error -> nf_ct_get_tuplepr walks the quoted packet's extension
    // headers with ipv6_skip_exthdr too.
    let mut sim = TcpSim::default_v6();
    sim.handshake().data_c2s(1400);
    let pkts = sim.take_packets();
    let mut fw = Fw::classic(64);
    fw.pkts(&pkts);
    let seg = Frame::ipv6(C6, S6)
        .tcp(40_200, 80)
        .flags(TcpFlags::ACK | TcpFlags::PSH)
        .seq_ack(1_000_001, 5_000_001)
        .window(502)
        .payload(&[0; 1400]);
    let quoted_plain = seg.build();
    let mut quoted = seg.clone();
    quoted.ipv6_mut().expect("IPv6").ext = vec![ctfw_tracegen::frame::Ipv6Ext::DestOpts(vec![
        1, 4, 0, 0, 0, 0,
    ])];
    assert_ne!(quoted.build(), quoted_plain);
    let router = "fd00:2::1".parse().expect("an address");
    let ptb = Frame::ipv6(router, C6).icmp_error(icmp::V6_PACKET_TOO_BIG, 0, &quoted);
    let v = fw.send(&ptb.build(), port_of(Side::Outside));
    assert_fwd(&v, CtState::Related, INSIDE);
}
