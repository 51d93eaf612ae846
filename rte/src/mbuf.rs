//! `Mbuf`, an owned packet buffer, and `MbufBurst`, a fixed-capacity array of them.
//!
//! Ownership rules (the point of this module):
//! - An [`Mbuf`] is the only reference to its `rte_mbuf` and frees it on `Drop`. `rte` never
//!   clones or attaches mbufs, so the reference count of an `Mbuf` is always 1.
//! - An [`MbufBurst`] owns exactly its first `len` slots. Anything that gives mbufs away
//!   (TX, ring enqueue) takes them from the front and the burst forgets exactly those; what
//!   was not taken stays owned by the burst. Anything that receives (RX, ring dequeue) fills
//!   the free tail. So safe code can neither free an mbuf twice nor lose one: the worst it
//!   can do is `mem::forget`, which leaks.
//! - Mbufs never keep their pool alive; see [`Mempool`](crate::Mempool) for why that is safe.
//!
//! Multi-segment packets: an `Mbuf` is the first segment of its packet and owns the chain
//! behind it. [`Mbuf::data`] is the first segment only; [`Mbuf::segments`] walks them all and
//! [`Mbuf::pkt_len`] is the length of the whole packet. Freeing (drop, bulk free, a driver
//! after TX) always frees the whole chain, so a segment is never leaked on its own; the only
//! way segments join a packet is [`Mbuf::chain`], which takes the tail by value.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::slice;

use dpdk_sys as sys;

use crate::{Mempool, RteError};

/// An owned packet buffer (`struct rte_mbuf`), freed on drop.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the sole reference to its rte_mbuf, and it comes from a Mempool (allocated
// from one, or received on an RX queue set up with one). Mempool::pktmbuf checked that the
// pool's ops are "ring_mp_mc", multi-producer/multi-consumer, so returning the mbuf to its pool
// is allowed from any thread (non-EAL threads bypass the per-lcore cache); without that check
// this would not hold.
unsafe impl Send for Mbuf {}

/// What the device found when it checked a checksum (`RTE_MBUF_F_RX_{IP,L4}_CKSUM_*`).
///
/// Software PMDs over kernel interfaces report nothing: DPDK 22.11's `net_af_packet` and
/// `net_af_xdp` leave every checksum [`Unknown`](CksumStatus::Unknown), even for a frame whose
/// checksum a local sender left to offload (the kernel knows, as `CHECKSUM_PARTIAL`, but the
/// drivers do not pass it on). `net_virtio`/`net_vhost` report such a frame as
/// [`DataValid`](CksumStatus::DataValid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CksumStatus {
    /// No information: not checked (software must check if it cares).
    Unknown,
    /// The checksum in the packet is wrong.
    Bad,
    /// The checksum in the packet is right.
    Good,
    /// The checksum field is not correct in the packet data, but the data's integrity is
    /// known (`*_CKSUM_NONE`): e.g. a local sender left the field to checksum offload, like
    /// Linux's `CHECKSUM_PARTIAL`.
    DataValid,
}

impl CksumStatus {
    /// Whether the device vouches for the data: the checksum is right, or the field is
    /// unfinished but the data intact. Linux verifies neither kind of packet again
    /// (`skb_csum_unnecessary`: `CHECKSUM_UNNECESSARY`, `CHECKSUM_PARTIAL`).
    pub const fn vouched(self) -> bool {
        matches!(self, CksumStatus::Good | CksumStatus::DataValid)
    }

    /// Decodes the IP checksum status from `ol_flags`.
    fn ip_from_ol_flags(ol_flags: u64) -> CksumStatus {
        Self::decode(
            ol_flags & sys::RTE_MBUF_F_RX_IP_CKSUM_MASK,
            sys::RTE_MBUF_F_RX_IP_CKSUM_BAD,
            sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD,
        )
    }

