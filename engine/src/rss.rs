//! Symmetric receive-side scaling: which worker owns a flow.
//!
//! ctfw gives each worker its own connection table, so both directions of a flow must reach
//! the same worker. NICs that hash use the Toeplitz function with the key `0x6d5a` repeated,
//! which is symmetric: swapping source and destination (addresses and ports) gives the same
//! hash, because the key repeats every 16 bits and the swapped fields sit 32 (or 128) bits
//! apart. Devices that cannot hash get the same function in software ([`Toeplitz`]), and the
//! same mapping from hash to worker ([`owner`]), so hardware- and software-distributed ports
//! agree on every flow's owner.
//!
//! What is hashed follows what NICs hash for `RTE_ETH_RSS_IP | TCP | UDP`: addresses and ports
//! for unfragmented TCP and UDP, addresses alone for everything else. ICMP errors are the one
//! exception ([`dispatch_hash`]): they belong to the flow they quote, so the quoted packet's
//! tuple is hashed; a worker that receives an error from hardware RSS re-dispatches it.

use crate::wire::bytes::be16;
use crate::wire::ethernet::{self, MAX_VLAN_TAGS, VLAN_TAG_LEN, ethertype};
use crate::wire::{self, ChecksumHint, Family, InnerL4, L4, ParseConfig, proto};

/// Offset of the EtherType (or the first VLAN TPID): the last two bytes of the MAC header.
const ETHERTYPE_AT: usize = ethernet::HEADER_LEN - 2;

/// The symmetric RSS key: `0x6d5a` repeated (52 bytes, enough for every NIC's key size).
pub const SYMMETRIC_KEY: [u8; 52] = {
    let mut k = [0u8; 52];
    let mut i = 0;
    while i < 52 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Indirection-table granularity: the low bits of the hash that choose a worker. Hardware
/// RETAs are programmed so entry `j` names worker `(j % RETA_SPAN) % workers`, which
/// makes [`owner`] agree with the device whatever its RETA size (a power of two >= this).
pub const RETA_SPAN: u32 = 128;

/// The worker that owns a flow with RSS hash `hash` among `workers` workers.
#[inline]
pub fn owner(hash: u32, workers: u32) -> u32 {
    (hash & (RETA_SPAN - 1)) % workers.max(1)
}

/// The longest input hashed: two IPv6 addresses and two ports.
const MAX_INPUT: usize = 36;

/// A Toeplitz hash with a fixed key, table-driven: one lookup per input byte.
#[derive(Clone)]
pub struct Toeplitz {
    /// `table[i][b]`: the hash contribution of byte value `b` at input offset `i`.
    table: Box<[[u32; 256]; MAX_INPUT]>,
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Toeplitz { .. }")
    }
}

impl Toeplitz {
    /// Tables for `key` (at least `MAX_INPUT + 4` bytes are used; shorter keys are padded with
    /// zeros, as a NIC with a shorter key would behave for the bytes it hashes).
    pub fn new(key: &[u8]) -> Toeplitz {
        let key_bit = |bit: usize| -> u32 {
            let byte = key.get(bit / 8).copied().unwrap_or(0);
            ((byte >> (7 - bit % 8)) & 1) as u32
        };
        // The 32-bit key window starting at bit `pos`.
        let window = |pos: usize| -> u32 { (0..32).fold(0u32, |w, j| (w << 1) | key_bit(pos + j)) };
        let mut table = Box::new([[0u32; 256]; MAX_INPUT]);
        for (i, row) in table.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().enumerate() {
                *cell = (0..8)
                    .filter(|bit| b & (0x80 >> bit) != 0)
                    .fold(0, |h, bit| h ^ window(i * 8 + bit));
            }
        }
        Toeplitz { table }
    }

    /// The symmetric hash used by ctfw.
    pub fn symmetric() -> Toeplitz {
        Toeplitz::new(&SYMMETRIC_KEY)
    }

    /// Hash `input` (at most 36 bytes; the rest is ignored).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.table.iter())
            .fold(0, |h, (&b, row)| h ^ row[b as usize])
    }

    /// Hash an address pair, and ports when `ports` is given, in the NIC's input order:
    /// source address, destination address, source port, destination port.
    #[inline]
    pub fn hash_tuple(
        &self,
        family: Family,
        src: u128,
        dst: u128,
        ports: Option<(u16, u16)>,
    ) -> u32 {
        let mut buf = [0u8; MAX_INPUT];
        let alen = match family {
            Family::V4 => {
                buf[0..4].copy_from_slice(&(src as u32).to_be_bytes());
                buf[4..8].copy_from_slice(&(dst as u32).to_be_bytes());
                8
            }
            Family::V6 => {
                buf[0..16].copy_from_slice(&src.to_be_bytes());
                buf[16..32].copy_from_slice(&dst.to_be_bytes());
                32
            }
        };
        let len = match ports {
            Some((sp, dp)) => {
                buf[alen..alen + 2].copy_from_slice(&sp.to_be_bytes());
                buf[alen + 2..alen + 4].copy_from_slice(&dp.to_be_bytes());
                alen + 4
            }
            None => alen,
        };
        self.hash(&buf[..len])
    }
}

