//! The EAL (DPDK's Environment Abstraction Layer) and running closures on worker lcores.
//!
//! Invariants:
//! - `rte_eal_init` runs at most once per process (a static flag; DPDK cannot re-initialise,
//!   even after `rte_eal_cleanup` or a failed init).
//! - `rte_eal_cleanup` runs when the last [`Eal`] handle is dropped. Every object that uses
//!   DPDK memory ([`Mempool`](crate::Mempool), [`Port`](crate::Port), [`Ring`](crate::Ring),
//!   [`LaunchHandle`]) holds a handle, so cleanup cannot happen while one exists. Cleanup is
//!   skipped if a mempool had to be leaked (mbufs still out), because those mbufs would then
//!   point into unmapped memory.
//! - The EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root) is removed when
//!   the EAL is cleaned up and when `rte_eal_init` fails, if it is empty. DPDK creates it at
//!   every start and never removes it; ctfw's EAL modes (`--in-memory`, `--no-shconf`) leave
//!   nothing in it, so without this every run would leave an empty directory behind.
//! - A closure launched on a worker lcore is waited for before its [`LaunchHandle`] goes away,
//!   and never unwinds into DPDK's C code: under `panic = "unwind"` its panic is caught on the
//!   worker and returned by [`LaunchHandle::join`]; under `panic = "abort"` (ctfw's release
//!   profile) a panic aborts the process before anything could unwind.

use std::ffi::CStr;
use std::ffi::{CString, c_int, c_void};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dpdk_sys as sys;

use crate::RteError;

/// Set by the first `Eal::init`, never cleared.
static INITIALISED: AtomicBool = AtomicBool::new(false);
/// Mempools dropped while some of their mbufs were still in use (and therefore not freed).
static LEAKED_POOLS: AtomicUsize = AtomicUsize::new(0);

/// The runtime directory of the EAL this process started (or tried to start).
static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root), once
/// [`Eal::init`] has run, successfully or not.
pub fn runtime_dir() -> Option<&'static std::path::Path> {
    RUNTIME_DIR.get().map(PathBuf::as_path)
}

/// Note the runtime directory the EAL chose (or would have chosen) in this process.
fn note_runtime_dir() {
    // SAFETY: rte_eal_get_runtime_dir returns a pointer to a static NUL-terminated buffer,
    // valid for the whole process (empty until the EAL has parsed its options).
    let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    if !dir.to_bytes().is_empty() {
        let dir = PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir.to_bytes()),
        );
        let _ = RUNTIME_DIR.set(dir);
    }
}

/// Remove the runtime directory if it is empty (a directory with files in it, as a shared
/// configuration leaves, stays: `remove_dir` refuses it).
fn remove_runtime_dir() {
    if let Some(dir) = runtime_dir() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Records that a mempool was leaked; the EAL will not be cleaned up.
pub(crate) fn note_leaked_pool() {
    LEAKED_POOLS.fetch_add(1, Ordering::Relaxed);
}

/// How many mempools were dropped while their mbufs were still in use and so never freed.
pub fn leaked_pools() -> usize {
    LEAKED_POOLS.load(Ordering::Relaxed)
}

/// A handle to the initialised EAL. Cheap to clone; DPDK is cleaned up when the last clone
/// (including those held inside mempools, ports, rings and launch handles) is dropped.
#[derive(Clone, Debug)]
pub struct Eal {
    _guard: Arc<EalGuard>,
}

#[derive(Debug)]
struct EalGuard;

impl Drop for EalGuard {
    fn drop(&mut self) {
        if leaked_pools() == 0 {
            // SAFETY: this is the last Eal handle, and every DPDK object rte created holds
            // one, so no DPDK call can follow. No leaked pool means no mbuf is outstanding.
            unsafe { sys::rte_eal_cleanup() };
        }
        remove_runtime_dir();
    }
}

impl Eal {
    /// Initialises DPDK with command-line style arguments; `args[0]` is the program name,
    /// as in `argv`. Fails with [`RteError::AlreadyInitialized`] on any call after the first,
    /// whether or not the first succeeded. The calling thread becomes the main lcore.
    ///
    /// The argument strings are leaked on purpose: DPDK does not promise to copy them.
    pub fn init(args: &[String]) -> Result<Eal, RteError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(RteError::AlreadyInitialized);
        }
        let mut argv = Vec::with_capacity(args.len() + 1);
        for arg in args {
            let arg = CString::new(arg.as_str()).map_err(|_| {
                RteError::InvalidArgument(format!("EAL argument {arg:?} contains a NUL byte"))
            })?;
            argv.push(arg.into_raw());
        }
        let argc = c_int::try_from(argv.len())
            .map_err(|_| RteError::InvalidArgument("too many EAL arguments".into()))?;
        argv.push(std::ptr::null_mut());
        let argv = argv.leak();
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked
        // so they outlive any pointer DPDK keeps; the static flag makes this the only call.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        note_runtime_dir();
        if ret < 0 {
            let err = RteError::last("rte_eal_init");
            remove_runtime_dir();
            return Err(err);
        }
        Ok(Eal {
            _guard: Arc::new(EalGuard),
        })
    }

    /// The main lcore: the thread that called [`Eal::init`].
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: reads EAL configuration, valid after init (which `self` proves).
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Enabled lcores other than the main one, ascending.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut workers = Vec::new();
        let mut lcore = u32::MAX; // rte_get_next_lcore starts from i + 1, wrapping -1 to 0.
        loop {
            // SAFETY: as for main_lcore; skip_main = 1, wrap = 0, so it returns
            // RTE_MAX_LCORE once past the last enabled lcore.
            lcore = unsafe { sys::rte_get_next_lcore(lcore, 1, 0) };
            if lcore >= sys::RTE_MAX_LCORE {
                return workers;
            }
            workers.push(lcore);
        }
    }

    /// TSC cycles per second.
    pub fn tsc_hz(&self) -> u64 {
        crate::tsc_hz()
    }

    /// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`) and returns a handle to
    /// join it. Must be called on the main lcore; the lcore must be an enabled worker that
    /// is idle (`Busy` otherwise). Under `panic = "unwind"` a panic in `f` is caught and
    /// returned by `join`; under `panic = "abort"` (ctfw's release profile) it aborts the
    /// process.
    pub fn launch<F, T>(&self, lcore: u32, f: F) -> Result<LaunchHandle<T>, RteError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if crate::lcore_id() != Some(self.main_lcore()) {
            return Err(RteError::NotMainLcore("Eal::launch"));
        }
        self.check_lcore(lcore)?;
        if lcore == self.main_lcore() {
            return Err(RteError::InvalidArgument(format!(
                "lcore {lcore} is the main lcore; launch on a worker"
            )));
        }
        let slot = Box::new(Slot::<T> {
            f: Some(Box::new(f)),
            result: None,
        });
        let slot = NonNull::from(Box::leak(slot));
        // SAFETY: trampoline::<T> expects exactly a *mut Slot<T>; the slot stays allocated
        // until the handle has waited for the lcore (join or Drop). lcore is an enabled
        // worker and we are on the main lcore, as remote_launch requires.
        let ret = unsafe {
            sys::rte_eal_remote_launch(Some(trampoline::<T>), slot.as_ptr().cast(), lcore)
        };
        if ret != 0 {
            // SAFETY: the launch failed, so the worker never saw the pointer: we own it again.
            drop(unsafe { Box::from_raw(slot.as_ptr()) });
            return Err(match -ret {
                EBUSY => RteError::Busy(format!("lcore {lcore} is already running a function")),
                errno => RteError::errno("rte_eal_remote_launch", errno),
            });
        }
        Ok(LaunchHandle {
            lcore,
            slot: Some(slot),
            _eal: self.clone(),
            _main_only: PhantomData,
        })
    }

    fn check_lcore(&self, lcore: u32) -> Result<(), RteError> {
        // SAFETY: rte_lcore_is_enabled accepts any id and returns false past RTE_MAX_LCORE.
        if lcore < sys::RTE_MAX_LCORE && unsafe { sys::rte_lcore_is_enabled(lcore) } != 0 {
            Ok(())
        } else {
            Err(RteError::InvalidArgument(format!(
                "lcore {lcore} is not enabled in the EAL"
            )))
        }
    }
}

