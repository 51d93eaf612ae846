//! Validation: the raw document ([`crate::raw`]) becomes the immutable runtime [`Config`].
//!
//! Every check the runtime relies on happens here, once, at load time: ranges, names,
//! references between ports and rules, peers, prefixes, port ranges, and rules that could
//! never match. The first problem found is returned as a [`Diagnostic`] pointing at the line of
//! the offending value. Nothing is checked again per packet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use ctfw_engine::pipeline::{EngineConfig, FragmentPolicy, NonIpPolicy};
use ctfw_engine::rules::{
    Action, CtStateSet, PortId, PortRange, PortSet, Prefix, PrefixError, Rule, RuleSet,
    TcpFlagsMatch,
};
use ctfw_engine::time::{MAX_TIMEOUT_SECS, Ticks};
use ctfw_engine::track::{CtState, TrackConfig};
use ctfw_engine::wire::{Family, ParseConfig, TcpFlags, proto};
use serde_saphyr::{Location, Spanned};

use crate::error::{ConfigError, Diagnostic, Pos, Problem, closest};
use crate::raw::{
    Items, Leaf, OneOrMany, RawConfig, RawConntrack, RawDataplane, RawPort, RawRule, RawTcpFlags,
    Scalar,
};
use crate::{Config, Dataplane, Hugepages, Port};

/// Smallest and largest `conntrack.capacity`.
pub(crate) const CAPACITY_RANGE: (u64, u64) = (1024, 16_777_215);

/// One configurable timeout: its YAML key under `conntrack.timeouts` and the engine field it
/// sets. The defaults are the engine's (Linux's), read through `get` from
/// `TrackConfig::default()`, so they are written down once.
pub(crate) struct TimeoutKey {
    /// Key under `conntrack.timeouts`.
    pub key: &'static str,
    /// Reads the field.
    pub get: fn(&TrackConfig) -> Ticks,
    /// Writes the field.
    pub set: fn(&mut TrackConfig, Ticks),
}

