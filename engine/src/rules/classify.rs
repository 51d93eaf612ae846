//! The rule classifier: finds the first rule that matches a packet without trying the rules one
//! by one, and decides exactly as the ordered scan ([`RuleSet::evaluate_scan`]) does.
//!
//! How. Rules are grouped by *shape*, the set of fields they constrain (`ct_state`,
//! `in_port`, `out_port`, `family`, `proto`, `tcp_flags`, `sport`, `dport`, `src`, `dst`).
//! Within a group every rule constrains every field the group looks at, so for each field
//! the group holds, for every value the packet could carry, the set of its rules that this
//! value satisfies: a bitmap over the group's rules in order (bit `m` is the group's `m`-th
//! rule). Values that no rule tells apart share one set, so a field's values fall into a few
//! classes: small fields (conntrack state, ports of the firewall, family, protocol, TCP flag
//! byte) index a table by value; port numbers and addresses are cut into the intervals that
//! the rules' ranges and prefixes delimit, found by binary search. A packet's first match in
//! a group is the lowest bit set in every field's set; across groups, the lowest rule index.
//!
//! Cost per packet: for each group, one lookup per field (a table load, or a binary search
//! over the field's interval boundaries), stopping at the first field whose class no rule of
//! the group accepts. Each class also records its lowest rule; when every field's lowest
//! rule is the same (always, in a group of one field), that rule is the group's answer.
//! Otherwise a walk over the 64-rule blocks of the shortest set, from the highest of those
//! lowest rules on, ANDs the other fields' words at each block until a block keeps a bit.
//! Groups are visited in the order of their first rule, and the visit stops at a group that
//! starts after the best match so far. So the cost grows with the number of shapes (a
//! handful in real policies; at most 2^10) and with the blocks a walk visits, not with the
//! number of rules: in the worst case (every field's set long, but no block common to all)
//! a group costs `rules / 64` block steps per field, still 64 times fewer than the scan.
//!
//! Memory. Sets are stored sparsely, as the non-zero 64-bit words of the bitmap with their
//! block numbers, and deduplicated per field. A field whose classes each hold many rules
//! (thousands of rules sharing a wide prefix, and thousands of host prefixes carving it into
//! classes) would make the sets grow as the product of the two; a group whose sets would pass
//! [`GROUP_ENTRIES`] words is therefore split in two by rule order, recursively, which trades
//! a few more groups per packet for bounded memory. Compiling costs one sweep per interval
//! field and one pass per value per table field, over the group's rules: milliseconds for
//! 10,000 rules (see `BENCHMARKS.md`).
//!
//! Invariants: every class table and interval list covers its whole value domain (tables
//! have one entry per key, intervals start at zero), class 0 of every field is the empty set
//! (and only it), and a group's rule list is in increasing rule order, so the lowest bit is
//! the earliest rule.

use core::fmt;
use std::collections::{BTreeMap, HashMap};

use super::{PortId, Rule, RuleInput, RuleSet};
use crate::track::CtState;
use crate::wire::Family;

/// Most bitmap words (non-zero 64-rule blocks of a class's set, over all fields) one group
/// holds before it is split: 64 Ki words, 768 KiB with their block numbers.
pub(super) const GROUP_ENTRIES: usize = 1 << 16;

/// The rule classifier; see the module documentation.
#[derive(Clone)]
pub(super) struct Classifier {
    /// In increasing order of their first rule.
    groups: Box<[Group]>,
}

impl Classifier {
    /// The classifier for `rules`, in order.
    pub(super) fn new(rules: &[Rule]) -> Classifier {
        Classifier::with_limit(rules, GROUP_ENTRIES)
    }

    /// The classifier for `rules`, splitting any group whose sets pass `limit` words.
    pub(super) fn with_limit(rules: &[Rule], limit: usize) -> Classifier {
        let mut by_shape: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            // `RuleSet::new` bounds the length by `MAX_RULES`, so the index fits.
            by_shape.entry(shape(rule)).or_default().push(i as u16);
        }
        let mut groups = Vec::new();
        for members in by_shape.values() {
            build_groups(rules, members, limit, &mut groups);
        }
        groups.sort_by_key(|g| g.first);
        Classifier {
            groups: groups.into_boxed_slice(),
        }
    }

    /// Index of the first rule that `p` matches, if any.
    #[inline]
    pub(super) fn first_match(&self, p: &RuleInput) -> Option<u16> {
        let mut best: Option<u16> = None;
        for g in &self.groups {
            if best.is_some_and(|b| g.first >= b) {
                break;
            }
            if let Some(r) = g.first_match(p) {
                best = Some(best.map_or(r, |b| b.min(r)));
            }
        }
        best
    }

    /// Number of groups (rule shapes, and the parts of those that were split).
    #[cfg(test)]
    pub(super) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Bytes held, beside the rules themselves.
    pub(super) fn memory_bytes(&self) -> usize {
        self.groups.iter().map(Group::memory_bytes).sum::<usize>()
            + self.groups.len() * size_of::<Group>()
    }
}

