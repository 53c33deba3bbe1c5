//! The host management port (`--mgmt-switch SWITCH`, like ovn-kubernetes' `ovn-k8s-mp0` and
//! Antrea's `antrea-gw0`): an OVS internal port in the host's own network namespace, bound to
//! a logical port of SWITCH, so that the host reaches every pod (kubelet probes, node-to-pod
//! traffic) and pods reach their host.
//!
//! What the agent does, in a loop that only ever adds or corrects (never flushes):
//! 1. Northbound ([`nb`]): the logical port [`port_name`] (`mgmt-<chassis>`) on SWITCH, created
//!    with a `dynamic` address (the controller's IPAM) if it does not exist yet, with the
//!    agent's own credentials (role `agent` may create ports). A restarted agent finds the
//!    same port and the same address. The switch's gateway for the host is the IP of the
//!    router port attached to SWITCH (a `router`-type switch port), when there is one.
//! 2. OVSDB ([`ovs`]): the internal port `--mgmt-interface` (default [`DEFAULT_INTERFACE`])
//!    on the integration bridge with `external_ids:iface-id` = the logical port, its
//!    `mac` = the port's MAC, marked `weft-owner=weft-agent`. The agent binds it like any VIF.
//! 3. The host ([`host`]): the link's MAC, MTU and state, the port's address, and one route
//!    per `--cluster-subnets` prefix via the gateway ([`plan`]). Addresses and routes on that
//!    link that the plan does not have are removed; nothing else on the host is touched.
//!
//! The northbound part is redone every [`NB_INTERVAL`] and the host part every
//! [`HOST_INTERVAL`] (a restarted ovs-vswitchd re-creates the internal device without its
//! address: the next pass puts it back). A restart of the agent finds everything in place and
//! changes nothing, so traffic through the port never stops.

pub mod host;
pub mod nb;
pub mod ovs;

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use tracing::{info, warn};

/// Default name of the host's internal port (at most 15 characters, a Linux link name).
pub const DEFAULT_INTERFACE: &str = "weft-mp0";
/// Its MTU when the switch sets none (the CNI's default pod MTU).
pub const DEFAULT_MTU: u32 = 1400;
/// How often the logical port, its address and the gateway are read again.
pub const NB_INTERVAL: Duration = Duration::from_secs(30);
/// How often the host's link, address and routes are checked.
pub const HOST_INTERVAL: Duration = Duration::from_secs(3);

/// Errors of the management port.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    #[error("controller: {0}")]
    Controller(String),
    #[error("logical switch {switch:?} (--mgmt-switch) {reason}")]
    Switch { switch: String, reason: String },
    #[error("logical port {port:?}: {reason}")]
    Port { port: String, reason: String },
    #[error(
        "cluster subnet {subnet} (--cluster-subnets) is outside {switch:?}'s subnet {switch_subnet} \
         and {switch:?} is not attached to a router: the host has no gateway to it"
    )]
    NoGateway {
        subnet: Ipv4Network,
        switch: String,
        switch_subnet: Ipv4Network,
    },
    #[error("OVSDB: {0}")]
    Ovsdb(String),
    #[error("{0}")]
    Host(String),
}

/// The management port's configuration (`--mgmt-switch`, `--cluster-subnets`,
/// `--mgmt-interface`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MgmtConfig {
    pub switch: String,
    pub cluster_subnets: Vec<Ipv4Network>,
    pub interface: String,
}

/// The logical port of chassis `chassis` (`mgmt-<chassis>`); None when that name would be
/// longer than a port name may be.
pub fn port_name(chassis: &str) -> Option<String> {
    let name = format!("mgmt-{chassis}");
    weft_proto::model::validate::validate_name("port", &name)
        .ok()
        .map(|_| name)
}

/// One host route: `ip route replace DST via VIA dev IFACE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostRoute {
    pub dst: Ipv4Network,
    pub via: Ipv4Addr,
}

/// What the host gets on the management link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPlan {
    pub mac: String,
    /// The port's address with the switch's prefix length.
    pub address: Ipv4Network,
    pub mtu: u32,
    pub routes: Vec<HostRoute>,
}

