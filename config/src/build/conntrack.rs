//! `conntrack`: the engine's tracking knobs, its table capacity, checksum and fragment
//! policies, and the per-state timeouts under `conntrack.timeouts`.
//!
//! The knobs and timeouts default to the engine's values (Linux's), read from
//! [`TrackConfig::default`] and [`ParseConfig::default`] rather than written again here; the
//! capacity defaults to 262144 entries. Timeouts are whole seconds, 1 to [`MAX_TIMEOUT_SECS`].

use ctfw_engine::pipeline::{EngineConfig, FragmentPolicy, NonIpPolicy};
use ctfw_engine::time::{MAX_TIMEOUT_SECS, Ticks};
use ctfw_engine::track::TrackConfig;
use ctfw_engine::wire::ParseConfig;

use super::Ctx;
use crate::error::ConfigError;
use crate::raw::{RawConntrack, TIMEOUTS};

/// Smallest and largest `conntrack.capacity`.
pub(crate) const CAPACITY_RANGE: (u64, u64) = (1024, 16_777_215);

pub(super) fn build_conntrack(
    raw: &RawConntrack,
    ctx: &Ctx<'_>,
) -> Result<EngineConfig, ConfigError> {
    let mut track = TrackConfig::default();
    let (lo, hi) = CAPACITY_RANGE;
    let capacity =
        ctx.uint_or(raw.capacity.as_ref(), "conntrack.capacity", lo, hi, 262_144)? as u32;
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
    let parse = ParseConfig {
        verify_l4_checksum: ctx.boolean_or(
            raw.checksum.as_ref(),
            "conntrack.checksum",
            ParseConfig::default().verify_l4_checksum,
        )?,
    };
    let fragments = match &raw.fragments {
        Some(l) => ctx.keyword(
            l.into(),
            "conntrack.fragments",
            &[
                ("drop", FragmentPolicy::Drop),
                ("untracked", FragmentPolicy::Untracked),
            ],
        )?,
        None => FragmentPolicy::default(),
    };
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
                (tk.set)(&mut track, Ticks::from_secs(secs));
            }
        }
    }
    Ok(EngineConfig {
        capacity,
        track,
        parse,
        fragments,
        non_ip: NonIpPolicy::default(),
        peers: Vec::new(),
    })
}
