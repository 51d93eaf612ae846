//! Random short traces for the differential check against the Linux kernel
//! (`scripts/differential.sh`, see the README's "Checking against the kernel").
//!
//! Each trace holds one to three conversations between the inside (client) and the outside
//! (server) in the address plan of the conformance traces, and is meant to be replayed both
//! through a Linux router (`scripts/kernel_check.sh`) and through `ctfw replay`, packet by
//! packet. A conversation is *meaningful* traffic with random perturbations, not noise:
//!
//! - TCP follows two [`TcpSim`] endpoints (handshake, data and ACKs both ways, loss and SACK,
//!   FIN or RST close, port reuse) and now and then does something a tracker must judge:
//!   retransmissions, segments around and beyond the window edge, ACKs of unsent data, SYNs
//!   with a new ISN on a live tuple, RSTs from either side with exact, inexact and
//!   out-of-window sequence numbers or acknowledging a noted SYN's ISN + 1, SYN/ACKs that do
//!   not match, simultaneous open, window scale / SACK / timestamp options, zero windows,
//!   invalid flag combinations, bad checksums, mid-stream pickup, ICMP errors quoting it.
//! - UDP: request/response, unanswered datagrams, datagrams from outside first, streams that
//!   outlive UDP's 2 s rule, port unreachable answers, checksum and length errors.
//! - ICMP and ICMPv6: echo (also unsolicited replies, wrong ids, from outside), timestamps,
//!   errors quoting tracked flows (RELATED) and untracked ones (INVALID), errors quoting errors.
//!
//! Addresses: clients 10.0.1.2-9 and fd00:1::2-9 (inside), servers 10.0.2.2, 198.51.100.0/24,
//! fd00:2::/64 (outside), intermediate routers 10.0.1.254 / fd00:1::fe (inside) and
//! 192.0.2.1 / fd00:99::1 (outside); MACs as in the conformance traces.
//!
//! Timing: gaps are a few milliseconds, so a trace replays through a kernel quickly; only a UDP
//! stream waits 2.6-3 s, and a trace with such a wait holds that one conversation alone, so
//! that a slow replay cannot move a packet across the 2 s boundary. Timestamps are the
//! intended send times.
//!
//! Invariants: trace `i` of seed `s` depends on `(s, i)` alone (so one trace can be rebuilt
//! without the others), is in timestamp order, and no two conversations of a trace share a
//! 5-tuple except where a conversation deliberately reuses its own.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::frame::{Frame, TcpFlags, TcpOption, icmp, macs};
use crate::rng::Rng;
use crate::tcpsim::{Dir, TcpSim};
use crate::write::{CaptureFile, Counter, PacketSink, Resolution};
use crate::{DEFAULT_START_NS, Packet, Side};

const MS: u64 = 1_000_000;

/// One generated trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// File stem: `r<seed>-<index>-<kinds>`.
    pub name: String,
    /// What the conversations do, in a line.
    pub description: String,
    /// The packets, in timestamp order.
    pub packets: Vec<Packet>,
    /// One note per packet: conversation, direction and what the packet is meant to be.
    pub notes: Vec<String>,
}

/// Trace `index` of the series of `seed`.
pub fn trace(seed: u64, index: u64) -> Trace {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93).rotate_left(23));
    let flows = 1 + rng.weighted(&[60, 28, 12]);
    let start = DEFAULT_START_NS;
    let mut used_ports: Vec<u16> = Vec::new();
    let mut all: Vec<(Packet, String, usize, usize)> = Vec::new();
    let mut kinds = Vec::new();
    let mut stories = Vec::new();
    for f in 0..flows {
        let mut frng = rng.fork(f as u64);
        let v6 = frng.chance(0.3);
        let mut cport;
        loop {
            cport = 32768 + frng.below(28_000) as u16;
            if !used_ports.contains(&cport) {
                break;
            }
        }
        used_ports.push(cport);
        let ends = Ends::pick(&mut frng, v6, cport);
        let t0 = start + if f == 0 { 0 } else { frng.range(0, 20) * MS };
        let kind = frng.weighted(&[60, 20, 20]);
        let mut conv = Conv::new(&mut frng, ends, t0);
        let label = match kind {
            0 => {
                conv.tcp();
                "tcp"
            }
            1 => {
                conv.udp(flows == 1);
                "udp"
            }
            _ => {
                conv.icmp();
                "icmp"
            }
        };
        kinds.push(format!("{label}{}", if v6 { "6" } else { "" }));
        stories.push(format!(
            "f{f} {label}{} [{}]",
            if v6 { "6" } else { "" },
            conv.story.join(", ")
        ));
        for (k, (p, note)) in conv.out.into_iter().enumerate() {
            all.push((p, format!("f{f} {note}"), f, k));
        }
    }
    // Stable merge: by time, then conversation, then emission order.
    all.sort_by_key(|(p, _, f, k)| (p.ts_ns, *f, *k));
    let (packets, notes) = all.into_iter().map(|(p, n, _, _)| (p, n)).unzip();
    Trace {
        name: format!("r{seed}-{index:05}-{}", kinds.join("+")),
        description: stories.join("; "),
        packets,
        notes,
    }
}

/// The two ends of a conversation.
#[derive(Debug, Clone, Copy)]
struct Ends {
    client: SocketAddr,
    server: SocketAddr,
}

impl Ends {
    fn pick(rng: &mut Rng, v6: bool, cport: u16) -> Ends {
        const PORTS: [u16; 8] = [80, 443, 22, 25, 8080, 53, 5060, 4500];
        let sport = PORTS[rng.below(PORTS.len() as u64) as usize];
        let host = 2 + rng.below(8) as u8;
        let (c, s): (IpAddr, IpAddr) = if v6 {
            let server = if rng.chance(0.7) {
                2
            } else {
                3 + rng.below(200) as u16
            };
            (
                Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, u16::from(host)).into(),
                Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, server).into(),
            )
        } else {
            let server = if rng.chance(0.7) {
                Ipv4Addr::new(10, 0, 2, 2)
            } else {
                Ipv4Addr::new(198, 51, 100, 1 + rng.below(200) as u8)
            };
            (Ipv4Addr::new(10, 0, 1, host).into(), server.into())
        };
        Ends {
            client: SocketAddr::new(c, cport),
            server: SocketAddr::new(s, sport),
        }
    }

    fn v6(&self) -> bool {
        self.client.is_ipv6()
    }

    /// (source, destination) of a packet in `dir`.
    fn addrs(&self, dir: Dir) -> (SocketAddr, SocketAddr) {
        match dir {
            Dir::C2s => (self.client, self.server),
            Dir::S2c => (self.server, self.client),
        }
    }

    /// An intermediate router on the side a packet in `dir` arrives from.
    fn router(&self, dir: Dir) -> IpAddr {
        match (self.v6(), dir) {
            (false, Dir::C2s) => Ipv4Addr::new(10, 0, 1, 254).into(),
            (false, Dir::S2c) => Ipv4Addr::new(192, 0, 2, 1).into(),
            (true, Dir::C2s) => Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0xfe).into(),
            (true, Dir::S2c) => Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1).into(),
        }
    }
}

