//! Shared helpers for the ctfw benchmarks: the engine they drive (the classic conformance
//! configuration, loaded from `config/conformance/`), a factory that writes valid TCP frames for any of billions of flows,
//! and the small drivers that set flows up through the engine.
//!
//! Why a factory rather than a capture: the 10M-flow benchmark needs frames for ten million
//! connections. Storing them would take gigabytes, and building each one with tracegen's frame
//! builder would make setup take minutes. [`FlowFactory`] builds eight template frames once
//! with tracegen's TCP simulator (an implementation of the wire formats independent of the
//! engine's parsers) and then, per frame, copies a template and rewrites the addresses, ports,
//! sequence and acknowledgment numbers, fixing the IPv4 header and TCP checksums from sums
//! precomputed over the fixed bytes. Every frame is valid with either checksum hint, so the
//! same frames serve the "NIC verified" and "software verifies" runs.
//!
//! Invariants:
//! - everything is a pure function of the flow index and of the seeds given here: runs are
//!   reproducible;
//! - flow `i` has a 5-tuple no other flow index below 2^32 has (tracegen's [`AddressPlan`]),
//!   and its own initial sequence numbers;
//! - [`Seg::ROTATION`] replayed in order, forever, keeps a connection ESTABLISHED and in
//!   window, and never repeats a segment back to back, so Linux's retransmission counter
//!   (`retrans`, which caps the timeout after `tcp_max_retrans`) stays at zero.

#![forbid(unsafe_code)]

pub mod rules;

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use ctfw_engine::Instant;
use ctfw_engine::pipeline::{BURST, Engine, EngineConfig, Pkt, Verdict};
use ctfw_engine::rules::PortId;
use ctfw_engine::wire::ChecksumHint;
use ctfw_tracegen::checksum::Checksum;
use ctfw_tracegen::generate::AddressPlan;
use ctfw_tracegen::rng::Rng;
use ctfw_tracegen::{DEFAULT_START_NS, TcpSim};

/// The inside port (clients): pcapng interface 0 of the conformance traces.
pub const INSIDE: PortId = PortId(0);
/// The outside port (servers).
pub const OUTSIDE: PortId = PortId(1);
/// Flow-hash seeds: fixed, so bucket placement (and thus timing) is the same every run.
pub const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];
/// The time of the first burst (the conformance traces' epoch).
pub const START: Instant = Instant(DEFAULT_START_NS);
/// Time between bursts: the engine's clock moves as a data plane's would.
pub const BURST_GAP_NS: u64 = 1_000;
/// Payload bytes of the data segments of [`FlowFactory`] frames.
pub const PAYLOAD: u32 = 512;

/// The conformance configuration the benchmarks run: the classic policy of the conformance
/// traces (accept ESTABLISHED and RELATED, accept NEW from inside to outside, drop INVALID,
/// drop everything else) with Linux's default knobs, read by the real configuration loader
/// from its one definition, `config/conformance/classic-loose1-liberal0.yaml`. Its ports are
/// [`INSIDE`] and [`OUTSIDE`], peered.
///
/// # Panics
/// If the file is missing or invalid (the benchmarks cannot run without it).
pub fn classic() -> ctfw_config::Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/conformance/classic-loose1-liberal0.yaml"
    );
    let cfg = ctfw_config::Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (cfg.port_by_name("inside"), cfg.port_by_name("outside")),
        (Some(INSIDE), Some(OUTSIDE)),
        "{path}: ports"
    );
    cfg
}

/// An engine for `capacity` connections with the [`classic`] configuration and [`SEEDS`].
pub fn engine(capacity: u32) -> Engine {
    let cfg = classic();
    Engine::new(
        EngineConfig {
            capacity,
            ..cfg.engine
        },
        cfg.rules,
        SEEDS,
    )
}

/// The segments [`FlowFactory`] writes. Numbers and acknowledgments are those of one
/// connection: handshake, then an exchange of one data segment each way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    /// Client SYN (MSS, window scale, SACK permitted).
    Syn,
    /// Server SYN/ACK.
    SynAck,
    /// Client ACK completing the handshake (the connection becomes ESTABLISHED and ASSURED).
    HandshakeAck,
    /// Client PSH/ACK with [`PAYLOAD`] bytes.
    ClientData,
    /// Server pure ACK of the client's data.
    ServerAck,
    /// Server PSH/ACK with [`PAYLOAD`] bytes.
    ServerData,
    /// Client pure ACK of the server's data.
    ClientAck,
    /// Server RST/ACK answering the SYN (a closed port): removes the SYN_SENT entry.
    ServerRst,
}

