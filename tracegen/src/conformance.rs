//! Where the Linux conformance data set is: the one rule every Rust test, benchmark and
//! script follows (`ci/common.sh` has the shell twin).
//!
//! The vendored copy in `tests/linux-conformance/` by default; the environment variable
//! `CTFW_CONFORMANCE_DIR` names another copy (for example a newer `../shared/conformance`).
//! A missing data set is an error, never a reason to skip: [`dir`] panics with what to do.

use std::path::PathBuf;

/// The environment variable that overrides the vendored data set.
pub const ENV: &str = "CTFW_CONFORMANCE_DIR";

/// The conformance data set's directory (holding `traces/`, `expected/` and `compare.py`).
///
/// # Panics
/// If the directory does not hold a data set.
pub fn dir() -> PathBuf {
    let dir = match std::env::var_os(ENV) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/linux-conformance"
        )),
    };
    let complete = ["traces", "expected", "compare.py"]
        .iter()
        .all(|p| dir.join(p).exists());
    assert!(
        complete,
        "no Linux conformance data set (traces/, expected/, compare.py) at {}: restore \
         tests/linux-conformance or set {ENV}",
        dir.display()
    );
    dir
}