/// The hash that decides a frame's owner: what a NIC would compute for it, except that an ICMP
/// error is hashed on the flow it quotes. `None` for frames [`wire::parse`] rejects (non-IP,
/// or a malformed link or network layer): any worker may take them, since they are dropped or
/// forwarded without tracking.
pub fn dispatch_hash(t: &Toeplitz, frame: &[u8]) -> Option<u32> {
    let p = parse_unverified(frame).ok()?;
    let a = p.addrs;
    let ports = match p.l4 {
        L4::Tcp(s) => Some((s.sport, s.dport)),
        L4::Udp(d) => Some((d.sport, d.dport)),
        L4::Icmp(wire::IcmpMsg {
            inner: Some(Ok(inner)),
            ..
        }) => return Some(quoted_hash(t, &inner)),
        _ => None,
    };
    Some(t.hash_tuple(a.family, a.src, a.dst, ports))
}

/// The hash of the flow an ICMP error quotes: as [`dispatch_hash`] hashes the quoted packet.
fn quoted_hash(t: &Toeplitz, inner: &wire::InnerTuple) -> u32 {
    let ports = match (inner.proto, inner.l4) {
        (proto::TCP | proto::UDP, InnerL4::Ports { sport, dport }) => Some((sport, dport)),
        _ => None,
    };
    t.hash_tuple(inner.addrs.family, inner.addrs.src, inner.addrs.dst, ports)
}

/// For a frame that is an ICMP error with a readable quote, the [`dispatch_hash`] of the flow
/// it quotes; `None` for anything else. This is what a worker receiving from hardware RSS
/// needs: only ICMP errors can land on a worker other than their flow's owner. A few byte
/// reads settle almost every frame; only ICMP (and IPv6 with extension headers) is parsed,
/// once.
#[inline]
pub fn icmp_error_hash(t: &Toeplitz, frame: &[u8]) -> Option<u32> {
    if !may_be_icmp(frame) {
        return None;
    }
    match parse_unverified(frame) {
        Ok(wire::Packet {
            l4:
                L4::Icmp(wire::IcmpMsg {
                    inner: Some(Ok(inner)),
                    ..
                }),
            ..
        }) => Some(quoted_hash(t, &inner)),
        _ => None,
    }
}

/// A parse that skips checksums: enough to pick a worker.
#[inline]
fn parse_unverified(frame: &[u8]) -> Result<wire::Packet<'_>, crate::Reason> {
    let cfg = ParseConfig {
        verify_l4_checksum: false,
    };
    wire::parse(frame, &cfg, ChecksumHint::Good)
}

