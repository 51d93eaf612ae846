//! The mempool-ops check behind `Mempool`'s `Send`/`Sync` (see `rte/src/mempool.rs`): with the
//! EAL option `--mbuf-pool-ops-name=ring_sp_sc` in force, DPDK creates mbuf pools on the
//! single-producer/consumer ring ops (Debian's `librte_mempool_ring` provides them), and
//! `Mempool::pktmbuf` must refuse such a pool, name the ops and the option, and free it.
//! Runs without hugepages. See `common/mod.rs` for why this is a `harness = false` binary.

#[macro_use]
mod common;

use std::process::ExitCode;

use common::{Ctx, Mode, err, note};
use rte::{Mempool, RteError, sys};

const TEST_NAME: &str = "mempool_ops";

fn main() -> ExitCode {
    if let Some(code) = common::handle_cli(TEST_NAME) {
        return code;
    }
    let mut args = common::base_args("ctfw-rte-ops");
    args.extend(
        [
            "--no-huge",
            "--no-shconf",
            "-m",
            "256",
            "--mbuf-pool-ops-name=ring_sp_sc",
        ]
        .map(String::from),
    );
    let mode = Mode {
        label: "no hugepages, single-producer/consumer mbuf pool ops".into(),
        args,
    };
    match common::init(TEST_NAME, &mode) {
        Ok(eal) => common::run_check_list(
            TEST_NAME,
            &mode,
            eal,
            &[("sp_sc_mempool_ops_are_refused", sp_sc_ops_refused)],
        ),
        Err(e) => {
            println!("{TEST_NAME}: EAL init failed: {e}");
            println!("{TEST_NAME}: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn sp_sc_ops_refused(ctx: &mut Ctx) -> Result<(), String> {
    let create = || {
        Mempool::pktmbuf(
            &ctx.eal,
            "rte_test_sp_sc",
            1023,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::SOCKET_ID_ANY,
        )
    };
    let first = create();
    let shown = first.as_ref().err().map(ToString::to_string);
    note(format!(
        "refused: {}",
        shown.as_deref().unwrap_or("(accepted)")
    ));
    match &first {
        Err(RteError::MempoolOps { pool, ops, cause }) => {
            ensure!(pool == "rte_test_sp_sc", "pool {pool}");
            ensure!(ops == "ring_sp_sc", "ops {ops}");
            ensure!(
                cause.contains("--mbuf-pool-ops-name=ring_sp_sc"),
                "cause does not name the EAL option: {cause}"
            );
        }
        other => return Err(format!("expected a MempoolOps error, got {other:?}")),
    }
    // The refused pool was freed: its name can be used again (a live pool would make DPDK
    // fail with EEXIST instead), and it is refused again for the same reason.
    let second = create();
    ensure!(
        matches!(second, Err(RteError::MempoolOps { .. })),
        "second attempt: {}",
        second.err().map(err).unwrap_or_else(|| "accepted".into())
    );
    Ok(())
}