impl fmt::Debug for Classifier {
    /// The outline only: the sets of a large rule set would fill pages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("groups", &self.groups.len())
            .field("bytes", &self.memory_bytes())
            .finish()
    }
}

/// Build the groups of `members` (rules of one shape, in order), splitting in two by rule order
/// while a group's sets pass `limit` words. A single rule is never split: its sets hold at most
/// one word per class.
fn build_groups(rules: &[Rule], members: &[u16], limit: usize, out: &mut Vec<Group>) {
    let cap = (members.len() > 1).then_some(limit);
    match Group::new(rules, members, cap) {
        Ok(g) => out.push(g),
        Err(TooBig) => {
            // Only a capped build fails, so there are two rules or more to share out.
            let (a, b) = members.split_at(members.len() / 2);
            build_groups(rules, a, limit, out);
            build_groups(rules, b, limit, out);
        }
    }
}

/// A group's sets would pass their limit.
#[derive(Clone, Copy, Debug)]
struct TooBig;

/// The fields a rule can constrain, in the order a group looks them up: the small fields,
/// found by one table load, before the port numbers and addresses, found by binary search,
/// so that a group most packets miss costs a load or two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Ct,
    InPort,
    OutPort,
    Family,
    Proto,
    TcpFlags,
    Sport,
    Dport,
    Src,
    Dst,
}

impl Field {
    const ALL: [Field; 10] = [
        Field::Ct,
        Field::InPort,
        Field::OutPort,
        Field::Family,
        Field::Proto,
        Field::TcpFlags,
        Field::Sport,
        Field::Dport,
        Field::Src,
        Field::Dst,
    ];

    /// Whether `rule` constrains the field: a matcher that is present, or a list that is not
    /// empty (an empty one places no constraint).
    fn constrained_by(self, rule: &Rule) -> bool {
        match self {
            Field::Ct => rule.ct.is_some(),
            Field::InPort => rule.in_port.is_some(),
            Field::OutPort => rule.out_port.is_some(),
            Field::Family => rule.family.is_some(),
            Field::Proto => rule.proto.is_some(),
            Field::TcpFlags => rule.tcp_flags.is_some(),
            Field::Sport => !rule.sport.is_empty(),
            Field::Dport => !rule.dport.is_empty(),
            Field::Src => !rule.src.is_empty(),
            Field::Dst => !rule.dst.is_empty(),
        }
    }
}

/// The fields `rule` constrains, one bit per entry of [`Field::ALL`].
fn shape(rule: &Rule) -> u16 {
    Field::ALL
        .iter()
        .enumerate()
        .filter(|(_, f)| f.constrained_by(rule))
        .fold(0, |s, (i, _)| s | 1 << i)
}

// Keys of the table fields: each maps a packet's value to an index below the table's length.

/// Conntrack state: 0 when the packet never reached conntrack, else 1 + the state.
const CT_KEYS: usize = 1 + CtState::ALL.len();
/// Ports of the firewall: the port, or [`RuleSet::MAX_PORTS`] for every port past the last
/// one a [`super::PortSet`] can name (no set contains those).
const PORT_KEYS: usize = RuleSet::MAX_PORTS + 1;
const FAMILY_KEYS: usize = 2;
const PROTO_KEYS: usize = 256;
/// TCP flag byte: 0 without a TCP header, else 1 + the byte.
const FLAG_KEYS: usize = 257;

#[inline]
fn ct_key(ct: Option<CtState>) -> usize {
    ct.map_or(0, |s| 1 + s as usize)
}

fn ct_value(key: usize) -> Option<CtState> {
    key.checked_sub(1)
        .and_then(|i| CtState::ALL.get(i).copied())
}

#[inline]
fn port_key(port: PortId) -> usize {
    usize::from(port.0).min(RuleSet::MAX_PORTS)
}

