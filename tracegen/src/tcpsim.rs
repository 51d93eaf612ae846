//! A TCP connection simulator: the two endpoints of one connection, seen from a firewall
//! between them.
//!
//! Each call emits the segment a real stack would send next (handshake, data, pure ACK, FIN,
//! RST, retransmission) with sequence and acknowledgment numbers, windows and options kept
//! consistent, and stamps it with the simulated clock and an ingress [`Side`] (client =
//! inside, server = outside). Scenario tests build correct sequences with it and then break
//! exactly the one thing they test, with [`TcpSim::craft`] and [`TcpSim::push`].
//!
//! Invariants:
//! - every ACK a side sends acknowledges exactly the bytes (and SYN/FIN) it has received in
//!   order; out-of-order data is reported in SACK blocks when SACK was negotiated;
//! - window scaling, SACK and timestamps are in effect only when both SYN and SYN/ACK offered
//!   them, and SYN segments carry unscaled windows, as RFC 7323 requires;
//! - the simulator does not refuse segments beyond the peer's window: scenario tests need
//!   them. [`TcpSim::can_send`] tells whether a segment would fit.
//!
//! The default endpoints, ISNs, IP ids, windows, options and 3 ms steps are those of the
//! conformance traces, so `TcpSim::default_v4().handshake()` reproduces their bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::frame::{Frame, Ip, Ipv4, Ipv6, Mac, TcpFlags, TcpOption, VlanTag, macs};
use crate::{DEFAULT_START_NS, Packet, Side};

/// The direction of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client to server, arriving on the inside.
    C2s,
    /// Server to client, arriving on the outside.
    S2c,
}

impl Dir {
    /// The ingress side of a segment in this direction.
    pub fn side(self) -> Side {
        match self {
            Dir::C2s => Side::Inside,
            Dir::S2c => Side::Outside,
        }
    }

    /// The opposite direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::C2s => Dir::S2c,
            Dir::S2c => Dir::C2s,
        }
    }
}

/// Configuration of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address.
    pub addr: IpAddr,
    /// TCP port.
    pub port: u16,
    /// The endpoint's own MAC.
    pub mac: Mac,
    /// The MAC of the firewall port it talks to.
    pub router_mac: Mac,
    /// Initial sequence number.
    pub isn: u32,
    /// Window scale offered in its SYN (or SYN/ACK), if any.
    pub wscale: Option<u8>,
    /// MSS option value.
    pub mss: u16,
    /// Whether it offers SACK.
    pub sack: bool,
    /// Whether it offers timestamps.
    pub timestamps: bool,
    /// The window field of its SYN or SYN/ACK (never scaled).
    pub syn_window: u16,
    /// Its receive window in bytes after the handshake.
    pub window: u32,
    /// The IPv4 identification of its first packet; incremented per packet.
    pub ip_id: u16,
    /// Offset added to its millisecond clock for TSval.
    pub ts_base: u32,
    /// The byte its generated payloads are filled with.
    pub fill: u8,
}

impl Endpoint {
    fn client(addr: IpAddr, port: u16) -> Self {
        Endpoint {
            addr,
            port,
            mac: macs::CLIENT,
            router_mac: macs::ROUTER_INSIDE,
            isn: 1_000_000,
            wscale: Some(7),
            // The conformance traces use 1460 for IPv6 too.
            mss: 1460,
            sack: true,
            timestamps: false,
            syn_window: 64240,
            window: 502 << 7,
            ip_id: 0x1001,
            ts_base: 100_000,
            fill: b'Q',
        }
    }

    fn server(addr: IpAddr, port: u16) -> Self {
        Endpoint {
            mac: macs::SERVER,
            router_mac: macs::ROUTER_OUTSIDE,
            isn: 5_000_000,
            ip_id: 0x5001,
            ts_base: 900_000,
            fill: b'R',
            ..Endpoint::client(addr, port)
        }
    }
}

