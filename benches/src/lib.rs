//! Shared helpers for the ctfw benchmarks.
