//! Frames longer than one mbuf segment through `ctfw run`, checked against `ctfw replay`.
//!
//! The traffic: TCP connections over IPv4 and IPv6 whose data segments make frames of 1514,
//! 2048, 2049, 4000 and 9018 bytes both ways, UDP exchanges of the same sizes, and three bad
//! jumbo frames: a UDP datagram with a payload byte changed past the first 2 KiB (only a
//! checksum over every segment sees it), an IPv4 packet whose total length runs past its
//! frame, and an IPv6 one whose payload length does.
//!
//! `net_pcap` chains a frame longer than its mbufs into several (2 KiB segments at the
//! default MTU); with `ports[].mtu: 9000` each frame has one buffer of its own. Either way
//! `ctfw run` must decide every frame as `ctfw replay` decides it from the capture: the same
//! verdict per packet, the same counters, the same frames forwarded, byte for byte, and every
//! mbuf back in its pool at the end.
//!
//! Over real kernel interfaces (`net_af_packet` on veth pairs with MTU 9000 between two
//! network namespaces): DPDK 22.11's `net_af_packet` states a 1518-byte maximum frame, so
//! `ports[].mtu: 9000` is refused, naming the key and the maximum; yet it hands over whatever
//! fits the frames of its ring (`framesz`), and with `framesz=16384` ctfw's buffers hold
//! them: UDP datagrams of every size echo intact and a TCP transfer with 8948-byte segments
//! passes, with nothing dropped and every mbuf back.
//!
//! Order: with `dataplane.burst: 1` a worker takes one packet from `inside`, then one from
//! `outside`, round after round. The traffic is laid out so that this alternation is its true
//! order (a non-IP filler frame takes a side's turn when the traffic has nothing for it), and
//! the replay reads the same sequence from a pcapng whose interfaces name the ports.

mod common;

use common::{
    AF_PACKET_ATTEMPTS, Running, af_packet_fanout_collided, ctfw, in_ns, require_root, sh, text,
    tmp,
};

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctfw_tracegen::frame::Frame;
use ctfw_tracegen::read::CaptureReader;
use ctfw_tracegen::{Dir, PcapWriter, PcapngWriter, Side, TcpFlags, TcpSim};
use serde_json::Value;

/// The frame sizes around the segment boundaries: a full 1500-MTU frame, one segment
/// exactly, one byte more, two segments, a 9000-MTU frame.
const SIZES: [usize; 5] = [1514, 2048, 2049, 4000, 9018];

/// One packet of the traffic, in order.
struct Pkt {
    side: Side,
    data: Vec<u8>,
}

fn pkt(side: Side, data: Vec<u8>) -> Pkt {
    Pkt { side, data }
}

/// A TCP connection carrying a data segment of each size both ways, each acknowledged.
fn tcp(client: SocketAddr, server: SocketAddr) -> Vec<Pkt> {
    let mut sim = TcpSim::new(client, server).timestamps(false);
    sim.handshake();
    for &size in &SIZES {
        for dir in [Dir::C2s, Dir::S2c] {
            let header = sim
                .craft(dir, TcpFlags::PSH | TcpFlags::ACK, 0)
                .build()
                .len();
            sim.data(dir, (size - header) as u32).ack_dir(dir.reverse());
        }
    }
    sim.close();
    let pkts: Vec<Pkt> = sim
        .take_packets()
        .into_iter()
        .map(|p| pkt(p.side, p.data))
        .collect();
    for &size in &SIZES {
        assert_eq!(
            pkts.iter().filter(|p| p.data.len() == size).count(),
            2,
            "a {size}-byte segment each way"
        );
    }
    pkts
}

