//! OpenFlow for Weft: the typed flow model ([`flow`]), its `ovs-ofctl` text rendering, the
//! OpenFlow 1.5 + Nicira-extension wire codec, and an async channel to a switch's
//! `br-int.mgmt` socket. Start with [`flow::Flow`].

pub mod flow;
pub mod render;

pub use render::{render_flow, render_group};
pub mod codec;
