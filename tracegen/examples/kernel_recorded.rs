//! Writes the hand-made traces of `tests/kernel-recorded/` (see its README): corner cases of
//! the TCP RST rules and of GRE keys, each recorded through a Linux 6.18.44 router there.
//!
//! `cargo run -p ctfw-tracegen --example kernel_recorded -- tests/kernel-recorded/traces`
//! rewrites the traces and their entries of `manifest.json` (other entries are kept). Same
//! code, same bytes.

use ctfw_tracegen::frame::{Frame, icmp, macs};
use ctfw_tracegen::{Dir, Packet, PacketSink, PcapngWriter, Side, TcpFlags, TcpSim};
use serde_json::{Value, json};
use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;

struct Trace {
    name: &'static str,
    description: &'static str,
    packets: Vec<(Packet, String)>,
}

fn write(dir: &str, t: &Trace, manifest: &mut serde_json::Map<String, Value>) {
    let f =
        BufWriter::new(File::create(format!("{dir}/{}.pcapng", t.name)).expect("kernel_recorded"));
    let mut w = PcapngWriter::with_interfaces(f, &["inside", "outside"]).expect("kernel_recorded");
    let t0 = t.packets[0].0.ts_ns;
    let mut notes = Vec::new();
    for (i, (p, note)) in t.packets.iter().enumerate() {
        w.write_packet(p).expect("kernel_recorded");
        notes.push(
            json!({"index": i, "direction": if p.side == Side::Inside {"c2s"} else {"s2c"},
            "t": ((p.ts_ns - t0) as f64 / 1e9 * 1e6).round() / 1e6, "note": note}),
        );
    }
    manifest.insert(
        t.name.into(),
        json!({"description": t.description, "packets": notes}),
    );
}

