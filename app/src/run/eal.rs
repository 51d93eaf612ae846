//! Starting the EAL, with a command line built from the configuration.
//!
//! Everything DPDK needs comes from the config (cores, memory, devices, file prefix) with
//! sane defaults, so an operator never writes EAL arguments by hand unless they want to
//! (`dataplane.eal_args` is appended last and wins). With `hugepages: auto`, a hugepage EAL
//! that fails to start is retried without hugepages in a fresh program image ([`start`]).
//! `dataplane.memory_mb` is checked against the machine before the EAL starts
//! ([`memory::check_eal`]), and the runtime directories DPDK leaves behind are removed: this
//! instance's at exit (`rte`), those of dead instances at start ([`remove_leftovers`]).

use std::convert::Infallible;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ctfw_config::{Config, Hugepages};
use rte::Eal;
use tracing::{info, warn};

use super::memory::{self, Available, PageSize};

/// Environment variable set when re-executing without hugepages after a failed start.
const NO_HUGE_ENV: &str = "CTFW_NO_HUGE";

/// How EAL memory is provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Hugepages, process-private (`--in-memory`: no files in hugetlbfs, no shared config).
    Hugepages,
    /// Anonymous memory (`--no-huge --no-shconf`): slower TLB behaviour, works anywhere.
    NoHuge,
}

/// Facts about the machine the EAL line and the memory checks depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// CPUs this process may run on, ascending.
    pub cpus: Vec<u32>,
    /// Every hugepage size the kernel offers, with its free pages.
    pub hugepages: Vec<PageSize>,
    /// hugetlbfs is mounted somewhere.
    pub hugetlbfs: bool,
    /// Ordinary memory ctfw may still take (`None`: no limit known).
    pub available: Option<Available>,
}

impl Host {
    /// Read the facts from /proc and /sys.
    pub fn probe() -> Host {
        let cpus = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|l| parse_cpu_list(l.trim()))
            })
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| vec![0]);
        let hugetlbfs = std::fs::read_to_string("/proc/mounts")
            .map(|m| {
                m.lines()
                    .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
            })
            .unwrap_or(false);
        Host {
            cpus,
            hugepages: hugepage_sizes(Path::new(HUGEPAGES_SYSFS)),
            hugetlbfs,
            available: Available::probe(),
        }
    }
}

/// Where the kernel lists its hugepage sizes (`hugepages-2048kB/free_hugepages`, ...).
const HUGEPAGES_SYSFS: &str = "/sys/kernel/mm/hugepages";

/// The hugepage sizes under `dir`, smallest first, with their free pages.
fn hugepage_sizes(dir: &Path) -> Vec<PageSize> {
    let mut sizes: Vec<PageSize> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let free = std::fs::read_to_string(e.path().join("free_hugepages"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            Some(PageSize {
                bytes: kb * 1024,
                free,
            })
        })
        .collect();
    sizes.sort_by_key(|s| s.bytes);
    sizes
}

/// A started EAL.
pub struct Started {
    /// The EAL handle: everything that uses DPDK memory must be dropped before it.
    pub eal: Eal,
    /// The memory mode it runs with.
    pub memory: Memory,
    /// Its worker lcores, at least one per configured worker.
    pub lcores: Vec<u32>,
}

