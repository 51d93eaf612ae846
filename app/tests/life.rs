//! End-to-end tests of a `ctfw run` process's life: memory it cannot have, signals, what it
//! leaves behind, two instances on one device, and `ctfw replay` of a capture cut short.
//!
//! Instances run on `net_pcap` devices reading small captures from a scratch directory (or on
//! `net_null`, which produces frames without end, where a test needs steady traffic), each with
//! its own control socket. An instance is ready when it tells its `NOTIFY_SOCKET` `READY=1`, as
//! it tells systemd.

mod common;

use common::{ctfw, root, text, tmp};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use ctfw_tracegen::PcapWriter;
use serde_json::Value;

/// The `ctfw` binary.
fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ctfw")
}

/// Write a classic pcap of `n` 60-byte Ethernet frames of a local experimental EtherType
/// (not IP: `non_ip: forward` forwards them) to `path`.
fn write_frames(path: &Path, n: usize) {
    let mut w = PcapWriter::new(
        std::fs::File::create(path).expect("create"),
        Default::default(),
    )
    .expect("pcap");
    for i in 0..n {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14] = i as u8;
        w.write(1_000_000_000 + i as u64 * 1000, &f).expect("write");
    }
    w.finish().expect("finish");
}

/// A configuration of two ports on `inside` and `outside`, a control socket in `dir`, and
/// `body` appended (`dataplane`, `conntrack`...).
fn config(dir: &Path, inside: &str, outside: &str, body: &str) -> PathBuf {
    let cfg = dir.join("ctfw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "ports:\n  - {{name: inside, device: \"{inside}\", peer: outside}}\n  \
             - {{name: outside, device: \"{outside}\", peer: inside}}\n\
             control: {{socket: {}}}\nnon_ip: forward\n{body}",
            dir.join("ctfw.sock").display()
        ),
    )
    .expect("config");
    cfg
}

/// `ctfw run --config CFG ARGS` ([`command`]), output to files in `dir`.
fn spawn(dir: &Path, cfg: &Path, args: &[&str], wrap: &[&str]) -> Child {
    command(cfg, args, wrap)
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout"))
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr"))
        .spawn()
        .expect("spawn ctfw run")
}

/// The command `ctfw run --config CFG ARGS`, under `wrap` if not empty, run from the
/// repository's root.
fn command(cfg: &Path, args: &[&str], wrap: &[&str]) -> Command {
    let (prog, mut all): (&str, Vec<&str>) = match wrap.split_first() {
        Some((p, rest)) => (p, rest.iter().copied().chain([bin()]).collect()),
        None => (bin(), Vec::new()),
    };
    all.extend(["run", "--config", cfg.to_str().expect("utf8")]);
    all.extend_from_slice(args);
    let mut c = Command::new(prog);
    c.args(&all).current_dir(root());
    c
}

/// What an instance in `dir` printed so far.
fn printed(dir: &Path) -> String {
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    format!("{}{}", read("stdout"), read("stderr"))
}

/// Wait at most `limit` for `child` to exit.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `sig` (a name `kill` knows: TERM, USR1, RTMIN+1, ...) to `pid`.
fn kill(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{sig} {pid}");
}

/// A running `ctfw run`, ready (it said `READY=1`).
struct Instance {
    dir: PathBuf,
    child: Child,
}

impl Instance {
    /// Start `ctfw run` on `cfg` (in `dir`) with `args`, maybe under a wrapper command
    /// (`ip netns exec NS`), and wait until it is ready.
    fn start(dir: &Path, cfg: &Path, args: &[&str], wrap: &[&str]) -> Instance {
        Instance {
            dir: dir.to_owned(),
            child: common::spawn_until_ready(dir, || command(cfg, args, wrap)),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&self) -> String {
        printed(&self.dir)
    }

    /// `ctfw stats -o json` of this instance.
    fn stats(&self) -> Value {
        let sock = self.dir.join("ctfw.sock");
        let out = ctfw(&[
            "stats",
            "-o",
            "json",
            "--socket",
            sock.to_str().expect("utf8"),
        ]);
        assert!(out.status.success(), "stats: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("stats JSON")
    }

    /// `ctfw stats -o json` once `ready` holds for it (the statistics are published about
    /// once a second), within 20 s.
    fn stats_when(&self, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.stats();
            if ready(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never so: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// SIGTERM; the exit status (it must exit within 30 s) and what it printed.
    fn stop(mut self) -> (ExitStatus, String) {
        kill("TERM", self.pid());
        let status = wait_for(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("ctfw did not stop on SIGTERM:\n{}", self.output()));
        (status, self.output())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ctfw run` on `cfg` that must end by itself within 60 s: its output.
fn run_to_end(dir: &Path, cfg: &Path, args: &[&str], wrap: &[&str]) -> Output {
    let mut child = spawn(dir, cfg, args, wrap);
    let status = wait_for(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("ctfw run did not end:\n{}", printed(dir))
    });
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap_or_default();
    Output {
        status,
        stdout: read("stdout"),
        stderr: read("stderr"),
    }
}

/// Devices reading `dir/empty.pcap` (created here, no packet) and writing `dir/tx-*.pcap`.
fn quiet_devices(dir: &Path) -> (String, String) {
    write_frames(&dir.join("empty.pcap"), 0);
    let d = dir.display();
    (
        format!("net_pcap0,rx_pcap={d}/empty.pcap,tx_pcap={d}/tx-inside.pcap"),
        format!("net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/tx-outside.pcap"),
    )
}

/// The base of the EAL's runtime directories for this user (`/var/run/dpdk` for root).
fn dpdk_base() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").expect("proc").uid() == 0 {
        return PathBuf::from("/var/run/dpdk");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => Path::new(&d).join("dpdk"),
        None => PathBuf::from("/tmp/dpdk"),
    }
}

#[test]
fn memory_the_eal_cannot_have_is_refused_with_what_would_work() {
    let dir = tmp("memory");
    let (inside, outside) = quiet_devices(&dir);
    let prefix = format!("life-{}-mem", std::process::id());
    // Beyond what any configuration may give: refused by the loader.
    // 1 TiB: the most a configuration may give, far beyond this machine's memory without
    // hugepages, and beyond its free hugepages with them. Before the check, `off` crashed
    // inside DPDK (SIGSEGV, exit 139, no message) and `on` failed with "Cannot init memory".
    for (memory_mb, hugepages, expect) in [
        (
            "10000000",
            "off",
            "expected a whole number between 16 and 1048576",
        ),
        ("1048576", "off", "cannot be had without hugepages"),
        ("1048576", "on", "of hugepages cannot be had"),
    ] {
        let cfg = config(
            &dir,
            &inside,
            &outside,
            &format!("dataplane: {{memory_mb: {memory_mb}, hugepages: {hugepages}}}\n"),
        );
        let out = run_to_end(&dir, &cfg, &["--file-prefix", &prefix], &[]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "memory_mb {memory_mb}, hugepages {hugepages}: {}\n{err}",
            out.status
        );
        assert!(
            err.contains("dataplane.memory_mb") && err.contains(expect),
            "memory_mb {memory_mb}, hugepages {hugepages}: {err}"
        );
        if memory_mb != "10000000" {
            assert!(err.contains("would work"), "{err}");
            assert!(
                !err.contains("EAL arguments"),
                "refused before the EAL: {err}"
            );
        }
    }
}

#[test]
fn a_table_that_cannot_be_allocated_is_refused_with_the_bytes() {
    let dir = tmp("table");
    let (inside, outside) = quiet_devices(&dir);
    let cfg = config(
        &dir,
        &inside,
        &outside,
        "dataplane: {hugepages: off}\nconntrack: {capacity: 16000000}\n",
    );
    // 1 GiB of address space: the 16-million-entry table (about 1.6 GiB) cannot be had.
    // Before, the allocation aborted the process with Rust's "memory allocation of N bytes
    // failed" (SIGABRT).
    let prefix = format!("life-{}-table", std::process::id());
    let out = run_to_end(
        &dir,
        &cfg,
        &["--file-prefix", &prefix],
        &["prlimit", "--as=1073741824"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", out.status);
    assert!(
        err.contains("conntrack.capacity 16000000")
            && err.contains("need ")
            && err.contains(" bytes")
            && err.contains("are available")
            && err.contains("entries would fit"),
        "{err}"
    );
    assert!(!err.contains("memory allocation of"), "{err}");
}

#[test]
fn the_capacity_set_is_the_capacity_shared_by_the_workers() {
    let dir = tmp("capacity");
    let (inside, outside) = quiet_devices(&dir);
    // The smallest capacity a configuration may give, plus one, over two workers: 513 + 512.
    // Before, each worker got at least 1024 entries: 2048 in all.
    let cfg = config(
        &dir,
        &inside,
        &outside,
        "dataplane: {hugepages: off, workers: 2}\nconntrack: {capacity: 1025}\n",
    );
    let prefix = format!("life-{}-cap", std::process::id());
    let i = Instance::start(&dir, &cfg, &["--file-prefix", &prefix], &[]);
    // Once both workers have published.
    let stats = i.stats_when(|s| {
        s["workers"]
            .as_array()
            .is_some_and(|w| w.len() == 2 && w.iter().all(|w| w["table"]["capacity"] != 0))
    });
    assert_eq!(stats["table"]["capacity"], 1025, "{stats}");
    let shares: Vec<_> = stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["table"]["capacity"].as_u64().expect("capacity"))
        .collect();
    assert_eq!(shares, [513, 512]);
    let (status, out) = i.stop();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("capacity 1025 in 2 table(s), exactly as configured"),
        "{out}"
    );
}

#[test]
fn stray_signals_leave_it_forwarding_and_sigterm_still_stops_it() {
    let dir = tmp("signals");
    let cfg = config(
        &dir,
        "net_null0",
        "net_null1",
        "dataplane: {hugepages: off}\n",
    );
    let prefix = format!("life-{}-sig", std::process::id());
    let mut i = Instance::start(&dir, &cfg, &["--file-prefix", &prefix], &[]);
    let forwarded = |i: &Instance| {
        i.stats()["counters"]["accepted"]
            .as_u64()
            .expect("counters.accepted")
    };
    // Each of these ended the process before (their default action is to terminate).
    let sent = [
        "USR1", "USR2", "ALRM", "VTALRM", "PROF", "IO", "PWR", "RTMIN+1",
    ];
    for sig in sent {
        kill(sig, i.pid());
    }
    // Every one has been received once the log says so for the last.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !i.output().contains("SIGRTMIN+1 received and ignored") {
        assert!(i.alive(), "ctfw ended on a stray signal:\n{}", i.output());
        assert!(Instant::now() < deadline, "not logged:\n{}", i.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still forwarding: net_null keeps sending, so the count keeps growing.
    let after = forwarded(&i);
    let deadline = Instant::now() + Duration::from_secs(20);
    while forwarded(&i) <= after {
        assert!(Instant::now() < deadline, "forwarding stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(i.alive());
    let (status, out) = i.stop();
    assert!(status.success(), "{status}: {out}");
    for name in ["SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPWR"] {
        assert!(
            out.contains(&format!("{name} received and ignored")),
            "{out}"
        );
    }
}

#[test]
fn sigterm_during_start_up_says_which_step_and_exits_cleanly() {
    let dir = tmp("startup");
    // The inside port reads a FIFO: the EAL opens it while it probes the devices and waits
    // there for the capture's header, which this test writes only after the signal.
    let fifo = dir.join("in.pcap");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    write_frames(&dir.join("empty.pcap"), 0);
    let d = dir.display();
    let cfg = config(
        &dir,
        &format!("net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/tx-inside.pcap"),
        &format!("net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/tx-outside.pcap"),
        "dataplane: {hugepages: off}\n",
    );
    let mut child = spawn(&dir, &cfg, &[], &[]);
    let pid = child.id();
    // Opening the FIFO to write waits until ctfw opens it to read: then it is inside the
    // EAL's start, its handlers long installed.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    let opener = std::thread::spawn(move || {
        let _ = tx.send(std::fs::OpenOptions::new().write(true).open(path));
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut writer = loop {
        if let Ok(w) = rx.recv_timeout(Duration::from_millis(20)) {
            break w.expect("open the FIFO");
        }
        if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
            // Release the opener (a reader of our own), then fail.
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo);
            let _ = opener.join();
            let _ = child.kill();
            panic!("ctfw never opened the FIFO:\n{}", printed(&dir));
        }
    };
    opener.join().expect("opener");
    kill("TERM", pid);
    // Let the EAL go on: a pcap header and no packet.
    // (Fails if the signal ended it: the status below says so.)
    let _ = writer.write_all(&std::fs::read(dir.join("empty.pcap")).expect("header"));
    drop(writer);
    let status = wait_for(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("ctfw did not stop:\n{}", printed(&dir)));
    let out = printed(&dir);
    // Before, SIGTERM ended the process where it was, without a word (status 143 in a shell).
    assert!(status.success(), "{status}: {out}");
    assert!(
        out.contains("SIGTERM received during start-up, while starting the EAL"),
        "{out}"
    );
    assert!(
        !out.contains("ctfw run: "),
        "it stopped before the layout: {out}"
    );
    assert!(
        !dpdk_base().join(format!("ctfw-{pid}")).exists(),
        "its runtime directory is removed"
    );
}

#[test]
fn hugepages_auto_falls_back_in_place_when_the_eal_cannot_have_them() {
    // Hugepages of every size, in MiB: `nr_hugepages` (all) or `free_hugepages`.
    let hugepage_mb = |file: &str| -> u64 {
        std::fs::read_dir("/sys/kernel/mm/hugepages")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let kb: u64 = name
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse()
                    .ok()?;
                let n: u64 = std::fs::read_to_string(e.path().join(file))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some(kb * n / 1024)
            })
            .sum()
    };
    // One MiB more than all the hugepages there are, free or not (`-m` in dataplane.eal_args
    // wins over memory_mb): the hugepage EAL fails, and auto mode starts again without.
    let over_mb = hugepage_mb("nr_hugepages") + 1;
    let free_mb = hugepage_mb("free_hugepages");
    let mounted = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| m.contains(" hugetlbfs "));
    let has_hugepages = mounted && free_mb >= 16;
    let require = std::env::var("CTFW_REQUIRE_HUGEPAGES").is_ok_and(|v| v == "1");
    assert!(
        has_hugepages || !require,
        "CTFW_REQUIRE_HUGEPAGES=1 but no free hugepages"
    );
    let dir = tmp("fallback");
    let (inside, outside) = quiet_devices(&dir);
    let cfg = config(
        &dir,
        &inside,
        &outside,
        &format!("dataplane: {{hugepages: auto, memory_mb: 16, eal_args: ['-m', '{over_mb}']}}\n"),
    );
    let out = run_to_end(&dir, &cfg, &["--idle-exit", "0.2"], &[]);
    let all = printed(&dir);
    // Before, the restart was a child process, refused by its own parent's control socket.
    assert!(out.status.success(), "{all}");
    assert!(
        text(&out.stdout).contains("without hugepages (--no-huge)"),
        "{all}"
    );
    if has_hugepages {
        assert!(all.contains("restarting without hugepages"), "{all}");
    } else {
        println!("no free hugepages here: auto ran without them from the start");
    }
}

#[test]
fn runtime_directories_go_at_exit_and_those_of_dead_instances_at_the_next_start() {
    let dir = tmp("leftovers");
    let base = dpdk_base();
    std::fs::create_dir_all(&base).expect("runtime base");
    // A process that has ended: its pid is free.
    let mut gone = Command::new("true").spawn().expect("true");
    gone.wait().expect("wait");
    // A live process that is not ctfw (as when a pid is reused).
    let mut other = Command::new("sleep").arg("60").spawn().expect("sleep");
    let stale = [
        base.join(format!("ctfw-{}", gone.id())),
        base.join(format!("ctfw-{}", other.id())),
    ];
    for d in &stale {
        std::fs::create_dir_all(d).expect("stale dir");
    }
    // A file such as a shared configuration would leave.
    std::fs::write(stale[0].join("config"), b"").expect("file");
    // Not ours to remove: other prefixes.
    let foreign = [
        base.join(format!("ctfw-{}-x", gone.id())),
        base.join(format!("life-{}-foreign", gone.id())),
    ];
    for d in &foreign {
        std::fs::create_dir_all(d).expect("foreign dir");
    }
    // A live instance with the default prefix keeps its directory.
    let live_dir = dir.join("live");
    std::fs::create_dir_all(&live_dir).expect("dir");
    let (i_in, i_out) = quiet_devices(&live_dir);
    let live_cfg = config(&live_dir, &i_in, &i_out, "dataplane: {hugepages: off}\n");
    let live = Instance::start(&live_dir, &live_cfg, &[], &[]);
    let live_rt = base.join(format!("ctfw-{}", live.pid()));
    assert!(live_rt.is_dir(), "{}", live_rt.display());

    // Another instance starts and ends.
    let (inside, outside) = quiet_devices(&dir);
    let cfg = config(&dir, &inside, &outside, "dataplane: {hugepages: off}\n");
    let prefix = format!("life-{}-rt", std::process::id());
    let out = run_to_end(
        &dir,
        &cfg,
        &["--file-prefix", &prefix, "--idle-exit", "0.2"],
        &[],
    );
    assert!(out.status.success(), "{}", printed(&dir));
    let _ = other.kill();
    let _ = other.wait();

    // Before: its own directory stayed, and so did every stale one.
    assert!(
        !base.join(&prefix).exists(),
        "its own directory is removed at exit"
    );
    for d in &stale {
        assert!(!d.exists(), "{} is removed", d.display());
    }
    for d in &foreign {
        assert!(d.exists(), "{} is not ctfw's to remove", d.display());
        std::fs::remove_dir(d).expect("clean up");
    }
    assert!(live_rt.is_dir(), "a live instance keeps its directory");
    let (status, o) = live.stop();
    assert!(status.success(), "{o}");
    assert!(!live_rt.exists(), "removed when it exits");
}

#[test]
fn a_second_instance_on_the_same_capture_file_is_refused() {
    let dir = tmp("samefile");
    write_frames(&dir.join("in.pcap"), 5);
    write_frames(&dir.join("empty.pcap"), 0);
    let d = dir.display();
    let first_dir = dir.join("first");
    std::fs::create_dir_all(&first_dir).expect("dir");
    let first_cfg = config(
        &first_dir,
        &format!("net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/tx-inside.pcap"),
        &format!("net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/out.pcap"),
        "dataplane: {hugepages: off}\n",
    );
    let prefix = format!("life-{}-file", std::process::id());
    let mut first = Instance::start(&first_dir, &first_cfg, &["--file-prefix", &prefix], &[]);
    // The five frames go out on `outside`, into out.pcap.
    first.stats_when(|s| s["counters"]["accepted"] == 5);
    let written = std::fs::read(dir.join("out.pcap")).expect("out.pcap");

    // The same file, spelled another way.
    let second_dir = dir.join("second");
    std::fs::create_dir_all(&second_dir).expect("dir");
    let second_cfg = config(
        &second_dir,
        &format!("net_pcap0,rx_pcap={d}/empty.pcap,tx_pcap={d}/tx-second.pcap"),
        &format!("net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/first/../out.pcap"),
        "dataplane: {hugepages: off}\n",
    );
    let prefix2 = format!("life-{}-file2", std::process::id());
    let out = run_to_end(
        &second_dir,
        &second_cfg,
        &["--file-prefix", &prefix2, "--idle-exit", "0.2"],
        &[],
    );
    let err = text(&out.stderr);
    // Before: it started, and its pcap device truncated out.pcap under the first instance.
    assert_eq!(out.status.code(), Some(1), "{}", printed(&second_dir));
    assert!(
        err.contains("port outside")
            && err.contains(&format!("tx_pcap file {d}/out.pcap"))
            && err.contains("in use by another ctfw instance")
            && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("out.pcap")).expect("out.pcap"),
        written,
        "the first instance's output is untouched"
    );
    assert!(first.alive());

    // Reading a capture another instance reads is fine.
    let third_dir = dir.join("third");
    std::fs::create_dir_all(&third_dir).expect("dir");
    let third_cfg = config(
        &third_dir,
        &format!("net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/tx-third-in.pcap"),
        &format!("net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/tx-third-out.pcap"),
        "dataplane: {hugepages: off}\n",
    );
    let prefix3 = format!("life-{}-file3", std::process::id());
    let out = run_to_end(
        &third_dir,
        &third_cfg,
        &["--file-prefix", &prefix3, "--idle-exit", "0.2"],
        &[],
    );
    assert!(out.status.success(), "{}", printed(&third_dir));
    let (status, o) = first.stop();
    assert!(status.success(), "{o}");
}

/// A network namespace with two veth pairs, `d0`-`p0` and `d1`-`p1`, up and without IPv6
/// (the kernel would send its own neighbour discovery), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let ns = format!("life{}{name}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let run = |prog: &str, args: &[&str]| {
            let out = Command::new(prog).args(args).output().expect(prog);
            assert!(
                out.status.success(),
                "{prog} {args:?}: {}",
                text(&out.stderr)
            );
        };
        run("ip", &["netns", "add", &ns]);
        let netns = Netns(ns);
        let ns = netns.0.as_str();
        for (a, b) in [("d0", "p0"), ("d1", "p1")] {
            run(
                "ip",
                &[
                    "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b,
                ],
            );
        }
        for i in ["d0", "p0", "d1", "p1"] {
            let sysctl = format!("net.ipv6.conf.{i}.disable_ipv6=1");
            run("ip", &["netns", "exec", ns, "sysctl", "-qw", &sysctl]);
            run("ip", &["-n", ns, "link", "set", i, "up"]);
        }
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn a_second_instance_on_the_same_interface_is_refused() {
    let ns = Netns::new("if");
    let wrap = ["ip", "netns", "exec", ns.0.as_str()];
    let dir = tmp("sameiface");
    let first_dir = dir.join("first");
    let second_dir = dir.join("second");
    for d in [&first_dir, &second_dir] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let devices = ("net_pcap0,iface=d0", "net_pcap1,iface=d1");
    let body = "dataplane: {hugepages: off}\n";
    let first_cfg = config(&first_dir, devices.0, devices.1, body);
    let prefix = format!("life-{}-if", std::process::id());
    let mut first = Instance::start(&first_dir, &first_cfg, &["--file-prefix", &prefix], &wrap);
    let second_cfg = config(&second_dir, devices.0, devices.1, body);
    let prefix2 = format!("life-{}-if2", std::process::id());
    let out = run_to_end(
        &second_dir,
        &second_cfg,
        &["--file-prefix", &prefix2, "--idle-exit", "0.2"],
        &wrap,
    );
    let err = text(&out.stderr);
    // Before: the second started too, and both polled d0 and d1.
    assert_eq!(out.status.code(), Some(1), "{}", printed(&second_dir));
    assert!(
        err.contains("port inside")
            && err.contains("interface d0 is in use by another ctfw instance")
            && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
    assert!(first.alive());
    let (status, o) = first.stop();
    assert!(status.success(), "{o}");
}

#[test]
fn replay_of_a_capture_cut_short_reports_what_it_read_then_fails() {
    let dir = tmp("replay");
    let full = dir.join("full.pcap");
    write_frames(&full, 5);
    let bytes = std::fs::read(&full).expect("capture");
    // The last record loses its last ten bytes.
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).expect("cut");
    let cfg = config(&dir, "net_null0", "net_null1", "");
    let report = dir.join("report.json");
    let out = ctfw(&[
        "replay",
        "--config",
        cfg.to_str().expect("utf8"),
        "--port",
        "inside",
        "--report-json",
        report.to_str().expect("utf8"),
        cut.to_str().expect("utf8"),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // Before: the error alone, and no summary of the four packets read.
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("cut short") && stdout.contains("packets 4 "),
        "{stdout}"
    );
    assert!(
        stderr.contains("stopped after 4 packet(s)") && stderr.contains("truncated pcap record"),
        "{stderr}"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(json["counters"]["packets"], 4);
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("truncated")),
        "{json}"
    );
}