/// Every timeout, in the order of the documentation.
pub(crate) const TIMEOUTS: [TimeoutKey; 18] = [
    TimeoutKey {
        key: "tcp_syn_sent",
        get: |t| t.tcp.timeouts.syn_sent,
        set: |t, v| t.tcp.timeouts.syn_sent = v,
    },
    TimeoutKey {
        key: "tcp_syn_recv",
        get: |t| t.tcp.timeouts.syn_recv,
        set: |t, v| t.tcp.timeouts.syn_recv = v,
    },
    TimeoutKey {
        key: "tcp_established",
        get: |t| t.tcp.timeouts.established,
        set: |t, v| t.tcp.timeouts.established = v,
    },
    TimeoutKey {
        key: "tcp_fin_wait",
        get: |t| t.tcp.timeouts.fin_wait,
        set: |t, v| t.tcp.timeouts.fin_wait = v,
    },
    TimeoutKey {
        key: "tcp_close_wait",
        get: |t| t.tcp.timeouts.close_wait,
        set: |t, v| t.tcp.timeouts.close_wait = v,
    },
    TimeoutKey {
        key: "tcp_last_ack",
        get: |t| t.tcp.timeouts.last_ack,
        set: |t, v| t.tcp.timeouts.last_ack = v,
    },
    TimeoutKey {
        key: "tcp_time_wait",
        get: |t| t.tcp.timeouts.time_wait,
        set: |t, v| t.tcp.timeouts.time_wait = v,
    },
    TimeoutKey {
        key: "tcp_close",
        get: |t| t.tcp.timeouts.close,
        set: |t, v| t.tcp.timeouts.close = v,
    },
    TimeoutKey {
        key: "tcp_syn_sent2",
        get: |t| t.tcp.timeouts.syn_sent2,
        set: |t, v| t.tcp.timeouts.syn_sent2 = v,
    },
    TimeoutKey {
        key: "tcp_max_retrans",
        get: |t| t.tcp.timeouts.retrans,
        set: |t, v| t.tcp.timeouts.retrans = v,
    },
    TimeoutKey {
        key: "tcp_unacknowledged",
        get: |t| t.tcp.timeouts.unack,
        set: |t, v| t.tcp.timeouts.unack = v,
    },
    TimeoutKey {
        key: "udp",
        get: |t| t.other.udp_unreplied,
        set: |t, v| t.other.udp_unreplied = v,
    },
    TimeoutKey {
        key: "udp_stream",
        get: |t| t.other.udp_stream,
        set: |t, v| t.other.udp_stream = v,
    },
    TimeoutKey {
        key: "icmp",
        get: |t| t.other.icmp,
        set: |t, v| t.other.icmp = v,
    },
    TimeoutKey {
        key: "icmpv6",
        get: |t| t.other.icmpv6,
        set: |t, v| t.other.icmpv6 = v,
    },
    TimeoutKey {
        key: "gre",
        get: |t| t.other.gre_unreplied,
        set: |t, v| t.other.gre_unreplied = v,
    },
    TimeoutKey {
        key: "gre_stream",
        get: |t| t.other.gre_stream,
        set: |t, v| t.other.gre_stream = v,
    },
    TimeoutKey {
        key: "generic",
        get: |t| t.other.generic,
        set: |t, v| t.other.generic = v,
    },
];

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

    /// "expected `expected`, got <item>" at the item.
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
    let ports = build_ports(raw.ports.as_ref(), ctx)?;
    let dataplane = match &raw.dataplane {
        Some(d) => build_dataplane(&d.value, ctx)?,
        None => Dataplane::default(),
    };
    let default_ct = RawConntrack::default();
    let ct = raw.conntrack.as_ref().map_or(&default_ct, |c| &c.value);
    let mut engine = build_conntrack(ct, ctx)?;
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
    let rules = build_rules(raw.rules.as_ref(), &ports, policy, ctx)?;
    Ok(Config {
        source: ctx.file.to_path_buf(),
        ports,
        dataplane,
        engine,
        rules,
    })
}

