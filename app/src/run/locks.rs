//! One instance per device: advisory locks that keep a second `ctfw run` off the devices and
//! capture files a running one drives, where both would start and overwrite each other's
//! frames (a `tx_pcap` file truncated under the first instance, two pollers on one interface
//! or PCI function).
//!
//! Each port's device string gives the identities it uses ([`identities`]):
//! - a PCI device: its full address (`0000:03:00.0`);
//! - an interface, `iface=`, `rx_iface=`, `rx_iface_in=`, `tx_iface=` (`net_af_packet`,
//!   `net_af_xdp`, `net_tap`, `net_pcap`): its name within this process's network namespace
//!   (the same name in another namespace is another interface);
//! - a file, `tx_pcap=` (written) and `path=` (a vhost or virtio-user socket): its canonical
//!   path; `rx_pcap=` (read): the same, but shared, so several instances may read one capture
//!   while none writes it. Character devices (`/dev/null` as a sink) are not locked.
//!
//! Other devices (`net_null`, `net_ring`, ...) exist only inside their process: nothing to
//! lock. Each identity is a file in [`lock_dir`] locked with `flock`, taken before the EAL
//! starts (the EAL probes the devices: a `tx_pcap` file is truncated then). The kernel
//! releases a lock when its holder ends, however it ends, so a crash never leaves a device
//! locked. At exit the holder removes its lock files while still holding them, and a starting
//! instance removes those that nobody holds (left by a killed one); a taker checks, once it
//! holds a lock, that its file is still the one at the path: a lock file removed meanwhile is
//! taken afresh, so two instances never hold "the same" lock on different files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ctfw_config::Config;
use rte::os::LockMode;

use super::eal;

/// Keys of a device string that name a network interface.
const IFACE_KEYS: [&str; 4] = ["iface", "rx_iface", "rx_iface_in", "tx_iface"];

/// Something only one instance may drive (or, shared, only read).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    /// What it is and which one, as the lock file is named: `pci-0000:03:00.0`,
    /// `iface-4026531840-eth0`, `file-/srv/out.pcap`.
    pub key: String,
    /// What the operator wrote, for messages: `tx_pcap file /srv/out.pcap`.
    pub what: String,
}

/// The identities `device` (a port's device string) uses, each with how it is used.
/// `netns` names this process's network namespace; relative paths are resolved from the
/// current directory, as the EAL resolves them.
pub fn identities(device: &str, netns: &str) -> Vec<(Identity, LockMode)> {
    let mut out = Vec::new();
    if eal::is_pci(device) {
        let addr = eal::ethdev_name(device);
        out.push((
            Identity {
                key: format!("pci-{addr}"),
                what: format!("PCI device {addr}"),
            },
            LockMode::Exclusive,
        ));
        return out;
    }
    for kv in device.split(',').skip(1) {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if v.is_empty() {
            continue;
        }
        if IFACE_KEYS.contains(&k) {
            out.push((
                Identity {
                    key: format!("iface-{netns}-{v}"),
                    what: format!("interface {v}"),
                },
                LockMode::Exclusive,
            ));
        } else if let Some(mode) = match k {
            "tx_pcap" | "path" => Some(LockMode::Exclusive),
            "rx_pcap" => Some(LockMode::Shared),
            _ => None,
        } {
            let path = canonical(Path::new(v));
            // A character device (`tx_pcap=/dev/null`, a sink) takes any number of writers.
            if std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_char_device()) {
                continue;
            }
            out.push((
                Identity {
                    key: format!("file-{}", path.display()),
                    what: format!("{k} file {}", path.display()),
                },
                mode,
            ));
        }
    }
    out
}

/// `path` made absolute and canonical as far as it exists: the file itself, else its
/// directory (a `tx_pcap` file may not exist yet), else lexically.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs),
        _ => abs,
    }
}

/// This process's network namespace: the inode number of `/proc/self/ns/net`.
fn netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| {
            let l = l.to_string_lossy().into_owned();
            let (_, rest) = l.split_once('[')?;
            Some(rest.trim_end_matches(']').to_owned())
        })
        .unwrap_or_else(|| "0".into())
}

