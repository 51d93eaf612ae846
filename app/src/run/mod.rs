//! `ctfw run`: the firewall itself, a DPDK data plane on the configured ports.
//!
//! Start-up: signal handlers, first of all ([`signals`]: a stop signal during start-up ends it
//! at the next step, said in the log, status 0; stray signals are ignored) -> configuration
//! (with command-line overrides, [`args`]) -> the control socket bound
//! ([`crate::control::server`]), the devices locked against a second instance ([`locks`]) and
//! the `metrics.listen` address taken ([`metrics::bind`]), so that a second instance or an
//! address in use fails before DPDK starts -> the connection tables' memory and
//! `dataplane.memory_mb` checked against the machine ([`memory`]) -> EAL (hugepages when there
//! are enough, else a clean `--no-huge` fallback, said in the log; runtime directories of dead
//! instances removed; [`eal`]) -> one engine per worker allocated, each with its exact share
//! of the capacity, its table advised onto transparent huge pages with hugepages ([`memory`])
//! -> the `/metrics` server started ([`metrics::serve`]) -> ports probed and planned
//! ([`layout`]: symmetric RSS, software distribution, TX per worker or shared), each with its
//! packet pool, configured ([`ports`]) -> the rings between lcores ([`rings`]) -> ports
//! started -> one worker per worker lcore around its engine, with its mailbox ([`worker`],
//! [`mailbox`]) -> `READY=1` to systemd when it started ctfw ([`sd_notify`]). The main lcore
//! keeps the control plane (signals, idle exit, periodic counters, the live statistics of
//! [`publish`], the bad-checksum warning of [`csum_watch`], the control socket's commands and
//! the drop log: [`service`], [`droplog`]) and, when a device needs it, distributes RX in
//! software and transmits for ports with fewer TX queues than workers ([`control`]).
//!
//! Shutdown (SIGINT, SIGTERM, or `--idle-exit`): `STOPPING=1` to systemd, distribution stops,
//! workers drain their rings and flush TX, the main lcore drains the shared TX rings, posts
//! the final statistics, writes the last drop-log records and removes the control socket,
//! final counters and the table are printed ([`report`]), ports are stopped and closed, every
//! pool is checked to be full again (no mbuf leaked; `net_af_xdp` keeps some by design,
//! [`ports`]), the JSON report is written if `--report-json` asked for it, the `/metrics`
//! server stops, the EAL is cleaned up (its runtime directory removed) and the device locks
//! released. Exit status 0, or an error if an mbuf leaked.

mod args;
mod control;
mod csum_watch;
mod droplog;
mod eal;
mod frames;
mod layout;
mod locks;
mod mailbox;
mod memory;
mod ports;
mod publish;
mod report;
mod rings;
mod sd_notify;
mod service;
mod signals;
mod worker;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use ctfw_config::Config;
use ctfw_engine::pipeline::{Engine, EngineConfig};
use ctfw_engine::rss::Dispatch;
use ctfw_engine::rules::PortId;
use rte::{Eal, LaunchHandle, sys};
use tracing::{info, warn};

pub use self::args::Args;
use self::control::MainIo;
use self::layout::{RxMode, TxMode};
use self::mailbox::MainBox;
use self::ports::PortSetup;
use self::publish::Publisher;
use self::rings::Rings;
use self::service::Service;
use self::signals::{Interrupted, Signals};
use self::worker::{Clock, Finished, PortVerdicts, Shared, TxPath, Worker};
use crate::control::server::Server;
use crate::stats::Board;
use crate::{MAX_BURST, metrics};

/// Where the flow-hash seeds come from.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// Run `ctfw run`. A stop signal during start-up ends it early, said in the log, with
/// success ([`signals`]).
pub fn run(args: &Args) -> Result<()> {
    let signals = Signals::install()?;
    match start_and_serve(args, &signals) {
        Err(e) => match e.downcast::<Interrupted>() {
            Ok(stopped) => {
                warn!("{stopped}");
                Ok(())
            }
            Err(e) => Err(e),
        },
        Ok(()) => Ok(()),
    }
}

