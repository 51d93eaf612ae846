/*
 * ctfw DPDK shim: the DPDK headers bindgen reads, plus real (linkable) wrappers for the
 * `static inline` fast-path functions that have no symbol in DPDK's shared libraries.
 *
 * Every wrapper is named `ctfw_<dpdk name>` (`ctfw_<struct>_<field>` for a field read) and
 * does nothing but call the inline function or read one field, so its behaviour is exactly
 * DPDK's; the one exception, `ctfw_rte_mbuf_views`, reads the same fields for a whole burst. Fields of `struct rte_mbuf` are
 * read here rather than through bindgen's layout because rte_mbuf uses anonymous unions,
 * bitfields and cache-line markers that bindgen renders poorly; C reads them correctly.
 */
#ifndef CTFW_DPDK_SHIM_H
#define CTFW_DPDK_SHIM_H

#include <stdint.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_ring.h>

/**
 * The name of the mempool ops `mp` runs on (`rte_mempool_get_ops(mp->ops_index)->name`, as
 * DPDK's own inline get/put look them up), e.g. "ring_mp_mc". The string lives in the
 * process-wide ops table and stays valid for the life of the process.
 *
 * # Safety
 * `mp` must be a live mempool.
 */
const char *ctfw_rte_mempool_ops_name(const struct rte_mempool *mp);

/**
 * `rte_eth_rx_burst`: receive up to `nb_pkts` packets from queue `queue_id` of `port_id` into
 * `rx_pkts`; returns how many were stored. The caller owns the returned mbufs.
 *
 * # Safety
 * `port_id` must be a valid port whose `queue_id` was set up (queue ids past the configured
 * count index out of bounds in DPDK); `rx_pkts` must be valid for `nb_pkts` writes; no other
 * thread may poll the same queue concurrently.
 */
uint16_t ctfw_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			       uint16_t nb_pkts);

/**
 * `rte_eth_tx_burst`: hand the first N of `nb_pkts` mbufs to the driver and return N.
 * Ownership of those N passes to the driver; the rest stay with the caller.
 *
 * # Safety
 * As for `ctfw_rte_eth_rx_burst`, and `tx_pkts[..nb_pkts]` must be owned, valid mbufs.
 */
uint16_t ctfw_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			       uint16_t nb_pkts);

/**
 * `rte_pktmbuf_alloc`: one reset mbuf from `mp`, or NULL when the pool is empty.
 *
 * # Safety
 * `mp` must be a live packet mbuf pool (created by `rte_pktmbuf_pool_create`).
 */
struct rte_mbuf *ctfw_rte_pktmbuf_alloc(struct rte_mempool *mp);

/**
 * `rte_pktmbuf_free`: return `m` (and its chained segments) to its pool. NULL is a no-op.
 *
 * # Safety
 * `m` must be NULL or an mbuf the caller owns; it must not be used afterwards.
 */
void ctfw_rte_pktmbuf_free(struct rte_mbuf *m);

/**
 * `rte_pktmbuf_append`: grow the last segment by `len` bytes and return a pointer to them,
 * or NULL (nothing changed) when the tailroom is too small. The new bytes are uninitialised.
 *
 * # Safety
 * `m` must be a valid mbuf the caller owns exclusively.
 */
char *ctfw_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);

/**
 * `rte_pktmbuf_mtod(m, void *)`: the start of the first segment's data (`data_len` bytes).
 *
 * # Safety
 * `m` must be a valid mbuf.
 */
void *ctfw_rte_pktmbuf_mtod(const struct rte_mbuf *m);

/**
 * Field getters of `struct rte_mbuf`: `data_len` (bytes in this segment), `pkt_len` (bytes
 * in all segments), `ol_flags` (`RTE_MBUF_F_*`) and `port` (input port); `next` and `nb_segs`
 * below.
 *
 * # Safety
 * `m` must be a valid mbuf.
 */
uint16_t ctfw_rte_mbuf_data_len(const struct rte_mbuf *m);
/** See `ctfw_rte_mbuf_data_len`.
 *
 * # Safety
 * See `ctfw_rte_mbuf_data_len`. */
uint32_t ctfw_rte_mbuf_pkt_len(const struct rte_mbuf *m);
/** See `ctfw_rte_mbuf_data_len`.
 *
 * # Safety
 * See `ctfw_rte_mbuf_data_len`. */
