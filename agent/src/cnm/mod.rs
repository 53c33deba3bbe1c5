//! Docker support: a libnetwork remote **network driver** and **IPAM driver** served by
//! weft-agent on a unix socket in Docker's plugin directory (`/run/docker/plugins/weft.sock`,
//! `--docker-plugin-socket`). Docker speaks JSON over HTTP/1.1 to it (`/Plugin.Activate`,
//! `/NetworkDriver.*`, `/IpamDriver.*`).
//!
//! - A Docker network is a Weft logical switch: `-o weft.switch=NAME` attaches to an existing
//!   one (so several Docker hosts share it); without it the switch `dk-SUBNET-LEN` is created
//!   from the network's subnet. DeleteNetwork deletes only a switch it created, and only once
//!   no port at all (of this host or any other) is left on it.
//! - IPAM addresses are logical ports on the switch (`dynamic`, or static for `--ip`), so the
//!   controller's allocator in etcd keeps them unique across hosts; the gateway is the router
//!   port's address when the switch is attached to a router, else the subnet's first address.
//! - Join creates the veth here (Docker moves the peer into the sandbox), plugs the host end
//!   into the integration bridge with `iface-id`, and returns only once the port's flows are
//!   installed on every live chassis (as CNI ADD does), through [`crate::plug`].
//! - Port bindings (`-p`, handed over in ProgramExternalConnectivity) are checked for
//!   conflicts on this host and realised as NAT rules in the host's network namespace
//!   ([`portmap`]): DNAT of the host port on the host's own addresses to the container, SNAT
//!   to the host's management port address (`--mgmt-switch`) so replies come back through
//!   the host. Without a management port a `-p` is refused.
//!
//! Where to start: [`wire`] (pure: framing, messages, validation), [`portmap`] (pure rule
//! planning), then [`driver`]. The driver's own state (network → switch, endpoint → port and
//! its published ports) is a JSON file, so an agent restart keeps serving the networks Docker
//! created and re-derives the published ports' rules. See `docs/docker.md`.

pub mod driver;
pub mod portmap;
pub mod wire;

use std::path::PathBuf;

pub use driver::{serve, CnmConfig};

/// A refused or failed driver request; the message is what Docker shows the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CnmError {
    /// A field of the request has a bad value.
    #[error("{field} {value:?}: {reason}")]
    Field {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// The request is not HTTP or JSON as the protocol says.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is larger than the driver accepts.
    #[error("request body of {0} bytes is larger than the {max} bytes accepted", max = wire::MAX_BODY_BYTES)]
    TooLarge(usize),
    /// No such method.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// The address or binding is taken.
    #[error("{0}")]
    InUse(String),
    /// An object Docker names is not known here.
    #[error("{0}")]
    NotFound(String),
    /// A plumbing step failed (controller, datapath, flows not installed in time).
    #[error(transparent)]
    Plug(#[from] crate::plug::PlugError),
    /// A published port could not be realised (or needs the management port).
    #[error(transparent)]
    Portmap(#[from] portmap::PortmapError),
    /// The driver's state file could not be written.
    #[error("state file {path}: {reason}")]
    State { path: PathBuf, reason: String },
    /// The socket could not be served.
    #[error("cannot serve the Docker plugin socket {path}: {reason}")]
    Bind { path: PathBuf, reason: String },
}

impl CnmError {
    /// A bad field value.
    pub fn field(field: &'static str, value: &str, reason: impl Into<String>) -> CnmError {
        let mut v = value.to_string();
        if v.len() > 120 {
            let mut end = 120;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v.truncate(end);
            v.push('…');
        }
        CnmError::Field {
            field,
            value: v,
            reason: reason.into(),
        }
    }

    /// The HTTP status of a protocol-level failure (200 for driver-level refusals, which
    /// carry `Err` in the body as the protocol says).
    pub fn status(&self) -> u16 {
        match self {
            CnmError::BadRequest(_) => 400,
            CnmError::TooLarge(_) => 413,
            CnmError::UnknownMethod(_) => 404,
            _ => 200,
        }
    }
}
