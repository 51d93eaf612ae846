//! End-to-end tests of `ctfw run`: the real binary on DPDK virtual devices, spawned as a user
//! runs it.
//!
//! `net_pcap` does not pace by timestamp: a port's whole capture is readable at once, and a
//! worker takes at most `burst` packets per port per round, ports in order. The processing
//! order is therefore known, and these tests replay that same order through the engine in
//! process (the "model") to know exactly which packets must come out of which port, in
//! which order, with which counters.
//!
//! The tests read what a run did from its JSON report (`--report-json`), not from the printed
//! one.

mod common;

use common::{ctfw, root, text, tmp};

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ctfw_config::Config;
use ctfw_engine::flow::{self, FlowKey};
use ctfw_engine::pipeline::{Engine, Pkt, Verdict};
use ctfw_engine::rules::PortId;
use ctfw_engine::time::Instant;
use ctfw_engine::wire::{self, ChecksumHint, ParseConfig};
use ctfw_tracegen::generate::{self, MixedOpts};
use ctfw_tracegen::read::CaptureReader;
use ctfw_tracegen::{Packet, PcapWriter};
use serde_json::Value;

/// The classic policy with Linux's default knobs: the conformance configuration, whose
/// placeholder devices the tests replace with `--device`.
const CLASSIC: &str = "config/conformance/classic-loose1-liberal0.yaml";

/// `--device` arguments for two `net_pcap` ports reading `dir/{inside,outside}.pcap` and
/// writing `dir/tx-{inside,outside}.pcap`.
fn pcap_devices(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "--device".into(),
        format!("inside=net_pcap0,rx_pcap={d}/inside.pcap,tx_pcap={d}/tx-inside.pcap"),
        "--device".into(),
        format!("outside=net_pcap1,rx_pcap={d}/outside.pcap,tx_pcap={d}/tx-outside.pcap"),
    ]
}

/// Run `ctfw run ARGS --report-json dir/report.json` from the repository root; its output
/// and its JSON report (`Null` if it wrote none).
fn run(dir: &Path, args: &[&str]) -> (Output, Value) {
    let report = dir.join("report.json");
    let socket = dir.join("ctfw.sock");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--report-json", report.to_str().expect("utf8")]);
    // A control socket of its own: tests run side by side.
    all.extend(["--socket", socket.to_str().expect("utf8")]);
    let out = ctfw(&all);
    (out, read_report(&report))
}

/// A JSON report, or `Null` if there is none.
fn read_report(path: &Path) -> Value {
    match std::fs::read_to_string(path) {
        Ok(body) => serde_json::from_str(&body).expect("the JSON report parses"),
        Err(_) => Value::Null,
    }
}

/// Write `pkts` split by side into `dir/inside.pcap` and `dir/outside.pcap`.
fn write_sides(dir: &Path, pkts: &[Packet]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut sides = (Vec::new(), Vec::new());
    let mut w_in = PcapWriter::new(
        std::fs::File::create(dir.join("inside.pcap")).expect("create"),
        Default::default(),
    )
    .expect("pcap");
    let mut w_out = PcapWriter::new(
        std::fs::File::create(dir.join("outside.pcap")).expect("create"),
        Default::default(),
    )
    .expect("pcap");
    for p in pkts {
        match p.side {
            ctfw_tracegen::Side::Inside => {
                w_in.write(p.ts_ns, &p.data).expect("write");
                sides.0.push(p.data.clone());
            }
            ctfw_tracegen::Side::Outside => {
                w_out.write(p.ts_ns, &p.data).expect("write");
                sides.1.push(p.data.clone());
            }
        }
    }
    w_in.finish().expect("finish");
    w_out.finish().expect("finish");
    sides
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|r| r.expect("record").data)
        .collect()
}

/// The processing order of two ports read `chunk` packets at a time, inside first.
fn poll_order(
    inside: &[Vec<u8>],
    outside: &[Vec<u8>],
    chunk: usize,
) -> Vec<(PortId, Vec<Vec<u8>>)> {
    let mut rounds = Vec::new();
    let (mut a, mut b) = (inside.chunks(chunk), outside.chunks(chunk));
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            return rounds;
        }
        if let Some(x) = x {
            rounds.push((PortId(0), x.to_vec()));
        }
        if let Some(y) = y {
            rounds.push((PortId(1), y.to_vec()));
        }
    }
}

