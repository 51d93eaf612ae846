//! Unit tests of the matchers, of `Rule::matches` and of the ordered rule set.

use super::*;
use crate::wire::{TcpFlags, proto};

const V4_SRC: u128 = 0x0a00_0102; // 10.0.1.2
const V4_DST: u128 = 0xc000_0201; // 192.0.2.1
const V6_SRC: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001; // 2001:db8::1

fn tcp_input(flags: u8) -> RuleInput {
    RuleInput {
        ct: Some(CtState::New),
        in_port: PortId(0),
        out_port: PortId(1),
        family: Family::V4,
        proto: proto::TCP,
        src: V4_SRC,
        dst: V4_DST,
        ports: Some((40000, 80)),
        tcp_flags: Some(flags),
    }
}

fn accept() -> Rule {
    Rule::new(Action::Accept)
}

fn ports(list: &[u16]) -> PortSet {
    list.iter().fold(PortSet::EMPTY, |s, &p| {
        s.with(PortId(p)).expect("port < 64")
    })
}

fn v4(addr: u128, len: u8) -> Prefix {
    Prefix::new(Family::V4, addr, len).expect("valid prefix")
}

#[test]
fn empty_rule_matches_everything() {
    assert!(accept().matches(&tcp_input(TcpFlags::SYN)));
    let untracked = RuleInput {
        ct: None,
        ports: None,
        tcp_flags: None,
        ..tcp_input(0)
    };
    assert!(accept().matches(&untracked));
}

#[test]
fn ct_state_set_matches_listed_states_only() {
    let rule = Rule {
        ct: Some(CtStateSet::of(&[CtState::Established, CtState::Related])),
        ..accept()
    };
    let mut p = tcp_input(TcpFlags::ACK);
    for s in CtState::ALL {
        p.ct = Some(s);
        let want = matches!(s, CtState::Established | CtState::Related);
        assert_eq!(rule.matches(&p), want, "{s:?}");
    }
}

#[test]
fn ct_state_never_matches_a_packet_that_skipped_conntrack() {
    let every = CtState::ALL
        .iter()
        .fold(CtStateSet::EMPTY, |s, &c| s.with(c));
    let rule = Rule {
        ct: Some(every),
        ..accept()
    };
    let p = RuleInput {
        ct: None,
        ..tcp_input(TcpFlags::ACK)
    };
    assert!(!rule.matches(&p));
}

#[test]
fn in_and_out_port_sets() {
    let rule = Rule {
        in_port: Some(ports(&[0, 2])),
        out_port: Some(ports(&[1])),
        ..accept()
    };
    let p = tcp_input(TcpFlags::SYN);
    assert!(rule.matches(&p));
    assert!(rule.matches(&RuleInput {
        in_port: PortId(2),
        ..p
    }));
    assert!(!rule.matches(&RuleInput {
        in_port: PortId(1),
        ..p
    }));
    assert!(!rule.matches(&RuleInput {
        out_port: PortId(0),
        ..p
    }));
    assert!(!rule.matches(&RuleInput {
        in_port: PortId(1000),
        ..p
    }));
}

#[test]
fn port_set_rejects_ports_past_its_width() {
    assert!(PortSet::EMPTY.with(PortId(63)).is_some());
    assert!(PortSet::EMPTY.with(PortId(64)).is_none());
    assert!(
        !(0..64)
            .map(PortId)
            .fold(PortSet::EMPTY, |s, p| s.with(p).unwrap())
            .contains(PortId(64))
    );
    assert_eq!(
        ports(&[3, 1]).iter().collect::<Vec<_>>(),
        [PortId(1), PortId(3)]
    );
}

#[test]
fn family_and_proto() {
    let p = tcp_input(TcpFlags::SYN);
    assert!(
        Rule {
            family: Some(Family::V4),
            ..accept()
        }
        .matches(&p)
    );
    assert!(
        !Rule {
            family: Some(Family::V6),
            ..accept()
        }
        .matches(&p)
    );
    assert!(
        Rule {
            proto: Some(proto::TCP),
            ..accept()
        }
        .matches(&p)
    );
    assert!(
        !Rule {
            proto: Some(proto::UDP),
            ..accept()
        }
        .matches(&p)
    );
}

