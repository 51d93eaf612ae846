//! The command line of `ctfw run`, and how it overrides the configuration.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use ctfw_config::{Config, Hugepages};

use super::eal;

/// Arguments of `ctfw run`. Every value is checked by its parser, so a bad one is refused
/// with clap's usage message; what needs the configuration is checked in [`apply`].
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The YAML configuration (ports, data plane, conntrack knobs, rules).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Replace a configured port's DPDK device, e.g.
    /// `--device inside=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap` (repeatable).
    #[arg(long = "device", value_name = "NAME=DEVARGS", value_parser = parse_device)]
    pub devices: Vec<DeviceOverride>,
    /// Stop cleanly after this many seconds without a packet received on any port.
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive_seconds)]
    pub idle_exit: Option<f64>,
    /// Number of workers (overrides `dataplane.workers`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=i64::from(ctfw_config::MAX_WORKERS)))]
    pub workers: Option<u16>,
    /// Hugepage use (overrides `dataplane.hugepages`).
    #[arg(long, value_parser = PossibleValuesParser::new(Hugepages::ALL.map(Hugepages::name))
        .try_map(|s| s.parse::<Hugepages>()))]
    pub hugepages: Option<Hugepages>,
    /// EAL file prefix (overrides `dataplane.file_prefix`; default unique per process).
    #[arg(long, value_parser = parse_file_prefix)]
    pub file_prefix: Option<String>,
    /// The control socket (overrides `control.socket`): an absolute path.
    #[arg(long, value_name = "PATH", value_parser = parse_socket)]
    pub socket: Option<PathBuf>,
    /// Print counters every SECONDS while running (0: only at exit).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0, value_parser = parse_seconds)]
    pub stats_interval: f64,
    /// Entries of the final conntrack table to print at exit (and to list in the JSON report).
    #[arg(long, default_value_t = 20)]
    pub max_entries: usize,
    /// Also write the final report as JSON to FILE: packets in and out, counters by reason,
    /// rule hits, each worker's share, the table, port statistics and the mempool check.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

/// One `NAME=DEVARGS` device replacement.
#[derive(Clone, Debug)]
pub struct DeviceOverride {
    /// The configured port's name.
    pub port: String,
    /// Its new DPDK device.
    pub device: String,
}

fn parse_device(s: &str) -> Result<DeviceOverride, String> {
    let (port, device) = s
        .split_once('=')
        .ok_or("expected NAME=DEVARGS, e.g. inside=net_pcap0,rx_pcap=in.pcap")?;
    if device.trim().is_empty() {
        return Err("the device is empty".into());
    }
    Ok(DeviceOverride {
        port: port.to_owned(),
        device: device.to_owned(),
    })
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err("expected a number of seconds >= 0".into()),
    }
}

fn parse_positive_seconds(s: &str) -> Result<f64, String> {
    match parse_seconds(s) {
        Ok(t) if t > 0.0 => Ok(t),
        _ => Err("expected a positive number of seconds".into()),
    }
}

fn parse_file_prefix(s: &str) -> Result<String, String> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("use letters, digits, '_' and '-'".into());
    }
    Ok(s.to_owned())
}

fn parse_socket(s: &str) -> Result<PathBuf, String> {
    // What `control.socket` accepts: sun_path holds 108 bytes with the terminating NUL.
    if !s.starts_with('/') || s.ends_with('/') || s.len() > 107 {
        return Err("expected an absolute path to a socket file, at most 107 bytes".into());
    }
    Ok(PathBuf::from(s))
}

/// Apply `--device`, `--workers`, `--hugepages`, `--file-prefix` and `--socket`; check that
/// every port still has a device of its own.
pub fn apply(cfg: &mut Config, args: &Args) -> Result<()> {
    for o in &args.devices {
        let names: Vec<_> = cfg.ports.iter().map(|p| p.name.clone()).collect();
        let port = cfg
            .ports
            .iter_mut()
            .find(|p| p.name == o.port)
            .with_context(|| {
                format!(
                    "--device {}={}: no port named {:?} in {} (ports: {})",
                    o.port,
                    o.device,
                    o.port,
                    cfg.source.display(),
                    names.join(", ")
                )
            })?;
        port.device.clone_from(&o.device);
    }
    let mut seen = HashSet::new();
    for p in &cfg.ports {
        if !seen.insert(eal::device_name(&p.device).to_owned()) {
            bail!(
                "two ports use device {:?}: give each port its own device",
                eal::device_name(&p.device)
            );
        }
    }
    if let Some(w) = args.workers {
        cfg.dataplane.workers = w;
    }
    if let Some(h) = args.hugepages {
        cfg.dataplane.hugepages = h;
    }
    if let Some(p) = &args.file_prefix {
        cfg.dataplane.file_prefix = Some(p.clone());
    }
    if let Some(s) = &args.socket {
        cfg.control.socket.clone_from(s);
    }
    Ok(())
}
