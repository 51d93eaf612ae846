//! Unit tests of the TCP tracker: byte fixtures for the option parser, one test per
//! transition and quirk (grouped as the tracker is: options, `tcp_new`, the handshake,
//! closing, windows, timeouts), every cell of Linux's `tcp_conntracks` table, and a property
//! test over random segment sequences. A child module of `tcp`, so it reaches private items.
//!
//! The Linux conformance traces go through the whole engine, not the tracker alone:
//! `engine/tests/conformance.rs`.

use super::*;
use crate::track::CtFlags;
use proptest::prelude::*;

const ORIG: Direction = Direction::Original;
const REPLY: Direction = Direction::Reply;
const FIN: u8 = TcpFlags::FIN;
const SYN: u8 = TcpFlags::SYN;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;
const ACK: u8 = TcpFlags::ACK;
const URG: u8 = TcpFlags::URG;

/// The SYN options of the conformance traces: MSS 1460, NOP, WS 7, SACK_PERM, NOP, NOP.
const SYN_OPTS: &[u8] = &[2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1];
/// MSS and SACK_PERM, no window scale.
const SYN_OPTS_NO_WS: &[u8] = &[2, 4, 5, 0xb4, 4, 2, 1, 1];
const C_ISN: u32 = 1_000_000;
const S_ISN: u32 = 5_000_000;
/// Start time: far from zero so that deadlines are real additions.
const T0: Tick = Tick(0x4000_0000);

fn secs(s: u32) -> Ticks {
    Ticks::from_secs(s)
}

fn seg_opts(flags: u8, seq: u32, ack: u32, window: u16, len: u32, options: &[u8]) -> TcpSeg<'_> {
    TcpSeg {
        sport: 40000,
        dport: 80,
        seq,
        ack,
        flags: TcpFlags(flags),
        window,
        payload_len: len,
        options,
    }
}

fn seg(flags: u8, seq: u32, ack: u32, window: u16, len: u32) -> TcpSeg<'static> {
    seg_opts(flags, seq, ack, window, len, &[])
}

fn syn(seq: u32) -> TcpSeg<'static> {
    seg_opts(SYN, seq, 0, 64240, 0, SYN_OPTS)
}

fn synack(seq: u32, ack: u32) -> TcpSeg<'static> {
    seg_opts(SYN | ACK, seq, ack, 64240, 0, SYN_OPTS)
}

fn ack(seq: u32, ack: u32) -> TcpSeg<'static> {
    seg(ACK, seq, ack, 502, 0)
}

fn data(seq: u32, ack: u32, len: u32) -> TcpSeg<'static> {
    seg(PSH | ACK, seq, ack, 502, len)
}

fn fin(seq: u32, ack: u32) -> TcpSeg<'static> {
    seg(FIN | ACK, seq, ack, 502, 0)
}

/// A connection driven the way the pipeline drives the tracker: `new` then `packet` for
/// the first segment, and SEEN_REPLY set after an accepted or ignored REPLY packet.
#[derive(Clone, Debug)]
struct Conn {
    conn: TcpConn,
    meta: EntryMeta,
    now: Tick,
    cfg: TcpConfig,
}

impl Conn {
    fn open_with(cfg: TcpConfig, first: TcpSeg<'_>) -> Result<Conn, Reason> {
        assert!(
            flags_valid(first.flags),
            "the pipeline checks flags before `new`"
        );
        let conn = TcpConn::new(&first, &cfg)?;
        let mut c = Conn {
            conn,
            meta: EntryMeta {
                flags: CtFlags::default(),
                expires: T0,
            },
            now: T0,
            cfg,
        };
        let action = c.send(ORIG, first);
        assert_eq!(action, TrackVerdict::Accept, "first segment of a new entry");
        Ok(c)
    }

    fn open(first: TcpSeg<'_>) -> Conn {
        Conn::open_with(TcpConfig::default(), first).expect("segment opens a connection")
    }

    fn send(&mut self, dir: Direction, seg: TcpSeg<'_>) -> TrackVerdict {
        let action = self
            .conn
            .packet(&mut self.meta, self.now, dir, &seg, &self.cfg);
        if dir == REPLY && matches!(action, TrackVerdict::Accept | TrackVerdict::Ignore(_)) {
            self.meta.flags.set(CtFlags::SEEN_REPLY);
        }
        action
    }

    fn wait(&mut self, s: u32) {
        self.now = self.now.after(secs(s));
    }

    fn left(&self) -> Ticks {
        self.meta.expires.remaining(self.now)
    }

    fn state(&self) -> TcpState {
        self.conn.state()
    }

    /// State, exact time left, and (UNREPLIED, ASSURED) as `conntrack -L` shows them.
    #[track_caller]
    fn check(&self, state: TcpState, left_secs: u32, unreplied: bool, assured: bool) {
        assert_eq!(self.state(), state, "state");
        assert_eq!(self.left(), secs(left_secs), "time left");
        assert_eq!(!self.meta.flags.seen_reply(), unreplied, "UNREPLIED");
        assert_eq!(self.meta.flags.assured(), assured, "ASSURED");
    }
}

fn syn_sent() -> Conn {
    Conn::open(syn(C_ISN))
}

fn syn_sent2() -> Conn {
    let mut c = syn_sent();
    // Before any reply, a SYN in SYN_SENT is accepted without a refresh, whichever way it
    // travels (`index == TCP_SYN_SET && old_state == TCP_CONNTRACK_SYN_SENT`).
    assert_eq!(
        c.send(REPLY, syn(S_ISN)),
        TrackVerdict::Ignore(Ignored::TcpSynRetransmit)
    );
    c
}

fn syn_recv() -> Conn {
    let mut c = syn_sent();
    assert_eq!(
        c.send(REPLY, synack(S_ISN, C_ISN + 1)),
        TrackVerdict::Accept
    );
    c
}

fn established() -> Conn {
    let mut c = syn_recv();
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    c
}

fn fin_wait() -> Conn {
    let mut c = established();
    assert_eq!(
        c.send(ORIG, fin(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    c
}

fn close_wait() -> Conn {
    let mut c = fin_wait();
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 2)),
        TrackVerdict::Accept
    );
    c
}

fn last_ack() -> Conn {
    let mut c = close_wait();
    assert_eq!(
        c.send(REPLY, fin(S_ISN + 1, C_ISN + 2)),
        TrackVerdict::Accept
    );
    c
}

fn time_wait() -> Conn {
    let mut c = last_ack();
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 2, S_ISN + 2)),
        TrackVerdict::Accept
    );
    c
}

/// ESTABLISHED, then an exact RST from the client.
fn close() -> Conn {
    let mut c = established();
    assert_eq!(
        c.send(ORIG, seg(RST, C_ISN + 1, 0, 0, 0)),
        TrackVerdict::Accept
    );
    c
}

/// A connection in `state`, reached by real segments (NONE has no such path).
fn in_state(state: TcpState) -> Option<Conn> {
    Some(match state {
        TcpState::None => return None,
        TcpState::SynSent => syn_sent(),
        TcpState::SynRecv => syn_recv(),
        TcpState::Established => established(),
        TcpState::FinWait => fin_wait(),
        TcpState::CloseWait => close_wait(),
        TcpState::LastAck => last_ack(),
        TcpState::TimeWait => time_wait(),
        TcpState::Close => close(),
        TcpState::SynSent2 => syn_sent2(),
    })
}

// ---- basics ----

#[test]
fn layout_fits_the_entry() {
    assert!(core::mem::size_of::<TcpConn>() <= 52);
    assert_eq!(core::mem::size_of::<TcpConn>(), 52);
    assert_eq!(core::mem::size_of::<TcpState>(), 1);
}

