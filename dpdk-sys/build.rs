//! Build script: find DPDK with `pkg-config libdpdk`, check it is 22.11, compile the C shim,
//! generate bindings.
//!
//! The raw `pkg-config --cflags libdpdk` output is passed unchanged to both clang (bindgen)
//! and the C compiler (shim): it carries `-include rte_config.h` and the `-march` DPDK was
//! built for, without which the headers do not parse or the inline code does not match the
//! libraries. Link flags come from `pkg-config --libs libdpdk`; nothing is hard-coded.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "install DPDK and clang with: \
     apt-get install -y libdpdk-dev dpdk clang libclang-dev pkg-config";

/// The DPDK release (major.minor) ctfw is written for: Debian 12's `libdpdk-dev` and `dpdk`.
/// Any 22.11.x (LTS) bug-fix release is accepted; other releases are refused.
const EXPECTED_DPDK: &str = "22.11";

/// DPDK functions with real symbols that `rte` calls. Allowlisted by name: a regex such as
/// `rte_eth_.*` drags in hundreds of items and packed header structs we never use.
const FUNCTIONS: &[&str] = &[
    // EAL, lcores, time, errors
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_get_runtime_dir",
    "rte_eal_remote_launch",
    "rte_eal_wait_lcore",
    "rte_lcore_is_enabled",
    "rte_get_main_lcore",
    "rte_get_next_lcore",
    "rte_get_tsc_hz",
    "rte_strerror",
    // mempools and mbufs
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    "rte_mbuf_user_mempool_ops",
    "rte_mbuf_platform_mempool_ops",
    // rings
    "rte_ring_create",
    "rte_ring_free",
    // ethdev control path
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_rss_reta_update",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_dev_socket_id",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_stats_get",
    "rte_eth_xstats_get_names",
    "rte_eth_xstats_get",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_dev_get_mtu",
    "rte_eth_dev_set_mtu",
];

/// Constants (macros and enum values) `rte` uses.
const VARS: &[&str] = &[
    "RTE_ETH_RSS_.*",
    "RTE_ETH_RX_OFFLOAD_.*",
    "RTE_ETH_TX_OFFLOAD_.*",
    "RTE_ETH_MQ_RX_.*",
    "RTE_ETH_RETA_GROUP_SIZE",
    "RTE_MBUF_F_.*",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_MBUF_MAX_NB_SEGS",
    "RTE_PKTMBUF_HEADROOM",
    "RING_F_EXACT_SZ",
    "RTE_MAX_LCORE",
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_MEM_MB",
    "RTE_MAX_MEM_MB_PER_TYPE",
    "RTE_MAX_MEMSEG_PER_TYPE",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
];

/// Opaque: the shim reads their fields (rte_mbuf), Rust never looks inside them (mempool,
/// ring), or they are packed protocol headers that ctfw parses in Rust instead.
const OPAQUE: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_.*_hdr",
    "rte_arp_.*",
    "rte_l2tpv2_combined_msg_hdr",
    "rte_gtp_psc_generic_hdr",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");

    check_dpdk_version();
    let cflags = pkg_config(&["--cflags", "libdpdk"]);
    let libs = pkg_config(&["--libs", "libdpdk"]);

    // The shim first: its static archive must precede the DPDK shared libraries it calls.
    let mut shim = cc::Build::new();
    shim.file("src/shim.c").include("src").warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("ctfw_dpdk_shim");

    for flag in &libs {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // Other flags (`-Wl,--as-needed`) cannot be forwarded: cargo does not propagate link
        // arguments from a library's build script, and rustc already links with --as-needed.
    }

    generate_bindings(&cflags);
}

/// Gives 64-bit flag families one Rust type. bindgen types each macro by its value, so
/// `RTE_ETH_RSS_IPV4` (bit 2) would be `u32` while `RTE_ETH_RSS_L3_DST_ONLY` (bit 62) is `u64`,
/// although the fields they go into (`rss_hf`, `offloads`, `ol_flags`) are all `uint64_t`.
#[derive(Debug)]
struct FlagWidth;

