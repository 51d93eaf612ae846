//! The fast path (`fast.rs`) against the full port: on random connections (handshakes with
//! and without window scaling, SACK-permitted and timestamps, or picked up mid-stream, some
//! of those one-way: the other side never seen, as in `benches/dataplane.sh`) and random
//! segment sequences both ways (in window, at the edges of each of the four bounds, just
//! outside them, relative to the peer's real sequence numbers that a pickup never saw,
//! retransmissions, SACK blocks, zero, shrinking and growing windows, sequence numbers that
//! wrap past 2^32, liberal senders and `tcp_be_liberal` on and off, and now and then a FIN,
//! RST, SYN or SYN/ACK), every segment runs through the full port on one copy of the
//! connection and through the fast path on another. Where the fast path decides, its
//! connection, entry status, deadline and verdict must equal the full port's; where it
//! declines, it must have written nothing; and [`TcpConn::packet`] must always equal the
//! full port.
//!
//! The test counts what it exercised and fails when the sequences stop reaching the fast path
//! (most segments must take it) or stop reaching the cases around it, so it cannot pass by
//! testing nothing.

use core::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;
use crate::track::CtFlags;

const ACK: u8 = TcpFlags::ACK;
const PSH: u8 = TcpFlags::PSH;
const SYN: u8 = TcpFlags::SYN;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const URG: u8 = TcpFlags::URG;
const ECE: u8 = TcpFlags::ECE;
const CWR: u8 = TcpFlags::CWR;

/// The options a handshake segment carries.
#[derive(Clone, Copy, Debug)]
struct SynOpts {
    /// Window scale shift, if sent (15 is above Linux's cap of 14 on purpose).
    wscale: Option<u8>,
    sack_perm: bool,
    timestamps: bool,
}

impl SynOpts {
    fn bytes(self) -> Vec<u8> {
        let mut o = vec![2, 4, 0x05, 0xb4]; // MSS 1460
        if let Some(ws) = self.wscale {
            o.extend([1, 3, 3, ws]);
        }
        if self.sack_perm {
            o.extend([1, 1, 4, 2]);
        }
        if self.timestamps {
            o.extend([1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0]);
        }
        o
    }
}

fn syn_opts() -> impl Strategy<Value = SynOpts> {
    (
        prop_oneof![Just(None), (0u8..=15).prop_map(Some)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(wscale, sack_perm, timestamps)| SynOpts {
            wscale,
            sack_perm,
            timestamps,
        })
}

/// How a connection starts.
#[derive(Clone, Debug)]
enum Opening {
    /// SYN, SYN/ACK, ACK.
    Handshake {
        client: SynOpts,
        server: SynOpts,
        client_win: u16,
        server_win: u16,
    },
    /// Loose pickup: the first segment seen is an ACK (with data) from the client. One-way:
    /// every later segment comes from the client too, so the server is never seen (the
    /// looped capture of `benches/dataplane.sh`).
    Pickup { win: u16, len: u32, one_way: bool },
    /// A pickup whose endpoints then open the connection again on the same tuple: SYN
    /// (ignored in ESTABLISHED and noted), SYN/ACK answering it (the tracker re-syncs from
    /// the note), ACK. The re-sync gives ORIGINAL the SYN's option flags and leaves REPLY its
    /// BE_LIBERAL, so the two directions disagree on being liberal.
    PickupResync {
        win: u16,
        len: u32,
        client: SynOpts,
        server: SynOpts,
    },
}

impl Opening {
    fn one_way(&self) -> bool {
        matches!(self, Opening::Pickup { one_way: true, .. })
    }
}

fn opening() -> impl Strategy<Value = Opening> {
    prop_oneof![
        4 => (syn_opts(), syn_opts(), any::<u16>(), any::<u16>()).prop_map(
            |(client, server, client_win, server_win)| Opening::Handshake {
                client,
                server,
                client_win,
                server_win,
            }
        ),
        2 => (any::<u16>(), 0u32..1500, any::<bool>())
            .prop_map(|(win, len, one_way)| Opening::Pickup { win, len, one_way }),
        1 => (any::<u16>(), 0u32..1500, syn_opts(), syn_opts()).prop_map(
            |(win, len, client, server)| Opening::PickupResync {
                win,
                len,
                client,
                server,
            }
        ),
    ]
}

/// An initial sequence number: anywhere, or close below 2^32 so that the data wraps.
fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (0u32..60_000).prop_map(|d| u32::MAX - d),
        Just(0),
    ]
}