#[test]
fn seq_numbers_compare_modulo_2_32() {
    let a = SeqNumber(u32::MAX - 5);
    let b = a + 10;
    assert_eq!(b, SeqNumber(4));
    assert!(a.before(b) && b.after(a));
    assert!(!a.before(a) && !a.after(a));
    assert_eq!(b - a, 10);
    assert_eq!(b - 10u32, a);
    // Exactly half the space apart: `before` is the sign of the difference, as in Linux.
    let c = SeqNumber(0x8000_0000);
    assert!(SeqNumber(0).after(c) && SeqNumber(0).before(c) == c.before(SeqNumber(0)));
}

#[test]
fn state_names_and_order_match_linux() {
    let names: Vec<_> = TcpState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "NONE",
            "SYN_SENT",
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT",
            "CLOSE_WAIT",
            "LAST_ACK",
            "TIME_WAIT",
            "CLOSE",
            "SYN_SENT2"
        ]
    );
    for (i, s) in TcpState::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i);
    }
}

#[test]
fn default_timeouts_are_linux_defaults() {
    let t = TcpTimeouts::default();
    let got: Vec<u32> = TcpState::ALL
        .iter()
        .map(|&s| t.of(s).whole_secs())
        .collect();
    assert_eq!(got, [120, 120, 60, 432_000, 120, 60, 30, 120, 10, 120]);
    assert_eq!((t.retrans, t.unack), (secs(300), secs(300)));
    let c = TcpConfig::default();
    assert!(c.loose && !c.be_liberal && !c.ignore_invalid_rst && c.max_retrans == 3);
}

#[test]
fn flags_valid_is_linux_tcp_valid_flags() {
    let valid: [u8; 9] = [
        SYN,
        SYN | URG,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        FIN | ACK | URG,
        ACK,
        ACK | URG,
    ];
    for f in 0..=255u8 {
        let core = f & !(TcpFlags::ECE | TcpFlags::CWR | PSH);
        assert_eq!(
            flags_valid(TcpFlags(f)),
            valid.contains(&core),
            "flags {f:#04x}"
        );
    }
    // The combinations Linux rejects that the conformance traces use.
    for f in [0, FIN, SYN | FIN, SYN | RST, FIN | PSH | URG] {
        assert!(!flags_valid(TcpFlags(f)));
    }
}

#[test]
fn flag_class_priority_is_rst_syn_fin_ack() {
    assert_eq!(
        FlagClass::of(TcpFlags(RST | SYN | FIN | ACK)),
        FlagClass::Rst
    );
    assert_eq!(FlagClass::of(TcpFlags(SYN | FIN)), FlagClass::Syn);
    assert_eq!(FlagClass::of(TcpFlags(SYN | FIN | ACK)), FlagClass::SynAck);
    assert_eq!(FlagClass::of(TcpFlags(FIN)), FlagClass::Fin);
    assert_eq!(FlagClass::of(TcpFlags(FIN | ACK)), FlagClass::Fin);
    assert_eq!(FlagClass::of(TcpFlags(ACK | PSH)), FlagClass::Ack);
    assert_eq!(FlagClass::of(TcpFlags(PSH | URG)), FlagClass::None);
}

#[test]
fn packed_fields_round_trip() {
    let mut c = TcpConn::default();
    for index in FlagClass::ALL {
        for dir in [ORIG, REPLY] {
            for ws in 0..=14 {
                c.set_last_index(index);
                c.set_last_dir(dir);
                c.set_last_wscale(ws);
                c.set_scale(0, 14 - ws);
                c.set_scale(1, ws);
                assert_eq!(
                    (c.last_index(), c.last_dir(), c.last_wscale()),
                    (index, dir, ws)
                );
                assert_eq!((c.scale(0), c.scale(1)), (14 - ws, ws));
            }
        }
    }
    // The largest segment the parser can produce: IPv6, 65515 bytes of payload, SYN+FIN.
    c.set_last_seq_end(SeqNumber(u32::MAX - 3), SeqNumber(u32::MAX - 3) + 65_517);
    assert_eq!(c.last_end(), SeqNumber(u32::MAX - 3) + 65_517);
}

// ---- options ----

#[test]
fn options_window_scale_and_sack_perm() {
    let (mut scale, mut flags) = (0, 0);
    tcp_options(SYN_OPTS, &mut scale, &mut flags);
    assert_eq!((scale, flags), (7, F::WINDOW_SCALE | F::SACK_PERM));
}

#[test]
fn options_quirks() {
    let parse = |opts: &[u8], scale: u8, flags: u8| {
        let (mut s, mut f) = (scale, flags);
        tcp_options(opts, &mut s, &mut f);
        (s, f)
    };
    // No options: nothing is reset.
    assert_eq!(
        parse(&[], 5, F::SACK_PERM | F::MAXACK_SET),
        (5, F::SACK_PERM | F::MAXACK_SET)
    );
    // Options: every flag but BE_LIBERAL is reset first.
    assert_eq!(parse(&[1, 1, 1, 1], 5, 0xff), (0, F::BE_LIBERAL));
    // Scale capped at 14.
    assert_eq!(parse(&[3, 3, 200, 0], 0, 0), (14, F::WINDOW_SCALE));
    // EOL stops parsing.
    assert_eq!(parse(&[0, 3, 3, 7], 0, 0), (0, 0));
    // A silly option (length < 2) stops parsing.
    assert_eq!(parse(&[8, 1, 3, 3, 7, 0], 0, 0), (0, 0));
    // A partial option stops parsing; what came before it counts.
    assert_eq!(parse(&[4, 2, 3, 3], 0, 0), (0, F::SACK_PERM));
    // Wrong lengths are skipped, not taken.
    assert_eq!(parse(&[3, 4, 7, 0, 4, 3, 0, 1], 0, 0), (0, 0));
    // The last window-scale option wins.
    assert_eq!(parse(&[3, 3, 2, 3, 3, 9, 1, 1], 0, 0), (9, F::WINDOW_SCALE));
    // A single trailing byte that is not NOP/EOL: `length < 2` stops.
    assert_eq!(parse(&[4, 2, 3], 0, 0), (0, F::SACK_PERM));
}

#[test]
fn sack_quirks() {
    let sack = |opts: &[u8], ack: u32| {
        let mut s = SeqNumber(ack);
        tcp_sack(opts, &mut s);
        s.0
    };
    let block = |l: u32, r: u32| {
        let mut v = vec![1, 1, 5, 10];
        v.extend_from_slice(&l.to_be_bytes());
        v.extend_from_slice(&r.to_be_bytes());
        v
    };
    assert_eq!(sack(&block(100, 200), 50), 200);
    // A right edge behind the ACK does not lower it.
    assert_eq!(sack(&block(10, 20), 50), 50);
    // The highest right edge of several blocks.
    let mut two = vec![1, 1, 5, 18];
    for (l, r) in [(300u32, 400u32), (100, 200)] {
        two.extend_from_slice(&l.to_be_bytes());
        two.extend_from_slice(&r.to_be_bytes());
    }
    assert_eq!(sack(&two, 50), 400);
    // The timestamp-only fast path returns before anything else.
    assert_eq!(sack(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 50), 50);
    // A malformed SACK length is skipped.
    let mut bad = block(100, 200);
    bad[3] = 9;
    assert_eq!(sack(&bad, 50), 50);
    // Only the first SACK option counts.
    let mut first_then_second = block(100, 200);
    first_then_second.extend_from_slice(&block(100, 900)[2..]);
    assert_eq!(sack(&first_then_second, 50), 200);
}

// ---- tcp_new ----

#[test]
fn new_accepts_syn_and_loose_ack_only() {
    let cfg = TcpConfig::default();
    assert!(TcpConn::new(&syn(C_ISN), &cfg).is_ok());
    assert!(TcpConn::new(&ack(C_ISN, S_ISN), &cfg).is_ok());
    assert!(TcpConn::new(&data(C_ISN, S_ISN, 10), &cfg).is_ok());
    for bad in [
        synack(S_ISN, C_ISN + 1),
        fin(C_ISN, S_ISN),
        seg(RST, C_ISN, 0, 0, 0),
    ] {
        assert_eq!(TcpConn::new(&bad, &cfg), Err(Reason::TcpInvalidNew));
    }
    assert_eq!(
        TcpConn::new(&seg(URG, 1, 0, 0, 0), &cfg),
        Err(Reason::TcpInvalidNew)
    );
}

