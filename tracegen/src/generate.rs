//! Whole-capture generators: `established`, `mixed`, `synflood`, `soak` and `sample`.
//!
//! Each writes packets in timestamp order to a [`PacketSink`] and is a pure function of its
//! options (seed included): the same options always give the same bytes.
//!
//! Addressing (see [`AddressPlan`]): clients are inside (10.1.0.0/16, fd00:1::/64), servers
//! outside (172.16.0.0/22, fd00:2::/64). Flow `i` gets a client address and source port that
//! no other flow index has, so every flow of a capture has its own 5-tuple and no flow ever
//! reuses the tuple of a closed one.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::frame::{Frame, Mac, TcpFlags, TcpOption, VlanTag, icmp, macs};
use crate::rng::Rng;
use crate::tcpsim::{Dir, TcpSim};
use crate::write::Counter;
use crate::{DEFAULT_START_NS, Packet, PacketSink, Side};

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 0x00c7_f3a1;

/// What a generator wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Packets, bytes and packets per side.
    pub counts: Counter,
    /// Distinct flows (connections, UDP conversations, pings, single packets) started.
    pub flows: u64,
    /// Timestamp of the last packet.
    pub last_ts_ns: u64,
}

/// Wraps the sink: counts, stamps and keeps time.
struct Out<'a, S: ?Sized> {
    sink: &'a mut S,
    summary: Summary,
    now_ns: u64,
}

impl<S: PacketSink + ?Sized> Out<'_, S> {
    fn write(&mut self, p: &Packet) -> io::Result<()> {
        self.summary.counts.write_packet(p)?;
        self.summary.last_ts_ns = p.ts_ns;
        self.sink.write_packet(p)
    }

    fn frame(&mut self, side: Side, data: Vec<u8>) -> io::Result<()> {
        let p = Packet {
            ts_ns: self.now_ns,
            side,
            data,
        };
        self.write(&p)
    }

    /// Runs one simulator step at the current time and writes what it emitted.
    fn sim(&mut self, sim: &mut TcpSim, step: impl FnOnce(&mut TcpSim)) -> io::Result<()> {
        sim.at(self.now_ns);
        step(sim);
        for p in sim.take_packets() {
            self.write(&p)?;
        }
        Ok(())
    }
}

/// Maps a flow index to distinct endpoints.
#[derive(Debug, Clone, Copy)]
pub struct AddressPlan;

impl AddressPlan {
    const HOSTS: u64 = 65_000;
    const SERVERS: u64 = 1_000;

    /// The client and server of flow `i`, IPv6 if `v6`, towards server port `dport`.
    /// Distinct `i` give distinct (client address, client port) pairs for up to 4 billion
    /// flows.
    pub fn endpoints(i: u64, v6: bool, dport: u16) -> (SocketAddr, SocketAddr) {
        let host = i % Self::HOSTS + 1;
        let block = i / Self::HOSTS;
        // Injective in `block` for a fixed host while block < 64000, and spread out.
        let sport = 1024 + ((block + host * 31) % 64_000) as u16;
        let server = (i.wrapping_mul(2_654_435_761) >> 7) % Self::SERVERS + 1;
        let (c, s): (IpAddr, IpAddr) = if v6 {
            (
                Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, (host >> 16) as u16, host as u16).into(),
                Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, server as u16).into(),
            )
        } else {
            (
                Ipv4Addr::new(10, 1, (host >> 8) as u8, host as u8).into(),
                Ipv4Addr::new(172, 16, (server >> 8) as u8, server as u8).into(),
            )
        };
        (SocketAddr::new(c, sport), SocketAddr::new(s, dport))
    }
}

fn ip_pair_frame(src: IpAddr, dst: IpAddr) -> Frame {
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Frame::ipv4(a, b),
        (IpAddr::V6(a), IpAddr::V6(b)) => Frame::ipv6(a, b),
        (a, b) => Frame::ipv6(to_v6(a), to_v6(b)),
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn side_macs(side: Side) -> (Mac, Mac) {
    match side {
        Side::Inside => (macs::CLIENT, macs::ROUTER_INSIDE),
        Side::Outside => (macs::SERVER, macs::ROUTER_OUTSIDE),
    }
}

// ---------------------------------------------------------------------------------------
// established

/// How `established` picks the next flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Flow 0, 1, ..., N-1, 0, 1, ...
    RoundRobin,
    /// Uniformly at random (deterministic for the seed).
    #[default]
    Random,
}

/// Options of [`established`].
#[derive(Debug, Clone)]
pub struct EstablishedOpts {
    /// Concurrent TCP connections.
    pub flows: u64,
    /// Packets after the handshakes.
    pub packets: u64,
    /// Fraction of flows over IPv6.
    pub v6_share: f64,
    /// Payload bytes per data segment (capped at 1448; 0: pure ACKs only).
    pub payload: u32,
    /// Omit handshakes: flows are picked up mid-stream (the first packet of each flow is an
    /// ACK-carrying segment from the client, as loose pickup requires).
    pub data_only: bool,
    /// Flow order.
    pub order: Order,
    /// TCP timestamps option on every flow.
    pub timestamps: bool,
    /// Seed.
    pub seed: u64,
    /// Time of the first packet.
    pub start_ns: u64,
    /// Time between consecutive packets.
    pub gap_ns: u64,
}

impl Default for EstablishedOpts {
    fn default() -> Self {
        EstablishedOpts {
            flows: 100,
            packets: 1000,
            v6_share: 0.0,
            payload: 512,
            data_only: false,
            order: Order::Random,
            timestamps: false,
            seed: DEFAULT_SEED,
            start_ns: DEFAULT_START_NS,
            gap_ns: 1_000,
        }
    }
}

const SERVER_PORTS: [u16; 8] = [443, 443, 443, 80, 80, 8080, 22, 5432];

/// N concurrent connections: all handshakes first (unless `data_only`), then `packets`
/// segments of established traffic in both directions, each valid for a Linux-exact tracker
/// (in window, acknowledging exactly what was received), so every flow stays ESTABLISHED.
///
/// A data segment is sent only while the sender has at most two unacknowledged segments;
/// otherwise the receiver's pure ACK goes out instead, so the flight never nears the window.
pub fn established<S: PacketSink + ?Sized>(
    o: &EstablishedOpts,
    sink: &mut S,
) -> io::Result<Summary> {
    let mut rng = Rng::new(o.seed);
    let mut setup = rng.fork(1);
    let payload = o.payload.min(1448);
    let mut out = Out {
        sink,
        summary: Summary::default(),
        now_ns: o.start_ns,
    };
    let mut sims: Vec<TcpSim> = (0..o.flows)
        .map(|i| {
            let v6 = setup.chance(o.v6_share);
            let dport = SERVER_PORTS[setup.below(SERVER_PORTS.len() as u64) as usize];
            let (c, s) = AddressPlan::endpoints(i, v6, dport);
            let (ci, si) = (setup.next_u32(), setup.next_u32());
            let (cid, sid) = (setup.next_u32() as u16, setup.next_u32() as u16);
            let sim = TcpSim::new(c, s)
                .isn(ci, si)
                .timestamps(o.timestamps)
                .client_config(|e| e.ip_id = cid)
                .server_config(|e| e.ip_id = sid);
            if o.data_only { sim.established() } else { sim }
        })
        .collect();
    out.summary.flows = o.flows;

    if !o.data_only {
        for sim in &mut sims {
            for step in [TcpSim::syn, TcpSim::synack, TcpSim::ack] {
                out.sim(sim, |s| {
                    step(s);
                })?;
                out.now_ns += o.gap_ns;
            }
        }
    }

    let mut started = vec![!o.data_only; sims.len()];
    let mut traffic = rng.fork(2);
    for k in 0..o.packets {
        if sims.is_empty() {
            break;
        }
        let f = match o.order {
            Order::RoundRobin => (k % o.flows) as usize,
            Order::Random => traffic.below(o.flows) as usize,
        };
        let mut dir = if traffic.chance(0.5) {
            Dir::C2s
        } else {
            Dir::S2c
        };
        if !started[f] {
            // Pickup starts from the client so the classic policy accepts the new entry.
            dir = Dir::C2s;
            started[f] = true;
        }
        let sim = &mut sims[f];
        if payload == 0 {
            out.sim(sim, |s| {
                s.ack_dir(dir);
            })?;
        } else if sim.ack_owed(dir) >= 2 * payload || !sim.can_send(dir, payload) {
            out.sim(sim, |s| {
                s.ack_dir(dir.reverse());
            })?;
        } else {
            out.sim(sim, |s| {
                s.data(dir, payload);
            })?;
        }
        out.now_ns += o.gap_ns;
    }
    Ok(out.summary)
}