/// Where a segment's sequence number lies, relative to what the tracker knows of its sender
/// (`td_end`, `td_maxend`) and receiver (`td_maxwin`).
#[derive(Clone, Copy, Debug)]
enum SeqAt {
    /// The sender's `td_end` (the next new byte), plus a small offset.
    Next(i32),
    /// Upper bound I: `td_maxend`, plus a small offset (`+1` is just outside).
    MaxEnd(i32),
    /// Lower bound II: the end lands at `td_end - receiver.td_maxwin`, plus an offset.
    Low(i32),
    /// Repeat the last segment's sequence number (a retransmission if the rest matches).
    Last,
    /// The number the opening gave this direction (its SYN's; for a pickup, the picked-up
    /// segment's sequence number and, for the server, its ACK), plus a small offset: at 0
    /// from the client of a pickup, the looped capture's segment again.
    Opening(i32),
    /// Anywhere.
    Anywhere(u32),
}

/// Where a segment's ACK lies, relative to the receiver's `td_end`.
#[derive(Clone, Copy, Debug)]
enum AckAt {
    /// The receiver's `td_end` minus a non-negative lag (all of its data acknowledged at 0).
    Behind(u32),
    /// Upper bound III: `td_end`, plus a small offset (`+1` is just outside).
    Edge(i32),
    /// Lower bound IV: `td_end - max(sender.td_maxwin, 66000)`, plus a small offset.
    Low(i32),
    /// The last segment's ACK.
    Last,
    /// The number the opening gave the peer (see [`SeqAt::Opening`]), plus a small offset:
    /// what the endpoint really acknowledges, whether or not the tracker has seen the peer (a
    /// pickup's has not: its `td_end` is 0, and such an ACK is out of bound III or IV).
    Opening(i32),
    /// Anywhere.
    Anywhere(u32),
}

/// Options on a mid-connection segment.
#[derive(Clone, Copy, Debug)]
enum SegOpts {
    None,
    /// NOP, NOP, timestamp: the layout `tcp_sack` skips without parsing.
    Timestamps,
    /// One SACK block whose right edge is the ACK plus this (after NOP, NOP).
    Sack(i32),
    /// Timestamps, then a SACK block: parsed.
    TimestampsSack(i32),
    /// Random bytes.
    Junk(u64, u8),
}

#[derive(Clone, Copy, Debug)]
enum Window {
    /// The same raw window as this direction's last segment had (or 29200).
    Same,
    Zero,
    Value(u16),
}

/// One segment after the opening.
#[derive(Clone, Copy, Debug)]
struct Step {
    reply: bool,
    flags: u8,
    seq: SeqAt,
    ack: AckAt,
    len: u32,
    window: Window,
    opts: SegOpts,
    /// Time since the previous segment, in ticks.
    wait: u32,
}

fn small() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), -2i32..=2, -3000i32..3000]
}

