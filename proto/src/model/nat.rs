//! NAT rules and gateway chassis of a logical router (OVN's `NAT` and `Gateway_Chassis`
//! rows): the parsed [`NatRule`], its column text (`TYPE EXTERNAL_IP LOGICAL_IP
//! [LOGICAL_PORT EXTERNAL_MAC]`), the semantics of `lr-nat-add` / `lr-nat-del` as ovn-nbctl
//! has them ([`apply_add`], [`apply_del`]), the gateway chassis column text
//! (`CHASSIS PRIORITY`) with `lrp-set-gateway-chassis` / `lrp-del-gateway-chassis`
//! ([`apply_gateway_set`], [`apply_gateway_del`]) and the choice of the active gateway
//! ([`active_gateway`]). The controller stores both in their objects, weftctl sends the
//! commands as column ops whose values are the `to_text` forms, and the agent parses the
//! view's rules with [`NatRule::from_message`]. IPv4 only.

use std::fmt;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::validate::{parse_mac, validate_name, ValidationError};
use crate::v1::{GatewayChassis, LogicalRouterNat};

type Result<T> = std::result::Result<T, ValidationError>;

/// Most NAT rules one router may have.
pub const MAX_NAT: usize = 1024;
/// Highest gateway chassis priority (OVN's Gateway_Chassis.priority range).
pub const MAX_GATEWAY_PRIORITY: u32 = 32767;

/// The type of a NAT rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatType {
    /// Source NAT of a logical prefix to the external IP (outbound).
    Snat,
    /// Destination NAT of the external IP to the logical IP (inbound).
    Dnat,
    /// Both, one to one (a floating IP).
    DnatAndSnat,
}

impl NatType {
    pub fn as_str(&self) -> &'static str {
        match self {
            NatType::Snat => "snat",
            NatType::Dnat => "dnat",
            NatType::DnatAndSnat => "dnat_and_snat",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<NatType> {
        match s {
            "snat" => Ok(NatType::Snat),
            "dnat" => Ok(NatType::Dnat),
            "dnat_and_snat" => Ok(NatType::DnatAndSnat),
            _ => Err(ValidationError::new(
                field,
                s,
                "expected snat, dnat or dnat_and_snat",
            )),
        }
    }

    /// Rewrites the destination of inbound packets.
    pub fn is_dnat(&self) -> bool {
        matches!(self, NatType::Dnat | NatType::DnatAndSnat)
    }

    /// Rewrites the source of outbound packets.
    pub fn is_snat(&self) -> bool {
        matches!(self, NatType::Snat | NatType::DnatAndSnat)
    }
}

impl fmt::Display for NatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One NAT rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatRule {
    pub kind: NatType,
    pub external_ip: Ipv4Addr,
    /// snat: a prefix (normalized to its network); dnat, dnat_and_snat: a /32.
    pub logical_ip: Ipv4Network,
    /// dnat_and_snat only: the port and MAC of a distributed rule.
    pub logical_port: Option<String>,
    /// Canonical lower-case form.
    pub external_mac: Option<String>,
}

/// A unicast IPv4 address (not 0.0.0.0, multicast, broadcast or loopback).
pub fn parse_unicast(field: &str, s: &str) -> Result<Ipv4Addr> {
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| ValidationError::new(field, s, "expected an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback() {
        return Err(ValidationError::new(
            field,
            s,
            "expected a unicast IPv4 address",
        ));
    }
    Ok(ip)
}

/// The logical IP of a rule of type `kind`: snat takes `A.B.C.D[/LEN]` (normalized),
/// dnat and dnat_and_snat a unicast address.
pub fn parse_logical_ip(field: &str, kind: NatType, s: &str) -> Result<Ipv4Network> {
    if kind == NatType::Snat {
        let net: Ipv4Network = s
            .parse()
            .map_err(|_| ValidationError::new(field, s, "expected an IPv4 address or prefix"))?;
        return Ipv4Network::new(net.network(), net.prefix())
            .map_err(|_| ValidationError::new(field, s, "bad prefix length"));
    }
    let ip = parse_unicast(field, s)?;
    Ok(Ipv4Network::new(ip, 32).expect("a /32"))
}

impl NatRule {
    /// Builds and checks a rule from its parts (`field` prefixes the field names).
    pub fn new(
        field: &str,
        kind: &str,
        external_ip: &str,
        logical_ip: &str,
        logical_port: Option<&str>,
        external_mac: Option<&str>,
    ) -> Result<NatRule> {
        let f = |x: &str| {
            if field.is_empty() {
                x.to_string()
            } else {
                format!("{field}.{x}")
            }
        };
        let kind = NatType::parse(&f("type"), kind)?;
        let external_ip = parse_unicast(&f("external_ip"), external_ip)?;
        let logical_ip = parse_logical_ip(&f("logical_ip"), kind, logical_ip)?;
        let (logical_port, external_mac) = match (logical_port, external_mac) {
            (None, None) => (None, None),
            (Some(p), Some(m)) => {
                if kind != NatType::DnatAndSnat {
                    return Err(ValidationError::new(
                        f("logical_port"),
                        p,
                        "a logical port and external MAC are for dnat_and_snat rules only",
                    ));
                }
                validate_name(&f("logical_port"), p)?;
                let mac =
                    parse_mac(m).map_err(|r| ValidationError::new(f("external_mac"), m, r))?;
                (Some(p.to_string()), Some(mac))
            }
            (Some(p), None) => {
                return Err(ValidationError::new(
                    f("external_mac"),
                    "",
                    format!("logical port {p:?} needs an external MAC too"),
                ))
            }
            (None, Some(m)) => {
                return Err(ValidationError::new(
                    f("logical_port"),
                    "",
                    format!("external MAC {m:?} needs a logical port too"),
                ))
            }
        };
        Ok(NatRule {
            kind,
            external_ip,
            logical_ip,
            logical_port,
            external_mac,
        })
    }