/// A UDP request and reply of each size; `v6` for IPv6.
fn udp(v6: bool) -> Vec<Pkt> {
    let mut out = Vec::new();
    for &size in &SIZES {
        let (c, s) = if v6 {
            (
                Frame::ipv6(
                    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 7),
                    Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 7),
                ),
                Frame::ipv6(
                    Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 7),
                    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 7),
                ),
            )
        } else {
            (
                Frame::ipv4(Ipv4Addr::new(10, 0, 1, 7), Ipv4Addr::new(10, 0, 2, 7)),
                Frame::ipv4(Ipv4Addr::new(10, 0, 2, 7), Ipv4Addr::new(10, 0, 1, 7)),
            )
        };
        let sport = 30_000 + size as u16;
        let request = c.udp(sport, 5353);
        let reply = s.udp(5353, sport);
        let fill = |f: Frame| {
            let header = f.build().len();
            let body: Vec<u8> = (0..size - header).map(|i| (i * 13 + size) as u8).collect();
            f.payload(&body).build()
        };
        out.push(pkt(Side::Inside, fill(request)));
        out.push(pkt(Side::Outside, fill(reply)));
    }
    out
}

/// Jumbo frames that must not pass, whole or in segments.
fn bad() -> Vec<Pkt> {
    let (a, b) = (Ipv4Addr::new(10, 0, 1, 9), Ipv4Addr::new(10, 0, 2, 9));
    // A payload byte changed past the first segment, the checksum left as it was.
    let body = vec![0x5a; 9018 - 42];
    let mut corrupt = Frame::ipv4(a, b).udp(40_001, 53).payload(&body).build();
    corrupt[6000] ^= 0x01;
    // An IPv4 total length of 9004 in a 4000-byte frame.
    let mut short4 = Frame::ipv4(a, b).udp(40_002, 53).payload(&body).build();
    short4.truncate(4000);
    // An IPv6 payload length of 8964 in a 3000-byte frame.
    let body6 = vec![0x6b; 9018 - 62];
    let mut short6 = Frame::ipv6(
        Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 9),
        Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 9),
    )
    .udp(40_003, 53)
    .payload(&body6)
    .build();
    short6.truncate(3000);
    vec![
        pkt(Side::Inside, corrupt),
        pkt(Side::Inside, short4),
        pkt(Side::Inside, short6),
    ]
}

fn traffic() -> Vec<Pkt> {
    let mut all = tcp(
        "10.0.1.2:40000".parse().expect("addr"),
        "10.0.2.2:80".parse().expect("addr"),
    );
    all.extend(tcp(
        "[fd00:1::2]:40200".parse().expect("addr"),
        "[fd00:2::2]:80".parse().expect("addr"),
    ));
    all.extend(udp(false));
    all.extend(udp(true));
    all.extend(bad());
    all
}

/// A frame that takes a side's turn: not IP, so the policy drops it (`non_ip`) on both paths.
fn filler() -> Vec<u8> {
    Frame::other(0x88b5, vec![0; 46]).build()
}

/// `pkts` in the order a burst-1 worker polls two ports, inside first: alternating, with a
/// filler where the traffic has nothing for a side's turn.
fn alternate(pkts: Vec<Pkt>) -> Vec<Pkt> {
    let mut out = Vec::new();
    let mut turn = Side::Inside;
    let other = |s: Side| match s {
        Side::Inside => Side::Outside,
        Side::Outside => Side::Inside,
    };
    for p in pkts {
        if p.side != turn {
            out.push(pkt(turn, filler()));
        }
        turn = other(p.side);
        out.push(p);
    }
    out
}

/// The captures: one per port for `ctfw run`, and the whole sequence as pcapng with the
/// ports as interfaces for `ctfw replay`.
fn write_captures(dir: &Path, seq: &[Pkt]) {
    let pcap = |name: &str| {
        PcapWriter::new(
            std::fs::File::create(dir.join(name)).expect("create"),
            Default::default(),
        )
        .expect("pcap")
    };
    let (mut inside, mut outside) = (pcap("inside.pcap"), pcap("outside.pcap"));
    let mut both = PcapngWriter::with_interfaces(
        std::fs::File::create(dir.join("both.pcapng")).expect("create"),
        &["inside", "outside"],
    )
    .expect("pcapng");
    for (i, p) in seq.iter().enumerate() {
        let ts = 1_000_000_000 + i as u64 * 1000;
        match p.side {
            Side::Inside => {
                inside.write(ts, &p.data).expect("write");
                both.write(ts, 0, &p.data).expect("write");
            }
            Side::Outside => {
                outside.write(ts, &p.data).expect("write");
                both.write(ts, 1, &p.data).expect("write");
            }
        }
    }
    inside.finish().expect("finish");
    outside.finish().expect("finish");
    both.finish().expect("finish");
}

