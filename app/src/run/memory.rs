//! Memory, checked before it is asked for: the EAL's `dataplane.memory_mb` and the connection
//! tables of `conntrack.capacity`, against what the machine can give and what DPDK 22.11 can
//! map. A configuration that asks for more is refused with the key, what it needs, what there
//! is and what would work, instead of failing inside DPDK (an obscure EAL error, or a crash
//! at start or exit) or aborting on a failed allocation.
//!
//! - **EAL memory** ([`check_eal`], before `rte_eal_init`). With hugepages (`--in-memory`),
//!   `-m` is preallocated from the free pages of every size the kernel offers, at most
//!   `RTE_MAX_MEMSEG_PER_TYPE` pages and `min(RTE_MAX_MEM_MB_PER_TYPE, RTE_MAX_MEM_MB / sizes)`
//!   MiB per page size (`eal_dynmem_memseg_lists_init` in DPDK 22.11, counting one NUMA node).
//!   Without (`--no-huge`), `-m` is one anonymous shared mapping plus a 48-byte
//!   `struct rte_memseg` per 4 KiB page that the EAL writes at start (1.2%), and it must fit in
//!   the memory available (below).
//! - **Connection tables** ([`check_tables`] before the EAL, [`allocate_engines`] after it,
//!   before the ports). One per worker, in ordinary memory (not DPDK's): their bytes
//!   ([`Engine::bytes_for`]) are checked against the memory available, before the EAL and
//!   again after it, then allocated fallibly ([`Engine::try_new`]). When the EAL
//!   runs on hugepages, the tables are advised onto transparent huge pages
//!   (`madvise(MADV_HUGEPAGE)` before their first write, [`rte::os::advise_huge_pages`]): they
//!   are the data plane's biggest and most randomly accessed memory, so the one that gains
//!   most from fewer TLB misses. Transparent huge pages come from ordinary memory, not from
//!   the hugetlbfs pool that `dataplane.memory_mb` reserves; the kernel gives them only in
//!   its `always` or `madvise` mode and as far as it finds free 2 MiB blocks, so start-up
//!   reports how much of the tables they actually back.
//! - **Available memory** ([`Available::probe`]): the least of `MemAvailable`
//!   (`/proc/meminfo`), the address space left under `RLIMIT_AS` (limit minus `VmSize`), and
//!   what the memory cgroup still allows (its limit minus its usage plus its inactive file
//!   cache, for v1 and v2 hierarchies, at the usual mount points).

use std::path::Path;

use anyhow::{Result, bail};
use ctfw_config::{Config, Hugepages};
use ctfw_engine::pipeline::Engine;
use ctfw_engine::table::Region;
use rte::sys;
use tracing::{info, warn};

use super::eal::{Host, Memory};
use super::{engine_config, random_seeds};

const MIB: u64 = 1 << 20;
/// `sizeof(struct rte_memseg)` in DPDK 22.11: what the EAL writes for every 4 KiB page of
/// `--no-huge` memory.
const MEMSEG_BYTES: u64 = 48;
/// The page the EAL uses without hugepages.
const NO_HUGE_PAGE: u64 = 4096;
/// `--no-huge` keeps its page count in an `int`.
const NO_HUGE_MAX_MB: u64 = (i32::MAX as u64 * NO_HUGE_PAGE) / MIB;
/// Where the kernel says how it hands out transparent huge pages.
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// One hugepage size and how many pages of it are free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize {
    /// Bytes per page.
    pub bytes: u64,
    /// Free pages (`free_hugepages`).
    pub free: u64,
}