/// What the model says: packets out of each port in order, and the engine's counters.
struct Expected {
    out: [Vec<Vec<u8>>; 2],
    packets: u64,
    accepted: u64,
    dropped: u64,
}

fn model(cfg: &Path, rounds: &[(PortId, Vec<Vec<u8>>)], burst: usize) -> Expected {
    let cfg = Config::load(cfg).expect("config");
    let mut engine = Engine::new(cfg.engine.clone(), cfg.rules.clone(), [1, 2, 3, 4]);
    let mut out = [Vec::new(), Vec::new()];
    for (port, frames) in rounds {
        for group in frames.chunks(burst) {
            let pkts: Vec<Pkt<'_>> = group
                .iter()
                .map(|f| Pkt {
                    data: f,
                    tail: &[],
                    port: *port,
                    csum: ChecksumHint::Unknown,
                })
                .collect();
            let mut v = vec![Verdict::default(); pkts.len()];
            engine.process_burst(Instant(0), &pkts, &mut v);
            for (f, v) in group.iter().zip(&v) {
                if let Some(o) = v.forward {
                    out[usize::from(o.0)].push(f.clone());
                }
            }
        }
    }
    let c = engine.counters();
    Expected {
        out,
        packets: c.packets,
        accepted: c.accepted,
        dropped: c.dropped,
    }
}

/// A count of the report, which must be there.
fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Packets, accepted and dropped, from a run's report.
fn counters(report: &Value) -> (u64, u64, u64) {
    let c = &report["counters"];
    (
        count(&c["packets"]),
        count(&c["accepted"]),
        count(&c["dropped"]),
    )
}

/// Every port's pool is full again.
fn assert_no_leak(report: &Value) {
    let ports = report["ports"].as_array().expect("ports");
    assert!(!ports.is_empty(), "no ports in the report: {report}");
    for p in ports {
        let pool = &p["mempool"];
        assert_eq!(pool["free"], pool["size"], "mbufs missing: {p}");
    }
    assert_eq!(report["mbufs_leaked"], false, "{report}");
}

/// The listed table entries of a run's report.
fn listed(report: &Value) -> &[Value] {
    report["table"]["listed"].as_array().expect("table.listed")
}

/// The flow a frame belongs to; an ICMP error belongs to the flow it quotes.
fn flow_of(frame: &[u8]) -> Option<FlowKey> {
    let cfg = ParseConfig {
        verify_l4_checksum: false,
    };
    let p = wire::parse(frame, &cfg, ChecksumHint::Good).ok()?;
    if let wire::L4::Icmp(wire::IcmpMsg {
        inner: Some(Ok(inner)),
        ..
    }) = p.l4
    {
        return flow::key_of_inner(&inner).map(|k| k.key);
    }
    flow::key_of(&p).map(|k| k.key)
}

/// Frames grouped by flow, order kept within each flow.
fn by_flow(frames: &[Vec<u8>]) -> HashMap<Option<FlowKey>, Vec<Vec<u8>>> {
    let mut m: HashMap<_, Vec<_>> = HashMap::new();
    for f in frames {
        m.entry(flow_of(f)).or_default().push(f.clone());
    }
    m
}