/// A frame between `src` and `dst` arriving on the side of `dir`, with that side's MACs.
fn ip_frame(src: IpAddr, dst: IpAddr, dir: Dir) -> Frame {
    let f = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Frame::ipv4(a, b),
        (IpAddr::V6(a), IpAddr::V6(b)) => Frame::ipv6(a, b),
        (a, b) => Frame::ipv6(mapped(a), mapped(b)),
    };
    match dir {
        Dir::C2s => f.macs(macs::CLIENT, macs::ROUTER_INSIDE),
        Dir::S2c => f.macs(macs::SERVER, macs::ROUTER_OUTSIDE),
    }
}

fn mapped(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::C2s => "c2s",
        Dir::S2c => "s2c",
    }
}

fn di(d: Dir) -> usize {
    match d {
        Dir::C2s => 0,
        Dir::S2c => 1,
    }
}

/// Where a conversation is in its life, as its endpoints see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Both ends synchronised, no FIN yet.
    Open,
    /// At least one FIN sent.
    Closing,
    /// Both FINs sent and acknowledged.
    Closed,
    /// Aborted by an RST, or never answered.
    Dead,
}

/// One conversation being generated: its packets with notes and the story of its choices.
struct Conv<'r> {
    rng: &'r mut Rng,
    ends: Ends,
    now: u64,
    out: Vec<(Packet, String)>,
    story: Vec<String>,
    ip_id: [u16; 2],
}

impl<'r> Conv<'r> {
    fn new(rng: &'r mut Rng, ends: Ends, t0: u64) -> Self {
        let ip_id = [rng.next_u32() as u16, rng.next_u32() as u16];
        Conv {
            rng,
            ends,
            now: t0,
            out: Vec::new(),
            story: Vec::new(),
            ip_id,
        }
    }

    /// A small random gap: 0.2 to 4 ms.
    fn gap(&mut self) -> u64 {
        self.rng.range(200_000, 4 * MS)
    }

    fn say(&mut self, what: impl Into<String>) {
        self.story.push(what.into());
    }

    /// Emits a hand-built frame in `dir` after a small gap.
    fn put(&mut self, dir: Dir, mut f: Frame, note: impl Into<String>) {
        if let Some(ip) = f.ipv4_mut() {
            ip.id = self.ip_id[di(dir)];
        }
        self.ip_id[di(dir)] = self.ip_id[di(dir)].wrapping_add(1);
        self.now += self.gap();
        self.out.push((
            Packet {
                ts_ns: self.now,
                side: dir.side(),
                data: f.build(),
            },
            format!("{} {}", dir_name(dir), note.into()),
        ));
    }

    /// An ICMP or ICMPv6 error about `quoted` (a packet sent in `quoted_dir`), travelling
    /// back towards its sender, from the peer itself or from a router on the way.
    fn icmp_error(&mut self, quoted: &Frame, quoted_dir: Dir, what: &str) {
        let back = quoted_dir.reverse();
        let (qsrc, qdst) = self.ends.addrs(quoted_dir);
        let from_router = self.rng.chance(0.4);
        let src = if from_router {
            self.ends.router(back)
        } else {
            qdst.ip()
        };
        let v6 = self.ends.v6();
        let (ty, code, rest, label) = if v6 {
            match self.rng.weighted(&[30, 15, 20, 20, 10]) {
                0 => (
                    icmp::V6_DEST_UNREACH,
                    icmp::V6_PORT_UNREACH,
                    0,
                    "port unreachable",
                ),
                1 => (icmp::V6_DEST_UNREACH, 0, 0, "no route"),
                2 => (icmp::V6_PACKET_TOO_BIG, 0, 1280, "packet too big"),
                3 => (icmp::V6_TIME_EXCEEDED, 0, 0, "time exceeded"),
                _ => (4, 0, 40, "parameter problem"),
            }
        } else {
            match self.rng.weighted(&[30, 15, 20, 20, 8, 7]) {
                0 => (
                    icmp::DEST_UNREACH,
                    icmp::PORT_UNREACH,
                    0,
                    "port unreachable",
                ),
                1 => (icmp::DEST_UNREACH, 1, 0, "host unreachable"),
                2 => (
                    icmp::DEST_UNREACH,
                    icmp::FRAG_NEEDED,
                    1400,
                    "fragmentation needed",
                ),
                3 => (icmp::TIME_EXCEEDED, 0, 0, "time exceeded"),
                4 => (12, 0, 20 << 24, "parameter problem"),
                _ => (5, 1, 0, "redirect"),
            }
        };
        let mut e = ip_frame(src, qsrc.ip(), back).icmp_error(ty, code, quoted);
        if let Some(i) = e.icmp_mut() {
            i.rest = u32::to_be_bytes(rest);
            if ty == 5 {
                // A redirect names the better gateway.
                if let IpAddr::V4(gw) = self.ends.router(back) {
                    i.rest = gw.octets();
                }
            }
        }
        let short = self.rng.chance(0.3);
        if short {
            // RFC 792 quoting: the IP header and the first 8 bytes of the transport header.
            let ip_hdr = if v6 { 40 } else { 20 };
            e.payload.truncate(ip_hdr + 8);
        }
        let bad = self.rng.chance(0.05);
        if bad {
            e = e.corrupt_l4_checksum();
        }
        let note = format!(
            "ICMP{} {label} from {} quoting {what}{}{}",
            if v6 { "v6" } else { "" },
            if from_router { "a router" } else { "the peer" },
            if short { " (8 bytes)" } else { "" },
            if bad { " BAD CHECKSUM" } else { "" }
        );
        self.put(back, e, note);
    }

    // ---------------------------------------------------------------------------------
    // UDP

    fn udp_frame(&self, dir: Dir, len: usize) -> Frame {
        let (src, dst) = self.ends.addrs(dir);
        ip_frame(src.ip(), dst.ip(), dir)
            .udp(src.port(), dst.port())
            .payload(&vec![if dir == Dir::C2s { b'u' } else { b'U' }; len])
    }

    fn dgram(&mut self, dir: Dir, note: &str) -> Frame {
        let len = self.rng.range(1, 600) as usize;
        let mut f = self.udp_frame(dir, len);
        let r = self.rng.below(100);
        let note = match r {
            0..=2 => {
                f = f.corrupt_l4_checksum();
                format!("{note} BAD CHECKSUM")
            }
            3..=4 => {
                if let Some(u) = f.udp_mut() {
                    u.checksum = crate::frame::ChecksumMode::Value(0);
                }
                format!("{note} (no checksum)")
            }
            5 => {
                if let Some(u) = f.udp_mut() {
                    u.length = Some(len as u16 + 8 + 1 + self.rng.below(20) as u16);
                }
                format!("{note} UDP LENGTH BEYOND PACKET")
            }
            _ => note.to_string(),
        };
        self.put(dir, f.clone(), note);
        f
    }

