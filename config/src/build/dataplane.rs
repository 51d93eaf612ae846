//! `dataplane`: settings for the DPDK data plane, each with a default ([`Dataplane::default`]).
//!
//! Numbers are range-checked here so that the data plane can use them as they are. Strings
//! the EAL parses (`lcores`, `file_prefix`, `eal_args`) are passed through as written, with
//! two exceptions: `file_prefix` must be a plain file name, and `eal_args` may not choose the
//! mbuf pools' mempool ops (`--mbuf-pool-ops-name`). `rte`'s `Mbuf: Send` and its pool's
//! `Sync` rest on DPDK's default multi-producer/multi-consumer ops, so such an argument is
//! refused at load time, with its line and the reason.

use super::{Ctx, items};
use crate::error::{ConfigError, Problem};
use crate::raw::{Leaf, RawDataplane, Scalar};
use crate::{Dataplane, Hugepages, MAX_BURST, MAX_WORKERS};

/// Validates `dataplane`; each key it leaves out keeps its default.
pub(super) fn build(raw: &RawDataplane, ctx: &Ctx<'_>) -> Result<Dataplane, ConfigError> {
    let d = Dataplane::default();
    let text_opt = |leaf: Option<&Leaf>, key: &str, what: &str| {
        leaf.map(|l| ctx.text(l.into(), key, what)).transpose()
    };
    let file_prefix = text_opt(
        raw.file_prefix.as_ref(),
        "dataplane.file_prefix",
        "a file prefix",
    )?;
    if let (Some(p), Some(leaf)) = (&file_prefix, &raw.file_prefix) {
        let ok = p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            let what = "a file prefix of letters, digits, `_` and `-` (at most 64)";
            return Err(ctx.expected(leaf.into(), "dataplane.file_prefix", what));
        }
    }
    let mut eal_args = Vec::new();
    if let Some(v) = &raw.eal_args {
        for item in items(v) {
            let arg = ctx.text(
                item,
                "dataplane.eal_args",
                "an EAL argument (a non-empty string)",
            )?;
            if sets_pool_ops(&arg) {
                let problem = Problem::Invalid(format!(
                    "{arg:?} would change the mempool ops of ctfw's packet pools, but ctfw's \
                     mbufs cross lcores (one receives a packet, another may send or free it), \
                     which needs DPDK's default multi-producer/multi-consumer ops: remove this \
                     argument"
                ));
                return Err(ctx.err(item.at, item.key("dataplane.eal_args"), problem));
            }
            eal_args.push(arg);
        }
    }
    Ok(Dataplane {
        workers: ctx.uint_or(
            raw.workers.as_ref(),
            "dataplane.workers",
            1,
            MAX_WORKERS.into(),
            d.workers.into(),
        )? as u16,
        lcores: text_opt(
            raw.lcores.as_ref(),
            "dataplane.lcores",
            "an EAL lcore list, e.g. \"0-2\"",
        )?,
        main_lcore: raw
            .main_lcore
            .as_ref()
            .map(|l| {
                ctx.uint(l.into(), "dataplane.main_lcore", 0, 1023, "")
                    .map(|n| n as u16)
            })
            .transpose()?,
        memory_mb: ctx.uint_or(
            raw.memory_mb.as_ref(),
            "dataplane.memory_mb",
            16,
            1 << 20,
            d.memory_mb.into(),
        )? as u32,
        hugepages: match &raw.hugepages {
            // `on` and `off` are strings here (strict booleans), but `true`/`false` mean the same.
            Some(l) if matches!(l.value, Scalar::Bool(_)) => {
                if ctx.boolean(l.into(), "dataplane.hugepages")? {
                    Hugepages::On
                } else {
                    Hugepages::Off
                }
            }
            Some(l) => ctx.keyword(
                l.into(),
                "dataplane.hugepages",
                &Hugepages::ALL.map(|h| (h.name(), h)),
            )?,
            None => d.hugepages,
        },
        file_prefix,
        burst: ctx.uint_or(
            raw.burst.as_ref(),
            "dataplane.burst",
            1,
            MAX_BURST.into(),
            d.burst.into(),
        )? as u16,
        rx_descriptors: ctx.uint_or(
            raw.rx_descriptors.as_ref(),
            "dataplane.rx_descriptors",
            32,
            32768,
            d.rx_descriptors.into(),
        )? as u16,
        tx_descriptors: ctx.uint_or(
            raw.tx_descriptors.as_ref(),
            "dataplane.tx_descriptors",
            32,
            32768,
            d.tx_descriptors.into(),
        )? as u16,
        mbufs_per_port: ctx.uint_or(
            raw.mbufs_per_port.as_ref(),
            "dataplane.mbufs_per_port",
            512,
            16_777_215,
            d.mbufs_per_port.into(),
        )? as u32,
        eal_args,
    })
}

/// Whether `arg` sets the mbuf pools' mempool ops: `--mbuf-pool-ops-name`, alone (its value
/// follows) or as `--mbuf-pool-ops-name=value`, or any abbreviation the EAL would take for it
/// (its `getopt_long` accepts an unambiguous prefix of a long option, and no other EAL option
/// starts with `--mb`).
fn sets_pool_ops(arg: &str) -> bool {
    const OPTION: &str = "--mbuf-pool-ops-name";
    let name = arg.split_once('=').map_or(arg, |(name, _)| name);
    name.len() >= "--mb".len() && OPTION.starts_with(name)
}
