//! `ctfw run`: the firewall itself, a DPDK data plane on the configured ports.
//!
//! Start-up: configuration (with command-line overrides) -> EAL (hugepages when there are
//! enough, else a clean `--no-huge` fallback, said in the log) -> ports probed and planned
//! ([`layout`]: symmetric RSS, software distribution, TX per worker or shared) -> one packet
//! pool per port -> ports configured and started -> one worker per worker lcore, each with
//! its own connection table ([`worker`]). The main lcore keeps the control plane (signals,
//! idle exit, periodic counters) and, when a device needs it, distributes RX in software and
//! transmits for ports with fewer TX queues than workers.
//!
//! Shutdown (SIGINT, SIGTERM, or `--idle-exit`): distribution stops, workers drain their
//! rings and flush TX, the main lcore drains the shared TX rings, final counters and the
//! table are printed, ports are stopped and closed, every pool is checked to be full again
//! (no mbuf leaked), and the EAL is cleaned up. Exit status 0.

mod eal;
mod layout;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use ctfw_config::{Config, Hugepages};
use ctfw_engine::Counters;
use ctfw_engine::pipeline::Engine;
use ctfw_engine::rss::{self, SYMMETRIC_KEY, Toeplitz};
use ctfw_engine::rules::PortId;
use rte::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConf, Ring, RssConf, RxQueue, TxQueue, sys};
use tracing::{info, warn};

use self::eal::{Host, Memory};
use self::layout::{PortPlan, RxMode, TxMode};
use self::worker::{Clock, IoCounters, MAX_BURST, Shared, TxPath, Worker};
use crate::summary;

/// Capacity of each worker's input ring and each shared TX ring.
const RING_SIZE: u32 = 1024;
/// Per-lcore mempool cache.
const POOL_CACHE: u32 = 256;
/// Environment variable set when re-executing without hugepages after a failed start.
const NO_HUGE_ENV: &str = "CTFW_NO_HUGE";

/// Arguments of `ctfw run`. Every value is checked by its parser, so a bad one is refused
/// with clap's usage message; what needs the configuration is checked in `apply_overrides`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML configuration (ports, data plane, conntrack knobs, rules).
    #[arg(long, short)]
    config: PathBuf,
    /// Replace a configured port's DPDK device, e.g.
    /// `--device inside=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap` (repeatable).
    #[arg(long = "device", value_name = "NAME=DEVARGS", value_parser = parse_device)]
    devices: Vec<DeviceOverride>,
    /// Stop cleanly after this many seconds without a packet received on any port.
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive_seconds)]
    idle_exit: Option<f64>,
    /// Number of workers (overrides `dataplane.workers`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// Hugepage use (overrides `dataplane.hugepages`).
    #[arg(long, value_parser = PossibleValuesParser::new(Hugepages::ALL.map(Hugepages::name))
        .try_map(|s| s.parse::<Hugepages>()))]
    hugepages: Option<Hugepages>,
    /// EAL file prefix (overrides `dataplane.file_prefix`; default unique per process).
    #[arg(long, value_parser = parse_file_prefix)]
    file_prefix: Option<String>,
    /// Print counters every SECONDS while running (0: only at exit).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0, value_parser = parse_seconds)]
    stats_interval: f64,
    /// Entries of the final conntrack table to print at exit.
    #[arg(long, default_value_t = 20)]
    max_entries: usize,
}