#[test]
fn new_syn_initialises_the_original_direction() {
    let c = TcpConn::new(&syn(C_ISN), &TcpConfig::default()).expect("SYN opens");
    let w = c.window(ORIG);
    assert_eq!(
        (w.td_end, w.td_maxend, w.td_maxwin),
        (SeqNumber(C_ISN + 1), SeqNumber(C_ISN + 1), 64240)
    );
    assert_eq!((w.td_scale, w.flags), (7, F::WINDOW_SCALE | F::SACK_PERM));
    assert_eq!(c.window(REPLY).td_maxwin, 0);
    assert_eq!(c.last_index(), FlagClass::None);
    // A zero window still counts as one.
    let z = TcpConn::new(&seg(SYN, 7, 0, 0, 0), &TcpConfig::default()).expect("SYN opens");
    assert_eq!(z.window(ORIG).td_maxwin, 1);
}

#[test]
fn loose_off_rejects_midstream() {
    let cfg = TcpConfig {
        loose: false,
        ..TcpConfig::default()
    };
    assert_eq!(
        TcpConn::new(&ack(C_ISN, S_ISN), &cfg),
        Err(Reason::TcpInvalidNew)
    );
    assert_eq!(
        TcpConn::new(&data(C_ISN, S_ISN, 100), &cfg),
        Err(Reason::TcpInvalidNew)
    );
    assert_eq!(
        TcpConn::new(&synack(S_ISN, C_ISN), &cfg),
        Err(Reason::TcpInvalidNew)
    );
    assert!(TcpConn::new(&syn(C_ISN), &cfg).is_ok());
}

#[test]
fn loose_pickup_established_unreplied() {
    let mut c = Conn::open(data(2_000_000, 7_000_000, 100));
    let w = c.conn.window(ORIG);
    assert_eq!(w.flags, F::SACK_PERM | F::BE_LIBERAL);
    assert_eq!(c.conn.window(REPLY).flags, F::SACK_PERM | F::BE_LIBERAL);
    // ESTABLISHED without a reply is capped at the UNACK timeout.
    c.check(TcpState::Established, 300, true, false);
    // The first reply: still capped (SEEN_REPLY is set after it), clears UNREPLIED.
    c.wait(1);
    assert_eq!(
        c.send(REPLY, ack(7_000_000, 2_000_100)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 300, false, false);
    // The next valid packet assures the connection and gets the full timeout.
    c.wait(1);
    assert_eq!(
        c.send(REPLY, data(7_000_000, 2_000_100, 300)),
        TrackVerdict::Accept
    );
    assert!(c.meta.flags.assured());
    c.wait(1);
    assert_eq!(
        c.send(ORIG, ack(2_000_100, 7_000_300)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
}

// ---- the handshake ----

#[test]
fn syn_opens_syn_sent() {
    syn_sent().check(TcpState::SynSent, 120, true, false);
}

#[test]
fn syn_sent_synack_reply() {
    let mut c = syn_sent();
    c.wait(1);
    assert_eq!(
        c.send(REPLY, synack(S_ISN, C_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::SynRecv, 60, false, false);
    let w = c.conn.window(REPLY);
    assert_eq!((w.td_end, w.td_scale), (SeqNumber(S_ISN + 1), 7));
    assert_eq!(c.conn.window(ORIG).td_scale, 7);
}

#[test]
fn assured_after_handshake() {
    let mut c = syn_recv();
    c.wait(1);
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
}

#[test]
fn syn_retransmit_does_not_refresh() {
    let mut c = syn_sent();
    c.wait(10);
    // Accepted without a refresh (`NF_ACCEPT` before `nf_ct_refresh_acct`).
    assert_eq!(
        c.send(ORIG, syn(C_ISN)),
        TrackVerdict::Ignore(Ignored::TcpSynRetransmit)
    );
    c.check(TcpState::SynSent, 110, true, false);
    // Not even with a new ISN (port reuse): the deadline stays.
    c.wait(10);
    assert_eq!(
        c.send(ORIG, syn(C_ISN + 777)),
        TrackVerdict::Ignore(Ignored::TcpSynRetransmit)
    );
    c.check(TcpState::SynSent, 100, true, false);
    assert_eq!(c.conn.window(ORIG).td_end, SeqNumber(C_ISN + 778));
}

#[test]
fn synack_ack_beyond_isn_is_invalid() {
    let mut c = syn_recv();
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1001)),
        TrackVerdict::Invalid(Reason::TcpAckOverWindow)
    );
    c.check(TcpState::SynRecv, 60, false, false);
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
}

#[test]
fn rst_answering_syn_kills() {
    let mut c = syn_sent();
    assert_eq!(
        c.send(REPLY, seg(RST | ACK, 0, C_ISN + 1, 0, 0)),
        TrackVerdict::Kill
    );
    assert_eq!(c.state(), TcpState::Close);
    // An RST from the client before any reply kills too.
    let mut c = syn_sent();
    assert_eq!(
        c.send(ORIG, seg(RST, C_ISN + 1, 0, 0, 0)),
        TrackVerdict::Kill
    );
}

#[test]
fn half_open_ack_in_syn_sent_is_ignored() {
    let mut c = syn_sent();
    c.wait(5);
    assert_eq!(
        c.send(REPLY, ack(S_ISN, C_ISN + 1)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedAck)
    );
    assert_eq!(c.state(), TcpState::SynSent);
    assert_eq!(c.left(), secs(115));
    assert_eq!(c.conn.last_ack, SeqNumber(C_ISN + 1));
    assert_eq!(
        (c.conn.last_index(), c.conn.last_dir()),
        (FlagClass::Ack, REPLY)
    );
}

#[test]
fn simultaneous_open() {
    let mut c = syn_sent();
    // Accepted without a refresh: the SYN_SENT deadline stays.
    assert_eq!(
        c.send(REPLY, syn(S_ISN)),
        TrackVerdict::Ignore(Ignored::TcpSynRetransmit)
    );
    c.check(TcpState::SynSent2, 120, false, false);
    assert_ne!(c.conn.last_flags() & F::SIMULTANEOUS_OPEN, 0);
    // Each side answers with a SYN/ACK.
    assert_eq!(c.send(ORIG, synack(C_ISN, S_ISN + 1)), TrackVerdict::Accept);
    c.check(TcpState::SynRecv, 60, false, false);
    assert_eq!(
        c.send(REPLY, synack(S_ISN, C_ISN + 1)),
        TrackVerdict::Ignore(Ignored::TcpUnmatchedSynAck)
    );
    assert_eq!(c.state(), TcpState::SynRecv);
    // A plain ACK from REPLY completes it only because SIMULTANEOUS_OPEN was noted.
    c.wait(1);
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
}

#[test]
fn reply_ack_in_syn_recv_stays_without_simultaneous_open() {
    let mut c = syn_recv();
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::SynRecv, 60, false, false);
}

#[test]
fn synack_resync_after_ignored_syn() {
    // The client re-opens an established connection we still hold: its SYN is ignored,
    // the server's SYN/ACK for it re-syncs the tracker.
    let mut c = established();
    let isn2 = 900_000_000;
    c.wait(1);
    assert_eq!(
        c.send(ORIG, syn(isn2)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedSyn)
    );
    c.check(TcpState::Established, 431_999, false, true);
    assert_eq!(c.conn.last_flags(), F::WINDOW_SCALE | F::SACK_PERM);
    assert_eq!(c.conn.last_end(), SeqNumber(isn2 + 1));
    // A SYN/ACK that does not acknowledge the noted SYN is just ignored.
    assert_eq!(
        c.send(REPLY, synack(S_ISN + 9, isn2 + 2)),
        TrackVerdict::Ignore(Ignored::TcpUnmatchedSynAck)
    );
    assert_eq!(
        c.send(ORIG, syn(isn2)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedSyn)
    );
    let s2 = 600_000_000;
    assert_eq!(
        c.send(
            REPLY,
            seg_opts(SYN | ACK, s2, isn2 + 1, 65000, 0, SYN_OPTS_NO_WS)
        ),
        TrackVerdict::Accept
    );
    c.check(TcpState::SynRecv, 60, false, true);
    // ORIGINAL restored from the noted SYN (its window), REPLY from the SYN/ACK.
    let o = c.conn.window(ORIG);
    assert_eq!((o.td_end, o.td_maxwin), (SeqNumber(isn2 + 1), 64240));
    assert_eq!(c.conn.window(REPLY).td_maxwin, 65000);
    // The server sent no window scale: scaling is off both ways.
    assert_eq!((o.td_scale, c.conn.window(REPLY).td_scale), (0, 0));
    assert_eq!(
        o.flags & (F::WINDOW_SCALE | F::SACK_PERM),
        F::WINDOW_SCALE | F::SACK_PERM
    );
    assert_eq!(c.conn.window(REPLY).td_end, SeqNumber(s2 + 1));
    assert_eq!(c.send(ORIG, ack(isn2 + 1, s2 + 1)), TrackVerdict::Accept);
    c.check(TcpState::Established, 432_000, false, true);
}

#[test]
fn synack_resync_copies_last_flags_bits() {
    // Linux copies `last_flags` whole into the direction's flags, including the
    // SIMULTANEOUS_OPEN bit (0x80) when it is set: it is, after a simultaneous open.
    let mut c = syn_sent2();
    assert_eq!(c.send(ORIG, synack(C_ISN, S_ISN + 1)), TrackVerdict::Accept);
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
        TrackVerdict::Accept
    );
    assert_eq!(c.state(), TcpState::Established);
    // The ignored-SYN path clears last_flags before noting the options...
    assert_eq!(
        c.send(ORIG, syn(C_ISN + 50_000)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedSyn)
    );
    assert_eq!(c.conn.last_flags(), F::WINDOW_SCALE | F::SACK_PERM);
    // ... so the copy carries only the options here.
    assert_eq!(
        c.send(REPLY, synack(S_ISN + 70_000, C_ISN + 50_001)),
        TrackVerdict::Accept
    );
    assert_eq!(c.conn.window(ORIG).flags, F::WINDOW_SCALE | F::SACK_PERM);

    // Without an ignored SYN in between, the SIMULTANEOUS_OPEN bit does travel: a reply
    // SYN/ACK answering an ignored SYN noted while last_flags held it.
    let mut c = syn_sent2();
    let mut noted = c.conn;
    noted.set_last_index(FlagClass::Syn);
    noted.set_last_dir(ORIG);
    noted.set_last_seq_end(SeqNumber(C_ISN), SeqNumber(C_ISN + 1));
    c.conn = noted;
    c.conn.state = TcpState::Established;
    assert_eq!(
        c.send(REPLY, synack(S_ISN, C_ISN + 1)),
        TrackVerdict::Accept
    );
    assert_eq!(c.conn.window(ORIG).flags, F::SIMULTANEOUS_OPEN);
    assert_eq!(c.state(), TcpState::SynRecv);
}

