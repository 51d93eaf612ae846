//! Zero-copy, checked views over frame bytes, in the style of smoltcp's `wire` module.
//!
//! Each header has a view type (`Ipv4Packet<T: AsRef<[u8]>>`, ...) built by `new_checked`,
//! a private `mod field` of byte ranges and `#[inline]` big-endian accessors that cannot panic
//! once the check has passed. Nothing is cast to a packed struct.
//!
//! Each protocol's module holds its view, its parsed representation and the function that
//! turns one into the other, as smoltcp keeps them: [`tcp`] ([`TcpSeg`]), [`udp`]
//! ([`UdpDgram`]), [`icmp`] ([`IcmpMsg`], and the quoted packet, [`InnerTuple`]) and [`gre`].
//! This module holds the walk that ties them together and what it returns.
//!
//! [`parse`] walks a whole frame (Ethernet, up to two VLAN tags, IPv4 or IPv6 with its
//! extension headers, then TCP, UDP, ICMP/ICMPv6 or GRE) and returns a [`Packet`]: the facts
//! the tracker and the rules need, borrowed from the frame. Failures are typed:
//! - a frame or network-layer header that Linux's IP input would drop is an `Err(Reason)` of
//!   class `Unparsed` (the packet never reaches connection tracking);
//! - a bad transport header is `Ok` with [`L4::Malformed`]: connection tracking calls that
//!   INVALID and the rules still see its addresses, as nftables does.
//!
//! # What is verified, and against which Linux code
//! - Ethernet: 14 bytes, at most two VLAN tags (0x8100, 0x88a8, 0x9100); EtherType IPv4 or
//!   IPv6, else `NonIp`.
//! - IPv4 (`ip_rcv_core`, in its order): 20 bytes, version, IHL >= 5 and within the frame,
//!   header checksum (skipped when the device vouched for it, [`ChecksumHint::Good`]), total
//!   length between the header length and the frame (padding after it is ignored). Options as
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
//!   [`ParseConfig::verify_l4_checksum`] is set and the device vouched for nothing
//!   ([`ChecksumHint::Unknown`]);
//!   the packet quoted by an ICMP error as `nf_ct_get_tuplepr` ([`icmp::parse_quoted`]).
//! - GRE as Linux's `gre_pkt_to_tuple` reads it (`gre::call_id`).
//! - Not judged here: TCP flag combinations, ICMP types a tracker refuses, window checks. Two
//!   exceptions, where conntrack refuses a packet before any tracker looks at its state:
//!   ICMP carried in the wrong family (ICMPv6 over IPv4, ICMP over IPv6) is
//!   `Malformed(IcmpInvalidNew)`, the ICMP tracker's refusal; a GRE version 1 header that does
//!   not carry PPP has no tuple and is `Malformed(GreUnsupported)`.
//!
//! A frame may lie in several buffers (a multi-segment mbuf): [`parse_span`] reads headers
//! from its first [`HEADER_SPAN`] bytes, which must be contiguous, and lengths and checksums
//! from all of it ([`span`]: [`Span`], or [`Short`] and [`Contiguous`] for a frame in one
//! buffer), so a frame parses the same however it is split; [`parse`] is the one-buffer case.
//!
//! [`parse`] builds the common frame (at most one VLAN tag, IPv4 without options or IPv6
//! without extension headers, TCP or UDP, every check passed) directly, reading each header
//! once at fixed offsets through the same views, and hands anything else to
//! [`parse_general`], the walk described above; a property test and the fuzz target hold the
//! two to the same result for every frame.
//!
//! [`parse`] never panics and never allocates; every loop is bounded by the frame length or
//! a small constant.

use crate::counters::Reason;

pub(crate) mod bytes;
pub mod checksum;
pub mod ethernet;
mod fast;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod span;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod trace_tests;

pub use icmp::{IcmpMsg, InnerL4, InnerTuple};
pub use span::{Bytes, Contiguous, HEADER_SPAN, Short, Span};
pub use tcp::{TcpFlags, TcpSeg};
pub use udp::UdpDgram;

