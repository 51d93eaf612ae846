//! A full table: live ASSURED connections are protected, others make room.
//!
//! Linux (`nf_conntrack_core.c`): `__nf_conntrack_alloc` refuses a new entry beyond
//! `nf_conntrack_max` unless `early_drop()` frees one, and `early_drop_list()` skips
//! `IPS_ASSURED` entries (`if (test_bit(IPS_ASSURED_BIT, &tmp->status) || ...) continue;`):
//! a table full of ASSURED connections admits nothing new and loses none of them, while
//! non-ASSURED entries (a SYN flood's SYN_SENT entries) are evicted for newcomers. When
//! `early_drop()` finds nothing, the allocation fails and sets `gc_work->early_drop`; the
//! garbage collector's next pass then kills, while the table is at least 95% full
//! (`nf_conntrack_max95`), every entry `gc_worker_can_early_drop()` allows: not ASSURED, or
//! ASSURED with `l4proto->can_early_drop()` true, which for TCP (`tcp_can_early_drop`) are
//! the closing states FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT and CLOSE.
//!
//! ctfw's table evicts from the new key's neighbourhood instead of Linux's 8 hash chains,
//! which changes which entry goes, not whether a live ASSURED connection stays. It also
//! takes a closing ASSURED neighbour at once when there is no non-ASSURED one, where Linux
//! drops that packet and lets its collector free the room for the next one; and a failed
//! insert puts the sweeper under pressure for one pass, as in Linux.

use std::net::{Ipv4Addr, SocketAddr};

use ctfw_engine::Reason;
use ctfw_engine::pipeline::{Pkt, Verdict};
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_engine::wire::ChecksumHint;
use ctfw_tracegen::frame::Frame;
use ctfw_tracegen::{TcpFlags, TcpSim};

use crate::common::*;
use crate::traces::S4;

const CAPACITY: u32 = 4096;

/// A client of the `i`-th legitimate connection.
fn client(i: u32) -> SocketAddr {
    let a = Ipv4Addr::from(0x0a01_0000 + i);
    SocketAddr::new(a.into(), 40_000 + (i % 1000) as u16)
}

/// A SYN from a spoofed inside source to the server.
fn spoofed_syn(i: u32) -> Vec<u8> {
    Frame::ipv4(Ipv4Addr::from(0xac10_0000 + i), S4)
        .tcp(1024 + (i % 60_000) as u16, 80)
        .flags(TcpFlags::SYN)
        .seq_ack(i.wrapping_mul(2_654_435_761), 0)
        .window(64240)
        .build()
}

/// A handshake, 100 bytes of data and their ACK: ASSURED and ESTABLISHED
/// (`nf_conntrack_tcp_packet`: SYN_RECV -> ESTABLISHED with a reply seen sets ASSURED).
fn establish(fw: &mut Fw, sim: &mut TcpSim) {
    sim.handshake().data_c2s(100).ack_s2c();
    for (k, p) in sim.take_packets().iter().enumerate() {
        let ct = if k == 0 {
            CtState::New
        } else {
            CtState::Established
        };
        assert_fwd_pkt(&fw.pkt(p), ct, p);
    }
}

/// Each connection sends 10 bytes and has them acknowledged: all ESTABLISHED, all forwarded.
fn still_pass_traffic(fw: &mut Fw, sims: &mut [TcpSim]) {
    for sim in sims {
        sim.data_c2s(10).ack_s2c();
        for p in sim.take_packets() {
            assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
        }
    }
}

/// Sends `frames` from the inside in bursts of 32 at the current time.
fn flood(fw: &mut Fw, frames: impl Iterator<Item = Vec<u8>>) -> Vec<Verdict> {
    let frames: Vec<Vec<u8>> = frames.collect();
    let mut out = vec![Verdict::default(); frames.len()];
    for (chunk, verdicts) in frames.chunks(32).zip(out.chunks_mut(32)) {
        let pkts: Vec<Pkt<'_>> = chunk
            .iter()
            .map(|d| Pkt {
                data: d,
                tail: &[],
                port: INSIDE,
                csum: ChecksumHint::Unknown,
            })
            .collect();
        fw.eng.process_burst(fw.now(), &pkts, verdicts);
    }
    out
}

