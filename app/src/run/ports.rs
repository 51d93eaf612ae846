//! The ports: each configured device probed, planned ([`layout`]), given a
//! packet pool large enough for every place its mbufs can wait, configured and started; at
//! the end, closed, with a check that every mbuf came back to its pool.
//!
//! MTU and buffers ([`Frames`]): a port's `ports[].mtu` must be one the device allows
//! ([`rte::DevInfo::mtu_limit`], ethdev's own rule), or `ctfw run` refuses to start and names
//! the maximum. Its frames (the MTU plus up to 26 bytes: Ethernet header, two VLAN tags, CRC)
//! are received in 2 KiB segments with scatter RX where the device supports it, else in one
//! buffer sized for them; `net_af_packet` buffers also hold a whole frame of its ring
//! (`framesz`). When any port's frames can span segments, every port asks for multi-segment
//! TX, so that a chain received on one leaves whole on its peer. A chain holds several mbufs,
//! so the pool is sized for the segments of every packet that can wait at once. The worker
//! reads chains as the engine needs them (`super::frames`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ctfw_config::{Config, DEFAULT_MTU, Dataplane};
use ctfw_engine::rss::SYMMETRIC_KEY;
use rte::{DevInfo, Eal, MbufBurst, Mempool, Port, PortConf, PortStats, RssConf, TxQueue, sys};
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
    /// Mbufs the driver took from the pool before any packet flowed and keeps through close
    /// (measured after start, for drivers that do so by design: [`keeps_at_close`]).
    pub driver_keeps: u32,
}

/// Probe, plan and configure every port.
pub fn setup(eal: &Eal, cfg: &Config) -> Result<Vec<PortSetup>> {
    let dp = &cfg.dataplane;
    let workers = dp.workers;
    // A chain received on any port may leave on any other: if frames can span segments
    // anywhere, every port transmits chains.
    let multi_seg = cfg.ports.iter().any(|p| frame_len(p.mtu) > DEFAULT_SEGMENT);
    let mut out = Vec::new();
    let mut bpffs_checked = false;
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
            if !bpffs_checked {
                bpffs_checked = true;
                say_if_no_bpffs(&p.name);
            }
        }
        check_mtu(i, &p.name, dev, &info, p.mtu)?;
        let frames = Frames::new(p.mtu, &info, &p.device);
        let needed = mbufs_needed(&plan, dp, workers, frames.segments)
            + driver_rings(&info.driver_name, &plan);
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
            frames.data_room,
            sys::SOCKET_ID_ANY,
        )
        .with_context(|| {
            format!(
                "port {}: cannot create a pool of {} mbufs of {} bytes (raise \
                 dataplane.memory_mb, now {} MiB)",
                p.name, dp.mbufs_per_port, frames.data_room, dp.memory_mb
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
                | sys::RTE_ETH_RX_OFFLOAD_UDP_CKSUM
                | if frames.scatter {
                    sys::RTE_ETH_RX_OFFLOAD_SCATTER
                } else {
                    0
                },
            tx_offloads: if multi_seg {
                sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS
            } else {
                0
            },
            mtu: Some(p.mtu),
        };
        let accepted = port
            .configure(&conf, &pool)
            .with_context(|| format!("port {}: cannot configure device {dev}", p.name))?;
        if p.mtu != DEFAULT_MTU {
            // Devices over a kernel interface set the interface's MTU only this way; leaving
            // the default alone leaves such an interface as the operator set it.
            port.set_mtu(p.mtu).with_context(|| {
                format!(
                    "port {}: device {dev} refused MTU {} (ports[{i}].mtu)",
                    p.name, p.mtu
                )
            })?;
        }
        info!("port {}: MTU {}, {}", p.name, p.mtu, frames.describe());
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
            driver_keeps: 0,
        });
    }
    Ok(out)
}

/// Mbufs of one port that can be out of its pool at once: its RX descriptors, TX
/// descriptors (of the peer, counted alike) and the lcores' pool caches hold one mbuf each;
/// the rings and the burst buffers hold packets, of up to `segments` mbufs each.
fn mbufs_needed(plan: &PortPlan, dp: &Dataplane, workers: u16, segments: u16) -> u64 {
    let rings = u64::from(workers > 1) + u64::from(plan.tx == TxMode::Shared);
    u64::from(plan.rx_queues) * u64::from(dp.rx_descriptors)
        + u64::from(plan.tx_queues) * u64::from(dp.tx_descriptors)
        + u64::from(workers + 1) * u64::from(POOL_CACHE)
        + (rings * u64::from(RING_SIZE) + MAX_BURST as u64 * u64::from(workers + 1))
            * u64::from(segments)
}

