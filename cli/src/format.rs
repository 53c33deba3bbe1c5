//! Renders a northbound reply as text (`-o table`) or JSON (`-o json`). Pure: no I/O.
//!
//! Text follows ovn-nbctl: successful writes print nothing, `lsp-get-*` print one entry per
//! line, `show` prints an indented tree, lists print aligned columns with a header (nothing
//! at all when the list is empty). JSON is the whole reply message (see [`crate::json`]).

use weft_proto::v1 as pb;

use crate::args::OutputFormat;
use crate::json;
use crate::request::PortField;

/// The reply to one [`crate::request::Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// ls-add.
    Switch(pb::SwitchReply),
    /// ls-del, lsp-del, chassis-del, sync.
    Write(pb::WriteReply),
    /// ls-list.
    Switches(pb::ListSwitchesReply),
    /// lsp-add, lsp-set-addresses, lsp-set-port-security.
    Port(pb::PortReply),
    /// lsp-list.
    Ports(pb::ListPortsReply),
    /// lsp-add-batch.
    CreatedPorts(pb::CreatePortsReply),
    /// lsp-get-addresses, lsp-get-port-security, lsp-get-up.
    PortField(pb::LogicalSwitchPort, PortField),
    /// chassis-list.
    Chassis(pb::ListChassisReply),
    /// show.
    Show(pb::ShowReply),
}

/// Renders `reply`; the result is empty or ends with a newline.
pub fn render(reply: &Reply, format: OutputFormat) -> Result<String, serde_json::Error> {
    match format {
        OutputFormat::Table => Ok(text(reply)),
        OutputFormat::Json => {
            let mut s = to_json(reply)?;
            s.push('\n');
            Ok(s)
        }
    }
}

fn to_json(reply: &Reply) -> Result<String, serde_json::Error> {
    match reply {
        Reply::Switch(r) => serde_json::to_string_pretty(&json::SwitchReply::from(r)),
        Reply::Write(r) => serde_json::to_string_pretty(&json::WriteReply::from(r)),
        Reply::Switches(r) => serde_json::to_string_pretty(&json::ListSwitchesReply::from(r)),
        Reply::Port(r) => serde_json::to_string_pretty(&json::PortReply::from(r)),
        Reply::Ports(r) => serde_json::to_string_pretty(&json::ListPortsReply::from(r)),
        Reply::CreatedPorts(r) => serde_json::to_string_pretty(&json::CreatePortsReply::from(r)),
        Reply::PortField(p, _) => serde_json::to_string_pretty(&json::Port::from(p)),
        Reply::Chassis(r) => serde_json::to_string_pretty(&json::ListChassisReply::from(r)),
        Reply::Show(r) => serde_json::to_string_pretty(&json::ShowReply::from(r)),
    }
}

fn text(reply: &Reply) -> String {
    match reply {
        Reply::Switch(_) | Reply::Write(_) | Reply::Port(_) | Reply::CreatedPorts(_) => {
            String::new()
        }
        Reply::Switches(r) => switches_table(&r.switches),
        Reply::Ports(r) => ports_table(&r.ports),
        Reply::PortField(p, field) => lines(&port_field(p, *field)),
        Reply::Chassis(r) => chassis_table(&r.chassis),
        Reply::Show(r) => show(r),
    }
}

