//! The compiled rule set: ordered rules, the first that matches decides, else the default
//! policy.
//!
//! A [`Rule`] is a conjunction of optional matchers (conntrack state set, ingress and egress
//! port, address family, L4 protocol, source and destination prefixes, source and destination
//! port ranges, TCP flags); within one matcher a list is a disjunction. A matcher that is absent
//! (`None`, or an empty list) places no constraint.
//!
//! Invariants, established by the constructors of the matcher types and by [`RuleSet::new`]:
//! - a [`Prefix`] has no host bits set and its length fits its family;
//! - a [`PortRange`] has `lo <= hi`;
//! - a [`TcpFlagsMatch`] compares only bits inside its mask;
//! - a [`RuleSet`] holds at most [`RuleSet::MAX_RULES`] rules, so a rule index fits the `u16`
//!   of [`Decision::rule`], and exactly one name per rule.
//!
//! Why this shape: evaluation runs per packet (every packet but most ESTABLISHED ones and
//! many NEW ones, see below), so it walks no strings and allocates nothing.
//! Names live beside the rules, not in them, to keep the matchers that are read per packet
//! dense; addresses are `(net, mask)` pairs of `u128`, port ranges `(lo, hi)`, state sets
//! and port sets bitmasks. Matching follows nftables, whose behaviour the conformance traces
//! record: a packet that never reached conntrack matches no `ct state` test, a packet without
//! ports matches no port test, a non-TCP packet matches no TCP flags test, and an IPv4 prefix
//! never matches an IPv6 packet (nor the reverse).
//!
//! Evaluation. A set of more than [`RuleSet::SCAN_MAX`] rules is compiled, when it is built,
//! into a classifier (`classify.rs`) whose cost per packet does not grow with the number of
//! rules; smaller sets are scanned in order ([`RuleSet::evaluate_scan`]), which is cheaper at
//! that size, with each rule's scalar matchers compiled into masks when the set is built
//! (`matchers::Scalars`), so that a rule the packet's state or ports rule out costs a few
//! instructions. Both decide the same: the classifier is checked against the scan by property
//! tests (`classify/tests.rs`). The set is built where the configuration is loaded, on the
//! control path, and handed to the engine whole, so a reload swaps a compiled set in between
//! bursts.
//!
//! ESTABLISHED and NEW packets. When the set is built it also works out, for each of these
//! two states, what the decision of a packet in that state can depend on ([`Dependence`]):
//! nothing (`Fixed`: for ESTABLISHED, an `accept established` rule before any rule that
//! could tell such packets apart), and the pipeline then takes that decision without
//! evaluating; or what one direction of a connection keeps for life, the ports crossed and
//! some TCP flags (`PerFlow`), and the pipeline remembers the decision per entry, direction
//! and state until the rule set changes. Property tests hold both to the evaluation.
//!
//! Modules: `matchers.rs` (the matcher types), `classify.rs` (the classifier).

use core::fmt;

use crate::track::CtState;
use crate::wire::Family;

mod classify;
mod matchers;

use classify::Classifier;
pub use matchers::{CtStateSet, PortRange, PortSet, Prefix, PrefixError, TcpFlagsMatch};
use matchers::{ScalarKey, Scalars};

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

impl Action {
    /// Lower-case name, as written in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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

/// One compiled rule: every present matcher must hold; then `action` applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What to do with a matching packet.
    pub action: Action,
    /// Conntrack states (`ct state`). A packet that never reached conntrack does not match.
    pub ct: Option<CtStateSet>,
    /// Ingress ports.
    pub in_port: Option<PortSet>,
    /// Egress ports.
    pub out_port: Option<PortSet>,
    /// Address family.
    pub family: Option<Family>,
    /// L4 protocol number.
    pub proto: Option<u8>,
    /// Source prefixes; empty places no constraint.
    pub src: Box<[Prefix]>,
    /// Destination prefixes; empty places no constraint.
    pub dst: Box<[Prefix]>,
    /// Source port ranges; empty places no constraint. A packet without ports does not match.
    pub sport: Box<[PortRange]>,
    /// Destination port ranges; empty places no constraint.
    pub dport: Box<[PortRange]>,
    /// TCP flags test. A packet without a TCP header does not match.
    pub tcp_flags: Option<TcpFlagsMatch>,
    /// Record the packets this rule decides in the drop log (iptables `LOG`, nftables `log`),
    /// within the engine's rate limit. Not a matcher: it never changes what matches.
    pub log: bool,
}

