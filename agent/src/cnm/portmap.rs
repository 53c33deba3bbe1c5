//! Published ports (`docker run -p HOSTPORT:PORT`): NAT rules in the host's network namespace
//! (where the agent runs), as Docker's own bridge driver does it, so a published port answers
//! on the host's own addresses, from other hosts and from the host itself.
//!
//! ```text
//! nat    PREROUTING  -m addrtype --dst-type LOCAL              -j WEFT-PORTMAP
//! nat    OUTPUT      ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j WEFT-PORTMAP
//! nat    POSTROUTING                                           -j WEFT-PORTMAP-POST
//! filter FORWARD     (first)                                   -j WEFT-PORTMAP
//!
//! nat    WEFT-PORTMAP       [-d HOSTIP] -p P --dport HOSTPORT  DNAT to CONTAINER:PORT
//! nat    WEFT-PORTMAP-POST  -d CONTAINER -p P --dport PORT, DNATed from HOSTPORT
//!                                                              SNAT to the management address
//! filter WEFT-PORTMAP       the DNATed flow and its replies    ACCEPT
//! ```
//!
//! The container is reached through the host's management port (`--mgmt-switch`, see
//! [`crate::mgmt`]); the SNAT to that port's address makes the container's replies come back
//! through the host, whatever the container's default gateway is.
//!
//! [`plan`] is pure: endpoints and their bindings plus the management address give the rule
//! set. [`sync`] makes the host match it through the small [`HostNet`] trait ([`Iptables`]
//! runs `iptables`/`iptables-restore`, the same binary and backend — nft or legacy — that
//! Docker uses on the host): the contents of Weft's own chains are replaced in one
//! `iptables-restore --noflush` transaction (no other chain is touched, and no connection is
//! disturbed: established flows keep their conntrack NAT), and the jumps into them are added
//! only when missing. So an agent restart re-derives the same rules from the driver's state
//! and changes nothing.

use std::net::Ipv4Addr;
use std::process::Command;

use super::wire::Binding;

/// Weft's nat chain for DNAT (from PREROUTING and OUTPUT) and its filter chain (from FORWARD).
pub const CHAIN: &str = "WEFT-PORTMAP";
/// Weft's nat chain for the SNAT to the management address (from POSTROUTING).
pub const POST_CHAIN: &str = "WEFT-PORTMAP-POST";

/// Errors of published ports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortmapError {
    /// A command failed.
    #[error("{command}: {reason}")]
    Command { command: String, reason: String },
    /// The management port is not usable for published ports.
    #[error("{0}")]
    Mgmt(String),
}

/// An iptables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Nat,
    Filter,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// One rule: appended to `chain` of `table` with iptables arguments `spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: Table,
    pub chain: &'static str,
    pub spec: Vec<String>,
}

impl Rule {
    fn new(table: Table, chain: &'static str, spec: &[&str]) -> Rule {
        Rule {
            table,
            chain,
            spec: spec.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `-A CHAIN SPEC...` as iptables-restore reads it (arguments with spaces quoted).
    pub fn restore_line(&self) -> String {
        let mut s = format!("-A {}", self.chain);
        for a in &self.spec {
            if a.contains(' ') || a.is_empty() {
                s.push_str(&format!(" \"{a}\""));
            } else {
                s.push(' ');
                s.push_str(a);
            }
        }
        s
    }
}

/// One endpoint's published ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published<'a> {
    pub endpoint: &'a str,
    pub ip: Ipv4Addr,
    pub bindings: &'a [Binding],
}

/// The jumps from the built-in chains into Weft's chains (each added when missing).
pub fn hooks() -> Vec<Rule> {
    let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN];
    let mut out_spec = vec!["!", "-d", "127.0.0.0/8"];
    out_spec.extend_from_slice(&local);
    vec![
        Rule::new(Table::Nat, "PREROUTING", &local),
        Rule::new(Table::Nat, "OUTPUT", &out_spec),
        Rule::new(Table::Nat, "POSTROUTING", &["-j", POST_CHAIN]),
        Rule::new(Table::Filter, "FORWARD", &["-j", CHAIN]),
    ]
}

