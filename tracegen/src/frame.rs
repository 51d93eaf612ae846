//! The frame builder: Ethernet (with optional 802.1Q / QinQ tags), IPv4 (options, DF,
//! fragments), IPv6 (extension headers), TCP (options, payload), UDP, ICMP and ICMPv6.
//!
//! A [`Frame`] is a plain description of every header field; [`Frame::build`] serialises it.
//! By default every length and checksum is computed so the frame is well formed; each of
//! them can be overridden ([`ChecksumMode`], the `Option` length fields) to make the malformed
//! packets that tests need. To cut a frame short (a truncated header), truncate the built
//! bytes.
//!
//! Invariants: building never panics, whatever the field values (lengths that do not fit
//! their header field are written modulo the field width, as a malformed frame would carry
//! them). The builder shares no code with the engine, on purpose: it is the independent side
//! of every parser test.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum::{self, Checksum};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// The ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// The ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The ethertype (TPID) of an 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// The ethertype (TPID) of an 802.1ad service tag (the outer tag of QinQ).
pub const TPID_8021AD: u16 = 0x88a8;

/// IP protocol numbers used here.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
}

/// How a checksum field is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// The correct checksum.
    #[default]
    Correct,
    /// A value guaranteed not to verify (see [`checksum::corrupted`]).
    Corrupt,
    /// Exactly this value (e.g. `Value(0)`: "no checksum" for UDP over IPv4).
    Value(u16),
}

impl ChecksumMode {
    fn apply(self, correct: u16) -> u16 {
        match self {
            ChecksumMode::Correct => correct,
            ChecksumMode::Corrupt => checksum::corrupted(correct),
            ChecksumMode::Value(v) => v,
        }
    }
}

/// One VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// The tag protocol identifier: [`TPID_8021Q`] or [`TPID_8021AD`].
    pub tpid: u16,
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id (12 bits).
    pub vid: u16,
}

impl VlanTag {
    /// An 802.1Q customer tag.
    pub fn dot1q(vid: u16) -> Self {
        VlanTag {
            tpid: TPID_8021Q,
            pcp: 0,
            dei: false,
            vid,
        }
    }

    /// An 802.1ad service tag (outer tag of QinQ).
    pub fn service(vid: u16) -> Self {
        VlanTag {
            tpid: TPID_8021AD,
            pcp: 0,
            dei: false,
            vid,
        }
    }

    fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

/// TCP flags (the low 8 bits of the flags field; NS is left zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flag.
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

/// One TCP option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption {
    /// End of option list (kind 0).
    Eol,
    /// No operation (kind 1), used for alignment.
    Nop,
    /// Maximum segment size (kind 2).
    Mss(u16),
    /// Window scale shift (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// SACK blocks `(left, right)` (kind 5).
    Sack(Vec<(u32, u32)>),
    /// Timestamps `(tsval, tsecr)` (kind 8).
    Timestamps(u32, u32),
    /// Any other option: kind and body (the length byte is computed).
    Raw {
        /// Option kind.
        kind: u8,
        /// Option body after the length byte.
        data: Vec<u8>,
    },
}

