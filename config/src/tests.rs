//! Tests of loading, validation, compiled rules and the summary.

use ctfw_engine::pipeline::{FragmentPolicy, NonIpPolicy};
use ctfw_engine::rules::{
    Action, CtStateSet, Decision, PortId, PortRange, PortSet, Prefix, RuleInput, TcpFlagsMatch,
};
use ctfw_engine::time::Ticks;
use ctfw_engine::track::{CtState, TrackConfig};
use ctfw_engine::wire::{Family, TcpFlags, proto};

use super::*;
use crate::raw::TIMEOUTS;

const PORTS: &str = "\
ports:
  - name: inside
    device: net_null0
    peer: outside
  - name: outside
    device: net_null1
    peer: inside
";

const FULL: &str = r#"# a full configuration
ports:
  - name: inside
    device: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
    peer: outside
  - name: outside
    device: "net_pcap1,rx_pcap=in1.pcap,tx_pcap=out1.pcap"
    peer: inside
  - name: dmz-a
    device: 0000:03:00.0
    peer: dmz_b
  - name: dmz_b
    device: 0000:03:00.1
    peer: dmz-a
dataplane:
  workers: 2
  lcores: "0-2"
  main_lcore: 0
  memory_mb: 512
  hugepages: off
  file_prefix: ctfw
  burst: 64
  rx_descriptors: 2048
  tx_descriptors: 512
  mbufs_per_port: 16383
  eal_args: ["--no-pci", "--log-level=8"]
conntrack:
  capacity: 1048576
  loose: false
  be_liberal: true
  max_retrans: 5
  ignore_invalid_rst: true
  checksum: false
  fragments: untracked
  timeouts:
    tcp_established: 3600
    udp: 10
non_ip: forward
policy: accept
rules:
  - name: estrel_accept
    ct_state: [established, related]
    action: accept
  - name: new_c2s_accept
    ct_state: [new]
    in_port: inside
    out_port: outside
    action: accept
  - name: synchk
    proto: tcp
    ct_state: [new]
    syn: false
    action: drop
  - family: ipv6
    src: ["2001:db8::/32", "::1"]
    dst: "2001:db8:1::/48"
    proto: udp
    sport: 1024-65535
    dport: [53, "5353", "8000-8080"]
    action: drop
  - src: [10.0.0.0/8, "2001:db8::/32"]
    dst: 192.0.2.1
    proto: 6
    tcp_flags: { mask: [syn, ack, fin, rst], comp: [syn], negate: true }
    in_port: [inside, dmz-a]
    action: drop
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, "test.yaml")
}

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

fn with_ports(rest: &str) -> String {
    format!("{PORTS}{rest}")
}

fn input(ct: Option<CtState>, in_port: u16, flags: Option<u8>) -> RuleInput {
    RuleInput {
        ct,
        in_port: PortId(in_port),
        out_port: PortId(in_port ^ 1),
        family: Family::V4,
        proto: proto::TCP,
        src: 0x0a00_0102,
        dst: 0xc000_0201,
        ports: Some((40000, 80)),
        tcp_flags: flags,
    }
}

#[test]
fn minimal_config_is_two_ports_and_default_drop() {
    let cfg = ok(PORTS);
    assert_eq!(cfg.source, PathBuf::from("test.yaml"));
    assert_eq!(cfg.ports.len(), 2);
    assert_eq!(cfg.ports[0].peer, PortId(1));
    assert_eq!(cfg.ports[1].peer, PortId(0));
    assert_eq!(cfg.engine.peers, vec![PortId(1), PortId(0)]);
    assert_eq!(cfg.engine.capacity, 262_144);
    assert_eq!(cfg.engine.track, TrackConfig::default());
    assert!(cfg.engine.parse.verify_l4_checksum);
    assert_eq!(cfg.engine.fragments, FragmentPolicy::Drop);
    assert_eq!(cfg.engine.non_ip, NonIpPolicy::Drop);
    assert_eq!(cfg.dataplane, Dataplane::default());
    assert!(cfg.rules.is_empty());
    assert_eq!(cfg.rules.default_action(), Action::Drop);
    let d = cfg
        .rules
        .evaluate(&input(Some(CtState::New), 0, Some(TcpFlags::SYN)));
    assert_eq!(
        d,
        Decision {
            action: Action::Drop,
            rule: None
        }
    );
    assert_eq!(cfg.port_by_name("outside"), Some(PortId(1)));
    assert_eq!(cfg.port_by_name("nope"), None);
}

