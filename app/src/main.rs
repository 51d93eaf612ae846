//! `ctfw`: a stateful firewall with Linux-exact connection tracking.
//!
//! Subcommands:
//! - `check-config FILE`: validate a configuration and print a summary;
//! - `replay --config FILE TRACE`: run the engine's burst pipeline over a capture with the
//!   packet timestamps as the clock; print a summary or write per-packet JSON records;
//! - `run --config FILE`: the firewall itself, the DPDK data plane on the configured ports;
//! - `conntrack list|count|delete|flush|events`, `stats`, `rules`, `reload`: talk to a running
//!   instance over its control socket (`docs/control-protocol.md`).
//!
//! Everything unsafe about DPDK lives in `rte`; this crate has no `unsafe` code.

#![forbid(unsafe_code)]

/// `println!` that ends the process quietly when stdout is closed (`ctfw ... | head`)
/// instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod capture;
mod control;
mod json;
mod metrics;
mod records;
mod replay;
mod run;
mod stats;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The largest burst, of `dataplane.burst` and of `replay --burst`: burst buffers are this big.
const MAX_BURST: usize = ctfw_config::MAX_BURST as usize;

/// ctfw: a stateful firewall with Linux-exact connection tracking.
#[derive(Debug, Parser)]
#[command(name = "ctfw", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file and print what it means.
    CheckConfig {
        /// The YAML configuration.
        file: PathBuf,
    },
    /// Run the engine over a capture (pcapng or pcap), packet timestamps as the clock.
    Replay(replay::Args),
    /// Run the firewall: the DPDK data plane on the configured ports.
    Run(run::Args),
    /// The connection table of a running instance: list, count, delete, flush, events.
    Conntrack(control::cli::ConntrackArgs),
    /// The running instance's counters.
    Stats {
        #[command(flatten)]
        target: control::cli::Target,
        #[command(flatten)]
        out: control::cli::OutputArg,
    },
    /// The running rule set, with the packets each rule decided since the last reload.
    Rules {
        #[command(flatten)]
        target: control::cli::Target,
        #[command(flatten)]
        out: control::cli::OutputArg,
    },
    /// Make the running instance re-read its configuration file (as SIGHUP does).
    Reload {
        #[command(flatten)]
        target: control::cli::Target,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CTFW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Replay(args) => replay::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Conntrack(args) => control::cli::conntrack(&args),
        Command::Stats { target, out } => control::cli::stats(&target, out.output),
        Command::Rules { target, out } => control::cli::rules(&target, out.output),
        Command::Reload { target } => control::cli::reload(&target),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctfw: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let cfg = ctfw_config::Config::load(file)?;
    outln!("{}: OK", file.display());
    print!("{}", cfg.summary());
    Ok(())
}
