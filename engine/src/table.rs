//! The connection table: fixed capacity, allocated up front, no allocation afterwards.
//!
//! Layout, chosen for a burst pipeline that overlaps cache misses:
//! - `entries`: a pool of `capacity` [`Entry`] values, 96 bytes each (two cache lines at most),
//!   holding the canonical key, the deadline, the status bits and the protocol state.
//!   A free list of pool indices makes insertion O(1).
//! - `memos`: one opaque `u64` per pool index beside the entry (not in it: an entry is full),
//!   for the caller's per-connection cache ([`Table::memo`]). A memo belongs to the entry it
//!   was stored for: a status bit in the entry says so, and an insert clears the bit in the
//!   entry it writes anyway, so a new entry reads 0 without the table writing the memo's
//!   line (one more line per insert from memory in a large table).
//! - `buckets`: the index, a bucketised cuckoo hash. A bucket is one 64-byte cache line of 16
//!   slots: an 8-bit tag from the hash per slot (`0` = empty), the 16 tags side by side so
//!   that one 16-byte compare finds the matching slots, then each slot's 24-bit pool index
//!   (see `bucket`).
//!   Every key has two candidate buckets, so a lookup reads at most two bucket lines (both
//!   known from the hash, fetched in parallel) and, after a tag match, one entry.
//!   The bucket count keeps the load at or below 80%, where 2x16-way cuckoo insertion
//!   practically never fails; when it does, the insert is treated like a full table.
//!
//! Invariants:
//! - an entry is LIVE iff exactly one slot in one of its key's two buckets refers to it;
//! - `len` counts LIVE entries and equals `capacity - free.len()`;
//! - an expired entry is never returned by [`Table::find`]: lookups reclaim it on the spot,
//!   and [`Table::sweep`] reclaims the rest with bounded work per call.
//!
//! Overflow is defined, after Linux's `early_drop` and its garbage collector under pressure
//! (`nf_conntrack_core.c`):
//! - when an insert finds no room, [`Table::insert`] evicts from the new key's neighbourhood
//!   (the entries its two buckets refer to: at most 32), scanned in slot order until the
//!   first `EVICT_CANDIDATES` (8) non-ASSURED neighbours have been met: an expired entry met
//!   on the way is taken at once; else the non-ASSURED entry closest to expiry among those
//!   met; else (only when there is none) an ASSURED entry whose connection is closing (TCP
//!   FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE: [`ProtoState::can_early_drop`]) closest
//!   to expiry. A live ASSURED connection (ESTABLISHED, an assured SYN_RECV, a UDP stream...)
//!   is never evicted; if the neighbourhood holds nothing else, the insert fails and the
//!   caller drops and counts the packet;
//! - a failed insert puts the table under pressure, as a failed allocation sets Linux's
//!   `gc_work->early_drop`: for one full pass of [`Table::sweep`] over the pool, the sweeper
//!   also removes every entry it meets that may be dropped early (non-ASSURED, or ASSURED and
//!   closing) while the table holds at least `capacity / 100 * 95` entries
//!   (`nf_conntrack_max95`). This frees a table
//!   clogged with closed connections even where no new key's neighbourhood holds one.
//!
//! Entries never move in the pool: an entry keeps its pool index from insertion to removal,
//! which is what lets a listing resume from a pool index ([`Table::live`]).
//!
//! Removals the table decides on its own (an expired entry reclaimed by a lookup or by an
//! insert, a neighbour evicted by an insert) can be reported, for the engine's DESTROY
//! events: with [`Table::set_report_removed`] on, each is copied, with its pool index and
//! why, into a small fixed buffer that the engine empties ([`Table::drain_removed`]) after
//! every lookup or insert that may have removed something. Off (the default), the removal
//! paths test one flag and the lookup and insert paths that remove nothing are unchanged.
//! [`Table::sweep_with`] reports its removals to a callback instead, since one sweep may
//! remove up to its whole budget.

mod bucket;
mod prefetch;

use crate::flow::{FlowHasher, FlowKey};
use crate::time::Tick;
use crate::track::tcp::TcpState;
use crate::track::{CtFlags, ProtoState};
use crate::wire::Family;
use bucket::{Bucket, SLOTS};

/// Largest supported capacity: pool indices are 24 bits in a slot.
pub const MAX_CAPACITY: u32 = (1 << 24) - 1;
/// Smallest capacity (keeps the neighbourhood meaningful).
pub const MIN_CAPACITY: u32 = 16;

/// Target load of the index: at most 80% of slots used when the pool is full.
const LOAD_NUM: u64 = 4;
const LOAD_DEN: u64 = 5;
/// Buckets a cuckoo displacement search may visit before an insert counts as "no room".
const MAX_KICKS: usize = 64;
/// Non-ASSURED neighbours compared before one is evicted.
const EVICT_CANDIDATES: u32 = 8;
/// Table-private status bit: the entry is in use.
const LIVE: u8 = 0x80;
/// Table-private status bit: the memo at the entry's pool index was stored for this entry
/// ([`Table::set_memo`]); without it the entry's memo reads 0.
const MEMO: u8 = 0x40;
/// Removals a lookup or an insert reports at most before the engine drains them: a lookup
/// reclaims at most one expired entry and an insert removes at most one neighbour; the rest
/// is slack.
const REMOVED_CAP: usize = 4;