/// The configuration: two `net_pcap` ports (MTU `mtu`, or the default), one packet per port
/// per round, and a policy that passes what conntrack calls NEW, ESTABLISHED or RELATED.
fn write_config(dir: &Path, mtu: Option<u16>) -> String {
    let d = dir.display();
    let mtu = mtu.map_or(String::new(), |m| format!(", mtu: {m}"));
    let cfg = dir.join("ctfw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "ports:\n  - {{name: inside, device: \"net_pcap0,rx_pcap={d}/inside.pcap,tx_pcap={d}/tx-inside.pcap\", peer: outside{mtu}}}\n  \
             - {{name: outside, device: \"net_pcap1,rx_pcap={d}/outside.pcap,tx_pcap={d}/tx-outside.pcap\", peer: inside{mtu}}}\n\
             dataplane: {{burst: 1, hugepages: off, memory_mb: 512, rx_descriptors: 256, tx_descriptors: 256, mbufs_per_port: 4095}}\n\
             policy: drop\nrules:\n  - {{ct_state: [new, established, related], action: accept}}\n"
        ),
    )
    .expect("config");
    cfg.to_str().expect("utf8").to_owned()
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|r| r.expect("record").data)
        .collect()
}

fn json(path: &Path) -> Value {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&body).expect("JSON")
}

/// What `ctfw replay` decided: per packet (forwarded, ct state, reason), the frames it
/// forwards out of each port, and its counters.
struct Replayed {
    verdicts: Vec<Value>,
    out: [Vec<Vec<u8>>; 2],
    counters: Value,
}