#[test]
fn full_config() {
    let cfg = ok(FULL);
    let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["inside", "outside", "dmz-a", "dmz_b"]);
    assert_eq!(cfg.ports[2].device, "0000:03:00.0");
    assert_eq!(
        cfg.engine.peers,
        vec![PortId(1), PortId(0), PortId(3), PortId(2)]
    );

    let d = &cfg.dataplane;
    assert_eq!(
        (d.workers, d.burst, d.rx_descriptors, d.tx_descriptors),
        (2, 64, 2048, 512)
    );
    assert_eq!(d.lcores.as_deref(), Some("0-2"));
    assert_eq!(d.main_lcore, Some(0));
    assert_eq!(d.memory_mb, 512);
    assert_eq!(d.hugepages, Hugepages::Off);
    assert_eq!(d.file_prefix.as_deref(), Some("ctfw"));
    assert_eq!(d.mbufs_per_port, 16383);
    assert_eq!(d.eal_args, ["--no-pci", "--log-level=8"]);

    let e = &cfg.engine;
    assert_eq!(e.capacity, 1_048_576);
    assert!(!e.track.tcp.loose && e.track.tcp.be_liberal && e.track.tcp.ignore_invalid_rst);
    assert_eq!(e.track.tcp.max_retrans, 5);
    assert!(!e.parse.verify_l4_checksum);
    assert_eq!(e.fragments, FragmentPolicy::Untracked);
    assert_eq!(e.non_ip, NonIpPolicy::Forward);
    assert_eq!(e.track.tcp.timeouts.established, Ticks::from_secs(3600));
    assert_eq!(e.track.other.udp_unreplied, Ticks::from_secs(10));
    assert_eq!(e.track.tcp.timeouts.syn_sent, Ticks::from_secs(120));

    let rules = &cfg.rules;
    assert_eq!(rules.len(), 5);
    assert_eq!(rules.default_action(), Action::Accept);
    assert_eq!(rules.name(2), "synchk");
    assert_eq!(rules.name(3), "rule3");
    assert_eq!(rules.name(4), "rule4");

    let r = rules.rule(1).expect("rule 1");
    assert_eq!(r.ct, Some(CtStateSet::of(&[CtState::New])));
    assert_eq!(r.in_port, PortSet::EMPTY.with(PortId(0)));
    assert_eq!(r.out_port, PortSet::EMPTY.with(PortId(1)));

    let r = rules.rule(2).expect("rule 2");
    assert_eq!(r.proto, Some(proto::TCP));
    assert_eq!(r.tcp_flags, Some(TcpFlagsMatch::SYN.negated()));

    let r = rules.rule(3).expect("rule 3");
    assert_eq!(r.family, Some(Family::V6));
    assert_eq!(r.proto, Some(proto::UDP));
    let v6 = |a: u128, l| Prefix::new(Family::V6, a, l).expect("prefix");
    assert_eq!(&*r.src, &[v6(0x2001_0db8 << 96, 32), v6(1, 128)]);
    assert_eq!(&*r.dst, &[v6(0x2001_0db8_0001 << 80, 48)]);
    assert_eq!(&*r.sport, &[PortRange::new(1024, 65535).expect("range")]);
    let dports = [
        PortRange::single(53),
        PortRange::single(5353),
        PortRange::new(8000, 8080).expect("range"),
    ];
    assert_eq!(&*r.dport, &dports);

    let r = rules.rule(4).expect("rule 4");
    assert_eq!(r.proto, Some(proto::TCP));
    let mask = TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN | TcpFlags::RST;
    assert_eq!(r.tcp_flags, TcpFlagsMatch::new(mask, TcpFlags::SYN, true));
    assert_eq!(
        r.src[0],
        Prefix::new(Family::V4, 0x0a00_0000, 8).expect("prefix")
    );
    assert_eq!(r.src[1].family(), Family::V6);
    assert_eq!(
        &*r.dst,
        &[Prefix::host(Family::V4, 0xc000_0201).expect("host")]
    );
    assert_eq!(
        r.in_port,
        PortSet::EMPTY
            .with(PortId(0))
            .and_then(|s| s.with(PortId(2)))
    );
}

#[test]
fn full_config_rules_evaluate() {
    let cfg = ok(FULL);
    let rules = &cfg.rules;
    // Established: rule 0, whichever port.
    let d = rules.evaluate(&input(Some(CtState::Established), 1, Some(TcpFlags::ACK)));
    assert_eq!(
        d,
        Decision {
            action: Action::Accept,
            rule: Some(0)
        }
    );
    // A new SYN from inside: rule 1.
    let d = rules.evaluate(&input(Some(CtState::New), 0, Some(TcpFlags::SYN)));
    assert_eq!(
        d,
        Decision {
            action: Action::Accept,
            rule: Some(1)
        }
    );
    // A new ACK from outside: synchk drops it.
    let d = rules.evaluate(&input(Some(CtState::New), 1, Some(TcpFlags::ACK)));
    assert_eq!(
        d,
        Decision {
            action: Action::Drop,
            rule: Some(2)
        }
    );
    // A new SYN from outside: no rule; rule 4 wants a non-SYN. Policy accept.
    let d = rules.evaluate(&input(Some(CtState::New), 1, Some(TcpFlags::SYN)));
    assert_eq!(
        d,
        Decision {
            action: Action::Accept,
            rule: None
        }
    );
    // Untracked (fragment policy) SYN|ACK from dmz-a to 192.0.2.1: rule 4.
    let mut p = input(
        Some(CtState::Untracked),
        2,
        Some(TcpFlags::SYN | TcpFlags::ACK),
    );
    p.out_port = PortId(3);
    assert_eq!(
        rules.evaluate(&p),
        Decision {
            action: Action::Drop,
            rule: Some(4)
        }
    );
    // The same with no TCP header: rule 4 cannot match.
    p.tcp_flags = None;
    assert_eq!(rules.evaluate(&p).rule, None);
    // IPv6 UDP DNS from 2001:db8::5 to 2001:db8:1::1: rule 3.
    let dns = RuleInput {
        ct: Some(CtState::New),
        family: Family::V6,
        proto: proto::UDP,
        src: (0x2001_0db8 << 96) | 5,
        dst: (0x2001_0db8_0001 << 80) | 1,
        ports: Some((33333, 53)),
        tcp_flags: None,
        ..input(None, 1, None)
    };
    assert_eq!(
        rules.evaluate(&dns),
        Decision {
            action: Action::Drop,
            rule: Some(3)
        }
    );
    assert_eq!(
        rules
            .evaluate(&RuleInput {
                ports: Some((80, 53)),
                ..dns
            })
            .rule,
        None
    );
    assert_eq!(
        rules
            .evaluate(&RuleInput {
                ports: Some((33333, 54)),
                ..dns
            })
            .rule,
        None
    );
}

