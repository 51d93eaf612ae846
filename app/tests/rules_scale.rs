//! A large rule set through the real binary: `ctfw replay` of a generated mix (handshakes,
//! data, closes, RSTs, UDP, ICMP, invalid packets, IPv6) with the classic three rules behind
//! 3,000 that match none of it decides every packet as the classic three alone: the same
//! counters, the same table, the same hits on the rules that match. The large set is compiled
//! into the engine's classifier when the file is loaded (`docs/config.md`); the fillers are
//! shaped like a real policy, and several agree with the traffic on a field or two.

mod common;

use common::{ctfw, root, text, tmp};
use ctfw_capture::write::{CaptureFile, Resolution};
use ctfw_tracegen::generate::{self, MixedOpts};
use serde_json::Value;

const FILLERS: usize = 3_000;

/// Filler `i`. The generated traffic: clients 10.1.0.0/16 and fd00:1::/32 on `inside`,
/// servers 172.16.0.0/16 and fd00:2::/32 on `outside`; none of the networks below appears.
fn filler(i: usize) -> String {
    let n = i / 6;
    match i % 6 {
        0 => format!(
            "{{proto: tcp, dst: 198.18.{}.{}, dport: {}, action: accept}}",
            n / 256,
            n % 256,
            1 + n % 1000
        ),
        1 => format!("{{src: 100.64.{}.0/24, action: drop}}", n % 256),
        2 => "{in_port: inside, src: 172.31.0.0/16, proto: tcp, sport: \"1024-65535\", \
              action: accept}"
            .to_owned(),
        3 => format!(
            "{{proto: udp, src: 192.0.2.{}, dport: \"{}-{}\", action: accept}}",
            n % 256,
            1000 + n,
            1010 + n
        ),
        4 => format!("{{syn: true, dst: 203.0.113.{}, action: drop}}", n % 256),
        _ => format!(
            "{{dst: \"2001:db8:{n:x}::/48\", proto: tcp, dport: [22, 443], action: accept}}"
        ),
    }
}

fn replay(config: &str, capture: &str, report: &std::path::Path) -> Value {
    let out = ctfw(&[
        "replay",
        "--config",
        config,
        capture,
        "--report-json",
        report.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(report).expect("report")).expect("json")
}

#[test]
fn replay_with_thousands_of_rules_decides_as_the_rules_that_match() {
    let dir = tmp("rules-scale");
    let capture = dir.join("mixed.pcapng");
    let mut sink = CaptureFile::create(&capture, Resolution::Micro).expect("capture");
    let opts = MixedOpts {
        flows: 500,
        packets: 20_000,
        ..MixedOpts::default()
    };
    generate::mixed(&opts, &mut sink).expect("write the capture");
    sink.finish().expect("flush the capture");

    let classic_path = root().join("config/conformance/classic-loose1-liberal0.yaml");
    let classic = std::fs::read_to_string(&classic_path).expect("classic config");
    let (head, rules) = classic.split_once("rules:\n").expect("a rules list");
    let fillers: String = (0..FILLERS)
        .map(|i| format!("  - {}\n", filler(i)))
        .collect();
    let large_path = dir.join("large.yaml");
    std::fs::write(&large_path, format!("{head}rules:\n{fillers}{rules}")).expect("config");

    let cap = capture.to_str().expect("utf8");
    let a = replay(
        classic_path.to_str().expect("utf8"),
        cap,
        &dir.join("classic.json"),
    );
    let b = replay(
        large_path.to_str().expect("utf8"),
        cap,
        &dir.join("large.json"),
    );
    assert_eq!(a["counters"], b["counters"]);
    assert_eq!(a["table"], b["table"]);
    assert_eq!(
        a["rule_hits"]["default_policy"],
        b["rule_hits"]["default_policy"]
    );
    let large_hits = b["rule_hits"]["rules"].as_array().expect("hits");
    assert_eq!(large_hits.len(), FILLERS + 3);
    assert!(
        large_hits[..FILLERS].iter().all(|h| h["packets"] == 0),
        "a filler matched"
    );
    assert_eq!(
        a["rule_hits"]["rules"].as_array().expect("hits").as_slice(),
        &large_hits[FILLERS..]
    );
    // The mix met every classic rule and the default policy.
    let met = |h: &Value| h["packets"].as_u64().is_some_and(|n| n > 0);
    assert!(
        a["rule_hits"]["rules"]
            .as_array()
            .expect("hits")
            .iter()
            .all(met)
            && a["rule_hits"]["default_policy"].as_u64() > Some(0),
        "{}",
        a["rule_hits"]
    );
}
