//! `RteError`: every fallible control-path call in `rte` returns it.
//!
//! DPDK reports errors two ways: a negative return value (`-errno`) or `NULL`/`-1` with the
//! per-lcore `rte_errno` set. Both become [`RteError::Errno`] carrying the failed call's name
//! and DPDK's own text for the code (`rte_strerror`, which also knows DPDK-specific codes
//! such as `E_RTE_NO_CONFIG`).

use std::ffi::CStr;

/// An error from DPDK or from a wrapper's own checks.
#[derive(Debug, thiserror::Error)]
pub enum RteError {
    /// A DPDK call failed with an errno value.
    #[error("{op} failed: {msg} (errno {errno})")]
    Errno {
        /// The DPDK function that failed.
        op: &'static str,
        /// The positive errno value.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
    },
    /// `Eal::init` was called a second time; DPDK allows one `rte_eal_init` per process.
    #[error("the EAL is already initialised in this process (DPDK allows one rte_eal_init)")]
    AlreadyInitialized,
    /// An argument the wrapper rejected before calling DPDK.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A resource is held elsewhere (a port claimed twice, a queue handed out, ...).
    #[error("busy: {0}")]
    Busy(String),
    /// A pool or buffer ran out (no free mbuf, bytes that do not fit in one mbuf).
    #[error("exhausted: {0}")]
    Exhausted(String),
    /// A mempool was created on mempool ops other than DPDK's default multi-producer /
    /// multi-consumer ring ("ring_mp_mc"), which `rte`'s thread-safety argument needs (see
    /// [`Mempool::pktmbuf`](crate::Mempool::pktmbuf)). The pool was freed again.
    #[error(
        "mempool {pool} was created on mempool ops {ops:?}, {cause}; rte needs \"ring_mp_mc\" \
         (multi-producer/multi-consumer), because mbufs are allocated and freed on several \
         lcores at once"
    )]
    MempoolOps {
        /// The pool's name.
        pool: String,
        /// The ops DPDK created it with, e.g. "ring_sp_sc".
        ops: String,
        /// Where they came from and what to do, e.g. the EAL option that chose them.
        cause: String,
    },
    /// A call DPDK allows only on the main lcore was made from another thread.
    #[error("{0} must be called on the main lcore (the thread that ran Eal::init)")]
    NotMainLcore(&'static str),
}

impl RteError {
    /// Builds an `Errno` error from a positive errno value.
    pub(crate) fn errno(op: &'static str, errno: i32) -> Self {
        // SAFETY: rte_strerror accepts any value and returns a pointer to a NUL-terminated
        // string (static or in a per-lcore buffer) that stays valid until the next call on
        // this thread; it is copied before returning.
        let msg = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) };
        RteError::Errno {
            op,
            errno,
            msg: msg.to_string_lossy().into_owned(),
        }
    }

    /// Builds an error from the calling thread's `rte_errno` (after a `NULL` / `-1` return).
    pub(crate) fn last(op: &'static str) -> Self {
        // SAFETY: reads the calling thread's rte_errno thread-local.
        let errno = unsafe { dpdk_sys::ctfw_rte_errno() };
        Self::errno(op, errno)
    }

    /// Maps DPDK's "negative errno on failure" convention to a `Result`.
    pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32, RteError> {
        if ret < 0 {
            Err(Self::errno(op, -ret))
        } else {
            Ok(ret)
        }
    }
}
