//! Real kernel TCP through `ctfw run`: two network namespaces, each joined to the root
//! namespace by a veth pair whose root-side end is a ctfw port (`net_af_packet` or
//! `net_af_xdp`), so that ctfw is a bump in the wire between a real client and a real server.
//!
//! ```text
//!  netns client            root namespace: ctfw run                netns server
//!  10.77.0.1 [veth c] ---- [veth i] port inside -> outside [veth o] ---- [veth s] 10.77.0.2
//! ```
//!
//! Each test makes its own namespaces and veth pairs under names unique to the test run and
//! deletes them when it ends, failed or not ([`Lab`]'s `Drop`); traffic flows only between
//! the two namespaces; every transfer is bounded in size and time. Needs root and `ip`, `ss`,
//! `sysctl`, `ethtool`, `curl`, `iperf3`, `python3` (`ci/common.sh`:
//! `ensure_deploy_test_deps`); a missing one fails the test, naming its Debian package.
//!
//! The namespaces' veth ends have TX checksum offload off (`ethtool -K ... tx off`), as a
//! deployment on local virtual interfaces needs (docs/operations.md): with it on, their frames
//! carry partial checksums that the AF_PACKET/AF_XDP drivers do not report.
//! `partial_checksums_are_named_in_a_warning` keeps it on, to see ctfw say so.

mod common;

use common::{in_ns, require_root, root, sh, spawn_until_ready, text, tmp};

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether the live-connection check runs: `ctfw conntrack list --socket S -p tcp --dport P
/// -o json` must show the iperf3 connection while it is open. On since the control socket and
/// the `conntrack` command are on main: a missing or failing CLI fails the test.
const LIVE_LISTING: bool = true;

const CLIENT_ADDR: &str = "10.77.0.1";
const SERVER_ADDR: &str = "10.77.0.2";
const IPERF_PORT: u16 = 5201;
const HTTP_PORT: u16 = 8080;
/// The file the HTTP test downloads.
const HTTP_BYTES: usize = 4 << 20;

/// One ctfw (a spinning worker) at a time per test process: the machine may have two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Two namespaces and two veth pairs, deleted on drop.
struct Lab {
    client_ns: String,
    server_ns: String,
    /// Root-side ends: ctfw's `inside` and `outside` ports.
    inside: String,
    outside: String,
    /// Namespace-side ends.
    client_if: String,
    server_if: String,
}

impl Lab {
    /// Make the namespaces and pairs; with `offload` false, TX checksum offload is turned off
    /// on all four ends (RX offload too, as on a deployment's peers).
    fn new(offload: bool) -> Lab {
        require_root(
            "network namespaces and veth pairs",
            &[
                ("ip", "iproute2"),
                ("ss", "iproute2"),
                ("sysctl", "procps"),
                ("ethtool", "ethtool"),
                ("curl", "curl"),
                ("iperf3", "iperf3"),
                ("python3", "python3"),
            ],
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 1_000_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            client_ns: format!("ctfw-{tag}-c"),
            server_ns: format!("ctfw-{tag}-s"),
            inside: format!("cw{tag}i"),
            outside: format!("cw{tag}o"),
            client_if: format!("cw{tag}c"),
            server_if: format!("cw{tag}s"),
        };
        for (ns, root_end, ns_end, addr) in [
            (&lab.client_ns, &lab.inside, &lab.client_if, CLIENT_ADDR),
            (&lab.server_ns, &lab.outside, &lab.server_if, SERVER_ADDR),
        ] {
            sh(&["ip", "netns", "add", ns]);
            sh(&[
                "ip", "link", "add", root_end, "type", "veth", "peer", "name", ns_end,
            ]);
            sh(&["ip", "link", "set", ns_end, "netns", ns]);
            // The root namespace must not talk on ctfw's ports itself.
            sh(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{root_end}.disable_ipv6=1"),
            ]);
            sh(&["ip", "link", "set", root_end, "up"]);
            in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            in_ns(
                ns,
                &["ip", "addr", "add", &format!("{addr}/24"), "dev", ns_end],
            );
            in_ns(ns, &["ip", "link", "set", ns_end, "up"]);
            in_ns(ns, &["ip", "link", "set", "lo", "up"]);
            if !offload {
                sh(&["ethtool", "-K", root_end, "rx", "off", "tx", "off"]);
                in_ns(ns, &["ethtool", "-K", ns_end, "rx", "off", "tx", "off"]);
            }
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and so the pairs; the root ends
        // go too, in case a pair was made but not moved.
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for end in [&self.inside, &self.outside] {
            let _ = Command::new("ip").args(["link", "del", end]).output();
        }
    }
}

