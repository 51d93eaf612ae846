//! A worker: one lcore, one connection table, nothing shared on the hot path.
//!
//! Each round reads the clock once, then polls every RX source once, in a fixed order (its queues
//! of each polled port in port order, then its input ring), each burst no larger than every TX
//! buffer can still take (back-pressure, [`TxHold`]). For each burst it (re-dispatches ICMP errors
//! whose flow another worker owns,) lays out frames that came in several segments for the engine
//! ([`super::frames`]), runs the engine's burst pipeline with the round's clock reading, moves
//! accepted mbufs (whole chains) into per-port TX buffers and frees the rest. Then it offers the
//! TX buffers to the devices (bounded retries); what a device does not take waits for the next
//! round and holds RX back, and is dropped and counted only if its TX path stalls ([`TX_STALL`])
//! or at shutdown. After a busy round it sweeps a few table entries; when idle, more. Then it
//! serves its mailbox: at most one control-plane request, bounded work, and the events and
//! drop-log records its engine buffered ([`super::mailbox`]). Counters live in the worker and are
//! published to the control plane every ~100 ms through a mutex nobody else touches on the hot
//! path: the engine's counters and rule hits, the table's fill, the I/O counters, packets and
//! bytes by ingress port and verdict, and how many rounds (and TSC cycles) were busy or idle.
//! Readers (`ctfw stats`, `/metrics`) see only what the main lcore collects from these
//! snapshots, never the worker itself.

use std::ops::AddAssign;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctfw_engine::Counters;
use ctfw_engine::counters::Reason;
use ctfw_engine::pipeline::{BURST, Engine, Pkt, Verdict};
use ctfw_engine::rss::{self, Toeplitz};
use ctfw_engine::rules::PortId;
use ctfw_engine::table::EntryClass;
use ctfw_engine::time::Instant;
use ctfw_engine::wire::ChecksumHint;
use rte::{CksumStatus, Mbuf, MbufBurst, MbufView, MbufViews, Ring, RxQueue, TxQueue};

use super::frames::{Heads, Layout, TAIL_SLOTS};
use super::mailbox::WorkerBox;
use crate::MAX_BURST;

/// TX attempts per flush. What is still refused after them waits in the worker's buffer for
/// the next round (the main lcore, which has no such buffer, drops it).
pub const TX_RETRIES: usize = 4;
/// Table entries swept after each busy round, and in each idle one.
const SWEEP_BUSY: usize = 8;
const SWEEP_IDLE: usize = 1024;

/// Converts TSC readings to engine time with a multiply and a shift (no division).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// TSC ticks per second.
    pub hz: u64,
    /// TSC at start.
    base: u64,
    /// Nanoseconds per TSC tick, in 32.32 fixed point.
    ns_per_tick: u64,
}

impl Clock {
    /// A clock counting from TSC reading `base` at `hz` ticks per second.
    pub fn new(hz: u64, base: u64) -> Clock {
        let hz = hz.max(1);
        let ns_per_tick = ((1_000_000_000u128 << 32) / u128::from(hz)) as u64;
        Clock {
            hz,
            base,
            ns_per_tick,
        }
    }

    /// Engine time at TSC reading `tsc` (nanoseconds since `base`).
    #[inline]
    pub fn at(&self, tsc: u64) -> Instant {
        let d = tsc.wrapping_sub(self.base);
        Instant(((u128::from(d) * u128::from(self.ns_per_tick)) >> 32) as u64)
    }

    /// Engine time now.
    #[inline]
    pub fn now(&self) -> Instant {
        self.at(rte::tsc())
    }
}

/// Counters the data plane keeps around the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Packets received from ports.
    pub rx_port: u64,
    /// Packets received from the worker's input ring.
    pub rx_ring: u64,
    /// Packets handed to a TX queue.
    pub tx_port: u64,
    /// Packets handed to a shared TX ring.
    pub tx_ring: u64,
    /// Accepted packets freed because their TX path stalled ([`TX_STALL`]), or still
    /// refused when the worker stopped.
    pub tx_dropped: u64,
    /// Rounds in which the worker skipped an RX source because a TX buffer had no room left
    /// (back-pressure, [`TxHold`]).
    pub rx_held: u64,
    /// ICMP errors handed to the worker that owns their flow.
    pub redispatched: u64,
    /// ICMP errors that could not be handed over (owner's ring full): freed.
    pub redispatch_dropped: u64,
}