/// Start up, checking for a stop signal between steps; forward until stopped; shut down.
fn start_and_serve(args: &Args, signals: &Signals) -> Result<()> {
    let mut cfg = Config::load(&args.config)?;
    args::apply(&mut cfg, args)?;
    signals.check("reading the configuration")?;
    let server = Server::bind(
        &cfg.control.socket,
        std::time::Duration::from_secs(cfg.control.client_timeout_secs.into()),
    )?;
    info!("control socket: {}", server.path().display());
    // Held until the end (dropped last): the devices and files this instance drives.
    let _locks = locks::take(&cfg)?;
    // Taken before DPDK starts, so that an address in use fails at once and says so.
    let metrics_addr = cfg.metrics.listen.map(metrics::bind).transpose()?;
    signals.check("binding the control socket and locking the devices")?;
    let tables = memory::engines_bytes(&cfg);
    memory::check_tables(&cfg, tables)?;
    let eal::Started {
        eal,
        memory,
        lcores,
    } = eal::start(&cfg, tables)?;
    signals.check("starting the EAL")?;
    let engines = memory::allocate_engines(&cfg, memory)?;
    signals.check("allocating the connection tables")?;
    // Served from here on: the EAL has pinned this thread to the main lcore, and the
    // server's threads inherit that CPU rather than a worker's.
    let board = Arc::new(Board::new());
    let metrics = metrics_addr
        .map(|l| metrics::serve(l, Arc::clone(&board)))
        .transpose()?;
    let mut ports = ports::setup(&eal, &cfg)?;
    let rings = Rings::new(&eal, &ports, cfg.dataplane.workers)?;
    signals.check("setting up the ports")?;
    report::print_layout(&cfg, &ports, &rings, &lcores, memory, &engines);
    ports::start(&mut ports)?;
    // From here a stop signal ends the control loop at once, with the usual drain and report.
    let term = Arc::clone(&signals.stop);
    let mut main_io = MainIo::new(
        &ports,
        &rings,
        dispatch(&ports, cfg.dataplane.workers)?,
        cfg.dataplane.burst,
    )?;
    let clock = Clock::new(eal.tsc_hz(), rte::tsc());
    let wall0 = std::time::SystemTime::now();
    let mut workers = Workers::launch(&eal, &cfg, engines.engines, &ports, &rings, &lcores, clock)?;
    let boxes = std::mem::take(&mut workers.boxes);
    let hup = Arc::clone(&signals.hup);
    let mut service = Service::new(server, hup, boxes, &cfg, args, wall0)?;

    let started = std::time::Instant::now();
    let shared = workers.shared.clone();
    let mut publisher = Publisher::new(board, &cfg, &ports, &shared, &lcores, started);
    // Everything that can fail at start has run: tell systemd (Type=notify) we forward.
    if let Err(e) = sd_notify::notify("READY=1") {
        warn!("cannot tell the service manager that ctfw is ready: {e}");
    }
    let why = main_io.run(&term, args, &shared, started, &mut publisher, &mut service);
    info!("stopping: {why}");
    let _ = sd_notify::notify("STOPPING=1");
    // Workers drain their input rings and flush, while the main lcore keeps transmitting for
    // them; then the shared TX rings are drained.
    let mut finished = workers.stop(&mut main_io)?;
    main_io.drain_tx();
    // Readers see the final counters while the report is printed.
    publisher.publish(&main_io.counters);
    let mut engines: Vec<&mut Engine> = finished.iter_mut().map(|f| &mut f.engine).collect();
    service.shutdown(&mut engines);
    // The report names the rules in force at the end (a reload may have changed them).
    let cfg = service.config().clone();
    drop(service);
    let elapsed = started.elapsed();
    let summary = report::Final::new(&cfg, why, elapsed, memory, &finished, &main_io, clock.now());
    summary.print(&cfg, args.max_entries);

    // Stop and close the ports once nothing holds their queues, then check that every mbuf
    // came home.
    drop(finished);
    drop(main_io);
    drop(rings);
    let closed = ports::close(ports)?;
    report::print_ports(&closed);
    if let Some(path) = &args.report_json {
        summary.write_json(path, &cfg, args.max_entries, &closed)?;
    }
    drop(metrics);
    if closed.iter().any(ports::Closed::leaked) {
        bail!("mbufs were not returned to their pools (see above)");
    }
    Ok(())
}

