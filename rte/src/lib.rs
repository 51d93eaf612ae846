//! Safe wrappers over DPDK for ctfw: EAL, lcores, mempools, mbufs, ethdev ports and rings;
//! and, in [`os`], the few Linux calls ctfw needs beside them.
//!
//! Everything unsafe about DPDK is contained here (on top of the raw `dpdk-sys`); code using
//! `rte` needs no `unsafe`. The design rules, each enforced by types rather than docs:
//!
//! - **One EAL per process.** [`Eal::init`] succeeds once; every object that uses DPDK
//!   memory holds an [`Eal`] handle, and `rte_eal_cleanup` runs when the last one drops.
//! - **Packets are owned.** An [`Mbuf`] frees itself on drop; TX and ring enqueue *move*
//!   mbufs out of an [`MbufBurst`] and leave whatever was not accepted in it, so nothing is
//!   freed twice and nothing is lost.
//! - **Pools outlive packets.** Ports keep their [`Mempool`] alive; a pool whose last
//!   handle goes while its mbufs are still out is leaked rather than freed
//!   ([`leaked_pools`] counts them; the EAL is then not cleaned up).
//! - **Pools are multi-producer/multi-consumer.** [`Mempool::pktmbuf`] refuses a pool whose
//!   mempool ops are not DPDK's default "ring_mp_mc" (the EAL option `--mbuf-pool-ops-name`
//!   can choose others); the `Send`/`Sync` of pools and the `Send` of mbufs rest on that.
//! - **One poller per queue.** A [`Port`] has a single owner; [`RxQueue`]s and [`TxQueue`]s
//!   hand its queues to workers one claim each, and the port cannot be reconfigured or
//!   stopped while they are out.
//! - **No unwinding into C.** A closure run on a worker lcore via [`Eal::launch`] never
//!   unwinds into DPDK's C frames. Under `panic = "unwind"` (tests, debug builds) its panic is
//!   caught on the worker and comes back through [`LaunchHandle::join`] instead of aborting
//!   inside DPDK. ctfw's release profile sets `panic = "abort"`: there a worker panic aborts
//!   the whole process (SIGABRT) where it happens, `join` never returns it, and the service
//!   manager restarts ctfw.
//!
//! # DPDK behaviour worth knowing (22.11, Debian)
//! - `rte_eal_init` cannot be repeated in a process, not even after a failure or
//!   `rte_eal_cleanup`; tests that need the EAL run one process per configuration
//!   (`harness = false` test binaries).
//! - PMDs (including `mempool_ring`, needed by every mbuf pool) are shared objects that the
//!   EAL loads from Debian's plugin directory; nothing links them explicitly.
//! - The fast path does not check queue ids: `rte_eth_rx_burst` on a queue that was never set
//!   up reads out of bounds, hence the checks in [`Port`].
//! - `rte_eth_dev_configure` rejects (does not mask) RSS flow types or offloads the device
//!   lacks; [`Port::configure`] masks them itself and returns what it asked for.
//! - `net_null` advertises RSS (`flow_type_rss_offloads` = `RTE_ETH_RSS_PROTO_MASK`,
//!   `reta_size` 128) and echoes the configured flow types through
//!   `rte_eth_dev_rss_hash_conf_get`, but reports `hash_key_size` 0 although it keeps a
//!   40-byte key internally: no key can be set or read through the generic API. Its RX
//!   hands out 64-byte mbufs from the queue's pool; its TX frees everything.
//! - `net_ring` vdevs (`--vdev=net_ring0`) loop TX queue *i* back to RX queue *i* through a
//!   ring of 1024 slots (1023 usable; the 1024th mbuf of a burst is refused and stays with
//!   the caller). They report no RSS, and count packets but not bytes.
//! - `--lcores=0@C,1@C` (two lcores on one CPU) works: idle workers block in DPDK's wait,
//!   they do not spin. In hugepage mode the EAL warns that no 1 GB pages are free; harmless.

mod eal;
mod error;
mod mbuf;
mod mempool;
pub mod os;
mod port;
mod ring;

pub use eal::{Eal, LaunchHandle, leaked_pools, runtime_dir};
pub use error::RteError;
pub use mbuf::{CksumStatus, Drain, Mbuf, MbufBurst, MbufView, MbufViews, Segments};
pub use mempool::Mempool;
pub use port::{DevInfo, Port, PortConf, PortStats, RssConf, RxQueue, TxQueue};
pub use ring::Ring;

pub use dpdk_sys as sys;

use dpdk_sys::LCORE_ID_ANY;

/// The time-stamp counter (`rte_rdtsc`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::ctfw_rte_rdtsc() }
}

/// TSC cycles per second as measured by the EAL (0 before [`Eal::init`]).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL stores at init; 0 before that.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// The calling thread's lcore id; `None` on threads the EAL did not create.
#[inline]
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads the calling thread's lcore id thread-local.
    let id = unsafe { dpdk_sys::ctfw_rte_lcore_id() };
    (id != LCORE_ID_ANY).then_some(id)
}