/// False only for frames that certainly carry no ICMP at the top: non-IP, or IPv4/IPv6 whose
/// next protocol is not ICMP (IPv6 extension headers count as maybe).
#[inline]
fn may_be_icmp(frame: &[u8]) -> bool {
    // Skip the VLAN tags `wire::parse` would strip to the EtherType; a frame with more is not
    // parsed at all, so it is no ICMP error either.
    let mut off = ETHERTYPE_AT;
    let mut tags = 0;
    while let Some(t) = frame.get(off..off + 2) {
        return match be16(t) {
            t if ethertype::is_vlan(t) && tags < MAX_VLAN_TAGS => {
                off += VLAN_TAG_LEN;
                tags += 1;
                continue;
            }
            // IPv4: protocol at byte 9 of the header.
            ethertype::IPV4 => frame.get(off + 2 + 9) == Some(&proto::ICMP),
            // IPv6: next header at byte 6; anything but TCP/UDP may be an extension header.
            ethertype::IPV6 => !matches!(
                frame.get(off + 2 + 6),
                Some(&proto::TCP) | Some(&proto::UDP) | None
            ),
            _ => false,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's RSS verification key and vectors ("Verifying the RSS Hash Calculation").
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn v4(a: [u8; 4]) -> u128 {
        u32::from_be_bytes(a) as u128
    }

    #[test]
    fn microsoft_ipv4_vectors() {
        let t = Toeplitz::new(&MS_KEY);
        // (src, sport, dst, dport, ip-only hash, tcp hash)
        let cases = [
            (
                [66, 9, 149, 187],
                2794,
                [161, 142, 100, 80],
                1766,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                [199, 92, 111, 2],
                14230,
                [65, 69, 140, 83],
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                12898,
                [12, 22, 207, 184],
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                [38, 27, 205, 30],
                48228,
                [209, 142, 163, 6],
                2217,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                [153, 39, 163, 191],
                44251,
                [202, 188, 127, 2],
                1303,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        for (src, sp, dst, dp, ip, tcp) in cases {
            assert_eq!(t.hash_tuple(Family::V4, v4(src), v4(dst), None), ip);
            assert_eq!(
                t.hash_tuple(Family::V4, v4(src), v4(dst), Some((sp, dp))),
                tcp
            );
        }
    }

    #[test]
    fn symmetric_key_gives_the_same_hash_both_ways() {
        let t = Toeplitz::symmetric();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (a, b) = (x as u32 as u128, (x >> 32) as u128);
            let (p, q) = (x as u16, (x >> 16) as u16);
            assert_eq!(
                t.hash_tuple(Family::V4, a, b, Some((p, q))),
                t.hash_tuple(Family::V4, b, a, Some((q, p)))
            );
            let (c, d) = ((x as u128) << 64 | a, (b << 96) | x as u128);
            assert_eq!(
                t.hash_tuple(Family::V6, c, d, Some((p, q))),
                t.hash_tuple(Family::V6, d, c, Some((q, p)))
            );
            assert_eq!(
                t.hash_tuple(Family::V6, c, d, None),
                t.hash_tuple(Family::V6, d, c, None)
            );
        }
    }

    #[test]
    fn owner_spreads_over_workers() {
        let t = Toeplitz::symmetric();
        let mut seen = [0u32; 4];
        // Pseudo-random clients, as real traffic has. (The symmetric key hashes the XOR of the
        // input's 16-bit words, so contrived inputs whose words cancel out spread poorly; that
        // is the known price of symmetry, harmless for real address and port mixes.)
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = t.hash_tuple(
                Family::V4,
                (x as u32) as u128,
                0x0b00_0001,
                Some(((x >> 32) as u16, 443)),
            );
            seen[owner(h, 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(owner(12345, 1), 0);
        assert_eq!(owner(12345, 0), 0);
    }
}

#[cfg(test)]
mod dispatch_tests {
    use super::*;
    use ctfw_tracegen::frame::Frame;
    use std::net::Ipv4Addr;

    /// An ICMP error goes to the worker that owns the flow it quotes, whichever router sends
    /// it: its dispatch hash is the flow's, in both directions.
    #[test]
    fn icmp_errors_hash_like_the_flow_they_quote() {
        let t = Toeplitz::symmetric();
        let (client, server, router) = (
            Ipv4Addr::new(10, 0, 1, 2),
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 1),
        );
        let datagram = Frame::ipv4(client, server).udp(40000, 53).payload(&[1; 20]);
        let reply = Frame::ipv4(server, client)
            .udp(53, 40000)
            .payload(&[1; 20])
            .build();
        let unreachable = Frame::ipv4(router, client)
            .icmp_error(3, 3, &datagram)
            .build();
        let original = datagram.build();
        let flow = dispatch_hash(&t, &original).expect("ip");
        assert_eq!(dispatch_hash(&t, &reply), Some(flow));
        assert_eq!(dispatch_hash(&t, &unreachable), Some(flow));
        assert_eq!(icmp_error_hash(&t, &unreachable), Some(flow));
        assert_eq!(icmp_error_hash(&t, &original), None);
        let tagged = Frame::ipv4(router, client)
            .vlan(7)
            .icmp_error(3, 3, &datagram)
            .build();
        assert_eq!(icmp_error_hash(&t, &tagged), Some(flow));
        assert_eq!(dispatch_hash(&t, &tagged), Some(flow));
        let echo = Frame::ipv4(client, server).echo_request(1, 1).build();
        assert_eq!(icmp_error_hash(&t, &echo), None, "a query is not an error");
        assert_eq!(icmp_error_hash(&t, &[0u8; 10]), None);
        // The outer addresses alone would usually choose another worker.
        let outer = t.hash_tuple(
            Family::V4,
            u32::from(router) as u128,
            u32::from(client) as u128,
            None,
        );
        assert_ne!(outer, flow);
    }
}
