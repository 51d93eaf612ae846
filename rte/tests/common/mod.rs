//! The EAL checks shared by the `harness = false` test binaries.
//!
//! DPDK allows one `rte_eal_init` per process, so each binary is one process running one EAL
//! configuration and a numbered sequence of checks against it. The binaries speak enough of
//! libtest's command line for `cargo test` and `cargo nextest` (`--list --format terse`,
//! `<name> --exact --nocapture`) and report as one test, printing each check.
//!
//! The vdevs: `net_ring0` loops TX queue i back to RX queue i through a 1023-slot ring;
//! `net_null0` drops everything sent and receives 64-byte packets allocated from the RX pool.

#![allow(dead_code)] // each binary uses a subset

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rte::sys;
use rte::{
    CksumStatus, Eal, Mbuf, MbufBurst, MbufViews, Mempool, Port, PortConf, Ring, RssConf, RteError,
    RxQueue, TxQueue,
};

const POOL_SIZE: u32 = 4095;
const DEADLINE: Duration = Duration::from_secs(5);

/// How the EAL was set up for this run.
pub struct Mode {
    /// Printed at the start: which memory mode ran and why.
    pub label: String,
    /// EAL arguments, `args[0]` being the program name.
    pub args: Vec<String>,
}

/// The EAL arguments every mode shares: our vdevs, two lcores on one CPU, quiet logs.
pub fn base_args(prefix: &str) -> Vec<String> {
    let cpu = first_allowed_cpu();
    vec![
        "rte-test".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        format!("--file-prefix={prefix}-{}", std::process::id()),
        // Two lcores on the first CPU we may use: the worker mostly sleeps in DPDK's wait.
        format!("--lcores=0@{cpu},1@{cpu}"),
        "--vdev=net_ring0".into(),
        "--vdev=net_null0".into(),
        "--log-level=warning".into(),
    ]
}

/// Removes the per-prefix runtime directory the EAL creates even with `--no-shconf` or
/// `--in-memory` (empty, but one per run would pile up). Only an empty directory is removed.
fn remove_runtime_dir(mode: &Mode) {
    let Some(prefix) = mode
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--file-prefix="))
    else {
        return;
    };
    let bases = [
        Some("/var/run/dpdk".into()),
        std::env::var("XDG_RUNTIME_DIR")
            .ok()
            .map(|d| format!("{d}/dpdk")),
        Some("/tmp/dpdk".into()),
    ];
    for base in bases.into_iter().flatten() {
        let _ = std::fs::remove_dir(format!("{base}/{prefix}"));
    }
}

fn first_allowed_cpu() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| list.trim().split([',', '-']).next()?.parse().ok())
        .unwrap_or(0)
}

/// Follows libtest's command line: returns `None` to run, or the exit code when only
/// listing or when filtered out.
pub fn handle_cli(test_name: &str) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{test_name}: test");
        }
        return Some(ExitCode::SUCCESS);
    }
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if [
            "--test-threads",
            "--format",
            "--skip",
            "--color",
            "--logfile",
        ]
        .contains(&arg.as_str())
        {
            iter.next(); // the option's value
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    let selected = filters.is_empty()
        || filters.iter().any(|f| {
            if exact {
                *f == test_name
            } else {
                test_name.contains(f)
            }
        });
    if selected {
        None
    } else {
        println!("{test_name}: 0 passed, 0 failed, 1 skipped");
        Some(ExitCode::SUCCESS)
    }
}

