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

use crate::counters::Reason;

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
