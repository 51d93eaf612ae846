//! A full table: ASSURED connections are protected, others make room.
//!
//! Linux (`nf_conntrack_core.c`): `__nf_conntrack_alloc` refuses a new entry beyond
//! `nf_conntrack_max` unless `early_drop()` frees one, and `early_drop_list()` skips
//! `IPS_ASSURED` entries (`if (test_bit(IPS_ASSURED_BIT, &tmp->status) || ...) continue;`):
//! a table full of ASSURED connections admits nothing new and loses none of them, while
//! non-ASSURED entries (a SYN flood's SYN_SENT entries) are evicted for newcomers. ctfw's
//! table evicts from the new key's neighbourhood instead of Linux's 8 hash chains, which
//! changes which non-ASSURED entry goes, not whether ASSURED ones stay.

use std::net::{Ipv4Addr, SocketAddr};

use ctfw_engine::Reason;
use ctfw_engine::pipeline::{Pkt, Verdict};
use ctfw_engine::track::CtState;
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

/// Sends `frames` from the inside in bursts of 32 at the current time.
fn flood(fw: &mut Fw, frames: impl Iterator<Item = Vec<u8>>) -> Vec<Verdict> {
    let frames: Vec<Vec<u8>> = frames.collect();
    let mut out = vec![Verdict::default(); frames.len()];
    for (chunk, verdicts) in frames.chunks(32).zip(out.chunks_mut(32)) {
        let pkts: Vec<Pkt<'_>> = chunk
            .iter()
            .map(|d| Pkt {
                data: d,
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
    for sim in &mut sims {
        sim.data_c2s(10).ack_s2c();
        for p in sim.take_packets() {
            assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
        }
    }
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

/// Linux allocates the entry of a packet that has none in PREROUTING, before any rule:
/// `init_conntrack` -> `__nf_conntrack_alloc` returns `ERR_PTR(-ENOMEM)` when the table is
/// full and `early_drop` freed nothing, and `nf_conntrack_in` then returns `NF_DROP`
/// ("Too stressed to deal", `NF_CT_STAT_INC_ATOMIC(state->net, drop)`). The packet never
/// reaches the FORWARD rules, whatever they would have said. Here a SYN from the outside,
/// which the classic rules would drop by policy, meets a table full of ASSURED entries: it
/// is a table-full drop, decided by no rule.
#[test]
fn a_full_table_drops_before_the_rules_like_linux() {
    let mut fw = Fw::classic(64);
    let server = SocketAddr::new(S4.into(), 80);
    for i in 0..64 {
        establish(&mut fw, &mut TcpSim::new(client(i), server));
    }
    assert_eq!(fw.eng.table().len(), 64);
    let syn_from_outside = Frame::ipv4(S4, Ipv4Addr::new(10, 0, 1, 99))
        .tcp(5555, 22)
        .flags(TcpFlags::SYN)
        .seq_ack(1, 0)
        .window(1000)
        .build();
    let v = fw.send(&syn_from_outside, OUTSIDE);
    assert_eq!(v.rule, None, "no rule sees it: {v:?}");
    assert_dropped(&v, Reason::TableFull);
    assert_eq!(fw.counters().get(Reason::TableFull), 1);
}