impl AddAssign<&IoCounters> for IoCounters {
    fn add_assign(&mut self, other: &IoCounters) {
        let IoCounters {
            rx_port,
            rx_ring,
            tx_port,
            tx_ring,
            tx_dropped,
            rx_held,
            redispatched,
            redispatch_dropped,
        } = other;
        self.rx_port += rx_port;
        self.rx_ring += rx_ring;
        self.tx_port += tx_port;
        self.tx_ring += tx_ring;
        self.tx_dropped += tx_dropped;
        self.rx_held += rx_held;
        self.redispatched += redispatched;
        self.redispatch_dropped += redispatch_dropped;
    }
}

/// Packets and bytes the engine decided, for one ingress port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortVerdicts {
    /// Packets forwarded.
    pub accepted_packets: u64,
    /// Their bytes (frame lengths).
    pub accepted_bytes: u64,
    /// Packets dropped.
    pub dropped_packets: u64,
    /// Their bytes (frame lengths).
    pub dropped_bytes: u64,
    /// Packets that reached connection tracking (a conntrack state, INVALID included), for
    /// the bad-checksum watch ([`super::csum_watch`]).
    pub tracked: u64,
    /// Of those, INVALID for a bad TCP or UDP checksum.
    pub bad_checksum: u64,
}

/// How a worker's rounds went. A round is busy if it received a packet or had packets
/// waiting for TX, idle otherwise; each round's TSC cycles (from its clock reading to the
/// next round's) count for its kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Polls {
    /// Busy rounds.
    pub busy: u64,
    /// Idle rounds.
    pub idle: u64,
    /// TSC cycles spent in busy rounds.
    pub busy_cycles: u64,
    /// TSC cycles spent in idle rounds.
    pub idle_cycles: u64,
}

impl Polls {
    /// Count a round of `cycles` that was `busy` or not.
    #[inline]
    fn count(&mut self, busy: bool, cycles: u64) {
        if busy {
            self.busy += 1;
            self.busy_cycles += cycles;
        } else {
            self.idle += 1;
            self.idle_cycles += cycles;
        }
    }
}

/// What a worker publishes for the control plane.
#[derive(Debug, Default)]
pub struct Shared {
    /// Packets received so far (for idle detection), updated each round that received
    /// packets or had TX pending.
    pub rx: AtomicU64,
    /// The latest snapshot, for the progress lines.
    pub snapshot: Mutex<Snapshot>,
    /// Set when the worker has returned (its input ring drained, its last TX offered) or
    /// panicked.
    pub done: AtomicBool,
}

/// A worker's counters and table fill at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The engine's counters.
    pub counters: Counters,
    /// Packets decided per rule, then by the default policy (the engine's rule hits).
    pub rule_hits: Vec<u64>,
    /// Entries in its table.
    pub entries: usize,
    /// Entries its table can hold.
    pub capacity: usize,
    /// Entries by protocol and TCP state (indexed by `EntryClass::index`).
    pub by_class: [u32; EntryClass::COUNT],
    /// Counters around the engine.
    pub io: IoCounters,
    /// Packets and bytes decided, by ingress port (indexed by `PortId`).
    pub by_port: Vec<PortVerdicts>,
    /// Busy and idle rounds.
    pub polls: Polls,
}

/// Sets [`Shared::done`] when dropped.
struct Done(Arc<Shared>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
    }
}

/// Where accepted packets for one port go.
#[derive(Debug)]
pub enum TxPath {
    /// This worker's own TX queue of the port.
    Queue(TxQueue),
    /// The port's TX ring, drained by the main lcore.
    Ring(Ring),
}

/// Everything a worker owns.
pub struct Worker {
    /// Worker index (0-based).
    pub index: u32,
    /// Number of workers.
    pub workers: u32,
    /// The engine (its own table).
    pub engine: Engine,
    /// RX queues this worker polls, with the port each belongs to.
    pub rx: Vec<(RxQueue, PortId)>,
    /// The worker's input ring (from the distributor and from other workers), if any.
    pub input: Option<Ring>,
    /// TX path per port (indexed by `PortId`).
    pub tx: Vec<TxPath>,
    /// Other workers' input rings (indexed by worker), for ICMP errors they own.
    pub peers: Vec<Ring>,
    /// Re-dispatch ICMP errors that arrive through hardware RSS.
    pub redispatch: bool,
    /// `PortId` of each DPDK port id (for mbufs that arrive through a ring).
    pub port_of: Vec<Option<PortId>>,
    /// Packets per RX burst.
    pub burst: usize,
    /// Engine time source.
    pub clock: Clock,
    /// Set by the control plane to stop.
    pub stop: Arc<AtomicBool>,
    /// Published counters.
    pub shared: Arc<Shared>,
    /// Packets and bytes decided, by ingress port (one per port, indexed by `PortId`).
    pub by_port: Vec<PortVerdicts>,
    /// The control plane's requests, and the queues for events and drop-log records.
    pub mailbox: WorkerBox,
}