impl Seg {
    /// Steady-state traffic: replayed in this order, again and again, every segment stays in
    /// window and none repeats its predecessor (see the module invariants).
    pub const ROTATION: [Seg; 4] = [
        Seg::ClientData,
        Seg::ServerAck,
        Seg::ServerData,
        Seg::ClientAck,
    ];
    const ALL: [Seg; 8] = [
        Seg::Syn,
        Seg::SynAck,
        Seg::HandshakeAck,
        Seg::ClientData,
        Seg::ServerAck,
        Seg::ServerData,
        Seg::ClientAck,
        Seg::ServerRst,
    ];

    /// Whether the client sends it.
    pub const fn from_client(self) -> bool {
        matches!(
            self,
            Seg::Syn | Seg::HandshakeAck | Seg::ClientData | Seg::ClientAck
        )
    }

    /// The port it arrives on.
    pub const fn port(self) -> PortId {
        if self.from_client() { INSIDE } else { OUTSIDE }
    }
}

/// The template ISNs (any values do: frames are rebased onto each flow's own).
const TEMPLATE_ISN: (u32, u32) = (1_000_000, 5_000_000);
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const TCP_PROTO: u16 = 6;

/// One template frame and what is needed to rebase it onto another flow.
#[derive(Clone, Debug)]
struct Template {
    bytes: Vec<u8>,
    from_client: bool,
    /// Offset of the TCP header.
    tcp: usize,
    /// Sequence number relative to the sender's ISN.
    seq: u32,
    /// Acknowledgment relative to the receiver's ISN; `None` when ACK is not set (field 0).
    ack: Option<u32>,
    /// One's-complement sum of the IPv4 header with addresses and checksum zeroed.
    ip_sum: Checksum,
    /// Sum of the TCP pseudo-header and segment with addresses, ports, numbers and checksum
    /// zeroed. Every part has an even length, so the parts can be added in any order.
    tcp_sum: Checksum,
}

/// Writes valid TCP frames for flow `i` of a family: see the module documentation.
#[derive(Clone, Debug)]
pub struct FlowFactory {
    v6: bool,
    templates: Vec<Template>,
}

impl FlowFactory {
    /// A factory for IPv4 (`v6 == false`) or IPv6 flows, client port inside, server port 443.
    pub fn new(v6: bool) -> FlowFactory {
        FlowFactory::build(v6, false)
    }

    /// As [`FlowFactory::new`], with the timestamp option on both sides, as Linux sends it by
    /// default: the client's SYN carries Linux's option layout (MSS, SACK-permitted,
    /// timestamps, NOP, window scale), and every later segment a timestamp.
    pub fn with_timestamps(v6: bool) -> FlowFactory {
        FlowFactory::build(v6, true)
    }

    fn build(v6: bool, timestamps: bool) -> FlowFactory {
        let (c, s) = AddressPlan::endpoints(0, v6, 443);
        let main = {
            let mut sim = TcpSim::new(c, s)
                .isn(TEMPLATE_ISN.0, TEMPLATE_ISN.1)
                .timestamps(timestamps);
            sim.handshake().exchange(PAYLOAD, PAYLOAD);
            sim.take_packets()
        };
        let rst = {
            let mut sim = TcpSim::new(c, s).isn(TEMPLATE_ISN.0, TEMPLATE_ISN.1);
            sim.syn().rst_s2c();
            sim.take_packets()
        };
        let frames: Vec<&[u8]> = main.iter().chain(&rst[1..]).map(|p| &p.data[..]).collect();
        assert_eq!(
            frames.len(),
            Seg::ALL.len(),
            "tracegen emitted other segments"
        );
        let templates = Seg::ALL
            .iter()
            .zip(frames)
            .map(|(seg, bytes)| Template::new(bytes, v6, seg.from_client()))
            .collect();
        FlowFactory { v6, templates }
    }

    /// Length of `seg`'s frames.
    pub fn frame_len(&self, seg: Seg) -> usize {
        self.templates[seg as usize].bytes.len()
    }

    /// Length of the longest frame.
    pub fn max_len(&self) -> usize {
        self.templates
            .iter()
            .map(|t| t.bytes.len())
            .max()
            .unwrap_or(0)
    }

