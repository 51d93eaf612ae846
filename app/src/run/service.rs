//! The control plane of `ctfw run`: the commands of the control socket carried out on the main
//! lcore, against tables only the workers touch.
//!
//! [`Service::poll`] runs in the main lcore's control loop. Each call accepts and reads
//! clients ([`Server`]), collects the workers' replies ([`mailbox`]), moves every command in
//! progress one step, fans connection events out to their listeners, writes the drop log, and
//! writes what the clients can take. Nothing in it waits: a command that needs the workers
//! posts a request and goes on when the reply comes in a later call.
//!
//! - **Walks** (`conntrack.list`, `count`, `delete`, `flush`) ask every worker for its table
//!   chunk by chunk ([`mailbox::CHUNK`] slots each), one chunk in flight per worker. A listing
//!   asks for the next chunk only while its client's buffer is below [`server::HIGH_WATER`]:
//!   a slow client slows its own listing and nothing else. A delete by full tuple uses the
//!   engine's hash lookup instead.
//! - **Events**: the first listener switches events on in every worker's engine, the last one
//!   leaving switches them off, so that nobody listening costs nothing. A listener is told it
//!   is subscribed once every worker has switched them on. An event its buffer cannot take is
//!   counted as lost for it and reported in a `lost` item.
//! - **Reload** (and SIGHUP): validate the file as a start does, keep `ctfw run`'s command-line
//!   overrides, refuse what needs a restart ([`Config::reload_refusals`]), then send every
//!   worker its new rules and settings and wait for all of them. Should a worker refuse, the
//!   others are put back, so the running configuration stays in force everywhere.
//! - **Hit counters** restart at each reload; `rules` reports them "since reload", and sums
//!   them only when every worker answers for the same generation of the rules.
//! - **Stats** come from the live statistics ([`Publisher`]), collected afresh once for all
//!   the `stats` requests of a poll, with the control plane's own figures added.
//! - **The drop log**: the records the workers queued are written each poll ([`DropLog`]).
//!
//! One thread serves everything, so the control plane's state (clients, listeners, commands
//! in progress) lives in plain collections owned here: no concurrent map is needed.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use ctfw_config::Config;
use ctfw_engine::observe::{EntryRecord, Event, EventKind as EngineEvent};
use ctfw_engine::ops::{Cursor, Filter};
use ctfw_engine::pipeline::EngineConfig;
use ctfw_engine::rules::RuleSet;
use ctfw_engine::view::Tuple;
use ctfw_engine::wire::Family;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::args::{self, Args};
use super::control::MainCounters;
use super::droplog::DropLog;
use super::engine_config;
use super::mailbox::{self, MainBox, Reload, Reply, Request};
use super::publish::Publisher;
use crate::control::format::{entry_json, entry_line, event_json, event_line, rules_json};
use crate::control::protocol::{
    self, Code, Command, EventArgs, EventKind, Failure, FilterArgs, Format,
    Request as ClientRequest,
};
use crate::control::server::{self, ClientId, Incoming, Server};

/// How long a command waits for a worker's reply before it fails.
const WORKER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reload waits for every worker.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes an events listener's buffer may hold; an event that does not fit is lost for it.
const EVENT_BUFFER: usize = 4 * server::HIGH_WATER;
/// More than any one event line takes (IPv6 addresses and counters included).
const EVENT_LINE_MAX: usize = 2048;

/// The control plane's state on the main lcore.
pub struct Service {
    server: Server,
    boxes: Vec<MainBox>,
    /// Per worker, who waits for each request sent or queued, in order (replies come in
    /// request order).
    waiting: Vec<VecDeque<Token>>,
    /// Per worker, requests not sent yet (its mailbox is full), in order.
    outbox: Vec<VecDeque<Request>>,
    walks: Vec<Walk>,
    hits: Vec<Hits>,
    listeners: Vec<Listener>,
    /// Whether the workers were last told to record events.
    events_on: bool,
    reload: Option<ReloadOp>,
    running: Running,
    /// `ctfw run`'s arguments, re-applied to a reloaded file.
    args: Args,
    /// Set by SIGHUP.
    hup: Arc<AtomicBool>,
    drop_log: DropLog,
    /// `stats` requests to answer at the end of this poll.
    stats_wanted: Vec<(ClientId, u64, Format)>,
    /// A reload took effect: the statistics must name the new rules.
    config_changed: bool,
    /// When the engine clock read zero, in wall-clock time.
    wall0: SystemTime,
    started: Instant,
    next_key: u64,
    incoming: Vec<Incoming>,
    /// Listing buffers, reused.
    spare: Vec<Vec<EntryRecord>>,
}