/// What a worker hands back when it stops.
pub struct Finished {
    /// The engine, with its table and counters.
    pub engine: Engine,
    /// I/O counters.
    pub io: IoCounters,
    /// Packets and bytes decided, by ingress port (indexed by `PortId`).
    pub by_port: Vec<PortVerdicts>,
}

impl Worker {
    /// The worker loop. Returns when `stop` is set and its input ring is drained.
    pub fn run(mut self) -> Finished {
        // Says `done` when the worker returns, and also if it panics.
        let _done = Done(Arc::clone(&self.shared));
        let toeplitz = Toeplitz::symmetric();
        let mut io = IoCounters::default();
        let mut rx_buf: MbufBurst<MAX_BURST> = MbufBurst::default();
        let mut tx_bufs: Vec<MbufBurst<MAX_BURST>> =
            (0..self.tx.len()).map(|_| MbufBurst::default()).collect();
        let mut verdicts = vec![Verdict::default(); MAX_BURST];
        let mut heads = Heads::new();
        let mut hold = TxHold::new(self.tx.len(), &self.clock);
        let publish_every = self.clock.hz / 10;
        let mut last_publish = rte::tsc();
        let mut polls = Polls::default();
        // The previous round: its clock reading, and whether it was busy.
        let mut last_round: Option<(u64, bool)> = None;
        loop {
            // One clock reading per round: every burst of the round and the sweep use it.
            let tsc = rte::tsc();
            if let Some((start, busy)) = last_round {
                polls.count(busy, tsc.wrapping_sub(start));
            }
            let now = self.clock.at(tsc);
            let stopping = self.stop.load(Ordering::Relaxed);
            let mut got = 0;
            // RX queues are not polled once stopping: the ports will be stopped and their
            // descriptors freed by the driver; rings must be drained (we own what is in them).
            // Back-pressure: each burst is no larger than every TX buffer can still take.
            let mut held = false;
            if !stopping {
                for i in 0..self.rx.len() {
                    let port = self.rx[i].1;
                    let limit = hold.room(&tx_bufs, tsc).min(self.burst);
                    held |= limit == 0;
                    let n = rx_upto(&mut self.rx[i].0, &mut rx_buf, limit);
                    if n > 0 {
                        got += n;
                        io.rx_port += n as u64;
                        if self.redispatch {
                            self.redispatch_errors(&toeplitz, &mut rx_buf, &mut io);
                        }
                        self.process(
                            now,
                            &mut rx_buf,
                            Some(port),
                            &mut tx_bufs,
                            &mut verdicts,
                            &mut heads,
                            &mut io,
                        );
                    }
                }
            }
            if let Some(ring) = &self.input {
                let limit = hold.room(&tx_bufs, tsc).min(self.burst);
                held |= limit == 0 && ring.count() > 0;
                let n = ring_upto(ring, &mut rx_buf, limit);
                if n > 0 {
                    got += n;
                    io.rx_ring += n as u64;
                    self.process(
                        now,
                        &mut rx_buf,
                        None,
                        &mut tx_bufs,
                        &mut verdicts,
                        &mut heads,
                        &mut io,
                    );
                }
            }
            io.rx_held += u64::from(held);
            let pending = tx_bufs.iter().any(|b| !b.is_empty());
            // Packets that wait for a TX path that may still take them.
            let live = tx_bufs
                .iter()
                .enumerate()
                .any(|(port, b)| !b.is_empty() && !hold.stalled(port, tsc));
            last_round = Some((tsc, got > 0 || pending));
            if got > 0 || pending {
                self.shared
                    .rx
                    .store(io.rx_port + io.rx_ring, Ordering::Relaxed);
                self.flush(&mut tx_bufs, &mut hold, tsc, &mut io, false);
                self.engine.sweep(now, SWEEP_BUSY);
                if stopping && got == 0 && !held && !live {
                    // The input ring is drained, and what the devices still refuse waits only
                    // for TX paths that stalled: the last flush below frees it.
                    break;
                }
            } else if stopping {
                break;
            } else {
                self.engine.sweep(now, SWEEP_IDLE);
                std::hint::spin_loop();
            }
            // Between bursts: at most one control request, bounded work.
            self.mailbox.serve(&mut self.engine, now);
            if tsc.wrapping_sub(last_publish) >= publish_every {
                last_publish = tsc;
                self.publish(&io, &polls);
            }
        }
        self.flush(&mut tx_bufs, &mut hold, rte::tsc(), &mut io, true);
        self.publish(&io, &polls);
        Finished {
            engine: self.engine,
            io,
            by_port: self.by_port,
        }
    }