impl TcpOption {
    fn len(&self) -> usize {
        match self {
            TcpOption::Eol | TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(blocks) => 2 + 8 * blocks.len(),
            TcpOption::Timestamps(..) => 10,
            TcpOption::Raw { data, .. } => 2 + data.len(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            TcpOption::Eol => out.push(0),
            TcpOption::Nop => out.push(1),
            TcpOption::Mss(m) => {
                out.extend_from_slice(&[2, 4]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            TcpOption::WindowScale(s) => out.extend_from_slice(&[3, 3, *s]),
            TcpOption::SackPermitted => out.extend_from_slice(&[4, 2]),
            TcpOption::Sack(blocks) => {
                out.extend_from_slice(&[5, len_u8(2 + 8 * blocks.len())]);
                for (l, r) in blocks {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOption::Timestamps(val, ecr) => {
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&val.to_be_bytes());
                out.extend_from_slice(&ecr.to_be_bytes());
            }
            TcpOption::Raw { kind, data } => {
                out.extend_from_slice(&[*kind, len_u8(2 + data.len())]);
                out.extend_from_slice(data);
            }
        }
    }
}

/// Lengths written into 8- and 16-bit header fields wrap, as a malformed packet would carry
/// them; callers that want well-formed frames keep them in range.
fn len_u8(n: usize) -> u8 {
    (n & 0xff) as u8
}

fn len_u16(n: usize) -> u16 {
    (n & 0xffff) as u16
}

/// An IPv4 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// The DSCP/ECN byte.
    pub tos: u8,
    /// Identification.
    pub id: u16,
    /// Don't fragment.
    pub df: bool,
    /// More fragments.
    pub mf: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub frag_offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Options, padded with zero (EOL) bytes to a multiple of 4.
    pub options: Vec<u8>,
    /// Protocol override; `None` takes it from the layer 4 header.
    pub protocol: Option<u8>,
    /// IHL override in 32-bit words (4 bits); `None` computes it.
    pub ihl: Option<u8>,
    /// Total length override; `None` computes it.
    pub total_len: Option<u16>,
    /// The header checksum.
    pub checksum: ChecksumMode,
}

impl Ipv4 {
    /// A header as Linux sends it for a TCP connection: TTL 64, DF, id 0.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ipv4 {
            src,
            dst,
            tos: 0,
            id: 0,
            df: true,
            mf: false,
            frag_offset: 0,
            ttl: 64,
            options: Vec::new(),
            protocol: None,
            ihl: None,
            total_len: None,
            checksum: ChecksumMode::Correct,
        }
    }

    fn options_len(&self) -> usize {
        self.options.len().div_ceil(4) * 4
    }

    /// The header length in bytes as built (20 plus padded options).
    pub fn header_len(&self) -> usize {
        20 + self.options_len()
    }
}

/// An IPv6 extension header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv6Ext {
    /// Hop-by-hop options; the option bytes are padded (Pad1/PadN) to a multiple of 8.
    HopByHop(Vec<u8>),
    /// Destination options; padded like hop-by-hop.
    DestOpts(Vec<u8>),
    /// A routing header: type, segments left and the type-specific data after the first
    /// four bytes (starting with the 4 reserved/type bytes), zero-padded to a multiple of 8.
    Routing {
        /// Routing type (0, 2, 4 = SRH, ...).
        routing_type: u8,
        /// Segments left.
        segments_left: u8,
        /// The bytes after the 4-byte fixed part.
        data: Vec<u8>,
    },
    /// A fragment header.
    Fragment {
        /// Offset in 8-byte units (13 bits).
        offset: u16,
        /// More fragments.
        more: bool,
        /// Identification.
        id: u32,
    },
}

impl Ipv6Ext {
    fn protocol(&self) -> u8 {
        match self {
            Ipv6Ext::HopByHop(_) => proto::HOPOPTS,
            Ipv6Ext::DestOpts(_) => proto::DSTOPTS,
            Ipv6Ext::Routing { .. } => proto::ROUTING,
            Ipv6Ext::Fragment { .. } => proto::FRAGMENT,
        }
    }

    fn len(&self) -> usize {
        match self {
            Ipv6Ext::HopByHop(o) | Ipv6Ext::DestOpts(o) => (2 + o.len()).div_ceil(8) * 8,
            Ipv6Ext::Routing { data, .. } => (4 + data.len()).div_ceil(8) * 8,
            Ipv6Ext::Fragment { .. } => 8,
        }
    }

    fn write(&self, next: u8, out: &mut Vec<u8>) {
        let len = self.len();
        let hdr_ext_len = len_u8(len / 8 - 1);
        match self {
            Ipv6Ext::HopByHop(opts) | Ipv6Ext::DestOpts(opts) => {
                out.extend_from_slice(&[next, hdr_ext_len]);
                out.extend_from_slice(opts);
                match len - 2 - opts.len() {
                    0 => {}
                    1 => out.push(0), // Pad1
                    n => {
                        out.extend_from_slice(&[1, len_u8(n - 2)]); // PadN
                        out.resize(out.len() + n - 2, 0);
                    }
                }
            }
            Ipv6Ext::Routing {
                routing_type,
                segments_left,
                data,
            } => {
                out.extend_from_slice(&[next, hdr_ext_len, *routing_type, *segments_left]);
                out.extend_from_slice(data);
                out.resize(out.len() + len - 4 - data.len(), 0);
            }
            Ipv6Ext::Fragment { offset, more, id } => {
                out.extend_from_slice(&[next, 0]);
                out.extend_from_slice(&(((offset & 0x1fff) << 3) | u16::from(*more)).to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }

    /// The final destination a routing header names, which is what the upper-layer
    /// checksum's pseudo-header uses (RFC 8200 section 8.1) while segments are left.
    fn final_destination(&self) -> Option<Ipv6Addr> {
        let Ipv6Ext::Routing {
            routing_type,
            segments_left,
            data,
        } = self
        else {
            return None;
        };
        if *segments_left == 0 {
            return None;
        }
        let addr = |at: usize| -> Option<Ipv6Addr> {
            let b: [u8; 16] = data.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(b))
        };
        match routing_type {
            // Type 0 and type 2: the addresses follow 4 reserved bytes; the last is final.
            0 | 2 => {
                let n = data.len().saturating_sub(4) / 16;
                if n == 0 { None } else { addr(4 + (n - 1) * 16) }
            }
            // SRH: last entry, flags, tag, then Segment List[0], the final segment.
            4 => addr(4),
            _ => None,
        }
    }
}

/// An IPv6 header with its extension headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers, in order.
    pub ext: Vec<Ipv6Ext>,
    /// Override of the upper-layer protocol written in the last next-header field.
    pub protocol: Option<u8>,
    /// Payload length override; `None` computes it.
    pub payload_len: Option<u16>,
}

impl Ipv6 {
    /// A plain header: hop limit 64, no extension headers.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Ipv6 {
            src,
            dst,
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
            ext: Vec::new(),
            protocol: None,
            payload_len: None,
        }
    }

    fn ext_len(&self) -> usize {
        self.ext.iter().map(Ipv6Ext::len).sum()
    }
}

