//! `Mempool`: a packet mbuf pool (`rte_pktmbuf_pool_create`).
//!
//! Lifetime design: a `Mempool` is a cheap, cloneable handle (an `Arc`); ports keep a clone
//! for their RX queues, so a pool lives at least as long as any device that allocates from
//! it. Individual [`Mbuf`](crate::Mbuf)s do not hold a clone (that would cost an atomic per
//! packet). Instead, when the last handle goes, the pool is freed only if none of its mbufs
//! is in use; otherwise it is deliberately leaked (and the EAL is then never cleaned up, see
//! [`leaked_pools`](crate::leaked_pools)), so a late `Mbuf` drop never touches freed memory.
//! A pool with no mbuf in use and no handle left cannot gain new users: allocation needs a
//! handle, and devices hold one.
//!
//! Thread safety: mbufs of one pool are allocated and freed on several lcores at once (RX on
//! a worker, free after TX on another, drops on the main lcore), so a pool must run on
//! multi-producer/multi-consumer mempool ops. DPDK's default for mbuf pools is "ring_mp_mc",
//! but the EAL option `--mbuf-pool-ops-name` (or a driver registering a platform mempool)
//! can pick others, such as the single-producer/consumer "ring_sp_sc". [`Mempool::pktmbuf`]
//! therefore reads the ops of every pool it creates and refuses anything but "ring_mp_mc";
//! `Mempool`'s `Send`/`Sync` and [`Mbuf`](crate::Mbuf)'s `Send` rest on that check.

use std::ffi::{CStr, CString, c_char};
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::{Eal, RteError};

/// A pool of packet mbufs. See the module docs for how it outlives its mbufs.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    ptr: NonNull<sys::rte_mempool>,
    size: u32,
    data_room: u16,
    name: String,
    _eal: Eal,
}

/// The mempool ops every pool must run on: DPDK's multi-producer/multi-consumer ring, the
/// default for mbuf pools (`RTE_MBUF_DEFAULT_MEMPOOL_OPS`).
const MP_MC_OPS: &str = "ring_mp_mc";

// SAFETY: `Mempool::pktmbuf` only hands out pools whose ops it checked are "ring_mp_mc"
// (MP_MC_OPS), whose get/put are safe from any thread at once; without that check this would
// not hold. The pointer is only freed in Drop, when no handle is left.
unsafe impl Send for PoolInner {}
// SAFETY: as above; shared access only calls thread-safe DPDK functions.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n` mbufs with a per-lcore cache of `cache` and `data_room` bytes
    /// of buffer each (headroom included; `RTE_MBUF_DEFAULT_BUF_SIZE` is the usual value),
    /// on NUMA `socket` (`dpdk_sys::SOCKET_ID_ANY` for any). Names must be unique in the
    /// process and shorter than DPDK's `RTE_MEMPOOL_NAMESIZE`.
    ///
    /// Fails with [`RteError::MempoolOps`] (and frees the pool again) if DPDK created it on
    /// mempool ops other than "ring_mp_mc": see the module docs for why.
    pub fn pktmbuf(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, RteError> {
        let cname = CString::new(name)
            .map_err(|_| RteError::InvalidArgument(format!("pool name {name:?} has a NUL")))?;
        // SAFETY: cname is a valid C string for the duration of the call; the EAL is
        // initialised (eal proves it). priv_size 0 is always aligned.
        let ptr =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(ptr).ok_or_else(|| RteError::last("rte_pktmbuf_pool_create"))?;
        // SAFETY: ptr is the live pool just created; the name lives in the process-wide ops
        // table and is copied at once.
        let ops = unsafe { c_string(sys::ctfw_rte_mempool_ops_name(ptr.as_ptr())) };
        let ops = ops.unwrap_or_default();
        if ops != MP_MC_OPS {
            // SAFETY: both read mbuf configuration the EAL set up (eal proves init) and return
            // NULL or a string that outlives the call; each is copied at once.
            let (user, platform) = unsafe {
                (
                    c_string(sys::rte_mbuf_user_mempool_ops()),
                    c_string(sys::rte_mbuf_platform_mempool_ops()),
                )
            };
            // SAFETY: the pool was just created: no mbuf was taken from it and no handle
            // refers to it.
            unsafe { sys::rte_mempool_free(ptr.as_ptr()) };
            return Err(ops_error(name, ops, user.as_deref(), platform.as_deref()));
        }
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                size: n,
                data_room,
                name: name.to_owned(),
                _eal: eal.clone(),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Bytes of buffer in each mbuf, headroom included, as created: a segment holds up to
    /// `data_room - RTE_PKTMBUF_HEADROOM` bytes of packet.
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// Free mbufs, per-lcore caches included (a snapshot when other threads are active).
    pub fn avail(&self) -> u32 {
        // SAFETY: the pool is live while a handle exists; the count only reads it.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// The raw pool, for rte's own DPDK calls (allocation, RX queue setup). It stays valid
    /// while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

/// The error for a pool created on `ops` other than [`MP_MC_OPS`], naming what chose them:
/// the user's ops (the EAL option `--mbuf-pool-ops-name`), or a driver's platform ops.
fn ops_error(pool: &str, ops: String, user: Option<&str>, platform: Option<&str>) -> RteError {
    let cause = if user == Some(ops.as_str()) {
        format!("chosen with the EAL option --mbuf-pool-ops-name={ops} (remove that option)")
    } else if platform == Some(ops.as_str()) {
        "registered as the platform's mempool by a driver (rte supports only DPDK's default \
         ring mempool)"
            .to_owned()
    } else {
        "which are not DPDK's default for mbuf pools".to_owned()
    };
    RteError::MempoolOps {
        pool: pool.to_owned(),
        ops,
        cause,
    }
}

/// Copies a C string that may be NULL.
///
/// # Safety
/// `ptr` must be NULL or point at a NUL-terminated string valid for the call.
unsafe fn c_string(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL ptr is a valid NUL-terminated string, per the contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    Some(s.to_string_lossy().into_owned())
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is still live; no other handle exists (we are the Arc's last).
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no handle and no mbuf refer to the pool any more (see module docs).
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        } else {
            crate::eal::note_leaked_pool();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(err: RteError) -> String {
        match err {
            RteError::MempoolOps { cause, .. } => cause,
            other => panic!("not a MempoolOps error: {other}"),
        }
    }

    #[test]
    fn ops_error_names_what_chose_the_ops() {
        let user = ops_error("p", "ring_sp_sc".into(), Some("ring_sp_sc"), None);
        assert!(cause(user).contains("--mbuf-pool-ops-name=ring_sp_sc"));
        let platform = ops_error(
            "p",
            "cn10k_mempool_ops".into(),
            None,
            Some("cn10k_mempool_ops"),
        );
        assert!(cause(platform).contains("platform"));
        let other = ops_error("p", "stack".into(), Some("ring_sp_sc"), None);
        assert!(cause(other).contains("not DPDK's default"));
        let shown = ops_error("pool0", "ring_sp_sc".into(), Some("ring_sp_sc"), None).to_string();
        assert!(
            shown.contains("pool0")
                && shown.contains("\"ring_sp_sc\"")
                && shown.contains("ring_mp_mc")
        );
    }
}
