//! Validation: the raw document ([`crate::raw`]) becomes the immutable runtime [`Config`].
//!
//! Every check the runtime relies on happens here, once, at load time; nothing is checked
//! again per packet. The first problem found is returned as a [`Diagnostic`] pointing at the
//! line of the offending value, with its key path and what was expected.
//!
//! One module per section of the schema: [`ports`] (names, devices, mutual peers),
//! [`dataplane`] (DPDK settings), [`conntrack`] (tracking knobs and timeouts) and [`rules`]
//! (matchers, and rules that could never match), and [`service`] for what operators use
//! (`control`, `metrics`, `log`). This module holds what they share: the
//! [`Ctx`] that turns a located value into a typed one or an error, and the top-level keys
//! `non_ip` and `policy`.

mod conntrack;
mod dataplane;
mod ports;
mod rules;
mod service;

use std::collections::HashMap;
use std::path::Path;

use ctfw_engine::pipeline::NonIpPolicy;
use ctfw_engine::rules::Action;
use serde_saphyr::{Location, Spanned};

use crate::error::{ConfigError, Diagnostic, Pos, Problem};
use crate::raw::{Items, Leaf, OneOrMany, RawConfig, RawConntrack, Scalar};
use crate::{Config, Dataplane};

/// The file being validated: where errors point, and the text they quote.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

/// A located scalar, from a single value or one item of a list.
#[derive(Clone, Copy)]
struct Item<'v> {
    value: &'v Scalar,
    /// Where the value is used (for the line in messages).
    at: &'v Location,
    /// Where it is written (differs for aliases; for quoting the text).
    defined: &'v Location,
    /// Position in its list, if it came from one.
    index: Option<usize>,
}

impl<'v> From<&'v Leaf> for Item<'v> {
    fn from(leaf: &'v Leaf) -> Item<'v> {
        Item {
            value: &leaf.value,
            at: &leaf.referenced,
            defined: &leaf.defined,
            index: None,
        }
    }
}

impl Item<'_> {
    /// The key path of this item under `key`.
    fn key(&self, key: &str) -> String {
        match self.index {
            Some(i) => format!("{key}[{i}]"),
            None => key.to_owned(),
        }
    }
}

/// The items of a value that may be one scalar or a list (an empty list yields none).
fn items(v: &Items) -> Vec<Item<'_>> {
    match &v.value {
        OneOrMany::One(value) => {
            vec![Item {
                value,
                at: &v.referenced,
                defined: &v.defined,
                index: None,
            }]
        }
        OneOrMany::Many(list) => list
            .iter()
            .enumerate()
            .map(|(i, leaf)| Item {
                index: Some(i),
                ..Item::from(leaf)
            })
            .collect(),
    }
}

/// The position of `loc`, unless it is unknown.
fn pos(loc: &Location) -> Option<Pos> {
    (loc.line() > 0).then(|| Pos {
        line: loc.line(),
        column: loc.column(),
    })
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Whether `name` is a valid port or rule name.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

const NAME_RULE: &str = "a name of lower-case letters, digits, `_` and `-` (at most 64)";

impl Ctx<'_> {
    /// An error at `loc`.
    fn err(&self, loc: &Location, key: impl Into<String>, problem: Problem) -> ConfigError {
        self.err_at(pos(loc), key, problem)
    }

    /// An error at `at` (or nowhere in particular).
    pub(crate) fn err_at(
        &self,
        at: Option<Pos>,
        key: impl Into<String>,
        problem: Problem,
    ) -> ConfigError {
        ConfigError::Invalid(Box::new(Diagnostic {
            file: self.file.to_path_buf(),
            at,
            key: key.into(),
            problem,
        }))
    }

    /// The value as the user wrote it: strings quoted, everything else as in the file.
    fn got(&self, item: Item<'_>) -> String {
        let written = || {
            let span = item.defined.span();
            let start = usize::try_from(span.byte_offset()?).ok()?;
            let len = usize::try_from(span.byte_len()?).ok()?;
            self.text
                .get(start..start.checked_add(len)?)
                .map(str::to_owned)
        };
        match item.value {
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Null => "nothing".to_owned(),
            Scalar::Int(n) => written().unwrap_or_else(|| n.to_string()),
            Scalar::Float(x) => written().unwrap_or_else(|| x.to_string()),
            Scalar::Bool(b) => written().unwrap_or_else(|| b.to_string()),
        }
    }

    /// `expected {expected}, got {the item as written}`, at the item.
    fn expected(&self, item: Item<'_>, key: &str, expected: impl Into<String>) -> ConfigError {
        let problem = Problem::Expected {
            expected: expected.into(),
            got: self.got(item),
        };
        self.err(item.at, item.key(key), problem)
    }

    /// A whole number in `lo..=hi`; `unit` follows the range in the message.
    fn uint(
        &self,
        item: Item<'_>,
        key: &str,
        lo: u64,
        hi: u64,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        match *item.value {
            Scalar::Int(n) if (i128::from(lo)..=i128::from(hi)).contains(&n) => {
                u64::try_from(n).map_err(|_| self.expected(item, key, "a whole number"))
            }
            _ => Err(self.expected(
                item,
                key,
                format!("a whole number between {lo} and {hi}{unit}"),
            )),
        }
    }

    /// `uint` for an optional value with a default.
    fn uint_or(
        &self,
        leaf: Option<&Leaf>,
        key: &str,
        lo: u64,
        hi: u64,
        default: u64,
    ) -> Result<u64, ConfigError> {
        leaf.map_or(Ok(default), |l| self.uint(l.into(), key, lo, hi, ""))
    }

    /// `true` or `false` (only those: `yes`, `on` and friends are refused as ambiguous).
    fn boolean(&self, item: Item<'_>, key: &str) -> Result<bool, ConfigError> {
        match *item.value {
            Scalar::Bool(b) => Ok(b),
            _ => Err(self.expected(item, key, "true or false")),
        }
    }

    fn boolean_or(
        &self,
        leaf: Option<&Leaf>,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        leaf.map_or(Ok(default), |l| self.boolean(l.into(), key))
    }

    /// A string (a bare number is taken as its text: `lcores: 3`).
    fn text(&self, item: Item<'_>, key: &str, what: &str) -> Result<String, ConfigError> {
        match item.value {
            Scalar::Str(s) if !s.is_empty() => Ok(s.clone()),
            Scalar::Int(n) => Ok(n.to_string()),
            _ => Err(self.expected(item, key, what)),
        }
    }

    /// One of the keywords in `choices`.
    fn keyword<T: Copy>(
        &self,
        item: Item<'_>,
        key: &str,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        if let Scalar::Str(s) = item.value {
            if let Some(&(_, v)) = choices.iter().find(|(w, _)| w == s) {
                return Ok(v);
            }
        }
        let words: Vec<&str> = choices.iter().map(|&(w, _)| w).collect();
        Err(self.expected(item, key, one_of(&words)))
    }

    /// The items of a list that must not be empty.
    fn nonempty<'v>(
        &self,
        v: &'v Items,
        key: &str,
        what: &str,
    ) -> Result<Vec<Item<'v>>, ConfigError> {
        let list = items(v);
        if list.is_empty() {
            let problem = Problem::Expected {
                expected: format!("at least one {what}"),
                got: "an empty list".into(),
            };
            return Err(self.err(&v.referenced, key, problem));
        }
        Ok(list)
    }
}

