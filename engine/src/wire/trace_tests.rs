//! [`super::parse`] against the Linux conformance captures.
//!
//! Every packet of every `traces/*.pcapng` is parsed and compared with the summary the
//! kernel-side harness wrote for it in `expected/classic-loose1-liberal0/<trace>.jsonl`
//! (addresses, ports, TCP flags, sequence and acknowledgment numbers, window, payload
//! length, ICMP type, code and identifier), and with whether it reached netfilter at all.
//! The malformed packets are matched to their reasons through the summary and note texts.
//!
//! The set is found by `ctfw_tracegen::conformance::dir` (the vendored
//! `tests/linux-conformance`, or `CTFW_CONFORMANCE_DIR`), which panics if it is missing: no
//! test here is ever skipped. Captures are read with `ctfw_capture`'s reader, records with
//! `serde_json`.

use super::icmp::{v4, v6};
use super::{ChecksumHint, Family, InnerL4, L4, Packet, ParseConfig, TcpFlags, parse};
use crate::counters::Reason;
use ctfw_capture::CaptureReader;
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The frames of `traces/<name>.pcapng` in the conformance set `dir`, in order.
fn frames(dir: &Path, name: &str) -> Vec<Vec<u8>> {
    let path = dir.join("traces").join(format!("{name}.pcapng"));
    CaptureReader::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", path.display())).data)
        .collect()
}

/// Parse `a:port` where `a` is an IPv4 or IPv6 address; IPv4 addresses as `u32 as u128`.
fn endpoint(s: &str) -> (u128, u16) {
    let (addr, port) = s.rsplit_once(':').expect("endpoint");
    (address(addr), port.parse().expect("port"))
}

fn address(s: &str) -> u128 {
    match s.parse::<Ipv4Addr>() {
        Ok(a) => u128::from(u32::from(a)),
        Err(_) => u128::from(s.parse::<Ipv6Addr>().expect("address")),
    }
}

/// `key=value` from the words of a summary.
fn num<T: std::str::FromStr>(words: &[&str], key: &str) -> T {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {words:?}"))
}

fn tcp_flags(letters: &str) -> TcpFlags {
    let letters = letters.trim_start_matches('[').trim_end_matches(']');
    let mut f = 0;
    if letters != "none" {
        for c in letters.chars() {
            f |= match c {
                'F' => TcpFlags::FIN,
                'S' => TcpFlags::SYN,
                'R' => TcpFlags::RST,
                'P' => TcpFlags::PSH,
                'A' => TcpFlags::ACK,
                'U' => TcpFlags::URG,
                'E' => TcpFlags::ECE,
                'C' | 'W' => TcpFlags::CWR,
                other => panic!("unknown flag letter {other}"),
            };
        }
    }
    TcpFlags(f)
}

/// Check one parsed packet against the harness's summary and note for it.
fn check(trace: &str, index: usize, summary: &str, note: &str, got: Result<Packet<'_>, Reason>) {
    let ctx = format!("{trace}#{index}: {summary} ({note}) -> {got:?}");
    let words: Vec<&str> = summary.split_whitespace().collect();
    // Malformed packets, named by the harness's summary or note.
    if summary.contains("bad IHL") {
        assert_eq!(got, Err(Reason::Ipv4BadIhl), "{ctx}");
        return;
    }
    let got = got.unwrap_or_else(|e| panic!("{ctx}: unexpected {e:?}"));
    let family = if words[0] == "IPv4" {
        Family::V4
    } else {
        Family::V6
    };
    assert_eq!(got.addrs.family, family, "{ctx}");
    let expect_l4 = |r: Reason| assert_eq!(got.l4, L4::Malformed(r), "{ctx}");
    if summary.contains("(truncated TCP header") {
        return expect_l4(Reason::TcpTruncated);
    }
    if let Some(doff) = summary.split("(bad TCP data offset ").nth(1) {
        // Below 5 words is a bad data offset; a header longer than the segment is cut short.
        let doff: u8 = doff.trim_end_matches(')').parse().expect("doff");
        return expect_l4(if doff < 5 {
            Reason::TcpBadDataOffset
        } else {
            Reason::TcpTruncated
        });
    }
    if note.contains("bad TCP checksum") {
        return expect_l4(Reason::TcpBadChecksum);
    }
    match words[1] {
        "TCP" => {
            let (src, sport) = endpoint(words[2]);
            let (dst, dport) = endpoint(words[4]);
            assert_eq!(
                (got.addrs.src, got.addrs.dst, got.proto),
                (src, dst, 6),
                "{ctx}"
            );
            let L4::Tcp(seg) = got.l4 else {
                panic!("{ctx}: not TCP")
            };
            assert_eq!((seg.sport, seg.dport), (sport, dport), "{ctx}");
            assert_eq!(seg.flags, tcp_flags(words[5]), "{ctx}");
            assert_eq!(seg.seq, num::<u32>(&words, "seq"), "{ctx}");
            assert_eq!(seg.ack, num::<u32>(&words, "ack"), "{ctx}");
            assert_eq!(seg.window, num::<u16>(&words, "win"), "{ctx}");
            assert_eq!(seg.payload_len, num::<u32>(&words, "len"), "{ctx}");
        }
        "UDP" => {
            let (src, sport) = endpoint(words[2]);
            let (dst, dport) = endpoint(words[4]);
            assert_eq!(
                (got.addrs.src, got.addrs.dst, got.proto),
                (src, dst, 17),
                "{ctx}"
            );
            let L4::Udp(d) = got.l4 else {
                panic!("{ctx}: not UDP")
            };
            assert_eq!((d.sport, d.dport), (sport, dport), "{ctx}");
        }
        "ICMP" | "ICMPv6" => {
            let proto = if family == Family::V4 { 1 } else { 58 };
            assert_eq!(
                (got.addrs.src, got.addrs.dst, got.proto),
                (address(words[2]), address(words[4]), proto),
                "{ctx}"
            );
            let L4::Icmp(m) = got.l4 else {
                panic!("{ctx}: not ICMP")
            };
            assert_eq!(
                (m.type_, m.code),
                (num(&words, "type"), num(&words, "code")),
                "{ctx}"
            );
            if summary.contains("id=") {
                assert_eq!(m.id, num::<u16>(&words, "id"), "{ctx}");
            }
            let is_error = if family == Family::V4 {
                v4::is_error(m.type_)
            } else {
                v6::is_error(m.type_)
            };
            if is_error {
                // The one error in the set quotes the client's UDP flow.
                let inner = m.inner.expect("error has an inner").expect("inner parses");
                assert_eq!(inner.proto, 17, "{ctx}");
                assert!(matches!(inner.l4, InnerL4::Ports { .. }), "{ctx}");
            } else {
                assert_eq!(m.inner, None, "{ctx}");
            }
        }
        other => panic!("{ctx}: unknown summary kind {other}"),
    }
}

