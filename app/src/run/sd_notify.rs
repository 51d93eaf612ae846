//! systemd's readiness protocol (`sd_notify(3)`), without libsystemd: one datagram of
//! `KEY=VALUE` lines to the Unix socket named by `$NOTIFY_SOCKET`.
//!
//! `deploy/ctfw.service` is `Type=notify`: systemd considers ctfw started when it says
//! `READY=1`, which `ctfw run` does once its ports are started and its workers forward, so
//! units ordered after it (and `systemctl start`) wait for a firewall that really passes
//! traffic, and a start-up that fails (a device missing, hugepages short) fails the start job
//! instead of looking started. Outside systemd the variable is unset and nothing is sent.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (e.g. `"READY=1"`) to the service manager. `Ok(false)` when there is none
/// (`$NOTIFY_SOCKET` unset or empty).
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET).filter(|s| !s.is_empty()) {
        Some(target) => send(&target, state).map(|()| true),
        None => Ok(false),
    }
}

/// Sends `state` to the socket `target` names: a path, or `@name` in the abstract namespace
/// (systemd uses one for services whose file system it sandboxes).
fn send(target: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match target.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            let addr = SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_path_and_an_abstract_name_both_receive_the_state() {
        let dir = std::env::temp_dir().join(format!("ctfw-sd-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        send(path.as_os_str(), "READY=1").expect("send to a path");
        assert_eq!(received(&listener), "READY=1");

        let name = format!("ctfw-sd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        send(OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send to @name");
        assert_eq!(received(&listener), "STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
