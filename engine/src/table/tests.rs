use super::*;
use crate::flow::{Endpoints, FlowKey};
use crate::time::Ticks;
use crate::track::tcp::{TcpConn, TcpState};
use crate::wire::IpAddrs;
use proptest::prelude::*;

fn key(n: u32) -> FlowKey {
    FlowKey::from_ports(Endpoints {
        addrs: IpAddrs {
            family: Family::V4,
            src: 0x0a00_0000 | n as u128,
            dst: 0x0b00_0001,
        },
        sport: 1024 + (n % 50000) as u16,
        dport: 80,
        proto: 6,
    })
    .key
}

fn table(cap: u32) -> Table {
    Table::new(cap, FlowHasher::with_seeds([11, 22, 33, 44]))
}

fn put(t: &mut Table, k: &FlowKey, expires: Tick, assured: bool) -> Result<u32, TableFull> {
    let mut e = Entry::new(k, false, expires, ProtoState::Generic);
    if assured {
        e.flags.set(CtFlags::ASSURED);
    }
    let h = t.hash(k);
    t.insert(&h, e, Tick(0)).map(|(i, _)| i)
}

#[test]
fn try_new_advises_its_blocks_before_filling_them_and_says_its_bytes_before() {
    for cap in [MIN_CAPACITY, 1000, 1025, 100_000] {
        let mut regions = Vec::new();
        let t = Table::try_new(cap, FlowHasher::with_seeds([1, 2, 3, 4]), |r| {
            regions.push(r)
        })
        .expect("small tables fit");
        assert_eq!(t.capacity(), cap as usize);
        assert_eq!(t.memory_bytes(), Table::bytes_for(cap));
        // The entries, the memos and the index, in that order, exactly as big as the table
        // holds.
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[0], Region::of(&t.entries));
        assert_eq!(regions[1], Region::of(&t.memos));
        assert_eq!(regions[2], Region::of(&t.buckets));
        assert_eq!(regions[1].len, cap as usize * 8);
    }
    // Clamped as the table clamps.
    assert_eq!(Table::bytes_for(1), Table::bytes_for(MIN_CAPACITY));
    assert_eq!(Table::bytes_for(u32::MAX), Table::bytes_for(MAX_CAPACITY));
}

#[test]
fn memory_counts_a_memo_per_entry() {
    for cap in [MIN_CAPACITY, 1000, 100_000] {
        let t = table(cap);
        let index = t.buckets.len() * 64;
        assert_eq!(t.memory_bytes(), cap as usize * (96 + 8 + 4) + index);
    }
}

#[test]
fn memos_start_at_zero_and_are_reset_when_an_index_is_reused() {
    let mut t = table(64);
    let a = put(&mut t, &key(1), Tick(100), false).unwrap();
    let b = put(&mut t, &key(2), Tick(100), false).unwrap();
    assert_eq!((t.memo(a), t.memo(b)), (0, 0));
    t.set_memo(a, 7);
    t.set_memo(b, u64::MAX);
    assert_eq!((t.memo(a), t.memo(b)), (7, u64::MAX));
    // Removed: the memo stays until the index gets a new entry.
    t.remove(a);
    assert_eq!(t.memo(a), 7);
    let c = put(&mut t, &key(3), Tick(100), false).unwrap();
    assert_eq!(c, a, "the free list hands the index out again");
    assert_eq!(t.memo(c), 0);
    assert_eq!(t.memo(b), u64::MAX, "other memos are left alone");
    t.clear_memos();
    assert!((0..64).all(|i| t.memo(i) == 0));
}

#[test]
fn memos_are_reset_for_an_index_freed_by_expiry_or_eviction() {
    // Fill a small table, memo everything, then make every entry expire: each insert
    // reclaims a neighbour's index and must hand it out with a zero memo.
    let mut t = table(MIN_CAPACITY);
    let cap = t.capacity() as u32;
    for n in 0..cap {
        put(&mut t, &key(n), Tick(10), false).unwrap();
    }
    for i in 0..cap {
        t.set_memo(i, u64::from(i) + 1);
    }
    let mut reused = 0;
    for n in cap..cap * 4 {
        let k = key(n);
        let h = t.hash(&k);
        let e = Entry::new(&k, false, Tick(1000), ProtoState::Generic);
        if let Ok((idx, _)) = t.insert(&h, e, Tick(20)) {
            assert_eq!(t.memo(idx), 0, "index {idx} reused with a stale memo");
            t.set_memo(idx, 99);
            reused += 1;
        }
    }
    assert!(reused >= cap, "only {reused} inserts succeeded");
    t.check_invariants().unwrap();
}

