//! End-to-end tests of the control plane: `ctfw run` with its control socket, driven only
//! through the `ctfw` CLI (and, for the protocol itself, raw JSON lines over the socket).
//!
//! Live traffic comes from a "lab": a network namespace with two veth pairs. ctfw's ports are
//! `net_pcap` devices on `in0` and `out0` (live capture, non-blocking); the test injects
//! frames on their peers `in1` and `out1` through a small Python `AF_PACKET` sender, one
//! frame at a time and waiting until ctfw has counted it, so connections are built exactly
//! as the test says, and stay in the table while it queries. Instances that need no traffic
//! use `net_null` devices (zero-filled, non-IP frames).
//!
//! Every instance has its own socket under a scratch directory; nothing touches
//! `/run/ctfw`.

mod common;

use common::{root, text, tmp};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ctfw_tracegen::frame::Frame;
use ctfw_tracegen::{Packet, Side, TcpSim};
use serde_json::Value;

/// The `ctfw` binary.
fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ctfw")
}

/// Sends frames given as `in1 HEX` / `out1 HEX` lines, answering `ok` for each.
const INJECTOR: &str = r#"
import socket, sys
socks = {}
for name in ("in1", "out1"):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((name, 0))
    socks[name] = s
for line in sys.stdin:
    side, frame = line.split()
    socks[side].send(bytes.fromhex(frame))
    sys.stdout.write("ok\n")
    sys.stdout.flush()
"#;

/// The classic stateful policy with names the tests refer to.
const CLASSIC: &str = "policy: drop
rules:
  - {name: estrel, ct_state: [established, related], action: accept}
  - {name: new_out, ct_state: [new], in_port: inside, out_port: outside, action: accept}
  - {name: invalid_drop, ct_state: [invalid], action: drop}
";

/// Timeouts that outlast any test, for entries a test lists long after creating them.
const LONG_TIMEOUTS: &str =
    "conntrack: {timeouts: {udp: 3600, udp_stream: 3600, icmp: 3600, icmpv6: 3600}}\n";

/// Run a command to completion; panic with its output if it fails.
fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A running instance and the socket to reach it.
struct Instance {
    dir: PathBuf,
    cfg: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    /// The lab's namespace, if it runs in one.
    ns: Option<String>,
    inject: Option<(ChildStdin, BufReader<ChildStdout>, Child)>,
    /// Packets injected so far.
    sent: u64,
}

impl Instance {
    /// `ctfw run` on two `net_null` ports with `body` appended to the configuration (`DIR` in
    /// it is the instance's scratch directory).
    fn null(name: &str, body: &str) -> Instance {
        Instance::devices(name, "net_null0", "net_null1", body)
    }

    /// `ctfw run` on ports `inside` and `outside` of the given devices, with `body` appended
    /// to the configuration (`DIR` in devices and body is the instance's scratch directory).
    fn devices(name: &str, inside: &str, outside: &str, body: &str) -> Instance {
        let dir = tmp(name);
        let socket = dir.join("ctfw.sock");
        let cfg = dir.join("ctfw.yaml");
        let d = dir.display().to_string();
        std::fs::write(
            &cfg,
            format!(
                "ports:\n  - {{name: inside, device: \"{}\", peer: outside}}\n  \
                 - {{name: outside, device: \"{}\", peer: inside}}\n\
                 dataplane: {{hugepages: off}}\ncontrol: {{socket: {}}}\n{}",
                inside.replace("DIR", &d),
                outside.replace("DIR", &d),
                socket.display(),
                body.replace("DIR", &d)
            ),
        )
        .expect("config");
        let mut i = Instance {
            dir,
            cfg,
            socket,
            child: None,
            ns: None,
            inject: None,
            sent: 0,
        };
        i.spawn();
        i
    }

    /// `ctfw run` in a fresh namespace whose ports capture on veths the test injects into,
    /// with `body` appended to the configuration (`DIR` in it is the scratch directory).
    fn lab(name: &str, workers: u16, body: &str) -> Instance {
        Instance::lab_with(name, workers, "", body)
    }

    /// [`Instance::lab`] with `control` keys beyond the socket (`control`, e.g.
    /// `", client_timeout: 30"`).
    fn lab_with(name: &str, workers: u16, control: &str, body: &str) -> Instance {
        let dir = tmp(name);
        let ns = format!("ctfwt{}{name}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(Command::new("ip").args(["netns", "add", &ns]));
        for (a, b) in [("in0", "in1"), ("out0", "out1")] {
            sh(Command::new("ip").args([
                "-n", &ns, "link", "add", a, "type", "veth", "peer", "name", b,
            ]));
        }
        for i in ["in0", "in1", "out0", "out1"] {
            // No IPv6: the kernel would send its own neighbour discovery into the lab.
            sh(Command::new("ip").args([
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{i}.disable_ipv6=1"),
            ]));
            sh(Command::new("ip").args(["-n", &ns, "link", "set", i, "up"]));
        }
        let socket = dir.join("ctfw.sock");
        let cfg = dir.join("ctfw.yaml");
        std::fs::write(
            &cfg,
            format!(
                "ports:\n  - {{name: inside, device: \"net_pcap0,rx_iface_in=in0,tx_iface=in0\", peer: outside}}\n  \
                 - {{name: outside, device: \"net_pcap1,rx_iface_in=out0,tx_iface=out0\", peer: inside}}\n\
                 dataplane: {{hugepages: off, workers: {workers}}}\ncontrol: {{socket: {}{control}}}\n{}",
                socket.display(),
                body.replace("DIR", &dir.display().to_string())
            ),
        )
        .expect("config");
        let mut inj = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-u", "-c", INJECTOR])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 injector");
        let stdin = inj.stdin.take().expect("stdin");
        let stdout = BufReader::new(inj.stdout.take().expect("stdout"));
        let mut i = Instance {
            dir,
            cfg,
            socket,
            child: None,
            ns: Some(ns),
            inject: Some((stdin, stdout, inj)),
            sent: 0,
        };
        i.spawn();
        i
    }

