//! TCP conversations of the random traces: two [`TcpSim`] endpoints driven through an
//! opening (handshake with its own perturbations, simultaneous open, mid-stream pickup, a SYN
//! from outside, a SYN/ACK without SYN, invalid flags first), then moves chosen by weight
//! (ordinary data and ACKs, loss and retransmission, FIN) and perturbations scaled by the
//! conversation's spice, then what may follow a close or an abort (stray segments, RSTs,
//! reuse of the tuple with a new ISN).
//!
//! The simulator keeps both ends consistent; a perturbation is a crafted segment pushed
//! through it (no state change), so the conversation carries on as real endpoints would after
//! a segment they ignore. What each packet is meant to be goes into its note.

use super::{Conv, Dir, Ends, MS, Phase, di, dir_name};
use crate::frame::{Frame, Ipv6Ext, TcpFlags, TcpOption};
use crate::rng::Rng;
use crate::tcpsim::TcpSim;
use crate::{Packet, Side};

/// A TCP conversation: the simulator plus what the generator remembers about it.
pub(super) struct TcpConv<'c, 'r> {
    c: &'c mut Conv<'r>,
    sim: TcpSim,
    phase: Phase,
    /// Data segments sent per direction: (seq, len).
    sent: [Vec<(u32, u32)>; 2],
    /// Whether a segment in this direction was lost and awaits retransmission.
    lost: [bool; 2],
    /// The ISN of the last SYN (or SYN/ACK) seen on the wire, per direction.
    syn_isn: [Option<u32>; 2],
    /// Whether each side has sent a FIN on the current connection.
    fin: [bool; 2],
    /// Times the tuple was reused for a new connection.
    reuses: u32,
    rtt: u64,
    /// How often perturbations happen, in tenths of the base weights.
    spice: u32,
}

impl<'c, 'r> TcpConv<'c, 'r> {
    pub(super) fn new(c: &'c mut Conv<'r>) -> Self {
        let rtt = c.rng.range(1, 8) * MS;
        let spice = [2, 10, 20][c.rng.weighted(&[30, 50, 20])];
        let isn = (c.rng.next_u32(), c.rng.next_u32());
        let sim = fresh_sim(c.rng, c.ends, isn, c.now, rtt);
        TcpConv {
            c,
            sim,
            phase: Phase::Open,
            sent: [Vec::new(), Vec::new()],
            lost: [false; 2],
            syn_isn: [None; 2],
            fin: [false; 2],
            reuses: 0,
            rtt,
            spice,
        }
    }

    fn rng(&mut self) -> &mut Rng {
        self.c.rng
    }

    fn chance(&mut self, p: f64) -> bool {
        self.c.rng.chance(p)
    }

    /// Moves the simulator's clock on by a small gap and takes what it emitted, with a note.
    fn flush(&mut self, what: &str) {
        for p in self.sim.take_packets() {
            let d = if p.side == Side::Inside {
                Dir::C2s
            } else {
                Dir::S2c
            };
            self.c.now = self.c.now.max(p.ts_ns);
            self.c.out.push((p, format!("{} {what}", dir_name(d))));
        }
    }

    /// Sets the simulator's clock to after the last packet plus a small random gap.
    fn tick(&mut self) {
        let g = self.c.rng.range(0, 2 * MS);
        let t = self.c.now + g + self.rtt / 2;
        self.sim.at(t);
    }

    /// Emits a crafted frame through the simulator (no state change), with a note.
    fn push(&mut self, dir: Dir, f: &Frame, what: &str) {
        self.tick();
        self.sim.push(dir, f);
        self.flush(what);
    }

    fn with_seq_ack(mut f: Frame, seq: Option<u32>, ack: Option<u32>) -> Frame {
        if let Some(t) = f.tcp_mut() {
            if let Some(s) = seq {
                t.seq = s;
            }
            if let Some(a) = ack {
                t.ack = a;
            }
        }
        f
    }

    /// The window in bytes the receiver of `dir` advertises (scaled as negotiated).
    fn rcv_window(&self, dir: Dir) -> u32 {
        let e = self.sim.endpoint(dir.reverse());
        let (ws, _, _) = self.sim.negotiated();
        if ws {
            let s = u32::from(e.wscale.unwrap_or(0).min(14));
            (e.window >> s).min(0xffff) << s
        } else {
            e.window.min(0xffff)
        }
    }

    /// The last acknowledgment the receiver of `dir` sent.
    fn last_ack(&self, dir: Dir) -> u32 {
        self.sim
            .next_ack(dir.reverse())
            .wrapping_sub(self.sim.ack_owed(dir))
    }

    pub(super) fn run(&mut self, mut budget: u32) {
        self.open();
        while budget > 0 {
            budget -= 1;
            match self.phase {
                Phase::Open | Phase::Closing => self.step_open(),
                Phase::Closed | Phase::Dead => {
                    if !self.after_end() {
                        break;
                    }
                }
            }
        }
    }

    // ----- opening -----

