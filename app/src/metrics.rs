//! `/metrics`: the live statistics ([`crate::stats`]) in the Prometheus text exposition
//! format, served over HTTP when `metrics.listen` is set.
//!
//! Threads and cost: `ctfw run` takes the address with [`bind`] before DPDK starts, so an
//! address in use is a clear start-up error; [`serve`] starts the HTTP server (`tiny_http`)
//! from the main lcore once the EAL has pinned it, so the server's threads inherit the main
//! lcore's CPU and never run on a worker's. A scrape asks the [`Board`] for a fresh snapshot
//! (waiting at most [`FRESH_WAIT`]) and encodes it; it never reaches a worker, whose only
//! part is the snapshot it publishes every ~100 ms anyway.
//!
//! Encoding is the official `prometheus-client` crate's, in the Prometheus text format 0.0.4
//! (`promtool check metrics` validates it in the end-to-end test). Names follow Prometheus'
//! conventions: the `ctfw_` prefix, base units in the name (`_bytes`, `_seconds`, `_ratio`),
//! counters ending in `_total`, one metric per quantity with the dimensions as labels:
//! `worker` (index), `port` and `pool` (configuration names), `verdict` (`accepted`,
//! `dropped`), `reason` ([`ctfw_engine::Reason::name`] or [`ctfw_engine::Ignored::name`], every
//! reason of the class present, zeros included), `rule` (rule names), `result`, `source`, `path`, `entry` and `stat` (a
//! DPDK extended counter's name). Engine metrics are per worker: sum them by the other
//! labels for the whole firewall.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `ctfw_packets_total` | counter | worker, port, verdict | packets the engine decided, by ingress port |
//! | `ctfw_packet_bytes_total` | counter | worker, port, verdict | their bytes (frame lengths) |
//! | `ctfw_dropped_packets_total` | counter | worker, reason | drops by reason (`table_full`: the table was full) |
//! | `ctfw_invalid_packets_total` | counter | worker, reason | INVALID verdicts by reason (the rules then decided) |
//! | `ctfw_ignored_packets_total` | counter | worker, reason | packets tracking let through without updating their connection, by reason ([`ctfw_engine::Ignored::name`]: `tcp_ack_under_window` for blind ACKs, `tcp_unmatched_synack`, ...; the rules then decided) |
//! | `ctfw_rule_hits_total` | counter | worker, rule | packets decided by each rule |
//! | `ctfw_default_policy_hits_total` | counter | worker | packets no rule matched |
//! | `ctfw_conntrack_entries` | gauge | worker, proto, state | connection table entries in use, by protocol (`tcp`, `udp`, `icmp`, `icmpv6`, `gre`, `other`) and TCP state (empty for the other protocols) |
//! | `ctfw_conntrack_entries_limit` | gauge | worker | entries the table can hold |
//! | `ctfw_conntrack_fill_ratio` | gauge | worker | entries / limit |
//! | `ctfw_conntrack_created_total` | counter | worker | connections created |
//! | `ctfw_conntrack_expired_total` | counter | worker | connections removed on timeout |
//! | `ctfw_conntrack_closed_total` | counter | worker | connections removed early by protocol logic |
//! | `ctfw_conntrack_evicted_total` | counter | worker, entry | entries evicted under pressure: `unassured`, or `closing` (ASSURED, TCP closing) |
//! | `ctfw_conntrack_deleted_total` | counter | worker | entries deleted by an operator |
//! | `ctfw_conntrack_sweep_examined_total` | counter | worker | table slots the sweeper examined |
//! | `ctfw_conntrack_events_lost_total` | counter | worker | connection events lost (event queue full while someone listens) |
//! | `ctfw_log_records_total` | counter | worker | packet log records written |
//! | `ctfw_log_suppressed_total` | counter | worker | packet log records suppressed by the rate limit |
//! | `ctfw_worker_polls_total` | counter | worker, result | rounds that were `busy` or `idle` |
//! | `ctfw_worker_poll_seconds_total` | counter | worker, result | time in busy or idle rounds |
//! | `ctfw_worker_busy_ratio` | gauge | worker | share of time busy since the previous snapshot |
//! | `ctfw_worker_received_packets_total` | counter | worker, source | received from its RX queues (`port`) or input ring (`ring`) |
//! | `ctfw_worker_transmitted_packets_total` | counter | worker, path | handed to its TX queues (`port`) or shared TX rings (`ring`) |
//! | `ctfw_worker_tx_dropped_packets_total` | counter | worker | accepted but refused by the device: freed |
//! | `ctfw_worker_icmp_redispatch_total` | counter | worker, result | ICMP errors for another worker's flow: `handed_over` or `dropped` |
//! | `ctfw_distributor_received_packets_total` | counter | | received by the main lcore's software distributor |
//! | `ctfw_distributor_dropped_packets_total` | counter | | freed by the distributor: the owner's ring was full |
//! | `ctfw_shared_tx_transmitted_packets_total` | counter | | sent by the main lcore from the shared TX rings |
//! | `ctfw_shared_tx_dropped_packets_total` | counter | | from the shared TX rings, refused by the device: freed |
//! | `ctfw_port_receive_packets_total` | counter | port | DPDK `ipackets` |
//! | `ctfw_port_transmit_packets_total` | counter | port | DPDK `opackets` |
//! | `ctfw_port_receive_bytes_total` | counter | port | DPDK `ibytes` |
//! | `ctfw_port_transmit_bytes_total` | counter | port | DPDK `obytes` |
//! | `ctfw_port_receive_missed_packets_total` | counter | port | DPDK `imissed`: RX queue full |
//! | `ctfw_port_receive_errors_total` | counter | port | DPDK `ierrors` |
//! | `ctfw_port_transmit_errors_total` | counter | port | DPDK `oerrors` |
//! | `ctfw_port_receive_nombuf_total` | counter | port | DPDK `rx_nombuf`: no mbuf for RX |
//! | `ctfw_port_xstat` | untyped | port, stat | each DPDK extended counter, under its driver's name |
//! | `ctfw_mempool_mbufs` | gauge | port, pool | mbufs in the port's packet pool |
//! | `ctfw_mempool_mbufs_in_use` | gauge | port, pool | of those, out of the pool |
//!
//! Entries by protocol and state come from counts each table keeps up to date as entries
//! come, go and change state; a scrape never scans a table.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tiny_http::{Header, Method, Response};
use tracing::{info, warn};

