//! How the control plane writes what it reads from the engines: entries (the listing's JSON
//! objects and `conntrack -L` lines), connection events, the `rules` result, and times. The
//! lines come from the engine's one formatter ([`EntryView`]'s `Display`, the one
//! `ctfw replay` prints), with accounting added where conntrack puts it; the JSON objects
//! are the conformance records' ([`records::entry_json`]).
//!
//! [`EntryView`]: ctfw_engine::view::EntryView

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctfw_config::Config;
use ctfw_engine::observe::{DirAcct, EntryRecord, Event, EventKind};
use serde_json::{Value, json};

use crate::{json as report_json, records};

/// An entry as a listing's JSON item: the conformance records' fields, and `counters` when
/// accounting is on.
pub fn entry_json(r: &EntryRecord) -> Value {
    let mut v = records::entry_json(&r.view);
    if let Some(a) = r.acct {
        v["counters"] = json!({
            "original": {"packets": a.orig.packets, "bytes": a.orig.bytes},
            "reply": {"packets": a.reply.packets, "bytes": a.reply.bytes},
        });
    }
    v
}

/// An entry's `conntrack -L` line; with accounting, `packets=N bytes=N` after each tuple, as
/// conntrack prints them with `nf_conntrack_acct` on.
pub fn entry_line(r: &EntryRecord) -> String {
    let line = r.view.to_string();
    let Some(a) = r.acct else { return line };
    // The view's line has the REPLY tuple start at the second `src=`; `[UNREPLIED]` (if there)
    // ends the ORIGINAL tuple, `[ASSURED]` or `mark=` the REPLY tuple.
    let words: Vec<&str> = line.split(' ').collect();
    let reply_at = words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.starts_with("src="))
        .nth(1)
        .map(|(i, _)| i);
    let Some(reply_at) = reply_at else {
        return line;
    };
    let orig_end = if words[reply_at - 1] == "[UNREPLIED]" {
        reply_at - 1
    } else {
        reply_at
    };
    let reply_end = words
        .iter()
        .position(|w| *w == "[ASSURED]" || w.starts_with("mark="))
        .unwrap_or(words.len());
    let counts = |d: DirAcct| format!("packets={} bytes={}", d.packets, d.bytes);
    let (o, rp) = (counts(a.orig), counts(a.reply));
    let mut out: Vec<&str> = Vec::with_capacity(words.len() + 2);
    for (i, w) in words.iter().enumerate() {
        if i == orig_end {
            out.push(&o);
        }
        if i == reply_end {
            out.push(&rp);
        }
        out.push(w);
    }
    if reply_end == words.len() {
        out.push(&rp);
    }
    out.join(" ")
}

/// A connection event's `conntrack -E` line: the tag, then the entry as a listing shows it,
/// less what ctnetlink does not send with events (`use=`, and `mark=` when 0); a DESTROY has no
/// timeout and no TCP state either (the kernel sends only the tuples, status and counters).
pub fn event_line(e: &Event) -> String {
    let line = entry_line(&e.record);
    // `tcp      6 120 ESTABLISHED ` before the first tuple, which starts at `src=`.
    let (head, tuples) = line.split_at(line.find("src=").unwrap_or(0));
    let head = match e.kind {
        EventKind::Destroy(_) => {
            let mut w = head.split_whitespace();
            let (name, number) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            format!("{name:<8} {number} ")
        }
        EventKind::New | EventKind::Update => head.to_owned(),
    };
    let tuples: Vec<&str> = tuples
        .split(' ')
        .filter(|w| *w != "use=1" && *w != "mark=0")
        .collect();
    let tag = match e.kind {
        EventKind::New => "    [NEW]",
        EventKind::Update => " [UPDATE]",
        EventKind::Destroy(_) => "[DESTROY]",
    };
    format!("{tag} {head}{}", tuples.join(" "))
}

/// A connection event as a JSON item.
pub fn event_json(e: &Event, wall0: SystemTime) -> Value {
    let mut v = json!({
        "type": e.kind.name(),
        "time": unix_seconds(wall0, e.at),
        "entry": entry_json(&e.record),
    });
    if let EventKind::Destroy(cause) = e.kind {
        v["cause"] = json!(cause.name());
    }
    v
}

/// Engine time `at` in seconds since the Unix epoch, microsecond precision.
pub fn unix_seconds(wall0: SystemTime, at: ctfw_engine::time::Instant) -> f64 {
    let t = wall0 + Duration::from_nanos(at.0);
    let s = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    (s * 1e6).round() / 1e6
}