/// The network layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ip {
    /// IPv4.
    V4(Ipv4),
    /// IPv6.
    V6(Ipv6),
    /// A non-IP payload with its ethertype (ARP, ...); the layer-4 part is ignored.
    Other {
        /// The ethertype.
        ethertype: u16,
        /// The bytes after the Ethernet header.
        bytes: Vec<u8>,
    },
}

/// A TCP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field (before scaling).
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options, padded with EOL to a multiple of 4.
    pub options: Vec<TcpOption>,
    /// Data offset override in 32-bit words (4 bits); `None` computes it.
    pub data_offset: Option<u8>,
    /// The checksum.
    pub checksum: ChecksumMode,
}

impl Tcp {
    /// A header with no flags, window 64240 and no options.
    pub fn new(sport: u16, dport: u16) -> Self {
        Tcp {
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: TcpFlags::NONE,
            window: 64240,
            urgent: 0,
            options: Vec::new(),
            data_offset: None,
            checksum: ChecksumMode::Correct,
        }
    }

    fn options_len(&self) -> usize {
        self.options
            .iter()
            .map(TcpOption::len)
            .sum::<usize>()
            .div_ceil(4)
            * 4
    }

    /// The header length in bytes as built.
    pub fn header_len(&self) -> usize {
        20 + self.options_len()
    }
}

/// A UDP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length override; `None` computes it.
    pub length: Option<u16>,
    /// The checksum (a correct checksum of 0 is sent as 0xffff).
    pub checksum: ChecksumMode,
}

/// An ICMP or ICMPv6 header; its body (echo data, quoted datagram) is the frame's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    /// Type.
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// The four bytes after the checksum (id and sequence, unused, MTU, pointer...).
    pub rest: [u8; 4],
    /// The checksum.
    pub checksum: ChecksumMode,
}

impl Icmp {
    fn echo(ty: u8, id: u16, seq: u16) -> Self {
        let mut rest = [0; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        Icmp {
            ty,
            code: 0,
            rest,
            checksum: ChecksumMode::Correct,
        }
    }
}

/// ICMP types used here.
pub mod icmp {
    /// ICMP echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// ICMP destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// ICMP echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// ICMP time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Destination unreachable code: port unreachable.
    pub const PORT_UNREACH: u8 = 3;
    /// Destination unreachable code: fragmentation needed.
    pub const FRAG_NEEDED: u8 = 4;
    /// ICMPv6 destination unreachable.
    pub const V6_DEST_UNREACH: u8 = 1;
    /// ICMPv6 packet too big.
    pub const V6_PACKET_TOO_BIG: u8 = 2;
    /// ICMPv6 time exceeded.
    pub const V6_TIME_EXCEEDED: u8 = 3;
    /// ICMPv6 echo request.
    pub const V6_ECHO_REQUEST: u8 = 128;
    /// ICMPv6 echo reply.
    pub const V6_ECHO_REPLY: u8 = 129;
    /// ICMPv6 destination unreachable code: port unreachable.
    pub const V6_PORT_UNREACH: u8 = 4;
}

/// The transport layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp(Tcp),
    /// UDP.
    Udp(Udp),
    /// ICMP (over IPv4: no pseudo-header in the checksum).
    Icmp(Icmp),
    /// ICMPv6 (pseudo-header in the checksum).
    Icmpv6(Icmp),
    /// No transport header: the payload follows the IP header(s) under this protocol number
    /// (non-first fragments, unknown protocols).
    Raw {
        /// The protocol number written into the IP header.
        protocol: u8,
    },
}

impl L4 {
    fn protocol(&self) -> u8 {
        match self {
            L4::Tcp(_) => proto::TCP,
            L4::Udp(_) => proto::UDP,
            L4::Icmp(_) => proto::ICMP,
            L4::Icmpv6(_) => proto::ICMPV6,
            L4::Raw { protocol } => *protocol,
        }
    }

    fn header_len(&self) -> usize {
        match self {
            L4::Tcp(t) => t.header_len(),
            L4::Udp(_) | L4::Icmp(_) | L4::Icmpv6(_) => 8,
            L4::Raw { .. } => 0,
        }
    }
}