    /// Parses a stored rule (`field` names it in errors, e.g. `nat[2]`).
    pub fn from_message(field: &str, m: &LogicalRouterNat) -> Result<NatRule> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        NatRule::new(
            field,
            &m.r#type,
            &m.external_ip,
            &m.logical_ip,
            opt(&m.logical_port).as_deref(),
            opt(&m.external_mac).as_deref(),
        )
    }

    pub fn to_message(&self) -> LogicalRouterNat {
        LogicalRouterNat {
            r#type: self.kind.as_str().to_string(),
            external_ip: self.external_ip.to_string(),
            logical_ip: self.logical_ip_text(),
            logical_port: self.logical_port.clone().unwrap_or_default(),
            external_mac: self.external_mac.clone().unwrap_or_default(),
        }
    }

    /// The logical IP as ovn-nbctl prints it (a /32 without its length).
    pub fn logical_ip_text(&self) -> String {
        if self.logical_ip.prefix() == 32 {
            self.logical_ip.ip().to_string()
        } else {
            self.logical_ip.to_string()
        }
    }

    /// Column text: `TYPE EXTERNAL_IP LOGICAL_IP [LOGICAL_PORT EXTERNAL_MAC]`.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} {} {}",
            self.kind,
            self.external_ip,
            self.logical_ip_text()
        );
        if let (Some(p), Some(m)) = (&self.logical_port, &self.external_mac) {
            s.push_str(&format!(" {p} {m}"));
        }
        s
    }

    /// Parses column text (see [`NatRule::to_text`]).
    pub fn parse_text(field: &str, s: &str) -> Result<NatRule> {
        let w: Vec<&str> = s.split_whitespace().collect();
        match w.as_slice() {
            [t, e, l] => NatRule::new(field, t, e, l, None, None),
            [t, e, l, p, m] => NatRule::new(field, t, e, l, Some(p), Some(m)),
            _ => Err(ValidationError::new(
                field,
                s,
                "expected TYPE EXTERNAL_IP LOGICAL_IP [LOGICAL_PORT EXTERNAL_MAC]",
            )),
        }
    }

    /// Handled on the chassis of its logical port (dnat_and_snat with port and MAC).
    pub fn is_distributed(&self) -> bool {
        self.kind == NatType::DnatAndSnat && self.logical_port.is_some()
    }
}

/// `lr-nat-add`: a rule and `--may-exist`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatAdd {
    pub rule: NatRule,
    pub may_exist: bool,
}

impl NatAdd {
    /// The column-op value: `[--may-exist] RULE`.
    pub fn to_text(&self) -> String {
        if self.may_exist {
            format!("--may-exist {}", self.rule.to_text())
        } else {
            self.rule.to_text()
        }
    }

    pub fn parse_text(field: &str, s: &str) -> Result<NatAdd> {
        let (may_exist, rest) = match s.trim_start().strip_prefix("--may-exist") {
            Some(r) => (true, r),
            None => (false, s),
        };
        Ok(NatAdd {
            rule: NatRule::parse_text(field, rest)?,
            may_exist,
        })
    }
}