/// One tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct Entry {
    /// Canonical key: lower (or requesting) address.
    pub lo_addr: u128,
    /// Canonical key: higher (or responding) address.
    pub hi_addr: u128,
    /// When the entry expires.
    pub expires: Tick,
    /// Canonical key: port of `lo_addr` (ICMP: identifier).
    pub lo_port: u16,
    /// Canonical key: port of `hi_addr` (ICMP: request type and code).
    pub hi_port: u16,
    /// Canonical key: IP protocol.
    pub proto: u8,
    /// Canonical key: address family.
    pub family: Family,
    /// Status bits: [`CtFlags`] plus the table's LIVE and MEMO bits.
    pub flags: CtFlags,
    /// Protocol-specific tracking state.
    pub state: ProtoState,
}

// At most 96 bytes at a multiple of 32: an entry never spans more than two cache lines,
// which is what `prefetch::both_lines` fetches.
const _: () = assert!(core::mem::size_of::<Entry>() <= 96);
const _: () = assert!(core::mem::align_of::<Entry>() == 32);

impl Entry {
    /// A fresh entry for `key` (not yet in a table).
    pub fn new(key: &FlowKey, orig_swapped: bool, expires: Tick, state: ProtoState) -> Entry {
        let mut flags = CtFlags::default();
        if orig_swapped {
            flags.set(CtFlags::ORIG_SWAPPED);
        }
        Entry {
            lo_addr: key.lo_addr,
            hi_addr: key.hi_addr,
            expires,
            lo_port: key.lo_port,
            hi_port: key.hi_port,
            proto: key.proto,
            family: key.family,
            flags,
            state,
        }
    }

    /// The canonical key.
    #[inline]
    pub fn key(&self) -> FlowKey {
        FlowKey {
            lo_addr: self.lo_addr,
            hi_addr: self.hi_addr,
            lo_port: self.lo_port,
            hi_port: self.hi_port,
            proto: self.proto,
            family: self.family,
        }
    }

    #[inline]
    fn matches(&self, k: &FlowKey) -> bool {
        // Differences folded into one word, one branch on the whole key rather than one per
        // field: the usual outcome, a match, compares every field anyway.
        let addrs = (self.lo_addr ^ k.lo_addr) | (self.hi_addr ^ k.hi_addr);
        let rest = key_rest(self.lo_port, self.hi_port, self.proto, self.family)
            ^ key_rest(k.lo_port, k.hi_port, k.proto, k.family);
        (addrs as u64 | (addrs >> 64) as u64 | rest) == 0
    }

    /// Whether the ORIGINAL tuple runs `hi -> lo`.
    #[inline]
    pub fn orig_swapped(&self) -> bool {
        self.flags.orig_swapped()
    }

    /// Whether the entry's deadline has passed at `now`.
    #[inline]
    pub fn is_expired(&self, now: Tick) -> bool {
        !self.expires.is_after(now)
    }

    #[inline]
    fn is_live(&self) -> bool {
        self.flags.0 & LIVE != 0
    }

    /// Linux `gc_worker_can_early_drop`: not ASSURED, or its connection is closing.
    #[inline]
    pub fn can_early_drop(&self) -> bool {
        !self.flags.assured() || self.state.can_early_drop()
    }
}

/// Where a key may live, derived once per packet from its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashed {
    /// Primary bucket.
    b1: u32,
    /// Secondary bucket.
    b2: u32,
    /// Tag (never 0, the empty slot's).
    tag: u8,
}

/// Why an insert failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// Memory that could not be allocated: how many bytes were asked for in all (a whole table,
/// or a whole engine for [`Engine::try_new`](crate::pipeline::Engine::try_new)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    /// Bytes needed.
    pub bytes: usize,
}

impl OutOfMemory {
    /// A layout of `bytes`, for [`std::alloc::handle_alloc_error`].
    fn layout(self) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(self.bytes.max(1), 64)
            .unwrap_or_else(|_| std::alloc::Layout::new::<Bucket>())
    }
}

impl core::fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cannot allocate {} bytes", self.bytes)
    }
}

impl std::error::Error for OutOfMemory {}

/// A block of memory reserved but not yet written: where it starts and how many bytes it
/// spans. What [`Table::try_new`] hands its `advise` hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Address of the first byte.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Region {
    /// The block `v` has reserved (its whole capacity).
    pub fn of<T>(v: &Vec<T>) -> Region {
        Region {
            addr: v.as_ptr().addr(),
            len: v.capacity() * core::mem::size_of::<T>(),
        }
    }
}

/// What [`Table::insert`] had to do to make room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// An expired neighbour was reclaimed.
    pub reclaimed_expired: bool,
    /// A live non-ASSURED neighbour was evicted.
    pub evicted: bool,
    /// A live ASSURED neighbour whose connection is closing was evicted.
    pub evicted_closing: bool,
}

