//! End-to-end tests of the Prometheus endpoint (`metrics.listen`): the real `ctfw run` on
//! `net_pcap` devices replaying the bundled sample, scraped over HTTP while it runs.
//!
//! The scraped text is checked twice: `promtool check metrics` (Debian's `prometheus`
//! package, which `ci/common.sh` installs) validates the format and Prometheus' naming
//! rules, and the values are compared with the traffic (the capture files) and with the
//! run's own JSON report, written from the workers' final engines: a different path from
//! the snapshots the endpoint serves.

mod common;

use common::{Running, root, text, tmp};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctfw_tracegen::read::CaptureReader;
use serde_json::Value;

/// How long a run may take to start and process the sample.
const DEADLINE: Duration = Duration::from_secs(60);

/// One sample of the exposition: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped). Label values may hold
/// `\"`, `\\` and `\n` escapes. Panics on a line it cannot read: promtool judges the format,
/// this only needs to read what ctfw writes.
fn parse(exposition: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in exposition.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => bad(line),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let Some((key, after)) = inner.split_once("=\"") else {
                    bad(line)
                };
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => bad(line),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => bad(line),
                    }
                };
                labels.insert(key.to_owned(), value);
                inner = after[end + 1..].trim_start_matches(',');
            }
        }
        let value = rest.trim().split(' ').next().unwrap_or("");
        let value: f64 = value.parse().unwrap_or_else(|_| bad(line));
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

fn bad(line: &str) -> ! {
    panic!("unreadable sample line: {line:?}")
}

