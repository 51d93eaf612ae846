//! The `ctfw` binary. (Skeleton.)
fn main() {}