use crate::stats::{Board, DeviceStats, Stats};

/// The path the exposition is served on.
pub const PATH: &str = "/metrics";
/// How long a scrape waits for the main lcore's fresh snapshot before taking the latest.
pub const FRESH_WAIT: Duration = Duration::from_millis(500);

/// The metrics address, taken but not yet served.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Take `addr` for the HTTP server (`metrics.listen`).
pub fn bind(addr: SocketAddr) -> Result<Listener> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!(
            "metrics.listen: cannot listen on {addr} for {PATH}: is another process (or \
             another ctfw) using that address? Choose another one, or remove metrics.listen \
             to run without the Prometheus endpoint"
        )
    })?;
    let addr = listener.local_addr().unwrap_or(addr);
    Ok(Listener { listener, addr })
}

/// The running HTTP server. Dropping it stops it.
pub struct Server {
    http: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// Serve `board`'s statistics at `http://ADDR/metrics` on its own thread (see the module doc
/// for which CPU it runs on).
pub fn serve(listener: Listener, board: Arc<Board>) -> Result<Server> {
    let Listener { listener, addr } = listener;
    let http = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot serve on {addr}: {e}"))?;
    let http = Arc::new(http);
    let thread = {
        let http = Arc::clone(&http);
        std::thread::Builder::new()
            .name("ctfw-metrics".into())
            .spawn(move || answer(&http, &board))
            .context("cannot start the metrics thread")?
    };
    info!("metrics: serving http://{addr}{PATH}");
    Ok(Server {
        http,
        thread: Some(thread),
        addr,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                warn!("metrics: the server thread panicked");
            }
        }
    }
}

/// Answer requests until the server is unblocked.
fn answer(http: &tiny_http::Server, board: &Board) {
    for request in http.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let readable = matches!(request.method(), Method::Get | Method::Head);
        let response = match (path, readable) {
            (PATH, true) => text(
                200,
                encode(board.fresh(FRESH_WAIT)),
                prometheus_text::CONTENT_TYPE,
            ),
            ("/", true) => text(
                200,
                format!("ctfw: Prometheus metrics at {PATH}\n"),
                "text/plain; charset=utf-8",
            ),
            (PATH | "/", false) => text(405, "use GET\n".into(), "text/plain; charset=utf-8"),
            _ => text(404, "not found\n".into(), "text/plain; charset=utf-8"),
        };
        // An error here means the client went away: nothing to do.
        let _ = request.respond(response);
    }
}

