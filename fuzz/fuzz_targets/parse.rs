//! Any bytes through the wire parser: it must return a packet or a reason, never panic.
#![no_main]

use ctfw_engine::wire::{self, ChecksumHint, ParseConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for hint in [ChecksumHint::Unknown, ChecksumHint::Good] {
        let _ = wire::parse(data, &ParseConfig::default(), hint);
    }
});