    /// Copy the counters into the shared snapshot (the vectors keep their allocation).
    fn publish(&self, io: &IoCounters, polls: &Polls) {
        let mut s = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.counters.clone_from(self.engine.counters());
        s.rule_hits.clear();
        s.rule_hits.extend_from_slice(self.engine.rule_hits());
        s.entries = self.engine.table().len();
        s.capacity = self.engine.table().capacity();
        s.by_class = *self.engine.table().by_class();
        s.io = *io;
        s.by_port.clone_from(&self.by_port);
        s.polls = *polls;
    }

    /// Track and decide a burst; accepted mbufs go to their port's TX buffer, the rest are
    /// freed. `port` is the ingress port of the whole burst, or `None` to read it from each
    /// mbuf (ring input). Frames in several segments are laid out for the engine by
    /// [`super::frames`] (their first bytes copied into `heads` when the first segment is
    /// short).
    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        now: Instant,
        burst: &mut MbufBurst<MAX_BURST>,
        port: Option<PortId>,
        tx_bufs: &mut [MbufBurst<MAX_BURST>],
        verdicts: &mut [Verdict],
        heads: &mut Heads,
        io: &mut IoCounters,
    ) {
        let n = burst.len();
        if n == 0 {
            return;
        }
        let mbufs = burst.as_slice();
        let empty = Pkt::new(&[], PortId(0), ChecksumHint::Unknown);
        // What the engine needs of each mbuf, read for the whole burst in one call.
        let mut views = MbufViews::<MAX_BURST>::new();
        let views = views.read(mbufs);
        if views.iter().all(MbufView::is_contiguous) {
            // Every frame in one segment: the engine reads them where they lie, in groups of
            // its own size (a stack array of that many packets, filled per group).
            for (group, verdicts) in views.chunks(BURST).zip(verdicts[..n].chunks_mut(BURST)) {
                let mut pkts = [empty; BURST];
                for (slot, v) in pkts.iter_mut().zip(group) {
                    let csum = hint_from(v.ip_cksum(), v.l4_cksum());
                    *slot = Pkt::new(v.data(), self.ingress_of(port, v.port()), csum);
                }
                self.decide(now, &pkts[..group.len()], verdicts);
            }
        } else {
            // Some frames in several segments: groups as long as their segment lists fit.
            let mut tails = [&[][..]; TAIL_SLOTS];
            let mut done = 0;
            while done < n {
                let (layout, k) = Layout::fill(&mbufs[done..], heads, &mut tails);
                let group = &mbufs[done..done + k];
                let mut pkts = [empty; BURST];
                for (i, (slot, m)) in pkts.iter_mut().zip(group).enumerate() {
                    let (data, tail) = layout.frame(i, m, heads, &tails);
                    *slot = Pkt {
                        data,
                        tail,
                        port: self.ingress(port, m),
                        csum: hint(m),
                    };
                }
                self.decide(now, &pkts[..k], &mut verdicts[done..done + k]);
                done += k;
            }
        }
        for (m, v) in burst.drain().zip(verdicts.iter()) {
            match v.forward {
                Some(out) => {
                    let buf = &mut tx_bufs[usize::from(out.0)];
                    if buf.is_full() {
                        send(&mut self.tx[usize::from(out.0)], buf, io);
                    }
                    if let Err(m) = buf.push(m) {
                        // Still full after a flush: the device is not keeping up.
                        io.tx_dropped += 1;
                        drop(m);
                    }
                }
                None => drop(m),
            }
        }
    }

    /// The ingress port of `m`: the burst's, or (ring input) the one the mbuf names.
    #[inline]
    fn ingress(&self, port: Option<PortId>, m: &Mbuf) -> PortId {
        self.ingress_of(port, m.port())
    }

    /// [`Worker::ingress`] of a packet whose mbuf says it came in by DPDK port `dpdk_port`.
    #[inline]
    fn ingress_of(&self, port: Option<PortId>, dpdk_port: u16) -> PortId {
        match port {
            Some(p) => p,
            None => self
                .port_of
                .get(usize::from(dpdk_port))
                .copied()
                .flatten()
                .unwrap_or(PortId(u16::MAX)),
        }
    }

    /// Run the engine on one group and count its verdicts by ingress port.
    fn decide(&mut self, now: Instant, pkts: &[Pkt<'_>], verdicts: &mut [Verdict]) {
        self.engine.process_burst(now, pkts, verdicts);
        for (p, v) in pkts.iter().zip(verdicts.iter()) {
            if let Some(t) = self.by_port.get_mut(usize::from(p.port.0)) {
                let len = p.len() as u64;
                if v.forward.is_some() {
                    t.accepted_packets += 1;
                    t.accepted_bytes += len;
                } else {
                    t.dropped_packets += 1;
                    t.dropped_bytes += len;
                }
                t.tracked += u64::from(v.ct.is_some());
                t.bad_checksum += u64::from(matches!(
                    v.invalid,
                    Some(Reason::TcpBadChecksum | Reason::UdpBadChecksum)
                ));
            }
        }
    }

    /// Hand ICMP errors whose quoted flow another worker owns to that worker.
    fn redispatch_errors(
        &mut self,
        t: &Toeplitz,
        burst: &mut MbufBurst<MAX_BURST>,
        io: &mut IoCounters,
    ) {
        let mut i = 0;
        while i < burst.len() {
            let owner = {
                let data = burst.as_slice()[i].data();
                rss::icmp_error_hash(t, data).map(|h| rss::owner(h, self.workers))
            };
            match owner {
                Some(o) if o != self.index => {
                    if let Some(m) = burst.take(i) {
                        let mut one: MbufBurst<1> = MbufBurst::default();
                        let _ = one.push(m);
                        if self.peers[o as usize].enqueue_burst(&mut one) == 1 {
                            io.redispatched += 1;
                        } else {
                            io.redispatch_dropped += 1;
                        }
                    }
                }
                _ => i += 1,
            }
        }
    }

    /// Offer every TX buffer to its port. What the device (or TX ring) does not take stays
    /// buffered for the next round and holds RX back ([`TxHold`]); only a buffer whose path
    /// stalled fills up (`process` then drops new packets for it). On the `last` flush what
    /// is left is freed and counted.
    fn flush(
        &mut self,
        tx_bufs: &mut [MbufBurst<MAX_BURST>],
        hold: &mut TxHold,
        tsc: u64,
        io: &mut IoCounters,
        last: bool,
    ) {
        for (port, (buf, path)) in tx_bufs.iter_mut().zip(self.tx.iter_mut()).enumerate() {
            if !buf.is_empty() {
                let before = buf.len();
                send(path, buf, io);
                // A shared TX ring never stalls: the main lcore drains it, and decides about
                // the device behind it.
                let left = if matches!(path, TxPath::Ring(_)) {
                    0
                } else {
                    buf.len()
                };
                hold.offered(port, before - buf.len(), left, tsc);
                if last && !buf.is_empty() {
                    io.tx_dropped += buf.len() as u64;
                    buf.clear();
                }
            }
        }
    }
}

