//! Maps a parsed command line to exactly one northbound gRPC call. Pure: no I/O.
//!
//! [`build`] checks what the CLI can check on its own (which global flags a command accepts);
//! everything else (names, CIDRs, MACs, duplicates) is validated by the controller.

use std::time::Duration;

use thiserror::Error;
use weft_proto::v1::{
    CreatePortRequest, CreatePortsRequest, CreateSwitchRequest, DeleteRequest, ListPortsRequest,
    LogicalSwitch, LogicalSwitchPort, SetPortAddressesRequest, SetPortEnabledRequest,
    SetPortSecurityRequest, SyncRequest, WaitMode, WriteOptions,
};

use crate::args::{Cli, Command, EnabledArg, WaitArg};

/// How long the controller waits by default for `--wait=hv` (see WriteOptions.timeout_ms).
pub const SERVER_DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Extra time the client allows on top of the wait bound before giving up on a reply.
pub const CLIENT_SLACK: Duration = Duration::from_secs(10);

/// One northbound RPC with its request.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    CreateSwitch(CreateSwitchRequest),
    DeleteSwitch(DeleteRequest),
    ListSwitches,
    CreatePort(CreatePortRequest),
    CreatePorts(CreatePortsRequest),
    DeletePort(DeleteRequest),
    ListPorts(ListPortsRequest),
    SetPortAddresses(SetPortAddressesRequest),
    SetPortSecurity(SetPortSecurityRequest),
    SetPortEnabled(SetPortEnabledRequest),
    /// GetPort; `field` says which part of the port the command prints.
    GetPort {
        name: String,
        field: PortField,
    },
    ListChassis,
    DeleteChassis(DeleteRequest),
    Show,
    Sync(SyncRequest),
}

/// Which part of a port a `lsp-get-*` command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortField {
    Addresses,
    PortSecurity,
    Up,
    Enabled,
}

/// A command line the CLI itself rejects (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("option --{option} is not valid for command {command} (only for {valid})")]
    OptionNotValid {
        option: &'static str,
        command: &'static str,
        valid: &'static str,
    },
}

/// Builds the single call for `cli`.
pub fn build(cli: &Cli) -> Result<Call, RequestError> {
    let g = &cli.global;
    let cmd = &cli.command;
    let may_exist_ok = matches!(
        cmd,
        Command::LsAdd { .. } | Command::LspAdd { .. } | Command::LspAddBatch { .. }
    );
    let if_exists_ok = matches!(
        cmd,
        Command::LsDel { .. } | Command::LspDel { .. } | Command::ChassisDel { .. }
    );
    if g.may_exist && !may_exist_ok {
        return Err(RequestError::OptionNotValid {
            option: "may-exist",
            command: cmd.name(),
            valid: "ls-add, lsp-add, lsp-add-batch",
        });
    }
    if g.if_exists && !if_exists_ok {
        return Err(RequestError::OptionNotValid {
            option: "if-exists",
            command: cmd.name(),
            valid: "ls-del, lsp-del, chassis-del",
        });
    }
    let options = write_options(cli);
    let call = match cmd {
        Command::Show => Call::Show,
        Command::LsAdd {
            switch,
            subnet,
            vni,
            mtu,
        } => Call::CreateSwitch(CreateSwitchRequest {
            switch: Some(LogicalSwitch {
                name: switch.clone(),
                subnet: subnet.clone().unwrap_or_default(),
                vni: vni.unwrap_or(0),
                mtu: mtu.unwrap_or(0),
                other_config: Default::default(),
                ..Default::default()
            }),
            options: Some(options),
        }),
        Command::LsDel { switch } => Call::DeleteSwitch(DeleteRequest {
            name: switch.clone(),
            options: Some(options),
        }),
        Command::LsList => Call::ListSwitches,
        Command::LspAdd { switch, port } => Call::CreatePort(CreatePortRequest {
            port: Some(LogicalSwitchPort {
                name: port.clone(),
                switch_name: switch.clone(),
                enabled: true,
                ..Default::default()
            }),
            options: Some(options),
        }),
        Command::LspAddBatch {
            switch,
            ports,
            dynamic,
        } => Call::CreatePorts(CreatePortsRequest {
            ports: ports
                .iter()
                .map(|p| LogicalSwitchPort {
                    name: p.clone(),
                    switch_name: switch.clone(),
                    addresses: if *dynamic {
                        vec!["dynamic".to_string()]
                    } else {
                        Vec::new()
                    },
                    enabled: true,
                    ..Default::default()
                })
                .collect(),
            options: Some(options),
        }),
        Command::LspDel { port } => Call::DeletePort(DeleteRequest {
            name: port.clone(),
            options: Some(options),
        }),
        Command::LspList { switch } => Call::ListPorts(ListPortsRequest {
            switch_name: switch.clone(),
        }),
        Command::LspSetAddresses { port, addresses } => {
            Call::SetPortAddresses(SetPortAddressesRequest {
                port: port.clone(),
                addresses: addresses.clone(),
                options: Some(options),
            })
        }
        Command::LspGetAddresses { port } => Call::GetPort {
            name: port.clone(),
            field: PortField::Addresses,
        },
        Command::LspSetPortSecurity { port, addresses } => {
            Call::SetPortSecurity(SetPortSecurityRequest {
                port: port.clone(),
                port_security: addresses.clone(),
                options: Some(options),
            })
        }
        Command::LspGetPortSecurity { port } => Call::GetPort {
            name: port.clone(),
            field: PortField::PortSecurity,
        },
        Command::LspSetEnabled { port, state } => Call::SetPortEnabled(SetPortEnabledRequest {
            port: port.clone(),
            enabled: *state == EnabledArg::Enabled,
            options: Some(options),
        }),
        Command::LspGetEnabled { port } => Call::GetPort {
            name: port.clone(),
            field: PortField::Enabled,
        },
        Command::LspGetUp { port } => Call::GetPort {
            name: port.clone(),
            field: PortField::Up,
        },
        Command::ChassisList => Call::ListChassis,
        Command::ChassisDel { chassis } => Call::DeleteChassis(DeleteRequest {
            name: chassis.clone(),
            options: Some(options),
        }),
        Command::Sync { revision } => Call::Sync(SyncRequest {
            revision: revision.unwrap_or(0),
            options: Some(options),
        }),
    };
    Ok(call)
}