use ipv4::Ipv4Packet;
use ipv6::Ipv6Packet;

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
///
/// Aligned to 8 bytes rather than `u128`'s 16 (`packed(8)`): 40 bytes instead of 48, which
/// takes [`Packet`] from 144 to 104 bytes, cheaper for the pipeline to write and keep per
/// burst. The fields are read by value (`addrs.src`); the compiler refuses a reference to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C, packed(8))]
pub struct IpAddrs {
    /// Address family of both addresses.
    pub family: Family,
    /// Source address (host-order integer of the big-endian wire bytes).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
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
    /// GRE. Version 1 (PPTP, carrying PPP) is keyed on its call id as Linux keys it;
    /// version 0 and short headers on addresses alone.
    Gre {
        /// The PPTP call id of a version 1 header, else `None`.
        call_id: Option<u16>,
    },
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

impl<'a> Packet<'a> {
    /// The packet of TCP segment `seg` carried between `addrs`.
    #[inline]
    pub fn tcp(addrs: IpAddrs, seg: TcpSeg<'a>) -> Packet<'a> {
        Packet {
            addrs,
            proto: proto::TCP,
            l4: L4::Tcp(seg),
        }
    }
}

// The pipeline keeps a burst of these; `IpAddrs` above says why it is not larger.
const _: () = assert!(core::mem::size_of::<Result<Packet<'static>, Reason>>() <= 104);

/// What the caller knows of checksums before parsing (NIC offloads).
///
/// A device vouches for a checksum when it verified it good, or when it knows the data is
/// intact although the checksum field is not filled in: a frame sent by a local stack with
/// checksum offload (DPDK `RTE_MBUF_F_RX_*_CKSUM_NONE`, Linux `CHECKSUM_PARTIAL`). Linux's
/// `nf_checksum` verifies nothing for such packets (`CHECKSUM_UNNECESSARY` or `_PARTIAL`),
/// and neither does the parser. ICMP checksums are always verified in software: devices do
/// not check them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumHint {
    /// Nothing: verify in software.
    #[default]
    Unknown,
    /// The device vouched for the IPv4 header checksum and the TCP or UDP checksum.
    Good,
    /// The device vouched for the TCP or UDP checksum but said nothing of the IPv4 header's,
    /// which is verified in software (as Linux's `ip_rcv_core` always does).
    L4Good,
}

impl ChecksumHint {
    /// Whether the IPv4 header checksum needs verifying.
    #[inline]
    const fn verify_ip(self) -> bool {
        !matches!(self, ChecksumHint::Good)
    }

    /// Whether a TCP or UDP checksum needs verifying.
    #[inline]
    const fn verify_l4(self) -> bool {
        matches!(self, ChecksumHint::Unknown)
    }
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
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// Parse an Ethernet frame held in one buffer down to its transport header: the common case
/// (at most one VLAN tag, IPv4 without options or IPv6 without extension headers, TCP or UDP,
/// all well formed) directly, anything else by [`parse_general`]. Both give the
/// same result for every frame.
#[inline]
pub fn parse<'a>(
    frame: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    fast::parse(frame, cfg, hint, || parse_general(frame, cfg, hint))
}

/// The addresses and segment of a frame in one buffer that [`parse`] parses on its fast path
/// to a TCP packet (untagged or single-tagged Ethernet, IPv4 without options or IPv6 without
/// extension headers, unfragmented, well formed): exactly those of the packet [`parse`]
/// returns for it, whose protocol is TCP. `None` for any other frame, which [`parse`] decides.
/// For the pipeline's lanes for TCP segments, which need no more of the packet.
#[inline]
pub fn parse_tcp<'a>(
    frame: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Option<(IpAddrs, TcpSeg<'a>)> {
    fast::tcp(frame, cfg, hint)
}

/// The general parser [`parse`] falls back to: [`parse_span`] of [`Short::frame`], or of
/// [`Contiguous::frame`] for a frame longer than the head. Public so that the fuzz target
/// and benchmarks can hold [`parse`] to it.
#[inline(never)]
pub fn parse_general<'a>(
    frame: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    match Short::frame(frame) {
        Some(short) => parse_span(short, cfg, hint),
        None => parse_span(Contiguous::frame(frame), cfg, hint),
    }
}

/// Parse an Ethernet frame down to its transport header.
///
/// `Err` for frames Linux would drop before connection tracking (class `Unparsed`); `Ok` with
/// [`L4::Malformed`] for transport headers conntrack would call INVALID. See the module
/// documentation for the exact checks. Headers are read from the frame's first
/// [`HEADER_SPAN`] bytes, lengths and checksums from all of it ([`span`]).
#[inline]
pub fn parse_span<'a>(
    frame: impl Bytes<'a>,
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    let (ethertype, l3) = ethernet::network_layer(frame.head())?;
    let l3 = frame.from(frame.head().len() - l3.len());
    match ethertype {
        ethernet::ethertype::IPV4 => parse_ipv4_span(l3, cfg, hint),
        ethernet::ethertype::IPV6 => parse_ipv6_span(l3, cfg, hint),
        _ => Err(Reason::NonIp),
    }
}

