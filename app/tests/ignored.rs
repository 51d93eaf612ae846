//! A blind-ACK flood through `ctfw run`: ACKs on a live connection's tuple whose
//! acknowledgment lies far below the window. Linux's conntrack ignores them
//! (`tcp_in_window`: "ignored ACK under lower bound") and forwards them; so does ctfw, and
//! an operator must see them counted by reason in `ctfw stats -o json`, the human
//! `ctfw stats`, the `/metrics` endpoint and the final report.
//!
//! The whole exchange is one capture read by the `inside` port (conntrack does not care
//! which port a direction arrives on), so the worker takes it in capture order: the
//! connection is established and the server has sent 80,300 bytes before the flood.

mod common;

use common::{Running, root, text, tmp};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ctfw_tracegen::read::CaptureReader;
use ctfw_tracegen::{Dir, PcapWriter, TcpFlags, TcpSim};
use serde_json::Value;

/// Blind ACKs in the flood.
const FLOOD: u64 = 1000;
const CLIENT_ISN: u32 = 1_000_000;
const SERVER_ISN: u32 = 5_000_000;
const DEADLINE: Duration = Duration::from_secs(60);

/// The connection, 80,300 bytes from the server, then the flood; every frame.
fn traffic() -> Vec<Vec<u8>> {
    let mut sim = TcpSim::default_v4().isn(CLIENT_ISN, SERVER_ISN);
    sim.handshake();
    // 55 full segments of the default MSS, 1460 bytes: 80,300 bytes.
    for _ in 0..55 {
        sim.data_s2c(1460).ack_c2s();
    }
    let mut frames: Vec<Vec<u8>> = sim.take_packets().into_iter().map(|p| p.data).collect();
    // The attacker knows the tuple and a sequence number in the window, not what the server
    // sent: each ACK acknowledges bytes 1..FLOOD of it, more than MAXACKWINDOW behind.
    for i in 0..FLOOD {
        let mut ack = sim.craft(Dir::C2s, TcpFlags::ACK, 0);
        ack.tcp_mut().expect("TCP").ack = SERVER_ISN + 1 + i as u32;
        frames.push(ack.build());
    }
    frames
}

/// `ctfw ARGS --socket SOCKET` from the repository root.
fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .current_dir(root())
        .output()
        .expect("spawn ctfw")
}

/// The body of `GET /metrics`, or `None` if nothing answers yet.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    raw.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The sum of the samples of `metric` with label `reason="reason"`.
fn metric(body: &str, metric: &str, reason: &str) -> f64 {
    let want = format!("reason=\"{reason}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&want))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_blind_ack_flood_is_forwarded_and_counted_by_reason() {
    let dir = tmp("blind-ack");
    let d = dir.display();
    let frames = traffic();
    let total = frames.len() as u64;
    let mut w = PcapWriter::new(
        std::fs::File::create(dir.join("inside.pcap")).expect("create"),
        Default::default(),
    )
    .expect("pcap");
    for (i, f) in frames.iter().enumerate() {
        w.write(1_000_000_000 + i as u64 * 1000, f).expect("write");
    }
    w.finish().expect("finish");
    PcapWriter::new(
        std::fs::File::create(dir.join("outside.pcap")).expect("create"),
        Default::default(),
    )
    .expect("pcap")
    .finish()
    .expect("finish");

    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let socket = dir.join("ctfw.sock");
    let cfg = dir.join("ctfw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "ports:\n  - {{name: inside, device: \"net_pcap0,rx_pcap={d}/inside.pcap,tx_pcap={d}/tx-inside.pcap\", peer: outside}}\n  \
             - {{name: outside, device: \"net_pcap1,rx_pcap={d}/outside.pcap,tx_pcap={d}/tx-outside.pcap\", peer: inside}}\n\
             dataplane: {{hugepages: off}}\ncontrol: {{socket: {}}}\nmetrics: {{listen: \"{addr}\"}}\n\
             policy: drop\nrules:\n  - {{ct_state: [new, established, related], action: accept}}\n",
            socket.display()
        ),
    )
    .expect("config");
    let report = dir.join("report.json");
    let child = Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args(["run", "--config", cfg.to_str().expect("utf8")])
        // A backstop: the test stops it with SIGTERM long before.
        .args(["--idle-exit", "120", "--report-json"])
        .arg(&report)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let running = Running(Some(child));

    // `ctfw stats -o json` once every packet is counted.
    let started = Instant::now();
    let stats = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "ctfw never counted {total} packets"
        );
        let out = cli(&socket, &["stats", "-o", "json"]);
        if out.status.success() {
            let s: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
            if s["counters"]["packets"] == total {
                break s;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let c = &stats["counters"];
    assert_eq!(c["accepted"], total, "every packet forwarded: {c}");
    assert_eq!(
        c["ignored_by_reason"]["tcp_ack_under_window"], FLOOD,
        "the flood, by reason: {c}"
    );
    let ignored: u64 = c["ignored_by_reason"]
        .as_object()
        .expect("ignored_by_reason")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum();
    assert_eq!(ignored, FLOOD, "nothing else ignored: {c}");
    assert!(
        c["invalid_by_reason"]
            .as_object()
            .expect("invalid_by_reason")
            .values()
            .all(|v| v == 0),
        "none INVALID: {c}"
    );
    // Per worker too.
    assert_eq!(
        stats["workers"][0]["counters"]["ignored_by_reason"]["tcp_ack_under_window"],
        FLOOD
    );
    let human = cli(&socket, &["stats"]);
    let human = text(&human.stdout);
    assert!(
        human.contains("ignored by tracking") && human.contains("tcp_ack_under_window"),
        "{human}"
    );

    // The Prometheus endpoint, by reason.
    let body = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "/metrics never showed the flood"
        );
        if let Some(body) = scrape(addr) {
            if metric(&body, "ctfw_ignored_packets_total", "tcp_ack_under_window") == FLOOD as f64 {
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        metric(&body, "ctfw_ignored_packets_total", "tcp_unmatched_synack"),
        0.0,
        "every reason is exposed, zeros included"
    );

    let out = running.stop();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ignored by tracking"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(
        report["counters"]["ignored_by_reason"]["tcp_ack_under_window"], FLOOD,
        "{report}"
    );
    // Forwarded as Linux forwards them: every frame left by the outside port.
    let out_frames = CaptureReader::open(dir.join("tx-outside.pcap"))
        .expect("tx-outside")
        .count() as u64;
    assert_eq!(out_frames, total);
}
