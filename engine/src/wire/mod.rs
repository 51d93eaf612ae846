//! Zero-copy, checked views over frame bytes, in the style of smoltcp's `wire` module.
//!
//! Each header has a view type (`Ipv4Packet<T: AsRef<[u8]>>`, ...) built by `new_checked`,
//! a private `mod field` of byte ranges and `#[inline]` big-endian accessors that cannot panic
//! once the check has passed. Nothing is cast to a packed struct.
//!
//! [`parse`] walks a whole frame (Ethernet, up to two VLAN tags, IPv4 or IPv6 with its
//! extension headers, then TCP, UDP, ICMP or ICMPv6) and returns a [`Packet`]: the facts the
//! tracker and the rules need, borrowed from the frame. Failures are typed:
//! - a frame or network-layer header that Linux's IP input would drop is an `Err(Reason)` of
//!   class `Unparsed` (the packet never reaches connection tracking);
//! - a bad transport header is `Ok` with [`L4::Malformed`]: connection tracking calls that
//!   INVALID and the rules still see its addresses, as nftables does.
//!
//! # What is verified, and against which Linux code
//! - Ethernet: 14 bytes, at most two VLAN tags (0x8100, 0x88a8, 0x9100); EtherType IPv4 or
//!   IPv6, else `NonIp`.
//! - IPv4 (`ip_rcv_core`, in its order): 20 bytes, version, IHL >= 5 and within the frame,
//!   header checksum (skipped when the NIC says [`ChecksumHint::Good`]), total length between
//!   the header length and the frame (padding after it is ignored). Options as
//!   `ip_options_compile` plus the default source-route refusal ([`ipv4::check_options`]).
//!   Martian addresses are *not* checked: Linux rejects them in the route lookup, after
//!   conntrack's PRE_ROUTING hook.
//! - IPv6 (`ip6_rcv_core`): 40 bytes, version, the input address checks, payload length
//!   within the frame (0 with Hop-by-Hop = jumbogram, refused), a leading Hop-by-Hop header
//!   as `ipv6_parse_hopopts`; then the extension-header walk of conntrack (at most
//!   [`ipv6::MAX_EXT_HEADERS`] headers, each within the payload, No Next Header refused).
//! - Fragments (IPv4 MF or offset, any IPv6 Fragment header, the atomic offset-0/M-0 one
//!   included) are [`L4::Fragment`]: Linux reassembles before conntrack, the pipeline applies
//!   its fragment policy instead. Their transport header is not read.
//! - Transport, on the IP payload (never the frame, which may be padded): TCP, UDP and ICMP
//!   lengths as conntrack's `tcp_error`, `udp_error` and `icmp_error`; checksums as
//!   `nf_checksum` (pseudo-header length = IP payload length) when
//!   [`ParseConfig::verify_l4_checksum`] is set and the hint is [`ChecksumHint::Unknown`];
//!   the packet quoted by an ICMP error as `nf_ct_get_tuplepr` ([`icmp::parse_quoted`]).
//! - Not judged here: TCP flag combinations, ICMP types a tracker refuses, window checks.
//!
//! [`parse`] never panics and never allocates; every loop is bounded by the frame length or
//! a small constant.

use crate::counters::Reason;

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod trace_tests;

use icmp::IcmpPacket;
use ipv4::Ipv4Packet;
use ipv6::Ipv6Packet;
use tcp::TcpPacket;
use udp::UdpPacket;

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    /// IPv4.
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// Source and destination addresses. IPv4 addresses are held as `u32 as u128` (the address in
/// the low 32 bits), so both families share one representation in keys and rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpAddrs {
    /// Address family of both addresses.
    pub family: Family,
    /// Source address (host-order integer of the big-endian wire bytes).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
}

/// TCP flag bits as in byte 13 of the TCP header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// Whether every bit of `mask` is set.
    #[inline]
    pub const fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
    /// SYN is set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// ACK is set.
    #[inline]
    pub const fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// FIN is set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// RST is set.
    #[inline]
    pub const fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
}

/// A checked TCP segment: what the tracker and the rules need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSeg<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (whatever the ACK flag says).
    pub ack: u32,
    /// Flag byte.
    pub flags: TcpFlags,
    /// Raw (unscaled) window.
    pub window: u16,
    /// Payload length in bytes: the IP payload length minus the TCP header (`doff * 4`).
    pub payload_len: u32,
    /// The option bytes (`doff * 4 - 20` bytes), unparsed: the tracker reads only what it needs.
    pub options: &'a [u8],
}

/// A checked UDP datagram header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDgram {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The transport part of the packet an ICMP error quotes (the "inner" packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerTuple {
    /// The quoted packet's addresses, as the quoted packet had them.
    pub addrs: IpAddrs,
    /// The quoted packet's L4 protocol.
    pub proto: u8,
    /// Its ports (TCP, UDP, and other port-carrying protocols) or ICMP fields.
    pub l4: InnerL4,
}