#[test]
fn an_insert_does_not_write_the_memo_line() {
    // The new entry's memo reads 0 while the old value stays in the array: the insert
    // wrote only the entry.
    let mut t = table(64);
    let a = put(&mut t, &key(1), Tick(100), false).unwrap();
    t.set_memo(a, 7);
    t.remove(a);
    let b = put(&mut t, &key(2), Tick(100), false).unwrap();
    assert_eq!(b, a, "the free list hands the index out again");
    assert_eq!(t.memo(b), 0);
    assert_eq!(t.memos[b as usize], 7, "the memo line was not written");
    t.set_memo(b, 9);
    assert_eq!(t.memo(b), 9);
}

#[test]
fn memos_clear_a_step_at_a_time() {
    let mut t = table(64);
    let n = t.capacity() as u32;
    for i in 0..n {
        t.set_memo(i, u64::from(i) + 1);
    }
    assert_eq!(t.clear_memos_from(0, 10), 10);
    assert!((0..10).all(|i| t.memo(i) == 0));
    assert_eq!(t.memo(10), 11, "past the step: untouched");
    let mut from = 10;
    while from < n {
        from = t.clear_memos_from(from, 7);
    }
    assert_eq!(from, n, "ends at the pool's end");
    assert!((0..n).all(|i| t.memo(i) == 0));
    assert_eq!(t.clear_memos_from(n, 7), n, "past the end: nothing");
}

#[test]
fn out_of_memory_says_how_much() {
    let e = OutOfMemory { bytes: 12345 };
    assert_eq!(e.to_string(), "cannot allocate 12345 bytes");
    assert_eq!(e.layout().size(), 12345);
}

#[test]
fn entry_fits_in_two_cache_lines() {
    assert!(core::mem::size_of::<Entry>() <= 96);
    assert_eq!(core::mem::align_of::<Entry>(), 32);
}

#[test]
fn insert_find_remove() {
    let mut t = table(1024);
    let k = key(1);
    let idx = put(&mut t, &k, Tick(1000), false).unwrap();
    let h = t.hash(&k);
    let mut expired = 0;
    assert_eq!(t.find(&k, &h, Tick(1), &mut expired), Some(idx));
    assert_eq!(
        t.find(&key(2), &t.hash(&key(2)), Tick(1), &mut expired),
        None
    );
    t.remove(idx);
    assert_eq!(t.find(&k, &h, Tick(1), &mut expired), None);
    assert!(t.is_empty());
    t.check_invariants().unwrap();
}

#[test]
fn expired_entries_are_absent_and_reclaimed_on_lookup() {
    let mut t = table(1024);
    let k = key(7);
    put(&mut t, &k, Tick(100), false).unwrap();
    let h = t.hash(&k);
    let mut expired = 0;
    assert!(t.find(&k, &h, Tick(99), &mut expired).is_some());
    assert_eq!(t.find(&k, &h, Tick(100), &mut expired), None);
    assert_eq!(expired, 1);
    assert!(t.is_empty());
    t.check_invariants().unwrap();
}

#[test]
fn fills_to_capacity_then_evicts_non_assured() {
    let cap = 4096;
    let mut t = table(cap);
    for n in 0..cap {
        put(&mut t, &key(n), Tick(10_000 + n), false).unwrap();
    }
    assert_eq!(t.len(), cap as usize);
    t.check_invariants().unwrap();
    // One more: a neighbour is evicted, the table stays full.
    let k = key(cap + 1);
    let h = t.hash(&k);
    let e = Entry::new(&k, false, Tick(50_000), ProtoState::Generic);
    let (_, outcome) = t.insert(&h, e, Tick(0)).unwrap();
    assert!(outcome.evicted);
    assert_eq!(t.len(), cap as usize);
    t.check_invariants().unwrap();
}

