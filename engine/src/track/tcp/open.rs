//! A new connection's first segment: [`TcpConn::open`], Linux's `tcp_new` followed by
//! `nf_conntrack_tcp_packet` for the same segment, with the usual case, a SYN, in one step.
//!
//! For a SYN (without ACK: `FlagClass::Syn`) into no entry the two steps of the full port do
//! little that depends on the segment. `tcp_new` takes the `NONE -> SYN_SENT` cell and
//! initialises the ORIGINAL direction (`td_end` = `td_maxend` = the segment's end, `td_maxwin`
//! = its window, at least 1, and the window scale and SACK-permitted options). Then
//! `nf_conntrack_tcp_packet` takes the same cell again and runs `tcp_in_window`, where with
//! nothing known of the REPLY direction and no ACK:
//!
//! - the ACK is taken as the receiver's `td_end` (0), so SACK is not read, and bounds II to IV
//!   hold whatever the segment says (the receiver's `td_maxwin` is 0, and 0 lies within
//!   `MAXACKWINCONST` of 0);
//! - bound I holds as long as the segment's end lies less than 2^31 past its sequence number,
//!   which a parsed segment always does (`open` checks the length, and leaves the rare
//!   segment that could break it to the full port);
//! - the sender is not re-initialised (its end is not past its own `td_end`), its window is
//!   not scaled (a SYN's never is) and does not grow `td_maxwin` (it is that window), its end
//!   does not move `td_end`, and without ACK `td_maxack` is left alone;
//! - the receiver's `td_maxend` becomes ACK + window = the window, plus 1 for a zero window;
//!   nothing else of it changes (its DATA_UNACKNOWLEDGED, cleared since the ACK is its
//!   `td_end`, is not set);
//! - the segment is not an ACK, so the retransmission count is untouched.
//!
//! After the window check: `last_index` = SYN, `last_dir` = ORIGINAL, the state SYN_SENT
//! (which marks no CLOSE_INIT), and the timeout. Of its caps only two can apply, both to
//! the RETRANS timeout and only when SYN_SENT's is longer: the `tcp_max_retrans` cap when
//! the knob is 0 (no retransmission has been counted), and the zero-window cap, since
//! `last_win` is still 0; so the timeout is the shorter of the two. Nothing sets ASSURED or
//! kills the entry without a reply, and the SYN is not a retransmission (the old state is
//! NONE): the verdict is Accept.
//!
//! `open_syn` writes exactly that. Every other first segment goes through
//! [`TcpConn::new`] and the full port. The property test below runs random first segments
//! (every flag combination `tcp_error` lets through, options well-formed and malformed, any
//! window, length and sequence number) under random knobs through both and requires the same
//! connection, status, deadline and verdict, or the same refusal.

use super::{FlagClass, Seen, SeqNumber, TcpConfig, TcpConn, TcpState, segment_end, tcp_options};
use crate::counters::Reason;
use crate::flow::Direction;
use crate::time::Tick;
use crate::track::{EntryMeta, TrackVerdict};
use crate::wire::TcpSeg;

/// Longest payload `open_syn` takes: what an IP packet can carry (a parsed segment never has
/// more). Bound I then holds by far (the segment's end lies less than 2^31 past its start).
const MAX_PAYLOAD: u32 = u16::MAX as u32;

