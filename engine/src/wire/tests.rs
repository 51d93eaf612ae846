use super::*;
use proptest::prelude::*;

const CFG: ParseConfig = ParseConfig {
    verify_l4_checksum: true,
};
const C4: u32 = 0x0a00_0102; // 10.0.1.2
const S4: u32 = 0x0a00_0202; // 10.0.2.2
const C6: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_0002; // fd00:1::2
const S6: u128 = 0xfd00_0002_0000_0000_0000_0000_0000_0002; // fd00:2::2

fn v4(src: u32, dst: u32) -> IpAddrs {
    IpAddrs {
        family: Family::V4,
        src: u128::from(src),
        dst: u128::from(dst),
    }
}

fn v6(src: u128, dst: u128) -> IpAddrs {
    IpAddrs {
        family: Family::V6,
        src,
        dst,
    }
}

fn parse_ok(frame: &[u8]) -> Packet<'_> {
    parse(frame, &CFG, ChecksumHint::Unknown).expect("frame parses")
}

fn parse_l4_of(frame: &[u8]) -> Result<L4<'_>, Reason> {
    parse(frame, &CFG, ChecksumHint::Unknown).map(|p| p.l4)
}

// ---- captured frames: every checksum in them was computed by the trace generator ----

/// traces/tcp_bad_checksum.pcapng packet 1: a SYN with MSS, window scale, SACK-permitted.
const SYN_FRAME: [u8; 66] = [
    0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // destination MAC
    0x02, 0x00, 0x00, 0x00, 0x01, 0x02, // source MAC
    0x08, 0x00, // EtherType IPv4
    0x45, 0x00, 0x00, 0x34, // version 4, IHL 5, DSCP 0, total length 52
    0x10, 0x02, 0x40, 0x00, // identification, DF
    0x40, 0x06, 0x13, 0xbf, // TTL 64, TCP, header checksum
    0x0a, 0x00, 0x01, 0x02, // source 10.0.1.2
    0x0a, 0x00, 0x02, 0x02, // destination 10.0.2.2
    0x9c, 0x9a, 0x00, 0x50, // ports 40090 -> 80
    0x00, 0x0f, 0x42, 0x40, // sequence 1000000
    0x00, 0x00, 0x00, 0x00, // acknowledgment 0
    0x80, 0x02, 0xfa, 0xf0, // data offset 8, SYN, window 64240
    0x7d, 0xe3, 0x00, 0x00, // checksum, urgent pointer
    0x02, 0x04, 0x05, 0xb4, // MSS 1460
    0x01, 0x03, 0x03, 0x07, // NOP, window scale 7
    0x04, 0x02, 0x01, 0x01, // SACK permitted, NOP, NOP
];

/// traces/icmp_echo_request_reply.pcapng packet 0: echo request id 0x1234 seq 1.
fn echo_frame() -> Vec<u8> {
    let mut f = vec![
        0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x01, 0x02, // source MAC
        0x08, 0x00, // EtherType IPv4
        0x45, 0x00, 0x00, 0x54, // version 4, IHL 5, total length 84
        0x10, 0x01, 0x40, 0x00, // identification, DF
        0x40, 0x01, 0x13, 0xa5, // TTL 64, ICMP, header checksum
        0x0a, 0x00, 0x01, 0x02, // source 10.0.1.2
        0x0a, 0x00, 0x02, 0x02, // destination 10.0.2.2
        0x08, 0x00, 0x99, 0x7e, // echo request, code 0, checksum
        0x12, 0x34, 0x00, 0x01, // identifier 0x1234, sequence 1
    ];
    f.extend_from_slice(&[0x70; 56]); // data
    f
}

/// traces/icmp_unsolicited_port_unreachable.pcapng: port unreachable from 10.0.2.2
/// quoting UDP 10.0.1.2:53004 -> 10.0.2.2:9999.
fn port_unreach_udp_frame() -> Vec<u8> {
    let mut f = vec![
        0x02, 0x00, 0x00, 0x00, 0x02, 0x01, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x02, 0x02, // source MAC
        0x08, 0x00, // EtherType IPv4
        0x45, 0x00, 0x00, 0x4c, // version 4, IHL 5, total length 76
        0x50, 0x01, 0x40, 0x00, // identification, DF
        0x40, 0x01, 0xd3, 0xac, // TTL 64, ICMP, header checksum
        0x0a, 0x00, 0x02, 0x02, // source 10.0.2.2
        0x0a, 0x00, 0x01, 0x02, // destination 10.0.1.2
        0x03, 0x03, 0x14, 0x2e, // unreachable, port, checksum
        0x00, 0x00, 0x00, 0x00, // unused
        0x45, 0x00, 0x00, 0x30, // quoted: version 4, IHL 5, total length 48
        0x42, 0x42, 0x00, 0x00, // identification, no flags
        0x40, 0x11, 0x21, 0x78, // TTL 64, UDP, checksum
        0x0a, 0x00, 0x01, 0x02, // source 10.0.1.2
        0x0a, 0x00, 0x02, 0x02, // destination 10.0.2.2
        0xcf, 0x0c, 0x27, 0x0f, // ports 53004 -> 9999
        0x00, 0x1c, 0x84, 0x28, // length 28, checksum
    ];
    f.extend_from_slice(&[0x71; 20]); // quoted data
    f
}

/// traces/ipv6_icmpv6_echo_request_reply.pcapng packet 0.
fn echo6_frame() -> Vec<u8> {
    let mut f = vec![
        0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x01, 0x02, // source MAC
        0x86, 0xdd, // EtherType IPv6
        0x60, 0x00, 0x00, 0x00, // version 6
        0x00, 0x40, 0x3a, 0x40, // payload length 64, ICMPv6, hop limit 64
    ];
    f.extend_from_slice(&C6.to_be_bytes()); // source fd00:1::2
    f.extend_from_slice(&S6.to_be_bytes()); // destination fd00:2::2
    f.extend_from_slice(&[
        0x80, 0x00, 0x26, 0xfb, // echo request, code 0, checksum
        0x12, 0x34, 0x00, 0x01, // identifier 0x1234, sequence 1
    ]);
    f.extend_from_slice(&[0x70; 56]);
    f
}