fn build_ports(
    raw: Option<&Spanned<Vec<Spanned<RawPort>>>>,
    ctx: &Ctx<'_>,
) -> Result<Vec<Port>, ConfigError> {
    let Some(list) = raw else {
        let what =
            "list the firewall's ports (at least two), each with a name, a device and a peer";
        return Err(ctx.err_at(None, "ports", Problem::Missing { what: what.into() }));
    };
    let n = list.value.len();
    if !(2..=RuleSet::MAX_PORTS).contains(&n) {
        let problem = Problem::Expected {
            expected: format!(
                "between 2 and {} ports (peers come in pairs)",
                RuleSet::MAX_PORTS
            ),
            got: format!("{n}"),
        };
        return Err(ctx.err(&list.referenced, "ports", problem));
    }

    // Names and devices first, so that peers can refer to any port, before or after.
    let mut names: Vec<String> = Vec::with_capacity(n);
    let mut devices: Vec<String> = Vec::with_capacity(n);
    let mut seen_names: HashMap<String, u64> = HashMap::new();
    let mut seen_devices: HashMap<String, u64> = HashMap::new();
    for (i, port) in list.value.iter().enumerate() {
        let base = format!("ports[{i}]");
        let name_leaf = required(
            port,
            port.value.name.as_ref(),
            &base,
            "name",
            "a port name, e.g. `inside`",
            ctx,
        )?;
        let name = ctx.text(name_leaf.into(), &format!("{base}.name"), NAME_RULE)?;
        if !is_name(&name) {
            return Err(ctx.expected(name_leaf.into(), &format!("{base}.name"), NAME_RULE));
        }
        unique(
            &mut seen_names,
            &name,
            name_leaf,
            &format!("{base}.name"),
            "port name",
            ctx,
        )?;
        let dev_leaf = required(
            port,
            port.value.device.as_ref(),
            &base,
            "device",
            "the DPDK device: a PCI address or vdev arguments, e.g. `net_pcap0,iface=eth0`",
            ctx,
        )?;
        let device = ctx.text(
            dev_leaf.into(),
            &format!("{base}.device"),
            "a DPDK device string",
        )?;
        unique(
            &mut seen_devices,
            &device,
            dev_leaf,
            &format!("{base}.device"),
            "device",
            ctx,
        )?;
        names.push(name);
        devices.push(device);
    }

    let mut peers = Vec::with_capacity(n);
    for (i, port) in list.value.iter().enumerate() {
        let base = format!("ports[{i}]");
        let key = format!("{base}.peer");
        let leaf = required(
            port,
            port.value.peer.as_ref(),
            &base,
            "peer",
            "the name of the port accepted packets leave on",
            ctx,
        )?;
        let peer = port_ref(leaf.into(), &key, &names, ctx)?;
        if usize::from(peer.0) == i {
            let problem = Problem::Invalid(format!(
                "port `{}` cannot be its own peer: name the port its accepted packets leave on",
                names[i]
            ));
            return Err(ctx.err(&leaf.referenced, key, problem));
        }
        peers.push((peer, leaf));
    }
    for (i, &(peer, leaf)) in peers.iter().enumerate() {
        let back = peers[usize::from(peer.0)].0;
        if usize::from(back.0) != i {
            let problem = Problem::PeerNotMutual {
                port: names[i].clone(),
                peer: names[usize::from(peer.0)].clone(),
                peer_peer: names[usize::from(back.0)].clone(),
            };
            return Err(ctx.err(&leaf.referenced, format!("ports[{i}].peer"), problem));
        }
    }
    Ok(names
        .into_iter()
        .zip(devices)
        .zip(peers)
        .map(|((name, device), (peer, _))| Port { name, device, peer })
        .collect())
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

/// A reference to a port by name.
fn port_ref(
    item: Item<'_>,
    key: &str,
    names: &[String],
    ctx: &Ctx<'_>,
) -> Result<PortId, ConfigError> {
    let name = match item.value {
        Scalar::Str(s) => s.clone(),
        Scalar::Int(n) => n.to_string(),
        _ => return Err(ctx.expected(item, key, "a port name")),
    };
    match names.iter().position(|n| *n == name) {
        // At most MAX_PORTS (64) ports, so the index fits.
        Some(i) => Ok(PortId(i as u16)),
        None => {
            let suggestion = closest(&name, names.iter().map(String::as_str));
            let problem = Problem::UnknownPort {
                name,
                known: names.to_vec(),
                suggestion,
            };
            Err(ctx.err(item.at, item.key(key), problem))
        }
    }
}

fn build_dataplane(raw: &RawDataplane, ctx: &Ctx<'_>) -> Result<Dataplane, ConfigError> {
    let d = Dataplane::default();
    let text_opt = |leaf: Option<&Leaf>, key: &str, what: &str| {
        leaf.map(|l| ctx.text(l.into(), key, what)).transpose()
    };
    let file_prefix = text_opt(
        raw.file_prefix.as_ref(),
        "dataplane.file_prefix",
        "a file prefix",
    )?;
    if let (Some(p), Some(leaf)) = (&file_prefix, &raw.file_prefix) {
        let ok = p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            let what = "a file prefix of letters, digits, `_` and `-` (at most 64)";
            return Err(ctx.expected(leaf.into(), "dataplane.file_prefix", what));
        }
    }
    let mut eal_args = Vec::new();
    if let Some(v) = &raw.eal_args {
        for item in items(v) {
            eal_args.push(ctx.text(
                item,
                "dataplane.eal_args",
                "an EAL argument (a non-empty string)",
            )?);
        }
    }
    Ok(Dataplane {
        workers: ctx.uint_or(
            raw.workers.as_ref(),
            "dataplane.workers",
            1,
            64,
            d.workers.into(),
        )? as u16,
        lcores: text_opt(
            raw.lcores.as_ref(),
            "dataplane.lcores",
            "an EAL lcore list, e.g. \"0-2\"",
        )?,
        main_lcore: raw
            .main_lcore
            .as_ref()
            .map(|l| {
                ctx.uint(l.into(), "dataplane.main_lcore", 0, 1023, "")
                    .map(|n| n as u16)
            })
            .transpose()?,
        memory_mb: ctx.uint_or(
            raw.memory_mb.as_ref(),
            "dataplane.memory_mb",
            16,
            1 << 20,
            d.memory_mb.into(),
        )? as u32,
        hugepages: match &raw.hugepages {
            // `on` and `off` are strings here (strict booleans), but `true`/`false` mean the same.
            Some(l) if matches!(l.value, Scalar::Bool(_)) => {
                if ctx.boolean(l.into(), "dataplane.hugepages")? {
                    Hugepages::On
                } else {
                    Hugepages::Off
                }
            }
            Some(l) => ctx.keyword(
                l.into(),
                "dataplane.hugepages",
                &[
                    ("auto", Hugepages::Auto),
                    ("on", Hugepages::On),
                    ("off", Hugepages::Off),
                ],
            )?,
            None => d.hugepages,
        },
        file_prefix,
        burst: ctx.uint_or(
            raw.burst.as_ref(),
            "dataplane.burst",
            1,
            256,
            d.burst.into(),
        )? as u16,
        rx_descriptors: ctx.uint_or(
            raw.rx_descriptors.as_ref(),
            "dataplane.rx_descriptors",
            32,
            32768,
            d.rx_descriptors.into(),
        )? as u16,
        tx_descriptors: ctx.uint_or(
            raw.tx_descriptors.as_ref(),
            "dataplane.tx_descriptors",
            32,
            32768,
            d.tx_descriptors.into(),
        )? as u16,
        mbufs_per_port: ctx.uint_or(
            raw.mbufs_per_port.as_ref(),
            "dataplane.mbufs_per_port",
            512,
            16_777_215,
            d.mbufs_per_port.into(),
        )? as u32,
        eal_args,
    })
}

