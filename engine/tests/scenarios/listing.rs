//! Listing and deleting connections in bounded chunks (`conntrack -L`, `-G`, `-D`).
//!
//! What a chunked walk guarantees (`ctfw_engine::ops`): every connection present for the
//! whole walk is reported exactly once, whatever is created or removed between chunks;
//! deletion takes ASSURED connections too, counts them and reports them as DESTROY events.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ctfw_engine::observe::{DestroyCause, EntryRecord, EventKind};
use ctfw_engine::ops::{Cursor, Filter};
use ctfw_engine::rules::Prefix;
use ctfw_engine::track::tcp::TcpState;
use ctfw_engine::view::Tuple;
use ctfw_engine::wire::{Family, proto};
use ctfw_tracegen::TcpSim;
use ctfw_tracegen::frame::Frame;
use proptest::prelude::*;

use crate::common::*;
use crate::traces::S4;

/// The `i`-th UDP flow: 10.1.x.y:(10000 + i) -> 10.0.2.2:53.
fn udp(i: u32) -> Vec<u8> {
    Frame::ipv4(client(i), S4)
        .udp(10_000 + (i % 50_000) as u16, 53)
        .payload(b"q")
        .build()
}

fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a01_0000 + i)
}

/// The ORIGINAL tuple of the `i`-th UDP flow.
fn udp_tuple(i: u32) -> Tuple {
    Tuple {
        src: u128::from(u32::from(client(i))),
        dst: u128::from(u32::from(S4)),
        sport: 10_000 + (i % 50_000) as u16,
        dport: 53,
    }
}

/// Every record of a complete walk in chunks of `chunk` slots.
fn walk(fw: &Fw, filter: &Filter, chunk: usize) -> Vec<EntryRecord> {
    let mut out = Vec::new();
    let mut cursor = Some(Cursor::START);
    let mut calls = 0;
    while let Some(c) = cursor {
        cursor = fw.eng.list(fw.now(), c, filter, chunk, |r| out.push(r));
        calls += 1;
        assert!(calls <= fw.eng.table().capacity() + 1, "the walk ends");
    }
    out
}

fn sources(recs: &[EntryRecord]) -> Vec<u128> {
    let mut v: Vec<u128> = recs.iter().map(|r| r.view.orig.src).collect();
    v.sort_unstable();
    v
}

/// One ESTABLISHED, ASSURED TCP connection from the `i`-th client.
fn assured_tcp(fw: &mut Fw, i: u32) -> Tuple {
    let mut sim = TcpSim::new(
        std::net::SocketAddr::new(client(i).into(), 40_000),
        std::net::SocketAddr::new(S4.into(), 80),
    );
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    Tuple {
        src: u128::from(u32::from(client(i))),
        dst: u128::from(u32::from(S4)),
        sport: 40_000,
        dport: 80,
    }
}

#[test]
fn a_walk_in_chunks_reports_each_connection_once_and_filters() {
    let mut fw = Fw::classic(1024);
    for i in 0..300 {
        fw.send(&udp(i), INSIDE);
    }
    let tcp = assured_tcp(&mut fw, 1000);
    let all = walk(&fw, &Filter::ALL, 7);
    assert_eq!(all.len(), 301);
    let mut want: Vec<u128> = (0..300).map(|i| udp_tuple(i).src).collect();
    want.push(tcp.src);
    want.sort_unstable();
    assert_eq!(sources(&all), want);
    assert_eq!(walk(&fw, &Filter::ALL, 1).len(), 301);
    assert_eq!(walk(&fw, &Filter::ALL, usize::MAX).len(), 301);

    let only = |f: Filter| walk(&fw, &f, 100);
    let tcp_only = only(Filter {
        proto: Some(proto::TCP),
        ..Filter::ALL
    });
    assert_eq!(sources(&tcp_only), [tcp.src]);
    assert_eq!(tcp_only[0].view.tcp_state, Some(TcpState::Established));
    assert_eq!(tcp_only[0].acct, None, "accounting is off");
    assert_eq!(
        only(Filter {
            assured: Some(true),
            ..Filter::ALL
        })
        .len(),
        1
    );
    assert_eq!(
        only(Filter {
            unreplied: Some(true),
            ..Filter::ALL
        })
        .len(),
        300
    );
    // 10.1.0.0/24 holds clients 0..=255.
    let net = Prefix::new(Family::V4, 0x0a01_0000, 24).expect("prefix");
    assert_eq!(
        only(Filter {
            src: Some(net),
            proto: Some(proto::UDP),
            ..Filter::ALL
        })
        .len(),
        256
    );
    assert_eq!(
        only(Filter {
            sport: Some(10_007),
            ..Filter::ALL
        })
        .len(),
        1
    );
    // Expired entries are not listed, though the sweeper has not reclaimed them yet.
    fw.advance(30 * SEC);
    assert_eq!(walk(&fw, &Filter::ALL, 64).len(), 1);
    assert_eq!(fw.eng.table().len(), 301);
}

