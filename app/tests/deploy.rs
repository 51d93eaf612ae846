//! The deployment files in `deploy/`: the systemd unit verifies, `ctfw run` speaks systemd's
//! readiness protocol the unit relies on (`Type=notify`), and the example configuration loads.
//!
//! Needs `systemd-analyze` (Debian package `systemd`; `ci/common.sh` installs it). Its absence
//! fails the test, saying what to install: nothing is skipped.

mod common;

use common::{ctfw, root, text, tmp};

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = "deploy/ctfw.service";
/// Where the unit expects the binary (and where docs/operations.md installs it).
const INSTALLED: &str = "/usr/local/bin/ctfw";

/// `systemd-analyze verify` on the unit as shipped, except that the binary it runs is the one
/// this test built: verify checks that every command exists and is executable, and the test
/// must not install anything. Any complaint fails the test, not only a non-zero exit
/// (systemd-analyze exits 0 after "Unknown key ..., ignoring").
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join(UNIT)).expect("deploy/ctfw.service");
    for line in [
        "Type=notify",
        "ExecStart=/usr/local/bin/ctfw run --config /etc/ctfw/ctfw.yaml",
        "RuntimeDirectory=ctfw",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "{UNIT} lacks {line:?}");
    }
    assert!(unit.contains(INSTALLED));
    let dir = tmp("unit");
    // The unit's name is the file's: it must stay ctfw.service.
    let copy = dir.join("ctfw.service");
    std::fs::write(&copy, unit.replace(INSTALLED, env!("CARGO_BIN_EXE_ctfw"))).expect("copy");
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}): install the Debian package `systemd` \
             (ci/common.sh does: ensure_deploy_test_deps)"
        ),
    };
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {UNIT}: {}\n{said}",
        out.status
    );
}

/// What the unit's `Type=notify` relies on: `ctfw run` sends READY=1 to `$NOTIFY_SOCKET` once
/// it forwards, and STOPPING=1 when SIGTERM stops it; then it exits 0.
#[test]
fn run_tells_the_service_manager_when_it_is_ready_and_when_it_stops() {
    let dir = tmp("notify");
    let cfg = dir.join("ctfw.yaml");
    let socket = dir.join("control.sock");
    std::fs::write(
        &cfg,
        format!(
            "ports:\n  - {{name: a, device: net_null0, peer: b}}\n  \
             - {{name: b, device: net_null1, peer: a}}\n\
             dataplane: {{hugepages: off}}\ncontrol: {{socket: {}}}\n",
            socket.display()
        ),
    )
    .expect("config");
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let child = Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args(["run", "--config", cfg.to_str().expect("utf8")])
        .env("NOTIFY_SOCKET", &notify_path)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctfw run");
    let started = Instant::now();
    let first = recv(&notify);
    let ready_after = started.elapsed();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let second = recv(&notify);
    let out = child.wait_with_output().expect("wait");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(first.as_deref(), Some("READY=1"), "{stdout}\n{stderr}");
    assert_eq!(second.as_deref(), Some("STOPPING=1"), "{stdout}\n{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // READY=1 comes after the start-up report, which follows the ports' start.
    assert!(stdout.contains("ctfw run:"), "{stdout}");
    println!("READY=1 after {ready_after:?}");
}

fn recv(sock: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The example configuration the unit's instructions install loads as it is.
#[test]
fn the_example_configuration_loads() {
    let out = ctfw(&["check-config", "deploy/ctfw.yaml"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let tmpfiles = std::fs::read_to_string(root().join("deploy/tmpfiles.conf")).expect("tmpfiles");
    assert!(tmpfiles.lines().any(|l| l.starts_with("d /run/dpdk ")));
}
