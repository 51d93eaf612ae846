//! Rings of mbufs (`rte_ring`): lock-free FIFOs that move packet ownership between lcores.
//!
//! A [`Ring`] is multi-producer / multi-consumer (DPDK's default mode), so any number of
//! threads may enqueue and dequeue at once: it is `Clone + Send + Sync` and its methods take
//! `&self`. (DPDK's single-producer/consumer modes would need handles that cannot be shared;
//! nothing in ctfw uses them, so `rte` does not offer them.)
//!
//! Rings are created with `RING_F_EXACT_SZ`, so `capacity` is exactly what was asked for.
//! Enqueue moves mbufs from the front of an [`MbufBurst`] into the ring; what did not fit
//! stays in the burst. When the last handle goes, mbufs still in the ring are freed, then
//! the ring.

use std::ffi::{CString, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::{Eal, MbufBurst, RteError};

#[derive(Debug)]
struct RingInner {
    ptr: NonNull<sys::rte_ring>,
    capacity: u32,
    _eal: Eal,
}

// SAFETY: the ring lives in DPDK shared memory and is only freed in Drop, when no handle is
// left; it is created multi-producer/multi-consumer, so any thread may enqueue or dequeue
// concurrently.
unsafe impl Send for RingInner {}
// SAFETY: as above.
unsafe impl Sync for RingInner {}

impl RingInner {
    /// Creates an MP/MC ring: without `RING_F_SP_ENQ`/`RING_F_SC_DEQ`, DPDK makes it
    /// multi-producer/multi-consumer.
    fn create(eal: &Eal, name: &str, capacity: u32, socket: i32) -> Result<Self, RteError> {
        let cname = CString::new(name)
            .map_err(|_| RteError::InvalidArgument(format!("ring name {name:?} has a NUL")))?;
        // SAFETY: cname is a valid C string for the call; the EAL is initialised.
        let ptr =
            unsafe { sys::rte_ring_create(cname.as_ptr(), capacity, socket, sys::RING_F_EXACT_SZ) };
        let ptr = NonNull::new(ptr).ok_or_else(|| RteError::last("rte_ring_create"))?;
        Ok(RingInner {
            ptr,
            capacity,
            _eal: eal.clone(),
        })
    }

    fn enqueue<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        // SAFETY: the ring is live and multi-producer; send_front offers the burst's owned
        // mbufs, and the ring takes ownership of exactly the `n` it reports, all from the front.
        unsafe {
            burst.send_front(|mbufs, count| {
                let n = sys::ctfw_rte_ring_enqueue_burst(
                    self.ptr.as_ptr(),
                    mbufs.cast::<*mut c_void>(),
                    u32::from(count),
                    ptr::null_mut(),
                );
                n as u16 // n <= count
            })
        }
    }

    fn dequeue<const N: usize>(&self, burst: &mut MbufBurst<N>, max: usize) -> usize {
        // SAFETY: the ring is live and multi-consumer, and holds only owned mbufs put there by
        // enqueue; dequeue writes at most `room` of them into the free tail and reports how many.
        unsafe {
            burst.fill_tail(max, |tail, room| {
                let n = sys::ctfw_rte_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    tail.cast::<*mut c_void>(),
                    u32::from(room),
                    ptr::null_mut(),
                );
                n as u16 // n <= room
            })
        }
    }

    fn count(&self) -> u32 {
        // SAFETY: the ring is live; count reads the head/tail indexes.
        unsafe { sys::ctfw_rte_ring_count(self.ptr.as_ptr()) }
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        let mut burst = MbufBurst::<64>::new();
        while self.dequeue(&mut burst, usize::MAX) > 0 {
            burst.clear();
        }
        // SAFETY: the ring is empty and no handle refers to it any more.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

/// A multi-producer, multi-consumer ring of mbufs.
#[derive(Clone, Debug)]
pub struct Ring {
    inner: Arc<RingInner>,
}

impl Ring {
    /// Creates an MP/MC ring holding up to `capacity` mbufs, on NUMA `socket`
    /// (`dpdk_sys::SOCKET_ID_ANY` for any). Names must be unique in the process.
    pub fn new(eal: &Eal, name: &str, capacity: u32, socket: i32) -> Result<Ring, RteError> {
        Ok(Ring {
            inner: Arc::new(RingInner::create(eal, name, capacity, socket)?),
        })
    }

    /// Moves mbufs from the front of `burst` into the ring; returns how many. The rest
    /// (if the ring filled up) stay in `burst`.
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        self.inner.enqueue(burst)
    }

    /// Moves up to the free room of `burst` out of the ring into it; returns how many.
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        self.inner.dequeue(burst, usize::MAX)
    }

    /// As [`Ring::dequeue_burst`], moving at most `max` mbufs.
    pub fn dequeue_burst_max<const N: usize>(&self, burst: &mut MbufBurst<N>, max: usize) -> usize {
        self.inner.dequeue(burst, max)
    }

    /// Mbufs in the ring (a snapshot).
    pub fn count(&self) -> u32 {
        self.inner.count()
    }

    /// Maximum number of mbufs the ring holds.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }
}