impl TcpConn {
    /// Linux `tcp_new`, then `nf_conntrack_tcp_packet` for the same segment, in the ORIGINAL
    /// direction: the connection a segment that found no entry opens, and the verdict on
    /// that segment; or why it cannot open one (as [`TcpConn::new`]). `meta` is the new
    /// entry's, with no status bits set; its deadline is written as
    /// [`TcpConn::packet`] writes it.
    ///
    /// The same as [`TcpConn::new`] followed by [`TcpConn::packet`] (which is what a segment
    /// other than a SYN runs); a SYN takes one step specialised to it (module documentation).
    #[inline]
    pub fn open(
        meta: &mut EntryMeta,
        now: Tick,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> Result<(TcpConn, TrackVerdict), Reason> {
        if FlagClass::of(seg.flags) == FlagClass::Syn && seg.payload_len <= MAX_PAYLOAD {
            return Ok(TcpConn::open_syn(meta, now, seg, cfg));
        }
        let mut conn = TcpConn::new(seg, cfg)?;
        let verdict = conn.packet_full(meta, now, Direction::Original, seg, cfg);
        Ok((conn, verdict))
    }

    /// [`TcpConn::open`] for a SYN without ACK whose payload is at most [`MAX_PAYLOAD`].
    #[inline]
    fn open_syn(
        meta: &mut EntryMeta,
        now: Tick,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> (TcpConn, TrackVerdict) {
        let end = segment_end(seg);
        // `td_maxwin`, and the receiver's `td_maxend` (ACK 0 + window, + 1 if it is 0).
        let win = u32::from(seg.window).max(1);
        let (mut scale, mut flags) = (0, 0);
        tcp_options(seg.options, &mut scale, &mut flags);
        let mut conn = TcpConn {
            seen: [
                Seen {
                    td_end: end,
                    td_maxend: end,
                    td_maxwin: win,
                    td_maxack: SeqNumber(0),
                },
                Seen {
                    td_maxend: SeqNumber(win),
                    ..Seen::default()
                },
            ],
            flags: [flags, 0],
            state: TcpState::SynSent,
            ..TcpConn::default()
        };
        conn.set_scale(Direction::Original.index(), scale);
        conn.set_last_index(FlagClass::Syn);
        conn.set_last_dir(Direction::Original);
        let t = &cfg.timeouts;
        let timeout = if t.syn_sent > t.retrans {
            t.retrans
        } else {
            t.syn_sent
        };
        meta.expires = now.after(timeout);
        (conn, TrackVerdict::Accept)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::time::Ticks;
    use crate::track::CtFlags;
    use crate::track::tcp::F;
    use crate::track::tcp::tests::options;
    use crate::track::tcp::{TcpTimeouts, flags_valid};
    use crate::wire::TcpFlags;

    /// A first segment's flags: mostly a SYN (with or without PSH, URG, ECE, CWR), else any
    /// combination `tcp_error` lets through.
    fn flags() -> impl Strategy<Value = TcpFlags> {
        let extra = TcpFlags::PSH | TcpFlags::URG | TcpFlags::ECE | TcpFlags::CWR;
        prop_oneof![
            3 => any::<u8>().prop_map(move |b| TcpFlags(TcpFlags::SYN | b & extra)),
            1 => any::<u8>().prop_map(TcpFlags).prop_filter("valid", |f| flags_valid(*f)),
        ]
    }

    fn timeout() -> impl Strategy<Value = Ticks> {
        prop_oneof![
            Just(Ticks::from_secs(120)),
            Just(Ticks::from_secs(300)),
            (0u32..1000).prop_map(Ticks::from_secs),
        ]
    }

    /// Knobs at random: the timeouts that the first segment can reach, and every switch.
    fn config() -> impl Strategy<Value = TcpConfig> {
        (
            (timeout(), timeout(), timeout(), timeout()),
            (any::<bool>(), any::<bool>(), 0u8..5, any::<bool>()),
        )
            .prop_map(
                |(
                    (syn_sent, retrans, unack, established),
                    (loose, be_liberal, max_retrans, rst),
                )| {
                    TcpConfig {
                        timeouts: TcpTimeouts {
                            syn_sent,
                            retrans,
                            unack,
                            established,
                            ..TcpTimeouts::default()
                        },
                        loose,
                        be_liberal,
                        max_retrans,
                        ignore_invalid_rst: rst,
                    }
                },
            )
    }

    fn payload() -> impl Strategy<Value = u32> {
        prop_oneof![
            4 => Just(0u32),
            2 => 0u32..1500,
            1 => Just(MAX_PAYLOAD),
            1 => any::<u32>(),
        ]
    }

    /// A new entry's status and deadline before its first segment.
    fn fresh(now: Tick) -> EntryMeta {
        EntryMeta {
            flags: CtFlags::default(),
            expires: now,
        }
    }

    /// The full port: `tcp_new`, then the whole of `nf_conntrack_tcp_packet`.
    fn general(
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
        now: Tick,
    ) -> Result<(TcpConn, EntryMeta, TrackVerdict), Reason> {
        let mut meta = fresh(now);
        let mut conn = TcpConn::new(seg, cfg)?;
        let verdict = conn.packet(&mut meta, now, Direction::Original, seg, cfg);
        Ok((conn, meta, verdict))
    }

    fn opened(
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
        now: Tick,
    ) -> Result<(TcpConn, EntryMeta, TrackVerdict), Reason> {
        let mut meta = fresh(now);
        let (conn, verdict) = TcpConn::open(&mut meta, now, seg, cfg)?;
        Ok((conn, meta, verdict))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// `open` leaves the connection, the entry's status and deadline and the verdict
        /// exactly as `new` then `packet` do, or refuses the segment for the same reason.
        #[test]
        fn open_equals_new_then_packet(
            flags in flags(),
            seq in any::<u32>(),
            ack in any::<u32>(),
            window in prop_oneof![Just(0u16), Just(1), Just(u16::MAX), any::<u16>()],
            payload_len in payload(),
            options in options(),
            cfg in config(),
            now in any::<u32>(),
        ) {
            let seg = TcpSeg {
                sport: 40000,
                dport: 80,
                seq,
                ack,
                flags,
                window,
                payload_len,
                options: &options,
            };
            let now = Tick(now);
            prop_assert_eq!(opened(&seg, &cfg, now), general(&seg, &cfg, now));
        }
    }

    /// The cases the specialised step covers, spelled out: options set the scale (capped at
    /// 14) and SACK_PERM, a zero window counts as 1 in both `td_maxwin` and the receiver's
    /// `td_maxend`, and the timeout is SYN_SENT's unless RETRANS is shorter.
    #[test]
    fn syn_opens_syn_sent_in_one_step() {
        let opts = [2, 4, 5, 0xb4, 1, 3, 3, 20, 4, 2];
        for window in [0, 1, 64240] {
            for (syn_sent, retrans) in [(120, 300), (400, 300)] {
                let cfg = TcpConfig {
                    timeouts: TcpTimeouts {
                        syn_sent: Ticks::from_secs(syn_sent),
                        retrans: Ticks::from_secs(retrans),
                        ..TcpTimeouts::default()
                    },
                    ..TcpConfig::default()
                };
                let seg = TcpSeg {
                    sport: 1,
                    dport: 2,
                    seq: u32::MAX,
                    ack: 77,
                    flags: TcpFlags(TcpFlags::SYN),
                    window,
                    payload_len: 3,
                    options: &opts,
                };
                let now = Tick(1000);
                let (conn, meta, verdict) = opened(&seg, &cfg, now).expect("a SYN opens");
                assert_eq!(
                    (conn, meta, verdict),
                    general(&seg, &cfg, now).expect("opens")
                );
                let o = conn.window(Direction::Original);
                let r = conn.window(Direction::Reply);
                let win = u32::from(window).max(1);
                assert_eq!(conn.state(), TcpState::SynSent);
                assert_eq!(
                    (o.td_end, o.td_maxend, o.td_maxwin),
                    (SeqNumber(3), SeqNumber(3), win)
                );
                assert_eq!((o.td_scale, o.flags), (14, F::WINDOW_SCALE | F::SACK_PERM));
                assert_eq!(
                    (r.td_end, r.td_maxend, r.td_maxwin),
                    (SeqNumber(0), SeqNumber(win), 0)
                );
                assert_eq!(
                    meta.expires,
                    now.after(Ticks::from_secs(syn_sent.min(retrans)))
                );
                assert_eq!(verdict, TrackVerdict::Accept);
            }
        }
    }
}