/// The most `-m` MiB the EAL can preallocate from hugepages of `sizes` (every size the kernel
/// offers, free or not: each is an EAL memory type).
pub fn hugepage_limit_mb(sizes: &[PageSize]) -> u64 {
    let types = sizes.len().max(1) as u64;
    let per_type = (u64::from(sys::RTE_MAX_MEM_MB_PER_TYPE) * MIB)
        .min(u64::from(sys::RTE_MAX_MEM_MB) * MIB / types);
    let bytes: u64 = sizes
        .iter()
        .filter(|s| s.bytes > 0)
        .map(|s| {
            let pages = s
                .free
                .min(u64::from(sys::RTE_MAX_MEMSEG_PER_TYPE))
                .min(per_type / s.bytes);
            pages * s.bytes
        })
        .sum();
    (bytes / MIB).min(u64::from(sys::RTE_MAX_MEM_MB))
}

/// The free hugepages of `sizes`, for a message: `256 x 2 MiB, 0 x 1 GiB`.
fn describe_pages(sizes: &[PageSize]) -> String {
    if sizes.is_empty() {
        return "no hugepage sizes".into();
    }
    let list: Vec<String> = sizes
        .iter()
        .map(|s| format!("{} x {}", s.free, human(s.bytes)))
        .collect();
    format!("{} free", list.join(", "))
}

/// Bytes the EAL takes without hugepages for `memory_mb`: the memory and its page records.
fn no_huge_bytes(memory_mb: u64) -> u64 {
    let bytes = memory_mb * MIB;
    bytes + bytes / NO_HUGE_PAGE * MEMSEG_BYTES
}

/// The most `-m` MiB that fit in `bytes` without hugepages.
fn no_huge_fit_mb(bytes: u64) -> u64 {
    (bytes / (MIB + MIB / NO_HUGE_PAGE * MEMSEG_BYTES)).min(NO_HUGE_MAX_MB)
}

/// What memory ctfw may still take, and what limits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Available {
    /// Bytes.
    pub bytes: u64,
    /// Where the limit comes from, for messages.
    pub limit: &'static str,
}

impl Available {
    /// Read `/proc/meminfo`, `/proc/self/limits`, `/proc/self/status` and the memory cgroup.
    /// `None` if none of them says anything (no limit known).
    pub fn probe() -> Option<Available> {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let candidates = [
            meminfo_available(&read("/proc/meminfo")).map(|b| Available {
                bytes: b,
                limit: "MemAvailable in /proc/meminfo",
            }),
            address_space_left(&read("/proc/self/limits"), &read("/proc/self/status")).map(|b| {
                Available {
                    bytes: b,
                    limit: "the address space left under RLIMIT_AS (ulimit -v)",
                }
            }),
            cgroup_left(&read("/proc/self/cgroup")).map(|b| Available {
                bytes: b,
                limit: "the memory cgroup's limit",
            }),
        ];
        candidates.into_iter().flatten().min_by_key(|a| a.bytes)
    }
}

/// `MemAvailable` in bytes.
fn meminfo_available(meminfo: &str) -> Option<u64> {
    meminfo_field(meminfo, "MemAvailable:")
}

/// A `kB` field of `/proc/meminfo` or `/proc/self/status`, in bytes.
fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft `RLIMIT_AS` minus the address space in use (`VmSize`); `None` if unlimited.
fn address_space_left(limits: &str, status: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let used = meminfo_field(status, "VmSize:")?;
    Some(soft.saturating_sub(used))
}

/// What the memory cgroup of this process and its ancestors still allow: the least of
/// `limit - usage + inactive file cache` over the hierarchy; `None` without a limit.
fn cgroup_left(cgroup: &str) -> Option<u64> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let num = |s: Option<String>| s.and_then(|s| s.trim().parse::<u64>().ok());
    let mut best: Option<u64> = None;
    for line in cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let (root, limit, usage, inactive) = if controllers.is_empty() {
            (
                "/sys/fs/cgroup",
                "memory.max",
                "memory.current",
                "inactive_file ",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file ",
            )
        } else {
            continue;
        };
        let mut dir = Path::new(root).join(path.trim_start_matches('/'));
        loop {
            // "max" (v2) does not parse; v1 says "no limit" with a huge number.
            if let (Some(l), Some(u)) = (
                num(read(&dir.join(limit))).filter(|&l| l < 1 << 60),
                num(read(&dir.join(usage))),
            ) {
                let cache = read(&dir.join("memory.stat"))
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix(inactive))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .unwrap_or(0);
                let left = l.saturating_sub(u.saturating_sub(cache));
                best = Some(best.map_or(left, |b| b.min(left)));
            }
            if dir == Path::new(root) || !dir.pop() {
                break;
            }
        }
    }
    best
}