impl Rule {
    /// A rule that matches every packet and applies `action`; set the matchers with struct
    /// update syntax (`Rule { ct: Some(..), ..Rule::new(Action::Accept) }`).
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ct: None,
            in_port: None,
            out_port: None,
            family: None,
            proto: None,
            src: Box::new([]),
            dst: Box::new([]),
            sport: Box::new([]),
            dport: Box::new([]),
            tcp_flags: None,
            log: false,
        }
    }

    /// Whether `p` satisfies every matcher of the rule.
    #[inline]
    pub fn matches(&self, p: &RuleInput) -> bool {
        // The scalar tests come first: each is a load and a compare, and they are what most
        // rules differ in. `&` rather than `&&` keeps them free of branches. They are the
        // `*_ok` tests below, spelled out: calling those compiles to a scan a few
        // instructions slower per rule (measured), and the classifier's property tests hold
        // the two spellings to each other.
        let scalars = self
            .ct
            .is_none_or(|set| p.ct.is_some_and(|s| set.contains(s)))
            & self.in_port.is_none_or(|set| set.contains(p.in_port))
            & self.out_port.is_none_or(|set| set.contains(p.out_port))
            & self.family.is_none_or(|f| f == p.family)
            & self.proto.is_none_or(|n| n == p.proto)
            & self
                .tcp_flags
                .is_none_or(|t| p.tcp_flags.is_some_and(|b| t.matches(b)));
        scalars && self.lists_match(p)
    }

    /// Whether `p` satisfies the address and port lists (the matchers that are not scalar).
    #[inline]
    fn lists_match(&self, p: &RuleInput) -> bool {
        any_prefix(&self.src, p.family, p.src)
            && any_prefix(&self.dst, p.family, p.dst)
            && any_port(&self.sport, p.ports.map(|(s, _)| s))
            && any_port(&self.dport, p.ports.map(|(_, d)| d))
    }

    // One test per scalar matcher, as `matches` applies it: the classifier (`classify.rs`)
    // and the scan's compiled form (`Scalars`) ask them which values each rule accepts.

    fn ct_ok(&self, ct: Option<CtState>) -> bool {
        self.ct
            .is_none_or(|set| ct.is_some_and(|s| set.contains(s)))
    }

    fn in_port_ok(&self, port: PortId) -> bool {
        self.in_port.is_none_or(|set| set.contains(port))
    }

    fn out_port_ok(&self, port: PortId) -> bool {
        self.out_port.is_none_or(|set| set.contains(port))
    }

    fn family_ok(&self, family: Family) -> bool {
        self.family.is_none_or(|f| f == family)
    }

    fn proto_ok(&self, proto: u8) -> bool {
        self.proto.is_none_or(|n| n == proto)
    }

    fn tcp_flags_ok(&self, flags: Option<u8>) -> bool {
        self.tcp_flags
            .is_none_or(|t| flags.is_some_and(|b| t.matches(b)))
    }
}

/// An empty list places no constraint; otherwise some prefix must contain `addr`.
#[inline]
fn any_prefix(list: &[Prefix], family: Family, addr: u128) -> bool {
    list.is_empty() || list.iter().any(|q| q.contains(family, addr))
}

/// An empty list places no constraint; otherwise the packet must have ports and some range
/// must contain this one.
#[inline]
fn any_port(list: &[PortRange], port: Option<u16>) -> bool {
    list.is_empty() || port.is_some_and(|n| list.iter().any(|r| r.contains(n)))
}