/// The workers, running.
struct Workers {
    handles: Vec<LaunchHandle<Finished>>,
    /// What each publishes for the control loop.
    shared: Vec<Arc<Shared>>,
    /// Set to make them stop.
    stop: Arc<AtomicBool>,
    /// Main's end of each one's mailbox, for the control plane.
    boxes: Vec<MainBox>,
}

impl Workers {
    /// Build one worker per worker lcore around its engine (allocated beforehand,
    /// [`memory::allocate_engines`]) and launch it. If a launch fails, the workers already
    /// running are stopped.
    fn launch(
        eal: &Eal,
        cfg: &Config,
        engines: Vec<Engine>,
        ports: &[PortSetup],
        rings: &Rings,
        lcores: &[u32],
        clock: Clock,
    ) -> Result<Workers> {
        let workers = cfg.dataplane.workers;
        let stop = Arc::new(AtomicBool::new(false));
        let mut port_of = vec![None; sys::RTE_MAX_ETHPORTS as usize];
        for (i, p) in ports.iter().enumerate() {
            port_of[usize::from(p.port.id())] = Some(PortId(i as u16));
        }
        let mut built = Vec::new();
        let mut boxes = Vec::new();
        for (w, engine) in (0..workers).zip(engines) {
            let (main_end, worker_end) = mailbox::mailbox();
            boxes.push(main_end);
            let mut rx = Vec::new();
            let mut tx = Vec::new();
            for (i, p) in ports.iter().enumerate() {
                for q in p.plan.worker_rx(w) {
                    rx.push((p.port.rx_queue(q)?, PortId(i as u16)));
                }
                tx.push(match p.plan.tx {
                    TxMode::PerWorker => TxPath::Queue(p.port.tx_queue(w)?),
                    TxMode::Shared => TxPath::Ring(rings.tx[i].clone().context("shared TX ring")?),
                });
            }
            built.push(Worker {
                index: u32::from(w),
                workers: u32::from(workers),
                engine,
                rx,
                input: rings.workers.get(usize::from(w)).cloned(),
                tx,
                peers: rings.workers.clone(),
                redispatch: workers > 1 && ports.iter().any(|p| p.plan.rx == RxMode::Rss),
                port_of: port_of.clone(),
                burst: usize::from(cfg.dataplane.burst).min(MAX_BURST),
                clock,
                stop: Arc::clone(&stop),
                shared: Arc::new(Shared::default()),
                mailbox: worker_end,
                by_port: vec![PortVerdicts::default(); ports.len()],
            });
        }
        let shared = built.iter().map(|w| Arc::clone(&w.shared)).collect();
        let mut handles = Vec::new();
        for (w, (worker, &lcore)) in built.into_iter().zip(lcores).enumerate() {
            match eal.launch(lcore, move || worker.run()) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Those already running stop when told; dropping their handles waits.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e)
                        .with_context(|| format!("cannot launch worker {w} on lcore {lcore}"));
                }
            }
        }
        Ok(Workers {
            handles,
            shared,
            stop,
            boxes,
        })
    }

    /// Tell the workers to stop, and collect what each hands back. Each drains its input ring
    /// and flushes its TX buffers first; meanwhile `main_io` keeps draining the shared TX
    /// rings, which a worker's last packets may be waiting for (back-pressure).
    fn stop(self, main_io: &mut MainIo) -> Result<Vec<Finished>> {
        self.stop.store(true, Ordering::Relaxed);
        while !self.shared.iter().all(|s| s.done.load(Ordering::Acquire)) {
            main_io.transmit();
            std::hint::spin_loop();
        }
        let mut finished = Vec::new();
        for (w, h) in self.handles.into_iter().enumerate() {
            match h.join() {
                Ok(f) => finished.push(f),
                // Reached only in builds that unwind on panic (tests, debug): there `rte`
                // catches a worker's panic at the lcore boundary and `join` returns it. The
                // release profile has `panic = "abort"`, so in production a worker panic ends
                // the process with SIGABRT where it happens, this branch never runs, and the
                // service manager restarts the process.
                Err(_) => bail!("worker {w} panicked"),
            }
        }
        Ok(finished)
    }
}