    /// The initial sequence numbers (client, server) of flow `flow`.
    pub fn isns(flow: u64) -> (u32, u32) {
        let x = splitmix(flow);
        (x as u32, (x >> 32) as u32)
    }

    /// Client and server of flow `flow`.
    pub fn endpoints(&self, flow: u64) -> (SocketAddr, SocketAddr) {
        AddressPlan::endpoints(flow, self.v6, 443)
    }

    /// Frame `seg` of flow `flow`, as a new vector.
    pub fn frame(&self, flow: u64, seg: Seg) -> Vec<u8> {
        let mut v = vec![0; self.frame_len(seg)];
        self.write(flow, seg, &mut v);
        v
    }

    /// Write frame `seg` of flow `flow` to the start of `out`; returns its length. Panics if
    /// `out` is shorter than [`FlowFactory::frame_len`] (a benchmark bug).
    pub fn write(&self, flow: u64, seg: Seg, out: &mut [u8]) -> usize {
        let t = &self.templates[seg as usize];
        let out = &mut out[..t.bytes.len()];
        out.copy_from_slice(&t.bytes);
        let (c, s) = self.endpoints(flow);
        let (c_isn, s_isn) = FlowFactory::isns(flow);
        let (src, dst, own_isn, peer_isn) = if t.from_client {
            (c, s, c_isn, s_isn)
        } else {
            (s, c, s_isn, c_isn)
        };
        let mut ip_sum = t.ip_sum;
        let mut tcp_sum = t.tcp_sum;
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let ip = &mut out[ETH_LEN..];
                ip[12..16].copy_from_slice(&a.octets());
                ip[16..20].copy_from_slice(&b.octets());
                for sum in [&mut ip_sum, &mut tcp_sum] {
                    sum.add(&a.octets()).add(&b.octets());
                }
                ip[10..12].copy_from_slice(&ip_sum.finish().to_be_bytes());
            }
            (a, b) => {
                let (a, b) = (v6_octets(a), v6_octets(b));
                let ip = &mut out[ETH_LEN..];
                ip[8..24].copy_from_slice(&a);
                ip[24..40].copy_from_slice(&b);
                tcp_sum.add(&a).add(&b);
            }
        }
        let seq = t.seq.wrapping_add(own_isn);
        let ack = t.ack.map_or(0, |a| a.wrapping_add(peer_isn));
        let tcp = &mut out[t.tcp..];
        tcp[0..2].copy_from_slice(&src.port().to_be_bytes());
        tcp[2..4].copy_from_slice(&dst.port().to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp_sum
            .add_u16(src.port())
            .add_u16(dst.port())
            .add_u32(seq)
            .add_u32(ack);
        tcp[16..18].copy_from_slice(&tcp_sum.finish().to_be_bytes());
        t.bytes.len()
    }
}

impl Template {
    fn new(bytes: &[u8], v6: bool, from_client: bool) -> Template {
        let ip_len = if v6 { IPV6_LEN } else { IPV4_LEN };
        let tcp = ETH_LEN + ip_len;
        let mut b = bytes.to_vec();
        let be32 =
            |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let (own0, peer0) = if from_client {
            TEMPLATE_ISN
        } else {
            (TEMPLATE_ISN.1, TEMPLATE_ISN.0)
        };
        let seq = be32(&b, tcp + 4).wrapping_sub(own0);
        let has_ack = b[tcp + 13] & 0x10 != 0;
        let ack = has_ack.then(|| be32(&b, tcp + 8).wrapping_sub(peer0));
        // Zero what `write` rewrites, so the sums cover exactly the fixed bytes.
        let mut ip_sum = Checksum::new();
        if v6 {
            b[ETH_LEN + 8..ETH_LEN + 40].fill(0);
        } else {
            b[ETH_LEN + 10..ETH_LEN + 12].fill(0);
            b[ETH_LEN + 12..ETH_LEN + 20].fill(0);
            ip_sum.add(&b[ETH_LEN..tcp]);
        }
        b[tcp..tcp + 12].fill(0);
        b[tcp + 16..tcp + 18].fill(0);
        let seg_len = b.len() - tcp;
        assert!(
            seg_len % 2 == 0,
            "segments of even length keep the sums' parts aligned"
        );
        let mut tcp_sum = Checksum::new();
        tcp_sum
            .add_u16(TCP_PROTO)
            .add_u16(seg_len as u16)
            .add(&b[tcp..]);
        Template {
            bytes: bytes.to_vec(),
            from_client,
            tcp,
            seq,
            ack,
            ip_sum,
            tcp_sum,
        }
    }
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// SplitMix64's output function: a bijection that spreads consecutive indices.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A reusable buffer of frames in fixed-size slots, handed to the engine a burst at a time:
/// what an RX ring would hold.
#[derive(Debug)]
pub struct Frames {
    slot: usize,
    buf: Vec<u8>,
    lens: Vec<usize>,
    ports: Vec<PortId>,
}

impl Frames {
    /// Room for `count` frames of at most `slot` bytes.
    pub fn new(count: usize, slot: usize) -> Frames {
        Frames {
            slot,
            buf: vec![0; count * slot],
            lens: Vec::with_capacity(count),
            ports: Vec::with_capacity(count),
        }
    }