/// One `NAME=DEVARGS` device replacement.
#[derive(Clone, Debug)]
struct DeviceOverride {
    /// The configured port's name.
    port: String,
    /// Its new DPDK device.
    device: String,
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

/// One configured port, probed.
struct PortSetup {
    name: String,
    device: String,
    port: Port,
    pool: Mempool,
    plan: PortPlan,
    driver: String,
    accepted: PortConf,
}

/// Run `ctfw run`.
pub fn run(args: &Args) -> Result<()> {
    let mut cfg = Config::load(&args.config)?;
    apply_overrides(&mut cfg, args)?;
    let workers = cfg.dataplane.workers;

    let host = Host::probe();
    let forced_off = std::env::var_os(NO_HUGE_ENV).is_some();
    let (memory, why) = eal::choose_memory(
        cfg.dataplane.hugepages,
        &host,
        cfg.dataplane.memory_mb,
        forced_off,
    );
    info!("memory: {why}");
    let prefix = cfg
        .dataplane
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("ctfw-{}", std::process::id()));
    let eal_args = eal::eal_args(&cfg, memory, &host, &prefix);
    if cfg.dataplane.lcores.is_none() && eal::lcore_map(workers, &host.cpus).1 {
        warn!(
            "{} lcores on {} CPU(s): workers share CPUs (fine for tests, not for speed)",
            workers + 1,
            host.cpus.len()
        );
    }
    info!("EAL arguments: {}", eal_args.join(" "));
    let eal = match Eal::init(&eal_args) {
        Ok(eal) => eal,
        Err(e) if memory == Memory::Hugepages && cfg.dataplane.hugepages == Hugepages::Auto => {
            warn!("EAL start with hugepages failed ({e}); restarting without hugepages");
            reexec_without_hugepages()?;
            unreachable!("reexec_without_hugepages exits");
        }
        Err(e) => bail!(
            "DPDK EAL initialisation failed: {e}\n  EAL arguments: {}\n  \
             (check the devices, dataplane.lcores / --workers, and memory settings)",
            eal_args.join(" ")
        ),
    };
    let lcores = eal.worker_lcores();
    if lcores.len() < usize::from(workers) {
        bail!(
            "too few cores: {workers} worker(s) configured but the EAL has {} worker lcore(s) ({}); \
             lower dataplane.workers / --workers or widen dataplane.lcores",
            lcores.len(),
            eal_args
                .iter()
                .find(|a| a.starts_with("--lcores") || a.starts_with("-l"))
                .map_or("", |s| s)
        );
    }