#[test]
fn a_syn_flood_cannot_displace_assured_connections() {
    let mut fw = Fw::classic(CAPACITY);
    let mut sims: Vec<TcpSim> = (0..CAPACITY)
        .map(|i| TcpSim::new(client(i), SocketAddr::new(S4.into(), 80)))
        .collect();
    for sim in &mut sims {
        establish(&mut fw, sim);
    }
    assert_eq!(fw.eng.table().len(), CAPACITY as usize);
    let now = fw.now().tick();
    assert!(fw.eng.table().iter(now).all(|(_, e)| e.flags.assured()));
    fw.advance(SEC);

    const FLOOD: u32 = 100_000;
    let verdicts = flood(&mut fw, (0..FLOOD).map(spoofed_syn));
    for v in &verdicts {
        assert_dropped(v, Reason::TableFull);
    }
    let c = fw.counters();
    assert_eq!(c.get(Reason::TableFull), u64::from(FLOOD));
    assert_eq!(c.evicted, 0);
    assert_eq!(c.created, u64::from(CAPACITY));
    assert_eq!(fw.eng.table().len(), CAPACITY as usize);
    fw.check();

    // Every original connection is still there and still passes traffic both ways.
    fw.advance(SEC);
    still_pass_traffic(&mut fw, &mut sims);
    assert_eq!(fw.counters().created, u64::from(CAPACITY));
    fw.check();
}

#[test]
fn a_table_of_half_open_connections_makes_room_for_new_ones() {
    let mut fw = Fw::classic(CAPACITY);
    // Fill the table with SYN_SENT entries (never ASSURED).
    let verdicts = flood(&mut fw, (0..CAPACITY).map(spoofed_syn));
    for v in &verdicts {
        assert_fwd(v, CtState::New, OUTSIDE);
    }
    assert_eq!(fw.eng.table().len(), CAPACITY as usize);
    assert_eq!(fw.counters().evicted, 0);
    fw.advance(SEC);

    // A legitimate connection gets in by evicting one of them, and completes.
    let mut sim = TcpSim::new(client(1), SocketAddr::new(S4.into(), 443));
    establish(&mut fw, &mut sim);
    assert_eq!(fw.counters().evicted, 1);
    fw.advance(SEC);

    // More SYNs keep evicting half-open entries, never the ASSURED one.
    const MORE: u32 = 10_000;
    let verdicts = flood(&mut fw, (CAPACITY..CAPACITY + MORE).map(spoofed_syn));
    for v in &verdicts {
        assert_fwd(v, CtState::New, OUTSIDE);
    }
    let c = fw.counters();
    assert_eq!(c.evicted, 1 + u64::from(MORE));
    assert_eq!(c.created, u64::from(CAPACITY + 1 + MORE));
    assert_eq!(fw.eng.table().len(), CAPACITY as usize);
    sim.data_c2s(10).ack_s2c().close();
    for p in sim.take_packets() {
        assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
    }
    fw.check();
}