// ---- builders for variants; their checksums come from `checksum`, which the captured
// ---- vectors above and in checksum.rs validate ----

fn ether(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn ipv4(proto: u8, flags_off: u16, addrs: &IpAddrs, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = (hlen + l4.len()) as u16;
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&flags_off.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&(addrs.src as u32).to_be_bytes());
    p.extend_from_slice(&(addrs.dst as u32).to_be_bytes());
    p.extend_from_slice(options);
    let sum = !checksum::data(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

fn ipv6(next: u8, addrs: &IpAddrs, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&addrs.src.to_be_bytes());
    p.extend_from_slice(&addrs.dst.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Fill the 16-bit checksum at `at` in `l4` for protocol `proto` (pseudo-header unless
/// `proto` is ICMP).
fn fill(addrs: &IpAddrs, proto: u8, mut l4: Vec<u8>, at: usize) -> Vec<u8> {
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let data = checksum::data(&l4);
    let sum = if proto == proto::ICMP {
        data
    } else {
        checksum::combine(&[checksum::pseudo_header(addrs, proto, l4.len() as u32), data])
    };
    l4[at..at + 2].copy_from_slice(&(!sum).to_be_bytes());
    l4
}

fn tcp(addrs: &IpAddrs, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&7u32.to_be_bytes()); // sequence
    t.extend_from_slice(&9u32.to_be_bytes()); // acknowledgment
    t.extend_from_slice(&[0x50, flags, 0x20, 0x00, 0, 0, 0, 0]); // doff 5, window 8192
    t.extend_from_slice(payload);
    fill(addrs, proto::TCP, t, 16)
}

fn udp(addrs: &IpAddrs, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    fill(addrs, proto::UDP, u, 6)
}

fn icmp(addrs: &IpAddrs, type_: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![type_, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let proto = if addrs.family == Family::V4 {
        proto::ICMP
    } else {
        proto::ICMPV6
    };
    fill(addrs, proto, m, 2)
}

fn tcp4_frame(flags: u8, payload: &[u8]) -> Vec<u8> {
    let a = v4(C4, S4);
    ether(
        0x0800,
        &ipv4(
            proto::TCP,
            0x4000,
            &a,
            &[],
            &tcp(&a, 40000, 80, flags, payload),
        ),
    )
}

/// IPv6 with Hop-by-Hop, Destination Options and Routing headers before TCP.
fn tcp6_ext_frame() -> Vec<u8> {
    let a = v6(C6, S6);
    let mut payload = vec![
        60, 0, 1, 4, 0, 0, 0, 0, // Hop-by-Hop: next Destination Options, PadN 6
        43, 0, 1, 4, 0, 0, 0, 0, // Destination Options: next Routing, PadN 6
        6, 2, 4, 0, 0, 0, 0, 0, // Routing: next TCP, 24 bytes, type 4, segments left 0
    ];
    payload.extend_from_slice(&[0xaa; 16]); // the segment list
    payload.extend_from_slice(&tcp(&a, 40000, 443, TcpFlags::SYN, b"hello"));
    ether(0x86dd, &ipv6(0, &a, &payload))
}

// ---- good packets ----

#[test]
fn captured_syn() {
    let p = parse_ok(&SYN_FRAME);
    assert_eq!(p.addrs, v4(C4, S4));
    assert_eq!(p.proto, proto::TCP);
    let L4::Tcp(seg) = p.l4 else {
        panic!("{:?}", p.l4)
    };
    assert_eq!(
        (seg.sport, seg.dport, seg.seq, seg.ack),
        (40090, 80, 1_000_000, 0)
    );
    assert_eq!(
        (seg.flags, seg.window, seg.payload_len),
        (TcpFlags(0x02), 64240, 0)
    );
    assert_eq!(seg.options, &SYN_FRAME[54..]);
    let opts: Vec<_> = tcp::TcpOptions::new(seg.options).collect();
    assert_eq!(opts.len(), 3);
}

#[test]
fn ethernet_padding_is_ignored() {
    let f = tcp4_frame(TcpFlags::ACK, b"");
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 6]); // 54 -> 60 bytes, as a NIC pads a runt
    let want = parse_ok(&f).l4;
    assert_eq!(parse_ok(&padded).l4, want);
    let L4::Tcp(seg) = want else { panic!() };
    assert_eq!(seg.payload_len, 0);
}

#[test]
fn vlan_single_and_double_tagged() {
    let plain = SYN_FRAME.to_vec();
    let mut one = plain.clone();
    one.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
    let mut two = plain.clone();
    two.splice(12..12, [0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a]);
    let want = parse_ok(&plain);
    assert_eq!(parse_ok(&one), want);
    assert_eq!(parse_ok(&two), want);
    let mut three = two.clone();
    three.splice(12..12, [0x91, 0x00, 0x00, 0x01]);
    assert_eq!(parse_l4_of(&three), Err(Reason::VlanTooManyTags));
}

/// `skb->len` at PREROUTING: IP header and payload, nothing of the link layer, no padding.
#[test]
fn ip_len_counts_the_ip_packet_only() {
    assert_eq!(ip_len(&SYN_FRAME), Some(52));
    let mut padded = SYN_FRAME.to_vec();
    padded.extend_from_slice(&[0; 10]);
    assert_eq!(ip_len(&padded), Some(52), "Ethernet padding is not counted");
    let mut tagged = SYN_FRAME.to_vec();
    tagged.splice(12..12, [0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a]);
    assert_eq!(ip_len(&tagged), Some(52), "nor VLAN tags");
    assert_eq!(ip_len(&echo_frame()), Some(84));
    let a = v6(C6, S6);
    let f = ether(0x86dd, &ipv6(proto::UDP, &a, &udp(&a, 5353, 53, b"query")));
    assert_eq!(ip_len(&f), Some(40 + 8 + 5));
    assert_eq!(ip_len(&ether(0x0806, &[0; 28])), None);
    assert_eq!(ip_len(&SYN_FRAME[..17]), None, "no length field");
}

#[test]
fn non_ip_frames() {
    let arp = ether(0x0806, &[0; 28]);
    assert_eq!(parse_l4_of(&arp), Err(Reason::NonIp));
    let lldp = ether(0x88cc, &[0; 28]);
    assert_eq!(parse_l4_of(&lldp), Err(Reason::NonIp));
}

#[test]
fn udp_v4_and_v6() {
    let a = v4(C4, S4);
    let f = ether(
        0x0800,
        &ipv4(proto::UDP, 0, &a, &[], &udp(&a, 5353, 53, b"query")),
    );
    assert_eq!(
        parse_ok(&f).l4,
        L4::Udp(UdpDgram {
            sport: 5353,
            dport: 53
        })
    );
    let a = v6(C6, S6);
    let f = ether(0x86dd, &ipv6(proto::UDP, &a, &udp(&a, 5353, 53, b"query")));
    let p = parse_ok(&f);
    assert_eq!((p.addrs, p.proto), (a, proto::UDP));
    assert_eq!(
        p.l4,
        L4::Udp(UdpDgram {
            sport: 5353,
            dport: 53
        })
    );
}

#[test]
fn udp_zero_checksum_is_accepted_on_both_families() {
    // Linux's udp_error returns early for a zero checksum whatever the family.
    for f in [
        {
            let a = v4(C4, S4);
            let mut u = udp(&a, 1, 2, b"x");
            u[6..8].copy_from_slice(&[0, 0]);
            ether(0x0800, &ipv4(proto::UDP, 0, &a, &[], &u))
        },
        {
            let a = v6(C6, S6);
            let mut u = udp(&a, 1, 2, b"x");
            u[6..8].copy_from_slice(&[0, 0]);
            ether(0x86dd, &ipv6(proto::UDP, &a, &u))
        },
    ] {
        assert_eq!(parse_ok(&f).l4, L4::Udp(UdpDgram { sport: 1, dport: 2 }));
    }
}

#[test]
fn ipv6_extension_headers_before_tcp() {
    let f = tcp6_ext_frame();
    let p = parse_ok(&f);
    assert_eq!((p.addrs, p.proto), (v6(C6, S6), proto::TCP));
    let L4::Tcp(seg) = p.l4 else {
        panic!("{:?}", p.l4)
    };
    assert_eq!((seg.sport, seg.dport, seg.payload_len), (40000, 443, 5));
    // The same with an Authentication Header in the chain.
    let a = v6(C6, S6);
    let mut payload = vec![6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]; // AH: next TCP, 24 bytes
    payload.extend_from_slice(&[0; 12]); // ICV
    payload.extend_from_slice(&tcp(&a, 1, 2, TcpFlags::ACK, b""));
    let f = ether(0x86dd, &ipv6(51, &a, &payload));
    assert!(matches!(parse_ok(&f).l4, L4::Tcp(_)));
}

#[test]
fn gre_keys_follow_linux() {
    let a = v4(C4, S4);
    let check = |l4: &[u8], want: L4<'static>| {
        let f = ether(0x0800, &ipv4(47, 0, &a, &[], l4));
        assert_eq!(parse_ok(&f).l4, want, "{l4:?}");
    };
    // Version 0 (and anything too short to read): addresses only.
    check(&[0, 0, 0x08, 0x00], L4::Gre { call_id: None });
    check(&[0], L4::Gre { call_id: None });
    // Version 1 carrying PPP: keyed on the call id.
    check(
        &[0x30, 0x81, 0x88, 0x0b, 0, 8, 0x12, 0x34],
        L4::Gre {
            call_id: Some(0x1234),
        },
    );
    // Version 1 carrying anything else has no tuple in Linux...
    check(
        &[0x30, 0x81, 0x08, 0x00, 0, 8, 0x12, 0x34],
        L4::Malformed(Reason::GreUnsupported),
    );
    // ... unless it is too short to reach the call id: then the zeroed key stands.
    check(&[0x30, 0x81, 0x08, 0x00, 0, 8], L4::Gre { call_id: None });
    check(&[0x30, 0x81, 0x88, 0x0b], L4::Gre { call_id: None });
}

#[test]
fn ipv6_other_protocols_and_no_next_header() {
    let a = v6(C6, S6);
    // ESP (50) is a transport as far as conntrack is concerned: generic tracking.
    let f = ether(0x86dd, &ipv6(50, &a, &[0; 16]));
    assert_eq!(parse_ok(&f).l4, L4::Other);
    assert_eq!(parse_ok(&f).proto, 50);
    // No Next Header: conntrack finds no transport and calls it invalid.
    let f = ether(0x86dd, &ipv6(60, &a, &[59, 0, 1, 4, 0, 0, 0, 0]));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv6BadExtHeader));
    let f = ether(0x86dd, &ipv6(59, &a, &[]));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv6BadExtHeader));
}

