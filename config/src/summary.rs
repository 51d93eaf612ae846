//! The human summary printed by `ctfw check-config`.
//!
//! It shows what the firewall will do, not what the file says: defaults filled in, port
//! references resolved, rules in an iptables-like notation that an operator can compare with
//! a Linux rule set line by line. Timeouts are listed only where they differ from Linux's.

use core::fmt::Write as _;

use ctfw_engine::pipeline::{FragmentPolicy, NonIpPolicy};
use ctfw_engine::rules::{Action, PortSet, Rule};
use ctfw_engine::track::TrackConfig;
use ctfw_engine::wire::{Family, proto};

use crate::Config;
use crate::raw::TIMEOUTS;

/// `on`/`off`.
fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

pub(crate) fn summary(cfg: &Config) -> String {
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let mut s = String::new();
    let _ = writeln!(s, "configuration: {}", cfg.source.display());

    let _ = writeln!(s, "ports:");
    let width = cfg.ports.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for (i, p) in cfg.ports.iter().enumerate() {
        let peer = cfg.port(p.peer).map_or("?", |q| q.name.as_str());
        let _ = writeln!(
            s,
            "  {i} {:width$}  peer {:width$}  mtu {}  device {:?}",
            p.name, peer, p.mtu, p.device
        );
    }

    let d = &cfg.dataplane;
    let _ = write!(
        s,
        "dataplane: {} worker{}, burst {}, rx/tx descriptors {}/{}, {} mbufs per port, {} MiB, hugepages {}",
        d.workers,
        if d.workers == 1 { "" } else { "s" },
        d.burst,
        d.rx_descriptors,
        d.tx_descriptors,
        d.mbufs_per_port,
        d.memory_mb,
        d.hugepages.name()
    );
    if let Some(l) = &d.lcores {
        let _ = write!(s, ", lcores {l:?}");
    }
    if let Some(m) = d.main_lcore {
        let _ = write!(s, ", main lcore {m}");
    }
    if let Some(p) = &d.file_prefix {
        let _ = write!(s, ", file prefix {p:?}");
    }
    if !d.eal_args.is_empty() {
        let _ = write!(s, ", extra EAL args {:?}", d.eal_args);
    }
    s.push('\n');

    let e = &cfg.engine;
    let tcp = &e.track.tcp;
    let _ = writeln!(
        s,
        "conntrack: capacity {}, loose {}, be_liberal {}, max_retrans {}, ignore_invalid_rst {}, checksum {}, fragments {}",
        e.capacity,
        on_off(tcp.loose),
        on_off(tcp.be_liberal),
        tcp.max_retrans,
        on_off(tcp.ignore_invalid_rst),
        on_off(e.parse.verify_l4_checksum),
        match e.fragments {
            FragmentPolicy::Drop => "drop",
            FragmentPolicy::Untracked => "untracked",
        }
    );
    let linux = TrackConfig::default();
    let changed: Vec<String> = TIMEOUTS
        .iter()
        .filter(|t| (t.get)(&e.track) != (t.get)(&linux))
        .map(|t| {
            format!(
                "{} {} (Linux {})",
                t.key,
                (t.get)(&e.track),
                (t.get)(&linux)
            )
        })
        .collect();
    if changed.is_empty() {
        let _ = writeln!(s, "  timeouts: Linux defaults");
    } else {
        let _ = writeln!(s, "  timeouts differing from Linux: {}", changed.join(", "));
    }
    let _ = writeln!(
        s,
        "non-IP frames: {}",
        match e.non_ip {
            NonIpPolicy::Drop => "drop",
            NonIpPolicy::Forward => "forward",
        }
    );

    let _ = writeln!(s, "rules (first match wins):");
    let width = cfg.rules.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (i, (name, rule)) in cfg.rules.iter().enumerate() {
        let _ = writeln!(s, "  {i:>3} {name:width$}  {}", rule_line(cfg, rule));
    }
    let _ = writeln!(
        s,
        "  policy {}{}",
        target(cfg.rules.default_action()),
        if cfg.rules.default_log() {
            " (log)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "control socket {}; metrics {}; log to {} at {}/s, burst {}; accounting {}",
        cfg.control.socket.display(),
        cfg.metrics
            .listen
            .map_or_else(|| "off".to_owned(), |a| format!("on http://{a}/metrics")),
        match &cfg.log.target {
            crate::LogTarget::Stderr => "stderr".to_owned(),
            crate::LogTarget::File(p) => p.display().to_string(),
        },
        cfg.log.rate,
        cfg.log.burst,
        on_off(cfg.engine.accounting),
    );
    s
}

/// `ACCEPT`/`DROP`.
fn target(a: Action) -> &'static str {
    match a {
        Action::Accept => "ACCEPT",
        Action::Drop => "DROP",
    }
}

/// Port names of `set`, comma-separated.
fn port_names(cfg: &Config, set: PortSet) -> String {
    set.iter()
        .map(|p| cfg.port(p).map_or("?", |q| q.name.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Comma-separated `Display` of `items`.
fn joined<T: core::fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// One rule in iptables-like notation, matchers in iptables' usual order.
pub(crate) fn rule_line(cfg: &Config, r: &Rule) -> String {
    let mut parts: Vec<String> = Vec::new();
    match r.family {
        Some(Family::V4) => parts.push("-4".into()),
        Some(Family::V6) => parts.push("-6".into()),
        None => {}
    }
    if let Some(set) = r.in_port {
        parts.push(format!("-i {}", port_names(cfg, set)));
    }
    if let Some(set) = r.out_port {
        parts.push(format!("-o {}", port_names(cfg, set)));
    }
    if let Some(n) = r.proto {
        let name = match n {
            proto::TCP => "tcp".to_owned(),
            proto::UDP => "udp".to_owned(),
            proto::ICMP => "icmp".to_owned(),
            proto::ICMPV6 => "icmpv6".to_owned(),
            other => other.to_string(),
        };
        parts.push(format!("-p {name}"));
    }
    if !r.src.is_empty() {
        parts.push(format!("-s {}", joined(&r.src)));
    }
    if !r.dst.is_empty() {
        parts.push(format!("-d {}", joined(&r.dst)));
    }
    for (one, many, list) in [
        ("--sport", "--sports", &r.sport),
        ("--dport", "--dports", &r.dport),
    ] {
        match list.len() {
            0 => {}
            1 => parts.push(format!("{one} {}", list[0])),
            _ => parts.push(format!("-m multiport {many} {}", joined(list))),
        }
    }
    if let Some(t) = r.tcp_flags {
        parts.push(t.to_string());
    }
    if let Some(states) = r.ct {
        parts.push(format!("-m conntrack --ctstate {states}"));
    }
    parts.push(format!("-j {}", target(r.action)));
    if r.log {
        // iptables needs a LOG rule before the verdict; ctfw logs what this rule decided.
        parts.push("(log)".into());
    }
    parts.join(" ")
}