    fn udp(&mut self, long_gap_allowed: bool) {
        let scenario =
            self.rng
                .weighted(&[35, 10, 8, 4, if long_gap_allowed { 12 } else { 0 }, 14, 6]);
        match scenario {
            0 => {
                let n = self.rng.range(1, 4);
                self.say(format!("request/response x{n}"));
                for i in 0..n {
                    self.dgram(Dir::C2s, "request");
                    if i + 1 < n || self.rng.chance(0.9) {
                        self.dgram(Dir::S2c, "response");
                    }
                }
            }
            1 => {
                let n = self.rng.range(1, 3);
                self.say(format!("unanswered x{n}"));
                for _ in 0..n {
                    self.dgram(Dir::C2s, "request (no answer)");
                }
            }
            2 => {
                self.say("outside first");
                self.dgram(Dir::S2c, "datagram from outside (no entry)");
                self.dgram(Dir::C2s, "request");
                self.dgram(Dir::S2c, "response");
            }
            3 => {
                self.say("outside only");
                for _ in 0..self.rng.range(1, 3) {
                    self.dgram(Dir::S2c, "datagram from outside");
                }
            }
            4 => {
                self.say("stream over 2 s");
                self.dgram(Dir::C2s, "first datagram");
                self.dgram(Dir::S2c, "answer");
                for _ in 0..self.rng.below(3) {
                    let d = if self.rng.chance(0.5) {
                        Dir::C2s
                    } else {
                        Dir::S2c
                    };
                    self.dgram(d, "early datagram");
                }
                self.now += self.rng.range(2_600, 3_000) * MS;
                for _ in 0..self.rng.range(1, 4) {
                    let d = if self.rng.chance(0.5) {
                        Dir::C2s
                    } else {
                        Dir::S2c
                    };
                    self.dgram(d, "datagram after 2 s");
                }
            }
            5 => {
                self.say("port unreachable");
                let q = self.dgram(Dir::C2s, "request");
                self.icmp_error(&q, Dir::C2s, "the request (tracked)");
                if self.rng.chance(0.4) {
                    self.dgram(Dir::C2s, "retry");
                }
                if self.rng.chance(0.3) {
                    self.dgram(Dir::S2c, "late answer");
                }
            }
            _ => {
                self.say("errors both ways");
                let q = self.dgram(Dir::C2s, "request");
                let a = self.dgram(Dir::S2c, "response");
                self.icmp_error(&a, Dir::S2c, "the response (tracked)");
                if self.rng.chance(0.5) {
                    self.icmp_error(&q, Dir::C2s, "the request (tracked)");
                }
            }
        }
        if self.rng.chance(0.15) {
            // An error about a datagram on another port: nothing tracks it.
            self.say("untracked error");
            let mut q = self.udp_frame(Dir::C2s, 20);
            if let Some(u) = q.udp_mut() {
                u.dport = u.dport.wrapping_add(1000);
            }
            self.icmp_error(&q, Dir::C2s, "an untracked datagram");
        }
    }

    // ---------------------------------------------------------------------------------
    // ICMP

    fn echo(&mut self, dir: Dir, request: bool, id: u16, seq: u16, note: &str) -> Frame {
        let (src, dst) = self.ends.addrs(dir);
        let base = ip_frame(src.ip(), dst.ip(), dir);
        let mut f = if request {
            base.echo_request(id, seq)
        } else {
            base.echo_reply(id, seq)
        }
        .payload(&[b'p'; 56]);
        let note = if self.rng.chance(0.03) {
            f = f.corrupt_l4_checksum();
            format!("{note} id={id} seq={seq} BAD CHECKSUM")
        } else {
            format!("{note} id={id} seq={seq}")
        };
        self.put(dir, f.clone(), note);
        f
    }