    let mut ports = setup_ports(&eal, &cfg, workers)?;
    let layout = Layout::new(&eal, &ports, workers)?;
    print_layout(&cfg, &ports, &layout, &lcores, memory);
    for p in &mut ports {
        p.port
            .start()
            .with_context(|| format!("cannot start port {} ({})", p.name, p.device))?;
        if let Err(e) = p.port.promiscuous(true) {
            info!("port {}: promiscuous mode not available ({e})", p.name);
        }
    }

    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&term))
            .context("cannot install signal handlers")?;
    }

    // Build the workers and the main lcore's I/O duties.
    let clock = Clock::new(eal.tsc_hz(), rte::tsc());
    let stop = Arc::new(AtomicBool::new(false));
    let mut engine_cfg = cfg.engine.clone();
    engine_cfg.capacity = worker_capacity(&cfg);
    let mut port_of = vec![None; sys::RTE_MAX_ETHPORTS as usize];
    for (i, p) in ports.iter().enumerate() {
        port_of[usize::from(p.port.id())] = Some(PortId(i as u16));
    }
    let mut shared = Vec::new();
    let mut handles = Vec::new();
    for w in 0..workers {
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            match p.plan.rx {
                RxMode::Direct | RxMode::Rss => {
                    let q = if p.plan.rx == RxMode::Rss { w } else { 0 };
                    rx.push((p.port.rx_queue(q)?, PortId(i as u16)));
                }
                RxMode::Distributed => {}
            }
            tx.push(match p.plan.tx {
                TxMode::PerWorker => TxPath::Queue(p.port.tx_queue(w)?),
                TxMode::Shared => {
                    TxPath::Ring(layout.tx_rings[i].clone().context("shared TX ring")?)
                }
            });
        }
        let s = Arc::new(Shared::default());
        shared.push(Arc::clone(&s));
        let worker = Worker {
            index: u32::from(w),
            workers: u32::from(workers),
            engine: Engine::new(engine_cfg.clone(), cfg.rules.clone(), random_seeds()),
            rx,
            input: layout.worker_rings.get(usize::from(w)).cloned(),
            tx,
            peers: layout.worker_rings.clone(),
            redispatch: workers > 1 && ports.iter().any(|p| p.plan.rx == RxMode::Rss),
            port_of: port_of.clone(),
            burst: usize::from(cfg.dataplane.burst).min(MAX_BURST),
            clock,
            stop: Arc::clone(&stop),
            shared: s,
        };
        let lcore = lcores[usize::from(w)];
        handles.push(
            eal.launch(lcore, move || worker.run())
                .with_context(|| format!("cannot launch worker {w} on lcore {lcore}"))?,
        );
    }
    let mut io = MainIo::new(&ports, &layout, workers)?;

    let started = std::time::Instant::now();
    let why_stopped = io.run(&term, args, &shared, &cfg, started);
    info!("stopping: {why_stopped}");

    // Workers drain their input rings and flush; then the shared TX rings are drained.
    stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for (w, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(r) => reports.push(r),
            Err(_) => bail!("worker {w} panicked"),
        }
    }
    io.drain_tx();
    let elapsed = started.elapsed();

    // Report.
    let mut total = Counters::default();
    let mut io_total = IoCounters::default();
    let mut hits = vec![0u64; cfg.rules.len() + 1];
    let (mut table_len, mut capacity) = (0, 0);
    for r in &reports {
        total.merge(r.engine.counters());
        add_io(&mut io_total, &r.io);
        for (a, b) in hits.iter_mut().zip(r.engine.rule_hits()) {
            *a += b;
        }
        table_len += r.engine.table().len();
        capacity += r.engine.table().capacity();
    }
    outln!(
        "ctfw run: stopped after {:.2} s ({why_stopped})",
        elapsed.as_secs_f64()
    );
    outln!(
        "  received {}  transmitted {}  tx dropped {}  (distributor: {} received, {} ring-full drops; {} ICMP errors re-dispatched)",
        io_total.rx_port + io.rx,
        io_total.tx_port + io.tx,
        io_total.tx_dropped + io.tx_dropped,
        io.rx,
        io.ring_dropped,
        io_total.redispatched
    );
    summary::print_counters(&total, table_len, capacity);
    summary::print_rule_hits(&cfg.rules, &hits);
    for (w, r) in reports.iter().enumerate() {
        let c = r.engine.counters();
        outln!(
            "  worker {w}: {} packets, {} accepted, {} dropped, {} entries",
            c.packets,
            c.accepted,
            c.dropped,
            r.engine.table().len()
        );
    }
    let now = clock.now();
    let mut entries: Vec<_> = reports
        .iter()
        .flat_map(|r| summary::snapshot(&r.engine, now))
        .collect();
    entries.sort_by_key(|e| {
        (
            e.family,
            e.proto,
            e.orig.src,
            e.orig.dst,
            e.orig.sport,
            e.orig.dport,
        )
    });
    summary::print_table(&entries, args.max_entries);
    drop(reports);

    // Stop and close the ports, then check that every mbuf came home.
    drop(io);
    drop(layout);
    let mut leaked = false;
    for p in ports {
        let stats = p.port.stats().ok();
        let (pool, name) = (p.pool.clone(), p.name.clone());
        p.port
            .close()
            .with_context(|| format!("closing port {name}"))?;
        if let Some(s) = stats {
            outln!(
                "  port {name}: rx {} tx {} missed {} rx errors {} tx errors {} no-mbuf {}",
                s.ipackets,
                s.opackets,
                s.imissed,
                s.ierrors,
                s.oerrors,
                s.rx_nombuf
            );
        }
        let (avail, size) = (pool.avail(), pool.size());
        outln!("  mempool {}: {avail} of {size} mbufs free", pool.name());
        leaked |= avail != size;
    }
    if leaked {
        bail!("mbufs were not returned to their pools (see above)");
    }
    Ok(())
}

/// Each worker's table capacity: the configured total shared out (at least 1024 each).
fn worker_capacity(cfg: &Config) -> u32 {
    cfg.engine
        .capacity
        .div_ceil(u32::from(cfg.dataplane.workers))
        .max(1024)
}

fn add_io(a: &mut IoCounters, b: &IoCounters) {
    a.rx_port += b.rx_port;
    a.rx_ring += b.rx_ring;
    a.tx_port += b.tx_port;
    a.tx_ring += b.tx_ring;
    a.tx_dropped += b.tx_dropped;
    a.redispatched += b.redispatched;
    a.redispatch_dropped += b.redispatch_dropped;
}

/// Apply `--device`, `--workers`, `--hugepages` and `--file-prefix`; check that every port
/// still has a device of its own.
fn apply_overrides(cfg: &mut Config, args: &Args) -> Result<()> {
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
    let mut seen = std::collections::HashSet::new();
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
    Ok(())
}

/// Re-run this process with hugepages off (the EAL cannot be initialised twice in one
/// process), and exit with its status.
fn reexec_without_hugepages() -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the ctfw executable to restart")?;
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(NO_HUGE_ENV, "1")
        .status()
        .context("cannot restart ctfw without hugepages")?;
    std::process::exit(status.code().unwrap_or(1));
}