/// The dynamic state of one endpoint.
#[derive(Debug, Clone, Default)]
struct Half {
    /// Next sequence number to send.
    snd_nxt: u32,
    /// Highest acknowledgment received from the peer.
    snd_una: u32,
    /// Next in-order sequence number expected from the peer: what this side acknowledges.
    rcv_nxt: u32,
    /// Whether `rcv_nxt` is known (the peer's SYN was received).
    rcv_init: bool,
    /// The last acknowledgment number this side sent.
    last_ack_sent: u32,
    /// Out-of-order ranges received from the peer, most recent first.
    ooo: Vec<(u32, u32)>,
    /// Segments this side sent that the peer never received: `(seq, len)`.
    lost: Vec<(u32, u32)>,
    /// Drop the next data segment after the firewall saw it.
    lose_next: bool,
    /// The peer's last advertised window in bytes (scaled).
    peer_window: u32,
    /// The last TSval received from the peer.
    ts_recent: u32,
    /// The next IP identification.
    ip_id: u16,
    /// Whether this side has sent its SYN (or SYN/ACK).
    syn_sent: bool,
    /// Whether this side has sent a FIN.
    fin_sent: bool,
}

/// The simulator for one connection. See the module documentation.
#[derive(Debug, Clone)]
pub struct TcpSim {
    client: Endpoint,
    server: Endpoint,
    c: Half,
    s: Half,
    vlans: Vec<VlanTag>,
    /// Window scaling, SACK and timestamps in effect (decided by the SYN/ACK).
    wscale_on: bool,
    sack_on: bool,
    ts_on: bool,
    now_ns: u64,
    step_ns: u64,
    out: Vec<Packet>,
}