/// Refuse a `dataplane.memory_mb` that the EAL cannot honour in mode `memory` on `host`,
/// before the EAL tries; `tables` are the bytes the connection tables will take from the same
/// ordinary memory. Skipped, with a note, when `dataplane.eal_args` sets the EAL's memory
/// itself.
pub fn check_eal(cfg: &Config, memory: Memory, host: &Host, tables: u64) -> Result<()> {
    let dp = &cfg.dataplane;
    if let Some(arg) = dp.eal_args.iter().find(|a| sets_eal_memory(a)) {
        info!(
            "dataplane.eal_args sets the EAL's memory ({arg}): ctfw does not check \
             dataplane.memory_mb against the machine"
        );
        return Ok(());
    }
    let asked = u64::from(dp.memory_mb);
    match memory {
        Memory::Hugepages => {
            let limit = hugepage_limit_mb(&host.hugepages);
            if asked > limit {
                let instead = match dp.hugepages {
                    Hugepages::On => "; or set dataplane.hugepages to auto or off to run \
                                      without hugepages"
                        .to_owned(),
                    _ => String::new(),
                };
                bail!(
                    "dataplane.memory_mb: {asked} MiB of hugepages cannot be had: {} ({} MiB \
                     the EAL can use{}); at most {limit} MiB would work: lower \
                     dataplane.memory_mb, or reserve more hugepages (vm.nr_hugepages){instead}",
                    describe_pages(&host.hugepages),
                    limit,
                    if limit == u64::from(sys::RTE_MAX_MEM_MB) {
                        ", DPDK's RTE_MAX_MEM_MB"
                    } else {
                        ""
                    },
                );
            }
        }
        Memory::NoHuge => {
            let Some(avail) = host.available else {
                return Ok(());
            };
            let needed = no_huge_bytes(asked);
            if needed.saturating_add(tables) > avail.bytes || asked > NO_HUGE_MAX_MB {
                let fit = no_huge_fit_mb(avail.bytes.saturating_sub(tables));
                let tables_note = if tables > 0 {
                    format!(
                        ", after the {} the connection tables take (conntrack.capacity {})",
                        human(tables),
                        cfg.engine.capacity
                    )
                } else {
                    String::new()
                };
                let would = if fit >= 16 && tables > 0 {
                    format!("at most {fit} MiB would work, or lower conntrack.capacity")
                } else if fit >= 16 {
                    format!("at most {fit} MiB would work")
                } else {
                    "not even the smallest value (16) would: lower conntrack.capacity or free \
                     memory"
                        .into()
                };
                bail!(
                    "dataplane.memory_mb: {asked} MiB cannot be had without hugepages: the EAL \
                     would take {} and {} is available ({}){tables_note}; {would}",
                    human(needed),
                    human(avail.bytes),
                    avail.limit,
                );
            }
        }
    }
    Ok(())
}

/// Whether an EAL argument sets how much memory the EAL takes or in which mode.
fn sets_eal_memory(arg: &str) -> bool {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    arg.starts_with("-m")
        || [
            "--socket-mem",
            "--socket-limit",
            "--no-huge",
            "--legacy-mem",
        ]
        .contains(&name)
}

/// The workers' engines, allocated, and what their memory is.
pub struct Engines {
    /// One per worker, in worker order.
    pub engines: Vec<Engine>,
    /// Bytes they hold in all.
    pub bytes: u64,
    /// Of those, bytes the kernel backs with transparent huge pages (when it says).
    pub huge_bytes: Option<u64>,
    /// Whether transparent huge pages were asked for, and the kernel's mode.
    pub advice: Advice,
}