/// Initialises the EAL with `mode` and runs every check; the exit code says whether all passed.
pub fn run(test_name: &str, mode: Mode) -> ExitCode {
    match init(test_name, &mode) {
        Ok(eal) => run_checks(test_name, &mode, eal),
        Err(err) => {
            println!("{test_name}: EAL init failed: {err}");
            println!("{test_name}: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

/// Prints the mode and initialises the EAL with it.
pub fn init(test_name: &str, mode: &Mode) -> Result<Eal, RteError> {
    println!("{test_name}: EAL mode: {}", mode.label);
    println!("{test_name}: EAL args: {}", mode.args[1..].join(" "));
    Eal::init(&mode.args)
}

/// Runs every check against the EAL initialised from `mode`, then cleans the EAL up; the exit
/// code says whether all passed.
pub fn run_checks(test_name: &str, mode: &Mode, eal: Eal) -> ExitCode {
    run_check_list(test_name, mode, eal, CHECKS)
}

/// Runs `list` in order against the EAL initialised from `mode`, then cleans the EAL up; the
/// exit code says whether all passed.
pub fn run_check_list(test_name: &str, mode: &Mode, eal: Eal, list: &[(&str, Check)]) -> ExitCode {
    let mut ctx = Ctx {
        eal,
        pool: None,
        ring_port: None,
        null_port: None,
    };
    let mut checks = Checks {
        test_name,
        number: 0,
        passed: 0,
        failed: 0,
    };

    for (name, check) in list {
        checks.run(name, || check(&mut ctx));
    }
    drop(ctx); // the last Eal handle: rte_eal_cleanup
    remove_runtime_dir(mode);

    println!(
        "{test_name}: {} passed, {} failed",
        checks.passed, checks.failed
    );
    if checks.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One check: `Ok` or why it failed.
pub type Check = fn(&mut Ctx) -> Result<(), String>;

/// The checks, in the order they run; later ones use what earlier ones set up in `Ctx`.
const CHECKS: &[(&str, Check)] = &[
    ("eal_init_is_once_per_process", eal_init_is_once_per_process),
    ("lcores_and_tsc", lcores_and_tsc),
    ("mempool_create", mempool_create),
    ("mbuf_alloc_lowers_avail_and_drop_restores_it", mbuf_alloc),
    ("mbuf_contents_and_flags", mbuf_contents),
    ("burst_push_take_drain_keep_ownership", burst_ownership),
    (
        "net_ring_probes_and_configures_without_rss",
        net_ring_configure,
    ),
    ("net_ring_round_trip_is_byte_exact", net_ring_round_trip),
    (
        "multi_segment_packets_walk_and_free_whole",
        multi_segment_packets,
    ),
    (
        "tx_overflow_leaves_unsent_with_caller",
        net_ring_tx_overflow,
    ),
    ("queue_claims_are_exclusive", queue_claims),
    ("launch_runs_closure_on_worker_and_joins", launch_join),
    ("launch_on_busy_lcore_is_refused", launch_busy),
    ("queues_polled_from_worker_lcore", queues_on_worker),
    ("ring_mpmc_moves_ownership", ring_mpmc),
    ("ring_across_lcores_keeps_order", ring_across_lcores),
    ("net_null_rss_reports_accepted_hf", net_null_rss),
    ("stats_and_xstats_count_traffic", stats),
    ("close_releases_the_vdev", close_port),
    ("no_mbuf_leaked", no_leaks),
];

/// What the checks share: the EAL, and what earlier checks set up.
pub struct Ctx {
    /// The EAL of this process.
    pub eal: Eal,
    pool: Option<Mempool>,
    ring_port: Option<Port>,
    null_port: Option<Port>,
}

impl Ctx {
    fn pool(&self) -> Result<&Mempool, String> {
        self.pool
            .as_ref()
            .ok_or_else(|| "needs the pool from mempool_create".into())
    }
    fn ring_port(&mut self) -> Result<&mut Port, String> {
        self.ring_port
            .as_mut()
            .ok_or_else(|| "needs net_ring0 from an earlier check".into())
    }
    fn worker(&self) -> Result<u32, String> {
        self.eal
            .worker_lcores()
            .first()
            .copied()
            .ok_or_else(|| "no worker lcore".into())
    }
}

struct Checks<'a> {
    test_name: &'a str,
    number: usize,
    passed: usize,
    failed: usize,
}

impl Checks<'_> {
    fn run(&mut self, name: &str, check: impl FnOnce() -> Result<(), String>) {
        self.number += 1;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(check))
            .unwrap_or_else(|_| Err("panicked".into()));
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("{}: [{:2}] {name} ... ok", self.test_name, self.number);
            }
            Err(why) => {
                self.failed += 1;
                println!(
                    "{}: [{:2}] {name} ... FAILED: {why}",
                    self.test_name, self.number
                );
            }
        }
    }
}

/// Fails the enclosing check with the formatted message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Mbufs of `pool` currently allocated (what DPDK's `rte_mempool_in_use_count` computes).
fn in_use(pool: &Mempool) -> u32 {
    pool.size() - pool.avail()
}

/// Claims RX and TX queue `queue` of `port`.
fn queues(port: &Port, queue: u16) -> Result<(RxQueue, TxQueue), String> {
    Ok((
        port.rx_queue(queue).map_err(err)?,
        port.tx_queue(queue).map_err(err)?,
    ))
}

pub fn err(e: RteError) -> String {
    e.to_string()
}

pub fn note(msg: impl AsRef<str>) {
    println!("       {}", msg.as_ref());
}

