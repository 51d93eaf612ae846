//! Connection events (`conntrack -E`), as ctnetlink reports them.
//!
//! Kernel facts used:
//! - `__nf_conntrack_confirm` reports `IPCT_NEW` when the first packet's conntrack is
//!   confirmed, i.e. inserted after the packet survived the rules;
//! - `nf_conntrack_tcp_packet` caches `IPCT_PROTOINFO` when the TCP state changes and
//!   `IPCT_ASSURED` when it sets ASSURED; `nf_conntrack_in` caches `IPCT_REPLY` when it first
//!   sets SEEN_REPLY; the cached bits of one packet are delivered as one UPDATE message;
//! - a conntrack killed by a packet (`nf_ct_kill_acct`, an RST before any reply) is reported
//!   as DESTROY only: `nf_ct_deliver_cached_events` skips dying conntracks;
//! - expiry, early drop and `conntrack -D` report DESTROY (`nf_ct_delete`).
//!
//! TCP states along a client-first close (`tcp_conntracks`): ESTABLISHED, ORIGINAL FIN ->
//! FIN_WAIT, REPLY FIN -> LAST_ACK, ORIGINAL ACK -> TIME_WAIT (2 minutes).

use std::net::Ipv4Addr;

use ctfw_engine::Instant;
use ctfw_engine::observe::{DestroyCause, Event, EventKind};
use ctfw_engine::pipeline::EngineConfig;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::frame::Frame;
use ctfw_tracegen::{Dir, TcpSim};

use crate::common::*;
use crate::traces::S4;

fn events(fw: &mut Fw) -> Vec<Event> {
    let mut out = Vec::new();
    fw.eng.drain_events(|e| out.push(*e));
    out
}

/// `(kind, TCP state, ASSURED, replied)` of each event.
fn summary(evs: &[Event]) -> Vec<(EventKind, Option<TcpState>, bool, bool)> {
    evs.iter()
        .map(|e| {
            let v = &e.record.view;
            (e.kind, v.tcp_state, v.assured, v.seen_reply)
        })
        .collect()
}

fn events_on(cfg: EngineConfig) -> Fw {
    let mut fw = Fw::new(cfg, classic_rules());
    fw.eng.set_events(true);
    fw
}

#[test]
fn handshake_close_and_expiry() {
    use EventKind::*;
    use TcpState::*;
    let mut fw = events_on(linux_defaults(1024));
    let mut sim = TcpSim::default_v4();
    sim.handshake().exchange(100, 1000).close();
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    let evs = events(&mut fw);
    assert_eq!(
        summary(&evs),
        [
            (New, Some(SynSent), false, false),
            (Update, Some(SynRecv), false, true),
            (Update, Some(Established), true, true),
            (Update, Some(FinWait), true, true),
            (Update, Some(LastAck), true, true),
            (Update, Some(TimeWait), true, true),
        ]
    );
    assert!(evs.iter().all(|e| e.at == fw.now()));
    let v = evs[0].record.view;
    assert_eq!(
        (v.orig.src, v.orig.dst, v.orig.sport, v.orig.dport),
        (0x0a00_0102, 0x0a00_0202, 40000, 80)
    );
    // TIME_WAIT lasts 2 minutes; the sweeper reclaims the entry at its deadline.
    fw.advance(120 * SEC - 1);
    fw.eng.sweep(fw.now(), 1024);
    assert!(events(&mut fw).is_empty(), "one tick early");
    fw.advance(1);
    assert_eq!(fw.eng.sweep(fw.now(), 1024), 1);
    let evs = events(&mut fw);
    assert_eq!(
        summary(&evs),
        [(Destroy(DestroyCause::Expired), Some(TimeWait), true, true)]
    );
    assert_eq!(evs[0].at, fw.now());
    assert_eq!(evs[0].record.view.timeout, 0);
}

#[test]
fn a_lookup_that_finds_an_expired_entry_reports_its_destroy_before_the_new_one() {
    use EventKind::*;
    let mut fw = events_on(linux_defaults(1024));
    let mut sim = TcpSim::default_v4();
    sim.syn();
    let syn = sim.take_packets().remove(0);
    fw.pkt(&syn);
    fw.advance(120 * SEC);
    fw.pkt(&syn);
    let kinds: Vec<_> = events(&mut fw).iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [New, Destroy(DestroyCause::Expired), New]);
}

