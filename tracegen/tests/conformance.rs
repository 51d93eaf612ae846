//! The reader and the generator against the Linux conformance traces in
//! `tests/linux-conformance/`: every trace reads back with the right packet count and interface
//! names (cross-checked with the independent `pcap-file` crate), and the generator rebuilds
//! whole trace files byte for byte from the same fields.
//!
//! The set is the copy vendored in `tests/linux-conformance` (or `CTFW_CONFORMANCE_DIR`); a
//! missing set fails the tests.

#![allow(clippy::unwrap_used)] // A test file: a failed unwrap is a failed test.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ctfw_tracegen::read::CaptureReader;
use ctfw_tracegen::write::PcapngWriter;
use ctfw_tracegen::{Dir, Frame, Packet, PacketSink, Side, TcpSim, conformance};

fn trace(name: &str) -> Vec<u8> {
    let dir = conformance::dir();
    fs::read(dir.join("traces").join(format!("{name}.pcapng"))).expect("trace")
}

#[test]
fn reads_every_trace() {
    let dir = conformance::dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("traces/manifest.json")).unwrap()).unwrap();
    let mut traces: Vec<PathBuf> = fs::read_dir(dir.join("traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    traces.sort();
    assert!(
        traces.len() >= 39,
        "expected the 39 conformance traces, found {}",
        traces.len()
    );
    let mut compared = 0;
    for path in &traces {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let records: Vec<_> = CaptureReader::open(path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!records.is_empty(), "{name}");
        for r in &records {
            let n = r.interface_name.as_deref();
            assert!(
                n == Some("inside") || n == Some("outside"),
                "{name}: interface {n:?}"
            );
            assert_eq!(r.link_type, 1);
        }
        // Directions agree with the manifest: c2s arrives inside, s2c outside.
        let notes = manifest[name]["packets"].as_array().unwrap();
        assert_eq!(notes.len(), records.len(), "{name}: manifest packet count");
        for (r, note) in records.iter().zip(notes) {
            let want = if note["direction"] == "c2s" {
                "inside"
            } else {
                "outside"
            };
            assert_eq!(r.interface_name.as_deref(), Some(want), "{name}");
        }
        let expected = dir.join(format!("expected/classic-loose1-liberal0/{name}.jsonl"));
        if let Ok(text) = fs::read_to_string(&expected) {
            assert_eq!(records.len(), text.lines().count(), "{name}: packet count");
            compared += 1;
        }
        // The independent pcapng implementation sees the same packets.
        let bytes = fs::read(path).unwrap();
        let mut other = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut i = 0;
        while let Some(block) = other.next_block() {
            if let pcap_file::pcapng::Block::EnhancedPacket(epb) = block.unwrap() {
                assert_eq!(&records[i].data[..], &epb.data[..], "{name} packet {i}");
                assert_eq!(records[i].interface, Some(epb.interface_id));
                assert_eq!(
                    u128::from(records[i].ts_ns),
                    epb.timestamp.as_nanos(),
                    "{name}"
                );
                i += 1;
            }
        }
        assert_eq!(i, records.len(), "{name}");
    }
    assert!(
        compared >= 39,
        "only {compared} traces had expected records"
    );
}

fn pcapng(packets: &[Packet]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    for p in packets {
        w.write_packet(p).unwrap();
    }
    w.finish().unwrap()
}

fn assert_same_file(name: &str, built: &[u8]) {
    let want = trace(name);
    if built != want {
        let at = built
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(built.len());
        panic!(
            "{name}: first difference at byte {at} (built {} bytes, trace {})",
            built.len(),
            want.len()
        );
    }
}

#[test]
fn rebuilds_tcp_handshake_data_fin_close() {
    let mut sim = TcpSim::default_v4();
    sim.handshake().exchange(100, 500).close();
    assert_same_file("tcp_handshake_data_fin_close", &pcapng(sim.packets()));
}

#[test]
fn rebuilds_ipv6_tcp_handshake_data_fin_close() {
    let mut sim = TcpSim::default_v6();
    sim.handshake().exchange(100, 500).close();
    assert_same_file("ipv6_tcp_handshake_data_fin_close", &pcapng(sim.packets()));
}

#[test]
fn rebuilds_tcp_server_fin_first_close() {
    let mut sim = TcpSim::new(
        SocketAddr::new(Ipv4Addr::new(10, 0, 1, 2).into(), 40001),
        SocketAddr::new(Ipv4Addr::new(10, 0, 2, 2).into(), 80),
    );
    sim.handshake().exchange(100, 500).close_server_first();
    assert_same_file("tcp_server_fin_first_close", &pcapng(sim.packets()));
}

#[test]
fn rebuilds_udp_request_response() {
    let (c, s) = (Ipv4Addr::new(10, 0, 1, 2), Ipv4Addr::new(10, 0, 2, 2));
    let t0 = ctfw_tracegen::DEFAULT_START_NS;
    let req = Frame::ipv4(c, s)
        .ip_id(0x1001)
        .udp(53000, 53)
        .payload(&[b'q'; 30]);
    let resp = Frame::ipv4(s, c)
        .macs(
            ctfw_tracegen::frame::macs::SERVER,
            ctfw_tracegen::frame::macs::ROUTER_OUTSIDE,
        )
        .ip_id(0x5001)
        .udp(53, 53000)
        .payload(&[b'r'; 60]);
    let packets = [
        Packet {
            ts_ns: t0,
            side: Side::Inside,
            data: req.build(),
        },
        Packet {
            ts_ns: t0 + 3_000_000,
            side: Side::Outside,
            data: resp.build(),
        },
    ];
    assert_same_file("udp_request_response", &pcapng(&packets));
}

#[test]
fn rebuilds_icmp_echo_request_reply() {
    use ctfw_tracegen::frame::macs;
    let (c, s) = (Ipv4Addr::new(10, 0, 1, 2), Ipv4Addr::new(10, 0, 2, 2));
    let t0 = ctfw_tracegen::DEFAULT_START_NS;
    let mut packets = Vec::new();
    for seq in 1..=2u16 {
        let t = t0 + u64::from(seq - 1) * 503_000_000;
        let req = Frame::ipv4(c, s)
            .ip_id(0x1000 + seq)
            .echo_request(0x1234, seq)
            .payload(&[b'p'; 56]);
        let rep = Frame::ipv4(s, c)
            .macs(macs::SERVER, macs::ROUTER_OUTSIDE)
            .ip_id(0x5000 + seq)
            .echo_reply(0x1234, seq)
            .payload(&[b'p'; 56]);
        packets.push(Packet {
            ts_ns: t,
            side: Side::Inside,
            data: req.build(),
        });
        packets.push(Packet {
            ts_ns: t + 3_000_000,
            side: Side::Outside,
            data: rep.build(),
        });
    }
    assert_same_file("icmp_echo_request_reply", &pcapng(&packets));
}

/// The RST-by-server trace: the simulator's bare RST and a crafted late data segment.
#[test]
fn rebuilds_tcp_rst_close_by_server() {
    let mut sim = TcpSim::new(
        SocketAddr::new(Ipv4Addr::new(10, 0, 1, 2).into(), 40007),
        SocketAddr::new(Ipv4Addr::new(10, 0, 2, 2).into(), 80),
    );
    sim.handshake().exchange(100, 500).rst_bare(Dir::S2c);
    let late = sim.craft(
        Dir::C2s,
        ctfw_tracegen::TcpFlags::PSH | ctfw_tracegen::TcpFlags::ACK,
        20,
    );
    sim.push(Dir::C2s, &late);
    assert_same_file("tcp_rst_close_by_server", &pcapng(sim.packets()));
}