/// Where the lock files are: `/run/ctfw/locks` for root (as every instance on the machine
/// must see the same files), else `$XDG_RUNTIME_DIR/ctfw/locks`, else
/// `/tmp/ctfw-<uid>/locks`.
pub fn lock_dir() -> PathBuf {
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    if uid == 0 {
        return PathBuf::from("/run/ctfw/locks");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("ctfw/locks"),
        _ => PathBuf::from(format!("/tmp/ctfw-{uid}/locks")),
    }
}

/// The locks this instance holds; released (and their files removed) when dropped.
#[derive(Debug)]
pub struct Locks {
    held: Vec<(PathBuf, File)>,
}

impl Drop for Locks {
    fn drop(&mut self) {
        // Remove each file while its lock is still held (see the module documentation).
        for (path, file) in self.held.drain(..) {
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

/// Lock every device of `cfg`'s ports, or refuse with the port, the device and the process
/// that holds it.
pub fn take(cfg: &Config) -> Result<Locks> {
    let ns = netns();
    // One lock per identity, the strongest use of it across ports; the first port that uses
    // it names it in messages.
    let mut wanted: BTreeMap<Identity, (LockMode, String, String)> = BTreeMap::new();
    for p in &cfg.ports {
        for (id, mode) in identities(&p.device, &ns) {
            let e = wanted
                .entry(id)
                .or_insert((mode, p.name.clone(), p.device.clone()));
            if mode == LockMode::Exclusive {
                e.0 = mode;
            }
        }
    }
    let mut locks = Locks { held: Vec::new() };
    if wanted.is_empty() {
        return Ok(locks);
    }
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create {}, where ctfw locks the devices it drives",
            dir.display()
        )
    })?;
    remove_stale(&dir);
    for (id, (mode, port, device)) in wanted {
        let path = dir.join(file_name(&id.key));
        match lock(
            &path,
            mode,
            &format!("{} port {port}: {device}", std::process::id()),
        )? {
            Some(file) => locks.held.push((path, file)),
            None => {
                let holder = holder(&path);
                bail!(
                    "port {port}: device {device:?}: the {} is in use by another ctfw \
                     instance{holder}; two instances on one device would overwrite each other's \
                     frames: stop the other instance, or give this one other devices \
                     (lock file {})",
                    id.what,
                    path.display()
                );
            }
        }
    }
    Ok(locks)
}

