//! The soak script (`ci/soak.sh`) in the test suite: a 20-second soak of the real binary, so
//! that the script and its checker (`ci/soak_check.py`) cannot rot, and the checker shown to
//! fail on a run whose memory grows, whose counters do not add up, or that did not end
//! cleanly (doctored copies of that run's samples and report).

mod common;

use common::{root, text, tmp};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ctfw_tracegen::generate::{self, SoakOpts};
use ctfw_tracegen::write::{CaptureFile, Resolution};
use serde_json::Value;

/// Runs `cmd` from the repository root and waits for it.
fn run(cmd: &mut Command) -> Output {
    cmd.current_dir(root()).output().expect("spawn")
}

/// Both output streams, for assertion messages.
fn both(out: &Output) -> String {
    format!("{}\n{}", text(&out.stdout), text(&out.stderr))
}

/// The soak capture: written here from the library, since an app test cannot name the
/// ctfw-tracegen binary.
fn write_capture(path: &Path) {
    let mut w = CaptureFile::create(path, Resolution::Micro).expect("capture file");
    let opts = SoakOpts {
        flows: 1000,
        packets: 30_000,
        ..Default::default()
    };
    generate::soak(&opts, &mut w).expect("capture");
    w.finish().expect("flush capture");
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).expect("JSON")).expect("write");
}

/// The run's samples, one JSON value per line.
fn read_samples(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("samples")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a sample is JSON"))
        .collect()
}

fn write_samples(path: &Path, samples: &[Value]) {
    let body: String = samples
        .iter()
        .map(|s| serde_json::to_string(s).expect("JSON") + "\n")
        .collect();
    std::fs::write(path, body).expect("write samples");
}