/// Why a [`RuleSet`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleSetError {
    /// More rules than [`RuleSet::MAX_RULES`].
    TooManyRules {
        /// Rules given.
        count: usize,
    },
    /// The number of names differs from the number of rules.
    NameCount {
        /// Rules given.
        rules: usize,
        /// Names given.
        names: usize,
    },
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSetError::TooManyRules { count } => {
                write!(
                    f,
                    "{count} rules: at most {} are supported",
                    RuleSet::MAX_RULES
                )
            }
            RuleSetError::NameCount { rules, names } => {
                write!(f, "{rules} rules but {names} names: give one name per rule")
            }
        }
    }
}

impl std::error::Error for RuleSetError {}

/// A compiled rule set: rules in order, their names, the default policy, which of them
/// write to the drop log, and (for more than [`RuleSet::SCAN_MAX`] rules) the classifier that
/// finds the first match.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Box<[Rule]>,
    names: Box<[Box<str>]>,
    default: Action,
    /// Whether the default policy's packets are logged.
    default_log: bool,
    /// Whether any rule or the default policy logs: the one test the pipeline makes per
    /// packet when nothing does.
    any_log: bool,
    /// Built from `rules` by `new`; `None` for sets that are scanned.
    classifier: Option<Box<Classifier>>,
    /// The scalar matchers of each rule, compiled by `new` for the scan (empty for sets that
    /// are classified).
    scalars: Box<[Scalars]>,
    /// Built from `rules` and `default` by `new`: what the decision of a packet in state
    /// NEW (index 0) and ESTABLISHED (index 1, their discriminants) depends on.
    by_state: [Dependence; 2],
}

impl PartialEq for RuleSet {
    /// Equal rules, names, policy and logging; the classifier, the compiled scalars and the
    /// dependences are functions of the rules.
    fn eq(&self, other: &RuleSet) -> bool {
        self.rules == other.rules
            && self.names == other.names
            && self.default == other.default
            && self.default_log == other.default_log
    }
}

impl Eq for RuleSet {}

impl RuleSet {
    /// Most rules a set holds: a rule index must fit [`Decision::rule`].
    pub const MAX_RULES: usize = u16::MAX as usize;
    /// Most ports a [`PortSet`] can name.
    pub const MAX_PORTS: usize = 64;
    /// Most rules a set decides by scanning them in order; larger sets are compiled into a
    /// classifier. At this size a scan that reaches the last rule costs about what the
    /// classifier does (measured: `BENCHMARKS.md`), and the common few-rule policies keep
    /// the scan's cost, which for a first-rule match is a handful of instructions.
    pub const SCAN_MAX: usize = 12;

    /// The rules `rules` in order, named `names` (one per rule), with default policy
    /// `default`; sets of more than [`RuleSet::SCAN_MAX`] rules are compiled here.
    pub fn new(
        rules: Vec<Rule>,
        default: Action,
        names: Vec<String>,
    ) -> Result<RuleSet, RuleSetError> {
        if rules.len() > Self::MAX_RULES {
            return Err(RuleSetError::TooManyRules { count: rules.len() });
        }
        if names.len() != rules.len() {
            return Err(RuleSetError::NameCount {
                rules: rules.len(),
                names: names.len(),
            });
        }
        let any_log = rules.iter().any(|r| r.log);
        let classifier = (rules.len() > Self::SCAN_MAX).then(|| Box::new(Classifier::new(&rules)));
        let scalars = match classifier {
            Some(_) => Box::new([]) as Box<[Scalars]>,
            None => rules.iter().map(Scalars::of).collect(),
        };
        let by_state =
            [CtState::New, CtState::Established].map(|ct| Dependence::of(&rules, default, ct));
        Ok(RuleSet {
            rules: rules.into_boxed_slice(),
            names: names.into_iter().map(String::into_boxed_str).collect(),
            default,
            default_log: false,
            any_log,
            classifier,
            scalars,
            by_state,
        })
    }