// ---------------------------------------------------------------------------------------
// mixed

/// Options of [`mixed`].
#[derive(Debug, Clone)]
pub struct MixedOpts {
    /// Conversations active at once.
    pub flows: u64,
    /// Total packets.
    pub packets: u64,
    /// Seed.
    pub seed: u64,
    /// Time of the first packet.
    pub start_ns: u64,
    /// Mean time between packets (exponentially distributed).
    pub gap_ns: u64,
}

impl Default for MixedOpts {
    fn default() -> Self {
        MixedOpts {
            flows: 100,
            packets: 10_000,
            seed: DEFAULT_SEED,
            start_ns: DEFAULT_START_NS,
            gap_ns: 10_000,
        }
    }
}

/// One step of a conversation: one packet.
#[derive(Debug, Clone, Copy)]
enum Step {
    Syn,
    SynAck,
    Ack(Dir),
    Data(Dir, u32),
    /// Data seen by the firewall, lost after it.
    DataLost(Dir, u32),
    Retransmit(Dir),
    /// A data segment with a bad checksum (the sender's later segment carries the bytes).
    BadChecksum(Dir, u32),
    Fin(Dir),
    Rst(Dir),
    /// RST/ACK from a closed port answering the SYN.
    ClosedPortRst,
    Dgram(Dir, u16),
    /// A DNS query (false) or its answer (true).
    Dns(bool),
    EchoRequest,
    EchoReply,
}

/// A single invalid or policy-dropped packet.
#[derive(Debug, Clone, Copy)]
enum Odd {
    SynFin,
    NullFlags,
    Xmas,
    SynRst,
    BadTcpChecksum,
    BadIpChecksum,
    TruncatedTcp,
    SynFromOutside,
    UdpFromOutside,
    UnsolicitedIcmpError,
    AckWithoutConnection,
}

const ODDS: [Odd; 11] = [
    Odd::SynFin,
    Odd::NullFlags,
    Odd::Xmas,
    Odd::SynRst,
    Odd::BadTcpChecksum,
    Odd::BadIpChecksum,
    Odd::TruncatedTcp,
    Odd::SynFromOutside,
    Odd::UdpFromOutside,
    Odd::UnsolicitedIcmpError,
    Odd::AckWithoutConnection,
];

enum ConvKind {
    Tcp(Box<TcpSim>),
    Dgram {
        c: SocketAddr,
        s: SocketAddr,
        fill: u8,
    },
    Ping {
        c: IpAddr,
        s: IpAddr,
        id: u16,
        seq: u16,
    },
    Odd {
        c: SocketAddr,
        s: SocketAddr,
        odd: Odd,
    },
}

struct Conv {
    kind: ConvKind,
    steps: VecDeque<Step>,
    vlans: Vec<VlanTag>,
    ip_id: [u16; 2],
}

impl Conv {
    fn done(&self) -> bool {
        self.steps.is_empty() && !matches!(self.kind, ConvKind::Odd { .. })
    }
}

fn new_conv(i: u64, rng: &mut Rng) -> Conv {
    let v6 = rng.chance(0.2);
    let vlans = match rng.below(100) {
        0 => vec![
            VlanTag::service(10 + rng.below(10) as u16),
            VlanTag::dot1q(100 + rng.below(100) as u16),
        ],
        1..=5 => vec![VlanTag::dot1q(100 + rng.below(100) as u16)],
        _ => Vec::new(),
    };
    let ip_id = [rng.next_u32() as u16, rng.next_u32() as u16];
    let mut steps = VecDeque::new();
    let kind = match rng.weighted(&[60, 14, 8, 6, 4]) {
        0 => {
            let (c, s) = AddressPlan::endpoints(i, v6, SERVER_PORTS[rng.below(8) as usize]);
            let sim = TcpSim::new(c, s)
                .isn(rng.next_u32(), rng.next_u32())
                .timestamps(rng.chance(0.5))
                .vlans(vlans.clone())
                .client_config(|e| e.ip_id = ip_id[0])
                .server_config(|e| e.ip_id = ip_id[1]);
            tcp_plan(rng, &mut steps);
            ConvKind::Tcp(Box::new(sim))
        }
        1 => {
            // DNS-like: one query, one answer.
            let (c, s) = AddressPlan::endpoints(i, v6, 53);
            steps.push_back(Step::Dns(false));
            steps.push_back(Step::Dns(true));
            ConvKind::Dgram { c, s, fill: b'd' }
        }
        2 => {
            // A stream (media or QUIC-like), mostly server to client.
            let port = if rng.chance(0.5) { 443 } else { 5004 };
            let (c, s) = AddressPlan::endpoints(i, v6, port);
            steps.push_back(Step::Dgram(Dir::C2s, 100 + rng.below(1100) as u16));
            for _ in 0..rng.range(4, 60) {
                let dir = if rng.chance(0.8) { Dir::S2c } else { Dir::C2s };
                steps.push_back(Step::Dgram(dir, 100 + rng.below(1100) as u16));
            }
            ConvKind::Dgram { c, s, fill: b's' }
        }
        3 => {
            let (c, s) = AddressPlan::endpoints(i, v6, 0);
            for _ in 0..rng.range(1, 4) {
                steps.push_back(Step::EchoRequest);
                steps.push_back(Step::EchoReply);
            }
            ConvKind::Ping {
                c: c.ip(),
                s: s.ip(),
                id: rng.next_u32() as u16,
                seq: 0,
            }
        }
        _ => {
            let (c, s) = AddressPlan::endpoints(i, v6, SERVER_PORTS[rng.below(8) as usize]);
            ConvKind::Odd {
                c,
                s,
                odd: ODDS[rng.below(ODDS.len() as u64) as usize],
            }
        }
    };
    Conv {
        kind,
        steps,
        vlans,
        ip_id,
    }
}

/// The life of one TCP connection.
fn tcp_plan(rng: &mut Rng, steps: &mut VecDeque<Step>) {
    steps.push_back(Step::Syn);
    match rng.below(100) {
        // No answer: the SYN is retransmitted once.
        0..=2 => {
            steps.push_back(Step::Syn);
            return;
        }
        3..=4 => {
            steps.push_back(Step::ClosedPortRst);
            return;
        }
        _ => {}
    }
    steps.extend([Step::SynAck, Step::Ack(Dir::C2s)]);
    for _ in 0..rng.range(1, 5) {
        let req = 50 + rng.below(700) as u32;
        if rng.chance(0.02) {
            steps.push_back(Step::BadChecksum(Dir::C2s, req));
        }
        steps.push_back(Step::Data(Dir::C2s, req));
        if rng.chance(0.5) {
            steps.push_back(Step::Ack(Dir::S2c));
        }
        let segs = rng.range(1, 8);
        let lose_at = if rng.chance(0.08) && segs > 2 {
            Some(rng.below(segs - 1))
        } else {
            None
        };
        let mut unacked = 0;
        for k in 0..segs {
            let len = if k + 1 == segs {
                1 + rng.below(1448) as u32
            } else {
                1448
            };
            if lose_at == Some(k) {
                steps.push_back(Step::DataLost(Dir::S2c, len));
            } else {
                steps.push_back(Step::Data(Dir::S2c, len));
            }
            unacked += 1;
            if unacked == 2 {
                // The client ACKs every second segment (with SACK blocks after a loss).
                steps.push_back(Step::Ack(Dir::C2s));
                unacked = 0;
            }
        }
        if lose_at.is_some() {
            steps.push_back(Step::Retransmit(Dir::S2c));
        }
        if unacked > 0 || lose_at.is_some() {
            steps.push_back(Step::Ack(Dir::C2s));
        }
    }
    match rng.below(100) {
        0..=69 => steps.extend([
            Step::Fin(Dir::C2s),
            Step::Fin(Dir::S2c),
            Step::Ack(Dir::C2s),
        ]),
        70..=84 => steps.extend([
            Step::Fin(Dir::S2c),
            Step::Fin(Dir::C2s),
            Step::Ack(Dir::S2c),
        ]),
        85..=92 => steps.push_back(Step::Rst(Dir::C2s)),
        _ => steps.push_back(Step::Rst(Dir::S2c)),
    }
}