/// Bytes a frame may have beyond its MTU: the Ethernet header, two VLAN tags and the CRC.
const FRAME_OVERHEAD: u32 = 14 + 2 * 4 + 4;
/// Packet bytes in one segment of a default mbuf (`RTE_MBUF_DEFAULT_DATAROOM`).
const DEFAULT_SEGMENT: u32 = sys::RTE_MBUF_DEFAULT_DATAROOM;
/// The mbuf headroom DPDK keeps in front of the packet (`RTE_PKTMBUF_HEADROOM`).
const HEADROOM: u32 = sys::RTE_PKTMBUF_HEADROOM;

/// The longest frame of a port with this MTU.
fn frame_len(mtu: u16) -> u32 {
    u32::from(mtu) + FRAME_OVERHEAD
}

/// Refuses an MTU the device does not allow, naming the key and what would work.
fn check_mtu(i: usize, name: &str, dev: &str, info: &DevInfo, mtu: u16) -> Result<()> {
    let max = info.mtu_limit();
    if mtu > max {
        bail!(
            "port {name}: ports[{i}].mtu is {mtu}, but device {dev} ({}) allows at most {max} \
             (its largest frame is {} bytes): set ports[{i}].mtu to {max} or less",
            info.driver_name,
            info.max_rx_pktlen
        );
    }
    if mtu < info.min_mtu {
        bail!(
            "port {name}: ports[{i}].mtu is {mtu}, but device {dev} ({}) needs at least {}: \
             set ports[{i}].mtu to {} or more",
            info.driver_name,
            info.min_mtu,
            info.min_mtu
        );
    }
    Ok(())
}

/// How a port receives its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frames {
    /// The longest frame it may receive: of its MTU, or of a `net_af_packet` ring frame.
    frame: u32,
    /// Its mbufs' data room, headroom included.
    data_room: u16,
    /// Scatter RX: frames longer than a segment arrive as chains.
    scatter: bool,
    /// Mbufs one of its packets may take.
    segments: u16,
}

impl Frames {
    /// Buffers for frames of a port with `mtu` on a device described by `info`, whose
    /// device string (devargs) is `device`.
    fn new(mtu: u16, info: &DevInfo, device: &str) -> Frames {
        let frame = frame_len(mtu);
        // net_af_packet copies each frame of its ring whole into one mbuf, and refuses to
        // set up an RX queue whose mbufs are smaller than a ring frame (less its 32-byte
        // TPACKET_V2 header).
        let ring_frame = match info.driver_name.as_str() {
            "net_af_packet" => af_packet_framesz(device).saturating_sub(32),
            _ => 0,
        };
        let fits_default = frame.max(ring_frame) <= DEFAULT_SEGMENT;
        let scatter = !fits_default
            && ring_frame == 0
            && info.rx_offload_capa & sys::RTE_ETH_RX_OFFLOAD_SCATTER != 0;
        let segment = if fits_default || scatter {
            DEFAULT_SEGMENT
        } else {
            // One buffer per frame, rounded up to a cache line.
            frame.max(ring_frame).div_ceil(64) * 64
        };
        Frames {
            frame: frame.max(ring_frame),
            // At most 9000 + 26 + 128, or an af_packet frame below 64 KiB.
            data_room: u16::try_from(segment + HEADROOM).unwrap_or(u16::MAX),
            scatter,
            segments: u16::try_from(frame.div_ceil(segment)).unwrap_or(u16::MAX),
        }
    }

    /// For the start-up log.
    fn describe(&self) -> String {
        let segment = u32::from(self.data_room) - HEADROOM;
        if self.scatter {
            format!(
                "frames up to {} bytes in segments of {segment} (scatter RX, up to {} mbufs \
                 a packet)",
                self.frame, self.segments
            )
        } else {
            format!("frames up to {} bytes in buffers of {segment}", self.frame)
        }
    }
}

/// The `framesz` of a `net_af_packet` device's arguments: its default, 2048, when not given
/// or not a number (the driver then refuses to start anyway).
fn af_packet_framesz(device: &str) -> u32 {
    device
        .split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix("framesz="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
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

/// libxdp loads the XDP program that steers frames to an AF_XDP socket. With no bpf
/// filesystem at `/sys/fs/bpf` it cannot use its dispatcher (which lets several programs
/// share an interface), says so on stderr (`No bpffs found at /sys/fs/bpf ... Falling back to
/// loading single prog without dispatcher`, again at close), and attaches the program alone:
/// ctfw works the same. Said here once, in ctfw's words, before libxdp speaks.
fn say_if_no_bpffs(name: &str) {
    let mounted = std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let mut f = l.split_whitespace().skip(1);
            f.next() == Some("/sys/fs/bpf") && f.next() == Some("bpf")
        })
    });
    if !mounted {
        info!(
            "port {name}: no bpf filesystem at /sys/fs/bpf: libxdp will attach its AF_XDP \
             program without its dispatcher and say so (harmless for ctfw; mount one with \
             `mount -t bpf bpf /sys/fs/bpf` to let other XDP programs share the interface)"
        );
    }
}