/// How long a TX path may take nothing while packets wait for it before it stops holding RX
/// back ([`TxHold`]).
pub const TX_STALL: Duration = Duration::from_millis(100);

/// Back-pressure from TX to RX. A worker reads no more packets than every TX buffer can still
/// take, so under overload packets wait before the engine sees them (in the worker's input
/// ring, then the distributor's or the device's RX queue, where the device counts what it
/// cannot hold as missed), never after it accepted them. A TX path that has taken nothing for
/// [`TX_STALL`] while packets waited for it (a link down, a peer that never drains) is stalled:
/// it no longer holds RX back, its buffer fills, and packets for it are dropped and counted as
/// `tx_dropped`, so that one dead port does not stop the others. Only a worker's own device
/// queue can stall: a shared TX ring is drained by the main lcore (however long the scheduler
/// keeps it away), which decides about the device behind it
/// ([`super::control::MainIo::transmit`]).
struct TxHold {
    /// Per port: since when (TSC) its path has taken nothing while packets waited.
    blocked_since: Vec<Option<u64>>,
    /// [`TX_STALL`] in TSC ticks.
    stall: u64,
}

impl TxHold {
    fn new(ports: usize, clock: &Clock) -> TxHold {
        TxHold {
            blocked_since: vec![None; ports],
            stall: (u128::from(clock.hz) * TX_STALL.as_millis() / 1000) as u64,
        }
    }

