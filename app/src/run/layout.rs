//! Which thread polls which queue: the RSS / software-distribution decision, per port.
//!
//! Each worker owns its connection table, so both directions of a flow must reach the same
//! worker. Per port:
//! - with one worker there is nothing to distribute: the worker polls the port's queues
//!   (`Direct`);
//! - a device that really hashes gets one RX queue per worker, the symmetric key and a RETA
//!   mapping hash bucket `j` to worker `(j % RETA_SPAN) % workers` (`Rss`): worker `i` polls
//!   queue `i` and sees both directions of its flows;
//! - a device that cannot hash (net_pcap, net_ring, net_tap, AF_PACKET, AF_XDP; and net_null,
//!   which accepts RSS settings but never hashes) is read by the distributor on the main
//!   lcore, which hashes each packet in software and hands it to its owner's ring
//!   (`Distributed`; the rule is [`ctfw_engine::rss::Dispatch`]).
//!
//! Every RX queue that is set up is polled: traffic may reach any of them (RSS spreads it,
//! a tap or an AF_PACKET fanout group spreads it over its queues, a `net_ring` queue returns
//! what its TX queue sent), so a queue nobody reads would lose packets.
//!
//! TX: a device with a TX queue per worker lets each worker transmit directly (`PerWorker`);
//! one with fewer (net_pcap has one per `tx_pcap`) gets a single TX queue fed through a ring
//! that the main lcore drains (`Shared`).
//!
//! Beyond the maxima `rte_eth_dev_info` states, some drivers constrain the plan
//! ([`QueueRules`], read from DPDK 22.11's sources): the plan stays within both, and never
//! fails where a working plan exists.

use std::ops::Range;

use ctfw_engine::rss::RETA_SPAN;
use rte::DevInfo;
use rte::sys;

/// RSS flow types ctfw asks for: IP, and TCP/UDP ports when unfragmented.
pub const RSS_HF: u64 = sys::RTE_ETH_RSS_IPV4
    | sys::RTE_ETH_RSS_FRAG_IPV4
    | sys::RTE_ETH_RSS_NONFRAG_IPV4_TCP
    | sys::RTE_ETH_RSS_NONFRAG_IPV4_UDP
    | sys::RTE_ETH_RSS_NONFRAG_IPV4_OTHER
    | sys::RTE_ETH_RSS_IPV6
    | sys::RTE_ETH_RSS_FRAG_IPV6
    | sys::RTE_ETH_RSS_NONFRAG_IPV6_TCP
    | sys::RTE_ETH_RSS_NONFRAG_IPV6_UDP
    | sys::RTE_ETH_RSS_NONFRAG_IPV6_OTHER;

/// What a port's RX side does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// The only worker polls every RX queue.
    Direct,
    /// Hardware symmetric RSS: worker `i` polls queue `i`.
    Rss,
    /// The distributor polls every RX queue and hashes in software.
    Distributed,
}

/// What a port's TX side does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    /// Worker `i` transmits on queue `i`.
    PerWorker,
    /// Workers enqueue to a ring; the main lcore transmits on queue 0.
    Shared,
}

/// The plan for one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    /// RX side.
    pub rx: RxMode,
    /// TX side.
    pub tx: TxMode,
    /// RX queues to configure.
    pub rx_queues: u16,
    /// TX queues to configure.
    pub tx_queues: u16,
    /// Why, in words, for the start-up report.
    pub why: String,
}

impl PortPlan {
    /// The RX queues worker `w` polls.
    pub fn worker_rx(&self, w: u16) -> Range<u16> {
        match self.rx {
            RxMode::Direct => 0..self.rx_queues,
            RxMode::Rss => w..w + 1,
            RxMode::Distributed => 0..0,
        }
    }

    /// The RX queues the distributor polls.
    pub fn distributor_rx(&self) -> Range<u16> {
        match self.rx {
            RxMode::Distributed => 0..self.rx_queues,
            RxMode::Direct | RxMode::Rss => 0..0,
        }
    }
}

/// Why a device cannot do ctfw's symmetric RSS, or `None` if it can.
pub fn rss_obstacle(info: &DevInfo, workers: u16) -> Option<String> {
    if info.driver_name == "net_null" {
        return Some("net_null accepts RSS settings but does not hash".into());
    }
    if info.hash_key_size == 0 {
        return Some("no settable RSS key".into());
    }
    let needed = sys::RTE_ETH_RSS_NONFRAG_IPV4_TCP | sys::RTE_ETH_RSS_NONFRAG_IPV4_UDP;
    if info.flow_type_rss_offloads & needed != needed {
        return Some("cannot hash TCP/UDP ports".into());
    }
    if info.max_rx_queues < workers {
        return Some(format!(
            "{} RX queues, {workers} workers",
            info.max_rx_queues
        ));
    }
    let reta = u32::from(info.reta_size);
    if reta < RETA_SPAN || !reta.is_power_of_two() {
        return Some(format!(
            "RETA of {reta} entries (need a power of two >= {RETA_SPAN})"
        ));
    }
    None
}

