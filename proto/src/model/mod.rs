//! The shared pure domain model: names, MACs, IPv4 networks, the port address grammar
//! (`MAC IP…`, `dynamic`, `router`, `unknown`), port security entries, limits and the stable
//! hash used for cookies and derived names. Parsed and validated once, here, and used by the
//! controller, the agent, weftctl and the CNI plugin. No I/O. Start with
//! [`validate::parse_addresses`] and [`validate::validate_name`].

pub mod acl;
pub mod expr;
pub mod hash;
pub mod identity;
pub mod load_balancer;
pub mod match_dnf;
pub mod meter;
pub mod nat;
pub mod port_map;
pub mod route;
pub mod validate;
pub mod view;

pub use hash::fnv1a64;
pub use validate::*;