/// A segment after the opening; `special` weighs each of six FIN, RST, SYN and SYN/ACK
/// combinations against 5200 for the ACK class, `opening` weighs sequence numbers and ACKs
/// relative to the opening's (see [`SeqAt::Opening`], [`AckAt::Opening`]).
fn step(special: u32, opening: u32) -> impl Strategy<Value = Step> {
    let flags = prop_oneof![
        4000 => Just(ACK),
        1000 => Just(ACK | PSH),
        100 => Just(ACK | URG),
        100 => Just(ACK | ECE | CWR),
        special => Just(FIN | ACK),
        special => Just(FIN | ACK | PSH),
        special => Just(RST),
        special => Just(RST | ACK),
        special => Just(SYN),
        special => Just(SYN | ACK),
    ];
    let seq = prop_oneof![
        100 => Just(SeqAt::Next(0)),
        6 => small().prop_map(SeqAt::Next),
        3 => small().prop_map(SeqAt::MaxEnd),
        3 => small().prop_map(SeqAt::Low),
        6 => Just(SeqAt::Last),
        opening => prop_oneof![3 => Just(0), 1 => small()].prop_map(SeqAt::Opening),
        1 => any::<u32>().prop_map(SeqAt::Anywhere),
    ];
    let ack = prop_oneof![
        80 => Just(AckAt::Behind(0)),
        12 => prop_oneof![0u32..3000, 0u32..200_000].prop_map(AckAt::Behind),
        3 => small().prop_map(AckAt::Edge),
        3 => small().prop_map(AckAt::Low),
        6 => Just(AckAt::Last),
        opening => prop_oneof![3 => Just(0), 1 => small()].prop_map(AckAt::Opening),
        1 => any::<u32>().prop_map(AckAt::Anywhere),
    ];
    let len = prop_oneof![
        8 => Just(0u32),
        8 => 1u32..=1460,
        1 => 0u32..=65_000,
    ];
    let window = prop_oneof![
        10 => Just(Window::Same),
        1 => Just(Window::Zero),
        4 => any::<u16>().prop_map(Window::Value),
    ];
    let opts = prop_oneof![
        20 => Just(SegOpts::None),
        12 => Just(SegOpts::Timestamps),
        2 => small().prop_map(SegOpts::Sack),
        2 => small().prop_map(SegOpts::TimestampsSack),
        1 => (any::<u64>(), 0u8..=40).prop_map(|(b, n)| SegOpts::Junk(b, n)),
    ];
    let wait = prop_oneof![0u32..256, 0u32..(600 * 256), Just(3 * 86_400 * 256)];
    (any::<bool>(), flags, seq, ack, len, window, opts, wait).prop_map(
        |(reply, flags, seq, ack, len, window, opts, wait)| Step {
            reply,
            flags,
            seq,
            ack,
            len,
            window,
            opts,
            wait,
        },
    )
}

/// Tracker settings: mostly Linux's defaults, sometimes other retransmission limits,
/// liberal window checking, or timeouts whose order differs from the defaults' (so every
/// comparison in the timeout choice can go either way).
fn config() -> impl Strategy<Value = TcpConfig> {
    let timeouts = prop_oneof![
        3 => Just(TcpTimeouts::default()),
        1 => (1u32..1000, 1u32..1000, 1u32..1000).prop_map(|(est, retrans, unack)| TcpTimeouts {
            established: Ticks::from_secs(est),
            retrans: Ticks::from_secs(retrans),
            unack: Ticks::from_secs(unack),
            ..TcpTimeouts::default()
        }),
    ];
    (timeouts, 0u8..5, prop::bool::weighted(0.1)).prop_map(|(timeouts, max_retrans, be_liberal)| {
        TcpConfig {
            timeouts,
            max_retrans,
            be_liberal,
            ..TcpConfig::default()
        }
    })
}