/// The lines a `lsp-get-*` command prints for `port`. A `dynamic` address entry is shown as
/// the allocated "MAC IP" (dynamic_addresses) when there is one, so scripts can use it.
pub fn port_field(port: &pb::LogicalSwitchPort, field: PortField) -> Vec<String> {
    match field {
        PortField::Addresses => port
            .addresses
            .iter()
            .map(|a| {
                if a.trim() == "dynamic" && !port.dynamic_addresses.is_empty() {
                    port.dynamic_addresses.clone()
                } else {
                    a.clone()
                }
            })
            .collect(),
        PortField::PortSecurity => port.port_security.clone(),
        PortField::Up => vec![if port.up { "up" } else { "down" }.to_string()],
        PortField::Enabled => vec![if port.enabled { "enabled" } else { "disabled" }.to_string()],
    }
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn num_or_dash(n: u32) -> String {
    if n == 0 {
        "-".to_string()
    } else {
        n.to_string()
    }
}

/// Aligned columns separated by two spaces, no trailing blanks; empty when `rows` is empty.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn switches_table(switches: &[pb::LogicalSwitch]) -> String {
    let rows: Vec<Vec<String>> = switches
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                num_or_dash(s.vni),
                dash(&s.subnet).to_string(),
                num_or_dash(s.mtu),
            ]
        })
        .collect();
    table(&["NAME", "VNI", "SUBNET", "MTU"], &rows)
}

/// Addresses as one cell: entries joined by ", ", `dynamic` followed by its allocation.
fn addresses_cell(p: &pb::LogicalSwitchPort) -> String {
    if p.addresses.is_empty() {
        return "-".to_string();
    }
    p.addresses
        .iter()
        .map(|a| {
            if a.trim() == "dynamic" && !p.dynamic_addresses.is_empty() {
                format!("dynamic ({})", p.dynamic_addresses)
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ports_table(ports: &[pb::LogicalSwitchPort]) -> String {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                if p.up { "up" } else { "down" }.to_string(),
                dash(&p.chassis).to_string(),
                addresses_cell(p),
            ]
        })
        .collect();
    table(&["NAME", "UP", "CHASSIS", "ADDRESSES"], &rows)
}

fn chassis_table(chassis: &[pb::Chassis]) -> String {
    let rows: Vec<Vec<String>> = chassis
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                dash(&c.encap_ip).to_string(),
                dash(&c.encap_types.join(",")).to_string(),
                dash(&c.datapath_type).to_string(),
                if c.alive { "alive" } else { "dead" }.to_string(),
                c.applied_revision.to_string(),
                dash(&c.version).to_string(),
                dash(&one_line(&c.last_error)).to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ENCAP_IP",
            "ENCAP",
            "DATAPATH",
            "STATE",
            "APPLIED",
            "VERSION",
            "LAST_ERROR",
        ],
        &rows,
    )
}