    /// Forget every frame (the memory stays).
    pub fn clear(&mut self) {
        self.lens.clear();
        self.ports.clear();
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Whether another frame fits.
    pub fn is_full(&self) -> bool {
        (self.lens.len() + 1) * self.slot > self.buf.len()
    }

    /// Append a frame written by `write` (which returns its length) into the next slot.
    pub fn push_with(&mut self, port: PortId, write: impl FnOnce(&mut [u8]) -> usize) {
        let at = self.lens.len() * self.slot;
        let len = write(&mut self.buf[at..at + self.slot]);
        self.lens.push(len);
        self.ports.push(port);
    }

    /// Frame `i` and its ingress port. Panics if there is no frame `i`.
    #[inline]
    pub fn frame(&self, i: usize) -> (&[u8], PortId) {
        (
            &self.buf[i * self.slot..i * self.slot + self.lens[i]],
            self.ports[i],
        )
    }

    /// Append frame `seg` of flow `flow`.
    pub fn push_seg(&mut self, f: &FlowFactory, flow: u64, seg: Seg) {
        self.push_with(seg.port(), |out| f.write(flow, seg, out));
    }

    /// The burst of [`BURST`] frames starting at frame `start`, with checksum hint `csum`.
    /// Panics if fewer than [`BURST`] frames follow `start`.
    #[inline]
    pub fn burst(&self, start: usize, csum: ChecksumHint) -> [Pkt<'_>; BURST] {
        core::array::from_fn(|k| {
            let i = start + k;
            Pkt {
                data: &self.buf[i * self.slot..i * self.slot + self.lens[i]],
                tail: &[],
                port: self.ports[i],
                csum,
            }
        })
    }

    /// Every frame, with checksum hint `csum`.
    pub fn pkts(&self, csum: ChecksumHint) -> Vec<Pkt<'_>> {
        (0..self.len())
            .map(|i| Pkt {
                data: &self.buf[i * self.slot..i * self.slot + self.lens[i]],
                tail: &[],
                port: self.ports[i],
                csum,
            })
            .collect()
    }
}

/// What happened to the packets a driver sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Packets tracking called INVALID.
    pub invalid: u64,
}

impl Tally {
    /// Count a burst's verdicts.
    pub fn add(&mut self, verdicts: &[Verdict]) {
        for v in verdicts {
            self.forwarded += v.forward.is_some() as u64;
            self.dropped += v.forward.is_none() as u64;
            self.invalid += v.invalid.is_some() as u64;
        }
    }
}

/// Send segments `segs`, in order, for every flow of `flows`, through `engine`, in bursts of
/// [`BURST`] flows (each burst carries one segment of 32 different flows, so a flow's
/// segments are never in the same burst). `now` advances by [`BURST_GAP_NS`] per burst.
pub fn drive(
    engine: &mut Engine,
    factory: &FlowFactory,
    flows: Range<u64>,
    segs: &[Seg],
    now: &mut Instant,
    csum: ChecksumHint,
) -> Tally {
    let mut frames = Frames::new(BURST, factory.max_len());
    let mut out = [Verdict::default(); BURST];
    let mut tally = Tally::default();
    let mut first = flows.start;
    while first < flows.end {
        let last = (first + BURST as u64).min(flows.end);
        for &seg in segs {
            frames.clear();
            for flow in first..last {
                frames.push_seg(factory, flow, seg);
            }
            let pkts = frames.pkts(csum);
            engine.process_burst(*now, &pkts, &mut out);
            tally.add(&out[..pkts.len()]);
            now.0 += BURST_GAP_NS;
        }
        first = last;
    }
    tally
}

