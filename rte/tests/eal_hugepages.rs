//! DPDK checks on hugepages (`--in-memory`), falling back to `--no-huge` when the machine
//! has too few free 2 MB hugepages or the hugepage EAL cannot start. The mode that ran is
//! printed. A failed `rte_eal_init` cannot be retried in the same process, so the fallback
//! re-runs this binary with `CTFW_RTE_TEST_NOHUGE=1`.

mod common;

use std::process::{Command, ExitCode};

const TEST_NAME: &str = "eal_hugepages";
const FORCE_NOHUGE: &str = "CTFW_RTE_TEST_NOHUGE";
/// 64 MB: the pool (~10 MB), net_ring's rings and EAL overhead, with room to spare.
const MIN_FREE_PAGES: u64 = 32;

fn main() -> ExitCode {
    if let Some(code) = common::handle_cli(TEST_NAME) {
        return code;
    }
    let free = free_2mb_hugepages();
    let mut args = common::base_args("ctfw-rte-huge");
    let forced = std::env::var_os(FORCE_NOHUGE).is_some();
    if forced || free < MIN_FREE_PAGES {
        let why = if forced {
            "the hugepage EAL failed to start".to_string()
        } else {
            format!("only {free} free 2 MB hugepages, need {MIN_FREE_PAGES}")
        };
        args.extend(["--no-huge", "--no-shconf", "-m", "256"].map(String::from));
        let label = format!("no hugepages (fallback: {why})");
        return common::run(TEST_NAME, common::Mode { label, args });
    }
    args.push("--in-memory".into());
    let label = format!("hugepages (--in-memory; {free} free 2 MB pages)");
    let mode = common::Mode { label, args };
    match common::init(TEST_NAME, &mode) {
        Ok(eal) => common::run_checks(TEST_NAME, &mode, eal),
        Err(err) => {
            println!("{TEST_NAME}: hugepage EAL init failed ({err}); re-running with --no-huge");
            rerun_without_hugepages()
        }
    }
}

fn rerun_without_hugepages() -> ExitCode {
    let status = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(FORCE_NOHUGE, "1")
            .status()
    });
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            println!("{TEST_NAME}: cannot re-run: {err}");
            println!("{TEST_NAME}: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn free_2mb_hugepages() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
