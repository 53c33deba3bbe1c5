//! OpenFlow for Weft: the typed flow model ([`flow`]), its `ovs-ofctl` text rendering
//! ([`render`]), the OpenFlow 1.5 + Nicira-extension wire codec ([`codec`], pure), and an
//! async channel to a switch's `br-int.mgmt` socket ([`channel`]). Start with
//! [`flow::Flow`]; to program a switch, [`channel::OfChannel::connect`] then
//! [`channel::OfChannel::apply_bundle`]. Meters live in [`meter`]; packet-in2 / packet-out
//! / resume in [`codec::nx`].

pub mod channel;
pub mod codec;
pub mod flow;
pub mod meter;
pub mod render;

pub use channel::{BundleOp, ChannelConfig, OfChannel, OfError};
pub use meter::{render_meter, Meter};
pub use render::{render_flow, render_group};