#[test]
fn assured_entries_are_never_evicted() {
    let cap = 2048;
    let mut t = table(cap);
    for n in 0..cap {
        put(&mut t, &key(n), Tick(100_000), true).unwrap();
    }
    let mut refused = 0;
    for n in cap..cap + 10_000 {
        if put(&mut t, &key(n), Tick(100_000), false).is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 10_000);
    // Every original entry is still there.
    let mut expired = 0;
    for n in 0..cap {
        let k = key(n);
        let h = t.hash(&k);
        assert!(
            t.find(&k, &h, Tick(1), &mut expired).is_some(),
            "assured entry {n} lost"
        );
    }
    t.check_invariants().unwrap();
}

fn put_tcp(t: &mut Table, k: &FlowKey, state: TcpState) -> Result<InsertOutcome, TableFull> {
    let conn = TcpConn::in_state_for_tests(state);
    let mut e = Entry::new(k, false, Tick(100_000), ProtoState::Tcp(conn));
    e.flags.set(CtFlags::ASSURED | CtFlags::SEEN_REPLY);
    let h = t.hash(k);
    t.insert(&h, e, Tick(0)).map(|(_, o)| o)
}

fn tcp_state(e: &Entry) -> TcpState {
    match e.state {
        ProtoState::Tcp(c) => c.state(),
        _ => TcpState::None,
    }
}

/// Linux's `gc_worker_can_early_drop` / `tcp_can_early_drop`: ASSURED entries may go
/// only in the closing states; not ASSURED, anything may go.
#[test]
fn only_closing_tcp_states_of_assured_entries_may_be_dropped_early() {
    use TcpState::*;
    let k = key(1);
    for (state, closing) in [
        (SynSent, false),
        (SynRecv, false),
        (Established, false),
        (FinWait, true),
        (CloseWait, true),
        (LastAck, true),
        (TimeWait, true),
        (Close, true),
        (SynSent2, false),
    ] {
        let mut e = Entry::new(
            &k,
            false,
            Tick(1),
            ProtoState::Tcp(TcpConn::in_state_for_tests(state)),
        );
        assert!(e.can_early_drop(), "{state:?}, not assured");
        e.flags.set(CtFlags::ASSURED);
        assert_eq!(e.can_early_drop(), closing, "{state:?}, assured");
    }
    for state in [ProtoState::Generic, ProtoState::Icmp, ProtoState::Gre] {
        let mut e = Entry::new(&k, false, Tick(1), state);
        e.flags.set(CtFlags::ASSURED);
        assert!(!e.can_early_drop(), "{state:?}");
    }
}

#[test]
fn closing_assured_neighbours_make_room_but_live_ones_never() {
    let cap = 2048;
    let mut t = table(cap);
    for n in 0..cap {
        let state = if n % 2 == 0 {
            TcpState::Established
        } else {
            TcpState::TimeWait
        };
        put_tcp(&mut t, &key(n), state).unwrap();
    }
    let (mut closing, mut refused) = (0, 0);
    for n in cap..cap + 10_000 {
        let k = key(n);
        let e = Entry::new(&k, false, Tick(100_000), ProtoState::Generic);
        match t.insert(&t.hash(&k), e, Tick(0)) {
            Ok((_, o)) => closing += u32::from(o.evicted_closing),
            Err(TableFull) => refused += 1,
        }
    }
    // Every TIME_WAIT entry may have gone; no ESTABLISHED one did.
    assert!(
        closing > 0 && closing <= cap / 2,
        "{closing} closing evicted"
    );
    let mut expired = 0;
    for n in (0..cap).step_by(2) {
        let k = key(n);
        let idx = t.find(&k, &t.hash(&k), Tick(1), &mut expired);
        let idx = idx.unwrap_or_else(|| panic!("ESTABLISHED entry {n} lost"));
        assert_eq!(tcp_state(t.get(idx)), TcpState::Established);
    }
    assert!(refused < 10_000);
    t.check_invariants().unwrap();
}

