//! ICMPv6 neighbour discovery and MLD (UNTRACKED), unanswerable ICMP answers (INVALID), and
//! frames that are not IP at all.
//!
//! Kernel facts used (`nf_conntrack_proto_icmpv6.c`, `nf_conntrack_proto_icmp.c`):
//! - `nf_conntrack_icmpv6_error`: types in `noct_valid_new[]` (MLD 130, 131, 132, 143; router
//!   solicitation/advertisement 133, 134; neighbour solicitation/advertisement 135, 136; MRD
//!   151, 152) get `nf_ct_set(skb, NULL, IP_CT_UNTRACKED)`: no entry, `ct state untracked`;
//! - an echo reply that finds no entry cannot create one: `valid_new[]` lacks it and the
//!   packet handler returns `-NF_ACCEPT` ("can't create new conn"): INVALID.
//!
//! Non-IP frames never reach IP input or conntrack in Linux; ctfw's `NonIpPolicy` decides
//! (drop by default, or forward for a bump-in-the-wire that must pass ARP).

use std::net::Ipv6Addr;

use ctfw_engine::Reason;
use ctfw_engine::pipeline::NonIpPolicy;
use ctfw_engine::track::CtState;
use ctfw_tracegen::frame::{Frame, Icmp, Ipv6Ext, L4};

use crate::common::*;
use crate::traces::{C4, C6, S4, S6};

fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, body: &[u8], router_alert: bool) -> Vec<u8> {
    let mut f = Frame::ipv6(src, dst).ttl(if router_alert { 1 } else { 255 });
    if router_alert {
        // MLD is sent with a Hop-by-Hop router alert (RFC 2711, value 0).
        f = f.ipv6_ext(Ipv6Ext::HopByHop(vec![5, 2, 0, 0]));
    }
    f.l4 = L4::Icmpv6(Icmp {
        ty,
        code: 0,
        rest: [0; 4],
        checksum: Default::default(),
    });
    f.payload = body.to_vec();
    f.build()
}

#[test]
fn neighbour_discovery_and_mld_are_untracked_and_the_classic_policy_drops_them() {
    let ll_a: Ipv6Addr = "fe80::1".parse().expect("address");
    let ll_b: Ipv6Addr = "fe80::2".parse().expect("address");
    let solicited: Ipv6Addr = "ff02::1:ff00:2".parse().expect("address");
    let all_nodes: Ipv6Addr = "ff02::1".parse().expect("address");
    let all_routers: Ipv6Addr = "ff02::2".parse().expect("address");
    let mldv2: Ipv6Addr = "ff02::16".parse().expect("address");
    let target = ll_b.octets();
    let frames = [
        ("NS", icmpv6(ll_a, solicited, 135, &target, false)),
        ("NA", icmpv6(ll_b, ll_a, 136, &target, false)),
        ("RS", icmpv6(ll_a, all_routers, 133, &[], false)),
        ("RA", icmpv6(ll_b, all_nodes, 134, &[0; 8], false)),
        ("MLD query", icmpv6(ll_b, all_nodes, 130, &[0; 16], true)),
        (
            "MLD report",
            icmpv6(ll_a, solicited, 131, &solicited.octets(), true),
        ),
        (
            "MLD done",
            icmpv6(ll_a, all_routers, 132, &solicited.octets(), true),
        ),
        ("MLDv2 report", icmpv6(ll_a, mldv2, 143, &[0; 4], true)),
    ];
    let mut fw = Fw::classic(64);
    for (name, data) in &frames {
        for port in [INSIDE, OUTSIDE] {
            let v = fw.send(data, port);
            assert_eq!(v.ct, Some(CtState::Untracked), "{name}");
            assert_eq!((v.invalid, v.rule), (None, None), "{name}");
            assert_dropped(&v, Reason::DefaultPolicy);
        }
    }
    assert!(fw.eng.table().is_empty());
    assert_eq!(fw.counters().created, 0);
}

#[test]
fn echo_replies_without_a_request_are_invalid() {
    let mut fw = Fw::classic(64);
    for data in [
        Frame::ipv4(S4, C4).echo_reply(1, 1).build(),
        Frame::ipv6(S6, C6).echo_reply(1, 1).build(),
    ] {
        assert_invalid(&fw.send(&data, OUTSIDE), Reason::IcmpInvalidNew);
        // From the inside too: the direction does not matter, the type does.
        assert_invalid(&fw.send(&data, INSIDE), Reason::IcmpInvalidNew);
    }
    assert!(fw.eng.table().is_empty());
    assert_eq!(fw.counters().get(Reason::IcmpInvalidNew), 4);
}

fn arp_request() -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&[2, 0, 0, 0, 1, 2]);
    arp.extend_from_slice(&C4.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&S4.octets());
    Frame::other(0x0806, arp).build()
}

#[test]
fn arp_is_dropped_by_default_and_forwarded_when_configured() {
    let mut fw = Fw::classic(64);
    let v = fw.send(&arp_request(), INSIDE);
    assert_dropped(&v, Reason::NonIp);
    assert_eq!((v.ct, v.rule), (None, None));
    assert_eq!(fw.counters().get(Reason::NonIp), 1);

    let mut cfg = linux_defaults(64);
    cfg.non_ip = NonIpPolicy::Forward;
    let mut fw = Fw::new(cfg, classic_rules());
    for (port, to) in [(INSIDE, OUTSIDE), (OUTSIDE, INSIDE)] {
        let v = fw.send(&arp_request(), port);
        assert_eq!(v.forward, Some(to));
        assert_eq!((v.ct, v.dropped, v.rule), (None, None, None));
    }
    let c = fw.counters();
    assert_eq!((c.packets, c.accepted, c.dropped), (2, 2, 0));
    assert!(fw.eng.table().is_empty());
}