    /// Start `ctfw run` on this instance's configuration and wait for its socket.
    fn spawn(&mut self) {
        let log = |n: &str| std::fs::File::create(self.dir.join(n)).expect("log file");
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(["run", "--config", self.cfg.to_str().expect("utf8")])
            .current_dir(root())
            .stdout(log("run.out"))
            .stderr(log("run.err"));
        self.child = Some(cmd.spawn().expect("spawn ctfw run"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.cli(&["stats", "-o", "json"]).status.success() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("ctfw run exited with {status}: {}", self.output());
            }
            assert!(Instant::now() < deadline, "no socket: {}", self.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What `ctfw run` printed so far.
    fn output(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!("{}{}", read("run.out"), read("run.err"))
    }

    /// The pid of `ctfw run` itself (under `ip netns exec`, which execs it).
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `ctfw ARGS --socket SOCKET`.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .args(["--socket", self.socket.to_str().expect("utf8")])
            .current_dir(root())
            .output()
            .expect("spawn ctfw")
    }

    /// `ctfw ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `ctfw ARGS -o json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let s = self.ok(&all);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
    }

    /// `ctfw conntrack list ARGS -o json`: one object per entry.
    fn list(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["conntrack", "list"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        self.ok(&all)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON entry"))
            .collect()
    }

    /// Packets the engines counted (as published, every ~100 ms).
    fn packets(&self) -> u64 {
        self.json(&["stats"])["counters"]["packets"]
            .as_u64()
            .expect("counters.packets")
    }

    /// Inject `pkts` in order, waiting after each until ctfw has counted it, so that frames
    /// on different sides are processed in the order given.
    fn send(&mut self, pkts: &[Packet]) {
        for p in pkts {
            self.send_batch(std::slice::from_ref(p));
        }
    }

    /// Inject `pkts` back to back, then wait until ctfw has counted them all.
    fn send_batch(&mut self, pkts: &[Packet]) {
        let (stdin, stdout, _) = self.inject.as_mut().expect("a lab");
        let mut lines = String::new();
        for p in pkts {
            let side = match p.side {
                Side::Inside => "in1",
                Side::Outside => "out1",
            };
            let hex: String = p.data.iter().map(|b| format!("{b:02x}")).collect();
            lines.push_str(&format!("{side} {hex}\n"));
        }
        stdin.write_all(lines.as_bytes()).expect("inject");
        stdin.flush().expect("inject");
        for _ in pkts {
            let mut ok = String::new();
            stdout.read_line(&mut ok).expect("injector");
            assert_eq!(ok, "ok\n", "injector");
        }
        self.sent += pkts.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.packets() < self.sent {
            assert!(
                Instant::now() < deadline,
                "ctfw counted {} of {} packets",
                self.packets(),
                self.sent
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sh(Command::new("kill").args(["-TERM", &c.id().to_string()]));
            let status = c.wait().expect("wait");
            assert!(status.success(), "{}", self.output());
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some((stdin, _, mut c)) = self.inject.take() {
            drop(stdin);
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(ns) = &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn sock(a: &str, port: u16) -> SocketAddr {
    SocketAddr::new(a.parse().expect("address"), port)
}

/// A UDP datagram on `side`.
fn udp(side: Side, src: &str, dst: &str, sport: u16, dport: u16) -> Packet {
    Packet {
        ts_ns: 0,
        side,
        data: Frame::ipv4(v4(src), v4(dst))
            .udp(sport, dport)
            .payload(b"ctfw")
            .build(),
    }
}

/// The entry of `list` whose ORIGINAL source port is `sport`.
fn by_sport(list: &[Value], sport: u16) -> Option<&Value> {
    list.iter().find(|e| e["sport"] == sport)
}

fn sports(list: &[Value]) -> Vec<u64> {
    let mut v: Vec<u64> = list.iter().filter_map(|e| e["sport"].as_u64()).collect();
    v.sort_unstable();
    v
}

/// A table with a bit of everything: an ASSURED TCP connection, an unanswered SYN, two UDP
/// flows (one answered), an ICMP echo and an IPv6 UDP flow.
fn populate(lab: &mut Instance) {
    let mut a = TcpSim::new(sock("10.0.1.2", 40000), sock("10.0.2.2", 80));
    a.handshake().exchange(100, 200);
    lab.send(&a.take_packets());
    let mut b = TcpSim::new(sock("10.0.1.3", 40001), sock("10.0.2.2", 443));
    b.syn();
    lab.send(&b.take_packets());
    lab.send(&[
        udp(Side::Inside, "10.0.1.2", "10.0.2.3", 5000, 53),
        udp(Side::Outside, "10.0.2.3", "10.0.1.2", 53, 5000),
        udp(Side::Inside, "10.0.1.4", "10.0.2.3", 5001, 53),
        Packet {
            ts_ns: 0,
            side: Side::Inside,
            data: Frame::ipv4(v4("10.0.1.2"), v4("10.0.2.9"))
                .echo_request(7, 1)
                .build(),
        },
        Packet {
            ts_ns: 0,
            side: Side::Inside,
            data: Frame::ipv6(
                "fd00:1::2".parse::<Ipv6Addr>().expect("v6"),
                "fd00:2::2".parse::<Ipv6Addr>().expect("v6"),
            )
            .udp(6000, 53)
            .payload(b"v6")
            .build(),
        },
    ]);
}

#[test]
fn conntrack_list_filters_count_delete_and_flush() {
    // Long UDP and ICMP timeouts: the test must not depend on how fast a loaded machine runs it.
    let mut lab = Instance::lab("list", 2, &format!("{LONG_TIMEOUTS}{CLASSIC}"));
    populate(&mut lab);

    // The whole table, in conntrack's line format, and its trailer on stderr.
    let out = lab.cli(&["conntrack", "-L"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert_eq!(lines.lines().count(), 6, "{lines}");
    assert!(
        lines.lines().any(|l| l.starts_with("tcp      6 ")
            && l.ends_with(
                "ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 src=10.0.2.2 \
                 dst=10.0.1.2 sport=80 dport=40000 [ASSURED] mark=0 use=1"
            )),
        "{lines}"
    );
    assert!(
        lines.lines().any(|l| l.contains(
            "SYN_SENT src=10.0.1.3 dst=10.0.2.2 sport=40001 dport=443 [UNREPLIED] src=10.0.2.2"
        )),
        "{lines}"
    );
    assert_eq!(
        text(&out.stderr).trim(),
        "ctfw: 6 flow entries have been shown."
    );

    // Each filter, in conntrack's spelling.
    let all = lab.list(&[]);
    assert_eq!(all.len(), 6);
    // ICMP has no ports.
    assert_eq!(sports(&all), [5000, 5001, 6000, 40000, 40001]);
    assert_eq!(sports(&lab.list(&["-p", "tcp"])), [40000, 40001]);
    assert_eq!(sports(&lab.list(&["-p", "udp"])), [5000, 5001, 6000]);
    assert_eq!(lab.list(&["-p", "icmp"]).len(), 1);
    assert_eq!(sports(&lab.list(&["--state", "ESTABLISHED"])), [40000]);
    assert_eq!(sports(&lab.list(&["--state", "syn_sent"])), [40001]);
    assert_eq!(sports(&lab.list(&["-s", "10.0.1.3"])), [40001]);
    assert_eq!(
        sports(&lab.list(&["--src", "10.0.1.0/24", "-p", "udp"])),
        [5000, 5001]
    );
    assert_eq!(sports(&lab.list(&["-d", "10.0.2.3"])), [5000, 5001]);
    assert_eq!(
        sports(&lab.list(&["-p", "tcp", "--sport", "40000"])),
        [40000]
    );
    assert_eq!(
        sports(&lab.list(&["-p", "udp", "--dport", "53"])),
        [5000, 5001, 6000]
    );
    assert_eq!(sports(&lab.list(&["--assured"])), [40000]);
    assert_eq!(sports(&lab.list(&["--status", "ASSURED"])), [40000]);
    let unreplied = lab.list(&["--unreplied"]);
    assert_eq!(
        unreplied.len(),
        4,
        "SYN, one UDP, ICMP, IPv6: {unreplied:?}"
    );
    assert_eq!(
        sports(&lab.list(&["--status", "SEEN_REPLY"])),
        [5000, 40000]
    );
    assert_eq!(sports(&lab.list(&["-f", "ipv6"])), [6000]);
    let a = by_sport(&all, 40000).expect("A");
    assert_eq!(a["state"], "ESTABLISHED");
    assert_eq!(a["flags"], serde_json::json!(["ASSURED"]));
    assert_eq!(a["reply"]["src"], "10.0.2.2");
    assert!(a.get("counters").is_none(), "accounting is off");

    // A filter that contradicts itself is refused before anything is sent.
    let bad = lab.cli(&["conntrack", "-L", "-p", "udp", "--state", "ESTABLISHED"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("state"), "{}", text(&bad.stderr));

    // Counting.
    assert_eq!(lab.ok(&["conntrack", "count"]).trim(), "6");
    assert_eq!(lab.ok(&["conntrack", "-C", "-p", "udp"]).trim(), "3");
    assert_eq!(lab.json(&["conntrack", "count", "--assured"])["count"], 1);

    // Deleting by tuple, ASSURED included: the operator asked.
    let out = lab.cli(&[
        "conntrack",
        "-D",
        "-p",
        "tcp",
        "-s",
        "10.0.1.2",
        "-d",
        "10.0.2.2",
        "--sport",
        "40000",
        "--dport",
        "80",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).trim(),
        "ctfw: 1 flow entries have been deleted."
    );
    assert!(by_sport(&lab.list(&[]), 40000).is_none());
    // By filter.
    assert_eq!(
        lab.json(&["conntrack", "delete", "-p", "udp", "-d", "10.0.2.3"])["deleted"],
        2
    );
    assert_eq!(sports(&lab.list(&[])), [6000, 40001]);
    // Delete needs a filter; flush takes all that remain (or a filtered part).
    let out = lab.cli(&["conntrack", "delete"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("flush"), "{}", text(&out.stderr));
    assert_eq!(
        lab.json(&["conntrack", "flush", "-f", "ipv6"])["deleted"],
        1
    );
    assert_eq!(lab.json(&["conntrack", "-F"])["deleted"], 2);
    assert_eq!(lab.ok(&["conntrack", "count"]).trim(), "0");
    // The engines counted the deletions.
    let stats = lab.json(&["stats"]);
    assert_eq!(stats["table"]["entries"], 0, "{stats}");
    lab.stop();
}

/// A child `ctfw conntrack -E ...` whose stdout is read line by line.
struct Listener {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Listener {
    /// Start `ctfw conntrack -E ARGS` and wait until it says it listens.
    fn start(inst: &Instance, args: &[&str]) -> Listener {
        let mut child = Command::new(bin())
            .args(["conntrack", "-E"])
            .args(args)
            .args(["--socket", inst.socket.to_str().expect("utf8")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ctfw conntrack -E");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        err.read_line(&mut first).expect("stderr");
        assert!(first.contains("listening for connection events"), "{first}");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // The rest of stderr, for the trailer.
        let (etx, stderr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            let _ = etx.send(rest);
        });
        Listener {
            child,
            lines,
            stderr,
        }
    }

    /// The next `n` lines (waiting at most 10 s for each).
    fn take(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.lines
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("event {i} of {n} did not come"))
            })
            .collect()
    }

    /// Lines up to and including the first for which `last` holds (at most 100).
    fn until(&self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < 100 {
            let l = self.take(1).remove(0);
            let done = last(&l);
            out.push(l);
            if done {
                return out;
            }
        }
        panic!("no end among {out:?}");
    }

    /// SIGINT; its exit status and what it printed on stderr after its first line. It must
    /// end within 30 s (it ends at once; the bound only turns a hang into a failure).
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        sh(Command::new("kill").args(["-INT", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ctfw conntrack -E did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("stderr");
        (status, rest)
    }
}

#[test]
fn events_follow_a_handshake_and_a_close() {
    let mut lab = Instance::lab("events", 1, CLASSIC);
    // Nobody listens: no events are recorded.
    assert_eq!(lab.json(&["stats"])["control"]["listeners"], 0);
    let json = Listener::start(&lab, &["-o", "json"]);
    let human = Listener::start(&lab, &["-p", "tcp"]);
    let quiet = Listener::start(&lab, &["-p", "udp"]);
    let news = Listener::start(&lab, &["-e", "NEW"]);
    assert_eq!(lab.json(&["stats"])["control"]["listeners"], 4);

    let mut a = TcpSim::new(sock("10.0.1.2", 40000), sock("10.0.2.2", 80));
    a.handshake().exchange(10, 20).close();
    lab.send(&a.take_packets());
    assert_eq!(lab.json(&["conntrack", "flush"])["deleted"], 1);

    // SYN: NEW; SYN/ACK, ACK (ESTABLISHED, ASSURED), the FINs and the last ACK: one UPDATE
    // each, through the TCP states; the data changes nothing; the flush: a DESTROY.
    let events: Vec<Value> = json
        .until(|l| l.contains("\"destroy\""))
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        [
            "new", "update", "update", "update", "update", "update", "destroy"
        ],
        "one UPDATE per change, none for the data: {events:?}"
    );
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["entry"]["state"].as_str().expect("state"))
        .collect();
    assert_eq!(
        states[..6],
        [
            "SYN_SENT",
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT",
            "LAST_ACK",
            "TIME_WAIT"
        ],
        "{events:?}"
    );
    assert_eq!(events[0]["entry"]["src"], "10.0.1.2");
    assert_eq!(
        events[0]["entry"]["flags"],
        serde_json::json!(["UNREPLIED"])
    );
    let established = events
        .iter()
        .find(|e| e["entry"]["state"] == "ESTABLISHED")
        .expect("ESTABLISHED");
    assert_eq!(
        established["entry"]["flags"],
        serde_json::json!(["ASSURED"])
    );
    assert_eq!(events.last().expect("destroy")["cause"], "deleted");
    assert!(
        events[0]["time"].as_f64().expect("time") > 1.0e9,
        "a Unix time"
    );

    let lines = human.until(|l| l.starts_with("[DESTROY]"));
    assert!(
        lines[0].starts_with("    [NEW] tcp      6 120 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] src=10.0.2.2"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(" [UPDATE] tcp      6 ")
            && l.contains("ESTABLISHED")
            && l.contains("[ASSURED]")),
        "{lines:?}"
    );
    // As conntrack -E: DESTROY without timeout nor state, no `use=` anywhere.
    assert!(
        lines.last().expect("destroy").starts_with(
            "[DESTROY] tcp      6 src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 src=10.0.2.2"
        ),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("use=")), "{lines:?}");
    assert_eq!(news.take(1).len(), 1);

    // A UDP flow: only the UDP listener and the unfiltered ones see it.
    lab.send(&[udp(Side::Inside, "10.0.1.2", "10.0.2.3", 5000, 53)]);
    let u: Value = serde_json::from_str(&json.take(1)[0]).expect("JSON");
    assert_eq!(
        (u["type"].as_str(), u["entry"]["proto"].as_str()),
        (Some("new"), Some("udp"))
    );
    assert!(quiet.take(1)[0].contains("udp      17"));
    assert!(news.take(1)[0].contains("[NEW] udp"));
    assert!(
        human
            .lines
            .recv_timeout(Duration::from_millis(500))
            .is_err(),
        "the TCP listener saw UDP"
    );

    // Interrupted, each says how many it showed; then nobody listens, and events are off.
    let seen = [events.len() + 1, lines.len(), 1, 2];
    for (l, shown) in [json, human, quiet, news].into_iter().zip(seen) {
        let (status, err) = l.interrupt();
        assert!(status.success(), "{err}");
        assert_eq!(
            err.trim(),
            format!("ctfw: {shown} flow events have been shown.")
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.json(&["stats"])["control"]["listeners"] != 0 {
        assert!(Instant::now() < deadline, "listeners stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.stop();
}

#[test]
fn a_listener_under_a_flood_of_events_stops_when_interrupted() {
    // A looped SYN flood into a small table: every SYN evicts, so events never pause.
    let dir = tmp("evflood-trace");
    let trace = dir.join("flood.pcap");
    let mut w = ctfw_tracegen::PcapWriter::new(
        std::fs::File::create(&trace).expect("trace"),
        ctfw_tracegen::write::Resolution::Micro,
    )
    .expect("pcap header");
    let opts = ctfw_tracegen::generate::SynfloodOpts {
        count: 4_000,
        ..Default::default()
    };
    ctfw_tracegen::generate::synflood(&opts, &mut w).expect("synflood");
    drop(w);
    let mut lab = Instance::devices(
        "evflood",
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", trace.display()),
        "net_null0,no-rx=1",
        "conntrack: {capacity: 1024}\npolicy: accept\n",
    );
    let listener = Listener::start(&lab, &["-o", "json"]);
    assert_eq!(listener.take(1000).len(), 1000, "a steady stream");
    let (status, err) = listener.interrupt();
    assert!(status.success(), "{err}");
    assert!(err.contains("flow events have been shown."), "{err}");
    lab.stop();
}

#[test]
fn stats_and_rule_hits() {
    let mut lab = Instance::lab("stats", 1, CLASSIC);
    let mut a = TcpSim::new(sock("10.0.1.2", 40000), sock("10.0.2.2", 80));
    a.handshake();
    lab.send(&a.take_packets());
    // A new connection from outside meets the default policy.
    lab.send(&[udp(Side::Outside, "10.0.2.2", "10.0.1.2", 53, 5000)]);

    let s = lab.json(&["stats"]);
    assert_eq!(s["counters"]["packets"], 4, "{s}");
    assert_eq!(s["counters"]["accepted"], 3, "{s}");
    assert_eq!(s["counters"]["dropped"], 1, "{s}");
    assert_eq!(s["table"]["entries"], 1, "{s}");
    assert_eq!(s["rule_hits"]["default_policy"], 1, "{s}");
    let human = lab.ok(&["stats"]);
    assert!(
        human.contains("packets 4  accepted 3  dropped 1"),
        "{human}"
    );
    assert!(
        human.contains("control: configuration generation 0"),
        "{human}"
    );

    let r = lab.json(&["rules"]);
    let hits: Vec<(String, u64)> = r["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|x| {
            (
                x["name"].as_str().expect("name").to_owned(),
                x["packets"].as_u64().expect("packets"),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("estrel".to_owned(), 2),
            ("new_out".to_owned(), 1),
            ("invalid_drop".to_owned(), 0)
        ]
    );
    assert_eq!(r["policy"]["packets"], 1);
    assert_eq!(r["policy"]["action"], "drop");
    assert_eq!(
        r["rules"][1]["rule"],
        "-i inside -o outside -m conntrack --ctstate NEW -j ACCEPT"
    );
    assert_eq!(r["generation"], 0);
    let human = lab.ok(&["rules"]);
    assert!(human.contains("since start"), "{human}");
    assert!(
        human
            .lines()
            .any(|l| l.contains("new_out") && l.contains(" 1 ") && l.contains("--ctstate NEW")),
        "{human}"
    );
    lab.stop();
}

/// The lab's configuration with `body` in place of the rules.
fn rewrite(lab: &Instance, body: &str) {
    let cfg = std::fs::read_to_string(&lab.cfg).expect("config");
    let head = cfg.split("policy:").next().expect("head");
    std::fs::write(&lab.cfg, format!("{head}{body}")).expect("config");
}

#[test]
fn reload_changes_verdicts_on_live_traffic_and_keeps_connections() {
    let web = "policy: drop
rules:
  - {name: estrel, ct_state: [established, related], action: accept}
  - {name: web, ct_state: [new], in_port: inside, proto: tcp, dport: 80, action: accept}
";
    let alt = "policy: drop
rules:
  - {name: estrel, ct_state: [established, related], action: accept}
  - {name: alt, ct_state: [new], in_port: inside, proto: tcp, dport: 8080, action: accept}
";
    let mut lab = Instance::lab("reload", 1, web);
    let mut a = TcpSim::new(sock("10.0.1.2", 40000), sock("10.0.2.2", 80));
    a.handshake();
    lab.send(&a.take_packets());
    let mut b = TcpSim::new(sock("10.0.1.2", 40001), sock("10.0.2.2", 8080));
    b.syn();
    lab.send(&b.take_packets());
    assert_eq!(sports(&lab.list(&[])), [40000], "8080 is not allowed yet");

    rewrite(&lab, alt);
    let out = lab.cli(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("every connection kept"),
        "{}",
        text(&out.stdout)
    );
    let r = lab.json(&["rules"]);
    assert_eq!(r["generation"], 1);
    assert_eq!(r["rules"][1]["name"], "alt");
    assert_eq!(r["rules"][0]["packets"], 0, "hits restart at a reload");
    assert!(lab.ok(&["rules"]).contains("since reload"));

    // The established connection keeps passing, under the new rules.
    let accepted = |lab: &Instance| lab.json(&["stats"])["counters"]["accepted"].as_u64();
    let before = accepted(&lab);
    a.exchange(50, 60);
    lab.send(&a.take_packets());
    assert_eq!(accepted(&lab), before.map(|n| n + 4));
    // The SYN to 8080, retransmitted, now passes; a new one to 80 does not.
    b.syn();
    lab.send(&b.take_packets());
    let mut c = TcpSim::new(sock("10.0.1.2", 40002), sock("10.0.2.2", 80));
    c.syn();
    lab.send(&c.take_packets());
    let list = lab.list(&[]);
    assert_eq!(sports(&list), [40000, 40001], "{list:?}");
    assert_eq!(by_sport(&list, 40000).expect("A")["state"], "ESTABLISHED");
    let r = lab.json(&["rules"]);
    assert_eq!(r["rules"][0]["packets"], 4);
    assert_eq!(r["rules"][1]["packets"], 1);
    assert_eq!(r["policy"]["packets"], 1);

    // SIGHUP reloads too.
    rewrite(&lab, web);
    sh(Command::new("kill").args(["-HUP", &lab.pid().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.json(&["rules"])["generation"] != 2 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload: {}",
            lab.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lab.json(&["rules"])["rules"][1]["name"], "web");
    assert_eq!(lab.ok(&["conntrack", "count"]).trim(), "2");

    // A file that does not validate: refused with check-config's own error.
    std::fs::write(
        &lab.cfg,
        std::fs::read_to_string(&lab.cfg)
            .expect("config")
            .replace("dport: 80,", "dport: eighty,"),
    )
    .expect("config");
    let check = Command::new(bin())
        .args(["check-config", lab.cfg.to_str().expect("utf8")])
        .output()
        .expect("check-config");
    assert!(!check.status.success());
    let out = lab.cli(&["reload"]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), text(&check.stderr));
    assert!(text(&out.stderr).contains("dport"), "{}", text(&out.stderr));

    // A change of ports needs a restart: refused, naming it.
    rewrite(&lab, web);
    std::fs::write(
        &lab.cfg,
        std::fs::read_to_string(&lab.cfg)
            .expect("config")
            .replace("tx_iface=out0", "tx_iface=out1"),
    )
    .expect("config");
    let out = lab.cli(&["reload"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("reload refused") && err.contains("ports: "),
        "{err}"
    );
    // Either way the running configuration stays, connections too.
    let r = lab.json(&["rules"]);
    assert_eq!(r["generation"], 2);
    assert_eq!(r["rules"][1]["name"], "web");
    assert_eq!(lab.ok(&["conntrack", "count"]).trim(), "2");
    assert!(
        lab.output().contains("reloaded") && lab.output().contains("generation 2"),
        "SIGHUP's outcome is logged: {}",
        lab.output()
    );
    lab.stop();
}

#[test]
fn one_instance_per_socket_a_stale_socket_is_replaced_and_errors_say_why() {
    let mut a = Instance::null("instances", "");
    let meta = std::fs::metadata(&a.socket).expect("socket");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner-only");

    // A second instance on the same socket is refused before it starts, naming the first.
    let second = Command::new(bin())
        .args(["run", "--config", a.cfg.to_str().expect("utf8")])
        .output()
        .expect("spawn");
    assert!(!second.status.success());
    let err = text(&second.stderr);
    assert!(
        err.contains("another ctfw is running")
            && err.contains(&format!("pid {}", a.pid()))
            && err.contains(a.socket.to_str().expect("utf8")),
        "{err}"
    );
    assert!(a.cli(&["stats"]).status.success(), "the first one runs on");

    // Someone else may not use the socket.
    let denied = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "stats",
            "--socket",
        ])
        .arg(&a.socket)
        .output()
        .expect("setpriv");
    assert!(!denied.status.success());
    assert_eq!(
        text(&denied.stderr).trim(),
        format!(
            "ctfw: error: permission denied on {}: run as the user that started ctfw (root)",
            a.socket.display()
        )
    );

    // Killed, it leaves its socket behind: the CLI says nobody answers, and the next start
    // replaces it.
    let mut first = a.child.take().expect("running");
    first.kill().expect("kill");
    first.wait().expect("wait");
    assert!(a.socket.exists());
    let out = a.cli(&["conntrack", "-L"]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "ctfw: error: no ctfw instance is running at {} (connection refused)",
            a.socket.display()
        )
    );
    a.spawn();
    assert!(a.output().contains("replacing it"), "{}", a.output());
    assert!(a.cli(&["stats"]).status.success());

    // A clean stop removes the socket.
    a.stop();
    assert!(!a.socket.exists());
    let out = a.cli(&["rules"]);
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "ctfw: error: no ctfw instance is running at {} (no such socket)",
            a.socket.display()
        )
    );
    // --config finds the socket in the file.
    let out = Command::new(bin())
        .args(["stats", "--config", a.cfg.to_str().expect("utf8")])
        .output()
        .expect("spawn");
    assert!(text(&out.stderr).contains(a.socket.to_str().expect("utf8")));
}

/// Send `requests` on one connection, then shut down the sending side; every line read back.
fn raw(socket: &Path, requests: &str) -> Vec<Value> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.write_all(requests.as_bytes()).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    BufReader::new(s)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("JSON"))
        .collect()
}

#[test]
fn the_protocol_speaks_json_lines_with_ids_and_versions() {
    let inst = Instance::null("protocol", CLASSIC);
    let lines = raw(
        &inst.socket,
        concat!(
            r#"{"version":1,"id":1,"command":"hello"}"#,
            "\n\n",
            r#"{"version":2,"id":2,"command":"hello"}"#,
            "\n",
            r#"{"version":1,"id":3,"command":"frobnicate"}"#,
            "\n",
            "not json\n",
            r#"{"version":1,"id":5,"command":"conntrack.count","args":{"proto":"udp","state":"ESTABLISHED"}}"#,
            "\n",
            r#"{"version":1,"id":6,"command":"conntrack.list","args":{"format":"text"}}"#,
            "\n",
            r#"{"version":1,"id":7,"command":"rules"}"#,
            "\n",
            r#"{"version":1,"id":8,"command":"conntrack.count"}"#,
        ),
    );
    let by_id = |id: u64| -> Vec<&Value> { lines.iter().filter(|l| l["id"] == id).collect() };
    let hello = by_id(1)[0];
    assert_eq!(hello["ok"], true);
    assert_eq!(hello["result"]["protocol"], 1);
    assert_eq!(hello["result"]["pid"], inst.pid());
    assert_eq!(hello["result"]["ctfw"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hello["result"]["config"], inst.cfg.to_str().expect("utf8"));
    let v2 = &by_id(2)[0]["error"];
    assert_eq!(v2["code"], "version");
    assert_eq!(v2["protocol"], 1);
    let m = v2["message"].as_str().expect("message");
    assert!(m.contains("version 2") && m.contains("speaks 1"), "{m}");
    assert_eq!(by_id(3)[0]["error"]["code"], "unknown_command");
    assert_eq!(by_id(0)[0]["error"]["code"], "bad_request");
    assert_eq!(by_id(5)[0]["error"]["code"], "bad_args");
    // An empty listing: no items, then its result.
    assert_eq!(by_id(6).len(), 1);
    assert_eq!(by_id(6)[0]["result"]["entries"], 0);
    assert_eq!(by_id(7)[0]["result"]["rules"][0]["name"], "estrel");
    // The last request had no newline: refused, and the connection closed.
    assert_eq!(by_id(0).len(), 2, "{lines:?}");
    // In order.
    let ids: Vec<u64> = lines
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2, 3, 0, 5, 6, 7, 0]);

    // The CLI names both versions when the server speaks another.
    let dir = tmp("version");
    let path = dir.join("fake.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).expect("request");
        let req: Value = serde_json::from_str(&line).expect("JSON request");
        assert_eq!(req["version"], 1);
        let answer = serde_json::json!({"id": req["id"], "ok": false,
            "error": {"code": "version", "message": "no", "protocol": 2}});
        (&s).write_all(format!("{answer}\n").as_bytes())
            .expect("answer");
    });
    let out = Command::new(bin())
        .args(["stats", "--socket", path.to_str().expect("utf8")])
        .output()
        .expect("spawn");
    server.join().expect("fake server");
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "ctfw: error: protocol version mismatch: ctfw at {} speaks 2, this client speaks 1",
            path.display()
        )
    );
}

#[test]
fn a_stuck_client_slows_only_itself_and_is_dropped() {
    // A stall timeout long enough that the checks below, on a loaded machine, run while the
    // stuck client is still connected; long timeouts so its 6,000 entries stay.
    let mut lab = Instance::lab_with(
        "stuck",
        1,
        ", client_timeout: 30",
        &format!("{LONG_TIMEOUTS}policy: accept\n"),
    );
    // Enough entries that their listing fills every buffer on the way.
    let flows: Vec<Packet> = (0..6000u32)
        .map(|i| {
            let src = Ipv4Addr::from(0x0a01_0000 + i);
            Packet {
                ts_ns: 0,
                side: Side::Inside,
                data: Frame::ipv4(src, v4("10.0.2.2"))
                    .udp(1024 + (i % 50000) as u16, 53)
                    .payload(b"x")
                    .build(),
            }
        })
        .collect();
    // In batches the capture buffers hold.
    for chunk in flows.chunks(250) {
        lab.send_batch(chunk);
    }
    assert_eq!(lab.ok(&["conntrack", "count"]).trim(), "6000");

    // A client asks for the whole listing and reads nothing.
    let mut stuck = UnixStream::connect(&lab.socket).expect("connect");
    stuck
        .write_all(b"{\"version\":1,\"id\":1,\"command\":\"conntrack.list\"}\n")
        .expect("request");
    let asked = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // Others are served, and packets keep flowing, meanwhile.
    assert_eq!(lab.json(&["conntrack", "count"])["count"], 6000);
    lab.send(&[udp(Side::Inside, "10.0.1.9", "10.0.2.2", 999, 53)]);
    assert_eq!(lab.list(&["-s", "10.0.1.9"]).len(), 1);
    assert_eq!(
        lab.json(&["stats"])["control"]["clients"],
        2,
        "the stuck one and stats"
    );

    // After the stall timeout (30 s) it is dropped: what it reads ends without a final line.
    let since = Instant::now();
    while lab.json(&["stats"])["control"]["clients"] != 1 {
        assert!(
            since.elapsed() < Duration::from_secs(90),
            "the stuck client was not dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        asked.elapsed() >= Duration::from_secs(29),
        "dropped before control.client_timeout"
    );
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = String::new();
    let _ = stuck.read_to_string(&mut got);
    let lines: Vec<&str> = got.lines().collect();
    assert!(
        lines.len() > 10 && lines.len() < 6000,
        "{} lines",
        lines.len()
    );
    assert!(!got.contains("\"ok\""), "no final line");
    // A client that reads gets everything.
    assert_eq!(lab.list(&[]).len(), 6001);
    lab.stop();
}

#[test]
fn the_drop_log_records_logged_packets_and_counts_what_it_suppresses() {
    let mut lab = Instance::lab(
        "droplog",
        1,
        "log: {file: DIR/drop.log, rate: 1, burst: 3, policy: true}
policy: drop
rules:
  - {name: ssh_in, in_port: outside, proto: tcp, dport: 22, action: drop, log: true}
  - {name: quiet, in_port: outside, proto: tcp, dport: 23, action: drop}
",
    );
    let logfile = lab.dir.join("drop.log");
    let records = |n: usize| -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = std::fs::read_to_string(&logfile).unwrap_or_default();
            let records: Vec<Value> = body
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON record"))
                .collect();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Ten new connections from outside meet the default policy at once: the burst of 3 is
    // written, the other 7 are suppressed and counted.
    let pkts: Vec<Packet> = (0..10u16)
        .map(|i| udp(Side::Outside, "10.0.2.2", "10.0.1.2", 53, 7000 + i))
        .collect();
    lab.send_batch(&pkts);
    let got = records(3);
    assert_eq!(got.len(), 3, "{got:?}");
    let r = &got[0];
    assert_eq!(r["rule"], "(default policy)");
    assert_eq!(r["rule_index"], Value::Null);
    assert_eq!(r["verdict"], "drop");
    assert_eq!(r["in_port"], "outside");
    assert_eq!(r["out_port"], "inside");
    assert_eq!(r["ct_state"], "new");
    assert_eq!(r["proto"], "udp");
    assert_eq!(r["family"], "ipv4");
    assert_eq!(r["src"], "10.0.2.2");
    assert_eq!(r["dst"], "10.0.1.2");
    assert_eq!(r["sport"], 53);
    assert_eq!(r["dport"], 7000);
    assert_eq!(r["len"], 32);
    assert!(r["time"].as_f64().expect("time") > 1.0e9);
    let s = lab.json(&["stats"]);
    assert_eq!(s["counters"]["logged"], 3, "{s}");
    assert_eq!(s["counters"]["log_suppressed"], 7, "{s}");
    assert_eq!(s["control"]["log_written"], 3, "{s}");
    assert_eq!(s["control"]["log_lost"], 0, "{s}");

    // A second later the bucket has a token again: a rule's own log names it; a rule without
    // `log` writes nothing.
    std::thread::sleep(Duration::from_millis(1100));
    let mut ssh = TcpSim::new(sock("10.0.2.7", 51514), sock("10.0.1.2", 22));
    ssh.syn();
    let mut telnet = TcpSim::new(sock("10.0.2.7", 51515), sock("10.0.1.2", 23));
    telnet.syn();
    let mut frames = ssh.take_packets();
    frames.extend(telnet.take_packets());
    for f in &mut frames {
        f.side = Side::Outside;
    }
    lab.send(&frames);
    let got = records(4);
    assert_eq!(got.len(), 4, "{got:?}");
    let r = &got[3];
    assert_eq!(r["rule"], "ssh_in");
    assert_eq!(r["rule_index"], 0);
    assert_eq!(r["proto"], "tcp");
    assert_eq!(r["dport"], 22);
    assert_eq!(r["tcp_flags"], "SYN");
    assert_eq!(r["ct_state"], "new");
    let s = lab.json(&["stats"]);
    assert_eq!(s["counters"]["logged"], 4, "{s}");
    assert_eq!(s["control"]["log_written"], 4, "{s}");
    let rules = lab.json(&["rules"]);
    assert_eq!(rules["policy"]["log"], true);
    assert_eq!(rules["rules"][0]["log"], true);
    assert_eq!(rules["rules"][1]["log"], false);
    assert!(
        lab.ok(&["rules"]).contains("--dport 22 -j DROP (log)"),
        "{}",
        lab.ok(&["rules"])
    );
    lab.stop();
}

#[test]
fn accounting_counts_packets_and_bytes_per_direction() {
    let mut lab = Instance::lab(
        "acct",
        1,
        &format!("conntrack: {{accounting: true}}\n{CLASSIC}"),
    );
    let mut a = TcpSim::new(sock("10.0.1.2", 40000), sock("10.0.2.2", 80));
    a.handshake().exchange(100, 200);
    let pkts = a.take_packets();
    lab.send(&pkts);
    // IP lengths (no VLAN tags here), per direction.
    let ip = |side: Side| -> (u64, u64) {
        let of: Vec<&Packet> = pkts.iter().filter(|p| p.side == side).collect();
        (
            of.len() as u64,
            of.iter().map(|p| p.data.len() as u64 - 14).sum(),
        )
    };
    let (op, ob) = ip(Side::Inside);
    let (rp, rb) = ip(Side::Outside);
    assert_eq!((op, rp), (4, 3));
    let list = lab.list(&[]);
    let c = &list[0]["counters"];
    assert_eq!(c["original"]["packets"], op, "{list:?}");
    assert_eq!(c["original"]["bytes"], ob, "{list:?}");
    assert_eq!(c["reply"]["packets"], rp, "{list:?}");
    assert_eq!(c["reply"]["bytes"], rb, "{list:?}");
    let line = lab.ok(&["conntrack", "-L"]);
    assert!(
        line.contains(&format!(
            "sport=40000 dport=80 packets={op} bytes={ob} src=10.0.2.2 dst=10.0.1.2 sport=80 \
             dport=40000 packets={rp} bytes={rb} [ASSURED] mark=0 use=1"
        )),
        "{line}"
    );
    // Accounting is allocated with the table: a reload cannot switch it off.
    rewrite_head(
        &lab,
        "conntrack: {accounting: true}",
        "conntrack: {accounting: false}",
    );
    let out = lab.cli(&["reload"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("conntrack.accounting"),
        "{}",
        text(&out.stderr)
    );
    lab.stop();
}

/// Replace `from` by `to` in the lab's configuration file.
fn rewrite_head(lab: &Instance, from: &str, to: &str) {
    let cfg = std::fs::read_to_string(&lab.cfg).expect("config");
    assert!(cfg.contains(from), "{cfg}");
    std::fs::write(&lab.cfg, cfg.replace(from, to)).expect("config");
}