/// `lr-nat-add` on a router's rules, as ovn-nbctl: the same type, external IP and logical
/// IP again is an error unless `--may-exist` (then the logical port and MAC are updated);
/// two snat rules for one logical prefix, two dnat-type rules for one external IP, and an
/// external IP of a dnat_and_snat rule used by another rule of a different logical IP are
/// errors.
pub fn apply_add(rules: &mut Vec<NatRule>, add: &NatAdd, field: &str) -> Result<()> {
    let new = &add.rule;
    for r in rules.iter_mut() {
        if r.kind == new.kind && r.external_ip == new.external_ip && r.logical_ip == new.logical_ip
        {
            if add.may_exist {
                r.logical_port = new.logical_port.clone();
                r.external_mac = new.external_mac.clone();
                return Ok(());
            }
            return Err(ValidationError::new(
                field,
                &new.to_text(),
                format!(
                    "{}, {}: a NAT with this external_ip and logical_ip already exists",
                    new.external_ip,
                    new.logical_ip_text()
                ),
            ));
        }
    }
    for r in rules.iter() {
        let clash = match (r.kind, new.kind) {
            (NatType::Snat, NatType::Snat) => r.logical_ip == new.logical_ip,
            (a, b) if a == b => r.external_ip == new.external_ip,
            (a, b) if a.is_dnat() && b.is_dnat() => r.external_ip == new.external_ip,
            (NatType::DnatAndSnat, _) | (_, NatType::DnatAndSnat) => {
                r.external_ip == new.external_ip && r.logical_ip != new.logical_ip
            }
            _ => false,
        };
        if clash {
            let (what, value) = if new.kind == NatType::Snat && r.kind == NatType::Snat {
                ("logical_ip", new.logical_ip_text())
            } else {
                ("external_ip", new.external_ip.to_string())
            };
            return Err(ValidationError::new(
                field,
                &new.to_text(),
                format!(
                    "a NAT with this type ({}) and {what} ({value}) already exists: {}",
                    r.kind,
                    r.to_text()
                ),
            ));
        }
    }
    if rules.len() >= MAX_NAT {
        return Err(ValidationError::new(
            field,
            &new.to_text(),
            format!("a router has at most {MAX_NAT} NAT rules"),
        ));
    }
    rules.push(new.clone());
    Ok(())
}

/// `lr-nat-del ROUTER [TYPE [IP]]`: every rule, every rule of a type, or the rule of a type
/// whose logical IP (snat) or external IP (dnat, dnat_and_snat) is IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatDel {
    pub kind: Option<NatType>,
    pub ip: Option<String>,
    pub if_exists: bool,
}

impl NatDel {
    /// The column-op value: `[--if-exists] [TYPE [IP]]`.
    pub fn to_text(&self) -> String {
        let mut w: Vec<String> = Vec::new();
        if self.if_exists {
            w.push("--if-exists".into());
        }
        if let Some(k) = self.kind {
            w.push(k.as_str().into());
            if let Some(ip) = &self.ip {
                w.push(ip.clone());
            }
        }
        w.join(" ")
    }

    pub fn parse_text(field: &str, s: &str) -> Result<NatDel> {
        let mut if_exists = false;
        let mut rest = Vec::new();
        for w in s.split_whitespace() {
            if w == "--if-exists" {
                if_exists = true;
            } else {
                rest.push(w);
            }
        }
        let (kind, ip) = match rest.as_slice() {
            [] => (None, None),
            [t] => (Some(NatType::parse(field, t)?), None),
            [t, ip] => {
                let kind = NatType::parse(field, t)?;
                parse_logical_ip(field, kind, ip)?;
                (Some(kind), Some(ip.to_string()))
            }
            _ => {
                return Err(ValidationError::new(
                    field,
                    s,
                    "expected [--if-exists] [TYPE [IP]]",
                ))
            }
        };
        Ok(NatDel {
            kind,
            ip,
            if_exists,
        })
    }
}