    fn open(&mut self) {
        match self.rng().weighted(&[55, 10, 15, 7, 8, 5]) {
            0 => self.handshake(),
            1 => self.simultaneous_open(),
            2 => self.pickup(),
            3 => {
                self.c.say("SYN from outside first");
                let f = self.sim.craft(Dir::S2c, TcpFlags::SYN, 0);
                self.syn_isn[1] = Some(self.sim.endpoint(Dir::S2c).isn);
                self.push(Dir::S2c, &f, "SYN from the server side");
                if self.chance(0.5) {
                    let ci = self.sim.endpoint(Dir::C2s).isn;
                    let si = self.sim.endpoint(Dir::S2c).isn;
                    let f = Self::with_seq_ack(
                        self.sim.craft(Dir::C2s, TcpFlags::SYN | TcpFlags::ACK, 0),
                        Some(ci),
                        Some(si.wrapping_add(1)),
                    );
                    self.push(Dir::C2s, &f, "SYN/ACK from the inside answering it");
                    if self.chance(0.5) {
                        let f = Self::with_seq_ack(
                            self.sim.craft(Dir::S2c, TcpFlags::ACK, 0),
                            Some(si.wrapping_add(1)),
                            Some(ci.wrapping_add(1)),
                        );
                        self.push(Dir::S2c, &f, "ACK from outside completing it");
                    }
                    self.phase = Phase::Dead;
                } else {
                    self.handshake();
                }
            }
            4 => {
                self.c.say("SYN/ACK without SYN");
                let d = if self.chance(0.5) { Dir::S2c } else { Dir::C2s };
                let f = Self::with_seq_ack(
                    self.sim.craft(d, TcpFlags::SYN | TcpFlags::ACK, 0),
                    None,
                    Some(self.c.rng.next_u32()),
                );
                self.push(d, &f, "SYN/ACK without a SYN");
                self.handshake();
            }
            _ => {
                self.c.say("invalid first");
                self.bad_flags(Dir::C2s);
                self.handshake();
            }
        }
    }