fn build_conntrack(raw: &RawConntrack, ctx: &Ctx<'_>) -> Result<EngineConfig, ConfigError> {
    let mut track = TrackConfig::default();
    let (lo, hi) = CAPACITY_RANGE;
    let capacity =
        ctx.uint_or(raw.capacity.as_ref(), "conntrack.capacity", lo, hi, 262_144)? as u32;
    track.tcp.loose = ctx.boolean_or(raw.loose.as_ref(), "conntrack.loose", track.tcp.loose)?;
    track.tcp.be_liberal = ctx.boolean_or(
        raw.be_liberal.as_ref(),
        "conntrack.be_liberal",
        track.tcp.be_liberal,
    )?;
    track.tcp.max_retrans = ctx.uint_or(
        raw.max_retrans.as_ref(),
        "conntrack.max_retrans",
        0,
        255,
        track.tcp.max_retrans.into(),
    )? as u8;
    track.tcp.ignore_invalid_rst = ctx.boolean_or(
        raw.ignore_invalid_rst.as_ref(),
        "conntrack.ignore_invalid_rst",
        track.tcp.ignore_invalid_rst,
    )?;
    let parse = ParseConfig {
        verify_l4_checksum: ctx.boolean_or(
            raw.checksum.as_ref(),
            "conntrack.checksum",
            ParseConfig::default().verify_l4_checksum,
        )?,
    };
    let fragments = match &raw.fragments {
        Some(l) => ctx.keyword(
            l.into(),
            "conntrack.fragments",
            &[
                ("drop", FragmentPolicy::Drop),
                ("untracked", FragmentPolicy::Untracked),
            ],
        )?,
        None => FragmentPolicy::default(),
    };
    if let Some(t) = &raw.timeouts {
        for tk in &TIMEOUTS {
            if let Some(leaf) = t.value.get(tk.key) {
                let key = format!("conntrack.timeouts.{}", tk.key);
                let secs = ctx.uint(
                    leaf.into(),
                    &key,
                    1,
                    MAX_TIMEOUT_SECS.into(),
                    " seconds (at most 30 days)",
                )? as u32;
                (tk.set)(&mut track, Ticks::from_secs(secs));
            }
        }
    }
    Ok(EngineConfig {
        capacity,
        track,
        parse,
        fragments,
        non_ip: NonIpPolicy::default(),
        peers: Vec::new(),
    })
}