/// Applies `lr-nat-del`; deleting one rule that is not there is an error unless
/// `--if-exists` (as ovn-nbctl).
pub fn apply_del(rules: &mut Vec<NatRule>, del: &NatDel, field: &str) -> Result<()> {
    let Some(kind) = del.kind else {
        rules.clear();
        return Ok(());
    };
    let Some(ip) = &del.ip else {
        rules.retain(|r| r.kind != kind);
        return Ok(());
    };
    let want = parse_logical_ip(field, kind, ip)?;
    let before = rules.len();
    rules.retain(|r| {
        r.kind != kind
            || if kind == NatType::Snat {
                r.logical_ip != want
            } else {
                r.external_ip != want.ip()
            }
    });
    if rules.len() == before && !del.if_exists {
        let what = if kind == NatType::Snat {
            "logical_ip"
        } else {
            "external_ip"
        };
        return Err(ValidationError::new(
            field,
            ip,
            format!("no matching NAT with the type ({kind}) and {what} ({ip})"),
        ));
    }
    Ok(())
}

/// One gateway chassis, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gateway {
    pub chassis: String,
    pub priority: u32,
}

impl Gateway {
    pub fn new(field: &str, chassis: &str, priority: u32) -> Result<Gateway> {
        validate_name(&format!("{field}.chassis_name"), chassis)?;
        if priority > MAX_GATEWAY_PRIORITY {
            return Err(ValidationError::new(
                format!("{field}.priority"),
                &priority.to_string(),
                format!("a priority is 0..{MAX_GATEWAY_PRIORITY}"),
            ));
        }
        Ok(Gateway {
            chassis: chassis.to_string(),
            priority,
        })
    }

    pub fn from_message(field: &str, m: &GatewayChassis) -> Result<Gateway> {
        Gateway::new(field, &m.chassis_name, m.priority)
    }

    pub fn to_message(&self) -> GatewayChassis {
        GatewayChassis {
            chassis_name: self.chassis.clone(),
            priority: self.priority,
        }
    }

    /// Column text: `CHASSIS PRIORITY`.
    pub fn to_text(&self) -> String {
        format!("{} {}", self.chassis, self.priority)
    }

    /// Parses `CHASSIS [PRIORITY]` (priority 0 when left out, as ovn-nbctl).
    pub fn parse_text(field: &str, s: &str) -> Result<Gateway> {
        let w: Vec<&str> = s.split_whitespace().collect();
        let (c, p) = match w.as_slice() {
            [c] => (*c, 0),
            [c, p] => {
                let p: u32 = p.parse().map_err(|_| {
                    ValidationError::new(
                        format!("{field}.priority"),
                        p,
                        format!("expected an integer 0..{MAX_GATEWAY_PRIORITY}"),
                    )
                })?;
                (*c, p)
            }
            _ => {
                return Err(ValidationError::new(
                    field,
                    s,
                    "expected CHASSIS [PRIORITY]",
                ))
            }
        };
        Gateway::new(field, c, p)
    }
}

/// `lrp-set-gateway-chassis`: adds the chassis or changes its priority.
pub fn apply_gateway_set(list: &mut Vec<Gateway>, g: Gateway) {
    match list.iter_mut().find(|x| x.chassis == g.chassis) {
        Some(x) => x.priority = g.priority,
        None => list.push(g),
    }
}

/// `lrp-del-gateway-chassis`: the chassis must be there (ovn-nbctl's error otherwise).
pub fn apply_gateway_del(
    list: &mut Vec<Gateway>,
    chassis: &str,
    port: &str,
    field: &str,
) -> Result<()> {
    let before = list.len();
    list.retain(|g| g.chassis != chassis);
    if list.len() == before {
        return Err(ValidationError::new(
            field,
            chassis,
            format!("chassis {chassis} is not added to logical port {port}"),
        ));
    }
    Ok(())
}

/// Highest priority first, then by name (the order `lrp-get-gateway-chassis` prints and
/// failover follows).
pub fn by_priority(list: &[Gateway]) -> Vec<Gateway> {
    let mut v = list.to_vec();
    v.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.chassis.cmp(&b.chassis)));
    v
}