/// Default MAC addresses, as in the conformance traces: client and router-inside on the
/// inside link, server and router-outside on the outside link.
pub mod macs {
    use super::Mac;
    /// The router's port on the inside link.
    pub const ROUTER_INSIDE: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
    /// The client (inside host).
    pub const CLIENT: Mac = [0x02, 0, 0, 0, 0x01, 0x02];
    /// The router's port on the outside link.
    pub const ROUTER_OUTSIDE: Mac = [0x02, 0, 0, 0, 0x02, 0x01];
    /// The server (outside host).
    pub const SERVER: Mac = [0x02, 0, 0, 0, 0x02, 0x02];
}

/// One Ethernet frame, described field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Source MAC.
    pub src_mac: Mac,
    /// Destination MAC.
    pub dst_mac: Mac,
    /// VLAN tags, outermost first.
    pub vlans: Vec<VlanTag>,
    /// Network layer.
    pub ip: Ip,
    /// Transport layer.
    pub l4: L4,
    /// Bytes after the transport header.
    pub payload: Vec<u8>,
}

impl Frame {
    /// An IPv4 frame from the client MAC to the router's inside MAC, with no transport header
    /// yet (set one with [`Frame::tcp`], [`Frame::udp`], ...).
    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Frame::with_ip(Ip::V4(Ipv4::new(src, dst)))
    }

    /// An IPv6 frame, as [`Frame::ipv4`].
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Frame::with_ip(Ip::V6(Ipv6::new(src, dst)))
    }

    /// A frame for the given network layer.
    pub fn with_ip(ip: Ip) -> Self {
        Frame {
            src_mac: macs::CLIENT,
            dst_mac: macs::ROUTER_INSIDE,
            vlans: Vec::new(),
            ip,
            l4: L4::Raw {
                protocol: proto::NONE,
            },
            payload: Vec::new(),
        }
    }

    /// A non-IP frame (ARP and the like).
    pub fn other(ethertype: u16, bytes: Vec<u8>) -> Self {
        Frame::with_ip(Ip::Other { ethertype, bytes })
    }

    /// Sets the MAC addresses.
    pub fn macs(mut self, src: Mac, dst: Mac) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Adds an 802.1Q tag inside any tags already present.
    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlans.push(VlanTag::dot1q(vid));
        self
    }

    /// Sets QinQ tags: an 802.1ad service tag outside an 802.1Q customer tag.
    pub fn qinq(mut self, outer: u16, inner: u16) -> Self {
        self.vlans = vec![VlanTag::service(outer), VlanTag::dot1q(inner)];
        self
    }

    /// Makes the transport layer TCP with these ports (no flags; set them).
    pub fn tcp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Tcp(Tcp::new(sport, dport));
        self
    }

    /// Makes the transport layer UDP with these ports.
    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp(Udp {
            sport,
            dport,
            length: None,
            checksum: ChecksumMode::Correct,
        });
        self
    }

    /// Makes the transport layer an ICMP (IPv4) or ICMPv6 (IPv6) echo request.
    pub fn echo_request(mut self, id: u16, seq: u16) -> Self {
        self.l4 = match self.ip {
            Ip::V6(_) => L4::Icmpv6(Icmp::echo(icmp::V6_ECHO_REQUEST, id, seq)),
            _ => L4::Icmp(Icmp::echo(icmp::ECHO_REQUEST, id, seq)),
        };
        self
    }

    /// Makes the transport layer an ICMP or ICMPv6 echo reply.
    pub fn echo_reply(mut self, id: u16, seq: u16) -> Self {
        self.l4 = match self.ip {
            Ip::V6(_) => L4::Icmpv6(Icmp::echo(icmp::V6_ECHO_REPLY, id, seq)),
            _ => L4::Icmp(Icmp::echo(icmp::ECHO_REPLY, id, seq)),
        };
        self
    }

    /// Makes this frame an ICMP (IPv4) or ICMPv6 (IPv6) error of the given type and code that
    /// quotes `original` the way Linux does: as much of the offending datagram as keeps the
    /// error within 576 bytes (IPv4) or 1280 bytes (IPv6).
    pub fn icmp_error(mut self, ty: u8, code: u8, original: &Frame) -> Self {
        let quoted = original.build_ip();
        let (l4, max) = match self.ip {
            Ip::V6(_) => (
                L4::Icmpv6(Icmp {
                    ty,
                    code,
                    rest: [0; 4],
                    checksum: Default::default(),
                }),
                1280 - 48,
            ),
            _ => (
                L4::Icmp(Icmp {
                    ty,
                    code,
                    rest: [0; 4],
                    checksum: Default::default(),
                }),
                576 - 28,
            ),
        };
        self.l4 = l4;
        self.payload = quoted[..quoted.len().min(max)].to_vec();
        self
    }

    /// Makes the transport layer raw (no header) with this protocol number.
    pub fn raw(mut self, protocol: u8) -> Self {
        self.l4 = L4::Raw { protocol };
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, bytes: &[u8]) -> Self {
        self.payload = bytes.to_vec();
        self
    }

    /// Sets TCP flags (no effect on other transports).
    pub fn flags(mut self, flags: TcpFlags) -> Self {
        if let Some(t) = self.tcp_mut() {
            t.flags = flags;
        }
        self
    }

    /// Sets TCP sequence and acknowledgment numbers.
    pub fn seq_ack(mut self, seq: u32, ack: u32) -> Self {
        if let Some(t) = self.tcp_mut() {
            t.seq = seq;
            t.ack = ack;
        }
        self
    }

    /// Sets the TCP window field.
    pub fn window(mut self, window: u16) -> Self {
        if let Some(t) = self.tcp_mut() {
            t.window = window;
        }
        self
    }

    /// Appends a TCP option.
    pub fn tcp_option(mut self, opt: TcpOption) -> Self {
        if let Some(t) = self.tcp_mut() {
            t.options.push(opt);
        }
        self
    }

    /// Sets the IPv4 identification (no effect on IPv6).
    pub fn ip_id(mut self, id: u16) -> Self {
        if let Ip::V4(h) = &mut self.ip {
            h.id = id;
        }
        self
    }

    /// Sets the TTL or hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        match &mut self.ip {
            Ip::V4(h) => h.ttl = ttl,
            Ip::V6(h) => h.hop_limit = ttl,
            Ip::Other { .. } => {}
        }
        self
    }

    /// Appends an IPv6 extension header (no effect on IPv4).
    pub fn ipv6_ext(mut self, ext: Ipv6Ext) -> Self {
        if let Ip::V6(h) = &mut self.ip {
            h.ext.push(ext);
        }
        self
    }

    /// Corrupts the transport checksum (TCP, UDP, ICMP, ICMPv6).
    pub fn corrupt_l4_checksum(mut self) -> Self {
        match &mut self.l4 {
            L4::Tcp(t) => t.checksum = ChecksumMode::Corrupt,
            L4::Udp(u) => u.checksum = ChecksumMode::Corrupt,
            L4::Icmp(i) | L4::Icmpv6(i) => i.checksum = ChecksumMode::Corrupt,
            L4::Raw { .. } => {}
        }
        self
    }

    /// Corrupts the IPv4 header checksum (IPv6 has none).
    pub fn corrupt_ip_checksum(mut self) -> Self {
        if let Ip::V4(h) = &mut self.ip {
            h.checksum = ChecksumMode::Corrupt;
        }
        self
    }

    /// The TCP header, if the transport is TCP.
    pub fn tcp_mut(&mut self) -> Option<&mut Tcp> {
        match &mut self.l4 {
            L4::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// The UDP header, if the transport is UDP.
    pub fn udp_mut(&mut self) -> Option<&mut Udp> {
        match &mut self.l4 {
            L4::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// The ICMP or ICMPv6 header, if the transport is one of them.
    pub fn icmp_mut(&mut self) -> Option<&mut Icmp> {
        match &mut self.l4 {
            L4::Icmp(i) | L4::Icmpv6(i) => Some(i),
            _ => None,
        }
    }

    /// The IPv4 header, if any.
    pub fn ipv4_mut(&mut self) -> Option<&mut Ipv4> {
        match &mut self.ip {
            Ip::V4(h) => Some(h),
            _ => None,
        }
    }

    /// The IPv6 header, if any.
    pub fn ipv6_mut(&mut self) -> Option<&mut Ipv6> {
        match &mut self.ip {
            Ip::V6(h) => Some(h),
            _ => None,
        }
    }

    /// The whole Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len_hint());
        self.write_into(&mut out);
        out
    }

    /// The IP datagram alone (what an ICMP error quotes).
    pub fn build_ip(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len_hint());
        self.write_ip(&mut out);
        out
    }

    /// Appends the whole Ethernet frame to `out`.
    pub fn write_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        for tag in &self.vlans {
            out.extend_from_slice(&tag.tpid.to_be_bytes());
            out.extend_from_slice(&tag.tci().to_be_bytes());
        }
        let ethertype = match &self.ip {
            Ip::V4(_) => ETHERTYPE_IPV4,
            Ip::V6(_) => ETHERTYPE_IPV6,
            Ip::Other { ethertype, .. } => *ethertype,
        };
        out.extend_from_slice(&ethertype.to_be_bytes());
        self.write_ip(out);
    }

    fn len_hint(&self) -> usize {
        14 + 4 * self.vlans.len() + 60 + self.l4.header_len() + self.payload.len()
    }

    fn write_ip(&self, out: &mut Vec<u8>) {
        match &self.ip {
            Ip::V4(h) => self.write_ipv4(h, out),
            Ip::V6(h) => self.write_ipv6(h, out),
            Ip::Other { bytes, .. } => out.extend_from_slice(bytes),
        }
    }

    fn write_ipv4(&self, h: &Ipv4, out: &mut Vec<u8>) {
        let start = out.len();
        let hlen = h.header_len();
        let l4_len = self.l4.header_len() + self.payload.len();
        let ihl = h.ihl.unwrap_or(len_u8(hlen / 4)) & 0x0f;
        let total = h.total_len.unwrap_or(len_u16(hlen + l4_len));
        let frag = (u16::from(h.df) << 14) | (u16::from(h.mf) << 13) | (h.frag_offset & 0x1fff);
        let protocol = h.protocol.unwrap_or(self.l4.protocol());
        out.extend_from_slice(&[0x40 | ihl, h.tos]);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&h.id.to_be_bytes());
        out.extend_from_slice(&frag.to_be_bytes());
        out.extend_from_slice(&[h.ttl, protocol, 0, 0]);
        out.extend_from_slice(&h.src.octets());
        out.extend_from_slice(&h.dst.octets());
        out.extend_from_slice(&h.options);
        out.resize(start + hlen, 0);
        let csum = h
            .checksum
            .apply(checksum::checksum(&out[start..start + hlen]));
        out[start + 10..start + 12].copy_from_slice(&csum.to_be_bytes());

        let mut pseudo = Checksum::new();
        pseudo.add(&h.src.octets()).add(&h.dst.octets());
        pseudo.add_u16(u16::from(protocol)).add_u16(len_u16(l4_len));
        self.write_l4(pseudo, out);
    }

    fn write_ipv6(&self, h: &Ipv6, out: &mut Vec<u8>) {
        let l4_len = self.l4.header_len() + self.payload.len();
        let payload_len = h.payload_len.unwrap_or(len_u16(h.ext_len() + l4_len));
        let protocol = h.protocol.unwrap_or(self.l4.protocol());
        let first_next = h.ext.first().map_or(protocol, Ipv6Ext::protocol);
        let vtf = (6u32 << 28) | (u32::from(h.traffic_class) << 20) | (h.flow_label & 0x000f_ffff);
        out.extend_from_slice(&vtf.to_be_bytes());
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.extend_from_slice(&[first_next, h.hop_limit]);
        out.extend_from_slice(&h.src.octets());
        out.extend_from_slice(&h.dst.octets());
        let mut final_dst = h.dst;
        for (i, ext) in h.ext.iter().enumerate() {
            let next = h.ext.get(i + 1).map_or(protocol, Ipv6Ext::protocol);
            ext.write(next, out);
            if let Some(d) = ext.final_destination() {
                final_dst = d;
            }
        }
        let mut pseudo = Checksum::new();
        pseudo.add(&h.src.octets()).add(&final_dst.octets());
        pseudo
            .add_u32(u32::try_from(l4_len).unwrap_or(u32::MAX))
            .add_u32(u32::from(protocol));
        self.write_l4(pseudo, out);
    }

    /// Writes the transport header and payload, then fills in its checksum. `pseudo` holds
    /// the pseudo-header sum (ignored by ICMPv4, whose checksum covers only its own bytes).
    fn write_l4(&self, pseudo: Checksum, out: &mut Vec<u8>) {
        let start = out.len();
        let (mode, at, pseudo, zero_is_none) = match &self.l4 {
            L4::Tcp(t) => {
                let hlen = t.header_len();
                let off = t.data_offset.unwrap_or(len_u8(hlen / 4)) & 0x0f;
                out.extend_from_slice(&t.sport.to_be_bytes());
                out.extend_from_slice(&t.dport.to_be_bytes());
                out.extend_from_slice(&t.seq.to_be_bytes());
                out.extend_from_slice(&t.ack.to_be_bytes());
                out.extend_from_slice(&[off << 4, t.flags.0]);
                out.extend_from_slice(&t.window.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&t.urgent.to_be_bytes());
                for o in &t.options {
                    o.write(out);
                }
                out.resize(start + hlen, 0);
                (t.checksum, 16, pseudo, false)
            }
            L4::Udp(u) => {
                let len = u.length.unwrap_or(len_u16(8 + self.payload.len()));
                out.extend_from_slice(&u.sport.to_be_bytes());
                out.extend_from_slice(&u.dport.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                (u.checksum, 6, pseudo, true)
            }
            L4::Icmp(i) | L4::Icmpv6(i) => {
                out.extend_from_slice(&[i.ty, i.code, 0, 0]);
                out.extend_from_slice(&i.rest);
                let pseudo = if matches!(self.l4, L4::Icmp(_)) {
                    Checksum::new()
                } else {
                    pseudo
                };
                (i.checksum, 2, pseudo, false)
            }
            L4::Raw { .. } => {
                out.extend_from_slice(&self.payload);
                return;
            }
        };
        out.extend_from_slice(&self.payload);
        let mut sum = pseudo;
        sum.add(&out[start..]);
        let mut correct = sum.finish();
        if zero_is_none && correct == 0 {
            // UDP sends a computed zero as all ones; zero means "no checksum".
            correct = 0xffff;
        }
        let csum = mode.apply(correct);
        out[start + at..start + at + 2].copy_from_slice(&csum.to_be_bytes());
    }

    /// Splits this frame's IP payload (transport header included) into fragments of at most
    /// `chunk` bytes (rounded down to a multiple of 8, at least 8), each built as a full
    /// Ethernet frame: IPv4 fragments set offset and MF; IPv6 fragments carry a fragment header
    /// with identification `id` after any existing extension headers. The transport checksum
    /// is that of the whole datagram. Returns the unfragmented frame for non-IP frames.
    pub fn fragments(&self, chunk: usize, id: u32) -> Vec<Vec<u8>> {
        let chunk = (chunk / 8).max(1) * 8;
        let whole = self.build_ip();
        let body = match &self.ip {
            Ip::V4(h) => whole.get(h.header_len()..).unwrap_or_default(),
            Ip::V6(h) => whole.get(40 + h.ext_len()..).unwrap_or_default(),
            Ip::Other { .. } => return vec![self.build()],
        };
        let protocol = self.l4.protocol();
        let mut out = Vec::new();
        let mut off = 0;
        while off < body.len() || (off == 0 && body.is_empty()) {
            let end = (off + chunk).min(body.len());
            let more = end < body.len();
            let mut f = self.clone();
            f.l4 = L4::Raw { protocol };
            f.payload = body[off..end].to_vec();
            let units = len_u16(off / 8);
            match &mut f.ip {
                Ip::V4(h) => {
                    h.frag_offset = units;
                    h.mf = more;
                    h.df = false;
                    h.id = len_u16(id as usize);
                }
                Ip::V6(h) => {
                    h.ext.push(Ipv6Ext::Fragment {
                        offset: units,
                        more,
                        id,
                    });
                }
                Ip::Other { .. } => {}
            }
            out.push(f.build());
            if end == body.len() {
                break;
            }
            off = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::verifies;

    fn v4() -> Frame {
        Frame::ipv4(Ipv4Addr::new(10, 0, 1, 2), Ipv4Addr::new(10, 0, 2, 2))
    }

    fn v6() -> Frame {
        Frame::ipv6("fd00:1::2".parse().unwrap(), "fd00:2::2".parse().unwrap())
    }

    /// Verifies the IPv4 header and TCP/UDP checksum of an untagged frame independently.
    fn check_v4_tcp_udp(b: &[u8]) -> bool {
        let ihl = usize::from(b[14] & 0x0f) * 4;
        let ip = &b[14..14 + ihl];
        let l4 = &b[14 + ihl..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, ip[9]]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(l4);
        verifies(ip) && verifies(&pseudo)
    }

    #[test]
    fn conformance_syn_bytes() {
        // tcp_handshake_data_fin_close.pcapng, packet 0, byte for byte.
        let expected: [u8; 66] = [
            0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x34, 0x10, 0x01, 0x40, 0x00, 0x40, 0x06, 0x13, 0xc0, 0x0a, 0x00,
            0x01, 0x02, 0x0a, 0x00, 0x02, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x0f, 0x42, 0x40,
            0x00, 0x00, 0x00, 0x00, 0x80, 0x02, 0xfa, 0xf0, 0x7e, 0x3d, 0x00, 0x00, 0x02, 0x04,
            0x05, 0xb4, 0x01, 0x03, 0x03, 0x07, 0x04, 0x02, 0x01, 0x01,
        ];
        let f = v4()
            .ip_id(0x1001)
            .tcp(40000, 80)
            .flags(TcpFlags::SYN)
            .seq_ack(1_000_000, 0)
            .window(64240)
            .tcp_option(TcpOption::Mss(1460))
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::WindowScale(7))
            .tcp_option(TcpOption::SackPermitted)
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::Nop);
        assert_eq!(f.build(), expected);
    }

    #[test]
    fn conformance_icmp_port_unreachable_bytes() {
        // icmp_unsolicited_port_unreachable.pcapng: quotes a UDP datagram 10.0.1.2:53004 ->
        // 10.0.2.2:9999 with 20 bytes of 'q'.
        let mut orig = v4().ip_id(0x4242).udp(53004, 9999).payload(&[b'q'; 20]);
        orig.ipv4_mut().unwrap().df = false;
        let err = Frame::ipv4(Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 1, 2))
            .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
            .ip_id(0x5001)
            .icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, &orig);
        let b = err.build();
        assert_eq!(b.len(), 90);
        assert_eq!(
            &b[14..26],
            &[0x45, 0, 0, 0x4c, 0x50, 0x01, 0x40, 0, 0x40, 1, 0xd3, 0xac]
        );
        assert_eq!(&b[34..38], &[3, 3, 0x14, 0x2e]);
        assert_eq!(&b[42..46], &[0x45, 0, 0, 0x30]);
        assert_eq!(&b[62..66], &[0xcf, 0x0c, 0x27, 0x0f]);
        assert_eq!(&b[66..70], &[0x00, 0x1c, 0x84, 0x28]);
    }

    #[test]
    fn tcp_udp_checksums_verify_and_corrupt() {
        let f = v4()
            .tcp(1, 2)
            .flags(TcpFlags::ACK)
            .payload(b"hello, odd length");
        assert!(check_v4_tcp_udp(&f.build()));
        assert!(!check_v4_tcp_udp(&f.clone().corrupt_l4_checksum().build()));
        let bad_ip = f.clone().corrupt_ip_checksum().build();
        assert!(!verifies(&bad_ip[14..34]));
        let u = v4().udp(5353, 53).payload(b"query");
        assert!(check_v4_tcp_udp(&u.build()));
        assert!(!check_v4_tcp_udp(&u.clone().corrupt_l4_checksum().build()));
        let mut none = u.clone();
        none.udp_mut().unwrap().checksum = ChecksumMode::Value(0);
        assert_eq!(&none.build()[40..42], &[0, 0]);
    }

    #[test]
    fn ipv4_options_pad_and_ihl() {
        let mut f = v4().udp(1, 2);
        f.ipv4_mut().unwrap().options = vec![0x01, 0x01, 0x01, 0x01, 0x01];
        let b = f.build();
        assert_eq!(b[14], 0x47); // 20 + 8 bytes of options
        assert_eq!(&b[34..42], &[1, 1, 1, 1, 1, 0, 0, 0]);
        assert!(verifies(&b[14..42]));
    }

    #[test]
    fn vlan_and_qinq_tags() {
        let b = v4().vlan(100).udp(1, 2).build();
        assert_eq!(&b[12..18], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
        let b = v6().qinq(10, 20).udp(1, 2).build();
        assert_eq!(
            &b[12..22],
            &[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd]
        );
    }

    #[test]
    fn ipv6_extension_chain_and_checksum() {
        let f = v6()
            .ipv6_ext(Ipv6Ext::HopByHop(vec![5, 2, 0, 0])) // router alert
            .ipv6_ext(Ipv6Ext::DestOpts(vec![]))
            .ipv6_ext(Ipv6Ext::Fragment {
                offset: 0,
                more: false,
                id: 7,
            })
            .tcp(1000, 443)
            .flags(TcpFlags::SYN);
        let b = f.build();
        let ip = &b[14..];
        assert_eq!(ip[6], proto::HOPOPTS);
        assert_eq!(
            usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            8 + 8 + 8 + 20
        );
        assert_eq!(ip[40], proto::DSTOPTS);
        assert_eq!(&ip[42..48], &[5, 2, 0, 0, 1, 0]); // PadN of 2
        assert_eq!(ip[48], proto::FRAGMENT);
        assert_eq!(&ip[50..56], &[1, 4, 0, 0, 0, 0]); // PadN of 6
        assert_eq!(ip[56], proto::TCP);
        let tcp = &ip[64..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        pseudo.extend_from_slice(tcp);
        assert!(verifies(&pseudo));
    }

    #[test]
    fn icmpv6_echo_matches_conformance() {
        // ipv6_icmpv6_echo_request_reply.pcapng packet 0: checksum 0x26fb.
        let b = v6().echo_request(0x1234, 1).payload(&[b'p'; 56]).build();
        assert_eq!(&b[54..58], &[0x80, 0x00, 0x26, 0xfb]);
    }

    #[test]
    fn fragments_reassemble() {
        let f = v4().ip_id(9).udp(1, 2).payload(&[7u8; 100]);
        let whole = f.build();
        let frags = f.fragments(40, 0x77);
        assert_eq!(frags.len(), 3);
        let mut body = Vec::new();
        for (i, fr) in frags.iter().enumerate() {
            assert!(verifies(&fr[14..34]));
            let fo = u16::from_be_bytes([fr[20], fr[21]]);
            assert_eq!(usize::from(fo & 0x1fff) * 8, body.len());
            assert_eq!(fo & 0x2000 != 0, i < 2);
            body.extend_from_slice(&fr[34..]);
        }
        assert_eq!(body, whole[34..]);
        let v6f = v6().udp(1, 2).payload(&[1u8; 30]).fragments(16, 5);
        assert_eq!(v6f.len(), 3);
        assert_eq!(v6f[0][14 + 6], proto::FRAGMENT);
    }

    #[test]
    fn overrides_never_panic() {
        let mut f = v4().tcp(1, 2).payload(&[0; 70000]);
        f.tcp_mut().unwrap().data_offset = Some(15);
        f.ipv4_mut().unwrap().ihl = Some(3);
        f.ipv4_mut().unwrap().options = vec![1; 60];
        let _ = f.build();
        let g = v6()
            .ipv6_ext(Ipv6Ext::Routing {
                routing_type: 0,
                segments_left: 1,
                data: vec![0; 3],
            })
            .tcp(1, 2)
            .tcp_option(TcpOption::Sack(vec![(1, 2); 40]));
        let _ = g.build();
        let _ = Frame::other(0x0806, vec![0; 28]).build();
    }
}