fn build_rules(
    raw: Option<&Spanned<Vec<Spanned<RawRule>>>>,
    ports: &[Port],
    policy: Action,
    ctx: &Ctx<'_>,
) -> Result<RuleSet, ConfigError> {
    let list = raw.map_or(&[][..], |l| &l.value[..]);
    if list.len() > RuleSet::MAX_RULES {
        let problem = Problem::Expected {
            expected: format!("at most {} rules", RuleSet::MAX_RULES),
            got: list.len().to_string(),
        };
        return Err(ctx.err_at(None, "rules", problem));
    }
    let names_of_ports: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
    let mut rules = Vec::with_capacity(list.len());
    let mut names = Vec::with_capacity(list.len());
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (i, raw_rule) in list.iter().enumerate() {
        let base = format!("rules[{i}]");
        let name = match &raw_rule.value.name {
            Some(leaf) => {
                let key = format!("{base}.name");
                let name = ctx.text(leaf.into(), &key, NAME_RULE)?;
                if !is_name(&name) {
                    return Err(ctx.expected(leaf.into(), &key, NAME_RULE));
                }
                unique(&mut seen, &name, leaf, &key, "rule name", ctx)?;
                name
            }
            None => {
                let name = format!("rule{i}");
                if let Some(&first_line) = seen.get(&name) {
                    let problem = Problem::Invalid(format!(
                        "this unnamed rule is called `{name}`, a name already used on line {first_line}; give one of them another name"
                    ));
                    return Err(ctx.err(&raw_rule.referenced, base, problem));
                }
                seen.insert(name.clone(), raw_rule.referenced.line());
                name
            }
        };
        rules.push(build_rule(raw_rule, &base, &names_of_ports, ports, ctx)?);
        names.push(name);
    }
    RuleSet::new(rules, policy, names)
        .map_err(|e| ctx.err_at(None, "rules", Problem::Invalid(e.to_string())))
}

const STATES: [(&str, CtState); 5] = [
    ("new", CtState::New),
    ("established", CtState::Established),
    ("related", CtState::Related),
    ("invalid", CtState::Invalid),
    ("untracked", CtState::Untracked),
];

const FLAGS: [(&str, u8); 8] = [
    ("fin", TcpFlags::FIN),
    ("syn", TcpFlags::SYN),
    ("rst", TcpFlags::RST),
    ("psh", TcpFlags::PSH),
    ("ack", TcpFlags::ACK),
    ("urg", TcpFlags::URG),
    ("ece", TcpFlags::ECE),
    ("cwr", TcpFlags::CWR),
];

const PROTOS: [(&str, u8); 4] = [
    ("tcp", proto::TCP),
    ("udp", proto::UDP),
    ("icmp", proto::ICMP),
    ("icmpv6", proto::ICMPV6),
];

/// Name of protocol `n` for messages.
fn proto_name(n: u8) -> String {
    PROTOS
        .iter()
        .find(|&&(_, p)| p == n)
        .map_or_else(|| n.to_string(), |&(w, _)| w.to_owned())
}