fn text(status: u16, body: String, content_type: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r = Response::from_string(body).with_status_code(status);
    if let Ok(h) = Header::from_bytes("Content-Type", content_type) {
        r.add_header(h);
    }
    r
}

/// `stats` in the Prometheus text format.
pub fn encode(stats: Arc<Stats>) -> String {
    let mut registry = Registry::with_prefix("ctfw");
    registry.register_collector(Box::new(Exposition(stats)));
    let mut out = String::new();
    // Writing to a String cannot fail, and the collector only fails when its writer does.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

/// One snapshot, as a collector the registry encodes.
#[derive(Debug)]
struct Exposition(Arc<Stats>);

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &*self.0;
        let e = &mut enc;
        let workers: Vec<String> = s.workers.iter().map(|w| w.worker.to_string()).collect();
        let per_worker = || s.workers.iter().zip(&workers);

        // Packets and bytes by ingress port and verdict.
        let by_port = |bytes: bool| {
            per_worker().flat_map(move |(w, id)| {
                w.ports.iter().flat_map(move |p| {
                    let (a, d) = if bytes {
                        (p.accepted_bytes, p.dropped_bytes)
                    } else {
                        (p.accepted_packets, p.dropped_packets)
                    };
                    [("accepted", a), ("dropped", d)].map(|(verdict, n)| {
                        (
                            [
                                ("worker", id.as_str()),
                                ("port", p.port.as_str()),
                                ("verdict", verdict),
                            ],
                            n,
                        )
                    })
                })
            })
        };
        counter(
            e,
            "packets",
            "Packets the engine decided, by ingress port and verdict.",
            None,
            by_port(false),
        )?;
        counter(
            e,
            "packet",
            "Bytes (frame lengths) of the packets the engine decided, by ingress port and verdict.",
            Some(&Unit::Bytes),
            by_port(true),
        )?;

        // Reasons and rules.
        counter(
            e,
            "dropped_packets",
            "Packets dropped, by reason (table_full: the connection table was full).",
            None,
            per_worker().flat_map(|(w, id)| {
                w.counters
                    .dropped_by_reason
                    .iter()
                    .map(move |(r, &n)| ([("worker", id.as_str()), ("reason", r.as_str())], n))
            }),
        )?;
        counter(
            e,
            "invalid_packets",
            "Packets connection tracking judged INVALID, by reason (the rules then decided).",
            None,
            per_worker().flat_map(|(w, id)| {
                w.counters
                    .invalid_by_reason
                    .iter()
                    .map(move |(r, &n)| ([("worker", id.as_str()), ("reason", r.as_str())], n))
            }),
        )?;
        counter(
            e,
            "ignored_packets",
            "Packets connection tracking let through without updating their connection, by \
             reason (blind ACKs below the window, unmatched SYN/ACKs, ...; the rules then decided).",
            None,
            per_worker().flat_map(|(w, id)| {
                w.counters
                    .ignored_by_reason
                    .iter()
                    .map(move |(r, &n)| ([("worker", id.as_str()), ("reason", r.as_str())], n))
            }),
        )?;
        counter(
            e,
            "rule_hits",
            "Packets decided by each rule.",
            None,
            per_worker().flat_map(|(w, id)| {
                w.rule_hits.rules.iter().map(move |h| {
                    (
                        [("worker", id.as_str()), ("rule", h.rule.as_str())],
                        h.packets,
                    )
                })
            }),
        )?;
        counter(
            e,
            "default_policy_hits",
            "Packets no rule matched, decided by the default policy.",
            None,
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.rule_hits.default_policy)),
        )?;

        // The connection tables.
        let table = |f: fn(&crate::stats::Table) -> u64| {
            per_worker().map(move |(w, id)| ([("worker", id.as_str())], f(&w.table)))
        };
        gauge(
            e,
            "conntrack_entries",
            "Connection table entries in use, by protocol and TCP state (state is empty for the other protocols).",
            per_worker().flat_map(|(w, id)| {
                w.table.by_state.iter().map(move |c| {
                    (
                        [
                            ("worker", id.as_str()),
                            ("proto", c.proto.as_str()),
                            ("state", c.state.as_str()),
                        ],
                        c.entries,
                    )
                })
            }),
        )?;
        gauge(
            e,
            "conntrack_entries_limit",
            "Entries the connection table can hold.",
            table(|t| t.capacity),
        )?;
        gauge(
            e,
            "conntrack_fill_ratio",
            "Connection table entries in use, as a share of the limit.",
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.table.fill)),
        )?;
        let connections = |f: fn(&crate::json::Connections) -> u64| {
            per_worker().map(move |(w, id)| ([("worker", id.as_str())], f(&w.counters.connections)))
        };
        counter(
            e,
            "conntrack_created",
            "Connections created.",
            None,
            connections(|c| c.created),
        )?;
        counter(
            e,
            "conntrack_expired",
            "Connections removed because they timed out.",
            None,
            connections(|c| c.expired),
        )?;
        counter(
            e,
            "conntrack_closed",
            "Connections removed early by protocol logic (RST answering a SYN, re-opened connections).",
            None,
            connections(|c| c.closed),
        )?;
        counter(
            e,
            "conntrack_evicted",
            "Entries evicted under table pressure: unassured, or ASSURED entries of closing TCP connections.",
            None,
            per_worker().flat_map(|(w, id)| {
                let c = &w.counters.connections;
                [("unassured", c.evicted), ("closing", c.evicted_closing)]
                    .map(|(entry, n)| ([("worker", id.as_str()), ("entry", entry)], n))
            }),
        )?;
        counter(
            e,
            "conntrack_deleted",
            "Entries deleted by an operator (ctfw conntrack delete or flush).",
            None,
            connections(|c| c.deleted),
        )?;
        counter(
            e,
            "conntrack_sweep_examined",
            "Table slots the sweeper examined (its work, bounded per round).",
            None,
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.counters.sweep_examined)),
        )?;
        counter(
            e,
            "conntrack_events_lost",
            "Connection events lost because a worker's event queue was full (while someone listens).",
            None,
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.counters.events_lost)),
        )?;
        counter(
            e,
            "log_records",
            "Packet log records written by rules and the default policy with log enabled.",
            None,
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.counters.logged)),
        )?;
        counter(
            e,
            "log_suppressed",
            "Packet log records the rate limit (log.rate, log.burst) or a full queue suppressed.",
            None,
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.counters.log_suppressed)),
        )?;

        // The workers' rounds and I/O.
        counter(
            e,
            "worker_polls",
            "Worker rounds that received or transmitted packets (busy) or found nothing (idle).",
            None,
            per_worker().flat_map(|(w, id)| {
                [("busy", w.polls.busy), ("idle", w.polls.idle)]
                    .map(|(result, n)| ([("worker", id.as_str()), ("result", result)], n))
            }),
        )?;
        counter(
            e,
            "worker_poll",
            "Time workers spent in busy or idle rounds.",
            Some(&Unit::Seconds),
            per_worker().flat_map(|(w, id)| {
                [
                    ("busy", w.polls.busy_seconds),
                    ("idle", w.polls.idle_seconds),
                ]
                .map(|(result, n)| ([("worker", id.as_str()), ("result", result)], n))
            }),
        )?;
        gauge(
            e,
            "worker_busy_ratio",
            "Share of a worker's time spent in busy rounds, over the last statistics interval.",
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.polls.busy_ratio)),
        )?;
        counter(
            e,
            "worker_received_packets",
            "Packets a worker received from its RX queues (port) or its input ring (ring).",
            None,
            per_worker().flat_map(|(w, id)| {
                [
                    ("port", w.io.received_from_ports),
                    ("ring", w.io.received_from_ring),
                ]
                .map(|(source, n)| ([("worker", id.as_str()), ("source", source)], n))
            }),
        )?;
        counter(
            e,
            "worker_transmitted_packets",
            "Packets a worker handed to its TX queues (port) or to shared TX rings (ring).",
            None,
            per_worker().flat_map(|(w, id)| {
                [
                    ("port", w.io.transmitted_to_ports),
                    ("ring", w.io.transmitted_to_rings),
                ]
                .map(|(path, n)| ([("worker", id.as_str()), ("path", path)], n))
            }),
        )?;
        counter(
            e,
            "worker_tx_dropped_packets",
            "Accepted packets the device or a full TX buffer refused: freed.",
            None,
            per_worker().map(|(w, id)| ([("worker", id.as_str())], w.io.tx_dropped)),
        )?;
        counter(
            e,
            "worker_icmp_redispatch",
            "ICMP errors quoting another worker's flow: handed over to it, or dropped on its full ring.",
            None,
            per_worker().flat_map(|(w, id)| {
                [
                    ("handed_over", w.io.icmp_errors_redispatched),
                    ("dropped", w.io.icmp_errors_redispatch_dropped),
                ]
                .map(|(result, n)| ([("worker", id.as_str()), ("result", result)], n))
            }),
        )?;

        // The main lcore.
        let m = &s.main;
        let one = |n: u64| [(NO_LABELS, n)];
        counter(
            e,
            "distributor_received_packets",
            "Packets the main lcore's software distributor received.",
            None,
            one(m.distributor_received),
        )?;
        counter(
            e,
            "distributor_dropped_packets",
            "Packets the distributor freed because the owning worker's ring was full.",
            None,
            one(m.distributor_ring_full_dropped),
        )?;
        counter(
            e,
            "shared_tx_transmitted_packets",
            "Packets the main lcore sent from the shared TX rings.",
            None,
            one(m.transmitted),
        )?;
        counter(
            e,
            "shared_tx_dropped_packets",
            "Packets from the shared TX rings the device refused: freed.",
            None,
            one(m.tx_dropped),
        )?;

        // The ports: DPDK's counters, and the packet pools.
        let device = |f: fn(&DeviceStats) -> u64| {
            s.ports
                .iter()
                .filter_map(move |p| Some(([("port", p.name.as_str())], f(p.stats.as_ref()?))))
        };
        for (name, bytes, help, f) in DEVICE_COUNTERS {
            counter(e, name, help, bytes.then_some(&Unit::Bytes), device(f))?;
        }
        family(
            e,
            "port_xstat",
            "DPDK extended counters of the device, by the driver's name for them.",
            None,
            MetricType::Unknown,
            s.ports.iter().flat_map(|p| {
                p.xstats.iter().map(move |(stat, &n)| {
                    (
                        [("port", p.name.as_str()), ("stat", stat.as_str())],
                        ConstGauge::new(n),
                    )
                })
            }),
        )?;
        let pools = |f: fn(&crate::stats::Mempool) -> u32| {
            s.ports.iter().map(move |p| {
                (
                    [("port", p.name.as_str()), ("pool", p.mempool.name.as_str())],
                    f(&p.mempool),
                )
            })
        };
        gauge(
            e,
            "mempool_mbufs",
            "Mbufs in the port's packet pool.",
            pools(|m| m.size),
        )?;
        gauge(
            e,
            "mempool_mbufs_in_use",
            "Mbufs out of the port's packet pool (in device queues, rings and buffers).",
            pools(|m| m.in_use),
        )?;
        Ok(())
    }
}