    /// Decodes the L4 (TCP/UDP/SCTP) checksum status from `ol_flags`.
    fn l4_from_ol_flags(ol_flags: u64) -> CksumStatus {
        Self::decode(
            ol_flags & sys::RTE_MBUF_F_RX_L4_CKSUM_MASK,
            sys::RTE_MBUF_F_RX_L4_CKSUM_BAD,
            sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD,
        )
    }

    // Two bits per field: neither = unknown, both = "none" (data valid), one = bad or good.
    fn decode(bits: u64, bad: u64, good: u64) -> CksumStatus {
        match (bits & bad != 0, bits & good != 0) {
            (false, false) => CksumStatus::Unknown,
            (true, false) => CksumStatus::Bad,
            (false, true) => CksumStatus::Good,
            (true, true) => CksumStatus::DataValid,
        }
    }
}

impl Mbuf {
    /// Allocates an mbuf holding a copy of `bytes` in one segment (for tests and packet
    /// generators). Fails if the pool has no free mbuf or `bytes` does not fit in one
    /// mbuf's data room.
    pub fn from_slice(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf, RteError> {
        // SAFETY: the pool is a live pktmbuf pool while the handle exists.
        let ptr = unsafe { sys::ctfw_rte_pktmbuf_alloc(pool.as_ptr()) };
        let mbuf = NonNull::new(ptr)
            .map(Mbuf)
            .ok_or_else(|| RteError::Exhausted(format!("no free mbuf in pool {}", pool.name())))?;
        let too_big = || {
            RteError::Exhausted(format!(
                "{} bytes do not fit in one mbuf of pool {}",
                bytes.len(),
                pool.name()
            ))
        };
        let len = u16::try_from(bytes.len()).map_err(|_| too_big())?;
        // SAFETY: valid mbuf, exclusively owned; append checks the tailroom itself and
        // returns NULL, changing nothing, when it is too small.
        let dst = unsafe { sys::ctfw_rte_pktmbuf_append(mbuf.0.as_ptr(), len) };
        let dst = NonNull::new(dst.cast::<u8>()).ok_or_else(too_big)?;
        // SAFETY: append returned `len` writable bytes inside the buffer, which nothing else
        // refers to; `bytes` is a separate Rust slice, so they do not overlap.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_ptr(), bytes.len()) };
        Ok(mbuf)
    }

    /// Allocates a packet holding a copy of `pieces`, one segment per piece, in order (for
    /// tests and packet generators that need multi-segment packets). Fails, freeing what it
    /// allocated, if the pool runs out, a piece does not fit in one mbuf or there are no
    /// pieces.
    pub fn from_segments(pool: &Mempool, pieces: &[&[u8]]) -> Result<Mbuf, RteError> {
        let (first, rest) = pieces
            .split_first()
            .ok_or_else(|| RteError::InvalidArgument("a packet needs a segment".into()))?;
        let mut head = Mbuf::from_slice(pool, first)?;
        for piece in rest {
            let seg = Mbuf::from_slice(pool, piece)?;
            head.chain(seg).map_err(|_| {
                RteError::Exhausted(format!("more than {} segments", sys::RTE_MBUF_MAX_NB_SEGS))
            })?;
        }
        Ok(head)
    }

    /// Appends the segments of `tail` after this packet's last one (`rte_pktmbuf_chain`);
    /// the packet's length and segment count grow accordingly. Gives `tail` back, unchanged,
    /// if the packet would have more than `RTE_MBUF_MAX_NB_SEGS` segments.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        // SAFETY: both are valid packets we own exclusively (type invariant) and distinct
        // (two owners of one mbuf cannot exist); on success the chain owns `tail`'s segments,
        // so `tail` is forgotten rather than dropped.
        let ret = unsafe { sys::ctfw_rte_pktmbuf_chain(self.0.as_ptr(), tail.0.as_ptr()) };
        if ret == 0 {
            std::mem::forget(tail);
            Ok(())
        } else {
            Err(tail)
        }
    }

    /// The packet bytes of the first segment.
    pub fn data(&self) -> &[u8] {
        let (ptr, len) = self.raw_data();
        // SAFETY: DPDK keeps data_off + data_len within the buffer, so ptr..ptr+len is
        // readable; `&self` keeps the mbuf alive and (sole owner) unchanged meanwhile.
        unsafe { slice::from_raw_parts(ptr, len) }
    }