impl bindgen::callbacks::ParseCallbacks for FlagWidth {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        const U64_FAMILIES: &[&str] = &[
            "RTE_ETH_RSS_",
            "RTE_ETH_RX_OFFLOAD_",
            "RTE_ETH_TX_OFFLOAD_",
            "RTE_MBUF_F_",
        ];
        U64_FAMILIES
            .iter()
            .any(|prefix| name.starts_with(prefix))
            .then_some(bindgen::callbacks::IntKind::U64)
    }
}

/// Stops the build unless pkg-config finds DPDK 22.11.x. The code is not version-agnostic:
/// the bindings name 22.11's ethdev structs and fields, the shim compiles DPDK's inline
/// fast path and internals (the mempool ops table), and rte documents (and its tests check)
/// 22.11's behaviour; other releases change some of these, and the build would fail far from
/// the cause or, worse, succeed and behave differently.
fn check_dpdk_version() {
    // A DPDK upgrade changes libdpdk.pc: re-run the check then.
    if let Some(dir) = pkg_config(&["--variable=pcfiledir", "libdpdk"]).first() {
        println!("cargo:rerun-if-changed={dir}/libdpdk.pc");
    }
    let found = pkg_config(&["--modversion", "libdpdk"]).join(" ");
    let release: Vec<&str> = found.split('.').take(2).collect();
    if release.join(".") != EXPECTED_DPDK {
        panic!(
            "dpdk-sys: found DPDK {found} (`pkg-config --modversion libdpdk`), but ctfw is \
             written for DPDK {EXPECTED_DPDK}.x: its bindings, its C shim (which compiles \
             DPDK's inline fast path and reads the mempool ops table) and the behaviour rte \
             documents were checked against {EXPECTED_DPDK}, and other releases change them. \
             Install DPDK {EXPECTED_DPDK} (Debian 12: apt-get install -y libdpdk-dev dpdk), or \
             point PKG_CONFIG_PATH at a {EXPECTED_DPDK} build; moving to another release means \
             porting and re-testing dpdk-sys and rte."
        );
    }
}

/// Runs pkg-config and splits its output like a shell would.
fn pkg_config(args: &[&str]) -> Vec<String> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = match Command::new(&program).args(args).output() {
        Ok(output) => output,
        Err(err) => panic!("dpdk-sys: cannot run `{program}` ({err}); {INSTALL_HINT}"),
    };
    if !output.status.success() {
        panic!(
            "dpdk-sys: `{program} {}` failed: {}; {INSTALL_HINT}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    match shlex::split(&text) {
        Some(words) => words,
        None => panic!("dpdk-sys: cannot split pkg-config output: {text}"),
    }
}

fn generate_bindings(cflags: &[String]) {
    let mut builder = bindgen::Builder::default()
        .header("src/shim.h")
        .clang_args(cflags)
        .clang_arg("-Isrc")
        .allowlist_function("ctfw_.*")
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        // RTE_ETH_RSS_* and RTE_ETH_*_OFFLOAD_* are defined with the function-like macro
        // RTE_BIT64(n), which bindgen's own macro evaluator cannot expand; this makes clang
        // evaluate them.
        .clang_macro_fallback()
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .parse_callbacks(Box::new(FlagWidth))
        // Leftovers of the opaque structs' anonymous unions: nothing refers to them.
        .blocklist_type("rte_(mbuf|mempool|ring)__bindgen_ty_.*");
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    for t in OPAQUE {
        builder = builder.opaque_type(t);
    }

    // bindgen panics when libclang cannot be loaded; turn that into the install hint.
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let bindings = match generated {
        Ok(Ok(bindings)) => bindings,
        Ok(Err(err)) => panic!("dpdk-sys: bindgen failed on the DPDK headers: {err}"),
        Err(_) => panic!("dpdk-sys: bindgen could not load libclang; {INSTALL_HINT}"),
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(err) = bindings.write_to_file(out.join("bindings.rs")) {
        panic!("dpdk-sys: cannot write bindings: {err}");
    }
}