/// A recognisable frame: 14-byte Ethernet-like header, then a pattern seeded by `seed`.
fn frame(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn fill_burst<const N: usize>(
    pool: &Mempool,
    burst: &mut MbufBurst<N>,
    count: usize,
    seed: u8,
) -> Result<(), String> {
    for i in 0..count {
        let seed = seed.wrapping_add(i as u8);
        let mbuf =
            Mbuf::from_slice(pool, &frame(seed, 60 + usize::from(seed) % 200)).map_err(err)?;
        burst.push(mbuf).map_err(|_| "burst full".to_string())?;
    }
    Ok(())
}

fn eal_init_is_once_per_process(ctx: &mut Ctx) -> Result<(), String> {
    let again = Eal::init(&["again".to_string()]);
    ensure!(
        matches!(again, Err(RteError::AlreadyInitialized)),
        "second init: {again:?}"
    );
    let _ = &ctx.eal;
    Ok(())
}

fn lcores_and_tsc(ctx: &mut Ctx) -> Result<(), String> {
    let eal = &ctx.eal;
    let workers = eal.worker_lcores();
    note(format!(
        "lcores: main {}, workers {workers:?}; tsc {} Hz",
        eal.main_lcore(),
        eal.tsc_hz()
    ));
    ensure!(
        rte::lcore_id() == Some(eal.main_lcore()),
        "main thread is not the main lcore"
    );
    ensure!(
        !workers.is_empty() && !workers.contains(&eal.main_lcore()),
        "workers {workers:?}"
    );
    ensure!(eal.tsc_hz() > 0 && rte::tsc_hz() == eal.tsc_hz(), "tsc_hz");
    let t0 = rte::tsc();
    std::thread::sleep(Duration::from_millis(1));
    ensure!(rte::tsc() > t0, "tsc does not advance");
    let off_eal = std::thread::spawn(rte::lcore_id)
        .join()
        .map_err(|_| "thread panicked")?;
    ensure!(off_eal.is_none(), "a std thread reports lcore {off_eal:?}");
    Ok(())
}

fn mempool_create(ctx: &mut Ctx) -> Result<(), String> {
    let data_room = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    let pool =
        Mempool::pktmbuf(&ctx.eal, "rte_test_pool", POOL_SIZE, 32, data_room, -1).map_err(err)?;
    ensure!(
        pool.size() == POOL_SIZE && pool.name() == "rte_test_pool",
        "size/name"
    );
    ensure!(
        pool.avail() == POOL_SIZE && in_use(&pool) == 0,
        "fresh pool: {}",
        pool.avail()
    );
    let dup = Mempool::pktmbuf(&ctx.eal, "rte_test_pool", 63, 0, data_room, -1);
    ensure!(
        matches!(dup, Err(RteError::Errno { .. })),
        "duplicate name accepted: {dup:?}"
    );
    note(format!(
        "duplicate name: {}",
        dup.err().map(err).unwrap_or_default()
    ));
    ctx.pool = Some(pool);
    Ok(())
}

fn mbuf_alloc(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?;
    let mbufs: Vec<Mbuf> = (0..100)
        .map(|_| Mbuf::from_slice(pool, &[]))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    ensure!(
        mbufs.len() == 100 && mbufs.iter().all(Mbuf::is_empty),
        "allocated {}",
        mbufs.len()
    );
    ensure!(
        pool.avail() == POOL_SIZE - 100,
        "avail {} after 100 allocs",
        pool.avail()
    );
    ensure!(in_use(pool) == 100, "in_use {}", in_use(pool));
    drop(mbufs);
    ensure!(
        pool.avail() == POOL_SIZE,
        "avail {} after drop",
        pool.avail()
    );
    Ok(())
}

fn mbuf_contents(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?;
    let bytes = frame(3, 128);
    let m = Mbuf::from_slice(pool, &bytes).map_err(err)?;
    ensure!(m.data() == bytes.as_slice(), "data differs");
    ensure!(m.len() == 128 && m.pkt_len() == 128, "lengths");
    // The pool's data room is RTE_MBUF_DEFAULT_BUF_SIZE minus the headroom: 2048 bytes.
    let too_big = Mbuf::from_slice(pool, &[0u8; 4096]);
    ensure!(
        matches!(too_big, Err(RteError::Exhausted(_))),
        "overfilled the buffer: {too_big:?}"
    );
    ensure!(
        m.ip_cksum() == CksumStatus::Unknown && m.l4_cksum() == CksumStatus::Unknown,
        "cksum"
    );
    drop(m);
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

fn burst_ownership(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?;
    let mut burst = MbufBurst::<8>::new();
    fill_burst(pool, &mut burst, 8, 10)?;
    ensure!(burst.is_full(), "not full");
    let extra = Mbuf::from_slice(pool, &[1, 2, 3]).map_err(err)?;
    let back = burst.push(extra);
    ensure!(
        back.as_ref().is_err_and(|m| m.data() == [1, 2, 3]),
        "push into full burst"
    );
    drop(back);
    let firsts = |b: &MbufBurst<8>| b.iter().map(|m| m.data()[0]).collect::<Vec<_>>();
    let before = firsts(&burst);
    let taken = burst.take(2).ok_or("take(2)")?;
    ensure!(taken.data()[0] == before[2], "took the wrong mbuf");
    let mut expect = before.clone();
    expect.remove(2);
    ensure!(
        firsts(&burst) == expect,
        "order after take: {:?}",
        firsts(&burst)
    );
    ensure!(burst.take(7).is_none(), "take past the end");
    drop(taken);
    let last = burst.take(6).ok_or("take(6)")?;
    ensure!(last.data()[0] == before[7], "take the last");
    drop(last);
    ensure!(in_use(pool) == 6, "in_use {} with 6 held", in_use(pool));
    let kept: Vec<Mbuf> = burst.drain().take(2).collect(); // the other 4 freed by Drain
    ensure!(burst.is_empty() && kept.len() == 2, "drain");
    ensure!(
        in_use(pool) == 2,
        "in_use {} after partial drain",
        in_use(pool)
    );
    drop(kept);
    fill_burst(pool, &mut burst, 5, 0)?;
    burst.clear();
    fill_burst(pool, &mut burst, 3, 0)?;
    drop(burst);
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

fn net_ring_configure(ctx: &mut Ctx) -> Result<(), String> {
    let mut port = Port::by_name(&ctx.eal, "net_ring0").map_err(err)?;
    let info = port.dev_info().map_err(err)?;
    note(format!("net_ring0: port {} {info:?}", port.id()));
    ensure!(
        info.driver_name.contains("ring"),
        "driver {}",
        info.driver_name
    );
    let twin = Port::new(&ctx.eal, port.id());
    ensure!(
        matches!(twin, Err(RteError::Busy(_))),
        "second handle: {twin:?}"
    );
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
        rss: Some(RssConf {
            key: Vec::new(),
            hf: sys::RTE_ETH_RSS_IP,
        }),
        ..PortConf::default()
    };
    let accepted = port.configure(&conf, ctx.pool()?).map_err(err)?;
    note(format!("net_ring0 accepted: {accepted:?}"));
    ensure!(
        accepted.rss.is_none(),
        "net_ring has no RSS, got {:?}",
        accepted.rss
    );
    ensure!(
        accepted.rx_offloads & sys::RTE_ETH_RX_OFFLOAD_RSS_HASH == 0,
        "RSS_HASH offload"
    );
    ensure!(port.rx_queue(1).is_err(), "queue 1 accepted");
    port.start().map_err(err)?;
    ctx.ring_port = Some(port);
    Ok(())
}

fn net_ring_round_trip(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?.clone();
    let (mut rxq, mut txq) = queues(ctx.ring_port()?, 0)?;
    let mut tx = MbufBurst::<32>::new();
    fill_burst(&pool, &mut tx, 32, 100)?;
    let sent_frames: Vec<Vec<u8>> = tx.iter().map(|m| m.data().to_vec()).collect();
    let sent = txq.tx_burst(&mut tx);
    ensure!(
        sent == 32 && tx.is_empty(),
        "sent {sent}, {} left",
        tx.len()
    );
    let mut rx = MbufBurst::<64>::new();
    let got = rxq.rx_burst_max(&mut rx, usize::MAX);
    ensure!(got == 32, "received {got}");
    for (i, (m, want)) in rx.iter().zip(&sent_frames).enumerate() {
        ensure!(
            m.data() == want.as_slice(),
            "frame {i} differs after the round trip"
        );
    }
    drop(rx);
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

/// Packets in several segments: built, walked, chained, sent through net_ring and freed,
/// one by one and in bulk, without a segment left behind.
fn multi_segment_packets(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?.clone();
    let bytes = frame(9, 5000);
    let pieces: Vec<&[u8]> = bytes.chunks(2048).collect();
    let m = Mbuf::from_segments(&pool, &pieces).map_err(err)?;
    ensure!(m.nb_segs() == 3, "nb_segs {}", m.nb_segs());
    ensure!(!m.is_contiguous(), "a chain reads as contiguous");
    ensure!(
        m.pkt_len() == 5000 && m.len() == 2048,
        "lengths {} {}",
        m.pkt_len(),
        m.len()
    );
    ensure!(m.data() == pieces[0], "first segment differs");
    let walked: Vec<u8> = m.segments().flatten().copied().collect();
    ensure!(walked == bytes, "the segments do not add up to the packet");
    ensure!(
        in_use(&pool) == 3,
        "in_use {} for one 3-segment packet",
        in_use(&pool)
    );
    drop(m);
    ensure!(
        pool.avail() == POOL_SIZE,
        "drop left segments: avail {}",
        pool.avail()
    );

    // Chaining moves the tail into the packet; the chain is one packet to the burst, TX and
    // RX (net_ring passes the pointers), and a bulk free frees every segment.
    let mut head = Mbuf::from_slice(&pool, &bytes[..100]).map_err(err)?;
    let tail = Mbuf::from_segments(&pool, &[&bytes[100..200], &bytes[200..300]]).map_err(err)?;
    head.chain(tail).map_err(|_| "chain refused".to_string())?;
    ensure!(
        head.nb_segs() == 3 && head.pkt_len() == 300,
        "chained {:?}",
        head
    );
    let single = Mbuf::from_slice(&pool, &bytes[..60]).map_err(err)?;
    ensure!(
        single.is_contiguous() && single.segments().count() == 1,
        "single"
    );
    let (mut rxq, mut txq) = queues(ctx.ring_port()?, 0)?;
    let mut tx = MbufBurst::<4>::new();
    tx.push(head).map_err(|_| "push")?;
    tx.push(single).map_err(|_| "push")?;
    ensure!(txq.tx_burst(&mut tx) == 2, "net_ring refused the chain");
    let mut rx = MbufBurst::<4>::new();
    ensure!(rxq.rx_burst_max(&mut rx, 4) == 2, "received {}", rx.len());
    let got: Vec<u8> = rx.as_slice()[0].segments().flatten().copied().collect();
    ensure!(got == bytes[..300], "chain changed on the way");
    // The burst's views say what each mbuf says, read in one call.
    let mut views = MbufViews::<4>::new();
    let views = views.read(rx.as_slice());
    ensure!(views.len() == 2, "{} views of 2 packets", views.len());
    for (v, m) in views.iter().zip(rx.as_slice()) {
        ensure!(
            v.data() == m.data()
                && v.is_contiguous() == m.is_contiguous()
                && v.port() == m.port()
                && v.ip_cksum() == m.ip_cksum()
                && v.l4_cksum() == m.l4_cksum(),
            "view {v:?} of {m:?}"
        );
    }
    ensure!(
        !views[0].is_contiguous() && views[0].data() == &bytes[..100],
        "the chain's view {:?}",
        views[0]
    );
    ensure!(
        views[1].is_contiguous() && views[1].data() == &bytes[..60],
        "the single packet's view {:?}",
        views[1]
    );
    ensure!(
        in_use(&pool) == 4,
        "in_use {} for a 3-segment and a 1-segment packet",
        in_use(&pool)
    );
    rx.clear(); // rte_pktmbuf_free_bulk
    ensure!(
        pool.avail() == POOL_SIZE,
        "bulk free left segments: avail {}",
        pool.avail()
    );
    Ok(())
}

fn net_ring_tx_overflow(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?.clone();
    let (mut rxq, mut txq) = queues(ctx.ring_port()?, 0)?;
    let mut accepted = 0usize;
    let mut tx = MbufBurst::<32>::new();
    loop {
        let room = 32 - tx.len();
        fill_burst(&pool, &mut tx, room, 7)?;
        let sent = txq.tx_burst(&mut tx);
        accepted += sent;
        if sent < 32 {
            ensure!(
                tx.len() == 32 - sent,
                "{} left after sending {sent}",
                tx.len()
            );
            break;
        }
        ensure!(accepted < 4096, "the ring never filled");
    }
    note(format!(
        "net_ring0 queue took {accepted} mbufs; {} stayed with the caller",
        tx.len()
    ));
    let held = tx.len() as u32;
    ensure!(
        in_use(&pool) == accepted as u32 + held,
        "in_use {}",
        in_use(&pool)
    );
    // Sending again changes nothing while the ring is full.
    ensure!(txq.tx_burst(&mut tx) == 0, "full ring took more");
    ensure!(tx.len() as u32 == held, "unsent mbufs lost");
    drop(tx);
    let mut rx = MbufBurst::<64>::new();
    let mut received = 0;
    while received < accepted {
        let got = rxq.rx_burst_max(&mut rx, usize::MAX);
        ensure!(got > 0, "ring drained early at {received}");
        received += got;
        rx.clear();
    }
    ensure!(received == accepted, "received {received} of {accepted}");
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

fn queue_claims(ctx: &mut Ctx) -> Result<(), String> {
    let port = ctx.ring_port()?;
    let rx = port.rx_queue(0).map_err(err)?;
    ensure!(
        matches!(port.rx_queue(0), Err(RteError::Busy(_))),
        "RX queue 0 handed out twice"
    );
    ensure!(
        matches!(port.rx_queue(5), Err(RteError::InvalidArgument(_))),
        "RX queue 5 exists?"
    );
    // RX and TX ids are claimed separately.
    let tx = port.tx_queue(0).map_err(err)?;
    ensure!(
        matches!(port.tx_queue(0), Err(RteError::Busy(_))),
        "TX queue 0 handed out twice"
    );
    ensure!(
        matches!(port.tx_queue(5), Err(RteError::InvalidArgument(_))),
        "TX queue 5 exists?"
    );
    ensure!(
        matches!(port.stop(), Err(RteError::Busy(_))),
        "stop with queues out"
    );
    drop(rx);
    ensure!(
        matches!(port.stop(), Err(RteError::Busy(_))),
        "stop with a TX queue out"
    );
    drop(tx);
    let mut burst = MbufBurst::<4>::new();
    ensure!(
        port.rx_queue(0)
            .map_err(err)?
            .rx_burst_max(&mut burst, usize::MAX)
            == 0,
        "rx after release"
    );
    Ok(())
}

fn launch_join(ctx: &mut Ctx) -> Result<(), String> {
    let worker = ctx.worker()?;
    let handle = ctx
        .eal
        .launch(worker, || (rte::lcore_id(), 6 * 7))
        .map_err(err)?;
    let (lcore, value) = handle.join().map_err(|_| "closure panicked")?;
    ensure!(
        lcore == Some(worker) && value == 42,
        "ran on {lcore:?}, returned {value}"
    );
    let main = ctx.eal.main_lcore();
    ensure!(
        ctx.eal.launch(main, || ()).is_err(),
        "launch on the main lcore accepted"
    );
    ensure!(
        ctx.eal.launch(9999, || ()).is_err(),
        "launch on lcore 9999 accepted"
    );
    let from_thread = {
        let eal = ctx.eal.clone();
        std::thread::spawn(move || eal.launch(worker, || ()).map(drop))
            .join()
            .map_err(|_| "thread panicked")?
    };
    ensure!(
        matches!(from_thread, Err(RteError::NotMainLcore(_))),
        "launch off main lcore"
    );
    // Silence the default hook's report of the panic we cause on purpose.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = ctx
        .eal
        .launch(worker, || -> u32 { panic!("boom on purpose") });
    let joined = panicked.map(|handle| handle.join());
    std::panic::set_hook(hook);
    let payload = joined.map_err(err)?.err().ok_or("panic not reported")?;
    ensure!(
        payload.downcast_ref::<&str>() == Some(&"boom on purpose"),
        "payload"
    );
    // The lcore is usable again after a panic.
    ensure!(
        ctx.eal.launch(worker, || 1).map_err(err)?.join().ok() == Some(1),
        "relaunch"
    );
    Ok(())
}

fn launch_busy(ctx: &mut Ctx) -> Result<(), String> {
    let worker = ctx.worker()?;
    let release = Arc::new(AtomicBool::new(false));
    let flag = release.clone();
    let blocker = ctx
        .eal
        .launch(worker, move || {
            let start = Instant::now();
            while !flag.load(Ordering::Acquire) && start.elapsed() < DEADLINE {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .map_err(err)?;
    let second = ctx.eal.launch(worker, || ());
    release.store(true, Ordering::Release);
    blocker.join().map_err(|_| "blocker panicked")?;
    ensure!(
        matches!(second, Err(RteError::Busy(_))),
        "busy lcore accepted: {second:?}"
    );
    Ok(())
}

fn queues_on_worker(ctx: &mut Ctx) -> Result<(), String> {
    let worker = ctx.worker()?;
    let pool = ctx.pool()?.clone();
    let (mut rxq, mut txq) = queues(ctx.ring_port()?, 0)?;
    let worker_pool = pool.clone();
    let handle = ctx
        .eal
        .launch(worker, move || -> Result<Vec<usize>, String> {
            let mut tx = MbufBurst::<8>::new();
            fill_burst(&worker_pool, &mut tx, 8, 50)?;
            let sent = txq.tx_burst(&mut tx);
            let mut rx = MbufBurst::<16>::new();
            let got = rxq.rx_burst_max(&mut rx, usize::MAX);
            if sent != 8 || got != 8 {
                return Err(format!("worker sent {sent}, received {got}"));
            }
            Ok(rx.iter().map(Mbuf::len).collect())
        })
        .map_err(err)?;
    let lens = handle.join().map_err(|_| "worker panicked")??;
    let want: Vec<usize> = (0..8u8).map(|i| 60 + usize::from(50 + i) % 200).collect();
    ensure!(lens == want, "lengths {lens:?}");
    // The queue handles died with the closure, so the port is ours again.
    ensure!(queues(ctx.ring_port()?, 0).is_ok(), "queue 0 still claimed");
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

fn ring_mpmc(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?;
    let ring = Ring::new(&ctx.eal, "rte_test_mpmc", 64, -1).map_err(err)?;
    ensure!(ring.capacity() == 64 && ring.count() == 0, "fresh ring");
    let mut a = MbufBurst::<32>::new();
    fill_burst(pool, &mut a, 32, 1)?;
    ensure!(
        ring.enqueue_burst(&mut a) == 32 && a.is_empty(),
        "first enqueue"
    );
    let mut b = MbufBurst::<40>::new();
    fill_burst(pool, &mut b, 40, 2)?;
    let first_left = b.as_slice()[32].data().to_vec();
    let moved = ring.enqueue_burst(&mut b);
    ensure!(
        moved == 32 && b.len() == 8,
        "moved {moved}, left {}",
        b.len()
    );
    ensure!(
        b.as_slice()[0].data() == first_left.as_slice(),
        "leftovers not at the front"
    );
    ensure!(ring.count() == 64, "count {}", ring.count());
    let mut out = MbufBurst::<16>::new();
    ensure!(
        ring.dequeue_burst(&mut out) == 16 && out.is_full(),
        "dequeue 16"
    );
    ensure!(ring.count() == 48, "count {}", ring.count());
    ensure!(in_use(pool) == 72, "in_use {}", in_use(pool));
    drop(ring); // frees the 48 still inside
    ensure!(
        in_use(pool) == 24,
        "in_use {} after dropping the ring",
        in_use(pool)
    );
    drop((out, b));
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

fn ring_across_lcores(ctx: &mut Ctx) -> Result<(), String> {
    const TOTAL: usize = 300;
    let pool = ctx.pool()?;
    let ring = Ring::new(&ctx.eal, "rte_test_lcores", 128, -1).map_err(err)?;
    let consumer = ring.clone();
    let handle = ctx
        .eal
        .launch(ctx.worker()?, move || -> Result<Vec<u8>, String> {
            let mut seen = Vec::with_capacity(TOTAL);
            let mut burst = MbufBurst::<32>::new();
            let start = Instant::now();
            while seen.len() < TOTAL {
                if start.elapsed() > DEADLINE {
                    return Err(format!("consumer timed out at {}", seen.len()));
                }
                if consumer.dequeue_burst(&mut burst) == 0 {
                    std::thread::yield_now();
                }
                seen.extend(burst.drain().map(|m| m.data()[0]));
            }
            Ok(seen)
        })
        .map_err(err)?;
    let mut sent = Vec::with_capacity(TOTAL);
    let mut burst = MbufBurst::<32>::new();
    let start = Instant::now();
    while sent.len() < TOTAL || !burst.is_empty() {
        ensure!(
            start.elapsed() < DEADLINE,
            "producer timed out at {}",
            sent.len()
        );
        while sent.len() < TOTAL && !burst.is_full() {
            let m = Mbuf::from_slice(pool, &[sent.len() as u8, 0xEE]).map_err(err)?;
            sent.push(sent.len() as u8);
            burst.push(m).map_err(|_| "full")?;
        }
        if ring.enqueue_burst(&mut burst) == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let seen = handle.join().map_err(|_| "consumer panicked")??;
    ensure!(seen == sent, "order or content differs");
    ensure!(ring.count() == 0, "ring not empty");
    drop(ring);
    ensure!(pool.avail() == POOL_SIZE, "leak: avail {}", pool.avail());
    Ok(())
}

fn net_null_rss(ctx: &mut Ctx) -> Result<(), String> {
    let pool = ctx.pool()?.clone();
    let mut port = Port::by_name(&ctx.eal, "net_null0").map_err(err)?;
    let info = port.dev_info().map_err(err)?;
    note(format!("net_null0: port {} {info:?}", port.id()));
    ensure!(
        info.driver_name.contains("null"),
        "driver {}",
        info.driver_name
    );
    ensure!(
        info.flow_type_rss_offloads != 0,
        "net_null reports no RSS flow types"
    );
    let requested = sys::RTE_ETH_RSS_IP
        | sys::RTE_ETH_RSS_TCP
        | sys::RTE_ETH_RSS_UDP
        | sys::RTE_ETH_RSS_L3_DST_ONLY
        | sys::RTE_ETH_RSS_MPLS;
    let key: Vec<u8> = (0..info.hash_key_size)
        .map(|i| i.wrapping_mul(7) ^ 0x5A)
        .collect();
    let mut conf = PortConf {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 256,
        tx_desc: 256,
        rss: Some(RssConf {
            key: vec![1, 2, 3],
            hf: requested,
        }),
        ..PortConf::default()
    };
    let bad_key = port.configure(&conf, &pool);
    ensure!(
        matches!(bad_key, Err(RteError::InvalidArgument(_))),
        "3-byte key: {bad_key:?}"
    );
    conf.rss = Some(RssConf {
        key: key.clone(),
        hf: requested,
    });
    let accepted = port.configure(&conf, &pool).map_err(err)?;
    let hf = accepted.rss.as_ref().map_or(0, |r| r.hf);
    note(format!(
        "net_null0 RSS: requested {requested:#x}, device supports {:#x}, accepted {hf:#x}",
        info.flow_type_rss_offloads
    ));
    ensure!(
        hf == requested & info.flow_type_rss_offloads && hf != 0,
        "accepted hf {hf:#x}"
    );
    let live = port.rss_hash_conf_get().map_err(err)?;
    ensure!(
        live.hf == hf,
        "device uses hf {:#x}, configure reported {hf:#x}",
        live.hf
    );
    note(format!(
        "rss_hash_conf_get: hf {:#x}; key {} the configured one",
        live.hf,
        if live.key == key {
            "equals"
        } else {
            "differs from (net_null keeps its own)"
        }
    ));
    port.start().map_err(err)?;
    let mut rx = MbufBurst::<32>::new();
    let (mut rxq, mut txq) = queues(&port, 1)?;
    let got = rxq.rx_burst_max(&mut rx, usize::MAX);
    ensure!(
        got == 32 && rx.iter().all(|m| m.len() == 64),
        "net_null rx gave {got}"
    );
    ensure!(in_use(&pool) == 32, "in_use {}", in_use(&pool));
    let sent = txq.tx_burst(&mut rx);
    ensure!(sent == 32 && rx.is_empty(), "net_null tx took {sent}");
    ensure!(
        pool.avail() == POOL_SIZE,
        "net_null tx did not free: avail {}",
        pool.avail()
    );
    drop((rxq, txq));
    port.promiscuous(true).map_err(err)?;
    ctx.null_port = Some(port);
    Ok(())
}

fn stats(ctx: &mut Ctx) -> Result<(), String> {
    let port = ctx.ring_port.as_ref().ok_or("needs net_ring0")?;
    let stats = port.stats().map_err(err)?;
    note(format!("net_ring0 stats: {stats:?}"));
    ensure!(
        stats.opackets >= 32 && stats.ipackets >= 32,
        "counters did not move"
    );
    // Nothing polls the port now, so the generic xstats agree with the basic counters.
    let xstats = port.xstats().map_err(err)?;
    let shown: Vec<String> = xstats
        .iter()
        .take(4)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    note(format!(
        "net_ring0 xstats: {} counters, e.g. {}",
        xstats.len(),
        shown.join(" ")
    ));
    let xstat = |name: &str| xstats.iter().find(|(n, _)| n == name).map(|&(_, v)| v);
    ensure!(
        xstat("rx_good_packets") == Some(stats.ipackets)
            && xstat("tx_good_packets") == Some(stats.opackets)
            && xstat("rx_good_bytes") == Some(stats.ibytes),
        "xstats disagree with the basic counters: {xstats:?}"
    );
    ensure!(
        xstats.iter().any(|(n, _)| n.starts_with("rx_q0_")),
        "no per-queue xstats: {xstats:?}"
    );
    Ok(())
}

fn close_port(ctx: &mut Ctx) -> Result<(), String> {
    let port = ctx.null_port.take().ok_or("needs net_null0")?;
    let id = port.id();
    port.close().map_err(err)?;
    let again = Port::new(&ctx.eal, id);
    ensure!(
        matches!(again, Err(RteError::InvalidArgument(_))),
        "closed vdev reopened: {again:?}"
    );
    Ok(())
}

fn no_leaks(ctx: &mut Ctx) -> Result<(), String> {
    ctx.ring_port = None; // stop + close on drop
    let pool = ctx.pool()?;
    ensure!(
        pool.avail() == pool.size(),
        "avail {} of {}",
        pool.avail(),
        pool.size()
    );
    ensure!(
        rte::leaked_pools() == 0,
        "leaked pools: {}",
        rte::leaked_pools()
    );
    ctx.pool = None;
    Ok(())
}