/// The configuration in force.
struct Running {
    cfg: Config,
    /// 0 at start, one more at each reload.
    generation: u64,
    /// When the hit counters restarted.
    since: Instant,
    /// The previous generation's rules, to name the rules of log records still in flight.
    previous: Option<(u64, RuleSet)>,
}

/// Who waits for a worker's reply.
#[derive(Clone, Copy, Debug)]
enum Token {
    Walk(u64),
    Hits(u64),
    /// A listener waiting for events to be on (or an events switch nobody waits for).
    Events(Option<u64>),
    Reload(u64),
}

/// A chunked walk over every worker's table.
struct Walk {
    key: u64,
    client: ClientId,
    id: u64,
    kind: WalkKind,
    filter: Filter,
    /// Per worker.
    state: Vec<WalkState>,
    /// Entries listed, counted or deleted so far.
    total: u64,
    /// When the last reply came (or the walk began).
    progress: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum WalkKind {
    List(Format),
    Count,
    Delete,
    /// A delete by full tuple: one hash lookup per worker.
    DeleteTuple(Family, u8, Tuple),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum WalkState {
    Next(Cursor),
    Waiting,
    Done,
}

/// `rules`: collecting every worker's hit counters.
struct Hits {
    key: u64,
    client: ClientId,
    id: u64,
    replies: Vec<Option<(u64, Vec<u64>)>>,
    tries: u32,
    started: Instant,
}

/// A `conntrack.events` listener.
struct Listener {
    key: u64,
    client: ClientId,
    id: u64,
    filter: Filter,
    /// Kinds wanted (empty: all).
    types: Vec<EventKind>,
    format: Format,
    /// Workers still to confirm events are on; subscribed at 0.
    acks: usize,
    /// Events it missed since the last `lost` item.
    lost: u64,
}

/// A reload waiting for the workers.
struct ReloadOp {
    /// The client that asked (`None`: SIGHUP).
    client: Option<(ClientId, u64)>,
    generation: u64,
    cfg: Box<Config>,
    results: Vec<Option<Result<(), String>>>,
    deadline: Instant,
    /// Putting the previous settings back after a refusal; the error to report then.
    rollback: Option<String>,
}

impl Service {
    /// The control plane, serving `server` for the workers behind `boxes`; `hup` is set by
    /// SIGHUP.
    pub fn new(
        server: Server,
        hup: Arc<AtomicBool>,
        boxes: Vec<MainBox>,
        cfg: &Config,
        args: &Args,
        wall0: SystemTime,
    ) -> Result<Service> {
        let n = boxes.len();
        Ok(Service {
            server,
            boxes,
            waiting: (0..n).map(|_| VecDeque::new()).collect(),
            outbox: (0..n).map(|_| VecDeque::new()).collect(),
            walks: Vec::new(),
            hits: Vec::new(),
            listeners: Vec::new(),
            events_on: false,
            reload: None,
            running: Running {
                cfg: cfg.clone(),
                generation: 0,
                since: Instant::now(),
                previous: None,
            },
            args: args.clone(),
            hup,
            drop_log: DropLog::open(&cfg.log)?,
            stats_wanted: Vec::new(),
            config_changed: false,
            wall0,
            started: Instant::now(),
            next_key: 1,
            incoming: Vec::new(),
            spare: Vec::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.running.cfg
    }

    /// Whether commands are in progress or answers wait to be written: the control loop
    /// then polls more often.
    pub fn busy(&self) -> bool {
        !self.walks.is_empty()
            || !self.hits.is_empty()
            || self.reload.is_some()
            || self
                .listeners
                .iter()
                .any(|l| self.server.pending(l.client) > 0)
    }

    /// One step of everything (see the module documentation). `publisher` and `main` give the
    /// live statistics.
    pub fn poll(&mut self, publisher: &mut Publisher<'_>, main: &MainCounters) {
        let now = Instant::now();
        if self.hup.swap(false, Ordering::Relaxed) {
            info!("SIGHUP: reloading {}", self.running.cfg.source.display());
            self.start_reload(None, now);
        }
        let mut incoming = std::mem::take(&mut self.incoming);
        self.server.poll(now, &mut incoming);
        for i in incoming.drain(..) {
            match i {
                Incoming::Request(client, req) => self.start(client, req, now),
                Incoming::Gone(client) => self.gone(client),
            }
        }
        self.incoming = incoming;
        for w in 0..self.boxes.len() {
            while let Some(reply) = self.boxes[w].reply() {
                let Some(token) = self.waiting[w].pop_front() else {
                    error!("worker {w} answered a request nobody sent");
                    continue;
                };
                self.on_reply(w, token, reply, now);
            }
        }
        self.answer_stats(publisher, main);
        if std::mem::take(&mut self.config_changed) {
            publisher.set_config(&self.running.cfg);
        }
        self.advance();
        self.pump();
        self.fan_out_events();
        self.write_logs();
        self.timeouts(now);
        self.server.flush(now);
    }

    /// At shutdown, after the workers stopped: write the log records still queued, and tell
    /// clients still waiting that the instance is stopping.
    pub fn shutdown(&mut self, engines: &mut [&mut ctfw_engine::pipeline::Engine]) {
        self.write_logs();
        let cfg = &self.running.cfg;
        for (w, e) in engines.iter_mut().enumerate() {
            e.drain_logs(|r| self.drop_log.write(w, r, cfg, None, self.wall0));
        }
        self.drop_log.flush();
        let f = Failure::new(Code::ShuttingDown, "ctfw is stopping");
        let clients: Vec<(ClientId, u64)> = self
            .walks
            .iter()
            .map(|w| (w.client, w.id))
            .chain(self.hits.iter().map(|h| (h.client, h.id)))
            .chain(self.listeners.iter().map(|l| (l.client, l.id)))
            .chain(self.reload.as_ref().and_then(|r| r.client))
            .collect();
        for (c, id) in clients {
            self.server.finish(c, &protocol::error_line(id, &f));
        }
        self.server.flush(Instant::now());
    }

    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Queue `req` for worker `w`, for `token`.
    fn post(&mut self, w: usize, req: Request, token: Token) {
        self.waiting[w].push_back(token);
        self.outbox[w].push_back(req);
        self.pump_one(w);
    }

    fn pump(&mut self) {
        for w in 0..self.boxes.len() {
            self.pump_one(w);
        }
    }

    fn pump_one(&mut self, w: usize) {
        while self.boxes[w].has_room() {
            let Some(req) = self.outbox[w].pop_front() else {
                break;
            };
            if !self.boxes[w].send(req) {
                // Only at shutdown: the worker has stopped, its answer will never come.
                error!("worker {w} does not take requests any more");
            }
        }
    }

    fn finish_ok(&mut self, client: ClientId, id: u64, result: &Value) {
        self.server.finish(client, &protocol::ok_line(id, result));
    }

    fn finish_err(&mut self, client: ClientId, id: u64, f: &Failure) {
        self.server.finish(client, &protocol::error_line(id, f));
    }

    /// Begin carrying out `req` for `client`.
    fn start(&mut self, client: ClientId, req: ClientRequest, now: Instant) {
        let id = req.id;
        let (kind, filter) = match req.command {
            Command::Hello => {
                let r = self.hello();
                return self.finish_ok(client, id, &r);
            }
            Command::Stats(a) => return self.stats_wanted.push((client, id, a.format)),
            Command::Rules => {
                let key = self.key();
                self.hits.push(Hits {
                    key,
                    client,
                    id,
                    replies: vec![None; self.boxes.len()],
                    tries: 0,
                    started: now,
                });
                return self.ask_hits(key);
            }
            Command::Reload => return self.start_reload(Some((client, id)), now),
            Command::Events(a) => return self.subscribe(client, id, &a),
            Command::List(a) => (WalkKind::List(a.format), a.filter),
            Command::Count(f) => (WalkKind::Count, f),
            Command::Delete(f) | Command::Flush(f) => (WalkKind::Delete, f),
        };
        // The protocol checked the filter when it parsed the request.
        let args = filter;
        let filter = match args.check() {
            Ok(f) => f,
            Err(e) => return self.finish_err(client, id, &Failure::new(Code::BadArgs, e)),
        };
        let kind = match (kind, tuple_of(&args, &filter)) {
            (WalkKind::Delete, Some((family, proto, t))) => WalkKind::DeleteTuple(family, proto, t),
            (k, _) => k,
        };
        let key = self.key();
        self.walks.push(Walk {
            key,
            client,
            id,
            kind,
            filter,
            state: vec![WalkState::Next(Cursor::START); self.boxes.len()],
            total: 0,
            progress: now,
        });
    }

    fn hello(&self) -> Value {
        json!({
            "protocol": protocol::VERSION,
            "ctfw": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "config": self.running.cfg.source.display().to_string(),
            "socket": self.server.path().display().to_string(),
            "workers": self.boxes.len(),
            "generation": self.running.generation,
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
        })
    }

    /// Send every walk that may go on its next chunks.
    fn advance(&mut self) {
        let mut i = 0;
        while i < self.walks.len() {
            let done = self.walks[i].state.iter().all(|s| *s == WalkState::Done);
            if done {
                let w = self.walks.swap_remove(i);
                let result = match w.kind {
                    WalkKind::List(_) => json!({"entries": w.total}),
                    WalkKind::Count => json!({"count": w.total}),
                    WalkKind::Delete | WalkKind::DeleteTuple(..) => json!({"deleted": w.total}),
                };
                self.finish_ok(w.client, w.id, &result);
                continue;
            }
            let (key, kind, filter, client) = {
                let w = &self.walks[i];
                (w.key, w.kind, w.filter, w.client)
            };
            // A listing waits while its client's buffer is full.
            let may_send = !matches!(kind, WalkKind::List(_)) || self.server.room(client) > 0;
            for worker in 0..self.boxes.len() {
                let WalkState::Next(cursor) = self.walks[i].state[worker] else {
                    continue;
                };
                if !may_send {
                    break;
                }
                let req = match kind {
                    WalkKind::List(_) => {
                        let mut buf = self.spare.pop().unwrap_or_default();
                        buf.reserve(mailbox::CHUNK);
                        Request::List {
                            filter,
                            cursor,
                            buf,
                        }
                    }
                    WalkKind::Count => Request::Count { filter, cursor },
                    WalkKind::Delete => Request::Delete { filter, cursor },
                    WalkKind::DeleteTuple(family, proto, orig) => Request::DeleteTuple {
                        family,
                        proto,
                        orig,
                    },
                };
                self.walks[i].state[worker] = WalkState::Waiting;
                self.post(worker, req, Token::Walk(key));
            }
            i += 1;
        }
    }

    fn on_reply(&mut self, worker: usize, token: Token, reply: Reply, now: Instant) {
        match (token, reply) {
            (Token::Walk(key), reply) => {
                let (n, next, buf) = match reply {
                    Reply::Listed { buf, next } => (buf.len() as u64, next, Some(buf)),
                    Reply::Counted { n, next } | Reply::Deleted { n, next } => (n, next, None),
                    other => {
                        error!("worker {worker}: unexpected reply {other:?} to a walk");
                        return;
                    }
                };
                let Some(i) = self.walks.iter().position(|w| w.key == key) else {
                    // The client went, or the walk timed out.
                    self.spare.extend(buf);
                    return;
                };
                let w = &mut self.walks[i];
                w.progress = now;
                w.total += n;
                w.state[worker] = match next {
                    Some(c) => WalkState::Next(c),
                    None => WalkState::Done,
                };
                if let (Some(buf), WalkKind::List(format)) = (buf, w.kind) {
                    let (client, id) = (w.client, w.id);
                    let mut out = Vec::new();
                    for r in &buf {
                        let item = match format {
                            Format::Json => entry_json(r),
                            Format::Text => json!({"line": entry_line(r)}),
                        };
                        protocol::write_item(&mut out, id, &item);
                    }
                    self.server.send(client, &out);
                    self.spare.push(buf);
                }
            }
            (Token::Hits(key), Reply::Hits { generation, buf }) => {
                if let Some(h) = self.hits.iter_mut().find(|h| h.key == key) {
                    h.replies[worker] = Some((generation, buf));
                    self.finish_hits(key);
                }
            }
            (Token::Events(who), Reply::Events(on)) => {
                if let (true, Some(key)) = (on, who) {
                    if let Some(l) = self.listeners.iter_mut().find(|l| l.key == key) {
                        l.acks = l.acks.saturating_sub(1);
                        if l.acks == 0 {
                            let line = protocol::item_line(l.id, &json!({"type": "subscribed"}));
                            self.server.send(l.client, &line);
                        }
                    }
                }
            }
            (Token::Reload(generation), Reply::Reloaded(result)) => {
                self.on_reloaded(worker, generation, result);
            }
            (token, reply) => {
                error!("worker {worker}: reply {reply:?} does not match {token:?}");
            }
        }
    }

    fn gone(&mut self, client: ClientId) {
        // Walks and hit collections of the client stop; replies still in flight are dropped
        // when they come.
        self.walks.retain(|w| w.client != client);
        self.hits.retain(|h| h.client != client);
        if let Some(r) = &mut self.reload {
            if r.client.is_some_and(|(c, _)| c == client) {
                r.client = None;
            }
        }
        let before = self.listeners.len();
        self.listeners.retain(|l| l.client != client);
        if before != self.listeners.len() && self.listeners.is_empty() {
            self.switch_events(false, None);
        }
    }

    // ---- rules ----

    fn ask_hits(&mut self, key: u64) {
        let rules = self.running.cfg.rules.len() + 1;
        for w in 0..self.boxes.len() {
            let buf = Vec::with_capacity(rules);
            self.post(w, Request::Hits { buf }, Token::Hits(key));
        }
    }

    fn finish_hits(&mut self, key: u64) {
        let Some(i) = self.hits.iter().position(|h| h.key == key) else {
            return;
        };
        if self.hits[i].replies.iter().any(Option::is_none) {
            return;
        }
        let h = self.hits.swap_remove(i);
        let generation = self.running.generation;
        let consistent = h.replies.iter().flatten().all(|(g, _)| *g == generation);
        if !consistent {
            // A reload is being applied: ask again once it is.
            if h.tries < 50 {
                let key = self.key();
                self.hits.push(Hits {
                    key,
                    replies: vec![None; self.boxes.len()],
                    tries: h.tries + 1,
                    ..h
                });
                self.ask_hits(key);
            } else {
                let f = Failure::new(Code::Timeout, "the workers' rules did not settle");
                self.finish_err(h.client, h.id, &f);
            }
            return;
        }
        let cfg = &self.running.cfg;
        let mut sum = vec![0u64; cfg.rules.len() + 1];
        for (_, buf) in h.replies.iter().flatten() {
            for (a, b) in sum.iter_mut().zip(buf) {
                *a += b;
            }
        }
        let result = rules_json(cfg, &sum, generation, self.running.since.elapsed());
        self.finish_ok(h.client, h.id, &result);
    }

    // ---- events ----

    fn subscribe(&mut self, client: ClientId, id: u64, a: &EventArgs) {
        let filter = match a.filter.check() {
            Ok(f) => f,
            Err(e) => return self.finish_err(client, id, &Failure::new(Code::BadArgs, e)),
        };
        let key = self.key();
        self.listeners.push(Listener {
            key,
            client,
            id,
            filter,
            types: a.types.clone(),
            format: a.format,
            acks: self.boxes.len(),
            lost: 0,
        });
        self.server.ends_on_eof(client);
        self.switch_events(true, Some(key));
    }

    /// Tell every worker to record events, or to stop.
    fn switch_events(&mut self, on: bool, who: Option<u64>) {
        self.events_on = on;
        for w in 0..self.boxes.len() {
            self.post(w, Request::Events(on), Token::Events(who));
        }
    }

    fn fan_out_events(&mut self) {
        for w in 0..self.boxes.len() {
            // Bounded: at most a queue's worth per poll.
            for _ in 0..mailbox::EVENT_QUEUE {
                let Ok(e) = self.boxes[w].events.try_recv() else {
                    break;
                };
                self.deliver(&e);
            }
            // What the worker's engine buffer or queue could not take is lost for everyone.
            let lost = self.boxes[w].lost.events.swap(0, Ordering::Relaxed);
            if lost > 0 {
                for l in &mut self.listeners {
                    l.lost += lost;
                }
            }
        }
        for l in &mut self.listeners {
            if l.lost > 0 && l.acks == 0 {
                let item = json!({"type": "lost", "count": l.lost});
                let line = protocol::item_line(l.id, &item);
                if self.server.pending(l.client) + line.len() <= EVENT_BUFFER {
                    self.server.send(l.client, &line);
                    l.lost = 0;
                }
            }
        }
    }

    fn deliver(&mut self, e: &Event) {
        let kind = match e.kind {
            EngineEvent::New => EventKind::New,
            EngineEvent::Update => EventKind::Update,
            EngineEvent::Destroy(_) => EventKind::Destroy,
        };
        let mut json_line: Option<Value> = None;
        let mut text_line: Option<Value> = None;
        for l in &mut self.listeners {
            if l.acks > 0
                || !(l.types.is_empty() || l.types.contains(&kind))
                || !l.filter.matches(&e.record.view)
            {
                continue;
            }
            // A full buffer loses the event before it is formatted: under a flood, main's
            // time goes to the events that can still be sent.
            if self.server.pending(l.client) + EVENT_LINE_MAX > EVENT_BUFFER {
                l.lost += 1;
                continue;
            }
            let item = match l.format {
                Format::Json => json_line.get_or_insert_with(|| event_json(e, self.wall0)),
                Format::Text => text_line.get_or_insert_with(|| json!({"line": event_line(e)})),
            };
            let line = protocol::item_line(l.id, item);
            if self.server.pending(l.client) + line.len() > EVENT_BUFFER {
                l.lost += 1;
            } else {
                self.server.send(l.client, &line);
            }
        }
    }

    // ---- drop log ----

    fn write_logs(&mut self) {
        let (cfg, generation) = (&self.running.cfg, self.running.generation);
        let previous = self.running.previous.as_ref();
        for (w, b) in self.boxes.iter().enumerate() {
            self.drop_log.lost += b.lost.logs.swap(0, Ordering::Relaxed);
            for _ in 0..mailbox::LOG_QUEUE {
                let Ok((gen_of, r)) = b.logs.try_recv() else {
                    break;
                };
                // Records decided by the previous rules name them, not today's.
                let rules = match previous {
                    Some((g, rules)) if *g == gen_of && gen_of != generation => Some(rules),
                    _ => None,
                };
                self.drop_log.write(w, &r, cfg, rules, self.wall0);
            }
        }
        self.drop_log.flush();
    }

    // ---- stats ----

    /// Answer the `stats` requests that came in this poll, from one fresh collection.
    fn answer_stats(&mut self, publisher: &mut Publisher<'_>, main: &MainCounters) {
        if self.stats_wanted.is_empty() {
            return;
        }
        let stats = publisher.fresh(main);
        let control = json!({
            "generation": self.running.generation,
            "clients": self.server.clients(),
            "listeners": self.listeners.len(),
            "log_written": self.drop_log.written,
            "log_lost": self.drop_log.lost,
        });
        for (client, id, format) in std::mem::take(&mut self.stats_wanted) {
            let result = match format {
                Format::Json => {
                    let mut v = serde_json::to_value(&*stats).unwrap_or(Value::Null);
                    v["control"] = control.clone();
                    v
                }
                Format::Text => {
                    let mut text = crate::stats::render(&stats);
                    let c = &stats.counters;
                    text.push_str(&format!(
                        "control: configuration generation {}, {} client(s), {} event \
                         listener(s) ({} events lost); {} entries deleted by operators\n  \
                         drop log: {} logged, {} suppressed by the rate limit, {} written, {} \
                         lost\n",
                        self.running.generation,
                        self.server.clients(),
                        self.listeners.len(),
                        c.events_lost,
                        c.connections.deleted,
                        c.logged,
                        c.log_suppressed,
                        self.drop_log.written,
                        self.drop_log.lost
                    ));
                    json!({"text": text})
                }
            };
            self.finish_ok(client, id, &result);
        }
    }

    // ---- reload ----

    fn start_reload(&mut self, client: Option<(ClientId, u64)>, now: Instant) {
        let fail = |this: &mut Service, f: Failure| match client {
            Some((c, id)) => this.finish_err(c, id, &f),
            None => error!("reload failed: {}", f.message),
        };
        if self.reload.is_some() {
            let f = Failure::new(Code::Internal, "a reload is already in progress; try again");
            return fail(self, f);
        }
        let source = self.running.cfg.source.clone();
        let mut new = match Config::load(&source) {
            Ok(c) => c,
            // The text `ctfw check-config` prints after `ctfw: error: `.
            Err(e) => {
                let f = Failure::new(Code::InvalidConfig, format!("{:#}", anyhow::Error::from(e)));
                return fail(self, f);
            }
        };
        if let Err(e) = args::apply(&mut new, &self.args) {
            return fail(self, Failure::new(Code::InvalidConfig, format!("{e:#}")));
        }
        let refused = self.running.cfg.reload_refusals(&new);
        if !refused.is_empty() {
            let list: Vec<String> = refused.iter().map(ToString::to_string).collect();
            let f = Failure::new(
                Code::ReloadRefused,
                format!(
                    "reload refused, the running configuration stays in force: {} changes \
                     settings that need a restart: {}",
                    source.display(),
                    list.join("; ")
                ),
            )
            .with(
                "refused",
                Value::Array(
                    refused
                        .iter()
                        .map(|r| json!({"key": r.key, "why": r.why}))
                        .collect(),
                ),
            );
            return fail(self, f);
        }
        let generation = self.running.generation + 1;
        self.send_config(&new, generation);
        self.reload = Some(ReloadOp {
            client,
            generation,
            cfg: Box::new(new),
            results: vec![None; self.boxes.len()],
            deadline: now + RELOAD_TIMEOUT,
            rollback: None,
        });
    }

    /// Send every worker the rules and settings of `cfg`, as `generation`.
    fn send_config(&mut self, cfg: &Config, generation: u64) {
        let rules = cfg.rules.clone();
        for w in 0..self.boxes.len() {
            let ecfg = engine_config(cfg, w as u16);
            self.send_config_to(w, &rules, &ecfg, generation);
        }
    }

    fn send_config_to(&mut self, w: usize, rules: &RuleSet, cfg: &EngineConfig, generation: u64) {
        let r = Reload {
            generation,
            rules: rules.clone(),
            cfg: cfg.clone(),
        };
        self.post(w, Request::Reload(Box::new(r)), Token::Reload(generation));
    }

    fn on_reloaded(&mut self, worker: usize, generation: u64, result: Result<(), String>) {
        let Some(op) = &mut self.reload else {
            return;
        };
        if op.generation != generation {
            // A rollback's answer (the rollback re-sends the running generation).
            if op.rollback.is_some() && generation == self.running.generation {
                op.results[worker] = Some(result);
                self.finish_reload();
            }
            return;
        }
        op.results[worker] = Some(result);
        self.finish_reload();
    }

    fn finish_reload(&mut self) {
        let Some(op) = &self.reload else { return };
        if op.results.iter().any(Option::is_none) {
            return;
        }
        let Some(mut op) = self.reload.take() else {
            return;
        };
        if let Some(why) = op.rollback.take() {
            let f = Failure::new(Code::Internal, why);
            match op.client {
                Some((c, id)) => self.finish_err(c, id, &f),
                None => error!("reload failed: {}", f.message),
            }
            return;
        }
        let refusals: Vec<(usize, String)> = op
            .results
            .iter()
            .enumerate()
            .filter_map(|(w, r)| match r {
                Some(Err(e)) => Some((w, e.clone())),
                _ => None,
            })
            .collect();
        if !refusals.is_empty() {
            // Put back the running settings where the new ones were taken.
            let why = format!(
                "reload refused by worker {}: {}; the running configuration stays in force",
                refusals[0].0, refusals[0].1
            );
            let rules = self.running.cfg.rules.clone();
            let generation = self.running.generation;
            let mut results = vec![Some(Ok(())); self.boxes.len()];
            for (w, r) in op.results.iter().enumerate() {
                if matches!(r, Some(Ok(()))) {
                    results[w] = None;
                    let ecfg = engine_config(&self.running.cfg, w as u16);
                    self.send_config_to(w, &rules, &ecfg, generation);
                }
            }
            op.results = results;
            op.rollback = Some(why);
            self.reload = Some(op);
            return self.finish_reload();
        }
        let old = std::mem::replace(&mut self.running.cfg, *op.cfg);
        self.running.previous = Some((self.running.generation, old.rules.clone()));
        self.running.generation = op.generation;
        self.running.since = Instant::now();
        self.config_changed = true;
        self.server.set_stall_timeout(Duration::from_secs(
            self.running.cfg.control.client_timeout_secs.into(),
        ));
        if old.log != self.running.cfg.log {
            if let Err(e) = self.drop_log.retarget(&self.running.cfg.log) {
                warn!("drop log: {e:#}; it keeps its previous target");
            }
        }
        let cfg = &self.running.cfg;
        let result = json!({
            "config": cfg.source.display().to_string(),
            "generation": op.generation,
            "rules": cfg.rules.len(),
            "policy": cfg.rules.default_action().name(),
        });
        info!(
            "reloaded {} (generation {}): {} rules, policy {}; every connection kept",
            cfg.source.display(),
            op.generation,
            cfg.rules.len(),
            cfg.rules.default_action().name()
        );
        if let Some((c, id)) = op.client {
            self.finish_ok(c, id, &result);
        }
    }

    // ---- timeouts ----

    fn timeouts(&mut self, now: Instant) {
        let f = Failure::new(
            Code::Timeout,
            format!(
                "a worker did not answer within {} s",
                WORKER_TIMEOUT.as_secs()
            ),
        );
        let mut late = Vec::new();
        self.walks.retain(|w| {
            let waiting = w.state.contains(&WalkState::Waiting);
            let stale = waiting && now.duration_since(w.progress) > WORKER_TIMEOUT;
            if stale {
                late.push((w.client, w.id));
            }
            !stale
        });
        self.hits.retain(|h| {
            let stale = now.duration_since(h.started) > WORKER_TIMEOUT;
            if stale {
                late.push((h.client, h.id));
            }
            !stale
        });
        for (c, id) in late {
            self.finish_err(c, id, &f);
        }
        if let Some(op) = &mut self.reload {
            if now > op.deadline {
                // Keep waiting for the workers (the outcome is logged), but answer now.
                op.deadline = now + RELOAD_TIMEOUT;
                if let Some((c, id)) = op.client.take() {
                    let f = Failure::new(
                        Code::Timeout,
                        format!(
                            "the workers did not all take the new configuration within {} s; \
                             the reload completes when they do (see ctfw's log)",
                            RELOAD_TIMEOUT.as_secs()
                        ),
                    );
                    self.finish_err(c, id, &f);
                }
            }
        }
    }
}

/// The full ORIGINAL tuple a filter names, if it names one (both addresses bare, both ports
/// or the ICMP type, code and id, nothing else): a delete by tuple.
fn tuple_of(args: &FilterArgs, f: &Filter) -> Option<(Family, u8, Tuple)> {
    let (family, proto) = (f.family?, f.proto?);
    let addr = |a: &Option<String>| -> Option<u128> {
        match a.as_deref()?.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => Some(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Some(u128::from(v6)),
        }
    };
    let (src, dst) = (addr(&args.src)?, addr(&args.dst)?);
    let (sport, dport) = match (f.sport, f.dport, f.icmp_type, f.icmp_code, f.icmp_id) {
        (Some(s), Some(d), None, None, None) => (s, d),
        (None, None, Some(t), Some(c), Some(id)) => (id, (u16::from(t) << 8) | u16::from(c)),
        _ => return None,
    };
    if f.tcp_state.is_some() || f.assured.is_some() || f.unreplied.is_some() {
        return None;
    }
    Some((
        family,
        proto,
        Tuple {
            src,
            dst,
            sport,
            dport,
        },
    ))
}