fn random_seeds() -> [u64; 4] {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    let mut seeds = [0u64; 4];
    for (s, c) in seeds.iter_mut().zip(b.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        *s = u64::from_ne_bytes(w) ^ rte::tsc();
    }
    seeds
}

/// Probe, plan and configure every port.
fn setup_ports(eal: &Eal, cfg: &Config, workers: u16) -> Result<Vec<PortSetup>> {
    let dp = &cfg.dataplane;
    let mut out = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let ethdev = eal::ethdev_name(&p.device);
        let dev = ethdev.as_str();
        let mut port = Port::by_name(eal, dev).with_context(|| {
            format!(
                "port {}: device {dev:?} not found (is the PMD available, the devargs right, \
                 the PCI device bound to vfio-pci?)",
                p.name
            )
        })?;
        let info = port
            .dev_info()
            .with_context(|| format!("port {}: device info", p.name))?;
        let plan = layout::plan_port(&info, workers);
        // Where this port's mbufs can wait: its RX descriptors, TX descriptors (of the peer,
        // counted alike), the lcores' pool caches, the rings and the burst buffers.
        let rings = u64::from(workers > 1) + u64::from(plan.tx == layout::TxMode::Shared);
        let needed = u64::from(plan.rx_queues) * u64::from(dp.rx_descriptors)
            + u64::from(plan.tx_queues) * u64::from(dp.tx_descriptors)
            + u64::from(workers + 1) * u64::from(POOL_CACHE)
            + rings * u64::from(RING_SIZE)
            + MAX_BURST as u64 * u64::from(workers + 1);
        if u64::from(dp.mbufs_per_port) < needed {
            bail!(
                "port {}: dataplane.mbufs_per_port is {}, but its queues, rings and caches can hold \
                 {needed} mbufs: raise it to at least {needed} (2^n - 1 suits the mempool best), \
                 or lower rx_descriptors / tx_descriptors",
                p.name,
                dp.mbufs_per_port
            );
        }
        let pool = Mempool::pktmbuf(
            eal,
            &format!("ctfw_p{i}"),
            dp.mbufs_per_port,
            POOL_CACHE,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::SOCKET_ID_ANY,
        )
        .with_context(|| {
            format!(
                "port {}: cannot create a pool of {} mbufs (raise dataplane.memory_mb, now {} MiB)",
                p.name, dp.mbufs_per_port, dp.memory_mb
            )
        })?;
        let rss = (plan.rx == RxMode::Rss).then(|| RssConf {
            key: SYMMETRIC_KEY[..usize::from(info.hash_key_size).min(SYMMETRIC_KEY.len())].to_vec(),
            hf: layout::RSS_HF,
        });
        let conf = PortConf {
            rx_queues: plan.rx_queues,
            tx_queues: plan.tx_queues,
            rx_desc: dp.rx_descriptors,
            tx_desc: dp.tx_descriptors,
            rss,
            rx_offloads: sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM
                | sys::RTE_ETH_RX_OFFLOAD_TCP_CKSUM
                | sys::RTE_ETH_RX_OFFLOAD_UDP_CKSUM,
            tx_offloads: 0,
            mtu: None,
        };
        let accepted = port
            .configure(&conf, &pool)
            .with_context(|| format!("port {}: cannot configure device {dev}", p.name))?;
        if plan.rx == RxMode::Rss {
            if accepted.rss.is_none() {
                bail!(
                    "port {}: device {dev} refused RSS after advertising it",
                    p.name
                );
            }
            port.set_reta(&layout::reta(info.reta_size, workers))
                .with_context(|| {
                    format!("port {}: cannot program the RSS redirection table", p.name)
                })?;
        }
        out.push(PortSetup {
            name: p.name.clone(),
            device: p.device.clone(),
            port,
            pool,
            plan,
            driver: info.driver_name,
            accepted,
        });
    }
    Ok(out)
}

/// Rings between lcores.
struct Layout {
    /// Input ring of each worker (only with more than one worker).
    worker_rings: Vec<Ring>,
    /// Shared TX ring per port (`None` for ports with a TX queue per worker).
    tx_rings: Vec<Option<Ring>>,
}