/// What an operator counts entries by: the protocol and, for TCP, the state
/// (`conntrack -L | awk '{print $1, $4}' | sort | uniq -c`). [`Table::by_class`] keeps one
/// count per class, up to date on insert, removal and TCP state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryClass(u8);

impl EntryClass {
    /// How many classes there are: the ten TCP states, UDP, ICMP, ICMPv6, GRE, other.
    pub const COUNT: usize = 15;
    const UDP: u8 = 10;
    const ICMP: u8 = 11;
    const ICMPV6: u8 = 12;
    const GRE: u8 = 13;
    const OTHER: u8 = 14;

    /// The class of an entry of `family` in protocol state `state`.
    #[inline]
    pub fn of(family: Family, state: &ProtoState) -> EntryClass {
        EntryClass(match state {
            ProtoState::Tcp(c) => c.state() as u8,
            ProtoState::Udp(_) => Self::UDP,
            ProtoState::Icmp if family == Family::V6 => Self::ICMPV6,
            ProtoState::Icmp => Self::ICMP,
            ProtoState::Gre => Self::GRE,
            ProtoState::Generic => Self::OTHER,
        })
    }

    /// The class of a TCP entry in `state`.
    #[inline]
    pub fn tcp(state: TcpState) -> EntryClass {
        EntryClass(state as u8)
    }

    /// Every class, in index order.
    pub fn all() -> impl Iterator<Item = EntryClass> {
        (0..Self::COUNT as u8).map(EntryClass)
    }

    /// Index into [`Table::by_class`].
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The protocol name (`tcp`, `udp`, `icmp`, `icmpv6`, `gre`, `other`).
    pub fn proto(self) -> &'static str {
        match self.0 {
            0..=9 => "tcp",
            Self::UDP => "udp",
            Self::ICMP => "icmp",
            Self::ICMPV6 => "icmpv6",
            Self::GRE => "gre",
            _ => "other",
        }
    }

    /// The TCP state name (`ESTABLISHED`, ...), or `""` for other protocols (which have none).
    pub fn state(self) -> &'static str {
        TcpState::ALL
            .get(usize::from(self.0))
            .map_or("", |s| s.name())
    }
}

/// Why the table removed an entry on its own (see [`Table::set_report_removed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Removal {
    /// Its deadline had passed: reclaimed by a lookup, an insert or the sweeper.
    Expired,
    /// A live non-ASSURED entry, evicted by an insert or by the sweeper under pressure.
    Evicted,
    /// A live ASSURED entry of a closing connection, evicted the same ways.
    EvictedClosing,
}

/// A removal reported by the table, with the entry as it was when removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Removed {
    idx: u32,
    entry: Entry,
    why: Removal,
}

/// What one [`Table::sweep`] call examined and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Pool slots examined, live or not.
    pub examined: u32,
    /// Expired entries reclaimed.
    pub expired: u32,
    /// Live non-ASSURED entries evicted under pressure.
    pub evicted: u32,
    /// Live ASSURED entries of closing connections evicted under pressure.
    pub evicted_closing: u32,
}

impl SweepOutcome {
    /// Entries removed, for whatever reason.
    pub fn removed(&self) -> u32 {
        self.expired + self.evicted + self.evicted_closing
    }
}

/// The connection table of one worker.
#[derive(Debug)]
pub struct Table {
    entries: Vec<Entry>,
    /// The caller's memo for each pool index ([`Table::memo`]), parallel to `entries`.
    memos: Vec<u64>,
    buckets: Vec<Bucket>,
    free: Vec<u32>,
    hasher: FlowHasher,
    sweep_cursor: u32,
    /// Live entries per [`EntryClass`] (expired ones not yet reclaimed included, as in `len`).
    by_class: [u32; EntryClass::COUNT],
    /// Pool slots the sweeper still visits under pressure (0: no pressure). Set to the
    /// capacity by a failed insert: one full pass.
    pressure_left: u32,
    /// Whether removals decided by lookups and inserts are copied into `removed`.
    report_removed: bool,
    /// Removals not yet drained, `removed_len` of them.
    removed: [Removed; REMOVED_CAP],
    removed_len: u8,
    /// Removals that found `removed` full (the engine drains it after every lookup and
    /// insert, so this stays zero; counted rather than lost silently).
    removed_lost: u32,
}

impl Table {
    /// A table for `capacity` entries (clamped to `MIN_CAPACITY..=MAX_CAPACITY`), all memory
    /// allocated now. Aborts the process, as `vec!` does, if the memory cannot be had: where
    /// that must be refused cleanly, use [`Table::try_new`].
    pub fn new(capacity: u32, hasher: FlowHasher) -> Table {
        match Table::try_new(capacity, hasher, |_| {}) {
            Ok(t) => t,
            Err(e) => std::alloc::handle_alloc_error(e.layout()),
        }
    }