/// L4 identity of a quoted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerL4 {
    /// TCP or UDP ports.
    Ports {
        /// Source port of the quoted packet.
        sport: u16,
        /// Destination port of the quoted packet.
        dport: u16,
    },
    /// A quoted ICMP / ICMPv6 message.
    Icmp {
        /// Type.
        type_: u8,
        /// Code.
        code: u8,
        /// Identifier (bytes 4..6 of the quoted ICMP header).
        id: u16,
    },
    /// Any other protocol: identified by addresses and protocol only.
    None,
}

/// A checked ICMP or ICMPv6 message (the family tells which). Classification into queries,
/// errors and untracked messages is the tracker's job; the parser only reads the fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpMsg {
    /// Type.
    pub type_: u8,
    /// Code.
    pub code: u8,
    /// Identifier: bytes 4..6 of the header (meaningful for queries such as echo).
    pub id: u16,
    /// For error messages (ICMPv4 3, 4, 5, 11, 12; ICMPv6 types below 128): the quoted packet.
    /// `None` for non-error types.
    pub inner: Option<Result<InnerTuple, Reason>>,
}

/// The transport layer of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4<'a> {
    /// TCP.
    Tcp(TcpSeg<'a>),
    /// UDP.
    Udp(UdpDgram),
    /// ICMP (IPv4) or ICMPv6 (IPv6).
    Icmp(IcmpMsg),
    /// Any other protocol: tracked by the generic tracker on addresses and protocol number.
    Other,
    /// An IPv4 or IPv6 fragment (non-first fragments have no transport header; first
    /// fragments are reported here too, since their transport checksum cannot be verified).
    Fragment,
    /// The transport header is malformed: an `Invalid`-class reason.
    Malformed(Reason),
}

/// A parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Addresses and family.
    pub addrs: IpAddrs,
    /// L4 protocol number (after any IPv6 extension headers).
    pub proto: u8,
    /// The transport layer.
    pub l4: L4<'a>,
}

/// What the caller knows of checksums before parsing (NIC offloads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumHint {
    /// Nothing: verify in software.
    #[default]
    Unknown,
    /// The NIC verified the IPv4 header and L4 checksums and found them good.
    Good,
}

/// Parser settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseConfig {
    /// Verify TCP, UDP and ICMP checksums (Linux `nf_conntrack_checksum=1`, the default).
    pub verify_l4_checksum: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            verify_l4_checksum: true,
        }
    }
}

/// IP protocol numbers the engine knows by name.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// Parse an Ethernet frame down to its transport header.
///
/// `Err` for frames Linux would drop before connection tracking (class `Unparsed`); `Ok` with
/// [`L4::Malformed`] for transport headers conntrack would call INVALID. See the module
/// documentation for the exact checks.
#[inline]
pub fn parse<'a>(
    frame: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    let (ethertype, l3) = ethernet::network_layer(frame)?;
    match ethertype {
        ethernet::ethertype::IPV4 => parse_ipv4(l3, cfg, hint),
        ethernet::ethertype::IPV6 => parse_ipv6(l3, cfg, hint),
        _ => Err(Reason::NonIp),
    }
}

/// Parse an IPv4 packet (no link-layer header) down to its transport header, as [`parse`].
pub fn parse_ipv4<'a>(
    bytes: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    let ip = Ipv4Packet::new_unchecked(bytes);
    // Linux's order: header sanity, checksum, total length.
    ip.check_header()?;
    if hint == ChecksumHint::Unknown && !ip.verify_checksum() {
        return Err(Reason::Ipv4BadChecksum);
    }
    ip.check_total_len()?;
    if ip.header_len() > ipv4::HEADER_LEN {
        ipv4::check_options(ip.options())?;
    }
    let addrs = IpAddrs {
        family: Family::V4,
        src: u128::from(ip.src_addr()),
        dst: u128::from(ip.dst_addr()),
    };
    let proto = ip.protocol();
    let l4 = if ip.is_fragment() {
        L4::Fragment
    } else {
        parse_l4(&addrs, proto, ip.payload(), verify_l4(cfg, hint))
    };
    Ok(Packet { addrs, proto, l4 })
}

