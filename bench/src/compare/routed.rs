//! The routed topology of `weft-bench compare --topology routed`: the same S switches and
//! ports as the flat one, plus one logical router `lr0` with a port on every switch (its
//! address the switch subnet's first host, `10.(s+1).0.1/16`) and on each switch a
//! router-type port attached to it, the OVN way. Built before the timed part (like the
//! switches), so convergence measures the ports of a routed network: every chassis with a
//! port on one switch gets the whole router (distributed routing) and the other switches'
//! bindings for lr-neigh.
//!
//! Weft: one `Transact` (the router, S router ports, S router-type switch ports); OVN: one
//! `ovn-nbctl` call chaining `lr-add`, `lrp-add` and `lsp-add ... lsp-set-type router ...`.

use std::collections::HashMap;

use weft_proto::v1::{
    object, op, InsertOp, LogicalRouter, LogicalRouterPort, LogicalSwitchPort, Object, Op,
};

use super::{switch_name, switch_subnet};

/// What the compared systems build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topology {
    /// S switches, no router (issue 5's topology).
    #[default]
    Flat,
    /// S switches on one router ([`ROUTER`]).
    Routed,
}

impl Topology {
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Flat => "flat",
            Topology::Routed => "routed",
        }
    }
}

/// The router of the routed topology.
pub const ROUTER: &str = "lr0";

/// Router port of switch `s`.
pub fn router_port(s: usize) -> String {
    format!("{ROUTER}-{}", switch_name(s))
}

/// The router-type switch port of switch `s`.
pub fn router_lsp(s: usize) -> String {
    format!("{}-{ROUTER}", switch_name(s))
}

/// Unicast, locally administered, one per switch.
pub fn router_mac(s: usize) -> String {
    let n = s + 1;
    format!("0a:00:00:00:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff)
}

/// The router port's network on switch `s`: the subnet's first host (`10.(s+1).0.1/16`).
pub fn router_network(s: usize) -> String {
    switch_subnet(s).replacen(".0/", ".1/", 1)
}

/// The `ovn-nbctl` arguments that build the router and attach every switch (one call).
pub fn ovn_nbctl_args(switches: usize) -> Vec<String> {
    let mut a: Vec<String> = vec!["lr-add".into(), ROUTER.into()];
    for s in 0..switches {
        let (lrp, lsp) = (router_port(s), router_lsp(s));
        a.extend(
            [
                "--",
                "lrp-add",
                ROUTER,
                &lrp,
                &router_mac(s),
                &router_network(s),
                "--",
                "lsp-add",
                &switch_name(s),
                &lsp,
                "--",
                "lsp-set-type",
                &lsp,
                "router",
                "--",
                "lsp-set-addresses",
                &lsp,
                "router",
                "--",
                "lsp-set-options",
                &lsp,
            ]
            .map(String::from),
        );
        a.push(format!("router-port={lrp}"));
    }
    a
}

fn insert(k: object::Kind) -> Op {
    Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(Object { kind: Some(k) }),
            may_exist: false,
        })),
    }
}

/// The Weft `Transact` ops that build the router and attach every switch.
pub fn weft_ops(switches: usize) -> Vec<Op> {
    let mut ops = vec![insert(object::Kind::LogicalRouter(LogicalRouter {
        name: ROUTER.into(),
        enabled: true,
        ..Default::default()
    }))];
    for s in 0..switches {
        ops.push(insert(object::Kind::LogicalRouterPort(LogicalRouterPort {
            name: router_port(s),
            router: ROUTER.into(),
            mac: router_mac(s),
            networks: vec![router_network(s)],
            enabled: true,
            ..Default::default()
        })));
        ops.push(insert(object::Kind::LogicalSwitchPort(LogicalSwitchPort {
            name: router_lsp(s),
            switch_name: switch_name(s),
            r#type: "router".into(),
            addresses: vec!["router".into()],
            enabled: true,
            options: HashMap::from([("router-port".to_string(), router_port(s))]),
            ..Default::default()
        })));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_gets_a_router_port_on_its_first_host() {
        assert_eq!(router_network(0), "10.1.0.1/16");
        assert_eq!(router_network(199), "10.200.0.1/16");
        assert_eq!(router_mac(0), "0a:00:00:00:00:01");
        assert_eq!(router_mac(299), "0a:00:00:00:01:2c");
        let a = ovn_nbctl_args(2);
        assert_eq!(&a[..2], ["lr-add", "lr0"]);
        let s = a.join(" ");
        assert!(s.contains("-- lrp-add lr0 lr0-ls1 0a:00:00:00:00:02 10.2.0.1/16 -- lsp-add ls1 ls1-lr0 -- lsp-set-type ls1-lr0 router -- lsp-set-addresses ls1-lr0 router -- lsp-set-options ls1-lr0 router-port=lr0-ls1"), "{s}");
        let ops = weft_ops(3);
        assert_eq!(ops.len(), 7);
    }

    #[test]
    fn routed_runs_have_their_own_section() {
        let flat = super::super::CompareConfig::default();
        let routed = super::super::CompareConfig {
            topology: Topology::Routed,
            ..flat.clone()
        };
        assert_ne!(
            super::super::section_markers(&flat),
            super::super::section_markers(&routed)
        );
        assert!(super::super::section_markers(&routed)
            .0
            .ends_with(" routed begin -->"));
    }
}