/// What the run exercised.
#[derive(Default)]
struct Tally {
    packets: Cell<u64>,
    fast: Cell<u64>,
    /// ACK-class segments of ESTABLISHED connections the fast path declined.
    declined_established_acks: Cell<u64>,
    /// ... of which the full port still accepted (first segment of a direction).
    declined_but_accepted: Cell<u64>,
    fast_retrans: Cell<u64>,
    fast_with_options: Cell<u64>,
    /// Segments with SACK blocks the receiver permitted (the full port reads them).
    sack_blocks: Cell<u64>,
    fast_zero_window: Cell<u64>,
    fast_wrapped: Cell<u64>,
    fast_unreplied: Cell<u64>,
    fast_assured_now: Cell<u64>,
    fast_unack_timeout: Cell<u64>,
    fast_retrans_timeout: Cell<u64>,
    /// Out-of-window segments the fast path accepted (a liberal sender), by the bound they
    /// failed (II, III, IV).
    fast_liberal: [Cell<u64>; 3],
    /// ... of which from a connection picked up and never answered (`benches/dataplane.sh`).
    fast_liberal_unseen: Cell<u64>,
    /// ... of which liberal by `tcp_be_liberal` alone (the sender's BE_LIBERAL clear).
    fast_liberal_by_config: Cell<u64>,
    /// ... of which from a liberal sender to a receiver that is not.
    fast_liberal_sender_only: Cell<u64>,
    /// Out-of-window ACK-class segments of ESTABLISHED connections from a sender that is
    /// not liberal to one that is, `tcp_be_liberal` off (the fast path must decline).
    outside_receiver_only_liberal: Cell<u64>,
}

impl Tally {
    fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }
}

/// One segment through both paths and [`TcpConn::packet`]; the connection and entry move on
/// as `packet` left them.
fn both_ways(
    tally: &Tally,
    conn: &mut TcpConn,
    meta: &mut EntryMeta,
    now: Tick,
    dir: Direction,
    seg: &TcpSeg<'_>,
    cfg: &TcpConfig,
) -> Result<TrackVerdict, TestCaseError> {
    Tally::bump(&tally.packets);
    let (conn0, meta0) = (*conn, *meta);
    let mut sack = SeqNumber(seg.ack);
    tcp_sack(seg.options, &mut sack);
    if sack != SeqNumber(seg.ack) && conn0.flags[dir.opposite().index()] & F::SACK_PERM != 0 {
        Tally::bump(&tally.sack_blocks);
    }

    let (mut full, mut full_meta) = (conn0, meta0);
    let want = full.packet_full(&mut full_meta, now, dir, seg, cfg);

    let (mut fast, mut fast_meta) = (conn0, meta0);
    match fast.established_in_window(&mut fast_meta, now, dir, seg, cfg) {
        Some(verdict) => {
            prop_assert_eq!(verdict, want, "verdict, fast vs full, {:?} {:?}", dir, seg);
            prop_assert_eq!(fast, full, "connection, fast vs full, {:?} {:?}", dir, seg);
            prop_assert_eq!(
                fast_meta,
                full_meta,
                "entry, fast vs full, {:?} {:?}",
                dir,
                seg
            );
            note_fast(tally, &conn0, &meta0, &fast, &fast_meta, now, dir, seg, cfg);
        }
        None => {
            prop_assert_eq!((fast, fast_meta), (conn0, meta0), "declined but wrote");
            if conn0.state == TcpState::Established && FlagClass::of(seg.flags) == FlagClass::Ack {
                Tally::bump(&tally.declined_established_acks);
                if want == TrackVerdict::Accept {
                    Tally::bump(&tally.declined_but_accepted);
                }
                if !cfg.be_liberal
                    && !liberal(&conn0, dir)
                    && liberal(&conn0, dir.opposite())
                    && strict_window(&conn0, dir, seg, cfg) != WindowVerdict::Accept
                {
                    Tally::bump(&tally.outside_receiver_only_liberal);
                }
            }
        }
    }

    let got = conn.packet(meta, now, dir, seg, cfg);
    prop_assert_eq!(got, want, "verdict, packet vs full");
    prop_assert_eq!(*conn, full, "connection, packet vs full");
    prop_assert_eq!(*meta, full_meta, "entry, packet vs full");
    Ok(got)
}