fn build_rule(
    raw_rule: &Spanned<RawRule>,
    base: &str,
    port_names: &[String],
    ports: &[Port],
    ctx: &Ctx<'_>,
) -> Result<Rule, ConfigError> {
    let r = &raw_rule.value;
    let never = |loc: &Location, key: String, why: String| {
        ctx.err(
            loc,
            key,
            Problem::Invalid(format!("{why}: this rule could never match")),
        )
    };
    let key = |field: &str| format!("{base}.{field}");

    let action_leaf = required(
        raw_rule,
        r.action.as_ref(),
        base,
        "action",
        "every rule needs an action: accept or drop",
        ctx,
    )?;
    let action = ctx.keyword(
        action_leaf.into(),
        &key("action"),
        &[("accept", Action::Accept), ("drop", Action::Drop)],
    )?;
    let mut rule = Rule::new(action);

    if let Some(v) = &r.ct_state {
        let mut set = CtStateSet::EMPTY;
        for item in ctx.nonempty(v, &key("ct_state"), "conntrack state")? {
            set = set.with(ctx.keyword(item, &key("ct_state"), &STATES)?);
        }
        rule.ct = Some(set);
    }
    rule.in_port = port_set(r.in_port.as_ref(), &key("in_port"), port_names, ctx)?;
    rule.out_port = port_set(r.out_port.as_ref(), &key("out_port"), port_names, ctx)?;
    if let (Some(ins), Some(outs), Some(leaf)) = (rule.in_port, rule.out_port, &r.out_port) {
        if !ins
            .iter()
            .any(|p| outs.contains(ports[usize::from(p.0)].peer))
        {
            let why = "packets arriving on the in_port ports leave on their peers, none of which is an out_port".to_owned();
            return Err(never(&leaf.referenced, key("out_port"), why));
        }
    }
    if let Some(leaf) = &r.family {
        rule.family = Some(ctx.keyword(
            leaf.into(),
            &key("family"),
            &[("ipv4", Family::V4), ("ipv6", Family::V6)],
        )?);
    }
    if let Some(leaf) = &r.proto {
        let item = Item::from(leaf);
        let n = match leaf.value {
            Scalar::Int(_) => ctx.uint(item, &key("proto"), 0, 255, "")? as u8,
            _ => ctx.keyword(item, &key("proto"), &PROTOS).map_err(|_| {
                ctx.expected(
                    item,
                    &key("proto"),
                    "tcp, udp, icmp, icmpv6 or a protocol number 0-255",
                )
            })?,
        };
        let clash = match (n, rule.family) {
            (proto::ICMP, Some(Family::V6)) => Some("ICMP is IPv4-only; use icmpv6 for IPv6"),
            (proto::ICMPV6, Some(Family::V4)) => Some("ICMPv6 is IPv6-only; use icmp for IPv4"),
            _ => None,
        };
        if let Some(why) = clash {
            return Err(never(&leaf.referenced, key("proto"), why.to_owned()));
        }
        rule.proto = Some(n);
    }
    rule.src = prefixes(r.src.as_ref(), &key("src"), rule.family, ctx)?;
    rule.dst = prefixes(r.dst.as_ref(), &key("dst"), rule.family, ctx)?;
    if !rule.src.is_empty() && !rule.dst.is_empty() {
        let fams = |l: &[Prefix]| {
            (
                l.iter().any(|p| p.family() == Family::V4),
                l.iter().any(|p| p.family() == Family::V6),
            )
        };
        let (s4, s6) = fams(&rule.src);
        let (d4, d6) = fams(&rule.dst);
        if !(s4 && d4 || s6 && d6) {
            if let Some(v) = &r.dst {
                let why = "src and dst prefixes are of different address families".to_owned();
                return Err(never(&v.referenced, key("dst"), why));
            }
        }
    }
    for (field, raw_ports) in [("sport", &r.sport), ("dport", &r.dport)] {
        let Some(v) = raw_ports else { continue };
        if let Some(n) = rule.proto.filter(|&n| n != proto::TCP && n != proto::UDP) {
            let why = format!("{field} needs TCP or UDP, but proto is {}", proto_name(n));
            return Err(never(&v.referenced, key(field), why));
        }
    }
    rule.sport = port_ranges(r.sport.as_ref(), &key("sport"), ctx)?;
    rule.dport = port_ranges(r.dport.as_ref(), &key("dport"), ctx)?;
    if let (Some(_), Some(s)) = (&r.tcp_flags, &r.syn) {
        let problem = Problem::Invalid("give either syn or tcp_flags, not both".into());
        return Err(ctx.err(&s.referenced, key("syn"), problem));
    }
    if let Some(leaf) = &r.syn {
        let syn = ctx.boolean(leaf.into(), &key("syn"))?;
        rule.tcp_flags = Some(if syn {
            TcpFlagsMatch::SYN
        } else {
            TcpFlagsMatch::SYN.negated()
        });
    }
    if let Some(t) = &r.tcp_flags {
        rule.tcp_flags = Some(tcp_flags(t, &key("tcp_flags"), ctx)?);
    }
    if rule.tcp_flags.is_some() {
        if let Some(n) = rule.proto.filter(|&n| n != proto::TCP) {
            let (field, loc) = match (&r.syn, &r.tcp_flags) {
                (Some(s), _) => ("syn", &s.referenced),
                (None, Some(t)) => ("tcp_flags", &t.referenced),
                (None, None) => ("proto", &raw_rule.referenced),
            };
            let why = format!("{field} tests TCP flags, but proto is {}", proto_name(n));
            return Err(never(loc, key(field), why));
        }
    }
    Ok(rule)
}