/// The rules of one endpoint: for each binding a DNAT of the host port (on `host_ip`, or on
/// every local address) to the container, the SNAT of that flow to `mgmt`, and the filter
/// accepts for it and its replies. Each rule carries the endpoint's short id as a comment.
pub fn endpoint_rules(p: &Published<'_>, mgmt: Ipv4Addr) -> Vec<Rule> {
    let comment = format!("weft-cnm {}", &p.endpoint[..p.endpoint.len().min(12)]);
    let cip = format!("{}/32", p.ip);
    let mut out = Vec::new();
    for b in p.bindings {
        let hp = b.host_port.to_string();
        let port = b.port.to_string();
        let to = format!("{}:{}", p.ip, b.port);
        let mut dnat: Vec<&str> = Vec::new();
        let host_ip = format!("{}/32", b.host_ip);
        if !b.host_ip.is_empty() {
            dnat.extend_from_slice(&["-d", &host_ip]);
        }
        dnat.extend_from_slice(&["-p", &b.proto, "-m", &b.proto, "--dport", &hp]);
        dnat.extend_from_slice(&["-m", "comment", "--comment", &comment]);
        dnat.extend_from_slice(&["-j", "DNAT", "--to-destination", &to]);
        out.push(Rule::new(Table::Nat, CHAIN, &dnat));
        let mgmt_s = mgmt.to_string();
        out.push(Rule::new(
            Table::Nat,
            POST_CHAIN,
            &[
                "-d",
                &cip,
                "-p",
                &b.proto,
                "-m",
                &b.proto,
                "--dport",
                &port,
                "-m",
                "conntrack",
                "--ctstate",
                "DNAT",
                "--ctorigdstport",
                &hp,
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                "SNAT",
                "--to-source",
                &mgmt_s,
            ],
        ));
        out.push(Rule::new(
            Table::Filter,
            CHAIN,
            &[
                "-d",
                &cip,
                "-p",
                &b.proto,
                "-m",
                &b.proto,
                "--dport",
                &port,
                "-m",
                "conntrack",
                "--ctstate",
                "DNAT",
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                "ACCEPT",
            ],
        ));
        out.push(Rule::new(
            Table::Filter,
            CHAIN,
            &[
                "-s",
                &cip,
                "-p",
                &b.proto,
                "-m",
                &b.proto,
                "--sport",
                &port,
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                "ACCEPT",
            ],
        ));
    }
    out
}