/// Count the cases a fast-path decision covered.
#[allow(clippy::too_many_arguments)]
fn note_fast(
    tally: &Tally,
    before: &TcpConn,
    meta0: &EntryMeta,
    after: &TcpConn,
    meta: &EntryMeta,
    now: Tick,
    dir: Direction,
    seg: &TcpSeg<'_>,
    cfg: &TcpConfig,
) {
    Tally::bump(&tally.fast);
    match strict_window(before, dir, seg, cfg) {
        WindowVerdict::Accept => {}
        outside => {
            let bound = match outside {
                WindowVerdict::Ignore(Ignored::TcpSeqUnderWindow) => 0,
                WindowVerdict::Invalid(Reason::TcpAckOverWindow) => 1,
                WindowVerdict::Ignore(Ignored::TcpAckUnderWindow) => 2,
                // Over bound I the full port may write (the overrun workaround): declined.
                other => unreachable!("the fast path took a segment outside {other:?}"),
            };
            Tally::bump(&tally.fast_liberal[bound]);
            if before.seen[dir.opposite().index()].td_maxwin == 0 && !meta0.flags.seen_reply() {
                Tally::bump(&tally.fast_liberal_unseen);
            }
            if !liberal(before, dir) {
                Tally::bump(&tally.fast_liberal_by_config);
            } else if !liberal(before, dir.opposite()) {
                Tally::bump(&tally.fast_liberal_sender_only);
            }
        }
    }
    if after.retrans > 0 {
        Tally::bump(&tally.fast_retrans);
    }
    if !seg.options.is_empty() {
        Tally::bump(&tally.fast_with_options);
    }
    if seg.window == 0 {
        Tally::bump(&tally.fast_zero_window);
    }
    if seg.seq.checked_add(seg.payload_len).is_none()
        || after.seen[dir.index()].td_end.0 < before.seen[dir.index()].td_end.0
    {
        Tally::bump(&tally.fast_wrapped);
    }
    if !meta0.flags.seen_reply() {
        Tally::bump(&tally.fast_unreplied);
    }
    if !meta0.flags.assured() && meta.flags.assured() {
        Tally::bump(&tally.fast_assured_now);
    }
    let t = &cfg.timeouts;
    if t.unack != t.established && meta.expires == now.after(t.unack) {
        Tally::bump(&tally.fast_unack_timeout);
    }
    if t.retrans != t.established && t.retrans != t.unack && meta.expires == now.after(t.retrans) {
        Tally::bump(&tally.fast_retrans_timeout);
    }
}

/// Whether direction `d` of `conn` has its BE_LIBERAL flag.
fn liberal(conn: &TcpConn, d: Direction) -> bool {
    conn.flags[d.index()] & F::BE_LIBERAL != 0
}

/// What the full port's window checks make of `seg` for a sender that is not liberal (its
/// BE_LIBERAL flag and `tcp_be_liberal` off): `Accept` in window, else the failed bound.
fn strict_window(
    conn: &TcpConn,
    dir: Direction,
    seg: &TcpSeg<'_>,
    cfg: &TcpConfig,
) -> WindowVerdict {
    let mut strict = *conn;
    strict.flags[dir.index()] &= !F::BE_LIBERAL;
    let cfg = TcpConfig {
        be_liberal: false,
        ..*cfg
    };
    strict.in_window(dir, FlagClass::of(seg.flags), seg, &cfg)
}

/// The pipeline's part after the tracker: SEEN_REPLY after an accepted or ignored REPLY.
fn after_packet(meta: &mut EntryMeta, dir: Direction, v: TrackVerdict) {
    if matches!(v, TrackVerdict::Accept | TrackVerdict::Ignore(_)) && dir == Direction::Reply {
        meta.flags.set(CtFlags::SEEN_REPLY);
    }
}

fn seg_with(flags: u8, seq: u32, ack: u32, window: u16, len: u32, options: &[u8]) -> TcpSeg<'_> {
    TcpSeg {
        sport: 40000,
        dport: 443,
        seq,
        ack,
        flags: TcpFlags(flags),
        window,
        payload_len: len,
        options,
    }
}