/// A set of ports named by `raw`.
fn port_set(
    raw: Option<&Items>,
    key: &str,
    names: &[String],
    ctx: &Ctx<'_>,
) -> Result<Option<PortSet>, ConfigError> {
    let Some(v) = raw else { return Ok(None) };
    let mut set = PortSet::EMPTY;
    for item in ctx.nonempty(v, key, "port name")? {
        let id = port_ref(item, key, names, ctx)?;
        // Port ids are below MAX_PORTS (checked with the port list), so `with` succeeds.
        set = set.with(id).unwrap_or(set);
    }
    Ok(Some(set))
}

/// Source or destination port ranges.
fn port_ranges(
    raw: Option<&Items>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<Box<[PortRange]>, ConfigError> {
    let Some(v) = raw else {
        return Ok(Box::new([]));
    };
    let list = ctx.nonempty(v, key, "port")?;
    list.into_iter()
        .map(|item| port_range(item, key, ctx))
        .collect()
}

/// Source or destination prefixes; a bare address is a single host.
fn prefixes(
    raw: Option<&Items>,
    key: &str,
    family: Option<Family>,
    ctx: &Ctx<'_>,
) -> Result<Box<[Prefix]>, ConfigError> {
    let Some(v) = raw else {
        return Ok(Box::new([]));
    };
    let mut out = Vec::new();
    for item in ctx.nonempty(v, key, "address or prefix")? {
        let p = prefix(item, key, ctx)?;
        if family.is_some_and(|f| f != p.family()) {
            let problem = Problem::Invalid(format!(
                "{p} is not of the rule's family: this rule could never match"
            ));
            return Err(ctx.err(item.at, item.key(key), problem));
        }
        out.push(p);
    }
    Ok(out.into_boxed_slice())
}

/// `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1`.
fn prefix(item: Item<'_>, key: &str, ctx: &Ctx<'_>) -> Result<Prefix, ConfigError> {
    const WHAT: &str = "an IPv4 or IPv6 address or prefix, e.g. 10.0.0.0/8 or \"2001:db8::/32\"";
    let Scalar::Str(s) = item.value else {
        return Err(ctx.expected(item, key, WHAT));
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s.as_str(), None),
    };
    let Ok(addr) = addr.trim().parse::<IpAddr>() else {
        return Err(ctx.expected(item, key, WHAT));
    };
    let (family, bits, max) = match addr {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a)), 32u8),
        IpAddr::V6(a) => (Family::V6, u128::from(a), 128u8),
    };
    let len = match len {
        None => max,
        Some(l) => match l.trim().parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                let fam = if max == 32 { "IPv4" } else { "IPv6" };
                return Err(ctx.expected(
                    item,
                    key,
                    format!("a prefix length between 0 and {max} after an {fam} address"),
                ));
            }
        },
    };
    Prefix::new(family, bits, len).map_err(|e| {
        let problem = match e {
            PrefixError::HostBitsSet { masked } => Problem::Invalid(format!(
                "{s} has host bits set past /{len}: write {masked} for the network{}",
                if len == max {
                    String::new()
                } else {
                    format!(", or {addr} for the single address")
                }
            )),
            other => Problem::Invalid(format!("{s}: {other}")),
        };
        ctx.err(item.at, item.key(key), problem)
    })
}

