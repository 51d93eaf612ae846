//! The fast path of [`TcpConn::packet`]: an ACK or data segment of an ESTABLISHED connection
//! that lies in window, which is nearly every packet a firewall sees, or that a liberal
//! sender sent out of window, which is every packet of a connection picked up mid-stream
//! whose other side has not been seen yet.
//!
//! For that case Linux's `nf_conntrack_tcp_packet` takes the `ES -> ES` cell of
//! `tcp_conntracks` (ACK row, either direction), runs `tcp_in_window` and refreshes the
//! entry. This is that path with every test whose outcome the case fixes left out. It
//! applies when:
//!
//! - the segment carries ACK and none of SYN, FIN, RST (`FlagClass::Ack`): no re-open, no RST
//!   checks, no challenge-ACK test, no `tcp_init_sender`, no "pretend the ACK was set", no
//!   state change (ESTABLISHED stays, so `set_state` marks nothing), no CLOSE timeout, no kill;
//! - the sender has been seen (`td_maxwin != 0`): not the first segment of a direction, which
//!   `tcp_in_window` treats apart;
//! - `tcp_sack` has nothing to read (the receiver did not permit SACK, or there are no
//!   options, or only the aligned timestamp option it skips): the highest SACK edge is the
//!   ACK. A segment with SACK blocks (loss recovery) takes the full port;
//! - the sequence number is under bound I (`td_maxend`), whose failure has a branch that
//!   writes (the window-overrun workaround);
//! - and either all four window bounds hold, or one of II, III, IV does not and the sender
//!   is liberal (its BE_LIBERAL flag, which loose pickup sets on both directions, or
//!   `tcp_be_liberal`).
//!
//! In window, what is left is exactly what Linux then does: the sender's `td_maxwin`,
//! `td_end` (with DATA_UNACKNOWLEDGED) and `td_maxack` (with MAXACK_SET); the receiver's
//! `td_maxwin` and `td_maxend`, and its DATA_UNACKNOWLEDGED cleared by an ACK of all its
//! data; the count of retransmitted ACK segments (`last_seq`, `last_ack`, `last_end`,
//! `last_win`, `retrans`). Out of window, `tcp_in_window` returns at the failed bound through
//! `nf_tcp_log_invalid`, which says `NFCT_TCP_ACCEPT` for a liberal sender, before it writes
//! anything. Both then go on at `nf_conntrack_tcp_packet`'s label `in_window`: `last_index`
//! and `last_dir`; the timeout (the RETRANS cap after `tcp_max_retrans` retransmissions, the
//! UNACK cap while data is unacknowledged, the RETRANS cap when the last counted segment had
//! a zero window, the UNACK cap of a connection picked up without a reply); ASSURED for an
//! answered connection. The statements are the full port's, in its order, specialised. In
//! every other case this returns `None` before writing anything, and [`TcpConn::packet`]
//! runs the full port: the fast path cannot decide differently from it. The property test in
//! `equivalence.rs` checks that on random segment sequences, field for field.

use super::{F, FlagClass, MAXACKWINCONST, SeqNumber, TcpConfig, TcpConn, TcpState, sack_unread};
use crate::flow::Direction;
use crate::time::Tick;
use crate::track::{CtFlags, EntryMeta, TrackVerdict};
use crate::wire::{TcpFlags, TcpSeg};

/// The direction whose [`Direction::index`] is `S`: the sender of a segment the fast path's
/// copy for `S` handles.
#[inline(always)]
const fn sender<const S: usize>() -> Direction {
    if S == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

/// What the window checks made of an ACK-class segment of an ESTABLISHED connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// In all four bounds: the sender, the receiver and the retransmission count are
    /// updated, as `tcp_in_window` does before it returns `NFCT_TCP_ACCEPT`.
    Updated,
    /// Under bound I but outside II, III or IV: nothing written. `tcp_in_window` returns
    /// `nf_tcp_log_invalid(..)` here, which is `NFCT_TCP_ACCEPT` for a liberal sender.
    Outside,
    /// Anything else (the sender's first segment, a SACK block to read, over bound I): the
    /// full port decides. Nothing written.
    Declined,
}

