//! `rules`: the ordered rule list, compiled into the engine's [`RuleSet`].
//!
//! Each matcher is checked on its own (keywords, prefixes without host bits, ports and
//! ranges, TCP flag masks) and then against the others: a rule that could never match
//! (`sport` with `proto: icmp`, prefixes of the other family, an `out_port` that is not the
//! peer of any `in_port`, ...) is an error, not dead weight. Rule names are unique, including
//! the `rule<i>` given to unnamed rules.

use std::collections::HashMap;
use std::net::IpAddr;

use ctfw_engine::rules::{
    Action, CtStateSet, PortRange, PortSet, Prefix, PrefixError, Rule, RuleSet, TcpFlagsMatch,
};
use ctfw_engine::track::CtState;
use ctfw_engine::wire::{Family, TcpFlags, proto};
use serde_saphyr::{Location, Spanned};

use super::ports::port_ref;
use super::{Ctx, Item, NAME_RULE, is_name, items, required, unique};
use crate::Port;
use crate::error::{ConfigError, Problem};
use crate::raw::{Items, RawRule, RawTcpFlags, Scalar};

/// Compiles `rules` (none: an empty list) and the default `policy` into a [`RuleSet`] over
/// `ports`.
pub(super) fn build(
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
    rule.log = ctx.boolean_or(r.log.as_ref(), &key("log"), false)?;

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