impl Layout {
    fn new(eal: &Eal, ports: &[PortSetup], workers: u16) -> Result<Layout> {
        let worker_rings = if workers > 1 {
            (0..workers)
                .map(|w| Ring::new(eal, &format!("ctfw_w{w}"), RING_SIZE, sys::SOCKET_ID_ANY))
                .collect::<Result<Vec<_>, _>>()
                .context("cannot create worker rings")?
        } else {
            Vec::new()
        };
        let tx_rings = ports
            .iter()
            .enumerate()
            .map(|(i, p)| match p.plan.tx {
                TxMode::Shared => {
                    Ring::new(eal, &format!("ctfw_tx{i}"), RING_SIZE, sys::SOCKET_ID_ANY)
                        .map(Some)
                        .context("cannot create a TX ring")
                }
                TxMode::PerWorker => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Layout {
            worker_rings,
            tx_rings,
        })
    }
}

fn print_layout(
    cfg: &Config,
    ports: &[PortSetup],
    layout: &Layout,
    lcores: &[u32],
    memory: Memory,
) {
    outln!("ctfw run: {}", cfg.source.display());
    outln!(
        "  memory: {}; {} worker(s); burst {}",
        match memory {
            Memory::Hugepages => "hugepages (--in-memory)",
            Memory::NoHuge => "no hugepages (--no-huge)",
        },
        cfg.dataplane.workers,
        cfg.dataplane.burst
    );
    for (i, p) in ports.iter().enumerate() {
        let peer = &cfg.ports[usize::from(cfg.ports[i].peer.0)].name;
        outln!(
            "  port {i} {:<8} {} (driver {}, ethdev {}) -> {peer}: RX {} queue(s) x {} desc, TX {} queue(s) x {} desc{}; {}",
            p.name,
            eal::device_name(&p.device),
            p.driver,
            p.port.id(),
            p.accepted.rx_queues,
            p.accepted.rx_desc,
            p.accepted.tx_queues,
            p.accepted.tx_desc,
            p.accepted
                .rss
                .as_ref()
                .map_or(String::new(), |r| format!(", RSS hf {:#x}", r.hf)),
            p.plan.why
        );
    }
    let capacity = worker_capacity(cfg);
    for (w, lcore) in lcores
        .iter()
        .take(usize::from(cfg.dataplane.workers))
        .enumerate()
    {
        let polls: Vec<String> = ports
            .iter()
            .filter_map(|p| match p.plan.rx {
                RxMode::Direct => Some(format!("{} q0", p.name)),
                RxMode::Rss => Some(format!("{} q{w}", p.name)),
                RxMode::Distributed => None,
            })
            .chain((!layout.worker_rings.is_empty()).then(|| "its ring".to_owned()))
            .collect();
        outln!(
            "  worker {w}: lcore {lcore}, table capacity {capacity}, polls {}",
            polls.join(", ")
        );
    }
    let dist: Vec<_> = ports
        .iter()
        .filter(|p| p.plan.rx == RxMode::Distributed)
        .map(|p| p.name.as_str())
        .collect();
    let txs: Vec<_> = ports
        .iter()
        .filter(|p| p.plan.tx == TxMode::Shared)
        .map(|p| p.name.as_str())
        .collect();
    outln!(
        "  main lcore: control{}{}",
        if dist.is_empty() {
            String::new()
        } else {
            format!(", software distribution of {}", dist.join(", "))
        },
        if txs.is_empty() {
            String::new()
        } else {
            format!(", TX for {}", txs.join(", "))
        }
    );
}

/// The main lcore's packet duties and counters.
struct MainIo {
    dist: Vec<RxQueue>,
    tx_queues: Vec<(Ring, TxQueue)>,
    rings: Vec<Ring>,
    /// Per-worker staging for one distributed burst (allocated once, here).
    stage: Vec<MbufBurst<MAX_BURST>>,
    toeplitz: Toeplitz,
    workers: u32,
    rx: u64,
    tx: u64,
    tx_dropped: u64,
    ring_dropped: u64,
}

impl MainIo {
    fn new(ports: &[PortSetup], layout: &Layout, workers: u16) -> Result<MainIo> {
        let mut dist = Vec::new();
        let mut tx = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            if p.plan.rx == RxMode::Distributed {
                dist.push(p.port.rx_queue(0)?);
            }
            if let Some(r) = &layout.tx_rings[i] {
                tx.push((r.clone(), p.port.tx_queue(0)?));
            }
        }
        Ok(MainIo {
            dist,
            tx_queues: tx,
            rings: layout.worker_rings.clone(),
            stage: layout
                .worker_rings
                .iter()
                .map(|_| MbufBurst::default())
                .collect(),
            toeplitz: Toeplitz::symmetric(),
            workers: u32::from(workers),
            rx: 0,
            tx: 0,
            tx_dropped: 0,
            ring_dropped: 0,
        })
    }