/// One of DPDK's basic port counters: its metric name (before the unit and `_total`),
/// whether it counts bytes, its help, and its field.
type DeviceCounter = (&'static str, bool, &'static str, fn(&DeviceStats) -> u64);

const DEVICE_COUNTERS: [DeviceCounter; 8] = [
    (
        "port_receive_packets",
        false,
        "Packets the device received (DPDK ipackets).",
        |d| d.rx_packets,
    ),
    (
        "port_transmit_packets",
        false,
        "Packets the device sent (DPDK opackets).",
        |d| d.tx_packets,
    ),
    (
        "port_receive",
        true,
        "Bytes the device received (DPDK ibytes).",
        |d| d.rx_bytes,
    ),
    (
        "port_transmit",
        true,
        "Bytes the device sent (DPDK obytes).",
        |d| d.tx_bytes,
    ),
    (
        "port_receive_missed_packets",
        false,
        "Packets the device dropped because its RX queue was full (DPDK imissed).",
        |d| d.rx_missed,
    ),
    (
        "port_receive_errors",
        false,
        "Receive errors (DPDK ierrors).",
        |d| d.rx_errors,
    ),
    (
        "port_transmit_errors",
        false,
        "Transmit errors (DPDK oerrors).",
        |d| d.tx_errors,
    ),
    (
        "port_receive_nombuf",
        false,
        "Receives that failed for want of an mbuf (DPDK rx_nombuf).",
        |d| d.rx_nombuf,
    ),
];