#[test]
fn every_timeout_round_trips() {
    let mut yaml = with_ports("conntrack:\n  timeouts:\n");
    for (i, t) in TIMEOUTS.iter().enumerate() {
        yaml.push_str(&format!("    {}: {}\n", t.key, 1000 + i));
    }
    let cfg = ok(&yaml);
    for (i, t) in TIMEOUTS.iter().enumerate() {
        let secs = 1000 + i as u32;
        assert_eq!(
            (t.get)(&cfg.engine.track),
            Ticks::from_secs(secs),
            "{}",
            t.key
        );
    }
    // Each key sets its own field: all the values are distinct.
    let mut seen: Vec<Ticks> = TIMEOUTS
        .iter()
        .map(|t| (t.get)(&cfg.engine.track))
        .collect();
    seen.dedup();
    assert_eq!(seen.len(), TIMEOUTS.len());
    // The extremes are accepted.
    let edge = with_ports("conntrack:\n  timeouts:\n    tcp_close: 1\n    generic: 2592000\n");
    let cfg = ok(&edge);
    assert_eq!(cfg.engine.track.tcp.timeouts.close, Ticks::from_secs(1));
    assert_eq!(cfg.engine.track.other.generic, Ticks::from_secs(2_592_000));
}

#[test]
fn timeouts_table_in_docs_matches_the_keys_and_defaults() {
    // docs/config.md is the one other place the timeout keys are written: its table lists
    // every key, in the same order, with the engine's default.
    let doc = include_str!("../../docs/config.md");
    let section = doc
        .split("### `conntrack.timeouts`")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/config.md has a conntrack.timeouts section");
    let documented: Vec<(&str, String)> = section
        .lines()
        .filter_map(|l| {
            let mut cells = l.strip_prefix("| `")?.split(" | ");
            let key = cells.next()?.strip_suffix('`')?;
            Some((key, cells.next()?.to_owned()))
        })
        .collect();
    let linux = TrackConfig::default();
    let keys: Vec<(&str, String)> = TIMEOUTS
        .iter()
        .map(|t| (t.key, (t.get)(&linux).whole_secs().to_string()))
        .collect();
    assert_eq!(documented, keys);
}

#[test]
fn syn_sent2_keeps_linux_default_when_syn_sent_changes() {
    // Linux has no sysctl for SYN_SENT2: changing nf_conntrack_tcp_timeout_syn_sent leaves
    // SYN_SENT2 at 120 s (nf_conntrack_standalone.c assigns no sysctl to it).
    let cfg = ok(&with_ports(
        "conntrack:\n  timeouts:\n    tcp_syn_sent: 30\n",
    ));
    assert_eq!(cfg.engine.track.tcp.timeouts.syn_sent, Ticks::from_secs(30));
    assert_eq!(
        cfg.engine.track.tcp.timeouts.syn_sent2,
        Ticks::from_secs(120)
    );
}

#[test]
fn classic_rules_compile_and_decide() {
    let cfg = ok(include_str!(
        "../conformance/classic_synchk-loose1-liberal0.yaml"
    ));
    let r = &cfg.rules;
    let names: Vec<&str> = r.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "new_not_syn_drop",
            "estrel_accept",
            "new_c2s_accept",
            "invalid_drop"
        ]
    );
    assert_eq!(r.default_action(), Action::Drop);
    let cases = [
        // (ct, in_port, flags, action, rule)
        (
            Some(CtState::New),
            0,
            Some(TcpFlags::SYN),
            Action::Accept,
            Some(2),
        ),
        (
            Some(CtState::New),
            0,
            Some(TcpFlags::ACK),
            Action::Drop,
            Some(0),
        ),
        (
            Some(CtState::New),
            0,
            Some(TcpFlags::SYN | TcpFlags::ACK),
            Action::Drop,
            Some(0),
        ),
        (
            Some(CtState::New),
            0,
            Some(TcpFlags::SYN | TcpFlags::PSH),
            Action::Accept,
            Some(2),
        ),
        (
            Some(CtState::New),
            1,
            Some(TcpFlags::SYN),
            Action::Drop,
            None,
        ),
        (
            Some(CtState::Established),
            1,
            Some(TcpFlags::ACK),
            Action::Accept,
            Some(1),
        ),
        (
            Some(CtState::Related),
            0,
            Some(TcpFlags::ACK),
            Action::Accept,
            Some(1),
        ),
        (
            Some(CtState::Invalid),
            0,
            Some(TcpFlags::ACK),
            Action::Drop,
            Some(3),
        ),
        (
            Some(CtState::Untracked),
            0,
            Some(TcpFlags::ACK),
            Action::Drop,
            None,
        ),
        (None, 0, None, Action::Drop, None),
    ];
    for (ct, port, flags, action, rule) in cases {
        let d = r.evaluate(&input(ct, port, flags));
        assert_eq!(
            d,
            Decision { action, rule },
            "{ct:?} port {port} flags {flags:?}"
        );
    }
    // A new UDP packet (no TCP flags) passes the SYN check and is accepted from inside.
    let udp = RuleInput {
        proto: proto::UDP,
        tcp_flags: None,
        ..input(Some(CtState::New), 0, None)
    };
    assert_eq!(
        r.evaluate(&udp),
        Decision {
            action: Action::Accept,
            rule: Some(2)
        }
    );
}