/// A failed insert makes the next full pass of the sweeper evict, while the table is at
/// least 95% full, every entry that may be dropped early: here the TIME_WAIT entries that
/// no new key's neighbourhood reached. ESTABLISHED entries stay, and the pressure ends
/// after one pass over the pool.
#[test]
fn a_failed_insert_puts_the_table_under_pressure_for_one_sweep_pass() {
    let cap = 1000;
    let mut t = table(cap);
    for n in 0..cap {
        let state = if n < 900 {
            TcpState::Established
        } else {
            TcpState::TimeWait
        };
        put_tcp(&mut t, &key(n), state).unwrap();
    }
    assert!(!t.under_pressure());
    // Without pressure, the sweeper only reclaims expired entries.
    assert_eq!(
        t.sweep(Tick(1), cap as usize),
        SweepOutcome {
            examined: cap,
            ..SweepOutcome::default()
        }
    );
    // New connections take TIME_WAIT neighbours until one finds none and fails.
    let mut n = cap;
    while put_tcp(&mut t, &key(n), TcpState::Established).is_ok() {
        n += 1;
        assert!(n < cap + 1000, "no insert ever failed");
    }
    assert!(t.under_pressure());
    let established_before = t
        .iter(Tick(1))
        .filter(|(_, e)| tcp_state(e) == TcpState::Established)
        .count();
    let closing_before = t.len() - established_before;
    assert!(closing_before > 0, "the test needs closing entries left");

    let mut out = SweepOutcome::default();
    let mut reported = Vec::new();
    for _ in 0..(cap / 100) {
        let o = t.sweep_with(Tick(1), 100, |_, e, why| reported.push((tcp_state(e), why)));
        out.evicted_closing += o.evicted_closing;
        out.evicted += o.evicted;
        out.expired += o.expired;
    }
    // Each eviction is reported, with the entry it removed.
    assert_eq!(reported.len(), out.evicted_closing as usize);
    assert!(
        reported
            .iter()
            .all(|&r| r == (TcpState::TimeWait, Removal::EvictedClosing))
    );
    assert_eq!(out.evicted, 0);
    assert_eq!(out.expired, 0);
    // 1000 / 100 * 95 is 950: the sweeper evicts while at least 950 entries are left, so
    // from the full table it takes 51 closing entries, or all of them if fewer remain.
    assert_eq!(out.evicted_closing as usize, closing_before.min(51));
    let established_after = t
        .iter(Tick(1))
        .filter(|(_, e)| tcp_state(e) == TcpState::Established)
        .count();
    assert_eq!(established_after, established_before);
    assert!(!t.under_pressure(), "one pass only");
    t.check_invariants().unwrap();
}

#[test]
fn expired_neighbour_is_reclaimed_before_evicting() {
    let cap = 1024;
    let mut t = table(cap);
    for n in 0..cap {
        put(
            &mut t,
            &key(n),
            Tick(if n % 2 == 0 { 10 } else { 100_000 }),
            n % 2 == 1,
        )
        .unwrap();
    }
    let k = key(cap + 5);
    let h = t.hash(&k);
    let (_, outcome) = t
        .insert(
            &h,
            Entry::new(&k, false, Tick(200_000), ProtoState::Generic),
            Tick(50),
        )
        .unwrap();
    // Every live neighbour is ASSURED, so the only way in is reclaiming an expired one.
    assert!(outcome.reclaimed_expired && !outcome.evicted);
    t.check_invariants().unwrap();
}

#[test]
fn sweep_reclaims_with_bounded_work() {
    let mut t = table(1000);
    for n in 0..1000 {
        put(&mut t, &key(n), Tick(if n < 600 { 5 } else { 500 }), false).unwrap();
    }
    assert_eq!(t.sweep(Tick(10), 100).expired, 100);
    let mut total = 100;
    while total < 600 {
        let n = t.sweep(Tick(10), 100);
        assert!(n.expired <= 100);
        total += n.expired;
    }
    assert_eq!(total, 600);
    assert_eq!(t.len(), 400);
    assert_eq!(t.sweep(Tick(10), 1000).expired, 0);
    t.check_invariants().unwrap();
}