    /// The same set, with the default policy's packets logged (`log`) or not. A set starts
    /// with the default policy not logged.
    #[must_use]
    pub fn with_default_log(mut self, log: bool) -> RuleSet {
        self.default_log = log;
        self.any_log = log || self.rules.iter().any(|r| r.log);
        self
    }

    /// Whether the default policy's packets are logged.
    pub fn default_log(&self) -> bool {
        self.default_log
    }

    /// Whether some rule, or the default policy, logs.
    #[inline]
    pub fn any_log(&self) -> bool {
        self.any_log
    }

    /// Whether the packets decided by `rule` (`None`: the default policy, as in
    /// [`Decision::rule`]) are logged.
    #[inline]
    pub fn logs(&self, rule: Option<u16>) -> bool {
        match rule {
            Some(i) => self.rules.get(usize::from(i)).is_some_and(|r| r.log),
            None => self.default_log,
        }
    }

    /// The first rule that matches decides, else the default policy: through the classifier
    /// for large sets, by a scan (as [`RuleSet::evaluate_scan`], with the rules' scalar
    /// matchers compiled into masks) for small ones.
    #[inline]
    pub fn evaluate(&self, input: &RuleInput) -> Decision {
        // The classifier is inlined like the scan: out of line, it would need `input` in
        // memory, and the pipeline would build it there for every packet, scanned sets
        // included (measured: a dozen instructions per packet more).
        if let Some(c) = &self.classifier {
            let rule = c.first_match(input);
            let action = rule
                .and_then(|i| self.rules.get(usize::from(i)))
                .map_or(self.default, |r| r.action);
            return Decision { action, rule };
        }
        // The scan, with each rule's scalar matchers in their compiled form (one per rule).
        let key = ScalarKey::of(input);
        for (i, (s, rule)) in self.scalars.iter().zip(&self.rules).enumerate() {
            if s.matches(&key) && (!s.lists || rule.lists_match(input)) {
                // `new` bounds the length by `MAX_RULES`, so the index fits.
                return Decision {
                    action: rule.action,
                    rule: Some(i as u16),
                };
            }
        }
        Decision {
            action: self.default,
            rule: None,
        }
    }

    /// Evaluate the rules one by one, in order; the first match decides, else the default
    /// policy. The definition of what a rule set decides: [`RuleSet::evaluate`] scans small
    /// sets so, and tests hold the classifier to it.
    pub fn evaluate_scan(&self, input: &RuleInput) -> Decision {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(input) {
                return Decision {
                    action: rule.action,
                    rule: Some(i as u16),
                };
            }
        }
        Decision {
            action: self.default,
            rule: None,
        }
    }

    /// Whether the set is decided by a classifier (more than [`RuleSet::SCAN_MAX`] rules)
    /// rather than a scan.
    pub fn is_classified(&self) -> bool {
        self.classifier.is_some()
    }

    /// What an ESTABLISHED packet's decision depends on, worked out when the set was built.
    #[inline]
    pub fn established(&self) -> Dependence {
        self.by_state[CtState::Established as usize]
    }

    /// What the decision of a packet in conntrack state `ct` depends on, for the two states
    /// the set works it out for (ESTABLISHED and NEW); `None` for the others.
    #[inline]
    pub fn dependence(&self, ct: CtState) -> Option<Dependence> {
        self.by_state.get(ct as usize).copied()
    }

    /// Bytes the classifier holds beside the rules (0 for a scanned set).
    pub fn classifier_bytes(&self) -> usize {
        self.classifier.as_ref().map_or(0, |c| c.memory_bytes())
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The default policy.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Name of rule `idx`, or `"?"` if there is no such rule.
    pub fn name(&self, idx: u16) -> &str {
        self.names.get(usize::from(idx)).map_or("?", |n| n)
    }

    /// Rule `idx`.
    pub fn rule(&self, idx: u16) -> Option<&Rule> {
        self.rules.get(usize::from(idx))
    }

    /// `(name, rule)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.names.iter().map(|n| &**n).zip(self.rules.iter())
    }
}