#[test]
fn ipv6_bad_hop_by_hop_and_bad_addresses() {
    let a = v6(C6, S6);
    let mut payload = vec![6, 0, 0xc2, 4, 0, 1, 0, 0]; // Jumbo Payload option
    payload.extend_from_slice(&tcp(&a, 1, 2, TcpFlags::ACK, b""));
    let f = ether(0x86dd, &ipv6(0, &a, &payload));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv6BadExtHeader));
    let lo = v6(1, S6);
    let f = ether(0x86dd, &ipv6(proto::UDP, &lo, &udp(&lo, 1, 2, b"")));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv6BadAddress));
}

#[test]
fn ipv4_fragments_first_and_later() {
    let a = v4(C4, S4);
    let seg = tcp(&a, 40000, 80, TcpFlags::ACK, &[0x55; 32]);
    // First fragment: MF set, offset 0. Its transport header is not read.
    let f = ether(0x0800, &ipv4(proto::TCP, 0x2000, &a, &[], &seg[..24]));
    let p = parse_ok(&f);
    assert_eq!((p.addrs, p.proto, p.l4), (a, proto::TCP, L4::Fragment));
    // Last fragment at offset 24 (3 * 8).
    let f = ether(0x0800, &ipv4(proto::TCP, 0x0003, &a, &[], &seg[24..]));
    assert_eq!(parse_ok(&f).l4, L4::Fragment);
    // A later fragment too short to hold any transport header still is a fragment.
    let f = ether(0x0800, &ipv4(proto::UDP, 0x0010, &a, &[], &[1, 2]));
    assert_eq!(parse_ok(&f).l4, L4::Fragment);
}

