//! `weftctl`, the ovn-nbctl-style command line for Weft.
//!
//! One command = one northbound gRPC call. The flow is
//! [`args::Cli`] (clap) → [`request::build`] (pure: the [`request::Call`]) →
//! [`client::execute`] (the only I/O: one RPC) → [`format::render`] (pure: text or JSON).
//! Errors are classified in [`error::CliError`], one line each; the binary prints them as
//! `weftctl: <line>` and exits 1 (2 for usage errors).

pub mod args;
pub mod client;
pub mod error;
pub mod format;
pub mod json;
pub mod request;