/// Drained removals, as `(pool index, lo address, why)`.
fn drained(t: &mut Table) -> Vec<(u32, u128, Removal)> {
    let mut out = Vec::new();
    let lost = t.drain_removed(|idx, e, why| out.push((idx, e.lo_addr, why)));
    assert_eq!(lost, 0);
    out
}

#[test]
fn removals_are_reported_only_when_asked() {
    let mut t = table(1024);
    let k = key(7);
    let idx = put(&mut t, &k, Tick(100), false).unwrap();
    let mut expired = 0;
    // Off: a lookup reclaims silently.
    assert_eq!(t.find(&k, &t.hash(&k), Tick(100), &mut expired), None);
    assert!(drained(&mut t).is_empty());
    // On: the reclaimed entry is reported with its index, as it was.
    t.set_report_removed(true);
    let idx2 = put(&mut t, &k, Tick(100), false).unwrap();
    assert_eq!(idx2, idx, "the freed slot is reused");
    assert_eq!(t.find(&k, &t.hash(&k), Tick(100), &mut expired), None);
    assert_eq!(drained(&mut t), [(idx, k.lo_addr, Removal::Expired)]);
    assert!(drained(&mut t).is_empty(), "drained once");
    // An explicit `remove` is the caller's to report.
    let idx3 = put(&mut t, &k, Tick(100), false).unwrap();
    t.remove(idx3);
    assert!(drained(&mut t).is_empty());
    // Turning it off forgets what is recorded.
    put(&mut t, &k, Tick(100), false).unwrap();
    assert_eq!(t.find(&k, &t.hash(&k), Tick(100), &mut expired), None);
    t.set_report_removed(false);
    assert!(drained(&mut t).is_empty());
}

#[test]
fn evictions_by_insert_are_reported_before_the_slot_is_reused() {
    let cap = 1024;
    let mut t = table(cap);
    for n in 0..cap {
        put(&mut t, &key(n), Tick(10_000 + n), false).unwrap();
    }
    t.set_report_removed(true);
    let k = key(cap + 1);
    let h = t.hash(&k);
    let (idx, o) = t
        .insert(
            &h,
            Entry::new(&k, false, Tick(50_000), ProtoState::Generic),
            Tick(0),
        )
        .unwrap();
    assert!(o.evicted);
    let removed = drained(&mut t);
    assert_eq!(removed.len(), 1);
    let (victim, lo, why) = removed[0];
    assert_eq!(why, Removal::Evicted);
    assert_eq!(victim, idx, "the victim's slot holds the new entry");
    assert_ne!(lo, k.lo_addr, "the report keeps the victim's copy");
    // An expired neighbour is reported as expired.
    for n in 0..cap {
        let kn = key(n);
        if let Some(i) = t.peek(&kn, &t.hash(&kn)) {
            t.get_mut(i).expires = Tick(5);
        }
    }
    let k2 = key(cap + 2);
    let (_, o) = t
        .insert(
            &t.hash(&k2),
            Entry::new(&k2, false, Tick(50_000), ProtoState::Generic),
            Tick(10),
        )
        .unwrap();
    assert!(o.reclaimed_expired);
    assert_eq!(
        drained(&mut t).iter().map(|r| r.2).collect::<Vec<_>>(),
        [Removal::Expired]
    );
}

#[test]
fn sweep_reports_each_removal_and_counts_what_it_examined() {
    let mut t = table(100);
    for n in 0..10 {
        put(&mut t, &key(n), Tick(if n < 4 { 5 } else { 500 }), false).unwrap();
    }
    let mut seen = Vec::new();
    let o = t.sweep_with(Tick(10), 60, |idx, e, why| seen.push((idx, e.lo_addr, why)));
    assert_eq!(o.examined, 60);
    assert_eq!(o.expired, 4);
    let mut want: Vec<_> = (0..4).map(|n| key(n).lo_addr).collect();
    let mut got: Vec<_> = seen.iter().map(|r| r.1).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    assert!(seen.iter().all(|r| r.2 == Removal::Expired));
    assert!(seen.iter().all(|r| t.live(r.0).is_none()));
    // Budget larger than the pool: one pass at most.
    assert_eq!(t.sweep(Tick(10), 1000).examined, 100);
}