fn sim_trace(
    name: &'static str,
    description: &'static str,
    sim: &mut TcpSim,
    notes: &[&str],
) -> Trace {
    let pkts = sim.take_packets();
    assert_eq!(pkts.len(), notes.len(), "{name}");
    Trace {
        name,
        description,
        packets: pkts
            .into_iter()
            .zip(notes.iter().map(|s| s.to_string()))
            .collect(),
    }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: kernel_recorded OUT_DIR");
    let mut manifest = serde_json::Map::new();
    let est = [
        "c2s SYN",
        "s2c SYN/ACK",
        "c2s ACK (handshake complete)",
        "c2s 100 bytes",
        "s2c ACK",
        "s2c 500 bytes",
        "c2s ACK",
    ];
    let after = ["c2s 100 bytes", "s2c ACK", "s2c 500 bytes", "c2s ACK"];
    for (name, description, isn2, dir_rst, seq_new) in [
        (
            "rst-peer-answers-ignored-syn",
            "ESTABLISHED and ASSURED after data; the client sends a SYN with a new ISN on the live tuple (ignored, noted); the server answers it with RST/ACK, ack = new ISN + 1: accepted without window checks, CLOSE (10 s). Then the connection's own segments are ESTABLISHED packets of the CLOSE entry.",
            1_500_000_000u32,
            Dir::S2c,
            false,
        ),
        (
            "rst-same-side-ack-over-window",
            "As rst-peer-answers-ignored-syn, but the client itself sends the RST/ACK (seq in window, ack = new ISN + 1, beyond what the server sent): no answer to the SYN (last_dir == dir, 6.18.35+), so tcp_in_window applies: INVALID (ACK over the upper bound), dropped; the entry stays ESTABLISHED and ASSURED and the connection goes on.",
            1_500_000_000,
            Dir::C2s,
            false,
        ),
        (
            "rst-same-side-seq-over-window",
            "As rst-same-side-ack-over-window with the RST's seq = new ISN + 1, beyond the client's window: INVALID (SEQ over the upper bound), the entry unchanged.",
            1_500_000_000,
            Dir::C2s,
            true,
        ),
        (
            "rst-same-side-ack-far-below",
            "As rst-same-side-ack-over-window with the new ISN far below the server's sequence space: tcp_in_window ignores the RST (ACK under the lower bound): forwarded as ESTABLISHED, no state or timeout change.",
            3_500_000_000,
            Dir::C2s,
            false,
        ),
        (
            "rst-same-side-seq-and-ack-far-below",
            "As rst-same-side-ack-far-below with seq = new ISN + 1 as well: ignored, no change.",
            3_500_000_000,
            Dir::C2s,
            true,
        ),
    ] {
        let mut sim = TcpSim::default_v4().isn(1_000_000, 5_000_000);
        sim.handshake().exchange(100, 500);
        let mut syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
        syn.tcp_mut().expect("kernel_recorded").seq = isn2;
        sim.push(Dir::C2s, &syn);
        let mut rst = sim.craft(dir_rst, TcpFlags::RST | TcpFlags::ACK, 0);
        {
            let t = rst.tcp_mut().expect("kernel_recorded");
            t.ack = isn2.wrapping_add(1);
            if seq_new {
                t.seq = isn2.wrapping_add(1);
            }
        }
        sim.push(dir_rst, &rst);
        sim.exchange(100, 500);
        let mut notes: Vec<&str> = est.to_vec();
        notes.push("c2s SYN with a new ISN on the live tuple (ignored)");
        notes.push(if dir_rst == Dir::S2c {
            "s2c RST/ACK, ack = new ISN + 1"
        } else {
            "c2s RST/ACK, ack = its own new ISN + 1"
        });
        notes.extend(after);
        write(
            &dir,
            &sim_trace(name, description, &mut sim, &notes),
            &mut manifest,
        );
    }
    for (name, description, rst_dir) in [
        (
            "rst-after-ignored-ack-from-server",
            "SYN; the server answers with a bare ACK (SYN_SENT: ignored, noted, counts as a reply); then the server's own RST/ACK with ack = the seq of that ACK: the ACK case of the RST shortcut has no direction condition, so the not-ASSURED entry goes to CLOSE; a new SYN is then an ESTABLISHED packet of the CLOSE entry.",
            Dir::S2c,
        ),
        (
            "rst-after-ignored-ack-from-client",
            "As rst-after-ignored-ack-from-server with the RST from the client: CLOSE, and the new SYN re-opens the tuple (closed by an RST from its own side): NEW, SYN_SENT.",
            Dir::C2s,
        ),
    ] {
        let mut sim = TcpSim::default_v4().isn(1_000_000, 5_000_000);
        sim.syn();
        let mut ack = sim.craft(Dir::S2c, TcpFlags::ACK, 0);
        {
            let t = ack.tcp_mut().expect("kernel_recorded");
            t.seq = 5_000_000;
            t.ack = 1_000_001;
        }
        sim.push(Dir::S2c, &ack);
        let mut rst = sim.craft(rst_dir, TcpFlags::RST | TcpFlags::ACK, 0);
        {
            let t = rst.tcp_mut().expect("kernel_recorded");
            t.ack = 5_000_000;
            t.seq = if rst_dir == Dir::C2s {
                1_000_001
            } else {
                5_000_000
            };
        }
        sim.push(rst_dir, &rst);
        let mut syn = sim.craft(Dir::C2s, TcpFlags::SYN, 0);
        syn.tcp_mut().expect("kernel_recorded").seq = 1_000_000;
        sim.push(Dir::C2s, &syn);
        let rst_note = if rst_dir == Dir::C2s {
            "c2s RST/ACK, ack = the server ACK's seq"
        } else {
            "s2c RST/ACK, ack = its own ACK's seq"
        };
        write(
            &dir,
            &sim_trace(
                name,
                description,
                &mut sim,
                &[
                    "c2s SYN",
                    "s2c bare ACK (ignored)",
                    rst_note,
                    "c2s SYN again",
                ],
            ),
            &mut manifest,
        );
    }
    let c4 = Ipv4Addr::new(10, 0, 1, 2);
    let s4 = Ipv4Addr::new(10, 0, 2, 2);
    let pptp = |call_id: u16, proto: [u8; 2]| {
        let [c0, c1] = call_id.to_be_bytes();
        Frame::ipv4(c4, s4)
            .raw(47)
            .payload(&[0x30, 0x81, proto[0], proto[1], 0, 0, c0, c1])
    };
    let err = |q: &Frame| {
        Frame::ipv4(s4, c4)
            .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
            .icmp_error(icmp::DEST_UNREACH, icmp::PORT_UNREACH, q)
            .build()
    };
    let flow = pptp(0x1234, [0x88, 0x0b]);
    let short = Frame::ipv4(c4, Ipv4Addr::new(10, 0, 2, 3))
        .raw(47)
        .payload(&[0x30, 0x81, 0x08, 0x00, 0, 8]);
    let frames = [
        (
            Side::Inside,
            flow.build(),
            "c2s GRE v1 PPP (PPTP), call id 0x1234: NEW, keyed on the call id",
        ),
        (
            Side::Outside,
            err(&flow),
            "s2c ICMP port unreachable quoting it: RELATED (quote keyed on its call id)",
        ),
        (
            Side::Outside,
            err(&pptp(0x9999, [0x88, 0x0b])),
            "s2c the same error quoting call id 0x9999: no such flow, INVALID",
        ),
        (
            Side::Outside,
            err(&pptp(0x1234, [0x08, 0x00])),
            "s2c an error quoting GRE v1 carrying IPv4: no tuple, INVALID",
        ),
        (
            Side::Inside,
            short.build(),
            "c2s GRE v1 carrying IPv4, 6 bytes (short of the call id): tracked with the zeroed key, NEW",
        ),
    ];
    let packets = frames
        .into_iter()
        .enumerate()
        .map(|(i, (side, data, note))| {
            (
                Packet {
                    ts_ns: 1_700_000_000_000_000_000 + i as u64 * 3_000_000,
                    side,
                    data,
                },
                note.to_string(),
            )
        })
        .collect();
    write(
        &dir,
        &Trace {
            name: "gre-pptp-keys-and-quoted-errors",
            description: "GRE keys as gre_pkt_to_tuple reads them, at top level and quoted by ICMP errors.",
            packets,
        },
        &mut manifest,
    );
    let path = format!("{dir}/manifest.json");
    let mut all: serde_json::Map<String, Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for (name, mut entry) in manifest {
        entry["origin"] = json!("written by tracegen/examples/kernel_recorded.rs");
        all.insert(name, entry);
    }
    let text = serde_json::to_string_pretty(&Value::Object(all)).expect("JSON");
    std::fs::write(&path, text + "\n").expect("manifest");
}
