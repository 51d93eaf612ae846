//! Flow keys: one key per connection, whichever direction a packet travels.
//!
//! A [`FlowKey`] is canonical: for port-based protocols the two endpoints are ordered (lower
//! `(address, port)` first), so both directions of a flow build the same key, hash the same and
//! find the same table entry. ICMP queries are oriented instead by their type (an echo request
//! travels ORIGINAL, its reply REPLY). [`Direction`] says how the packet relates to the entry's
//! ORIGINAL tuple; it is resolved once per packet, here.
//!
//! The engine builds keys only from checked packets ([`key_of`], from a
//! [`crate::wire::Packet`]) or from the inner packet of a checked ICMP error
//! ([`key_of_inner`]). The fields and the constructors [`FlowKey::from_ports`] and
//! [`FlowKey::icmp_query`] are public so that benchmarks and tests can build keys without a
//! frame; such keys are only as canonical as those constructors make them.

use crate::track::icmp::{self, IcmpClass};
use crate::wire::{Family, InnerL4, InnerTuple, IpAddrs, L4, Packet, TcpSeg};

/// Direction of a packet relative to its connection's ORIGINAL tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Same direction as the packet that created the entry.
    Original = 0,
    /// The other way.
    Reply = 1,
}

impl Direction {
    /// Index for per-direction arrays (`seen[dir]` in Linux).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The opposite direction.
    #[inline]
    pub const fn opposite(self) -> Direction {
        match self {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        }
    }
}

/// The canonical identity of a connection.
///
/// For TCP, UDP and other port-based protocols `lo` is the lower `(addr, port)` endpoint.
/// For ICMP queries `lo` is the requester, `hi` the responder, `lo_port` the identifier and
/// `hi_port` `(request type << 8) | code`. For portless protocols both ports are zero, except
/// GRE version 1 (PPTP), keyed on its call id: one port zero, the other the call id, ordered
/// like ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FlowKey {
    /// Lower (or requesting) address.
    pub lo_addr: u128,
    /// Higher (or responding) address.
    pub hi_addr: u128,
    /// Port of `lo_addr` (ICMP: identifier).
    pub lo_port: u16,
    /// Port of `hi_addr` (ICMP: request type and code).
    pub hi_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Address family.
    pub family: Family,
}

/// Both endpoints as the packet carries them, with the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Addresses as on the wire.
    pub addrs: IpAddrs,
    /// Source port (or ICMP identifier).
    pub sport: u16,
    /// Destination port (or ICMP type/code word).
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// A key with the packet's direction relative to the canonical order.
///
/// `swapped` is true when the packet travels `hi -> lo`. The entry remembers whether its
/// ORIGINAL tuple was swapped; the packet's [`Direction`] is the XOR of the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedPacket {
    /// The canonical key.
    pub key: FlowKey,
    /// The packet travels from the `hi` endpoint to the `lo` endpoint.
    pub swapped: bool,
}

impl KeyedPacket {
    /// The packet's addresses, as it carries them: the key's, in the packet's order.
    #[inline]
    pub fn addrs(&self) -> IpAddrs {
        let (src, dst) = if self.swapped {
            (self.key.hi_addr, self.key.lo_addr)
        } else {
            (self.key.lo_addr, self.key.hi_addr)
        };
        IpAddrs {
            family: self.key.family,
            src,
            dst,
        }
    }
}

impl FlowKey {
    /// Canonical key for a port-based (or portless) protocol: orders the endpoints.
    #[inline]
    pub fn from_ports(e: Endpoints) -> KeyedPacket {
        let a = (e.addrs.src, e.sport);
        let b = (e.addrs.dst, e.dport);
        let swapped = a > b;
        let (lo, hi) = if swapped { (b, a) } else { (a, b) };
        KeyedPacket {
            key: FlowKey {
                lo_addr: lo.0,
                hi_addr: hi.0,
                lo_port: lo.1,
                hi_port: hi.1,
                proto: e.proto,
                family: e.addrs.family,
            },
            swapped,
        }
    }