/// The software distributor's rule: the keyed hash with a secret of this start, unless a
/// port does hardware RSS, whose symmetric Toeplitz hash the distributor must then agree with
/// (`engine/src/rss.rs`).
fn dispatch(ports: &[PortSetup], workers: u16) -> Result<Dispatch> {
    let seeds = random_seeds()?;
    Ok(if ports.iter().any(|p| p.plan.rx == RxMode::Rss) {
        Dispatch::toeplitz(seeds, u32::from(workers))
    } else {
        Dispatch::keyed(seeds, u32::from(workers))
    })
}

/// Worker `worker`'s engine settings under `cfg`: its share of the capacity. Start-up and
/// reload build them here, so that a reload compares like with like.
fn engine_config(cfg: &Config, worker: u16) -> EngineConfig {
    let mut e = cfg.engine.clone();
    e.capacity = worker_capacity(cfg, worker);
    e
}

/// Worker `worker`'s table capacity: the configured total shared out exactly, the first
/// `total % workers` workers one entry more than the others, so the tables add up to what the
/// operator set. Each share is at least the table's minimum (checked below).
fn worker_capacity(cfg: &Config, worker: u16) -> u32 {
    let workers = u32::from(cfg.dataplane.workers);
    let total = cfg.engine.capacity;
    total / workers + u32::from(u32::from(worker) < total % workers)
}

// The smallest capacity a configuration may give, shared by the most workers it may give,
// is still a table's smallest capacity: shares are never rounded up.
const _: () = assert!(
    ctfw_config::MIN_CAPACITY / ctfw_config::MAX_WORKERS as u32 >= ctfw_engine::table::MIN_CAPACITY
);

/// Hash seeds, from the kernel's random source: for one worker's table, or for the software
/// distributor. The keyed hashes are what keep crafted traffic from colliding in a table or
/// piling onto one worker, so there is no fallback: if the source cannot be read, start-up
/// stops.
fn random_seeds() -> Result<[u64; 4]> {
    std::fs::File::open(RANDOM_SOURCE)
        .and_then(|mut f| seeds_from(&mut f))
        .with_context(|| {
            format!(
                "cannot read the flow-hash seed from {RANDOM_SOURCE}; ctfw does not start with \
                 a guessable seed (the keyed hash defends the connection table against \
                 collision attacks)"
            )
        })
}

/// Four seeds from the first 32 bytes of `source`; an error if it has fewer.
fn seeds_from(source: &mut impl Read) -> std::io::Result<[u64; 4]> {
    let mut bytes = [0u8; 32];
    source.read_exact(&mut bytes)?;
    let mut seeds = [0u64; 4];
    for (s, chunk) in seeds.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *s = u64::from_ne_bytes(word);
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_come_from_the_random_source_and_a_short_read_is_an_error() {
        let bytes: Vec<u8> = (1..=32).collect();
        let seeds = seeds_from(&mut &bytes[..]).expect("32 bytes");
        assert_eq!(seeds[0], u64::from_ne_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(
            seeds[3],
            u64::from_ne_bytes([25, 26, 27, 28, 29, 30, 31, 32])
        );
        let err = seeds_from(&mut &bytes[..31]).expect_err("31 bytes");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_ne!(
            random_seeds().expect("the kernel's random source"),
            random_seeds().expect("the kernel's random source")
        );
    }
}
