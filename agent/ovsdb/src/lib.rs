//! weft-ovsdb: an RFC 7047 OVSDB client on tokio + serde_json, and the Open_vSwitch schema
//! operations the Weft agent needs.
//!
//! Where to start:
//! - [`client::Client`]: one connection (`unix:PATH` / `tcp:IP:PORT`): `transact`,
//!   `monitor` (monitor_cond with fallback to monitor), `get_schema`, `list_dbs`, echo.
//! - [`session::Session`]: a reconnecting connection with a monitored [`monitor::Replica`]
//!   and connected/disconnected/changes events.
//! - [`vswitch`]: `ensure_bridge`, `ensure_tunnel_ports`, `watch_interfaces`.
//!
//! Pure building blocks with their own unit tests: [`jsonrpc`] (framing, messages),
//! [`atom`] (OVSDB values), [`ops`] (transaction operations, reply checking), [`monitor`]
//! (schema kinds, update/update2 application).

pub mod atom;
pub mod client;
pub mod jsonrpc;
pub mod monitor;
pub mod ops;
pub mod session;
pub mod vswitch;

pub use atom::{Atom, Datum, Row, RowExt, Uuid};
pub use client::{Client, ClientConfig, ClientError, Endpoint, Monitor, MonitorMessage};
pub use monitor::{DbSchema, MonitorRequest, Replica, RowChange, UpdateFormat};
pub use session::{Session, SessionConfig, SessionEvent};
pub use vswitch::{
    ensure_bridge, ensure_tunnel_ports, watch_interfaces, BridgeConfig, DatapathType, Encap,
    FailMode, TunnelConfig, Vif, VifEvent, VifWatch,
};