fn run_trace(dir: &Path, name: &str) -> usize {
    let path = dir
        .join("expected")
        .join("classic-loose1-liberal0")
        .join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let records: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect();
    let packets = frames(dir, name);
    assert_eq!(packets.len(), records.len(), "{name}: packet count");
    let cfg = ParseConfig::default();
    for (index, (frame, rec)) in packets.iter().zip(&records).enumerate() {
        let got = parse(frame, &cfg, ChecksumHint::Unknown);
        let reached = rec["reached_netfilter"]
            .as_bool()
            .unwrap_or_else(|| panic!("{name}#{index}: no reached_netfilter"));
        assert_eq!(got.is_ok(), reached, "{name}#{index}: {got:?} vs {rec}");
        let summary = rec["summary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}#{index}: no summary"));
        let note = rec["note"].as_str().unwrap_or("");
        check(name, index, summary, note, got);
        // The NIC hint and the checksum switch only ever relax the result.
        let relaxed = parse(
            frame,
            &ParseConfig {
                verify_l4_checksum: false,
            },
            ChecksumHint::Good,
        );
        if got.is_ok() {
            assert!(relaxed.is_ok(), "{name}#{index}");
        }
    }
    packets.len()
}

#[test]
fn every_captured_packet_parses_as_the_kernel_saw_it() {
    let dir = ctfw_tracegen::conformance::dir();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("traces"))
        .expect("traces dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".pcapng").map(str::to_owned))
        .collect();
    names.sort();
    assert!(
        names.len() >= 30,
        "expected the whole set, found {}",
        names.len()
    );
    let total: usize = names.iter().map(|n| run_trace(&dir, n)).sum();
    assert!(total > 400, "only {total} packets");
}

#[test]
fn malformed_traces_give_their_reasons() {
    let dir = ctfw_tracegen::conformance::dir();
    let load = |name: &str| frames(&dir, name);
    let cfg = ParseConfig::default();
    fn l4(frame: &[u8]) -> Result<L4<'_>, Reason> {
        parse(frame, &ParseConfig::default(), ChecksumHint::Unknown).map(|p| p.l4)
    }

    let ihl = load("ipv4_bad_ihl");
    assert_eq!(l4(&ihl[0]), Err(Reason::Ipv4BadIhl)); // IHL 4
    assert_eq!(l4(&ihl[1]), Err(Reason::Ipv4BadIhl)); // IHL 15, header past the packet
    assert!(matches!(l4(&ihl[2]), Ok(L4::Tcp(_))));

    let csum = load("tcp_bad_checksum");
    assert_eq!(l4(&csum[0]), Ok(L4::Malformed(Reason::TcpBadChecksum)));
    assert!(matches!(l4(&csum[1]), Ok(L4::Tcp(_))));
    // Hardware said good, or verification is off: the bad checksum goes unnoticed.
    assert!(matches!(
        parse(&csum[0], &cfg, ChecksumHint::Good).map(|p| p.l4),
        Ok(L4::Tcp(_))
    ));
    let off = ParseConfig {
        verify_l4_checksum: false,
    };
    assert!(matches!(
        parse(&csum[0], &off, ChecksumHint::Unknown).map(|p| p.l4),
        Ok(L4::Tcp(_))
    ));

    let doff = load("tcp_bad_data_offset");
    assert_eq!(l4(&doff[0]), Ok(L4::Malformed(Reason::TcpTruncated))); // doff 15 in 20 bytes
    assert_eq!(l4(&doff[1]), Ok(L4::Malformed(Reason::TcpBadDataOffset))); // doff 4
    assert!(matches!(l4(&doff[2]), Ok(L4::Tcp(_))));

    let trunc = load("tcp_truncated_header");
    assert_eq!(l4(&trunc[0]), Ok(L4::Malformed(Reason::TcpTruncated)));
    assert!(matches!(l4(&trunc[1]), Ok(L4::Tcp(_))));
}
