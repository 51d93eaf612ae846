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

    /// Whether an insert must make room first: every pool index is taken.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Prefetch the first line (expiry, status, the start of the protocol state) of the
    /// entries an insert of a key hashed `h` into a full table looks at to choose a victim
    /// (`Table::evict_near`): the first `EVICT_CANDIDATES` (8) of its first bucket.
    #[inline]
    pub fn prefetch_neighbours(&self, h: &Hashed) {
        let bucket = &self.buckets[h.b1 as usize];
        for slot in 0..EVICT_CANDIDATES as usize {
            if let Some(idx) = bucket.get(slot) {
                prefetch::first_line(&self.entries[idx as usize]);
            }
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
    ///
    /// Inlined for the common case, a free slot in one of the key's buckets and a free pool
    /// index (what `room_for` finds first); anything else (displacing keys, reclaiming or
    /// evicting a neighbour, failing) is `Table::insert_making_room`, out of line.
    #[inline]
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
        let room = [h.b1, h.b2]
            .into_iter()
            .find_map(|b| Some((b, self.buckets[b as usize].free_slot()?)));
        match (self.free.last(), room) {
            (Some(&idx), Some((b, slot))) => {
                self.free.pop();
                self.place(idx, entry, b, slot, h.tag);
                Ok((idx, InsertOutcome::default()))
            }
            _ => self.insert_making_room(h, entry, now),
        }
    }

    /// Pool index `idx` (just taken off the free list) holds `entry`, which slot `slot` of
    /// bucket `b` refers to under `tag`.
    #[inline(always)]
    fn place(&mut self, idx: u32, entry: Entry, b: u32, slot: usize, tag: u8) {
        self.by_class[EntryClass::of(entry.family, &entry.state).index()] += 1;
        self.entries[idx as usize] = entry;
        self.buckets[b as usize].set(slot, tag, idx);
    }

    /// [`Table::insert`] when the key's buckets or the pool are full (`entry`'s flags already
    /// set): room made by displacing keys, else by reclaiming or evicting a neighbour.
    #[inline(never)]
    fn insert_making_room(
        &mut self,
        h: &Hashed,
        entry: Entry,
        now: Tick,
    ) -> Result<(u32, InsertOutcome), TableFull> {
        let mut outcome = InsertOutcome::default();
        for attempt in 0..2 {
            if !self.free.is_empty() {
                if let Some((b, slot)) = self.room_for(h) {
                    let idx = self.free.pop().unwrap_or_default();
                    self.place(idx, entry, b, slot, h.tag);
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
mod tests;
