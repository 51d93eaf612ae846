//! ctfw's configuration. (Skeleton: its owner replaces it.)
#![forbid(unsafe_code)]
