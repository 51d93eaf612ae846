//! Any text as a configuration: it loads or fails with a diagnostic, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ctfw_config::Config::from_str(text, "fuzz.yaml");
    }
});