    fn raw_data(&self) -> (*mut u8, usize) {
        let m = self.0.as_ptr();
        // SAFETY: m is a valid mbuf (type invariant); these only read its fields.
        unsafe {
            (
                sys::ctfw_rte_pktmbuf_mtod(m).cast(),
                usize::from(sys::ctfw_rte_mbuf_data_len(m)),
            )
        }
    }

    /// Bytes in the first segment (`data_len`), the length of [`data`](Self::data).
    pub fn len(&self) -> usize {
        // SAFETY: valid mbuf (type invariant); reads a field.
        usize::from(unsafe { sys::ctfw_rte_mbuf_data_len(self.0.as_ptr()) })
    }

    /// Whether the first segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in all segments (`pkt_len`).
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: valid mbuf (type invariant); reads a field.
        unsafe { sys::ctfw_rte_mbuf_pkt_len(self.0.as_ptr()) }
    }

    /// Segments in the packet (`nb_segs`): 1 unless the packet is chained.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: valid first segment (type invariant); reads a field.
        unsafe { sys::ctfw_rte_mbuf_nb_segs(self.0.as_ptr()) }
    }

    /// Whether the whole packet is in its first segment. Reads `nb_segs`, in the mbuf's first
    /// cache line, which RX touches anyway (`next` is in the second).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.nb_segs() == 1
    }

    /// The bytes of each segment, in order; the first is [`data`](Self::data).
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            next: self.0.as_ptr(),
            _packet: PhantomData,
        }
    }

    /// The input port set by the driver on RX.
    pub fn port(&self) -> u16 {
        // SAFETY: valid mbuf (type invariant); reads a field.
        unsafe { sys::ctfw_rte_mbuf_port(self.0.as_ptr()) }
    }

    /// Sets the input port: for a driver that does not (`net_ring` leaves whatever an earlier
    /// RX wrote there).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: valid mbuf (type invariant), exclusively owned (`&mut self`); writes a field.
        unsafe { sys::ctfw_rte_mbuf_set_port(self.0.as_ptr(), port) }
    }

    /// The offload flags (`RTE_MBUF_F_*`).
    fn ol_flags(&self) -> u64 {
        // SAFETY: valid mbuf (type invariant); reads a field.
        unsafe { sys::ctfw_rte_mbuf_ol_flags(self.0.as_ptr()) }
    }

    /// IP header checksum status reported by the NIC.
    pub fn ip_cksum(&self) -> CksumStatus {
        CksumStatus::ip_from_ol_flags(self.ol_flags())
    }

    /// L4 checksum status reported by the NIC.
    pub fn l4_cksum(&self) -> CksumStatus {
        CksumStatus::l4_from_ol_flags(self.ol_flags())
    }
}

/// Iterator over the bytes of a packet's segments ([`Mbuf::segments`]).
pub struct Segments<'a> {
    /// The next segment, or NULL after the last.
    next: *const sys::rte_mbuf,
    /// The packet whose chain this walks, borrowed so that it stays alive and unchanged.
    _packet: PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let m = self.next;
        if m.is_null() {
            return None;
        }
        // SAFETY: `m` is a segment of a packet that the borrowed `Mbuf` owns (its first
        // segment, or one reached through `next` from it); the borrow keeps the chain alive
        // and unchanged for 'a, and DPDK keeps each segment's data_off + data_len within its
        // buffer.
        unsafe {
            self.next = sys::ctfw_rte_mbuf_next(m);
            let ptr = sys::ctfw_rte_pktmbuf_mtod(m).cast::<u8>();
            let len = usize::from(sys::ctfw_rte_mbuf_data_len(m));
            Some(slice::from_raw_parts(ptr, len))
        }
    }
}

impl fmt::Debug for Segments<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segments").finish_non_exhaustive()
    }
}