impl TcpSim {
    /// A connection between `client` and `server` with the conformance-trace defaults.
    /// Mixed address families are made consistent by mapping the IPv4 one into IPv6.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        let (ca, sa) = match (client.ip(), server.ip()) {
            (IpAddr::V4(c), IpAddr::V6(s)) => (IpAddr::V6(c.to_ipv6_mapped()), IpAddr::V6(s)),
            (IpAddr::V6(c), IpAddr::V4(s)) => (IpAddr::V6(c), IpAddr::V6(s.to_ipv6_mapped())),
            (c, s) => (c, s),
        };
        let mut sim = TcpSim {
            client: Endpoint::client(ca, client.port()),
            server: Endpoint::server(sa, server.port()),
            c: Half::default(),
            s: Half::default(),
            vlans: Vec::new(),
            wscale_on: false,
            sack_on: false,
            ts_on: false,
            now_ns: DEFAULT_START_NS,
            step_ns: 3_000_000,
            out: Vec::new(),
        };
        sim.reset_state();
        sim
    }

    /// The conformance traces' IPv4 connection: 10.0.1.2:40000 -> 10.0.2.2:80.
    pub fn default_v4() -> Self {
        TcpSim::new(
            SocketAddr::new(Ipv4Addr::new(10, 0, 1, 2).into(), 40000),
            SocketAddr::new(Ipv4Addr::new(10, 0, 2, 2).into(), 80),
        )
    }

    /// The conformance traces' IPv6 connection: `[fd00:1::2]:40200` -> `[fd00:2::2]:80`.
    pub fn default_v6() -> Self {
        TcpSim::new(
            SocketAddr::new(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2).into(), 40200),
            SocketAddr::new(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2).into(), 80),
        )
    }

    fn reset_state(&mut self) {
        self.c = Half {
            snd_nxt: self.client.isn,
            snd_una: self.client.isn,
            ip_id: self.client.ip_id,
            peer_window: u32::from(self.server.syn_window),
            ..Half::default()
        };
        self.s = Half {
            snd_nxt: self.server.isn,
            snd_una: self.server.isn,
            ip_id: self.server.ip_id,
            peer_window: u32::from(self.client.syn_window),
            ..Half::default()
        };
    }

    // ----- configuration (call before the first segment) -----

    /// Changes the client endpoint's configuration (ISN, options, MACs...).
    pub fn client_config(mut self, f: impl FnOnce(&mut Endpoint)) -> Self {
        f(&mut self.client);
        self.reset_state();
        self
    }

    /// Changes the server endpoint's configuration.
    pub fn server_config(mut self, f: impl FnOnce(&mut Endpoint)) -> Self {
        f(&mut self.server);
        self.reset_state();
        self
    }

    /// Sets both initial sequence numbers.
    pub fn isn(self, client: u32, server: u32) -> Self {
        self.client_config(|c| c.isn = client)
            .server_config(|s| s.isn = server)
    }

    /// Sets both window scale offers (`None`: no option).
    pub fn wscale(self, client: Option<u8>, server: Option<u8>) -> Self {
        self.client_config(|c| c.wscale = client)
            .server_config(|s| s.wscale = server)
    }

    /// Whether both ends offer SACK.
    pub fn sack(self, on: bool) -> Self {
        self.client_config(|c| c.sack = on)
            .server_config(|s| s.sack = on)
    }

    /// Whether both ends offer timestamps.
    pub fn timestamps(self, on: bool) -> Self {
        self.client_config(|c| c.timestamps = on)
            .server_config(|s| s.timestamps = on)
    }

    /// Sets the round-trip time: each segment advances the clock by half of it, so an answer
    /// comes one RTT after the segment before the one it answers. Default 6 ms.
    pub fn rtt(mut self, rtt_ns: u64) -> Self {
        self.step_ns = rtt_ns / 2;
        self
    }

    /// Sets the clock (nanoseconds since the epoch) for the next segment.
    pub fn start_at(mut self, ns: u64) -> Self {
        self.now_ns = ns;
        self
    }

    /// VLAN tags carried by every frame, outermost first.
    pub fn vlans(mut self, tags: Vec<VlanTag>) -> Self {
        self.vlans = tags;
        self
    }

    /// Skips the handshake: both sides are ESTABLISHED with the negotiated options that a
    /// handshake with the current configuration would give, and nothing is emitted. For
    /// mid-stream pickup traffic.
    pub fn established(mut self) -> Self {
        self.negotiate();
        let (ci, si) = (
            self.client.isn.wrapping_add(1),
            self.server.isn.wrapping_add(1),
        );
        for (h, own, peer) in [(&mut self.c, ci, si), (&mut self.s, si, ci)] {
            h.snd_nxt = own;
            h.snd_una = own;
            h.rcv_nxt = peer;
            h.rcv_init = true;
            h.last_ack_sent = peer;
            h.syn_sent = true;
        }
        self.c.peer_window = self.window_bytes(Dir::S2c);
        self.s.peer_window = self.window_bytes(Dir::C2s);
        self
    }

    fn negotiate(&mut self) {
        self.wscale_on = self.client.wscale.is_some() && self.server.wscale.is_some();
        self.sack_on = self.client.sack && self.server.sack;
        self.ts_on = self.client.timestamps && self.server.timestamps;
    }

    // ----- clock -----

    /// The time the next segment will carry.
    pub fn now(&self) -> u64 {
        self.now_ns
    }

    /// Sets the time of the next segment.
    pub fn at(&mut self, ns: u64) -> &mut Self {
        self.now_ns = ns;
        self
    }

    /// Advances the clock without emitting anything (idle time).
    pub fn wait(&mut self, ns: u64) -> &mut Self {
        self.now_ns = self.now_ns.saturating_add(ns);
        self
    }

    // ----- queries -----

    /// The endpoint sending in `dir`.
    pub fn endpoint(&self, dir: Dir) -> &Endpoint {
        match dir {
            Dir::C2s => &self.client,
            Dir::S2c => &self.server,
        }
    }

    fn half(&self, dir: Dir) -> &Half {
        match dir {
            Dir::C2s => &self.c,
            Dir::S2c => &self.s,
        }
    }

    fn halves(&mut self, dir: Dir) -> (&mut Half, &mut Half) {
        match dir {
            Dir::C2s => (&mut self.c, &mut self.s),
            Dir::S2c => (&mut self.s, &mut self.c),
        }
    }

    /// The next sequence number the sender in `dir` will use.
    pub fn next_seq(&self, dir: Dir) -> u32 {
        self.half(dir).snd_nxt
    }

    /// The acknowledgment number the sender in `dir` would send now.
    pub fn next_ack(&self, dir: Dir) -> u32 {
        self.half(dir).rcv_nxt
    }

    /// Bytes sent in `dir` and not yet acknowledged by the receiver.
    pub fn in_flight(&self, dir: Dir) -> u32 {
        let h = self.half(dir);
        h.snd_nxt.wrapping_sub(h.snd_una)
    }

    /// Bytes received from `dir`'s sender that the receiver has not acknowledged yet.
    pub fn ack_owed(&self, dir: Dir) -> u32 {
        let r = self.half(dir.reverse());
        r.rcv_nxt.wrapping_sub(r.last_ack_sent)
    }

    /// Whether `len` more bytes in `dir` fit in the receiver's last advertised window.
    pub fn can_send(&self, dir: Dir, len: u32) -> bool {
        let h = self.half(dir);
        u64::from(self.in_flight(dir)) + u64::from(len) <= u64::from(h.peer_window)
    }

    /// Whether window scaling, SACK and timestamps are in effect.
    pub fn negotiated(&self) -> (bool, bool, bool) {
        (self.wscale_on, self.sack_on, self.ts_on)
    }

    /// The receive window the sender in `dir` advertises, in bytes.
    fn window_bytes(&self, dir: Dir) -> u32 {
        let e = self.endpoint(dir);
        if self.wscale_on {
            let shift = e.wscale.unwrap_or(0).min(14);
            (e.window >> shift).min(0xffff) << shift
        } else {
            e.window.min(0xffff)
        }
    }

    fn window_field(&self, dir: Dir, syn: bool) -> u16 {
        let e = self.endpoint(dir);
        if syn {
            return e.syn_window;
        }
        let w = if self.wscale_on {
            e.window >> e.wscale.unwrap_or(0).min(14)
        } else {
            e.window
        };
        u16::try_from(w).unwrap_or(u16::MAX)
    }

    fn tsval(&self, dir: Dir) -> u32 {
        let ms = (self.now_ns / 1_000_000) as u32;
        self.endpoint(dir).ts_base.wrapping_add(ms)
    }

    // ----- segments -----

    /// A frame in `dir` with the current addressing, sequence, acknowledgment (if `flags`
    /// has ACK), window and per-segment options, and `payload_len` bytes of the sender's fill
    /// byte. Changes nothing: modify it and emit it with [`TcpSim::push`].
    pub fn craft(&self, dir: Dir, flags: TcpFlags, payload_len: usize) -> Frame {
        let h = self.half(dir);
        let seq = if flags.contains(TcpFlags::SYN) {
            self.endpoint(dir).isn
        } else {
            h.snd_nxt
        };
        let ack = if flags.contains(TcpFlags::ACK) {
            h.rcv_nxt
        } else {
            0
        };
        let mut f = self
            .base_frame(dir)
            .seq_ack(seq, ack)
            .flags(flags)
            .ip_id(h.ip_id);
        f = f.window(self.window_field(dir, flags.contains(TcpFlags::SYN)));
        if let Some(t) = f.tcp_mut() {
            t.options = self.segment_options(dir, flags);
        }
        f.payload = vec![self.endpoint(dir).fill; payload_len];
        f
    }

    fn base_frame(&self, dir: Dir) -> Frame {
        let (from, to) = match dir {
            Dir::C2s => (&self.client, &self.server),
            Dir::S2c => (&self.server, &self.client),
        };
        let ip = match (from.addr, to.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ip::V4(Ipv4::new(a, b)),
            (a, b) => Ip::V6(Ipv6::new(as_v6(a), as_v6(b))),
        };
        let mut f = Frame::with_ip(ip)
            .macs(from.mac, from.router_mac)
            .tcp(from.port, to.port);
        f.vlans.clone_from(&self.vlans);
        f
    }

    fn segment_options(&self, dir: Dir, flags: TcpFlags) -> Vec<TcpOption> {
        let e = self.endpoint(dir);
        let peer = self.endpoint(dir.reverse());
        let h = self.half(dir);
        let mut o = Vec::new();
        if flags.contains(TcpFlags::SYN) {
            // The SYN/ACK offers only what the SYN offered, as real stacks do.
            let synack = flags.contains(TcpFlags::ACK);
            let ws = e.wscale.filter(|_| !synack || peer.wscale.is_some());
            let sack = e.sack && (!synack || peer.sack);
            let ts = e.timestamps && (!synack || peer.timestamps);
            o.push(TcpOption::Mss(e.mss));
            if ts {
                let ecr = if synack { h.ts_recent } else { 0 };
                if sack {
                    o.push(TcpOption::SackPermitted);
                } else {
                    o.extend([TcpOption::Nop, TcpOption::Nop]);
                }
                o.push(TcpOption::Timestamps(self.tsval(dir), ecr));
                if let Some(s) = ws {
                    o.extend([TcpOption::Nop, TcpOption::WindowScale(s)]);
                }
            } else {
                if let Some(s) = ws {
                    o.extend([TcpOption::Nop, TcpOption::WindowScale(s)]);
                }
                if sack {
                    o.extend([TcpOption::SackPermitted, TcpOption::Nop, TcpOption::Nop]);
                }
            }
            return o;
        }
        if flags.contains(TcpFlags::RST) {
            return o;
        }
        if self.ts_on {
            o.extend([TcpOption::Nop, TcpOption::Nop]);
            o.push(TcpOption::Timestamps(self.tsval(dir), h.ts_recent));
        }
        if self.sack_on && flags.contains(TcpFlags::ACK) && !h.ooo.is_empty() {
            // 40 option bytes: 4 blocks fit without timestamps, 3 with them.
            let max = if self.ts_on { 3 } else { 4 };
            let blocks: Vec<(u32, u32)> = h.ooo.iter().take(max).copied().collect();
            o.extend([TcpOption::Nop, TcpOption::Nop, TcpOption::Sack(blocks)]);
        }
        o
    }

    /// Stamps `frame` with the clock and the side of `dir`, records it, and advances the
    /// clock. Changes no TCP state: for segments crafted to be wrong.
    pub fn push(&mut self, dir: Dir, frame: &Frame) -> &mut Self {
        self.emit(dir, frame);
        self
    }

    fn emit(&mut self, dir: Dir, frame: &Frame) {
        let h = match dir {
            Dir::C2s => &mut self.c,
            Dir::S2c => &mut self.s,
        };
        h.ip_id = h.ip_id.wrapping_add(1);
        self.out.push(Packet {
            ts_ns: self.now_ns,
            side: dir.side(),
            data: frame.build(),
        });
        self.now_ns = self.now_ns.saturating_add(self.step_ns);
    }

    /// Emits a segment in `dir` carrying `payload` and updates both ends as if it was sent
    /// and (unless lost) received.
    fn send(&mut self, dir: Dir, flags: TcpFlags, payload: Option<&[u8]>, len: u32) {
        let mut f = self.craft(dir, flags, 0);
        f.payload = match payload {
            Some(p) => p.to_vec(),
            None => vec![self.endpoint(dir).fill; len as usize],
        };
        let syn = flags.contains(TcpFlags::SYN);
        let fin = flags.contains(TcpFlags::FIN);
        let rst = flags.contains(TcpFlags::RST);
        let seq = f.tcp_mut().map_or(0, |t| t.seq);
        let ack_sent = f.tcp_mut().map_or(0, |t| t.ack);
        let tsval = self.tsval(dir);
        if syn && flags.contains(TcpFlags::ACK) {
            self.negotiate();
        }
        let window = if syn {
            u32::from(self.endpoint(dir).syn_window)
        } else {
            self.window_bytes(dir)
        };
        self.emit(dir, &f);

        let (me, peer) = self.halves(dir);
        let seg_len = len
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(fin));
        if syn {
            me.syn_sent = true;
        }
        if fin {
            me.fin_sent = true;
        }
        let end = seq.wrapping_add(seg_len);
        if after(end, me.snd_nxt) {
            me.snd_nxt = end;
        }
        if flags.contains(TcpFlags::ACK) {
            me.last_ack_sent = ack_sent;
        }
        if rst {
            return;
        }
        let lost = me.lose_next && len > 0;
        if lost {
            me.lose_next = false;
            me.lost.push((seq, len));
            return;
        }
        // The receiver's view.
        peer.ts_recent = tsval;
        peer.peer_window = window;
        if flags.contains(TcpFlags::ACK) && after(ack_sent, peer.snd_una) {
            peer.snd_una = ack_sent;
        }
        if syn {
            peer.rcv_nxt = seq.wrapping_add(1);
            peer.rcv_init = true;
            return;
        }
        receive(peer, seq, seg_len);
    }

    // ----- the segments a stack sends -----

    /// The client's SYN (a retransmission if called again).
    pub fn syn(&mut self) -> &mut Self {
        self.send(Dir::C2s, TcpFlags::SYN, None, 0);
        self
    }

    /// The server's SYN/ACK.
    pub fn synack(&mut self) -> &mut Self {
        self.send(Dir::S2c, TcpFlags::SYN | TcpFlags::ACK, None, 0);
        self
    }

    /// The client's handshake-completing ACK (any pure ACK from the client).
    pub fn ack(&mut self) -> &mut Self {
        self.ack_dir(Dir::C2s)
    }

    /// SYN, SYN/ACK, ACK.
    pub fn handshake(&mut self) -> &mut Self {
        self.syn().synack().ack()
    }

    /// A pure ACK in `dir` (with SACK blocks if there are holes and SACK is on).
    pub fn ack_dir(&mut self, dir: Dir) -> &mut Self {
        self.send(dir, TcpFlags::ACK, None, 0);
        self
    }

    /// A pure ACK from the client.
    pub fn ack_c2s(&mut self) -> &mut Self {
        self.ack_dir(Dir::C2s)
    }

    /// A pure ACK from the server.
    pub fn ack_s2c(&mut self) -> &mut Self {
        self.ack_dir(Dir::S2c)
    }

    /// A PSH/ACK data segment of `len` fill bytes in `dir`.
    pub fn data(&mut self, dir: Dir, len: u32) -> &mut Self {
        self.send(dir, TcpFlags::PSH | TcpFlags::ACK, None, len);
        self
    }

    /// A PSH/ACK data segment with these bytes in `dir`.
    pub fn data_bytes(&mut self, dir: Dir, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.send(dir, TcpFlags::PSH | TcpFlags::ACK, Some(bytes), len);
        self
    }

    /// Client data of `len` bytes.
    pub fn data_c2s(&mut self, len: u32) -> &mut Self {
        self.data(Dir::C2s, len)
    }

    /// Server data of `len` bytes.
    pub fn data_s2c(&mut self, len: u32) -> &mut Self {
        self.data(Dir::S2c, len)
    }

    /// Request, ACK, response, ACK: the exchange of the conformance traces.
    pub fn exchange(&mut self, request: u32, response: u32) -> &mut Self {
        self.data_c2s(request)
            .ack_s2c()
            .data_s2c(response)
            .ack_c2s()
    }

    /// A FIN/ACK in `dir`.
    pub fn fin(&mut self, dir: Dir) -> &mut Self {
        self.send(dir, TcpFlags::FIN | TcpFlags::ACK, None, 0);
        self
    }

    /// The client's FIN/ACK.
    pub fn fin_c2s(&mut self) -> &mut Self {
        self.fin(Dir::C2s)
    }

    /// The server's FIN/ACK.
    pub fn fin_s2c(&mut self) -> &mut Self {
        self.fin(Dir::S2c)
    }

    /// Client FIN, server FIN, client ACK.
    pub fn close(&mut self) -> &mut Self {
        self.fin_c2s().fin_s2c().ack_c2s()
    }

    /// Server FIN, client FIN, server ACK.
    pub fn close_server_first(&mut self) -> &mut Self {
        self.fin_s2c().fin_c2s().ack_s2c()
    }

    /// An RST/ACK in `dir` at the sender's next sequence number (an abort).
    pub fn rst(&mut self, dir: Dir) -> &mut Self {
        self.send(dir, TcpFlags::RST | TcpFlags::ACK, None, 0);
        self
    }

    /// A bare RST (acknowledgment 0) in `dir`, as a closed port or an aborting server sends.
    pub fn rst_bare(&mut self, dir: Dir) -> &mut Self {
        self.send(dir, TcpFlags::RST, None, 0);
        self
    }

    /// The client's RST/ACK.
    pub fn rst_c2s(&mut self) -> &mut Self {
        self.rst(Dir::C2s)
    }

    /// The server's RST/ACK.
    pub fn rst_s2c(&mut self) -> &mut Self {
        self.rst(Dir::S2c)
    }

    /// The next data segment in `dir` is seen by the firewall but lost after it: the
    /// receiver does not get it, acknowledges only up to the hole, and reports later data in
    /// SACK blocks until [`TcpSim::retransmit`].
    pub fn lose_next(&mut self, dir: Dir) -> &mut Self {
        self.halves(dir).0.lose_next = true;
        self
    }

    /// Retransmits the oldest lost segment in `dir` (nothing if none was lost).
    pub fn retransmit(&mut self, dir: Dir) -> &mut Self {
        let me = self.halves(dir).0;
        if me.lost.is_empty() {
            return self;
        }
        let (seq, len) = me.lost.remove(0);
        let mut f = self.craft(dir, TcpFlags::PSH | TcpFlags::ACK, len as usize);
        if let Some(t) = f.tcp_mut() {
            t.seq = seq;
        }
        let tsval = self.tsval(dir);
        self.emit(dir, &f);
        let (_, peer) = self.halves(dir);
        peer.ts_recent = tsval;
        receive(peer, seq, len);
        self
    }

    // ----- output -----

    /// The packets emitted so far.
    pub fn packets(&self) -> &[Packet] {
        &self.out
    }

    /// Takes the packets emitted so far.
    pub fn take_packets(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.out)
    }
}

