//! The rule set: ordered, first match wins, default policy last. (Skeleton: its owner
//! replaces it.)

use crate::track::CtState;
use crate::wire::Family;

/// A port of the firewall (index into the configured port list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// What a rule does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Forward to the peer port.
    Accept,
    /// Drop.
    Drop,
}

/// What the rules may look at, gathered once per packet. No strings, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleInput {
    /// Conntrack state, or `None` when the packet never reached connection tracking.
    pub ct: Option<CtState>,
    /// Port the packet arrived on.
    pub in_port: PortId,
    /// Port it would leave on (the peer of `in_port`).
    pub out_port: PortId,
    /// Address family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
    /// Source address (IPv4 as `u32 as u128`).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source and destination ports, when the packet is TCP or UDP with a readable header.
    pub ports: Option<(u16, u16)>,
    /// TCP flag byte, when the packet is TCP with a readable header.
    pub tcp_flags: Option<u8>,
}

/// The decision of the rule set for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Accept or drop.
    pub action: Action,
    /// Index of the matching rule, or `None` when the default policy decided.
    pub rule: Option<u16>,
}

/// A compiled rule set.
#[derive(Clone, Debug)]
pub struct RuleSet {
    default: Action,
}

impl RuleSet {
    /// Evaluate the rules in order; the first match decides, else the default policy.
    pub fn evaluate(&self, _input: &RuleInput) -> Decision {
        Decision {
            action: self.default,
            rule: None,
        }
    }
}
