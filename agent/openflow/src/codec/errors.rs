//! OpenFlow error messages (`OFPT_ERROR`): the decoded type/code/data and the names Open
//! vSwitch uses for them (`OFPBAC_BAD_OUT_GROUP`, `OFPBFC_MSG_FAILED`, ...).

use std::fmt;

/// Error type for experimenter-defined errors (Nicira errors use this in OpenFlow 1.2+).
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

pub const OFPET_HELLO_FAILED: u16 = 0;
pub const OFPET_BAD_REQUEST: u16 = 1;
pub const OFPET_BAD_ACTION: u16 = 2;
pub const OFPET_BAD_INSTRUCTION: u16 = 3;
pub const OFPET_BAD_MATCH: u16 = 4;
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
pub const OFPET_GROUP_MOD_FAILED: u16 = 6;
pub const OFPET_BUNDLE_FAILED: u16 = 17;

/// `OFPBFC_MSG_FAILED`: the reply to a bundle commit when one of its messages failed.
pub const OFPBFC_MSG_FAILED: u16 = 13;

/// A decoded `OFPT_ERROR` message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorMsg {
    /// `ofp_error_type` (or 0xffff for experimenter errors).
    pub err_type: u16,
    /// The code within the type (the `exp_code` for experimenter errors).
    pub code: u16,
    /// For experimenter errors: the experimenter ID.
    pub experimenter: Option<u32>,
    /// Usually (a prefix of) the message that caused the error.
    pub data: Vec<u8>,
}

impl ErrorMsg {
    /// The OVS-style name of this error, e.g. `OFPBAC_BAD_OUT_GROUP`; a numeric form for
    /// errors without a known name.
    pub fn name(&self) -> String {
        match error_name(self.err_type, self.code) {
            Some(n) => n.to_string(),
            None => match self.experimenter {
                Some(e) => format!(
                    "experimenter error (experimenter={e:#x}, code={})",
                    self.code
                ),
                None => format!("OpenFlow error type={} code={}", self.err_type, self.code),
            },
        }
    }

    /// The xid of the message that caused the error, read from the header echoed in `data`.
    pub fn offending_xid(&self) -> Option<u32> {
        let d = self.data.get(4..8)?;
        Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
    }
}

impl fmt::Display for ErrorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (type={}, code={})",
            self.name(),
            self.err_type,
            self.code
        )
    }
}

