//! Northbound validation: the shared model's parsers and validators
//! ([`weft_proto::model`]), re-exported so every controller module names them one way.

pub use weft_proto::model::validate::*;