#[test]
fn ipv6_fragments_including_atomic() {
    let a = v6(C6, S6);
    let seg = tcp(&a, 40000, 80, TcpFlags::ACK, &[0x55; 32]);
    let frag = |off_m: u16, body: &[u8]| {
        let mut p = vec![proto::TCP, 0];
        p.extend_from_slice(&off_m.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 42]); // identification
        p.extend_from_slice(body);
        ether(0x86dd, &ipv6(44, &a, &p))
    };
    for f in [
        frag(0x0001, &seg[..24]), // first fragment
        frag(0x0018, &seg[24..]), // last fragment at 24
        frag(0x0000, &seg),       // atomic fragment: offset 0, M = 0
    ] {
        let p = parse_ok(&f);
        assert_eq!((p.addrs, p.proto, p.l4), (a, proto::TCP, L4::Fragment));
    }
    // A Fragment header cut short is a bad extension header.
    let f = ether(0x86dd, &ipv6(44, &a, &[6, 0, 0, 1]));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv6BadExtHeader));
}

#[test]
fn icmp_echo() {
    let f = echo_frame();
    let p = parse_ok(&f);
    assert_eq!((p.addrs, p.proto), (v4(C4, S4), proto::ICMP));
    assert_eq!(
        p.l4,
        L4::Icmp(IcmpMsg {
            type_: 8,
            code: 0,
            id: 0x1234,
            inner: None
        })
    );
}

#[test]
fn icmp_port_unreachable_quoting_udp() {
    let f = port_unreach_udp_frame();
    let p = parse_ok(&f);
    assert_eq!(p.addrs, v4(S4, C4));
    let inner = InnerTuple {
        addrs: v4(C4, S4),
        proto: proto::UDP,
        l4: InnerL4::Ports {
            sport: 53004,
            dport: 9999,
        },
    };
    assert_eq!(
        p.l4,
        L4::Icmp(IcmpMsg {
            type_: 3,
            code: 3,
            id: 0,
            inner: Some(Ok(inner))
        })
    );
}

#[test]
fn icmp_port_unreachable_quoting_tcp() {
    let (out, quoted) = (v4(S4, C4), v4(C4, S4));
    let syn = tcp(&quoted, 40000, 80, TcpFlags::SYN, b"");
    let inner_ip = ipv4(proto::TCP, 0x4000, &quoted, &[], &syn);
    let msg = icmp(&out, 3, 3, [0; 4], &inner_ip[..28]); // IP header + 8 bytes
    let f = ether(0x0800, &ipv4(proto::ICMP, 0, &out, &[], &msg));
    let L4::Icmp(m) = parse_ok(&f).l4 else {
        panic!()
    };
    assert_eq!(
        m.inner,
        Some(Ok(InnerTuple {
            addrs: quoted,
            proto: proto::TCP,
            l4: InnerL4::Ports {
                sport: 40000,
                dport: 80
            }
        }))
    );
    // Quoting only the IP header: the ports are missing.
    let msg = icmp(&out, 3, 3, [0; 4], &inner_ip[..20]);
    let f = ether(0x0800, &ipv4(proto::ICMP, 0, &out, &[], &msg));
    let L4::Icmp(m) = parse_ok(&f).l4 else {
        panic!()
    };
    assert_eq!(m.inner, Some(Err(Reason::IcmpBadInner)));
}

#[test]
fn icmpv6_echo() {
    let f = echo6_frame();
    let p = parse_ok(&f);
    assert_eq!((p.addrs, p.proto), (v6(C6, S6), proto::ICMPV6));
    assert_eq!(
        p.l4,
        L4::Icmp(IcmpMsg {
            type_: 128,
            code: 0,
            id: 0x1234,
            inner: None
        })
    );
}

#[test]
fn icmpv6_destination_unreachable_quoting_tcp() {
    let (out, quoted) = (v6(S6, C6), v6(C6, S6));
    let inner = ipv6(
        proto::TCP,
        &quoted,
        &tcp(&quoted, 40000, 80, TcpFlags::SYN, b""),
    );
    let msg = icmp(&out, 1, 4, [0; 4], &inner);
    let f = ether(0x86dd, &ipv6(proto::ICMPV6, &out, &msg));
    let p = parse_ok(&f);
    let want = InnerTuple {
        addrs: quoted,
        proto: proto::TCP,
        l4: InnerL4::Ports {
            sport: 40000,
            dport: 80,
        },
    };
    assert_eq!(
        p.l4,
        L4::Icmp(IcmpMsg {
            type_: 1,
            code: 4,
            id: 0,
            inner: Some(Ok(want))
        })
    );
}

// ---- bad packets ----

#[test]
fn every_prefix_of_every_fixture() {
    let fixtures = [
        SYN_FRAME.to_vec(),
        echo_frame(),
        port_unreach_udp_frame(),
        echo6_frame(),
        tcp6_ext_frame(),
        tcp4_frame(TcpFlags::PSH | TcpFlags::ACK, b"data"),
    ];
    for f in &fixtures {
        for n in 0..f.len() {
            let got = parse_l4_of(&f[..n]);
            let want = match (n, f[12]) {
                (0..14, _) => Reason::EthTruncated,
                (14..34, 0x08) => Reason::Ipv4Truncated,
                (_, 0x08) => Reason::Ipv4BadTotalLength,
                (14..54, _) => Reason::Ipv6Truncated,
                _ => Reason::Ipv6BadPayloadLength,
            };
            assert_eq!(got, Err(want), "prefix {n} of {f:02x?}");
        }
        assert!(parse_l4_of(f).is_ok());
    }
}

#[test]
fn impossible_ipv4_lengths() {
    let mut f = SYN_FRAME;
    f[14] = 0x4f; // IHL 15 = 60 bytes, only 52 there
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv4BadIhl));
    let mut f = SYN_FRAME;
    f[14] = 0x43; // IHL 3
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv4BadIhl));
    let mut f = SYN_FRAME;
    f[14] = 0x55; // version 5
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv4BadVersion));
    let mut f = SYN_FRAME;
    f[24] ^= 0x01; // damaged header checksum
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv4BadChecksum));
    assert!(
        parse(&f, &CFG, ChecksumHint::Good).is_ok(),
        "the NIC vouched for it"
    );
    // Total length beyond the frame, and below the header: re-checksummed so that only
    // the length is wrong.
    for total in [53u16, 1500, 19, 0] {
        let mut f = SYN_FRAME;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = !checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            parse_l4_of(&f),
            Err(Reason::Ipv4BadTotalLength),
            "total {total}"
        );
    }
}

