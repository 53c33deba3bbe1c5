//! `weftctl`, the ovn-nbctl-style command line for Weft.
//!
//! The flow is [`chain::parse`] (split `A -- B -- C`, clap-parse each command with
//! [`args::Cli`]) → [`cmd::Command::plan`] (pure: each command's ops or read, and how it
//! prints; one file per noun under `cmd/`) → [`run::run`] (the only I/O: ONE `Transact` for
//! every write of the invocation, or a lone command's dedicated RPC, then the reads) →
//! [`run::assemble`] (one line per command for chains). Values in ovn-nbctl syntax are
//! parsed and printed by [`value`]; tables, csv and the list form by [`format`].
//! Errors are classified in [`error::CliError`], one line each; the binary prints them as
//! `weftctl: <line>` and exits 1 (2 for usage errors).

pub mod args;
pub mod cert;
pub mod chain;
pub mod client;
pub mod cmd;
pub mod error;
pub mod format;
pub mod json;
pub mod run;
pub mod value;