    /// Key for an ICMP query oriented by its type: `is_request` packets travel ORIGINAL
    /// (`lo` = source), replies travel REPLY (`lo` = destination). `request_type` is the type
    /// of the request whichever way the packet goes.
    #[inline]
    pub fn icmp_query(
        addrs: IpAddrs,
        proto: u8,
        id: u16,
        request_type: u8,
        code: u8,
        is_request: bool,
    ) -> KeyedPacket {
        let (lo, hi) = if is_request {
            (addrs.src, addrs.dst)
        } else {
            (addrs.dst, addrs.src)
        };
        KeyedPacket {
            key: FlowKey {
                lo_addr: lo,
                hi_addr: hi,
                lo_port: id,
                hi_port: ((request_type as u16) << 8) | code as u16,
                proto,
                family: addrs.family,
            },
            swapped: !is_request,
        }
    }

    /// Whether the flow's tuple equals its own inverse (same address and port at both ends,
    /// as in a "LAND" packet): both directions look alike. ICMP query keys never are: the
    /// request and answer types differ.
    #[inline]
    pub fn is_self_inverse(&self) -> bool {
        self.lo_addr == self.hi_addr && self.lo_port == self.hi_port && !self.is_icmp()
    }

    /// Whether this key is an ICMP query key (oriented, not ordered).
    #[inline]
    pub fn is_icmp(&self) -> bool {
        matches!(
            (self.family, self.proto),
            (Family::V4, crate::wire::proto::ICMP) | (Family::V6, crate::wire::proto::ICMPV6)
        )
    }
}

/// The key of the connection a packet belongs to, or `None` when the packet does not belong
/// to a connection of its own (ICMP errors, untracked or invalid ICMP types, fragments,
/// malformed transport headers).
#[inline]
pub fn key_of(p: &Packet<'_>) -> Option<KeyedPacket> {
    let ports = |sport, dport| {
        FlowKey::from_ports(Endpoints {
            addrs: p.addrs,
            sport,
            dport,
            proto: p.proto,
        })
    };
    Some(match p.l4 {
        L4::Tcp(s) => key_of_segment(p.addrs, &s),
        L4::Udp(d) => ports(d.sport, d.dport),
        L4::Icmp(m) => return icmp_query_key(p.addrs, p.proto, m.type_, m.code, m.id),
        // Linux keys PPTP GRE on the destination call id; the source key would come from the
        // PPTP helper's keymap, which ctfw does not have: zero, as in Linux without it.
        L4::Gre { call_id } => ports(0, call_id.unwrap_or(0)),
        L4::Other => ports(0, 0),
        L4::Fragment | L4::Malformed(_) => return None,
    })
}

/// The key of a TCP segment carried between `addrs`: what [`key_of`] gives its packet.
#[inline]
pub fn key_of_segment(addrs: IpAddrs, seg: &TcpSeg<'_>) -> KeyedPacket {
    FlowKey::from_ports(Endpoints {
        addrs,
        sport: seg.sport,
        dport: seg.dport,
        proto: crate::wire::proto::TCP,
    })
}

/// The key of the connection an ICMP error quotes, or `None` when the quoted packet does not
/// belong to one (an error quoting an error, or an untrackable ICMP message).
pub fn key_of_inner(inner: &InnerTuple) -> Option<KeyedPacket> {
    let ports = |sport, dport| {
        FlowKey::from_ports(Endpoints {
            addrs: inner.addrs,
            sport,
            dport,
            proto: inner.proto,
        })
    };
    match inner.l4 {
        InnerL4::Ports { sport, dport } => Some(ports(sport, dport)),
        InnerL4::Icmp { type_, code, id } => {
            icmp_query_key(inner.addrs, inner.proto, type_, code, id)
        }
        InnerL4::Gre { call_id } => Some(ports(0, call_id.unwrap_or(0))),
        InnerL4::None => Some(ports(0, 0)),
    }
}