/// The fill ring of a `net_af_xdp` RX queue (`ETH_AF_XDP_DFLT_NUM_DESCS`, 2048, which the
/// driver always uses for it).
const AF_XDP_FILL_RING: u64 = 2048;

/// Mbufs a driver takes from the pool for its rings beyond what [`mbufs_needed`] counts, for
/// sizing the pool. `net_af_xdp` (zero-copy: the pool is the AF_XDP umem) fills each RX
/// queue's fill ring with [`AF_XDP_FILL_RING`] mbufs when the queue is set up, and tops it up
/// one for one as packets arrive (`af_xdp_rx_zc`).
fn driver_rings(driver: &str, plan: &PortPlan) -> u64 {
    if keeps_at_close(driver) {
        u64::from(plan.rx_queues) * AF_XDP_FILL_RING
    } else {
        0
    }
}

/// Whether a driver keeps mbufs through close by design. DPDK 22.11's `net_af_xdp` does: the
/// mbufs in its fill rings (those it took when its queues were set up, whether they wait in
/// the fill ring, in the kernel or in the RX ring) go with the umem, and its `eth_dev_close`
/// returns none of them. Exactly as many are out of the pool at close as after start, when
/// [`start`] measures them, once the driver's completion rings are reclaimed
/// ([`reclaim_tx_completions`]); one more missing is a leak.
fn keeps_at_close(driver: &str) -> bool {
    driver == "net_af_xdp"
}

/// Start every port, promiscuous where the device allows it.
pub fn start(ports: &mut [PortSetup]) -> Result<()> {
    for p in ports {
        p.port
            .start()
            .with_context(|| format!("cannot start port {} ({})", p.name, p.device))?;
        if keeps_at_close(&p.driver) {
            // No packet has flowed: what is out of the pool is in the driver's rings.
            p.driver_keeps = p.pool.size() - p.pool.avail();
            let expected = u64::from(p.plan.rx_queues) * AF_XDP_FILL_RING;
            if u64::from(p.driver_keeps) != expected {
                info!(
                    "port {}: {} holds {} mbufs in its rings ({expected} expected)",
                    p.name, p.driver, p.driver_keeps
                );
            }
        }
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
    /// Mbufs the driver keeps through close by design ([`PortSetup::driver_keeps`]): missing
    /// from the pool, and no leak.
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
pub fn close(ports: Vec<PortSetup>) -> Result<Vec<Closed>> {
    let mut out = Vec::new();
    for p in ports {
        if keeps_at_close(&p.driver) {
            reclaim_tx_completions(&p);
        }
        let keeps = p.driver_keeps;
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
            driver_keeps: keeps,
        });
    }
    Ok(out)
}

/// How long [`reclaim_tx_completions`] waits for the kernel to complete what is in flight
/// once nothing more comes back.
const RECLAIM_QUIET: Duration = Duration::from_millis(20);