/// The sum of the samples of `name` whose labels include `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Whether some sample of `name` has labels including `with`.
fn has(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> bool {
    samples.iter().any(|s| {
        s.name == name
            && with
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// `GET path` over HTTP/1.1: status, headers (lower-cased names) and body; `None` if
/// nothing listens yet.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, BTreeMap<String, String>, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((status, headers, body.to_owned()))
}

/// An address on the loopback that nothing listens on (just now).
fn free_addr() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `config/sample.yaml` with `metrics.listen: addr` and a control socket of its own (tests
/// run side by side), written in `dir`.
fn sample_config(dir: &Path, addr: SocketAddr) -> String {
    let sample = std::fs::read_to_string(root().join("config/sample.yaml")).expect("sample");
    let path = dir.join("ctfw.yaml");
    let socket = dir.join("ctfw.sock");
    std::fs::write(
        &path,
        format!(
            "{sample}\nmetrics:\n  listen: {addr}\ncontrol:\n  socket: {}\n",
            socket.display()
        ),
    )
    .expect("config");
    path.to_str().expect("utf8").to_owned()
}

/// Packets in a capture.
fn packets_in(path: &str) -> f64 {
    CaptureReader::open(root().join(path))
        .expect("capture")
        .count() as f64
}

/// promtool's verdict on `exposition` (its exit status and what it printed).
fn promtool(exposition: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's `prometheus` package \
                 (ci/common.sh's ensure_build_deps does)"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn a_running_firewall_is_scraped_and_its_metrics_match_the_traffic() {
    let dir = tmp("metrics");
    let d = dir.display();
    let addr = free_addr();
    let cfg = sample_config(&dir, addr);
    let report = dir.join("report.json");
    // Two workers: net_pcap cannot hash, so the main lcore distributes, and the engine's
    // metrics come from two snapshots.
    let child = Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args([
            "run",
            "--config",
            &cfg,
            "--workers",
            "2",
            "--device",
            &format!("inside=net_pcap0,rx_pcap=samples/inside.pcap,tx_pcap={d}/tx-inside.pcap"),
            "--device",
            &format!("outside=net_pcap1,rx_pcap=samples/outside.pcap,tx_pcap={d}/tx-outside.pcap"),
            // A backstop: the test stops it with SIGTERM long before.
            "--idle-exit",
            "120",
            "--report-json",
            report.to_str().expect("utf8"),
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let running = Running(Some(child));

    let inside = packets_in("samples/inside.pcap");
    let outside = packets_in("samples/outside.pcap");
    let started = Instant::now();
    let (headers, body, samples) = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "the endpoint never showed all {} packets",
            inside + outside
        );
        if let Some((status, headers, body)) = get(addr, "/metrics") {
            assert_eq!(status, 200, "{body}");
            let samples = parse(&body);
            let decided = sum(&samples, "ctfw_packets_total", &[]);
            let received = sum(&samples, "ctfw_port_receive_packets_total", &[]);
            if decided == inside + outside && received == inside + outside {
                break (headers, body, samples);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    let (valid, said) = promtool(&body);
    assert!(valid, "promtool check metrics:\n{said}\n{body}");
    assert_eq!(get(addr, "/nothing-here").map(|r| r.0), Some(404));

    // By ingress port: what each capture holds, by the engine and by the device.
    for (port, n) in [("inside", inside), ("outside", outside)] {
        assert_eq!(sum(&samples, "ctfw_packets_total", &[("port", port)]), n);
        assert_eq!(
            sum(
                &samples,
                "ctfw_port_receive_packets_total",
                &[("port", port)]
            ),
            n
        );
        assert_eq!(
            sum(
                &samples,
                "ctfw_port_xstat",
                &[("port", port), ("stat", "rx_good_packets")]
            ),
            n
        );
        assert_eq!(
            sum(&samples, "ctfw_mempool_mbufs", &[("port", port)]),
            8191.0
        );
    }
    assert_eq!(
        sum(&samples, "ctfw_distributor_received_packets_total", &[]),
        inside + outside
    );
    for w in ["0", "1"] {
        assert!(
            has(&samples, "ctfw_worker_busy_ratio", &[("worker", w)]),
            "{body}"
        );
    }
    assert!(sum(&samples, "ctfw_worker_polls_total", &[("result", "busy")]) > 0.0);
    // Every reason is a label, zeros included; every rule too.
    for reason in ["table_full", "rule_drop", "default_policy", "fragment"] {
        assert!(
            has(
                &samples,
                "ctfw_dropped_packets_total",
                &[("reason", reason)]
            ),
            "{reason}: {body}"
        );
    }
    assert!(has(
        &samples,
        "ctfw_invalid_packets_total",
        &[("reason", "tcp_bad_flags")]
    ));
    for rule in [
        "established",
        "invalid",
        "new_not_syn",
        "outbound",
        "ssh_to_bastion",
    ] {
        assert!(
            has(&samples, "ctfw_rule_hits_total", &[("rule", rule)]),
            "{rule}: {body}"
        );
    }

    // The run's final report agrees (nothing arrived after the scrape).
    let out = running.stop();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report"))
        .expect("the JSON report");
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")) as f64;
    let c = &report["counters"];
    assert_eq!(sum(&samples, "ctfw_packets_total", &[]), n(&c["packets"]));
    for verdict in ["accepted", "dropped"] {
        assert_eq!(
            sum(&samples, "ctfw_packets_total", &[("verdict", verdict)]),
            n(&c[verdict]),
            "{verdict}"
        );
    }
    assert_eq!(
        sum(&samples, "ctfw_packet_bytes_total", &[]),
        n(&c["bytes"])
    );
    for (metric, key) in [
        ("ctfw_dropped_packets_total", "dropped_by_reason"),
        ("ctfw_invalid_packets_total", "invalid_by_reason"),
        ("ctfw_ignored_packets_total", "ignored_by_reason"),
    ] {
        let by = c[key].as_object().expect(key);
        for (reason, count) in by {
            assert_eq!(
                sum(&samples, metric, &[("reason", reason)]),
                n(count),
                "{reason}"
            );
        }
    }
    assert!(n(&c["dropped_by_reason"]["rule_drop"]) > 0.0, "{report}");
    for hit in report["rule_hits"]["rules"].as_array().expect("rules") {
        let rule = hit["rule"].as_str().expect("name");
        assert_eq!(
            sum(&samples, "ctfw_rule_hits_total", &[("rule", rule)]),
            n(&hit["packets"]),
            "{rule}"
        );
    }
    assert_eq!(
        sum(&samples, "ctfw_default_policy_hits_total", &[]),
        n(&report["rule_hits"]["default_policy"])
    );
    assert_eq!(
        sum(&samples, "ctfw_conntrack_created_total", &[]),
        n(&c["connections"]["created"])
    );
    assert_eq!(
        sum(&samples, "ctfw_conntrack_entries_limit", &[]),
        n(&report["table"]["capacity"])
    );
    // Entries by protocol and state add up to the table's entries; the sample's connections
    // include TCP (a closed HTTP exchange) and UDP (DNS).
    assert_eq!(
        sum(&samples, "ctfw_conntrack_entries", &[]),
        n(&report["table"]["entries"])
    );
    assert!(sum(&samples, "ctfw_conntrack_entries", &[("proto", "tcp")]) > 0.0);
    assert!(sum(&samples, "ctfw_conntrack_entries", &[("proto", "udp")]) > 0.0);
    for p in report["ports"].as_array().expect("ports") {
        let port = p["name"].as_str().expect("name");
        assert_eq!(
            sum(
                &samples,
                "ctfw_port_transmit_packets_total",
                &[("port", port)]
            ),
            n(&p["stats"]["tx_packets"]),
            "{port}"
        );
    }
}

#[test]
fn an_address_in_use_stops_the_start_with_a_clear_error() {
    let dir = tmp("metrics-in-use");
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let cfg = sample_config(&dir, addr);
    let out = common::ctfw(&["run", "--config", &cfg, "--idle-exit", "1"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("metrics.listen") && stderr.contains(&addr.to_string()),
        "{stderr}"
    );
    // Refused before DPDK started.
    assert!(!stderr.contains("EAL"), "{stderr}");
}

#[test]
fn the_parser_reads_labels_escapes_and_values() {
    let s = parse("# HELP x y\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uo\\\\te\"} 3\nup 1.5\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].name, "x_total");
    assert_eq!(s[0].labels["b"], "q\"uo\\te");
    assert_eq!(s[0].value, 3.0);
    assert_eq!(s[1].labels.len(), 0);
    assert_eq!(s[1].value, 1.5);
}