// ---- closing ----

#[test]
fn fin_handshake_timeouts() {
    let mut c = established();
    c.wait(1);
    assert_eq!(
        c.send(ORIG, fin(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::FinWait, 120, false, true);
    assert_ne!(c.conn.window(ORIG).flags & F::CLOSE_INIT, 0);
    assert_eq!(c.conn.window(REPLY).flags & F::CLOSE_INIT, 0);
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 2)),
        TrackVerdict::Accept
    );
    c.check(TcpState::CloseWait, 60, false, true);
    assert_eq!(
        c.send(REPLY, fin(S_ISN + 1, C_ISN + 2)),
        TrackVerdict::Accept
    );
    c.check(TcpState::LastAck, 30, false, true);
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 2, S_ISN + 2)),
        TrackVerdict::Accept
    );
    c.check(TcpState::TimeWait, 120, false, true);
}

#[test]
fn fins_crossing_go_to_last_ack() {
    let mut c = fin_wait();
    assert_eq!(
        c.send(REPLY, fin(S_ISN + 1, C_ISN + 2)),
        TrackVerdict::Accept
    );
    c.check(TcpState::LastAck, 30, false, true);
}

#[test]
fn time_wait_syn_reopens() {
    let mut c = time_wait();
    assert_eq!(c.send(ORIG, syn(C_ISN + 100_000)), TrackVerdict::Reopen);
    // REPLY may re-open too: the server may have switched roles.
    let mut c = time_wait();
    assert_eq!(c.send(REPLY, syn(S_ISN + 100_000)), TrackVerdict::Reopen);
}

#[test]
fn close_syn_reopens() {
    // Closed by an RST from the client: the client's next SYN re-opens.
    let mut c = close();
    c.check(TcpState::Close, 10, false, true);
    assert_eq!(c.send(ORIG, syn(C_ISN + 100_000)), TrackVerdict::Reopen);
}

#[test]
fn close_by_server_rst_then_client_syn_is_ignored_then_resynced() {
    let mut c = established();
    assert_eq!(
        c.send(REPLY, seg(RST, S_ISN + 1, 0, 0, 0)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Close, 10, false, true);
    // No FIN was seen and the RST came from the other side: the SYN is only noted.
    assert_eq!(
        c.send(ORIG, syn(C_ISN + 100_000)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedSyn)
    );
    assert_eq!(c.state(), TcpState::Close);
    assert_eq!(
        c.send(REPLY, synack(S_ISN + 200_000, C_ISN + 100_001)),
        TrackVerdict::Accept
    );
    c.check(TcpState::SynRecv, 60, false, true);
}

#[test]
fn challenge_ack_in_last_ack_ignored() {
    let mut c = last_ack();
    c.wait(1);
    // A spurious SYN in LAST_ACK is ignored and flags a possible challenge ACK.
    assert_eq!(
        c.send(ORIG, syn(C_ISN + 50)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedSyn)
    );
    assert_ne!(c.conn.last_flags() & F::EXP_CHALLENGE_ACK, 0);
    // The server's challenge ACK is not the last ACK: no TIME_WAIT, no refresh.
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 2, C_ISN + 2)),
        TrackVerdict::Ignore(Ignored::TcpChallengeAck)
    );
    assert_eq!(c.conn.last_flags() & F::EXP_CHALLENGE_ACK, 0);
    c.check(TcpState::LastAck, 29, false, true);
    // The real last ACK still closes.
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 2, S_ISN + 2)),
        TrackVerdict::Accept
    );
    c.check(TcpState::TimeWait, 120, false, true);
}

