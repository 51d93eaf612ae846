//! Burst equivalence: a trace processed one packet at a time and in bursts gives the same
//! verdicts, counters and table, provided every packet of a burst carries the burst's
//! timestamp.
//!
//! Why the timestamps matter: `Engine::process_burst` takes one `now` for the whole burst
//! (the data plane reads its clock once per polling round, so at most once per burst), and
//! every time-dependent decision uses it: whether an entry has expired (`Entry::is_expired`),
//! the deadlines written by refreshes, UDP's 2-second stream rule, eviction's "closest to
//! expiry". Processing in bursts is therefore only equivalent to processing the same packets
//! one by one *at the same instants*: a packet one tick past an entry's deadline finds the
//! entry gone, while in a burst stamped one tick earlier it finds it alive. The last test
//! shows exactly that.
//! Within a burst, packets are tracked in order (the pipeline's track-and-decide stage), so a
//! packet sees the entry an earlier packet of the same burst created.

use std::net::{Ipv4Addr, SocketAddr};

use ctfw_engine::pipeline::{Pkt, Verdict};
use ctfw_engine::track::CtState;
use ctfw_engine::wire::ChecksumHint;
use ctfw_tracegen::frame::Frame;
use ctfw_tracegen::{Packet, TcpSim};

use crate::common::*;
use crate::traces::{C4, S4, mixed};

/// The trace: the mixed trace, then 40 connections whose packets are interleaved round-robin
/// (so a SYN and its SYN/ACK often share a burst), then the mixed trace again (its flows
/// continue, or start over once expired).
fn trace() -> Vec<Packet> {
    let mut out = mixed(&[]);
    let mut per_flow: Vec<Vec<Packet>> = (0..40u32)
        .map(|i| {
            let mut sim = TcpSim::new(
                SocketAddr::new(Ipv4Addr::from(0x0a01_0000 + i).into(), 30_000),
                SocketAddr::new(S4.into(), 443),
            );
            sim.handshake().exchange(50 + i, 70).close();
            sim.take_packets()
        })
        .collect();
    let longest = per_flow.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for flow in &mut per_flow {
            if let Some(p) = flow.get_mut(k) {
                out.push(std::mem::replace(
                    p,
                    Packet {
                        ts_ns: 0,
                        side: ctfw_tracegen::Side::Inside,
                        data: Vec::new(),
                    },
                ));
            }
        }
    }
    out.extend(mixed(&[]));
    out
}

/// The time (ticks) of burst `b`: a few seconds apart, with one 40 s gap (the UDP and ICMP
/// entries of the first mixed trace expire in it) and a 121 s gap (the TIME_WAITs too).
fn burst_tick(b: usize) -> u64 {
    let gaps = if b >= 12 { 121 * SEC } else { 0 } + if b >= 6 { 40 * SEC } else { 0 };
    T0 + b as u64 * 3 * SEC + gaps
}

fn pkts_of(chunk: &[Packet]) -> Vec<Pkt<'_>> {
    chunk
        .iter()
        .map(|p| Pkt {
            data: &p.data,
            tail: &[],
            port: port_of(p.side),
            csum: ChecksumHint::Unknown,
        })
        .collect()
}

/// Processes `trace` in bursts of `size` (time: `burst_tick` of the burst of 32 it falls
/// in, so that every burst size sees the same instants), returning verdicts and the engine.
fn run(trace: &[Packet], size: usize) -> (Vec<Verdict>, Fw) {
    let mut fw = Fw::classic(1024);
    let mut out = vec![Verdict::default(); trace.len()];
    let mut i = 0;
    while i < trace.len() {
        // Never let a burst straddle two timestamps.
        let group_end = ((i / 32) + 1) * 32;
        let end = (i + size).min(group_end).min(trace.len());
        fw.set_tick(burst_tick(i / 32));
        let pkts = pkts_of(&trace[i..end]);
        fw.eng.process_burst(fw.now(), &pkts, &mut out[i..end]);
        i = end;
    }
    (out, fw)
}

#[test]
fn bursts_of_32_equal_one_packet_at_a_time() {
    let trace = trace();
    assert!(trace.len() > 32 * 12, "the trace spans the long gaps");
    let (single, fw1) = run(&trace, 1);
    let (burst, fw32) = run(&trace, 32);
    assert_eq!(single, burst);
    assert_eq!(fw1.counters(), fw32.counters());
    assert_eq!(all_views(&fw1), all_views(&fw32));
    // And the trace exercised what it should: creations within a burst, expiries.
    let c = fw32.counters();
    assert!(c.created > 40 && c.expired > 0, "{c:?}");
    assert!(
        burst
            .iter()
            .any(|v| v.ct == Some(CtState::New) && v.forward.is_some())
    );
    fw32.check();
}

#[test]
fn one_call_of_any_length_equals_groups_of_32() {
    // process_burst cuts long bursts into groups of BURST (32) itself.
    let trace = trace();
    let mut fw_a = Fw::classic(1024);
    let mut fw_b = Fw::classic(1024);
    let pkts = pkts_of(&trace);
    let mut a = vec![Verdict::default(); trace.len()];
    fw_a.eng.process_burst(fw_a.now(), &pkts, &mut a);
    let mut b = vec![Verdict::default(); trace.len()];
    for (chunk, out) in pkts.chunks(7).zip(b.chunks_mut(7)) {
        fw_b.eng.process_burst(fw_b.now(), chunk, out);
    }
    assert_eq!(a, b);
    assert_eq!(fw_a.counters(), fw_b.counters());
    assert_eq!(all_views(&fw_a), all_views(&fw_b));
}

#[test]
fn per_packet_timestamps_can_change_verdicts() {
    // A UDP request at T0 creates an entry that expires at T0 + 30 s. Its reply arrives at
    // exactly T0 + 30 s, in a burst whose clock was read one tick earlier.
    let req = Frame::ipv4(C4, S4).udp(5000, 53).build();
    let rep = Frame::ipv4(S4, C4).udp(53, 5000).build();
    let deadline = T0 + 30 * SEC;

    // Stamped with the burst's time: the entry is alive, the reply is ESTABLISHED.
    let mut fw = Fw::classic(64);
    fw.send(&req, INSIDE);
    fw.set_tick(deadline - 1);
    assert_fwd(&fw.send(&rep, OUTSIDE), CtState::Established, INSIDE);

    // Stamped with its own time: the entry has expired, the reply is a NEW packet from the
    // outside, which the classic policy drops.
    let mut fw = Fw::classic(64);
    fw.send(&req, INSIDE);
    fw.set_tick(deadline);
    let v = fw.send(&rep, OUTSIDE);
    assert_eq!(v.ct, Some(CtState::New));
    assert_eq!(v.forward, None);
}
