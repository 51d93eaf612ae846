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
use crate::raw::RawConntrack;

/// Smallest and largest `conntrack.capacity`.
pub(crate) const CAPACITY_RANGE: (u64, u64) = (1024, 16_777_215);

/// One configurable timeout: its YAML key under `conntrack.timeouts` and the engine field it
/// sets. The defaults are the engine's (Linux's), read through `get` from
/// `TrackConfig::default()`, so they are written down once.
pub(crate) struct TimeoutKey {
    /// Key under `conntrack.timeouts`.
    pub key: &'static str,
    /// Reads the field.
    pub get: fn(&TrackConfig) -> Ticks,
    /// Writes the field.
    pub set: fn(&mut TrackConfig, Ticks),
}

/// Every timeout, in the order of the documentation.
pub(crate) const TIMEOUTS: [TimeoutKey; 18] = [
    TimeoutKey {
        key: "tcp_syn_sent",
        get: |t| t.tcp.timeouts.syn_sent,
        set: |t, v| t.tcp.timeouts.syn_sent = v,
    },
    TimeoutKey {
        key: "tcp_syn_recv",
        get: |t| t.tcp.timeouts.syn_recv,
        set: |t, v| t.tcp.timeouts.syn_recv = v,
    },
    TimeoutKey {
        key: "tcp_established",
        get: |t| t.tcp.timeouts.established,
        set: |t, v| t.tcp.timeouts.established = v,
    },
    TimeoutKey {
        key: "tcp_fin_wait",
        get: |t| t.tcp.timeouts.fin_wait,
        set: |t, v| t.tcp.timeouts.fin_wait = v,
    },
    TimeoutKey {
        key: "tcp_close_wait",
        get: |t| t.tcp.timeouts.close_wait,
        set: |t, v| t.tcp.timeouts.close_wait = v,
    },
    TimeoutKey {
        key: "tcp_last_ack",
        get: |t| t.tcp.timeouts.last_ack,
        set: |t, v| t.tcp.timeouts.last_ack = v,
    },
    TimeoutKey {
        key: "tcp_time_wait",
        get: |t| t.tcp.timeouts.time_wait,
        set: |t, v| t.tcp.timeouts.time_wait = v,
    },
    TimeoutKey {
        key: "tcp_close",
        get: |t| t.tcp.timeouts.close,
        set: |t, v| t.tcp.timeouts.close = v,
    },
    TimeoutKey {
        key: "tcp_syn_sent2",
        get: |t| t.tcp.timeouts.syn_sent2,
        set: |t, v| t.tcp.timeouts.syn_sent2 = v,
    },
    TimeoutKey {
        key: "tcp_max_retrans",
        get: |t| t.tcp.timeouts.retrans,
        set: |t, v| t.tcp.timeouts.retrans = v,
    },
    TimeoutKey {
        key: "tcp_unacknowledged",
        get: |t| t.tcp.timeouts.unack,
        set: |t, v| t.tcp.timeouts.unack = v,
    },
    TimeoutKey {
        key: "udp",
        get: |t| t.other.udp_unreplied,
        set: |t, v| t.other.udp_unreplied = v,
    },
    TimeoutKey {
        key: "udp_stream",
        get: |t| t.other.udp_stream,
        set: |t, v| t.other.udp_stream = v,
    },
    TimeoutKey {
        key: "icmp",
        get: |t| t.other.icmp,
        set: |t, v| t.other.icmp = v,
    },
    TimeoutKey {
        key: "icmpv6",
        get: |t| t.other.icmpv6,
        set: |t, v| t.other.icmpv6 = v,
    },
    TimeoutKey {
        key: "gre",
        get: |t| t.other.gre_unreplied,
        set: |t, v| t.other.gre_unreplied = v,
    },
    TimeoutKey {
        key: "gre_stream",
        get: |t| t.other.gre_stream,
        set: |t, v| t.other.gre_stream = v,
    },
    TimeoutKey {
        key: "generic",
        get: |t| t.other.generic,
        set: |t, v| t.other.generic = v,
    },
];

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
        for tk in &TIMEOUTS {
            if let Some(leaf) = t.value.get(tk.key) {
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