#[test]
fn live_reads_pool_slots() {
    let mut t = table(64);
    let idx = put(&mut t, &key(1), Tick(500), false).unwrap();
    assert_eq!(t.live(idx).map(|e| e.lo_addr), Some(key(1).lo_addr));
    assert!(t.live(idx + 1).is_none(), "free slot");
    assert!(t.live(u32::MAX).is_none(), "outside the pool");
    t.remove(idx);
    assert!(t.live(idx).is_none());
}

#[test]
fn iter_skips_expired_and_dead_entries() {
    let mut t = table(64);
    for n in 0..10 {
        put(&mut t, &key(n), Tick(if n < 4 { 5 } else { 500 }), false).unwrap();
    }
    assert_eq!(t.iter(Tick(10)).count(), 6);
}

#[test]
fn high_load_insertions_keep_invariants() {
    // Index sized for 80% load: fill the pool completely without any eviction.
    let cap = 50_000;
    let mut t = table(cap);
    let mut evictions = 0;
    for n in 0..cap {
        let k = key(n);
        let h = t.hash(&k);
        let e = Entry::new(&k, false, Tick(1).after(Ticks(1000)), ProtoState::Generic);
        let (_, o) = t.insert(&h, e, Tick(0)).unwrap();
        evictions += o.evicted as u32;
    }
    assert_eq!(
        evictions, 0,
        "the index must hold a full pool without evicting"
    );
    t.check_invariants().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_operations_keep_invariants(ops in prop::collection::vec((0u8..4, 0u32..300, 0u32..50), 1..400)) {
        let mut t = table(128);
        let mut expired = 0;
        for (op, n, when) in ops {
            let k = key(n);
            let h = t.hash(&k);
            let now = Tick(when);
            match op {
                0 | 1 => {
                    if t.find(&k, &h, now, &mut expired).is_none() {
                        let e = Entry::new(&k, false, now.after(Ticks(20)), ProtoState::Generic);
                        let _ = t.insert(&h, e, now);
                    }
                }
                2 => {
                    if let Some(i) = t.find(&k, &h, now, &mut expired) {
                        t.remove(i);
                    }
                }
                _ => {
                    t.sweep(now, 17);
                }
            }
            prop_assert!(t.check_invariants().is_ok(), "{:?}", t.check_invariants());
        }
    }

    /// Whatever the mix of entries, inserts and pressure sweeps, a live connection that
    /// may not be dropped early (ASSURED, not closing) is never removed.
    #[test]
    fn live_assured_connections_are_never_evicted(ops in prop::collection::vec((0u8..5, 0u32..400), 1..600)) {
        let mut t = table(64);
        let mut protected = std::collections::HashSet::new();
        let mut expired = 0;
        let now = Tick(1);
        for (op, n) in ops {
            let k = key(n);
            let h = t.hash(&k);
            if op == 4 {
                t.sweep(now, 13);
            } else if t.find(&k, &h, now, &mut expired).is_none() {
                let (state, assured) = match op {
                    0 => (ProtoState::Generic, false),
                    1 => (ProtoState::Generic, true),
                    2 => (ProtoState::Tcp(TcpConn::in_state_for_tests(TcpState::Established)), true),
                    _ => (ProtoState::Tcp(TcpConn::in_state_for_tests(TcpState::TimeWait)), true),
                };
                let mut e = Entry::new(&k, false, Tick(1_000_000), state);
                if assured {
                    e.flags.set(CtFlags::ASSURED);
                }
                if t.insert(&h, e, now).is_ok() && !e.can_early_drop() {
                    protected.insert(n);
                }
            }
            for &p in &protected {
                let k = key(p);
                prop_assert!(t.find(&k, &t.hash(&k), now, &mut expired).is_some(), "entry {} lost", p);
            }
        }
        prop_assert!(t.check_invariants().is_ok(), "{:?}", t.check_invariants());
    }
}
