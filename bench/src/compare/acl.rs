//! The ACL phase of the comparison (issue 11): after the ports converged, both systems get the
//! same port groups, address sets and ACLs ([`plan`], pure), and the bench measures
//!
//! - **ACL convergence**: first group/set/ACL write → every ACL written and `--wait=hv sync`
//!   returned (Weft: `Transact`, [`AclScale::batch`] ACL inserts per call, then `Sync` with
//!   `WAIT_HV`; OVN: `ovn-nbctl`, the same number of chained `acl-add` per invocation, then
//!   `ovn-nbctl --wait=hv sync`);
//! - **flows per host** after it (`ovs-ofctl dump-aggregate br-int`);
//! - **one address-set change**: one address added to a set that ACLs use, with `--wait=hv`
//!   (every host applied it), [`AclScale::set_changes`] times, median and p99.
//!
//! Topology: groups `pg0..` (port `p{h}-{j}` is in `pg{j % G}`, so every group has ports on
//! every host), sets `as0..` of [`AclScale::set_size`] /32 addresses in `172.16.0.0/12`, and
//! ACL `i` on group `pg{i % G}`, to-lport, priority `1000 + i / G`, verdict allow-related,
//! matching `outport == @pg{g} && ip4 && tcp.dst == {1000 + i}`, and every
//! [`AclScale::set_every`]-th one `outport == @pg{g} && ip4.src == $as{k} && tcp.dst ==
//! {1000 + i}` instead (a cross product: conjunction in both systems).

use std::time::Duration;

use super::{CompareConfig, PlannedPort};
use crate::Timing;

/// Sizes of the ACL phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclScale {
    pub acls: usize,
    pub groups: usize,
    pub sets: usize,
    pub set_size: usize,
    /// Every n-th ACL matches an address set.
    pub set_every: usize,
    /// ACL inserts per write call.
    pub batch: usize,
    /// Timed address-set changes.
    pub set_changes: usize,
}

impl Default for AclScale {
    fn default() -> Self {
        AclScale {
            acls: 1000,
            groups: 10,
            sets: 10,
            set_size: 1000,
            set_every: 10,
            batch: 50,
            set_changes: 10,
        }
    }
}

/// One ACL of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclSpec {
    pub group: String,
    pub priority: u32,
    pub matches: String,
}

/// Everything the ACL phase writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclPlan {
    /// (group, its ports).
    pub groups: Vec<(String, Vec<String>)>,
    /// (set, its addresses).
    pub sets: Vec<(String, Vec<String>)>,
    pub acls: Vec<AclSpec>,
}

