//! Per-packet JSON records in the format of the Linux conformance set
//! (`tests/linux-conformance/README.md`): `index`, `t`, `forwarded`, `ct_state`, `ct_entries`, plus
//! informational fields (`in_port`, `ct_dir`, `rule`, `invalid`, `dropped`).

use ctfw_engine::flow::Direction;
use ctfw_engine::pipeline::Verdict;
use ctfw_engine::rules::RuleSet;
use ctfw_engine::view::EntryView;
use ctfw_engine::wire::Family;
use serde_json::{Map, Value, json};

/// One entry as the conformance records write it.
pub fn entry_json(v: &EntryView) -> Value {
    let l3 = match v.family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    let mut flags = Vec::new();
    if !v.seen_reply {
        flags.push("UNREPLIED");
    }
    if v.assured {
        flags.push("ASSURED");
    }
    let ports = |sport: u16, dport: u16| -> (Value, Value) {
        if v.icmp.is_some() || !matches!(v.proto, 6 | 17) {
            (Value::Null, Value::Null)
        } else {
            (json!(sport), json!(dport))
        }
    };
    let (sport, dport) = ports(v.orig.sport, v.orig.dport);
    let (rsport, rdport) = ports(v.reply.sport, v.reply.dport);
    let proto = match v.proto_name() {
        "unknown" => json!(v.proto),
        name => json!(name),
    };
    let mut m = Map::new();
    m.insert("l3".into(), json!(l3));
    m.insert("proto".into(), proto);
    m.insert(
        "state".into(),
        v.tcp_state.map_or(Value::Null, |s| json!(s.name())),
    );
    m.insert("timeout".into(), json!(v.timeout));
    m.insert("src".into(), json!(v.addr(v.orig.src).to_string()));
    m.insert("dst".into(), json!(v.addr(v.orig.dst).to_string()));
    m.insert("sport".into(), sport);
    m.insert("dport".into(), dport);
    m.insert("flags".into(), json!(flags));
    let mut reply = json!({
        "src": v.addr(v.reply.src).to_string(),
        "dst": v.addr(v.reply.dst).to_string(),
        "sport": rsport,
        "dport": rdport,
    });
    if let Some((o, r)) = v.icmp {
        m.insert(
            "icmp".into(),
            json!({"type": o.type_, "code": o.code, "id": o.id}),
        );
        reply["icmp"] = json!({"type": r.type_, "code": r.code, "id": r.id});
    }
    m.insert("reply".into(), reply);
    m.insert("mark".into(), json!(0));
    Value::Object(m)
}

/// One packet's record.
pub fn packet_json(
    index: u64,
    t: f64,
    in_port: &str,
    verdict: &Verdict,
    rules: &RuleSet,
    entries: &[EntryView],
) -> Value {
    json!({
        "index": index,
        "t": (t * 1e6).round() / 1e6,
        "in_port": in_port,
        "forwarded": verdict.forward.is_some(),
        "ct_state": verdict.ct.map(|c| c.name()),
        "ct_dir": verdict.dir.map(|d| match d {
            Direction::Original => "original",
            Direction::Reply => "reply",
        }),
        "rule": verdict.rule.map_or("default", |r| rules.name(r)),
        "invalid": verdict.invalid.map(|r| r.name()),
        "dropped": verdict.dropped.map(|r| r.name()),
        "ct_entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
    })
}