/// The length of the IP packet a frame carries: header, extension headers and payload, without
/// the link layer or any padding after the IP length. This is Linux's `skb->len` at
/// PREROUTING, after `ip_rcv_core` / `ip6_rcv_core` trimmed the frame to the IP length: what
/// conntrack accounting counts. It reads the length field without checking the header again:
/// exact for a frame [`parse`] accepted (which checked that length against the frame), as
/// the header says otherwise; `None` when the frame has no IPv4 or IPv6 length field.
#[inline]
pub fn ip_len(frame: &[u8]) -> Option<u32> {
    let (ethertype, l3) = ethernet::network_layer(frame).ok()?;
    let field = |at: usize| {
        l3.get(at..at + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    match ethertype {
        // Total length, bytes 2..4 of the IPv4 header.
        ethernet::ethertype::IPV4 => field(2),
        // Payload length, bytes 4..6 of the IPv6 header, after the 40-byte fixed header.
        ethernet::ethertype::IPV6 => field(4).map(|n| ipv6::HEADER_LEN as u32 + n),
        _ => None,
    }
}

/// Parse an IPv4 packet (no link-layer header) held in one buffer down to its transport
/// header, as [`parse`].
pub fn parse_ipv4<'a>(
    bytes: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    match Short::frame(bytes) {
        Some(short) => parse_ipv4_span(short, cfg, hint),
        None => parse_ipv4_span(Contiguous::frame(bytes), cfg, hint),
    }
}

/// [`parse_ipv4`] of a packet that may lie in several buffers.
#[inline]
fn parse_ipv4_span<'a>(
    l3: impl Bytes<'a>,
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    let ip = Ipv4Packet::new_unchecked(l3.head());
    // Linux's order: header sanity, checksum, total length.
    ip.check_header()?;
    if hint.verify_ip() && !ip.verify_checksum() {
        return Err(Reason::Ipv4BadChecksum);
    }
    ip.check_total_len_within(l3.len())?;
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
        let payload = l3.sub(ip.header_len(), usize::from(ip.total_len()));
        parse_l4(&addrs, proto, payload, cfg, hint)
    };
    Ok(Packet { addrs, proto, l4 })
}

/// Parse an IPv6 packet (no link-layer header) held in one buffer down to its transport
/// header, as [`parse`].
pub fn parse_ipv6<'a>(
    bytes: &'a [u8],
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    match Short::frame(bytes) {
        Some(short) => parse_ipv6_span(short, cfg, hint),
        None => parse_ipv6_span(Contiguous::frame(bytes), cfg, hint),
    }
}

/// [`parse_ipv6`] of a packet that may lie in several buffers.
#[inline]
fn parse_ipv6_span<'a>(
    l3: impl Bytes<'a>,
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> Result<Packet<'a>, Reason> {
    let ip = Ipv6Packet::new_unchecked(l3.head());
    // Linux's order: header, addresses, payload length, Hop-by-Hop options.
    ip.check_header()?;
    ip.check_addrs()?;
    ip.check_payload_len_within(l3.len())?;
    let addrs = IpAddrs {
        family: Family::V6,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let payload = l3.sub(
        ipv6::HEADER_LEN,
        ipv6::HEADER_LEN + usize::from(ip.payload_len()),
    );
    // Extension headers are read from the head; the walk's offsets are checked against the
    // whole payload.
    let headers = payload.head();
    let first = ip.next_header();
    if first == ipv6::next_header::HOP_BY_HOP {
        ipv6::check_hop_by_hop(headers)?;
    }
    let chain = ipv6::walk_ext_headers(headers, 0, first)
        .ok()
        .filter(|c| c.offset <= payload.len())
        .ok_or(Reason::Ipv6BadExtHeader)?;
    if let Some(frag) = chain.fragment {
        // Name the transport protocol of a first fragment when its headers are all here;
        // otherwise the Fragment header's Next Header is the best we know.
        let proto = if frag.offset == 0 {
            ipv6::walk_ext_headers(headers, chain.offset, chain.proto)
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
    let l4 = parse_l4(&addrs, chain.proto, payload.from(chain.offset), cfg, hint);
    Ok(Packet {
        addrs,
        proto: chain.proto,
        l4,
    })
}

#[inline]
fn verify_l4(cfg: &ParseConfig, hint: ChecksumHint) -> bool {
    cfg.verify_l4_checksum && hint.verify_l4()
}

/// The transport layer of an unfragmented packet; `l4` is exactly the IP payload after any
/// extension headers. Headers come from its head, checksums cover all of it.
#[inline]
fn parse_l4<'a>(
    addrs: &IpAddrs,
    proto: u8,
    l4: impl Bytes<'a>,
    cfg: &ParseConfig,
    hint: ChecksumHint,
) -> L4<'a> {
    let verify = verify_l4(cfg, hint);
    match (addrs.family, proto) {
        (_, proto::TCP) => tcp::parse(addrs, l4, verify),
        (_, proto::UDP) => udp::parse(addrs, l4, verify),
        // NICs verify TCP and UDP checksums, not ICMP's: the hint never covers ICMP.
        (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6) => {
            icmp::parse(addrs, l4, cfg.verify_l4_checksum)
        }
        (Family::V4, proto::ICMPV6) | (Family::V6, proto::ICMP) => {
            icmp::parse_wrong_family(l4.head())
        }
        (_, proto::GRE) => gre::parse(l4.head()),
        _ => L4::Other,
    }
}

#[cfg(test)]
mod tests;