/// Start the EAL for `cfg` (the log says which memory mode and why, and the EAL arguments).
/// `dataplane.memory_mb` is checked against the machine first ([`memory::check_eal`]; `tables`
/// are the bytes the connection tables will take beside it). Once the EAL runs, the runtime
/// directories that dead instances left behind are removed ([`remove_leftovers`]). In
/// `hugepages: auto` mode a hugepage start that fails re-executes this program without
/// hugepages and never returns.
pub fn start(cfg: &Config, tables: u64) -> Result<Started> {
    let workers = cfg.dataplane.workers;
    let host = Host::probe();
    let forced_off = std::env::var_os(NO_HUGE_ENV).is_some();
    let (memory, why) = choose_memory(
        cfg.dataplane.hugepages,
        &host,
        cfg.dataplane.memory_mb,
        forced_off,
    );
    info!("memory: {why}");
    memory::check_eal(cfg, memory, &host, tables)?;
    let prefix = cfg
        .dataplane
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("{DEFAULT_PREFIX}{}", std::process::id()));
    let args = eal_args(cfg, memory, &host, &prefix);
    if cfg.dataplane.lcores.is_none() && lcore_map(workers, &host.cpus).1 {
        warn!(
            "{} lcores on {} CPU(s): workers share CPUs (fine for tests, not for speed)",
            workers + 1,
            host.cpus.len()
        );
    }
    info!("EAL arguments: {}", args.join(" "));
    let eal = match Eal::init(&args) {
        Ok(eal) => eal,
        Err(e) if memory == Memory::Hugepages && cfg.dataplane.hugepages == Hugepages::Auto => {
            warn!("EAL start with hugepages failed ({e}); restarting without hugepages");
            match reexec_without_hugepages()? {}
        }
        Err(e) => bail!(
            "DPDK EAL initialisation failed: {e}\n  EAL arguments: {}\n  \
             (check the devices, dataplane.lcores / --workers, and memory settings)",
            args.join(" ")
        ),
    };
    if let Some(dir) = rte::runtime_dir() {
        remove_leftovers(dir);
    }
    let lcores = eal.worker_lcores();
    if lcores.len() < usize::from(workers) {
        bail!(
            "too few cores: {workers} worker(s) configured but the EAL has {} worker lcore(s) ({}); \
             lower dataplane.workers / --workers or widen dataplane.lcores",
            lcores.len(),
            args.iter()
                .find(|a| a.starts_with("--lcores") || a.starts_with("-l"))
                .map_or("", |s| s)
        );
    }
    Ok(Started {
        eal,
        memory,
        lcores,
    })
}

/// Execute this program again, same arguments and process id, with hugepages off: the EAL
/// cannot be initialised twice in one process. Every file ctfw opened is close-on-exec, so
/// the control socket, the metrics address and the device locks are free for the new image,
/// which takes them again (a child process would find them held by its parent); systemd keeps
/// following the same process.
fn reexec_without_hugepages() -> Result<Infallible> {
    let exe = std::env::current_exe().context("cannot find the ctfw executable to restart")?;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(NO_HUGE_ENV, "1")
        .exec();
    Err(err).context("cannot restart ctfw without hugepages")
}

/// The file prefix of an instance that does not set one: this followed by its process id.
const DEFAULT_PREFIX: &str = "ctfw-";

/// Remove the runtime directories that instances with the default file prefix left behind
/// in the base directory of `ours` (this instance's runtime directory): `ctfw-<pid>`, owned
/// by this user, where no ctfw process has that pid any more (gone, or the pid now belongs to
/// another program). A process that ended without cleaning up (killed, crashed) leaves one;
/// DPDK never removes them. Only the regular files in one are removed (ctfw's EAL modes leave
/// none), never a subdirectory; other prefixes, other users' directories and those of live
/// ctfw processes are left alone. Failures are logged and skipped.
fn remove_leftovers(ours: &Path) {
    let Some(base) = ours.parent() else { return };
    let Ok(me) = std::fs::metadata(ours) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path == ours {
            continue;
        }
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(DEFAULT_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // symlink_metadata: a symbolic link is not a directory of ours.
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !m.is_dir() || m.uid() != me.uid() || is_ctfw(pid) {
            continue;
        }
        match remove_runtime_dir(&path) {
            Ok(()) => removed += 1,
            Err(e) => warn!(
                "cannot remove {}, left by a ctfw process that is gone: {e}",
                path.display()
            ),
        }
    }
    if removed > 0 {
        info!(
            "removed {removed} runtime director{} left in {} by ctfw processes that are gone",
            if removed == 1 { "y" } else { "ies" },
            base.display()
        );
    }
}

/// Whether process `pid` runs a program named like ctfw (`/proc/<pid>/comm` starts with
/// `ctfw`, or equals this program's own name).
fn is_ctfw(pid: u32) -> bool {
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    match comm(&pid.to_string()) {
        Some(c) => {
            let c = c.trim_end();
            c.starts_with("ctfw") || comm("self").is_some_and(|me| me.trim_end() == c)
        }
        None => false,
    }
}