/// A deliberate difference from Linux. Linux allocates the entry of a packet that has none
/// in PREROUTING, before any rule: `init_conntrack` -> `__nf_conntrack_alloc` runs
/// `early_drop()` when the table is full (evicting a non-ASSURED entry) or returns
/// `-ENOMEM`, and `nf_conntrack_in` drops the packet ("Too stressed to deal") before the
/// FORWARD rules see it. So in Linux a flood that the rules would drop anyway still evicts
/// half-open connections. ctfw claims a table entry only for a packet the rules accept (the
/// moment Linux would confirm it), so traffic the policy refuses can neither evict nor be
/// counted as a table-full drop: it is a policy drop, like any other refused packet.
#[test]
fn refused_traffic_never_evicts_from_a_full_table() {
    let mut fw = Fw::classic(64);
    // Fill the table with evictable (non-ASSURED, half-open) connections from inside.
    for i in 0..64 {
        let v = fw.send(&spoofed_syn(i), INSIDE);
        assert_fwd(&v, CtState::New, OUTSIDE);
    }
    assert_eq!(fw.eng.table().len(), 64);
    for i in 0..1000u32 {
        let syn_from_outside = Frame::ipv4(S4, Ipv4Addr::from(0x0a00_0100 + i))
            .tcp(5555, 22)
            .flags(TcpFlags::SYN)
            .seq_ack(1, 0)
            .window(1000)
            .build();
        let v = fw.send(&syn_from_outside, OUTSIDE);
        assert_eq!(v.rule, None, "the default policy decides: {v:?}");
        assert_dropped(&v, Reason::DefaultPolicy);
    }
    let c = fw.counters();
    assert_eq!(c.evicted, 0, "a refused packet must not evict");
    assert_eq!(c.get(Reason::TableFull), 0);
    assert_eq!(c.get(Reason::DefaultPolicy), 1000);
    // The 64 half-open connections are all still there: their SYN retransmissions find them.
    for i in 0..64 {
        let v = fw.send(&spoofed_syn(i), INSIDE);
        assert_fwd(&v, CtState::New, OUTSIDE);
    }
    assert_eq!(fw.counters().evicted, 0);
    assert_eq!(fw.counters().created, 64);
    fw.check();
}

/// The `i`-th connection, completed and closed: TIME_WAIT and ASSURED.
fn closed(fw: &mut Fw, i: u32) {
    let mut sim = TcpSim::new(client(i), SocketAddr::new(S4.into(), 80));
    establish(fw, &mut sim);
    sim.close();
    for p in sim.take_packets() {
        assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
    }
}

/// A table filled with closed connections in TIME_WAIT (two minutes each) does not refuse
/// new connections for two minutes: their entries are ASSURED but closing, so each new
/// connection takes one, counted apart from the non-ASSURED evictions.
#[test]
fn a_table_of_closed_connections_makes_room_for_new_ones() {
    let mut fw = Fw::classic(CAPACITY);
    for i in 0..CAPACITY {
        closed(&mut fw, i);
    }
    let now = fw.now().tick();
    assert_eq!(fw.eng.table().len(), CAPACITY as usize);
    for (_, e) in fw.eng.table().iter(now) {
        let view = ctfw_engine::view::EntryView::new(e, now);
        assert_eq!(view.tcp_state, Some(TcpState::TimeWait));
        assert!(view.assured);
    }
    fw.advance(SEC);

    const NEW: u32 = 1000;
    let mut sims: Vec<TcpSim> = (0..NEW)
        .map(|i| TcpSim::new(client(CAPACITY + i), SocketAddr::new(S4.into(), 443)))
        .collect();
    for sim in &mut sims {
        establish(&mut fw, sim);
    }
    let c = fw.counters();
    assert_eq!(c.get(Reason::TableFull), 0);
    assert_eq!((c.evicted, c.evicted_closing), (0, u64::from(NEW)));
    assert_eq!(fw.eng.table().len(), CAPACITY as usize);
    fw.check();
}