/// The active gateway: the alive chassis of the highest priority (ties: the first name).
pub fn active_gateway(list: &[Gateway], alive: impl Fn(&str) -> bool) -> Option<&str> {
    list.iter()
        .filter(|g| alive(&g.chassis))
        .min_by(|a, b| b.priority.cmp(&a.priority).then(a.chassis.cmp(&b.chassis)))
        .map(|g| g.chassis.as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn add(rules: &mut Vec<NatRule>, s: &str) -> Result<()> {
        apply_add(rules, &NatAdd::parse_text("nat", s)?, "nat")
    }

    #[test]
    fn rules_parse_and_print() {
        let r = NatRule::parse_text("nat", "snat 172.16.0.10 10.1.2.3/16").unwrap();
        assert_eq!(r.to_text(), "snat 172.16.0.10 10.1.0.0/16");
        let r = NatRule::parse_text(
            "nat",
            "dnat_and_snat 172.16.0.20 10.1.0.5 p1 0A:00:00:00:00:01",
        )
        .unwrap();
        assert!(r.is_distributed());
        assert_eq!(
            r.to_text(),
            "dnat_and_snat 172.16.0.20 10.1.0.5 p1 0a:00:00:00:00:01"
        );
        assert_eq!(NatRule::from_message("nat[0]", &r.to_message()).unwrap(), r);
        for (bad, field) in [
            ("masq 1.1.1.1 10.0.0.0/8", "nat.type"),
            ("snat 1.1.1 10.0.0.0/8", "nat.external_ip"),
            ("snat 224.0.0.1 10.0.0.0/8", "nat.external_ip"),
            ("dnat 1.1.1.1 10.0.0.0/8", "nat.logical_ip"),
            (
                "dnat 1.1.1.1 10.0.0.5 p1 0a:00:00:00:00:01",
                "nat.logical_port",
            ),
            (
                "dnat_and_snat 1.1.1.1 10.0.0.5 p1 01:00:00:00:00:01",
                "nat.external_mac",
            ),
            ("snat 1.1.1.1", "nat"),
        ] {
            let e = NatRule::parse_text("nat", bad).unwrap_err();
            assert_eq!(e.field, field, "{bad}: {e}");
        }
    }

    #[test]
    fn add_and_del_follow_ovn_nbctl() {
        let mut rules = Vec::new();
        add(&mut rules, "snat 172.16.0.10 10.1.0.0/16").unwrap();
        let e = add(&mut rules, "snat 172.16.0.10 10.1.0.0/16").unwrap_err();
        assert!(e.reason.contains("already exists"), "{e}");
        add(&mut rules, "--may-exist snat 172.16.0.10 10.1.0.0/16").unwrap();
        let e = add(&mut rules, "snat 172.16.0.11 10.1.0.0/16").unwrap_err();
        assert!(e.reason.contains("logical_ip"), "{e}");
        add(&mut rules, "dnat_and_snat 172.16.0.20 10.1.0.5").unwrap();
        let e = add(&mut rules, "dnat 172.16.0.20 10.1.0.6").unwrap_err();
        assert!(e.reason.contains("external_ip"), "{e}");
        add(
            &mut rules,
            "--may-exist dnat_and_snat 172.16.0.20 10.1.0.5 p1 0a:00:00:00:00:01",
        )
        .unwrap();
        assert!(rules[1].is_distributed());
        assert_eq!(rules.len(), 2);
        let del = |s: &str| NatDel::parse_text("nat", s).unwrap();
        let e = apply_del(&mut rules, &del("snat 10.9.0.0/16"), "nat").unwrap_err();
        assert!(e.reason.contains("no matching NAT"), "{e}");
        apply_del(&mut rules, &del("--if-exists snat 10.9.0.0/16"), "nat").unwrap();
        apply_del(&mut rules, &del("dnat_and_snat 172.16.0.20"), "nat").unwrap();
        assert_eq!(rules.len(), 1);
        apply_del(&mut rules, &del(""), "nat").unwrap();
        assert!(rules.is_empty());
    }

    #[test]
    fn gateways_and_the_active_one() {
        let mut l = Vec::new();
        apply_gateway_set(&mut l, Gateway::parse_text("g", "hv1 20").unwrap());
        apply_gateway_set(&mut l, Gateway::parse_text("g", "hv2 10").unwrap());
        apply_gateway_set(&mut l, Gateway::parse_text("g", "hv3").unwrap());
        assert_eq!(active_gateway(&l, |_| true), Some("hv1"));
        assert_eq!(active_gateway(&l, |c| c != "hv1"), Some("hv2"));
        assert_eq!(active_gateway(&l, |_| false), None);
        apply_gateway_set(&mut l, Gateway::parse_text("g", "hv3 30").unwrap());
        assert_eq!(by_priority(&l)[0].chassis, "hv3");
        assert!(apply_gateway_del(&mut l, "hv9", "lrp", "g").is_err());
        apply_gateway_del(&mut l, "hv3", "lrp", "g").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            Gateway::parse_text("g", "hv1 40000").unwrap_err().field,
            "g.priority"
        );
    }
}