/// `80`, `"8000-8080"`.
fn port_range(item: Item<'_>, key: &str, ctx: &Ctx<'_>) -> Result<PortRange, ConfigError> {
    const WHAT: &str = "a port 0-65535 or a range \"lo-hi\"";
    let port = |t: &str| t.trim().parse::<u16>().ok();
    match item.value {
        Scalar::Int(n) => u16::try_from(*n)
            .map(PortRange::single)
            .map_err(|_| ctx.expected(item, key, WHAT)),
        Scalar::Str(s) => {
            let (lo, hi) = match s.split_once('-') {
                Some((a, b)) => (port(a), port(b)),
                None => (port(s), port(s)),
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Err(ctx.expected(item, key, WHAT));
            };
            PortRange::new(lo, hi).ok_or_else(|| {
                let problem =
                    Problem::Invalid(format!("port range {lo}-{hi} is reversed: write {hi}-{lo}"));
                ctx.err(item.at, item.key(key), problem)
            })
        }
        _ => Err(ctx.expected(item, key, WHAT)),
    }
}

/// `{ mask: [syn, ack, fin, rst], comp: [syn], negate: true }`.
fn tcp_flags(
    t: &Spanned<RawTcpFlags>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<TcpFlagsMatch, ConfigError> {
    let flag_set = |v: &Items, field: &str, allow_empty: bool| -> Result<u8, ConfigError> {
        let k = format!("{key}.{field}");
        let list = if allow_empty {
            items(v)
        } else {
            ctx.nonempty(v, &k, "TCP flag")?
        };
        let mut bits = 0u8;
        for item in list {
            bits |= ctx.keyword(item, &k, &FLAGS)?;
        }
        Ok(bits)
    };
    let missing = |field: &str, what: &str| {
        ctx.err(
            &t.referenced,
            format!("{key}.{field}"),
            Problem::Missing { what: what.into() },
        )
    };
    let mask_v = t
        .value
        .mask
        .as_ref()
        .ok_or_else(|| missing("mask", "the flags to examine, e.g. [syn, ack, fin, rst]"))?;
    let comp_v = t.value.comp.as_ref().ok_or_else(|| {
        missing(
            "comp",
            "the flags that must be set among mask, e.g. [syn], or [] for none",
        )
    })?;
    let mask = flag_set(mask_v, "mask", false)?;
    let comp = flag_set(comp_v, "comp", true)?;
    let negate = t.value.negate.as_ref().map_or(Ok(false), |l| {
        ctx.boolean(l.into(), &format!("{key}.negate"))
    })?;
    TcpFlagsMatch::new(mask, comp, negate).ok_or_else(|| {
        let extra: Vec<&str> = FLAGS
            .iter()
            .filter(|&&(_, b)| comp & !mask & b != 0)
            .map(|&(w, _)| w)
            .collect();
        let problem = Problem::Invalid(format!(
            "comp has {}, which mask lacks: every flag in comp must be in mask",
            extra.join(", ")
        ));
        ctx.err(&comp_v.referenced, format!("{key}.comp"), problem)
    })
}