/// What the data plane reads of a received packet: its first segment's bytes, its segment
/// count, its input port and the checksum statuses the device reported. Read for a whole
/// burst in one call ([`MbufViews::read`]) rather than a call per field and packet; the
/// borrow of the mbufs keeps them alive and unchanged while a view exists.
#[repr(transparent)]
pub struct MbufView<'a> {
    raw: sys::ctfw_mbuf_view,
    _packet: PhantomData<&'a Mbuf>,
}

impl<'a> MbufView<'a> {
    /// The first segment's bytes, as [`Mbuf::data`].
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        // SAFETY: `raw` was read from a packet the view borrows for 'a (`MbufViews::read`),
        // which keeps it alive and unchanged; DPDK keeps data_off + data_len within the
        // buffer, so data..data+data_len is readable.
        unsafe { slice::from_raw_parts(self.raw.data, usize::from(self.raw.data_len)) }
    }

    /// Whether the whole packet is in its first segment, as [`Mbuf::is_contiguous`].
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw.nb_segs == 1
    }

    /// The input port set by the driver on RX, as [`Mbuf::port`].
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw.port
    }

    /// IP header checksum status reported by the NIC, as [`Mbuf::ip_cksum`].
    #[inline]
    pub fn ip_cksum(&self) -> CksumStatus {
        CksumStatus::ip_from_ol_flags(self.raw.ol_flags)
    }

    /// L4 checksum status reported by the NIC, as [`Mbuf::l4_cksum`].
    #[inline]
    pub fn l4_cksum(&self) -> CksumStatus {
        CksumStatus::l4_from_ol_flags(self.raw.ol_flags)
    }
}

impl fmt::Debug for MbufView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufView")
            .field("len", &self.raw.data_len)
            .field("nb_segs", &self.raw.nb_segs)
            .field("port", &self.raw.port)
            .field("ol_flags", &format_args!("{:#x}", self.raw.ol_flags))
            .finish()
    }
}

/// Room for the [`MbufView`]s of up to `N` packets. Making one writes nothing (its slots are
/// uninitialised until [`read`](Self::read) fills them), so it can live on the stack of a
/// per-burst function at no cost per slot.
pub struct MbufViews<'a, const N: usize> {
    views: [MaybeUninit<MbufView<'a>>; N],
}

impl<'a, const N: usize> MbufViews<'a, N> {
    const CAPACITY_FITS_U16: () = assert!(N <= u16::MAX as usize, "view capacity > u16::MAX");

    /// Empty room.
    #[inline]
    pub const fn new() -> Self {
        let () = Self::CAPACITY_FITS_U16;
        MbufViews {
            views: [const { MaybeUninit::uninit() }; N],
        }
    }

    /// The views of the first `min(N, mbufs.len())` packets of `mbufs`, in order.
    #[inline]
    pub fn read(&mut self, mbufs: &'a [Mbuf]) -> &[MbufView<'a>] {
        let n = mbufs.len().min(N);
        // SAFETY: `Mbuf` is a transparent `NonNull<rte_mbuf>`, so `mbufs[..n]` is an array of
        // `n` valid first segments (type invariant), borrowed for 'a; `views` has room for
        // `n <= N <= u16::MAX` entries and `MbufView` is a transparent `ctfw_mbuf_view`. The
        // shim writes `views[..n]`, which the slice then covers and nothing more.
        unsafe {
            sys::ctfw_rte_mbuf_views(
                mbufs.as_ptr().cast::<*mut sys::rte_mbuf>(),
                n as u16,
                self.views.as_mut_ptr().cast::<sys::ctfw_mbuf_view>(),
            );
            slice::from_raw_parts(self.views.as_ptr().cast::<MbufView<'a>>(), n)
        }
    }
}

impl<const N: usize> fmt::Debug for MbufViews<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufViews").finish_non_exhaustive()
    }
}

impl<const N: usize> Default for MbufViews<'_, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (type invariant) and never use it again.
        unsafe { sys::ctfw_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .field("port", &self.port())
            .field("ol_flags", &format_args!("{:#x}", self.ol_flags()))
            .finish()
    }
}