/// Every endpoint's rules, in endpoint order (callers pass a sorted list, so the same state
/// always gives the same rules).
pub fn plan(endpoints: &[Published<'_>], mgmt: Ipv4Addr) -> Vec<Rule> {
    endpoints
        .iter()
        .flat_map(|p| endpoint_rules(p, mgmt))
        .collect()
}

/// The `iptables-restore --noflush` input that replaces the contents of Weft's chains (and
/// only those: declaring a chain flushes it) with `rules`.
pub fn restore_script(rules: &[Rule]) -> String {
    let mut s = String::new();
    for (table, chains) in [
        (Table::Nat, &[CHAIN, POST_CHAIN][..]),
        (Table::Filter, &[CHAIN][..]),
    ] {
        s.push_str(&format!("*{}\n", table.name()));
        for c in chains {
            s.push_str(&format!(":{c} - [0:0]\n"));
        }
        for r in rules.iter().filter(|r| r.table == table) {
            s.push_str(&r.restore_line());
            s.push('\n');
        }
        s.push_str("COMMIT\n");
    }
    s
}

/// What [`sync`] needs from the host.
pub trait HostNet {
    /// The first IPv4 address of link `iface`; None when it has none (or no such link).
    fn ipv4_of(&self, iface: &str) -> Result<Option<Ipv4Addr>, PortmapError>;
    /// The link the host routes `ip` through.
    fn route_dev(&self, ip: Ipv4Addr) -> Result<Option<String>, PortmapError>;
    /// Whether Weft's nat chain exists.
    fn has_chain(&self) -> Result<bool, PortmapError>;
    /// Whether `rule` is in its chain.
    fn has_rule(&self, rule: &Rule) -> Result<bool, PortmapError>;
    /// Inserts `rule` first in its chain.
    fn insert_first(&self, rule: &Rule) -> Result<(), PortmapError>;
    /// Feeds `script` to `iptables-restore --noflush` (one transaction).
    fn restore(&self, script: &str) -> Result<(), PortmapError>;
    /// Turns on IPv4 forwarding (DNATed traffic from other hosts is forwarded).
    fn enable_forwarding(&self) -> Result<bool, PortmapError>;
}

/// The management port's address, for publishing ports; a clear error naming what to
/// configure when there is none.
pub fn mgmt_address(
    host: &dyn HostNet,
    mgmt_interface: Option<&str>,
) -> Result<Ipv4Addr, PortmapError> {
    let Some(iface) = mgmt_interface else {
        return Err(PortmapError::Mgmt(
            "publishing ports (-p) needs the host management port: start weft-agent with \
             --mgmt-switch SWITCH (and --cluster-subnets covering this network's subnet unless \
             it is SWITCH's)"
                .into(),
        ));
    };
    host.ipv4_of(iface)?.ok_or_else(|| {
        PortmapError::Mgmt(format!(
            "publishing ports (-p) needs the management port {iface:?} (--mgmt-interface), which \
             has no address yet; see the agent's log"
        ))
    })
}

/// Checks that the host reaches the container `ip` through the management link `iface`.
pub fn check_reachable(host: &dyn HostNet, iface: &str, ip: Ipv4Addr) -> Result<(), PortmapError> {
    match host.route_dev(ip)? {
        Some(dev) if dev == iface => Ok(()),
        other => Err(PortmapError::Mgmt(format!(
            "publishing ports (-p): the host routes the container's address {ip} through {} \
             rather than the management port {iface:?}; add the network's subnet to \
             --cluster-subnets (or use the --mgmt-switch switch for it)",
            other.map_or_else(|| "no link".to_string(), |d| format!("{d:?}"))
        ))),
    }
}

/// What [`sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    pub rules: usize,
    pub hooks_added: usize,
}

/// Makes Weft's chains hold exactly `rules` and hooks them in. With no rules and no chain yet
/// (a host that never published a port) nothing is created.
pub fn sync(host: &dyn HostNet, rules: &[Rule]) -> Result<Synced, PortmapError> {
    if rules.is_empty() && !host.has_chain()? {
        return Ok(Synced::default());
    }
    host.restore(&restore_script(rules))?;
    let mut added = 0;
    for h in hooks() {
        if !host.has_rule(&h)? {
            host.insert_first(&h)?;
            added += 1;
        }
    }
    if !rules.is_empty() {
        host.enable_forwarding()?;
    }
    Ok(Synced {
        rules: rules.len(),
        hooks_added: added,
    })
}

/// [`HostNet`] with `iptables`, `iptables-restore` and `ip` in the agent's own network
/// namespace (the host's), and /proc/sys.
#[derive(Debug, Clone, Default)]
pub struct Iptables;

