//! Counts the packets of a capture per interface with the streaming reader, and times it.
//!
//! `cargo run --release -p ctfw-tracegen --example capcount -- FILE.pcap[ng]`

use std::collections::BTreeMap;
use std::time::Instant;

use ctfw_tracegen::read::CaptureReader;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: capcount FILE");
        std::process::exit(2);
    };
    let started = Instant::now();
    let mut reader = match CaptureReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let mut per_iface: BTreeMap<String, u64> = BTreeMap::new();
    let (mut packets, mut bytes, mut first, mut last) = (0u64, 0u64, None, 0u64);
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                packets += 1;
                bytes += rec.data.len() as u64;
                first.get_or_insert(rec.ts_ns);
                last = rec.ts_ns;
                let name = rec.interface_name.unwrap_or("-").to_owned();
                *per_iface.entry(name).or_default() += 1;
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        }
    }
    let span = last.saturating_sub(first.unwrap_or(last)) as f64 / 1e9;
    println!(
        "{path}: {:?}, {packets} packets, {bytes} bytes, {span:.6} s of traffic",
        reader.format()
    );
    for (name, n) in per_iface {
        println!("  {name}: {n}");
    }
    eprintln!("read in {:.2} s", started.elapsed().as_secs_f64());
}