#[inline]
fn family_key(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

const FAMILIES: [Family; FAMILY_KEYS] = [Family::V4, Family::V6];

#[inline]
fn flags_key(flags: Option<u8>) -> usize {
    flags.map_or(0, |b| 1 + usize::from(b))
}

/// A TCP/UDP port number as an interval key: 0 when the packet has no ports, else 1 + the
/// port, so "no ports" is a class of its own that no range contains.
#[inline]
fn l4_port_key(port: Option<u16>) -> u32 {
    port.map_or(0, |n| 1 + u32::from(n))
}

/// The rules of one shape (or a part of them, in order), indexed field by field.
#[derive(Clone)]
struct Group {
    /// The first rule of the group.
    first: u16,
    /// The group's rules in increasing order: bit `m` of a set is rule `rules[m]`.
    rules: Box<[u16]>,
    /// One index per field the group's rules constrain, in [`Field::ALL`] order.
    fields: Box<[FieldIndex]>,
}

impl Group {
    /// Index `members` (non-empty, in order, all of one shape) of `rules`; `Err` if the sets
    /// would pass `limit` words.
    fn new(rules: &[Rule], members: &[u16], limit: Option<usize>) -> Result<Group, TooBig> {
        let group: Vec<&Rule> = members.iter().map(|&i| &rules[usize::from(i)]).collect();
        let shape = group.first().map_or(0, |r| shape(r));
        let mut left = limit.unwrap_or(usize::MAX);
        let fields = Field::ALL
            .iter()
            .enumerate()
            .filter(|&(i, _)| shape & 1 << i != 0)
            .map(|(_, &f)| FieldIndex::new(f, &group, &mut left))
            .collect::<Result<Box<[FieldIndex]>, TooBig>>()?;
        Ok(Group {
            first: members.first().copied().unwrap_or(0),
            rules: members.into(),
            fields,
        })
    }

    /// The first of the group's rules that `p` matches.
    #[inline]
    fn first_match(&self, p: &RuleInput) -> Option<u16> {
        let empty = Class {
            start: 0,
            end: 0,
            lowest: u32::MAX,
        };
        let mut classes = [empty; Field::ALL.len()];
        // No member below the highest of the fields' lowest members is in every field's set;
        // when the lowest members all agree, that member is the answer.
        let mut from = 0;
        let mut agree = true;
        // The field whose set has the fewest words, to drive the walk.
        let mut driver = 0;
        let mut driver_len = u32::MAX;
        for (i, (f, class)) in self.fields.iter().zip(&mut classes).enumerate() {
            let c = f.class(p);
            if c == EMPTY {
                return None;
            }
            *class = f.sets.class(c);
            agree &= i == 0 || class.lowest == from;
            from = from.max(class.lowest);
            let len = class.end - class.start;
            if len < driver_len {
                (driver, driver_len) = (i, len);
            }
        }
        if agree {
            // Also a group without fields: its rules match every packet.
            return self.rules.get(from as usize).copied();
        }
        let walk = self.fields.get(driver)?.sets.members(classes[driver]);
        let start = from / 64;
        for (&block, &word) in walk.blocks.iter().zip(walk.words) {
            if block < start {
                continue;
            }
            let mut w = if block == start {
                word & u64::MAX << (from % 64)
            } else {
                word
            };
            for (i, (f, &class)) in self.fields.iter().zip(&classes).enumerate() {
                if i != driver && w != 0 {
                    w &= f.sets.members(class).word(block);
                }
            }
            if w != 0 {
                let m = block as usize * 64 + w.trailing_zeros() as usize;
                return self.rules.get(m).copied();
            }
        }
        None
    }

    fn memory_bytes(&self) -> usize {
        self.rules.len() * size_of::<u16>()
            + self
                .fields
                .iter()
                .map(|f| size_of::<FieldIndex>() + f.memory_bytes())
                .sum::<usize>()
    }
}

/// One field of a group: how a packet's value finds its class, and each class's set.
#[derive(Clone)]
struct FieldIndex {
    lookup: Lookup,
    sets: Sets,
}

/// Value to class, per field.
#[derive(Clone)]
enum Lookup {
    Ct(Box<[u32]>),
    InPort(Box<[u32]>),
    OutPort(Box<[u32]>),
    Family(Box<[u32]>),
    Proto(Box<[u32]>),
    TcpFlags(Box<[u32]>),
    Sport(Intervals<u32>),
    Dport(Intervals<u32>),
    Src(Addrs),
    Dst(Addrs),
}

impl FieldIndex {
    /// Index field `field` of `group` (rules of one shape, which includes `field`), charging
    /// the words of its sets to `left`.
    fn new(field: Field, group: &[&Rule], left: &mut usize) -> Result<FieldIndex, TooBig> {
        let mut sets = SetsBuilder::new(group.len(), left);
        // The small fields ask the rule's own test of every value, so they agree with
        // `Rule::matches` by construction.
        let lookup = match field {
            Field::Ct => Lookup::Ct(sets.table(group, CT_KEYS, |r, k| r.ct_ok(ct_value(k)))?),
            Field::InPort => {
                Lookup::InPort(sets.table(group, PORT_KEYS, |r, k| r.in_port_ok(PortId(k as u16)))?)
            }
            Field::OutPort => Lookup::OutPort(
                sets.table(group, PORT_KEYS, |r, k| r.out_port_ok(PortId(k as u16)))?,
            ),
            Field::Family => {
                Lookup::Family(sets.table(group, FAMILY_KEYS, |r, k| r.family_ok(FAMILIES[k]))?)
            }
            Field::Proto => {
                Lookup::Proto(sets.table(group, PROTO_KEYS, |r, k| r.proto_ok(k as u8))?)
            }
            Field::TcpFlags => Lookup::TcpFlags(sets.table(group, FLAG_KEYS, |r, k| {
                r.tcp_flags_ok(k.checked_sub(1).map(|b| b as u8))
            })?),
            Field::Sport => Lookup::Sport(sets.sweep(port_spans(group, |r| &r.sport))?),
            Field::Dport => Lookup::Dport(sets.sweep(port_spans(group, |r| &r.dport))?),
            Field::Src => Lookup::Src(Addrs::new(group, |r| &r.src, &mut sets)?),
            Field::Dst => Lookup::Dst(Addrs::new(group, |r| &r.dst, &mut sets)?),
        };
        Ok(FieldIndex {
            lookup,
            sets: sets.finish(),
        })
    }

    /// The class of `p`'s value of this field.
    #[inline]
    fn class(&self, p: &RuleInput) -> u32 {
        // Every key function returns less than its table's length (the `*_KEYS` constants
        // the tables were built with).
        match &self.lookup {
            Lookup::Ct(t) => t[ct_key(p.ct)],
            Lookup::InPort(t) => t[port_key(p.in_port)],
            Lookup::OutPort(t) => t[port_key(p.out_port)],
            Lookup::Family(t) => t[family_key(p.family)],
            Lookup::Proto(t) => t[usize::from(p.proto)],
            Lookup::TcpFlags(t) => t[flags_key(p.tcp_flags)],
            Lookup::Sport(iv) => iv.class(l4_port_key(p.ports.map(|(s, _)| s))),
            Lookup::Dport(iv) => iv.class(l4_port_key(p.ports.map(|(_, d)| d))),
            Lookup::Src(a) => a.class(p.family, p.src),
            Lookup::Dst(a) => a.class(p.family, p.dst),
        }
    }

    fn memory_bytes(&self) -> usize {
        let lookup = match &self.lookup {
            Lookup::Ct(t)
            | Lookup::InPort(t)
            | Lookup::OutPort(t)
            | Lookup::Family(t)
            | Lookup::Proto(t)
            | Lookup::TcpFlags(t) => t.len() * size_of::<u32>(),
            Lookup::Sport(iv) | Lookup::Dport(iv) => iv.memory_bytes(),
            Lookup::Src(a) | Lookup::Dst(a) => a.v4.memory_bytes() + a.v6.memory_bytes(),
        };
        lookup + self.sets.memory_bytes()
    }
}

/// The spans `[1 + lo, 1 + hi]` of every port range of every rule of `group`, as interval
/// keys ([`l4_port_key`]), with the rule's position in the group.
fn port_spans(
    group: &[&Rule],
    list: impl Fn(&Rule) -> &[super::PortRange],
) -> Vec<(u32, u32, usize)> {
    let mut spans = Vec::new();
    for (m, r) in group.iter().enumerate() {
        for range in list(r) {
            let (lo, hi) = range.bounds();
            spans.push((l4_port_key(Some(lo)), l4_port_key(Some(hi)), m));
        }
    }
    spans
}

/// Classes of an address field, one interval list per family: a prefix of one family never
/// matches a packet of the other.
#[derive(Clone)]
struct Addrs {
    v4: Intervals<u32>,
    v6: Intervals<u128>,
}

impl Addrs {
    fn new(
        group: &[&Rule],
        list: impl Fn(&Rule) -> &[super::Prefix],
        sets: &mut SetsBuilder<'_>,
    ) -> Result<Addrs, TooBig> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (m, r) in group.iter().enumerate() {
            for prefix in list(r) {
                let (lo, hi) = prefix.bounds();
                match prefix.family() {
                    // An IPv4 prefix's bounds fit 32 bits (`Prefix::new` checks the address).
                    Family::V4 => v4.push((lo as u32, hi as u32, m)),
                    Family::V6 => v6.push((lo, hi, m)),
                }
            }
        }
        Ok(Addrs {
            v4: sets.sweep(v4)?,
            v6: sets.sweep(v6)?,
        })
    }

    #[inline]
    fn class(&self, family: Family, addr: u128) -> u32 {
        match family {
            // An IPv4 prefix compares the low 32 bits only (its mask has no others), so the
            // truncation matches exactly what `Prefix::contains` does.
            Family::V4 => self.v4.class(addr as u32),
            Family::V6 => self.v6.class(addr),
        }
    }
}