/// Up to `N` owned mbufs, in order. RX and dequeue fill the free tail; TX and enqueue take
/// from the front, and whatever they did not take stays here. Dropping frees what is left.
pub struct MbufBurst<const N: usize> {
    /// Invariant: `bufs[..len]` are initialised, owned mbufs; the rest are uninitialised.
    len: usize,
    bufs: [MaybeUninit<Mbuf>; N],
}

impl<const N: usize> MbufBurst<N> {
    const CAPACITY_FITS_U16: () = assert!(N <= u16::MAX as usize, "burst capacity > u16::MAX");

    /// An empty burst.
    pub const fn new() -> Self {
        let () = Self::CAPACITY_FITS_U16;
        MbufBurst {
            len: 0,
            bufs: [const { MaybeUninit::uninit() }; N],
        }
    }

    /// Number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no mbuf is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `N` mbufs are held.
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The held mbufs.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: bufs[..len] are initialised (invariant); MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { slice::from_raw_parts(self.bufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the held mbufs.
    pub fn iter(&self) -> slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Appends `mbuf`, or gives it back if the burst is full.
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(mbuf);
        }
        self.bufs[self.len].write(mbuf);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the mbuf at `index`, keeping the order of the rest.
    pub fn take(&mut self, index: usize) -> Option<Mbuf> {
        if index >= self.len {
            return None;
        }
        let base = self.bufs.as_mut_ptr();
        // SAFETY: index < len, so the slot is initialised; it is read once, then the
        // initialised tail index+1..len slides down over it (ptr::copy allows overlap) and
        // len shrinks by one, so every remaining owned mbuf is in bufs[..len] exactly once.
        unsafe {
            let mbuf = (*base.add(index)).assume_init_read();
            ptr::copy(base.add(index + 1), base.add(index), self.len - index - 1);
            self.len -= 1;
            Some(mbuf)
        }
    }

    /// Moves every mbuf out, in order. Mbufs not consumed by the iterator are freed when it
    /// is dropped; the burst is empty afterwards either way.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        // Set first: if the Drain is leaked, the remaining mbufs leak rather than double-free.
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Frees every mbuf (one `rte_pktmbuf_free_bulk` call).
    pub fn clear(&mut self) {
        let count = self.len;
        self.len = 0;
        // SAFETY: the first `count` slots were owned mbufs; len is already 0 so they are
        // freed exactly once. free_bulk handles mbufs from different pools.
        unsafe { free_raw(self.raw_ptr(), count) };
    }

    /// The storage as the `struct rte_mbuf **` array DPDK burst functions take.
    fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        // Mbuf is a transparent NonNull<rte_mbuf>, which has the layout of *mut rte_mbuf.
        self.bufs.as_mut_ptr().cast()
    }

    /// Forgets the first `count` mbufs without freeing them, sliding the rest to the front.
    ///
    /// # Safety
    /// `count <= len`, and ownership of those mbufs must have passed elsewhere (e.g. a
    /// driver accepted them for transmission).
    unsafe fn forget_front(&mut self, count: usize) {
        debug_assert!(count <= self.len);
        let base = self.bufs.as_mut_ptr();
        // SAFETY: bufs[count..len] are initialised; moving them to the front (overlap
        // allowed) and shrinking len leaves each remaining mbuf owned exactly once.
        unsafe { ptr::copy(base.add(count), base, self.len - count) };
        self.len -= count;
    }

    /// Fills the free tail with `fill(ptr, room)`, which writes up to `room` mbufs at `ptr`
    /// and returns how many; returns that count. `room` is the free space, at most `max`.
    ///
    /// # Safety
    /// `fill` must write exactly as many valid, owned mbufs as it returns (at most `room`).
    pub(crate) unsafe fn fill_tail(
        &mut self,
        max: usize,
        fill: impl FnOnce(*mut *mut sys::rte_mbuf, u16) -> u16,
    ) -> usize {
        let room = (N - self.len).min(max) as u16; // N <= u16::MAX (CAPACITY_FITS_U16)
        // SAFETY: the tail starts at len <= N, inside the array.
        let tail = unsafe { self.raw_ptr().add(self.len) };
        let got = usize::from(fill(tail, room)).min(usize::from(room));
        self.len += got;
        got
    }

