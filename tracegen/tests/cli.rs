//! The `ctfw-tracegen` binary end to end: files appear where promised, in the promised
//! formats, with the promised packet counts, split files add up, and output is
//! deterministic.

#![allow(clippy::unwrap_used)] // A test file: a failed unwrap is a failed test.

use std::path::Path;
use std::process::Command;

use ctfw_tracegen::read::{CaptureReader, Format, OwnedRecord};

fn run(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ctfw-tracegen"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> (Format, Vec<OwnedRecord>) {
    let r = CaptureReader::open(path).unwrap();
    let format = r.format();
    (format, r.collect::<Result<_, _>>().unwrap())
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ctfw-tracegen-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn sample_writes_three_files() {
    let d = tmp("sample");
    run(&["sample", "--out", d.to_str().unwrap()]);
    let (fmt, all) = read(&d.join("sample.pcapng"));
    assert_eq!(fmt, Format::Pcapng);
    let (fi, inside) = read(&d.join("inside.pcap"));
    let (_, outside) = read(&d.join("outside.pcap"));
    assert!(matches!(fi, Format::Pcap { nanos: false, .. }));
    assert_eq!(inside.len() + outside.len(), all.len());
    let in_ng: Vec<_> = all
        .iter()
        .filter(|r| r.interface_name.as_deref() == Some("inside"))
        .collect();
    assert_eq!(in_ng.len(), inside.len());
    for (a, b) in in_ng.iter().zip(&inside) {
        assert_eq!(a.data, b.data);
        assert_eq!(a.ts_ns / 1000, b.ts_ns / 1000);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn established_counts_split_and_determinism() {
    let d = tmp("est");
    let out = d.join("e.pcap");
    let split = d.join("split");
    let args = [
        "established",
        "--flows",
        "40",
        "--packets",
        "400",
        "--v6-share",
        "0.5",
        "--out",
        out.to_str().unwrap(),
        "--split-by-side",
        split.to_str().unwrap(),
        "--nanos",
    ];
    run(&args);
    let (fmt, recs) = read(&out);
    assert!(matches!(fmt, Format::Pcap { nanos: true, .. }));
    assert_eq!(recs.len(), 40 * 3 + 400);
    let (_, i) = read(&split.join("inside.pcap"));
    let (_, o) = read(&split.join("outside.pcap"));
    assert_eq!(i.len() + o.len(), recs.len());
    let first = std::fs::read(&out).unwrap();
    run(&args);
    assert_eq!(std::fs::read(&out).unwrap(), first, "same seed, same bytes");
    run(&[
        "--seed",
        "99",
        "established",
        "--flows",
        "40",
        "--packets",
        "400",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ne!(std::fs::read(&out).unwrap(), first);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mixed_and_synflood() {
    let d = tmp("mix");
    let m = d.join("m.pcapng");
    run(&[
        "mixed",
        "--flows",
        "20",
        "--packets",
        "500",
        "--out",
        m.to_str().unwrap(),
    ]);
    assert_eq!(read(&m).1.len(), 500);
    let s = d.join("s.pcap");
    run(&["synflood", "--count", "123", "--out", s.to_str().unwrap()]);
    assert_eq!(read(&s).1.len(), 123);
    let bad = Command::new(env!("CARGO_BIN_EXE_ctfw-tracegen"))
        .args([
            "established",
            "--flows",
            "1",
            "--packets",
            "1",
            "--v6-share",
            "2",
            "--out",
        ])
        .arg(d.join("x.pcap"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn soak_writes_a_classic_pcap_net_pcap_can_loop_and_refuses_no_flows() {
    let d = tmp("soak");
    let s = d.join("s.pcap");
    let args = |out: &Path| {
        vec![
            "soak".to_owned(),
            "--packets".into(),
            "3000".into(),
            "--flows".into(),
            "50".into(),
            "--out".into(),
            out.to_str().unwrap().to_owned(),
        ]
    };
    run(&args(&s).iter().map(String::as_str).collect::<Vec<_>>());
    let (format, recs) = read(&s);
    assert!(
        matches!(format, Format::Pcap { nanos: false, .. }),
        "{format:?}"
    );
    // The conversation step that reaches 3000 writes its packet(s) whole.
    assert!((3000..3004).contains(&recs.len()), "{}", recs.len());
    let again = d.join("again.pcap");
    run(&args(&again).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&s).unwrap(), std::fs::read(&again).unwrap());
    let bad = Command::new(env!("CARGO_BIN_EXE_ctfw-tracegen"))
        .args(["soak", "--packets", "10", "--flows", "0", "--out"])
        .arg(d.join("x.pcap"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--flows must be at least 1"));
    std::fs::remove_dir_all(&d).unwrap();
}