/// The `i`-th address of set `k` (`172.16.0.0/12`: 16 × 65,536 per set at most).
pub fn set_address(k: usize, i: usize) -> String {
    let n = (k << 16) | (i & 0xffff);
    format!(
        "172.{}.{}.{}",
        16 + (n >> 16) % 16,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

/// The groups, sets and ACLs for the ports of `cfg`.
pub fn plan(cfg: &CompareConfig, s: &AclScale) -> AclPlan {
    let ports: Vec<PlannedPort> = cfg.plan();
    let g = s.groups.max(1);
    let groups = (0..g)
        .map(|k| {
            let members = ports
                .iter()
                .filter(|p| {
                    p.name
                        .rsplit('-')
                        .next()
                        .and_then(|j| j.parse::<usize>().ok())
                        .is_some_and(|j| j % g == k)
                })
                .map(|p| p.name.clone())
                .collect();
            (format!("pg{k}"), members)
        })
        .collect();
    let sets = (0..s.sets)
        .map(|k| {
            (
                format!("as{k}"),
                (1..=s.set_size).map(|i| set_address(k, i)).collect(),
            )
        })
        .collect();
    let acls = (0..s.acls)
        .map(|i| {
            let grp = format!("pg{}", i % g);
            let port = 1000 + i;
            let matches = if s.sets > 0 && s.set_every > 0 && i % s.set_every == 0 {
                let k = (i / s.set_every) % s.sets;
                format!("outport == @{grp} && ip4.src == $as{k} && tcp.dst == {port}")
            } else {
                format!("outport == @{grp} && ip4 && tcp.dst == {port}")
            };
            AclSpec {
                group: grp,
                priority: 1000 + (i / g) as u32,
                matches,
            }
        })
        .collect();
    AclPlan { groups, sets, acls }
}

/// The address the `n`-th timed change adds (outside every set).
pub fn change_address(n: usize) -> String {
    format!("192.168.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

/// What the ACL phase measured for one system.
#[derive(Clone, Debug, PartialEq)]
pub struct AclReport {
    pub acls: usize,
    pub groups: usize,
    pub sets: usize,
    pub set_size: usize,
    /// Write calls made (groups, sets and ACL batches).
    pub calls: usize,
    /// First write → every ACL written.
    pub write_time: Duration,
    /// First write → every ACL written and `--wait=hv sync` returned.
    pub convergence: Duration,
    /// (host, flows on br-int) after convergence.
    pub flows_per_host: Vec<(String, u64)>,
    /// One address added to a set, `--wait=hv`, each.
    pub set_change: Timing,
}

/// `ovn-nbctl` argument lists creating the plan: groups and sets first, then the ACLs in
/// batches of `batch` chained `acl-add`s.
pub fn ovn_nbctl_calls(p: &AclPlan, batch: usize) -> Vec<Vec<String>> {
    let mut calls = Vec::new();
    for (g, ports) in &p.groups {
        let mut v = vec!["pg-add".to_string(), g.clone()];
        v.extend(ports.iter().cloned());
        calls.push(v);
    }
    for (s, addrs) in &p.sets {
        let quoted: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        calls.push(vec![
            "create".into(),
            "Address_Set".into(),
            format!("name={s}"),
            format!("addresses={}", quoted.join(",")),
        ]);
    }
    for chunk in p.acls.chunks(batch.max(1)) {
        let mut v = Vec::new();
        for a in chunk {
            v.extend([
                "--".to_string(),
                "--type=port-group".into(),
                "acl-add".into(),
                a.group.clone(),
                "to-lport".into(),
                a.priority.to_string(),
                a.matches.clone(),
                "allow-related".into(),
            ]);
        }
        calls.push(v);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_the_asked_sizes() {
        let cfg = CompareConfig {
            hosts: 2,
            ports_per_host: 20,
            ..CompareConfig::default()
        };
        let s = AclScale {
            acls: 30,
            groups: 4,
            sets: 2,
            set_size: 300,
            set_every: 10,
            ..AclScale::default()
        };
        let p = plan(&cfg, &s);
        assert_eq!(p.groups.len(), 4);
        assert_eq!(p.groups.iter().map(|(_, v)| v.len()).sum::<usize>(), 40);
        assert!(p.groups[1].1.iter().all(|n| n.ends_with("-1")
            || n.ends_with("-5")
            || n.ends_with("-9")
            || n.ends_with("-13")
            || n.ends_with("-17")));
        assert_eq!(p.sets[0].1.len(), 300);
        let mut all: Vec<&String> = p.sets.iter().flat_map(|(_, v)| v).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 600, "addresses are distinct across sets");
        assert_eq!(p.acls.len(), 30);
        assert_eq!(p.acls.iter().filter(|a| a.matches.contains('$')).count(), 3);
        let keys: std::collections::BTreeSet<_> =
            p.acls.iter().map(|a| (&a.group, a.priority)).collect();
        assert_eq!(keys.len(), 30, "no two ACLs share group and priority");
        let calls = ovn_nbctl_calls(&p, 10);
        assert_eq!(calls.len(), 4 + 2 + 3);
        assert!(calls[4][3].starts_with("addresses=\"172."));
        assert_eq!(calls[6][1], "--type=port-group");
        for (i, a) in p.acls.iter().enumerate() {
            let e = weft_proto::model::expr::parse(&a.matches).expect("parses");
            let _ = (i, e);
        }
    }
}
