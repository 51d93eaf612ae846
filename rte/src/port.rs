//! `Port`: an ethdev port (configure, start, stats and xstats, RSS), and [`RxQueue`] /
//! [`TxQueue`], the claimed queues its data path runs on.
//!
//! Invariants:
//! - At most one `Port` exists per port id in the process (a global claim), because ethdev's
//!   control functions are not thread-safe.
//! - A data-path call only ever names a queue that was set up (DPDK does not range-check
//!   queue ids on the fast path and would index out of bounds): the queue handles check the
//!   id when they are claimed.
//! - No queue is polled from two threads: an [`RxQueue`] or [`TxQueue`] claims its queue id
//!   (a second claim is refused), is `Send` but not `Sync`, and polls through `&mut self`.
//!   The `Port` itself has no data-path calls.
//! - Reconfiguring, starting, stopping or closing needs every queue handle back (they hold a
//!   shared reference that `Arc::get_mut` detects), so the device never changes under a
//!   polling worker.
//! - Every mempool given to `configure` is kept until the port is closed: RX queues allocate
//!   from it.
//! - A port that was configured (or that a configure was attempted on) is closed when the
//!   last of the `Port` and its queues is dropped (stopped first if started); closing a vdev
//!   port releases its id. A port never configured is left as it was.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char};
use std::marker::PhantomData;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dpdk_sys as sys;

use crate::{Eal, MbufBurst, Mempool, RteError};

/// Port ids with a live `Port` in this process.
static CLAIMED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data inconsistent (single inserts).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// RSS settings: the hash key (empty = keep the device's default) and the `RTE_ETH_RSS_*`
/// flow types to hash on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RssConf {
    /// Hash key; if not empty its length must equal [`DevInfo::hash_key_size`].
    pub key: Vec<u8>,
    /// `RTE_ETH_RSS_*` bits.
    pub hf: u64,
}

