//! Logical switch ports: `lsp-add`, `lsp-add-batch`, `lsp-del`, `lsp-list` and the
//! `lsp-set-*` / `lsp-get-*` commands.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::{
    delete, insert, one_reply, quiet_text, render_revision, result_kind, set_or_clear, set_scalar,
    sorted_map, update, Call, CmdError, Noun, Outcome, PlanCtx, Read, Reply, Step, Sugar, Write,
};
use crate::args::{EnabledArg, Format};
use crate::format::{json_text, lines, render_table, Cell, Out, Table};
use crate::json;

pub const KIND: &str = "Logical_Switch_Port";

#[derive(Debug, Clone, Subcommand)]
pub enum PortCmd {
    /// Add a port to a switch.
    LspAdd {
        /// Switch name.
        switch: String,
        /// Port name (unique across all switches).
        port: String,
        /// A port of that name already existing (on this switch) is not an error.
        #[arg(long)]
        may_exist: bool,
    },
    /// Add many ports to a switch in one call (one etcd transaction: all or nothing).
    LspAddBatch {
        /// Switch name.
        switch: String,
        /// Port names (unique across all switches).
        #[arg(value_name = "PORT", required = true)]
        ports: Vec<String>,
        /// Give every port the address `dynamic` (MAC and IP allocated from the subnet).
        #[arg(long)]
        dynamic: bool,
        /// Ports that already exist on SWITCH are left unchanged; the others are created.
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a port.
    LspDel {
        /// Port name.
        port: String,
        /// A missing port is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List the ports of a switch.
    LspList {
        /// Switch name.
        switch: String,
    },
    /// Replace a port's addresses; no ADDR clears them.
    LspSetAddresses {
        /// Port name.
        port: String,
        /// Each one "MAC IP...", `dynamic` or `unknown` (quote entries that contain spaces).
        #[arg(value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Print a port's addresses, one entry per line (`dynamic` resolved to "MAC IP").
    LspGetAddresses {
        /// Port name.
        port: String,
    },
    /// Replace a port's port-security entries; no ADDR turns anti-spoofing off.
    LspSetPortSecurity {
        /// Port name.
        port: String,
        /// Each one "MAC [IP[/PREFIX]...]" (quote entries that contain spaces).
        #[arg(value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Print a port's port-security entries, one per line.
    LspGetPortSecurity {
        /// Port name.
        port: String,
    },
    /// Enable or disable a port (a disabled port's traffic is dropped).
    LspSetEnabled {
        /// Port name.
        port: String,
        /// New state.
        #[arg(value_enum)]
        state: EnabledArg,
    },
    /// Print `enabled` or `disabled`.
    LspGetEnabled {
        /// Port name.
        port: String,
    },
    /// Print `up` or `down`.
    LspGetUp {
        /// Port name.
        port: String,
    },
    /// Set a port's type ("" for a VIF, `router`, ...).
    LspSetType {
        /// Port name.
        port: String,
        /// New type (`""` clears it).
        #[arg(value_name = "TYPE")]
        port_type: String,
    },
    /// Print a port's type (an empty line for a VIF).
    LspGetType {
        /// Port name.
        port: String,
    },
    /// Replace a port's options with KEY=VALUE pairs; none clears them.
    LspSetOptions {
        /// Port name.
        port: String,
        /// Options, each KEY=VALUE (e.g. router-port=lrp1).
        #[arg(value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
    /// Print a port's options, one KEY=VALUE per line, sorted by key.
    LspGetOptions {
        /// Port name.
        port: String,
    },
    /// Print the name of the switch the port is on.
    LspGetLs {
        /// Port name.
        port: String,
    },
}

/// Which part of a port a `lsp-get-*` command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortField {
    Addresses,
    PortSecurity,
    Up,
    Enabled,
    Type,
    Options,
    Switch,
}

impl Noun for PortCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        let opts = |may_exist, if_exists| Some(ctx.write_options(may_exist, if_exists));
        Ok(match self {
            PortCmd::LspAdd {
                switch,
                port,
                may_exist,
            } => {
                let p = new_port(switch, port, Vec::new());
                Step::Write(Box::new(Write {
                    ops: vec![insert(
                        pb::object::Kind::LogicalSwitchPort(p.clone()),
                        *may_exist,
                    )],
                    sugar: Some(Sugar::CreatePort(pb::CreatePortRequest {
                        port: Some(p),
                        options: opts(*may_exist, false),
                    })),
                    render: Box::new(render_port_reply),
                }))
            }
            PortCmd::LspAddBatch {
                switch,
                ports,
                dynamic,
                may_exist,
            } => {
                let addresses = if *dynamic {
                    vec!["dynamic".to_string()]
                } else {
                    Vec::new()
                };
                let ports: Vec<pb::LogicalSwitchPort> = ports
                    .iter()
                    .map(|p| new_port(switch, p, addresses.clone()))
                    .collect();
                Step::Write(Box::new(Write {
                    ops: ports
                        .iter()
                        .map(|p| insert(pb::object::Kind::LogicalSwitchPort(p.clone()), *may_exist))
                        .collect(),
                    sugar: Some(Sugar::CreatePorts(pb::CreatePortsRequest {
                        ports,
                        options: opts(*may_exist, false),
                    })),
                    render: Box::new(render_ports_reply),
                }))
            }
            PortCmd::LspDel { port, if_exists } => Step::Write(Box::new(Write {
                ops: vec![delete(KIND, port, *if_exists)],
                sugar: Some(Sugar::DeletePort(pb::DeleteRequest {
                    name: port.clone(),
                    options: opts(false, *if_exists),
                })),
                render: Box::new(render_revision),
            })),
            PortCmd::LspList { switch } => Step::Read(Read {
                calls: vec![Call::ListPorts(switch.clone())],
                render: Box::new(render_list),
            }),
            PortCmd::LspSetAddresses { port, addresses } => Step::Write(Box::new(Write {
                ops: vec![update(
                    KIND,
                    port,
                    vec![set_or_clear("addresses", addresses.clone())],
                    false,
                )],
                sugar: Some(Sugar::SetPortAddresses(pb::SetPortAddressesRequest {
                    port: port.clone(),
                    addresses: addresses.clone(),
                    options: opts(false, false),
                })),
                render: Box::new(render_port_reply),
            })),
            PortCmd::LspSetPortSecurity { port, addresses } => Step::Write(Box::new(Write {
                ops: vec![update(
                    KIND,
                    port,
                    vec![set_or_clear("port_security", addresses.clone())],
                    false,
                )],
                sugar: Some(Sugar::SetPortSecurity(pb::SetPortSecurityRequest {
                    port: port.clone(),
                    port_security: addresses.clone(),
                    options: opts(false, false),
                })),
                render: Box::new(render_port_reply),
            })),
            PortCmd::LspSetEnabled { port, state } => Step::Write(Box::new(Write {
                ops: vec![update(
                    KIND,
                    port,
                    vec![set_scalar("enabled", state.as_bool().to_string())],
                    false,
                )],
                sugar: Some(Sugar::SetPortEnabled(pb::SetPortEnabledRequest {
                    port: port.clone(),
                    enabled: state.as_bool(),
                    options: opts(false, false),
                })),
                render: Box::new(render_port_reply),
            })),
            PortCmd::LspSetType { port, port_type } => Step::Write(Box::new(Write {
                ops: vec![update(
                    KIND,
                    port,
                    vec![set_scalar("type", port_type.clone())],
                    false,
                )],
                sugar: None,
                render: Box::new(render_port_reply),
            })),
            PortCmd::LspSetOptions { port, options } => {
                for o in options {
                    if !o.contains('=') || o.starts_with('=') {
                        return Err(CmdError::Usage {
                            command: "lsp-set-options",
                            reason: format!("option {o:?} is not KEY=VALUE"),
                        });
                    }
                }
                Step::Write(Box::new(Write {
                    ops: vec![update(
                        KIND,
                        port,
                        vec![set_or_clear("options", options.clone())],
                        false,
                    )],
                    sugar: None,
                    render: Box::new(render_port_reply),
                }))
            }
            PortCmd::LspGetAddresses { port } => get(port, PortField::Addresses),
            PortCmd::LspGetPortSecurity { port } => get(port, PortField::PortSecurity),
            PortCmd::LspGetEnabled { port } => get(port, PortField::Enabled),
            PortCmd::LspGetUp { port } => get(port, PortField::Up),
            PortCmd::LspGetType { port } => get(port, PortField::Type),
            PortCmd::LspGetOptions { port } => get(port, PortField::Options),
            PortCmd::LspGetLs { port } => get(port, PortField::Switch),
        })
    }
}

fn new_port(switch: &str, name: &str, addresses: Vec<String>) -> pb::LogicalSwitchPort {
    pb::LogicalSwitchPort {
        name: name.to_string(),
        switch_name: switch.to_string(),
        addresses,
        enabled: true,
        ..Default::default()
    }
}

/// A `lsp-get-*`: GetPort, print one field (or, as JSON, the whole port).
fn get(port: &str, field: PortField) -> Step {
    Step::Read(Read {
        calls: vec![Call::GetPort(port.to_string())],
        render: Box::new(move |replies, out| {
            let Reply::Port(p) = one_reply(replies)? else {
                return Err(CmdError::MalformedReply("lsp-get: not a port"));
            };
            if out.json() {
                return Ok(json_text(&json::Port::from(p), out)?);
            }
            Ok(lines(&port_field(p, field)))
        }),
    })
}

fn port_of(r: &pb::OpResult) -> Option<json::Port> {
    match result_kind(r)? {
        pb::object::Kind::LogicalSwitchPort(p) => Some(json::Port::from(p)),
        _ => None,
    }
}

/// lsp-add, lsp-set-*: nothing, or `{"revision", "port"}` (the PortReply shape).
fn render_port_reply(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let port = o.results.first().and_then(port_of);
    Ok(json_text(
        &json::PortReply {
            revision: o.revision,
            port,
        },
        out,
    )?)
}

/// lsp-add-batch: nothing, or `{"revision", "ports"}` (the CreatePortsReply shape).
fn render_ports_reply(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    Ok(json_text(
        &json::CreatePortsReply {
            revision: o.revision,
            ports: o.results.iter().filter_map(port_of).collect(),
        },
        out,
    )?)
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let Reply::Ports(r) = one_reply(replies)? else {
        return Err(CmdError::MalformedReply("lsp-list: not a port list"));
    };
    if out.json() {
        return Ok(json_text(&json::ListPortsReply::from(r), out)?);
    }
    Ok(render_table(&ports_table(&r.ports), out, Format::Table)?)
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
        PortField::Type => vec![port.r#type.clone()],
        PortField::Options => sorted_map(&port.options)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        PortField::Switch => vec![port.switch_name.clone()],
    }
}

/// Addresses as one cell: entries joined by ", ", `dynamic` followed by its allocation.
fn addresses_cell(p: &pb::LogicalSwitchPort) -> String {
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

/// NAME UP CHASSIS ADDRESSES.
pub fn ports_table(ports: &[pb::LogicalSwitchPort]) -> Table {
    let mut t = Table::new(&["NAME", "UP", "CHASSIS", "ADDRESSES"]);
    for p in ports {
        t.rows.push(vec![
            Cell::text(&p.name),
            Cell::text(if p.up { "up" } else { "down" }),
            Cell::text(&p.chassis),
            Cell::text(addresses_cell(p)),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::WaitArg;
    use crate::cmd::testutil::*;
    use crate::cmd::{column_op, insert};
    use pb::column_op::Action;

    fn port(name: &str, addresses: &[&str]) -> pb::LogicalSwitchPort {
        pb::LogicalSwitchPort {
            name: name.into(),
            switch_name: "sw1".into(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            ..Default::default()
        }
    }

    fn wopts(may_exist: bool, if_exists: bool, hv: bool) -> Option<pb::WriteOptions> {
        Some(pb::WriteOptions {
            may_exist,
            if_exists,
            wait: if hv {
                pb::WaitMode::WaitHv
            } else {
                pb::WaitMode::WaitNone
            } as i32,
            timeout_ms: 0,
            ..Default::default()
        })
    }

    #[test]
    fn lsp_add_is_one_insert_or_create_port() {
        let w = write(&["--may-exist", "lsp-add", "sw1", "p1"]);
        assert_eq!(
            w.ops,
            vec![insert(
                pb::object::Kind::LogicalSwitchPort(port("p1", &[])),
                true
            )]
        );
        assert_eq!(
            w.sugar,
            Some(Sugar::CreatePort(pb::CreatePortRequest {
                port: Some(port("p1", &[])),
                options: wopts(true, false, false),
            }))
        );
    }

    #[test]
    fn lsp_add_batch_is_n_inserts() {
        let ctx = PlanCtx {
            wait: Some(WaitArg::Hv),
            timeout_ms: 0,
            ..Default::default()
        };
        let Step::Write(w) = step_with(
            &[
                "--may-exist",
                "lsp-add-batch",
                "sw1",
                "p1",
                "p2",
                "--dynamic",
            ],
            ctx,
        ) else {
            panic!()
        };
        let ports = vec![port("p1", &["dynamic"]), port("p2", &["dynamic"])];
        assert_eq!(
            w.ops,
            ports
                .iter()
                .map(|p| insert(pb::object::Kind::LogicalSwitchPort(p.clone()), true))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            w.sugar,
            Some(Sugar::CreatePorts(pb::CreatePortsRequest {
                ports: ports.clone(),
                options: wopts(true, false, true),
            }))
        );
        let res: Vec<pb::OpResult> = ports
            .into_iter()
            .map(|p| result(pb::object::Kind::LogicalSwitchPort(p)))
            .collect();
        let v = json(&render_write(&w, 4, &res, true));
        assert_eq!(v["ports"][1]["name"], "p2");
        assert_eq!(v["revision"], 4);
        assert_eq!(render_write(&w, 4, &res, false), "");
    }

    #[test]
    fn setters_are_updates() {
        let one = |args: &[&str], col: pb::ColumnOp| {
            let w = write(args);
            assert_eq!(
                w.ops,
                vec![update(KIND, "p1", vec![col], false)],
                "{args:?}"
            );
        };
        one(
            &[
                "lsp-set-addresses",
                "p1",
                "0a:00:00:00:00:01 10.0.0.2",
                "unknown",
            ],
            column_op(
                Action::Set,
                "addresses",
                None,
                vec!["0a:00:00:00:00:01 10.0.0.2".into(), "unknown".into()],
            ),
        );
        one(
            &["lsp-set-addresses", "p1"],
            column_op(Action::Clear, "addresses", None, vec![]),
        );
        one(
            &["lsp-set-port-security", "p1", "0a:00:00:00:00:01"],
            column_op(
                Action::Set,
                "port_security",
                None,
                vec!["0a:00:00:00:00:01".into()],
            ),
        );
        one(
            &["lsp-set-enabled", "p1", "disabled"],
            column_op(Action::Set, "enabled", None, vec!["false".into()]),
        );
        one(
            &["lsp-set-type", "p1", "router"],
            column_op(Action::Set, "type", None, vec!["router".into()]),
        );
        one(
            &["lsp-set-type", "p1", ""],
            column_op(Action::Set, "type", None, vec!["".into()]),
        );
        one(
            &["lsp-set-options", "p1", "router-port=lrp1", "a=b=c"],
            column_op(
                Action::Set,
                "options",
                None,
                vec!["router-port=lrp1".into(), "a=b=c".into()],
            ),
        );
        one(
            &["lsp-set-options", "p1"],
            column_op(Action::Clear, "options", None, vec![]),
        );
        let e = plan_err(&["lsp-set-options", "p1", "novalue"]);
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("\"novalue\" is not KEY=VALUE"),
            "{e}"
        );
    }

    #[test]
    fn sugar_keeps_todays_requests() {
        let w = write(&["lsp-set-addresses", "p1", "dynamic"]);
        assert_eq!(
            w.sugar,
            Some(Sugar::SetPortAddresses(pb::SetPortAddressesRequest {
                port: "p1".into(),
                addresses: vec!["dynamic".into()],
                options: wopts(false, false, false),
            }))
        );
        let w = write(&["lsp-set-enabled", "p1", "enabled"]);
        assert_eq!(
            w.sugar,
            Some(Sugar::SetPortEnabled(pb::SetPortEnabledRequest {
                port: "p1".into(),
                enabled: true,
                options: wopts(false, false, false),
            }))
        );
        let w = write(&["--if-exists", "lsp-del", "p1"]);
        assert_eq!(w.ops, vec![delete(KIND, "p1", true)]);
        assert!(write(&["lsp-set-type", "p1", "router"]).sugar.is_none());
    }

    #[test]
    fn getters_print_one_entry_per_line() {
        let mut p = port("p1", &["dynamic", "unknown"]);
        p.dynamic_addresses = "0a:00:00:00:00:05 10.0.0.5".into();
        p.port_security = vec![
            "0a:00:00:00:00:01 10.0.0.2/32".into(),
            "0a:00:00:00:00:02".into(),
        ];
        p.r#type = "router".into();
        p.options = [("router-port", "lrp1"), ("a", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let reply = [Reply::Port(p.clone())];
        let text = |args: &[&str]| {
            let r = read(args);
            assert_eq!(r.calls, vec![Call::GetPort("p1".into())]);
            render_read(&r, &reply, &out(false))
        };
        assert_eq!(
            text(&["lsp-get-addresses", "p1"]),
            "0a:00:00:00:00:05 10.0.0.5\nunknown\n"
        );
        assert_eq!(
            text(&["lsp-get-port-security", "p1"]),
            "0a:00:00:00:00:01 10.0.0.2/32\n0a:00:00:00:00:02\n"
        );
        assert_eq!(text(&["lsp-get-up", "p1"]), "down\n");
        assert_eq!(text(&["lsp-get-enabled", "p1"]), "enabled\n");
        assert_eq!(text(&["lsp-get-type", "p1"]), "router\n");
        assert_eq!(text(&["lsp-get-options", "p1"]), "a=1\nrouter-port=lrp1\n");
        assert_eq!(text(&["lsp-get-ls", "p1"]), "sw1\n");
        // Not (yet) allocated: the word, as ovn-nbctl prints it.
        p.dynamic_addresses.clear();
        assert_eq!(port_field(&p, PortField::Addresses), ["dynamic", "unknown"]);
        // A VIF's type is an empty line.
        assert_eq!(port_field(&port("p2", &[]), PortField::Type), [""]);
        // JSON is the whole port.
        let r = read(&["lsp-get-up", "p1"]);
        let v = json(&render_read(&r, &reply, &out(true)));
        assert_eq!(
            (v["name"].as_str(), v["up"].as_bool()),
            (Some("p1"), Some(false))
        );
        assert_eq!(v["type"], "router");
    }

    #[test]
    fn lsp_list_table() {
        let mut p1 = port("p1", &["0a:00:00:00:00:01 10.0.0.2"]);
        p1.up = true;
        p1.chassis = "host1".into();
        let mut p2 = port("p2", &["dynamic", "unknown"]);
        p2.dynamic_addresses = "0a:00:00:00:00:03 10.0.0.3".into();
        let r = read(&["lsp-list", "sw1"]);
        assert_eq!(r.calls, vec![Call::ListPorts("sw1".into())]);
        let reply = [Reply::Ports(pb::ListPortsReply {
            ports: vec![p1, p2, port("p3", &[])],
            revision: 1,
        })];
        assert_eq!(
            render_read(&r, &reply, &out(false)),
            "\
NAME  UP    CHASSIS  ADDRESSES
p1    up    host1    0a:00:00:00:00:01 10.0.0.2
p2    down  -        dynamic (0a:00:00:00:00:03 10.0.0.3), unknown
p3    down  -        -
"
        );
    }
}