/// The run's verdict (`OUT/check.sh`, which soak.sh writes) with `args` overriding its own.
fn check(run_dir: &Path, args: &[&str]) -> Output {
    run(Command::new("bash")
        .arg(run_dir.join("check.sh"))
        .args(args)
        .arg("--summary")
        .arg(run_dir.join("doctored-summary.json")))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// The doctored checks: the untouched files pass, each broken promise fails and is named.
fn doctored_runs_fail(run_dir: &Path) {
    let samples_path = run_dir.join("samples.jsonl");
    let report_path = run_dir.join("report.json");
    let samples = read_samples(&samples_path);
    let report = read_json(&report_path);
    let out = check(run_dir, &[]);
    assert!(out.status.success(), "the untouched run: {}", both(&out));

    let doctored_samples = run_dir.join("doctored-samples.jsonl");
    let doctored_report = run_dir.join("doctored-report.json");
    let expect_failure = |args: &[&str], want: &str| {
        let out = check(run_dir, args);
        let all = both(&out);
        assert_eq!(out.status.code(), Some(1), "{want}: {all}");
        assert!(all.contains(want), "{want:?} missing from: {all}");
    };

    // Memory: the last third of the samples 64 MiB higher.
    let mut grown = samples.clone();
    let n = grown.len();
    for s in &mut grown[n - n / 3..] {
        let rss = s["rss_kib"].as_u64().expect("rss_kib");
        s["rss_kib"] = (rss + 64 * 1024).into();
    }
    write_samples(&doctored_samples, &grown);
    expect_failure(
        &["--samples", path_str(&doctored_samples)],
        "memory: RSS grew after the warm-up",
    );

    // A slow leak within the bound passes: 1 MiB over the run.
    let mut slow = samples.clone();
    let last = slow.len() - 1;
    let rss = slow[last]["rss_kib"].as_u64().expect("rss_kib");
    slow[last]["rss_kib"] = (rss + 1024).into();
    write_samples(&doctored_samples, &slow);
    let out = check(run_dir, &["--samples", path_str(&doctored_samples)]);
    assert!(out.status.success(), "1 MiB more: {}", both(&out));

    // Counters, final report: one packet forwarded that was never transmitted.
    let mut r = report.clone();
    let accepted = r["counters"]["accepted"].as_u64().expect("accepted");
    r["counters"]["accepted"] = (accepted + 1).into();
    write_json(&doctored_report, &r);
    expect_failure(
        &["--report", path_str(&doctored_report)],
        "accepted = io.transmitted + io.tx_dropped",
    );

    // Counters, final report: a packet the device received that the engine never decided.
    let mut r = report.clone();
    let rx = r["ports"][0]["stats"]["rx_packets"]
        .as_u64()
        .expect("rx_packets");
    r["ports"][0]["stats"]["rx_packets"] = (rx + 1).into();
    write_json(&doctored_report, &r);
    expect_failure(
        &["--report", path_str(&doctored_report)],
        "per port: received - decided, summed = ring-full + re-dispatch drops",
    );

    // Counters, final report: an entry that left the table uncounted.
    let mut r = report.clone();
    let created = r["counters"]["connections"]["created"]
        .as_u64()
        .expect("created");
    r["counters"]["connections"]["created"] = (created + 1).into();
    write_json(&doctored_report, &r);
    expect_failure(
        &["--report", path_str(&doctored_report)],
        "created = expired + closed + evicted + evicted_closing + deleted + entries",
    );

    // Counters, a live sample: a worker dropped a packet under no reason.
    let mut broken = samples.clone();
    let w = &mut broken[n / 2]["stats"]["workers"][0]["counters"];
    let dropped = w["dropped"].as_u64().expect("dropped");
    w["dropped"] = (dropped + 1).into();
    write_samples(&doctored_samples, &broken);
    expect_failure(
        &["--samples", path_str(&doctored_samples)],
        "worker 0: dropped = sum of dropped_by_reason",
    );

    // Churn: a table that never turned over (its counters still add up).
    let mut r = report.clone();
    let entries = r["table"]["entries"].clone();
    let conn = &mut r["counters"]["connections"];
    conn["created"] = entries;
    for k in ["expired", "closed", "evicted", "evicted_closing", "deleted"] {
        conn[k] = 0.into();
    }
    write_json(&doctored_report, &r);
    expect_failure(&["--report", path_str(&doctored_report)], "churn: in");

    // Mbufs: five missing from a pool at exit.
    let mut r = report.clone();
    let free = r["ports"][0]["mempool"]["free"].as_u64().expect("free");
    r["ports"][0]["mempool"]["free"] = (free - 5).into();
    write_json(&doctored_report, &r);
    expect_failure(
        &["--report", path_str(&doctored_report)],
        "mbufs not back at exit",
    );

    // Exit: a non-zero status.
    expect_failure(&["--exit-code", "1"], "exit: ctfw exited with status 1");
}

/// `ci/soak.sh 20`: two workers (the software distributor and their rings included) under
/// the soak mix must pass; then the checker must catch each broken promise in doctored
/// copies of the run's files.
#[test]
fn a_20_second_soak_passes_and_its_checker_catches_what_it_promises() {
    let dir = tmp("soak");
    let capture = dir.join("soak.pcap");
    write_capture(&capture);
    let run_dir: PathBuf = dir.join("run");
    let out = run(Command::new("bash").args([
        "ci/soak.sh",
        "20",
        "--workers",
        "2",
        "--capacity",
        "4096",
        "--interval",
        "1",
        "--ctfw",
        env!("CARGO_BIN_EXE_ctfw"),
        "--capture",
        path_str(&capture),
        "--out",
        path_str(&run_dir),
    ]));
    let all = both(&out);
    println!("{all}");
    assert!(out.status.success(), "ci/soak.sh 20 failed: {all}");
    assert!(all.contains("soak: passed"), "{all}");
    let report = read_json(&run_dir.join("report.json"));
    assert_eq!(
        report["workers"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    doctored_runs_fail(&run_dir);
}
