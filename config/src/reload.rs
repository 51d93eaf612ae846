//! What a reload may change. `ctfw reload` (and SIGHUP) validates the new file exactly as a
//! start does, then compares it with the running configuration: rules, the default policy,
//! tracking knobs and timeouts, fragment and non-IP policies and logging are swapped on every
//! worker between bursts; what is bound to memory, cores or devices at start cannot change
//! without a restart, and a file that changes it is refused as a whole, with each such key
//! named, while the running configuration stays in force.

use crate::Config;

/// One setting a reload cannot change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The key path, e.g. `ports` or `conntrack.capacity`.
    pub key: &'static str,
    /// Why it needs a restart.
    pub why: &'static str,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.key, self.why)
    }
}

impl Config {
    /// The settings `new` changes that a running instance cannot take without a restart
    /// (empty: `new` may replace `self` live).
    pub fn reload_refusals(&self, new: &Config) -> Vec<Refused> {
        let mut out = Vec::new();
        let mut check = |changed: bool, key: &'static str, why: &'static str| {
            if changed {
                out.push(Refused { key, why });
            }
        };
        let ports = "the ports, their devices and peers are set up at start";
        check(self.ports != new.ports, "ports", ports);
        check(self.engine.peers != new.engine.peers, "ports[].peer", ports);
        let dp = &self.dataplane;
        let nd = &new.dataplane;
        let eal = "the DPDK environment (cores, memory, queues, pools) is set up at start";
        check(dp.workers != nd.workers, "dataplane.workers", eal);
        check(dp.lcores != nd.lcores, "dataplane.lcores", eal);
        check(dp.main_lcore != nd.main_lcore, "dataplane.main_lcore", eal);
        check(dp.memory_mb != nd.memory_mb, "dataplane.memory_mb", eal);
        check(dp.hugepages != nd.hugepages, "dataplane.hugepages", eal);
        check(
            dp.file_prefix != nd.file_prefix,
            "dataplane.file_prefix",
            eal,
        );
        check(dp.burst != nd.burst, "dataplane.burst", eal);
        check(
            dp.rx_descriptors != nd.rx_descriptors,
            "dataplane.rx_descriptors",
            eal,
        );
        check(
            dp.tx_descriptors != nd.tx_descriptors,
            "dataplane.tx_descriptors",
            eal,
        );
        check(
            dp.mbufs_per_port != nd.mbufs_per_port,
            "dataplane.mbufs_per_port",
            eal,
        );
        check(dp.eal_args != nd.eal_args, "dataplane.eal_args", eal);
        check(
            self.engine.capacity != new.engine.capacity,
            "conntrack.capacity",
            "each worker's table is allocated at start",
        );
        check(
            self.engine.accounting != new.engine.accounting,
            "conntrack.accounting",
            "the accounting counters are allocated with the table at start",
        );
        check(
            self.control.socket != new.control.socket,
            "control.socket",
            "the control socket is bound at start",
        );
        check(
            self.metrics.listen != new.metrics.listen,
            "metrics.listen",
            "the metrics endpoint is bound at start",
        );
        out
    }
}