/// The label set of a metric without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// One metric `name` of `kind`, with one sample per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter (the encoder adds the unit and `_total` to `name`).
fn counter<L: EncodeLabelSet, V: EncodeCounterValue>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    family(
        e,
        name,
        help,
        unit,
        MetricType::Counter,
        samples.into_iter().map(|(l, n)| (l, ConstCounter::new(n))),
    )
}

/// A gauge.
fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    family(
        e,
        name,
        help,
        None,
        MetricType::Gauge,
        samples.into_iter().map(|(l, n)| (l, ConstGauge::new(n))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tests::sample;

    /// The samples of `text` whose name is `name`, as (labels, value).
    fn samples<'t>(text: &'t str, name: &str) -> Vec<(&'t str, &'t str)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (n, labels) = series.split_once('{').unwrap_or((series, ""));
                (n == name).then_some((labels.trim_end_matches('}'), value))
            })
            .collect()
    }

    #[test]
    fn every_part_of_a_snapshot_is_exposed_under_conventional_names() {
        let text = encode(Arc::new(sample()));
        assert!(
            text.contains("# TYPE ctfw_packets_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ctfw_packet_bytes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ctfw_worker_poll_seconds_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ctfw_port_xstat untyped\n"), "{text}");
        assert!(
            text.contains("# TYPE ctfw_conntrack_entries gauge\n"),
            "{text}"
        );
        assert_eq!(
            samples(&text, "ctfw_packets_total"),
            [
                (r#"worker="0",port="inside",verdict="accepted""#, "10"),
                (r#"worker="0",port="inside",verdict="dropped""#, "1"),
            ]
        );
        assert!(
            samples(&text, "ctfw_dropped_packets_total")
                .contains(&(r#"worker="0",reason="rule_drop""#, "1"))
        );
        assert!(
            samples(&text, "ctfw_dropped_packets_total")
                .contains(&(r#"worker="0",reason="table_full""#, "0"))
        );
        assert!(
            samples(&text, "ctfw_invalid_packets_total")
                .contains(&(r#"worker="0",reason="tcp_bad_flags""#, "1"))
        );
        let ignored = samples(&text, "ctfw_ignored_packets_total");
        assert!(ignored.contains(&(r#"worker="0",reason="tcp_ack_under_window""#, "1")));
        assert!(ignored.contains(&(r#"worker="0",reason="tcp_unmatched_synack""#, "0")));
        assert_eq!(
            ignored.len(),
            ctfw_engine::Ignored::COUNT,
            "every reason, zeros too"
        );
        assert_eq!(
            samples(&text, "ctfw_rule_hits_total"),
            [(r#"worker="0",rule="established""#, "12")]
        );
        assert_eq!(
            samples(&text, "ctfw_conntrack_entries_limit"),
            [(r#"worker="0""#, "1024")]
        );
        assert_eq!(
            samples(&text, "ctfw_worker_busy_ratio"),
            [(r#"worker="0""#, "0.25")]
        );
        assert_eq!(
            samples(&text, "ctfw_port_receive_packets_total"),
            [(r#"port="inside""#, "11")]
        );
        assert_eq!(
            samples(&text, "ctfw_port_xstat"),
            [
                (r#"port="inside",stat="rx_errors""#, "0"),
                (r#"port="inside",stat="rx_good_packets""#, "11"),
            ]
        );
        assert_eq!(
            samples(&text, "ctfw_mempool_mbufs_in_use"),
            [(r#"port="inside",pool="ctfw_p0""#, "191")]
        );
        assert_eq!(
            samples(&text, "ctfw_distributor_received_packets_total"),
            [("", "0")]
        );
    }

    #[test]
    fn an_empty_snapshot_still_encodes() {
        let text = encode(Arc::new(Stats::default()));
        assert!(
            text.contains("# TYPE ctfw_packets_total counter\n"),
            "{text}"
        );
        assert!(samples(&text, "ctfw_packets_total").is_empty());
    }

    #[test]
    fn a_taken_address_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = format!("{:#}", bind(addr).expect_err("in use"));
        assert!(
            err.contains("metrics.listen") && err.contains(&addr.to_string()),
            "{err}"
        );
    }
}