fn as_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// `a` is after `b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The receiver takes `len` sequence numbers at `seq`: in order, it advances and absorbs any
/// out-of-order ranges that became contiguous; ahead, it records a SACK range.
fn receive(r: &mut Half, seq: u32, len: u32) {
    if len == 0 {
        return;
    }
    let end = seq.wrapping_add(len);
    if !after(seq, r.rcv_nxt) {
        if after(end, r.rcv_nxt) {
            r.rcv_nxt = end;
        }
        // Absorb every out-of-order block that now starts at or below rcv_nxt.
        loop {
            let nxt = r.rcv_nxt;
            let Some(i) = r.ooo.iter().position(|&(l, _)| !after(l, nxt)) else {
                break;
            };
            let (_, re) = r.ooo.remove(i);
            if after(re, r.rcv_nxt) {
                r.rcv_nxt = re;
            }
        }
    } else {
        // Merge with an adjacent or overlapping block; the newest block goes first.
        let mut l = seq;
        let mut re = end;
        r.ooo.retain(|&(bl, br)| {
            let touches = !after(bl, re) && !after(l, br);
            if touches {
                if after(l, bl) {
                    l = bl;
                }
                if after(br, re) {
                    re = br;
                }
            }
            !touches
        });
        r.ooo.insert(0, (l, re));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pulls (flags, seq, ack, payload len, sack blocks) out of an untagged IPv4 TCP frame.
    fn tcp_fields(p: &Packet) -> (u8, u32, u32, usize, Vec<(u32, u32)>) {
        let b = &p.data;
        let ihl = usize::from(b[14] & 0xf) * 4;
        let t = &b[14 + ihl..];
        let doff = usize::from(t[12] >> 4) * 4;
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        let mut sacks = Vec::new();
        let mut i = 20;
        while i < doff {
            match t[i] {
                0 => break,
                1 => i += 1,
                k => {
                    let l = usize::from(t[i + 1]);
                    if k == 5 {
                        for blk in t[i + 2..i + l].chunks(8) {
                            sacks.push((
                                u32::from_be_bytes([blk[0], blk[1], blk[2], blk[3]]),
                                u32::from_be_bytes([blk[4], blk[5], blk[6], blk[7]]),
                            ));
                        }
                    }
                    i += l.max(2);
                }
            }
        }
        (t[13], seq, ack, t.len() - doff, sacks)
    }

    #[test]
    fn handshake_exchange_close_numbers() {
        let mut sim = TcpSim::default_v4();
        sim.handshake().exchange(100, 500).close();
        let f: Vec<_> = sim.packets().iter().map(tcp_fields).collect();
        let want = [
            (0x02, 1_000_000, 0, 0),
            (0x12, 5_000_000, 1_000_001, 0),
            (0x10, 1_000_001, 5_000_001, 0),
            (0x18, 1_000_001, 5_000_001, 100),
            (0x10, 5_000_001, 1_000_101, 0),
            (0x18, 5_000_001, 1_000_101, 500),
            (0x10, 1_000_101, 5_000_501, 0),
            (0x11, 1_000_101, 5_000_501, 0),
            (0x11, 5_000_501, 1_000_102, 0),
            (0x10, 1_000_102, 5_000_502, 0),
        ];
        for (i, (got, w)) in f.iter().zip(want).enumerate() {
            assert_eq!((got.0, got.1, got.2, got.3), w, "packet {i}");
        }
        let sides: Vec<Side> = sim.packets().iter().map(|p| p.side).collect();
        assert_eq!(sides[0], Side::Inside);
        assert_eq!(sides[1], Side::Outside);
        let ts: Vec<u64> = sim
            .packets()
            .iter()
            .map(|p| p.ts_ns - DEFAULT_START_NS)
            .collect();
        assert_eq!(ts[..3], [0, 3_000_000, 6_000_000]);
    }

    /// Every ACK acknowledges exactly what its sender had received in order; the model is
    /// rebuilt from the packets themselves, independently of the simulator's bookkeeping.
    #[test]
    fn acks_acknowledge_exactly_the_bytes_sent() {
        let mut sim = TcpSim::default_v4().isn(0xffff_ff00, 0x7fff_fff0); // wraps
        sim.handshake();
        for i in 0..50u32 {
            sim.data_c2s(1 + i * 37 % 1400);
            if i % 3 == 0 {
                sim.ack_s2c();
            }
            sim.data_s2c(i * 91 % 1460);
            if i % 2 == 0 {
                sim.ack_c2s();
            }
        }
        sim.close();
        let mut sent = [0u32; 2]; // next seq expected per side (index 0 = client)
        for p in sim.packets() {
            let (flags, seq, ack, len, _) = tcp_fields(p);
            let me = usize::from(p.side == Side::Outside);
            let syn = u32::from(flags & 0x02 != 0);
            let fin = u32::from(flags & 0x01 != 0);
            if syn == 1 && flags & 0x10 == 0 {
                sent[0] = seq.wrapping_add(1);
                continue;
            }
            if syn == 1 {
                sent[1] = seq.wrapping_add(1);
            }
            if syn == 0 {
                assert_eq!(seq, sent[me], "sequence continuity");
            }
            if flags & 0x10 != 0 {
                assert_eq!(ack, sent[1 - me], "ack covers exactly the peer's bytes");
            }
            sent[me] = seq.wrapping_add(len as u32 + fin + syn);
        }
    }

    #[test]
    fn sack_after_loss_and_retransmit() {
        let mut sim = TcpSim::default_v4();
        sim.handshake();
        sim.data_c2s(100)
            .lose_next(Dir::C2s)
            .data_c2s(100)
            .data_c2s(100)
            .ack_s2c();
        let (_, _, ack, _, sacks) = tcp_fields(sim.packets().last().unwrap());
        assert_eq!(ack, 1_000_101);
        assert_eq!(sacks, vec![(1_000_201, 1_000_301)]);
        sim.retransmit(Dir::C2s).ack_s2c();
        let (_, _, ack, _, sacks) = tcp_fields(sim.packets().last().unwrap());
        assert_eq!(ack, 1_000_301);
        assert!(sacks.is_empty());
        assert_eq!(sim.in_flight(Dir::C2s), 0);
    }

    #[test]
    fn options_negotiation_and_windows() {
        let mut sim = TcpSim::default_v4().timestamps(true).wscale(Some(2), None);
        sim.handshake().data_c2s(10);
        assert_eq!(sim.negotiated(), (false, true, true));
        let p = &sim.packets()[3].data;
        // No scaling: the window field is the byte window itself.
        assert_eq!(u16::from_be_bytes([p[48], p[49]]), 64256);
        // NOP NOP TS: a 32-byte header.
        assert_eq!(p[46] >> 4, 8);
        let mut v6 = TcpSim::default_v6();
        v6.handshake();
        assert_eq!(v6.packets()[0].data.len(), 14 + 40 + 32);
        // The SYN/ACK's unscaled 64240 is the last window the client saw.
        assert!(v6.can_send(Dir::C2s, 64240));
        assert!(!v6.can_send(Dir::C2s, 64241));
    }

    #[test]
    fn crafted_segments_do_not_change_state() {
        let mut sim = TcpSim::default_v4();
        sim.handshake();
        let mut bad = sim.craft(Dir::C2s, TcpFlags::ACK, 10);
        bad.tcp_mut().unwrap().seq = 12345;
        sim.push(Dir::C2s, &bad);
        assert_eq!(sim.next_seq(Dir::C2s), 1_000_001);
        sim.data_c2s(1).ack_s2c();
        let (_, _, ack, _, _) = tcp_fields(sim.packets().last().unwrap());
        assert_eq!(ack, 1_000_002);
    }
}
