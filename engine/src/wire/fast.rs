//! The common case of [`super::parse`], parsed with as little work as it needs.
//!
//! Most frames a firewall sees are Ethernet, untagged or with one VLAN tag, carrying IPv4
//! without options or IPv6 without extension headers, carrying TCP or UDP, unfragmented and
//! well formed. [`parse`] recognises exactly those and builds their [`Packet`] directly,
//! reading each header once at fixed offsets; any other frame, and any frame that fails any
//! check (a bad length, a bad checksum, ...), goes to the general parser
//! ([`super::parse_general`]), which decides it, reason included. So the fast path never has
//! to produce an error, only to be right about what it accepts.
//!
//! Why what it builds is what the general parser returns for the same frame: each check here is
//! the general parser's own check for that layer, made through the same views
//! ([`Ipv4Packet`], [`Ipv6Packet`], [`TcpPacket`], [`UdpPacket`]) and the same checksum
//! functions, and the steps it skips are the ones that cannot apply to the frames it
//! accepts: the second VLAN tag, IPv4 options, IPv6 extension headers (the walk returns at
//! once for TCP or UDP), fragments, and the [`HEADER_SPAN`](super::HEADER_SPAN) limit on
//! where headers may lie (its headers end within the first 18 + 40 + 60 bytes). A frame
//! longer than the head sums the same over one slice as over head and rest. The property
//! test `fast_path_agrees_with_the_general_parser` (in `super`'s tests) holds the two
//! parsers to the same result on valid frames of every family and transport and on their
//! mutations, under every [`ChecksumHint`] and [`ParseConfig`].

use super::bytes::be16;
use super::ethernet::{self, ethertype};
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::tcp::{TcpPacket, TcpSeg};
use super::udp::{UdpDgram, UdpPacket};
use super::{ChecksumHint, Family, IpAddrs, L4, Packet, ParseConfig, proto, verify_l4};
use crate::counters::Reason;

/// [`super::parse`]: the [`Packet`] of a common-case frame held in one buffer, built here;
/// anything else is `general()`, the general parser's result for the same frame. (The
/// result is built in place: returning an `Option<Packet>` for the caller to wrap costs a
/// copy of the whole packet.)
#[inline(always)]
pub(super) fn parse<'a>(
    frame: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
    general: impl FnOnce() -> Result<Packet<'a>, Reason>,
) -> Result<Packet<'a>, Reason> {
    match network(frame, hint) {
        Some((addrs, proto, l4)) => transport(addrs, proto, l4, verify_l4(cfg, hint), general),
        None => general(),
    }
}

/// [`super::parse_tcp`]: the addresses and segment of a common-case TCP frame, which
/// [`parse`] builds into its packet; `None` for any other frame.
#[inline(always)]
pub(super) fn tcp<'a>(
    frame: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Option<(IpAddrs, TcpSeg<'a>)> {
    let (addrs, proto, l4) = network(frame, hint)?;
    if proto != proto::TCP {
        return None;
    }
    let seg = segment(&addrs, l4, verify_l4(cfg, hint))?;
    Some((addrs, seg))
}

/// The segment of IP payload `l4` (carried between `addrs`) when it starts with a
/// well-formed TCP header, with a checksum that verifies when `verify`.
#[inline(always)]
fn segment<'a>(addrs: &IpAddrs, l4: &'a [u8], verify: bool) -> Option<TcpSeg<'a>> {
    let tcp = TcpPacket::new_checked(l4).ok()?;
    if verify && !tcp.verify_checksum(addrs) {
        return None;
    }
    Some(TcpSeg::of(&tcp, l4.len()))
}

/// The addresses, transport protocol and IP payload of a common-case frame whose network
/// layer is well formed (for IPv6, carrying TCP or UDP); `None` for any other frame.
#[inline(always)]
fn network(frame: &[u8], hint: ChecksumHint) -> Option<(IpAddrs, u8, &[u8])> {
    let (ethertype, l3) = link(frame)?;
    match ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_unchecked(l3);
            // Version 4, no options: IHL 5. `check_header` then only asks for 20 bytes.
            if l3.first() != Some(&0x45)
                || ip.check_header().is_err()
                || (hint.verify_ip() && !ip.verify_checksum())
                || ip.check_total_len_within(l3.len()).is_err()
                || ip.is_fragment()
            {
                return None;
            }
            let addrs = IpAddrs {
                family: Family::V4,
                src: u128::from(ip.src_addr()),
                dst: u128::from(ip.dst_addr()),
            };
            Some((addrs, ip.protocol(), ip.payload()))
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_unchecked(l3);
            if ip.check_header().is_err()
                // TCP or UDP right after the fixed header: no extension header to walk.
                || !matches!(ip.next_header(), proto::TCP | proto::UDP)
                || ip.check_addrs().is_err()
                || ip.check_payload_len_within(l3.len()).is_err()
            {
                return None;
            }
            let addrs = IpAddrs {
                family: Family::V6,
                src: ip.src_addr(),
                dst: ip.dst_addr(),
            };
            Some((addrs, ip.next_header(), ip.payload()))
        }
        _ => None,
    }
}

/// The EtherType and network layer of an untagged frame or one with a single VLAN tag.
#[inline(always)]
fn link(frame: &[u8]) -> Option<(u16, &[u8])> {
    let outer = be16(frame.get(12..14)?);
    // IPv4 first: the commonest case decides with one comparison.
    if outer == ethertype::IPV4 || !ethertype::is_vlan(outer) {
        return Some((outer, frame.get(ethernet::HEADER_LEN..)?));
    }
    let inner = be16(frame.get(16..18)?);
    Some((
        inner,
        frame.get(ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN..)?,
    ))
}

/// The packet whose IP payload `l4` starts with a well-formed TCP or UDP header, with a
/// checksum that verifies when `verify`; anything else goes to `general`.
#[inline(always)]
fn transport<'a>(
    addrs: IpAddrs,
    proto: u8,
    l4: &'a [u8],
    verify: bool,
    general: impl FnOnce() -> Result<Packet<'a>, Reason>,
) -> Result<Packet<'a>, Reason> {
    match proto {
        proto::TCP => match segment(&addrs, l4, verify) {
            Some(seg) => Ok(Packet::tcp(addrs, seg)),
            None => general(),
        },
        proto::UDP => match UdpPacket::new_checked(l4) {
            Ok(udp) if !verify || udp.verify_checksum(&addrs) => Ok(Packet {
                addrs,
                proto,
                l4: L4::Udp(UdpDgram::of(&udp)),
            }),
            _ => general(),
        },
        _ => general(),
    }
}

// The offsets above assume these header lengths.
const _: () = assert!(ipv4::HEADER_LEN == 20 && ipv6::HEADER_LEN == 40);
