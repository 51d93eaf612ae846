//! Reload without losing state: new rules and knobs decide new packets; every connection
//! keeps its entry, state and deadline (until its next packet refreshes it with the new
//! timeouts, as when Linux's `nf_conntrack_*` sysctls change); settings that size memory
//! or wiring are refused, naming the field.

use ctfw_engine::Reason;
use ctfw_engine::ops::{ReloadError, RestartField};
use ctfw_engine::pipeline::EngineConfig;
use ctfw_engine::rules::PortId;
use ctfw_engine::time::Ticks;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::TcpState;
use ctfw_tracegen::TcpSim;

use crate::common::*;

/// The classic rules without `new_c2s_accept`: no new connection is accepted.
fn no_new_connections() -> ctfw_engine::rules::RuleSet {
    let list = classic_rule_list()
        .into_iter()
        .filter(|(name, _)| name != "new_c2s_accept")
        .collect();
    rule_set(list)
}

#[test]
fn new_rules_decide_new_packets_and_connections_survive() {
    let mut fw = Fw::classic(1024);
    let mut sim = TcpSim::default_v4();
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    let mut probe = TcpSim::default_v4();
    probe.syn();
    let syn = probe.take_packets().remove(0);
    let before = fw.entry(&syn.data).expect("the connection's entry");
    assert!(fw.eng.rule_hits().iter().sum::<u64>() > 0);

    // A shorter ESTABLISHED timeout (below the 5-minute UNACK cap that data in flight
    // brings), and no new connections.
    let mut cfg = linux_defaults(1024);
    cfg.track.tcp.timeouts.established = Ticks::from_secs(200);
    fw.eng
        .reload(no_new_connections(), &cfg)
        .expect("nothing fixed changed");
    assert_eq!(fw.eng.rules().len(), 2);
    assert_eq!(fw.eng.rule_hits(), [0, 0, 0], "hit counters restart");

    // The connection is still there, as it was: state, flags, deadline.
    fw.advance(SEC);
    assert_eq!(fw.entry(&syn.data), Some(before));
    assert!(fw.view(&syn.data).is_some_and(|v| v.assured));
    // Its next packet passes (estrel_accept) and is refreshed with the new timeout.
    sim.data_c2s(10);
    let p = sim.take_packets().remove(0);
    assert_fwd_pkt(&fw.pkt(&p), CtState::Established, &p);
    let v = fw.view(&p.data).expect("entry");
    assert_eq!((v.tcp_state, v.timeout), (Some(TcpState::Established), 200));
    // New connections are dropped by the default policy now.
    let mut other = TcpSim::new(
        "10.0.1.9:41000".parse().expect("address"),
        "10.0.2.2:80".parse().expect("address"),
    );
    other.syn();
    let v = fw.pkt(&other.take_packets().remove(0));
    assert_eq!(v.dropped, Some(Reason::DefaultPolicy));
    assert_eq!(fw.eng.rule_hits(), [1, 0, 1]);
}

#[test]
fn the_policy_knobs_apply_at_once() {
    let mut fw = Fw::classic(1024);
    // Loose pickup on (the default): a mid-stream ACK from inside is ESTABLISHED... after
    // the reload with loose off, `tcp_new` refuses it: INVALID.
    let mut cfg = linux_defaults(1024);
    cfg.track.tcp.loose = false;
    fw.eng.reload(classic_rules(), &cfg).expect("reload");
    let mut mid = TcpSim::default_v4().established();
    mid.data_c2s(10);
    let v = fw.pkt(&mid.take_packets().remove(0));
    assert_invalid(&v, Reason::TcpInvalidNew);
    assert!(!fw.eng.config().track.tcp.loose);
}

#[test]
fn settings_fixed_at_start_are_refused_and_nothing_changes() {
    let mut fw = Fw::classic(1024);
    let mut sim = TcpSim::default_v4();
    sim.handshake();
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    let hits = fw.eng.rule_hits().to_vec();
    let base = linux_defaults(1024);
    let refused = [
        (
            EngineConfig {
                capacity: 2048,
                ..base.clone()
            },
            RestartField::Capacity,
        ),
        (
            EngineConfig {
                peers: vec![OUTSIDE, INSIDE, PortId(2)],
                ..base.clone()
            },
            RestartField::Peers,
        ),
        (
            EngineConfig {
                accounting: true,
                ..base.clone()
            },
            RestartField::Accounting,
        ),
        (
            EngineConfig {
                event_capacity: 1,
                ..base.clone()
            },
            RestartField::EventCapacity,
        ),
        (
            EngineConfig {
                log_capacity: 1,
                ..base.clone()
            },
            RestartField::LogCapacity,
        ),
    ];
    for (cfg, field) in refused {
        let mut tighter = cfg.clone();
        tighter.track.tcp.loose = false;
        assert_eq!(
            fw.eng.reload(no_new_connections(), &tighter),
            Err(ReloadError::NeedsRestart(field))
        );
        assert_eq!(fw.eng.rules().len(), 3, "{field:?}: rules unchanged");
        assert!(
            fw.eng.config().track.tcp.loose,
            "{field:?}: knobs unchanged"
        );
        assert_eq!(fw.eng.rule_hits(), hits, "{field:?}: hits unchanged");
    }
    assert_eq!(fw.eng.table().len(), 1);
    // The same configuration reloads.
    assert_eq!(fw.eng.reload(classic_rules(), &base), Ok(()));
}