/// What a driver demands of the queue plan beyond the maxima of `rte_eth_dev_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueRules {
    /// `rte_eth_dev_configure` refuses unequal RX and TX queue counts.
    pub paired: bool,
    /// Traffic reaches every RX queue the device has, set up or not: all must be set up and
    /// polled.
    pub every_rx_queue: bool,
}

/// The queue rules of a driver (DPDK 22.11, `drivers/net/`).
pub fn queue_rules(driver: &str) -> QueueRules {
    match driver {
        // tap/rte_eth_tap.c, tap_dev_configure: "number of rx queues %d must be equal to
        // number of tx queues %d". The kernel spreads frames over the queues that are
        // opened (one per queue set up), so only those need polling.
        "net_tap" => QueueRules {
            paired: true,
            every_rx_queue: false,
        },
        // af_xdp/rte_eth_af_xdp.c, eth_dev_configure: "rx/tx must be paired" (-EINVAL).
        // Its `queue_count` queues are queues of the interface that the NIC steers traffic
        // to: one not set up has no socket, and what reaches it goes to the kernel instead
        // of through ctfw.
        "net_af_xdp" => QueueRules {
            paired: true,
            every_rx_queue: true,
        },
        // ring/rte_eth_ring.c, eth_dev_ring_create: queue `i` of a `net_ring` vdev is one
        // ring that TX enqueues to and RX dequeues from, so what is sent on TX queue `i` comes
        // back on RX queue `i`: each TX queue used needs its RX queue polled.
        "net_ring" => QueueRules {
            paired: true,
            every_rx_queue: false,
        },
        // af_packet/rte_eth_af_packet.c, rte_pmd_init_internals: one socket per `qpairs`
        // queue is opened at probe and joined to a PACKET_FANOUT_HASH group, so the kernel
        // spreads frames over all of them, set up or not.
        "net_af_packet" => QueueRules {
            paired: false,
            every_rx_queue: true,
        },
        _ => QueueRules::default(),
    }
}

/// Plan a port for `workers` workers.
pub fn plan_port(info: &DevInfo, workers: u16) -> PortPlan {
    let workers = workers.max(1);
    let rules = queue_rules(&info.driver_name);
    // Without RSS: one queue, or all the device has when traffic reaches all of them.
    let unhashed = if rules.every_rx_queue {
        info.max_rx_queues.max(1)
    } else {
        1
    };
    let (rx, mut rx_queues, rx_why) = if workers == 1 {
        (
            RxMode::Direct,
            unhashed,
            "one worker polls it directly".to_owned(),
        )
    } else {
        let obstacle = rss_obstacle(info, workers)
            .or_else(|| {
                (rules.paired && info.max_tx_queues < workers).then(|| {
                    format!(
                        "{} TX queues, {workers} workers, and RX and TX counts must be equal",
                        info.max_tx_queues
                    )
                })
            })
            .or_else(|| {
                (rules.every_rx_queue && info.max_rx_queues != workers).then(|| {
                    format!(
                        "traffic reaches all {} RX queues, {workers} workers",
                        info.max_rx_queues
                    )
                })
            });
        match obstacle {
            None => (
                RxMode::Rss,
                workers,
                format!("symmetric RSS over {workers} queues"),
            ),
            Some(why) => (
                RxMode::Distributed,
                unhashed,
                format!("software distribution ({why})"),
            ),
        }
    };
    // One TX queue per worker, or one fed through a ring.
    let mut tx_queues = if info.max_tx_queues >= workers {
        workers
    } else {
        1
    };
    let mut pair_why = String::new();
    if rules.paired && rx_queues != tx_queues {
        // Raise the smaller count to the larger: extra RX queues are polled like the others,
        // extra TX queues stay unused. (Paired drivers state equal maxima; were they not, the
        // smaller one would bound both. An RSS plan already has `workers` of each.)
        let limit = info.max_rx_queues.min(info.max_tx_queues).max(1);
        let n = rx_queues.max(tx_queues).min(limit);
        rx_queues = n;
        tx_queues = n;
        pair_why = format!(
            "; {} takes equal RX and TX queue counts: {n} of each",
            info.driver_name
        );
    }
    let tx = if tx_queues >= workers {
        TxMode::PerWorker
    } else {
        TxMode::Shared
    };
    let tx_why = match tx {
        TxMode::PerWorker => String::new(),
        TxMode::Shared => format!(
            "; {} TX queue(s) for {workers} workers: TX through a ring",
            info.max_tx_queues
        ),
    };
    let rx_why = if rx_queues > 1 && rx != RxMode::Rss {
        format!("{rx_why}, all {rx_queues} RX queues polled")
    } else {
        rx_why
    };
    PortPlan {
        rx,
        tx,
        rx_queues,
        tx_queues,
        why: format!("{rx_why}{tx_why}{pair_why}"),
    }
}