    fn handshake(&mut self) {
        self.c.say("handshake");
        self.syn_isn[0] = Some(self.sim.endpoint(Dir::C2s).isn);
        self.tick();
        self.sim.syn();
        if self.chance(0.03) {
            // The same SYN carrying data (as with TCP Fast Open); the server ignores the data.
            let _ = self.sim.take_packets();
            let len = 1 + self.c.rng.below(200) as usize;
            let f = self.sim.craft(Dir::C2s, TcpFlags::SYN, len);
            self.push(Dir::C2s, &f, "SYN carrying data");
        } else {
            self.flush("SYN");
        }
        for _ in 0..self.rng().weighted(&[88, 9, 3]) {
            self.tick();
            self.sim.syn();
            self.flush("SYN retransmission");
        }
        match self.rng().weighted(&[80, 5, 4, 4, 3, 3, 2]) {
            0 => {}
            5 => {
                // A server with a stale half-open connection answers with a bare ACK; the
                // client resets it (seq = that ACK's ack, RFC 793) and tries again.
                self.c.say("stale server ACK");
                let stale_seq = self.c.rng.next_u32();
                let stale_ack = self.c.rng.next_u32();
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::ACK, 0),
                    Some(stale_seq),
                    Some(stale_ack),
                );
                self.push(Dir::S2c, &f, "bare ACK answering the SYN (stale server)");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::C2s, TcpFlags::RST, 0),
                    Some(stale_ack),
                    Some(0),
                );
                self.push(Dir::C2s, &f, "client RST, seq = the stale ACK's ack");
                self.tick();
                self.sim.syn();
                self.flush("SYN retransmission");
            }
            6 => {
                self.c.say("ACK before the SYN/ACK");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::C2s, TcpFlags::ACK, 0),
                    None,
                    Some(self.c.rng.next_u32()),
                );
                self.push(Dir::C2s, &f, "client ACK before any SYN/ACK");
            }
            1 => {
                self.c.say("closed port");
                let f = Self::with_seq_ack(
                    self.sim
                        .craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0)
                        .window(0),
                    Some(0),
                    Some(self.sim.endpoint(Dir::C2s).isn.wrapping_add(1)),
                );
                self.push(Dir::S2c, &f, "RST/ACK from a closed port");
                self.phase = Phase::Dead;
                return;
            }
            2 => {
                self.c.say("no answer");
                self.phase = Phase::Dead;
                return;
            }
            3 => {
                self.c.say("second SYN with another ISN");
                let isn = self.c.rng.next_u32();
                self.syn_isn[0] = Some(isn);
                if self.chance(0.5) {
                    // The server will answer the new SYN: carry on with the new ISN.
                    let si = self.sim.endpoint(Dir::S2c).isn;
                    self.restart_sim((isn, si));
                    self.tick();
                    self.sim.syn();
                    self.flush("SYN with another ISN in SYN_SENT (answered)");
                } else {
                    let f = Self::with_seq_ack(
                        self.sim.craft(Dir::C2s, TcpFlags::SYN, 0),
                        Some(isn),
                        None,
                    );
                    self.push(Dir::C2s, &f, "SYN with another ISN in SYN_SENT");
                }
            }
            _ => {
                self.c.say("mismatched SYN/ACK first");
                let ci = self.sim.endpoint(Dir::C2s).isn;
                let off = match self.rng().below(4) {
                    0 => 1,
                    1 => 2 + self.c.rng.below(1000) as u32,
                    2 => 0u32.wrapping_sub(1 + self.c.rng.below(100_000) as u32),
                    _ => self.c.rng.next_u32(),
                };
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0),
                    Some(self.c.rng.next_u32()),
                    Some(ci.wrapping_add(1).wrapping_add(off)),
                );
                self.push(Dir::S2c, &f, "SYN/ACK acknowledging the wrong number");
            }
        }
        self.syn_isn[1] = Some(self.sim.endpoint(Dir::S2c).isn);
        self.tick();
        self.sim.synack();
        self.flush("SYN/ACK");
        if self.chance(0.06) {
            self.tick();
            let f = self.sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0);
            self.push(Dir::S2c, &f, "SYN/ACK retransmission");
        }
        match self.rng().weighted(&[94, 3, 3]) {
            0 => {}
            1 => {
                self.c.say("server aborts in SYN_RECV");
                let si = self.sim.endpoint(Dir::S2c).isn.wrapping_add(1);
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::RST, 0),
                    Some(si),
                    Some(0),
                );
                self.push(Dir::S2c, &f, "server RST after its SYN/ACK (seq = ISN + 1)");
                self.phase = Phase::Dead;
                return;
            }
            _ => {
                self.c.say("client aborts after the SYN/ACK");
                let flags = if self.chance(0.5) {
                    TcpFlags::RST | TcpFlags::ACK
                } else {
                    TcpFlags::RST
                };
                let f = self.sim.craft(Dir::C2s, flags, 0);
                self.push(Dir::C2s, &f, "client RST answering the SYN/ACK");
                self.phase = Phase::Dead;
                return;
            }
        }
        if self.chance(0.06) {
            self.c.say("wrong final ACK");
            let sa = self.sim.endpoint(Dir::S2c).isn.wrapping_add(1);
            let off = match self.rng().below(3) {
                0 => 1 + self.c.rng.below(1000) as u32,
                1 => 0u32.wrapping_sub(1 + self.c.rng.below(1000) as u32),
                _ => self.c.rng.next_u32(),
            };
            let f = Self::with_seq_ack(
                self.sim.craft(Dir::C2s, TcpFlags::ACK, 0),
                None,
                Some(sa.wrapping_add(off)),
            );
            self.push(Dir::C2s, &f, "handshake ACK acknowledging the wrong number");
        }
        if self.chance(0.04) {
            self.c.say("server data before the final ACK");
            self.data(Dir::S2c, "server data before the handshake completes");
        }
        if self.chance(0.12) {
            self.data(Dir::C2s, "data on the handshake-completing ACK");
        } else {
            self.tick();
            self.sim.ack();
            self.flush("ACK (handshake complete)");
        }
        self.phase = Phase::Open;
    }

    fn simultaneous_open(&mut self) {
        self.c.say("simultaneous open");
        let ci = self.sim.endpoint(Dir::C2s).isn;
        let si = self.sim.endpoint(Dir::S2c).isn;
        self.syn_isn = [Some(ci), Some(si)];
        let syn_c = self.sim.craft(Dir::C2s, TcpFlags::SYN, 0);
        self.push(Dir::C2s, &syn_c, "SYN");
        let syn_s = self.sim.craft(Dir::S2c, TcpFlags::SYN, 0);
        self.push(
            Dir::S2c,
            &syn_s,
            "SYN from the server too (simultaneous open)",
        );
        let sa = |sim: &TcpSim, d: Dir, seq: u32, ack: u32| {
            Self::with_seq_ack(
                sim.craft(d, TcpFlags::SYN | TcpFlags::ACK, 0),
                Some(seq),
                Some(ack),
            )
        };
        let first = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
        for d in [first, first.reverse()] {
            let (seq, ack) = if d == Dir::C2s { (ci, si) } else { (si, ci) };
            let f = sa(&self.sim, d, seq, ack.wrapping_add(1));
            self.push(d, &f, "SYN/ACK (simultaneous open)");
            if self.chance(0.15) {
                break;
            }
        }
        let now = self.sim.now();
        self.sim = self.sim.clone().established().start_at(now);
        self.phase = Phase::Open;
        if self.chance(0.7) {
            self.tick();
            self.sim.ack_dir(first);
            self.flush("ACK");
        }
    }

    fn pickup(&mut self) {
        self.c.say("mid-stream pickup");
        let now = self.sim.now();
        self.sim = self.sim.clone().established().start_at(now);
        self.phase = Phase::Open;
        match self.rng().weighted(&[40, 25, 15, 10, 4, 3, 3]) {
            0 => self.data(Dir::C2s, "client data (first packet seen)"),
            1 => {
                self.tick();
                self.sim.ack_c2s();
                self.flush("client ACK (first packet seen)");
            }
            2 => self.data(Dir::S2c, "server data (first packet seen)"),
            3 => {
                self.tick();
                self.sim.ack_s2c();
                self.flush("server ACK (first packet seen)");
            }
            4 => {
                self.tick();
                self.sim.fin_c2s();
                self.flush("client FIN (first packet seen)");
                self.fin[0] = true;
                self.phase = Phase::Closing;
            }
            5 => self.rst(Dir::C2s),
            _ => self.rst(Dir::S2c),
        }
    }

    /// Replaces the simulator by a new connection on the same tuple with these ISNs.
    fn restart_sim(&mut self, isn: (u32, u32)) {
        let now = self.c.now;
        self.sim = fresh_sim(self.c.rng, self.c.ends, isn, now, self.rtt);
        self.sent = [Vec::new(), Vec::new()];
        self.lost = [false; 2];
        self.fin = [false; 2];
    }

    // ----- established -----

    fn data(&mut self, dir: Dir, what: &str) {
        let mut len = *[1u32, 100, 536, 1000, 1448, 1460]
            .get(self.c.rng.below(6) as usize)
            .unwrap_or(&100);
        if self.c.rng.chance(0.5) {
            len = self.c.rng.range(1, 1460) as u32;
        }
        if !self.sim.can_send(dir, len) && self.c.rng.chance(0.9) {
            // Stay within the receiver's window, as a sender would.
            let room = self.rcv_window(dir).saturating_sub(self.sim.in_flight(dir));
            if room == 0 {
                self.tick();
                self.sim.ack_dir(dir.reverse());
                self.flush("ACK (window full)");
                return;
            }
            len = len.min(room);
        }
        let mut what = what.to_string();
        if !self.sim.can_send(dir, len) {
            what.push_str(" (beyond the receiver's window)");
        }
        if self.fin[di(dir)] {
            what.push_str(" (after its own FIN)");
        }
        let seq = self.sim.next_seq(dir);
        self.sent[di(dir)].push((seq, len));
        self.tick();
        self.sim.data(dir, len);
        self.flush(&what);
    }

    fn step_open(&mut self) {
        let owed = [
            self.sim.ack_owed(Dir::C2s) > 0,
            self.sim.ack_owed(Dir::S2c) > 0,
        ];
        let w = |b: bool, x: u32| if b { x } else { 0 };
        // Ordinary traffic has fixed weights; perturbations are scaled by the conversation's
        // spice (tenths), so some conversations are nearly clean and some are rough.
        let p = |x: u32| x * self.spice / 10;
        let closing = self.phase == Phase::Closing;
        let weights = [
            if self.fin[0] { p(2) } else { 30 }, // 0 client data
            if self.fin[1] { p(2) } else { 30 }, // 1 server data
            w(owed[1], 24) + 3,                  // 2 client ACK
            w(owed[0], 24) + 3,                  // 3 server ACK
            5,                                   // 4 data lost after the firewall
            w(self.lost[0] || self.lost[1], 25), // 5 retransmit the lost segment
            p(3),                                // 6 old retransmission
            p(4),                                // 7 data around or beyond the window
            p(3),                                // 8 ACK of unsent data, very old ACK
            p(1),                                // 9 bogus SACK block
            p(2),                                // 10 zero window
            p(3),                                // 11 SYN with a new ISN on this tuple
            p(1),                                // 12 the old SYN again
            p(2),                                // 13 mismatched SYN/ACK
            p(5),                                // 14 RST
            p(2),                                // 15 invalid flags
            p(1),                                // 16 bad checksum
            p(2),                                // 17 ICMP error quoting this flow
            if closing { 25 } else { 8 },        // 18 FIN
            1,                                   // 19 keep-alive
            p(1),                                // 20 truncated header, bad data offset
            p(2),                                // 21 the same ACK 3-4 times
            p(2),                                // 22 the last data segment again 3-4 times
            p(2),                                // 23 data with FIN
            p(1),                                // 24 data with IP options / extension header
        ];
        let dir = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
        match self.rng().weighted(&weights) {
            0 => self.data(Dir::C2s, "client data"),
            1 => self.data(Dir::S2c, "server data"),
            2 => self.ack(Dir::C2s),
            3 => self.ack(Dir::S2c),
            4 => {
                // Only a side that has not sent its FIN has new data to lose.
                let d = if self.fin[di(dir)] {
                    dir.reverse()
                } else {
                    dir
                };
                if self.fin[di(d)] {
                    return self.ack(dir);
                }
                self.sim.lose_next(d);
                self.lost[di(d)] = true;
                self.data(d, "data (lost after the firewall)");
            }
            5 => {
                let d = if self.lost[0] { Dir::C2s } else { Dir::S2c };
                self.lost[di(d)] = false;
                self.tick();
                self.sim.retransmit(d);
                self.flush("retransmission of the lost segment");
            }
            6 => self.old_retransmission(dir),
            7 => self.window_edge(dir),
            8 => self.bad_ack(dir),
            9 => self.bogus_sack(dir),
            10 => self.zero_window(dir),
            11 => self.new_isn_syn(),
            12 => {
                let f = self.sim.craft(Dir::C2s, TcpFlags::SYN, 0);
                let f = Self::with_seq_ack(f, self.syn_isn[0], None);
                self.push(Dir::C2s, &f, "old SYN again (retransmission)");
            }
            13 => {
                self.c.say("mismatched SYN/ACK");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, 0),
                    Some(self.c.rng.next_u32()),
                    Some(self.c.rng.next_u32()),
                );
                self.push(Dir::S2c, &f, "SYN/ACK that matches nothing");
            }
            14 => self.rst(dir),
            15 => self.bad_flags(dir),
            16 => {
                let f = self
                    .sim
                    .craft(dir, TcpFlags::PSH | TcpFlags::ACK, 100)
                    .corrupt_l4_checksum();
                self.push(dir, &f, "data with a BAD CHECKSUM");
            }
            17 => {
                let q = self.sim.craft(dir, TcpFlags::PSH | TcpFlags::ACK, 100);
                self.c.icmp_error(&q, dir, "a segment of this connection");
            }
            18 => self.fin(),
            21 => {
                self.c.say("duplicate ACKs");
                for _ in 0..self.rng().range(3, 4) {
                    self.tick();
                    self.sim.ack_dir(dir);
                    self.flush("the same ACK again");
                }
            }
            22 => {
                let Some(&(seq, len)) = self.sent[di(dir)].last() else {
                    return self.data(dir, "data");
                };
                self.c.say("repeated retransmissions");
                let f = Self::with_seq_ack(
                    self.sim
                        .craft(dir, TcpFlags::PSH | TcpFlags::ACK, len as usize),
                    Some(seq),
                    None,
                );
                for _ in 0..self.rng().range(3, 4) {
                    self.push(dir, &f, "the last data segment again");
                }
            }
            23 if !self.fin[di(dir)] => {
                // Emulated through the simulator (data, then FIN) so both ends stay in step;
                // on the wire it is one segment.
                self.c.say("data with FIN");
                let seq = self.sim.next_seq(dir);
                let len = 1 + self.c.rng.below(500) as u32;
                let flags = TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK;
                let f =
                    Self::with_seq_ack(self.sim.craft(dir, flags, len as usize), Some(seq), None);
                self.sim.data(dir, len).fin(dir);
                let _ = self.sim.take_packets();
                self.fin[di(dir)] = true;
                self.phase = Phase::Closing;
                self.push(dir, &f, "data with FIN");
            }
            24 => {
                let seq = self.sim.next_seq(dir);
                let len = 1 + self.c.rng.below(500) as u32;
                let mut f = Self::with_seq_ack(
                    self.sim
                        .craft(dir, TcpFlags::PSH | TcpFlags::ACK, len as usize),
                    Some(seq),
                    None,
                );
                let what = if self.c.ends.v6() {
                    f = f.ipv6_ext(Ipv6Ext::DestOpts(Vec::new()));
                    "data behind an IPv6 destination options header"
                } else {
                    if let Some(ip) = f.ipv4_mut() {
                        ip.options = vec![1, 1, 1, 1];
                    }
                    "data with IPv4 options (NOPs)"
                };
                self.sim.data(dir, len);
                let _ = self.sim.take_packets();
                self.sent[di(dir)].push((seq, len));
                self.push(dir, &f, what);
            }
            19 | 23 => {
                let f = self.sim.craft(dir, TcpFlags::ACK, 0);
                let seq = self.sim.next_seq(dir).wrapping_sub(1);
                let f = Self::with_seq_ack(f, Some(seq), None);
                self.push(dir, &f, "keep-alive (seq - 1)");
            }
            _ => {
                let mut f = self.sim.craft(dir, TcpFlags::ACK, 0);
                let what = if self.chance(0.5) {
                    if let Some(t) = f.tcp_mut() {
                        t.data_offset = Some(if self.c.rng.chance(0.5) { 4 } else { 15 });
                    }
                    "segment with a BAD DATA OFFSET"
                } else {
                    // Cut inside the TCP header; the IP length still claims all of it.
                    let mut b = f.build();
                    let ip = if self.c.ends.v6() { 40 } else { 20 };
                    b.truncate(14 + ip + 12);
                    let t = self.c.now + self.c.gap();
                    self.c.out.push((
                        Packet {
                            ts_ns: t,
                            side: dir.side(),
                            data: b,
                        },
                        format!("{} TRUNCATED TCP header", dir_name(dir)),
                    ));
                    self.c.now = t;
                    return;
                };
                self.push(dir, &f, what);
            }
        }
        self.update_phase();
    }

    fn update_phase(&mut self) {
        if self.phase == Phase::Closing
            && self.sim.ack_owed(Dir::C2s) == 0
            && self.sim.ack_owed(Dir::S2c) == 0
            && self.fin_sent(Dir::C2s)
            && self.fin_sent(Dir::S2c)
        {
            self.phase = Phase::Closed;
        }
    }

    fn fin_sent(&self, d: Dir) -> bool {
        self.fin[di(d)]
    }

    fn ack(&mut self, dir: Dir) {
        self.tick();
        self.sim.ack_dir(dir);
        self.flush(if dir == Dir::C2s {
            "client ACK"
        } else {
            "server ACK"
        });
    }

    fn old_retransmission(&mut self, dir: Dir) {
        let Some(&(seq, len)) = self.sent[di(dir)].first() else {
            return self.data(dir, "data");
        };
        let f = Self::with_seq_ack(
            self.sim
                .craft(dir, TcpFlags::PSH | TcpFlags::ACK, len as usize),
            Some(seq),
            None,
        );
        self.push(dir, &f, "retransmission of old data");
    }

    fn window_edge(&mut self, dir: Dir) {
        let edge = self.last_ack(dir).wrapping_add(self.rcv_window(dir));
        let (seq, what) = match self.rng().weighted(&[20, 20, 20, 10, 15, 15]) {
            0 => (
                edge.wrapping_sub(1),
                "data starting 1 byte before the window edge",
            ),
            1 => (edge, "data starting at the window edge"),
            2 => (
                edge.wrapping_add(1),
                "data starting 1 byte beyond the window edge",
            ),
            3 => (
                edge.wrapping_add(2),
                "data starting 2 bytes beyond the window edge",
            ),
            4 => (
                self.sim
                    .next_seq(dir)
                    .wrapping_add(0x1000_0000 + self.c.rng.below(0x1000_0000) as u32),
                "data far beyond the window",
            ),
            _ => {
                // Behind the window: around the lower bound for a retransmission.
                let back = self.rcv_window(dir).max(1) + self.c.rng.range(0, 3) as u32;
                (
                    self.sim.next_seq(dir).wrapping_sub(back).wrapping_sub(100),
                    "data far behind (ends around the lower window bound)",
                )
            }
        };
        let len = if self.chance(0.5) { 1 } else { 100 };
        let f = Self::with_seq_ack(
            self.sim.craft(dir, TcpFlags::PSH | TcpFlags::ACK, len),
            Some(seq),
            None,
        );
        self.push(dir, &f, what);
    }

    fn bad_ack(&mut self, dir: Dir) {
        let peer_next = self.sim.next_seq(dir.reverse());
        let (ack, what) = match self.rng().weighted(&[20, 15, 15, 10, 10, 10]) {
            0 => (peer_next.wrapping_add(1), "ACK of 1 byte never sent"),
            1 => (peer_next.wrapping_add(2), "ACK of 2 bytes never sent"),
            2 => (
                peer_next.wrapping_add(1000 + self.c.rng.below(1_000_000) as u32),
                "ACK of data never sent",
            ),
            3 => (peer_next.wrapping_sub(66_000), "ACK 66000 behind"),
            4 => (peer_next.wrapping_sub(66_001), "ACK 66001 behind"),
            _ => (
                peer_next.wrapping_sub(100_000 + self.c.rng.below(1_000_000) as u32),
                "ACK far behind",
            ),
        };
        let len = if self.chance(0.5) { 0 } else { 50 };
        let flags = if len > 0 {
            TcpFlags::PSH | TcpFlags::ACK
        } else {
            TcpFlags::ACK
        };
        let f = Self::with_seq_ack(self.sim.craft(dir, flags, len), None, Some(ack));
        self.push(dir, &f, what);
    }

    fn bogus_sack(&mut self, dir: Dir) {
        let peer_next = self.sim.next_seq(dir.reverse());
        let base = self.sim.next_ack(dir);
        let (l, r, what) = if self.chance(0.5) {
            (
                peer_next,
                peer_next.wrapping_add(1000),
                "SACK block beyond anything sent",
            )
        } else {
            (
                base.wrapping_sub(200),
                base.wrapping_sub(100),
                "SACK block below the ACK",
            )
        };
        let f = self
            .sim
            .craft(dir, TcpFlags::ACK, 0)
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::Nop)
            .tcp_option(TcpOption::Sack(vec![(l, r)]));
        self.push(dir, &f, what);
    }

    fn zero_window(&mut self, dir: Dir) {
        self.c.say("zero window");
        let f = self.sim.craft(dir, TcpFlags::ACK, 0).window(0);
        self.push(dir, &f, "ACK announcing a zero window");
        let peer = dir.reverse();
        match self.rng().below(3) {
            0 => {
                // A window probe: one byte.
                let f = self.sim.craft(peer, TcpFlags::PSH | TcpFlags::ACK, 1);
                self.push(peer, &f, "window probe (1 byte into a zero window)");
            }
            1 => {
                let f = self.sim.craft(peer, TcpFlags::PSH | TcpFlags::ACK, 500);
                self.push(peer, &f, "data into a zero window");
            }
            _ => {}
        }
        if self.chance(0.7) {
            self.ack(dir);
        }
    }

    /// A SYN with a new ISN on this live tuple, and what may follow it.
    fn new_isn_syn(&mut self) {
        self.c.say("new-ISN SYN");
        let old = self.syn_isn[0].unwrap_or(self.sim.endpoint(Dir::C2s).isn);
        let isn = if self.chance(0.5) {
            old.wrapping_add(0x1000_0000 + self.c.rng.below(0x1000_0000) as u32)
        } else {
            self.c.rng.next_u32()
        };
        self.syn_isn[0] = Some(isn);
        let nack = isn.wrapping_add(1);
        let follow = self.rng().weighted(&[15, 20, 15, 20, 15, 15]);
        if follow == 1 {
            // The server had forgotten the old connection and accepts the new one.
            self.c.say("server accepts it");
            let si = self.c.rng.next_u32();
            self.restart_sim((isn, si));
            self.syn_isn[1] = Some(si);
            self.tick();
            self.sim.syn();
            self.flush("SYN with a new ISN on the live tuple");
            self.tick();
            self.sim.synack();
            self.flush("SYN/ACK for the new ISN");
            if self.chance(0.8) {
                self.tick();
                self.sim.ack();
                self.flush("ACK of the new connection");
            }
            return;
        }
        let f = Self::with_seq_ack(self.sim.craft(Dir::C2s, TcpFlags::SYN, 0), Some(isn), None);
        self.push(Dir::C2s, &f, "SYN with a new ISN on the live tuple");
        match follow {
            0 => self.c.say("then nothing"),
            2 => {
                self.c.say("challenge ACK");
                self.ack(Dir::S2c);
            }
            3 => {
                // Known difference (Linux commit bed6e04be8e6): the client's own RST that
                // acknowledges its new SYN.
                self.c.say("client RST ack=new ISN+1");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::C2s, TcpFlags::RST | TcpFlags::ACK, 0),
                    None,
                    Some(nack),
                );
                self.push(Dir::C2s, &f, "client RST/ACK, ack = its new SYN's ISN + 1");
                self.phase = Phase::Dead;
            }
            4 => {
                self.c.say("server RST ack=new ISN+1");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0),
                    Some(self.sim.next_seq(Dir::S2c)),
                    Some(nack),
                );
                self.push(
                    Dir::S2c,
                    &f,
                    "server RST/ACK answering the new SYN (ack = ISN + 1)",
                );
                self.phase = Phase::Dead;
            }
            _ => {
                self.c.say("server RST with other seq");
                let f = Self::with_seq_ack(
                    self.sim.craft(Dir::S2c, TcpFlags::RST | TcpFlags::ACK, 0),
                    Some(self.c.rng.next_u32()),
                    Some(nack),
                );
                self.push(
                    Dir::S2c,
                    &f,
                    "server RST/ACK, ack = new ISN + 1, random seq",
                );
                self.phase = Phase::Dead;
            }
        }
    }

    fn rst(&mut self, dir: Dir) {
        let next = self.sim.next_seq(dir);
        let acked = self.last_ack(dir);
        let (seq, sdesc) = match self.rng().weighted(&[35, 15, 15, 10, 10, 15]) {
            0 => (next, "exact seq"),
            1 => (acked, "seq = last ACK from the peer"),
            2 => (
                next.wrapping_add(1 + self.c.rng.below(1000) as u32),
                "inexact in-window seq",
            ),
            3 => (
                next.wrapping_add(0x2000_0000 + self.c.rng.below(0x2000_0000) as u32),
                "out-of-window seq",
            ),
            4 => (
                next.wrapping_sub(1 + self.c.rng.below(200_000) as u32),
                "old seq",
            ),
            _ => (next.wrapping_sub(1), "seq - 1"),
        };
        let noted = self.syn_isn[di(dir.reverse())].or(self.syn_isn[di(dir)]);
        let (flags, ack, adesc) = match self.rng().weighted(&[50, 20, 15, 15]) {
            0 => (TcpFlags::RST | TcpFlags::ACK, None, "ack ok"),
            1 => (TcpFlags::RST, Some(0), "no ACK flag"),
            2 => (
                TcpFlags::RST | TcpFlags::ACK,
                noted.map(|i| i.wrapping_add(1)),
                "ack = noted SYN ISN + 1",
            ),
            _ => (
                TcpFlags::RST | TcpFlags::ACK,
                Some(self.c.rng.next_u32()),
                "random ack",
            ),
        };
        let who = if dir == Dir::C2s { "client" } else { "server" };
        self.c.say(format!("{who} RST"));
        let payload = if self.chance(0.05) { 20 } else { 0 };
        let f = Self::with_seq_ack(self.sim.craft(dir, flags, payload), Some(seq), ack);
        let extra = if payload > 0 { " (with payload)" } else { "" };
        self.push(dir, &f, &format!("{who} RST, {sdesc}, {adesc}{extra}"));
        if sdesc == "exact seq" {
            self.phase = Phase::Dead;
        }
    }

    fn bad_flags(&mut self, dir: Dir) {
        const SETS: [(u8, &str); 10] = [
            (0x03, "SYN|FIN"),
            (0x06, "SYN|RST"),
            (0x00, "no flags"),
            (0x29, "FIN|PSH|URG (xmas)"),
            (0x01, "FIN without ACK"),
            (0x13, "SYN|FIN|ACK"),
            (0x05, "RST|FIN"),
            (0x3f, "all six flags"),
            (0x08, "PSH only"),
            (0x12 | 0x40 | 0x80, "SYN|ACK|ECE|CWR"),
        ];
        let (bits, name) = SETS[self.c.rng.below(SETS.len() as u64) as usize];
        let f = self.sim.craft(dir, TcpFlags(bits), 0);
        self.push(dir, &f, &format!("segment with flags {name}"));
    }

    fn fin(&mut self) {
        let d = if self.chance(0.6) { Dir::C2s } else { Dir::S2c };
        let d = if self.fin_sent(d) { d.reverse() } else { d };
        if self.fin_sent(d) {
            // Both sent: retransmit one.
            let seq = self.sim.next_seq(d).wrapping_sub(1);
            let f = Self::with_seq_ack(
                self.sim.craft(d, TcpFlags::FIN | TcpFlags::ACK, 0),
                Some(seq),
                None,
            );
            self.push(d, &f, "FIN retransmission");
            return;
        }
        if self.phase == Phase::Open {
            self.c.say(if d == Dir::C2s {
                "client FIN"
            } else {
                "server FIN"
            });
        }
        self.tick();
        self.sim.fin(d);
        self.flush("FIN");
        self.fin[di(d)] = true;
        self.phase = Phase::Closing;
    }

    /// After a close or an abort: maybe reuse the tuple, or send stray segments. Returns
    /// false to end the conversation.
    fn after_end(&mut self) -> bool {
        let reuse = if self.reuses < 2 { 30 } else { 0 };
        match self.rng().weighted(&[40, 12, 8, 6, reuse]) {
            0 => false,
            1 => {
                let d = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
                self.data(d, "data after the end");
                true
            }
            2 => {
                let d = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
                self.ack(d);
                true
            }
            3 => {
                let d = if self.chance(0.5) { Dir::C2s } else { Dir::S2c };
                self.rst(d);
                self.phase = Phase::Dead;
                true
            }
            _ => {
                self.reuses += 1;
                self.c.say("tuple reused");
                let old = self.syn_isn[0].unwrap_or(0);
                let ci = if self.chance(0.7) {
                    old.wrapping_add(0x100_0000 + self.c.rng.below(0x1000_0000) as u32)
                } else {
                    self.c.rng.next_u32()
                };
                let si = self.c.rng.next_u32();
                if self.chance(0.3) {
                    self.c.now += self.c.rng.range(100, 500) * MS;
                }
                self.restart_sim((ci, si));
                self.handshake();
                true
            }
        }
    }
}