/// `["a", "b"]` with each entry JSON-quoted, as ovn-nbctl show prints sets of strings.
fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|s| serde_json::Value::String(s.clone()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn switch_line(s: &pb::LogicalSwitch) -> String {
    let mut attrs = vec![format!("vni {}", s.vni)];
    if !s.subnet.is_empty() {
        attrs.push(format!("subnet {}", s.subnet));
    }
    if s.mtu != 0 {
        attrs.push(format!("mtu {}", s.mtu));
    }
    format!("switch {} ({})\n", s.name, attrs.join(", "))
}

fn port_block(p: &pb::LogicalSwitchPort) -> String {
    let mut state = if p.up { "up" } else { "down" }.to_string();
    if !p.chassis.is_empty() {
        state.push_str(&format!(" on {}", p.chassis));
    }
    if !p.enabled {
        state.push_str(", disabled");
    }
    let mut out = format!("    port {} ({state})\n", p.name);
    if !p.r#type.is_empty() {
        out.push_str(&format!("        type: {}\n", p.r#type));
    }
    if !p.addresses.is_empty() {
        out.push_str(&format!(
            "        addresses: {}\n",
            quoted_list(&p.addresses)
        ));
    }
    if !p.dynamic_addresses.is_empty() {
        out.push_str(&format!(
            "        dynamic addresses: {}\n",
            quoted_list([&p.dynamic_addresses])
        ));
    }
    if !p.port_security.is_empty() {
        out.push_str(&format!(
            "        port security: {}\n",
            quoted_list(&p.port_security)
        ));
    }
    out
}

/// An agent's error on one line (newlines and tabs become spaces).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn chassis_line(c: &pb::Chassis) -> String {
    let mut attrs = vec![dash(&c.encap_ip).to_string()];
    attrs.extend(c.encap_types.iter().cloned());
    let mut line = format!(
        "chassis {} ({}) {} applied={}\n",
        c.name,
        attrs.join(", "),
        if c.alive { "alive" } else { "dead" },
        c.applied_revision
    );
    if !c.last_error.is_empty() {
        line.push_str(&format!(
            "    last error: {}\n",
            quoted_list([&one_line(&c.last_error)])
        ));
    }
    line
}

fn show(r: &pb::ShowReply) -> String {
    let mut out = String::new();
    for d in &r.switches {
        match &d.switch {
            Some(s) => out.push_str(&switch_line(s)),
            None => out.push_str("switch ?\n"),
        }
        for p in &d.ports {
            out.push_str(&port_block(p));
        }
    }
    for c in &r.chassis {
        out.push_str(&chassis_line(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(name: &str, vni: u32, subnet: &str, mtu: u32) -> pb::LogicalSwitch {
        pb::LogicalSwitch {
            name: name.into(),
            subnet: subnet.into(),
            vni,
            mtu,
            other_config: Default::default(),
            ..Default::default()
        }
    }

    fn port(name: &str, addresses: &[&str]) -> pb::LogicalSwitchPort {
        pb::LogicalSwitchPort {
            name: name.into(),
            switch_name: "sw1".into(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            ..Default::default()
        }
    }

    fn chassis(name: &str, ip: &str, alive: bool, applied: i64) -> pb::Chassis {
        pb::Chassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into()],
            datapath_type: "netdev".into(),
            version: "0.1.0".into(),
            applied_revision: applied,
            alive,
            last_error: String::new(),
            ..Default::default()
        }
    }

    fn table_of(r: Reply) -> String {
        match render(&r, OutputFormat::Table) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn json_of(r: Reply) -> serde_json::Value {
        let s = match render(&r, OutputFormat::Json) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(s.ends_with('\n'));
        match serde_json::from_str(&s) {
            Ok(v) => v,
            Err(e) => panic!("{e}: {s}"),
        }
    }

    #[test]
    fn show_matches_the_documented_layout() {
        let mut p1 = port("p1", &["0a:00:00:00:00:01 10.0.0.2"]);
        p1.up = true;
        p1.chassis = "host1".into();
        let mut p2 = port("p2", &["dynamic", "unknown"]);
        p2.dynamic_addresses = "0a:00:00:00:00:03 10.0.0.3".into();
        p2.port_security = vec!["0a:00:00:00:00:03 10.0.0.3".into()];
        p2.chassis = "host2".into();
        let mut p3 = port("p3", &[]);
        p3.enabled = false;
        let reply = pb::ShowReply {
            switches: vec![
                pb::SwitchDetail {
                    switch: Some(sw("sw1", 1001, "10.0.0.0/24", 0)),
                    ports: vec![p1, p2, p3],
                },
                pb::SwitchDetail {
                    switch: Some(sw("sw2", 7, "", 1400)),
                    ports: vec![],
                },
            ],
            chassis: vec![
                chassis("host1", "10.1.0.1", true, 123),
                chassis("host2", "10.1.0.2", false, 99),
            ],
            revision: 124,
        };
        let expected = "\
switch sw1 (vni 1001, subnet 10.0.0.0/24)
    port p1 (up on host1)
        addresses: [\"0a:00:00:00:00:01 10.0.0.2\"]
    port p2 (down on host2)
        addresses: [\"dynamic\", \"unknown\"]
        dynamic addresses: [\"0a:00:00:00:00:03 10.0.0.3\"]
        port security: [\"0a:00:00:00:00:03 10.0.0.3\"]
    port p3 (down, disabled)
switch sw2 (vni 7, mtu 1400)
chassis host1 (10.1.0.1, geneve) alive applied=123
chassis host2 (10.1.0.2, geneve) dead applied=99
";
        assert_eq!(table_of(Reply::Show(reply)), expected);
        assert_eq!(table_of(Reply::Show(pb::ShowReply::default())), "");
    }

    #[test]
    fn show_quotes_odd_characters() {
        let reply = pb::ShowReply {
            switches: vec![pb::SwitchDetail {
                switch: Some(sw("s", 1, "", 0)),
                ports: vec![port("p", &["a\"b"])],
            }],
            ..Default::default()
        };
        assert!(table_of(Reply::Show(reply)).contains(r#"addresses: ["a\"b"]"#));
    }

    #[test]
    fn writes_print_nothing_in_table_mode() {
        assert_eq!(table_of(Reply::Write(pb::WriteReply { revision: 5 })), "");
        assert_eq!(table_of(Reply::Switch(pb::SwitchReply::default())), "");
        assert_eq!(table_of(Reply::Port(pb::PortReply::default())), "");
    }

    #[test]
    fn write_replies_as_json() {
        assert_eq!(
            json_of(Reply::Write(pb::WriteReply { revision: 5 })),
            serde_json::json!({"revision": 5})
        );
        let v = json_of(Reply::Switch(pb::SwitchReply {
            revision: 9,
            switch: Some(sw("sw1", 1001, "10.0.0.0/24", 0)),
        }));
        assert_eq!(
            v,
            serde_json::json!({"revision": 9, "switch": {
                "name": "sw1", "subnet": "10.0.0.0/24", "vni": 1001, "mtu": 0, "other_config": {}
            }})
        );
        let mut p = port("p1", &["dynamic"]);
        p.dynamic_addresses = "0a:00:00:00:00:05 10.0.0.5".into();
        let v = json_of(Reply::Port(pb::PortReply {
            revision: 10,
            port: Some(p),
        }));
        assert_eq!(v["port"]["dynamic_addresses"], "0a:00:00:00:00:05 10.0.0.5");
        assert_eq!(v["port"]["type"], "");
        assert_eq!(v["port"]["addresses"], serde_json::json!(["dynamic"]));
        assert_eq!(v["revision"], 10);
    }

    #[test]
    fn json_round_trips_through_the_serde_mirror() {
        let reply = pb::ShowReply {
            switches: vec![pb::SwitchDetail {
                switch: Some(sw("sw1", 1, "10.0.0.0/24", 1500)),
                ports: vec![port("p1", &["unknown"])],
            }],
            chassis: vec![chassis("h", "10.1.0.1", true, 3)],
            revision: 4,
        };
        let s = match render(&Reply::Show(reply.clone()), OutputFormat::Json) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let back: json::ShowReply = match serde_json::from_str(&s) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(back, json::ShowReply::from(&reply));
        assert_eq!(back.chassis[0].applied_revision, 3);
    }

    #[test]
    fn ls_list_table_and_json() {
        let r = pb::ListSwitchesReply {
            switches: vec![
                sw("sw1", 1001, "10.0.0.0/24", 0),
                sw("backend-long-name", 2, "", 1400),
            ],
            revision: 3,
        };
        let expected = "\
NAME               VNI   SUBNET       MTU
sw1                1001  10.0.0.0/24  -
backend-long-name  2     -            1400
";
        assert_eq!(table_of(Reply::Switches(r.clone())), expected);
        let v = json_of(Reply::Switches(r));
        assert_eq!(v["switches"][1]["name"], "backend-long-name");
        assert_eq!(v["revision"], 3);
        assert_eq!(
            table_of(Reply::Switches(pb::ListSwitchesReply::default())),
            ""
        );
        assert_eq!(
            json_of(Reply::Switches(pb::ListSwitchesReply::default())),
            serde_json::json!({"switches": [], "revision": 0})
        );
    }

    #[test]
    fn lsp_list_table() {
        let mut p1 = port("p1", &["0a:00:00:00:00:01 10.0.0.2"]);
        p1.up = true;
        p1.chassis = "host1".into();
        let mut p2 = port("p2", &["dynamic", "unknown"]);
        p2.dynamic_addresses = "0a:00:00:00:00:03 10.0.0.3".into();
        let p3 = port("p3", &[]);
        let expected = "\
NAME  UP    CHASSIS  ADDRESSES
p1    up    host1    0a:00:00:00:00:01 10.0.0.2
p2    down  -        dynamic (0a:00:00:00:00:03 10.0.0.3), unknown
p3    down  -        -
";
        assert_eq!(
            table_of(Reply::Ports(pb::ListPortsReply {
                ports: vec![p1, p2, p3],
                revision: 1
            })),
            expected
        );
    }

    #[test]
    fn chassis_list_table() {
        let mut h2 = chassis("host2", "10.1.0.2", false, 7);
        h2.encap_types = vec!["geneve".into(), "vxlan".into()];
        h2.version = String::new();
        h2.last_error = "bundle failed:\n bad match".into();
        let expected = "\
NAME   ENCAP_IP  ENCAP         DATAPATH  STATE  APPLIED  VERSION  LAST_ERROR
host1  10.1.0.1  geneve        netdev    alive  123      0.1.0    -
host2  10.1.0.2  geneve,vxlan  netdev    dead   7        -        bundle failed: bad match
";
        assert_eq!(
            table_of(Reply::Chassis(pb::ListChassisReply {
                chassis: vec![chassis("host1", "10.1.0.1", true, 123), h2],
                revision: 1
            })),
            expected
        );
        let v = json_of(Reply::Chassis(pb::ListChassisReply {
            chassis: vec![chassis("host1", "10.1.0.1", true, 123)],
            revision: 1,
        }));
        assert_eq!(v["chassis"][0]["alive"], true);
        assert_eq!(
            v["chassis"][0]["encap_types"],
            serde_json::json!(["geneve"])
        );
    }

    #[test]
    fn get_addresses_resolves_dynamic() {
        let mut p = port("p1", &["dynamic", "unknown"]);
        p.dynamic_addresses = "0a:00:00:00:00:05 10.0.0.5".into();
        assert_eq!(
            table_of(Reply::PortField(p.clone(), PortField::Addresses)),
            "0a:00:00:00:00:05 10.0.0.5\nunknown\n"
        );
        // Not (yet) allocated: print the word, as ovn-nbctl does.
        p.dynamic_addresses.clear();
        assert_eq!(
            table_of(Reply::PortField(p.clone(), PortField::Addresses)),
            "dynamic\nunknown\n"
        );
        let static_port = port("p2", &["0a:00:00:00:00:01 10.0.0.2 10.0.0.3"]);
        assert_eq!(
            table_of(Reply::PortField(static_port, PortField::Addresses)),
            "0a:00:00:00:00:01 10.0.0.2 10.0.0.3\n"
        );
        assert_eq!(
            table_of(Reply::PortField(port("p3", &[]), PortField::Addresses)),
            ""
        );
    }

    #[test]
    fn get_port_security_and_up() {
        let mut p = port("p1", &[]);
        p.port_security = vec![
            "0a:00:00:00:00:01 10.0.0.2/32".into(),
            "0a:00:00:00:00:02".into(),
        ];
        assert_eq!(
            table_of(Reply::PortField(p.clone(), PortField::PortSecurity)),
            "0a:00:00:00:00:01 10.0.0.2/32\n0a:00:00:00:00:02\n"
        );
        assert_eq!(
            table_of(Reply::PortField(p.clone(), PortField::Up)),
            "down\n"
        );
        p.up = true;
        assert_eq!(table_of(Reply::PortField(p.clone(), PortField::Up)), "up\n");
        // JSON for lsp-get-* is the whole port.
        let v = json_of(Reply::PortField(p, PortField::Up));
        assert_eq!(v["up"], true);
        assert_eq!(v["name"], "p1");
    }
}