fn run(prog: &str, args: &[String], stdin: Option<&str>) -> Result<(bool, String), PortmapError> {
    use std::io::Write;
    let cmd = || format!("{prog} {}", args.join(" "));
    let mut c = Command::new(prog);
    c.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
    let mut child = c.spawn().map_err(|e| PortmapError::Command {
        command: cmd(),
        reason: format!("cannot run: {e} (install iptables)"),
    })?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(input.as_bytes())
            .map_err(|e| PortmapError::Command {
                command: cmd(),
                reason: e.to_string(),
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| PortmapError::Command {
            command: cmd(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok((true, String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Ok((
            false,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

fn must(prog: &str, args: &[String], stdin: Option<&str>) -> Result<String, PortmapError> {
    match run(prog, args, stdin)? {
        (true, out) => Ok(out),
        (false, err) => Err(PortmapError::Command {
            command: format!("{prog} {}", args.join(" ")),
            reason: err,
        }),
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn rule_args(op: &str, r: &Rule) -> Vec<String> {
    let mut a = strings(&["-w", "5", "-t", r.table.name(), op, r.chain]);
    a.extend(r.spec.iter().cloned());
    a
}

impl HostNet for Iptables {
    fn ipv4_of(&self, iface: &str) -> Result<Option<Ipv4Addr>, PortmapError> {
        let (ok, out) = run(
            "ip",
            &strings(&["-j", "-4", "addr", "show", "dev", iface]),
            None,
        )?;
        if !ok {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        Ok(v.get(0)
            .and_then(|l| l.get("addr_info"))
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("local").and_then(|l| l.as_str()))
            .find_map(|s| s.parse().ok()))
    }

    fn route_dev(&self, ip: Ipv4Addr) -> Result<Option<String>, PortmapError> {
        let (ok, out) = run(
            "ip",
            &strings(&["-j", "route", "get", &ip.to_string()]),
            None,
        )?;
        if !ok {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        Ok(v.get(0)
            .and_then(|r| r.get("dev"))
            .and_then(|d| d.as_str())
            .map(str::to_string))
    }

    fn has_chain(&self) -> Result<bool, PortmapError> {
        // No iptables at all: no chain either (a host that publishes nothing needs none).
        Ok(run(
            "iptables",
            &strings(&["-w", "5", "-t", "nat", "-S", CHAIN]),
            None,
        )
        .is_ok_and(|(ok, _)| ok))
    }

    fn has_rule(&self, rule: &Rule) -> Result<bool, PortmapError> {
        Ok(run("iptables", &rule_args("-C", rule), None)?.0)
    }

    fn insert_first(&self, rule: &Rule) -> Result<(), PortmapError> {
        let mut a = rule_args("-I", rule);
        a.insert(6, "1".into());
        must("iptables", &a, None).map(|_| ())
    }

    fn restore(&self, script: &str) -> Result<(), PortmapError> {
        must(
            "iptables-restore",
            &strings(&["-w", "5", "--noflush"]),
            Some(script),
        )
        .map(|_| ())
    }

    fn enable_forwarding(&self) -> Result<bool, PortmapError> {
        let path = "/proc/sys/net/ipv4/ip_forward";
        let err = |e: std::io::Error| PortmapError::Command {
            command: format!("write 1 to {path}"),
            reason: e.to_string(),
        };
        if std::fs::read_to_string(path).map_err(err)?.trim() == "1" {
            return Ok(false);
        }
        std::fs::write(path, "1\n").map_err(err)?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn b(proto: &str, host_ip: &str, host_port: u16, port: u16) -> Binding {
        Binding {
            proto: proto.into(),
            host_ip: host_ip.into(),
            host_port,
            port,
        }
    }

    const EP: &str = "0123456789abcdef0123456789abcdef";
    const MGMT: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 2);

    #[test]
    fn one_binding_is_a_dnat_a_snat_and_two_accepts() {
        let bs = [b("tcp", "", 8080, 80)];
        let p = Published {
            endpoint: EP,
            ip: Ipv4Addr::new(10, 66, 0, 7),
            bindings: &bs,
        };
        let lines: Vec<String> = endpoint_rules(&p, MGMT)
            .iter()
            .map(|r| format!("{} {}", r.table.name(), r.restore_line()))
            .collect();
        assert_eq!(
            lines,
            [
                "nat -A WEFT-PORTMAP -p tcp -m tcp --dport 8080 -m comment --comment \"weft-cnm 0123456789ab\" -j DNAT --to-destination 10.66.0.7:80",
                "nat -A WEFT-PORTMAP-POST -d 10.66.0.7/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 8080 -m comment --comment \"weft-cnm 0123456789ab\" -j SNAT --to-source 10.66.0.2",
                "filter -A WEFT-PORTMAP -d 10.66.0.7/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -m comment --comment \"weft-cnm 0123456789ab\" -j ACCEPT",
                "filter -A WEFT-PORTMAP -s 10.66.0.7/32 -p tcp -m tcp --sport 80 -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment \"weft-cnm 0123456789ab\" -j ACCEPT",
            ]
        );
    }

    #[test]
    fn a_host_ip_narrows_the_dnat_and_udp_is_udp() {
        let bs = [b("udp", "172.31.0.11", 5353, 53)];
        let p = Published {
            endpoint: "ep",
            ip: Ipv4Addr::new(10, 66, 0, 8),
            bindings: &bs,
        };
        let r = endpoint_rules(&p, MGMT);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].restore_line(),
            "-A WEFT-PORTMAP -d 172.31.0.11/32 -p udp -m udp --dport 5353 -m comment --comment \"weft-cnm ep\" -j DNAT --to-destination 10.66.0.8:53"
        );
        assert!(r[1].spec.contains(&"udp".to_string()));
    }

    #[test]
    fn the_script_replaces_only_weft_chains() {
        let bs = [b("tcp", "", 8080, 80), b("tcp", "", 8443, 443)];
        let eps = [
            Published {
                endpoint: "a",
                ip: Ipv4Addr::new(10, 66, 0, 7),
                bindings: &bs,
            },
            Published {
                endpoint: "b",
                ip: Ipv4Addr::new(10, 66, 0, 9),
                bindings: &[],
            },
        ];
        let rules = plan(&eps, MGMT);
        assert_eq!(rules.len(), 8);
        let s = restore_script(&rules);
        assert!(s.starts_with("*nat\n:WEFT-PORTMAP - [0:0]\n:WEFT-PORTMAP-POST - [0:0]\n"));
        assert!(s.contains("COMMIT\n*filter\n:WEFT-PORTMAP - [0:0]\n"));
        assert!(s.ends_with("COMMIT\n"));
        for builtin in ["PREROUTING", "OUTPUT", "POSTROUTING", "FORWARD", "DOCKER"] {
            assert!(!s.contains(builtin), "{builtin} in {s}");
        }
        assert_eq!(s.matches("-j DNAT").count(), 2);
        // No rules: the chains are declared (and so emptied), nothing else.
        assert_eq!(
            restore_script(&[]),
            "*nat\n:WEFT-PORTMAP - [0:0]\n:WEFT-PORTMAP-POST - [0:0]\nCOMMIT\n*filter\n:WEFT-PORTMAP - [0:0]\nCOMMIT\n"
        );
    }

    #[test]
    fn hooks_match_local_addresses_but_not_loopback_from_the_host() {
        let h: Vec<String> = hooks()
            .iter()
            .map(|r| format!("{} {}", r.table.name(), r.restore_line()))
            .collect();
        assert_eq!(
            h,
            [
                "nat -A PREROUTING -m addrtype --dst-type LOCAL -j WEFT-PORTMAP",
                "nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j WEFT-PORTMAP",
                "nat -A POSTROUTING -j WEFT-PORTMAP-POST",
                "filter -A FORWARD -j WEFT-PORTMAP",
            ]
        );
    }

    /// A host that records what is done to it.
    #[derive(Default)]
    struct Fake {
        chain: RefCell<bool>,
        hooks: RefCell<Vec<String>>,
        restores: RefCell<Vec<String>>,
        forwarding: RefCell<bool>,
        addr: Option<Ipv4Addr>,
        dev: Option<String>,
    }

    impl HostNet for Fake {
        fn ipv4_of(&self, _: &str) -> Result<Option<Ipv4Addr>, PortmapError> {
            Ok(self.addr)
        }
        fn route_dev(&self, _: Ipv4Addr) -> Result<Option<String>, PortmapError> {
            Ok(self.dev.clone())
        }
        fn has_chain(&self) -> Result<bool, PortmapError> {
            Ok(*self.chain.borrow())
        }
        fn has_rule(&self, r: &Rule) -> Result<bool, PortmapError> {
            Ok(self.hooks.borrow().contains(&r.restore_line()))
        }
        fn insert_first(&self, r: &Rule) -> Result<(), PortmapError> {
            self.hooks.borrow_mut().push(r.restore_line());
            Ok(())
        }
        fn restore(&self, s: &str) -> Result<(), PortmapError> {
            *self.chain.borrow_mut() = true;
            self.restores.borrow_mut().push(s.to_string());
            Ok(())
        }
        fn enable_forwarding(&self) -> Result<bool, PortmapError> {
            let was = *self.forwarding.borrow();
            *self.forwarding.borrow_mut() = true;
            Ok(!was)
        }
    }

    #[test]
    fn sync_is_idempotent_and_creates_nothing_when_nothing_is_published() {
        let f = Fake::default();
        assert_eq!(sync(&f, &[]).unwrap(), Synced::default());
        assert!(f.restores.borrow().is_empty() && f.hooks.borrow().is_empty());
        assert!(!*f.forwarding.borrow());

        let bs = [b("tcp", "", 8080, 80)];
        let rules = plan(
            &[Published {
                endpoint: EP,
                ip: Ipv4Addr::new(10, 66, 0, 7),
                bindings: &bs,
            }],
            MGMT,
        );
        let s = sync(&f, &rules).unwrap();
        assert_eq!((s.rules, s.hooks_added), (4, 4));
        assert!(*f.forwarding.borrow());
        // Again (an agent restart): the same script, no hook added twice.
        let s = sync(&f, &rules).unwrap();
        assert_eq!((s.rules, s.hooks_added), (4, 0));
        assert_eq!(f.hooks.borrow().len(), 4);
        let r = f.restores.borrow();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], r[1]);
        drop(r);
        // Everything unpublished: the chains are emptied, the hooks stay.
        let s = sync(&f, &[]).unwrap();
        assert_eq!(s.rules, 0);
        assert_eq!(f.restores.borrow().last().unwrap(), &restore_script(&[]));
    }

    #[test]
    fn publishing_needs_a_management_port_with_an_address_and_a_route() {
        let f = Fake::default();
        let e = mgmt_address(&f, None).unwrap_err().to_string();
        assert!(e.contains("--mgmt-switch") && e.contains("-p"), "{e}");
        let e = mgmt_address(&f, Some("weft-mp0")).unwrap_err().to_string();
        assert!(
            e.contains("\"weft-mp0\"") && e.contains("no address"),
            "{e}"
        );
        let f = Fake {
            addr: Some(MGMT),
            dev: Some("mgmt0".into()),
            ..Fake::default()
        };
        assert_eq!(mgmt_address(&f, Some("weft-mp0")).unwrap(), MGMT);
        let ip = Ipv4Addr::new(10, 77, 0, 3);
        let e = check_reachable(&f, "weft-mp0", ip).unwrap_err().to_string();
        assert!(
            e.contains("10.77.0.3") && e.contains("\"mgmt0\"") && e.contains("--cluster-subnets"),
            "{e}"
        );
        let f = Fake {
            dev: Some("weft-mp0".into()),
            ..Fake::default()
        };
        assert!(check_reachable(&f, "weft-mp0", ip).is_ok());
    }
}