/// The wait mode this command line asks for: `--wait` if given; otherwise `sync` waits for
/// the chassis and every other command does not.
pub fn wait_mode(cli: &Cli) -> WaitMode {
    match (cli.global.wait, &cli.command) {
        (Some(WaitArg::Hv), _) => WaitMode::WaitHv,
        (Some(WaitArg::None), _) => WaitMode::WaitNone,
        (None, Command::Sync { .. }) => WaitMode::WaitHv,
        (None, _) => WaitMode::WaitNone,
    }
}

fn write_options(cli: &Cli) -> WriteOptions {
    WriteOptions {
        may_exist: cli.global.may_exist,
        if_exists: cli.global.if_exists,
        wait: wait_mode(cli) as i32,
        timeout_ms: cli
            .global
            .timeout
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(0),
    }
}

/// How long the client waits for the reply: the wait bound (`--timeout`, or the server's
/// default) plus [`CLIENT_SLACK`].
pub fn client_deadline(cli: &Cli) -> Duration {
    let bound = cli
        .global
        .timeout
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or(SERVER_DEFAULT_WAIT);
    bound + CLIENT_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::OutputFormat;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["weftctl"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v) {
            Ok(c) => c,
            Err(e) => panic!("parse {args:?}: {e}"),
        }
    }

    fn call(args: &[&str]) -> Call {
        match build(&cli(args)) {
            Ok(c) => c,
            Err(e) => panic!("build {args:?}: {e}"),
        }
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let mut v = vec!["weftctl"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v) {
            Ok(c) => panic!("{args:?} parsed: {c:?}"),
            Err(e) => e,
        }
    }

    fn opts(
        may_exist: bool,
        if_exists: bool,
        wait: WaitMode,
        timeout_ms: u32,
    ) -> Option<WriteOptions> {
        Some(WriteOptions {
            may_exist,
            if_exists,
            wait: wait as i32,
            timeout_ms,
        })
    }

    #[test]
    fn ls_add_minimal_and_full() {
        assert_eq!(
            call(&["ls-add", "sw1"]),
            Call::CreateSwitch(CreateSwitchRequest {
                switch: Some(LogicalSwitch {
                    name: "sw1".into(),
                    ..Default::default()
                }),
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(
            call(&[
                "--may-exist",
                "--wait=hv",
                "--timeout",
                "5",
                "ls-add",
                "sw1",
                "--subnet",
                "10.0.0.0/24",
                "--vni",
                "1001",
                "--mtu",
                "1400"
            ]),
            Call::CreateSwitch(CreateSwitchRequest {
                switch: Some(LogicalSwitch {
                    name: "sw1".into(),
                    subnet: "10.0.0.0/24".into(),
                    vni: 1001,
                    mtu: 1400,
                    other_config: Default::default(),
                    ..Default::default()
                }),
                options: opts(true, false, WaitMode::WaitHv, 5000),
            })
        );
    }

    #[test]
    fn global_flags_also_accepted_after_the_command() {
        assert_eq!(
            call(&["ls-add", "sw1", "--may-exist", "--wait", "hv"]),
            call(&["--may-exist", "--wait=hv", "ls-add", "sw1"])
        );
        let c = cli(&["ls-list", "-o", "json"]);
        assert_eq!(c.global.output, OutputFormat::Json);
    }

    #[test]
    fn ls_add_rejects_bad_numbers_and_empty_subnet() {
        for args in [
            &["ls-add", "sw1", "--vni", "abc"][..],
            &["ls-add", "sw1", "--vni", "0"],
            &["ls-add", "sw1", "--vni", "16777216"],
            &["ls-add", "sw1", "--vni", "-3"],
            &["ls-add", "sw1", "--mtu", "12"],
            &["ls-add", "sw1", "--subnet", ""],
            &["ls-add", "sw1", "--subnet", "  "],
            &["ls-add"],
        ] {
            let e = parse_err(args);
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let e = parse_err(&["ls-add", "sw1", "--vni", "abc"]).to_string();
        assert!(e.contains("--vni") && e.contains("abc"), "{e}");
        let e = parse_err(&["ls-add", "sw1", "--subnet", ""]).to_string();
        assert!(e.contains("--subnet must not be empty"), "{e}");
    }

    #[test]
    fn deletes_carry_if_exists() {
        assert_eq!(
            call(&["--if-exists", "ls-del", "sw1"]),
            Call::DeleteSwitch(DeleteRequest {
                name: "sw1".into(),
                options: opts(false, true, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(
            call(&["--if-exists", "chassis-del", "hv1"]),
            Call::DeleteChassis(DeleteRequest {
                name: "hv1".into(),
                options: opts(false, true, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(
            call(&["--if-exists", "--wait=hv", "lsp-del", "p1"]),
            Call::DeletePort(DeleteRequest {
                name: "p1".into(),
                options: opts(false, true, WaitMode::WaitHv, 0),
            })
        );
    }

    #[test]
    fn lsp_add_sets_switch_and_name() {
        assert_eq!(
            call(&["--may-exist", "lsp-add", "sw1", "p1"]),
            Call::CreatePort(CreatePortRequest {
                port: Some(LogicalSwitchPort {
                    name: "p1".into(),
                    switch_name: "sw1".into(),
                    enabled: true,
                    ..Default::default()
                }),
                options: opts(true, false, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(parse_err(&["lsp-add", "sw1"]).exit_code(), 2);
    }

    #[test]
    fn lsp_add_batch_builds_one_call() {
        let port = |n: &str, addrs: &[&str]| LogicalSwitchPort {
            name: n.into(),
            switch_name: "sw1".into(),
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            ..Default::default()
        };
        assert_eq!(
            call(&[
                "--may-exist",
                "--wait=hv",
                "lsp-add-batch",
                "sw1",
                "p1",
                "p2",
                "--dynamic"
            ]),
            Call::CreatePorts(CreatePortsRequest {
                ports: vec![port("p1", &["dynamic"]), port("p2", &["dynamic"])],
                options: opts(true, false, WaitMode::WaitHv, 0),
            })
        );
        assert_eq!(
            call(&["lsp-add-batch", "sw1", "p1"]),
            Call::CreatePorts(CreatePortsRequest {
                ports: vec![port("p1", &[])],
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(parse_err(&["lsp-add-batch", "sw1"]).exit_code(), 2);
    }

    #[test]
    fn reads_map_to_their_rpc() {
        assert_eq!(call(&["show"]), Call::Show);
        assert_eq!(call(&["ls-list"]), Call::ListSwitches);
        assert_eq!(call(&["chassis-list"]), Call::ListChassis);
        assert_eq!(
            call(&["lsp-list", "sw1"]),
            Call::ListPorts(ListPortsRequest {
                switch_name: "sw1".into()
            })
        );
        for (cmd, field) in [
            ("lsp-get-addresses", PortField::Addresses),
            ("lsp-get-port-security", PortField::PortSecurity),
            ("lsp-get-up", PortField::Up),
            ("lsp-get-enabled", PortField::Enabled),
        ] {
            assert_eq!(
                call(&[cmd, "p1"]),
                Call::GetPort {
                    name: "p1".into(),
                    field
                }
            );
            assert_eq!(parse_err(&[cmd]).exit_code(), 2);
        }
        // --wait is accepted and ignored by reads.
        assert_eq!(call(&["--wait=hv", "show"]), Call::Show);
    }

    #[test]
    fn set_addresses_keeps_each_argument_as_one_entry() {
        assert_eq!(
            call(&[
                "lsp-set-addresses",
                "p1",
                "0a:00:00:00:00:01 10.0.0.2",
                "unknown"
            ]),
            Call::SetPortAddresses(SetPortAddressesRequest {
                port: "p1".into(),
                addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into(), "unknown".into()],
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(
            call(&["--wait=hv", "lsp-set-addresses", "p1", "dynamic"]),
            Call::SetPortAddresses(SetPortAddressesRequest {
                port: "p1".into(),
                addresses: vec!["dynamic".into()],
                options: opts(false, false, WaitMode::WaitHv, 0),
            })
        );
        // No address clears.
        assert_eq!(
            call(&["lsp-set-addresses", "p1"]),
            Call::SetPortAddresses(SetPortAddressesRequest {
                port: "p1".into(),
                addresses: vec![],
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
    }

    #[test]
    fn set_port_security() {
        assert_eq!(
            call(&[
                "lsp-set-port-security",
                "p1",
                "0a:00:00:00:00:01 10.0.0.2/32"
            ]),
            Call::SetPortSecurity(SetPortSecurityRequest {
                port: "p1".into(),
                port_security: vec!["0a:00:00:00:00:01 10.0.0.2/32".into()],
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(
            call(&["lsp-set-port-security", "p1"]),
            Call::SetPortSecurity(SetPortSecurityRequest {
                port: "p1".into(),
                port_security: vec![],
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
    }

    #[test]
    fn set_enabled_takes_the_ovn_words() {
        assert_eq!(
            call(&["--wait=hv", "lsp-set-enabled", "p1", "disabled"]),
            Call::SetPortEnabled(SetPortEnabledRequest {
                port: "p1".into(),
                enabled: false,
                options: opts(false, false, WaitMode::WaitHv, 0),
            })
        );
        assert_eq!(
            call(&["lsp-set-enabled", "p1", "enabled"]),
            Call::SetPortEnabled(SetPortEnabledRequest {
                port: "p1".into(),
                enabled: true,
                options: opts(false, false, WaitMode::WaitNone, 0),
            })
        );
        assert_eq!(parse_err(&["lsp-set-enabled", "p1", "off"]).exit_code(), 2);
        assert_eq!(parse_err(&["lsp-set-enabled", "p1"]).exit_code(), 2);
    }

    #[test]
    fn sync_waits_for_chassis_unless_told_not_to() {
        assert_eq!(
            call(&["sync"]),
            Call::Sync(SyncRequest {
                revision: 0,
                options: opts(false, false, WaitMode::WaitHv, 0),
            })
        );
        assert_eq!(
            call(&["--wait=none", "--timeout=7", "sync", "--revision", "42"]),
            Call::Sync(SyncRequest {
                revision: 42,
                options: opts(false, false, WaitMode::WaitNone, 7000),
            })
        );
        assert_eq!(parse_err(&["sync", "--revision", "0"]).exit_code(), 2);
    }

    #[test]
    fn wait_and_timeout_values() {
        assert_eq!(parse_err(&["--wait=sb", "sync"]).exit_code(), 2);
        assert_eq!(parse_err(&["--timeout=0", "sync"]).exit_code(), 2);
        assert_eq!(parse_err(&["--timeout=x", "sync"]).exit_code(), 2);
        assert_eq!(
            client_deadline(&cli(&["--timeout=5", "sync"])),
            Duration::from_secs(5) + CLIENT_SLACK
        );
        assert_eq!(
            client_deadline(&cli(&["ls-list"])),
            SERVER_DEFAULT_WAIT + CLIENT_SLACK
        );
    }

    #[test]
    fn options_not_valid_for_the_command_are_rejected() {
        let e = build(&cli(&["--may-exist", "ls-del", "sw1"])).expect_err("rejected");
        assert_eq!(
            e.to_string(),
            "option --may-exist is not valid for command ls-del (only for ls-add, lsp-add, lsp-add-batch)"
        );
        let e = build(&cli(&["--if-exists", "ls-add", "sw1"])).expect_err("rejected");
        assert!(e.to_string().contains("--if-exists"), "{e}");
        assert!(build(&cli(&["--if-exists", "lsp-set-addresses", "p1"])).is_err());
        assert!(build(&cli(&["--may-exist", "show"])).is_err());
    }

    #[test]
    fn controller_flag_and_default() {
        // The env var is covered by the integration tests (process env is shared here).
        let c = cli(&["--controller", "10.1.2.3:9000", "show"]);
        assert_eq!(c.global.controller, "http://10.1.2.3:9000");
        assert_eq!(
            parse_err(&["--controller", "https://x:1", "show"]).exit_code(),
            2
        );
    }

    #[test]
    fn unknown_command_is_a_usage_error() {
        assert_eq!(parse_err(&["lr-add", "r1"]).exit_code(), 2);
        assert_eq!(parse_err(&[]).exit_code(), 2);
    }
}