/// What to configure on a port. [`Port::configure`] returns the same type holding what the
/// device actually accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortConf {
    /// RX queues (at least 1, at most [`DevInfo::max_rx_queues`]).
    pub rx_queues: u16,
    /// TX queues (at least 1, at most [`DevInfo::max_tx_queues`]).
    pub tx_queues: u16,
    /// Descriptors per RX queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per TX queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// RSS, or `None` for a single unhashed queue distribution.
    pub rss: Option<RssConf>,
    /// `RTE_ETH_RX_OFFLOAD_*` bits.
    pub rx_offloads: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` bits.
    pub tx_offloads: u64,
    /// MTU (`rxmode.mtu`), or `None` for Ethernet's 1500. Devices over a kernel interface
    /// change the interface's MTU only through [`Port::set_mtu`].
    pub mtu: Option<u16>,
}

/// Device capabilities (`rte_eth_dev_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevInfo {
    /// PMD name, e.g. `net_null`.
    pub driver_name: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// RSS key length in bytes (0: the device has no settable key).
    pub hash_key_size: u8,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// `RTE_ETH_RSS_*` flow types the device can hash.
    pub flow_type_rss_offloads: u64,
    /// `RTE_ETH_RX_OFFLOAD_*` capabilities.
    pub rx_offload_capa: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` capabilities.
    pub tx_offload_capa: u64,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// Longest frame the device receives (`max_rx_pktlen`), link-layer header included.
    pub max_rx_pktlen: u32,
}

impl DevInfo {
    /// The largest MTU ethdev lets this device have: at most `max_mtu`, and small enough that
    /// the MTU plus the link-layer overhead fits in `max_rx_pktlen`. The overhead is ethdev's
    /// own (`eth_dev_get_overhead_len`): `max_rx_pktlen - max_mtu` when the device states a
    /// maximum MTU below its maximum frame, else the Ethernet header and CRC (18 bytes).
    /// `rte_eth_dev_configure` and `rte_eth_dev_set_mtu` refuse anything larger.
    pub fn mtu_limit(&self) -> u16 {
        const ETHER_HDR_AND_CRC: u32 = 14 + 4;
        let overhead = if self.max_mtu != u16::MAX && self.max_rx_pktlen > u32::from(self.max_mtu) {
            self.max_rx_pktlen - u32::from(self.max_mtu)
        } else {
            ETHER_HDR_AND_CRC
        };
        let by_frame = self.max_rx_pktlen.saturating_sub(overhead);
        u16::try_from(by_frame)
            .unwrap_or(u16::MAX)
            .min(self.max_mtu)
    }
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// RX packets dropped by the hardware (queues full).
    pub imissed: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An ethdev port, owned exclusively by this handle. `Send` but not `Sync`.
#[derive(Debug)]
pub struct Port {
    shared: Arc<PortShared>,
    _not_sync: PhantomData<Cell<()>>,
}

#[derive(Debug)]
struct PortShared {
    id: u16,
    configured: bool,
    started: bool,
    rx_queues: u16,
    tx_queues: u16,
    /// RX queue ids held by an `RxQueue` (index = queue id).
    rx_claimed: Mutex<Vec<bool>>,
    /// TX queue ids held by a `TxQueue` (index = queue id).
    tx_claimed: Mutex<Vec<bool>>,
    /// Every pool an RX queue of this port was set up with.
    pools: Vec<Mempool>,
    _eal: Eal,
}

impl Port {
    /// Takes exclusive ownership of port `id`.
    pub fn new(eal: &Eal, id: u16) -> Result<Port, RteError> {
        // SAFETY: accepts any id; the EAL is initialised.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(RteError::InvalidArgument(format!("no ethdev port {id}")));
        }
        if !lock(&CLAIMED_PORTS).insert(id) {
            return Err(RteError::Busy(format!(
                "port {id} already has a Port handle"
            )));
        }
        let shared = PortShared {
            id,
            configured: false,
            started: false,
            rx_queues: 0,
            tx_queues: 0,
            rx_claimed: Mutex::new(Vec::new()),
            tx_claimed: Mutex::new(Vec::new()),
            pools: Vec::new(),
            _eal: eal.clone(),
        };
        Ok(Port {
            shared: Arc::new(shared),
            _not_sync: PhantomData,
        })
    }

    /// Looks a port up by device name (e.g. `net_ring0`, a PCI address) and takes it.
    pub fn by_name(eal: &Eal, name: &str) -> Result<Port, RteError> {
        let cname = CString::new(name)
            .map_err(|_| RteError::InvalidArgument(format!("port name {name:?} has a NUL")))?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string and id a valid out-pointer for the call.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        RteError::check("rte_eth_dev_get_port_by_name", ret)?;
        Port::new(eal, id)
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Device capabilities.
    pub fn dev_info(&self) -> Result<DevInfo, RteError> {
        let info = self.raw_dev_info()?;
        let driver_name = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: non-null driver_name points at the PMD's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DevInfo {
            driver_name,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            max_rx_pktlen: info.max_rx_pktlen,
        })
    }

    fn raw_dev_info(&self) -> Result<sys::rte_eth_dev_info, RteError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-pointer; the function fills it.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id(), &mut info) };
        RteError::check("rte_eth_dev_info_get", ret)?;
        Ok(info)
    }

    /// Configures the port and sets up its queues with RX buffers from `pool`; returns the
    /// configuration the device accepted. Requests the device cannot honour are narrowed
    /// rather than rejected: RSS flow types and offloads are masked by the device's
    /// capabilities (RSS is turned off if no requested flow type is supported), descriptor
    /// counts are adjusted to its limits, and when RSS is on and the device can report the
    /// hash, `RTE_ETH_RX_OFFLOAD_RSS_HASH` is added. Errors: queue counts out of range, an
    /// RSS key of the wrong length, a started port, queue handles still out, DPDK failures.
    pub fn configure(&mut self, conf: &PortConf, pool: &Mempool) -> Result<PortConf, RteError> {
        let info = self.raw_dev_info()?;
        let id = self.id();
        let shared = self.exclusive("configure")?;
        if shared.started {
            return Err(RteError::Busy(format!(
                "port {id} is started; stop it first"
            )));
        }
        if conf.rx_queues == 0 || conf.rx_queues > info.max_rx_queues {
            return Err(RteError::InvalidArgument(format!(
                "port {id}: {} RX queues requested, device allows 1..={}",
                conf.rx_queues, info.max_rx_queues
            )));
        }
        if conf.tx_queues == 0 || conf.tx_queues > info.max_tx_queues {
            return Err(RteError::InvalidArgument(format!(
                "port {id}: {} TX queues requested, device allows 1..={}",
                conf.tx_queues, info.max_tx_queues
            )));
        }
        let mut rss = conf.rss.as_ref().map(|rss| RssConf {
            key: rss.key.clone(),
            hf: rss.hf & info.flow_type_rss_offloads,
        });
        if let Some(rss) = &rss {
            if !rss.key.is_empty() && rss.key.len() != usize::from(info.hash_key_size) {
                return Err(RteError::InvalidArgument(format!(
                    "port {id}: RSS key of {} bytes, device needs {}",
                    rss.key.len(),
                    info.hash_key_size
                )));
            }
        }
        rss = rss.filter(|rss| rss.hf != 0);
        let mut rx_offloads = conf.rx_offloads & info.rx_offload_capa;
        if rss.is_some() {
            rx_offloads |= info.rx_offload_capa & sys::RTE_ETH_RX_OFFLOAD_RSS_HASH;
        } else {
            // ethdev rejects RSS_HASH without RSS.
            rx_offloads &= !sys::RTE_ETH_RX_OFFLOAD_RSS_HASH;
        }
        let tx_offloads = conf.tx_offloads & info.tx_offload_capa;

        let mut eth_conf = sys::rte_eth_conf::default();
        eth_conf.rxmode.offloads = rx_offloads;
        eth_conf.rxmode.mtu = conf.mtu.map_or(0, u32::from); // 0: RTE_ETHER_MTU
        eth_conf.txmode.offloads = tx_offloads;
        let mut key = rss.as_ref().map(|rss| rss.key.clone()).unwrap_or_default();
        if let Some(rss) = &rss {
            eth_conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            let rss_conf = &mut eth_conf.rx_adv_conf.rss_conf;
            rss_conf.rss_hf = rss.hf;
            if !key.is_empty() {
                rss_conf.rss_key = key.as_mut_ptr();
                rss_conf.rss_key_len = info.hash_key_size; // == key.len(), checked above
            }
        }

        // From here on the device may hold queues set up with `pool`; keep it until close,
        // and refuse to start until the whole sequence has succeeded.
        shared.configured = false;
        if !shared.pools.iter().any(|p| p.as_ptr() == pool.as_ptr()) {
            shared.pools.push(pool.clone());
        }
        // SAFETY: eth_conf is fully initialised and, with the key buffer it points to, lives
        // across the call; the port is ours and stopped, with no queue handed out.
        let ret =
            unsafe { sys::rte_eth_dev_configure(id, conf.rx_queues, conf.tx_queues, &eth_conf) };
        RteError::check("rte_eth_dev_configure", ret)?;

        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid out-pointers for the call.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        RteError::check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;
        // SAFETY: plain query; -1 (unknown) is SOCKET_ID_ANY, which queue setup accepts.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) } as u32;
        for q in 0..conf.rx_queues {
            // SAFETY: q < the configured RX queue count; NULL rxconf means the device
            // default; pool is a live pktmbuf pool kept in shared.pools until close.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, rx_desc, socket, ptr::null(), pool.as_ptr())
            };
            RteError::check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: q < the configured TX queue count; NULL txconf means the default.
            let ret = unsafe { sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket, ptr::null()) };
            RteError::check("rte_eth_tx_queue_setup", ret)?;
        }

        let mut mtu = 0u16;
        // SAFETY: valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(id, &mut mtu) };
        RteError::check("rte_eth_dev_get_mtu", ret)?;

        shared.configured = true;
        shared.rx_queues = conf.rx_queues;
        shared.tx_queues = conf.tx_queues;
        *lock(&shared.rx_claimed) = vec![false; usize::from(conf.rx_queues)];
        *lock(&shared.tx_claimed) = vec![false; usize::from(conf.tx_queues)];
        Ok(PortConf {
            rx_queues: conf.rx_queues,
            tx_queues: conf.tx_queues,
            rx_desc,
            tx_desc,
            rss,
            rx_offloads,
            tx_offloads,
            mtu: Some(mtu),
        })
    }

    /// Sets the device's MTU (`rte_eth_dev_set_mtu`), after [`configure`](Self::configure),
    /// which already gave it in `rxmode.mtu`: devices over a kernel interface (`net_tap`,
    /// `net_af_packet`) set the interface's MTU only here. `Ok(false)` when the device has
    /// no MTU of its own to set (`ENOTSUP`): the configured one stands.
    pub fn set_mtu(&mut self, mtu: u16) -> Result<bool, RteError> {
        /// Linux's `ENOTSUP` (`EOPNOTSUPP`), which ethdev returns for a device without an
        /// `mtu_set` operation.
        const ENOTSUP: i32 = 95;
        let id = self.id();
        self.exclusive("set the MTU")?;
        // SAFETY: control call on our port; no queue handle is out (checked just above).
        let ret = unsafe { sys::rte_eth_dev_set_mtu(id, mtu) };
        if ret == -ENOTSUP {
            return Ok(false);
        }
        RteError::check("rte_eth_dev_set_mtu", ret).map(|_| true)
    }

    /// The device's MTU now (`rte_eth_dev_get_mtu`).
    pub fn mtu(&self) -> Result<u16, RteError> {
        let mut mtu = 0u16;
        // SAFETY: valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(self.id(), &mut mtu) };
        RteError::check("rte_eth_dev_get_mtu", ret)?;
        Ok(mtu)
    }

    /// Starts the port (after a successful [`configure`](Self::configure)).
    pub fn start(&mut self) -> Result<(), RteError> {
        let id = self.id();
        let shared = self.exclusive("start")?;
        if !shared.configured {
            return Err(RteError::InvalidArgument(format!(
                "port {id} is not configured"
            )));
        }
        if !shared.started {
            // SAFETY: the port is configured, ours, and no queue handle is out.
            let ret = unsafe { sys::rte_eth_dev_start(id) };
            RteError::check("rte_eth_dev_start", ret)?;
            shared.started = true;
        }
        Ok(())
    }

    /// Stops the port; every [`RxQueue`] and [`TxQueue`] must have been dropped.
    pub fn stop(&mut self) -> Result<(), RteError> {
        let id = self.id();
        let shared = self.exclusive("stop")?;
        if shared.started {
            // SAFETY: the port is ours and nobody polls it (no queue handle is out).
            let ret = unsafe { sys::rte_eth_dev_stop(id) };
            RteError::check("rte_eth_dev_stop", ret)?;
            shared.started = false;
        }
        Ok(())
    }

    /// Stops (if started) and closes the port, reporting errors that `Drop` would ignore.
    /// For virtual devices this releases the port id.
    pub fn close(mut self) -> Result<(), RteError> {
        self.stop()?;
        let shared = self.exclusive("close")?;
        if shared.pools.is_empty() {
            return Ok(()); // never configured: nothing to close
        }
        // SAFETY: the port is ours, stopped, and no queue handle is out.
        let ret = unsafe { sys::rte_eth_dev_close(shared.id) };
        // Closed (or failed to): Drop must not close again; the pools may go.
        shared.configured = false;
        shared.pools.clear();
        RteError::check("rte_eth_dev_close", ret).map(drop)
    }

    /// Enables or disables promiscuous mode.
    pub fn promiscuous(&mut self, on: bool) -> Result<(), RteError> {
        let id = self.id();
        // SAFETY: control call on our port.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(id)
            } else {
                sys::rte_eth_promiscuous_disable(id)
            }
        };
        RteError::check("rte_eth_promiscuous_enable/disable", ret).map(drop)
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats, RteError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.id(), &mut s) };
        RteError::check("rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Extended counters (`rte_eth_xstats_get`) as `(name, value)`, in the device's order:
    /// the generic ones every ethdev has (`rx_good_packets`, `rx_q0_bytes`, ...) and the
    /// driver's own. A control-path call, like [`stats`](Self::stats): it allocates, and the
    /// data path never needs it.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, RteError> {
        let id = self.id();
        // SAFETY: NULL with size 0 asks for the count only.
        let count = unsafe { sys::rte_eth_xstats_get_names(id, ptr::null_mut(), 0) };
        let count = RteError::check("rte_eth_xstats_get_names", count)? as u32;
        let mut names = vec![sys::rte_eth_xstat_name::default(); count as usize];
        // SAFETY: names has room for `count` entries, as the call is told.
        let got = unsafe { sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), count) };
        let got = RteError::check("rte_eth_xstats_get_names", got)? as u32;
        let mut values = vec![sys::rte_eth_xstat::default(); count as usize];
        // SAFETY: values has room for `count` entries, as the call is told.
        let got_values = unsafe { sys::rte_eth_xstats_get(id, values.as_mut_ptr(), count) };
        let got_values = RteError::check("rte_eth_xstats_get", got_values)? as u32;
        // A larger count means the device grew counters between the calls (and filled
        // nothing): refuse rather than report a partial list.
        if got > count || got_values > count {
            return Err(RteError::Busy(format!(
                "port {id}: xstats changed while being read"
            )));
        }
        names.truncate(got as usize);
        values.truncate(got_values as usize);
        Ok(values
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                Some((c_chars_to_string(&name.name), v.value))
            })
            .collect())
    }

    /// The RSS key and flow types the device is using now (`rte_eth_dev_rss_hash_conf_get`).
    pub fn rss_hash_conf_get(&self) -> Result<RssConf, RteError> {
        let info = self.raw_dev_info()?;
        let mut key = vec![0u8; usize::from(info.hash_key_size)];
        let mut conf = sys::rte_eth_rss_conf {
            rss_key: if key.is_empty() {
                ptr::null_mut()
            } else {
                key.as_mut_ptr()
            },
            rss_key_len: info.hash_key_size,
            rss_hf: 0,
        };
        // SAFETY: conf points at a key buffer of rss_key_len bytes (or NULL), live for the call.
        let ret = unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.id(), &mut conf) };
        RteError::check("rte_eth_dev_rss_hash_conf_get", ret)?;
        key.truncate(usize::from(conf.rss_key_len));
        Ok(RssConf {
            key,
            hf: conf.rss_hf,
        })
    }

    /// Hands out RX queue `queue` for use on one thread, typically a worker lcore. Fails if
    /// the queue was not set up or is already handed out. The port cannot be reconfigured,
    /// started, stopped or closed until every queue handle is dropped.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, RteError> {
        claim(
            &self.shared,
            queue,
            self.shared.rx_queues,
            &self.shared.rx_claimed,
            "RX",
        )?;
        Ok(RxQueue {
            shared: self.shared.clone(),
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Hands out TX queue `queue`, under the same rules as [`Port::rx_queue`]. RX and TX queue
    /// ids are claimed separately: one thread may poll RX queue 0 while another sends on TX
    /// queue 0.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, RteError> {
        claim(
            &self.shared,
            queue,
            self.shared.tx_queues,
            &self.shared.tx_claimed,
            "TX",
        )?;
        Ok(TxQueue {
            shared: self.shared.clone(),
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Programs the RSS redirection table: hash bucket `i` goes to RX queue `reta[i]`.
    /// `reta.len()` must equal [`DevInfo::reta_size`]; every entry must be a configured RX
    /// queue. Only meaningful on a configured port with RSS on.
    pub fn set_reta(&mut self, reta: &[u16]) -> Result<(), RteError> {
        let id = self.id();
        let info = self.raw_dev_info()?;
        if reta.len() != usize::from(info.reta_size) || reta.is_empty() {
            return Err(RteError::InvalidArgument(format!(
                "port {id}: RETA of {} entries, device has {}",
                reta.len(),
                info.reta_size
            )));
        }
        if let Some(q) = reta.iter().find(|&&q| q >= self.shared.rx_queues) {
            return Err(RteError::InvalidArgument(format!(
                "port {id}: RETA names RX queue {q}, only {} are set up",
                self.shared.rx_queues
            )));
        }
        let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        let mut conf: Vec<sys::rte_eth_rss_reta_entry64> = reta
            .chunks(group)
            .map(|chunk| {
                let mut e = sys::rte_eth_rss_reta_entry64 {
                    mask: if chunk.len() == 64 {
                        u64::MAX
                    } else {
                        (1u64 << chunk.len()) - 1
                    },
                    ..Default::default()
                };
                e.reta[..chunk.len()].copy_from_slice(chunk);
                e
            })
            .collect();
        // SAFETY: conf holds ceil(reta_size / 64) groups, as the call requires for reta_size
        // entries; it lives across the call.
        let ret =
            unsafe { sys::rte_eth_dev_rss_reta_update(id, conf.as_mut_ptr(), info.reta_size) };
        RteError::check("rte_eth_dev_rss_reta_update", ret).map(drop)
    }

    fn exclusive(&mut self, op: &str) -> Result<&mut PortShared, RteError> {
        let id = self.shared.id;
        Arc::get_mut(&mut self.shared).ok_or_else(|| {
            RteError::Busy(format!(
                "port {id}: cannot {op} while queue handles are in use"
            ))
        })
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // Errors cannot be reported from Drop; Port::close reports them.
        if self.started {
            // SAFETY: last reference to the port: nobody polls it.
            unsafe { sys::rte_eth_dev_stop(self.id) };
        }
        if !self.pools.is_empty() {
            // Configured, or a configure was attempted: queues may refer to the pools.
            // SAFETY: stopped, last reference; after this the pools may go.
            unsafe { sys::rte_eth_dev_close(self.id) };
        }
        lock(&CLAIMED_PORTS).remove(&self.id);
    }
}

/// RX queue `queue` of a port, for one thread: `Send`, not `Sync`.
#[derive(Debug)]
pub struct RxQueue {
    shared: Arc<PortShared>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Receives at most `max` packets into the free room of `burst`; returns how many
    /// arrived.
    #[inline]
    pub fn rx_burst_max<const N: usize>(&mut self, burst: &mut MbufBurst<N>, max: usize) -> usize {
        // SAFETY: the queue was set up (checked when claimed), this handle is its only user
        // (claimed, !Sync, &mut self), and the port cannot be reconfigured or closed while we
        // hold a reference.
        unsafe { rx(self.shared.id, self.queue, burst, max) }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        release(&self.shared.rx_claimed, self.queue);
    }
}

/// TX queue `queue` of a port, for one thread: `Send`, not `Sync`.
#[derive(Debug)]
pub struct TxQueue {
    shared: Arc<PortShared>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Transmits from the front of `burst`; returns how many the driver took. The rest stay
    /// in `burst`, still owned.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        // SAFETY: as for RxQueue::rx_burst_max.
        unsafe { tx(self.shared.id, self.queue, burst) }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        release(&self.shared.tx_claimed, self.queue);
    }
}

fn claim(
    shared: &PortShared,
    queue: u16,
    set_up: u16,
    claimed: &Mutex<Vec<bool>>,
    what: &str,
) -> Result<(), RteError> {
    if !shared.configured || queue >= set_up {
        return Err(RteError::InvalidArgument(format!(
            "port {}: {what} queue {queue} is not set up",
            shared.id
        )));
    }
    match lock(claimed).get_mut(usize::from(queue)) {
        Some(slot) if !*slot => {
            *slot = true;
            Ok(())
        }
        _ => Err(RteError::Busy(format!(
            "port {} {what} queue {queue}",
            shared.id
        ))),
    }
}

fn release(claimed: &Mutex<Vec<bool>>, queue: u16) {
    if let Some(slot) = lock(claimed).get_mut(usize::from(queue)) {
        *slot = false;
    }
}

/// A NUL-terminated (or full) C char buffer as a String.
fn c_chars_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// # Safety
/// `queue` must be a set-up RX queue of `port` polled by no other thread.
#[inline]
unsafe fn rx<const N: usize>(port: u16, queue: u16, burst: &mut MbufBurst<N>, max: usize) -> usize {
    // SAFETY: the driver writes `n <= room` owned mbufs into the tail and returns n.
    unsafe {
        burst.fill_tail(max, |tail, room| {
            sys::ctfw_rte_eth_rx_burst(port, queue, tail, room)
        })
    }
}

/// # Safety
/// `queue` must be a set-up TX queue of `port` used by no other thread.
#[inline]
unsafe fn tx<const N: usize>(port: u16, queue: u16, burst: &mut MbufBurst<N>) -> usize {
    // SAFETY: the driver takes ownership of exactly the first n mbufs it reports as sent.
    unsafe {
        burst.send_front(|mbufs, count| sys::ctfw_rte_eth_tx_burst(port, queue, mbufs, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_limit_follows_ethdev() {
        let info = |max_rx_pktlen, max_mtu| DevInfo {
            max_rx_pktlen,
            max_mtu,
            ..DevInfo::default()
        };
        // What DPDK 22.11's virtual devices state: net_af_packet, net_tap, net_af_xdp,
        // net_pcap / net_ring / net_null.
        assert_eq!(info(1518, u16::MAX).mtu_limit(), 1500);
        assert_eq!(info(1522, u16::MAX).mtu_limit(), 1504);
        assert_eq!(info(3560, 3542).mtu_limit(), 3542);
        assert_eq!(info(u32::MAX, u16::MAX).mtu_limit(), u16::MAX);
        // A NIC stating both: the difference is its overhead (VLAN tags included).
        assert_eq!(info(9728, 9702).mtu_limit(), 9702);
        assert_eq!(info(0, u16::MAX).mtu_limit(), 0);
    }

    #[test]
    fn c_chars_stop_at_nul_or_end() {
        let buf = [b'r' as c_char, b'x' as c_char, 0, b'z' as c_char];
        assert_eq!(c_chars_to_string(&buf), "rx");
        assert_eq!(c_chars_to_string(&buf[..2]), "rx");
        assert_eq!(c_chars_to_string(&[]), "");
    }
}