#[test]
fn ipv4_options() {
    let a = v4(C4, S4);
    let seg = tcp(&a, 1, 2, TcpFlags::ACK, b"");
    let ra = ether(0x0800, &ipv4(proto::TCP, 0, &a, &[148, 4, 0, 0], &seg));
    assert!(matches!(parse_l4_of(&ra), Ok(L4::Tcp(_))));
    let lsrr = [131, 7, 4, 10, 0, 0, 1, 0];
    let f = ether(0x0800, &ipv4(proto::TCP, 0, &a, &lsrr, &seg));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv4BadOptions));
    let f = ether(0x0800, &ipv4(proto::TCP, 0, &a, &[0x44, 9, 5, 0], &seg));
    assert_eq!(parse_l4_of(&f), Err(Reason::Ipv4BadOptions));
}

#[test]
fn impossible_tcp_headers() {
    let a = v4(C4, S4);
    let with_doff = |doff: u8| {
        let mut t = tcp(&a, 1, 2, TcpFlags::ACK, &[0; 12]);
        t[12] = doff << 4;
        let t = fill(&a, proto::TCP, t, 16);
        ether(0x0800, &ipv4(proto::TCP, 0, &a, &[], &t))
    };
    assert_eq!(
        parse_l4_of(&with_doff(15)),
        Ok(L4::Malformed(Reason::TcpTruncated))
    );
    assert_eq!(
        parse_l4_of(&with_doff(4)),
        Ok(L4::Malformed(Reason::TcpBadDataOffset))
    );
    assert_eq!(
        parse_l4_of(&with_doff(0)),
        Ok(L4::Malformed(Reason::TcpBadDataOffset))
    );
    let eight = with_doff(8);
    let L4::Tcp(seg) = parse_l4_of(&eight).unwrap() else {
        panic!()
    };
    assert_eq!((seg.options.len(), seg.payload_len), (12, 0));
    // Fewer than 20 bytes of TCP in the IP payload.
    let f = ether(0x0800, &ipv4(proto::TCP, 0, &a, &[], &[0; 19]));
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::TcpTruncated)));
    // A bad checksum; only the L4 switch and the NIC hint skip it.
    let mut f = tcp4_frame(TcpFlags::ACK, b"abc");
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::TcpBadChecksum)));
    let off = ParseConfig {
        verify_l4_checksum: false,
    };
    assert!(matches!(
        parse(&f, &off, ChecksumHint::Unknown).unwrap().l4,
        L4::Tcp(_)
    ));
    assert!(matches!(
        parse(&f, &CFG, ChecksumHint::Good).unwrap().l4,
        L4::Tcp(_)
    ));
}

/// A local sender with checksum offload leaves the TCP/UDP checksum field unfinished (it
/// holds only the pseudo-header sum); the device may say so (`L4Good`), and then, as
/// Linux skips `CHECKSUM_PARTIAL` packets in `nf_checksum`, nothing is verified but the
/// IPv4 header, which the device did not vouch for.
#[test]
fn partial_checksums_pass_when_the_device_vouches_for_the_transport_layer() {
    let partial = |mut f: Vec<u8>, field: usize| {
        f[field..field + 2].copy_from_slice(&[0x5c, 0x3a]); // any unfinished value
        f
    };
    let tcp = partial(tcp4_frame(TcpFlags::SYN, b""), 14 + 20 + 16);
    let a = v4(C4, S4);
    let udp = partial(
        ether(
            0x0800,
            &ipv4(proto::UDP, 0, &a, &[], &udp(&a, 1, 2, b"abcd")),
        ),
        14 + 20 + 6,
    );
    for f in [&tcp, &udp] {
        assert!(matches!(
            parse_l4_of(f),
            Ok(L4::Malformed(
                Reason::TcpBadChecksum | Reason::UdpBadChecksum
            ))
        ));
        for hint in [ChecksumHint::L4Good, ChecksumHint::Good] {
            let l4 = parse(f, &CFG, hint).map(|p| p.l4);
            assert!(
                matches!(l4, Ok(L4::Tcp(_) | L4::Udp(_))),
                "{hint:?}: {l4:?}"
            );
        }
    }
    // The IPv4 header checksum is still verified under L4Good, not under Good.
    let mut bad_ip = tcp.clone();
    bad_ip[14 + 10] ^= 0xff;
    assert_eq!(
        parse(&bad_ip, &CFG, ChecksumHint::L4Good).map(|p| p.l4),
        Err(Reason::Ipv4BadChecksum)
    );
    assert!(parse(&bad_ip, &CFG, ChecksumHint::Good).is_ok());
    // ICMP is verified whatever the device says.
    let mut echo = echo_frame();
    let last = echo.len() - 1;
    echo[last] ^= 1;
    assert_eq!(
        parse(&echo, &CFG, ChecksumHint::L4Good).map(|p| p.l4),
        Ok(L4::Malformed(Reason::IcmpBadChecksum))
    );
}

#[test]
fn impossible_udp_headers() {
    let a = v4(C4, S4);
    for (len_field, want) in [(3u16, Reason::UdpBadLength), (200, Reason::UdpBadLength)] {
        let mut u = udp(&a, 1, 2, b"abcd");
        u[4..6].copy_from_slice(&len_field.to_be_bytes());
        let f = ether(0x0800, &ipv4(proto::UDP, 0, &a, &[], &u));
        assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(want)));
    }
    let f = ether(0x0800, &ipv4(proto::UDP, 0, &a, &[], &[0; 7]));
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::UdpTruncated)));
    let mut u = udp(&a, 1, 2, b"abcd");
    u[9] ^= 1;
    let f = ether(0x0800, &ipv4(proto::UDP, 0, &a, &[], &u));
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::UdpBadChecksum)));
}

