//! Per-connection accounting (`conntrack.accounting`, Linux `nf_conntrack_acct=1`).
//!
//! Kernel facts used (`nf_conntrack_core.c`, `nf_conntrack_proto_tcp.c`):
//! - a packet is counted by `nf_ct_acct_update`, which only `nf_ct_refresh_acct` (the
//!   tracker accepted and refreshed the entry) and `nf_ct_kill_acct` (TCP's RST before any
//!   reply) call: INVALID segments (`-NF_ACCEPT`), segments the tracker ignores and a SYN
//!   retransmitted in SYN_SENT (`return NF_ACCEPT` before `nf_ct_refresh_acct`) are not
//!   counted;
//! - the count is `skb->len` at PREROUTING: the IP packet (header and payload), after
//!   `ip_rcv_core` trimmed the frame to the IP total length, so neither the Ethernet header
//!   nor padding;
//! - `packets=` and `bytes=` per direction, ORIGINAL then REPLY.
//!
//! The hand counts below follow from the tracegen defaults: IPv4 header 20 bytes, IPv6 40;
//! TCP header 20 plus, on SYN and SYN/ACK, 12 bytes of options (MSS 4, NOP + window scale 4,
//! SACK-permitted + 2 NOPs 4); no timestamps.

use ctfw_engine::Instant;
use ctfw_engine::observe::{Acct, DirAcct};
use ctfw_engine::pipeline::{Engine, EngineConfig};
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_engine::view::EntryView;
use ctfw_tracegen::{Dir, Packet, TcpFlags, TcpSim};

use crate::common::*;

fn accounting_on(capacity: u32) -> EngineConfig {
    EngineConfig {
        accounting: true,
        ..linux_defaults(capacity)
    }
}

/// The accounting of the connection `frame` belongs to, through the operator's lookup.
pub fn acct_of(eng: &Engine, now: Instant, frame: &[u8]) -> Option<Acct> {
    let view = EntryView::new(
        &entry_in(eng, now, frame).expect("the connection has an entry"),
        now.tick(),
    );
    eng.get(now, view.family, view.proto, &view.orig)
        .expect("found by its ORIGINAL tuple")
        .acct
}

fn entry_in(eng: &Engine, now: Instant, frame: &[u8]) -> Option<ctfw_engine::table::Entry> {
    let key = key_of(frame)?;
    let t = eng.table();
    let idx = t.peek(&key, &t.hash(&key))?;
    let e = *t.get(idx);
    (!e.is_expired(now.tick())).then_some(e)
}

fn dir(packets: u64, bytes: u64) -> DirAcct {
    DirAcct { packets, bytes }
}

/// Pads a frame to Ethernet's 60-byte minimum, as a NIC delivers short frames.
fn padded(p: &Packet) -> Vec<u8> {
    let mut f = p.data.clone();
    f.resize(f.len().max(60), 0);
    f
}

/// A handshake, a 100-byte request and 1000-byte response, and a close; the short frames
/// padded. `ip` is the IP header length (20 or 40).
fn handshake_data_close(sim: &mut TcpSim, ip: u64) -> (Vec<Packet>, Acct) {
    sim.handshake().exchange(100, 1000).close();
    let pkts = sim.take_packets();
    let (syn, ack) = (ip + 32, ip + 20);
    let acct = Acct {
        // SYN, ACK, 100 bytes of data, ACK of the response, FIN, last ACK.
        orig: dir(6, syn + ack + (ack + 100) + ack + ack + ack),
        // SYN/ACK, ACK of the request, 1000 bytes of data, FIN.
        reply: dir(4, syn + ack + (ack + 1000) + ack),
    };
    (pkts, acct)
}

fn run(fw: &mut Fw, pkts: &[Packet]) {
    for p in pkts {
        let v = fw.send(&padded(p), port_of(p.side));
        assert!(v.forward.is_some(), "{v:?}");
    }
}

#[test]
fn a_connection_is_counted_per_direction_in_ip_bytes() {
    for (mut sim, ip) in [(TcpSim::default_v4(), 20), (TcpSim::default_v6(), 40)] {
        let mut fw = Fw::new(accounting_on(1024), classic_rules());
        let (pkts, want) = handshake_data_close(&mut sim, ip);
        run(&mut fw, &pkts);
        assert_eq!(
            fw.tcp(&pkts[0].data).map(|c| c.state()),
            Some(TcpState::TimeWait)
        );
        assert_eq!(acct_of(&fw.eng, fw.now(), &pkts[0].data), Some(want));
        // The listing reports the same.
        let mut listed = Vec::new();
        fw.eng.list(
            fw.now(),
            ctfw_engine::ops::Cursor::START,
            &ctfw_engine::ops::Filter::ALL,
            usize::MAX,
            |r| listed.push(r),
        );
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].acct, Some(want));
    }
}

