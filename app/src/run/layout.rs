//! Which thread polls which queue: the RSS / software-distribution decision, per port.
//!
//! Each worker owns its connection table, so both directions of a flow must reach the same
//! worker. Per port:
//! - with one worker there is nothing to distribute: the worker polls queue 0 (`Direct`);
//! - a device that really hashes gets one RX queue per worker, the symmetric key and a RETA
//!   mapping hash bucket `j` to worker `(j % RETA_SPAN) % workers` (`Rss`): worker `i` polls
//!   queue `i` and sees both directions of its flows;
//! - a device that cannot hash (net_pcap, net_ring; and net_null, which accepts RSS settings
//!   but never hashes) gets one RX queue read by the distributor on the main lcore, which
//!   computes the same symmetric Toeplitz hash in software and hands each packet to its
//!   owner's ring (`Distributed`).
//!
//! TX: a device with a TX queue per worker lets each worker transmit directly (`PerWorker`);
//! one with fewer (net_pcap has one per `tx_pcap`) gets a single TX queue fed through a ring
//! that the main lcore drains (`Shared`).

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
    /// One worker polls queue 0.
    Direct,
    /// Hardware symmetric RSS: worker `i` polls queue `i`.
    Rss,
    /// The distributor polls queue 0 and hashes in software.
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

/// Plan a port for `workers` workers.
pub fn plan_port(info: &DevInfo, workers: u16) -> PortPlan {
    let tx = if info.max_tx_queues >= workers {
        TxMode::PerWorker
    } else {
        TxMode::Shared
    };
    let tx_queues = if tx == TxMode::PerWorker { workers } else { 1 };
    let tx_why = match tx {
        TxMode::PerWorker => String::new(),
        TxMode::Shared => format!(
            "; {} TX queue(s) for {workers} workers: TX through a ring",
            info.max_tx_queues
        ),
    };
    if workers <= 1 {
        return PortPlan {
            rx: RxMode::Direct,
            tx,
            rx_queues: 1,
            tx_queues,
            why: format!("one worker polls it directly{tx_why}"),
        };
    }
    match rss_obstacle(info, workers) {
        None => PortPlan {
            rx: RxMode::Rss,
            tx,
            rx_queues: workers,
            tx_queues,
            why: format!("symmetric RSS over {workers} queues{tx_why}"),
        },
        Some(why) => PortPlan {
            rx: RxMode::Distributed,
            tx,
            rx_queues: 1,
            tx_queues,
            why: format!("software distribution ({why}){tx_why}"),
        },
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
