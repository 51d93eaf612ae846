//! VLAN-tagged frames are tracked exactly like untagged ones.
//!
//! Linux conntrack never sees a VLAN tag: the 802.1Q / 802.1ad header is stripped by the
//! VLAN device (or the NIC) before `ip_rcv`, and the conntrack tuple holds addresses, ports
//! and protocol only (`nf_ct_get_tuple`), so a tagged packet gets the verdict, state and
//! timeout its untagged twin gets. Each wrapping runs through its own engine; verdicts and
//! the final table must be identical.

use ctfw_tracegen::frame::VlanTag;

use crate::common::*;
use crate::traces::{assert_mixed_verdicts, mixed};

fn run(tags: &[VlanTag]) -> (Vec<ctfw_engine::pipeline::Verdict>, Vec<String>) {
    let pkts = mixed(tags);
    let mut fw = Fw::classic(256);
    let verdicts = fw.pkts(&pkts);
    assert_mixed_verdicts(&pkts, &verdicts);
    fw.check();
    (verdicts, all_views(&fw))
}

#[test]
fn tagged_traffic_is_tracked_like_untagged() {
    let legacy_outer = VlanTag {
        tpid: 0x9100,
        ..VlanTag::dot1q(7)
    };
    let (plain_v, plain_t) = run(&[]);
    assert_eq!(plain_t.len(), 6, "TCP, UDP and echo, each in both families");
    for tags in [
        vec![VlanTag::dot1q(100)],
        vec![VlanTag::service(10), VlanTag::dot1q(20)],
        vec![legacy_outer, VlanTag::dot1q(4094)],
    ] {
        let (v, t) = run(&tags);
        assert_eq!(v, plain_v, "verdicts with {tags:?}");
        assert_eq!(t, plain_t, "entries with {tags:?}");
    }
}

#[test]
fn tags_do_not_split_a_connection() {
    // The tuple has no VLAN: a flow whose packets arrive with different tags (here: tagged
    // one way, untagged the other) is one connection.
    let plain = mixed(&[]);
    let tagged = mixed(&[VlanTag::dot1q(100)]);
    let alternate: Vec<_> = plain
        .iter()
        .zip(&tagged)
        .enumerate()
        .map(|(i, (p, t))| if i % 2 == 0 { p.clone() } else { t.clone() })
        .collect();
    let mut fw = Fw::classic(256);
    let verdicts = fw.pkts(&alternate);
    assert_mixed_verdicts(&alternate, &verdicts);
}