#[test]
fn retransmitted_syns_invalid_and_related_packets_are_not_counted() {
    let mut fw = Fw::new(accounting_on(1024), classic_rules());
    let mut sim = TcpSim::default_v4();
    // A SYN retransmitted in SYN_SENT: accepted, not refreshed, not counted.
    sim.syn().syn();
    let syns = sim.take_packets();
    for p in &syns {
        assert_fwd_pkt(&fw.pkt(p), CtState::New, p);
    }
    let first = &syns[0].data;
    assert_eq!(
        acct_of(&fw.eng, fw.now(), first),
        Some(Acct {
            orig: dir(1, 52),
            ..Acct::default()
        })
    );
    sim.synack().ack();
    run(&mut fw, &sim.take_packets());
    // A segment acknowledging data never sent: INVALID, dropped, not counted.
    let bad = sim.craft(Dir::C2s, TcpFlags::ACK, 0);
    let mut bad = bad;
    if let Some(t) = bad.tcp_mut() {
        t.ack = t.ack.wrapping_add(1_000_000);
    }
    let v = fw.send(&bad.build(), INSIDE);
    assert_eq!(v.ct, Some(CtState::Invalid), "{v:?}");
    // An ICMP error quoting the connection: RELATED, forwarded, not counted.
    let quoted = ctfw_tracegen::frame::Frame::ipv4(crate::traces::C4, crate::traces::S4)
        .tcp(40000, 80)
        .flags(TcpFlags::ACK);
    let err = ctfw_tracegen::frame::Frame::ipv4(crate::traces::S4, crate::traces::C4)
        .icmp_error(3, 4, &quoted)
        .build();
    let v = fw.send(&err, OUTSIDE);
    assert_eq!(v.ct, Some(CtState::Related), "{v:?}");
    assert_eq!(
        acct_of(&fw.eng, fw.now(), first),
        Some(Acct {
            orig: dir(2, 52 + 40),
            reply: dir(1, 52),
        })
    );
}

#[test]
fn packets_the_rules_drop_after_tracking_are_counted() {
    // Conntrack runs before the filter: an ESTABLISHED packet dropped by a rule was counted.
    let mut list = classic_rule_list();
    let block = ctfw_engine::rules::Rule {
        in_port: ctfw_engine::rules::PortSet::EMPTY.with(OUTSIDE),
        ..ctfw_engine::rules::Rule::new(ctfw_engine::rules::Action::Drop)
    };
    let mut fw = Fw::new(accounting_on(1024), classic_rules());
    let mut sim = TcpSim::default_v4();
    sim.handshake();
    run(&mut fw, &sim.take_packets());
    list.insert(0, ("block_outside".to_owned(), block));
    let cfg = fw.eng.config().clone();
    fw.eng.reload(rule_set(list), &cfg).expect("same sizes");
    sim.data_s2c(10);
    let p = sim.take_packets().remove(0);
    let v = fw.pkt(&p);
    assert_eq!(
        (v.ct, v.forward),
        (Some(CtState::Established), None),
        "{v:?}"
    );
    assert_eq!(
        acct_of(&fw.eng, fw.now(), &p.data),
        Some(Acct {
            orig: dir(2, 52 + 40),
            reply: dir(2, 52 + 50),
        })
    );
}

#[test]
fn an_rst_before_any_reply_is_counted_before_the_entry_goes() {
    let mut fw = Fw::new(accounting_on(1024), classic_rules());
    fw.eng.set_events(true);
    let mut sim = TcpSim::default_v4();
    sim.syn().rst(Dir::S2c);
    run(&mut fw, &sim.take_packets());
    let mut last = None;
    fw.eng.drain_events(|e| last = Some(*e));
    let last = last.expect("a DESTROY event");
    assert_eq!(
        last.record.acct,
        Some(Acct {
            orig: dir(1, 52),
            reply: dir(1, 40),
        })
    );
}

#[test]
fn a_reused_slot_starts_from_zero_and_off_means_no_data() {
    let mut fw = Fw::new(accounting_on(16), classic_rules());
    let mut a = TcpSim::default_v4();
    a.syn().rst(Dir::S2c);
    run(&mut fw, &a.take_packets());
    assert!(fw.eng.table().is_empty());
    // The next connection takes the freed slot (the free list hands it out first).
    let mut b = TcpSim::new(
        "10.0.1.3:40001".parse().expect("address"),
        "10.0.2.2:80".parse().expect("address"),
    );
    b.syn();
    let p = b.take_packets().remove(0);
    fw.pkt(&p);
    assert_eq!(
        acct_of(&fw.eng, fw.now(), &p.data),
        Some(Acct {
            orig: dir(1, 52),
            ..Acct::default()
        })
    );

    let mut off = Fw::classic(1024);
    assert!(!off.eng.accounting_enabled());
    let mut sim = TcpSim::default_v4();
    let (pkts, _) = handshake_data_close(&mut sim, 20);
    run(&mut off, &pkts);
    assert_eq!(acct_of(&off.eng, off.now(), &pkts[0].data), None);
    let on = Engine::new(accounting_on(1024), classic_rules(), [1, 2, 3, 4]);
    assert_eq!(
        on.memory_bytes() - off.eng.memory_bytes(),
        1024 * core::mem::size_of::<Acct>(),
        "accounting is one array, allocated only when on"
    );
}