uint64_t ctfw_rte_mbuf_ol_flags(const struct rte_mbuf *m);
/** See `ctfw_rte_mbuf_data_len`.
 *
 * # Safety
 * See `ctfw_rte_mbuf_data_len`. */
uint16_t ctfw_rte_mbuf_port(const struct rte_mbuf *m);

/**
 * The next segment of a multi-segment packet (`m->next`), or NULL after the last.
 *
 * # Safety
 * `m` must be a valid mbuf.
 */
struct rte_mbuf *ctfw_rte_mbuf_next(const struct rte_mbuf *m);

/**
 * Segments in the packet whose first segment is `m` (`m->nb_segs`).
 *
 * # Safety
 * `m` must be the first segment of a valid packet.
 */
uint16_t ctfw_rte_mbuf_nb_segs(const struct rte_mbuf *m);

/**
 * What the data plane reads of a received packet (`ctfw_rte_mbuf_views`): the first
 * segment's bytes (`rte_pktmbuf_mtod`, `data_len`), the segment count, the input port and the
 * offload flags.
 */
struct ctfw_mbuf_view {
	const uint8_t *data;
	uint64_t ol_flags;
	uint16_t data_len;
	uint16_t nb_segs;
	uint16_t port;
};

/**
 * `out[i]` = the view of `m[i]`, for `i < n`: one call per burst instead of a call per field
 * and packet (these fields cannot be read from Rust, see the top of this file).
 *
 * # Safety
 * `m[..n]` must be valid first segments of packets, `out` valid for `n` writes.
 */
void ctfw_rte_mbuf_views(struct rte_mbuf *const *m, uint16_t n, struct ctfw_mbuf_view *out);

/**
 * `rte_pktmbuf_chain`: append the segments of `tail` to the packet `head`, which then owns
 * them. Returns 0, or -EOVERFLOW (nothing changed) when the chain would exceed
 * `RTE_MBUF_MAX_NB_SEGS` segments.
 *
 * # Safety
 * `head` and `tail` must be distinct valid packets (first segments) the caller owns
 * exclusively; on success `tail` must not be used again except through `head`.
 */
int ctfw_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);

/**
 * Set `port` (the input port) of `m`: for mbufs a driver hands over without setting it
 * (`net_ring` passes on whatever an earlier RX wrote).
 *
 * # Safety
 * `m` must be a valid mbuf that the caller owns.
 */
void ctfw_rte_mbuf_set_port(struct rte_mbuf *m, uint16_t port);

/**
 * `rte_ring_enqueue_burst`: enqueue up to `n` pointers, return how many went in; the ring's
 * own producer mode (single or multi) applies. `free_space` may be NULL.
 *
 * # Safety
 * `r` must be a live ring; `obj_table` valid for `n` reads. A ring created single-producer
 * must never be enqueued to by two threads at once.
 */
unsigned ctfw_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned n,
				     unsigned *free_space);

/**
 * `rte_ring_dequeue_burst`: dequeue up to `n` pointers into `obj_table`, return how many.
 * `available` may be NULL.
 *
 * # Safety
 * `r` must be a live ring; `obj_table` valid for `n` writes. A ring created single-consumer
 * must never be dequeued from by two threads at once.
 */
unsigned ctfw_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned n,
				     unsigned *available);

/**
 * `rte_ring_count`: entries in the ring (a snapshot).
 *
 * # Safety
 * `r` must be a live ring.
 */
unsigned ctfw_rte_ring_count(const struct rte_ring *r);

/**
 * `rte_lcore_id`: the calling thread's lcore id, `LCORE_ID_ANY` on non-EAL threads.
 *
 * # Safety
 * None beyond FFI: reads a thread-local.
 */
unsigned ctfw_rte_lcore_id(void);

/**
 * `rte_rdtsc`: the time-stamp counter.
 *
 * # Safety
 * None beyond FFI.
 */
uint64_t ctfw_rte_rdtsc(void);

/**
 * `rte_errno`: the calling thread's DPDK error number.
 *
 * # Safety
 * None beyond FFI: reads a thread-local.
 */
int ctfw_rte_errno(void);

#endif /* CTFW_DPDK_SHIM_H */