/// Whether the tables were advised onto transparent huge pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advice {
    /// Not asked for: the EAL runs without hugepages.
    NotAsked,
    /// Asked for; the kernel's mode (`always`, `madvise`, `never`, or `unknown`).
    Asked(String),
    /// Asking failed (a kernel without transparent huge pages).
    Failed(String),
}

/// Bytes the workers' engines will take under `cfg` ([`Engine::bytes_for`] of each share).
pub fn engines_bytes(cfg: &Config) -> u64 {
    (0..cfg.dataplane.workers)
        .map(|w| Engine::bytes_for(&engine_config(cfg, w)) as u64)
        .sum()
}

/// Refuse, before the EAL starts, a `conntrack.capacity` whose tables (`needed` bytes) do not
/// fit in the memory available; [`allocate_engines`] checks again once the EAL has taken its
/// share.
pub fn check_tables(cfg: &Config, needed: u64) -> Result<()> {
    if let Some(avail) = Available::probe().filter(|a| needed > a.bytes) {
        bail!("{}", refusal(cfg, needed, avail, "are not available"));
    }
    Ok(())
}

/// Allocate every worker's engine for `cfg`, refusing with `conntrack.capacity`, the bytes
/// needed and the bytes available when they do not fit. With `memory` on hugepages, their
/// tables are advised onto transparent huge pages before they are first written.
pub fn allocate_engines(cfg: &Config, memory: Memory) -> Result<Engines> {
    let needed = engines_bytes(cfg);
    check_tables(cfg, needed)?;
    let mut advice = match memory {
        Memory::NoHuge => Advice::NotAsked,
        Memory::Hugepages => Advice::Asked(thp_mode()),
    };
    let mut regions = Vec::new();
    let mut engines = Vec::with_capacity(usize::from(cfg.dataplane.workers));
    for c in (0..cfg.dataplane.workers).map(|w| engine_config(cfg, w)) {
        let advise = |r: Region| {
            regions.push(r);
            if matches!(advice, Advice::Asked(_)) {
                if let Err(e) = rte::os::advise_huge_pages(r.addr, r.len) {
                    advice = Advice::Failed(e.to_string());
                }
            }
        };
        match Engine::try_new(c, cfg.rules.clone(), random_seeds()?, advise) {
            Ok(e) => engines.push(e),
            Err(_) => {
                let avail = Available::probe().unwrap_or(Available {
                    bytes: 0,
                    limit: "the allocator refused",
                });
                bail!("{}", refusal(cfg, needed, avail, "could not be allocated"));
            }
        }
    }
    let bytes = engines.iter().map(|e| e.memory_bytes() as u64).sum();
    let huge_bytes = match &advice {
        Advice::Asked(_) => std::fs::read_to_string("/proc/self/smaps")
            .ok()
            .map(|s| huge_bytes_in(&s, &regions)),
        _ => None,
    };
    if let Advice::Failed(e) = &advice {
        warn!("cannot advise the connection tables onto transparent huge pages: {e}");
    }
    Ok(Engines {
        engines,
        bytes,
        huge_bytes,
        advice,
    })
}

/// The refusal for tables of `needed` bytes when `avail` is what there is.
fn refusal(cfg: &Config, needed: u64, avail: Available, what: &str) -> String {
    let workers = cfg.dataplane.workers;
    let fit = capacity_fitting(cfg, avail.bytes);
    let would = if fit >= ctfw_config::MIN_CAPACITY {
        format!("at most about {fit} entries would fit")
    } else {
        "not even the smallest capacity would fit".into()
    };
    format!(
        "conntrack.capacity {}: the connection tables ({workers} worker(s)) need {needed} bytes \
         ({}), which {what}: {} bytes ({}) are available ({}); {would}",
        cfg.engine.capacity,
        human(needed),
        avail.bytes,
        human(avail.bytes),
        avail.limit
    )
}