/// Emits the next packet of `conv`.
fn step_conv<S: PacketSink + ?Sized>(conv: &mut Conv, out: &mut Out<'_, S>) -> io::Result<()> {
    if let ConvKind::Odd { c, s, odd } = conv.kind {
        let (side, data) = odd_packet(c, s, odd, &conv.vlans, conv.ip_id);
        conv.kind = ConvKind::Dgram { c, s, fill: 0 };
        conv.steps.clear();
        return out.frame(side, data);
    }
    let Some(step) = conv.steps.pop_front() else {
        return Ok(());
    };
    match &mut conv.kind {
        ConvKind::Tcp(sim) => out.sim(sim, |sim| match step {
            Step::Syn => {
                sim.syn();
            }
            Step::SynAck => {
                sim.synack();
            }
            Step::Ack(d) => {
                sim.ack_dir(d);
            }
            Step::Data(d, n) => {
                sim.data(d, n);
            }
            Step::DataLost(d, n) => {
                sim.lose_next(d).data(d, n);
            }
            Step::Retransmit(d) => {
                sim.retransmit(d);
            }
            Step::BadChecksum(d, n) => {
                let f = sim
                    .craft(d, TcpFlags::PSH | TcpFlags::ACK, n as usize)
                    .corrupt_l4_checksum();
                sim.push(d, &f);
            }
            Step::Fin(d) => {
                sim.fin(d);
            }
            Step::Rst(d) => {
                sim.rst(d);
            }
            Step::ClosedPortRst => {
                let mut f = sim
                    .craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0)
                    .window(0);
                if let Some(t) = f.tcp_mut() {
                    t.seq = 0;
                }
                sim.push(Dir::S2c, &f);
            }
            _ => {}
        }),
        ConvKind::Dgram { c, s, fill } => {
            let (dir, payload) = match step {
                Step::Dgram(dir, len) => (dir, vec![*fill; usize::from(len)]),
                Step::Dns(answer) => {
                    let dir = if answer { Dir::S2c } else { Dir::C2s };
                    (dir, dns_message(c.port(), answer))
                }
                _ => return Ok(()),
            };
            let (from, to) = if dir == Dir::C2s { (*c, *s) } else { (*s, *c) };
            let k = usize::from(dir == Dir::S2c);
            let (src_mac, dst_mac) = side_macs(dir.side());
            let mut f = ip_pair_frame(from.ip(), to.ip())
                .macs(src_mac, dst_mac)
                .ip_id(conv.ip_id[k])
                .udp(from.port(), to.port())
                .payload(&payload);
            f.vlans.clone_from(&conv.vlans);
            conv.ip_id[k] = conv.ip_id[k].wrapping_add(1);
            out.frame(dir.side(), f.build())
        }
        ConvKind::Ping { c, s, id, seq } => {
            let (dir, src, dst) = match step {
                Step::EchoRequest => {
                    *seq = seq.wrapping_add(1);
                    (Dir::C2s, *c, *s)
                }
                _ => (Dir::S2c, *s, *c),
            };
            let k = usize::from(dir == Dir::S2c);
            let (src_mac, dst_mac) = side_macs(dir.side());
            let base = ip_pair_frame(src, dst)
                .macs(src_mac, dst_mac)
                .ip_id(conv.ip_id[k]);
            let mut f = if dir == Dir::C2s {
                base.echo_request(*id, *seq)
            } else {
                base.echo_reply(*id, *seq)
            };
            f = f.payload(&[b'p'; 56]);
            f.vlans.clone_from(&conv.vlans);
            conv.ip_id[k] = conv.ip_id[k].wrapping_add(1);
            out.frame(dir.side(), f.build())
        }
        ConvKind::Odd { .. } => Ok(()),
    }
}

/// A single invalid or policy-dropped packet between `c` (inside) and `s` (outside).
fn odd_packet(
    c: SocketAddr,
    s: SocketAddr,
    odd: Odd,
    vlans: &[VlanTag],
    ip_id: [u16; 2],
) -> (Side, Vec<u8>) {
    let tcp_c2s = |flags: TcpFlags| {
        let mut f = ip_pair_frame(c.ip(), s.ip())
            .ip_id(ip_id[0])
            .tcp(c.port(), s.port())
            .flags(flags)
            .seq_ack(u32::from(ip_id[0]) << 12, 0);
        f.vlans = vlans.to_vec();
        f
    };
    let from_outside = |f: Frame| f.macs(macs::SERVER, macs::ROUTER_OUTSIDE);
    match odd {
        Odd::SynFin => (Side::Inside, tcp_c2s(TcpFlags::SYN | TcpFlags::FIN).build()),
        Odd::NullFlags => (Side::Inside, tcp_c2s(TcpFlags::NONE).build()),
        Odd::Xmas => (
            Side::Inside,
            tcp_c2s(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG).build(),
        ),
        Odd::SynRst => (Side::Inside, tcp_c2s(TcpFlags::SYN | TcpFlags::RST).build()),
        Odd::BadTcpChecksum => (
            Side::Inside,
            tcp_c2s(TcpFlags::SYN).corrupt_l4_checksum().build(),
        ),
        Odd::BadIpChecksum => (
            Side::Inside,
            tcp_c2s(TcpFlags::SYN).corrupt_ip_checksum().build(),
        ),
        Odd::TruncatedTcp => {
            let mut b = tcp_c2s(TcpFlags::SYN)
                .tcp_option(TcpOption::Mss(1460))
                .build();
            // Keep the IP header and 12 bytes of TCP; the IP total length still claims all.
            let ip_len = if b.get(12..14) == Some(&[0x86, 0xdd]) {
                40
            } else {
                20
            };
            b.truncate(14 + 4 * vlans.len() + ip_len + 12);
            (Side::Inside, b)
        }
        Odd::SynFromOutside => {
            let mut f = from_outside(ip_pair_frame(s.ip(), c.ip()))
                .ip_id(ip_id[1])
                .tcp(s.port(), 22)
                .flags(TcpFlags::SYN)
                .seq_ack(u32::from(ip_id[1]) << 8, 0)
                .tcp_option(TcpOption::Mss(1460));
            f.vlans = vlans.to_vec();
            (Side::Outside, f.build())
        }
        Odd::UdpFromOutside => {
            let mut f = from_outside(ip_pair_frame(s.ip(), c.ip()))
                .ip_id(ip_id[1])
                .udp(s.port(), c.port())
                .payload(b"unsolicited");
            f.vlans = vlans.to_vec();
            (Side::Outside, f.build())
        }
        Odd::UnsolicitedIcmpError => {
            let quoted = ip_pair_frame(c.ip(), s.ip())
                .udp(c.port(), 9999)
                .payload(&[b'q'; 20]);
            let code = if c.is_ipv6() {
                icmp::V6_PORT_UNREACH
            } else {
                icmp::PORT_UNREACH
            };
            let ty = if c.is_ipv6() {
                icmp::V6_DEST_UNREACH
            } else {
                icmp::DEST_UNREACH
            };
            let mut f = from_outside(ip_pair_frame(s.ip(), c.ip()))
                .ip_id(ip_id[1])
                .icmp_error(ty, code, &quoted);
            f.vlans = vlans.to_vec();
            (Side::Outside, f.build())
        }
        Odd::AckWithoutConnection => (Side::Inside, tcp_c2s(TcpFlags::ACK).seq_ack(77, 99).build()),
    }
}

/// A realistic mix over time: `flows` conversations active at once, each replaced by a new
/// one when it ends, until `packets` packets have been written. About 60% of conversations
/// are TCP connections (handshake, request/response exchanges with delayed ACKs, occasional
/// loss with SACK and retransmission, FIN or RST close, some unanswered SYNs and closed
/// ports), 14% DNS-like UDP, 8% UDP streams, 6% pings and 4% single invalid or
/// policy-dropped packets; 20% are IPv6 and 6% carry VLAN tags (1% QinQ).
pub fn mixed<S: PacketSink + ?Sized>(o: &MixedOpts, sink: &mut S) -> io::Result<Summary> {
    let mut rng = Rng::new(o.seed);
    let mut out = Out {
        sink,
        summary: Summary::default(),
        now_ns: o.start_ns,
    };
    let mut next_flow = 0u64;
    let mut active: Vec<Conv> = Vec::new();
    for _ in 0..o.flows {
        active.push(new_conv(next_flow, &mut rng));
        next_flow += 1;
    }
    let mut written = 0;
    while written < o.packets && !active.is_empty() {
        let i = rng.below(active.len() as u64) as usize;
        let before = out.summary.counts.packets;
        step_conv(&mut active[i], &mut out)?;
        written += out.summary.counts.packets - before;
        if active[i].done() {
            active[i] = new_conv(next_flow, &mut rng);
            next_flow += 1;
        }
        out.now_ns += 1 + rng.exp(o.gap_ns as f64) as u64;
    }
    out.summary.flows = next_flow;
    Ok(out.summary)
}

// ---------------------------------------------------------------------------------------
// synflood

