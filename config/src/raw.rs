//! The configuration file as written: serde structs that mirror the YAML schema.
//!
//! These types only give the document its shape: which keys exist (every struct denies
//! unknown fields) and which are mappings or lists. Every leaf is kept as a located, untyped
//! [`Scalar`] (or a [`OneOrMany`] list of them) so that the validation in `build` can say, in
//! its own words and with the line of the offending value, what was expected and what was
//! found: `expected a whole number between 1024 and 16777215, got "lots"` reads better than a
//! deserializer's `invalid u32`.
//!
//! One list here says more than the shape: the timeout keys, each written beside the engine
//! field it sets, so that the keys exist once ([`TIMEOUTS`] for validation and the summary,
//! [`RawTimeouts`] for serde).

use core::fmt;

use ctfw_engine::time::Ticks;
use ctfw_engine::track::TrackConfig;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A located scalar.
pub(crate) type Leaf = Spanned<Scalar>;
/// A located scalar or list of scalars.
pub(crate) type Items = Spanned<OneOrMany>;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub ports: Option<Spanned<Vec<Spanned<RawPort>>>>,
    pub dataplane: Option<Spanned<RawDataplane>>,
    pub conntrack: Option<Spanned<RawConntrack>>,
    pub non_ip: Option<Leaf>,
    pub policy: Option<Leaf>,
    pub rules: Option<Spanned<Vec<Spanned<RawRule>>>>,
    pub control: Option<Spanned<RawControl>>,
    pub metrics: Option<Spanned<RawMetrics>>,
    pub log: Option<Spanned<RawLog>>,
}

/// `control`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub socket: Option<Leaf>,
    pub client_timeout: Option<Leaf>,
}

/// `metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Option<Leaf>,
}

/// `log`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub file: Option<Leaf>,
    pub rate: Option<Leaf>,
    pub burst: Option<Leaf>,
    pub policy: Option<Leaf>,
}

/// One entry of `ports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub name: Option<Leaf>,
    pub device: Option<Leaf>,
    pub peer: Option<Leaf>,
    pub mtu: Option<Leaf>,
}

/// `dataplane`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataplane {
    pub workers: Option<Leaf>,
    pub lcores: Option<Leaf>,
    pub main_lcore: Option<Leaf>,
    pub memory_mb: Option<Leaf>,
    pub hugepages: Option<Leaf>,
    pub file_prefix: Option<Leaf>,
    pub burst: Option<Leaf>,
    pub rx_descriptors: Option<Leaf>,
    pub tx_descriptors: Option<Leaf>,
    pub mbufs_per_port: Option<Leaf>,
    pub eal_args: Option<Items>,
}

/// `conntrack`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConntrack {
    pub capacity: Option<Leaf>,
    pub loose: Option<Leaf>,
    pub be_liberal: Option<Leaf>,
    pub max_retrans: Option<Leaf>,
    pub ignore_invalid_rst: Option<Leaf>,
    pub checksum: Option<Leaf>,
    pub fragments: Option<Leaf>,
    pub accounting: Option<Leaf>,
    pub timeouts: Option<Spanned<RawTimeouts>>,
}

/// One timeout under `conntrack.timeouts`: its YAML key, where the file gives it, and the
/// engine field it sets. The defaults are the engine's (Linux's), read through `get` from
/// `TrackConfig::default()`, so they are written down once.
pub(crate) struct TimeoutKey {
    /// Key under `conntrack.timeouts`.
    pub key: &'static str,
    /// The value the file gives for it, if any.
    pub raw: fn(&RawTimeouts) -> Option<&Leaf>,
    /// Reads the engine field.
    pub get: fn(&TrackConfig) -> Ticks,
    /// Writes the engine field.
    pub set: fn(&mut TrackConfig, Ticks),
}

/// Makes the timeout list below into [`RawTimeouts`] (one field per key, named as the key, for
/// serde) and [`TIMEOUTS`] (one [`TimeoutKey`] per key, in the order given).
macro_rules! timeouts {
    ($($key:ident => $($field:ident).+,)+) => {
        /// `conntrack.timeouts`, in seconds. Field names are the YAML keys.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawTimeouts {
            $(pub $key: Option<Leaf>,)+
        }

        /// Every timeout, in the order of the documentation.
        pub(crate) const TIMEOUTS: &[TimeoutKey] = &[$(TimeoutKey {
            key: stringify!($key),
            raw: |t| t.$key.as_ref(),
            get: |t| t.$($field).+,
            set: |t, v| t.$($field).+ = v,
        },)+];
    };
}

// Every timeout, written once: the YAML key (as in `docs/config.md`, in its order) => the
// `TrackConfig` field it sets.
timeouts! {
    tcp_syn_sent => tcp.timeouts.syn_sent,
    tcp_syn_recv => tcp.timeouts.syn_recv,
    tcp_established => tcp.timeouts.established,
    tcp_fin_wait => tcp.timeouts.fin_wait,
    tcp_close_wait => tcp.timeouts.close_wait,
    tcp_last_ack => tcp.timeouts.last_ack,
    tcp_time_wait => tcp.timeouts.time_wait,
    tcp_close => tcp.timeouts.close,
    tcp_syn_sent2 => tcp.timeouts.syn_sent2,
    tcp_max_retrans => tcp.timeouts.retrans,
    tcp_unacknowledged => tcp.timeouts.unack,
    udp => other.udp_unreplied,
    udp_stream => other.udp_stream,
    icmp => other.icmp,
    icmpv6 => other.icmpv6,
    gre => other.gre_unreplied,
    gre_stream => other.gre_stream,
    generic => other.generic,
}

/// One entry of `rules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: Option<Leaf>,
    pub action: Option<Leaf>,
    pub ct_state: Option<Items>,
    pub in_port: Option<Items>,
    pub out_port: Option<Items>,
    pub family: Option<Leaf>,
    pub proto: Option<Leaf>,
    pub src: Option<Items>,
    pub dst: Option<Items>,
    pub sport: Option<Items>,
    pub dport: Option<Items>,
    pub tcp_flags: Option<Spanned<RawTcpFlags>>,
    pub syn: Option<Leaf>,
    pub log: Option<Leaf>,
}

/// `rules[i].tcp_flags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcpFlags {
    pub mask: Option<Items>,
    pub comp: Option<Items>,
    pub negate: Option<Leaf>,
}

/// A YAML scalar, typed as YAML resolved it (strict booleans: only `true` and `false`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    /// An integer that fits `i128`.
    Int(i128),
    /// A float, or an integer too large for `i128`.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// Anything else, quoted or not.
    Str(String),
    /// `~`, `null`, or an empty value inside a list.
    Null,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// One scalar or a list of them (`dport: 80` or `dport: [80, 443]`). The single form takes its
/// location from the enclosing `Spanned`; list items carry their own.
#[derive(Debug, PartialEq)]
pub(crate) enum OneOrMany {
    One(Scalar),
    Many(Vec<Leaf>),
}

struct OneOrManyVisitor;

impl<'de> Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or a list of values")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_bool(v).map(OneOrMany::One)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_i64(v).map(OneOrMany::One)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_u64(v).map(OneOrMany::One)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_i128(v).map(OneOrMany::One)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_u128(v).map(OneOrMany::One)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_f64(v).map(OneOrMany::One)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_str(v).map(OneOrMany::One)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<OneOrMany, E> {
        ScalarVisitor.visit_string(v).map(OneOrMany::One)
    }
    fn visit_unit<E: de::Error>(self) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(Scalar::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(Scalar::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Leaf>()? {
            items.push(item);
        }
        Ok(OneOrMany::Many(items))
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisitor)
    }
}
