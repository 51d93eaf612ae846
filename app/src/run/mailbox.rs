//! Worker mailboxes: how the control plane on the main lcore reaches the tables the workers
//! own, without ever making a worker wait.
//!
//! Per worker, four bounded channels, allocated once at start:
//! - **requests** (main -> worker) and **replies** (worker -> main): a worker takes at most
//!   one request per round with `try_recv`, after its bursts, and does a bounded amount of work
//!   for it ([`CHUNK`] table slots for a listing, a count or a deletion; the rule hits; a
//!   reload; switching events on or off). Main keeps at most [`REQUESTS`] requests outstanding
//!   per worker, and each request has exactly one reply, so the reply channel always has room
//!   and the worker's `try_send` never fails;
//! - **events** and **logs** (worker -> main): after each round, the worker moves the
//!   connection events (only while someone listens: main switches them on and off) and the
//!   drop-log records its engine buffered into these queues with `try_send`; what does not
//!   fit is counted as lost ([`Lost`]), never waited for.
//!
//! The buffers a listing fills travel with the request and come back with the reply, so a
//! worker never allocates for the control plane. `std::sync::mpsc::sync_channel` is a fixed
//! ring: sending and receiving allocate nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use ctfw_engine::observe::{EntryRecord, Event, LogRecord};
use ctfw_engine::ops::{Cursor, Filter};
use ctfw_engine::pipeline::{Engine, EngineConfig};
use ctfw_engine::rules::RuleSet;
use ctfw_engine::time::Instant;
use ctfw_engine::view::Tuple;
use ctfw_engine::wire::Family;

/// Requests main may have outstanding per worker.
pub const REQUESTS: usize = 8;
/// Table slots a worker examines for one listing, count or deletion request.
pub const CHUNK: usize = 1024;
/// Connection events queued per worker between two drains by main.
pub const EVENT_QUEUE: usize = 8192;
/// Drop-log records queued per worker between two drains by main.
pub const LOG_QUEUE: usize = 4096;

/// What main asks a worker.
#[derive(Debug)]
pub enum Request {
    /// The next chunk of a listing: matching entries from `cursor` on, into `buf` (cleared
    /// first; its capacity is reused).
    List {
        /// Which entries.
        filter: Filter,
        /// Where to go on.
        cursor: Cursor,
        /// Filled with the entries.
        buf: Vec<EntryRecord>,
    },
    /// The next chunk of a count.
    Count {
        /// Which entries.
        filter: Filter,
        /// Where to go on.
        cursor: Cursor,
    },
    /// The next chunk of a deletion.
    Delete {
        /// Which entries.
        filter: Filter,
        /// Where to go on.
        cursor: Cursor,
    },
    /// Delete the connection with this ORIGINAL tuple, if this worker has it (a hash lookup).
    DeleteTuple {
        /// Its family.
        family: Family,
        /// Its protocol.
        proto: u8,
        /// Its ORIGINAL tuple.
        orig: Tuple,
    },
    /// The rule hits since the last reload, into `buf`.
    Hits {
        /// Filled with one count per rule, then the default policy's.
        buf: Vec<u64>,
    },
    /// Record connection events (someone listens), or stop.
    Events(bool),
    /// Swap in a new rule set and engine settings (`generation` numbers it).
    Reload(Box<Reload>),
}

/// What a reload hands a worker.
#[derive(Debug)]
pub struct Reload {
    /// The configuration generation this is.
    pub generation: u64,
    /// The new rules and default policy.
    pub rules: RuleSet,
    /// The new engine settings (the same capacity, peers and buffers as before).
    pub cfg: EngineConfig,
}

/// A worker's answer, in request order.
#[derive(Debug)]
pub enum Reply {
    /// A listing chunk; `next` is `None` when the table is done.
    Listed {
        /// The entries.
        buf: Vec<EntryRecord>,
        /// Where the next chunk starts.
        next: Option<Cursor>,
    },
    /// A count chunk.
    Counted {
        /// Matching entries in the chunk.
        n: u64,
        /// Where the next chunk starts.
        next: Option<Cursor>,
    },
    /// A deletion chunk.
    Deleted {
        /// Entries deleted in the chunk.
        n: u64,
        /// Where the next chunk starts.
        next: Option<Cursor>,
    },
    /// Rule hits, with the generation of the rules they count.
    Hits {
        /// The worker's configuration generation.
        generation: u64,
        /// One count per rule, then the default policy's.
        buf: Vec<u64>,
    },
    /// Events are now on (`true`) or off.
    Events(bool),
    /// The outcome of a reload: `Err` with the engine's refusal, the worker's previous
    /// settings still in force.
    Reloaded(Result<(), String>),
}

/// What a worker could not queue for main: counted, never waited for.
#[derive(Debug, Default)]
pub struct Lost {
    /// Connection events dropped because the engine's buffer or the events queue was full.
    pub events: AtomicU64,
    /// Drop-log records dropped because the log queue was full.
    pub logs: AtomicU64,
}