/// Options bytes of a mid-connection segment acknowledging `ack`.
fn seg_options(o: SegOpts, ack: u32) -> Vec<u8> {
    let ts = [1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 0, 9];
    let sack = |d: i32| {
        let right = ack.wrapping_add(d as u32);
        let left = right.wrapping_sub(1000);
        let mut v = vec![1, 1, 5, 10];
        v.extend(left.to_be_bytes());
        v.extend(right.to_be_bytes());
        v
    };
    match o {
        SegOpts::None => Vec::new(),
        SegOpts::Timestamps => ts.to_vec(),
        SegOpts::Sack(d) => sack(d),
        SegOpts::TimestampsSack(d) => {
            let mut v = ts.to_vec();
            v.extend(sack(d));
            v
        }
        SegOpts::Junk(bits, n) => (0..n).map(|i| (bits >> (i % 8 * 8)) as u8).collect(),
    }
}

/// Open a connection as the pipeline would, comparing paths on every segment. `None` when
/// the opening did not leave a connection (it always should; the caller checks).
fn open(
    tally: &Tally,
    opening: &Opening,
    isns: (u32, u32),
    cfg: &TcpConfig,
    now: &mut Tick,
) -> Result<Option<(TcpConn, EntryMeta)>, TestCaseError> {
    let (c, s) = isns;
    let mut meta = EntryMeta {
        flags: CtFlags::default(),
        expires: *now,
    };
    match opening {
        Opening::Handshake {
            client,
            server,
            client_win,
            server_win,
        } => {
            let (copts, sopts) = (client.bytes(), server.bytes());
            let syn = seg_with(SYN, c, 0, *client_win, 0, &copts);
            let Ok(mut conn) = TcpConn::new(&syn, cfg) else {
                return Ok(None);
            };
            let v = both_ways(
                tally,
                &mut conn,
                &mut meta,
                *now,
                Direction::Original,
                &syn,
                cfg,
            )?;
            after_packet(&mut meta, Direction::Original, v);
            *now = now.after(Ticks(3));
            let synack = seg_with(SYN | ACK, s, c.wrapping_add(1), *server_win, 0, &sopts);
            let v = both_ways(
                tally,
                &mut conn,
                &mut meta,
                *now,
                Direction::Reply,
                &synack,
                cfg,
            )?;
            after_packet(&mut meta, Direction::Reply, v);
            *now = now.after(Ticks(3));
            let ack = seg_with(
                ACK,
                c.wrapping_add(1),
                s.wrapping_add(1),
                *client_win,
                0,
                &[],
            );
            let v = both_ways(
                tally,
                &mut conn,
                &mut meta,
                *now,
                Direction::Original,
                &ack,
                cfg,
            )?;
            after_packet(&mut meta, Direction::Original, v);
            Ok(Some((conn, meta)))
        }
        Opening::Pickup { win, len, .. } => {
            let first = seg_with(ACK | PSH, c, s, *win, *len, &[]);
            let Ok(mut conn) = TcpConn::new(&first, cfg) else {
                return Ok(None);
            };
            let v = both_ways(
                tally,
                &mut conn,
                &mut meta,
                *now,
                Direction::Original,
                &first,
                cfg,
            )?;
            after_packet(&mut meta, Direction::Original, v);
            Ok(Some((conn, meta)))
        }
        Opening::PickupResync {
            win,
            len,
            client,
            server,
        } => {
            let first = seg_with(ACK | PSH, c, s, *win, *len, &[]);
            let Ok(mut conn) = TcpConn::new(&first, cfg) else {
                return Ok(None);
            };
            let (copts, sopts) = (client.bytes(), server.bytes());
            let c = c.wrapping_add(*len);
            let segs = [
                (Direction::Original, first),
                (Direction::Original, seg_with(SYN, c, 0, *win, 0, &copts)),
                (
                    Direction::Reply,
                    seg_with(SYN | ACK, s, c.wrapping_add(1), *win, 0, &sopts),
                ),
                (
                    Direction::Original,
                    seg_with(ACK, c.wrapping_add(1), s.wrapping_add(1), *win, 0, &[]),
                ),
            ];
            for (dir, seg) in &segs {
                *now = now.after(Ticks(3));
                let v = both_ways(tally, &mut conn, &mut meta, *now, *dir, seg, cfg)?;
                after_packet(&mut meta, *dir, v);
            }
            Ok(Some((conn, meta)))
        }
    }
}