/// The MAC and IPv4 address of a logical port (its dynamic address, else its first static
/// "MAC IP" entry).
pub fn port_address(
    name: &str,
    addresses: &[String],
    dynamic: &str,
) -> Result<(String, Ipv4Addr), MgmtError> {
    let entries = std::iter::once(dynamic).chain(addresses.iter().map(String::as_str));
    for e in entries {
        if let Some((mac, Some(ip))) = weft_proto::model::validate::parse_dynamic(e) {
            return Ok((mac, ip));
        }
    }
    Err(MgmtError::Port {
        port: name.to_string(),
        reason: format!(
            "has no \"MAC IP\" address yet (addresses {addresses:?}, dynamic {dynamic:?})"
        ),
    })
}

/// The gateway the host routes through: the first address of the attached router port's
/// `networks` (`10.0.0.1/24`) inside the switch's subnet.
pub fn gateway_of(router_port_networks: &[String], subnet: Ipv4Network) -> Option<Ipv4Addr> {
    router_port_networks
        .iter()
        .filter_map(|n| n.parse::<Ipv4Network>().ok())
        .map(|n| n.ip())
        .find(|ip| subnet.contains(*ip))
}

/// Plans the host side: the port's address on the switch's subnet, and a route via the
/// router for each cluster subnet that the switch's own subnet does not already contain.
pub fn plan(
    switch: &str,
    subnet: Ipv4Network,
    mac: &str,
    ip: Ipv4Addr,
    mtu: u32,
    gateway: Option<Ipv4Addr>,
    cluster_subnets: &[Ipv4Network],
) -> Result<HostPlan, MgmtError> {
    if !subnet.contains(ip) {
        return Err(MgmtError::Port {
            port: String::new(),
            reason: format!("address {ip} is outside the switch's subnet {subnet}"),
        });
    }
    let address = Ipv4Network::new(ip, subnet.prefix()).map_err(|e| MgmtError::Port {
        port: String::new(),
        reason: e.to_string(),
    })?;
    let mut routes = Vec::new();
    for &c in cluster_subnets {
        let c = Ipv4Network::new(c.network(), c.prefix()).unwrap_or(c);
        // Inside the switch's own subnet: the link's connected route covers it.
        if c.prefix() >= subnet.prefix() && subnet.contains(c.network()) {
            continue;
        }
        let Some(via) = gateway.filter(|g| subnet.contains(*g)) else {
            return Err(MgmtError::NoGateway {
                subnet: c,
                switch: switch.to_string(),
                switch_subnet: subnet,
            });
        };
        let r = HostRoute { dst: c, via };
        if !routes.contains(&r) {
            routes.push(r);
        }
    }
    routes.sort();
    Ok(HostPlan {
        mac: mac.to_string(),
        address,
        mtu,
        routes,
    })
}

/// Runs the management port until the task is dropped (see the module docs). Errors are
/// logged and retried; nothing is ever removed on exit.
pub async fn run(cfg: MgmtConfig, agent: crate::config::AgentConfig) {
    let Some(lport) = port_name(&agent.chassis) else {
        warn!(chassis = %agent.chassis, "management port name too long; no management port");
        return;
    };
    let nb = nb::Nb::new(agent.controllers.clone());
    let mut current: Option<HostPlan> = None;
    let mut last_nb: Option<tokio::time::Instant> = None;
    let mut last_error = String::new();
    loop {
        let due = last_nb.is_none_or(|t| t.elapsed() >= NB_INTERVAL) || current.is_none();
        if due {
            match nb.plan(&cfg, &lport).await {
                Ok(p) => {
                    if current.as_ref() != Some(&p) {
                        info!(port = %lport, address = %p.address, mac = %p.mac,
                              routes = ?p.routes, "management port planned");
                    }
                    current = Some(p);
                    last_nb = Some(tokio::time::Instant::now());
                }
                Err(e) => report(&mut last_error, &e),
            }
        }
        if let Some(p) = &current {
            let r = async {
                ovs::ensure_port(&agent.ovsdb, &agent.bridge, &cfg.interface, &lport, &p.mac)
                    .await?;
                host::ensure(&cfg.interface, p).await
            }
            .await;
            match r {
                Ok(changed) => {
                    if changed {
                        info!(interface = %cfg.interface, "management port configured on the host");
                    }
                    last_error.clear();
                }
                Err(e) => report(&mut last_error, &e),
            }
        }
        let pause = if last_error.is_empty() {
            HOST_INTERVAL
        } else {
            Duration::from_secs(1)
        };
        tokio::time::sleep(pause).await;
    }
}

