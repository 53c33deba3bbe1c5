//! Weft's gRPC contract and shared model ([`model`]: names, MACs, networks, the address
//! grammar, validated once for every binary), package `weft.v1`: the northbound API (intent: switches, ports,
//! chassis, sync) and the southbound API (per-chassis view stream and status reports).
//!
//! The `.proto` files in `proto/weft/v1/` are the source of truth and are commented field by
//! field; this crate only holds the generated code. Start with [`v1::northbound_server`] and
//! [`v1::southbound_server`].

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("weft.v1");
}

pub use v1::*;

/// The encoded `FileDescriptorSet` of `weft.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/weft_descriptor.bin"));

pub mod model;
pub mod tls;