#[test]
fn bad_icmp() {
    let mut f = echo_frame();
    let last = f.len() - 1;
    f[last] ^= 1;
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::IcmpBadChecksum)));
    let mut f = echo6_frame();
    f[last] ^= 1;
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::IcmpBadChecksum)));
    let a = v4(C4, S4);
    let f = ether(
        0x0800,
        &ipv4(proto::ICMP, 0, &a, &[], &[8, 0, 0, 0, 0, 0, 0]),
    );
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::IcmpTruncated)));
    // ICMPv6 carried over IPv4: conntrack's ICMPv6 tracker refuses the family.
    let f = ether(
        0x0800,
        &ipv4(proto::ICMPV6, 0, &a, &[], &[128, 0, 0, 0, 0, 0, 0, 0]),
    );
    assert_eq!(parse_l4_of(&f), Ok(L4::Malformed(Reason::IcmpInvalidNew)));
}

// ---- frames in several buffers ----

const JUMBO_KINDS: usize = 6;

/// A valid frame of kind `which` carrying `n` payload bytes (at most what its IP length
/// field allows): TCP, UDP and ICMP echo over IPv4 and IPv6, IPv6 with extension headers,
/// and an ICMP error quoting a TCP segment.
fn jumbo(which: usize, n: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
    let (a4, a6) = (v4(C4, S4), v6(C6, S6));
    match which {
        0 => tcp4_frame(TcpFlags::ACK, &body),
        1 => ether(
            0x0800,
            &ipv4(proto::UDP, 0x4000, &a4, &[], &udp(&a4, 5000, 53, &body)),
        ),
        2 => ether(
            0x86dd,
            &ipv6(proto::TCP, &a6, &tcp(&a6, 40000, 443, 0x18, &body)),
        ),
        3 => {
            let mut payload = vec![60, 0, 1, 4, 0, 0, 0, 0]; // Hop-by-Hop, PadN 6
            payload.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // Dest Options
            payload.extend_from_slice(&udp(&a6, 5000, 53, &body));
            ether(0x86dd, &ipv6(0, &a6, &payload))
        }
        4 => ether(
            0x86dd,
            &ipv6(
                proto::ICMPV6,
                &a6,
                &icmp(&a6, 128, 0, [0x12, 0x34, 0, 1], &body),
            ),
        ),
        _ => {
            // Port unreachable from the server quoting a client's TCP segment, padded.
            let quoted = ipv4(
                proto::TCP,
                0x4000,
                &a4,
                &[],
                &tcp(&a4, 40000, 80, TcpFlags::SYN, &[]),
            );
            let mut q = quoted;
            q.extend_from_slice(&body);
            let back = v4(S4, C4);
            ether(
                0x0800,
                &ipv4(proto::ICMP, 0, &back, &[], &icmp(&back, 3, 3, [0; 4], &q)),
            )
        }
    }
}

#[test]
fn jumbo_frames_parse_whole_and_split() {
    for which in 0..JUMBO_KINDS {
        let f = jumbo(which, 8900);
        let one = parse_ok(&f);
        assert!(!matches!(one.l4, L4::Malformed(_)), "{which}: {one:?}");
        let (a, b) = f.split_at(2048);
        let (b, c) = b.split_at(2048);
        let tail = [b, c];
        assert_eq!(
            parse_span(Span::frame(a, &tail), &CFG, ChecksumHint::Unknown),
            Ok(one),
            "{which}"
        );
        // A payload byte changed beyond the first buffer: the checksum covers it.
        let mut bad = f.clone();
        bad[5000] ^= 0x40;
        let (a, b) = bad.split_at(2048);
        let tail = [b];
        let got = parse_span(Span::frame(a, &tail), &CFG, ChecksumHint::Unknown);
        assert_eq!(got, parse(&bad, &CFG, ChecksumHint::Unknown), "{which}");
        assert!(
            matches!(
                got,
                Ok(Packet {
                    l4: L4::Malformed(_),
                    ..
                })
            ),
            "{which}: {got:?}"
        );
    }
    // The TCP segment's payload length comes from the IP length, not the first buffer.
    let f = jumbo(0, 8000);
    let (a, b) = f.split_at(1500);
    let tail = [b];
    let Ok(Packet {
        l4: L4::Tcp(seg), ..
    }) = parse_span(Span::frame(a, &tail), &CFG, ChecksumHint::Unknown)
    else {
        panic!("not TCP");
    };
    assert_eq!(seg.payload_len, 8000);
}

#[test]
fn headers_beyond_the_header_span_read_as_cut_short() {
    // IPv6 whose Destination Options header ends past the first HEADER_SPAN bytes:
    // whole or split, the walk cannot finish within the head.
    let a = v6(C6, S6);
    let opts_len = 1024; // 8 + 1016 bytes of PadN-free unknown-skip options
    let mut payload = vec![6, (opts_len / 8 - 1) as u8];
    payload.extend(core::iter::repeat_n(0u8, opts_len - 2));
    payload.extend_from_slice(&tcp(&a, 40000, 443, TcpFlags::SYN, &[0; 2000]));
    let f = ether(0x86dd, &ipv6(60, &a, &payload));
    let want = parse(&f, &CFG, ChecksumHint::Unknown);
    assert_eq!(want.map(|p| p.l4), Ok(L4::Malformed(Reason::TcpTruncated)));
    let (x, y) = f.split_at(HEADER_SPAN);
    let tail = [y];
    assert_eq!(
        parse_span(Span::frame(x, &tail), &CFG, ChecksumHint::Unknown),
        want
    );
}

// ---- the fast path against the general parser ----

