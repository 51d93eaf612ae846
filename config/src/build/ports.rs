//! `ports`: the firewall's ports, 2 to [`RuleSet::MAX_PORTS`].
//!
//! A port's [`PortId`] is its index in the list. Invariants of the result: names are valid
//! ([`NAME_RULE`]) and unique, devices are unique (compared as written; the device string is
//! opaque here), peers are mutual (`a -> b` and `b -> a`) and never the port itself, and the
//! MTU lies in [`MIN_MTU`]`..=`[`MAX_MTU`] ([`DEFAULT_MTU`] when not given; what the device
//! allows is checked when `ctfw run` opens it). Names are read before peers, so a peer may
//! name a port listed after it.

use std::collections::HashMap;

use ctfw_engine::rules::{PortId, RuleSet};
use serde_saphyr::Spanned;

use super::{Ctx, Item, NAME_RULE, is_name, required, unique};
use crate::error::{ConfigError, Problem, closest};
use crate::raw::{RawPort, Scalar};
use crate::{DEFAULT_MTU, MAX_MTU, MIN_MTU, Port};

/// Validates `ports` (required) into the port list; a port's index is its [`PortId`].
pub(super) fn build(
    raw: Option<&Spanned<Vec<Spanned<RawPort>>>>,
    ctx: &Ctx<'_>,
) -> Result<Vec<Port>, ConfigError> {
    let Some(list) = raw else {
        let what =
            "list the firewall's ports (at least two), each with a name, a device and a peer";
        return Err(ctx.err_at(None, "ports", Problem::Missing { what: what.into() }));
    };
    let n = list.value.len();
    if !(2..=RuleSet::MAX_PORTS).contains(&n) {
        let problem = Problem::Expected {
            expected: format!(
                "between 2 and {} ports (peers come in pairs)",
                RuleSet::MAX_PORTS
            ),
            got: format!("{n}"),
        };
        return Err(ctx.err(&list.referenced, "ports", problem));
    }

    // Names and devices first, so that peers can refer to any port, before or after.
    let mut names: Vec<String> = Vec::with_capacity(n);
    let mut devices: Vec<String> = Vec::with_capacity(n);
    let mut seen_names: HashMap<String, u64> = HashMap::new();
    let mut seen_devices: HashMap<String, u64> = HashMap::new();
    for (i, port) in list.value.iter().enumerate() {
        let base = format!("ports[{i}]");
        let name_leaf = required(
            port,
            port.value.name.as_ref(),
            &base,
            "name",
            "a port name, e.g. `inside`",
            ctx,
        )?;
        let name = ctx.text(name_leaf.into(), &format!("{base}.name"), NAME_RULE)?;
        if !is_name(&name) {
            return Err(ctx.expected(name_leaf.into(), &format!("{base}.name"), NAME_RULE));
        }
        unique(
            &mut seen_names,
            &name,
            name_leaf,
            &format!("{base}.name"),
            "port name",
            ctx,
        )?;
        let dev_leaf = required(
            port,
            port.value.device.as_ref(),
            &base,
            "device",
            "the DPDK device: a PCI address or vdev arguments, e.g. `net_pcap0,iface=eth0`",
            ctx,
        )?;
        let device = ctx.text(
            dev_leaf.into(),
            &format!("{base}.device"),
            "a DPDK device string",
        )?;
        unique(
            &mut seen_devices,
            &device,
            dev_leaf,
            &format!("{base}.device"),
            "device",
            ctx,
        )?;
        names.push(name);
        devices.push(device);
    }

    let mut peers = Vec::with_capacity(n);
    for (i, port) in list.value.iter().enumerate() {
        let base = format!("ports[{i}]");
        let key = format!("{base}.peer");
        let leaf = required(
            port,
            port.value.peer.as_ref(),
            &base,
            "peer",
            "the name of the port accepted packets leave on",
            ctx,
        )?;
        let peer = port_ref(leaf.into(), &key, &names, ctx)?;
        if usize::from(peer.0) == i {
            let problem = Problem::Invalid(format!(
                "port `{}` cannot be its own peer: name the port its accepted packets leave on",
                names[i]
            ));
            return Err(ctx.err(&leaf.referenced, key, problem));
        }
        peers.push((peer, leaf));
    }
    for (i, &(peer, leaf)) in peers.iter().enumerate() {
        let back = peers[usize::from(peer.0)].0;
        if usize::from(back.0) != i {
            let problem = Problem::PeerNotMutual {
                port: names[i].clone(),
                peer: names[usize::from(peer.0)].clone(),
                peer_peer: names[usize::from(back.0)].clone(),
            };
            return Err(ctx.err(&leaf.referenced, format!("ports[{i}].peer"), problem));
        }
    }
    let mut mtus = Vec::with_capacity(n);
    for (i, port) in list.value.iter().enumerate() {
        let mtu = ctx.uint_or(
            port.value.mtu.as_ref(),
            &format!("ports[{i}].mtu"),
            MIN_MTU.into(),
            MAX_MTU.into(),
            DEFAULT_MTU.into(),
        )?;
        mtus.push(mtu as u16); // within MIN_MTU..=MAX_MTU
    }
    Ok(names
        .into_iter()
        .zip(devices)
        .zip(peers)
        .zip(mtus)
        .map(|(((name, device), (peer, _)), mtu)| Port {
            name,
            device,
            peer,
            mtu,
        })
        .collect())
}

/// A reference to a port by name.
pub(super) fn port_ref(
    item: Item<'_>,
    key: &str,
    names: &[String],
    ctx: &Ctx<'_>,
) -> Result<PortId, ConfigError> {
    let name = match item.value {
        Scalar::Str(s) => s.clone(),
        Scalar::Int(n) => n.to_string(),
        _ => return Err(ctx.expected(item, key, "a port name")),
    };
    match names.iter().position(|n| *n == name) {
        // At most MAX_PORTS (64) ports, so the index fits.
        Some(i) => Ok(PortId(i as u16)),
        None => {
            let suggestion = closest(&name, names.iter().map(String::as_str));
            let problem = Problem::UnknownPort {
                name,
                known: names.to_vec(),
                suggestion,
            };
            Err(ctx.err(item.at, item.key(key), problem))
        }
    }
}