/// An interval key: unsigned, ordered, starting at zero.
trait Key: Copy + Ord + core::hash::Hash {
    const ZERO: Self;
    /// The next key, `None` past the last.
    fn next(self) -> Option<Self>;
}

impl Key for u32 {
    const ZERO: u32 = 0;
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Key for u128 {
    const ZERO: u128 = 0;
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// A key domain cut into intervals: interval `i` is `starts[i]..starts[i + 1]` (the last runs
/// to the end of the domain) and has class `classes[i]`. `starts[0]` is zero.
#[derive(Clone)]
struct Intervals<K> {
    starts: Box<[K]>,
    classes: Box<[u32]>,
}

impl<K: Key> Intervals<K> {
    #[inline]
    fn class(&self, key: K) -> u32 {
        // `starts[0]` is zero, so at least one start is `<= key`.
        let i = self.starts.partition_point(|&s| s <= key);
        self.classes
            .get(i.wrapping_sub(1))
            .copied()
            .unwrap_or(EMPTY)
    }

    fn memory_bytes(&self) -> usize {
        self.starts.len() * size_of::<K>() + self.classes.len() * size_of::<u32>()
    }
}

/// The class of the empty set, in every field.
const EMPTY: u32 = 0;

/// The sets of one field, one per class: class `c`'s set is the non-zero words
/// `words[classes[c].start..classes[c].end]`, with their block numbers (in increasing order)
/// beside them in `blocks`; a block that is not listed is zero.
#[derive(Clone)]
struct Sets {
    classes: Box<[Class]>,
    blocks: Box<[u32]>,
    words: Box<[u64]>,
}

/// Where a class's set lies in [`Sets`], and its lowest member (`u32::MAX` for the empty
/// class), read together in one load.
#[derive(Clone, Copy)]
struct Class {
    start: u32,
    end: u32,
    lowest: u32,
}

/// One class's set.
#[derive(Clone, Copy)]
struct Members<'a> {
    blocks: &'a [u32],
    words: &'a [u64],
}

impl Members<'_> {
    /// The set's word for rules `64 * block ..`, zero if none of them is in it.
    #[inline]
    fn word(&self, block: u32) -> u64 {
        match self.blocks.binary_search(&block) {
            Ok(i) => self.words.get(i).copied().unwrap_or(0),
            Err(_) => 0,
        }
    }
}

