//! Random short traces for the differential check against the Linux kernel
//! (`scripts/differential.sh`, see the README's "Checking against the kernel").
//!
//! Each trace holds one to three conversations between the inside (client) and the outside
//! (server) in the address plan of the conformance traces, and is meant to be replayed both
//! through a Linux router (`scripts/kernel_check.sh`) and through `ctfw replay`, packet by
//! packet. A conversation is *meaningful* traffic with random perturbations, not noise:
//!
//! - TCP (in `random/tcp.rs`) follows two [`TcpSim`](crate::TcpSim) endpoints (handshake,
//!   data and ACKs both ways, loss and SACK, FIN or RST close, port reuse) and now and then
//!   does something a tracker must judge: retransmissions (also three or four in a row, and
//!   duplicate ACK trains), segments around and beyond the window edge, ACKs of unsent data,
//!   SYNs with a new ISN on a live tuple, RSTs from either side with exact, inexact and
//!   out-of-window sequence numbers or acknowledging a noted SYN's ISN + 1, SYN/ACKs that do
//!   not match, a stale server's bare ACK answering a SYN, aborts during the handshake,
//!   simultaneous open, window scale / SACK / timestamp options, zero windows, SYN or RST
//!   with data, data with FIN, invalid flag combinations, bad checksums and data offsets,
//!   IPv4 options and IPv6 extension headers, mid-stream pickup, ICMP errors quoting it.
//! - UDP: request/response, unanswered datagrams, datagrams from outside first, streams that
//!   outlive UDP's 2 s rule, port unreachable answers, checksum, length and IP header errors.
//! - ICMP and ICMPv6: echo (also unsolicited replies, wrong ids, from outside), timestamps,
//!   errors quoting tracked flows (RELATED) and untracked ones (INVALID), errors quoting
//!   errors, errors quoting 4 bytes of the transport header or travelling the wrong way.
//!
//! Addresses: clients 10.0.1.2-9 and fd00:1::2-9 (inside), servers 10.0.2.2, 198.51.100.0/24,
//! fd00:2::/64 (outside), intermediate routers 10.0.1.254 / fd00:1::fe (inside) and
//! 192.0.2.1 / fd00:99::1 (outside); MACs as in the conformance traces.
//!
//! Timing: gaps are a few milliseconds, so a trace replays through a kernel quickly (a reused
//! TCP tuple may wait up to 0.5 s); only a UDP stream waits 2.6-3 s, and a trace with such a
//! wait holds that one conversation alone, so that a slow replay cannot move a packet across
//! the 2 s boundary. Timestamps are the intended send times.
//!
//! Invariants: trace `i` of seed `s` depends on `(s, i)` alone (so one trace can be rebuilt
//! without the others), is in timestamp order, and no two conversations of a trace share a
//! 5-tuple except where a conversation deliberately reuses its own.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::frame::{ChecksumMode, Frame, Ipv6Ext, TcpFlags, icmp, macs};
use crate::rng::Rng;
use crate::tcpsim::Dir;
use crate::write::{CaptureFile, Counter, PacketSink, Resolution};
use crate::{DEFAULT_START_NS, Packet, Side};

mod tcp;

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
        // Now and then the error travels the wrong way: from the quoted packet's own side,
        // towards its destination.
        let misdirected = self.rng.chance(0.04);
        let (src, dst, back) = if misdirected {
            (self.ends.router(quoted_dir), qdst.ip(), quoted_dir)
        } else {
            (src, qsrc.ip(), back)
        };
        let mut e = ip_frame(src, dst, back).icmp_error(ty, code, quoted);
        if let Some(i) = e.icmp_mut() {
            i.rest = u32::to_be_bytes(rest);
            if ty == 5 {
                // A redirect names the better gateway.
                if let IpAddr::V4(gw) = self.ends.router(back) {
                    i.rest = gw.octets();
                }
            }
        }
        let ip_hdr = if v6 { 40 } else { 20 };
        let quote = match self.rng.weighted(&[67, 30, 3]) {
            0 => "",
            1 => {
                // RFC 792 quoting: the IP header and the first 8 bytes of the transport header.
                e.payload.truncate(ip_hdr + 8);
                " (8 bytes)"
            }
            _ => {
                e.payload.truncate(ip_hdr + 4);
                " (only 4 bytes of the transport header)"
            }
        };
        let bad = self.rng.chance(0.05);
        if bad {
            e = e.corrupt_l4_checksum();
        }
        let note = format!(
            "ICMP{} {label} from {} quoting {what}{}{}",
            if v6 { "v6" } else { "" },
            if misdirected {
                "the wrong side"
            } else if from_router {
                "a router"
            } else {
                "the peer"
            },
            quote,
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
                    u.checksum = ChecksumMode::Value(0);
                }
                format!("{note} (no checksum)")
            }
            5 => {
                if let Some(u) = f.udp_mut() {
                    u.length = Some(len as u16 + 8 + 1 + self.rng.below(20) as u16);
                }
                format!("{note} UDP LENGTH BEYOND PACKET")
            }
            6 => {
                if let Some(u) = f.udp_mut() {
                    u.length = Some(self.rng.below(8) as u16);
                }
                format!("{note} UDP LENGTH BELOW 8")
            }
            7 => {
                // Trailing bytes after the datagram: the UDP length (and checksum) cover
                // `keep` bytes of payload, the IP packet all of it.
                let keep = self.rng.below(len as u64) as usize;
                let short = self.udp_frame(dir, keep).build();
                let at = 14 + if self.ends.v6() { 40 } else { 20 } + 6;
                let csum = short
                    .get(at..at + 2)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                if let Some(u) = f.udp_mut() {
                    u.length = Some(keep as u16 + 8);
                    u.checksum = ChecksumMode::Value(csum);
                }
                format!("{note} (UDP length shorter than the packet)")
            }
            8 if !self.ends.v6() => {
                f = f.corrupt_ip_checksum();
                format!("{note} BAD IPv4 HEADER CHECKSUM")
            }
            9 if self.ends.v6() => {
                f = f.ipv6_ext(Ipv6Ext::DestOpts(Vec::new()));
                format!("{note} (behind a destination options header)")
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
        let mut t = tcp::TcpConv::new(self);
        t.run(moves);
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
