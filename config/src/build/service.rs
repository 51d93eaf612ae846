//! `control`, `metrics` and `log`: how operators reach and read a running instance. Each key
//! has a default ([`Control::default`], [`Metrics::default`], [`Logging::default`]); what is
//! given is checked here so that `ctfw run` can bind and open without further checks.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Ctx;
use crate::error::ConfigError;
use crate::raw::{RawControl, RawLog, RawMetrics};
use crate::{Control, LogTarget, Logging, Metrics};

/// The largest log rate and burst: far beyond what a log reader keeps up with, small enough
/// for the token bucket's arithmetic.
const MAX_LOG_RATE: u64 = 1_000_000;

/// Validates `control`.
pub(super) fn control(raw: Option<&RawControl>, ctx: &Ctx<'_>) -> Result<Control, ConfigError> {
    let mut c = Control::default();
    if let Some(leaf) = raw.and_then(|r| r.socket.as_ref()) {
        let path = ctx.text(leaf.into(), "control.socket", "a socket path")?;
        // sun_path holds 108 bytes including the terminating NUL.
        if !path.starts_with('/') || path.len() > 107 || path.ends_with('/') {
            let what = "an absolute path to a socket file, at most 107 bytes";
            return Err(ctx.expected(leaf.into(), "control.socket", what));
        }
        c.socket = PathBuf::from(path);
    }
    c.client_timeout_secs = ctx.uint_or(
        raw.and_then(|r| r.client_timeout.as_ref()),
        "control.client_timeout",
        1,
        3600,
        c.client_timeout_secs.into(),
    )? as u32;
    Ok(c)
}

/// Validates `metrics`.
pub(super) fn metrics(raw: Option<&RawMetrics>, ctx: &Ctx<'_>) -> Result<Metrics, ConfigError> {
    let mut m = Metrics::default();
    if let Some(leaf) = raw.and_then(|r| r.listen.as_ref()) {
        let text = ctx.text(leaf.into(), "metrics.listen", "an address and port")?;
        let addr: SocketAddr = text.parse().map_err(|_| {
            ctx.expected(
                leaf.into(),
                "metrics.listen",
                "an IP address and port, e.g. 127.0.0.1:9469 or [::1]:9469",
            )
        })?;
        m.listen = Some(addr);
    }
    Ok(m)
}

/// Validates `log`.
pub(super) fn log(raw: Option<&RawLog>, ctx: &Ctx<'_>) -> Result<Logging, ConfigError> {
    let d = Logging::default();
    let Some(raw) = raw else { return Ok(d) };
    let target = match &raw.file {
        None => d.target,
        Some(leaf) => {
            let file = ctx.text(leaf.into(), "log.file", "a file path or stderr")?;
            if file == "stderr" {
                LogTarget::Stderr
            } else if file.starts_with('/') && !file.ends_with('/') {
                LogTarget::File(PathBuf::from(file))
            } else {
                let what = "an absolute file path, or stderr";
                return Err(ctx.expected(leaf.into(), "log.file", what));
            }
        }
    };
    Ok(Logging {
        target,
        rate: ctx.uint_or(
            raw.rate.as_ref(),
            "log.rate",
            1,
            MAX_LOG_RATE,
            d.rate.into(),
        )? as u32,
        burst: ctx.uint_or(
            raw.burst.as_ref(),
            "log.burst",
            1,
            MAX_LOG_RATE,
            d.burst.into(),
        )? as u32,
        policy: ctx.boolean_or(raw.policy.as_ref(), "log.policy", d.policy)?,
    })
}