/// The OVS name of a standard OpenFlow 1.5 error type/code pair.
pub fn error_name(err_type: u16, code: u16) -> Option<&'static str> {
    let table: &[&str] = match err_type {
        OFPET_HELLO_FAILED => &["OFPHFC_INCOMPATIBLE", "OFPHFC_EPERM"],
        OFPET_BAD_REQUEST => &[
            "OFPBRC_BAD_VERSION",
            "OFPBRC_BAD_TYPE",
            "OFPBRC_BAD_MULTIPART",
            "OFPBRC_BAD_EXPERIMENTER",
            "OFPBRC_BAD_EXP_TYPE",
            "OFPBRC_EPERM",
            "OFPBRC_BAD_LEN",
            "OFPBRC_BUFFER_EMPTY",
            "OFPBRC_BUFFER_UNKNOWN",
            "OFPBRC_BAD_TABLE_ID",
            "OFPBRC_IS_SLAVE",
            "OFPBRC_BAD_PORT",
            "OFPBRC_BAD_PACKET",
            "OFPBRC_MULTIPART_BUFFER_OVERFLOW",
            "OFPBRC_MULTIPART_REQUEST_TIMEOUT",
            "OFPBRC_MULTIPART_REPLY_TIMEOUT",
        ],
        OFPET_BAD_ACTION => &[
            "OFPBAC_BAD_TYPE",
            "OFPBAC_BAD_LEN",
            "OFPBAC_BAD_EXPERIMENTER",
            "OFPBAC_BAD_EXP_TYPE",
            "OFPBAC_BAD_OUT_PORT",
            "OFPBAC_BAD_ARGUMENT",
            "OFPBAC_EPERM",
            "OFPBAC_TOO_MANY",
            "OFPBAC_BAD_QUEUE",
            "OFPBAC_BAD_OUT_GROUP",
            "OFPBAC_MATCH_INCONSISTENT",
            "OFPBAC_UNSUPPORTED_ORDER",
            "OFPBAC_BAD_TAG",
            "OFPBAC_BAD_SET_TYPE",
            "OFPBAC_BAD_SET_LEN",
            "OFPBAC_BAD_SET_ARGUMENT",
            "OFPBAC_BAD_SET_MASK",
        ],
        OFPET_BAD_INSTRUCTION => &[
            "OFPBIC_UNKNOWN_INST",
            "OFPBIC_UNSUP_INST",
            "OFPBIC_BAD_TABLE_ID",
            "OFPBIC_UNSUP_METADATA",
            "OFPBIC_UNSUP_METADATA_MASK",
            "OFPBIC_BAD_EXPERIMENTER",
            "OFPBIC_BAD_EXP_TYPE",
            "OFPBIC_BAD_LEN",
            "OFPBIC_EPERM",
            "OFPBIC_DUP_INST",
        ],
        OFPET_BAD_MATCH => &[
            "OFPBMC_BAD_TYPE",
            "OFPBMC_BAD_LEN",
            "OFPBMC_BAD_TAG",
            "OFPBMC_BAD_DL_ADDR_MASK",
            "OFPBMC_BAD_NW_ADDR_MASK",
            "OFPBMC_BAD_WILDCARDS",
            "OFPBMC_BAD_FIELD",
            "OFPBMC_BAD_VALUE",
            "OFPBMC_BAD_MASK",
            "OFPBMC_BAD_PREREQ",
            "OFPBMC_DUP_FIELD",
            "OFPBMC_EPERM",
        ],
        OFPET_FLOW_MOD_FAILED => &[
            "OFPFMFC_UNKNOWN",
            "OFPFMFC_TABLE_FULL",
            "OFPFMFC_BAD_TABLE_ID",
            "OFPFMFC_OVERLAP",
            "OFPFMFC_EPERM",
            "OFPFMFC_BAD_TIMEOUT",
            "OFPFMFC_BAD_COMMAND",
            "OFPFMFC_BAD_FLAGS",
            "OFPFMFC_CANT_SYNC",
            "OFPFMFC_BAD_PRIORITY",
            "OFPFMFC_IS_SYNC",
        ],
        OFPET_GROUP_MOD_FAILED => &[
            "OFPGMFC_GROUP_EXISTS",
            "OFPGMFC_INVALID_GROUP",
            "OFPGMFC_WEIGHT_UNSUPPORTED",
            "OFPGMFC_OUT_OF_GROUPS",
            "OFPGMFC_OUT_OF_BUCKETS",
            "OFPGMFC_CHAINING_UNSUPPORTED",
            "OFPGMFC_WATCH_UNSUPPORTED",
            "OFPGMFC_LOOP",
            "OFPGMFC_UNKNOWN_GROUP",
            "OFPGMFC_CHAINED_GROUP",
            "OFPGMFC_BAD_TYPE",
            "OFPGMFC_BAD_COMMAND",
            "OFPGMFC_BAD_BUCKET",
            "OFPGMFC_BAD_WATCH",
            "OFPGMFC_EPERM",
            "OFPGMFC_UNKNOWN_BUCKET",
            "OFPGMFC_BUCKET_EXISTS",
        ],
        7 => &[
            "OFPPMFC_BAD_PORT",
            "OFPPMFC_BAD_HW_ADDR",
            "OFPPMFC_BAD_CONFIG",
            "OFPPMFC_BAD_ADVERTISE",
            "OFPPMFC_EPERM",
        ],
        8 => &["OFPTMFC_BAD_TABLE", "OFPTMFC_BAD_CONFIG", "OFPTMFC_EPERM"],
        10 => &["OFPSCFC_BAD_FLAGS", "OFPSCFC_BAD_LEN", "OFPSCFC_EPERM"],
        11 => &["OFPRRFC_STALE", "OFPRRFC_UNSUP", "OFPRRFC_BAD_ROLE"],
        14 => &[
            "OFPBPC_BAD_TYPE",
            "OFPBPC_BAD_LEN",
            "OFPBPC_BAD_VALUE",
            "OFPBPC_TOO_MANY",
            "OFPBPC_DUP_TYPE",
            "OFPBPC_BAD_EXPERIMENTER",
            "OFPBPC_BAD_EXP_TYPE",
            "OFPBPC_BAD_EXP_VALUE",
            "OFPBPC_EPERM",
        ],
        OFPET_BUNDLE_FAILED => &[
            "OFPBFC_UNKNOWN",
            "OFPBFC_EPERM",
            "OFPBFC_BAD_ID",
            "OFPBFC_BUNDLE_EXIST",
            "OFPBFC_BUNDLE_CLOSED",
            "OFPBFC_OUT_OF_BUNDLES",
            "OFPBFC_BAD_TYPE",
            "OFPBFC_BAD_FLAGS",
            "OFPBFC_MSG_BAD_LEN",
            "OFPBFC_MSG_BAD_XID",
            "OFPBFC_MSG_UNSUP",
            "OFPBFC_MSG_CONFLICT",
            "OFPBFC_MSG_TOO_MANY",
            "OFPBFC_MSG_FAILED",
            "OFPBFC_TIMEOUT",
            "OFPBFC_BUNDLE_IN_PROGRESS",
        ],
        _ => return None,
    };
    table.get(usize::from(code)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_common_errors() {
        assert_eq!(error_name(2, 9), Some("OFPBAC_BAD_OUT_GROUP"));
        assert_eq!(error_name(17, 13), Some("OFPBFC_MSG_FAILED"));
        assert_eq!(error_name(3, 2), Some("OFPBIC_BAD_TABLE_ID"));
        assert_eq!(error_name(4, 9), Some("OFPBMC_BAD_PREREQ"));
        assert_eq!(error_name(6, 0), Some("OFPGMFC_GROUP_EXISTS"));
        assert_eq!(error_name(2, 200), None);
        let e = ErrorMsg {
            err_type: 99,
            code: 1,
            experimenter: None,
            data: vec![],
        };
        assert_eq!(e.name(), "OpenFlow error type=99 code=1");
    }
}
