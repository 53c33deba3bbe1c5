//! The default gateway a container is given, for CNI results and CNM `Join` alike: when the
//! switch is attached to a router (a `router`-type port whose router port has a network
//! containing the switch's subnet), that router port's address; otherwise the subnet's first
//! host address (what the switch's own gateway answers for). Pure.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// The gateway for a switch with `subnet` whose router-type ports lead to router ports
/// with `router_networks` (each "IP/LEN", as `lrp-add` stores them). The first router
/// network containing the subnet wins; none: the subnet's first host (None for /31, /32
/// or no subnet).
pub fn choose(subnet: &str, router_networks: &[String]) -> Option<Ipv4Addr> {
    let sub: Ipv4Network = subnet.trim().parse().ok()?;
    for n in router_networks {
        let Ok(net) = n.trim().parse::<Ipv4Network>() else {
            continue;
        };
        if net.prefix() <= sub.prefix() && net.contains(sub.network()) && net.ip() != net.network()
        {
            return Some(net.ip());
        }
    }
    first_host(&sub)
}

/// The first host address of `net` (None for /31 and /32).
pub fn first_host(net: &Ipv4Network) -> Option<Ipv4Addr> {
    (net.prefix() <= 30).then(|| Ipv4Addr::from(u32::from(net.network()) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn router_port_address_when_attached_else_first_host() {
        let ip = |a, b, c, d| Some(Ipv4Addr::new(a, b, c, d));
        assert_eq!(choose("10.0.0.0/24", &[]), ip(10, 0, 0, 1));
        assert_eq!(
            choose("10.0.0.0/24", &v(&["10.0.0.254/24"])),
            ip(10, 0, 0, 254)
        );
        // A router network that contains the subnet (a wider one) also counts.
        assert_eq!(choose("10.0.1.0/24", &v(&["10.0.0.1/16"])), ip(10, 0, 0, 1));
        // Networks that do not contain the subnet are skipped; the first that does wins.
        assert_eq!(
            choose(
                "10.0.0.0/24",
                &v(&[
                    "192.168.0.1/24",
                    "10.0.0.0/25",
                    "bad",
                    "10.0.0.200/24",
                    "10.0.0.9/24"
                ])
            ),
            ip(10, 0, 0, 200)
        );
        assert_eq!(choose("10.0.0.0/31", &[]), None);
        assert_eq!(choose("", &v(&["10.0.0.1/24"])), None);
        assert_eq!(choose("10.0.0.0/30", &[]), ip(10, 0, 0, 1));
    }
}
