//! End-to-end tests of the `ctfw` binary, spawned as a user runs it.

mod common;

use common::{ctfw, root, text, tmp};

#[test]
fn check_config_summarises_a_good_file() {
    let out = ctfw(&["check-config", "config/sample.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("config/sample.yaml: OK"), "{s}");
    assert!(s.contains("ssh_to_bastion"), "{s}");
    assert!(s.contains("policy DROP"), "{s}");
}

#[test]
fn check_config_names_file_line_and_key_of_a_mistake() {
    let dir = tmp("badcfg");
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "ports:\n  - {name: a, device: x, peer: b}\n  - {name: b, device: y, peer: a}\nconntrack:\n  capacity: lots\n",
    )
    .expect("write");
    let out = ctfw(&["check-config", f.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("bad.yaml:5:"), "{e}");
    assert!(e.contains("conntrack.capacity"), "{e}");
    assert!(e.contains("expected"), "{e}");
}

#[test]
fn unknown_arguments_are_refused_with_usage() {
    let out = ctfw(&["replay", "--confg", "x.yaml", "t.pcap"]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("--confg") && e.contains("Usage"), "{e}");
}

#[test]
fn replay_prints_counters_and_the_conntrack_table() {
    let out = ctfw(&[
        "replay",
        "--config",
        "config/sample.yaml",
        "samples/sample.pcapng",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("packets 21  accepted 19  dropped 2"), "{s}");
    assert!(s.contains("tcp_bad_flags"), "{s}");
    assert!(
        s.contains("tcp      6 119 TIME_WAIT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 [ASSURED] mark=0 use=1"),
        "{s}"
    );
    assert!(
        s.contains("udp      17 29 src=10.0.1.2 dst=10.0.2.53"),
        "{s}"
    );
}

#[test]
fn replay_of_classic_pcap_needs_a_port_and_takes_a_map() {
    let out = ctfw(&[
        "replay",
        "--config",
        "config/sample.yaml",
        "samples/inside.pcap",
    ]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("--port") && e.contains("--map"), "{e}");

    let out = ctfw(&[
        "replay",
        "--config",
        "config/sample.yaml",
        "samples/inside.pcap",
        "--map",
        "10.0.1.0/24=inside",
        "--map",
        "fd00:1::/64=inside",
        "--port",
        "outside",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Only inside->outside packets: the SYNs open connections, nothing comes back.
    let s = text(&out.stdout);
    assert!(s.contains("SYN_SENT") || s.contains("ESTABLISHED"), "{s}");
}

#[test]
fn replay_writes_a_json_report() {
    let dir = tmp("report");
    let report = dir.join("report.json");
    let out = ctfw(&[
        "replay",
        "--config",
        "config/sample.yaml",
        "samples/sample.pcapng",
        "--report-json",
        report.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let c = &r["counters"];
    assert_eq!(
        (&c["packets"], &c["accepted"], &c["dropped"]),
        (&21.into(), &19.into(), &2.into()),
        "{r}"
    );
    assert_eq!(c["invalid_by_reason"]["tcp_bad_flags"], 1, "{r}");
    assert_eq!(
        c["dropped_by_reason"]["ipv4_bad_checksum"], 0,
        "every reason: {r}"
    );
    let hits = &r["rule_hits"];
    let sum: u64 = hits["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|h| h["packets"].as_u64().expect("count"))
        .sum::<u64>()
        + hits["default_policy"].as_u64().expect("count");
    assert_eq!(sum, 21, "every packet meets a rule or the policy: {r}");
    assert_eq!(r["table"]["entries"], 4, "{r}");
    let listed = r["table"]["listed"].as_array().expect("listed");
    assert!(
        listed.iter().any(|e| e["state"] == "TIME_WAIT"
            && e["timeout"] == 119
            && e["sport"] == 40000
            && e["flags"][0] == "ASSURED"),
        "{r}"
    );
}

#[test]
fn replay_writes_conformance_records() {
    let dir = tmp("jsonl");
    let out_file = dir.join("o.jsonl");
    let trace = ctfw_tracegen::conformance::dir().join("traces/tcp_syn_retransmit.pcapng");
    let out = ctfw(&[
        "replay",
        "--config",
        "config/conformance/classic-loose1-liberal0.yaml",
        trace.to_str().expect("utf8"),
        "--jsonl",
        out_file.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = std::fs::read_to_string(&out_file).expect("read jsonl");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["ct_state"], "new");
    assert_eq!(lines[0]["ct_entries"][0]["state"], "SYN_SENT");
    assert_eq!(lines[0]["ct_entries"][0]["flags"][0], "UNREPLIED");
    // SYN retransmissions do not refresh the timeout: 120 at t=0, 118 at t=2.
    assert_eq!(lines[0]["ct_entries"][0]["timeout"], 120);
    assert_eq!(lines[2]["ct_entries"][0]["timeout"], 118);
    assert_eq!(lines[4]["ct_entries"][0]["state"], "ESTABLISHED");
    assert_eq!(lines[4]["ct_entries"][0]["flags"][0], "ASSURED");
}

#[test]
fn replay_reports_a_missing_or_corrupt_capture() {
    let out = ctfw(&[
        "replay",
        "--config",
        "config/sample.yaml",
        "/nonexistent.pcapng",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent.pcapng"),
        "{}",
        text(&out.stderr)
    );

    let dir = tmp("corrupt");
    let f = dir.join("c.pcapng");
    let mut bytes = std::fs::read(root().join("samples/sample.pcapng")).expect("sample");
    bytes.truncate(bytes.len() - 37);
    std::fs::write(&f, &bytes).expect("write");
    let out = ctfw(&[
        "replay",
        "--config",
        "config/sample.yaml",
        f.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("offset"),
        "{}",
        text(&out.stderr)
    );
}
