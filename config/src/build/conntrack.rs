//! `conntrack`: the engine's tracking knobs, its table capacity, checksum and fragment
//! policies, and the per-state timeouts under `conntrack.timeouts`.
//!
//! Everything but the capacity defaults to the engine's values (Linux's), read from
//! [`EngineConfig::linux_defaults`] rather than written again here. The capacity is
//! [`MIN_CAPACITY`] to [`MAX_CAPACITY`] entries, 262144 by default; timeouts are whole seconds,
//! 1 to [`MAX_TIMEOUT_SECS`].

use ctfw_engine::pipeline::{EngineConfig, FragmentPolicy};
use ctfw_engine::table::MAX_CAPACITY;
use ctfw_engine::time::{MAX_TIMEOUT_SECS, Ticks};

use super::Ctx;
use crate::MIN_CAPACITY;
use crate::error::ConfigError;
use crate::raw::{RawConntrack, TIMEOUTS};

/// `conntrack.capacity` when the file gives none.
const DEFAULT_CAPACITY: u32 = 262_144;

/// Validates `conntrack` into the engine's configuration, all but its peers and non-IP
/// policy.
pub(super) fn build(raw: &RawConntrack, ctx: &Ctx<'_>) -> Result<EngineConfig, ConfigError> {
    // The peers and the non-IP policy come from other keys: the caller sets them.
    let mut engine = EngineConfig::linux_defaults(DEFAULT_CAPACITY, Vec::new());
    engine.capacity = ctx.uint_or(
        raw.capacity.as_ref(),
        "conntrack.capacity",
        MIN_CAPACITY.into(),
        MAX_CAPACITY.into(),
        engine.capacity.into(),
    )? as u32;
    let track = &mut engine.track;
    track.tcp.loose = ctx.boolean_or(raw.loose.as_ref(), "conntrack.loose", track.tcp.loose)?;
    track.tcp.be_liberal = ctx.boolean_or(
        raw.be_liberal.as_ref(),
        "conntrack.be_liberal",
        track.tcp.be_liberal,
    )?;
    track.tcp.max_retrans = ctx.uint_or(
        raw.max_retrans.as_ref(),
        "conntrack.max_retrans",
        0,
        255,
        track.tcp.max_retrans.into(),
    )? as u8;
    track.tcp.ignore_invalid_rst = ctx.boolean_or(
        raw.ignore_invalid_rst.as_ref(),
        "conntrack.ignore_invalid_rst",
        track.tcp.ignore_invalid_rst,
    )?;
    engine.parse.verify_l4_checksum = ctx.boolean_or(
        raw.checksum.as_ref(),
        "conntrack.checksum",
        engine.parse.verify_l4_checksum,
    )?;
    engine.accounting = ctx.boolean_or(
        raw.accounting.as_ref(),
        "conntrack.accounting",
        engine.accounting,
    )?;
    if let Some(l) = &raw.fragments {
        engine.fragments = ctx.keyword(
            l.into(),
            "conntrack.fragments",
            &[
                ("drop", FragmentPolicy::Drop),
                ("untracked", FragmentPolicy::Untracked),
            ],
        )?;
    }
    if let Some(t) = &raw.timeouts {
        for tk in TIMEOUTS {
            if let Some(leaf) = (tk.raw)(&t.value) {
                let key = format!("conntrack.timeouts.{}", tk.key);
                let secs = ctx.uint(
                    leaf.into(),
                    &key,
                    1,
                    MAX_TIMEOUT_SECS.into(),
                    " seconds (at most 30 days)",
                )? as u32;
                (tk.set)(&mut engine.track, Ticks::from_secs(secs));
            }
        }
    }
    Ok(engine)
}