/// errno EBUSY (Linux), returned by rte_eal_remote_launch for a busy lcore.
const EBUSY: i32 = 16;

/// The closure and its result, shared between the main lcore and the worker.
struct Slot<T> {
    f: Option<Box<dyn FnOnce() -> T + Send>>,
    result: Option<std::thread::Result<T>>,
}

/// Runs on the worker lcore: takes the closure out of the slot, runs it, stores the result.
unsafe extern "C" fn trampoline<T>(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the *mut Slot<T> that launch() passed; the main lcore does not touch the
    // slot until rte_eal_wait_lcore reports this function returned (the lcore state change
    // is a release/acquire pair in DPDK), so this is the only reference.
    let slot = unsafe { &mut *arg.cast::<Slot<T>>() };
    if let Some(f) = slot.f.take() {
        // Under panic = "unwind", a panic unwinding out of this extern "C" fn would abort the
        // process inside DPDK; catch it and hand it to join() instead. Under panic = "abort"
        // the process aborts at the panic and this never returns Err.
        slot.result = Some(catch_unwind(AssertUnwindSafe(f)));
    }
    0
}

/// A closure running on a worker lcore. [`join`](LaunchHandle::join) waits for its result;
/// dropping the handle also waits (the closure's slot must outlive it). The handle stays on
/// the main lcore (it is not `Send`) because `rte_eal_wait_lcore` must be called there.
#[derive(Debug)]
pub struct LaunchHandle<T> {
    lcore: u32,
    slot: Option<NonNull<Slot<T>>>,
    _eal: Eal,
    _main_only: PhantomData<*const ()>,
}

impl<T> LaunchHandle<T> {
    /// Waits for the closure and returns its value, or the panic payload if it panicked
    /// (possible only under `panic = "unwind"`; under `panic = "abort"` a panic has already
    /// aborted the process).
    pub fn join(mut self) -> std::thread::Result<T> {
        match self.wait() {
            Some(mut slot) => slot
                .result
                .take()
                .unwrap_or_else(|| Err(Box::new("the lcore function did not run its closure"))),
            None => Err(Box::new("the lcore function was already joined")),
        }
    }

    /// Waits for the worker, then takes back ownership of the slot.
    fn wait(&mut self) -> Option<Box<Slot<T>>> {
        let slot = self.slot.take()?;
        // SAFETY: we are on the main lcore (the handle is !Send and was created there);
        // lcore is the enabled worker the closure was launched on.
        unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        // SAFETY: the worker has returned from trampoline, so nothing else refers to the
        // slot; it came from Box::leak in launch().
        Some(unsafe { Box::from_raw(slot.as_ptr()) })
    }
}

impl<T> Drop for LaunchHandle<T> {
    fn drop(&mut self) {
        drop(self.wait());
    }
}
