/* Real symbols for DPDK's static inline functions; see shim.h. */
#include "shim.h"

const char *ctfw_rte_mempool_ops_name(const struct rte_mempool *mp)
{
	return rte_mempool_get_ops(mp->ops_index)->name;
}

uint16_t ctfw_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			       uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t ctfw_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			       uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *ctfw_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

void ctfw_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *ctfw_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *ctfw_rte_pktmbuf_mtod(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t ctfw_rte_mbuf_data_len(const struct rte_mbuf *m)
{
	return m->data_len;
}

uint32_t ctfw_rte_mbuf_pkt_len(const struct rte_mbuf *m)
{
	return m->pkt_len;
}

uint64_t ctfw_rte_mbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

uint16_t ctfw_rte_mbuf_port(const struct rte_mbuf *m)
{
	return m->port;
}

struct rte_mbuf *ctfw_rte_mbuf_next(const struct rte_mbuf *m)
{
	return m->next;
}

uint16_t ctfw_rte_mbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

void ctfw_rte_mbuf_views(struct rte_mbuf *const *m, uint16_t n, struct ctfw_mbuf_view *out)
{
	for (uint16_t i = 0; i < n; i++) {
		out[i].data = rte_pktmbuf_mtod(m[i], const uint8_t *);
		out[i].ol_flags = m[i]->ol_flags;
		out[i].data_len = m[i]->data_len;
		out[i].nb_segs = m[i]->nb_segs;
		out[i].port = m[i]->port;
	}
}

int ctfw_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail)
{
	return rte_pktmbuf_chain(head, tail);
}

void ctfw_rte_mbuf_set_port(struct rte_mbuf *m, uint16_t port)
{
	m->port = port;
}

unsigned ctfw_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned n,
				     unsigned *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned ctfw_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned n,
				     unsigned *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned ctfw_rte_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

unsigned ctfw_rte_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t ctfw_rte_rdtsc(void)
{
	return rte_rdtsc();
}

int ctfw_rte_errno(void)
{
	return rte_errno;
}
