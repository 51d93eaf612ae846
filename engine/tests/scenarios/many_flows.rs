//! Ten thousand concurrent connections, their packets interleaved phase by phase, each going
//! through handshake, data both ways and a close. Four kinds of close, each ending in a state
//! the kernel's `tcp_conntracks` table dictates:
//!
//! - client FIN first: ES -FIN(orig)-> FIN_WAIT -FIN(reply)-> LAST_ACK -ACK(orig)-> TIME_WAIT;
//! - server FIN first: ES -FIN(reply)-> FIN_WAIT -FIN(orig)-> LAST_ACK -ACK(reply)-> TIME_WAIT;
//! - half close: ES -FIN(orig)-> FIN_WAIT -ACK(reply)-> CLOSE_WAIT -FIN(reply)-> LAST_ACK
//!   -ACK(orig)-> TIME_WAIT;
//! - abort: ES -RST(orig)-> CLOSE. The RST's sequence number equals the server's `td_maxack`
//!   on an ESTABLISHED, ASSURED connection, so the `TCP_CONNTRACK_CLOSE` checks of
//!   `nf_conntrack_tcp_packet` let it through (`seq == ct->proto.tcp.seen[!dir].td_maxack`).

use std::net::{Ipv4Addr, SocketAddr};

use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::TcpSim;

use crate::common::*;

const FLOWS: usize = 10_000;

/// One step of one flow's life; `kind` picks the close.
fn step(sim: &mut TcpSim, phase: usize, kind: usize, i: usize) {
    let data = 100 + (i % 900) as u32;
    match (phase, kind) {
        (0, _) => {
            sim.syn();
        }
        (1, _) => {
            sim.synack();
        }
        (2, _) => {
            sim.ack();
        }
        (3, _) => {
            sim.data_c2s(data);
        }
        (4, _) => {
            sim.ack_s2c();
        }
        (5, _) => {
            sim.data_s2c(2 * data);
        }
        (6, _) => {
            sim.ack_c2s();
        }
        (7, 0) | (7, 2) => {
            sim.fin_c2s();
        }
        (7, 1) => {
            sim.fin_s2c();
        }
        (7, 3) => {
            sim.rst_c2s();
        }
        (8, 0) => {
            sim.fin_s2c();
        }
        (8, 1) => {
            sim.fin_c2s();
        }
        (8, 2) => {
            sim.ack_s2c();
        }
        (9, 0) => {
            sim.ack_c2s();
        }
        (9, 1) => {
            sim.ack_s2c();
        }
        (9, 2) => {
            sim.fin_s2c();
        }
        (10, 2) => {
            sim.ack_c2s();
        }
        _ => {}
    }
}

#[test]
fn ten_thousand_interleaved_connections_all_close_cleanly() {
    let mut sims: Vec<TcpSim> = (0..FLOWS)
        .map(|i| {
            let client = Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1);
            let server = Ipv4Addr::new(10, 0, 2, 2 + (i % 3) as u8);
            TcpSim::new(
                SocketAddr::new(client.into(), 40_000 + (i % 7) as u16),
                SocketAddr::new(server.into(), [80, 443, 8080][i % 3]),
            )
            .isn(
                (i as u32).wrapping_mul(2_654_435_761),
                (!(i as u32)).wrapping_mul(40_503),
            )
        })
        .collect();
    let mut fw = Fw::classic(16_384);
    let mut packets = 0u64;
    // Visit the flows in a scrambled order in each phase (7919 is prime to FLOWS).
    let order: Vec<usize> = (0..FLOWS).map(|k| k * 7919 % FLOWS).collect();
    for phase in 0..11 {
        for &i in &order {
            step(&mut sims[i], phase, i % 4, i);
            for p in sims[i].take_packets() {
                // A packet every 40 us on average: the whole run lasts about 4 s.
                if packets % 100 == 0 {
                    fw.advance(1);
                }
                let v = fw.pkt(&p);
                let ct = if phase == 0 {
                    CtState::New
                } else {
                    CtState::Established
                };
                assert_fwd_pkt(&v, ct, &p);
                packets += 1;
            }
        }
    }
    let c = fw.counters().clone();
    assert_eq!(c.packets, packets);
    assert_eq!((c.accepted, c.dropped), (packets, 0));
    assert_eq!(c.created, FLOWS as u64);
    assert_eq!((c.evicted, c.expired, c.closed), (0, 0, 0));
    assert_eq!(fw.eng.table().len(), FLOWS);
    fw.check();
    // Every flow ends where the state table says, ASSURED since its handshake.
    for (i, sim) in sims.iter_mut().enumerate() {
        let syn = sim.craft(ctfw_tracegen::Dir::C2s, ctfw_tracegen::TcpFlags::SYN, 0);
        let view = fw.view(&syn.build()).expect("every flow has an entry");
        let want = if i % 4 == 3 {
            TcpState::Close
        } else {
            TcpState::TimeWait
        };
        assert_eq!(view.tcp_state, Some(want), "flow {i}");
        assert!(view.assured && view.seen_reply, "flow {i}: {view:?}");
    }
    // TIME_WAIT lasts 120 s, CLOSE 10 s: two minutes later the sweeper reclaims them all.
    fw.advance(121 * SEC);
    // Bounded work per call: 1000 pool slots each, so 17 calls cover the 16384 slots.
    let mut reclaimed = 0;
    for _ in 0..17 {
        let n = fw.eng.sweep(fw.now(), 1000);
        assert!(n <= 1000);
        reclaimed += n;
    }
    assert_eq!(reclaimed, FLOWS);
    assert!(fw.eng.table().is_empty());
    assert_eq!(fw.counters().expired, FLOWS as u64);
    fw.check();
}
