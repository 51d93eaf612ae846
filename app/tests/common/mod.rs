//! Helpers shared by the end-to-end tests: run the real `ctfw` binary from the repository root,
//! read its output, make scratch directories.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The repository root (tests run `ctfw` from there, as the README does).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run `ctfw` with `args` from the repository root and wait for it.
pub fn ctfw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("spawn ctfw")
}

/// Whether ctfw's output shows DPDK 22.11's `net_af_packet` failing to join its
/// PACKET_FANOUT group. The driver names the group `(pid ^ ifindex) & 0xffff` (its probe,
/// `rte_pmd_init_internals`), and the kernel lets sockets of different interfaces join no
/// common group: two processes whose names collide, each on its own veths (tests running at
/// once), cannot both start, and the second fails at probe. Another process has another pid,
/// so a test starts ctfw again, at most [`AF_PACKET_ATTEMPTS`] times.
pub fn af_packet_fanout_collided(output: &str) -> bool {
    output.contains("could not set PACKET_FANOUT")
}

/// Attempts at starting `ctfw run` on `net_af_packet` ports ([`af_packet_fanout_collided`]).
pub const AF_PACKET_ATTEMPTS: usize = 3;

/// Start `ctfw run` as `command()` makes it, with its stdout and stderr in `dir` (files
/// `stdout` and `stderr`) and `NOTIFY_SOCKET` on a socket in `dir`, and return it once it
/// said READY=1. Panics, with its output, if it ends first or says nothing for a minute;
/// starts it again when it ended on a fanout collision ([`af_packet_fanout_collided`]).
pub fn spawn_until_ready(dir: &Path, mut command: impl FnMut() -> Command) -> Child {
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let output = || {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            read("stdout"),
            read("stderr")
        )
    };
    for attempt in 1..=AF_PACKET_ATTEMPTS {
        let mut child = command()
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout"))
            .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr"))
            .spawn()
            .expect("spawn ctfw run");
        let end = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 64];
        loop {
            match notify.recv(&mut buf) {
                Ok(n) if &buf[..n] == b"READY=1" => return child,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                    let Some(status) = child.try_wait().expect("try_wait") else {
                        continue;
                    };
                    if attempt < AF_PACKET_ATTEMPTS && af_packet_fanout_collided(&output()) {
                        break;
                    }
                    panic!("ctfw run ended before READY=1 ({status}):\n{}", output());
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ctfw run did not say READY=1 ({e}):\n{}", output());
                }
            }
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Panic unless this runs as root with every `(tool, Debian package)` on the PATH. `makes`
/// says what the test needs root for ("network namespaces and veth pairs").
pub fn require_root(makes: &str, tools: &[(&str, &str)]) {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        text(&uid.stdout).trim(),
        "0",
        "this test makes {makes}: run it as root (CI does)"
    );
    for (tool, package) in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} not found: install the Debian package {package} (ci/common.sh installs the \
             test dependencies)"
        );
    }
}

/// A running `ctfw run` (or helper process); killed if the test ends without stopping it.
pub struct Running(pub Option<Child>);

impl Running {
    /// The process, while it runs.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// SIGTERM, then its output.
    pub fn stop(mut self) -> Output {
        let child = self.0.take().expect("running");
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh, empty scratch directory for this test process and `name`.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctfw-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// Run `args` (program first) to completion; panic with its output unless it succeeds.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Run `args` inside the network namespace `ns` (`ip netns exec`), as [`sh`] does.
pub fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    sh(&all)
}
