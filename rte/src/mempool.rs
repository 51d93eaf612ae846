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

use std::ffi::CString;
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
    name: String,
    _eal: Eal,
}

// SAFETY: the pool is created with DPDK's default mbuf mempool ops ("ring_mp_mc"), whose
// get/put are safe from any thread; the pointer is only freed in Drop, when no handle is left.
unsafe impl Send for PoolInner {}
// SAFETY: as above; shared access only calls thread-safe DPDK functions.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n` mbufs with a per-lcore cache of `cache` and `data_room` bytes
    /// of buffer each (headroom included; `RTE_MBUF_DEFAULT_BUF_SIZE` is the usual value),
    /// on NUMA `socket` (`dpdk_sys::SOCKET_ID_ANY` for any). Names must be unique in the
    /// process and shorter than DPDK's `RTE_MEMPOOL_NAMESIZE`.
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
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                size: n,
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