/// The key of an ICMP query or answer; `None` for any other ICMP message.
fn icmp_query_key(addrs: IpAddrs, proto: u8, type_: u8, code: u8, id: u16) -> Option<KeyedPacket> {
    match icmp::classify(addrs.family, type_, code) {
        IcmpClass::Query {
            request_type,
            is_request,
        } => Some(FlowKey::icmp_query(
            addrs,
            proto,
            id,
            request_type,
            code,
            is_request,
        )),
        _ => None,
    }
}

/// Keyed, seeded hashing of flow keys (ahash): outside traffic cannot aim for collisions
/// without the per-start random seed.
#[derive(Clone, Debug)]
pub struct FlowHasher {
    state: ahash::RandomState,
}

impl FlowHasher {
    /// A hasher with the given seeds (random per start in production, fixed in tests).
    pub fn with_seeds(seeds: [u64; 4]) -> Self {
        FlowHasher {
            state: ahash::RandomState::with_seeds(seeds[0], seeds[1], seeds[2], seeds[3]),
        }
    }

    /// 64-bit hash of a key. IPv4 keys hash two words, IPv6 keys five.
    #[inline]
    pub fn hash(&self, k: &FlowKey) -> u64 {
        use core::hash::{BuildHasher, Hasher};
        let mut h = self.state.build_hasher();
        let meta = ((k.lo_port as u64) << 48)
            | ((k.hi_port as u64) << 32)
            | ((k.proto as u64) << 8)
            | k.family as u64;
        match k.family {
            Family::V4 => {
                h.write_u64(((k.lo_addr as u64) << 32) | (k.hi_addr as u64 & 0xffff_ffff));
                h.write_u64(meta);
            }
            Family::V6 => {
                h.write_u128(k.lo_addr);
                h.write_u128(k.hi_addr);
                h.write_u64(meta);
            }
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(src: u32, dst: u32) -> IpAddrs {
        IpAddrs {
            family: Family::V4,
            src: src as u128,
            dst: dst as u128,
        }
    }

    #[test]
    fn both_directions_build_the_same_key() {
        let fwd = FlowKey::from_ports(Endpoints {
            addrs: v4(0x0a000102, 0x0a000202),
            sport: 40000,
            dport: 80,
            proto: 6,
        });
        let rev = FlowKey::from_ports(Endpoints {
            addrs: v4(0x0a000202, 0x0a000102),
            sport: 80,
            dport: 40000,
            proto: 6,
        });
        assert_eq!(fwd.key, rev.key);
        assert_ne!(fwd.swapped, rev.swapped);
        let h = FlowHasher::with_seeds([1, 2, 3, 4]);
        assert_eq!(h.hash(&fwd.key), h.hash(&rev.key));
    }

    #[test]
    fn ports_break_ties_between_equal_addresses() {
        let a = FlowKey::from_ports(Endpoints {
            addrs: v4(1, 1),
            sport: 2,
            dport: 1,
            proto: 17,
        });
        assert!(a.swapped);
        assert_eq!((a.key.lo_port, a.key.hi_port), (1, 2));
    }

    #[test]
    fn echo_request_and_reply_share_a_key() {
        let req = FlowKey::icmp_query(v4(1, 2), 1, 7, 8, 0, true);
        let rep = FlowKey::icmp_query(v4(2, 1), 1, 7, 8, 0, false);
        assert_eq!(req.key, rep.key);
        assert!(!req.swapped);
        assert!(rep.swapped);
    }

    #[test]
    fn seeds_change_the_hash() {
        let k = FlowKey::from_ports(Endpoints {
            addrs: v4(1, 2),
            sport: 3,
            dport: 4,
            proto: 6,
        })
        .key;
        let a = FlowHasher::with_seeds([1, 2, 3, 4]).hash(&k);
        let b = FlowHasher::with_seeds([5, 6, 7, 8]).hash(&k);
        assert_ne!(a, b);
    }

    fn v6(src: u128, dst: u128) -> IpAddrs {
        IpAddrs {
            family: Family::V6,
            src,
            dst,
        }
    }

    /// Keys that differ little: many clients of one server, consecutive addresses and ports,
    /// as a load test (or an attacker without the seeds) would send.
    fn crowded_keys(v6_keys: bool, n: u32) -> Vec<FlowKey> {
        (0..n)
            .map(|i| {
                let client = 0x0a00_0000 | (i >> 4);
                let addrs = if v6_keys {
                    v6(0xfd00 << 112 | u128::from(client), 0xfd00 << 112 | 1)
                } else {
                    v4(client, 0xac10_0001)
                };
                FlowKey::from_ports(Endpoints {
                    addrs,
                    sport: 40_000 + (i & 15) as u16,
                    dport: 443,
                    proto: 6,
                })
                .key
            })
            .collect()
    }

    /// The table takes its first bucket from the hash's low 32 bits, its second from bits
    /// 24..56 and its tag from the top byte: each must spread crowded keys evenly. Chi-square
    /// over 1024 cells of 64 keys expected each: 1023 degrees of freedom, so about
    /// 1023 +- 45; 1250 is five standard deviations out (a hash that ignores the ports, or
    /// leaves any of these bit ranges to a few input bits, lands in the tens of thousands).
    #[test]
    fn hashes_of_crowded_keys_fill_buckets_evenly() {
        let h = FlowHasher::with_seeds([1, 2, 3, 4]);
        for v6_keys in [false, true] {
            let keys = crowded_keys(v6_keys, 1 << 16);
            for (what, shift) in [
                ("low bits", 0),
                ("second bucket bits", 24),
                ("tag bits", 54),
            ] {
                let mut cells = [0u32; 1024];
                for k in &keys {
                    cells[((h.hash(k) >> shift) & 1023) as usize] += 1;
                }
                let expected = keys.len() as f64 / 1024.0;
                let chi2: f64 = cells
                    .iter()
                    .map(|&c| (f64::from(c) - expected).powi(2) / expected)
                    .sum();
                assert!(chi2 < 1250.0, "v6 {v6_keys}, {what}: chi-square {chi2:.0}");
            }
        }
    }

    /// Avalanche: flipping any one bit of a key's addresses or ports flips about half of the
    /// hash's 64 bits (32 +- 4 on average over 256 keys; a weak mix leaves some input bits
    /// moving only a few output bits).
    #[test]
    fn every_key_bit_moves_half_the_hash() {
        let h = FlowHasher::with_seeds([0xdead, 0xbeef, 0xfeed, 0xface]);
        for v6_keys in [false, true] {
            let keys = crowded_keys(v6_keys, 256);
            let addr_bits = if v6_keys { 128 } else { 32 };
            for bit in 0..(2 * addr_bits + 32) {
                let flipped = |k: &FlowKey| {
                    let mut k = *k;
                    match bit {
                        b if b < addr_bits => k.lo_addr ^= 1 << b,
                        b if b < 2 * addr_bits => k.hi_addr ^= 1 << (b - addr_bits),
                        b if b < 2 * addr_bits + 16 => k.lo_port ^= 1 << (b - 2 * addr_bits),
                        b => k.hi_port ^= 1 << (b - 2 * addr_bits - 16),
                    }
                    k
                };
                let moved: u32 = keys
                    .iter()
                    .map(|k| (h.hash(k) ^ h.hash(&flipped(k))).count_ones())
                    .sum();
                let mean = f64::from(moved) / keys.len() as f64;
                assert!(
                    (28.0..=36.0).contains(&mean),
                    "v6 {v6_keys}, bit {bit}: {mean:.1} output bits move"
                );
            }
        }
    }
}
