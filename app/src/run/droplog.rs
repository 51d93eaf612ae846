//! The drop log's writer on the main lcore: the records the workers' engines made for rules
//! with `log: true` (and the default policy with `log.policy: true`), as JSON lines to
//! `log.file` or to stderr.
//!
//! The engines rate-limit (`log.rate`, `log.burst`) and count what they suppress; this side
//! counts what it could not queue or write ([`DropLog::lost`]). A record names its rule, its
//! ports, the verdict, the conntrack state and INVALID reason, the 5-tuple, TCP flags, ICMP
//! type and code, the IP length, and the worker; see `docs/control-protocol.md`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use ctfw_config::{Config, LogTarget, Logging};
use ctfw_engine::observe::LogRecord;
use ctfw_engine::rules::RuleSet;
use ctfw_engine::view::Addr;
use ctfw_engine::wire::proto;
use serde_json::{Value, json};

use crate::control::format::unix_seconds;
use crate::control::protocol::family_name;

/// Where the records go, and how many went.
#[derive(Debug)]
pub struct DropLog {
    out: Out,
    /// Records written.
    pub written: u64,
    /// Records lost: a worker's queue was full, or writing failed.
    pub lost: u64,
}

#[derive(Debug)]
enum Out {
    Stderr,
    File(BufWriter<File>),
}

impl DropLog {
    /// Open `log`'s target (a file is created if missing, and appended to).
    pub fn open(log: &Logging) -> Result<DropLog> {
        Ok(DropLog {
            out: open(&log.target)?,
            written: 0,
            lost: 0,
        })
    }

    /// Switch to `log`'s target (after a reload); on failure the previous one stays.
    pub fn retarget(&mut self, log: &Logging) -> Result<()> {
        let out = open(&log.target)?;
        self.flush();
        self.out = out;
        Ok(())
    }

    /// Write one record from worker `worker`, decided under `cfg` (or `rules`, the previous
    /// generation's, when a reload happened since).
    pub fn write(
        &mut self,
        worker: usize,
        r: &LogRecord,
        cfg: &Config,
        rules: Option<&RuleSet>,
        wall0: std::time::SystemTime,
    ) {
        let v = record_json(worker, r, cfg, rules.unwrap_or(&cfg.rules), wall0);
        let mut line = v.to_string();
        line.push('\n');
        let ok = match &mut self.out {
            Out::Stderr => std::io::stderr().lock().write_all(line.as_bytes()).is_ok(),
            Out::File(f) => f.write_all(line.as_bytes()).is_ok(),
        };
        if ok {
            self.written += 1;
        } else {
            self.lost += 1;
        }
    }

    /// Push what is buffered to the file.
    pub fn flush(&mut self) {
        if let Out::File(f) = &mut self.out {
            if f.flush().is_err() {
                // What the buffer held is gone; it was counted as written.
                self.lost += 1;
            }
        }
    }
}

fn open(target: &LogTarget) -> Result<Out> {
    Ok(match target {
        LogTarget::Stderr => Out::Stderr,
        LogTarget::File(path) => Out::File(BufWriter::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the drop log {}", path.display()))?,
        )),
    })
}

/// One record as JSON.
fn record_json(
    worker: usize,
    r: &LogRecord,
    cfg: &Config,
    rules: &RuleSet,
    wall0: std::time::SystemTime,
) -> Value {
    let port = |p: ctfw_engine::rules::PortId| {
        cfg.port(p)
            .map_or_else(|| json!(p.0), |p| json!(p.name.as_str()))
    };
    let proto_name = match r.proto {
        proto::TCP => json!("tcp"),
        proto::UDP => json!("udp"),
        proto::ICMP => json!("icmp"),
        proto::ICMPV6 => json!("icmpv6"),
        proto::GRE => json!("gre"),
        n => json!(n),
    };
    json!({
        "time": unix_seconds(wall0, r.at),
        "rule": match r.rule {
            Some(i) => json!(rules.name(i)),
            None => json!("(default policy)"),
        },
        "rule_index": r.rule,
        "verdict": r.action.name(),
        "in_port": port(r.in_port),
        "out_port": port(r.out_port),
        "ct_state": r.ct.map(|c| c.name()),
        "invalid": r.invalid.map(|i| i.name()),
        "family": family_name(r.family),
        "proto": proto_name,
        "src": Addr(r.family, r.src).to_string(),
        "dst": Addr(r.family, r.dst).to_string(),
        "sport": r.sport,
        "dport": r.dport,
        "tcp_flags": r.tcp_flags.map(tcp_flags),
        "icmp": r.icmp.map(|(t, c)| json!({"type": t, "code": c})),
        "len": r.len,
        "worker": worker,
    })
}

/// TCP flags as iptables' `LOG` names them, in header order: `SYN ACK`...
fn tcp_flags(f: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (0x80, "CWR"),
        (0x40, "ECE"),
        (0x20, "URG"),
        (0x10, "ACK"),
        (0x08, "PSH"),
        (0x04, "RST"),
        (0x02, "SYN"),
        (0x01, "FIN"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flags_read_like_iptables_log() {
        assert_eq!(tcp_flags(0x02), "SYN");
        assert_eq!(tcp_flags(0x12), "ACK SYN");
        assert_eq!(tcp_flags(0x11), "ACK FIN");
        assert_eq!(tcp_flags(0), "");
    }
}