fn replay(dir: &Path, cfg: &str, seq: &[Pkt]) -> Replayed {
    let (jsonl, report) = (dir.join("replay.jsonl"), dir.join("replay.json"));
    let trace = dir.join("both.pcapng");
    let out = ctfw(&[
        "replay",
        "--config",
        cfg,
        trace.to_str().expect("utf8"),
        "--jsonl",
        jsonl.to_str().expect("utf8"),
        "--report-json",
        report.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "replay: {}", text(&out.stderr));
    let verdicts: Vec<Value> = std::fs::read_to_string(&jsonl)
        .expect("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(verdicts.len(), seq.len(), "a record per packet");
    let mut fwd = [Vec::new(), Vec::new()];
    for (p, v) in seq.iter().zip(&verdicts) {
        if v["forwarded"] == true {
            // Accepted on one port, it leaves on the other.
            let to = match p.side {
                Side::Inside => 1,
                Side::Outside => 0,
            };
            fwd[to].push(p.data.clone());
        }
    }
    Replayed {
        verdicts,
        out: fwd,
        counters: json(&report)["counters"].clone(),
    }
}

/// The counters both commands report that must agree (the sweeper's work and the tables'
/// life differ: one runs on a clock, the other on the capture's timestamps).
fn decided(c: &Value) -> Value {
    serde_json::json!({
        "packets": c["packets"],
        "bytes": c["bytes"],
        "accepted": c["accepted"],
        "dropped": c["dropped"],
        "created": c["connections"]["created"],
        "dropped_by_reason": c["dropped_by_reason"],
        "invalid_by_reason": c["invalid_by_reason"],
        "ignored_by_reason": c["ignored_by_reason"],
    })
}

/// `ctfw run` on the captures of `dir` with `cfg`; its report.
fn run(dir: &Path, cfg: &str) -> Value {
    let report = dir.join("run.json");
    let socket = dir.join("ctfw.sock");
    let out = ctfw(&[
        "run",
        "--config",
        cfg,
        "--idle-exit",
        "1",
        "--report-json",
        report.to_str().expect("utf8"),
        "--socket",
        socket.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "ctfw run failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    json(&report)
}

/// The whole comparison for one MTU setting.
fn run_and_replay_agree(name: &str, mtu: Option<u16>) {
    let dir = tmp(name);
    let seq = alternate(traffic());
    write_captures(&dir, &seq);
    let cfg = write_config(&dir, mtu);
    let want = replay(&dir, &cfg, &seq);

    // The replay itself forwards every valid frame and drops the three bad ones.
    let reason = |v: &Value| {
        v["invalid"]
            .as_str()
            .or(v["dropped"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    for (p, v) in seq.iter().zip(&want.verdicts) {
        let non_ip = p.data == filler();
        if !non_ip && p.data.len() > 2000 {
            let r = reason(v);
            let bad = [
                "udp_bad_checksum",
                "ipv4_bad_total_length",
                "ipv6_bad_payload_length",
            ];
            assert!(
                v["forwarded"] == true || bad.contains(&r.as_str()),
                "replay refused a valid {}-byte frame: {v}",
                p.data.len()
            );
        }
    }
    let c = &want.counters;
    assert_eq!(c["invalid_by_reason"]["udp_bad_checksum"], 1, "{c}");
    assert_eq!(c["dropped_by_reason"]["ipv4_bad_total_length"], 1, "{c}");
    assert_eq!(c["dropped_by_reason"]["ipv6_bad_payload_length"], 1, "{c}");

    let report = run(&dir, &cfg);
    assert_eq!(
        decided(&report["counters"]),
        decided(&want.counters),
        "ctfw run and ctfw replay count differently"
    );
    for (port, file) in [(0, "tx-inside.pcap"), (1, "tx-outside.pcap")] {
        let got = read_pcap(&dir.join(file));
        assert_eq!(got.len(), want.out[port].len(), "frames out of {file}");
        for (i, (g, w)) in got.iter().zip(&want.out[port]).enumerate() {
            assert!(
                g == w,
                "{file}: frame {i} ({} bytes) differs from what replay forwards ({} bytes)",
                g.len(),
                w.len()
            );
        }
    }
    let sizes: Vec<usize> = want.out[1].iter().map(Vec::len).collect();
    for size in SIZES {
        assert!(sizes.contains(&size), "no {size}-byte frame forwarded");
    }
    // Every mbuf, every segment of every chain, back in its pool.
    for p in report["ports"].as_array().expect("ports") {
        assert_eq!(
            p["mempool"]["free"], p["mempool"]["size"],
            "mbufs missing: {p}"
        );
    }
    assert_eq!(report["mbufs_leaked"], false, "{report}");
}

#[test]
fn jumbo_frames_in_2k_segments_pass_as_replay_decides() {
    run_and_replay_agree("jumbo-segments", None);
}

#[test]
fn jumbo_frames_in_9000_mtu_buffers_pass_as_replay_decides() {
    run_and_replay_agree("jumbo-9000", Some(9000));
}

// ---- net_af_packet on veths with MTU 9000 ----

/// Two namespaces joined through ctfw's two AF_PACKET ports, MTU 9000 on every veth end;
/// deleted on drop.
struct Lab {
    client_ns: String,
    server_ns: String,
    inside: String,
    outside: String,
}

const CLIENT: &str = "10.79.0.1";
const SERVER: &str = "10.79.0.2";

impl Lab {
    fn new() -> Lab {
        require_root(
            "network namespaces and veth pairs",
            &[
                ("ip", "iproute2"),
                ("sysctl", "procps"),
                ("ethtool", "ethtool"),
                ("python3", "python3"),
            ],
        );
        let pid = std::process::id() % 100_000;
        let lab = Lab {
            client_ns: format!("frames-{pid}-c"),
            server_ns: format!("frames-{pid}-s"),
            inside: format!("fr{pid}i"),
            outside: format!("fr{pid}o"),
        };
        for (ns, root_end, ns_end, addr) in [
            (&lab.client_ns, &lab.inside, format!("fr{pid}c"), CLIENT),
            (&lab.server_ns, &lab.outside, format!("fr{pid}s"), SERVER),
        ] {
            sh(&["ip", "netns", "add", ns]);
            sh(&[
                "ip", "link", "add", root_end, "type", "veth", "peer", "name", &ns_end,
            ]);
            sh(&["ip", "link", "set", &ns_end, "netns", ns]);
            sh(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{root_end}.disable_ipv6=1"),
            ]);
            sh(&["ip", "link", "set", root_end, "mtu", "9000", "up"]);
            in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            in_ns(
                ns,
                &["ip", "addr", "add", &format!("{addr}/24"), "dev", &ns_end],
            );
            in_ns(ns, &["ip", "link", "set", &ns_end, "mtu", "9000", "up"]);
            in_ns(ns, &["ip", "link", "set", "lo", "up"]);
            // Whole frames with their checksums: no offloads on either end (docs/operations.md).
            sh(&[
                "ethtool", "-K", root_end, "rx", "off", "tx", "off", "gro", "off",
            ]);
            in_ns(
                ns,
                &[
                    "ethtool", "-K", &ns_end, "rx", "off", "tx", "off", "gro", "off",
                ],
            );
        }
        lab
    }

    /// The configuration of ctfw between the two: `extra` goes into each port's entry.
    fn config(&self, dir: &Path, devargs: &str, extra: &str) -> String {
        let cfg = dir.join("ctfw.yaml");
        std::fs::write(
            &cfg,
            format!(
                "ports:\n  - {{name: inside, device: \"net_af_packet0,iface={}{devargs}\", peer: outside{extra}}}\n  \
                 - {{name: outside, device: \"net_af_packet1,iface={}{devargs}\", peer: inside{extra}}}\n\
                 dataplane: {{hugepages: off, memory_mb: 512, rx_descriptors: 256, tx_descriptors: 256, mbufs_per_port: 2047}}\n\
                 control: {{socket: {}}}\nnon_ip: forward\n\
                 policy: drop\nrules:\n  - {{ct_state: [new, established, related], action: accept}}\n",
                self.inside,
                self.outside,
                dir.join("ctfw.sock").display()
            ),
        )
        .expect("config");
        cfg.to_str().expect("utf8").to_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for end in [&self.inside, &self.outside] {
            let _ = Command::new("ip").args(["link", "del", end]).output();
        }
    }
}

/// The server: echoes UDP datagrams on port 9999, and answers a TCP connection on 7777 with
/// the SHA-256 of everything it read. Bounded: it gives up after 30 s of silence.
const SERVER_PY: &str = r#"
import hashlib, socket, sys, threading
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 9999)); s.settimeout(30)
    try:
        while True:
            d, a = s.recvfrom(65535); s.sendto(d, a)
    except socket.timeout:
        pass
threading.Thread(target=udp, daemon=True).start()
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 7777)); t.listen(1); t.settimeout(30)
c, _ = t.accept(); c.settimeout(30); h = hashlib.sha256()
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    h.update(d)
c.sendall(h.hexdigest().encode()); c.close()
"#;

/// The client: a datagram of each size with DF set (no fragmentation), each echoed intact,
/// then 4 MiB over TCP; prints one line per check.
const CLIENT_PY: &str = r#"
import hashlib, socket, sys, time
srv = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
u.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
for n in [1472, 2020, 2021, 3972, 8972]:
    body = bytes((i * 7 + n) % 251 for i in range(n))
    for attempt in range(5):
        u.sendto(body, (srv, 9999))
        try:
            d, _ = u.recvfrom(65535)
            print("udp", n, "ok" if d == body else "differs")
            break
        except socket.timeout:
            pass
    else:
        print("udp", n, "lost")
data = bytes((i * 13) % 256 for i in range(1 << 22))
s = socket.create_connection((srv, 7777), timeout=20)
s.sendall(data); s.shutdown(socket.SHUT_WR)
got = s.recv(100).decode()
print("tcp", "ok" if got == hashlib.sha256(data).hexdigest() else "differs", "mss", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
"#;

#[test]
fn jumbo_frames_cross_af_packet_ports_on_veths_with_mtu_9000() {
    let lab = Lab::new();
    let dir = tmp("jumbo-af-packet");
    let bin = env!("CARGO_BIN_EXE_ctfw");

    // The device's own limit, refused by key with the maximum it allows.
    let cfg = lab.config(&dir, "", ", mtu: 9000");
    let out = ctfw(&["run", "--config", &cfg, "--idle-exit", "1"]);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "net_af_packet took MTU 9000: {said}");
    assert!(
        said.contains("ports[0].mtu is 9000") && said.contains("at most 1500"),
        "{said}"
    );

    // Ring frames of 16 KiB: ctfw's buffers hold them whole.
    let cfg = lab.config(&dir, ",framesz=16384,blocksz=16384,framecnt=512", "");
    let report = dir.join("report.json");
    let log = |n: &str| std::fs::File::create(dir.join(n)).expect("log");
    let spawn = || {
        Running(Some(
            Command::new(bin)
                .args([
                    "run",
                    "--config",
                    &cfg,
                    "--idle-exit",
                    "120",
                    "--report-json",
                ])
                .arg(&report)
                .current_dir(common::root())
                .stdout(log("run.out"))
                .stderr(log("run.err"))
                .spawn()
                .expect("spawn ctfw run"),
        ))
    };
    let output = || {
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
        format!("{}{}", read("run.out"), read("run.err"))
    };
    let socket = dir.join("ctfw.sock");
    let mut run = spawn();
    let mut attempt = 1;
    let mut deadline = Instant::now() + Duration::from_secs(60);
    while !ctfw(&["stats", "--socket", socket.to_str().expect("utf8")])
        .status
        .success()
    {
        if let Ok(Some(status)) = run.child().try_wait() {
            // `net_af_packet` could not join its fanout group: another process, another pid.
            if af_packet_fanout_collided(&output()) && attempt < AF_PACKET_ATTEMPTS {
                attempt += 1;
                run = spawn();
                deadline = Instant::now() + Duration::from_secs(60);
                continue;
            }
            panic!("ctfw run exited with {status}: {}", output());
        }
        assert!(
            Instant::now() < deadline,
            "ctfw run never came up: {}",
            output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let server = Running(Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.server_ns,
                "python3",
                "-c",
                SERVER_PY,
                SERVER,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server"),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let client = Command::new("timeout")
        .args([
            "60",
            "ip",
            "netns",
            "exec",
            &lab.client_ns,
            "python3",
            "-c",
            CLIENT_PY,
            SERVER,
        ])
        .output()
        .expect("client");
    let said = text(&client.stdout);
    drop(server);
    let checks: Vec<&str> = said.lines().collect();
    assert_eq!(
        checks.len(),
        6,
        "{said}{}\n{}",
        text(&client.stderr),
        output()
    );
    for line in &checks[..5] {
        assert!(line.ends_with(" ok"), "{line}\n{said}\n{}", output());
    }
    let tcp: Vec<&str> = checks[5].split(' ').collect();
    assert_eq!(tcp[..2], ["tcp", "ok"], "{said}");
    let mss: u32 = tcp[3].parse().expect("mss");
    assert!(mss > 8000, "TCP did not use the 9000-byte MTU: MSS {mss}");

    let kill = Command::new("kill")
        .args(["-TERM", &run.child().id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = run.child().wait().expect("wait");
    assert!(status.success(), "{}", output());
    let r = json(&report);
    let c = &r["counters"];
    assert_eq!(c["dropped"], 0, "{c}");
    assert!(
        c["invalid_by_reason"]
            .as_object()
            .expect("invalid_by_reason")
            .values()
            .all(|v| v == 0),
        "{c}"
    );
    for p in r["ports"].as_array().expect("ports") {
        assert_eq!(
            p["mempool"]["free"], p["mempool"]["size"],
            "mbufs missing: {p}"
        );
    }
}
