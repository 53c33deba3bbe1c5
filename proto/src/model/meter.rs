//! Meter rules (OVN's `Meter` with one band, as `ovn-nbctl meter-add NAME ACTION RATE UNIT
//! [BURST]` creates): the units, actions and bounds a meter may have. One copy, used by the
//! controller's kind, weftctl and the agent (which installs it as an OpenFlow meter). No I/O.

use super::validate::{validate_name, ValidationError};
use crate::v1::Meter;

type Result<T> = std::result::Result<T, ValidationError>;

/// Units a meter's rate and burst are in (ovn-nbctl's spelling).
pub const UNITS: &[&str] = &["kbps", "pktps"];
/// Band actions a meter may have: OVS' userspace meters only drop.
pub const ACTIONS: &[&str] = &["drop"];
/// Largest rate (and burst), in either unit: OpenFlow's 32 bits, kept well clear of
/// overflow in kbps→bytes arithmetic.
pub const MAX_RATE: u32 = 1_000_000_000;

/// The unit of a meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterUnit {
    Kbps,
    Pktps,
}

impl MeterUnit {
    /// Parses ovn-nbctl's unit word.
    pub fn parse(s: &str) -> Option<MeterUnit> {
        match s {
            "kbps" => Some(MeterUnit::Kbps),
            "pktps" => Some(MeterUnit::Pktps),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            MeterUnit::Kbps => "kbps",
            MeterUnit::Pktps => "pktps",
        }
    }
}

/// Checks a meter, naming the field and value it refuses; fills the default action.
pub fn validate_meter(m: &mut Meter) -> Result<MeterUnit> {
    validate_name("meter.name", &m.name)?;
    if m.action.is_empty() {
        m.action = ACTIONS[0].to_string();
    }
    if !ACTIONS.contains(&m.action.as_str()) {
        return Err(ValidationError::new(
            "meter.action",
            &m.action,
            "the only band action is drop",
        ));
    }
    let unit = MeterUnit::parse(&m.unit)
        .ok_or_else(|| ValidationError::new("meter.unit", &m.unit, "expected kbps or pktps"))?;
    if m.rate == 0 || m.rate > MAX_RATE {
        return Err(ValidationError::new(
            "meter.rate",
            &m.rate.to_string(),
            format!("expected 1..{MAX_RATE}"),
        ));
    }
    if m.burst > MAX_RATE {
        return Err(ValidationError::new(
            "meter.burst",
            &m.burst.to_string(),
            format!("expected 0..{MAX_RATE}"),
        ));
    }
    Ok(unit)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(unit: &str, rate: u32, burst: u32, action: &str) -> Meter {
        Meter {
            name: "m1".into(),
            action: action.into(),
            unit: unit.into(),
            rate,
            burst,
            ..Default::default()
        }
    }

    #[test]
    fn good_meters_pass_and_get_the_drop_action() {
        let mut a = m("pktps", 10, 0, "");
        assert_eq!(validate_meter(&mut a).unwrap(), MeterUnit::Pktps);
        assert_eq!(a.action, "drop");
        assert_eq!(
            validate_meter(&mut m("kbps", 1000, 100, "drop")).unwrap(),
            MeterUnit::Kbps
        );
    }

    #[test]
    fn bad_meters_name_the_field_and_value() {
        for (mut x, field, value) in [
            (m("pps", 10, 0, ""), "meter.unit", "pps"),
            (m("pktps", 0, 0, ""), "meter.rate", "0"),
            (m("pktps", MAX_RATE + 1, 0, ""), "meter.rate", "1000000001"),
            (m("pktps", 1, MAX_RATE + 1, ""), "meter.burst", "1000000001"),
            (
                m("pktps", 1, 0, "dscp_remark"),
                "meter.action",
                "dscp_remark",
            ),
        ] {
            let e = validate_meter(&mut x).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(value), "{e}");
        }
        let mut bad = m("pktps", 1, 0, "");
        bad.name = "no spaces".into();
        assert!(validate_meter(&mut bad)
            .unwrap_err()
            .to_string()
            .contains("meter.name"));
    }
}