    /// Whether `port`'s path has taken nothing for [`TX_STALL`] at TSC `tsc`.
    #[inline]
    fn stalled(&self, port: usize, tsc: u64) -> bool {
        self.blocked_since[port].is_some_and(|t| tsc.wrapping_sub(t) >= self.stall)
    }

    /// How many packets may be read: the free room of the fullest buffer whose path has not
    /// stalled.
    #[inline]
    fn room(&self, tx_bufs: &[MbufBurst<MAX_BURST>], tsc: u64) -> usize {
        tx_bufs
            .iter()
            .enumerate()
            .filter(|&(port, _)| !self.stalled(port, tsc))
            .map(|(_, b)| MAX_BURST - b.len())
            .min()
            .unwrap_or(MAX_BURST)
    }

    /// `port`'s path took `sent` packets and left `left` waiting.
    #[inline]
    fn offered(&mut self, port: usize, sent: usize, left: usize, tsc: u64) {
        let since = &mut self.blocked_since[port];
        if sent > 0 || left == 0 {
            *since = None;
        } else if since.is_none() {
            *since = Some(tsc);
        }
    }
}

/// Offer `buf` to `path` up to `TX_RETRIES` times; what is sent leaves `buf`.
fn send(path: &mut TxPath, buf: &mut MbufBurst<MAX_BURST>, io: &mut IoCounters) {
    for _ in 0..TX_RETRIES {
        match path {
            TxPath::Queue(q) => io.tx_port += q.tx_burst(buf) as u64,
            TxPath::Ring(r) => io.tx_ring += r.enqueue_burst(buf) as u64,
        }
        if buf.is_empty() {
            break;
        }
    }
}

/// The engine's checksum hint from the device's report: what it vouched for (verified good,
/// or intact with the field left to offload, which Linux does not verify either) is not
/// verified again. ICMP is always verified in software.
#[inline]
fn hint(m: &Mbuf) -> ChecksumHint {
    hint_from(m.ip_cksum(), m.l4_cksum())
}

#[inline]
fn hint_from(ip: CksumStatus, l4: CksumStatus) -> ChecksumHint {
    match (ip.vouched(), l4.vouched()) {
        (true, true) => ChecksumHint::Good,
        (false, true) => ChecksumHint::L4Good,
        (_, false) => ChecksumHint::Unknown,
    }
}

/// Receive at most `limit` packets into an empty `buf`.
#[inline]
pub fn rx_upto(q: &mut RxQueue, buf: &mut MbufBurst<MAX_BURST>, limit: usize) -> usize {
    q.rx_burst_max(buf, limit)
}

/// Dequeue at most `limit` packets into an empty `buf`.
#[inline]
pub fn ring_upto(r: &Ring, buf: &mut MbufBurst<MAX_BURST>, limit: usize) -> usize {
    r.dequeue_burst_max(buf, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_checksum_the_device_reports_is_not_verified_again() {
        use CksumStatus::*;
        // virtio's report for a local sender's offloaded checksum: IP unknown, L4 "none".
        assert_eq!(hint_from(Unknown, DataValid), ChecksumHint::L4Good);
        assert_eq!(hint_from(Good, DataValid), ChecksumHint::Good);
        assert_eq!(hint_from(DataValid, Good), ChecksumHint::Good);
        assert_eq!(hint_from(Unknown, Good), ChecksumHint::L4Good);
        assert_eq!(hint_from(Good, Good), ChecksumHint::Good);
        for ip in [Unknown, Bad, Good, DataValid] {
            assert_eq!(hint_from(ip, Unknown), ChecksumHint::Unknown);
            assert_eq!(hint_from(ip, Bad), ChecksumHint::Unknown);
        }
    }

    #[test]
    fn clock_converts_ticks_to_nanoseconds_without_dividing() {
        for hz in [1_000_000_000u64, 2_600_000_000, 3_123_456_789] {
            let c = Clock::new(hz, 1_000);
            assert_eq!(c.at(1_000), Instant(0));
            // One second, and one hour, of ticks: within a nanosecond per second.
            let s = c.at(1_000 + hz).0;
            assert!(s.abs_diff(1_000_000_000) <= 1, "{hz}: {s}");
            let h = c.at(1_000 + hz * 3600).0;
            assert!(h.abs_diff(3_600_000_000_000) <= 3600, "{hz}: {h}");
        }
    }
}
