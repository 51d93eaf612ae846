//! Window scaling (RFC 7323) as `nf_conntrack_proto_tcp.c` applies it.
//!
//! Kernel facts used:
//! - `tcp_options` reads the Window Scale option of a SYN or SYN/ACK into the sender's
//!   `td_scale` (capped at 14) and sets `IP_CT_TCP_FLAG_WINDOW_SCALE`;
//! - `tcp_init_sender`, for the SYN/ACK (`dir == IP_CT_DIR_REPLY`): "Both sides must send the
//!   Window Scale option to enable window scaling in either direction", else both `td_scale`
//!   are reset to 0;
//! - `tcp_in_window`: `if (!tcph->syn) win <<= sender->td_scale;` then
//!   `receiver->td_maxend = sack + win` when it grows, and bound I is
//!   `seq_ok = before(seq, sender->td_maxend + 1)`; a segment beyond it is IGNOREd (accepted
//!   without updating) while `overshot = end - sender->td_maxend + 1 <= receiver->td_maxwin`
//!   (and the other bounds hold), else INVALID ("SEQ is over upper bound").
//!
//! The client (ISN 1_000_000) talks to the server (ISN 5_000_000); the SYN and SYN/ACK carry
//! the unscaled window 64240; after the handshake the server advertises the window field 8192,
//! which is 4 MiB when scaled by 9 and 8 KiB when not.

use ctfw_engine::Reason;
use ctfw_engine::flow::Direction;
use ctfw_engine::track::CtState;
use ctfw_engine::track::tcp::{SeqNumber, TcpState};
use ctfw_tracegen::{Dir, TcpFlags, TcpOption, TcpSim};

use crate::common::*;

const C: u32 = 1_000_000;
const MSS: u32 = 1448;
/// The server's window field after the handshake.
const SERVER_WIN_FIELD: u16 = 8192;

/// Which ends put a Window Scale option in their SYN / SYN/ACK.
#[derive(Clone, Copy, Debug)]
enum Offer {
    Both,
    ClientOnly,
    /// The server offers scaling although the client's SYN did not (a broken or crafted
    /// SYN/ACK): the kernel still requires both.
    ServerOnly,
    Neither,
}

/// The handshake with the given offers (client shift 7, server shift 9), then the server's
/// pure ACK with window field 8192; all fed to a classic engine. Returns the engine, the sim
/// and the first data frame's key frame (the SYN) for lookups.
fn setup(offer: Offer) -> (Fw, TcpSim, Vec<u8>) {
    let (cws, sws) = match offer {
        Offer::Both => (Some(7), Some(9)),
        Offer::ClientOnly => (Some(7), None),
        Offer::ServerOnly | Offer::Neither => (None, None),
    };
    let mut sim = TcpSim::default_v4()
        .wscale(cws, sws)
        .server_config(|s| s.window = 4 << 20);
    sim.syn();
    let mut synack = sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0);
    if matches!(offer, Offer::ServerOnly) {
        synack
            .tcp_mut()
            .expect("a TCP frame")
            .options
            .extend([TcpOption::Nop, TcpOption::WindowScale(9)]);
    }
    // Let the sim take its own SYN/ACK (for its state), but put ours on the wire.
    sim.synack();
    let mut pkts = sim.take_packets();
    pkts.last_mut().expect("the SYN/ACK").data = synack.build();
    sim.ack();
    let ack = sim
        .craft(Dir::S2c, TcpFlags::ACK, 0)
        .window(SERVER_WIN_FIELD);
    sim.push(Dir::S2c, &ack);
    pkts.extend(sim.take_packets());

    let mut fw = Fw::classic(1024);
    let v = fw.pkts(&pkts);
    assert_fwd(&v[0], CtState::New, OUTSIDE);
    for (v, p) in v.iter().zip(&pkts).skip(1) {
        assert_fwd_pkt(v, CtState::Established, p);
    }
    let key = pkts[0].data.clone();
    assert_tcp(fw.view(&key), TcpState::Established, 432_000);
    (fw, sim, key)
}