/// Options of [`synflood`].
#[derive(Debug, Clone)]
pub struct SynfloodOpts {
    /// SYNs to send.
    pub count: u64,
    /// The side the flood arrives on. Inside: spoofed 10.128.0.0/9 sources towards an
    /// outside server (fills the connection table); outside: spoofed 198.18.0.0/15 sources
    /// towards an inside server (dropped by policy).
    pub from: Side,
    /// Seed.
    pub seed: u64,
    /// Time of the first packet.
    pub start_ns: u64,
    /// Time between SYNs.
    pub gap_ns: u64,
    /// With `Some(fold)`, every SYN's tuple has this fold: the XOR of the 16-bit words of its
    /// addresses and ports ([`toeplitz_fold`]). A Toeplitz hash whose key repeats every 16 bits
    /// (the symmetric RSS key) depends on nothing else, so such a flood hashes to one value and
    /// lands on one RSS queue or worker. Sources are then distinct (each source port follows
    /// from its address).
    pub toeplitz_fold: Option<u16>,
}

impl Default for SynfloodOpts {
    fn default() -> Self {
        SynfloodOpts {
            count: 1000,
            from: Side::Inside,
            seed: DEFAULT_SEED,
            start_ns: DEFAULT_START_NS,
            gap_ns: 1_000,
            toeplitz_fold: None,
        }
    }
}

/// The XOR of the 16-bit words of an IPv4 address pair and a port pair: all that a Toeplitz
/// hash with a key repeating every 16 bits depends on.
pub fn toeplitz_fold(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u16 {
    let words = |a: Ipv4Addr| {
        let v = u32::from(a);
        (v >> 16) as u16 ^ v as u16
    };
    words(src) ^ words(dst) ^ sport ^ dport
}

/// SYNs from many spoofed sources to one server (port 80); with `toeplitz_fold`, crafted so
/// that a symmetric Toeplitz hash puts them all in one bucket.
pub fn synflood<S: PacketSink + ?Sized>(o: &SynfloodOpts, sink: &mut S) -> io::Result<Summary> {
    let mut rng = Rng::new(o.seed);
    let mut out = Out {
        sink,
        summary: Summary::default(),
        now_ns: o.start_ns,
    };
    let (base, mask, server) = match o.from {
        Side::Inside => (
            0x0a80_0000u32,
            0x007f_ffffu32,
            Ipv4Addr::new(172, 16, 0, 80),
        ),
        Side::Outside => (0xc612_0000, 0x0001_ffff, Ipv4Addr::new(10, 0, 1, 80)),
    };
    let (src_mac, dst_mac) = side_macs(o.from);
    let mut index = 0u32;
    let mut written = 0;
    while written < o.count {
        let (src, sport) = match o.toeplitz_fold {
            None => (
                Ipv4Addr::from(base | (rng.next_u32() & mask)),
                1024 + rng.below(64_512) as u16,
            ),
            Some(fold) => {
                // An odd multiplier permutes the source space: distinct, scattered sources.
                let src = Ipv4Addr::from(base | (index.wrapping_mul(0x9e37_79b1) & mask));
                index += 1;
                if index > mask {
                    break; // every source used
                }
                let sport = fold ^ toeplitz_fold(src, server, 0, 80);
                if sport == 0 {
                    continue;
                }
                (src, sport)
            }
        };
        written += 1;
        let f = Frame::ipv4(src, server)
            .macs(src_mac, dst_mac)
            .ip_id(rng.next_u32() as u16)
            .tcp(sport, 80)
            .flags(TcpFlags::SYN)
            .seq_ack(rng.next_u32(), 0)
            .tcp_option(TcpOption::Mss(1460))
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::WindowScale(7))
            .tcp_option(TcpOption::SackPermitted)
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::Nop);
        out.frame(o.from, f.build())?;
        out.now_ns += o.gap_ns;
    }
    out.summary.flows = written;
    Ok(out.summary)
}

// ---------------------------------------------------------------------------------------
// soak

/// Options of [`soak`].
#[derive(Debug, Clone)]
pub struct SoakOpts {
    /// `mixed` conversations active at once.
    pub flows: u64,
    /// Packets to write (the conversation step that reaches it may add one more).
    pub packets: u64,
    /// Seed.
    pub seed: u64,
    /// Time of the first packet.
    pub start_ns: u64,
    /// Mean time between packets (exponentially distributed).
    pub gap_ns: u64,
}

impl Default for SoakOpts {
    fn default() -> Self {
        SoakOpts {
            flows: 1000,
            packets: 100_000,
            seed: DEFAULT_SEED,
            start_ns: DEFAULT_START_NS,
            gap_ns: 10_000,
        }
    }
}

/// What one slot of [`soak`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SoakKind {
    /// The next packet of a `mixed` conversation.
    Conversation,
    /// A SYN from a spoofed inside source.
    SynFlood,
    /// A bare ACK from a spoofed source, either side, with random numbers.
    AckFlood,
    /// A UDP datagram from a spoofed inside source to a random port.
    UdpFlood,
    /// An RST with a random sequence number into a live TCP conversation.
    BlindRst,
    /// An ICMP error from the server quoting a live conversation's client packet.
    RelatedError,
    /// A malformed frame ([`Malformed`]).
    Malformed,
}

/// Each [`SoakKind`] with its share of the packets, in percent.
const SOAK_MIX: [(SoakKind, u32); 7] = [
    (SoakKind::Conversation, 60),
    (SoakKind::SynFlood, 8),
    (SoakKind::AckFlood, 6),
    (SoakKind::UdpFlood, 4),
    (SoakKind::BlindRst, 3),
    (SoakKind::RelatedError, 4),
    (SoakKind::Malformed, 15),
];

/// A frame no stack should send, one per layer a parser walks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed {
    /// 0 to 13 random bytes: shorter than an Ethernet header.
    Runt,
    /// An ARP request (not IP).
    NonIp,
    /// An 802.1Q tag cut off before its inner EtherType.
    VlanCut,
    /// Three stacked VLAN tags.
    ThreeVlans,
    /// IPv4 EtherType, 1 to 19 bytes of header.
    Ipv4Cut,
    /// IPv4 EtherType, version 6 in the header.
    Ipv4Version,
    /// IPv4 IHL below 5 or beyond the frame.
    Ipv4Ihl,
    /// IPv4 total length beyond the frame or below the header.
    Ipv4TotalLength,
    /// IPv4 record-route option with an impossible length byte.
    Ipv4Options,
    /// One fragment of a fragmented IPv4 datagram.
    Ipv4Fragment,
    /// IPv6 EtherType, 1 to 39 bytes of header.
    Ipv6Cut,
    /// IPv6 payload length beyond the frame.
    Ipv6PayloadLength,
    /// An IPv6 hop-by-hop header whose length runs past the frame.
    Ipv6ExtLength,
    /// One fragment of a fragmented IPv6 datagram.
    Ipv6Fragment,
    /// TCP data offset below 5 words, or beyond the segment.
    TcpDataOffset,
    /// TCP header cut short (the IP lengths agree with the cut).
    TcpCut,
    /// UDP length field below 8 or beyond the datagram.
    UdpLength,
    /// ICMP header cut short.
    IcmpCut,
    /// An ICMPv4 type Linux calls invalid (above 18).
    IcmpType,
    /// An ICMP error quoting 12 random bytes.
    IcmpBadInner,
    /// A valid TCP or UDP frame with 1 to 4 random bytes overwritten in its first 74, and cut
    /// at a random length half the time.
    Mutated,
}

const MALFORMED: [Malformed; 21] = [
    Malformed::Runt,
    Malformed::NonIp,
    Malformed::VlanCut,
    Malformed::ThreeVlans,
    Malformed::Ipv4Cut,
    Malformed::Ipv4Version,
    Malformed::Ipv4Ihl,
    Malformed::Ipv4TotalLength,
    Malformed::Ipv4Options,
    Malformed::Ipv4Fragment,
    Malformed::Ipv6Cut,
    Malformed::Ipv6PayloadLength,
    Malformed::Ipv6ExtLength,
    Malformed::Ipv6Fragment,
    Malformed::TcpDataOffset,
    Malformed::TcpCut,
    Malformed::UdpLength,
    Malformed::IcmpCut,
    Malformed::IcmpType,
    Malformed::IcmpBadInner,
    Malformed::Mutated,
];

/// A spoofed source: inside from 10.128.0.0/9, outside from 198.18.0.0/15 (as `synflood`).
fn spoofed(rng: &mut Rng, from: Side) -> Ipv4Addr {
    match from {
        Side::Inside => Ipv4Addr::from(0x0a80_0000 | (rng.next_u32() & 0x007f_ffff)),
        Side::Outside => Ipv4Addr::from(0xc612_0000 | (rng.next_u32() & 0x0001_ffff)),
    }
}