/// Main's end of one worker's mailbox.
#[derive(Debug)]
pub struct MainBox {
    requests: SyncSender<Request>,
    replies: Receiver<Reply>,
    /// Connection events from the worker.
    pub events: Receiver<Event>,
    /// Drop-log records from the worker, with the configuration generation whose rules
    /// decided them.
    pub logs: Receiver<(u64, LogRecord)>,
    /// What the worker could not queue.
    pub lost: Arc<Lost>,
    /// Requests sent and not yet answered.
    outstanding: usize,
}

/// A worker's end of its mailbox.
#[derive(Debug)]
pub struct WorkerBox {
    requests: Receiver<Request>,
    replies: SyncSender<Reply>,
    events: SyncSender<Event>,
    logs: SyncSender<(u64, LogRecord)>,
    lost: Arc<Lost>,
    /// The configuration generation in force on this worker.
    generation: u64,
    /// The engine's `events_lost` already passed on to main.
    events_lost: u64,
}

/// A new mailbox: main's end and the worker's.
pub fn mailbox() -> (MainBox, WorkerBox) {
    let (req_tx, req_rx) = sync_channel(REQUESTS);
    let (rep_tx, rep_rx) = sync_channel(REQUESTS);
    let (ev_tx, ev_rx) = sync_channel(EVENT_QUEUE);
    let (log_tx, log_rx) = sync_channel(LOG_QUEUE);
    let lost = Arc::new(Lost::default());
    (
        MainBox {
            requests: req_tx,
            replies: rep_rx,
            events: ev_rx,
            logs: log_rx,
            lost: Arc::clone(&lost),
            outstanding: 0,
        },
        WorkerBox {
            requests: req_rx,
            replies: rep_tx,
            events: ev_tx,
            logs: log_tx,
            lost,
            generation: 0,
            events_lost: 0,
        },
    )
}

impl MainBox {
    /// Whether another request may be sent now.
    pub fn has_room(&self) -> bool {
        self.outstanding < REQUESTS
    }

    /// Send `req`, if [`has_room`](MainBox::has_room). False if it was not sent (no room, or
    /// the worker is gone).
    pub fn send(&mut self, req: Request) -> bool {
        if self.has_room() && self.requests.try_send(req).is_ok() {
            self.outstanding += 1;
            true
        } else {
            false
        }
    }

    /// The next reply, if one is there.
    pub fn reply(&mut self) -> Option<Reply> {
        match self.replies.try_recv() {
            Ok(r) => {
                self.outstanding -= 1;
                Some(r)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }
}

impl WorkerBox {
    /// Between bursts: answer at most one request, then queue the events and log records the
    /// engine buffered. Bounded work; never blocks.
    pub fn serve(&mut self, engine: &mut Engine, now: Instant) {
        match self.requests.try_recv() {
            Ok(req) => {
                let reply = self.answer(engine, now, req);
                // Main never has more than REQUESTS outstanding, so there is room.
                let _ = self.replies.try_send(reply);
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
        if engine.events_enabled() {
            let (q, lost) = (&self.events, &self.lost.events);
            engine.drain_events(|e| {
                if q.try_send(*e).is_err() {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            });
            // Those the engine's own buffer could not take are lost too.
            let engine_lost = engine.counters().events_lost;
            if engine_lost > self.events_lost {
                lost.fetch_add(engine_lost - self.events_lost, Ordering::Relaxed);
                self.events_lost = engine_lost;
            }
        }
        let (q, lost, generation) = (&self.logs, &self.lost.logs, self.generation);
        engine.drain_logs(|r| {
            if q.try_send((generation, *r)).is_err() {
                lost.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    fn answer(&mut self, engine: &mut Engine, now: Instant, req: Request) -> Reply {
        match req {
            Request::List {
                filter,
                cursor,
                mut buf,
            } => {
                buf.clear();
                let next = engine.list(now, cursor, &filter, CHUNK, |r| buf.push(r));
                Reply::Listed { buf, next }
            }
            Request::Count { filter, cursor } => {
                let mut n = 0;
                let next = engine.list(now, cursor, &filter, CHUNK, |_| n += 1);
                Reply::Counted { n, next }
            }
            Request::Delete { filter, cursor } => {
                let (n, next) = engine.delete(now, cursor, &filter, CHUNK);
                Reply::Deleted { n: n as u64, next }
            }
            Request::DeleteTuple {
                family,
                proto,
                orig,
            } => Reply::Deleted {
                n: u64::from(engine.delete_tuple(now, family, proto, &orig)),
                next: None,
            },
            Request::Hits { mut buf } => {
                buf.clear();
                buf.extend_from_slice(engine.rule_hits());
                Reply::Hits {
                    generation: self.generation,
                    buf,
                }
            }
            Request::Events(on) => {
                if on {
                    // What the buffer still holds predates the new listener.
                    engine.drain_events(|_| {});
                }
                engine.set_events(on);
                Reply::Events(on)
            }
            Request::Reload(r) => {
                let Reload {
                    generation,
                    rules,
                    cfg,
                } = *r;
                let result = engine.reload(rules, &cfg).map_err(|e| e.to_string());
                if result.is_ok() {
                    self.generation = generation;
                }
                Reply::Reloaded(result)
            }
        }
    }
}