#[test]
fn summary_lists_everything() {
    let cfg = ok(FULL);
    let s = cfg.summary();
    for want in [
        "configuration: test.yaml",
        "0 inside ",
        "peer outside",
        "device \"0000:03:00.0\"",
        "2 workers, burst 64",
        "hugepages off",
        "capacity 1048576, loose off, be_liberal on, max_retrans 5",
        "fragments untracked",
        "tcp_established 3600s (Linux 432000s)",
        "udp 10s (Linux 30s)",
        "non-IP frames: forward",
        "estrel_accept   -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "new_c2s_accept  -i inside -o outside -m conntrack --ctstate NEW -j ACCEPT",
        "synchk          -p tcp ! --syn -m conntrack --ctstate NEW -j DROP",
        "-6 -p udp -s 2001:db8::/32,::1 -d 2001:db8:1::/48 --sport 1024:65535 -m multiport --dports 53,5353,8000:8080 -j DROP",
        "-i inside,dmz-a -p tcp -s 10.0.0.0/8,2001:db8::/32 -d 192.0.2.1 ! --syn -j DROP",
        "policy ACCEPT",
    ] {
        assert!(s.contains(want), "summary lacks {want:?}:\n{s}");
    }
    assert!(
        !s.contains("tcp_syn_sent "),
        "default timeouts are not listed:\n{s}"
    );
    let minimal = ok(PORTS).summary();
    assert!(minimal.contains("timeouts: Linux defaults"), "{minimal}");
    assert!(minimal.contains("policy DROP"), "{minimal}");
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = std::env::temp_dir().join(format!("ctfw-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("fw.yaml");
    std::fs::write(&file, PORTS).expect("write");
    let cfg = Config::load(&file).expect("loads");
    assert_eq!(cfg.source, file);
    std::fs::write(&file, "ports: 3\n").expect("write");
    let err = Config::load(&file).expect_err("invalid").to_string();
    assert!(
        err.starts_with(&format!("{}:1:8: ports: ", file.display())),
        "{err}"
    );
    let missing = dir.join("missing.yaml");
    let err = Config::load(&missing).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .contains("missing.yaml: cannot read the configuration"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Loads `text` expecting an error whose message starts with `test.yaml:{at}: {key}: ` and
/// contains every one of `wants`.
#[track_caller]
fn fails(text: &str, at: &str, key: &str, wants: &[&str]) -> ConfigError {
    let err = match load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    let at = if at.is_empty() {
        String::new()
    } else {
        format!(":{at}")
    };
    let key = if key.is_empty() {
        String::new()
    } else {
        format!(" {key}:")
    };
    let prefix = format!("test.yaml{at}:{key} ");
    assert!(
        msg.starts_with(&prefix),
        "message {msg:?} does not start with {prefix:?}"
    );
    for w in wants {
        assert!(msg.contains(w), "message {msg:?} lacks {w:?}");
    }
    err
}

#[test]
fn error_capacity_not_a_number() {
    fails(
        &with_ports("conntrack:\n  capacity: lots\n"),
        "9:13",
        "conntrack.capacity",
        &["expected a whole number between 1024 and 16777215, got \"lots\""],
    );
}

#[test]
fn error_capacity_out_of_range() {
    fails(
        &with_ports("conntrack:\n  capacity: 1023\n"),
        "9:13",
        "conntrack.capacity",
        &["got 1023"],
    );
    fails(
        &with_ports("conntrack:\n  capacity: 16777216\n"),
        "9:13",
        "conntrack.capacity",
        &["got 16777216"],
    );
    fails(
        &with_ports("conntrack:\n  capacity: -5\n"),
        "9:13",
        "conntrack.capacity",
        &["got -5"],
    );
    fails(
        &with_ports("conntrack:\n  capacity: 2.5e6\n"),
        "9:13",
        "conntrack.capacity",
        &["got 2.5e6"],
    );
}

#[test]
fn error_timeouts_zero_or_too_long() {
    let err = fails(
        &with_ports("conntrack:\n  timeouts:\n    tcp_established: 0\n"),
        "10:22",
        "conntrack.timeouts.tcp_established",
        &["expected a whole number between 1 and 2592000 seconds (at most 30 days), got 0"],
    );
    assert!(matches!(err.problem(), Some(Problem::Expected { .. })));
    fails(
        &with_ports("conntrack:\n  timeouts:\n    udp: 2592001\n"),
        "10:10",
        "conntrack.timeouts.udp",
        &["got 2592001"],
    );
    fails(
        &with_ports("conntrack:\n  timeouts:\n    icmp: \"30\"\n"),
        "10:11",
        "conntrack.timeouts.icmp",
        &["got \"30\""],
    );
}

#[test]
fn error_unknown_keys_name_the_key_and_the_valid_ones() {
    let err = fails(
        &with_ports("conntrack:\n  capacty: 5000\n"),
        "9:3",
        "conntrack.capacty",
        &[
            "unknown key `capacty`",
            "did you mean `capacity`?",
            "valid keys here: capacity, loose",
        ],
    );
    let Some(Problem::UnknownKey {
        key,
        valid,
        suggestion,
    }) = err.problem()
    else {
        panic!("not an unknown key: {err}");
    };
    assert_eq!(key, "capacty");
    assert_eq!(suggestion.as_deref(), Some("capacity"));
    assert!(valid.iter().any(|v| v == "timeouts"));
    fails(
        &with_ports("conntrack:\n  timeouts:\n    tcp_establised: 5\n"),
        "10:5",
        "conntrack.timeouts.tcp_establised",
        &["did you mean `tcp_established`?"],
    );
    fails(
        "ports:\n  - name: a\n    pear: b\n",
        "3:5",
        "ports[0].pear",
        &["unknown key `pear`", "did you mean `peer`?"],
    );
    fails(
        &with_ports("polcy: accept\n"),
        "8:1",
        "polcy",
        &["did you mean `policy`?", "rules"],
    );
    fails(
        &with_ports(
            "rules:\n  - action: drop\n    tcp_flags: {mask: [syn], comp: [], negat: true}\n",
        ),
        "10:40",
        "rules[0].tcp_flags.negat",
        &["did you mean `negate`?"],
    );
    let err = fails(
        &with_ports("zzz: 1\n"),
        "8:1",
        "zzz",
        &["unknown key `zzz`; valid keys here: ports"],
    );
    assert!(matches!(
        err.problem(),
        Some(Problem::UnknownKey {
            suggestion: None,
            ..
        })
    ));
}

#[test]
fn error_yaml_syntax_and_shape() {
    let err = fails("ports: [\n", "1:8", "ports", &["unclosed bracket"]);
    assert!(matches!(err.problem(), Some(Problem::Yaml(_))), "{err}");
    fails(
        "- a\n- b\n",
        "1:1",
        "",
        &["expected a mapping (`key: value` lines) here"],
    );
    fails(
        &with_ports(
            "rules:\n  - action: drop\n    tcp_flags: {mask: [syn, ack], comp: [ack, urg]}\n",
        ),
        "10:41",
        "rules[0].tcp_flags.comp",
        &["comp has urg, which mask lacks: every flag in comp must be in mask"],
    );
    fails(
        &with_ports("conntrack: [1]\n"),
        "8:12",
        "conntrack",
        &["expected a mapping"],
    );
    fails("ports: 3\n", "1:8", "ports", &["expected a list here"]);
    fails(
        &with_ports("conntrack:\n  loose: true\n  loose: false\n"),
        "10:3",
        "conntrack",
        &["duplicate", "loose"],
    );
    fails(
        &with_ports("conntrack:\n  capacity: [1]\n"),
        "9:3",
        "conntrack.capacity",
        &["expected a single value, got a list"],
    );
}

#[test]
fn error_booleans_are_strict() {
    fails(
        &with_ports("conntrack:\n  loose: yes\n"),
        "9:10",
        "conntrack.loose",
        &["expected true or false, got \"yes\""],
    );
    fails(
        &with_ports("rules:\n  - action: drop\n    syn: 1\n"),
        "10:10",
        "rules[0].syn",
        &["expected true or false, got 1"],
    );
}

#[test]
fn error_keywords() {
    fails(
        &with_ports("policy: reject\n"),
        "8:9",
        "policy",
        &["expected drop or accept, got \"reject\""],
    );
    fails(
        &with_ports("non_ip: pass\n"),
        "8:9",
        "non_ip",
        &["expected drop or forward"],
    );
    fails(
        &with_ports("conntrack:\n  fragments: reassemble\n"),
        "9:14",
        "conntrack.fragments",
        &["expected drop or untracked"],
    );
    fails(
        &with_ports("dataplane:\n  hugepages: maybe\n"),
        "9:14",
        "dataplane.hugepages",
        &["expected auto, on or off"],
    );
    fails(
        &with_ports("rules:\n  - action: drop\n    ct_state: [new, estab]\n"),
        "10:21",
        "rules[0].ct_state[1]",
        &["expected new, established, related, invalid or untracked, got \"estab\""],
    );
    fails(
        &with_ports("rules:\n  - action: drop\n    family: inet\n"),
        "10:13",
        "rules[0].family",
        &["expected ipv4 or ipv6"],
    );
    fails(
        &with_ports("rules:\n  - action: drop\n    proto: sctp\n"),
        "10:12",
        "rules[0].proto",
        &["expected tcp, udp, icmp, icmpv6 or a protocol number 0-255, got \"sctp\""],
    );
    fails(
        &with_ports("rules:\n  - action: drop\n    proto: 256\n"),
        "10:12",
        "rules[0].proto",
        &["0 and 255, got 256"],
    );
    fails(
        &with_ports("rules:\n  - action: drop\n    tcp_flags: {mask: [syn, sin], comp: [syn]}\n"),
        "10:29",
        "rules[0].tcp_flags.mask[1]",
        &["expected fin, syn, rst, psh, ack, urg, ece or cwr, got \"sin\""],
    );
}

#[test]
fn error_rule_action_missing_or_empty() {
    let err = fails(
        &with_ports("rules:\n  - name: x\n    ct_state: [new]\n"),
        "9:5",
        "rules[0].action",
        &["missing: every rule needs an action: accept or drop"],
    );
    assert!(matches!(err.problem(), Some(Problem::Missing { .. })));
    fails(
        &with_ports("rules:\n  - action: \"\"\n"),
        "9:13",
        "rules[0].action",
        &["expected accept or drop, got \"\""],
    );
    fails(
        &with_ports("rules:\n  - action:\n    ct_state: new\n"),
        "9:5",
        "rules[0].action",
        &["missing"],
    );
}

#[test]
fn port_mtu_defaults_to_ethernet_and_takes_jumbo_frames() {
    let cfg = ok(PORTS);
    assert!(cfg.ports.iter().all(|p| p.mtu == 1500));
    let jumbo = "ports:\n  - {name: a, device: d0, peer: b, mtu: 9000}\n  - {name: b, device: d1, peer: a, mtu: 1280}\n";
    let cfg = ok(jumbo);
    assert_eq!((cfg.ports[0].mtu, cfg.ports[1].mtu), (9000, 1280));
    assert!(cfg.summary().contains("mtu 9000"), "{}", cfg.summary());
    for (bad, at) in [
        ("9001", "2:41"),
        ("67", "2:41"),
        ("jumbo", "2:41"),
        ("-1", "2:41"),
    ] {
        let text = format!(
            "ports:\n  - {{name: a, device: d0, peer: b, mtu: {bad}}}\n  - {{name: b, device: d1, peer: a}}\n"
        );
        fails(
            &text,
            at,
            "ports[0].mtu",
            &["a whole number between 68 and 9000", bad],
        );
    }
}

#[test]
fn a_port_mtu_cannot_change_on_reload() {
    let old = ok(PORTS);
    let mut new = old.clone();
    new.ports[1].mtu = 9000;
    let refused = old.reload_refusals(&new);
    assert!(refused.iter().any(|r| r.key == "ports"), "{refused:?}");
}

#[test]
fn error_duplicate_port_names_and_devices() {
    let dup = "ports:\n  - name: a\n    device: d0\n    peer: b\n  - name: a\n    device: d1\n    peer: a\n";
    let err = fails(
        dup,
        "5:11",
        "ports[1].name",
        &["duplicate port name `a` (first used on line 2)"],
    );
    assert!(matches!(
        err.problem(),
        Some(Problem::Duplicate { first_line: 2, .. })
    ));
    let dev = "ports:\n  - name: a\n    device: d0\n    peer: b\n  - name: b\n    device: d0\n    peer: a\n";
    fails(
        dev,
        "6:13",
        "ports[1].device",
        &["duplicate device `d0` (first used on line 3)"],
    );
}

#[test]
fn error_port_names_and_counts() {
    let bad = "ports:\n  - name: Inside\n    device: d0\n    peer: b\n  - name: b\n    device: d1\n    peer: a\n";
    fails(
        bad,
        "2:11",
        "ports[0].name",
        &[
            "expected a name of lower-case letters, digits, `_` and `-`",
            "got \"Inside\"",
        ],
    );
    let one = "ports:\n  - name: a\n    device: d0\n    peer: a\n";
    fails(
        one,
        "2:3",
        "ports",
        &["expected between 2 and 64 ports (peers come in pairs), got 1"],
    );
    let none = "policy: drop\n";
    let err = fails(none, "", "ports", &["missing: list the firewall's ports"]);
    assert_eq!(err.diagnostic().and_then(|d| d.at), None);
    fails("", "", "ports", &["missing"]);
    let no_dev = "ports:\n  - name: a\n    peer: b\n  - name: b\n    device: d1\n    peer: a\n";
    fails(
        no_dev,
        "2:5",
        "ports[0].device",
        &["missing: the DPDK device"],
    );
}

#[test]
fn error_peers() {
    let unknown = "ports:\n  - name: inside\n    device: d0\n    peer: outsde\n  - name: outside\n    device: d1\n    peer: inside\n";
    let err = fails(
        unknown,
        "4:11",
        "ports[0].peer",
        &["no port named `outsde` (did you mean `outside`?); the ports are: inside, outside"],
    );
    assert!(matches!(err.problem(), Some(Problem::UnknownPort { .. })));
    let asym = "ports:
  - name: a
    device: d0
    peer: b
  - name: b
    device: d1
    peer: c
  - name: c
    device: d2
    peer: b
";
    let err = fails(
        asym,
        "4:11",
        "ports[0].peer",
        &["port `a` has peer `b`, but `b` has peer `c`; peers must name each other"],
    );
    assert!(matches!(err.problem(), Some(Problem::PeerNotMutual { .. })));
    let selfish = "ports:\n  - name: a\n    device: d0\n    peer: a\n  - name: b\n    device: d1\n    peer: b\n";
    fails(
        selfish,
        "4:11",
        "ports[0].peer",
        &["cannot be its own peer"],
    );
}

#[test]
fn error_rule_names_unknown_port() {
    fails(
        &with_ports("rules:\n  - action: accept\n    in_port: insde\n"),
        "10:14",
        "rules[0].in_port",
        &["no port named `insde` (did you mean `inside`?)"],
    );
    fails(
        &with_ports("rules:\n  - action: accept\n    out_port: [outside, dmz]\n"),
        "10:25",
        "rules[0].out_port[1]",
        &["no port named `dmz`"],
    );
}

#[test]
fn error_duplicate_rule_names() {
    fails(
        &with_ports("rules:\n  - name: a\n    action: drop\n  - name: a\n    action: drop\n"),
        "11:11",
        "rules[1].name",
        &["duplicate rule name `a` (first used on line 9)"],
    );
    fails(
        &with_ports("rules:\n  - name: rule1\n    action: drop\n  - action: drop\n"),
        "11:5",
        "rules[1]",
        &["unnamed rule is called `rule1`, a name already used on line 9"],
    );
}

#[test]
fn error_bad_prefixes() {
    let rule = |m: &str| with_ports(&format!("rules:\n  - action: drop\n    {m}\n"));
    fails(
        &rule("src: 10.0.0.0/33"),
        "10:10",
        "rules[0].src",
        &["expected a prefix length between 0 and 32 after an IPv4 address, got \"10.0.0.0/33\""],
    );
    fails(
        &rule("dst: [192.0.2.0/24, 10.0.0.1/8]"),
        "10:25",
        "rules[0].dst[1]",
        &[
            "10.0.0.1/8 has host bits set past /8: write 10.0.0.0/8 for the network, or 10.0.0.1 for the single address",
        ],
    );
    fails(
        &rule("src: \"2001:db8::1/129\""),
        "10:10",
        "rules[0].src",
        &["between 0 and 128 after an IPv6 address"],
    );
    fails(
        &rule("src: 300.1.1.1"),
        "10:10",
        "rules[0].src",
        &["expected an IPv4 or IPv6 address or prefix"],
    );
    fails(&rule("src: 10"), "10:10", "rules[0].src", &["got 10"]);
    fails(
        &rule("src: []"),
        "10:10",
        "rules[0].src",
        &["expected at least one address or prefix, got an empty list"],
    );
}

#[test]
fn error_bad_port_ranges() {
    let rule = |m: &str| with_ports(&format!("rules:\n  - action: drop\n    {m}\n"));
    fails(
        &rule("dport: 9000-8000"),
        "10:12",
        "rules[0].dport",
        &["port range 9000-8000 is reversed: write 8000-9000"],
    );
    fails(
        &rule("sport: 65536"),
        "10:12",
        "rules[0].sport",
        &["expected a port 0-65535 or a range \"lo-hi\", got 65536"],
    );
    fails(
        &rule("dport: [80, http]"),
        "10:17",
        "rules[0].dport[1]",
        &["got \"http\""],
    );
    fails(
        &rule("dport: 1-2-3"),
        "10:12",
        "rules[0].dport",
        &["got \"1-2-3\""],
    );
}

#[test]
fn error_rules_that_could_never_match() {
    let rule = |m: &str| with_ports(&format!("rules:\n  - action: drop\n{m}"));
    fails(
        &rule("    proto: udp\n    syn: true\n"),
        "11:10",
        "rules[0].syn",
        &["proto is udp: this rule could never match"],
    );
    fails(
        &rule("    proto: icmp\n    dport: 80\n"),
        "11:12",
        "rules[0].dport",
        &["dport needs TCP or UDP, but proto is icmp"],
    );
    fails(
        &rule("    family: ipv4\n    src: \"2001:db8::/32\"\n"),
        "11:10",
        "rules[0].src",
        &["2001:db8::/32 is not of the rule's family"],
    );
    fails(
        &rule("    family: ipv6\n    proto: icmp\n"),
        "11:12",
        "rules[0].proto",
        &["ICMP is IPv4-only"],
    );
    fails(
        &rule("    src: 10.0.0.0/8\n    dst: \"::1\"\n"),
        "11:10",
        "rules[0].dst",
        &["src and dst prefixes are of different address families"],
    );
    fails(
        &rule("    in_port: inside\n    out_port: inside\n"),
        "11:15",
        "rules[0].out_port",
        &["could never match"],
    );
    fails(
        &rule("    syn: true\n    tcp_flags: {mask: [syn], comp: [syn]}\n"),
        "10:10",
        "rules[0].syn",
        &["give either syn or tcp_flags, not both"],
    );
    fails(
        &rule("    tcp_flags: {mask: [syn], comp: [ack]}\n"),
        "10:36",
        "rules[0].tcp_flags.comp",
        &["every flag in comp must be in mask"],
    );
    fails(
        &rule("    tcp_flags: {mask: [syn]}\n"),
        "10:16",
        "rules[0].tcp_flags.comp",
        &["missing"],
    );
}

#[test]
fn error_dataplane_ranges() {
    fails(
        &with_ports("dataplane:\n  workers: 0\n"),
        "9:12",
        "dataplane.workers",
        &["between 1 and 64, got 0"],
    );
    fails(
        &with_ports("dataplane:\n  burst: 512\n"),
        "9:10",
        "dataplane.burst",
        &["between 1 and 256, got 512"],
    );
    fails(
        &with_ports("dataplane:\n  file_prefix: \"a/b\"\n"),
        "9:16",
        "dataplane.file_prefix",
        &["got \"a/b\""],
    );
    fails(
        &with_ports("dataplane:\n  eal_args: [\"\"]\n"),
        "9:14",
        "dataplane.eal_args[0]",
        &["non-empty"],
    );
}

#[test]
fn error_eal_args_may_not_change_the_mempool_ops() {
    let why = "needs DPDK's default multi-producer/multi-consumer ops";
    fails(
        &with_ports(
            "dataplane:\n  eal_args: [\"--no-pci\", \"--mbuf-pool-ops-name\", \"ring_sp_sc\"]\n",
        ),
        "9:26",
        "dataplane.eal_args[1]",
        &["\"--mbuf-pool-ops-name\" would change the mempool ops", why],
    );
    fails(
        &with_ports("dataplane:\n  eal_args: --mbuf-pool-ops-name=ring_sp_sc\n"),
        "9:13",
        "dataplane.eal_args",
        &["\"--mbuf-pool-ops-name=ring_sp_sc\"", why],
    );
    // getopt_long would take an unambiguous abbreviation for the option.
    fails(
        &with_ports("dataplane:\n  eal_args: [\"--mbuf-pool=stack\"]\n"),
        "9:14",
        "dataplane.eal_args[0]",
        &[why],
    );
    // Other options pass, even those that begin like it (`--m` is ambiguous to getopt_long).
    let cfg = ok(&with_ports(
        "dataplane:\n  eal_args: [\"--m\", \"--match-allocations\", \"--vdev=net_null2\"]\n",
    ));
    assert_eq!(
        cfg.dataplane.eal_args,
        ["--m", "--match-allocations", "--vdev=net_null2"]
    );
}

#[test]
fn yaml_anchors_and_aliases_work() {
    let text = with_ports(
        "rules:\n  - ct_state: &est [established, related]\n    action: accept\n  - ct_state: *est\n    in_port: inside\n    action: accept\n",
    );
    let cfg = ok(&text);
    assert_eq!(
        cfg.rules.rule(1).and_then(|r| r.ct),
        Some(CtStateSet::of(&[CtState::Established, CtState::Related]))
    );
}

#[test]
fn service_sections_default_and_parse() {
    let d = ok(PORTS);
    assert_eq!(
        d.control.socket,
        std::path::PathBuf::from("/run/ctfw/ctfw.sock")
    );
    assert_eq!(d.metrics.listen, None);
    assert_eq!(d.log, crate::Logging::default());
    assert_eq!(d.control.client_timeout_secs, 10);
    let c = ok(&with_ports(
        "control:\n  socket: /tmp/x/ctfw.sock\n  client_timeout: 45\nmetrics:\n  listen: \"[::1]:9469\"\n\
         log:\n  file: /var/log/ctfw/log.jsonl\n  rate: 5\n  burst: 7\n  policy: true\n",
    ));
    assert_eq!(
        c.control.socket,
        std::path::PathBuf::from("/tmp/x/ctfw.sock")
    );
    assert_eq!(c.control.client_timeout_secs, 45);
    assert_eq!(c.metrics.listen, Some("[::1]:9469".parse().expect("addr")));
    assert_eq!(
        c.log,
        crate::Logging {
            target: crate::LogTarget::File("/var/log/ctfw/log.jsonl".into()),
            rate: 5,
            burst: 7,
            policy: true,
        }
    );
    let e = ok(&with_ports("log:\n  file: stderr\n"));
    assert_eq!(e.log.target, crate::LogTarget::Stderr);
}

#[test]
fn error_service_sections() {
    fails(
        &with_ports("control:\n  socket: ctfw.sock\n"),
        "9:11",
        "control.socket",
        &["expected an absolute path to a socket file, at most 107 bytes, got \"ctfw.sock\""],
    );
    fails(
        &with_ports("control:\n  client_timeout: 0\n"),
        "9:19",
        "control.client_timeout",
        &["expected a whole number between 1 and 3600, got 0"],
    );
    fails(
        &with_ports("metrics:\n  listen: localhost\n"),
        "9:11",
        "metrics.listen",
        &["expected an IP address and port, e.g. 127.0.0.1:9469 or [::1]:9469, got \"localhost\""],
    );
    fails(
        &with_ports("log:\n  rate: 0\n"),
        "9:9",
        "log.rate",
        &["expected a whole number between 1 and 1000000, got 0"],
    );
    fails(
        &with_ports("log:\n  file: drops.log\n"),
        "9:9",
        "log.file",
        &["expected an absolute file path, or stderr, got \"drops.log\""],
    );
    fails(
        &with_ports("metrics:\n  port: 9469\n"),
        "9:3",
        "metrics.port",
        &["unknown key `port`; valid keys here: listen"],
    );
}

#[test]
fn reload_refuses_what_needs_a_restart_and_only_that() {
    let base = ok(PORTS);
    // Rules, policy, knobs, timeouts and logging may change live.
    let live = ok(&with_ports(
        "policy: accept\nconntrack:\n  loose: false\n  timeouts:\n    tcp_established: 3600\n\
         log:\n  rate: 99\n",
    ));
    assert_eq!(base.reload_refusals(&live), vec![]);
    let moved = ok(&with_ports(
        "dataplane:\n  workers: 2\nconntrack:\n  capacity: 4096\ncontrol:\n  socket: /tmp/other.sock\n",
    ));
    let keys: Vec<&str> = base.reload_refusals(&moved).iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        ["dataplane.workers", "conntrack.capacity", "control.socket"]
    );
    let other_ports = ok(&PORTS.replace("net_null0", "net_null7"));
    let keys: Vec<&str> = base
        .reload_refusals(&other_ports)
        .iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, ["ports"]);
}

#[test]
fn rule_log_policy_log_and_accounting() {
    let c = ok(&with_ports(
        "conntrack:\n  accounting: true\nlog:\n  policy: true\n  rate: 3\n  burst: 4\n\
         rules:\n  - name: web\n    proto: tcp\n    dport: 80\n    action: accept\n    log: true\n\
         \x20 - name: quiet\n    action: drop\n",
    ));
    assert!(c.engine.accounting);
    assert_eq!((c.engine.log_rate, c.engine.log_burst), (3, 4));
    assert!(c.rules.logs(Some(0)) && !c.rules.logs(Some(1)) && c.rules.logs(None));
    let summary = c.summary();
    assert!(summary.contains("--dport 80 -j ACCEPT (log)"), "{summary}");
    assert!(summary.contains("policy DROP (log)"), "{summary}");
    assert!(summary.contains("accounting on"), "{summary}");
    let d = ok(PORTS);
    assert!(!d.engine.accounting && !d.rules.any_log());
    fails(
        &with_ports("rules:\n  - name: x\n    action: drop\n    log: yes\n"),
        "11:10",
        "rules[0].log",
        &["expected true or false, got \"yes\""],
    );
}