/// A flood packet of `kind` (SYN, ACK or UDP flood) and the side it arrives on.
fn flood_packet(kind: SoakKind, rng: &mut Rng) -> (Side, Vec<u8>) {
    let server = Ipv4Addr::new(172, 16, 0, 80);
    match kind {
        SoakKind::SynFlood => {
            let f = Frame::ipv4(spoofed(rng, Side::Inside), server)
                .ip_id(rng.next_u32() as u16)
                .tcp(1024 + rng.below(64_512) as u16, 80)
                .flags(TcpFlags::SYN)
                .seq_ack(rng.next_u32(), 0)
                .tcp_option(TcpOption::Mss(1460));
            (Side::Inside, f.build())
        }
        SoakKind::AckFlood => {
            let from = if rng.chance(0.5) {
                Side::Inside
            } else {
                Side::Outside
            };
            let src = spoofed(rng, from);
            let (dst, (src_mac, dst_mac)) = match from {
                Side::Inside => (server, side_macs(Side::Inside)),
                Side::Outside => (
                    Ipv4Addr::new(10, 1, rng.below(256) as u8, 1 + rng.below(250) as u8),
                    side_macs(Side::Outside),
                ),
            };
            let f = Frame::ipv4(src, dst)
                .macs(src_mac, dst_mac)
                .ip_id(rng.next_u32() as u16)
                .tcp(1024 + rng.below(64_512) as u16, 443)
                .flags(TcpFlags::ACK)
                .seq_ack(rng.next_u32(), rng.next_u32());
            (from, f.build())
        }
        _ => {
            let len = 16 + rng.below(497) as usize;
            let f = Frame::ipv4(spoofed(rng, Side::Inside), Ipv4Addr::new(172, 16, 0, 53))
                .ip_id(rng.next_u32() as u16)
                .udp(
                    1024 + rng.below(64_512) as u16,
                    1 + rng.below(65_535) as u16,
                )
                .payload(&vec![b'f'; len]);
            (Side::Inside, f.build())
        }
    }
}

/// A TCP conversation among `active` (a few random tries), if any.
fn pick_tcp<'a>(active: &'a [Conv], rng: &mut Rng) -> Option<&'a TcpSim> {
    (0..8).find_map(
        |_| match &active[rng.below(active.len() as u64) as usize].kind {
            ConvKind::Tcp(sim) => Some(&**sim),
            _ => None,
        },
    )
}

/// An RST with a random sequence number in a random direction of a live TCP conversation;
/// with none at hand, from a spoofed source to the flood's server.
fn blind_rst(active: &[Conv], rng: &mut Rng) -> (Side, Vec<u8>) {
    let Some(sim) = pick_tcp(active, rng) else {
        let f = Frame::ipv4(spoofed(rng, Side::Inside), Ipv4Addr::new(172, 16, 0, 80))
            .tcp(1024 + rng.below(64_512) as u16, 80)
            .flags(TcpFlags::RST)
            .seq_ack(rng.next_u32(), 0);
        return (Side::Inside, f.build());
    };
    let dir = if rng.chance(0.5) { Dir::C2s } else { Dir::S2c };
    let mut f = sim.craft(dir, TcpFlags::RST, 0);
    if let Some(t) = f.tcp_mut() {
        t.seq = rng.next_u32();
    }
    (dir.side(), f.build())
}

/// An ICMP error from the server of a random live conversation to its client, quoting a
/// packet the client sent (or could have sent): RELATED to the conversation's entry if it
/// has one. Odd conversations get an error quoting a datagram they never sent.
fn related_error(active: &[Conv], rng: &mut Rng) -> (Side, Vec<u8>) {
    let conv = &active[rng.below(active.len() as u64) as usize];
    let (c, s, quoted) = match &conv.kind {
        ConvKind::Tcp(sim) => {
            let (c, s) = (sim.endpoint(Dir::C2s), sim.endpoint(Dir::S2c));
            let quoted = sim.craft(Dir::C2s, TcpFlags::PSH | TcpFlags::ACK, 100);
            (c.addr, s.addr, quoted)
        }
        ConvKind::Dgram { c, s, .. } | ConvKind::Odd { c, s, .. } => {
            let quoted = ip_pair_frame(c.ip(), s.ip())
                .udp(c.port(), s.port())
                .payload(&[b'q'; 32]);
            (c.ip(), s.ip(), quoted)
        }
        ConvKind::Ping { c, s, id, seq } => {
            let quoted = ip_pair_frame(*c, *s)
                .echo_request(*id, *seq)
                .payload(&[b'p'; 56]);
            (*c, *s, quoted)
        }
    };
    let v6 = matches!(quoted.ip, crate::frame::Ip::V6(_));
    let (ty, code, mtu) = match (v6, rng.below(3)) {
        (false, 0) => (icmp::DEST_UNREACH, icmp::PORT_UNREACH, 0),
        (false, 1) => (icmp::DEST_UNREACH, icmp::FRAG_NEEDED, 1400u32),
        (false, _) => (icmp::TIME_EXCEEDED, 0, 0),
        (true, 0) => (icmp::V6_DEST_UNREACH, icmp::V6_PORT_UNREACH, 0),
        (true, 1) => (icmp::V6_PACKET_TOO_BIG, 0, 1280),
        (true, _) => (icmp::V6_TIME_EXCEEDED, 0, 0),
    };
    let mut f = ip_pair_frame(s, c)
        .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
        .icmp_error(ty, code, &quoted);
    if let Some(h) = f.icmp_mut() {
        h.rest = if v6 {
            mtu.to_be_bytes()
        } else {
            let [.., hi, lo] = mtu.to_be_bytes();
            [0, 0, hi, lo]
        };
    }
    f.vlans.clone_from(&conv.vlans);
    (Side::Outside, f.build())
}