/// The segment `st` describes, for the connection as it is now; `isns` are the numbers the
/// opening gave ORIGINAL and REPLY.
fn make_segment(
    conn: &TcpConn,
    dir: Direction,
    st: &Step,
    last_win: [u16; 2],
    isns: (u32, u32),
) -> (u32, u32, u16) {
    let (own_isn, peer_isn) = match dir {
        Direction::Original => isns,
        Direction::Reply => (isns.1, isns.0),
    };
    let snd = conn.window(dir);
    let rcv = conn.window(dir.opposite());
    let flags = TcpFlags(st.flags);
    let extra = u32::from(flags.syn()) + u32::from(flags.fin());
    let seq = match st.seq {
        SeqAt::Next(d) => snd.td_end.0.wrapping_add(d as u32),
        SeqAt::MaxEnd(d) => snd.td_maxend.0.wrapping_add(d as u32),
        SeqAt::Low(d) => snd
            .td_end
            .0
            .wrapping_sub(rcv.td_maxwin)
            .wrapping_sub(st.len + extra)
            .wrapping_add(d as u32),
        SeqAt::Last => conn.last_seq.0,
        SeqAt::Opening(d) => own_isn.wrapping_add(d as u32),
        SeqAt::Anywhere(x) => x,
    };
    let ack = match st.ack {
        AckAt::Behind(lag) => rcv.td_end.0.wrapping_sub(lag),
        AckAt::Edge(d) => rcv.td_end.0.wrapping_add(d as u32),
        AckAt::Low(d) => rcv
            .td_end
            .0
            .wrapping_sub(snd.td_maxwin.max(MAXACKWINCONST))
            .wrapping_add(d as u32),
        AckAt::Last => conn.last_ack.0,
        AckAt::Opening(d) => peer_isn.wrapping_add(d as u32),
        AckAt::Anywhere(x) => x,
    };
    let window = match st.window {
        Window::Same => last_win[dir.index()],
        Window::Zero => 0,
        Window::Value(w) => w,
    };
    (seq, ack, window)
}