    fn icmp(&mut self) {
        let id = self.rng.next_u32() as u16;
        let v6 = self.ends.v6();
        let scenario = self
            .rng
            .weighted(&[35, 6, 6, 4, 6, if v6 { 0 } else { 5 }, 10, 12, 4]);
        match scenario {
            0 => {
                let n = self.rng.range(1, 3) as u16;
                self.say(format!("ping x{n}"));
                for s in 1..=n {
                    self.echo(Dir::C2s, true, id, s, "echo request");
                    if self.rng.chance(0.85) {
                        self.echo(Dir::S2c, false, id, s, "echo reply");
                    }
                }
            }
            1 => {
                self.say("unsolicited reply");
                self.echo(Dir::S2c, false, id, 1, "echo reply without request");
            }
            2 => {
                self.say("ping from outside");
                self.echo(Dir::S2c, true, id, 1, "echo request from outside");
                if self.rng.chance(0.5) {
                    self.echo(Dir::C2s, false, id, 1, "echo reply from inside");
                }
            }
            3 => {
                self.say("reply from inside");
                self.echo(Dir::C2s, false, id, 1, "echo reply without request");
            }
            4 => {
                self.say("wrong id");
                self.echo(Dir::C2s, true, id, 1, "echo request");
                self.echo(
                    Dir::S2c,
                    false,
                    id.wrapping_add(1),
                    1,
                    "echo reply, other id",
                );
                if self.rng.chance(0.5) {
                    self.echo(Dir::S2c, false, id, 1, "echo reply");
                }
            }
            5 => {
                self.say("timestamp");
                for (dir, ty, note) in [
                    (Dir::C2s, 13u8, "timestamp request"),
                    (Dir::S2c, 14u8, "timestamp reply"),
                ] {
                    let (src, dst) = self.ends.addrs(dir);
                    let mut f = ip_frame(src.ip(), dst.ip(), dir)
                        .echo_request(id, 1)
                        .payload(&[0; 12]);
                    if let Some(i) = f.icmp_mut() {
                        i.ty = ty;
                    }
                    self.put(dir, f, format!("{note} id={id}"));
                }
            }
            6 => {
                self.say("error about a ping");
                let q = self.echo(Dir::C2s, true, id, 1, "echo request");
                self.icmp_error(&q, Dir::C2s, "the echo request (tracked)");
                if self.rng.chance(0.3) {
                    self.echo(Dir::S2c, false, id, 1, "echo reply");
                }
            }
            7 => {
                // Errors about flows nothing has seen.
                self.say("unsolicited error");
                let (c, s) = (self.ends.client, self.ends.server);
                let dir = if self.rng.chance(0.75) {
                    Dir::C2s
                } else {
                    Dir::S2c
                };
                let (src, dst) = if dir == Dir::C2s { (c, s) } else { (s, c) };
                let base = ip_frame(src.ip(), dst.ip(), dir);
                let (q, what) = match self.rng.below(3) {
                    0 => (
                        base.udp(src.port(), dst.port()).payload(&[b'q'; 20]),
                        "an untracked datagram",
                    ),
                    1 => (
                        base.tcp(src.port(), dst.port())
                            .flags(TcpFlags::SYN)
                            .seq_ack(self.rng.next_u32(), 0),
                        "an untracked SYN",
                    ),
                    _ => (
                        base.echo_request(id, 9).payload(&[b'p'; 56]),
                        "an untracked ping",
                    ),
                };
                self.icmp_error(&q, dir, what);
            }
            _ => {
                self.say("error about an error");
                let (c, s) = (self.ends.client, self.ends.server);
                let inner = ip_frame(c.ip(), s.ip(), Dir::C2s)
                    .udp(c.port(), s.port())
                    .payload(&[b'q'; 20]);
                let (ty, code) = if v6 {
                    (icmp::V6_DEST_UNREACH, icmp::V6_PORT_UNREACH)
                } else {
                    (icmp::DEST_UNREACH, icmp::PORT_UNREACH)
                };
                let err = ip_frame(s.ip(), c.ip(), Dir::S2c).icmp_error(ty, code, &inner);
                self.icmp_error(&err, Dir::S2c, "an ICMP error");
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // TCP

    fn tcp(&mut self) {
        let moves = self.rng.range(3, 30) as u32;
        let mut t = TcpConv::new(self);
        t.run(moves);
    }
}

/// A TCP conversation: the simulator plus what the generator remembers about it.
struct TcpConv<'c, 'r> {
    c: &'c mut Conv<'r>,
    sim: TcpSim,
    phase: Phase,
    /// Data segments sent per direction: (seq, len).
    sent: [Vec<(u32, u32)>; 2],
    /// Whether a segment in this direction was lost and awaits retransmission.
    lost: [bool; 2],
    /// The ISN of the last SYN (or SYN/ACK) seen on the wire, per direction.
    syn_isn: [Option<u32>; 2],
    /// Whether each side has sent a FIN on the current connection.
    fin: [bool; 2],
    /// Times the tuple was reused for a new connection.
    reuses: u32,
    rtt: u64,
    /// How often perturbations happen, in tenths of the base weights.
    spice: u32,
}

impl<'c, 'r> TcpConv<'c, 'r> {
    fn new(c: &'c mut Conv<'r>) -> Self {
        let rtt = c.rng.range(1, 8) * MS;
        let spice = [2, 10, 20][c.rng.weighted(&[30, 50, 20])];
        let isn = (c.rng.next_u32(), c.rng.next_u32());
        let sim = fresh_sim(c.rng, c.ends, isn, c.now, rtt);
        TcpConv {
            c,
            sim,
            phase: Phase::Open,
            sent: [Vec::new(), Vec::new()],
            lost: [false; 2],
            syn_isn: [None; 2],
            fin: [false; 2],
            reuses: 0,
            rtt,
            spice,
        }
    }

    fn rng(&mut self) -> &mut Rng {
        self.c.rng
    }

    fn chance(&mut self, p: f64) -> bool {
        self.c.rng.chance(p)
    }

    /// Moves the simulator's clock on by a small gap and takes what it emitted, with a note.
    fn flush(&mut self, what: &str) {
        for p in self.sim.take_packets() {
            let d = if p.side == Side::Inside {
                Dir::C2s
            } else {
                Dir::S2c
            };
            self.c.now = self.c.now.max(p.ts_ns);
            self.c.out.push((p, format!("{} {what}", dir_name(d))));
        }
    }

    /// Sets the simulator's clock to after the last packet plus a small random gap.
    fn tick(&mut self) {
        let g = self.c.rng.range(0, 2 * MS);
        let t = self.c.now + g + self.rtt / 2;
        self.sim.at(t);
    }

    /// Emits a crafted frame through the simulator (no state change), with a note.
    fn push(&mut self, dir: Dir, f: &Frame, what: &str) {
        self.tick();
        self.sim.push(dir, f);
        self.flush(what);
    }

    fn with_seq_ack(mut f: Frame, seq: Option<u32>, ack: Option<u32>) -> Frame {
        if let Some(t) = f.tcp_mut() {
            if let Some(s) = seq {
                t.seq = s;
            }
            if let Some(a) = ack {
                t.ack = a;
            }
        }
        f
    }

    /// The window in bytes the receiver of `dir` advertises (scaled as negotiated).
    fn rcv_window(&self, dir: Dir) -> u32 {
        let e = self.sim.endpoint(dir.reverse());
        let (ws, _, _) = self.sim.negotiated();
        if ws {
            let s = u32::from(e.wscale.unwrap_or(0).min(14));
            (e.window >> s).min(0xffff) << s
        } else {
            e.window.min(0xffff)
        }
    }

    /// The last acknowledgment the receiver of `dir` sent.
    fn last_ack(&self, dir: Dir) -> u32 {
        self.sim
            .next_ack(dir.reverse())
            .wrapping_sub(self.sim.ack_owed(dir))
    }

    fn run(&mut self, mut budget: u32) {
        self.open();
        while budget > 0 {
            budget -= 1;
            match self.phase {
                Phase::Open | Phase::Closing => self.step_open(),
                Phase::Closed | Phase::Dead => {
                    if !self.after_end() {
                        break;
                    }
                }
            }
        }
    }

    // ----- opening -----

    fn open(&mut self) {
        match self.rng().weighted(&[55, 10, 15, 7, 8, 5]) {
            0 => self.handshake(),
            1 => self.simultaneous_open(),
            2 => self.pickup(),
            3 => {
                self.c.say("SYN from outside first");
                let f = self.sim.craft(Dir::S2c, TcpFlags::SYN, 0);
                self.syn_isn[1] = Some(self.sim.endpoint(Dir::S2c).isn);
                self.push(Dir::S2c, &f, "SYN from the server side");
                if self.chance(0.5) {
                    let ci = self.sim.endpoint(Dir::C2s).isn;
                    let si = self.sim.endpoint(Dir::S2c).isn;
                    let f = Self::with_seq_ack(
                        self.sim.craft(Dir::C2s, TcpFlags::SYN | TcpFlags::ACK, 0),
                        Some(ci),
                        Some(si.wrapping_add(1)),
                    );
                    self.push(Dir::C2s, &f, "SYN/ACK from the inside answering it");
                    if self.chance(0.5) {
                        let f = Self::with_seq_ack(
                            self.sim.craft(Dir::S2c, TcpFlags::ACK, 0),
                            Some(si.wrapping_add(1)),
                            Some(ci.wrapping_add(1)),
                        );
                        self.push(Dir::S2c, &f, "ACK from outside completing it");
                    }
                    self.phase = Phase::Dead;
                } else {
                    self.handshake();
                }
            }
            4 => {
                self.c.say("SYN/ACK without SYN");
                let d = if self.chance(0.5) { Dir::S2c } else { Dir::C2s };
                let f = Self::with_seq_ack(
                    self.sim.craft(d, TcpFlags::SYN | TcpFlags::ACK, 0),
                    None,
                    Some(self.c.rng.next_u32()),
                );
                self.push(d, &f, "SYN/ACK without a SYN");
                self.handshake();
            }
            _ => {
                self.c.say("invalid first");
                self.bad_flags(Dir::C2s);
                self.handshake();
            }
        }
    }

    fn handshake(&mut self) {
        self.c.say("handshake");
        self.syn_isn[0] = Some(self.sim.endpoint(Dir::C2s).isn);
        self.tick();
        self.sim.syn();
        self.flush("SYN");
        for _ in 0..self.rng().weighted(&[88, 9, 3]) {
            self.tick();
            self.sim.syn();
            self.flush("SYN retransmission");
        }
        match self.rng().weighted(&[84, 5, 4, 4, 3]) {
            0 => {}
            1 => {
                self.c.say("closed port");
                let f = Self::with_seq_ack(
                    self.sim
                        .craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0)
                        .window(0),
                    Some(0),
                    Some(self.sim.endpoint(Dir::C2s).isn.wrapping_add(1)),
                );
                self.push(Dir::S2c, &f, "RST/ACK from a closed port");
                self.phase = Phase::Dead;
                return;
            }
            2 => {
                self.c.say("no answer");
                self.phase = Phase::Dead;
                return;
            }
            3 => {
                self.c.say("second SYN with another ISN");
                let isn = self.c.rng.next_u32();
                self.syn_isn[0] = Some(isn);
                if self.chance(0.5) {
                    // The server will answer the new SYN: carry on with the new ISN.
                    let si = self.sim.endpoint(Dir::S2c).isn;
                    self.restart_sim((isn, si));
                    self.tick();
                    self.sim.syn();
                    self.flush("SYN with another ISN in SYN_SENT (answered)");
                } else {
                    let f = Self::with_seq_ack(
                        self.sim.craft(Dir::C2s, TcpFlags::SYN, 0),
                        Some(isn),
                        None,
                    );
                    self.push(Dir::C2s, &f, "SYN with another ISN in SYN_SENT");
                }
            }
            _ => {
                self.c.say("mismatched SYN/ACK first");
                let ci = self.sim.endpoint(Dir::C2s).isn;
                let off = match self.rng().below(4) {
                    0 => 1,
                    1 => 2 + self.c.rng.below(1000) as u32,
                    2 => 0u32.wrapping_sub(1 + self.c.rng.below(100_000) as u32),
                    _ => self.c.rng.next_u32(),
                };
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0),
                    Some(self.c.rng.next_u32()),
                    Some(ci.wrapping_add(1).wrapping_add(off)),
                );
                self.push(Dir::S2c, &f, "SYN/ACK acknowledging the wrong number");
            }
        }
        self.syn_isn[1] = Some(self.sim.endpoint(Dir::S2c).isn);
        self.tick();
        self.sim.synack();
        self.flush("SYN/ACK");
        if self.chance(0.06) {
            self.tick();
            let f = self.sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0);
            self.push(Dir::S2c, &f, "SYN/ACK retransmission");
        }
        if self.chance(0.06) {
            self.c.say("wrong final ACK");
            let sa = self.sim.endpoint(Dir::S2c).isn.wrapping_add(1);
            let off = match self.rng().below(3) {
                0 => 1 + self.c.rng.below(1000) as u32,
                1 => 0u32.wrapping_sub(1 + self.c.rng.below(1000) as u32),
                _ => self.c.rng.next_u32(),
            };
            let f = Self::with_seq_ack(
                self.sim.craft(Dir::C2s, TcpFlags::ACK, 0),
                None,
                Some(sa.wrapping_add(off)),
            );
            self.push(Dir::C2s, &f, "handshake ACK acknowledging the wrong number");
        }
        if self.chance(0.04) {
            self.c.say("server data before the final ACK");
            self.data(Dir::S2c, "server data before the handshake completes");
        }
        if self.chance(0.12) {
            self.data(Dir::C2s, "data on the handshake-completing ACK");
        } else {
            self.tick();
            self.sim.ack();
            self.flush("ACK (handshake complete)");
        }
        self.phase = Phase::Open;
    }

    fn simultaneous_open(&mut self) {
        self.c.say("simultaneous open");
        let ci = self.sim.endpoint(Dir::C2s).isn;
        let si = self.sim.endpoint(Dir::S2c).isn;
        self.syn_isn = [Some(ci), Some(si)];
        let syn_c = self.sim.craft(Dir::C2s, TcpFlags::SYN, 0);
        self.push(Dir::C2s, &syn_c, "SYN");
        let syn_s = self.sim.craft(Dir::S2c, TcpFlags::SYN, 0);
        self.push(
            Dir::S2c,
            &syn_s,
            "SYN from the server too (simultaneous open)",
        );
        let sa = |sim: &TcpSim, d: Dir, seq: u32, ack: u32| {
            Self::with_seq_ack(
                sim.craft(d, TcpFlags::SYN | TcpFlags::ACK, 0),
                Some(seq),
                Some(ack),
            )
        };
        let first = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
        for d in [first, first.reverse()] {
            let (seq, ack) = if d == Dir::C2s { (ci, si) } else { (si, ci) };
            let f = sa(&self.sim, d, seq, ack.wrapping_add(1));
            self.push(d, &f, "SYN/ACK (simultaneous open)");
            if self.chance(0.15) {
                break;
            }
        }
        let now = self.sim.now();
        self.sim = self.sim.clone().established().start_at(now);
        self.phase = Phase::Open;
        if self.chance(0.7) {
            self.tick();
            self.sim.ack_dir(first);
            self.flush("ACK");
        }
    }

    fn pickup(&mut self) {
        self.c.say("mid-stream pickup");
        let now = self.sim.now();
        self.sim = self.sim.clone().established().start_at(now);
        self.phase = Phase::Open;
        match self.rng().weighted(&[40, 25, 15, 10, 4, 3, 3]) {
            0 => self.data(Dir::C2s, "client data (first packet seen)"),
            1 => {
                self.tick();
                self.sim.ack_c2s();
                self.flush("client ACK (first packet seen)");
            }
            2 => self.data(Dir::S2c, "server data (first packet seen)"),
            3 => {
                self.tick();
                self.sim.ack_s2c();
                self.flush("server ACK (first packet seen)");
            }
            4 => {
                self.tick();
                self.sim.fin_c2s();
                self.flush("client FIN (first packet seen)");
                self.fin[0] = true;
                self.phase = Phase::Closing;
            }
            5 => self.rst(Dir::C2s),
            _ => self.rst(Dir::S2c),
        }
    }

    /// Replaces the simulator by a new connection on the same tuple with these ISNs.
    fn restart_sim(&mut self, isn: (u32, u32)) {
        let now = self.c.now;
        self.sim = fresh_sim(self.c.rng, self.c.ends, isn, now, self.rtt);
        self.sent = [Vec::new(), Vec::new()];
        self.lost = [false; 2];
        self.fin = [false; 2];
    }

    // ----- established -----

    fn data(&mut self, dir: Dir, what: &str) {
        let mut len = *[1u32, 100, 536, 1000, 1448, 1460]
            .get(self.c.rng.below(6) as usize)
            .unwrap_or(&100);
        if self.c.rng.chance(0.5) {
            len = self.c.rng.range(1, 1460) as u32;
        }
        if !self.sim.can_send(dir, len) && self.c.rng.chance(0.9) {
            // Stay within the receiver's window, as a sender would.
            let room = self.rcv_window(dir).saturating_sub(self.sim.in_flight(dir));
            if room == 0 {
                self.tick();
                self.sim.ack_dir(dir.reverse());
                self.flush("ACK (window full)");
                return;
            }
            len = len.min(room);
        }
        let mut what = what.to_string();
        if !self.sim.can_send(dir, len) {
            what.push_str(" (beyond the receiver's window)");
        }
        if self.fin[di(dir)] {
            what.push_str(" (after its own FIN)");
        }
        let seq = self.sim.next_seq(dir);
        self.sent[di(dir)].push((seq, len));
        self.tick();
        self.sim.data(dir, len);
        self.flush(&what);
    }

    fn step_open(&mut self) {
        let owed = [
            self.sim.ack_owed(Dir::C2s) > 0,
            self.sim.ack_owed(Dir::S2c) > 0,
        ];
        let w = |b: bool, x: u32| if b { x } else { 0 };
        // Ordinary traffic has fixed weights; perturbations are scaled by the conversation's
        // spice (tenths), so some conversations are nearly clean and some are rough.
        let p = |x: u32| x * self.spice / 10;
        let closing = self.phase == Phase::Closing;
        let weights = [
            if self.fin[0] { p(2) } else { 30 }, // 0 client data
            if self.fin[1] { p(2) } else { 30 }, // 1 server data
            w(owed[1], 24) + 3,                  // 2 client ACK
            w(owed[0], 24) + 3,                  // 3 server ACK
            5,                                   // 4 data lost after the firewall
            w(self.lost[0] || self.lost[1], 25), // 5 retransmit the lost segment
            p(3),                                // 6 old retransmission
            p(4),                                // 7 data around or beyond the window
            p(3),                                // 8 ACK of unsent data, very old ACK
            p(1),                                // 9 bogus SACK block
            p(2),                                // 10 zero window
            p(5),                                // 11 SYN with a new ISN on this tuple
            p(1),                                // 12 the old SYN again
            p(2),                                // 13 mismatched SYN/ACK
            p(5),                                // 14 RST
            p(2),                                // 15 invalid flags
            p(1),                                // 16 bad checksum
            p(2),                                // 17 ICMP error quoting this flow
            if closing { 25 } else { 8 },        // 18 FIN
            1,                                   // 19 keep-alive
            p(1),                                // 20 truncated header, bad data offset
        ];
        let dir = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
        match self.rng().weighted(&weights) {
            0 => self.data(Dir::C2s, "client data"),
            1 => self.data(Dir::S2c, "server data"),
            2 => self.ack(Dir::C2s),
            3 => self.ack(Dir::S2c),
            4 => {
                self.sim.lose_next(dir);
                self.lost[di(dir)] = true;
                self.data(dir, "data (lost after the firewall)");
            }
            5 => {
                let d = if self.lost[0] { Dir::C2s } else { Dir::S2c };
                self.lost[di(d)] = false;
                self.tick();
                self.sim.retransmit(d);
                self.flush("retransmission of the lost segment");
            }
            6 => self.old_retransmission(dir),
            7 => self.window_edge(dir),
            8 => self.bad_ack(dir),
            9 => self.bogus_sack(dir),
            10 => self.zero_window(dir),
            11 => self.new_isn_syn(),
            12 => {
                let f = self.sim.craft(Dir::C2s, TcpFlags::SYN, 0);
                let f = Self::with_seq_ack(f, self.syn_isn[0], None);
                self.push(Dir::C2s, &f, "old SYN again (retransmission)");
            }
            13 => {
                self.c.say("mismatched SYN/ACK");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0),
                    Some(self.c.rng.next_u32()),
                    Some(self.c.rng.next_u32()),
                );
                self.push(Dir::S2c, &f, "SYN/ACK that matches nothing");
            }
            14 => self.rst(dir),
            15 => self.bad_flags(dir),
            16 => {
                let f = self
                    .sim
                    .craft(dir, TcpFlags::PSH | TcpFlags::ACK, 100)
                    .corrupt_l4_checksum();
                self.push(dir, &f, "data with a BAD CHECKSUM");
            }
            17 => {
                let q = self.sim.craft(dir, TcpFlags::PSH | TcpFlags::ACK, 100);
                self.c.icmp_error(&q, dir, "a segment of this connection");
            }
            18 => self.fin(),
            19 => {
                let f = self.sim.craft(dir, TcpFlags::ACK, 0);
                let seq = self.sim.next_seq(dir).wrapping_sub(1);
                let f = Self::with_seq_ack(f, Some(seq), None);
                self.push(dir, &f, "keep-alive (seq - 1)");
            }
            _ => {
                let mut f = self.sim.craft(dir, TcpFlags::ACK, 0);
                let what = if self.chance(0.5) {
                    if let Some(t) = f.tcp_mut() {
                        t.data_offset = Some(if self.c.rng.chance(0.5) { 4 } else { 15 });
                    }
                    "segment with a BAD DATA OFFSET"
                } else {
                    // Cut inside the TCP header; the IP length still claims all of it.
                    let mut b = f.build();
                    let ip = if self.c.ends.v6() { 40 } else { 20 };
                    b.truncate(14 + ip + 12);
                    let t = self.c.now + self.c.gap();
                    self.c.out.push((
                        Packet {
                            ts_ns: t,
                            side: dir.side(),
                            data: b,
                        },
                        format!("{} TRUNCATED TCP header", dir_name(dir)),
                    ));
                    self.c.now = t;
                    return;
                };
                self.push(dir, &f, what);
            }
        }
        self.update_phase();
    }

    fn update_phase(&mut self) {
        if self.phase == Phase::Closing
            && self.sim.ack_owed(Dir::C2s) == 0
            && self.sim.ack_owed(Dir::S2c) == 0
            && self.fin_sent(Dir::C2s)
            && self.fin_sent(Dir::S2c)
        {
            self.phase = Phase::Closed;
        }
    }

    fn fin_sent(&self, d: Dir) -> bool {
        self.fin[di(d)]
    }

    fn ack(&mut self, dir: Dir) {
        self.tick();
        self.sim.ack_dir(dir);
        self.flush(if dir == Dir::C2s {
            "client ACK"
        } else {
            "server ACK"
        });
    }

    fn old_retransmission(&mut self, dir: Dir) {
        let Some(&(seq, len)) = self.sent[di(dir)].first() else {
            return self.data(dir, "data");
        };
        let f = Self::with_seq_ack(
            self.sim
                .craft(dir, TcpFlags::PSH | TcpFlags::ACK, len as usize),
            Some(seq),
            None,
        );
        self.push(dir, &f, "retransmission of old data");
    }

    fn window_edge(&mut self, dir: Dir) {
        let edge = self.last_ack(dir).wrapping_add(self.rcv_window(dir));
        let (seq, what) = match self.rng().weighted(&[20, 20, 20, 10, 15, 15]) {
            0 => (
                edge.wrapping_sub(1),
                "data starting 1 byte before the window edge",
            ),
            1 => (edge, "data starting at the window edge"),
            2 => (
                edge.wrapping_add(1),
                "data starting 1 byte beyond the window edge",
            ),
            3 => (
                edge.wrapping_add(2),
                "data starting 2 bytes beyond the window edge",
            ),
            4 => (
                self.sim
                    .next_seq(dir)
                    .wrapping_add(0x1000_0000 + self.c.rng.below(0x1000_0000) as u32),
                "data far beyond the window",
            ),
            _ => {
                // Behind the window: around the lower bound for a retransmission.
                let back = self.rcv_window(dir).max(1) + self.c.rng.range(0, 3) as u32;
                (
                    self.sim.next_seq(dir).wrapping_sub(back).wrapping_sub(100),
                    "data far behind (ends around the lower window bound)",
                )
            }
        };
        let len = if self.chance(0.5) { 1 } else { 100 };
        let f = Self::with_seq_ack(
            self.sim.craft(dir, TcpFlags::PSH | TcpFlags::ACK, len),
            Some(seq),
            None,
        );
        self.push(dir, &f, what);
    }

    fn bad_ack(&mut self, dir: Dir) {
        let peer_next = self.sim.next_seq(dir.reverse());
        let (ack, what) = match self.rng().weighted(&[20, 15, 15, 10, 10, 10]) {
            0 => (peer_next.wrapping_add(1), "ACK of 1 byte never sent"),
            1 => (peer_next.wrapping_add(2), "ACK of 2 bytes never sent"),
            2 => (
                peer_next.wrapping_add(1000 + self.c.rng.below(1_000_000) as u32),
                "ACK of data never sent",
            ),
            3 => (peer_next.wrapping_sub(66_000), "ACK 66000 behind"),
            4 => (peer_next.wrapping_sub(66_001), "ACK 66001 behind"),
            _ => (
                peer_next.wrapping_sub(100_000 + self.c.rng.below(1_000_000) as u32),
                "ACK far behind",
            ),
        };
        let len = if self.chance(0.5) { 0 } else { 50 };
        let flags = if len > 0 {
            TcpFlags::PSH | TcpFlags::ACK
        } else {
            TcpFlags::ACK
        };
        let f = Self::with_seq_ack(self.sim.craft(dir, flags, len), None, Some(ack));
        self.push(dir, &f, what);
    }

    fn bogus_sack(&mut self, dir: Dir) {
        let peer_next = self.sim.next_seq(dir.reverse());
        let base = self.sim.next_ack(dir);
        let (l, r, what) = if self.chance(0.5) {
            (
                peer_next,
                peer_next.wrapping_add(1000),
                "SACK block beyond anything sent",
            )
        } else {
            (
                base.wrapping_sub(200),
                base.wrapping_sub(100),
                "SACK block below the ACK",
            )
        };
        let f = self
            .sim
            .craft(dir, TcpFlags::ACK, 0)
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::Sack(vec![(l, r)]));
        self.push(dir, &f, what);
    }

    fn zero_window(&mut self, dir: Dir) {
        self.c.say("zero window");
        let f = self.sim.craft(dir, TcpFlags::ACK, 0).window(0);
        self.push(dir, &f, "ACK announcing a zero window");
        let peer = dir.reverse();
        match self.rng().below(3) {
            0 => {
                // A window probe: one byte.
                let f = self.sim.craft(peer, TcpFlags::PSH | TcpFlags::ACK, 1);
                self.push(peer, &f, "window probe (1 byte into a zero window)");
            }
            1 => {
                let f = self.sim.craft(peer, TcpFlags::PSH | TcpFlags::ACK, 500);
                self.push(peer, &f, "data into a zero window");
            }
            _ => {}
        }
        if self.chance(0.7) {
            self.ack(dir);
        }
    }

    /// A SYN with a new ISN on this live tuple, and what may follow it.
    fn new_isn_syn(&mut self) {
        self.c.say("new-ISN SYN");
        let old = self.syn_isn[0].unwrap_or(self.sim.endpoint(Dir::C2s).isn);
        let isn = if self.chance(0.5) {
            old.wrapping_add(0x1000_0000 + self.c.rng.below(0x1000_0000) as u32)
        } else {
            self.c.rng.next_u32()
        };
        self.syn_isn[0] = Some(isn);
        let nack = isn.wrapping_add(1);
        let follow = self.rng().weighted(&[15, 20, 15, 20, 15, 15]);
        if follow == 1 {
            // The server had forgotten the old connection and accepts the new one.
            self.c.say("server accepts it");
            let si = self.c.rng.next_u32();
            self.restart_sim((isn, si));
            self.syn_isn[1] = Some(si);
            self.tick();
            self.sim.syn();
            self.flush("SYN with a new ISN on the live tuple");
            self.tick();
            self.sim.synack();
            self.flush("SYN/ACK for the new ISN");
            if self.chance(0.8) {
                self.tick();
                self.sim.ack();
                self.flush("ACK of the new connection");
            }
            return;
        }
        let f = Self::with_seq_ack(self.sim.craft(Dir::C2s, TcpFlags::SYN, 0), Some(isn), None);
        self.push(Dir::C2s, &f, "SYN with a new ISN on the live tuple");
        match follow {
            0 => self.c.say("then nothing"),
            2 => {
                self.c.say("challenge ACK");
                self.ack(Dir::S2c);
            }
            3 => {
                // Known difference (Linux commit bed6e04be8e6): the client's own RST that
                // acknowledges its new SYN.
                self.c.say("client RST ack=new ISN+1");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::C2s, TcpFlags::RST | TcpFlags::ACK, 0),
                    None,
                    Some(nack),
                );
                self.push(Dir::C2s, &f, "client RST/ACK, ack = its new SYN's ISN + 1");
                self.phase = Phase::Dead;
            }
            4 => {
                self.c.say("server RST ack=new ISN+1");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0),
                    Some(self.sim.next_seq(Dir::S2c)),
                    Some(nack),
                );
                self.push(
                    Dir::S2c,
                    &f,
                    "server RST/ACK answering the new SYN (ack = ISN + 1)",
                );
                self.phase = Phase::Dead;
            }
            _ => {
                self.c.say("server RST with other seq");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0),
                    Some(self.c.rng.next_u32()),
                    Some(nack),
                );
                self.push(
                    Dir::S2c,
                    &f,
                    "server RST/ACK, ack = new ISN + 1, random seq",
                );
                self.phase = Phase::Dead;
            }
        }
    }

    fn rst(&mut self, dir: Dir) {
        let next = self.sim.next_seq(dir);
        let acked = self.last_ack(dir);
        let (seq, sdesc) = match self.rng().weighted(&[35, 15, 15, 10, 10, 15]) {
            0 => (next, "exact seq"),
            1 => (acked, "seq = last ACK from the peer"),
            2 => (
                next.wrapping_add(1 + self.c.rng.below(1000) as u32),
                "inexact in-window seq",
            ),
            3 => (
                next.wrapping_add(0x2000_0000 + self.c.rng.below(0x2000_0000) as u32),
                "out-of-window seq",
            ),
            4 => (
                next.wrapping_sub(1 + self.c.rng.below(200_000) as u32),
                "old seq",
            ),
            _ => (next.wrapping_sub(1), "seq - 1"),
        };
        let noted = self.syn_isn[di(dir.reverse())].or(self.syn_isn[di(dir)]);
        let (flags, ack, adesc) = match self.rng().weighted(&[50, 20, 15, 15]) {
            0 => (TcpFlags::RST | TcpFlags::ACK, None, "ack ok"),
            1 => (TcpFlags::RST, Some(0), "no ACK flag"),
            2 => (
                TcpFlags::RST | TcpFlags::ACK,
                noted.map(|i| i.wrapping_add(1)),
                "ack = noted SYN ISN + 1",
            ),
            _ => (
                TcpFlags::RST | TcpFlags::ACK,
                Some(self.c.rng.next_u32()),
                "random ack",
            ),
        };
        let who = if dir == Dir::C2s { "client" } else { "server" };
        self.c.say(format!("{who} RST"));
        let f = Self::with_seq_ack(self.sim.craft(dir, flags, 0), Some(seq), ack);
        self.push(dir, &f, &format!("{who} RST, {sdesc}, {adesc}"));
        if sdesc == "exact seq" {
            self.phase = Phase::Dead;
        }
    }

    fn bad_flags(&mut self, dir: Dir) {
        const SETS: [(u8, &str); 10] = [
            (0x03, "SYN|FIN"),
            (0x06, "SYN|RST"),
            (0x00, "no flags"),
            (0x29, "FIN|PSH|URG (xmas)"),
            (0x01, "FIN without ACK"),
            (0x13, "SYN|FIN|ACK"),
            (0x05, "RST|FIN"),
            (0x3f, "all six flags"),
            (0x08, "PSH only"),
            (0x12 | 0x40 | 0x80, "SYN|ACK|ECE|CWR"),
        ];
        let (bits, name) = SETS[self.c.rng.below(SETS.len() as u64) as usize];
        let f = self.sim.craft(dir, TcpFlags(bits), 0);
        self.push(dir, &f, &format!("segment with flags {name}"));
    }

    fn fin(&mut self) {
        let d = if self.chance(0.6) { Dir::C2s } else { Dir::S2c };
        let d = if self.fin_sent(d) { d.reverse() } else { d };
        if self.fin_sent(d) {
            // Both sent: retransmit one.
            let seq = self.sim.next_seq(d).wrapping_sub(1);
            let f = Self::with_seq_ack(
                self.sim.craft(d, TcpFlags::FIN | TcpFlags::ACK, 0),
                Some(seq),
                None,
            );
            self.push(d, &f, "FIN retransmission");
            return;
        }
        if self.phase == Phase::Open {
            self.c.say(if d == Dir::C2s {
                "client FIN"
            } else {
                "server FIN"
            });
        }
        self.tick();
        self.sim.fin(d);
        self.flush("FIN");
        self.fin[di(d)] = true;
        self.phase = Phase::Closing;
    }

    /// After a close or an abort: maybe reuse the tuple, or send stray segments. Returns
    /// false to end the conversation.
    fn after_end(&mut self) -> bool {
        let reuse = if self.reuses < 2 { 30 } else { 0 };
        match self.rng().weighted(&[40, 12, 8, 6, reuse]) {
            0 => false,
            1 => {
                let d = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
                self.data(d, "data after the end");
                true
            }
            2 => {
                let d = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
                self.ack(d);
                true
            }
            3 => {
                let d = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
                self.rst(d);
                self.phase = Phase::Dead;
                true
            }
            _ => {
                self.reuses += 1;
                self.c.say("tuple reused");
                let old = self.syn_isn[0].unwrap_or(0);
                let ci = if self.chance(0.7) {
                    old.wrapping_add(0x100_0000 + self.c.rng.below(0x1000_0000) as u32)
                } else {
                    self.c.rng.next_u32()
                };
                let si = self.c.rng.next_u32();
                if self.chance(0.3) {
                    self.c.now += self.c.rng.range(100, 500) * MS;
                }
                self.restart_sim((ci, si));
                self.handshake();
                true
            }
        }
    }
}