/// Remove the regular files of `dir` (not its subdirectories), then `dir` itself.
fn remove_runtime_dir(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !e.file_type()?.is_dir() {
            std::fs::remove_file(e.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Parse a Linux CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    cpus.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => cpus.extend(part.parse::<u32>().ok()),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// Which memory mode to ask for, and why (for the log). `auto` takes hugepages when
/// hugetlbfs is mounted and the free pages hold `memory_mb` ([`memory::hugepage_limit_mb`]).
pub fn choose_memory(
    mode: Hugepages,
    host: &Host,
    memory_mb: u32,
    forced_off: bool,
) -> (Memory, String) {
    let usable = memory::hugepage_limit_mb(&host.hugepages);
    match mode {
        _ if forced_off => (
            Memory::NoHuge,
            "hugepages failed at start-up; running without".into(),
        ),
        Hugepages::Off => (Memory::NoHuge, "hugepages off by configuration".into()),
        Hugepages::On => (
            Memory::Hugepages,
            "hugepages required by configuration".into(),
        ),
        Hugepages::Auto if !host.hugetlbfs => (
            Memory::NoHuge,
            "no hugetlbfs mounted: running without hugepages".into(),
        ),
        Hugepages::Auto if usable < u64::from(memory_mb) => (
            Memory::NoHuge,
            format!(
                "{usable} MiB of free hugepages, {memory_mb} MiB needed: running without hugepages"
            ),
        ),
        Hugepages::Auto => (
            Memory::Hugepages,
            format!("{usable} MiB of free hugepages: using them"),
        ),
    }
}

/// Whether a device string names a PCI device (`0000:03:00.0` or `03:00.0`, maybe with
/// `,key=value` devargs) rather than a virtual device.
pub fn is_pci(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    let parts: Vec<&str> = name.split(':').collect();
    let bdf = match parts.as_slice() {
        [dom, bus, df] if dom.len() == 4 => [*bus, *df],
        [bus, df] => [*bus, *df],
        _ => return false,
    };
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    match bdf[1].split_once('.') {
        Some((dev, func)) => hex(bdf[0]) && hex(dev) && func.len() == 1 && hex(func),
        None => false,
    }
}

/// The device part of a device string: what comes before the first comma.
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

/// The ethdev name DPDK gives a device: a virtual device keeps its name; a PCI device is named
/// by its full address, domain included (`03:00.0` becomes `0000:03:00.0`).
pub fn ethdev_name(device: &str) -> String {
    let name = device_name(device);
    if is_pci(name) && name.matches(':').count() == 1 {
        format!("0000:{name}")
    } else {
        name.to_owned()
    }
}

/// The lcore layout: lcore 0 is the main lcore, lcores 1..=workers the workers, each pinned
/// to a CPU of `cpus` (round robin, the main lcore on the first CPU). Returns the `--lcores`
/// value and whether some lcores share a CPU.
pub fn lcore_map(workers: u16, cpus: &[u32]) -> (String, bool) {
    let cpus = if cpus.is_empty() { &[0][..] } else { cpus };
    let map: Vec<String> = (0..=u32::from(workers))
        .map(|l| format!("{l}@{}", cpus[l as usize % cpus.len()]))
        .collect();
    (map.join(","), usize::from(workers) + 1 > cpus.len())
}

/// The EAL arguments for `cfg`.
pub fn eal_args(cfg: &Config, memory: Memory, host: &Host, file_prefix: &str) -> Vec<String> {
    let dp = &cfg.dataplane;
    let mut a = vec!["ctfw".to_owned()];
    match &dp.lcores {
        Some(l) => a.push(format!("--lcores={l}")),
        None => a.push(format!("--lcores={}", lcore_map(dp.workers, &host.cpus).0)),
    }
    if let Some(m) = dp.main_lcore {
        a.push(format!("--main-lcore={m}"));
    } else if dp.lcores.is_none() {
        a.push("--main-lcore=0".into());
    }
    a.push("-m".into());
    a.push(dp.memory_mb.to_string());
    match memory {
        Memory::Hugepages => a.push("--in-memory".into()),
        Memory::NoHuge => {
            a.push("--no-huge".into());
            a.push("--no-shconf".into());
        }
    }
    a.push(format!("--file-prefix={file_prefix}"));
    let mut any_pci = false;
    for p in &cfg.ports {
        if is_pci(&p.device) {
            any_pci = true;
            a.push("-a".into());
            a.push(p.device.clone());
        } else {
            a.push(format!("--vdev={}", p.device));
        }
    }
    if !any_pci {
        a.push("--no-pci".into());
    }
    a.push("--no-telemetry".into());
    a.push("--log-level=lib.eal:warning".into());
    a.extend(dp.eal_args.iter().cloned());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("x,2"), vec![2]);
    }

    #[test]
    fn lcores_round_robin_over_cpus() {
        assert_eq!(lcore_map(1, &[0, 1]), ("0@0,1@1".to_owned(), false));
        assert_eq!(lcore_map(2, &[0, 1]), ("0@0,1@1,2@0".to_owned(), true));
        assert_eq!(lcore_map(1, &[4]), ("0@4,1@4".to_owned(), true));
    }

    #[test]
    fn pci_addresses_are_told_from_vdevs() {
        assert!(is_pci("0000:03:00.0"));
        assert!(is_pci("03:00.1,rx_queue_size=512"));
        assert!(!is_pci("net_pcap0,rx_pcap=a.pcap"));
        assert!(!is_pci("net_ring0"));
        assert!(!is_pci("0000:03:00"));
        assert_eq!(device_name("net_pcap0,rx_pcap=a.pcap"), "net_pcap0");
        assert_eq!(ethdev_name("03:00.1,rx_queue_size=512"), "0000:03:00.1");
        assert_eq!(ethdev_name("0000:03:00.1"), "0000:03:00.1");
        assert_eq!(ethdev_name("net_ring0"), "net_ring0");
    }

    #[test]
    fn memory_choice_falls_back_without_pages() {
        let pages = |free| {
            vec![PageSize {
                bytes: 2 << 20,
                free,
            }]
        };
        let host = Host {
            cpus: vec![0],
            hugepages: pages(10),
            hugetlbfs: true,
            available: None,
        };
        assert_eq!(
            choose_memory(Hugepages::Auto, &host, 256, false).0,
            Memory::NoHuge
        );
        let host = Host {
            hugepages: pages(128),
            ..host
        };
        assert_eq!(
            choose_memory(Hugepages::Auto, &host, 256, false).0,
            Memory::Hugepages
        );
        assert_eq!(
            choose_memory(Hugepages::Auto, &host, 256, true).0,
            Memory::NoHuge
        );
        assert_eq!(
            choose_memory(Hugepages::Off, &host, 256, false).0,
            Memory::NoHuge
        );
        let host = Host {
            hugetlbfs: false,
            ..host
        };
        assert_eq!(
            choose_memory(Hugepages::Auto, &host, 256, false).0,
            Memory::NoHuge
        );
        assert_eq!(
            choose_memory(Hugepages::On, &host, 256, false).0,
            Memory::Hugepages
        );
    }

    #[test]
    fn leftovers_of_dead_default_instances_go_and_nothing_else() {
        let base = std::env::temp_dir().join(format!("ctfw-leftovers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let ours = base.join("mine");
        // An ended process's pid; this test's own (the same program: kept); not ours.
        let mut gone = std::process::Command::new("true").spawn().expect("true");
        gone.wait().expect("wait");
        let dead = base.join(format!("ctfw-{}", gone.id()));
        let me = base.join(format!("ctfw-{}", std::process::id()));
        let keep = [
            me.clone(),
            base.join("ctfw-abc"),
            base.join(format!("other-{}", gone.id())),
        ];
        for d in [&ours, &dead].into_iter().chain(&keep) {
            std::fs::create_dir_all(d).expect("dir");
        }
        std::fs::write(dead.join("config"), b"x").expect("file");
        // A directory with a subdirectory is not ctfw's runtime directory: left, with a
        // warning.
        let odd = base.join(format!("ctfw-{}", u32::MAX - 1));
        std::fs::create_dir_all(odd.join("sub")).expect("dir");
        remove_leftovers(&ours);
        assert!(!dead.exists());
        assert!(ours.exists() && odd.exists());
        for d in &keep {
            assert!(d.exists(), "{}", d.display());
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn eal_line_for_virtual_devices() {
        let cfg = Config::from_str(
            "ports:\n  - {name: a, device: 'net_ring0', peer: b}\n  - {name: b, device: 'net_pcap0,rx_pcap=x.pcap', peer: a}\n",
            std::path::Path::new("t.yaml"),
        )
        .expect("config");
        let host = Host {
            cpus: vec![2, 3],
            hugepages: Vec::new(),
            hugetlbfs: false,
            available: None,
        };
        let a = eal_args(&cfg, Memory::NoHuge, &host, "ctfw-test");
        assert_eq!(a[0], "ctfw");
        assert!(a.contains(&"--lcores=0@2,1@3".to_owned()), "{a:?}");
        assert!(a.contains(&"--no-huge".to_owned()));
        assert!(a.contains(&"--vdev=net_pcap0,rx_pcap=x.pcap".to_owned()));
        assert!(a.contains(&"--no-pci".to_owned()));
        assert!(a.contains(&"--file-prefix=ctfw-test".to_owned()));
    }
}