impl Sets {
    /// Class `class` (every class a lookup returns exists: the builder made both together).
    #[inline]
    fn class(&self, class: u32) -> Class {
        self.classes.get(class as usize).copied().unwrap_or(Class {
            start: 0,
            end: 0,
            lowest: u32::MAX,
        })
    }

    #[inline]
    fn members(&self, class: Class) -> Members<'_> {
        let r = class.start as usize..class.end as usize;
        Members {
            blocks: self.blocks.get(r.clone()).unwrap_or(&[]),
            words: self.words.get(r).unwrap_or(&[]),
        }
    }

    fn memory_bytes(&self) -> usize {
        self.classes.len() * size_of::<Class>()
            + self.blocks.len() * size_of::<u32>()
            + self.words.len() * size_of::<u64>()
    }
}

/// Builds one field's [`Sets`], giving equal sets one class, and its lookup.
struct SetsBuilder<'a> {
    /// Rules in the group: bits of a set.
    members: usize,
    sets: Vec<Class>,
    blocks: Vec<u32>,
    words: Vec<u64>,
    /// Each set seen, and its class.
    classes: HashMap<Vec<(u32, u64)>, u32>,
    /// Words the group may still store.
    left: &'a mut usize,
}

impl<'a> SetsBuilder<'a> {
    fn new(members: usize, left: &'a mut usize) -> SetsBuilder<'a> {
        let mut classes = HashMap::new();
        classes.insert(Vec::new(), EMPTY);
        SetsBuilder {
            members,
            sets: vec![Class {
                start: 0,
                end: 0,
                lowest: u32::MAX,
            }],
            blocks: Vec::new(),
            words: Vec::new(),
            classes,
            left,
        }
    }

    /// The class of the set whose dense bitmap is `bits`, new or existing.
    fn class(&mut self, bits: &[u64]) -> Result<u32, TooBig> {
        let sparse: Vec<(u32, u64)> = bits
            .iter()
            .enumerate()
            .filter(|&(_, &w)| w != 0)
            .map(|(b, &w)| (b as u32, w))
            .collect();
        if let Some(&c) = self.classes.get(&sparse) {
            return Ok(c);
        }
        *self.left = self.left.checked_sub(sparse.len()).ok_or(TooBig)?;
        // A group has at most `MAX_RULES` rules, whose sets stay far below 2^32 words.
        let start = self.words.len() as u32;
        for &(b, w) in &sparse {
            self.blocks.push(b);
            self.words.push(w);
        }
        let lowest = sparse.first().map(|&(b, w)| b * 64 + w.trailing_zeros());
        self.sets.push(Class {
            start,
            end: self.words.len() as u32,
            lowest: lowest.unwrap_or(u32::MAX),
        });
        let c = self.classes.len() as u32;
        self.classes.insert(sparse, c);
        Ok(c)
    }

    /// A table field: for each key below `keys`, the class of the rules that `ok` accepts.
    fn table(
        &mut self,
        group: &[&Rule],
        keys: usize,
        ok: impl Fn(&Rule, usize) -> bool,
    ) -> Result<Box<[u32]>, TooBig> {
        let mut bits = vec![0u64; self.members.div_ceil(64)];
        (0..keys)
            .map(|k| {
                bits.fill(0);
                for (m, r) in group.iter().enumerate() {
                    if ok(r, k) {
                        bits[m / 64] |= 1 << (m % 64);
                    }
                }
                self.class(&bits)
            })
            .collect()
    }

    /// An interval field: `spans` are `(lo, hi, member)`, inclusive, possibly overlapping;
    /// every key outside all spans is in the empty class. One sweep over the span ends.
    fn sweep<K: Key>(&mut self, spans: Vec<(K, K, usize)>) -> Result<Intervals<K>, TooBig> {
        // (key, member, +1 at a span's start or -1 just past its end)
        let mut events: Vec<(K, usize, bool)> = Vec::with_capacity(spans.len() * 2);
        for (lo, hi, m) in spans {
            events.push((lo, m, true));
            if let Some(end) = hi.next() {
                events.push((end, m, false));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        // How many of a member's spans cover the current key (a rule's list may overlap
        // itself), and the members with at least one.
        let mut depth = vec![0u32; self.members];
        let mut bits = vec![0u64; self.members.div_ceil(64)];
        let mut starts = Vec::new();
        let mut classes = Vec::new();
        let mut at = K::ZERO;
        let mut next = 0;
        loop {
            while let Some(&(_, m, start)) = events.get(next).filter(|e| e.0 == at) {
                if start {
                    depth[m] += 1;
                } else {
                    depth[m] -= 1;
                }
                let bit = 1 << (m % 64);
                if depth[m] > 0 {
                    bits[m / 64] |= bit;
                } else {
                    bits[m / 64] &= !bit;
                }
                next += 1;
            }
            let class = self.class(&bits)?;
            if classes.last() != Some(&class) {
                starts.push(at);
                classes.push(class);
            }
            match events.get(next) {
                Some(e) => at = e.0,
                None => break,
            }
        }
        Ok(Intervals {
            starts: starts.into_boxed_slice(),
            classes: classes.into_boxed_slice(),
        })
    }

    fn finish(self) -> Sets {
        Sets {
            classes: self.sets.into_boxed_slice(),
            blocks: self.blocks.into_boxed_slice(),
            words: self.words.into_boxed_slice(),
        }
    }
}

#[cfg(test)]
mod tests;
