//! DPDK checks on hugepages (`--in-memory`), falling back to `--no-huge` when the machine
//! has too few free 2 MB hugepages or the hugepage EAL cannot start. A failed
//! `rte_eal_init` cannot be retried in the same process, so the fallback re-runs this binary
//! with `CTFW_RTE_TEST_NOHUGE=1`.
//!
//! The mode that ran is printed twice: first (`EAL mode: ...`, with the reason for a
//! fallback) and last (`ran with hugepages` or `ran WITHOUT hugepages`), so a passing run
//! always says which memory mode it tested.
//!
//! `CTFW_REQUIRE_HUGEPAGES=1` makes the fallback a failure: the test then fails, instead of
//! re-running with `--no-huge`, if there are too few free hugepages or the hugepage EAL does
//! not start. CI sets it on machines that have hugepages, so a lost hugepage setup cannot
//! pass silently. Any other value, or none, allows the fallback.

mod common;

use std::process::{Command, ExitCode};

const TEST_NAME: &str = "eal_hugepages";
const FORCE_NOHUGE: &str = "CTFW_RTE_TEST_NOHUGE";
const REQUIRE_HUGEPAGES: &str = "CTFW_REQUIRE_HUGEPAGES";
/// 64 MB: the pool (~10 MB), net_ring's rings and EAL overhead, with room to spare.
const MIN_FREE_PAGES: u64 = 32;

fn main() -> ExitCode {
    if let Some(code) = common::handle_cli(TEST_NAME) {
        return code;
    }
    let required = std::env::var(REQUIRE_HUGEPAGES).is_ok_and(|v| v == "1");
    let free = free_2mb_hugepages();
    let mut args = common::base_args("ctfw-rte-huge");
    let forced = std::env::var_os(FORCE_NOHUGE).is_some();
    if forced || free < MIN_FREE_PAGES {
        let why = if forced {
            "the hugepage EAL failed to start".to_string()
        } else {
            format!("only {free} free 2 MB hugepages, need {MIN_FREE_PAGES}")
        };
        if required {
            return fail(&format!(
                "{REQUIRE_HUGEPAGES}=1, but the hugepage mode cannot run: {why}"
            ));
        }
        args.extend(["--no-huge", "--no-shconf", "-m", "256"].map(String::from));
        let label = format!("no hugepages (fallback: {why})");
        let code = common::run(TEST_NAME, common::Mode { label, args });
        println!(
            "{TEST_NAME}: ran WITHOUT hugepages (--no-huge fallback: {why}); \
             {REQUIRE_HUGEPAGES}=1 makes this a failure"
        );
        return code;
    }
    args.push("--in-memory".into());
    let label = format!("hugepages (--in-memory; {free} free 2 MB pages)");
    let mode = common::Mode { label, args };
    match common::init(TEST_NAME, &mode) {
        Ok(eal) => {
            let code = common::run_checks(TEST_NAME, &mode, eal);
            println!("{TEST_NAME}: ran with hugepages (--in-memory)");
            code
        }
        Err(err) if required => fail(&format!(
            "{REQUIRE_HUGEPAGES}=1, but the hugepage EAL failed to start: {err}"
        )),
        Err(err) => {
            println!("{TEST_NAME}: hugepage EAL init failed ({err}); re-running with --no-huge");
            rerun_without_hugepages()
        }
    }
}

fn fail(why: &str) -> ExitCode {
    println!("{TEST_NAME}: {why}");
    println!("{TEST_NAME}: 0 passed, 1 failed");
    ExitCode::FAILURE
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
        Err(err) => fail(&format!("cannot re-run: {err}")),
    }
}

fn free_2mb_hugepages() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