    /// Offers all held mbufs to `send(ptr, count)`, which takes ownership of the first `n`
    /// and returns `n`; those are forgotten, the rest stay. Returns `n`.
    ///
    /// # Safety
    /// `send` must take ownership of exactly the first `n` mbufs it reports, `n <= count`.
    pub(crate) unsafe fn send_front(
        &mut self,
        send: impl FnOnce(*mut *mut sys::rte_mbuf, u16) -> u16,
    ) -> usize {
        let count = self.len as u16; // len <= N <= u16::MAX
        let sent = usize::from(send(self.raw_ptr(), count)).min(self.len);
        // SAFETY: per this function's contract, the first `sent` mbufs now belong elsewhere.
        unsafe { self.forget_front(sent) };
        sent
    }
}

/// Frees `count` owned mbufs at `ptr` with one bulk call.
///
/// # Safety
/// `ptr[..count]` must be valid mbufs owned by the caller, never used again.
unsafe fn free_raw(ptr: *mut *mut sys::rte_mbuf, count: usize) {
    if count > 0 {
        // SAFETY: per the contract; count <= u16::MAX fits in u32.
        unsafe { sys::rte_pktmbuf_free_bulk(ptr, count as u32) };
    }
}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufBurst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<'a, const N: usize> IntoIterator for &'a MbufBurst<N> {
    type Item = &'a Mbuf;
    type IntoIter = slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator returned by [`MbufBurst::drain`].
pub struct Drain<'a, const N: usize> {
    burst: &'a mut MbufBurst<N>,
    /// Slots `next..end` are still owned by this iterator.
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: next < end <= N, slot initialised and owned by the iterator; read once.
        let mbuf = unsafe { self.burst.bufs[self.next].assume_init_read() };
        self.next += 1;
        Some(mbuf)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let left = self.end - self.next;
        // SAFETY: slots next..end are owned by the iterator and not yet handed out; the
        // burst's len is 0 so nothing else frees them.
        unsafe { free_raw(self.burst.raw_ptr().add(self.next), left) };
    }
}

impl<const N: usize> fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("left", &(self.end - self.next))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cksum_status_decodes_both_bits() {
        use CksumStatus::*;
        assert_eq!(CksumStatus::ip_from_ol_flags(0), Unknown);
        assert_eq!(
            CksumStatus::ip_from_ol_flags(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD),
            Bad
        );
        assert_eq!(
            CksumStatus::ip_from_ol_flags(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD),
            Good
        );
        assert_eq!(
            CksumStatus::ip_from_ol_flags(sys::RTE_MBUF_F_RX_IP_CKSUM_NONE),
            DataValid
        );
        assert_eq!(
            CksumStatus::l4_from_ol_flags(sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD),
            Good
        );
        assert_eq!(
            CksumStatus::l4_from_ol_flags(sys::RTE_MBUF_F_RX_L4_CKSUM_NONE),
            DataValid
        );
        assert!(Good.vouched() && DataValid.vouched());
        assert!(!Unknown.vouched() && !Bad.vouched());
        // The two fields do not bleed into each other.
        assert_eq!(
            CksumStatus::l4_from_ol_flags(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD),
            Unknown
        );
        assert_eq!(
            CksumStatus::ip_from_ol_flags(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD),
            Unknown
        );
    }

    #[test]
    fn empty_burst_needs_no_dpdk() {
        let mut burst = MbufBurst::<32>::new();
        assert!(burst.is_empty() && !burst.is_full());
        assert_eq!(burst.capacity(), 32);
        assert!(burst.take(0).is_none());
        assert_eq!(burst.drain().count(), 0);
        assert_eq!(
            std::mem::size_of::<Mbuf>(),
            std::mem::size_of::<*mut sys::rte_mbuf>()
        );
    }
}