#[test]
fn get_and_delete_by_tuple_through_the_index() {
    let mut fw = Fw::classic(1024);
    fw.eng.set_events(true);
    for i in 0..10 {
        fw.send(&udp(i), INSIDE);
    }
    let tcp = assured_tcp(&mut fw, 50);
    fw.eng.drain_events(|_| {});
    let got = fw
        .eng
        .get(fw.now(), Family::V4, proto::TCP, &tcp)
        .expect("the connection");
    assert!(got.view.assured);
    // The REPLY tuple is not the connection's ORIGINAL tuple.
    let reply = got.view.reply;
    assert_eq!(fw.eng.get(fw.now(), Family::V4, proto::TCP, &reply), None);
    assert!(
        !fw.eng
            .delete_tuple(fw.now(), Family::V4, proto::TCP, &reply)
    );
    // Deleting it, ASSURED as it is.
    assert!(fw.eng.delete_tuple(fw.now(), Family::V4, proto::TCP, &tcp));
    assert!(
        !fw.eng.delete_tuple(fw.now(), Family::V4, proto::TCP, &tcp),
        "gone"
    );
    assert_eq!(fw.eng.get(fw.now(), Family::V4, proto::TCP, &tcp), None);
    assert!(
        fw.eng
            .delete_tuple(fw.now(), Family::V4, proto::UDP, &udp_tuple(3))
    );
    assert_eq!(fw.counters().deleted, 2);
    let mut evs = Vec::new();
    fw.eng.drain_events(|e| evs.push(*e));
    assert_eq!(evs.len(), 2);
    assert!(
        evs.iter()
            .all(|e| e.kind == EventKind::Destroy(DestroyCause::Deleted) && e.at == fw.now())
    );
    assert_eq!(evs[0].record.view.orig, tcp);
    assert!(evs[0].record.view.assured);
    assert_eq!(fw.eng.table().len(), 9);
    fw.check();
}

