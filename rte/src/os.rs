//! Linux calls ctfw needs beside DPDK that the standard library does not offer at ctfw's
//! minimum Rust version: huge-page advice for memory that is not DPDK's (the connection
//! tables), advisory locks on files (one per device an instance drives), and the range of
//! real-time signals.
//!
//! None of them can break what Rust assumes about memory: `madvise(MADV_HUGEPAGE)` changes
//! how the kernel backs pages, never what they hold, and `flock` acts on a descriptor that the
//! caller's [`File`] keeps open.

use std::fs::File;
use std::io;
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;

/// Ask the kernel to back the whole pages of `len` bytes at `addr` with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`). Best done before the memory is first written: pages
/// faulted in afterwards come as huge pages where the range covers an aligned 2 MiB block;
/// pages already present are left to `khugepaged`. Whether it has an effect depends on the
/// kernel's mode (`/sys/kernel/mm/transparent_hugepage/enabled`: `always` or `madvise`, not
/// `never`). Partial pages at either end are left out; a range with no whole page is a no-op.
/// Fails with `EINVAL` on a kernel built without transparent huge pages, and with `ENOMEM`
/// if part of the range is not mapped.
pub fn advise_huge_pages(addr: usize, len: usize) -> io::Result<()> {
    let page = page_size();
    let start = addr.next_multiple_of(page);
    let end = addr.saturating_add(len) / page * page;
    if end <= start {
        return Ok(());
    }
    // SAFETY: MADV_HUGEPAGE only sets a flag on the mappings in [start, end) that changes how
    // the kernel backs their pages; it never changes their contents or their mapping, so no
    // memory Rust can observe changes, whoever owns the range.
    let ret =
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The size of a base page.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// How a lock is held: by one holder only, or shared by any number of shared holders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// One holder (`LOCK_EX`): for something only one process may use.
    Exclusive,
    /// Any number of shared holders but no exclusive one (`LOCK_SH`): for something several
    /// processes may read while none writes.
    Shared,
}

/// Take an advisory lock on `file` without waiting (`flock(LOCK_NB)`): `Ok(true)` if taken,
/// `Ok(false)` if another open file description holds a conflicting lock (another process,
/// or another `File` of this one). The lock lasts until every descriptor of this open file
/// is closed: when the [`File`] drops, or when the process ends or executes another program
/// (std opens files close-on-exec), however it ends.
pub fn try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    let op = match mode {
        LockMode::Exclusive => libc::LOCK_EX,
        LockMode::Shared => libc::LOCK_SH,
    };
    loop {
        // SAFETY: the descriptor belongs to `file`, open for the duration of the call; flock
        // reads and writes no memory of ours.
        let ret = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if ret == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(false),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}

/// Linux signals that `signal-hook` does not name (both end a process by default): power
/// failure, and the coprocessor stack fault no modern kernel raises.
pub use libc::{SIGPWR, SIGSTKFLT};

/// The real-time signals a program may use (`SIGRTMIN..=SIGRTMAX`, as the C library reports
/// them: glibc keeps the first few for itself).
pub fn realtime_signals() -> RangeInclusive<i32> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_page_advice_on_a_heap_block_and_on_nothing() {
        let v: Vec<u8> = Vec::with_capacity(8 << 20);
        // EINVAL only where the kernel lacks transparent huge pages.
        match advise_huge_pages(v.as_ptr().addr(), v.capacity()) {
            Ok(()) => {}
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}"),
        }
        advise_huge_pages(v.as_ptr().addr() + 1, 10).expect("no whole page: nothing to do");
    }

    #[test]
    fn a_second_exclusive_lock_is_refused_until_the_first_is_dropped() {
        let path = std::env::temp_dir().join(format!("rte-os-lock-{}", std::process::id()));
        let open = || {
            File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .expect("lock file")
        };
        let (a, b) = (open(), open());
        assert!(try_lock(&a, LockMode::Exclusive).expect("flock"));
        assert!(!try_lock(&b, LockMode::Shared).expect("flock"));
        drop(a);
        assert!(try_lock(&b, LockMode::Shared).expect("flock"));
        let c = open();
        assert!(try_lock(&c, LockMode::Shared).expect("two readers"));
        assert!(!try_lock(&open(), LockMode::Exclusive).expect("flock"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn realtime_signals_are_past_the_classic_ones() {
        let r = realtime_signals();
        assert!(*r.start() > libc::SIGSYS && r.start() < r.end(), "{r:?}");
    }
}
