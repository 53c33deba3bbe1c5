//! Port mapping (`lr-port-map-add ROUTER EXTERNAL_IP:PORT LOGICAL_IP:PORT [tcp|udp]`,
//! Docker's `-p`): a load balancer with one VIP `EXTERNAL_IP:PORT` and one backend
//! `LOGICAL_IP:PORT`, applied on the router, whose name and `external_ids` say it is a port
//! mapping. One copy of the rules, used by weftctl (to build the ops and list mappings) and
//! the controller (which refuses a malformed mapping, and one whose external IP is on no
//! gateway port network of its router). No I/O.
//!
//! The LB is named [`lb_name`] (`pm-ROUTER-IP-PORT-PROTO`), so a mapping of the same
//! external address, port and protocol on a router is a name that exists: a duplicate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::Ipv4Network;

use super::load_balancer::{parse_endpoint, Endpoint};
use super::validate::{validate_name, ValidationError};
use crate::v1::LoadBalancer;

type Result<T> = std::result::Result<T, ValidationError>;

/// The `external_ids` key that marks a load balancer as a port mapping; its value is the
/// router the mapping belongs to.
pub const EXTERNAL_ID_ROUTER: &str = "weft:port-map";

/// Protocols a port mapping can have ("" means tcp).
pub const PROTOCOLS: &[&str] = &["tcp", "udp"];

/// One port mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    /// The router it is applied on.
    pub router: String,
    /// The external address and port (the VIP).
    pub external: (Ipv4Addr, u16),
    /// The logical address and port it goes to (the backend).
    pub logical: (Ipv4Addr, u16),
    /// `tcp` or `udp`.
    pub protocol: &'static str,
}

/// The name of the load balancer of a mapping: `pm-ROUTER-IP-PORT-PROTO`.
pub fn lb_name(router: &str, ip: Ipv4Addr, port: u16, protocol: &str) -> String {
    format!("pm-{router}-{ip}-{port}-{protocol}")
}

/// Checks a port mapping protocol (`tcp` or `udp`, "" = tcp) and returns its spelling.
pub fn parse_protocol(field: &str, s: &str) -> Result<&'static str> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Ok("tcp");
    }
    PROTOCOLS.iter().copied().find(|p| *p == t).ok_or_else(|| {
        ValidationError::new(field, s, "expected a port mapping protocol: tcp or udp")
    })
}

/// Parses `IPv4:PORT` (port 1..65535, a unicast address).
pub fn parse_address(field: &str, s: &str) -> Result<(Ipv4Addr, u16)> {
    let e = parse_endpoint(field, s)?;
    match e {
        Endpoint {
            ip: IpAddr::V4(ip),
            port: Some(p),
        } => {
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
                return Err(ValidationError::new(
                    field,
                    s,
                    "expected a unicast IPv4 address",
                ));
            }
            Ok((ip, p))
        }
        _ => Err(ValidationError::new(
            field,
            s,
            "expected IPv4:PORT (203.0.113.10:8080)",
        )),
    }
}

impl PortMap {
    /// Parses the arguments of `lr-port-map-add`.
    pub fn parse(router: &str, external: &str, logical: &str, protocol: &str) -> Result<PortMap> {
        validate_name("port_map.router", router)?;
        let pm = PortMap {
            router: router.to_string(),
            external: parse_address("port_map.external", external)?,
            logical: parse_address("port_map.logical", logical)?,
            protocol: parse_protocol("port_map.protocol", protocol)?,
        };
        validate_name("port_map.name", &pm.name())?;
        Ok(pm)
    }

    /// Its load balancer's name ([`lb_name`]).
    pub fn name(&self) -> String {
        lb_name(
            &self.router,
            self.external.0,
            self.external.1,
            self.protocol,
        )
    }

    /// `EXTERNAL_IP:PORT`.
    pub fn external_text(&self) -> String {
        format!("{}:{}", self.external.0, self.external.1)
    }

    /// `LOGICAL_IP:PORT`.
    pub fn logical_text(&self) -> String {
        format!("{}:{}", self.logical.0, self.logical.1)
    }

    /// The load balancer that implements it.
    pub fn to_load_balancer(&self) -> LoadBalancer {
        LoadBalancer {
            name: self.name(),
            vips: [(self.external_text(), self.logical_text())].into(),
            protocol: self.protocol.to_string(),
            external_ids: [(EXTERNAL_ID_ROUTER.to_string(), self.router.clone())].into(),
            ..Default::default()
        }
    }

    /// The mapping a load balancer implements: `None` when it is no port mapping (no
    /// [`EXTERNAL_ID_ROUTER`]), an error naming the field when it is one but malformed
    /// (not exactly one VIP `IPv4:PORT` with one backend `IPv4:PORT`, protocol not tcp or
    /// udp, or a name other than [`lb_name`]).
    pub fn from_load_balancer(lb: &LoadBalancer) -> Option<Result<PortMap>> {
        let router = lb.external_ids.get(EXTERNAL_ID_ROUTER)?;
        Some(Self::check_lb(router, &lb.name, &lb.vips, &lb.protocol))
    }

