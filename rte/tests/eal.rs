//! DPDK checks without hugepages (`--no-huge`): runs anywhere DPDK is installed.
//! See `common/mod.rs` for the checks and why this is a `harness = false` binary.

mod common;

use std::process::ExitCode;

const TEST_NAME: &str = "eal";

fn main() -> ExitCode {
    if let Some(code) = common::handle_cli(TEST_NAME) {
        return code;
    }
    let mut args = common::base_args("ctfw-rte-nohuge");
    args.extend(["--no-huge", "--no-shconf", "-m", "256"].map(String::from));
    common::run(
        TEST_NAME,
        common::Mode {
            label: "no hugepages (--no-huge -m 256)".into(),
            args,
        },
    )
}