/// `rules`' result: each rule in `check-config`'s notation with its hits since the reload.
pub fn rules_json(cfg: &Config, hits: &[u64], generation: u64, since: Duration) -> Value {
    let rules: Vec<Value> = cfg
        .rules
        .iter()
        .enumerate()
        .map(|(i, (name, rule))| {
            json!({
                "index": i,
                "name": name,
                "rule": cfg.rule_line(i).unwrap_or_default(),
                "action": rule.action.name(),
                "log": rule.log,
                "packets": hits.get(i).copied().unwrap_or(0),
            })
        })
        .collect();
    let hits_json = report_json::RuleHits::new(&cfg.rules, hits);
    json!({
        "config": cfg.source.display().to_string(),
        "generation": generation,
        "since_seconds": since.as_secs_f64(),
        "rules": rules,
        "policy": {
            "action": cfg.rules.default_action().name(),
            "log": cfg.rules.default_log(),
            "packets": hits_json.default_policy,
        },
    })
}

#[cfg(test)]
mod tests {
    use ctfw_engine::observe::Acct;
    use ctfw_engine::track::tcp::TcpState;
    use ctfw_engine::view::{EntryView, Tuple};
    use ctfw_engine::wire::Family;

    use super::*;

    fn record(seen_reply: bool, assured: bool, acct: Option<Acct>) -> EntryRecord {
        let orig = Tuple {
            src: 0x0a00_0102,
            dst: 0x0a00_0202,
            sport: 40000,
            dport: 80,
        };
        EntryRecord {
            view: EntryView {
                family: Family::V4,
                proto: 6,
                tcp_state: Some(TcpState::Established),
                timeout: 300,
                orig,
                reply: Tuple {
                    src: orig.dst,
                    dst: orig.src,
                    sport: orig.dport,
                    dport: orig.sport,
                },
                icmp: None,
                seen_reply,
                assured,
            },
            acct,
        }
    }

    #[test]
    fn accounting_goes_after_each_tuple_as_conntrack_prints_it() {
        let mut a = Acct::default();
        a.orig.packets = 3;
        a.orig.bytes = 180;
        a.reply.packets = 2;
        a.reply.bytes = 120;
        assert_eq!(
            entry_line(&record(true, true, Some(a))),
            "tcp      6 300 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 \
             packets=3 bytes=180 src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 packets=2 \
             bytes=120 [ASSURED] mark=0 use=1"
        );
        assert_eq!(
            entry_line(&record(false, false, Some(a))),
            "tcp      6 300 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 \
             packets=3 bytes=180 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 \
             packets=2 bytes=120 mark=0 use=1"
        );
        // Without accounting, the line is the engine's, untouched.
        let r = record(true, true, None);
        assert_eq!(entry_line(&r), r.view.to_string());
        assert!(entry_json(&r).get("counters").is_none());
        assert_eq!(
            entry_json(&record(true, true, Some(a)))["counters"]["reply"]["bytes"],
            120
        );
    }

    #[test]
    fn event_lines_are_conntrack_e_lines() {
        use ctfw_engine::observe::DestroyCause;
        let ev = |kind, record| Event {
            kind,
            at: ctfw_engine::time::Instant(0),
            record,
        };
        assert_eq!(
            event_line(&ev(EventKind::New, record(false, false, None))),
            "    [NEW] tcp      6 300 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 \
             dport=80 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000"
        );
        assert_eq!(
            event_line(&ev(EventKind::Update, record(true, true, None))),
            " [UPDATE] tcp      6 300 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 \
             dport=80 src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 [ASSURED]"
        );
        let mut a = Acct::default();
        a.orig.packets = 1;
        a.orig.bytes = 60;
        assert_eq!(
            event_line(&ev(
                EventKind::Destroy(DestroyCause::Expired),
                record(true, true, Some(a))
            )),
            "[DESTROY] tcp      6 src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 packets=1 \
             bytes=60 src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 packets=0 bytes=0 \
             [ASSURED]"
        );
    }

    #[test]
    fn rules_read_as_check_config_prints_them() {
        let cfg = Config::from_str(
            "ports:\n  - {name: a, device: x, peer: b}\n  - {name: b, device: y, peer: a}\n\
             rules:\n  - {name: web, proto: tcp, dport: 80, in_port: a, action: accept}\n  \
             - {ct_state: [established], action: accept}\n",
            "t.yaml",
        )
        .expect("config");
        let r = rules_json(&cfg, &[5, 6, 7], 2, Duration::from_secs(3));
        assert_eq!(r["rules"][0]["rule"], "-i a -p tcp --dport 80 -j ACCEPT");
        assert_eq!(
            r["rules"][1]["rule"],
            "-m conntrack --ctstate ESTABLISHED -j ACCEPT"
        );
        assert_eq!(r["rules"][0]["name"], "web");
        assert_eq!(r["rules"][1]["name"], "rule1");
        assert_eq!(r["rules"][1]["packets"], 6);
        assert_eq!(r["policy"]["packets"], 7);
        assert_eq!(r["policy"]["action"], "drop");
        assert_eq!(r["generation"], 2);
    }

    #[test]
    fn times_are_unix_seconds_to_the_microsecond() {
        let wall0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let t = unix_seconds(wall0, ctfw_engine::time::Instant(1_500_000_499));
        assert_eq!(t, 1_001.5);
    }
}