/// Under a SYN flood into a table of ESTABLISHED and TIME_WAIT connections (all ASSURED),
/// the flood may take the closing entries and evict its own SYN_SENT entries, but every
/// ESTABLISHED connection stays and keeps passing traffic. Once an insert has failed, one
/// pass of the sweeper evicts what may go while the table is at least 95% full.
#[test]
fn closing_connections_make_room_and_live_ones_stay() {
    let mut fw = Fw::classic(CAPACITY);
    let mut live: Vec<TcpSim> = Vec::new();
    for i in 0..CAPACITY {
        if i % 4 == 0 {
            closed(&mut fw, i);
        } else {
            let mut sim = TcpSim::new(client(i), SocketAddr::new(S4.into(), 80));
            establish(&mut fw, &mut sim);
            live.push(sim);
        }
    }
    fw.advance(SEC);

    const FLOOD: u32 = 20_000;
    let verdicts = flood(&mut fw, (0..FLOOD).map(spoofed_syn));
    let c = fw.counters().clone();
    let admitted = verdicts.iter().filter(|v| v.forward.is_some()).count() as u64;
    assert_eq!(admitted + c.get(Reason::TableFull), u64::from(FLOOD));
    assert!(c.evicted_closing > 0 && c.evicted_closing <= u64::from(CAPACITY / 4));
    assert!(
        c.get(Reason::TableFull) > 0,
        "some SYN must meet only ESTABLISHED neighbours"
    );
    assert!(fw.eng.table().under_pressure());

    // One full pass of the sweeper under pressure: non-ASSURED and closing entries go
    // while at least `nf_conntrack_max / 100 * 95` entries (3800 of 4096) are in use.
    let before = fw.eng.table().len();
    let mut removed = 0;
    for _ in 0..CAPACITY / 256 {
        removed += fw.eng.sweep(fw.now(), 256);
    }
    assert!(!fw.eng.table().under_pressure());
    assert_eq!(fw.eng.table().len(), before - removed);
    assert_eq!(fw.eng.table().len(), (CAPACITY / 100 * 95) as usize - 1);
    let c2 = fw.counters();
    assert_eq!(
        (c2.evicted - c.evicted) + (c2.evicted_closing - c.evicted_closing),
        removed as u64
    );
    assert_eq!(c2.expired, c.expired);

    fw.advance(SEC);
    still_pass_traffic(&mut fw, &mut live);
    fw.check();
}

/// A deliberate difference from Linux. Linux allocates the entry before the tracker's error
/// checks (`tcp_error` runs inside `nf_conntrack_tcp_packet`, after `resolve_normal_ct`), so
/// on a full table a malformed packet is dropped as "table full" in PREROUTING, with no
/// conntrack state, even if the rules would accept INVALID. ctfw never touches the table for
/// a packet that cannot start a connection: it is INVALID with its own reason whatever the
/// fill, and the rules decide it.
#[test]
fn malformed_packets_meet_a_full_table_as_invalid_not_table_full() {
    let mut fw = Fw::classic(64);
    for i in 0..64 {
        let mut sim = TcpSim::new(client(i), SocketAddr::new(S4.into(), 80));
        establish(&mut fw, &mut sim);
    }
    assert_eq!(fw.eng.table().len(), 64);
    let malformed = |i: u32, flags: TcpFlags| {
        Frame::ipv4(Ipv4Addr::from(0xac10_0000 + i), S4)
            .tcp(2000, 80)
            .flags(flags)
            .seq_ack(7, 9)
            .window(1000)
            .build()
    };
    for (i, (flags, why)) in [
        (TcpFlags::SYN | TcpFlags::FIN, Reason::TcpBadFlags),
        (TcpFlags::FIN | TcpFlags::ACK, Reason::TcpInvalidNew),
        (TcpFlags::RST, Reason::TcpInvalidNew),
        (TcpFlags::SYN | TcpFlags::ACK, Reason::TcpInvalidNew),
    ]
    .into_iter()
    .enumerate()
    {
        assert_invalid(&fw.send(&malformed(i as u32, flags), INSIDE), why);
    }
    let c = fw.counters();
    assert_eq!(c.get(Reason::TableFull), 0);
    assert_eq!((c.evicted, c.evicted_closing), (0, 0));
    assert!(!fw.eng.table().under_pressure());
    // A valid SYN on the same full table is the one that is refused.
    assert_dropped(&fw.send(&spoofed_syn(1), INSIDE), Reason::TableFull);
}