    /// A table for `capacity` entries (clamped to `MIN_CAPACITY..=MAX_CAPACITY`), or
    /// [`OutOfMemory`] (with the bytes the whole table needs) if its memory cannot be
    /// allocated. Every block is reserved first and handed to `advise` before anything is
    /// written to it, so that the caller can ask the operating system how to back it (huge
    /// pages: the entries and the index are the biggest, most randomly accessed memory of the
    /// data plane); the engine itself makes no system call. Then the blocks are filled: nothing
    /// is allocated after this returns.
    pub fn try_new(
        capacity: u32,
        hasher: FlowHasher,
        mut advise: impl FnMut(Region),
    ) -> Result<Table, OutOfMemory> {
        let capacity = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY);
        let nbuckets = Table::buckets_for(capacity);
        let out_of_memory = |_| OutOfMemory {
            bytes: Table::bytes_for(capacity),
        };
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(capacity as usize)
            .map_err(out_of_memory)?;
        let mut memos = Vec::new();
        memos
            .try_reserve_exact(capacity as usize)
            .map_err(out_of_memory)?;
        let mut buckets = Vec::new();
        buckets.try_reserve_exact(nbuckets).map_err(out_of_memory)?;
        let mut free = Vec::new();
        free.try_reserve_exact(capacity as usize)
            .map_err(out_of_memory)?;
        advise(Region::of(&entries));
        advise(Region::of(&memos));
        advise(Region::of(&buckets));
        let blank = Entry::new(
            &FlowKey {
                lo_addr: 0,
                hi_addr: 0,
                lo_port: 0,
                hi_port: 0,
                proto: 0,
                family: Family::V4,
            },
            false,
            Tick(0),
            ProtoState::Generic,
        );
        // Within the reserved capacity: none of these reallocates.
        entries.resize(capacity as usize, blank);
        memos.resize(capacity as usize, 0);
        buckets.resize(nbuckets, Bucket::EMPTY);
        // Pop order hands out low indices first, which keeps small tables dense.
        free.extend((0..capacity).rev());
        Ok(Table {
            entries,
            memos,
            buckets,
            free,
            hasher,
            sweep_cursor: 0,
            by_class: [0; EntryClass::COUNT],
            pressure_left: 0,
            report_removed: false,
            removed: [Removed {
                idx: 0,
                entry: blank,
                why: Removal::Expired,
            }; REMOVED_CAP],
            removed_len: 0,
            removed_lost: 0,
        })
    }

    /// Index buckets for `capacity` entries (already clamped): enough slots for a load of at
    /// most `LOAD_NUM / LOAD_DEN`.
    fn buckets_for(capacity: u32) -> usize {
        let slots_needed = (capacity as u64 * LOAD_DEN).div_ceil(LOAD_NUM);
        slots_needed.div_ceil(SLOTS as u64).max(2) as usize
    }

    /// Bytes a table of `capacity` entries (clamped as [`Table::try_new`] does) allocates:
    /// entries, memos, index and free list, what [`Table::memory_bytes`] then reports. Lets a
    /// caller check the memory before asking for it.
    pub fn bytes_for(capacity: u32) -> usize {
        let capacity = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY) as usize;
        capacity * core::mem::size_of::<Entry>()
            + capacity * core::mem::size_of::<u64>()
            + Table::buckets_for(capacity as u32) * core::mem::size_of::<Bucket>()
            + capacity * core::mem::size_of::<u32>()
    }

    /// Whether removals decided by lookups and inserts (expired entries reclaimed, neighbours
    /// evicted) are recorded for [`Table::drain_removed`]. Turning it off discards what is
    /// recorded.
    pub fn set_report_removed(&mut self, on: bool) {
        self.report_removed = on;
        if !on {
            self.removed_len = 0;
        }
    }

    /// Hand every recorded removal to `f` (pool index, the entry as it was, why) and forget
    /// them; returns how many removals could not be recorded since the last call because the
    /// buffer was full (zero when drained after every lookup and insert). The entry's pool
    /// slot may already hold a new entry: use the copy.
    pub fn drain_removed(&mut self, mut f: impl FnMut(u32, &Entry, Removal)) -> u32 {
        for r in &self.removed[..usize::from(self.removed_len)] {
            f(r.idx, &r.entry, r.why);
        }
        self.removed_len = 0;
        core::mem::take(&mut self.removed_lost)
    }

    /// Record the removal of the (still intact) entry at `idx`, if removals are reported.
    #[inline]
    fn note_removed(&mut self, idx: u32, why: Removal) {
        if self.report_removed {
            self.record_removed(idx, why);
        }
    }

    #[cold]
    fn record_removed(&mut self, idx: u32, why: Removal) {
        match self.removed.get_mut(usize::from(self.removed_len)) {
            Some(slot) => {
                *slot = Removed {
                    idx,
                    entry: self.entries[idx as usize],
                    why,
                };
                self.removed_len += 1;
            }
            None => self.removed_lost += 1,
        }
    }

    /// Maximum number of entries.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Number of live entries (expired ones not yet reclaimed included).
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Whether the table holds no entry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory held: entries, memos, index and free list.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Entry>()
            + self.memos.capacity() * core::mem::size_of::<u64>()
            + self.buckets.capacity() * core::mem::size_of::<Bucket>()
            + self.free.capacity() * core::mem::size_of::<u32>()
    }

    /// Hash a key and derive its buckets and tag.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> Hashed {
        let h = self.hasher.hash(key);
        let n = self.buckets.len() as u64;
        // Multiply-shift range reduction (no modulo): any bucket count works.
        let b1 = (((h & 0xffff_ffff) * n) >> 32) as u32;
        let mut b2 = ((((h >> 24) & 0xffff_ffff) * n) >> 32) as u32;
        if b2 == b1 {
            b2 = if b1 + 1 == n as u32 { 0 } else { b1 + 1 };
        }
        // Tags 1..=255: a zero tag would look like an empty slot's.
        let tag = ((h >> 56) as u8).max(1);
        Hashed { b1, b2, tag }
    }

    /// Prefetch the two candidate buckets (stage 2 of `Engine::process_group`): a hint that
    /// does not wait for the lines (see `prefetch`).
    #[inline]
    pub fn prefetch_buckets(&self, h: &Hashed) {
        prefetch::first_line(&self.buckets[h.b1 as usize]);
        prefetch::first_line(&self.buckets[h.b2 as usize]);
    }

    /// The pool index plus one of the first entry whose tag matches `h` (0: none), read from
    /// the buckets alone. Once a burst's buckets have arrived, this lets its entry fetches be
    /// issued back to back by [`Table::prefetch_entry`].
    #[inline]
    pub fn candidate(&self, h: &Hashed) -> u32 {
        for b in [h.b1, h.b2] {
            let bucket = &self.buckets[b as usize];
            let hits = bucket.tag_hits(h.tag);
            if hits != 0 {
                return bucket.idx(hits.trailing_zeros() as usize) + 1;
            }
        }
        0
    }

    /// Prefetch both cache lines of candidate `c` (from [`Table::candidate`]; 0: none).
    #[inline]
    pub fn prefetch_entry(&self, c: u32) {
        if let Some(idx) = c.checked_sub(1) {
            prefetch::both_lines(&self.entries[idx as usize]);
        }
    }

    /// Prefetch the line of candidate `c`'s memo (0: none), for a caller that will read it:
    /// one more line per packet from memory in a large table, so only then.
    #[inline]
    pub fn prefetch_memo(&self, c: u32) {
        if let Some(idx) = c.checked_sub(1) {
            prefetch::first_line(&self.memos[idx as usize]);
        }
    }

    /// The memo of pool index `idx`: what [`Table::set_memo`] last stored there since the
    /// index got its current entry (and since [`Table::clear_memos`]), else 0. The table
    /// gives it no meaning.
    #[inline]
    pub fn memo(&self, idx: u32) -> u64 {
        if self.entries[idx as usize].flags.0 & MEMO != 0 {
            self.memos[idx as usize]
        } else {
            0
        }
    }

    /// Store `v` as the memo of pool index `idx` (until the index gets a new entry, or
    /// [`Table::clear_memos`]).
    #[inline]
    pub fn set_memo(&mut self, idx: u32, v: u64) {
        self.entries[idx as usize].flags.set(MEMO);
        self.memos[idx as usize] = v;
    }

    /// Set every memo to 0 (O(capacity)).
    pub fn clear_memos(&mut self) {
        self.memos.fill(0);
    }

    /// Set the memos of pool indices `from..from + count` (within the pool) to 0, and return
    /// the index after the last one cleared: bounded work, for a caller that clears the
    /// whole pool a step at a time.
    pub fn clear_memos_from(&mut self, from: u32, count: u32) -> u32 {
        let end = from.saturating_add(count).min(self.memos.len() as u32);
        if let Some(m) = self.memos.get_mut(from as usize..end as usize) {
            m.fill(0);
        }
        end
    }

    /// The live, unexpired entry for `key`, if any. An expired entry found on the way is
    /// reclaimed (and counted in `expired`).
    #[inline]
    pub fn find(&mut self, key: &FlowKey, h: &Hashed, now: Tick, expired: &mut u64) -> Option<u32> {
        let (b, slot, idx) = self.locate(key, h)?;
        if self.entries[idx as usize].is_expired(now) {
            self.note_removed(idx, Removal::Expired);
            self.release(b, slot, idx);
            *expired += 1;
            return None;
        }
        Some(idx)
    }

    /// As [`Table::find`], trying first the entry `cand` found by [`Table::candidate`] while
    /// the burst was being fetched: when it still holds `key` (keys are unique, so a live
    /// entry with the key is the one), the buckets need not be scanned again.
    #[inline]
    pub fn find_hinted(
        &mut self,
        key: &FlowKey,
        h: &Hashed,
        cand: u32,
        now: Tick,
        expired: &mut u64,
    ) -> Option<u32> {
        if let Some(idx) = cand.checked_sub(1) {
            let e = &self.entries[idx as usize];
            if e.is_live() && e.matches(key) && !e.is_expired(now) {
                return Some(idx);
            }
        }
        self.find_unhinted(key, h, now, expired)
    }

    /// [`Table::find`] out of line, so that [`Table::find_hinted`]'s usual case (the hint
    /// holds the key) stays small enough to inline into the pipeline. It first asks the tags:
    /// without a candidate the key is most often a new connection's, in neither bucket, and
    /// a miss then costs a call and two compares (an earlier packet of the burst may have
    /// inserted the key since the candidate was read: then a tag is there, and the search
    /// finds it).
    #[inline(never)]
    fn find_unhinted(
        &mut self,
        key: &FlowKey,
        h: &Hashed,
        now: Tick,
        expired: &mut u64,
    ) -> Option<u32> {
        let hits = |b: u32| self.buckets[b as usize].tag_hits(h.tag);
        if hits(h.b1) | hits(h.b2) == 0 {
            return None;
        }
        self.find_searched(key, h, now, expired)
    }

    /// [`Table::find`], out of line so that [`Table::find_unhinted`]'s miss needs no frame.
    #[inline(never)]
    fn find_searched(
        &mut self,
        key: &FlowKey,
        h: &Hashed,
        now: Tick,
        expired: &mut u64,
    ) -> Option<u32> {
        self.find(key, h, now, expired)
    }

    /// The live entry for `key` without expiry checks or side effects.
    #[inline]
    pub fn peek(&self, key: &FlowKey, h: &Hashed) -> Option<u32> {
        self.locate(key, h).map(|(_, _, idx)| idx)
    }

    #[inline]
    fn locate(&self, key: &FlowKey, h: &Hashed) -> Option<(u32, usize, u32)> {
        for b in [h.b1, h.b2] {
            let bucket = &self.buckets[b as usize];
            let mut hits = bucket.tag_hits(h.tag);
            while hits != 0 {
                let i = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                let idx = bucket.idx(i);
                if self.entries[idx as usize].matches(key) {
                    return Some((b, i, idx));
                }
            }
        }
        None
    }

    /// The entry at pool index `idx`.
    #[inline]
    pub fn get(&self, idx: u32) -> &Entry {
        &self.entries[idx as usize]
    }

    /// The entry at pool index `idx`, mutably. Callers must not change its key.
    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut Entry {
        &mut self.entries[idx as usize]
    }

    /// Insert `entry` (whose key must not be in the table), making room if needed.
    /// `h` is the entry's hash. Fails only when the new key's neighbourhood holds nothing but
    /// live ASSURED connections; the failure puts the table under pressure (see the module
    /// documentation).
    pub fn insert(
        &mut self,
        h: &Hashed,
        mut entry: Entry,
        now: Tick,
    ) -> Result<(u32, InsertOutcome), TableFull> {
        entry.flags.set(LIVE);
        // Whatever memo the index holds was stored for an earlier entry (one handed in with
        // the bit, a copy of a live entry, must not claim it).
        entry.flags.clear(MEMO);
        let mut outcome = InsertOutcome::default();
        for attempt in 0..2 {
            if !self.free.is_empty() {
                if let Some((b, slot)) = self.room_for(h) {
                    let idx = self.free.pop().unwrap_or_default();
                    self.by_class[EntryClass::of(entry.family, &entry.state).index()] += 1;
                    self.entries[idx as usize] = entry;
                    self.buckets[b as usize].set(slot, h.tag, idx);
                    return Ok((idx, outcome));
                }
            }
            if attempt == 0 {
                match self.evict_near(h, now) {
                    Some(Victim::Expired) => outcome.reclaimed_expired = true,
                    Some(Victim::Evicted) => outcome.evicted = true,
                    Some(Victim::EvictedClosing) => outcome.evicted_closing = true,
                    None => break,
                }
            }
        }
        if self.pressure_left == 0 {
            self.pressure_left = self.entries.len() as u32;
        }
        Err(TableFull)
    }

    /// Whether the table is under pressure: an insert failed and the sweeper has not yet
    /// completed a pass over the pool since.
    #[inline]
    pub fn under_pressure(&self) -> bool {
        self.pressure_left != 0
    }

    /// A free slot in one of `h`'s buckets, moving other keys to their alternate buckets
    /// (cuckoo displacement, breadth-first over at most `MAX_KICKS` buckets) if needed.
    fn room_for(&mut self, h: &Hashed) -> Option<(u32, usize)> {
        for b in [h.b1, h.b2] {
            if let Some(s) = self.buckets[b as usize].free_slot() {
                return Some((b, s));
            }
        }
        // nodes[i] = (bucket, parent node, slot in the parent's bucket whose key moves here)
        let mut nodes = [(0u32, u8::MAX, 0u8); MAX_KICKS];
        nodes[0].0 = h.b1;
        nodes[1].0 = h.b2;
        let mut len = 2;
        let mut i = 0;
        while i < len {
            let b = nodes[i].0;
            for slot in 0..SLOTS {
                let idx = self.buckets[b as usize].idx(slot);
                let kh = self.hash(&self.entries[idx as usize].key());
                let alt = if kh.b1 == b { kh.b2 } else { kh.b1 };
                if let Some(free) = self.buckets[alt as usize].free_slot() {
                    return Some(self.shift_path(&nodes, i, slot, alt, free));
                }
                // Each bucket enters the search once, so a path never revisits a bucket and
                // its moves cannot disturb one another.
                if len < MAX_KICKS && !nodes[..len].iter().any(|n| n.0 == alt) {
                    nodes[len] = (alt, i as u8, slot as u8);
                    len += 1;
                }
            }
            i += 1;
        }
        None
    }

    /// Execute a displacement path found by [`Table::room_for`]: the key in `(node i, slot)`
    /// moves to `(alt, free)`, then each ancestor's key moves into the slot just vacated.
    /// Returns the vacated slot in the root bucket.
    fn shift_path(
        &mut self,
        nodes: &[(u32, u8, u8)],
        mut i: usize,
        mut slot: usize,
        alt: u32,
        free: usize,
    ) -> (u32, usize) {
        let (mut to_b, mut to_s) = (alt, free);
        loop {
            let b = nodes[i].0;
            let from = self.buckets[b as usize];
            from.copy_slot(slot, &mut self.buckets[to_b as usize], to_s);
            self.buckets[b as usize].clear(slot);
            let (_, parent, pslot) = nodes[i];
            if parent == u8::MAX {
                return (b, slot);
            }
            (to_b, to_s) = (b, slot);
            i = parent as usize;
            slot = pslot as usize;
        }
    }

    /// Make room near `h`. The scan stops after the first [`EVICT_CANDIDATES`] non-ASSURED
    /// neighbours (each look at a neighbour is a likely cache miss; Linux's `early_drop` also
    /// stops at the first it can take). An expired neighbour met before then is reclaimed at
    /// once; else the non-ASSURED neighbour closest to expiry among those met is evicted; else
    /// the closing ASSURED neighbour closest to expiry. `None` when every neighbour is a live
    /// ASSURED connection.
    fn evict_near(&mut self, h: &Hashed, now: Tick) -> Option<Victim> {
        // (bucket, slot, idx, remaining ticks) of the best candidate of each kind.
        let mut best: Option<(u32, usize, u32, u32)> = None;
        let mut best_closing: Option<(u32, usize, u32, u32)> = None;
        let mut candidates = 0;
        'scan: for b in [h.b1, h.b2] {
            for slot in 0..SLOTS {
                let Some(idx) = self.buckets[b as usize].get(slot) else {
                    continue;
                };
                let e = &self.entries[idx as usize];
                if e.is_expired(now) {
                    self.note_removed(idx, Removal::Expired);
                    self.release(b, slot, idx);
                    return Some(Victim::Expired);
                }
                let left = e.expires.remaining(now).0;
                if e.flags.assured() {
                    if e.state.can_early_drop() && best_closing.is_none_or(|(_, _, _, l)| left < l)
                    {
                        best_closing = Some((b, slot, idx, left));
                    }
                    continue;
                }
                if best.is_none_or(|(_, _, _, l)| left < l) {
                    best = Some((b, slot, idx, left));
                }
                candidates += 1;
                if candidates == EVICT_CANDIDATES {
                    break 'scan;
                }
            }
        }
        let (victim, (b, slot, idx, _)) = match (best, best_closing) {
            (Some(c), _) => (Victim::Evicted, c),
            (None, Some(c)) => (Victim::EvictedClosing, c),
            (None, None) => return None,
        };
        self.note_removed(
            idx,
            match victim {
                Victim::EvictedClosing => Removal::EvictedClosing,
                _ => Removal::Evicted,
            },
        );
        self.release(b, slot, idx);
        Some(victim)
    }

    /// Remove the entry at pool index `idx` (which must be live).
    pub fn remove(&mut self, idx: u32) {
        let key = self.entries[idx as usize].key();
        let h = self.hash(&key);
        for b in [h.b1, h.b2] {
            let bucket = &self.buckets[b as usize];
            if let Some(slot) = (0..SLOTS).find(|&i| bucket.get(i) == Some(idx)) {
                self.release(b, slot, idx);
                return;
            }
        }
        debug_assert!(false, "remove of an entry that is not indexed");
    }

    #[inline]
    fn release(&mut self, b: u32, slot: usize, idx: u32) {
        self.buckets[b as usize].clear(slot);
        let e = &mut self.entries[idx as usize];
        e.flags.clear(LIVE);
        self.by_class[EntryClass::of(e.family, &e.state).index()] -= 1;
        self.free.push(idx);
    }

    /// Live entries per [`EntryClass`], indexed by [`EntryClass::index`]; they sum to
    /// [`Table::len`].
    #[inline]
    pub fn by_class(&self) -> &[u32; EntryClass::COUNT] {
        &self.by_class
    }

    /// A live TCP entry moved from state `from` to `to` (the pipeline reports it after the
    /// tracker, so that [`Table::by_class`] stays exact).
    #[inline]
    pub fn restate_tcp(&mut self, from: TcpState, to: TcpState) {
        self.by_class[EntryClass::tcp(from).index()] -= 1;
        self.by_class[EntryClass::tcp(to).index()] += 1;
    }

    /// Reclaim expired entries, examining at most `budget` pool slots from where the last
    /// call stopped; under pressure, also evict the entries that may be dropped early while
    /// the table is at least 95% full (Linux `gc_worker`). Bounded work per call keeps a
    /// worker's latency flat; calling it between bursts covers the pool in
    /// `capacity / budget` calls.
    pub fn sweep(&mut self, now: Tick, budget: usize) -> SweepOutcome {
        self.sweep_with(now, budget, |_, _, _| {})
    }

    /// [`Table::sweep`], handing each removed entry (pool index, the entry, why) to
    /// `removed` as it goes. The sweeper reports to this callback whatever
    /// [`Table::set_report_removed`] says.
    #[inline]
    pub fn sweep_with(
        &mut self,
        now: Tick,
        budget: usize,
        mut removed: impl FnMut(u32, &Entry, Removal),
    ) -> SweepOutcome {
        let n = self.entries.len() as u32;
        // Linux: `nf_conntrack_max95 = nf_conntrack_max / 100u * 95u`, and no eviction at
        // all when that is 0 (a table of fewer than 100 entries).
        let max95 = (n / 100 * 95) as usize;
        let steps = budget.min(n as usize);
        let mut out = SweepOutcome {
            examined: steps as u32,
            ..SweepOutcome::default()
        };
        for _ in 0..steps {
            let idx = self.sweep_cursor;
            self.sweep_cursor = if idx + 1 == n { 0 } else { idx + 1 };
            let pressure = self.pressure_left != 0;
            self.pressure_left = self.pressure_left.saturating_sub(1);
            let e = &self.entries[idx as usize];
            if !e.is_live() {
                continue;
            }
            let why = if e.is_expired(now) {
                out.expired += 1;
                Removal::Expired
            } else if pressure && max95 != 0 && self.len() >= max95 && e.can_early_drop() {
                if e.flags.assured() {
                    out.evicted_closing += 1;
                    Removal::EvictedClosing
                } else {
                    out.evicted += 1;
                    Removal::Evicted
                }
            } else {
                continue;
            };
            self.remove(idx);
            // `remove` only unindexes the entry: its pool slot still holds it.
            removed(idx, &self.entries[idx as usize], why);
        }
        out
    }

    /// The live entry at pool index `idx` (expired or not), or `None` if the slot is free or
    /// out of the pool. Entries never move, so a listing can walk the pool by index.
    #[inline]
    pub fn live(&self, idx: u32) -> Option<&Entry> {
        self.entries.get(idx as usize).filter(|e| e.is_live())
    }

    /// Live, unexpired entries with their pool index, in pool order.
    pub fn iter(&self, now: Tick) -> impl Iterator<Item = (u32, &Entry)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.is_live() && !e.is_expired(now))
            .map(|(i, e)| (i as u32, e))
    }

    /// Check every invariant (tests and debug tooling; O(capacity)).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = vec![false; self.entries.len()];
        for (b, bucket) in self.buckets.iter().enumerate() {
            for slot in 0..SLOTS {
                let Some(idx) = bucket.get(slot).map(|i| i as usize) else {
                    continue;
                };
                let e = self
                    .entries
                    .get(idx)
                    .ok_or(format!("slot refers to {idx}: out of pool"))?;
                if !e.is_live() {
                    return Err(format!("slot in bucket {b} refers to dead entry {idx}"));
                }
                if std::mem::replace(&mut seen[idx], true) {
                    return Err(format!("entry {idx} indexed twice"));
                }
                let h = self.hash(&e.key());
                if h.b1 as usize != b && h.b2 as usize != b {
                    return Err(format!(
                        "entry {idx} sits in bucket {b}, not one of its own"
                    ));
                }
                if bucket.tag(slot) != h.tag {
                    return Err(format!("entry {idx} has a stale tag"));
                }
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            if e.is_live() != seen[i] {
                return Err(format!(
                    "entry {i}: live={} indexed={}",
                    e.is_live(),
                    seen[i]
                ));
            }
        }
        let live = seen.iter().filter(|&&s| s).count();
        if live != self.len() {
            return Err(format!("len {} but {live} live entries", self.len()));
        }
        let mut by_class = [0u32; EntryClass::COUNT];
        for e in self.entries.iter().filter(|e| e.is_live()) {
            by_class[EntryClass::of(e.family, &e.state).index()] += 1;
        }
        if by_class != self.by_class {
            return Err(format!(
                "counts by class {:?}, but the entries give {by_class:?}",
                self.by_class
            ));
        }
        Ok(())
    }
}

/// The key's fields after the addresses, side by side in one word (48 bits), for
/// [`Entry::matches`].
#[inline(always)]
fn key_rest(lo_port: u16, hi_port: u16, proto: u8, family: Family) -> u64 {
    u64::from(lo_port)
        | u64::from(hi_port) << 16
        | u64::from(proto) << 32
        | u64::from(family as u8) << 40
}

enum Victim {
    Expired,
    Evicted,
    EvictedClosing,
}

#[cfg(test)]
mod tests {
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
}
