//! CNI support: the `weft-cni` plugin binary (`src/bin/weft-cni.rs`) forwards ADD/DEL/CHECK
//! over a unix socket to the agent, whose [`server`] creates the logical port on the
//! controller, plumbs a veth into the container's namespace and plugs the host end into the
//! integration bridge with `external_ids:iface-id`.
//!
//! Where to start: [`spec`] (pure: CNI env/config parsing, wire messages, naming, result
//! JSON), then [`server::serve`]. The plumbing steps shared with the Docker driver
//! (northbound calls, veth, OVSDB rows, waiting for flows, undo) are in [`crate::plug`].
//! See `docs/cni.md`.

pub mod address;
pub mod server;
pub mod spec;

pub use server::{serve, CniServerConfig, CniServerError};
pub use spec::{CniError, DEFAULT_AGENT_SOCKET};