/// Logs an error once until it changes.
fn report(last: &mut String, e: &MgmtError) {
    let s = e.to_string();
    if *last != s {
        warn!(error = %s, "management port not ready; retrying");
        *last = s;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn port_names_follow_the_chassis() {
        assert_eq!(port_name("host1").as_deref(), Some("mgmt-host1"));
        assert_eq!(port_name(&"h".repeat(58)).map(|n| n.len()), Some(63));
        assert_eq!(port_name(&"h".repeat(59)), None);
    }

    #[test]
    fn addresses_prefer_the_dynamic_one() {
        let (mac, ip) =
            port_address("p", &["dynamic".into()], "0a:00:00:00:00:05 10.1.0.5").unwrap();
        assert_eq!(
            (mac.as_str(), ip),
            ("0a:00:00:00:00:05", Ipv4Addr::new(10, 1, 0, 5))
        );
        let (_, ip) = port_address("p", &["0a:00:00:00:00:06 10.1.0.6".into()], "").unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 1, 0, 6));
        let e = port_address("p", &["dynamic".into()], "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"p\"") && e.contains("no \"MAC IP\""), "{e}");
    }

    #[test]
    fn the_gateway_is_the_router_port_ip_on_the_subnet() {
        let s = net("10.61.0.0/24");
        let nets = vec!["192.168.0.1/24".to_string(), "10.61.0.1/24".to_string()];
        assert_eq!(gateway_of(&nets, s), Some(Ipv4Addr::new(10, 61, 0, 1)));
        assert_eq!(gateway_of(&["10.62.0.1/24".into()], s), None);
        assert_eq!(gateway_of(&["junk".into()], s), None);
    }

    #[test]
    fn routes_go_via_the_router_except_for_the_switch_subnet() {
        let s = net("10.61.0.0/24");
        let gw = Some(Ipv4Addr::new(10, 61, 0, 1));
        let ip = Ipv4Addr::new(10, 61, 0, 9);
        let p = plan(
            "mgmt",
            s,
            "0a:00:00:00:00:09",
            ip,
            1400,
            gw,
            &[
                net("10.62.0.0/24"),
                net("10.61.0.0/25"),
                net("10.62.0.0/24"),
                net("10.0.0.0/8"),
            ],
        )
        .unwrap();
        assert_eq!(p.address.to_string(), "10.61.0.9/24");
        let routes: Vec<String> = p
            .routes
            .iter()
            .map(|r| format!("{} via {}", r.dst, r.via))
            .collect();
        // 10.61.0.0/25 is on the link; 10.0.0.0/8 contains the switch subnet, which the
        // connected /24 still wins for.
        assert_eq!(
            routes,
            ["10.0.0.0/8 via 10.61.0.1", "10.62.0.0/24 via 10.61.0.1"]
        );
        // Host bits in a cluster subnet are masked off.
        let p = plan(
            "m",
            s,
            "0a:00:00:00:00:09",
            ip,
            1400,
            gw,
            &[net("10.63.1.7/16")],
        )
        .unwrap();
        assert_eq!(p.routes[0].dst.to_string(), "10.63.0.0/16");
    }

    #[test]
    fn off_subnet_clusters_need_a_router() {
        let s = net("10.61.0.0/24");
        let ip = Ipv4Addr::new(10, 61, 0, 9);
        let e = plan("mgmt", s, "m", ip, 1400, None, &[net("10.62.0.0/16")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.62.0.0/16") && e.contains("\"mgmt\"") && e.contains("router"),
            "{e}"
        );
        // Only the switch's own subnet: no router needed.
        let p = plan("mgmt", s, "m", ip, 1400, None, &[s]).unwrap();
        assert!(p.routes.is_empty());
        // A gateway outside the subnet is no gateway.
        let off = Some(Ipv4Addr::new(10, 99, 0, 1));
        assert!(plan("mgmt", s, "m", ip, 1400, off, &[net("10.62.0.0/16")]).is_err());
        let e = plan("mgmt", s, "m", Ipv4Addr::new(10, 7, 0, 1), 1400, None, &[]).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }
}
