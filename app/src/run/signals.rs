//! Which signals `ctfw run` acts on, and what it does with the rest, from its first
//! instruction to its last.
//!
//! - SIGINT and SIGTERM stop it. During start-up they are noted and checked between steps
//!   ([`Signals::check`]): start-up stops at the next step, undoes what it did (the EAL, the
//!   ports and the files are released as at any exit), says which step it was in, and the
//!   process exits 0. Once forwarding, the control loop drains and reports as usual.
//! - SIGHUP asks for a reload (the service reads the flag: [`Signals::hup`]).
//! - Every other signal whose default action would end the process without ctfw meaning it
//!   to is caught and ignored, the first of each kind with a line in the log: SIGUSR1,
//!   SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT and the real-time signals.
//!   A handler another library installed for one of them keeps being called (the handlers
//!   are chained).
//! - Left at their default, on purpose: SIGKILL and SIGSTOP (cannot be caught); SIGQUIT (the
//!   operator's "stop now, with a core dump"); the faults SIGSEGV, SIGBUS, SIGFPE, SIGILL,
//!   SIGTRAP, SIGSYS and SIGABRT (which a panic raises in release builds: returning from them
//!   would run on corrupt state); SIGXCPU and SIGXFSZ (limits the operator set). SIGPIPE is
//!   already ignored by the Rust runtime: a write to a closed socket or pipe fails with
//!   `EPIPE` instead. SIGCHLD, SIGURG, SIGWINCH and SIGCONT are ignored by default, and SIGTSTP,
//!   SIGTTIN and SIGTTOU stop rather than end the process.
//!
//! Handlers are installed by the first thing `ctfw run` does, so no window at start-up is left
//! where one of these signals would kill it; they end with the process or when it executes
//! itself again without hugepages (the new image installs them again at once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use rte::os::{SIGPWR, SIGSTKFLT};
use signal_hook::consts::signal::{
    SIGALRM, SIGHUP, SIGINT, SIGIO, SIGPROF, SIGTERM, SIGUSR1, SIGUSR2, SIGVTALRM,
};
use tracing::{debug, info};

/// The classic signals ignored on purpose (the real-time ones are added at run time).
const IGNORED: [i32; 8] = [
    SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT,
];

/// The flags the handlers set.
#[derive(Debug)]
pub struct Signals {
    /// Set by SIGINT or SIGTERM: stop.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP: reload.
    pub hup: Arc<AtomicBool>,
    /// The number of the last stop signal received (0: none).
    which: Arc<AtomicUsize>,
}

/// Start-up was stopped by a signal: which, and in which step. Not a failure: `ctfw run`
/// reports it and exits 0.
#[derive(Debug, thiserror::Error)]
#[error(
    "{signal} received during start-up, while {step}: stopped before forwarding any packet \
     (everything started so far is released)"
)]
pub struct Interrupted {
    /// The signal's name.
    pub signal: String,
    /// The start-up step it arrived in.
    pub step: &'static str,
}

impl Signals {
    /// Install every handler (see the module documentation).
    pub fn install() -> Result<Signals> {
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_usize(sig, Arc::clone(&s.which), sig as usize)
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&s.stop)))
                .context("cannot install the SIGINT and SIGTERM handlers")?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&s.hup))
            .context("cannot install the SIGHUP handler")?;
        let ignored: Vec<i32> = IGNORED
            .into_iter()
            .chain(rte::os::realtime_signals())
            .collect();
        let mut iter = signal_hook::iterator::Signals::new(&ignored)
            .context("cannot install handlers for the signals ctfw ignores")?;
        std::thread::Builder::new()
            .name("ctfw-signals".into())
            .spawn(move || {
                let mut seen = Vec::new();
                for sig in iter.forever() {
                    if seen.contains(&sig) {
                        debug!("{} received and ignored", name(sig));
                    } else {
                        seen.push(sig);
                        info!(
                            "{} received and ignored: ctfw stops on SIGINT and SIGTERM and \
                             reloads on SIGHUP (further {0} are ignored without a word)",
                            name(sig)
                        );
                    }
                }
            })
            .context("cannot start the thread that logs ignored signals")?;
        Ok(s)
    }

    /// `Err(Interrupted)` if a stop signal has arrived; `step` names the start-up step that
    /// just ran (the signal arrived during it, or before).
    pub fn check(&self, step: &'static str) -> Result<(), Interrupted> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(Interrupted {
                signal: name(self.which.load(Ordering::Relaxed) as i32),
                step,
            });
        }
        Ok(())
    }
}

/// A signal's name, for the log.
fn name(sig: i32) -> String {
    const NAMES: [(i32, &str); 11] = [
        (SIGINT, "SIGINT"),
        (SIGTERM, "SIGTERM"),
        (SIGHUP, "SIGHUP"),
        (SIGUSR1, "SIGUSR1"),
        (SIGUSR2, "SIGUSR2"),
        (SIGALRM, "SIGALRM"),
        (SIGVTALRM, "SIGVTALRM"),
        (SIGPROF, "SIGPROF"),
        (SIGIO, "SIGIO"),
        (SIGPWR, "SIGPWR"),
        (SIGSTKFLT, "SIGSTKFLT"),
    ];
    let rt = rte::os::realtime_signals();
    match NAMES.iter().find(|(n, _)| *n == sig) {
        Some((_, s)) => (*s).to_owned(),
        None if rt.contains(&sig) => format!("SIGRTMIN+{}", sig - rt.start()),
        None => format!("signal {sig}"),
    }
}