/// Remove the lock files in `dir` that nobody holds: those an instance left when it was
/// killed (the kernel released its locks, but only a clean exit removes the files). Each is
/// locked first, so a file in use stays; one removed here under a taker that opened it just
/// before is noticed by that taker, which takes the lock afresh ([`lock`]).
fn remove_stale(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(file) = File::options().read(true).write(true).open(&path) else {
            continue;
        };
        if rte::os::try_lock(&file, LockMode::Exclusive).unwrap_or(false) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Take the lock at `path` in `mode` and write `note` (our pid first) into it if exclusive:
/// `None` if another process holds it.
fn lock(path: &Path, mode: LockMode, note: &str) -> Result<Option<File>> {
    loop {
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        if !rte::os::try_lock(&file, mode)
            .with_context(|| format!("cannot lock {}", path.display()))?
        {
            return Ok(None);
        }
        // Still the file at the path? (Its holder may have removed it before we locked it.)
        let same = std::fs::metadata(path)
            .ok()
            .zip(file.metadata().ok())
            .is_some_and(|(p, f)| p.ino() == f.ino() && p.dev() == f.dev());
        if !same {
            continue;
        }
        if mode == LockMode::Exclusive {
            // Who holds it, for the message of an instance refused. (Shared holders leave
            // the file as the last writer left it.)
            file.set_len(0)
                .and_then(|()| file.write_all(format!("{note}\n").as_bytes()))
                .with_context(|| format!("cannot write the lock file {}", path.display()))?;
        }
        return Ok(Some(file));
    }
}

/// ` (pid N, port P: DEVICE)` from the lock file at `path`, if it says.
fn holder(path: &Path) -> String {
    let mut s = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    match s.lines().next().and_then(|l| l.split_once(' ')) {
        Some((pid, what)) if pid.parse::<u32>().is_ok() => format!(" (pid {pid}, {what})"),
        _ => String::new(),
    }
}

/// A lock file name for `key`: bytes other than letters, digits, `.`, `_`, `-` and `:` as
/// `%XX`; a name too long for the file system ends with a hash of the whole key instead.
fn file_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"._-:".contains(&b) {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    const MAX: usize = 200;
    if name.len() > MAX {
        // FNV-1a: stable across runs and builds (every instance must compute the same name).
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut cut = MAX - 17;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str(&format!("-{hash:016x}"));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(device: &str) -> Vec<(String, LockMode)> {
        identities(device, "7")
            .into_iter()
            .map(|(id, m)| (id.key, m))
            .collect()
    }

    #[test]
    fn devices_name_what_they_drive() {
        use LockMode::{Exclusive, Shared};
        assert_eq!(
            keys("03:00.1,rx_queue_size=512"),
            [("pci-0000:03:00.1".to_owned(), Exclusive)]
        );
        assert_eq!(
            keys("net_af_packet0,iface=eth1"),
            [("iface-7-eth1".to_owned(), Exclusive)]
        );
        assert_eq!(
            keys("net_pcap0,rx_iface_in=in0,tx_iface=in0"),
            [
                ("iface-7-in0".to_owned(), Exclusive),
                ("iface-7-in0".to_owned(), Exclusive)
            ]
        );
        let tmp = std::env::temp_dir().join(format!("ctfw-locks-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("tmp");
        let canon = std::fs::canonicalize(&tmp).expect("canonical");
        let dotted = format!("{}/./x.pcap", tmp.display());
        assert_eq!(
            keys(&format!("net_pcap0,rx_pcap={dotted},tx_pcap={dotted}")),
            [
                (format!("file-{}/x.pcap", canon.display()), Shared),
                (format!("file-{}/x.pcap", canon.display()), Exclusive)
            ]
        );
        assert!(keys("net_null0").is_empty());
        assert!(keys("net_pcap0,rx_pcap=x.pcap,tx_pcap=/dev/null").len() == 1);
        assert!(keys("net_ring0,nodeaction=r0:0:CREATE").is_empty());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn lock_file_names_are_flat_and_bounded() {
        assert_eq!(file_name("file-/a b/c.pcap"), "file-%2Fa%20b%2Fc.pcap");
        assert_eq!(file_name("pci-0000:03:00.0"), "pci-0000:03:00.0");
        let long = format!("file-/{}", "d/".repeat(300));
        let n = file_name(&long);
        assert!(n.len() <= 200 && !n.contains('/'), "{n}");
        assert_ne!(n, file_name(&format!("{long}x")));
    }

    #[test]
    fn a_held_lock_refuses_another_and_its_file_goes_at_release() {
        let dir = std::env::temp_dir().join(format!("ctfw-locks-t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("file-x");
        let first = lock(&path, LockMode::Exclusive, "1 port a: d").expect("lock");
        assert!(first.is_some());
        assert!(lock(&path, LockMode::Shared, "2").expect("lock").is_none());
        assert_eq!(holder(&path), format!(" (pid 1, port a: d)"));
        let locks = Locks {
            held: vec![(path.clone(), first.expect("held"))],
        };
        drop(locks);
        assert!(!path.exists());
        // A file nobody holds is stale; one held is not.
        let stale = dir.join("file-stale");
        std::fs::write(&stale, b"1 port a: d\n").expect("stale");
        let held = lock(&dir.join("file-held"), LockMode::Shared, "2").expect("lock");
        remove_stale(&dir);
        assert!(!stale.exists());
        assert!(dir.join("file-held").exists());
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