#[test]
fn source_and_destination_prefixes() {
    let p = tcp_input(TcpFlags::SYN);
    let src_in = Rule {
        src: Box::new([v4(0x0a00_0000, 8)]),
        ..accept()
    };
    assert!(src_in.matches(&p));
    let src_out = Rule {
        src: Box::new([v4(0x0b00_0000, 8)]),
        ..accept()
    };
    assert!(!src_out.matches(&p));
    let either = Rule {
        src: Box::new([v4(0x0b00_0000, 8), v4(0x0a00_0100, 24)]),
        ..accept()
    };
    assert!(either.matches(&p));
    let dst_host = Rule {
        dst: Box::new([Prefix::host(Family::V4, V4_DST).unwrap()]),
        ..accept()
    };
    assert!(dst_host.matches(&p));
    assert!(!dst_host.matches(&RuleInput {
        dst: V4_DST + 1,
        ..p
    }));
    let any_v4 = Rule {
        src: Box::new([v4(0, 0)]),
        ..accept()
    };
    assert!(any_v4.matches(&p));
}

#[test]
fn v4_prefix_never_matches_v6_packet() {
    let any_v4 = Rule {
        src: Box::new([v4(0, 0)]),
        ..accept()
    };
    let p6 = RuleInput {
        family: Family::V6,
        src: V6_SRC,
        ..tcp_input(0)
    };
    assert!(!any_v4.matches(&p6));
    // Even when the low bits of the v6 address look like the v4 prefix.
    let low = RuleInput {
        family: Family::V6,
        src: V4_SRC,
        ..tcp_input(0)
    };
    let v4_exact = Rule {
        src: Box::new([v4(V4_SRC, 32)]),
        ..accept()
    };
    assert!(!v4_exact.matches(&low));
    let v6 = Prefix::new(Family::V6, 0x2001_0db8 << 96, 32).unwrap();
    let v6_rule = Rule {
        src: Box::new([v6]),
        ..accept()
    };
    assert!(v6_rule.matches(&p6));
    assert!(!v6_rule.matches(&tcp_input(0)));
}

#[test]
fn prefix_construction_checks() {
    assert_eq!(
        Prefix::new(Family::V4, 0x0a00_0000, 33),
        Err(PrefixError::LengthTooLong { len: 33, max: 32 })
    );
    assert_eq!(
        Prefix::new(Family::V4, 1 << 32, 0),
        Err(PrefixError::AddressTooWide)
    );
    let Err(PrefixError::HostBitsSet { masked }) = Prefix::new(Family::V4, 0x0a00_0001, 8) else {
        panic!("host bits accepted");
    };
    assert_eq!(masked.to_string(), "10.0.0.0/8");
    assert!(Prefix::new(Family::V6, u128::MAX, 128).is_ok());
    assert!(Prefix::new(Family::V6, 0, 0).is_ok());
    assert_eq!(v4(V4_DST, 32).to_string(), "192.0.2.1");
    assert_eq!(
        Prefix::new(Family::V6, 0x2001_0db8 << 96, 32)
            .unwrap()
            .to_string(),
        "2001:db8::/32"
    );
}

#[test]
fn port_ranges_need_ports() {
    let p = tcp_input(TcpFlags::SYN);
    let web = Rule {
        dport: Box::new([PortRange::single(443), PortRange::new(80, 81).unwrap()]),
        ..accept()
    };
    assert!(web.matches(&p));
    assert!(!web.matches(&RuleInput {
        ports: Some((40000, 82)),
        ..p
    }));
    assert!(!web.matches(&RuleInput { ports: None, ..p }));
    let high_src = Rule {
        sport: Box::new([PortRange::new(1024, 65535).unwrap()]),
        ..accept()
    };
    assert!(high_src.matches(&p));
    assert!(!high_src.matches(&RuleInput {
        ports: Some((1023, 80)),
        ..p
    }));
    assert_eq!(PortRange::new(2, 1), None);
    assert_eq!(
        PortRange::new(1024, 65535).unwrap().to_string(),
        "1024:65535"
    );
}