/// The largest total capacity, a multiple of 1024, whose tables take at most `bytes`.
fn capacity_fitting(cfg: &Config, bytes: u64) -> u32 {
    let fits = |capacity: u32| {
        let mut c = cfg.clone();
        c.engine.capacity = capacity;
        engines_bytes(&c) <= bytes
    };
    let (mut lo, mut hi) = (0u32, cfg.engine.capacity / 1024);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid * 1024) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo * 1024
}

/// The kernel's transparent huge page mode: the bracketed word of [`THP_ENABLED`].
fn thp_mode() -> String {
    std::fs::read_to_string(THP_ENABLED)
        .ok()
        .and_then(|s| {
            let (_, rest) = s.split_once('[')?;
            Some(rest.split_once(']')?.0.to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Bytes of `regions` on transparent huge pages, from `/proc/self/smaps`: the
/// `AnonHugePages` of every mapping that overlaps one of them (a table's blocks are mappings
/// of their own: the allocator maps blocks this big directly).
fn huge_bytes_in(smaps: &str, regions: &[Region]) -> u64 {
    let mut total = 0;
    let mut current = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                current = regions
                    .iter()
                    .any(|r| r.addr < b && r.addr.saturating_add(r.len) > a);
                continue;
            }
        }
        if current {
            if let Some(v) = meminfo_field(line, "AnonHugePages:") {
                total += v;
            }
        }
    }
    total
}

/// Bytes as MiB or GiB, for messages.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_limit_is_the_free_pages_within_the_eal_limits() {
        let two_mib = |free| PageSize {
            bytes: 2 * MIB,
            free,
        };
        let one_gib = |free| PageSize {
            bytes: 1 << 30,
            free,
        };
        assert_eq!(hugepage_limit_mb(&[two_mib(256), one_gib(0)]), 512);
        assert_eq!(hugepage_limit_mb(&[two_mib(256), one_gib(2)]), 512 + 2048);
        assert_eq!(hugepage_limit_mb(&[]), 0);
        // 2 MiB pages: at most RTE_MAX_MEMSEG_PER_TYPE (32768) of them, 64 GiB.
        assert_eq!(hugepage_limit_mb(&[two_mib(1 << 20)]), 65536);
    }

    #[test]
    fn no_huge_memory_counts_the_eal_page_records() {
        assert_eq!(no_huge_bytes(1024), (1 << 30) + (1 << 18) * 48);
        let fit = no_huge_fit_mb(no_huge_bytes(1000));
        assert_eq!(fit, 1000);
        assert_eq!(no_huge_fit_mb(u64::MAX), NO_HUGE_MAX_MB);
    }

    #[test]
    fn proc_files_are_read() {
        assert_eq!(
            meminfo_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"),
            Some(2 << 20)
        );
        let limits = "Limit  Soft Limit  Hard Limit  Units\n\
                      Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_left(limits, "VmSize:  1000 kB\n"), None);
        let limits = "Max address space         1048576000           unlimited            bytes\n";
        assert_eq!(
            address_space_left(limits, "VmSize:  1000 kB\n"),
            Some(1_048_576_000 - 1_024_000)
        );
        assert!(sets_eal_memory("-m"));
        assert!(sets_eal_memory("-m512"));
        assert!(sets_eal_memory("--socket-mem=512"));
        assert!(!sets_eal_memory("--in-memory"));
    }

    #[test]
    fn smaps_counts_huge_pages_of_the_regions_only() {
        let smaps = "7f0000000000-7f0000400000 rw-p 00000000 00:00 0\n\
                     AnonHugePages:      2048 kB\n\
                     7f0000400000-7f0000800000 rw-p 00000000 00:00 0\n\
                     AnonHugePages:      4096 kB\n";
        let r = Region {
            addr: 0x7f00_0000_1000,
            len: 0x1000,
        };
        assert_eq!(huge_bytes_in(smaps, &[r]), 2 << 20);
        assert_eq!(huge_bytes_in(smaps, &[]), 0);
    }
}