    /// Distribute, transmit, and watch for the end. Returns why it stopped.
    fn run(
        &mut self,
        term: &AtomicBool,
        args: &Args,
        shared: &[Arc<Shared>],
        cfg: &Config,
        started: std::time::Instant,
    ) -> String {
        let busy = !self.dist.is_empty() || !self.tx_queues.is_empty();
        let hz = rte::tsc_hz();
        let mut last_check = rte::tsc();
        let mut last_activity = (0u64, std::time::Instant::now());
        let mut last_stats = std::time::Instant::now();
        loop {
            if busy {
                self.distribute();
                self.transmit();
                let t = rte::tsc();
                if t.wrapping_sub(last_check) < hz / 1000 {
                    continue;
                }
                last_check = t;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
            if term.load(Ordering::Relaxed) {
                return "signal".into();
            }
            let activity = self.rx
                + shared
                    .iter()
                    .map(|s| s.rx.load(Ordering::Relaxed))
                    .sum::<u64>();
            if activity != last_activity.0 {
                last_activity = (activity, std::time::Instant::now());
            } else if let Some(idle) = args.idle_exit {
                if last_activity.1.elapsed().as_secs_f64() >= idle {
                    return format!("no packet for {idle} s (--idle-exit)");
                }
            }
            if args.stats_interval > 0.0
                && last_stats.elapsed().as_secs_f64() >= args.stats_interval
            {
                last_stats = std::time::Instant::now();
                print_progress(shared, cfg, started);
            }
        }
    }

    /// One RX burst from every software-distributed port, each packet to its owner's ring.
    fn distribute(&mut self) {
        let mut rx: MbufBurst<MAX_BURST> = MbufBurst::default();
        // Back-pressure: take from a device only what every worker ring can still hold, so
        // an overloaded worker makes packets wait in (and, sustained, overflow) the device's
        // own RX queue, where the NIC counts them, instead of being dropped after receipt.
        for q in &mut self.dist {
            let room = self
                .rings
                .iter()
                .map(|r| r.capacity() - r.count())
                .min()
                .unwrap_or(0);
            if room == 0 || q.rx_burst_max(&mut rx, (room as usize).min(64)) == 0 {
                continue;
            }
            self.rx += rx.len() as u64;
            for m in rx.drain() {
                let owner = rss::dispatch_hash(&self.toeplitz, m.data())
                    .map_or(0, |h| rss::owner(h, self.workers))
                    as usize;
                if let Err(m) = self.stage[owner].push(m) {
                    self.ring_dropped += 1;
                    drop::<Mbuf>(m);
                }
            }
            for (buf, ring) in self.stage.iter_mut().zip(&self.rings) {
                ring.enqueue_burst(buf);
                if !buf.is_empty() {
                    self.ring_dropped += buf.len() as u64;
                    buf.clear();
                }
            }
        }
    }

    /// Drain the shared TX rings into their ports.
    fn transmit(&mut self) {
        let mut buf: MbufBurst<MAX_BURST> = MbufBurst::default();
        for (ring, q) in &mut self.tx_queues {
            if ring.dequeue_burst(&mut buf) == 0 {
                continue;
            }
            for _ in 0..4 {
                self.tx += q.tx_burst(&mut buf) as u64;
                if buf.is_empty() {
                    break;
                }
            }
            self.tx_dropped += buf.len() as u64;
            buf.clear();
        }
    }

    /// After the workers stopped: transmit what is left in the TX rings.
    fn drain_tx(&mut self) {
        while self.tx_queues.iter().any(|(r, _)| r.count() > 0) {
            self.transmit();
        }
    }
}

fn print_progress(shared: &[Arc<Shared>], cfg: &Config, started: std::time::Instant) {
    let mut c = Counters::default();
    let mut entries = 0;
    for s in shared {
        let g = s
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.merge(&g.0);
        entries += g.2;
    }
    outln!(
        "[{:>8.1} s] packets {} accepted {} dropped {} entries {} (capacity {})",
        started.elapsed().as_secs_f64(),
        c.packets,
        c.accepted,
        c.dropped,
        entries,
        cfg.engine.capacity
    );
}