#[test]
fn rst_in_window_closes() {
    let mut c = established();
    c.wait(1);
    assert_eq!(
        c.send(REPLY, seg(RST, S_ISN + 1, 0, 0, 0)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Close, 10, false, true);
    // RST|ACK with a zero ACK (broken stacks) is treated as no ACK.
    let mut c = established();
    assert_eq!(
        c.send(ORIG, seg(RST | ACK, C_ISN + 1, 0, 0, 0)),
        TrackVerdict::Accept
    );
    assert_eq!(c.state(), TcpState::Close);
}

#[test]
fn rst_after_data_train_closes() {
    // foo:80 > bar: P seq:end(19) ack, then R at end: the RST ends the train.
    let mut c = established();
    assert_eq!(
        c.send(REPLY, data(S_ISN + 1, C_ISN + 1, 19)),
        TrackVerdict::Accept
    );
    assert_eq!(
        c.send(REPLY, seg(RST, S_ISN + 20, 0, 0, 0)),
        TrackVerdict::Accept
    );
    assert_eq!(c.state(), TcpState::Close);
}

#[test]
fn rst_inexact_keeps_established_with_close_timeout() {
    // In window but not at the acknowledged point: Linux keeps ESTABLISHED (allowing a
    // challenge ACK) yet refreshes with the CLOSE timeout, as index == RST.
    let mut c = established();
    assert_eq!(
        c.send(REPLY, seg(RST, S_ISN + 11, 0, 0, 0)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 10, false, true);
}

#[test]
fn rst_out_of_window_invalid() {
    let mut c = established();
    c.wait(1);
    // Behind what the peer acknowledged: an invalid RST.
    assert_eq!(
        c.send(
            ORIG,
            seg(RST, (C_ISN + 1).wrapping_sub(500_000_000), 0, 0, 0)
        ),
        TrackVerdict::Invalid(Reason::TcpInvalidRst)
    );
    // Far ahead: passes the RST checks (keeping the state) and fails the window.
    assert_eq!(
        c.send(REPLY, seg(RST, S_ISN + 1 + 500_000_000, 0, 0, 0)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    c.check(TcpState::Established, 431_999, false, true);
}

#[test]
fn ignore_invalid_rst_knob() {
    // Slightly behind the acknowledged point, but within the receive window.
    let rst = seg(RST, C_ISN + 1 - 10, 0, 0, 0);
    let mut c = established();
    assert_eq!(
        c.send(ORIG, rst),
        TrackVerdict::Invalid(Reason::TcpInvalidRst)
    );
    let mut c = established();
    c.cfg.ignore_invalid_rst = true;
    assert_eq!(c.send(ORIG, rst), TrackVerdict::Accept);
    c.check(TcpState::Established, 10, false, true);
}

#[test]
fn rst_in_closing_states_skips_checks() {
    // FIN_WAIT..CLOSE: the tuple may be reused, every RST closes (even a wild one).
    for state in [
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
    ] {
        let mut c = in_state(state).expect("reachable");
        assert_eq!(
            c.send(REPLY, seg(RST, 12345, 0, 0, 0)),
            TrackVerdict::Accept,
            "{state:?}"
        );
        c.check(TcpState::Close, 10, false, true);
    }
}

#[test]
fn rst_answering_ignored_syn_skips_window() {
    // ESTABLISHED, the client's SYN is ignored, the server answers with RST|ACK acking it:
    // the RST goes through without window checks.
    let mut c = established();
    let isn2 = 3_000_000_000;
    assert_eq!(
        c.send(ORIG, syn(isn2)),
        TrackVerdict::Ignore(Ignored::TcpUnexpectedSyn)
    );
    assert_eq!(
        c.send(REPLY, seg(RST | ACK, 0, isn2 + 1, 0, 0)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Close, 10, false, true);
}

// ---- windows ----

#[test]
fn data_beyond_window_invalid() {
    let mut c = established();
    c.wait(1);
    assert_eq!(
        c.send(ORIG, data(C_ISN + 1 + 1_000_000_000, S_ISN + 1, 100)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    c.check(TcpState::Established, 431_999, false, true);
}

#[test]
fn data_slightly_over_window_is_ignored_but_remembered() {
    // SEQ above td_maxend but within the receiver's window: Linux ignores the packet yet
    // moves td_end so the peer's ACK of it is acceptable.
    let mut c = established();
    let maxend = c.conn.window(ORIG).td_maxend;
    let seq = maxend.0 + 1;
    assert_eq!(
        c.send(ORIG, data(seq, S_ISN + 1, 100)),
        TrackVerdict::Ignore(Ignored::TcpWindowOverrun)
    );
    assert_eq!(c.conn.window(ORIG).td_end, SeqNumber(seq + 100));
    assert_ne!(c.conn.window(ORIG).flags & F::DATA_UNACKNOWLEDGED, 0);
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, seq + 100)),
        TrackVerdict::Accept
    );
}

#[test]
fn old_retransmission_ignored() {
    let mut c = established();
    assert_eq!(
        c.send(REPLY, data(S_ISN + 1, C_ISN + 1, 500)),
        TrackVerdict::Accept
    );
    c.wait(1);
    let before = c.meta;
    assert_eq!(
        c.send(
            REPLY,
            data((S_ISN + 1).wrapping_sub(1_000_000_000), C_ISN + 1, 100)
        ),
        TrackVerdict::Ignore(Ignored::TcpSeqUnderWindow)
    );
    assert_eq!(c.meta, before);
    assert_eq!(c.state(), TcpState::Established);
}

#[test]
fn ack_of_unsent_data_invalid() {
    let mut c = established();
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1 + 100_000_000)),
        TrackVerdict::Invalid(Reason::TcpAckOverWindow)
    );
    // An ACK of one byte too many is already over the bound.
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 2)),
        TrackVerdict::Invalid(Reason::TcpAckOverWindow)
    );
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
}

#[test]
fn overly_delayed_ack_ignored() {
    let mut c = established();
    // The server sends 200000 bytes, the client acknowledges as they come.
    let mut seq = S_ISN + 1;
    for _ in 0..4 {
        assert_eq!(
            c.send(REPLY, data(seq, C_ISN + 1, 50_000)),
            TrackVerdict::Accept
        );
        seq += 50_000;
        assert_eq!(c.send(ORIG, ack(C_ISN + 1, seq)), TrackVerdict::Accept);
    }
    // An ACK lagging more than MAXACKWINDOW (the client's max window, at least 66000)
    // behind what the server sent is ignored as overly delayed.
    let lag = c.conn.window(ORIG).td_maxwin.max(66_000);
    let stale = seq - lag - 1;
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, stale)),
        TrackVerdict::Ignore(Ignored::TcpAckUnderWindow)
    );
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, stale + 1)),
        TrackVerdict::Accept
    );
}

#[test]
fn window_scaling_both_sides() {
    let mut c = established();
    assert_eq!(
        (c.conn.window(ORIG).td_scale, c.conn.window(REPLY).td_scale),
        (7, 7)
    );
    assert_eq!(
        c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
        TrackVerdict::Accept
    );
    // The client's window 502 << 7 bounds what the server may send.
    assert_eq!(
        c.conn.window(REPLY).td_maxend,
        SeqNumber(S_ISN + 1 + (502 << 7))
    );
    // Data starting 1000 bytes further is inside the scaled window.
    assert_eq!(
        c.send(REPLY, data(S_ISN + 1001, C_ISN + 101, 100)),
        TrackVerdict::Accept
    );
}