/// A malformed frame of `kind` from flow `i`'s client (inside) towards its server.
fn malformed(kind: Malformed, i: u64, rng: &mut Rng) -> Vec<u8> {
    let (c4, s4) = AddressPlan::endpoints(i, false, 80);
    let (c6, s6) = AddressPlan::endpoints(i, true, 80);
    let syn = |c: SocketAddr, s: SocketAddr, seq: u32| {
        ip_pair_frame(c.ip(), s.ip())
            .tcp(c.port(), s.port())
            .flags(TcpFlags::SYN)
            .seq_ack(seq, 0)
            .tcp_option(TcpOption::Mss(1460))
    };
    let udp = |c: SocketAddr, s: SocketAddr, len: usize| {
        ip_pair_frame(c.ip(), s.ip())
            .udp(c.port(), 53)
            .payload(&vec![b'u'; len])
    };
    let random_bytes =
        |rng: &mut Rng, n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u32() as u8).collect() };
    // The IPv4 header and transport bytes of a frame cut to `keep` bytes of IP packet, with
    // the total length saying so.
    let cut_v4 = |mut f: Frame, keep: usize| {
        if let Some(h) = f.ipv4_mut() {
            h.total_len = Some(keep as u16);
        }
        let mut b = f.build();
        b.truncate(14 + keep);
        b
    };
    match kind {
        Malformed::Runt => {
            let n = rng.below(14) as usize;
            random_bytes(rng, n)
        }
        Malformed::NonIp => {
            let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
            arp.extend_from_slice(&macs::CLIENT);
            arp.extend_from_slice(&[10, 1, 0, 1]);
            arp.extend_from_slice(&[0; 6]);
            arp.extend_from_slice(&[10, 1, 0, 254]);
            Frame::other(0x0806, arp)
                .macs(macs::CLIENT, [0xff; 6])
                .build()
        }
        Malformed::VlanCut => {
            let mut b = syn(c4, s4, rng.next_u32()).vlan(100).build();
            b.truncate(16);
            b
        }
        Malformed::ThreeVlans => {
            let mut f = syn(c4, s4, rng.next_u32());
            f.vlans = vec![VlanTag::service(10), VlanTag::dot1q(20), VlanTag::dot1q(30)];
            f.build()
        }
        Malformed::Ipv4Cut => {
            let mut b = syn(c4, s4, rng.next_u32()).build();
            b.truncate(14 + rng.range(1, 19) as usize);
            b
        }
        Malformed::Ipv4Version => {
            let mut b = syn(c4, s4, rng.next_u32()).build();
            b[14] = 0x60 | (b[14] & 0x0f);
            b
        }
        Malformed::Ipv4Ihl => {
            let mut f = syn(c4, s4, rng.next_u32());
            let ihl = if rng.chance(0.5) {
                rng.below(5) as u8
            } else {
                15
            };
            if let Some(h) = f.ipv4_mut() {
                h.ihl = Some(ihl);
            }
            let mut b = f.build();
            // IHL 15 claims 60 bytes of header: keep fewer.
            b.truncate(14 + 40);
            b
        }
        Malformed::Ipv4TotalLength => {
            let mut f = syn(c4, s4, rng.next_u32());
            let len = if rng.chance(0.5) {
                rng.below(20) as u16
            } else {
                44 + 1 + rng.below(1000) as u16
            };
            if let Some(h) = f.ipv4_mut() {
                h.total_len = Some(len);
            }
            f.build()
        }
        Malformed::Ipv4Options => {
            let mut f = syn(c4, s4, rng.next_u32());
            if let Some(h) = f.ipv4_mut() {
                // Record route (7) with a length of 1: shorter than its own two bytes.
                h.options = vec![7, 1, 0, 0];
            }
            f.build()
        }
        Malformed::Ipv4Fragment => {
            let frags = udp(c4, s4, 200).fragments(64, rng.next_u32());
            frags[rng.below(frags.len() as u64) as usize].clone()
        }
        Malformed::Ipv6Cut => {
            let mut b = syn(c6, s6, rng.next_u32()).build();
            b.truncate(14 + rng.range(1, 39) as usize);
            b
        }
        Malformed::Ipv6PayloadLength => {
            let mut f = syn(c6, s6, rng.next_u32());
            if let Some(h) = f.ipv6_mut() {
                h.payload_len = Some(24 + 1 + rng.below(1000) as u16);
            }
            f.build()
        }
        Malformed::Ipv6ExtLength => {
            let mut f = syn(c6, s6, rng.next_u32());
            if let Some(h) = f.ipv6_mut() {
                h.ext
                    .push(crate::frame::Ipv6Ext::HopByHop(vec![1, 4, 0, 0, 0, 0]));
            }
            let mut b = f.build();
            // Hdr Ext Len 255: 2048 bytes of options claimed, 8 present.
            b[14 + 40 + 1] = 0xff;
            b
        }
        Malformed::Ipv6Fragment => {
            let frags = udp(c6, s6, 200).fragments(64, rng.next_u32());
            frags[rng.below(frags.len() as u64) as usize].clone()
        }
        Malformed::TcpDataOffset => {
            let mut f = syn(c4, s4, rng.next_u32());
            if let Some(t) = f.tcp_mut() {
                t.data_offset = Some(if rng.chance(0.5) {
                    rng.below(5) as u8
                } else {
                    15
                });
            }
            f.build()
        }
        Malformed::TcpCut => cut_v4(syn(c4, s4, rng.next_u32()), 20 + rng.range(1, 19) as usize),
        Malformed::UdpLength => {
            let mut f = udp(c4, s4, 40);
            if let Some(u) = f.udp_mut() {
                u.length = Some(if rng.chance(0.5) {
                    rng.below(8) as u16
                } else {
                    48 + 1 + rng.below(1000) as u16
                });
            }
            f.build()
        }
        Malformed::IcmpCut => {
            let f = ip_pair_frame(c4.ip(), s4.ip()).echo_request(rng.next_u32() as u16, 1);
            cut_v4(f, 20 + rng.range(1, 7) as usize)
        }
        Malformed::IcmpType => {
            let mut f = ip_pair_frame(c4.ip(), s4.ip()).echo_request(rng.next_u32() as u16, 1);
            if let Some(h) = f.icmp_mut() {
                h.ty = 19 + rng.below(237) as u8;
            }
            f.build()
        }
        Malformed::IcmpBadInner => {
            let quoted = udp(c4, s4, 8);
            let mut f = ip_pair_frame(s4.ip(), c4.ip())
                .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
                .icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &quoted);
            f.payload = random_bytes(rng, 12);
            f.build()
        }
        Malformed::Mutated => {
            let v6 = rng.chance(0.3);
            let (c, s) = if v6 { (c6, s6) } else { (c4, s4) };
            let f = if rng.chance(0.5) {
                syn(c, s, rng.next_u32())
            } else {
                udp(c, s, 64)
            };
            let mut b = f.build();
            for _ in 0..rng.range(1, 4) {
                let at = 12 + rng.below(62) as usize;
                if let Some(x) = b.get_mut(at) {
                    *x = rng.next_u32() as u8;
                }
            }
            if rng.chance(0.5) {
                let keep = rng.range(14, b.len() as u64) as usize;
                b.truncate(keep);
            }
            b
        }
    }
}

/// A churning attack mix for soak tests: the `mixed` conversations (about 60% of the
/// packets: handshakes, data, FIN and RST closes, DNS and UDP streams, pings, single invalid
/// packets, VLAN tags, IPv6), interleaved with SYN floods (8%), blind ACK floods from both
/// sides (6%) and UDP floods (4%) from spoofed sources, RSTs with random sequence numbers
/// into live connections (3%), ICMP errors quoting live conversations (4%), and malformed
/// frames (15%, 21 kinds: runts, non-IP, cut VLAN tags, bad IPv4 and IPv6 headers,
/// fragments, bad TCP, UDP and ICMP headers, and randomly mutated frames).
///
/// Every flood packet and malformed frame has a source or tuple of its own, so a capture of
/// N packets holds on the order of N/3 distinct flows: looped through a table smaller than
/// that, entries are created, evicted, closed and expire for as long as it runs.
/// `Summary::flows` counts the conversations started, the flood packets and the malformed
/// frames.
pub fn soak<S: PacketSink + ?Sized>(o: &SoakOpts, sink: &mut S) -> io::Result<Summary> {
    let mut rng = Rng::new(o.seed);
    let mut out = Out {
        sink,
        summary: Summary::default(),
        now_ns: o.start_ns,
    };
    let mut next_flow = 0u64;
    let mut active: Vec<Conv> = Vec::new();
    for _ in 0..o.flows.max(1) {
        active.push(new_conv(next_flow, &mut rng));
        next_flow += 1;
    }
    let weights = SOAK_MIX.map(|(_, w)| w);
    let mut floods = 0;
    while out.summary.counts.packets < o.packets {
        let kind = SOAK_MIX[rng.weighted(&weights)].0;
        match kind {
            SoakKind::Conversation => {
                let i = rng.below(active.len() as u64) as usize;
                step_conv(&mut active[i], &mut out)?;
                if active[i].done() {
                    active[i] = new_conv(next_flow, &mut rng);
                    next_flow += 1;
                }
            }
            SoakKind::SynFlood | SoakKind::AckFlood | SoakKind::UdpFlood => {
                let (side, data) = flood_packet(kind, &mut rng);
                floods += 1;
                out.frame(side, data)?;
            }
            SoakKind::BlindRst => {
                let (side, data) = blind_rst(&active, &mut rng);
                out.frame(side, data)?;
            }
            SoakKind::RelatedError => {
                let (side, data) = related_error(&active, &mut rng);
                out.frame(side, data)?;
            }
            SoakKind::Malformed => {
                let bad = MALFORMED[rng.below(MALFORMED.len() as u64) as usize];
                // A flow index of its own: no conversation shares its tuple.
                let data = malformed(bad, next_flow, &mut rng);
                next_flow += 1;
                out.frame(Side::Inside, data)?;
            }
        }
        out.now_ns += 1 + rng.exp(o.gap_ns as f64) as u64;
    }
    out.summary.flows = next_flow + floods;
    Ok(out.summary)
}

// ---------------------------------------------------------------------------------------
// sample

