//! Raw bindings to DPDK 22.11 for ctfw: generated declarations plus a C shim.
//!
//! # What is generated
//! `build.rs` runs bindgen over `src/shim.h`, which includes the DPDK headers ctfw uses, with
//! the raw `pkg-config --cflags libdpdk` flags (they carry `-include rte_config.h` and the
//! `-march` DPDK was built for). Only allowlisted items are emitted: the EAL, lcore, mempool,
//! ring and ethdev control functions `rte` calls, the configuration structs they take
//! (`rte_eth_conf`, `rte_eth_dev_info`, ...), and the constant families `RTE_ETH_RSS_*`,
//! `RTE_ETH_RX_OFFLOAD_*`, `RTE_MBUF_F_*`, `RING_F_EXACT_SZ` and a few limits. Flag families
//! are all `u64`, like the fields they are stored in.
//!
//! `rte_mbuf`, `rte_mempool` and `rte_ring` are opaque (only their size and alignment are
//! known to Rust), and so are packed protocol headers (`rte_*_hdr`, `rte_arp_*`): ctfw parses
//! headers in Rust from the packet bytes.
//!
//! # Why the shim exists
//! DPDK's fast path is `static inline` in its headers (`rte_eth_rx_burst`, `rte_eth_tx_burst`,
//! `rte_pktmbuf_alloc`, `rte_pktmbuf_free`, the `rte_ring_*_burst` family, `rte_lcore_id`,
//! `rte_rdtsc`, `rte_errno`, ...): those functions have no symbol in `librte_*.so`, so bindgen
//! declarations of them would not link. `src/shim.c` compiles each into a real function named
//! `ctfw_<dpdk name>` with the same flags as DPDK. The shim also reads the `rte_mbuf` fields
//! ctfw needs (`data_len`, `pkt_len`, `ol_flags`, `port`, and `next` and `nb_segs` to walk a
//! multi-segment packet), because C knows that struct's
//! unions and bitfields exactly and bindgen renders them poorly, and the name of the ops a
//! mempool runs on (`ctfw_rte_mempool_ops_name`, through DPDK's inline ops-table lookup).
//! `rte_errno` is a per-lcore thread-local; `ctfw_rte_errno()` reads the caller's copy.
//!
//! # Linking
//! Libraries come from `pkg-config --libs libdpdk` (shared libraries). Debian's EAL loads the
//! PMDs (`net_null`, `net_ring`, `net_pcap`, `net_tap`, and `mempool_ring`, without which no
//! mbuf pool can be created) from its plugin directory at `rte_eal_init`, so nothing here names
//! a driver. If pkg-config or libclang is missing the build stops and names the packages:
//! `apt-get install -y libdpdk-dev dpdk clang libclang-dev pkg-config`.
//!
//! # Version
//! The build accepts DPDK 22.11.x only (`pkg-config --modversion libdpdk`) and otherwise stops
//! with a message naming the version found: the bindings, the shim and rte's documented
//! behaviour are 22.11's, and another release needs porting and re-testing, not just a build.
//!
//! # Surprises seen in DPDK 22.11
//! - `RTE_BIT64(n)` flags need bindgen's `clang_macro_fallback`, and even then
//!   `RTE_ETH_RSS_L3_SRC_ONLY` (bit 63) is dropped because its value overflows `i64`. Nothing
//!   in ctfw hashes on it, so it is not defined; if it is ever needed, define it by hand
//!   (`1 << 63`).
//! - `rte_pktmbuf_free_bulk` is a real symbol in 22.11 (allowlisted, not shimmed), although
//!   `rte_pktmbuf_alloc_bulk` is inline.
//! - `rte_mempool_avail_count` and `rte_mempool_in_use_count` are real symbols.
//!
//! Every function here is `unsafe` and follows DPDK's own contract (see the DPDK API docs).
//! Shim functions carry theirs, with a `# Safety` section, from `src/shim.h`.

pub use bindings::*;

/// The bindgen output. Lints are relaxed here only: the code is generated (bitfield accessors
/// with unsafe blocks and identity transmutes, C naming, DPDK's doxygen text as docs, and no
/// docs at all where DPDK has none).
#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#[allow(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#[allow(
    clippy::all,
    clippy::missing_safety_doc,
    clippy::undocumented_unsafe_blocks
)]
#[allow(rustdoc::all)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_flag_families_are_u64_and_match_the_headers() {
        assert_eq!(RTE_ETH_RSS_IPV4, 1 << 2);
        assert_eq!(RTE_ETH_RSS_L3_DST_ONLY, 1 << 62);
        assert_eq!(RTE_ETH_RX_OFFLOAD_RSS_HASH, 1 << 19);
        assert_eq!(RTE_MBUF_F_RX_RSS_HASH, 1 << 1);
        assert_eq!(RTE_MBUF_F_RX_IP_CKSUM_MASK, (1 << 4) | (1 << 7));
    }

    #[test]
    fn opaque_types_keep_dpdk_sizes() {
        // Two cache lines, as DPDK's RTE_BUILD_BUG_ON checks in rte_mbuf_core.h.
        assert_eq!(std::mem::size_of::<rte_mbuf>(), 128);
        assert_eq!(std::mem::align_of::<rte_mbuf>(), 64);
    }
}