#[test]
fn the_sample_comes_out_exactly_as_replay_decides() {
    let dir = tmp("sample");
    let d = dir.display();
    let (out, report) = run(
        &dir,
        &[
            "--config",
            "config/sample.yaml",
            "--device",
            &format!("inside=net_pcap0,rx_pcap=samples/inside.pcap,tx_pcap={d}/tx-inside.pcap"),
            "--device",
            &format!("outside=net_pcap1,rx_pcap=samples/outside.pcap,tx_pcap={d}/tx-outside.pcap"),
            "--idle-exit",
            "0.5",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // The sample alternates sides and the config reads one packet per port per round, so the
    // run sees the capture in its true order: replay is the model.
    let inside = read_pcap(&root().join("samples/inside.pcap"));
    let outside = read_pcap(&root().join("samples/outside.pcap"));
    let want = model(
        &root().join("config/sample.yaml"),
        &poll_order(&inside, &outside, 1),
        1,
    );
    assert_eq!(
        read_pcap(&dir.join("tx-outside.pcap")),
        want.out[1],
        "leaving by outside"
    );
    assert_eq!(
        read_pcap(&dir.join("tx-inside.pcap")),
        want.out[0],
        "leaving by inside"
    );
    assert_eq!(counters(&report), (21, 19, 2));
    assert_eq!(
        counters(&report),
        (want.packets, want.accepted, want.dropped)
    );
    assert!(
        listed(&report).iter().any(|e| e["state"] == "TIME_WAIT"
            && e["src"] == "10.0.1.2"
            && e["dst"] == "10.0.2.2"
            && e["sport"] == 40000
            && e["dport"] == 80),
        "{report}"
    );
    assert_eq!(
        report["counters"]["dropped_by_reason"]["rule_drop"], 1,
        "{report}"
    );
    assert_no_leak(&report);
}

#[test]
fn bursts_of_32_from_two_pcap_ports_follow_the_model() {
    let dir = tmp("burst32");
    let mut pkts = Vec::new();
    generate::mixed(
        &MixedOpts {
            flows: 150,
            packets: 3000,
            ..MixedOpts::default()
        },
        &mut pkts,
    )
    .expect("mixed");
    let (inside, outside) = write_sides(&dir, &pkts);
    let cfg = root().join(CLASSIC);
    let burst = usize::from(Config::load(&cfg).expect("config").dataplane.burst);
    assert_eq!(burst, 32, "the default burst");
    let mut args = vec!["--config", CLASSIC, "--idle-exit", "1"];
    let devices = pcap_devices(&dir);
    args.extend(devices.iter().map(String::as_str));
    let (out, report) = run(&dir, &args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let want = model(&cfg, &poll_order(&inside, &outside, burst), burst);
    assert!(
        want.accepted > 1000 && want.dropped > 10,
        "a meaningful mix: {} {}",
        want.accepted,
        want.dropped
    );
    assert_eq!(read_pcap(&dir.join("tx-outside.pcap")), want.out[1]);
    assert_eq!(read_pcap(&dir.join("tx-inside.pcap")), want.out[0]);
    assert_eq!(
        counters(&report),
        (want.packets, want.accepted, want.dropped)
    );
    assert_no_leak(&report);
}

/// Two workers behind the software distributor. Which port's packets the distributor takes
/// first varies with timing, so the traffic is UDP under a policy that accepts new flows from
/// either side: every packet passes whatever the interleaving, and each flow must end as one
/// entry that has seen both directions. A flow split across workers would show up twice, or
/// as two entries each missing a direction.
#[test]
fn two_workers_keep_each_flow_on_one_worker() {
    use ctfw_tracegen::frame::Frame;
    use std::net::Ipv4Addr;
    let dir = tmp("workers2");
    const FLOWS: u32 = 400;
    let mut pkts = Vec::new();
    for round in 0..10u32 {
        for f in 0..FLOWS {
            let client = Ipv4Addr::from(0x0a01_0000 + f * 7);
            let server = Ipv4Addr::from(0xac10_0000 + (f * 13) % 251);
            let (cport, sport) = (20_000 + (f as u16), 53 + (f % 3) as u16);
            let payload = [round as u8; 40];
            let (side, frame) = if (round + f) % 2 == 0 {
                (
                    ctfw_tracegen::Side::Inside,
                    Frame::ipv4(client, server)
                        .udp(cport, sport)
                        .payload(&payload),
                )
            } else {
                (
                    ctfw_tracegen::Side::Outside,
                    Frame::ipv4(server, client)
                        .udp(sport, cport)
                        .payload(&payload),
                )
            };
            pkts.push(Packet {
                ts_ns: u64::from(round * FLOWS + f) * 1000,
                side,
                data: frame.build(),
            });
        }
    }
    // Then ICMP port-unreachable errors from a router on the outside, each quoting one of the
    // clients' datagrams: RELATED only on the worker that owns the quoted flow (the router's
    // address would hash elsewhere), INVALID and dropped anywhere else.
    const ERRORS: u32 = 100;
    let router = Ipv4Addr::new(192, 0, 2, 1);
    for f in 0..ERRORS {
        let client = Ipv4Addr::from(0x0a01_0000 + f * 7);
        let server = Ipv4Addr::from(0xac10_0000 + (f * 13) % 251);
        let quoted = Frame::ipv4(client, server)
            .udp(20_000 + f as u16, 53 + (f % 3) as u16)
            .payload(&[0; 40]);
        pkts.push(Packet {
            ts_ns: u64::from(10 * FLOWS + f) * 1000,
            side: ctfw_tracegen::Side::Outside,
            data: Frame::ipv4(router, client)
                .icmp_error(3, 3, &quoted)
                .build(),
        });
    }
    let (inside, outside) = write_sides(&dir, &pkts);
    let d = dir.display();
    let cfg = dir.join("ctfw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "ports:\n  - {{name: inside, device: \"net_pcap0,rx_pcap={d}/inside.pcap,tx_pcap={d}/tx-inside.pcap\", peer: outside}}\n  \
             - {{name: outside, device: \"net_pcap1,rx_pcap={d}/outside.pcap,tx_pcap={d}/tx-outside.pcap\", peer: inside}}\n\
             dataplane: {{workers: 2}}\npolicy: drop\nrules:\n  - {{ct_state: [new, established, related], action: accept}}\n"
        ),
    )
    .expect("config");
    let (out, report) = run(
        &dir,
        &[
            "--config",
            cfg.to_str().expect("utf8"),
            "--idle-exit",
            "1",
            "--max-entries",
            "100000",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let n = pkts.len() as u64;
    // net_pcap cannot hash: the software distributor took every packet.
    assert_eq!(report["io"]["distributor_received"], n, "{report}");
    assert_eq!(
        counters(&report),
        (n, n, 0),
        "every packet passes, the errors as RELATED"
    );
    assert_eq!(
        report["counters"]["invalid_by_reason"]["icmp_no_related"], 0,
        "{report}"
    );
    // Everything that came in on one side left on the other, each flow in its own order.
    for (from, to) in [(&inside, "tx-outside.pcap"), (&outside, "tx-inside.pcap")] {
        let got = by_flow(&read_pcap(&dir.join(to)));
        let want = by_flow(from);
        assert_eq!(got, want, "{to}");
    }
    // One entry per flow, each having seen both directions.
    let udp: Vec<&Value> = listed(&report)
        .iter()
        .filter(|e| e["proto"] == "udp")
        .collect();
    assert_eq!(udp.len(), FLOWS as usize, "{report}");
    assert!(
        udp.iter().all(|e| e["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .all(|f| f != "UNREPLIED")),
        "{report}"
    );
    // Both workers took part.
    let workers: Vec<u64> = report["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| count(&w["packets"]))
        .collect();
    assert_eq!(workers.len(), 2, "{report}");
    assert!(workers.iter().all(|&w| w > n / 5), "{workers:?}");
    assert_no_leak(&report);
}

/// net_null generates frames (zero-filled: not IP) as fast as it is polled and frees what it is
/// sent: forwarding non-IP between two of them keeps both workers and the distributor busy
/// until SIGTERM, then every mbuf must be back in its pool.
#[test]
fn sigterm_under_load_stops_cleanly_without_leaking() {
    let dir = tmp("load");
    let cfg = dir.join("ctfw.yaml");
    std::fs::write(
        &cfg,
        "ports:\n  - {name: a, device: net_null0, peer: b}\n  - {name: b, device: net_null1, peer: a}\n\
         dataplane: {workers: 2, hugepages: off}\nnon_ip: forward\n",
    )
    .expect("config");
    let report = dir.join("report.json");
    let child = Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args([
            "run",
            "--config",
            cfg.to_str().expect("utf8"),
            "--report-json",
            report.to_str().expect("utf8"),
            "--socket",
            dir.join("ctfw.sock").to_str().expect("utf8"),
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("wait");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let report = read_report(&report);
    assert_eq!(report["stopped_by"], "signal", "{report}");
    let (packets, accepted, _) = counters(&report);
    assert!(packets > 10_000 && accepted > 10_000, "{report}");
    // net_null does not hash: every packet came through the software distributor, and every
    // one it handed to a worker ring was processed before the workers stopped.
    let io = &report["io"];
    assert_eq!(
        packets,
        count(&io["distributor_received"]) - count(&io["distributor_ring_full_dropped"]),
        "{report}"
    );
    assert_eq!(report["memory"], "no_huge", "{report}");
    assert_no_leak(&report);
}

#[test]
fn with_and_without_hugepages_and_two_instances_at_once() {
    let start = |name: &str, huge: &str| {
        let dir = tmp(name);
        let d = dir.display();
        let child = Command::new(env!("CARGO_BIN_EXE_ctfw"))
            .args([
                "run",
                "--config",
                "config/sample.yaml",
                "--hugepages",
                huge,
                "--device",
                &format!("inside=net_pcap0,rx_pcap=samples/inside.pcap,tx_pcap={d}/tx-in.pcap"),
                "--device",
                &format!("outside=net_pcap1,rx_pcap=samples/outside.pcap,tx_pcap={d}/tx-out.pcap"),
                "--idle-exit",
                "1",
                "--report-json",
                &format!("{d}/report.json"),
                "--socket",
                &format!("{d}/ctfw.sock"),
            ])
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        (child, dir)
    };
    // Hugepages when the machine has them (ci/test.sh reserves some), else auto falls back;
    // CTFW_REQUIRE_HUGEPAGES=1 (CI on a machine with hugepages) makes the fallback a failure.
    let require_hugepages = std::env::var("CTFW_REQUIRE_HUGEPAGES").is_ok_and(|v| v == "1");
    let a = start("par-a", "auto");
    let b = start("par-b", "off");
    for ((child, dir), mode) in [(a, "auto"), (b, "off")] {
        let out = child.wait_with_output().expect("wait");
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}",
            text(&out.stderr)
        );
        let report = read_report(&dir.join("report.json"));
        assert_eq!(counters(&report), (21, 19, 2), "{mode}");
        assert_no_leak(&report);
        println!("--hugepages {mode}: ran with memory {}", report["memory"]);
        match mode {
            "off" => assert_eq!(report["memory"], "no_huge", "{report}"),
            _ if require_hugepages => assert_eq!(
                report["memory"],
                "hugepages",
                "CTFW_REQUIRE_HUGEPAGES=1, but --hugepages auto fell back: {}",
                text(&out.stderr)
            ),
            _ => {}
        }
    }
}

#[test]
fn mistakes_get_a_clear_error_and_a_failing_status() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "run",
                "--config",
                "config/sample.yaml",
                "--device",
                "inside=net_bogus0",
            ],
            "net_bogus0",
        ),
        (
            &[
                "run",
                "--config",
                "config/sample.yaml",
                "--device",
                "nowhere=net_null0",
            ],
            "no port named",
        ),
        (
            &[
                "run",
                "--config",
                "config/sample.yaml",
                "--device",
                "inside",
            ],
            "NAME=DEVARGS",
        ),
        (
            &["run", "--config", "config/sample.yaml", "--idle-exit=0"],
            "--idle-exit",
        ),
        (
            &["run", "--config", "/nonexistent.yaml"],
            "/nonexistent.yaml",
        ),
    ];
    let dir = tmp("mistakes");
    let socket = dir.join("ctfw.sock");
    for (args, want) in cases {
        // A control socket of its own: tests run side by side.
        let mut args = args.to_vec();
        args.extend(["--socket", socket.to_str().expect("utf8")]);
        let out = ctfw(&args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // More workers than lcores.
    let dir = tmp("cores");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        "ports:\n  - {name: a, device: net_null0, peer: b}\n  - {name: b, device: net_null1, peer: a}\n\
         dataplane: {workers: 3, lcores: \"0-1\", hugepages: off}\n",
    )
    .expect("config");
    let out = ctfw(&[
        "run",
        "--config",
        cfg.to_str().expect("utf8"),
        "--socket",
        dir.join("ctfw.sock").to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("too few cores"),
        "{}",
        text(&out.stderr)
    );
}