#[test]
fn tcp_flags_compare_under_mask() {
    let syn = Rule {
        tcp_flags: Some(TcpFlagsMatch::SYN),
        ..accept()
    };
    let not_syn = Rule {
        tcp_flags: Some(TcpFlagsMatch::SYN.negated()),
        ..accept()
    };
    let cases = [
        (TcpFlags::SYN, true),
        (TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, true), // outside the mask
        (TcpFlags::SYN | TcpFlags::PSH, true),
        (TcpFlags::SYN | TcpFlags::ACK, false),
        (TcpFlags::ACK, false),
        (TcpFlags::SYN | TcpFlags::FIN, false),
        (TcpFlags::RST, false),
        (0, false),
    ];
    for (flags, is_syn) in cases {
        assert_eq!(syn.matches(&tcp_input(flags)), is_syn, "{flags:#x}");
        assert_eq!(not_syn.matches(&tcp_input(flags)), !is_syn, "{flags:#x}");
    }
}

#[test]
fn tcp_flags_never_match_without_a_tcp_header() {
    let udp = RuleInput {
        proto: proto::UDP,
        tcp_flags: None,
        ..tcp_input(0)
    };
    assert!(
        !Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN),
            ..accept()
        }
        .matches(&udp)
    );
    assert!(
        !Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN.negated()),
            ..accept()
        }
        .matches(&udp)
    );
}

#[test]
fn tcp_flags_construction_and_display() {
    assert_eq!(
        TcpFlagsMatch::new(TcpFlags::SYN, TcpFlags::ACK, false),
        None
    );
    let m = TcpFlagsMatch::new(TcpFlags::SYN | TcpFlags::ACK, TcpFlags::SYN, true).unwrap();
    assert_eq!(m.to_string(), "! --tcp-flags SYN,ACK SYN");
    assert_eq!(TcpFlagsMatch::SYN.to_string(), "--syn");
    assert_eq!(TcpFlagsMatch::SYN.negated().to_string(), "! --syn");
    assert_eq!(
        TcpFlagsMatch::new(0xff, 0, false).unwrap().to_string(),
        "--tcp-flags ALL NONE"
    );
}

#[test]
fn all_matchers_are_anded() {
    let rule = Rule {
        ct: Some(CtStateSet::EMPTY.with(CtState::New)),
        in_port: Some(ports(&[0])),
        proto: Some(proto::TCP),
        dport: Box::new([PortRange::single(80)]),
        tcp_flags: Some(TcpFlagsMatch::SYN),
        ..accept()
    };
    let p = tcp_input(TcpFlags::SYN);
    assert!(rule.matches(&p));
    assert!(!rule.matches(&RuleInput {
        ct: Some(CtState::Established),
        ..p
    }));
    assert!(!rule.matches(&RuleInput {
        in_port: PortId(1),
        ..p
    }));
    assert!(!rule.matches(&RuleInput {
        ports: Some((1, 81)),
        ..p
    }));
    assert!(!rule.matches(&tcp_input(TcpFlags::ACK)));
}

/// A small rule set for these tests: accept established/related, accept new from port 0
/// to port 1, drop invalid, default drop. It is shaped like the conformance policy but is
/// not it: that one is `config/conformance/classic*.yaml`, compiled and evaluated by
/// `ctfw-config`'s test `classic_rules_compile_and_decide`.
fn three_rules() -> RuleSet {
    let rules = vec![
        Rule {
            ct: Some(CtStateSet::of(&[CtState::Established, CtState::Related])),
            ..accept()
        },
        Rule {
            ct: Some(CtStateSet::of(&[CtState::New])),
            in_port: Some(ports(&[0])),
            out_port: Some(ports(&[1])),
            ..accept()
        },
        Rule {
            ct: Some(CtStateSet::of(&[CtState::Invalid])),
            ..Rule::new(Action::Drop)
        },
    ];
    let names = ["estrel_accept", "new_c2s_accept", "invalid_drop"]
        .map(String::from)
        .to_vec();
    RuleSet::new(rules, Action::Drop, names).expect("valid rule set")
}