/// How a generated frame is made: see [`made_frame`].
#[derive(Clone, Debug)]
struct Recipe {
    v6: bool,
    /// 0 TCP, 1 UDP, 2 ICMP echo, 3 GRE, 4 another protocol (SCTP).
    transport: u8,
    /// 0, 1 or 2 VLAN tags, TPIDs from [`ethernet::ethertype::is_vlan`]'s set.
    tags: Vec<u16>,
    /// TCP option bytes (any bytes: the walk in the tracker, not the parser, judges them).
    tcp_options: Vec<u8>,
    /// IPv4: 0 none, 1 Router Alert, 2 four NOPs (both accepted), 3 LSRR (refused).
    /// IPv6: 0 none, 1 Hop-by-Hop, 2 Destination Options, 3 a Fragment header.
    ip_extra: u8,
    /// IPv4 flags and fragment offset.
    flags_off: u16,
    payload: Vec<u8>,
    padding: Vec<u8>,
    /// Break the IPv4 header checksum, the transport checksum, or neither (0).
    bad_checksum: u8,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    let payload = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        // Longer than the head: the general parser reads it as `Contiguous`.
        1 => (1000usize..1500).prop_map(|n| (0..n).map(|i| (i * 13) as u8).collect()),
    ];
    (
        any::<bool>(),
        0u8..5,
        proptest::collection::vec(
            prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x9100)],
            0..3,
        ),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|mut o| {
            o.resize(o.len().div_ceil(4) * 4, 1);
            o
        }),
        prop_oneof![3 => Just(0u8), 1 => 1u8..4],
        prop_oneof![3 => Just(0x4000u16), 1 => Just(0), 1 => any::<u16>()],
        payload,
        proptest::collection::vec(any::<u8>(), 0..8),
        prop_oneof![4 => Just(0u8), 1 => 1u8..3],
    )
        .prop_map(
            |(v6, transport, tags, tcp_options, ip_extra, flags_off, payload, padding, bad)| {
                Recipe {
                    v6,
                    transport,
                    tags,
                    tcp_options,
                    ip_extra,
                    flags_off,
                    payload,
                    padding,
                    bad_checksum: bad,
                }
            },
        )
}