/// Take back what `net_af_xdp` holds in its TX and completion rings. A transmitted mbuf
/// returns to the pool only when a later TX burst reclaims its completion (`kick_tx` calls
/// `pull_umem_cq`), and the kernel completes asynchronously (a veth peer frees the frame when
/// it consumes it); close would leave them all out of the pool. So empty TX bursts run the
/// reclaim until the pool holds all but the fill rings, or nothing has come back for
/// [`RECLAIM_QUIET`] (a real leak stays missing and is reported).
fn reclaim_tx_completions(p: &PortSetup) {
    let want = p.pool.size().saturating_sub(p.driver_keeps);
    let mut queues: Vec<TxQueue> = (0..p.accepted.tx_queues)
        .filter_map(|q| p.port.tx_queue(q).ok())
        .collect();
    let mut nothing: MbufBurst<1> = MbufBurst::default();
    let (mut last, mut since) = (p.pool.avail(), Instant::now());
    while p.pool.avail() < want && since.elapsed() < RECLAIM_QUIET {
        for q in &mut queues {
            q.tx_burst(&mut nothing);
        }
        std::thread::sleep(Duration::from_millis(1));
        let now = p.pool.avail();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn af_xdp_rings_size_the_pool_and_one_more_missing_mbuf_is_a_leak() {
        let plan = PortPlan {
            rx: RxMode::Direct,
            tx: TxMode::PerWorker,
            rx_queues: 2,
            tx_queues: 2,
            why: String::new(),
        };
        assert_eq!(driver_rings("net_af_xdp", &plan), 2 * 2048);
        assert_eq!(driver_rings("net_af_packet", &plan), 0);
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
        // What the fill rings hold is no leak; one mbuf more is.
        assert!(!closed(8191 - 4096, 4096).leaked());
        assert!(closed(8191 - 4097, 4096).leaked());
    }

    fn dev(driver: &str, max_rx_pktlen: u32, max_mtu: u16, rx_offload_capa: u64) -> DevInfo {
        DevInfo {
            driver_name: driver.into(),
            max_rx_pktlen,
            max_mtu,
            min_mtu: 46,
            rx_offload_capa,
            ..DevInfo::default()
        }
    }

    #[test]
    fn buffers_fit_the_mtu_in_one_buffer_or_in_segments() {
        let scatter = sys::RTE_ETH_RX_OFFLOAD_SCATTER;
        let ring = dev("net_ring", u32::MAX, u16::MAX, scatter);
        let pcap = dev("net_pcap", u32::MAX, u16::MAX, 0);
        let default = Frames::new(1500, &pcap, "net_pcap0");
        assert_eq!(
            default,
            Frames {
                frame: 1526,
                data_room: sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                scatter: false,
                segments: 1
            }
        );
        assert_eq!(Frames::new(1500, &ring, "net_ring0"), default);
        // Jumbo frames: 2 KiB segments where the device scatters, one buffer where not.
        let ring9000 = Frames::new(9000, &ring, "net_ring0");
        assert!(ring9000.scatter && ring9000.segments == 5, "{ring9000:?}");
        assert_eq!(ring9000.data_room, default.data_room);
        let pcap9000 = Frames::new(9000, &pcap, "net_pcap0");
        assert!(!pcap9000.scatter && pcap9000.segments == 1, "{pcap9000:?}");
        assert_eq!(pcap9000.data_room, 9024 + 64 + 128);
        // net_af_packet: a whole ring frame in each buffer.
        let afp = dev("net_af_packet", 1518, u16::MAX, 0);
        let afp_default = Frames::new(1500, &afp, "net_af_packet0,iface=a");
        assert_eq!(
            (afp_default.frame, afp_default.data_room),
            (2016, default.data_room)
        );
        let big = Frames::new(1500, &afp, "net_af_packet0,iface=a,framesz=16384");
        assert_eq!(
            (big.frame, big.data_room, big.segments),
            (16352, 16384 + 128, 1)
        );
        assert_eq!(af_packet_framesz("net_af_packet0,framesz=x"), 2048);
    }

    #[test]
    fn an_mtu_the_device_does_not_allow_is_refused_by_key_and_maximum() {
        let afp = dev("net_af_packet", 1518, u16::MAX, 0);
        let err = check_mtu(1, "outside", "net_af_packet1", &afp, 9000)
            .expect_err("refused")
            .to_string();
        for want in [
            "ports[1].mtu is 9000",
            "at most 1500",
            "set ports[1].mtu to 1500",
        ] {
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        assert!(check_mtu(1, "outside", "net_af_packet1", &afp, 1500).is_ok());
        let xdp = dev("net_af_xdp", 3560, 3542, 0);
        assert!(check_mtu(0, "inside", "net_af_xdp0", &xdp, 3542).is_ok());
        assert!(check_mtu(0, "inside", "net_af_xdp0", &xdp, 3543).is_err());
        let low = check_mtu(0, "inside", "net_af_xdp0", &dev("x", 9000, 9000, 0), 40);
        assert!(
            low.expect_err("too small")
                .to_string()
                .contains("at least 46")
        );
    }

    #[test]
    fn a_pool_holds_every_segment_of_the_packets_that_wait() {
        let dp = Dataplane::default();
        let plan = PortPlan {
            rx: RxMode::Direct,
            tx: TxMode::PerWorker,
            rx_queues: 1,
            tx_queues: 2,
            why: String::new(),
        };
        let one = mbufs_needed(&plan, &dp, 2, 1);
        let five = mbufs_needed(&plan, &dp, 2, 5);
        let waiting = u64::from(RING_SIZE) + MAX_BURST as u64 * 3;
        assert_eq!(five - one, 4 * waiting);
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