impl TcpConn {
    /// Whether `seg` is an ACK or data segment (`FlagClass::Ack`) of an ESTABLISHED
    /// connection, which the fast path may decide. Inlined into the pipeline: any other
    /// segment (every SYN, for one) goes to the full port without a second call.
    #[inline(always)]
    pub(crate) fn established_ack(&self, seg: &TcpSeg<'_>) -> bool {
        // FlagClass::Ack: ACK set, none of RST, SYN, FIN.
        const CLASS_BITS: u8 = TcpFlags::RST | TcpFlags::SYN | TcpFlags::FIN | TcpFlags::ACK;
        self.state == TcpState::Established && seg.flags.0 & CLASS_BITS == TcpFlags::ACK
    }

    /// The ACK or data segment of an ESTABLISHED connection that is in window, or out of
    /// window (bounds II to IV) from a liberal sender; `None` (nothing written) when the
    /// segment is anything else. What [`TcpConn::packet`] does before it would call the full
    /// port, for the property test.
    #[cfg(test)]
    pub(super) fn established_in_window(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> Option<TrackVerdict> {
        (self.established_ack(seg) && self.established_from_dir(meta, now, dir, seg, cfg))
            .then_some(TrackVerdict::Accept)
    }

    /// [`TcpConn::established_in_window`] after [`TcpConn::established_ack`], or the full
    /// port when the fast path declines: one call per such segment, everything in this file
    /// inlined into it. Inlined into the pipeline's loop in turn, its ~20 live values would
    /// compete with the loop's for registers: that measured 8 instructions per packet more
    /// than the call.
    #[inline(never)]
    pub(super) fn packet_established(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> TrackVerdict {
        if self.established_from_dir(meta, now, dir, seg, cfg) {
            TrackVerdict::Accept
        } else {
            self.packet_full(meta, now, dir, seg, cfg)
        }
    }

    /// The fast path alone, for the pipeline's lane for established packets
    /// (`Engine::established`), after [`TcpConn::established_ack`]: `true` when it accepted
    /// the segment (the connection and `meta` updated as [`TcpConn::packet`] would), `false`
    /// having written nothing, when [`TcpConn::packet`] must decide. Out of line for the
    /// reason [`TcpConn::packet_established`] is.
    #[inline(never)]
    pub(crate) fn accept_established(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> bool {
        self.established_from_dir(meta, now, dir, seg, cfg)
    }

    /// One copy of the fast path per direction, so that every index in it is a constant:
    /// whether it accepted the segment (the verdict is then Accept), `false` having written
    /// nothing.
    #[inline(always)]
    fn established_from_dir(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        dir: Direction,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> bool {
        match dir {
            Direction::Original => self.established_from::<0>(meta, now, seg, cfg),
            Direction::Reply => self.established_from::<1>(meta, now, seg, cfg),
        }
    }

    /// [`TcpConn::established_in_window`] for a segment sent by direction `S` (its
    /// [`Direction::index`]), flags and state already checked: the window checks, then the
    /// end of `nf_conntrack_tcp_packet`.
    #[inline(always)]
    fn established_from<const S: usize>(
        &mut self,
        meta: &mut EntryMeta,
        now: Tick,
        seg: &TcpSeg<'_>,
        cfg: &TcpConfig,
    ) -> bool {
        match self.in_window_from::<S>(seg) {
            Checked::Updated => {}
            // `nf_tcp_log_invalid`: accepted when liberal; else the full port decides (the
            // segment is ignored or invalid, and may shorten the deadline).
            Checked::Outside if self.flags[S] & F::BE_LIBERAL != 0 || cfg.be_liberal => {}
            Checked::Outside | Checked::Declined => return false,
        }

        // Linux label `in_window`, for index ACK and new_state == old_state == ESTABLISHED:
        // no state change (`set_state` marks nothing), no RST, no SYN retransmission.
        self.set_last_index(FlagClass::Ack);
        self.set_last_dir(sender::<S>());
        let t = &cfg.timeouts;
        let retransmitted = self.retrans >= cfg.max_retrans;
        let unacked = (self.flags[0] | self.flags[1]) & F::DATA_UNACKNOWLEDGED != 0;
        let zero_window = self.last_win == 0;
        // The full port's chain, whose every arm but the last needs one of the three.
        let mut timeout = t.established;
        if retransmitted || unacked || zero_window {
            timeout = if retransmitted && t.established > t.retrans {
                t.retrans
            } else if unacked && t.established > t.unack {
                t.unack
            } else if zero_window && t.established > t.retrans {
                t.retrans
            } else {
                t.established
            };
        }
        if !meta.flags.seen_reply() {
            // Picked up without a reply: no five-day timeout for it.
            if timeout > t.unack {
                timeout = t.unack;
            }
        } else if !meta.flags.assured() {
            // A valid answer for a picked-up connection (or the first after the handshake).
            meta.flags.set(CtFlags::ASSURED);
        }
        meta.expires = now.after(timeout);
        true
    }

    /// `tcp_in_window` for an ACK-class segment sent by direction `S` (its
    /// [`Direction::index`]) of an ESTABLISHED connection, as far as [`Checked`] says.
    #[inline(always)]
    fn in_window_from<const S: usize>(&mut self, seg: &TcpSeg<'_>) -> Checked {
        let (s, r) = (S, 1 - S);
        let dir = sender::<S>();
        let (mut sflags, mut rflags) = (self.flags[s], self.flags[r]);
        // `tcp_sack` leaves `sack == ack` unless it has options to read.
        if rflags & F::SACK_PERM != 0 && !sack_unread(seg.options) {
            return Checked::Declined;
        }
        let seq = SeqNumber(seg.seq);
        let ack = SeqNumber(seg.ack);
        let end = seq + seg.payload_len;

        // Not the sender's first segment, and under bound I (whose failure may write).
        if self.seen[s].td_maxwin == 0 || !seq.before(self.seen[s].td_maxend + 1) {
            return Checked::Declined;
        }
        // Bounds III, II and IV of `tcp_in_window` (with `sack == ack`), as the full port
        // writes them. Their failures return alike, without writing.
        if !ack.before(self.seen[r].td_end + 1)
            || !(self.seen[r].td_maxwin == 0
                || end.after(self.seen[s].td_end - self.seen[r].td_maxwin - 1))
            || !ack.after(self.seen[r].td_end - self.seen[s].td_maxwin.max(MAXACKWINCONST) - 1)
        {
            return Checked::Outside;
        }

        // In window: update the sender (the window is scaled, `sack - ack` is 0). Fields are
        // read where used, as in the full port, not copied first: fewer live values.
        let win = u32::from(seg.window) << self.scale(s);
        self.seen[s].td_maxwin = self.seen[s].td_maxwin.max(win);
        if end.after(self.seen[s].td_end) {
            self.seen[s].td_end = end;
            sflags |= F::DATA_UNACKNOWLEDGED;
        }
        // The first ACK sets `td_maxack`, a later one raises it.
        if sflags & F::MAXACK_SET == 0 || ack.after(self.seen[s].td_maxack) {
            self.seen[s].td_maxack = ack;
        }
        sflags |= F::MAXACK_SET;

        // Update the receiver.
        if self.seen[r].td_maxwin != 0 && end.after(self.seen[s].td_maxend) {
            self.seen[r].td_maxwin = self.seen[r]
                .td_maxwin
                .wrapping_add(end - self.seen[s].td_maxend);
        }
        if (ack + win).after(self.seen[r].td_maxend - 1) {
            self.seen[r].td_maxend = ack + win + u32::from(win == 0);
        }
        if ack == self.seen[r].td_end {
            rflags &= !F::DATA_UNACKNOWLEDGED;
        }
        self.flags[s] = sflags;
        self.flags[r] = rflags;

        // Count retransmissions of the same ACK segment.
        if self.last_dir() == dir
            && self.last_seq == seq
            && self.last_ack == ack
            && self.last_end() == end
            && self.last_win == seg.window
        {
            self.retrans = self.retrans.wrapping_add(1);
        } else {
            self.set_last_seq_end(seq, end);
            self.last_ack = ack;
            self.last_win = seg.window;
            self.retrans = 0;
        }
        Checked::Updated
    }
}