/// A valid frame (but for what the recipe breaks on purpose) of the recipe.
fn made_frame(r: &Recipe) -> Vec<u8> {
    let a = if r.v6 { v6(C6, S6) } else { v4(C4, S4) };
    let (proto, mut l4, sum_at) = match r.transport {
        0 => {
            let mut t = Vec::new();
            t.extend_from_slice(&40000u16.to_be_bytes());
            t.extend_from_slice(&443u16.to_be_bytes());
            t.extend_from_slice(&7u32.to_be_bytes());
            t.extend_from_slice(&9u32.to_be_bytes());
            let doff = (20 + r.tcp_options.len()) / 4;
            t.extend_from_slice(&[(doff as u8) << 4, TcpFlags::ACK, 0x20, 0, 0, 0, 0, 0]);
            t.extend_from_slice(&r.tcp_options);
            t.extend_from_slice(&r.payload);
            (proto::TCP, fill(&a, proto::TCP, t, 16), Some(16))
        }
        1 => (proto::UDP, udp(&a, 5000, 53, &r.payload), Some(6)),
        2 if r.v6 => (
            proto::ICMPV6,
            icmp(&a, 128, 0, [0x12, 0x34, 0, 1], &r.payload),
            Some(2),
        ),
        2 => (
            proto::ICMP,
            icmp(&a, 8, 0, [0x12, 0x34, 0, 1], &r.payload),
            Some(2),
        ),
        3 => {
            let mut g = vec![0x20, 0x01, 0x88, 0x0b, 0, 4, 0, 9];
            g.extend_from_slice(&r.payload);
            (proto::GRE, g, None)
        }
        _ => (132, r.payload.clone(), None),
    };
    if r.bad_checksum == 2 {
        if let Some(at) = sum_at {
            l4[at] ^= 0x5a;
        }
    }
    let l3 = if r.v6 {
        let (next, mut payload) = match r.ip_extra {
            0 => (proto, Vec::new()),
            1 => (0, vec![proto, 0, 1, 4, 0, 0, 0, 0]),
            2 => (60, vec![proto, 0, 1, 4, 0, 0, 0, 0]),
            _ => (44, vec![proto, 0, 0, 0, 0, 0, 0, 1]),
        };
        payload.extend_from_slice(&l4);
        ipv6(next, &a, &payload)
    } else {
        let options: &[u8] = match r.ip_extra {
            0 => &[],
            1 => &[148, 4, 0, 0],
            2 => &[1, 1, 1, 1],
            _ => &[131, 7, 4, 10, 0, 0, 1, 0],
        };
        let mut p = ipv4(proto, r.flags_off, &a, options, &l4);
        if r.bad_checksum == 1 {
            p[10] ^= 0x21;
        }
        p
    };
    let mut f = vec![2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2];
    for &tpid in &r.tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0, 100]);
    }
    f.extend_from_slice(&(if r.v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
    f.extend_from_slice(&l3);
    f.extend_from_slice(&r.padding);
    f
}

const HINTS: [ChecksumHint; 3] = [
    ChecksumHint::Unknown,
    ChecksumHint::Good,
    ChecksumHint::L4Good,
];
const CFGS: [ParseConfig; 2] = [
    CFG,
    ParseConfig {
        verify_l4_checksum: false,
    },
];

/// `parse` (fast path, then the general parser) and the general parser alone, on `f`
/// under every hint and setting.
fn assert_parsers_agree(f: &[u8]) -> Result<(), TestCaseError> {
    for cfg in &CFGS {
        for hint in HINTS {
            let general = parse_general(f, cfg, hint);
            prop_assert_eq!(
                parse(f, cfg, hint),
                general,
                "{:?} {:?} {:02x?}",
                cfg,
                hint,
                f
            );
            // `parse_tcp` answers for a TCP packet of the fast path, as the general
            // parser builds it, and only for one.
            if let Some((addrs, seg)) = parse_tcp(f, cfg, hint) {
                let packet = Packet {
                    addrs,
                    proto: proto::TCP,
                    l4: L4::Tcp(seg),
                };
                prop_assert_eq!(Ok(packet), general, "{:?} {:?} {:02x?}", cfg, hint, f);
            }
        }
    }
    Ok(())
}

/// The fast path must not be vacuous: the frames it is for are built there, without the
/// general parser, and the same as the general parser builds them.
#[test]
fn common_frames_take_the_fast_path() {
    let a4 = v4(C4, S4);
    let a6 = v6(C6, S6);
    let tagged = |f: Vec<u8>| {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        t.extend_from_slice(&f[12..]);
        t
    };
    let v4_udp = ether(
        0x0800,
        &ipv4(proto::UDP, 0, &a4, &[], &udp(&a4, 5000, 53, b"q")),
    );
    let v6_tcp = ether(
        0x86dd,
        &ipv6(proto::TCP, &a6, &tcp(&a6, 40000, 443, 0x10, b"")),
    );
    let v6_udp = ether(
        0x86dd,
        &ipv6(proto::UDP, &a6, &udp(&a6, 5000, 53, &[7; 1400])),
    );
    let mut padded = tcp4_frame(TcpFlags::ACK, b"");
    padded.extend_from_slice(&[0; 6]);
    for f in [
        SYN_FRAME.to_vec(),
        tcp4_frame(TcpFlags::ACK, &[9; 1460]),
        padded,
        v4_udp.clone(),
        v6_tcp,
        v6_udp,
        tagged(v4_udp),
        tagged(tcp4_frame(TcpFlags::ACK | TcpFlags::PSH, b"abc")),
    ] {
        for cfg in &CFGS {
            for hint in HINTS {
                let fast = fast::parse(&f, cfg, hint, || panic!("fell back: {f:02x?}"));
                assert_eq!(fast, parse_general(&f, cfg, hint));
                assert!(matches!(
                    fast,
                    Ok(Packet {
                        l4: L4::Tcp(_) | L4::Udp(_),
                        ..
                    })
                ));
                // And `parse_tcp` answers for exactly the TCP ones.
                assert_eq!(
                    parse_tcp(&f, cfg, hint).is_some(),
                    matches!(fast, Ok(Packet { l4: L4::Tcp(_), .. })),
                    "{f:02x?}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// `parse` gives the general parser's result, packet or reason, for valid frames of
    /// every family, transport, VLAN tagging, IP option, extension header and fragment
    /// kind, with good and bad checksums, and for their mutations: bytes changed (mostly in
    /// the headers, where the checks are), cut short, or padded.
    #[test]
    fn fast_path_agrees_with_the_general_parser(
        r in recipe(),
        edits in proptest::collection::vec((0usize..96, any::<u8>()), 0..4),
        cut in proptest::option::weighted(0.2, any::<usize>()),
    ) {
        let f = made_frame(&r);
        assert_parsers_agree(&f)?;
        let mut m = f.clone();
        for &(at, byte) in &edits {
            if let Some(b) = m.get_mut(at) {
                *b = byte;
            }
        }
        if let Some(cut) = cut {
            m.truncate(cut % (m.len() + 1));
        }
        assert_parsers_agree(&m)?;
    }

    /// Single bit flips at every header offset of a valid common frame.
    #[test]
    fn fast_path_agrees_after_any_header_bit_flip(
        r in recipe(),
        bit in 0usize..(96 * 8),
    ) {
        let mut f = made_frame(&r);
        if let Some(b) = f.get_mut(bit / 8) {
            *b ^= 1 << (bit % 8);
        }
        assert_parsers_agree(&f)?;
    }
}

// ---- properties ----

fn fixtures() -> Vec<Vec<u8>> {
    vec![
        SYN_FRAME.to_vec(),
        echo_frame(),
        port_unreach_udp_frame(),
        echo6_frame(),
        tcp6_ext_frame(),
        tcp4_frame(TcpFlags::ACK, b"payload"),
    ]
}

fn parse_all_ways(bytes: &[u8]) {
    for cfg in [
        CFG,
        ParseConfig {
            verify_l4_checksum: false,
        },
    ] {
        for hint in [
            ChecksumHint::Unknown,
            ChecksumHint::Good,
            ChecksumHint::L4Good,
        ] {
            let _ = parse(bytes, &cfg, hint);
        }
    }
    let _ = parse_ipv4(bytes, &CFG, ChecksumHint::Unknown);
    let _ = parse_ipv6(bytes, &CFG, ChecksumHint::Unknown);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        parse_all_ways(&bytes);
    }

    #[test]
    fn arbitrary_ip_payloads_never_panic(
        v6 in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        // A valid Ethernet header and a plausible first IP byte get the fuzzing past the
        // first checks far more often than uniform bytes.
        let mut f = ether(if v6 { 0x86dd } else { 0x0800 }, &[if v6 { 0x60 } else { 0x45 }]);
        f.extend_from_slice(&tail);
        parse_all_ways(&f);
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut f = fixtures().swap_remove(which);
        for (at, byte) in edits {
            let at = at % f.len();
            f[at] = byte;
        }
        f.truncate(cut % (f.len() + 1));
        f.extend_from_slice(&extra);
        parse_all_ways(&f);
    }

    /// A frame in several buffers (the head in the first, as [`Span::frame`] asks)
    /// parses exactly as in one buffer, also after mutations that break its checksums
    /// and lengths: jumbo frames from each fixture, cut anywhere.
    #[test]
    fn a_frame_in_buffers_parses_as_in_one(
        which in 0usize..JUMBO_KINDS,
        payload in 0usize..9000,
        cuts in proptest::collection::vec(0usize..9100, 0..6),
        edit in proptest::option::of((any::<usize>(), any::<u8>())),
    ) {
        let mut f = jumbo(which, payload);
        if let Some((at, byte)) = edit {
            let at = at % f.len();
            f[at] = byte;
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(f.len())).collect();
        cuts.sort_unstable();
        cuts.retain(|&c| c >= f.len().min(HEADER_SPAN));
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut at = 0;
        for c in cuts.iter().copied().chain([f.len()]) {
            pieces.push(&f[at..c]);
            at = c;
        }
        let data = pieces.remove(0);
        for hint in [ChecksumHint::Unknown, ChecksumHint::Good] {
            let one = parse(&f, &CFG, hint);
            let split = parse_span(Span::frame(data, &pieces), &CFG, hint);
            prop_assert_eq!(split, one);
        }
    }

    #[test]
    fn trailing_padding_never_changes_the_result(
        which in 0usize..6,
        pad in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let f = fixtures().swap_remove(which);
        let want = parse(&f, &CFG, ChecksumHint::Unknown);
        let mut padded = f.clone();
        padded.extend_from_slice(&pad);
        prop_assert_eq!(parse(&padded, &CFG, ChecksumHint::Unknown), want);
    }
}
