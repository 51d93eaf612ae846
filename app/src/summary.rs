//! Human-readable reports shared by `ctfw replay` and `ctfw run`: counters by reason, rule
//! hits, and the connection table in the `conntrack -L` format.

use ctfw_engine::pipeline::Engine;
use ctfw_engine::rules::RuleSet;
use ctfw_engine::time::Instant;
use ctfw_engine::view::EntryView;
use ctfw_engine::{Counters, Ignored, ReasonClass};

/// Print the engine counters: totals, connections, drops and INVALID verdicts by reason.
pub fn print_counters(c: &Counters, table_len: usize, capacity: usize) {
    outln!(
        "  packets {}  accepted {}  dropped {}  bytes {}",
        c.packets,
        c.accepted,
        c.dropped,
        c.bytes
    );
    outln!(
        "  connections: {} created, {} expired, {} closed, {} evicted ({} closing ASSURED); {} in the table (capacity {})",
        c.created,
        c.expired,
        c.closed,
        c.evicted + c.evicted_closing,
        c.evicted_closing,
        table_len,
        capacity
    );
    let drops: Vec<_> = c
        .nonzero_reasons()
        .filter(|(r, _)| r.class() != ReasonClass::Invalid)
        .collect();
    let invalid: Vec<_> = c
        .nonzero_reasons()
        .filter(|(r, _)| r.class() == ReasonClass::Invalid)
        .collect();
    if !drops.is_empty() {
        outln!("  dropped by reason:");
        for (r, n) in drops {
            outln!("    {:<28} {n}", r.name());
        }
    }
    if !invalid.is_empty() {
        outln!("  invalid by reason (the rules then decided):");
        for (r, n) in invalid {
            outln!("    {:<28} {n}", r.name());
        }
    }
    let ignored: Vec<_> = Ignored::ALL
        .iter()
        .map(|&r| (r, c.ignored(r)))
        .filter(|&(_, n)| n != 0)
        .collect();
    if !ignored.is_empty() {
        outln!(
            "  ignored by tracking, by reason (connection not updated; the rules then decided):"
        );
        for (r, n) in ignored {
            outln!("    {:<28} {n}", r.name());
        }
    }
}

/// Print packets decided per rule (the last count is the default policy's).
pub fn print_rule_hits(rules: &RuleSet, hits: &[u64]) {
    outln!("  rule hits:");
    for (i, n) in hits.iter().enumerate() {
        let name = if i < rules.len() {
            rules.name(i as u16)
        } else {
            "(default policy)"
        };
        outln!("    {name:<28} {n}");
    }
}

/// The table of `engine` at `now`, in a stable order.
pub fn snapshot(engine: &Engine, now: Instant) -> Vec<EntryView> {
    let tick = now.tick();
    let mut v: Vec<EntryView> = engine
        .table()
        .iter(tick)
        .map(|(_, e)| EntryView::new(e, tick))
        .collect();
    sort_entries(&mut v);
    v
}

/// How many entries [`snapshot`] would return, without building them.
pub fn live_entries(engine: &Engine, now: Instant) -> usize {
    engine.table().iter(now.tick()).count()
}

/// Sort entries in the listings' stable order: family, protocol, then the original
/// direction's addresses and ports.
pub fn sort_entries(entries: &mut [EntryView]) {
    entries.sort_by_key(|e| {
        (
            e.family,
            e.proto,
            e.orig.src,
            e.orig.dst,
            e.orig.sport,
            e.orig.dport,
        )
    });
}

/// Print at most `max` entries in the `conntrack -L` format.
pub fn print_table(entries: &[EntryView], max: usize) {
    print_listing(entries.len(), entries, max);
}

/// [`print_table`] for a table of `total` entries of which `first` are the first in order:
/// all of them, or at least `max`.
pub fn print_listing(total: usize, first: &[EntryView], max: usize) {
    outln!("conntrack table ({total} entries):");
    for e in first.iter().take(max) {
        outln!("{e}");
    }
    if total > max {
        outln!("... {} more (raise --max-entries to see them)", total - max);
    }
}