/// A connection on `ends` with random options and windows.
fn fresh_sim(rng: &mut Rng, ends: Ends, isn: (u32, u32), now: u64, rtt: u64) -> TcpSim {
    let opts = |rng: &mut Rng| {
        let ws = match rng.weighted(&[25, 60, 10, 5]) {
            0 => None,
            1 => Some(rng.range(0, 9) as u8),
            2 => Some(14),
            _ => Some(15 + rng.below(3) as u8),
        };
        let window = match rng.weighted(&[40, 20, 15, 15, 10]) {
            0 => 64_240,
            1 => 502 << 7,
            2 => 8_192,
            3 => rng.range(1_000, 1 << 20) as u32,
            _ => 1 << 20,
        };
        (
            ws,
            rng.chance(0.7),
            rng.chance(0.4),
            window,
            *[64_240u16, 65_535, 29_200, 14_600, 1_024]
                .get(rng.below(5) as usize)
                .unwrap_or(&64_240),
            *[1460u16, 1440, 1400, 536, 9000]
                .get(rng.below(5) as usize)
                .unwrap_or(&1460),
        )
    };
    let c = opts(rng);
    let s = opts(rng);
    let ids = (rng.next_u32() as u16, rng.next_u32() as u16);
    TcpSim::new(ends.client, ends.server)
        .isn(isn.0, isn.1)
        .client_config(|e| {
            (
                e.wscale,
                e.sack,
                e.timestamps,
                e.window,
                e.syn_window,
                e.mss,
            ) = c;
            e.ip_id = ids.0;
        })
        .server_config(|e| {
            (
                e.wscale,
                e.sack,
                e.timestamps,
                e.window,
                e.syn_window,
                e.mss,
            ) = s;
            e.ip_id = ids.1;
        })
        .rtt(rtt)
        .start_at(now)
}
