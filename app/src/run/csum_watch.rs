//! The bad-checksum watch: a rate-limited warning when a port's traffic fails its TCP/UDP
//! checksums wholesale, naming the port and the fix.
//!
//! Why: a sender on the same host with checksum offload (a veth or tap peer: a network
//! namespace, a container, a VM) hands its frames over with the TCP/UDP checksum field
//! unfinished (Linux `CHECKSUM_PARTIAL`). Linux's own conntrack skips such packets, and ctfw
//! does too when the device says so ([`CksumStatus::DataValid`](rte::CksumStatus)); but DPDK
//! 22.11's `net_af_packet` and `net_af_xdp` drivers do not pass the kernel's knowledge on, so
//! every such packet is INVALID (`tcp_bad_checksum`) and nothing connects. ctfw cannot repair
//! that from the data; it can say clearly what is happening.
//!
//! How: each worker counts, per ingress port, the packets that reached connection tracking
//! and those INVALID for a bad TCP or UDP checksum (`tracked` and `bad_checksum` of its
//! [`PortVerdicts`]) and publishes them with its other counters. The main lcore sums them
//! about once a second; a port whose window (up to [`WINDOW`]) holds at least [`MIN_BAD`] such
//! packets making up at least half of what it tracked is named in a warning, at most once per
//! [`WINDOW`] per port.
//! A handful of corrupted packets on a busy link stays far below the threshold; a sender whose
//! every checksum is partial is far above it.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;

use super::ports::{PortSetup, iface_of};
use super::worker::{PortVerdicts, Shared};

/// The longest window of counts the watch judges, and the shortest time between two warnings
/// about one port.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Bad-checksum packets a window needs before the watch says anything.
pub const MIN_BAD: u64 = 5;
/// How often the main lcore looks.
const EVERY: Duration = Duration::from_secs(1);

/// The main lcore's side: per port, the counts at the start of its window.
pub struct ChecksumWatch {
    ports: Vec<Watched>,
    last_look: Instant,
}

struct Watched {
    name: String,
    device: String,
    driver: String,
    base: PortVerdicts,
    since: Instant,
    warned: Option<Instant>,
}

/// What the watch found wrong with one port.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the port.
    pub port: usize,
    /// Bad-checksum packets in the window.
    pub bad: u64,
    /// Packets tracked in the window.
    pub tracked: u64,
    /// The window's length.
    pub over: Duration,
}

impl ChecksumWatch {
    /// A watch over `ports`, starting now.
    pub fn new(ports: &[PortSetup], now: Instant) -> ChecksumWatch {
        let named = ports.iter().map(|p| (&*p.name, &*p.device, &*p.driver));
        ChecksumWatch::of(named, now)
    }