/// The bundled sample: a DNS lookup, an HTTP exchange closed by the server, two pings, an
/// IPv6 connection aborted by the client, an SSH attempt from outside (refused by policy) and
/// an impossible SYN/FIN (INVALID).
///
/// Its packets strictly alternate inside, outside, inside, ... (21 packets: 11 inside, 10
/// outside). That is what lets `ctfw run` replay it through two `net_pcap` devices in true
/// order: DPDK's pcap driver does not pace by timestamp, but a worker reading one packet per
/// port per round (burst 1) takes them alternately, which here is the capture order.
pub fn sample() -> Vec<Packet> {
    let ms = 1_000_000u64;
    let t0 = DEFAULT_START_NS;
    let mut all: Vec<Packet> = Vec::new();
    let (client, server) = (Ipv4Addr::new(10, 0, 1, 2), Ipv4Addr::new(10, 0, 2, 2));

    // DNS.
    let dns_server = Ipv4Addr::new(10, 0, 2, 53);
    let query = dns_message(0x2f1a, false);
    let answer = dns_message(0x2f1a, true);
    let q = Frame::ipv4(client, dns_server)
        .ip_id(0x0f01)
        .udp(53000, 53)
        .payload(&query);
    let a = Frame::ipv4(dns_server, client)
        .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
        .ip_id(0x7f01)
        .udp(53, 53000)
        .payload(&answer);
    all.push(Packet {
        ts_ns: t0,
        side: Side::Inside,
        data: q.build(),
    });
    all.push(Packet {
        ts_ns: t0 + 2 * ms,
        side: Side::Outside,
        data: a.build(),
    });

    // HTTP: the request rides on the handshake's last ACK, the server closes.
    let get =
        b"GET / HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ctfw-sample\r\nAccept: */*\r\n\r\n";
    let body = "<!doctype html><title>ctfw sample</title><p>Hello through the firewall.</p>\n";
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut http = TcpSim::default_v4().start_at(t0 + 10 * ms);
    http.syn()
        .synack()
        .data_bytes(Dir::C2s, get)
        .data_bytes(Dir::S2c, resp.as_bytes())
        .ack_c2s()
        .close_server_first();
    all.extend(http.take_packets());

    // Ping.
    for seq in 1..=2u16 {
        let t = t0 + 200 * ms + u64::from(seq - 1) * 50 * ms;
        let req = Frame::ipv4(client, server)
            .ip_id(0x1100 + seq)
            .echo_request(0x4242, seq)
            .payload(&[b'p'; 56]);
        let rep = Frame::ipv4(server, client)
            .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
            .ip_id(0x5100 + seq)
            .echo_reply(0x4242, seq)
            .payload(&[b'p'; 56]);
        all.push(Packet {
            ts_ns: t,
            side: Side::Inside,
            data: req.build(),
        });
        all.push(Packet {
            ts_ns: t + 3 * ms,
            side: Side::Outside,
            data: rep.build(),
        });
    }

    // IPv6, aborted by the client.
    let mut v6 = TcpSim::default_v6().start_at(t0 + 500 * ms);
    v6.syn().synack().data_c2s(120).data_s2c(900).rst_c2s();
    all.extend(v6.take_packets());

    // Refused by policy: a new connection from outside.
    let syn_in = Frame::ipv4(Ipv4Addr::new(203, 0, 113, 9), client)
        .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
        .ip_id(0x6601)
        .tcp(51000, 22)
        .flags(TcpFlags::SYN)
        .seq_ack(3_000_000, 0)
        .tcp_option(TcpOption::Mss(1460));
    all.push(Packet {
        ts_ns: t0 + 700 * ms,
        side: Side::Outside,
        data: syn_in.build(),
    });

    // Invalid: SYN and FIN together.
    let synfin = Frame::ipv4(Ipv4Addr::new(10, 0, 1, 4), server)
        .macs([0x02, 0, 0, 0, 0x01, 0x04], macs::ROUTER_INSIDE)
        .ip_id(0x1401)
        .tcp(40500, 80)
        .flags(TcpFlags::SYN | TcpFlags::FIN)
        .seq_ack(4_000_000, 0);
    all.push(Packet {
        ts_ns: t0 + 800 * ms,
        side: Side::Inside,
        data: synfin.build(),
    });

    all.sort_by_key(|p| p.ts_ns);
    all
}