/// Drive one random connection; every segment is checked by [`both_ways`].
fn run_connection(
    tally: &Tally,
    cfg: &TcpConfig,
    opening: &Opening,
    isns: (u32, u32),
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut now = Tick(0x4000_0000);
    let Some((mut conn, mut meta)) = open(tally, opening, isns, cfg, &mut now)? else {
        return Err(TestCaseError::fail("the opening left no connection"));
    };
    let mut last_win = [29_200u16; 2];
    for st in steps {
        now = now.after(Ticks(st.wait));
        let dir = if st.reply && !opening.one_way() {
            Direction::Reply
        } else {
            Direction::Original
        };
        let (seq, ack, window) = make_segment(&conn, dir, st, last_win, isns);
        let options = seg_options(st.opts, ack);
        let seg = seg_with(st.flags, seq, ack, window, st.len, &options);
        last_win[dir.index()] = window;
        let v = both_ways(tally, &mut conn, &mut meta, now, dir, &seg, cfg)?;
        match v {
            TrackVerdict::Accept | TrackVerdict::Ignore(_) => after_packet(&mut meta, dir, v),
            TrackVerdict::Invalid(_) => {}
            // The entry is gone: the pipeline opens a new one with the same segment.
            TrackVerdict::Kill | TrackVerdict::Reopen => {
                let Ok(fresh) = TcpConn::new(&seg, cfg) else {
                    return Ok(());
                };
                conn = fresh;
                meta = EntryMeta {
                    flags: CtFlags::default(),
                    expires: now,
                };
                let v = both_ways(
                    tally,
                    &mut conn,
                    &mut meta,
                    now,
                    Direction::Original,
                    &seg,
                    cfg,
                )?;
                if !matches!(v, TrackVerdict::Accept | TrackVerdict::Ignore(_)) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fast_path_decides_as_the_full_port() {
    let tally = Tally::default();
    let mut runner = TestRunner::new(Config {
        cases: 700,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (config(), opening(), (isn(), isn())).prop_flat_map(|(cfg, opening, isns)| {
        // A pickup's segments often carry the endpoints' real numbers, which the tracker
        // knows only from the picked-up segment (and not at all for the server).
        let w = match opening {
            Opening::Handshake { .. } => 3,
            Opening::Pickup { .. } => 80,
            Opening::PickupResync { .. } => 20,
        };
        (
            Just(cfg),
            Just(opening),
            Just(isns),
            // A body of mostly ACK-class segments, then a tail where closing is likely.
            prop::collection::vec(step(3, w), 1..150),
            prop::collection::vec(step(1000, w), 0..8),
        )
    });
    let result = runner.run(&strategy, |(cfg, opening, isns, body, tail)| {
        let steps: Vec<Step> = body.into_iter().chain(tail).collect();
        run_connection(&tally, &cfg, &opening, isns, &steps)
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    let get = |c: &Cell<u64>| c.get();
    let packets = get(&tally.packets);
    let fast = get(&tally.fast);
    let report = format!(
        "packets {packets}, fast {fast}, declined ESTABLISHED ACKs {} (full port accepted {}), \
         SACK blocks {}, fast: retransmissions {}, with options {}, zero window {}, wrapped {}, unreplied {}, \
         assured now {}, UNACK timeout {}, RETRANS timeout {}, liberal outside II/III/IV {}/{}/{} \
         (never answered {}, by tcp_be_liberal {}, sender only {}), outside to a liberal receiver {}",
        get(&tally.declined_established_acks),
        get(&tally.declined_but_accepted),
        get(&tally.sack_blocks),
        get(&tally.fast_retrans),
        get(&tally.fast_with_options),
        get(&tally.fast_zero_window),
        get(&tally.fast_wrapped),
        get(&tally.fast_unreplied),
        get(&tally.fast_assured_now),
        get(&tally.fast_unack_timeout),
        get(&tally.fast_retrans_timeout),
        get(&tally.fast_liberal[0]),
        get(&tally.fast_liberal[1]),
        get(&tally.fast_liberal[2]),
        get(&tally.fast_liberal_unseen),
        get(&tally.fast_liberal_by_config),
        get(&tally.fast_liberal_sender_only),
        get(&tally.outside_receiver_only_liberal),
    );
    eprintln!("{report}");
    // Most segments take the fast path, and the run reaches every case around it.
    assert!(fast * 2 > packets, "the fast path took too few: {report}");
    for (what, n) in [
        ("declined", get(&tally.declined_established_acks)),
        ("declined but accepted", get(&tally.declined_but_accepted)),
        ("retransmissions", get(&tally.fast_retrans)),
        ("SACK blocks", get(&tally.sack_blocks)),
        ("options", get(&tally.fast_with_options)),
        ("zero window", get(&tally.fast_zero_window)),
        ("wrapped", get(&tally.fast_wrapped)),
        ("unreplied", get(&tally.fast_unreplied)),
        ("assured", get(&tally.fast_assured_now)),
        ("UNACK timeout", get(&tally.fast_unack_timeout)),
        ("RETRANS timeout", get(&tally.fast_retrans_timeout)),
        ("liberal, outside II", get(&tally.fast_liberal[0])),
        ("liberal, outside III", get(&tally.fast_liberal[1])),
        ("liberal, outside IV", get(&tally.fast_liberal[2])),
        ("liberal, never answered", get(&tally.fast_liberal_unseen)),
        (
            "liberal by tcp_be_liberal",
            get(&tally.fast_liberal_by_config),
        ),
        ("liberal sender only", get(&tally.fast_liberal_sender_only)),
        (
            "outside to a liberal receiver",
            get(&tally.outside_receiver_only_liberal),
        ),
    ] {
        assert!(
            n >= 10,
            "too few fast-path segments exercised {what}: {report}"
        );
    }
}