#[test]
fn an_rst_before_any_reply_destroys_without_update() {
    let mut fw = events_on(linux_defaults(1024));
    let mut sim = TcpSim::default_v4();
    sim.syn().rst(Dir::S2c);
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    assert!(fw.eng.table().is_empty());
    assert_eq!(fw.counters().closed, 1);
    let kinds: Vec<_> = events(&mut fw).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::New, EventKind::Destroy(DestroyCause::Closed)]
    );
}

#[test]
fn a_syn_reopening_time_wait_destroys_the_old_entry_then_creates_a_new_one() {
    use EventKind::*;
    let mut fw = events_on(linux_defaults(1024));
    let mut sim = TcpSim::default_v4();
    sim.handshake().close();
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    events(&mut fw);
    // The same client port again, a new connection: TIME_WAIT + SYN re-opens (closed by FIN).
    let mut again = TcpSim::default_v4().isn(7_000_000, 9_000_000);
    again.syn();
    for p in again.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    let evs = events(&mut fw);
    assert_eq!(
        summary(&evs),
        [
            (
                Destroy(DestroyCause::Closed),
                Some(TcpState::TimeWait),
                true,
                true
            ),
            (New, Some(TcpState::SynSent), false, false),
        ]
    );
}

/// A UDP datagram from the `i`-th client to the server's port 53.
fn udp(i: u32) -> Vec<u8> {
    Frame::ipv4(Ipv4Addr::from(0x0a01_0000 + i), S4)
        .udp(10_000 + i as u16, 53)
        .payload(b"q")
        .build()
}

#[test]
fn an_eviction_is_reported_before_the_connection_that_caused_it() {
    let mut fw = events_on(linux_defaults(16));
    for i in 0..16 {
        fw.send(&udp(i), INSIDE);
    }
    assert_eq!(fw.eng.table().len(), 16);
    events(&mut fw);
    assert!(fw.send(&udp(100), INSIDE).forward.is_some());
    assert_eq!(fw.counters().evicted, 1);
    let evs = events(&mut fw);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(evs[0].kind, EventKind::Destroy(DestroyCause::Evicted));
    assert_ne!(
        evs[0].record.view.orig.src,
        0x0a01_0000 + 100,
        "a neighbour"
    );
    assert_eq!(evs[1].kind, EventKind::New);
    assert_eq!(evs[1].record.view.orig.src, 0x0a01_0000 + 100);
}

#[test]
fn a_full_buffer_counts_what_it_drops() {
    let mut fw = events_on(EngineConfig {
        event_capacity: 2,
        ..linux_defaults(1024)
    });
    let mut sim = TcpSim::default_v4();
    sim.handshake();
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    // NEW, UPDATE (SYN_RECV), UPDATE (ESTABLISHED): the third does not fit.
    assert_eq!(fw.counters().events_lost, 1);
    assert_eq!(events(&mut fw).len(), 2);
    // Drained, the buffer takes events again.
    sim.close();
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    assert_eq!(events(&mut fw).len(), 2);
    assert_eq!(fw.counters().events_lost, 2);
}

#[test]
fn off_records_nothing() {
    let mut fw = Fw::classic(16);
    assert!(!fw.eng.events_enabled());
    let mut sim = TcpSim::default_v4();
    sim.handshake().close();
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    for i in 0..40 {
        fw.send(&udp(i), INSIDE);
    }
    fw.advance(600 * SEC);
    fw.eng.sweep(fw.now(), 16);
    assert!(events(&mut fw).is_empty());
    assert_eq!(fw.counters().events_lost, 0);
    // On, then off again: what was recorded stays for the next drain, nothing more comes.
    fw.eng.set_events(true);
    fw.send(&udp(1000), INSIDE);
    fw.eng.set_events(false);
    fw.send(&udp(1001), INSIDE);
    let evs = events(&mut fw);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].kind, EventKind::New);
    assert_eq!(evs[0].at, Instant(fw.now().0));
}