#[test]
fn window_scaling_one_side_disabled() {
    let mut c = syn_sent();
    let sa = seg_opts(SYN | ACK, S_ISN, C_ISN + 1, 64240, 0, SYN_OPTS_NO_WS);
    assert_eq!(c.send(REPLY, sa), TrackVerdict::Accept);
    assert_eq!(
        (c.conn.window(ORIG).td_scale, c.conn.window(REPLY).td_scale),
        (0, 0)
    );
    assert_eq!(c.conn.window(ORIG).flags & F::WINDOW_SCALE, F::WINDOW_SCALE);
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    assert_eq!(
        c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
        TrackVerdict::Accept
    );
    // Unscaled: the server may start sending only up to 502 bytes past the ACK. Data
    // starting 1000 bytes further is over the bound; as it still lies within the
    // client's largest window, Linux ignores it ("bytes more than expected").
    assert_eq!(c.conn.window(REPLY).td_maxend, SeqNumber(S_ISN + 1 + 502));
    assert_eq!(
        c.send(REPLY, data(S_ISN + 1001, C_ISN + 101, 100)),
        TrackVerdict::Ignore(Ignored::TcpWindowOverrun)
    );
    // Far beyond: INVALID.
    assert_eq!(
        c.send(REPLY, data(S_ISN + 1 + 200_000, C_ISN + 101, 100)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
}

#[test]
fn sack_extends_ack_bound() {
    let sack_opt = |l: u32, r: u32| {
        let mut v = vec![1, 1, 5, 10];
        v.extend_from_slice(&l.to_be_bytes());
        v.extend_from_slice(&r.to_be_bytes());
        v
    };
    let mut c = established();
    assert_eq!(
        c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
        TrackVerdict::Accept
    );
    // The server acks byte 1 and SACKs 51..101: the right edge counts as its ACK.
    let opts = sack_opt(C_ISN + 51, C_ISN + 101);
    let s = seg_opts(ACK, S_ISN + 1, C_ISN + 1, 502, 0, &opts);
    assert_eq!(c.send(REPLY, s), TrackVerdict::Accept);
    assert_eq!(
        c.conn.window(ORIG).td_maxend,
        SeqNumber(C_ISN + 101 + (502 << 7))
    );
    // The SACK window adds to the server's max window: win + (sack - ack).
    assert!(c.conn.window(REPLY).td_maxwin >= (502 << 7) + 100);
    // A SACK edge beyond what the client sent is over the upper bound.
    let opts = sack_opt(C_ISN + 51, C_ISN + 201);
    let s = seg_opts(ACK, S_ISN + 1, C_ISN + 1, 502, 0, &opts);
    assert_eq!(
        c.send(REPLY, s),
        TrackVerdict::Invalid(Reason::TcpAckOverWindow)
    );
    // SACK is read only if the receiver permitted it.
    let mut c = syn_sent();
    let no_sack: &[u8] = &[2, 4, 5, 0xb4, 1, 3, 3, 7];
    let sa = seg_opts(SYN | ACK, S_ISN, C_ISN + 1, 64240, 0, no_sack);
    assert_eq!(c.send(REPLY, sa), TrackVerdict::Accept);
    let opts = sack_opt(S_ISN + 1, S_ISN + 999);
    let s = seg_opts(ACK, C_ISN + 1, S_ISN + 1, 502, 0, &opts);
    assert_eq!(
        c.send(ORIG, s),
        TrackVerdict::Accept,
        "client SACK ignored: server never permitted it"
    );
}

#[test]
fn be_liberal_accepts_out_of_window() {
    let mut c = established();
    c.cfg.be_liberal = true;
    c.wait(1);
    assert_eq!(
        c.send(ORIG, data(C_ISN + 1 + 1_000_000_000, S_ISN + 1, 100)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
    // Liberal accepts old data too, and then refreshes.
    assert_eq!(
        c.send(
            REPLY,
            data((S_ISN + 1).wrapping_sub(1_000_000_000), C_ISN + 1, 100)
        ),
        TrackVerdict::Accept
    );
    // ... but never an RST behind the acknowledged point.
    assert_eq!(
        c.send(
            ORIG,
            seg(RST, (C_ISN + 1).wrapping_sub(500_000_000), 0, 0, 0)
        ),
        TrackVerdict::Invalid(Reason::TcpInvalidRst)
    );
}

// ---- timeouts ----

#[test]
fn timeouts_for_every_state() {
    let want = [
        (TcpState::SynSent, 120, true, false),
        (TcpState::SynRecv, 60, false, false),
        (TcpState::Established, 432_000, false, true),
        (TcpState::FinWait, 120, false, true),
        (TcpState::CloseWait, 60, false, true),
        (TcpState::LastAck, 30, false, true),
        (TcpState::TimeWait, 120, false, true),
        (TcpState::Close, 10, false, true),
        (TcpState::SynSent2, 120, false, false),
    ];
    for (state, left, unreplied, assured) in want {
        let c = in_state(state).expect("reachable");
        c.check(state, left, unreplied, assured);
    }
    // Custom timeouts are honoured per state.
    let mut cfg = TcpConfig::default();
    cfg.timeouts.syn_sent = secs(7);
    cfg.timeouts.syn_recv = secs(8);
    cfg.timeouts.established = secs(9_000);
    let mut c = Conn::open_with(cfg, syn(C_ISN)).expect("SYN opens");
    c.check(TcpState::SynSent, 7, true, false);
    assert_eq!(
        c.send(REPLY, synack(S_ISN, C_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::SynRecv, 8, false, false);
    assert_eq!(
        c.send(ORIG, ack(C_ISN + 1, S_ISN + 1)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 9_000, false, true);
}

#[test]
fn unacked_data_caps_timeout() {
    let mut c = established();
    assert_eq!(
        c.send(ORIG, data(C_ISN + 1, S_ISN + 1, 100)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 300, false, true);
    // Acknowledged: the full timeout again.
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 101)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
    // A state whose own timeout is shorter than the cap keeps its own.
    assert_eq!(
        c.send(REPLY, seg(FIN | ACK | PSH, S_ISN + 1, C_ISN + 101, 502, 10)),
        TrackVerdict::Accept
    );
    c.check(TcpState::FinWait, 120, false, true);
}

#[test]
fn max_retrans_caps_timeout() {
    let mut cfg = TcpConfig::default();
    cfg.timeouts.retrans = secs(200);
    cfg.timeouts.unack = secs(250);
    let mut c = established();
    c.cfg = cfg;
    let a = ack(C_ISN + 1, S_ISN + 1);
    // The handshake ACK was the first; three identical ones reach max_retrans.
    for n in 1..=3u8 {
        assert_eq!(c.send(ORIG, a), TrackVerdict::Accept);
        assert_eq!(c.conn.retrans(), n);
        let want = if n >= 3 { 200 } else { 432_000 };
        c.check(TcpState::Established, want, false, true);
    }
    // Anything new resets the count.
    assert_eq!(
        c.send(REPLY, ack(S_ISN + 1, C_ISN + 1)),
        TrackVerdict::Accept
    );
    assert_eq!(c.conn.retrans(), 0);
    c.check(TcpState::Established, 432_000, false, true);
}

#[test]
fn zero_window_caps_timeout() {
    let mut c = established();
    assert_eq!(
        c.send(REPLY, seg(ACK, S_ISN + 1, C_ISN + 1, 0, 0)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 300, false, true);
    assert_eq!(
        c.send(REPLY, seg(ACK, S_ISN + 1, C_ISN + 1, 10, 0)),
        TrackVerdict::Accept
    );
    c.check(TcpState::Established, 432_000, false, true);
}

#[test]
fn handle_invalid_lowers_timeout() {
    let mut c = established();
    let far = 1_500_000_000;
    // An out-of-window FIN from the client is noted as the last FIN...
    assert_eq!(
        c.send(ORIG, fin(C_ISN + far, S_ISN + 1)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    c.check(TcpState::Established, 432_000, false, true);
    assert_eq!(
        (c.conn.last_index(), c.conn.last_dir()),
        (FlagClass::Fin, ORIG)
    );
    // ... and the server's out-of-window answer shows both ends are out of sync with us.
    c.wait(1);
    assert_eq!(
        c.send(REPLY, seg(RST, S_ISN + far, 0, 0, 0)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    c.check(TcpState::Established, 300, false, true);
}

#[test]
fn handle_invalid_needs_assured_and_a_long_deadline() {
    // Not assured: nothing happens.
    let mut c = syn_recv();
    assert_eq!(
        c.send(ORIG, fin(C_ISN + 1_500_000_000, S_ISN + 1)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    assert_eq!(c.conn.last_index(), FlagClass::SynAck);
    // Deadline already under 120 s: left alone.
    let mut c = established();
    c.meta.expires = c.now.after(secs(100));
    assert_eq!(
        c.send(ORIG, fin(C_ISN + 1_500_000_000, S_ISN + 1)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    assert_eq!(
        c.send(REPLY, fin(S_ISN + 1_500_000_000, C_ISN + 1)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    assert_eq!(c.left(), secs(100));
    // Between 120 s and the UNACK timeout: left alone too.
    let mut c = established();
    c.meta.expires = c.now.after(secs(250));
    assert_eq!(
        c.send(ORIG, fin(C_ISN + 1_500_000_000, S_ISN + 1)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    assert_eq!(
        c.send(REPLY, fin(S_ISN + 1_500_000_000, C_ISN + 1)),
        TrackVerdict::Invalid(Reason::TcpSeqOverWindow)
    );
    assert_eq!(c.left(), secs(250));
}

// ---- the whole table ----

/// Linux's `tcp_conntracks`, transcribed independently of `TRANSITIONS` (copied from the
/// kernel source text) so that the table test checks the table too.
const KERNEL_TABLE: [[&str; 6]; 2] = [
    [
        "sSS sSS sIG sIG sIG sIG sIG sSS sSS sS2",
        "sIV sIV sSR sIV sIV sIV sIV sIV sIV sSR",
        "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
        "sES sIV sES sES sCW sCW sTW sTW sCL sIV",
        "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
        "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    ],
    [
        "sIV sS2 sIV sIV sIV sIV sIV sSS sIV sS2",
        "sIV sSR sIG sIG sIG sIG sIG sIG sIG sSR",
        "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
        "sIV sIG sSR sES sCW sCW sTW sTW sCL sIG",
        "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
        "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    ],
];

fn kernel_cell(
    dir: Direction,
    class: FlagClass,
    from: TcpState,
) -> Option<Result<TcpState, &'static str>> {
    let row = KERNEL_TABLE[dir.index()][class as usize];
    let cell = row.split(' ').nth(from as usize)?;
    Some(match cell {
        "sIV" | "sIG" => Err(cell),
        name => {
            let short = |s: TcpState| match s {
                TcpState::None => "sNO",
                TcpState::SynSent => "sSS",
                TcpState::SynRecv => "sSR",
                TcpState::Established => "sES",
                TcpState::FinWait => "sFW",
                TcpState::CloseWait => "sCW",
                TcpState::LastAck => "sLA",
                TcpState::TimeWait => "sTW",
                TcpState::Close => "sCL",
                TcpState::SynSent2 => "sS2",
            };
            Ok(*TcpState::ALL.iter().find(|&&s| short(s) == name)?)
        }
    })
}

/// An in-window segment of `class` from `dir` for the connection as it stands.
fn probe(c: &TcpConn, dir: Direction, class: FlagClass) -> TcpSeg<'static> {
    let me = c.window(dir);
    let peer = c.window(dir.opposite());
    let isn = if dir == ORIG { C_ISN } else { S_ISN };
    // A first SYN uses the side's ISN; later ones repeat its SYN.
    let syn_seq = if me.td_maxwin == 0 {
        isn
    } else {
        me.td_end.0.wrapping_sub(1)
    };
    let next = me.td_end.0;
    let acked = peer.td_end.0;
    match class {
        FlagClass::Syn => seg_opts(SYN, syn_seq, 0, 64240, 0, SYN_OPTS),
        FlagClass::SynAck => seg_opts(SYN | ACK, syn_seq, acked, 64240, 0, SYN_OPTS),
        FlagClass::Fin => fin(next, acked),
        FlagClass::Ack => ack(next, acked),
        FlagClass::Rst => seg(RST, next, 0, 0, 0),
        FlagClass::None => seg(URG, next, acked, 502, 0),
    }
}

/// Every cell of the kernel table: 2 directions x 6 flag classes x 10 states. Each state
/// is reached by real segments, then an in-window segment of the class is applied.
///
/// Besides the table, the outcome follows the rules Linux applies around it: a SYN that
/// would take TIME_WAIT or CLOSE to SYN_SENT re-opens (the builders close by FIN, or by an
/// RST from the client), an RST before any reply kills the entry, and a SYN retransmitted
/// in SYN_SENT does not refresh the deadline.
#[test]
fn transition_table_every_cell() {
    let mut cells = 0;
    for dir in [ORIG, REPLY] {
        for class in FlagClass::ALL {
            for from in TcpState::ALL {
                let expect = kernel_cell(dir, class, from).expect("table cell");
                let what = format!("{dir:?} {class:?} in {}", from.name());
                cells += 1;
                let Some(mut c) = in_state(from) else {
                    check_none_cell(dir, class, expect, &what);
                    continue;
                };
                c.wait(1);
                let before = c.clone();
                let seg = probe(&c.conn, dir, class);
                let action = c.send(dir, seg);
                match expect {
                    Err("sIV") => {
                        assert_eq!(
                            action,
                            TrackVerdict::Invalid(Reason::TcpInvalidState),
                            "{what}"
                        );
                        assert_eq!((c.conn, c.meta), (before.conn, before.meta), "{what}");
                    }
                    Err(_) => {
                        assert_eq!(
                            action,
                            TrackVerdict::Ignore(ignored_in_state(class)),
                            "{what}"
                        );
                        assert_eq!(c.state(), from, "{what}");
                        assert_eq!(c.meta.expires, before.meta.expires, "{what}");
                    }
                    Ok(TcpState::SynSent)
                        if matches!(from, TcpState::TimeWait | TcpState::Close) =>
                    {
                        assert_eq!(action, TrackVerdict::Reopen, "{what}");
                    }
                    Ok(to) if class == FlagClass::Rst && !before.meta.flags.seen_reply() => {
                        assert_eq!(action, TrackVerdict::Kill, "{what}");
                        assert_eq!(c.state(), to, "{what}");
                    }
                    Ok(to) => {
                        assert_eq!(c.state(), to, "{what}");
                        if from == TcpState::SynSent && class == FlagClass::Syn {
                            // Accepted before `nf_ct_refresh_acct`: not refreshed.
                            assert_eq!(
                                action,
                                TrackVerdict::Ignore(Ignored::TcpSynRetransmit),
                                "{what}"
                            );
                            assert_eq!(c.meta.expires, before.meta.expires, "{what}: no refresh");
                        } else {
                            assert_eq!(action, TrackVerdict::Accept, "{what}");
                            assert_ne!(c.meta.expires, before.meta.expires, "{what}: refreshed");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cells, 120);
}

/// The NONE column: ORIGINAL goes through `new` (as the pipeline does), REPLY can only be
/// fed to a default connection, and is invalid throughout.
fn check_none_cell(dir: Direction, class: FlagClass, expect: Result<TcpState, &str>, what: &str) {
    let c = TcpConn::default();
    let seg = probe(&c, dir, class);
    if dir == REPLY {
        let mut conn = c;
        let mut meta = EntryMeta {
            flags: CtFlags::default(),
            expires: T0,
        };
        let action = conn.packet(&mut meta, T0, dir, &seg, &TcpConfig::default());
        assert_eq!(expect, Err("sIV"), "{what}");
        assert_eq!(
            action,
            TrackVerdict::Invalid(Reason::TcpInvalidState),
            "{what}"
        );
        return;
    }
    match expect {
        Ok(to) => {
            let c = Conn::open(seg);
            assert_eq!(c.state(), to, "{what}");
        }
        Err(_) => {
            assert_eq!(
                TcpConn::new(&seg, &TcpConfig::default()),
                Err(Reason::TcpInvalidNew),
                "{what}"
            );
        }
    }
}

// ---- properties ----

/// One step of a random conversation: sequence numbers relative to what the tracker holds,
/// so that segments land in, near and far from the windows.
#[derive(Clone, Debug)]
struct Step {
    reply: bool,
    flags: u8,
    seq_base: u8,
    seq_off: i32,
    ack_base: u8,
    ack_off: i32,
    window: u16,
    len: u32,
    options: Vec<u8>,
    wait: u16,
}

fn step() -> impl Strategy<Value = Step> {
    let options = prop_oneof![
        Just(Vec::new()),
        Just(SYN_OPTS.to_vec()),
        Just(vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    let flags = prop_oneof![
        Just(SYN),
        Just(SYN | ACK),
        Just(ACK),
        Just(ACK | PSH),
        Just(FIN | ACK),
        Just(RST),
        Just(RST | ACK),
        any::<u8>(),
    ];
    let off = prop_oneof![-3i32..3, -70_000i32..70_000, any::<i32>()];
    (
        (any::<bool>(), flags, 0u8..3, off.clone(), 0u8..3, off),
        (
            any::<u16>(),
            prop_oneof![0u32..3, 0u32..70_000, any::<u32>()],
            options,
            0u16..400,
        ),
    )
        .prop_map(
            |(
                (reply, flags, seq_base, seq_off, ack_base, ack_off),
                (window, len, options, wait),
            )| Step {
                reply,
                flags,
                seq_base,
                seq_off,
                ack_base,
                ack_off,
                window,
                len,
                options,
                wait,
            },
        )
}

fn pick(c: &TcpConn, dir: Direction, base: u8, off: i32) -> u32 {
    let b = match base {
        0 => c.window(dir).td_end.0,
        1 => c.window(dir.opposite()).td_end.0,
        _ => 0,
    };
    b.wrapping_add(off as u32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random segment sequences both ways never panic, keep the state one of the ten, and
    /// respect what each verdict promises about the entry.
    #[test]
    fn random_segments_never_panic(
        first in step(),
        steps in prop::collection::vec(step(), 0..40),
        loose in any::<bool>(),
        liberal in any::<bool>(),
        ignore_rst in any::<bool>(),
        max_retrans in 0u8..5,
    ) {
        let cfg = TcpConfig { loose, be_liberal: liberal, ignore_invalid_rst: ignore_rst, max_retrans, ..TcpConfig::default() };
        let all_timeouts = {
            let t = &cfg.timeouts;
            let mut v: Vec<Ticks> = TcpState::ALL.iter().map(|&s| t.of(s)).collect();
            v.extend([t.retrans, t.unack]);
            v
        };
        let mut now = T0;
        let mut live: Option<(TcpConn, EntryMeta)> = None;
        for s in core::iter::once(&first).chain(steps.iter()) {
            now = now.after(Ticks(u32::from(s.wait) * 64));
            let dir = if s.reply && live.is_some() { REPLY } else { ORIG };
            let probe_conn = live.map(|(c, _)| c).unwrap_or_default();
            let seg = TcpSeg {
                sport: 1,
                dport: 2,
                seq: pick(&probe_conn, dir, s.seq_base, s.seq_off),
                ack: pick(&probe_conn, dir, s.ack_base, s.ack_off),
                flags: TcpFlags(s.flags),
                window: s.window,
                payload_len: s.len,
                options: &s.options,
            };
            let Some((mut conn, mut meta)) = live else {
                // The pipeline: flags check, `new`, then `packet` for the same segment.
                if !flags_valid(seg.flags) { continue; }
                let Ok(mut conn) = TcpConn::new(&seg, &cfg) else { continue };
                let mut meta = EntryMeta { flags: CtFlags::default(), expires: now };
                let action = conn.packet(&mut meta, now, ORIG, &seg, &cfg);
                prop_assert!(TcpState::ALL.contains(&conn.state()));
                if action == TrackVerdict::Accept { live = Some((conn, meta)); }
                continue;
            };
            let (conn0, meta0) = (conn, meta);
            // Invalid flag combinations never reach the tracker; feed them anyway.
            let action = conn.packet(&mut meta, now, dir, &seg, &cfg);
            prop_assert!(TcpState::ALL.contains(&conn.state()));
            match action {
                TrackVerdict::Invalid(Reason::TcpInvalidState | Reason::TcpInvalidRst) => {
                    prop_assert_eq!((conn, meta), (conn0, meta0));
                }
                TrackVerdict::Invalid(r) => {
                    prop_assert!(matches!(r, Reason::TcpSeqOverWindow | Reason::TcpAckOverWindow));
                    prop_assert_eq!(meta.flags, meta0.flags);
                    // Only ever lowered, to the UNACK timeout.
                    prop_assert!(meta.expires == meta0.expires || meta.expires == now.after(cfg.timeouts.unack));
                }
                TrackVerdict::Ignore(_) => prop_assert_eq!(meta, meta0),
                TrackVerdict::Accept => {
                    prop_assert!(
                        meta.expires == meta0.expires
                            || all_timeouts.contains(&meta.expires.remaining(now))
                    );
                }
                TrackVerdict::Kill | TrackVerdict::Reopen => {}
            }
            match action {
                TrackVerdict::Kill => live = None,
                TrackVerdict::Reopen => {
                    live = None;
                    if flags_valid(seg.flags) && let Ok(mut c) = TcpConn::new(&seg, &cfg) {
                        let mut m = EntryMeta { flags: CtFlags::default(), expires: now };
                        if c.packet(&mut m, now, ORIG, &seg, &cfg) == TrackVerdict::Accept {
                            live = Some((c, m));
                        }
                    }
                }
                _ => {
                    if dir == REPLY && matches!(action, TrackVerdict::Accept | TrackVerdict::Ignore(_)) {
                        meta.flags.set(CtFlags::SEEN_REPLY);
                    }
                    live = Some((conn, meta));
                }
            }
        }
    }
}

/// What `tcp_options` reads, through the wire module's option walk: the definition the
/// tracker's own walk is held to.
fn tcp_options_by_the_wire_walk(opts: &[u8], scale: &mut u8, flags: &mut u8) {
    if opts.is_empty() {
        return;
    }
    *scale = 0;
    *flags &= F::BE_LIBERAL;
    for o in TcpOptions::new(opts) {
        match o {
            TcpOption::SackPermitted => *flags |= F::SACK_PERM,
            TcpOption::WindowScale(ws) => {
                *scale = ws.min(TCP_MAX_WSCALE);
                *flags |= F::WINDOW_SCALE;
            }
            _ => {}
        }
    }
}

/// The option bytes of a first segment: well-formed SYN options in any order and number
/// (window scales past Linux's cap of 14 included), with NOP padding, EOL, unknown kinds,
/// known kinds with a wrong length, and silly or partial options that end the parse.
pub(super) fn options() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![
        4 => Just(vec![2, 4, 0x05, 0xb4]),              // MSS
        4 => (0u8..=20).prop_map(|ws| vec![3, 3, ws]),  // window scale
        4 => Just(vec![4, 2]),                          // SACK permitted
        2 => any::<[u8; 8]>().prop_map(|ts| {           // timestamps
            let mut o = vec![8, 10];
            o.extend(ts);
            o
        }),
        3 => Just(vec![1]),                             // NOP
        1 => Just(vec![0]),                             // EOL
        1 => Just(vec![3, 4, 7, 0]),                    // window scale, wrong length
        1 => Just(vec![4, 3, 0]),                       // SACK permitted, wrong length
        1 => (0u8..2).prop_map(|len| vec![3, len]),     // silly length
        1 => Just(vec![3, 9, 7]),                       // partial
        1 => proptest::collection::vec(any::<u8>(), 1..6), // anything
    ];
    proptest::collection::vec(one, 0..6).prop_map(|parts| {
        let mut o: Vec<u8> = parts.concat();
        o.truncate(40);
        o
    })
}

/// [`options`], and also a Linux SYN's options, as they are and with a byte changed.
fn option_bytes() -> impl Strategy<Value = Vec<u8>> {
    // A Linux SYN's options (MSS, SACK-permitted, timestamps, NOP, window scale), which the
    // walk reads without walking, and the same with one byte changed.
    let linux = (any::<[u8; 20]>(), any::<u8>()).prop_map(|(random, ws)| {
        let mut o = vec![
            option::MSS,
            4,
            random[0],
            random[1],
            option::SACK_PERMITTED,
            2,
        ];
        o.extend([option::TIMESTAMPS, 10]);
        o.extend(&random[2..10]);
        o.extend([option::NOP, option::WINDOW_SCALE, 3, ws]);
        o
    });
    let changed = (linux.clone(), 0usize..20, any::<u8>()).prop_map(|(mut o, at, b)| {
        o[at] = b;
        o
    });
    prop_oneof![4 => options(), 1 => linux, 1 => changed]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// `tcp_options` reads what the wire module's option walk reads, from any starting
    /// scale and flags.
    #[test]
    fn options_walk_as_the_wire_module_does(
        opts in option_bytes(),
        scale in any::<u8>(),
        flags in any::<u8>(),
    ) {
        let (mut s1, mut f1) = (scale, flags);
        let (mut s2, mut f2) = (scale, flags);
        tcp_options(&opts, &mut s1, &mut f1);
        tcp_options_by_the_wire_walk(&opts, &mut s2, &mut f2);
        prop_assert_eq!((s1, f1), (s2, f2), "{:02x?}", opts);
    }
}