/// Validates `raw` into a [`Config`] that reports `ctx.file` as its source.
pub(crate) fn build(raw: RawConfig, ctx: &Ctx<'_>) -> Result<Config, ConfigError> {
    let ports = ports::build(raw.ports.as_ref(), ctx)?;
    let dataplane = match &raw.dataplane {
        Some(d) => dataplane::build(&d.value, ctx)?,
        None => Dataplane::default(),
    };
    let default_ct = RawConntrack::default();
    let ct = raw.conntrack.as_ref().map_or(&default_ct, |c| &c.value);
    let mut engine = conntrack::build(ct, ctx)?;
    engine.non_ip = match &raw.non_ip {
        Some(l) => ctx.keyword(
            l.into(),
            "non_ip",
            &[
                ("drop", NonIpPolicy::Drop),
                ("forward", NonIpPolicy::Forward),
            ],
        )?,
        None => NonIpPolicy::Drop,
    };
    engine.peers = ports.iter().map(|p| p.peer).collect();
    let policy = match &raw.policy {
        Some(l) => ctx.keyword(
            l.into(),
            "policy",
            &[("drop", Action::Drop), ("accept", Action::Accept)],
        )?,
        None => Action::Drop,
    };
    let log = service::log(raw.log.as_ref().map(|l| &l.value), ctx)?;
    let rules = rules::build(raw.rules.as_ref(), &ports, policy, ctx)?.with_default_log(log.policy);
    engine.log_rate = log.rate;
    engine.log_burst = log.burst;
    Ok(Config {
        source: ctx.file.to_path_buf(),
        ports,
        dataplane,
        engine,
        rules,
        control: service::control(raw.control.as_ref().map(|c| &c.value), ctx)?,
        metrics: service::metrics(raw.metrics.as_ref().map(|m| &m.value), ctx)?,
        log,
    })
}

/// The value of the required key `field` of the mapping `parent` at `base`.
fn required<'v, T>(
    parent: &Spanned<T>,
    value: Option<&'v Leaf>,
    base: &str,
    field: &str,
    what: &str,
    ctx: &Ctx<'_>,
) -> Result<&'v Leaf, ConfigError> {
    value.ok_or_else(|| {
        ctx.err(
            &parent.referenced,
            format!("{base}.{field}"),
            Problem::Missing { what: what.into() },
        )
    })
}

/// Records `name` as used at `leaf`, or reports where it was used first.
fn unique(
    seen: &mut HashMap<String, u64>,
    name: &str,
    leaf: &Leaf,
    key: &str,
    what: &'static str,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    if let Some(&first_line) = seen.get(name) {
        let problem = Problem::Duplicate {
            what,
            name: name.to_owned(),
            first_line,
        };
        return Err(ctx.err(&leaf.referenced, key, problem));
    }
    seen.insert(name.to_owned(), leaf.referenced.line());
    Ok(())
}