/// The RETA giving hash bucket `j` to worker `(j % RETA_SPAN) % workers`, like
/// [`ctfw_engine::rss::owner`].
pub fn reta(size: u16, workers: u16) -> Vec<u16> {
    (0..u32::from(size))
        .map(|j| ((j % RETA_SPAN) % u32::from(workers.max(1))) as u16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(driver: &str, key: u8, reta: u16, queues: u16) -> DevInfo {
        DevInfo {
            driver_name: driver.into(),
            max_rx_queues: queues,
            max_tx_queues: queues,
            hash_key_size: key,
            reta_size: reta,
            flow_type_rss_offloads: RSS_HF,
            ..DevInfo::default()
        }
    }

    #[test]
    fn one_worker_polls_directly() {
        let p = plan_port(&dev("net_pcap", 0, 0, 1), 1);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Direct, TxMode::PerWorker, 1, 1)
        );
    }

    #[test]
    fn hashing_nics_get_rss_and_others_software() {
        let p = plan_port(&dev("net_ice", 52, 512, 64), 4);
        assert_eq!((p.rx, p.rx_queues, p.tx_queues), (RxMode::Rss, 4, 4));
        let p = plan_port(&dev("net_null", 0, 128, 64), 4);
        assert_eq!(p.rx, RxMode::Distributed);
        assert!(p.why.contains("does not hash"), "{}", p.why);
        let p = plan_port(&dev("net_pcap", 0, 0, 1), 2);
        assert_eq!(
            (p.rx, p.tx, p.tx_queues),
            (RxMode::Distributed, TxMode::Shared, 1)
        );
        let p = plan_port(&dev("net_x", 40, 64, 8), 2);
        assert_eq!(
            p.rx,
            RxMode::Distributed,
            "RETA too small for the shared rule"
        );
    }

    /// The failure of issue 10: net_tap with two workers asked for 1 RX and 2 TX queues, which
    /// `tap_dev_configure` refuses.
    #[test]
    fn paired_drivers_get_equal_queue_counts() {
        let mut tap = dev("net_tap", 40, 0, 16);
        tap.flow_type_rss_offloads = RSS_HF;
        let p = plan_port(&tap, 2);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Distributed, TxMode::PerWorker, 2, 2),
            "{}",
            p.why
        );
        assert!(p.why.contains("equal RX and TX"), "{}", p.why);
        // AF_XDP with queue_count=1: one of each, TX through a ring.
        let p = plan_port(&dev("net_af_xdp", 0, 0, 1), 2);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Distributed, TxMode::Shared, 1, 1)
        );
        // queue_count=4 with two workers: all four interface queues are read.
        let p = plan_port(&dev("net_af_xdp", 0, 0, 4), 2);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Distributed, TxMode::PerWorker, 4, 4)
        );
        let p = plan_port(&dev("net_af_xdp", 0, 0, 2), 1);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Direct, TxMode::PerWorker, 2, 2)
        );
    }

    #[test]
    fn af_packet_queues_are_all_polled() {
        let p = plan_port(&dev("net_af_packet", 0, 0, 3), 1);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Direct, TxMode::PerWorker, 3, 1)
        );
        let p = plan_port(&dev("net_af_packet", 0, 0, 1), 2);
        assert_eq!(
            (p.rx, p.tx, p.rx_queues, p.tx_queues),
            (RxMode::Distributed, TxMode::Shared, 1, 1)
        );
    }

    /// Every plan stays within the device's maxima and its driver's rules, whatever the
    /// device offers and however many workers there are.
    #[test]
    fn every_plan_fits_the_device() {
        for driver in [
            "net_tap",
            "net_ring",
            "net_af_xdp",
            "net_af_packet",
            "net_pcap",
            "net_null",
            "net_ice",
        ] {
            for (key, reta) in [(0u8, 0u16), (40, 128), (52, 512)] {
                for max_rx in 1..=9u16 {
                    for max_tx in 1..=9u16 {
                        for workers in 1..=8u16 {
                            let mut d = dev(driver, key, reta, max_rx);
                            d.max_tx_queues = max_tx;
                            let rules = queue_rules(driver);
                            if rules.paired && max_rx != max_tx {
                                continue; // such drivers state equal maxima
                            }
                            let p = plan_port(&d, workers);
                            let ctx = format!("{driver} {max_rx}/{max_tx} x{workers}: {p:?}");
                            assert!((1..=max_rx).contains(&p.rx_queues), "{ctx}");
                            assert!((1..=max_tx).contains(&p.tx_queues), "{ctx}");
                            assert!(!rules.paired || p.rx_queues == p.tx_queues, "{ctx}");
                            assert!(!rules.every_rx_queue || p.rx_queues == max_rx, "{ctx}");
                            assert_eq!(p.tx == TxMode::PerWorker, p.tx_queues >= workers, "{ctx}");
                            match p.rx {
                                RxMode::Direct => assert_eq!(workers, 1, "{ctx}"),
                                RxMode::Rss => assert_eq!(p.rx_queues, workers, "{ctx}"),
                                RxMode::Distributed => assert!(workers > 1, "{ctx}"),
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn reta_agrees_with_the_software_owner_rule() {
        for size in [128u16, 512] {
            let t = reta(size, 3);
            for h in [0u32, 1, 5, 127, 128, 1000, 0xdead_beef] {
                let hw = t[(h % u32::from(size)) as usize];
                assert_eq!(u32::from(hw), ctfw_engine::rss::owner(h, 3));
            }
        }
    }
}
