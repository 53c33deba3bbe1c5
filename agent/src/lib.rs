//! weft-agent: runs on every host, subscribes to its chassis view from the controller and
//! programs the local Open vSwitch (OVSDB for bridges/tunnels/VIFs, OpenFlow for the pipeline).
//!
//! Pure core: [`view`] (the chassis view as the agent holds it), [`pipeline`] (view → flows,
//! with [`physical`] mapping logical ports to ofports and tunnels, and [`ids`] the zones,
//! group and meter ids), [`diff`] (desired vs installed → one bundle) and the [`pinctrl`]
//! packet-in dispatcher. [`mgmt`] is the host management port (`--mgmt-switch`).

pub mod agent;
pub mod cni;
pub mod cnm;
pub mod config;
pub mod debug;
pub mod diff;
pub mod drift;
pub mod fingerprint;
pub mod ids;
pub mod lb_health;
pub mod metrics;
pub mod mgmt;
pub mod observe;
pub mod physical;
pub mod pinctrl;

pub use agent::{run, AgentError};
pub use config::{AgentArgs, AgentConfig};
pub mod pipeline;
pub mod plug;
pub mod reconcile;
pub mod southbound;
pub mod underlay;
pub mod unixctl;
pub mod view;
pub mod view_acl;