/// A minimal DNS query (or answer with one A record 10.0.2.2) for `example.test`.
fn dns_message(id: u16, answer: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(if answer { &[0x81, 0x80] } else { &[0x01, 0x00] });
    m.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
    m.extend_from_slice(b"\x07example\x04test\x00");
    m.extend_from_slice(&[0, 1, 0, 1]);
    if answer {
        // Name pointer to offset 12, type A, class IN, TTL 300, 4 bytes.
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 10, 0, 2, 2]);
    }
    m
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::read::CaptureReader;
    use crate::write::PcapngWriter;

    /// (src, dst, sport, dport, proto) of an untagged IPv4/IPv6 TCP or UDP frame, and the
    /// TCP (flags, seq, ack, payload length).
    type Parsed = (
        (Vec<u8>, Vec<u8>, u16, u16, u8),
        Option<(u8, u32, u32, u32)>,
    );

    fn parse(b: &[u8]) -> Option<Parsed> {
        let mut at = 12;
        while matches!(b.get(at..at + 2)?, [0x81, 0x00] | [0x88, 0xa8]) {
            at += 4;
        }
        let et = u16::from_be_bytes([b[at], b[at + 1]]);
        let ip = &b[at + 2..];
        let (src, dst, proto, l4) = match et {
            0x0800 => {
                let ihl = usize::from(ip[0] & 0xf) * 4;
                (ip[12..16].to_vec(), ip[16..20].to_vec(), ip[9], &ip[ihl..])
            }
            0x86dd => (ip[8..24].to_vec(), ip[24..40].to_vec(), ip[6], &ip[40..]),
            _ => return None,
        };
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        let tcp = (proto == 6 && l4.len() >= 20).then(|| {
            let doff = usize::from(l4[12] >> 4) * 4;
            (
                l4[13],
                u32::from_be_bytes(l4[4..8].try_into().unwrap()),
                u32::from_be_bytes(l4[8..12].try_into().unwrap()),
                (l4.len() - doff) as u32,
            )
        });
        Some(((src, dst, sport, dport, proto), tcp))
    }

    fn canonical(k: &(Vec<u8>, Vec<u8>, u16, u16, u8)) -> (Vec<u8>, Vec<u8>, u16, u16, u8) {
        let (a, b, sp, dp, p) = k.clone();
        if (a.clone(), sp) <= (b.clone(), dp) {
            (a, b, sp, dp, p)
        } else {
            (b, a, dp, sp, p)
        }
    }

    #[test]
    fn established_small_scale() {
        let o = EstablishedOpts {
            flows: 50,
            packets: 2000,
            v6_share: 0.3,
            ..Default::default()
        };
        let mut pkts = Vec::new();
        let s = established(&o, &mut pkts).unwrap();
        assert_eq!(s.counts.packets, 50 * 3 + 2000);
        assert_eq!(pkts.len(), 2150);
        let mut flows = HashSet::new();
        let mut v6 = 0;
        // Per flow and direction: the next sequence number; every ACK must acknowledge
        // exactly the peer's bytes so far.
        let mut next: HashMap<(Vec<u8>, u16), u32> = HashMap::new();
        for (i, p) in pkts.iter().enumerate() {
            let (k, tcp) = parse(&p.data).unwrap();
            let (flags, seq, ack, len) = tcp.unwrap();
            if k.0.len() == 16 {
                v6 += 1;
            }
            flows.insert(canonical(&k));
            // Ingress side: clients are 10.1/16 or fd00:1::/64.
            let from_client = k.0[0] == 10 || k.0[..4] == [0xfd, 0, 0, 1];
            assert_eq!(p.side == Side::Inside, from_client);
            if i > 0 {
                assert!(p.ts_ns > pkts[i - 1].ts_ns);
            }
            let me = (k.0.clone(), k.2);
            let peer = (k.1.clone(), k.3);
            if flags & 0x02 != 0 {
                next.insert(me, seq.wrapping_add(1));
                continue;
            }
            assert_eq!(next[&me], seq, "packet {i}: sequence continuity");
            assert_eq!(next[&peer], ack, "packet {i}: exact ack");
            next.insert(me, seq.wrapping_add(len));
        }
        assert_eq!(flows.len(), 50);
        assert!(v6 > 0 && v6 < 2150);
    }

    #[test]
    fn established_data_only_starts_from_client() {
        let o = EstablishedOpts {
            flows: 20,
            packets: 500,
            data_only: true,
            ..Default::default()
        };
        let mut pkts = Vec::new();
        established(&o, &mut pkts).unwrap();
        assert_eq!(pkts.len(), 500);
        let mut seen = HashSet::new();
        for p in &pkts {
            let (k, tcp) = parse(&p.data).unwrap();
            let (flags, ..) = tcp.unwrap();
            assert_eq!(flags & 0x07, 0, "no SYN/FIN/RST");
            assert_ne!(flags & 0x10, 0, "ACK set");
            if seen.insert(canonical(&k)) {
                assert_eq!(p.side, Side::Inside);
            }
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let run = |seed| {
            let mut w = PcapngWriter::new(Vec::new()).unwrap();
            mixed(
                &MixedOpts {
                    flows: 30,
                    packets: 3000,
                    seed,
                    ..Default::default()
                },
                &mut w,
            )
            .unwrap();
            w.finish().unwrap()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let est = |seed| {
            let mut v = Vec::new();
            established(
                &EstablishedOpts {
                    seed,
                    ..Default::default()
                },
                &mut v,
            )
            .unwrap();
            v
        };
        assert_eq!(est(1), est(1));
        assert_ne!(est(1), est(2));
    }

    #[test]
    fn mixed_has_the_promised_mix() {
        let mut pkts = Vec::new();
        let s = mixed(
            &MixedOpts {
                flows: 200,
                packets: 20_000,
                ..Default::default()
            },
            &mut pkts,
        )
        .unwrap();
        assert_eq!(pkts.len(), 20_000);
        assert!(s.flows > 200);
        let (mut tcp, mut udp, mut icmp, mut v6, mut vlan, mut fin, mut rst, mut outside) =
            (0, 0, 0, 0, 0, 0, 0, 0);
        for p in &pkts {
            if p.data[12..14] == [0x81, 0x00] || p.data[12..14] == [0x88, 0xa8] {
                vlan += 1;
            }
            if p.side == Side::Outside {
                outside += 1;
            }
            let Some((k, t)) = parse(&p.data) else {
                continue;
            };
            match k.4 {
                6 => tcp += 1,
                17 => udp += 1,
                1 | 58 => icmp += 1,
                _ => {}
            }
            if k.0.len() == 16 {
                v6 += 1;
            }
            if let Some((flags, ..)) = t {
                fin += u32::from(flags & 0x01 != 0);
                rst += u32::from(flags & 0x04 != 0);
            }
        }
        for (what, n) in [
            ("tcp", tcp),
            ("udp", udp),
            ("icmp", icmp),
            ("v6", v6),
            ("vlan", vlan),
            ("fin", fin),
            ("rst", rst),
        ] {
            assert!(n > 20, "{what}: {n}");
        }
        assert!(outside > 5000);
        let mut prev = 0;
        for p in &pkts {
            assert!(p.ts_ns > prev);
            prev = p.ts_ns;
        }
    }

    #[test]
    fn synflood_counts_and_sides() {
        let mut pkts = Vec::new();
        synflood(
            &SynfloodOpts {
                count: 300,
                ..Default::default()
            },
            &mut pkts,
        )
        .unwrap();
        assert_eq!(pkts.len(), 300);
        let sources: HashSet<_> = pkts.iter().map(|p| p.data[26..30].to_vec()).collect();
        assert!(sources.len() > 290);
        assert!(
            pkts.iter()
                .all(|p| p.side == Side::Inside && p.data[47] == 0x02)
        );
        let mut out = Vec::new();
        synflood(
            &SynfloodOpts {
                count: 3,
                from: Side::Outside,
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
        assert!(
            out.iter()
                .all(|p| p.side == Side::Outside && p.data[30..34] == [10, 0, 1, 80])
        );
    }

    #[test]
    fn a_crafted_synflood_shares_one_toeplitz_fold_over_distinct_flows() {
        let mut pkts = Vec::new();
        let s = synflood(
            &SynfloodOpts {
                count: 5000,
                toeplitz_fold: Some(0x1234),
                ..Default::default()
            },
            &mut pkts,
        )
        .unwrap();
        assert_eq!((pkts.len(), s.flows), (5000, 5000));
        let field = |p: &Packet, at: usize| u16::from_be_bytes([p.data[at], p.data[at + 1]]);
        let mut tuples = HashSet::new();
        for p in &pkts {
            let ip = |at: usize| {
                Ipv4Addr::new(p.data[at], p.data[at + 1], p.data[at + 2], p.data[at + 3])
            };
            let (src, dst, sport, dport) = (ip(26), ip(30), field(p, 34), field(p, 36));
            assert_eq!(toeplitz_fold(src, dst, sport, dport), 0x1234);
            assert_ne!(sport, 0);
            tuples.insert((src, sport));
        }
        assert_eq!(tuples.len(), 5000, "every flow distinct");
    }

    #[test]
    fn soak_has_every_part_of_its_mix() {
        let n = 40_000;
        let mut pkts = Vec::new();
        let s = soak(
            &SoakOpts {
                flows: 300,
                packets: n,
                ..Default::default()
            },
            &mut pkts,
        )
        .unwrap();
        // The step that reaches `packets` writes its packet(s) whole.
        assert!((n..n + 4).contains(&(pkts.len() as u64)), "{}", pkts.len());
        assert_eq!(s.counts.packets, pkts.len() as u64);
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut tuples = HashSet::new();
        for p in &pkts {
            let b = &p.data[..];
            let Some(et) = b.get(12..14) else {
                *seen.entry("runt").or_default() += 1;
                continue;
            };
            let (tcp, udp, ip): (bool, bool, &[u8]) = match et {
                [0x08, 0x06] => {
                    *seen.entry("arp").or_default() += 1;
                    continue;
                }
                [0x81, 0x00] | [0x88, 0xa8] => {
                    *seen.entry("vlan").or_default() += 1;
                    continue;
                }
                [0x86, 0xdd] => {
                    *seen.entry("ipv6").or_default() += 1;
                    if b.get(14 + 6) == Some(&44) {
                        *seen.entry("fragment").or_default() += 1;
                    }
                    continue;
                }
                [0x08, 0x00] if b.len() >= 34 && b[14] == 0x45 => {
                    (b[23] == 6, b[23] == 17, &b[14..])
                }
                _ => {
                    *seen.entry("bad ipv4").or_default() += 1;
                    continue;
                }
            };
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                *seen.entry("fragment").or_default() += 1;
                continue;
            }
            let (src, dst, l4) = (&ip[12..16], &ip[16..20], &ip[20..]);
            if let (true, Some(ports)) = (tcp || udp, l4.get(..4)) {
                tuples.insert((src.to_vec(), dst.to_vec(), ports.to_vec()));
            }
            let spoofed = (src[0] == 10 && src[1] >= 128) || src[..2] == [198, 18];
            match (tcp, udp, l4.get(13)) {
                (true, _, Some(&0x02)) if spoofed && dst == [172, 16, 0, 80] => {
                    *seen.entry("syn flood").or_default() += 1;
                }
                (true, _, Some(&0x10)) if spoofed => *seen.entry("ack flood").or_default() += 1,
                (true, _, Some(f)) if f & 0x04 != 0 => *seen.entry("rst").or_default() += 1,
                (_, true, _) if spoofed && dst == [172, 16, 0, 53] => {
                    *seen.entry("udp flood").or_default() += 1;
                }
                _ if ip[9] == 1 && matches!(l4.first(), Some(3 | 11)) => {
                    // An error quoting a packet from the address it is sent to.
                    let kind = if l4.get(8 + 12..8 + 16) == Some(dst) {
                        "icmp error quoting its destination"
                    } else {
                        "icmp error quoting something else"
                    };
                    *seen.entry(kind).or_default() += 1;
                }
                _ => {}
            }
        }
        for what in [
            "runt",
            "arp",
            "vlan",
            "ipv6",
            "fragment",
            "bad ipv4",
            "syn flood",
            "ack flood",
            "udp flood",
            "rst",
            "icmp error quoting its destination",
            "icmp error quoting something else",
        ] {
            assert!(
                seen.get(what).copied().unwrap_or(0) > 20,
                "{what}: {seen:?}"
            );
        }
        // Floods and malformed frames bring tuples of their own: many more flows than the
        // 300 conversations at a time.
        assert!(tuples.len() as u64 > n / 5, "{} tuples", tuples.len());
        assert!(s.flows as usize >= tuples.len() / 2, "{} flows", s.flows);
        let mut prev = 0;
        for p in &pkts {
            assert!(p.ts_ns > prev);
            prev = p.ts_ns;
        }
    }

    #[test]
    fn soak_same_seed_same_bytes() {
        let run = |seed| {
            let mut v = Vec::new();
            soak(
                &SoakOpts {
                    flows: 50,
                    packets: 5000,
                    seed,
                    ..Default::default()
                },
                &mut v,
            )
            .unwrap();
            v
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn sample_reads_back() {
        let pkts = sample();
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        for p in &pkts {
            w.write_packet(p).unwrap();
        }
        let bytes = w.finish().unwrap();
        let recs: Vec<_> = CaptureReader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs.len(), pkts.len());
        assert_eq!(recs.len(), 21);
        // Strict alternation, starting inside: what `ctfw run` relies on (see `sample`).
        for (i, p) in pkts.iter().enumerate() {
            let want = if i % 2 == 0 {
                Side::Inside
            } else {
                Side::Outside
            };
            assert_eq!(p.side, want, "packet {i}");
        }
        for (r, p) in recs.iter().zip(&pkts) {
            assert_eq!(r.data, p.data);
            assert_eq!(r.interface_name.as_deref(), Some(p.side.name()));
        }
    }
}
