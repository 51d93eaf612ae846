//! Helpers shared by the end-to-end tests: run the real `ctfw` binary from the repository root,
//! read its output, make scratch directories.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

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
