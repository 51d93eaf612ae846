//! The rings between lcores: one input ring per worker (from the software distributor and
//! from other workers re-dispatching ICMP errors), and one TX ring per port that has fewer TX
//! queues than workers (workers enqueue, the main lcore transmits).

use anyhow::{Context, Result};
use rte::{Eal, Ring, sys};

use super::layout::TxMode;
use super::ports::PortSetup;

/// Capacity of each worker's input ring and each shared TX ring.
pub const RING_SIZE: u32 = 1024;

/// Rings between lcores.
pub struct Rings {
    /// Input ring of each worker (only with more than one worker).
    pub workers: Vec<Ring>,
    /// Shared TX ring per port (`None` for ports with a TX queue per worker).
    pub tx: Vec<Option<Ring>>,
}

impl Rings {
    /// The rings `ports` and `workers` workers need.
    pub fn new(eal: &Eal, ports: &[PortSetup], workers: u16) -> Result<Rings> {
        let worker_rings = if workers > 1 {
            (0..workers)
                .map(|w| Ring::new(eal, &format!("ctfw_w{w}"), RING_SIZE, sys::SOCKET_ID_ANY))
                .collect::<Result<Vec<_>, _>>()
                .context("cannot create worker rings")?
        } else {
            Vec::new()
        };
        let tx = ports
            .iter()
            .enumerate()
            .map(|(i, p)| match p.plan.tx {
                TxMode::Shared => {
                    Ring::new(eal, &format!("ctfw_tx{i}"), RING_SIZE, sys::SOCKET_ID_ANY)
                        .map(Some)
                        .context("cannot create a TX ring")
                }
                TxMode::PerWorker => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Rings {
            workers: worker_rings,
            tx,
        })
    }
}
