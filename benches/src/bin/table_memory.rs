//! Prints the connection table's memory per tracked flow at several capacities.
//!
//! IPv4 and IPv6 connections share one entry type (addresses are held as `u128` either way),
//! so the cost per flow is the same for both; the figure includes the cuckoo index (sized for
//! 80% load), the memo beside each entry (one `u64`) and the free list. Run with
//! `cargo run --release -p ctfw-benches --bin table_memory`.

#![forbid(unsafe_code)]

use std::mem::{align_of, size_of};

use ctfw_engine::flow::FlowHasher;
use ctfw_engine::table::{Entry, Table};
use ctfw_engine::track::ProtoState;
use ctfw_engine::track::tcp::TcpConn;

fn main() {
    println!(
        "Entry: {} bytes (align {}); of which ProtoState {} bytes, TcpConn {} bytes",
        size_of::<Entry>(),
        align_of::<Entry>(),
        size_of::<ProtoState>(),
        size_of::<TcpConn>(),
    );
    println!("IPv4 and IPv6 flows use the same Entry: the figures below hold for both.");
    println!(
        "{:>12} {:>12} {:>14} {:>10}",
        "capacity", "MiB", "bytes/flow", "index %"
    );
    for capacity in [1_000u32, 100_000, 1_000_000, 10_000_000] {
        let t = Table::new(capacity, FlowHasher::with_seeds(ctfw_benches::SEEDS));
        let total = t.memory_bytes();
        let entries = t.capacity() * size_of::<Entry>();
        let memos = t.capacity() * size_of::<u64>();
        let free_list = t.capacity() * size_of::<u32>();
        let index = total - entries - memos - free_list;
        println!(
            "{:>12} {:>12.1} {:>14.1} {:>9.1}%",
            t.capacity(),
            total as f64 / (1 << 20) as f64,
            total as f64 / t.capacity() as f64,
            100.0 * index as f64 / total as f64,
        );
    }
}
