//! OVSDB drift repair: the OVSDB state the agent owns (the integration bridge's settings,
//! the tunnel ports, the bridge-mapping patch ports) is monitored, and put back as soon as
//! anything changes it, not only at start: a tunnel port deleted by hand, or a `fail_mode`
//! set by hand, is repaired within a few hundred milliseconds.
//!
//! One reconnecting OVSDB session monitors `Bridge`, `Port` and `Interface` (only the columns
//! the agent owns). [`needs_check`] (pure) picks the changes that may be drift: a change to
//! the integration bridge's (or a provider bridge's) row, or to a port or interface row
//! named like one of ours, before or after (a deletion too). Such changes, and every
//! reconnect (an ovsdb-server restart), run the same idempotent `ensure` calls as start-up
//! ([`crate::agent`]'s bridge setup), which fix only what differs. After each pass the main
//! loop gets a [`Repaired`] with the tunnel ofports and runs a full read-back, diff and
//! bundle (a re-created tunnel port has a new ofport; a `fail_mode` change flushed flows).
//! A pod's VIF coming or going triggers nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};
use weft_ovsdb::{
    Endpoint, MonitorRequest, Row, RowChange, RowExt, Session, SessionConfig, SessionEvent,
};

use crate::config::AgentConfig;
use crate::pipeline::Encap;

/// What a repair pass found: the tunnel ofports now. Sent after every pass: OVS may have
/// dropped flows meanwhile (a `fail_mode` change flushes the table), so the main loop runs
/// a full read-back, diff and bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Tunnel ofport by encapsulation.
    pub tunnels: BTreeMap<Encap, u32>,
}

/// How long changes are gathered before one repair pass (a `ovs-vsctl` command is often
/// several row changes).
const SETTLE: Duration = Duration::from_millis(50);

/// Names of the ports and interfaces the agent owns: the tunnel ports and the patch ports.
pub fn owned_names(config: &AgentConfig) -> Vec<String> {
    let mut v: Vec<String> = weft_ovsdb::vswitch::Encap::ALL
        .iter()
        .map(|e| e.port_name().to_string())
        .collect();
    for m in &config.bridge_mappings {
        v.push(format!("patch-{}-to-{}", config.bridge, m.bridge));
        v.push(format!("patch-{}-to-{}", m.bridge, config.bridge));
    }
    v
}

/// Pure: whether `changes` may have touched what the agent owns: a row of the integration
/// or a provider bridge (`bridges`), or a port or interface named like one of ours
/// (`owned`), before or after the change (a deleted row still carries its old name).
pub fn needs_check(changes: &[RowChange], bridges: &[String], owned: &[String]) -> bool {
    changes.iter().any(|c| {
        let name = |r: &Option<Row>| {
            r.as_ref()
                .and_then(|r| r.str_col("name").map(str::to_string))
        };
        let names = [name(&c.old), name(&c.new)];
        let set = match c.table.as_str() {
            "Bridge" => bridges,
            "Port" | "Interface" => owned,
            _ => return false,
        };
        names.iter().flatten().any(|n| set.contains(n))
    })
}

/// Starts the drift watch; repairs are reported on `tx` when the tunnel ofports change.
pub fn spawn(
    config: AgentConfig,
    endpoint: Endpoint,
    tunnels: BTreeMap<Encap, u32>,
    tx: mpsc::Sender<Repaired>,
) -> JoinHandle<()> {
    tokio::spawn(run(config, endpoint, tunnels, tx).instrument(tracing::info_span!("drift")))
}

async fn run(
    config: AgentConfig,
    endpoint: Endpoint,
    mut tunnels: BTreeMap<Encap, u32>,
    tx: mpsc::Sender<Repaired>,
) {
    let owned = owned_names(&config);
    let mut bridges = vec![config.bridge.clone()];
    bridges.extend(config.bridge_mappings.iter().map(|m| m.bridge.clone()));
    let cfg = SessionConfig::new(endpoint.clone(), "Open_vSwitch")
        .monitor(
            "Bridge",
            MonitorRequest::columns([
                "name",
                "fail_mode",
                "datapath_type",
                "protocols",
                "other_config",
            ]),
        )
        .monitor("Port", MonitorRequest::columns(["name", "interfaces"]))
        .monitor(
            "Interface",
            MonitorRequest::columns(["name", "type", "options"]),
        );
    let (_session, mut events): (Session, _) = Session::start(cfg);
    let mut first = true;
    while let Some(ev) = events.recv().await {
        let check = match ev {
            // The first connect is start-up, which just set everything up; a reconnect
            // (ovsdb-server restarted, perhaps with another database) is checked.
            SessionEvent::Connected => !std::mem::take(&mut first),
            SessionEvent::Changes(ch) => needs_check(&ch, &bridges, &owned),
            SessionEvent::Disconnected { reason } => {
                debug!(%reason, "drift watch disconnected; reconnecting");
                false
            }
        };
        if !check {
            continue;
        }
        // Let the rest of the same change arrive, then check once.
        tokio::time::sleep(SETTLE).await;
        while let Ok(ev) = events.try_recv() {
            if let SessionEvent::Disconnected { .. } = ev {
                break;
            }
        }
        match crate::agent::ensure_owned_state(&config, &endpoint).await {
            Ok(setup) => {
                if setup.tunnels != tunnels {
                    info!(before = ?tunnels, after = ?setup.tunnels, "tunnel ports repaired with new ofports");
                    tunnels = setup.tunnels.clone();
                }
                if tx
                    .send(Repaired {
                        tunnels: setup.tunnels,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "OVSDB drift repair failed; retrying on the next change"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_ovsdb::{Atom, Datum};

    fn row(name: &str) -> Row {
        [(
            "name".to_string(),
            Datum::Set(vec![Atom::String(name.to_string())]),
        )]
        .into()
    }

    fn change(table: &str, old: Option<Row>, new: Option<Row>) -> RowChange {
        RowChange {
            table: table.into(),
            uuid: weft_ovsdb::Uuid::parse("00000000-0000-0000-0000-000000000001").unwrap(),
            old,
            new,
        }
    }

    #[test]
    fn only_our_rows_and_the_bridge_trigger_a_check() {
        let owned = vec!["weft-geneve".to_string()];
        let br = vec!["br-int".to_string()];
        let chk = |c: RowChange| needs_check(&[c], &br, &owned);
        assert!(chk(change(
            "Bridge",
            Some(row("br-int")),
            Some(row("br-int"))
        )));
        assert!(!chk(change("Bridge", None, Some(row("br-other")))));
        assert!(chk(change(
            "Port",
            Some(row("weft-geneve")),
            Some(row("weft-geneve"))
        )));
        // A deleted row still names itself.
        assert!(chk(change("Port", Some(row("weft-geneve")), None)));
        // A pod's VIF appearing or going is not drift.
        assert!(!chk(change("Interface", None, Some(row("veth-p1")))));
        assert!(!chk(change("Port", Some(row("veth-p1")), None)));
        assert!(!needs_check(&[], &br, &owned));
    }
}