#[test]
fn first_match_wins_then_default() {
    let set = three_rules();
    let p = tcp_input(TcpFlags::SYN);
    assert_eq!(
        set.evaluate(&p),
        Decision {
            action: Action::Accept,
            rule: Some(1)
        }
    );
    let est = RuleInput {
        ct: Some(CtState::Established),
        in_port: PortId(1),
        ..p
    };
    assert_eq!(
        set.evaluate(&est),
        Decision {
            action: Action::Accept,
            rule: Some(0)
        }
    );
    let inv = RuleInput {
        ct: Some(CtState::Invalid),
        ..p
    };
    assert_eq!(
        set.evaluate(&inv),
        Decision {
            action: Action::Drop,
            rule: Some(2)
        }
    );
    let s2c_new = RuleInput {
        in_port: PortId(1),
        out_port: PortId(0),
        ..p
    };
    assert_eq!(
        set.evaluate(&s2c_new),
        Decision {
            action: Action::Drop,
            rule: None
        }
    );
    let unparsed = RuleInput { ct: None, ..p };
    assert_eq!(
        set.evaluate(&unparsed),
        Decision {
            action: Action::Drop,
            rule: None
        }
    );
}

#[test]
fn earlier_rule_shadows_later() {
    let rules = vec![Rule::new(Action::Drop), Rule::new(Action::Accept)];
    let set = RuleSet::new(rules, Action::Accept, vec!["a".into(), "b".into()]).unwrap();
    assert_eq!(
        set.evaluate(&tcp_input(0)),
        Decision {
            action: Action::Drop,
            rule: Some(0)
        }
    );
}

#[test]
fn default_policy_of_an_empty_set() {
    let p = tcp_input(TcpFlags::SYN);
    let accept_all = RuleSet::new(Vec::new(), Action::Accept, Vec::new()).expect("no rules");
    assert_eq!(
        accept_all.evaluate(&p),
        Decision {
            action: Action::Accept,
            rule: None
        }
    );
    assert!(accept_all.is_empty());
    assert_eq!(accept_all.default_action(), Action::Accept);
}

#[test]
fn names_and_accessors() {
    let set = three_rules();
    assert_eq!(set.len(), 3);
    assert_eq!(set.name(1), "new_c2s_accept");
    assert_eq!(set.name(3), "?");
    assert!(set.rule(2).is_some_and(|r| r.action == Action::Drop));
    assert_eq!(
        set.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["estrel_accept", "new_c2s_accept", "invalid_drop"]
    );
}

#[test]
fn construction_errors() {
    assert_eq!(
        RuleSet::new(vec![accept()], Action::Drop, vec![]),
        Err(RuleSetError::NameCount { rules: 1, names: 0 })
    );
    let many = vec![accept(); RuleSet::MAX_RULES + 1];
    let names = vec![String::new(); RuleSet::MAX_RULES + 1];
    assert_eq!(
        RuleSet::new(many, Action::Drop, names),
        Err(RuleSetError::TooManyRules {
            count: RuleSet::MAX_RULES + 1
        })
    );
}

#[test]
fn log_flags_per_rule_and_default() {
    let logged = Rule {
        log: true,
        ..Rule::new(Action::Drop)
    };
    let set = RuleSet::new(
        vec![accept(), logged],
        Action::Drop,
        vec!["a".into(), "b".into()],
    )
    .unwrap();
    assert!(set.any_log());
    assert!(!set.logs(Some(0)));
    assert!(set.logs(Some(1)));
    assert!(!set.logs(Some(2)), "no such rule");
    assert!(!set.logs(None));
    assert!(!set.default_log());
    let set = set.with_default_log(true);
    assert!(set.logs(None) && set.default_log());

    let quiet = RuleSet::new(vec![accept()], Action::Drop, vec!["a".into()]).unwrap();
    assert!(!quiet.any_log());
    assert!(quiet.clone().with_default_log(true).any_log());
    assert!(
        !quiet
            .with_default_log(true)
            .with_default_log(false)
            .any_log()
    );
}

#[test]
fn state_set_display() {
    let s = CtStateSet::of(&[CtState::Related, CtState::Established]);
    assert_eq!(s.to_string(), "ESTABLISHED,RELATED");
}
