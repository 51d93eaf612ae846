//! Read-only views of table entries for operators: the `conntrack -L` line format and the
//! fields the conformance records carry. Formatting happens here, on the control path only.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::table::Entry;
use crate::time::Tick;
use crate::track::ProtoState;
use crate::track::icmp::reply_type;
use crate::track::tcp::TcpState;
use crate::wire::{Family, proto};

/// One direction's tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source port (ICMP: identifier).
    pub sport: u16,
    /// Destination port (ICMP: type and code, see [`IcmpFields`]).
    pub dport: u16,
}

/// ICMP identity of a query connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpFields {
    /// Type in this direction (request type ORIGINAL, answer type REPLY).
    pub type_: u8,
    /// Code.
    pub code: u8,
    /// Identifier.
    pub id: u16,
}

/// Everything an operator sees of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryView {
    /// Address family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
    /// TCP state (TCP only).
    pub tcp_state: Option<TcpState>,
    /// Whole seconds until expiry.
    pub timeout: u32,
    /// ORIGINAL tuple.
    pub orig: Tuple,
    /// REPLY tuple.
    pub reply: Tuple,
    /// ICMP fields of the ORIGINAL and REPLY directions (ICMP queries only).
    pub icmp: Option<(IcmpFields, IcmpFields)>,
    /// A reply was seen (else `[UNREPLIED]`).
    pub seen_reply: bool,
    /// `[ASSURED]`.
    pub assured: bool,
}

impl EntryView {
    /// The view of `e` at `now`.
    pub fn new(e: &Entry, now: Tick) -> EntryView {
        let (src, dst, sport, dport) = if e.orig_swapped() {
            (e.hi_addr, e.lo_addr, e.hi_port, e.lo_port)
        } else {
            (e.lo_addr, e.hi_addr, e.lo_port, e.hi_port)
        };
        let orig = Tuple {
            src,
            dst,
            sport,
            dport,
        };
        let reply = Tuple {
            src: dst,
            dst: src,
            sport: dport,
            dport: sport,
        };
        let icmp = match e.state {
            ProtoState::Icmp => {
                let (req, code) = ((e.hi_port >> 8) as u8, e.hi_port as u8);
                Some((
                    IcmpFields {
                        type_: req,
                        code,
                        id: e.lo_port,
                    },
                    IcmpFields {
                        type_: reply_type(e.family, req).unwrap_or(req),
                        code,
                        id: e.lo_port,
                    },
                ))
            }
            _ => None,
        };
        EntryView {
            family: e.family,
            proto: e.proto,
            tcp_state: match e.state {
                ProtoState::Tcp(c) => Some(c.state()),
                _ => None,
            },
            timeout: e.expires.remaining(now).whole_secs(),
            orig,
            reply,
            icmp,
            seen_reply: e.flags.seen_reply(),
            assured: e.flags.assured(),
        }
    }

    /// Protocol name as conntrack prints it (`tcp`, `udp`, `icmp`, `icmpv6`, `gre`, else
    /// `unknown`).
    pub fn proto_name(&self) -> &'static str {
        match self.proto {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::ICMP => "icmp",
            proto::ICMPV6 => "icmpv6",
            proto::GRE => "gre",
            _ => "unknown",
        }
    }

    /// An address of this entry's family, printed as conntrack does.
    pub fn addr(&self, a: u128) -> Addr {
        Addr(self.family, a)
    }
}

/// An address with its family, displayed as dotted quad or RFC 5952 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr(pub Family, pub u128);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Family::V4 => Ipv4Addr::from(self.1 as u32).fmt(f),
            Family::V6 => Ipv6Addr::from(self.1).fmt(f),
        }
    }
}

/// The `conntrack -L` line, e.g.
/// `tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 src=10.0.2.2
/// dst=10.0.1.2 sport=80 dport=40000 [ASSURED] mark=0 use=1`.
impl fmt::Display for EntryView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {} {} ",
            self.proto_name(),
            self.proto,
            self.timeout
        )?;
        if let Some(s) = self.tcp_state {
            write!(f, "{} ", s.name())?;
        }
        let tuple = |f: &mut fmt::Formatter<'_>, t: &Tuple, icmp: Option<IcmpFields>| {
            write!(f, "src={} dst={} ", self.addr(t.src), self.addr(t.dst))?;
            match icmp {
                Some(i) => write!(f, "type={} code={} id={} ", i.type_, i.code, i.id),
                None if matches!(self.proto, proto::TCP | proto::UDP) => {
                    write!(f, "sport={} dport={} ", t.sport, t.dport)
                }
                None if self.proto == proto::GRE => {
                    write!(f, "srckey={:#x} dstkey={:#x} ", t.sport, t.dport)
                }
                None => Ok(()),
            }
        };
        tuple(f, &self.orig, self.icmp.map(|i| i.0))?;
        if !self.seen_reply {
            f.write_str("[UNREPLIED] ")?;
        }
        tuple(f, &self.reply, self.icmp.map(|i| i.1))?;
        if self.assured {
            f.write_str("[ASSURED] ")?;
        }
        f.write_str("mark=0 use=1")
    }
}