/// Set up `flows` as ESTABLISHED, ASSURED connections: handshake, then the first two
/// segments of [`Seg::ROTATION`] (client data and its ACK). Traffic should go on with
/// [`Rotation::new`]`(.., 2)`. Returns the tally (all should be forwarded).
pub fn establish(
    engine: &mut Engine,
    factory: &FlowFactory,
    flows: Range<u64>,
    now: &mut Instant,
) -> Tally {
    let segs = [
        Seg::Syn,
        Seg::SynAck,
        Seg::HandshakeAck,
        Seg::ClientData,
        Seg::ServerAck,
    ];
    drive(engine, factory, flows, &segs, now, ChecksumHint::Good)
}

/// Pseudo-random steady-state traffic over flows `0..flows`: each draw picks a flow uniformly
/// and sends its next segment of [`Seg::ROTATION`].
#[derive(Debug)]
pub struct Rotation {
    flows: u64,
    /// Per flow, the index in [`Seg::ROTATION`] of its next segment.
    next: Vec<u8>,
    rng: Rng,
}

impl Rotation {
    /// Traffic over `0..flows`, every flow starting at `ROTATION[start]`, drawn with `seed`.
    pub fn new(flows: u64, start: u8, seed: u64) -> Rotation {
        Rotation {
            flows,
            next: vec![start % Seg::ROTATION.len() as u8; flows as usize],
            rng: Rng::new(seed),
        }
    }

    /// The next (flow, segment).
    #[inline]
    pub fn draw(&mut self) -> (u64, Seg) {
        let flow = self.rng.below(self.flows);
        let k = &mut self.next[flow as usize];
        let seg = Seg::ROTATION[*k as usize];
        *k = (*k + 1) % Seg::ROTATION.len() as u8;
        (flow, seg)
    }

    /// Refill `frames` with `count` draws (at most as many as fit). Draw only what will be
    /// sent: a drawn segment that is never sent leaves a hole in its flow's rotation (an ACK
    /// for data the firewall never saw is INVALID).
    pub fn fill(&mut self, factory: &FlowFactory, frames: &mut Frames, count: usize) {
        frames.clear();
        for _ in 0..count {
            if frames.is_full() {
                break;
            }
            let (flow, seg) = self.draw();
            frames.push_seg(factory, flow, seg);
        }
    }
}

