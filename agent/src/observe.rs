//! Wires the agent's observability into its event loop: `/metrics`, `/healthz` and `/readyz`
//! on `--metrics-listen` (through [`weft_obs`]) and the debug service on `--debug-listen`
//! ([`crate::debug`]). A bind failure of either is logged, never fatal: the data path does not
//! depend on them. `/readyz` turns ready once the first view snapshot is applied to OVS.
//! Start with [`Observe::start`]; the loop calls [`Observe::vifs`], [`Observe::applied`] and
//! [`Observe::resync`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};
use weft_ovsdb::vswitch::Vif;

use crate::config::AgentConfig;
use crate::debug::DebugHandle;
use crate::pinctrl::Stats;
use crate::reconcile::Reconciler;

/// The running observability endpoints.
pub struct Observe {
    pub debug: DebugHandle,
    ready: weft_obs::Readiness,
    /// What the chassis record advertises (`Chassis.debug_addr`), "" when not served.
    pub debug_addr: String,
    /// Where `/metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The address to advertise for a bound one: an unspecified IP (0.0.0.0) becomes the
/// chassis' encap IP, which other hosts reach (pure).
pub fn advertised(bound: SocketAddr, encap_ip: std::net::Ipv4Addr) -> String {
    if bound.ip().is_unspecified() {
        SocketAddr::from((encap_ip, bound.port())).to_string()
    } else {
        bound.to_string()
    }
}

impl Observe {
    /// Binds and starts both endpoints (as configured).
    pub async fn start(config: &AgentConfig) -> Observe {
        let debug = DebugHandle::new(
            &config.chassis,
            &config.encap_ip.to_string(),
            &config.bridge,
            config.ovs_rundir.clone(),
        );
        let ready = weft_obs::Readiness::new("no view snapshot applied to OVS yet");
        let _ = crate::metrics::metrics();
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics_listen {
            match weft_obs::bind(addr).await {
                Ok(l) => {
                    metrics_addr = l.local_addr().ok();
                    let bound = metrics_addr
                        .map(|a| advertised(a, config.encap_ip))
                        .unwrap_or_default();
                    debug.set_metrics_url(format!("http://{bound}/metrics"));
                    info!(url = %format!("http://{bound}/metrics"), "serving metrics, /healthz and /readyz");
                    tasks.push(tokio::spawn(weft_obs::serve(
                        l,
                        ready.clone(),
                        stopped(stop_rx.clone()),
                    )));
                }
                Err(e) => error!(error = %e, "metrics endpoint not served"),
            }
        }
        let mut debug_addr = String::new();
        if let Some(addr) = config.debug_listen {
            match crate::debug::bind(addr).await {
                Ok(l) => {
                    if let Ok(a) = l.local_addr() {
                        debug_addr = advertised(a, config.encap_ip);
                    }
                    info!(addr = %debug_addr, "serving the debug service (weft.v1.AgentDebug)");
                    let h = debug.clone();
                    let done = stopped(stop_rx.clone());
                    tasks.push(tokio::spawn(async move {
                        if let Err(e) = crate::debug::serve(l, h, done).await {
                            error!(error = %e, "debug service failed");
                        }
                    }));
                }
                Err(e) => error!(error = %e, "debug service not served"),
            }
        }
        Observe {
            debug,
            ready,
            debug_addr,
            metrics_addr,
            stop,
            tasks,
        }
    }

    /// The readiness `/readyz` serves (the CNI server's STATUS reads it).
    pub fn readiness(&self) -> weft_obs::Readiness {
        self.ready.clone()
    }

    /// A new VIF listing.
    pub fn vifs(&self, snapshot: &BTreeMap<String, Vif>) {
        let ports = snapshot
            .values()
            .filter(|v| !v.iface_id.is_empty())
            .filter_map(|v| Some((v.iface_id.clone(), (v.name.clone(), v.ofport?))))
            .collect();
        self.debug.publish_vifs(ports);
    }

    /// After a reconcile step that did not fail at the switch.
    pub fn applied(&self, r: &Reconciler) {
        let snapshot_applied = r
            .applied_state()
            .is_some_and(|(applied, error)| applied > 0 && error.is_empty())
            && r.desired().is_some();
        if snapshot_applied && !self.ready.is_ready() {
            info!(
                revision = r.view().revision(),
                "first view snapshot applied: ready"
            );
            self.ready.set(true, "");
        }
        self.debug.publish(r, snapshot_applied);
        if let Some(d) = r.desired() {
            crate::metrics::installed(d.flow_count(), d.group_count(), d.meter_count());
        }
    }

    /// A periodic resync tick (pinctrl's counters are exported as they change, see
    /// [`Observe::watch_pinctrl`]).
    pub fn resync(&self, _pin: &Stats) {
        crate::metrics::metrics().resyncs.inc();
    }

    /// Exports pinctrl's counters whenever they change (at most every 100 ms).
    pub fn watch_pinctrl(&mut self, mut rx: watch::Receiver<Stats>) {
        self.tasks.push(tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let now = rx.borrow_and_update().clone();
                crate::metrics::packet_ins(&now);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }));
    }

    /// Stops both endpoints.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_advertise_the_encap_ip() {
        let ip = "172.31.0.11".parse().unwrap();
        assert_eq!(
            advertised("0.0.0.0:7601".parse().unwrap(), ip),
            "172.31.0.11:7601"
        );
        assert_eq!(
            advertised("10.1.2.3:7601".parse().unwrap(), ip),
            "10.1.2.3:7601"
        );
    }
}
