//! The ports: each configured device probed, planned ([`layout`]), given a
//! packet pool large enough for every place its mbufs can wait, configured and started; at
//! the end, closed, with a check that every mbuf came back to its pool.

use anyhow::{Context, Result, bail};
use ctfw_config::{Config, Dataplane};
use ctfw_engine::rss::SYMMETRIC_KEY;
use rte::{Eal, Mempool, Port, PortConf, PortStats, RssConf, sys};
use tracing::{info, warn};

use super::eal;
use super::layout::{self, PortPlan, RxMode, TxMode};
use super::rings::RING_SIZE;
use crate::MAX_BURST;

/// Per-lcore mempool cache.
const POOL_CACHE: u32 = 256;

/// One configured port, probed and configured.
pub struct PortSetup {
    /// Its name in the configuration.
    pub name: String,
    /// Its DPDK device string (devargs included).
    pub device: String,
    /// The ethdev.
    pub port: Port,
    /// Its packet pool.
    pub pool: Mempool,
    /// Which lcores poll and transmit on it.
    pub plan: PortPlan,
    /// The driver's name.
    pub driver: String,
    /// The configuration the device accepted.
    pub accepted: PortConf,
}

/// Probe, plan and configure every port.
pub fn setup(eal: &Eal, cfg: &Config) -> Result<Vec<PortSetup>> {
    let dp = &cfg.dataplane;
    let workers = dp.workers;
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
        if info.driver_name == "net_af_xdp" {
            warn_unread_queues(&p.name, &p.device, plan.rx_queues);
        }
        let needed = mbufs_needed(&plan, dp, workers) + driver_keeps(&info.driver_name, &plan, dp);
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

/// Mbufs of one port that can be out of its pool at once: its RX descriptors, TX
/// descriptors (of the peer, counted alike), the lcores' pool caches, the rings and the burst
/// buffers.
fn mbufs_needed(plan: &PortPlan, dp: &Dataplane, workers: u16) -> u64 {
    let rings = u64::from(workers > 1) + u64::from(plan.tx == TxMode::Shared);
    u64::from(plan.rx_queues) * u64::from(dp.rx_descriptors)
        + u64::from(plan.tx_queues) * u64::from(dp.tx_descriptors)
        + u64::from(workers + 1) * u64::from(POOL_CACHE)
        + rings * u64::from(RING_SIZE)
        + MAX_BURST as u64 * u64::from(workers + 1)
}

/// The kernel interface named by `iface=` in a vdev's arguments (`net_af_packet0,iface=eth1`).
pub fn iface_of(device: &str) -> Option<&str> {
    device
        .split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix("iface="))
        .filter(|i| !i.is_empty())
}

/// An AF_XDP socket reads one queue of its interface: what the NIC steers to the others is
/// passed to the kernel (the driver's XDP program redirects only queues that have a socket),
/// so it never crosses ctfw. Said at start when the interface has more RX queues than ctfw
/// reads.
fn warn_unread_queues(name: &str, device: &str, polled: u16) {
    let Some(iface) = iface_of(device) else {
        return;
    };
    let queues = std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0);
    if queues > usize::from(polled) {
        warn!(
            "port {name}: {iface} has {queues} RX queues and ctfw's AF_XDP socket reads \
             {polled}: packets the NIC steers to the others go to the kernel, not through \
             ctfw. Give the interface one queue (`ethtool -L {iface} combined 1`)"
        );
    }
}

/// The fill ring of a `net_af_xdp` RX queue (`XSK_RING_CONS__DEFAULT_NUM_DESCS`, which the
/// driver always uses for it).
const AF_XDP_FILL_RING: u64 = 2048;

