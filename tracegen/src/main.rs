//! `ctfw-tracegen`: writes deterministic captures for tests, scenario checks and benchmarks.
//!
//! The output format follows the file name: `.pcapng` gives pcapng with the interfaces
//! `inside` (0) and `outside` (1) and each packet on its ingress side; anything else gives
//! classic pcap (microseconds unless `--nanos`). `--split-by-side DIR` also writes
//! `DIR/inside.pcap` and `DIR/outside.pcap`, one per ingress port (DPDK `net_pcap` rx).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use ctfw_tracegen::generate::{
    self, DEFAULT_SEED, EstablishedOpts, MixedOpts, Order, SoakOpts, Summary, SynfloodOpts,
};
use ctfw_tracegen::write::{CaptureFile, Counter, PacketSink, Resolution, SplitBySide, Tee};
use ctfw_tracegen::{Side, random};

#[derive(Debug, Parser)]
#[command(
    name = "ctfw-tracegen",
    version,
    about = "Generate deterministic packet captures for ctfw"
)]
struct Cli {
    /// Seed: the same seed and options always give the same bytes.
    #[arg(long, global = true, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Nanosecond timestamps in classic pcap output (default microseconds).
    #[arg(long, global = true)]
    nanos: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderArg {
    /// Flow 0, 1, ..., N-1, 0, ...
    Rr,
    /// Random flow each packet (deterministic for the seed).
    Random,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SideArg {
    Inside,
    Outside,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N concurrent TCP connections: all handshakes first, then M packets of established
    /// data/ACK traffic in both directions (total 3N + M packets; M with --data-only).
    Established {
        /// Concurrent connections.
        #[arg(long)]
        flows: u64,
        /// Packets after the handshakes.
        #[arg(long)]
        packets: u64,
        /// Fraction of flows over IPv6 (0..=1).
        #[arg(long, default_value_t = 0.0)]
        v6_share: f64,
        /// Payload bytes per data segment (max 1448; 0 = pure ACKs).
        #[arg(long, default_value_t = 512)]
        payload: u32,
        /// Omit the handshakes: mid-stream traffic for loose pickup; each flow's first
        /// packet comes from the client.
        #[arg(long)]
        data_only: bool,
        /// How flows take turns.
        #[arg(long, value_enum, default_value = "random")]
        order: OrderArg,
        /// Use the TCP timestamps option.
        #[arg(long)]
        timestamps: bool,
        /// Nanoseconds between packets.
        #[arg(long, default_value_t = 1_000)]
        gap_ns: u64,
        /// Output file (.pcap or .pcapng).
        #[arg(long)]
        out: PathBuf,
        /// Also write DIR/inside.pcap and DIR/outside.pcap.
        #[arg(long, value_name = "DIR")]
        split_by_side: Option<PathBuf>,
    },
    /// A realistic mix: TCP connections opening and closing (FIN, RST), DNS-like UDP and
    /// UDP streams, pings, invalid packets, VLAN tags, IPv6.
    Mixed {
        /// Conversations active at once.
        #[arg(long)]
        flows: u64,
        /// Total packets.
        #[arg(long)]
        packets: u64,
        /// Mean nanoseconds between packets.
        #[arg(long, default_value_t = 10_000)]
        gap_ns: u64,
        /// Output file (.pcap or .pcapng).
        #[arg(long)]
        out: PathBuf,
        /// Also write DIR/inside.pcap and DIR/outside.pcap.
        #[arg(long, value_name = "DIR")]
        split_by_side: Option<PathBuf>,
    },
    /// SYNs from many spoofed sources to one server.
    Synflood {
        /// SYNs to write.
        #[arg(long)]
        count: u64,
        /// Side the flood arrives on: inside (creates entries) or outside (dropped by policy).
        #[arg(long, value_enum, default_value = "inside")]
        from: SideArg,
        /// Nanoseconds between SYNs.
        #[arg(long, default_value_t = 1_000)]
        gap_ns: u64,
        /// Craft every SYN's tuple to this 16-bit Toeplitz fold (the XOR of its addresses' and
        /// ports' 16-bit words): a symmetric-key Toeplitz hash sends them all to one queue.
        #[arg(long, value_name = "FOLD")]
        toeplitz_fold: Option<u16>,
        /// Output file (.pcap or .pcapng).
        #[arg(long)]
        out: PathBuf,
        /// Also write DIR/inside.pcap and DIR/outside.pcap.
        #[arg(long, value_name = "DIR")]
        split_by_side: Option<PathBuf>,
    },
    /// A churning attack mix for soak tests (ci/soak.sh): the `mixed` conversations with
    /// SYN, ACK and UDP floods, blind RSTs, ICMP errors quoting live flows and malformed
    /// frames interleaved.
    Soak {
        /// Conversations active at once.
        #[arg(long, default_value_t = 1000)]
        flows: u64,
        /// Total packets.
        #[arg(long)]
        packets: u64,
        /// Mean nanoseconds between packets.
        #[arg(long, default_value_t = 10_000)]
        gap_ns: u64,
        /// Output file (.pcap or .pcapng).
        #[arg(long)]
        out: PathBuf,
        /// Also write DIR/inside.pcap and DIR/outside.pcap.
        #[arg(long, value_name = "DIR")]
        split_by_side: Option<PathBuf>,
    },
    /// The small bundled sample: DIR/sample.pcapng, DIR/inside.pcap, DIR/outside.pcap.
    Sample {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Short random TCP/UDP/ICMP traces for the differential check against the kernel:
    /// DIR/<name>.pcapng per trace and DIR/manifest.json (description and per-packet notes).
    Random {
        /// Traces to write.
        #[arg(long)]
        count: u64,
        /// Index of the first trace (trace i of a seed is the same whatever the range).
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let res = if cli.nanos {
        Resolution::Nano
    } else {
        Resolution::Micro
    };
    let started = Instant::now();
    let (summary, what) = match cli.cmd {
        Cmd::Established {
            flows,
            packets,
            v6_share,
            payload,
            data_only,
            order,
            timestamps,
            gap_ns,
            out,
            split_by_side,
        } => {
            if !(0.0..=1.0).contains(&v6_share) {
                bail!("--v6-share must be between 0 and 1, got {v6_share}");
            }
            if flows == 0 {
                bail!("--flows must be at least 1");
            }
            let opts = EstablishedOpts {
                flows,
                packets,
                v6_share,
                payload,
                data_only,
                order: match order {
                    OrderArg::Rr => Order::RoundRobin,
                    OrderArg::Random => Order::Random,
                },
                timestamps,
                seed: cli.seed,
                gap_ns,
                ..Default::default()
            };
            let s = write_to(&out, split_by_side.as_deref(), res, |sink| {
                generate::established(&opts, sink)
            })?;
            (s, out)
        }
        Cmd::Mixed {
            flows,
            packets,
            gap_ns,
            out,
            split_by_side,
        } => {
            if flows == 0 {
                bail!("--flows must be at least 1");
            }
            let opts = MixedOpts {
                flows,
                packets,
                seed: cli.seed,
                gap_ns,
                ..Default::default()
            };
            let s = write_to(&out, split_by_side.as_deref(), res, |sink| {
                generate::mixed(&opts, sink)
            })?;
            (s, out)
        }
        Cmd::Soak {
            flows,
            packets,
            gap_ns,
            out,
            split_by_side,
        } => {
            if flows == 0 {
                bail!("--flows must be at least 1");
            }
            let opts = SoakOpts {
                flows,
                packets,
                seed: cli.seed,
                gap_ns,
                ..Default::default()
            };
            let s = write_to(&out, split_by_side.as_deref(), res, |sink| {
                generate::soak(&opts, sink)
            })?;
            (s, out)
        }
        Cmd::Synflood {
            count,
            from,
            gap_ns,
            toeplitz_fold,
            out,
            split_by_side,
        } => {
            let from = match from {
                SideArg::Inside => Side::Inside,
                SideArg::Outside => Side::Outside,
            };
            let opts = SynfloodOpts {
                count,
                from,
                seed: cli.seed,
                gap_ns,
                toeplitz_fold,
                ..Default::default()
            };
            let s = write_to(&out, split_by_side.as_deref(), res, |sink| {
                generate::synflood(&opts, sink)
            })?;
            (s, out)
        }
        Cmd::Random { count, first, out } => {
            let counts = random::write_series(cli.seed, first, count, &out)
                .with_context(|| format!("writing traces to {}", out.display()))?;
            let s = Summary {
                counts,
                flows: count,
                last_ts_ns: 0,
            };
            (s, out)
        }
        Cmd::Sample { out } => {
            fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let file = out.join("sample.pcapng");
            let packets = generate::sample();
            let s = write_to(&file, Some(&out), res, |sink| {
                let mut counts = Counter::default();
                for p in &packets {
                    sink.write_packet(p)?;
                    counts.write_packet(p)?;
                }
                let last_ts_ns = packets.last().map_or(0, |p| p.ts_ns);
                Ok(Summary {
                    counts,
                    flows: 7,
                    last_ts_ns,
                })
            })?;
            (s, file)
        }
    };
    let c = summary.counts;
    eprintln!(
        "wrote {} packets ({} inside, {} outside, {} bytes), {} flows, to {} in {:.2} s",
        c.packets,
        c.per_side[0],
        c.per_side[1],
        c.bytes,
        summary.flows,
        what.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens `out` (and the split files), runs `generate` into them, and flushes everything.
fn write_to(
    out: &Path,
    split: Option<&Path>,
    res: Resolution,
    generate: impl FnOnce(&mut dyn PacketSink) -> std::io::Result<Summary>,
) -> Result<Summary> {
    let main =
        CaptureFile::create(out, res).with_context(|| format!("creating {}", out.display()))?;
    match split {
        None => {
            let mut sink = main;
            let s = generate(&mut sink).with_context(|| format!("writing {}", out.display()))?;
            sink.finish()
                .with_context(|| format!("flushing {}", out.display()))?;
            Ok(s)
        }
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let open = |name: &str| {
                let p = dir.join(name);
                CaptureFile::create(&p, res).with_context(|| format!("creating {}", p.display()))
            };
            let mut sink = Tee(
                main,
                SplitBySide {
                    inside: open("inside.pcap")?,
                    outside: open("outside.pcap")?,
                },
            );
            let s = generate(&mut sink).with_context(|| format!("writing {}", out.display()))?;
            let Tee(main, split) = sink;
            main.finish()?;
            split.inside.finish()?;
            split.outside.finish()?;
            Ok(s)
        }
    }
}