    fn of<'a>(ports: impl Iterator<Item = (&'a str, &'a str, &'a str)>, now: Instant) -> Self {
        ChecksumWatch {
            ports: ports
                .map(|(name, device, driver)| Watched {
                    name: name.to_owned(),
                    device: device.to_owned(),
                    driver: driver.to_owned(),
                    base: PortVerdicts::default(),
                    since: now,
                    warned: None,
                })
                .collect(),
            last_look: now,
        }
    }

    /// About once a second: sum the workers' published counts and log a warning for each
    /// port found wanting.
    pub fn poll(&mut self, now: Instant, workers: &[Arc<Shared>]) {
        if now.duration_since(self.last_look) < EVERY {
            return;
        }
        self.last_look = now;
        let mut totals = vec![PortVerdicts::default(); self.ports.len()];
        for w in workers {
            let snapshot = w.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            for (t, c) in totals.iter_mut().zip(&snapshot.by_port) {
                t.tracked += c.tracked;
                t.bad_checksum += c.bad_checksum;
            }
        }
        for f in self.check(&totals, now) {
            warn!("{}", self.message(&f));
        }
    }

    /// Judge each port's window against the cumulative `totals`; the findings to warn about.
    fn check(&mut self, totals: &[PortVerdicts], now: Instant) -> Vec<Finding> {
        let mut found = Vec::new();
        for (port, (w, t)) in self.ports.iter_mut().zip(totals).enumerate() {
            let bad = t.bad_checksum.saturating_sub(w.base.bad_checksum);
            let tracked = t.tracked.saturating_sub(w.base.tracked);
            let over = now.duration_since(w.since);
            let quiet = w.warned.is_none_or(|at| now.duration_since(at) >= WINDOW);
            if quiet && bad >= MIN_BAD && bad.saturating_mul(2) >= tracked {
                found.push(Finding {
                    port,
                    bad,
                    tracked,
                    over,
                });
                w.warned = Some(now);
            } else if over < WINDOW {
                continue;
            }
            w.base = *t;
            w.since = now;
        }
        found
    }

    /// The warning for `f`: the port, what was seen, the likely cause, the fix.
    fn message(&self, f: &Finding) -> String {
        let p = &self.ports[f.port];
        let iface = iface_of(&p.device);
        let sender = match iface {
            Some(i) => format!("the interface that sends into {i} (for a veth, its other end)"),
            None => "the sending interface".to_owned(),
        };
        let driver = if matches!(p.driver.as_str(), "net_af_packet" | "net_af_xdp") {
            format!("the {} driver does not report partial checksums", p.driver)
        } else {
            format!("the {} driver did not report them as partial", p.driver)
        };
        format!(
            "port {} ({}): {} of the {} packets it delivered to connection tracking in the last \
             {} s failed their TCP/UDP checksum and are INVALID (tcp_bad_checksum, \
             udp_bad_checksum): with the usual rules, nothing connects. If they come from a \
             sender on this host with checksum offload (a veth or tap peer: a network \
             namespace, a container, a VM), their checksums are only partial and {driver}: \
             turn TX checksum offload off on {sender}, e.g. `ethtool -K IFACE tx off`. \
             Otherwise check the senders and the path for corruption. (Said at most once a \
             minute per port.)",
            p.name,
            p.device,
            f.bad,
            f.tracked,
            f.over.as_secs().max(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(t0: Instant) -> ChecksumWatch {
        let ports = [
            ("inside", "net_af_packet0,iface=veth-in", "net_af_packet"),
            ("outside", "0000:03:00.1", "net_ixgbe"),
        ];
        ChecksumWatch::of(ports.into_iter(), t0)
    }

    fn at(bad: u64, tracked: u64) -> PortVerdicts {
        PortVerdicts {
            tracked,
            bad_checksum: bad,
            ..PortVerdicts::default()
        }
    }

    #[test]
    fn a_port_whose_checksums_mostly_fail_is_named_once_a_minute() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = watch(t0);
        // Fewer than MIN_BAD: nothing yet, whatever the share.
        assert!(w.check(&[at(4, 4), at(0, 0)], t0 + s(2)).is_empty());
        // The fifth, still all of what was tracked: port 0 named.
        let found = w.check(&[at(5, 6), at(0, 100)], t0 + s(3));
        assert_eq!(
            found,
            [Finding {
                port: 0,
                bad: 5,
                tracked: 6,
                over: s(3)
            }]
        );
        let text = w.message(&found[0]);
        for part in [
            "port inside (net_af_packet0,iface=veth-in)",
            "5 of the 6 packets",
            "tcp_bad_checksum",
            "the net_af_packet driver does not report partial checksums",
            "sends into veth-in",
            "ethtool -K IFACE tx off",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        // Still failing: silent until a minute after the warning, then said again.
        assert!(w.check(&[at(50, 50), at(0, 100)], t0 + s(30)).is_empty());
        let again = w.check(&[at(100, 101), at(0, 100)], t0 + s(63));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].bad, again[0].tracked), (95, 95)); // since the last warning
    }

    #[test]
    fn a_few_bad_checksums_in_good_traffic_say_nothing() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = watch(t0);
        // 40 bad among 1000 on a NIC: below half.
        assert!(w.check(&[at(0, 0), at(40, 1000)], t0 + s(10)).is_empty());
        // A window closes after a minute: old counts do not add up to a false alarm later.
        assert!(w.check(&[at(3, 3), at(40, 1000)], t0 + s(61)).is_empty());
        assert!(w.check(&[at(7, 8), at(40, 1000)], t0 + s(70)).is_empty());
    }
}
