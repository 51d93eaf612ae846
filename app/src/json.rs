//! The JSON form of the final reports of `ctfw replay` and `ctfw run` (`--report-json FILE`):
//! the facts of the human report, under stable names, for scripts, benchmarks and tests (the
//! human report may change freely; these names do not). The parts both commands share are
//! here; each command's report adds its own fields around them. The live statistics of
//! `ctfw stats` ([`crate::stats`]) use the same counters and rule hits, and read them back
//! (hence `Deserialize`).
//!
//! Counters are JSON integers. Reasons are keyed by [`Reason::name`] (and [`Ignored::name`]),
//! and every reason of a class is present, zeros included, so a script can read any of them
//! without a default.
//! Table entries are written as the conformance records write them ([`records::entry_json`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use ctfw_engine::rules::RuleSet;
use ctfw_engine::view::EntryView;
use ctfw_engine::{Ignored, Reason, ReasonClass};
use serde::{Deserialize, Serialize};

use crate::records;

/// The engine's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Packets handed to the engine.
    pub packets: u64,
    /// Their bytes (frame lengths).
    pub bytes: u64,
    /// Packets forwarded.
    pub accepted: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// What happened to connection entries.
    pub connections: Connections,
    /// Dropped packets by reason: every reason of the `Unparsed` and `Policy` classes.
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// INVALID verdicts by reason (the rules then decided): every `Invalid` reason.
    pub invalid_by_reason: BTreeMap<String, u64>,
    /// Packets tracking let through without updating their connection, by reason (the
    /// rules then decided): every [`Ignored`] reason.
    #[serde(default)]
    pub ignored_by_reason: BTreeMap<String, u64>,
    /// Drop-log records the rules and the default policy wrote (`log: true`).
    #[serde(default)]
    pub logged: u64,
    /// Drop-log records the rate limit (`log.rate`, `log.burst`) or a full buffer suppressed.
    #[serde(default)]
    pub log_suppressed: u64,
    /// Connection events dropped because the engine's event buffer was full (only while
    /// someone listens).
    #[serde(default)]
    pub events_lost: u64,
    /// Table slots the sweeper examined.
    #[serde(default)]
    pub sweep_examined: u64,
}

/// Connection entries created and removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// Entries created.
    pub created: u64,
    /// Entries removed because they expired.
    pub expired: u64,
    /// Entries removed early by protocol logic.
    pub closed: u64,
    /// Non-ASSURED entries evicted (table pressure).
    pub evicted: u64,
    /// ASSURED entries of closing TCP connections evicted (table pressure).
    pub evicted_closing: u64,
    /// Entries deleted by an operator (`ctfw conntrack delete|flush`).
    #[serde(default)]
    pub deleted: u64,
}

impl From<&ctfw_engine::Counters> for Counters {
    fn from(c: &ctfw_engine::Counters) -> Counters {
        let by_class = |invalid: bool| {
            Reason::ALL
                .iter()
                .filter(|r| (r.class() == ReasonClass::Invalid) == invalid)
                .map(|&r| (r.name().to_owned(), c.get(r)))
                .collect()
        };
        Counters {
            packets: c.packets,
            bytes: c.bytes,
            accepted: c.accepted,
            dropped: c.dropped,
            connections: Connections {
                created: c.created,
                expired: c.expired,
                closed: c.closed,
                evicted: c.evicted,
                evicted_closing: c.evicted_closing,
                deleted: c.deleted,
            },
            dropped_by_reason: by_class(false),
            invalid_by_reason: by_class(true),
            ignored_by_reason: Ignored::ALL
                .iter()
                .map(|&r| (r.name().to_owned(), c.ignored(r)))
                .collect(),
            logged: c.logged,
            log_suppressed: c.log_suppressed,
            events_lost: c.events_lost,
            sweep_examined: c.sweep_examined,
        }
    }
}

/// Packets decided per rule, and by the default policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleHits {
    /// Each rule, in rule order.
    pub rules: Vec<RuleHit>,
    /// Packets no rule matched.
    pub default_policy: u64,
}

/// Packets decided by one rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    /// The rule's name.
    pub rule: String,
    /// Packets it decided.
    pub packets: u64,
}

impl RuleHits {
    /// From the engine's `hits`: one count per rule, then the default policy's.
    pub fn new(rules: &RuleSet, hits: &[u64]) -> RuleHits {
        let (per_rule, policy) = hits.split_at(rules.len().min(hits.len()));
        RuleHits {
            rules: per_rule
                .iter()
                .enumerate()
                .map(|(i, &packets)| RuleHit {
                    rule: rules.name(i as u16).to_owned(),
                    packets,
                })
                .collect(),
            default_policy: policy.iter().sum(),
        }
    }
}

/// The connection table at the end.
#[derive(Debug, Serialize)]
pub struct Table {
    /// Entries in it.
    pub entries: usize,
    /// Entries it can hold.
    pub capacity: usize,
    /// The first `--max-entries` entries, in the listing's order, as conformance records.
    pub listed: Vec<serde_json::Value>,
}

impl Table {
    /// `entries` (sorted) of a table holding `len` of `capacity`, listing at most `max`.
    pub fn new(entries: &[EntryView], len: usize, capacity: usize, max: usize) -> Table {
        Table {
            entries: len,
            capacity,
            listed: entries.iter().take(max).map(records::entry_json).collect(),
        }
    }
}

/// Write `report` to `path` as one JSON document.
pub fn write(path: &Path, report: &impl Serialize) -> Result<()> {
    let context = || format!("cannot write the JSON report to {}", path.display());
    let mut out = BufWriter::new(File::create(path).with_context(context)?);
    serde_json::to_writer_pretty(&mut out, report).with_context(context)?;
    out.write_all(b"\n").with_context(context)?;
    out.flush().with_context(context)
}