/// Writes traces `first..first + count` of `seed` to `dir` as `<name>.pcapng`, and
/// `dir/manifest.json` in the shape of the conformance traces' manifest (per trace a
/// description and per packet its direction, time and note), plus the seed and index.
pub fn write_series(seed: u64, first: u64, count: u64, dir: &Path) -> io::Result<Counter> {
    fs::create_dir_all(dir)?;
    let mut counts = Counter::default();
    let mut manifest = String::from("{");
    for index in first..first.saturating_add(count) {
        let t = trace(seed, index);
        let path = dir.join(format!("{}.pcapng", t.name));
        let mut file = CaptureFile::create(&path, Resolution::Nano)?;
        for p in &t.packets {
            file.write_packet(p)?;
            counts.write_packet(p)?;
        }
        file.finish()?;
        let t0 = t.packets.first().map_or(0, |p| p.ts_ns);
        if index > first {
            manifest.push(',');
        }
        manifest.push_str(&format!(
            "\n {}: {{\"seed\": {seed}, \"index\": {index}, \"description\": {}, \"packets\": [",
            json_str(&t.name),
            json_str(&t.description)
        ));
        for (k, (p, note)) in t.packets.iter().zip(&t.notes).enumerate() {
            let dir = if p.side == Side::Inside { "c2s" } else { "s2c" };
            manifest.push_str(&format!(
                "{}\n  {{\"index\": {k}, \"direction\": \"{dir}\", \"t\": {:.6}, \"note\": {}}}",
                if k > 0 { "," } else { "" },
                (p.ts_ns - t0) as f64 / 1e9,
                json_str(note)
            ));
        }
        manifest.push_str("]}");
    }
    manifest.push_str("\n}\n");
    fs::write(dir.join("manifest.json"), manifest)?;
    Ok(counts)
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A connection on `ends` with random options and windows.
fn fresh_sim(rng: &mut Rng, ends: Ends, isn: (u32, u32), now: u64, rtt: u64) -> TcpSim {
    let opts = |rng: &mut Rng| {
        let ws = match rng.weighted(&[25, 60, 10, 5]) {
            0 => None,
            1 => Some(rng.range(0, 9) as u8),
            2 => Some(14),
            _ => Some(15 + rng.below(3) as u8),
        };
        let window = match rng.weighted(&[40, 20, 15, 15, 10]) {
            0 => 64_240,
            1 => 502 << 7,
            2 => 8_192,
            3 => rng.range(1_000, 1 << 20) as u32,
            _ => 1 << 20,
        };
        (
            ws,
            rng.chance(0.7),
            rng.chance(0.4),
            window,
            *[64_240u16, 65_535, 29_200, 14_600, 1_024]
                .get(rng.below(5) as usize)
                .unwrap_or(&64_240),
            *[1460u16, 1440, 1400, 536, 9000]
                .get(rng.below(5) as usize)
                .unwrap_or(&1460),
        )
    };
    let c = opts(rng);
    let s = opts(rng);
    let ids = (rng.next_u32() as u16, rng.next_u32() as u16);
    TcpSim::new(ends.client, ends.server)
        .isn(isn.0, isn.1)
        .client_config(|e| {
            (
                e.wscale,
                e.sack,
                e.timestamps,
                e.window,
                e.syn_window,
                e.mss,
            ) = c;
            e.ip_id = ids.0;
        })
        .server_config(|e| {
            (
                e.wscale,
                e.sack,
                e.timestamps,
                e.window,
                e.syn_window,
                e.mss,
            ) = s;
            e.ip_id = ids.1;
        })
        .rtt(rtt)
        .start_at(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traces() {
        for i in 0..50 {
            let a = trace(7, i);
            let b = trace(7, i);
            assert_eq!(a.name, b.name);
            assert_eq!(a.packets, b.packets);
            assert_eq!(a.notes, b.notes);
        }
        assert_ne!(trace(7, 0).packets, trace(8, 0).packets);
    }

    #[test]
    fn traces_are_ordered_and_annotated() {
        for i in 0..300 {
            let t = trace(1, i);
            assert!(!t.packets.is_empty(), "{}", t.name);
            assert_eq!(t.packets.len(), t.notes.len());
            assert!(
                t.packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
                "{}",
                t.name
            );
            // Short: one 2.6-3 s wait at most.
            let span = t.packets.last().map_or(0, |p| p.ts_ns) - t.packets[0].ts_ns;
            assert!(span < 4_000 * MS, "{} spans {span} ns", t.name);
            for (p, n) in t.packets.iter().zip(&t.notes) {
                let c2s = n.split_whitespace().nth(1) == Some("c2s");
                assert_eq!(c2s, p.side == Side::Inside, "{}: {n}", t.name);
            }
        }
    }

    #[test]
    fn the_known_rst_case_is_generated() {
        // A client SYN with a new ISN on a live tuple, then the client's RST acknowledging it.
        let hits = (0..3000)
            .map(|i| trace(1, i))
            .filter(|t| {
                t.notes
                    .iter()
                    .any(|n| n.contains("client RST/ACK, ack = its new SYN's ISN + 1"))
            })
            .count();
        assert!(hits >= 5, "only {hits} traces with the known case");
    }
}