/// Positional argument `i` of a `profile_*` program, parsed, or `default` when it is absent
/// or does not parse.
pub fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Time `bursts` bursts of `frames` through `engine` (only `process_burst` inside the clock),
/// advancing `now` by [`BURST_GAP_NS`] per burst. Shared by the criterion benchmarks and
/// `profile_established`, so both measure the same loop.
#[inline(never)]
pub fn timed_bursts(
    engine: &mut Engine,
    frames: &Frames,
    bursts: usize,
    now: &mut Instant,
    csum: ChecksumHint,
) -> std::time::Duration {
    let mut out = [Verdict::default(); BURST];
    let t = std::time::Instant::now();
    for k in 0..bursts {
        let pkts = frames.burst(k * BURST, csum);
        engine.process_burst(*now, &pkts, &mut out);
        std::hint::black_box(&out);
        now.0 += BURST_GAP_NS;
    }
    t.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctfw_engine::Reason;
    use ctfw_engine::track::tcp::TcpState;
    use ctfw_engine::track::{CtState, ProtoState};
    use ctfw_engine::wire::{self, L4, ParseConfig};

    #[test]
    fn frames_are_valid_for_software_checksums() {
        for (v6, ts) in [(false, false), (true, false), (false, true), (true, true)] {
            let f = if ts {
                FlowFactory::with_timestamps(v6)
            } else {
                FlowFactory::new(v6)
            };
            for flow in [0, 1, 77, 65_001, 9_999_999] {
                for seg in Seg::ALL {
                    let frame = f.frame(flow, seg);
                    let p = wire::parse(&frame, &ParseConfig::default(), ChecksumHint::Unknown)
                        .unwrap_or_else(|r| panic!("flow {flow} {seg:?} v6={v6}: {r}"));
                    let L4::Tcp(tcp) = p.l4 else {
                        panic!("flow {flow} {seg:?} v6={v6}: not TCP: {:?}", p.l4)
                    };
                    let (c, s) = f.endpoints(flow);
                    let (sport, dport) = if seg.from_client() {
                        (c.port(), s.port())
                    } else {
                        (s.port(), c.port())
                    };
                    assert_eq!((tcp.sport, tcp.dport), (sport, dport));
                }
            }
        }
    }

    /// The SYN of `with_timestamps` is laid out as Linux lays out its own (`tcp_options_write`:
    /// MSS, SACK-permitted, timestamps, NOP, window scale), the layout `tcp_options` reads
    /// without walking; the plain factory's is not.
    #[test]
    fn timestamps_give_the_syn_linux_s_option_layout() {
        let options = |f: &FlowFactory| {
            let frame = f.frame(5, Seg::Syn);
            let p = wire::parse(&frame, &ParseConfig::default(), ChecksumHint::Unknown)
                .expect("a valid SYN");
            let L4::Tcp(tcp) = p.l4 else {
                panic!("not TCP: {:?}", p.l4)
            };
            tcp.options.to_vec()
        };
        let linux = options(&FlowFactory::with_timestamps(false));
        assert_eq!(linux.len(), 20, "{linux:?}");
        assert_eq!(&linux[..8], &[2, 4, 0x05, 0xb4, 4, 2, 8, 10], "{linux:?}");
        assert_eq!(&linux[16..19], &[1, 3, 3], "{linux:?}");
        let plain = options(&FlowFactory::new(false));
        assert_ne!(&plain[4..6], &[4, 2], "{plain:?}");
    }

    #[test]
    fn distinct_flows_have_distinct_frames() {
        let f = FlowFactory::new(false);
        assert_ne!(f.frame(1, Seg::Syn), f.frame(2, Seg::Syn));
        assert_eq!(f.frame(3, Seg::Syn), f.frame(3, Seg::Syn));
    }

    /// The benchmark's premise: handshake + rotation keeps every flow ESTABLISHED, ASSURED,
    /// accepted and free of retransmissions, whatever the order of flows.
    #[test]
    fn rotation_stays_established_in_window() {
        for v6 in [false, true] {
            let f = FlowFactory::new(v6);
            let flows = 200;
            let mut e = engine(1024);
            let mut now = START;
            let t = establish(&mut e, &f, 0..flows, &mut now);
            assert_eq!(t.dropped, 0, "{t:?}");
            let mut rot = Rotation::new(flows, 2, 7);
            let mut frames = Frames::new(BURST * 8, f.max_len());
            let mut out = [Verdict::default(); BURST];
            let mut tally = Tally::default();
            for _ in 0..50 {
                rot.fill(&f, &mut frames, BURST * 8);
                for b in (0..frames.len()).step_by(BURST) {
                    let pkts = frames.burst(b, ChecksumHint::Unknown);
                    e.process_burst(now, &pkts, &mut out);
                    tally.add(&out);
                    assert!(out.iter().all(|v| v.ct == Some(CtState::Established)));
                    now.0 += BURST_GAP_NS;
                }
            }
            assert_eq!((tally.dropped, tally.invalid), (0, 0), "{tally:?}");
            let mut n = 0;
            for (_, entry) in e.table().iter(now.tick()) {
                let ProtoState::Tcp(conn) = entry.state else {
                    panic!("not TCP")
                };
                assert_eq!(conn.state(), TcpState::Established);
                assert_eq!(conn.retrans(), 0);
                assert!(entry.flags.assured());
                n += 1;
            }
            assert_eq!(n, flows);
        }
    }

    #[test]
    fn server_rst_removes_a_syn_sent_entry() {
        let f = FlowFactory::new(false);
        let mut e = engine(1024);
        let mut now = START;
        let t = drive(
            &mut e,
            &f,
            0..100,
            &[Seg::Syn],
            &mut now,
            ChecksumHint::Good,
        );
        assert_eq!((t.forwarded, e.table().len()), (100, 100));
        let t = drive(
            &mut e,
            &f,
            0..100,
            &[Seg::ServerRst],
            &mut now,
            ChecksumHint::Good,
        );
        assert_eq!(t.invalid, 0);
        assert!(e.table().is_empty());
        assert_eq!(e.counters().get(Reason::TcpInvalidRst), 0);
    }

    #[test]
    fn classic_rules_drop_new_from_outside() {
        let f = FlowFactory::new(false);
        let mut e = engine(64);
        let mut now = START;
        let t = drive(
            &mut e,
            &f,
            0..4,
            &[Seg::SynAck],
            &mut now,
            ChecksumHint::Good,
        );
        assert_eq!(t.dropped, 4);
    }
}
