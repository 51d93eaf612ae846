//! Parsing, flow keys and flow hashing alone, as a plain program for callgrind.
//!
//! `profile_wire [ROUNDS] [v4|v6] [ack|data] [nic|sw]` builds one of the benchmark's frames
//! (IPv4 by default, or IPv6; the 54-byte ACK by default, or the 566-byte data segment) and
//! runs each stage `ROUNDS` times (default 100,000): `wire::parse` with NIC-verified
//! (default) or software-verified checksums, then `flow::key_of` and `FlowHasher::hash` of
//! the parsed packet. Each stage runs in a function of its own, so that
//! `valgrind --tool=callgrind --toggle-collect='*timed_parse*' profile_wire 100000` counts the
//! instructions of one stage alone (divide by ROUNDS; the loop adds a few).

#![forbid(unsafe_code)]

use std::hint::black_box;

use ctfw_benches::{FlowFactory, SEEDS, Seg, arg};
use ctfw_engine::flow::{self, FlowHasher, KeyedPacket};
use ctfw_engine::wire::{self, ChecksumHint, Packet, ParseConfig};

#[inline(never)]
fn timed_parse(frame: &[u8], hint: ChecksumHint, rounds: u64) {
    let cfg = ParseConfig::default();
    for _ in 0..rounds {
        // Written once, where it is made, as the pipeline's array of parsed packets is.
        let p = wire::parse(black_box(frame), &cfg, black_box(hint));
        black_box(&p);
    }
}

#[inline(never)]
fn timed_key(p: &Packet<'_>, rounds: u64) {
    for _ in 0..rounds {
        let k = flow::key_of(black_box(p));
        black_box(&k);
    }
}

#[inline(never)]
fn timed_hash(h: &FlowHasher, k: &KeyedPacket, rounds: u64) -> u64 {
    let mut x = 0;
    for _ in 0..rounds {
        x ^= h.hash(black_box(&k.key));
    }
    x
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: u64 = arg(&args, 1, 100_000);
    let v6 = args.get(2).is_some_and(|a| a == "v6");
    let seg = match args.get(3).map(String::as_str) {
        Some("data") => Seg::ClientData,
        _ => Seg::ClientAck,
    };
    let hint = match args.get(4).map(String::as_str) {
        Some("sw") => ChecksumHint::Unknown,
        _ => ChecksumHint::Good,
    };
    let frame = FlowFactory::new(v6).frame(12_345, seg);
    let hasher = FlowHasher::with_seeds(SEEDS);
    timed_parse(&frame, hint, rounds);
    let p = wire::parse(&frame, &ParseConfig::default(), hint).expect("the frame parses");
    timed_key(&p, rounds);
    let k = flow::key_of(&p).expect("a keyed packet");
    black_box(timed_hash(&hasher, &k, rounds));
    println!(
        "{} {} bytes {hint:?}: {rounds} rounds per stage",
        if v6 { "IPv6" } else { "IPv4" },
        frame.len()
    );
}