/// What the rules' decision for a packet in one conntrack state, ESTABLISHED or NEW, depends
/// on ([`RuleSet::dependence`]). Most packets a firewall sees are ESTABLISHED, and most rule
/// sets decide them all alike (an `accept established` rule near the top), so the pipeline
/// asks this before it evaluates anything. NEW packets of a known entry are those of a
/// connection whose other side has not answered yet (a one-way UDP stream stays NEW for
/// life), and their decision too can be remembered. A zone policy ("NEW from inside to
/// outside") decides every NEW packet by the ports it crosses alone, which the pipeline
/// works out per port when the rules are loaded.
///
/// It is read off the rules in order. A rule whose state test excludes the state never
/// matches such a packet and is skipped. The first rule that tests nothing but the state
/// matches every packet in that state, so nothing after it matters; if no such rule exists the
/// default policy is the last resort. The fields tested by the rules met before that point
/// are all the decision can depend on.
///
/// `repr(u8)` gives the variants a tag byte of their own, which the pipeline tests with one
/// compare per packet; left to the compiler, the tag shared a niche with the decision's
/// fields and took about 10 instructions per established packet to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Dependence {
    /// Every packet in the state gets this decision, whatever its other fields.
    Fixed(Decision),
    /// The decision depends on the firewall ports the packet crosses and on nothing else:
    /// two packets in the state that enter and leave by the same ports get the same
    /// decision (zone policies: "NEW from inside to outside"). The pipeline works it out
    /// per ingress port when the set is loaded (`Engine::port_decisions`).
    Ports,
    /// The decision depends on fields that one direction of a connection keeps for its
    /// whole life (family, protocol, addresses, ports), on the firewall ports the packet
    /// crosses, and on its TCP flags only through the bits of `flags_mask`: two packets in
    /// the state that agree on all of these get the same decision. The pipeline remembers
    /// it per entry, direction and state until the rule set changes.
    PerFlow {
        /// The union of the masks of the TCP flag tests that can decide such a packet.
        flags_mask: u8,
    },
}

impl Dependence {
    fn of(rules: &[Rule], default: Action, state: CtState) -> Dependence {
        let mut depends = false;
        // Every rule met tests nothing but the state and the firewall ports.
        let mut ports_only = true;
        let mut flags_mask = 0;
        for (i, r) in rules.iter().enumerate() {
            if !r.ct_ok(Some(state)) {
                continue;
            }
            // Every matcher, by name: a matcher added to `Rule` must be placed here.
            let Rule {
                action: _,
                ct: _,
                in_port,
                out_port,
                family,
                proto,
                src,
                dst,
                sport,
                dport,
                tcp_flags,
                log: _,
            } = r;
            let tests_packet = family.is_some()
                || proto.is_some()
                || !src.is_empty()
                || !dst.is_empty()
                || !sport.is_empty()
                || !dport.is_empty()
                || tcp_flags.is_some();
            let tests_more = in_port.is_some() || out_port.is_some() || tests_packet;
            if !tests_more {
                // Matches every packet in the state: later rules and the default are
                // unreachable.
                return if depends {
                    Dependence::depending(ports_only, flags_mask)
                } else {
                    // `new` bounds the length by `MAX_RULES`, so the index fits.
                    Dependence::Fixed(Decision {
                        action: r.action,
                        rule: Some(i as u16),
                    })
                };
            }
            depends = true;
            ports_only &= !tests_packet;
            flags_mask |= tcp_flags.map_or(0, |t| t.mask());
        }
        if depends {
            Dependence::depending(ports_only, flags_mask)
        } else {
            Dependence::Fixed(Decision {
                action: default,
                rule: None,
            })
        }
    }

    /// A decision that depends on something: on the ports alone (`ports_only`), else per
    /// flow.
    fn depending(ports_only: bool, flags_mask: u8) -> Dependence {
        if ports_only {
            Dependence::Ports
        } else {
            Dependence::PerFlow { flags_mask }
        }
    }
}

#[cfg(test)]
mod tests;