    fn check_lb(
        router: &str,
        name: &str,
        vips: &HashMap<String, String>,
        protocol: &str,
    ) -> Result<PortMap> {
        validate_name(
            &format!("load_balancer.external_ids[{EXTERNAL_ID_ROUTER}]"),
            router,
        )?;
        let mut it = vips.iter();
        let (Some((vip, backends)), None) = (it.next(), it.next()) else {
            return Err(ValidationError::new(
                "port_map.vips",
                &format!("{} VIPs", vips.len()),
                "a port mapping has exactly one VIP",
            ));
        };
        if backends.contains(',') {
            return Err(ValidationError::new(
                "port_map.logical",
                backends,
                "a port mapping has exactly one logical address",
            ));
        }
        let pm = PortMap {
            router: router.to_string(),
            external: parse_address("port_map.external", vip)?,
            logical: parse_address("port_map.logical", backends.trim())?,
            protocol: parse_protocol("port_map.protocol", protocol)?,
        };
        if pm.name() != name {
            return Err(ValidationError::new(
                "load_balancer.name",
                name,
                format!("a port mapping's load balancer is named {:?}", pm.name()),
            ));
        }
        Ok(pm)
    }

    /// Refuses a mapping whose external IP is on none of `gateway_networks` (the networks
    /// of the router's gateway ports, the ports with gateway chassis): only there is it
    /// answered and translated.
    pub fn check_on_gateway<'a>(
        &self,
        gateway_networks: impl IntoIterator<Item = &'a Ipv4Network>,
    ) -> Result<()> {
        let ip = self.external.0;
        if gateway_networks.into_iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        Err(ValidationError::new(
            "port_map.external_ip",
            &ip.to_string(),
            format!(
                "a port mapping to an external IP that is on no gateway port of router {:?} \
                 (set one with lrp-set-gateway-chassis)",
                self.router
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_name_and_round_trip_through_the_lb() {
        let pm = PortMap::parse("lr1", "172.16.0.10:8080", "10.31.0.5:80", "").unwrap();
        assert_eq!(pm.name(), "pm-lr1-172.16.0.10-8080-tcp");
        let lb = pm.to_load_balancer();
        assert_eq!(lb.vips["172.16.0.10:8080"], "10.31.0.5:80");
        assert_eq!(PortMap::from_load_balancer(&lb).unwrap().unwrap(), pm);
        let plain = LoadBalancer {
            name: "web".into(),
            ..Default::default()
        };
        assert!(PortMap::from_load_balancer(&plain).is_none());
        let pm = PortMap::parse("lr1", "172.16.0.10:53", "10.31.0.5:53", "UDP").unwrap();
        assert_eq!(pm.protocol, "udp");
    }

    #[test]
    fn bad_input_names_field_and_value() {
        for (ext, log, proto, field, value) in [
            (
                "172.16.0.10",
                "10.31.0.5:80",
                "",
                "port_map.external",
                "172.16.0.10",
            ),
            (
                "172.16.0.10:0",
                "10.31.0.5:80",
                "",
                "port_map.external",
                "172.16.0.10:0",
            ),
            (
                "172.16.0.10:8080",
                "10.31.0.5:70000",
                "",
                "port_map.logical",
                "10.31.0.5:70000",
            ),
            (
                "[fd00::1]:80",
                "10.31.0.5:80",
                "",
                "port_map.external",
                "[fd00::1]:80",
            ),
            (
                "172.16.0.10:8080",
                "10.31.0.5:80",
                "sctp",
                "port_map.protocol",
                "sctp",
            ),
            (
                "0.0.0.0:8080",
                "10.31.0.5:80",
                "",
                "port_map.external",
                "0.0.0.0:8080",
            ),
        ] {
            let e = PortMap::parse("lr1", ext, log, proto).unwrap_err();
            assert_eq!((e.field.as_str(), e.value.as_str()), (field, value), "{e}");
        }
        let mut lb = PortMap::parse("lr1", "172.16.0.10:8080", "10.31.0.5:80", "")
            .unwrap()
            .to_load_balancer();
        lb.name = "other".into();
        let e = PortMap::from_load_balancer(&lb).unwrap().unwrap_err();
        assert_eq!(e.field, "load_balancer.name");
        lb.name = "pm-lr1-172.16.0.10-8080-tcp".into();
        lb.vips
            .insert("172.16.0.10:8081".into(), "10.31.0.5:80".into());
        assert!(PortMap::from_load_balancer(&lb).unwrap().is_err());
    }

    #[test]
    fn external_ip_must_be_on_a_gateway_network() {
        let pm = PortMap::parse("lr1", "172.16.0.10:8080", "10.31.0.5:80", "tcp").unwrap();
        let nets: Vec<Ipv4Network> = vec!["172.16.0.1/24".parse().unwrap()];
        pm.check_on_gateway(&nets).unwrap();
        let other: Vec<Ipv4Network> = vec!["192.168.0.1/24".parse().unwrap()];
        let e = pm.check_on_gateway(&other).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("port_map.external_ip", "172.16.0.10")
        );
        assert!(e.to_string().contains("on no gateway port"), "{e}");
    }
}