/// Mbufs a driver keeps out of the pool by design while the port runs, and does not give back
/// when it closes. `net_af_xdp` (zero-copy: the pool is the AF_XDP umem) keeps its fill ring
/// full, topping it up one for one as packets arrive, and each transmitted packet waits in its
/// completion ring, as large as the RX queue, until a later TX burst reclaims it; DPDK 22.11's
/// `xdp_umem_destroy` deletes both rings without returning what is in them.
fn driver_keeps(driver: &str, plan: &PortPlan, dp: &Dataplane) -> u64 {
    if driver == "net_af_xdp" {
        u64::from(plan.rx_queues) * (AF_XDP_FILL_RING + u64::from(dp.rx_descriptors))
    } else {
        0
    }
}

/// Start every port, promiscuous where the device allows it.
pub fn start(ports: &mut [PortSetup]) -> Result<()> {
    for p in ports {
        p.port
            .start()
            .with_context(|| format!("cannot start port {} ({})", p.name, p.device))?;
        if let Err(e) = p.port.promiscuous(true) {
            info!("port {}: promiscuous mode not available ({e})", p.name);
        }
    }
    Ok(())
}

/// A port after it was closed: its last statistics and the state of its pool.
pub struct Closed {
    /// The port's name.
    pub name: String,
    /// Its statistics just before closing (`None` if the device could not give them).
    pub stats: Option<PortStats>,
    /// Its pool's name.
    pub pool: String,
    /// Mbufs back in the pool.
    pub free: u32,
    /// Mbufs the pool holds when none is out.
    pub size: u32,
    /// Mbufs the driver may keep at close by design (see `driver_keeps`): fewer missing than
    /// this is not a leak.
    pub driver_keeps: u32,
}

impl Closed {
    /// Whether more mbufs are missing from the pool than the driver keeps.
    pub fn leaked(&self) -> bool {
        self.size.saturating_sub(self.free) > self.driver_keeps
    }
}

/// Stop and close every port (the workers and the main lcore's queues must be gone), then
/// see whether every mbuf came home.
pub fn close(ports: Vec<PortSetup>, dp: &Dataplane) -> Result<Vec<Closed>> {
    let mut out = Vec::new();
    for p in ports {
        let keeps = driver_keeps(&p.driver, &p.plan, dp);
        let stats = p.port.stats().ok();
        let pool = p.pool.clone();
        p.port
            .close()
            .with_context(|| format!("closing port {}", p.name))?;
        out.push(Closed {
            name: p.name,
            stats,
            pool: pool.name().to_owned(),
            free: pool.avail(),
            size: pool.size(),
            driver_keeps: u32::try_from(keeps).unwrap_or(u32::MAX),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn af_xdp_keeps_its_rings_and_that_is_no_leak() {
        let dp = Dataplane::default();
        let plan = PortPlan {
            rx: RxMode::Direct,
            tx: TxMode::PerWorker,
            rx_queues: 2,
            tx_queues: 2,
            why: String::new(),
        };
        let keeps = driver_keeps("net_af_xdp", &plan, &dp);
        assert_eq!(keeps, 2 * (2048 + u64::from(dp.rx_descriptors)));
        assert_eq!(driver_keeps("net_af_packet", &plan, &dp), 0);
        let closed = |free, driver_keeps| Closed {
            name: "inside".into(),
            stats: None,
            pool: "ctfw_p0".into(),
            free,
            size: 8191,
            driver_keeps,
        };
        assert!(!closed(8191, 0).leaked());
        assert!(closed(8190, 0).leaked());
        assert!(!closed(8191 - 2049, keeps as u32).leaked());
        assert!(closed(8191 - keeps as u32 - 1, keeps as u32).leaked());
    }

    #[test]
    fn iface_comes_from_the_devargs() {
        assert_eq!(
            iface_of("net_af_xdp0,iface=eth1,queue_count=2"),
            Some("eth1")
        );
        assert_eq!(iface_of("net_af_packet1,qpairs=1,iface=a1"), Some("a1"));
        assert_eq!(iface_of("0000:03:00.0"), None);
        assert_eq!(iface_of("net_af_packet0,iface="), None);
    }
}