/// A client data segment of `len` bytes starting `offset` bytes after the client's ISN + 1.
fn client_data_at(sim: &TcpSim, offset: u32, len: usize) -> Vec<u8> {
    let mut f = sim.craft(Dir::C2s, TcpFlags::PSH | TcpFlags::ACK, len);
    f.tcp_mut().expect("a TCP frame").seq = C + 1 + offset;
    f.build()
}

#[test]
fn scales_are_kept_only_when_both_ends_offer_them() {
    // tcp_options + tcp_init_sender: td_scale as offered when both offer, else 0 and 0.
    for (offer, want) in [
        (Offer::Both, (7, 9)),
        (Offer::ClientOnly, (0, 0)),
        (Offer::ServerOnly, (0, 0)),
        (Offer::Neither, (0, 0)),
    ] {
        let (fw, _, key) = setup(offer);
        let conn = fw.tcp(&key).expect("a TCP entry");
        let got = (
            conn.window(Direction::Original).td_scale,
            conn.window(Direction::Reply).td_scale,
        );
        assert_eq!(got, want, "{offer:?}");
        // receiver->td_maxend = sack + (win << td_scale), from the server's ACK (ack C+1),
        // unless the SYN/ACK's unscaled 64240 was larger.
        let maxend = match offer {
            Offer::Both => C + 1 + (u32::from(SERVER_WIN_FIELD) << 9),
            _ => C + 1 + 64240,
        };
        assert_eq!(
            conn.window(Direction::Original).td_maxend,
            SeqNumber(maxend),
            "{offer:?}"
        );
    }
}

#[test]
fn a_segment_far_beyond_the_raw_window_is_valid_only_when_scaled() {
    // 2_000_000 bytes ahead: inside the scaled 4 MiB window, far outside 64240 bytes.
    for offer in [
        Offer::Both,
        Offer::ClientOnly,
        Offer::ServerOnly,
        Offer::Neither,
    ] {
        let (mut fw, sim, _) = setup(offer);
        let v = fw.send(&client_data_at(&sim, 2_000_000, 1000), INSIDE);
        match offer {
            // seq = C+2_000_001 <= td_maxend = C+1+4_194_304: bound I holds.
            Offer::Both => assert_fwd(&v, CtState::Established, OUTSIDE),
            // td_maxend = C+64241; overshot = end - td_maxend + 1 = 1_936_761 is more than
            // the server's td_maxwin (64240): "SEQ is over upper bound", INVALID.
            _ => assert_invalid(&v, Reason::TcpSeqOverWindow),
        }
    }
}

#[test]
fn beyond_the_scaled_window_is_invalid_too() {
    let (mut fw, sim, key) = setup(Offer::Both);
    // td_maxend = C+1+4_194_304; the server's td_maxwin = 4_194_304 (its scaled ACK window).
    // 9_000_000 ahead: overshot = 9_001_000 - 4_194_304 + 1 > 4_194_304: INVALID.
    let v = fw.send(&client_data_at(&sim, 9_000_000, 1000), INSIDE);
    assert_invalid(&v, Reason::TcpSeqOverWindow);
    // 4_194_304 + 100 ahead: overshot = 1101 <= td_maxwin, in the receive window, ACK fine:
    // the "bytes more than expected" workaround IGNOREs it, which is NF_ACCEPT with the
    // packet's ctinfo: ESTABLISHED and forwarded.
    let v = fw.send(&client_data_at(&sim, 4_194_304 + 100, 1000), INSIDE);
    assert_fwd(&v, CtState::Established, OUTSIDE);
    // ... and td_end has moved to cover it (`sender->td_end = end`), with
    // DATA_UNACKNOWLEDGED, but IGNORE returns before `nf_ct_refresh_acct`: no refresh.
    let end = C + 1 + 4_194_304 + 100 + 1000;
    let conn = fw.tcp(&key).expect("entry");
    assert_eq!(conn.window(Direction::Original).td_end, SeqNumber(end));
    assert_tcp(fw.view(&key), TcpState::Established, 432_000);
    // The next accepted segment sees the flag: a server ACK short of td_end leaves it set,
    // so the timeout is capped at TCP_CONNTRACK_UNACK (300 s) ...
    let mut ack = sim
        .craft(Dir::S2c, TcpFlags::ACK, 0)
        .window(SERVER_WIN_FIELD);
    ack.tcp_mut().expect("TCP").ack = end - 1000;
    assert_fwd(
        &fw.send(&ack.build(), OUTSIDE),
        CtState::Established,
        INSIDE,
    );
    assert_tcp(fw.view(&key), TcpState::Established, 300);
    // ... and an ACK of td_end clears it (`if (ack == receiver->td_end)`): 5 days again.
    ack.tcp_mut().expect("TCP").ack = end;
    assert_fwd(
        &fw.send(&ack.build(), OUTSIDE),
        CtState::Established,
        INSIDE,
    );
    assert_tcp(fw.view(&key), TcpState::Established, 432_000);
}