/// Child processes killed (SIGKILL) on drop, before the lab goes.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    fn spawn(&mut self, cmd: &mut Command) -> usize {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        self.0.push(child);
        self.0.len() - 1
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ns_command(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// A running `ctfw run` between the lab's two root-side ends.
struct Firewall {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Firewall {
    /// Start ctfw with `device` ("net_af_packet" or "net_af_xdp") ports and the classic
    /// policy (new connections from the client's side only); returns once it said READY=1.
    fn start(lab: &Lab, device: &str, name: &str) -> Firewall {
        let dir = tmp(name);
        let socket = dir.join("ctfw.sock");
        let cfg = dir.join("ctfw.yaml");
        std::fs::write(
            &cfg,
            format!(
                "ports:\n\
                 \x20 - {{name: inside, device: \"{device}0,iface={i}\", peer: outside}}\n\
                 \x20 - {{name: outside, device: \"{device}1,iface={o}\", peer: inside}}\n\
                 dataplane: {{workers: 1, hugepages: off}}\n\
                 control: {{socket: {s}}}\n\
                 non_ip: forward\n\
                 policy: drop\n\
                 rules:\n\
                 \x20 - {{name: new_not_syn_drop, proto: tcp, syn: false, ct_state: [new], action: drop}}\n\
                 \x20 - {{name: estrel_accept, ct_state: [established, related], action: accept}}\n\
                 \x20 - {{name: new_out_accept, ct_state: [new], in_port: inside, action: accept}}\n\
                 \x20 - {{name: invalid_drop, ct_state: [invalid], action: drop}}\n",
                i = lab.inside,
                o = lab.outside,
                s = socket.display(),
            ),
        )
        .expect("config");
        let report = dir.join("report.json");
        let child = spawn_until_ready(&dir, || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_ctfw"));
            c.args(["run", "--config"])
                .arg(&cfg)
                .arg("--report-json")
                .arg(&report)
                .current_dir(root());
            c
        });
        Firewall { child, dir, socket }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// SIGTERM, wait (at most 30 s), and the JSON report.
    fn stop(mut self) -> Value {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let status = wait_for(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("ctfw did not stop on SIGTERM:\n{}", self.stderr()));
        assert!(
            status.success(),
            "ctfw run: {status}\n{}\n{}",
            self.stdout(),
            self.stderr()
        );
        let body = std::fs::read_to_string(self.dir.join("report.json")).expect("the report");
        serde_json::from_str(&body).expect("the JSON report parses")
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        // Only reached with the child still running when a test fails.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Wait for `child` at most `limit`; `None` (and the child killed) if it is still running.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until something listens on `port` in `ns` (at most 10 s).
fn wait_listening(ns: &str, port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let out = ns_command(ns, &["ss", "-Hltn", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        if !text(&out.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port} in {ns}");
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every INVALID reason with a non-zero count.
fn invalid(report: &Value) -> Vec<(String, u64)> {
    report["counters"]["invalid_by_reason"]
        .as_object()
        .expect("invalid_by_reason")
        .iter()
        .map(|(k, v)| (k.clone(), count(v)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Whether `v` holds, anywhere, a TCP conntrack entry of `state` to `port` of the server.
fn lists(v: &Value, port: u16, state: &str) -> bool {
    match v {
        Value::Object(o) => {
            (o.get("proto").and_then(Value::as_str) == Some("tcp")
                && o.get("dport").and_then(Value::as_u64) == Some(u64::from(port))
                && o.get("dst").and_then(Value::as_str) == Some(SERVER_ADDR)
                && o.get("state").and_then(Value::as_str) == Some(state))
                || o.values().any(|x| lists(x, port, state))
        }
        Value::Array(a) => a.iter().any(|x| lists(x, port, state)),
        _ => false,
    }
}

/// `ctfw conntrack list` on the running firewall shows an ESTABLISHED connection to `port`.
/// Runs only with [`LIVE_LISTING`]; says so otherwise.
fn assert_listed_live(fw: &Firewall, port: u16) {
    if !LIVE_LISTING {
        println!(
            "live listing not checked: LIVE_LISTING is off until `ctfw conntrack list` is on main"
        );
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ctfw"))
        .args(["conntrack", "list", "--socket"])
        .arg(&fw.socket)
        .args(["-p", "tcp", "--dport", &port.to_string(), "-o", "json"])
        .output()
        .expect("spawn ctfw conntrack list");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "ctfw conntrack list: {}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    // One JSON object per entry, one per line.
    let listing = Value::Array(
        stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("ctfw conntrack list -o json: {e}\n{stdout}"))
            })
            .collect(),
    );
    assert!(
        lists(&listing, port, "ESTABLISHED"),
        "no ESTABLISHED tcp connection to {SERVER_ADDR}:{port} in the live listing:\n{stdout}"
    );
}

/// iperf3 for 3 s at 100 Mbit/s (about 37 MB) and a 4 MiB HTTP download with curl, through
/// ctfw on `device` ports: both complete, ctfw forwarded their packets and found none INVALID,
/// and its table held the connections.
fn real_tcp_through(device: &str) {
    let _serial = serial();
    let lab = Lab::new(false);
    let mut kids = Children::default();
    let fw = Firewall::start(&lab, device, &format!("netns-{device}"));

    // iperf3: a long-lived connection, listed while open.
    kids.spawn(
        ns_command(
            &lab.server_ns,
            &[
                "iperf3",
                "-s",
                "-1",
                "-B",
                SERVER_ADDR,
                "-p",
                &IPERF_PORT.to_string(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null()),
    );
    wait_listening(&lab.server_ns, IPERF_PORT);
    let client = kids.spawn(
        ns_command(
            &lab.client_ns,
            &[
                "iperf3",
                "-c",
                SERVER_ADDR,
                "-p",
                &IPERF_PORT.to_string(),
                "-t",
                "3",
                "-b",
                "100M",
                "-J",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_listed_live(&fw, IPERF_PORT);
    let status = wait_for(&mut kids.0[client], Duration::from_secs(20)).expect("iperf3 ends");
    let mut json = String::new();
    if let Some(out) = kids.0[client].stdout.as_mut() {
        out.read_to_string(&mut json).expect("iperf3 output");
    }
    assert!(status.success(), "iperf3 -c: {status}\n{json}");
    let result: Value = serde_json::from_str(&json).expect("iperf3 -J");
    let received = result["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        received > 1_000_000,
        "iperf3 moved {received} bytes:\n{json}"
    );

    // HTTP: a real server and client, the content compared.
    let www = fw.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    let body: Vec<u8> = (0..HTTP_BYTES).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(www.join("blob"), &body).expect("blob");
    kids.spawn(
        ns_command(
            &lab.server_ns,
            &[
                "python3",
                "-m",
                "http.server",
                &HTTP_PORT.to_string(),
                "--bind",
                SERVER_ADDR,
                "--directory",
                www.to_str().expect("utf8"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null()),
    );
    wait_listening(&lab.server_ns, HTTP_PORT);
    let got = fw.dir.join("got");
    let curl = ns_command(
        &lab.client_ns,
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-o",
            got.to_str().expect("utf8"),
            &format!("http://{SERVER_ADDR}:{HTTP_PORT}/blob"),
        ],
    )
    .output()
    .expect("curl");
    assert!(curl.status.success(), "curl: {}", text(&curl.stderr));
    assert!(
        std::fs::read(&got).expect("downloaded") == body,
        "the download differs"
    );

    drop(kids);
    let stderr = fw.stderr();
    let report = fw.stop();
    let counters = &report["counters"];
    let packets = count(&counters["packets"]);
    println!(
        "{device}: {packets} packets, {} bytes, {} accepted; iperf3 received {received} bytes",
        count(&counters["bytes"]),
        count(&counters["accepted"])
    );
    assert!(packets > 2_000, "{report}");
    assert_eq!(invalid(&report), [], "INVALID packets: {report}");
    assert_eq!(report["mbufs_leaked"], false, "{report}");
    for port in [IPERF_PORT, HTTP_PORT] {
        let tracked = ["TIME_WAIT", "CLOSE", "FIN_WAIT", "LAST_ACK", "CLOSE_WAIT"]
            .iter()
            .any(|s| lists(&report["table"], port, s));
        assert!(
            tracked,
            "no closed connection to port {port} in the table: {report}"
        );
    }
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn real_tcp_through_af_packet_ports() {
    real_tcp_through("net_af_packet");
}

#[test]
fn real_tcp_through_af_xdp_ports() {
    real_tcp_through("net_af_xdp");
}

/// With checksum offload on at the namespaces' ends, every TCP packet reaches ctfw with a
/// partial checksum that the AF_PACKET driver does not report: INVALID (`tcp_bad_checksum`),
/// and nothing connects. ctfw must say so, naming the port and the fix; and the fix it names
/// (TX offload off on the sender) must work.
#[test]
fn partial_checksums_are_named_in_a_warning() {
    let _serial = serial();
    let lab = Lab::new(true);
    let mut kids = Children::default();
    let fw = Firewall::start(&lab, "net_af_packet", "netns-partial");
    let www = fw.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("hello"), b"hello\n").expect("file");
    kids.spawn(
        ns_command(
            &lab.server_ns,
            &[
                "python3",
                "-m",
                "http.server",
                &HTTP_PORT.to_string(),
                "--bind",
                SERVER_ADDR,
                "--directory",
                www.to_str().expect("utf8"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null()),
    );
    wait_listening(&lab.server_ns, HTTP_PORT);
    let url = format!("http://{SERVER_ADDR}:{HTTP_PORT}/hello");
    let fetch = |timeout: &str| {
        ns_command(
            &lab.client_ns,
            &["curl", "-sS", "--fail", "--connect-timeout", timeout, &url],
        )
        .output()
        .expect("curl")
    };
    // Four clients, two SYNs each (the first retransmission comes after 1 s): more than the
    // watch's minimum of bad checksums within its window.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            ns_command(
                &lab.client_ns,
                &["curl", "-sS", "--fail", "--connect-timeout", "1.5", &url],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl")
        })
        .collect();
    for mut h in handles {
        let status = wait_for(&mut h, Duration::from_secs(10)).expect("curl ends");
        assert!(
            !status.success(),
            "a connection opened despite partial checksums"
        );
    }
    let end = Instant::now() + Duration::from_secs(10);
    let warning = loop {
        let stderr = fw.stderr();
        if let Some(line) = stderr
            .lines()
            .find(|l| l.contains("WARN") && l.contains("port inside"))
        {
            break line.to_owned();
        }
        assert!(
            Instant::now() < end,
            "no warning naming port inside:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let iface = format!("iface={}", lab.inside);
    for part in [
        iface.as_str(),
        "tcp_bad_checksum",
        "net_af_packet driver does not report partial checksums",
        "ethtool -K IFACE tx off",
    ] {
        assert!(warning.contains(part), "{part:?} not in: {warning}");
    }

    // The fix the warning names: TX checksum offload off where the frames are sent.
    in_ns(
        &lab.client_ns,
        &["ethtool", "-K", &lab.client_if, "tx", "off"],
    );
    in_ns(
        &lab.server_ns,
        &["ethtool", "-K", &lab.server_if, "tx", "off"],
    );
    let fixed = fetch("5");
    assert!(
        fixed.status.success(),
        "curl after the fix: {}",
        text(&fixed.stderr)
    );
    assert_eq!(text(&fixed.stdout), "hello\n");

    drop(kids);
    let report = fw.stop();
    let bad = count(&report["counters"]["invalid_by_reason"]["tcp_bad_checksum"]);
    assert!(bad >= 5, "{report}");
    println!("{bad} tcp_bad_checksum before the fix; warning: {warning}");
}
