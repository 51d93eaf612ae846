//! The burst pipeline. (Skeleton: being written by the lead.)

use crate::rules::PortId;
use crate::track::TrackConfig;
use crate::wire::ParseConfig;

/// What to do with IPv4/IPv6 fragments. The tracker cannot classify a non-first fragment (it
/// has no ports), and ctfw does not reassemble.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FragmentPolicy {
    /// Drop every fragment and count it (`Reason::Fragment`). The safe default.
    #[default]
    Drop,
    /// Give fragments the conntrack state UNTRACKED and let the rules decide.
    Untracked,
}

/// What to do with frames that are neither IPv4 nor IPv6 (ARP, LLDP, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonIpPolicy {
    /// Drop and count (`Reason::NonIp`). The default: deny what is not understood.
    #[default]
    Drop,
    /// Forward to the peer port untouched (a bump-in-the-wire deployment needs ARP).
    Forward,
}

/// Everything one engine (one worker) needs to know, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Maximum number of connection entries this engine holds.
    pub capacity: u32,
    /// Tracking knobs and timeouts.
    pub track: TrackConfig,
    /// Parser knobs.
    pub parse: ParseConfig,
    /// Fragment policy.
    pub fragments: FragmentPolicy,
    /// Non-IP policy.
    pub non_ip: NonIpPolicy,
    /// `peers[p]` is the port a packet accepted on port `p` leaves on.
    pub peers: Vec<PortId>,
}