/// 200 MSS-sized segments (289_600 bytes) in a row without an ACK from the server.
/// Scaled: all within 4 MiB. Unscaled, derived segment by segment from `tcp_in_window`
/// (td_maxend M = C+64241 from the SYN/ACK, the server's td_maxwin W = 64240):
/// - k <= 44: seq = C+1+1448k <= M, accepted; segment 44 ends at C+65161 > M, so the accept
///   path grows the receiver: `receiver->td_maxwin += end - sender->td_maxend` -> W = 65160;
/// - 45 <= k <= 88: seq > M but overshot = 1448(k+1) - 64239 <= 65160: IGNORE (forwarded);
/// - k >= 89: overshot > 65160: INVALID.
#[test]
fn a_long_unacknowledged_stream_fits_only_the_scaled_window() {
    for offer in [Offer::Both, Offer::Neither] {
        let (mut fw, mut sim, key) = setup(offer);
        let mut frames = Vec::new();
        for _ in 0..200 {
            sim.data_c2s(MSS);
        }
        frames.extend(sim.take_packets());
        for (k, p) in frames.iter().enumerate() {
            let v = fw.pkt(p);
            match offer {
                Offer::Neither if k >= 89 => assert_invalid(&v, Reason::TcpSeqOverWindow),
                _ => assert_fwd(&v, CtState::Established, OUTSIDE),
            }
        }
        // Data in flight caps the timeout: TCP_CONNTRACK_UNACK, 300 s.
        assert_tcp(fw.view(&key), TcpState::Established, 300);
    }
}

#[test]
fn the_scale_shift_is_capped_at_14() {
    // tcp_options: `if (state->td_scale > TCP_MAX_WSCALE) state->td_scale = TCP_MAX_WSCALE;`
    let mut sim = TcpSim::default_v4().wscale(Some(15), Some(200));
    sim.handshake();
    let pkts = sim.take_packets();
    let mut fw = Fw::classic(64);
    for v in fw.pkts(&pkts) {
        assert!(v.forward.is_some(), "{v:?}");
    }
    let conn = fw.tcp(&pkts[0].data).expect("entry");
    assert_eq!(conn.window(Direction::Original).td_scale, 14);
    assert_eq!(conn.window(Direction::Reply).td_scale, 14);
}

#[test]
fn syn_windows_are_never_scaled() {
    // `if (!tcph->syn) win <<= sender->td_scale;`: the SYN/ACK's 64240 counts as 64240 even
    // though the server scales by 9, so before any later server segment the client may send
    // up to C+1+64240 and not beyond.
    let mut sim = TcpSim::default_v4().wscale(Some(7), Some(9));
    sim.handshake();
    let pkts = sim.take_packets();
    let mut fw = Fw::classic(64);
    fw.pkts(&pkts);
    let conn = fw.tcp(&pkts[0].data).expect("entry");
    assert_eq!(
        conn.window(Direction::Original).td_maxend,
        SeqNumber(C + 1 + 64240)
    );
    // The server's td_maxwin is the unscaled SYN/ACK window.
    assert_eq!(conn.window(Direction::Reply).td_maxwin, 64240);
}