/// Parse an IPv6 packet (no link-layer header) down to its transport header, as [`parse`].
pub fn parse_ipv6<'a>(
    bytes: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    let ip = Ipv6Packet::new_unchecked(bytes);
    // Linux's order: header, addresses, payload length, Hop-by-Hop options.
    ip.check_header()?;
    ip.check_addrs()?;
    ip.check_payload_len()?;
    let addrs = IpAddrs {
        family: Family::V6,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let payload = ip.payload();
    let first = ip.next_header();
    if first == ipv6::next_header::HOP_BY_HOP {
        ipv6::check_hop_by_hop(payload)?;
    }
    let chain = ipv6::walk_ext_headers(payload, 0, first)
        .ok()
        .filter(|c| c.offset <= payload.len())
        .ok_or(Reason::Ipv6BadExtHeader)?;
    if let Some(frag) = chain.fragment {
        // Name the transport protocol of a first fragment when its headers are all here;
        // otherwise the Fragment header's Next Header is the best we know.
        let proto = if frag.offset == 0 {
            ipv6::walk_ext_headers(payload, chain.offset, chain.proto)
                .ok()
                .filter(|c| c.fragment.is_none())
                .map_or(chain.proto, |c| c.proto)
        } else {
            chain.proto
        };
        return Ok(Packet {
            addrs,
            proto,
            l4: L4::Fragment,
        });
    }
    let l4 = parse_l4(
        &addrs,
        chain.proto,
        &payload[chain.offset..],
        verify_l4(cfg, hint),
    );
    Ok(Packet {
        addrs,
        proto: chain.proto,
        l4,
    })
}

#[inline]
fn verify_l4(cfg: &ParseConfig, hint: ChecksumHint) -> bool {
    cfg.verify_l4_checksum && hint == ChecksumHint::Unknown
}

/// The transport layer of an unfragmented packet; `l4` is exactly the IP payload after any
/// extension headers.
#[inline]
fn parse_l4<'a>(addrs: &IpAddrs, proto: u8, l4: &'a [u8], verify: bool) -> L4<'a> {
    match (addrs.family, proto) {
        (_, proto::TCP) => parse_tcp(addrs, l4, verify),
        (_, proto::UDP) => parse_udp(addrs, l4, verify),
        (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6) => parse_icmp(addrs, l4, verify),
        // ICMPv6 over IPv4 or ICMP over IPv6: conntrack reads the 8-byte header for the
        // tuple, then its ICMP tracker refuses the wrong family ("can't create new conn").
        (Family::V4, proto::ICMPV6) | (Family::V6, proto::ICMP) => {
            if l4.len() < icmp::HEADER_LEN {
                L4::Malformed(Reason::IcmpTruncated)
            } else {
                L4::Malformed(Reason::IcmpInvalidNew)
            }
        }
        _ => L4::Other,
    }
}

#[inline]
fn parse_tcp<'a>(addrs: &IpAddrs, l4: &'a [u8], verify: bool) -> L4<'a> {
    let tcp = match TcpPacket::new_checked(l4) {
        Ok(tcp) => tcp,
        Err(reason) => return L4::Malformed(reason),
    };
    if verify && !tcp.verify_checksum(addrs) {
        return L4::Malformed(Reason::TcpBadChecksum);
    }
    L4::Tcp(TcpSeg {
        sport: tcp.src_port(),
        dport: tcp.dst_port(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags(),
        window: tcp.window_len(),
        // At most 65535 - 20: the IP length fields are 16-bit.
        payload_len: tcp.payload().len() as u32,
        options: tcp.options(),
    })
}

#[inline]
fn parse_udp<'a>(addrs: &IpAddrs, l4: &'a [u8], verify: bool) -> L4<'a> {
    let udp = match UdpPacket::new_checked(l4) {
        Ok(udp) => udp,
        Err(reason) => return L4::Malformed(reason),
    };
    if verify && !udp.verify_checksum(addrs) {
        return L4::Malformed(Reason::UdpBadChecksum);
    }
    L4::Udp(UdpDgram {
        sport: udp.src_port(),
        dport: udp.dst_port(),
    })
}

#[inline]
fn parse_icmp<'a>(addrs: &IpAddrs, l4: &'a [u8], verify: bool) -> L4<'a> {
    let msg = match IcmpPacket::new_checked(l4) {
        Ok(msg) => msg,
        Err(reason) => return L4::Malformed(reason),
    };
    let (sum_ok, is_error) = match addrs.family {
        Family::V4 => (
            !verify || msg.verify_checksum_v4(),
            icmp::v4::is_error(msg.msg_type()),
        ),
        Family::V6 => (
            !verify || msg.verify_checksum_v6(addrs),
            icmp::v6::is_error(msg.msg_type()),
        ),
    };
    if !sum_ok {
        return L4::Malformed(Reason::IcmpBadChecksum);
    }
    L4::Icmp(IcmpMsg {
        type_: msg.msg_type(),
        code: msg.msg_code(),
        id: msg.ident(),
        inner: is_error.then(|| icmp::parse_quoted(addrs.family, msg.payload())),
    })
}