#[test]
fn delete_by_filter_in_chunks() {
    let mut fw = Fw::classic(1024);
    fw.eng.set_events(true);
    for i in 0..200 {
        fw.send(&udp(i), INSIDE);
    }
    let a = assured_tcp(&mut fw, 500);
    let b = assured_tcp(&mut fw, 501);
    fw.eng.drain_events(|_| {});
    // By tuple as a filter: every field set.
    let exact = Filter::tuple(Family::V4, proto::TCP, &a).expect("v4");
    let (n, next) = fw.eng.delete(fw.now(), Cursor::START, &exact, usize::MAX);
    assert_eq!((n, next), (1, None));
    assert!(fw.eng.get(fw.now(), Family::V4, proto::TCP, &b).is_some());
    // All UDP to port 53, a few slots at a time.
    let dns = Filter {
        proto: Some(proto::UDP),
        dport: Some(53),
        ..Filter::ALL
    };
    let mut cursor = Some(Cursor::START);
    let mut deleted = 0;
    while let Some(c) = cursor {
        let (n, next) = fw.eng.delete(fw.now(), c, &dns, 33);
        assert!(n <= 33);
        deleted += n;
        cursor = next;
    }
    assert_eq!(deleted, 200);
    assert_eq!(fw.counters().deleted, 201);
    let left = walk(&fw, &Filter::ALL, 1024);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].view.orig, b);
    let mut destroyed = 0;
    fw.eng.drain_events(|e| {
        assert_eq!(e.kind, EventKind::Destroy(DestroyCause::Deleted));
        destroyed += 1;
    });
    assert_eq!(destroyed, 201);
    fw.check();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Flows present for the whole walk are reported exactly once, whatever is created and
    /// deleted between chunks; nothing is reported twice from one pool slot.
    #[test]
    fn chunked_walks_survive_churn(
        stable in 1u32..120,
        steps in prop::collection::vec((1usize..40, 0u8..3, 0u32..400), 1..60),
    ) {
        let mut fw = Fw::classic(256);
        // Stable flows 0..stable; churn flows from 1000 on.
        for i in 0..stable {
            fw.send(&udp(i), INSIDE);
        }
        let mut churn: Vec<u32> = Vec::new();
        for i in 0..20 {
            fw.send(&udp(1000 + i), INSIDE);
            churn.push(1000 + i);
        }
        let mut seen: HashMap<u128, usize> = HashMap::new();
        let mut cursor = Some(Cursor::START);
        let mut next_churn = 2000;
        let mut k = 0;
        while let Some(c) = cursor {
            let (chunk, op, n) = steps[k % steps.len()];
            k += 1;
            prop_assert!(k <= 256 + 1, "the walk ends");
            cursor = fw.eng.list(fw.now(), c, &Filter::ALL, chunk, |r| {
                *seen.entry(r.view.orig.src).or_default() += 1;
            });
            match op {
                0 if fw.eng.table().len() < 250 => {
                    fw.send(&udp(next_churn), INSIDE);
                    churn.push(next_churn);
                    next_churn += 1;
                }
                1 if !churn.is_empty() => {
                    let victim = churn.swap_remove(n as usize % churn.len());
                    fw.eng.delete_tuple(fw.now(), Family::V4, proto::UDP, &udp_tuple(victim));
                }
                _ => {}
            }
        }
        for i in 0..stable {
            let src = udp_tuple(i).src;
            prop_assert_eq!(seen.get(&src).copied(), Some(1), "stable flow {}", i);
        }
        prop_assert!(seen.values().all(|&n| n == 1));
        fw.check();
    }
}

/// The table counts its entries by protocol and TCP state as they change, so that metrics
/// can report them without scanning: a handshake moves one entry SYN_SENT -> SYN_RECV ->
/// ESTABLISHED, a close to TIME_WAIT, and expiry takes it away.
#[test]
fn entries_are_counted_by_protocol_and_state() {
    use ctfw_engine::table::EntryClass;
    let count = |fw: &Fw, proto: &str, state: &str| {
        let t = fw.eng.table();
        EntryClass::all()
            .filter(|c| c.proto() == proto && c.state() == state)
            .map(|c| t.by_class()[c.index()])
            .sum::<u32>()
    };
    let mut fw = Fw::classic(64);
    let mut sim = TcpSim::default_v4();
    let pkts = sim.syn().take_packets();
    fw.pkts(&pkts);
    assert_eq!(count(&fw, "tcp", "SYN_SENT"), 1);
    fw.pkts(&sim.synack().take_packets());
    assert_eq!(count(&fw, "tcp", "SYN_RECV"), 1);
    assert_eq!(count(&fw, "tcp", "SYN_SENT"), 0);
    fw.pkts(&sim.ack().exchange(10, 10).take_packets());
    assert_eq!(count(&fw, "tcp", "ESTABLISHED"), 1);
    let udp = Frame::ipv4(Ipv4Addr::new(10, 0, 1, 2), S4)
        .udp(5000, 53)
        .payload(b"q");
    fw.send(&udp.build(), INSIDE);
    assert_eq!(count(&fw, "udp", ""), 1);
    fw.pkts(&sim.close().take_packets());
    assert_eq!(count(&fw, "tcp", "TIME_WAIT"), 1);
    assert_eq!(count(&fw, "tcp", "ESTABLISHED"), 0);
    fw.check();
    fw.advance(121 * SEC);
    fw.eng.sweep(fw.now(), 1024);
    assert_eq!(fw.eng.table().by_class().iter().sum::<u32>(), 0);
    fw.check();
}
