//! The control plane's socket side: the protocol ([`protocol`]), the server a running
//! instance polls on its main lcore ([`server`]), how engine records are written for it
//! ([`mod@format`]), the client ([`client`]), and the operator's commands built on the client
//! ([`cli`]). What the commands do inside `ctfw run` is in
//! `run::service`; `docs/control-protocol.md` is the protocol's reference.

pub mod cli;
pub mod client;
pub mod format;
pub mod protocol;
pub mod server;
