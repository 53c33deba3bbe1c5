//! The agent's Prometheus metrics, served by [`weft_obs`] on `--metrics-listen` with
//! `/healthz` and `/readyz`. Series:
//! - `weft_agent_reconcile_duration_seconds{kind}`: one reconcile step (`full` reads the
//!   table back and diffs, `incremental` recompiles the changed owners, `resync` is the
//!   periodic drift check's diff in the main loop), bundle included; `read_back` is the
//!   periodic drift check's table read-back, in the background;
//! - `weft_agent_bundle_duration_seconds`, `weft_agent_bundle_ops` (size histogram) and
//!   `weft_agent_bundles_total{result}`;
//! - `weft_agent_flows_installed`, `weft_agent_groups_installed`, `weft_agent_meters_installed`;
//! - `weft_agent_resyncs_total` (periodic full diffs) and `weft_agent_drift_repairs_total`
//!   (changes a full diff had to make to a table the agent had already programmed);
//! - `weft_agent_packet_ins_total{handler,result}` (`handled` or `dropped`; pinctrl's counters);
//! - `weft_agent_cni_operations_total{command,result}` and
//!   `weft_agent_cni_operation_duration_seconds{command}`;
//! - stage timings of one change (issue 17): `weft_agent_view_update_seconds` (a view update
//!   decoded, applied and its owners recompiled), `weft_agent_persist_ids_seconds` (new ids
//!   written to OVSDB, at the same time as the bundle that uses them), `weft_agent_report_seconds` (one
//!   status report RPC, the ack).
//!
//! Everything here is a cheap atomic update; nothing waits on the scrape.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::pinctrl::Stats;

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `full` or `incremental`.
    pub kind: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Packet-in labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PacketInLabels {
    /// The pinctrl handler (`gateway-arp`, or `none` for packet-ins no handler took).
    pub handler: String,
    /// `handled` or `dropped`.
    pub result: String,
}

/// CNI labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CniLabels {
    /// `ADD`, `DEL`, `CHECK`, ...
    pub command: String,
    /// `ok` or `error`.
    pub result: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    /// CNI command.
    pub command: String,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every agent series.
pub struct Metrics {
    pub reconcile_seconds: Family<KindLabel, Histogram, fn() -> Histogram>,
    pub bundle_seconds: Histogram,
    pub bundle_ops: Histogram,
    pub bundles: Family<ResultLabel, Counter>,
    pub flows: Gauge,
    pub groups: Gauge,
    pub meters: Gauge,
    pub resyncs: Counter,
    pub drift_repairs: Counter,
    pub packet_ins: Family<PacketInLabels, Counter>,
    pub cni_ops: Family<CniLabels, Counter>,
    pub cni_seconds: Family<CommandLabel, Histogram, fn() -> Histogram>,
    pub view_update_seconds: Histogram,
    pub persist_ids_seconds: Histogram,
    pub report_seconds: Histogram,
    /// pinctrl counters already exported (they are cumulative per dispatcher).
    pin_seen: Mutex<Stats>,
}

fn fine() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

/// The process-wide agent metrics (registered on first use).
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = Metrics {
            reconcile_seconds: Family::new_with_constructor(latency),
            bundle_seconds: latency(),
            bundle_ops: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            bundles: Family::default(),
            flows: Gauge::default(),
            groups: Gauge::default(),
            meters: Gauge::default(),
            resyncs: Counter::default(),
            drift_repairs: Counter::default(),
            packet_ins: Family::default(),
            cni_ops: Family::default(),
            cni_seconds: Family::new_with_constructor(latency),
            view_update_seconds: fine(),
            persist_ids_seconds: fine(),
            report_seconds: fine(),
            pin_seen: Mutex::new(Stats::default()),
        };
        use weft_obs::register as r;
        r("weft_agent_reconcile_duration_seconds", "One reconcile step (diff and bundle), full or incremental.", m.reconcile_seconds.clone());
        r("weft_agent_bundle_duration_seconds", "Time to apply one OpenFlow bundle.", m.bundle_seconds.clone());
        r("weft_agent_bundle_ops", "Operations (flow, group and meter mods) per bundle.", m.bundle_ops.clone());
        r("weft_agent_bundles", "Bundles applied, by result.", m.bundles.clone());
        r("weft_agent_flows_installed", "Flows the agent has installed in the integration bridge.", m.flows.clone());
        r("weft_agent_groups_installed", "Groups the agent has installed.", m.groups.clone());
        r("weft_agent_meters_installed", "Meters the agent has installed.", m.meters.clone());
        r("weft_agent_resyncs", "Periodic full resyncs (table read back and diffed).", m.resyncs.clone());
        r("weft_agent_drift_repairs", "Changes a full diff made to a table the agent had already programmed (hand-deleted or foreign flows, groups, meters).", m.drift_repairs.clone());
        r("weft_agent_packet_ins", "Packet-ins by pinctrl handler, handled or dropped.", m.packet_ins.clone());
        r("weft_agent_cni_operations", "CNI operations by command and result.", m.cni_ops.clone());
        r("weft_agent_cni_operation_duration_seconds", "CNI operation latency.", m.cni_seconds.clone());
        r("weft_agent_view_update_seconds", "One view update decoded, applied and its owners recompiled.", m.view_update_seconds.clone());
        r("weft_agent_persist_ids_seconds", "New ids written to OVSDB (at the same time as the bundle that uses them).", m.persist_ids_seconds.clone());
        r("weft_agent_report_seconds", "One status report RPC (the ack).", m.report_seconds.clone());
        m
    })
}

/// Records one bundle: its size, how long it took and whether it committed.
pub fn bundle(ops: usize, started: Instant, ok: bool) {
    let m = metrics();
    m.bundle_ops.observe(ops as f64);
    m.bundle_seconds.observe(started.elapsed().as_secs_f64());
    let result = if ok { "ok" } else { "error" };
    m.bundles
        .get_or_create(&ResultLabel {
            result: result.into(),
        })
        .inc();
}

/// Records one reconcile step.
pub fn reconcile(full: bool, started: Instant) {
    let kind = if full { "full" } else { "incremental" };
    observe_reconcile(kind, started.elapsed());
}

/// Records one reconcile step of kind `kind`: `full`, `incremental`, `resync` (the periodic
/// drift check's diff and bundle in the main loop) or `read_back` (its background read-back).
pub fn observe_reconcile(kind: &str, took: std::time::Duration) {
    metrics()
        .reconcile_seconds
        .get_or_create(&KindLabel { kind: kind.into() })
        .observe(took.as_secs_f64());
}

/// What is installed now.
pub fn installed(flows: usize, groups: usize, meters: usize) {
    let m = metrics();
    m.flows.set(flows as i64);
    m.groups.set(groups as i64);
    m.meters.set(meters as i64);
}

/// One CNI operation.
pub fn cni(command: &str, started: Instant, ok: bool) {
    let m = metrics();
    let result = if ok { "ok" } else { "error" };
    m.cni_ops
        .get_or_create(&CniLabels {
            command: command.into(),
            result: result.into(),
        })
        .inc();
    m.cni_seconds
        .get_or_create(&CommandLabel {
            command: command.into(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Every packet-in dropped: malformed or unhandled, and lost in the channel's queue.
fn dropped(s: &Stats) -> u64 {
    s.dropped() + s.queue_dropped + s.undecodable
}

/// How much each packet-in series grew from `seen` to `now` (pure). A dispatcher restart
/// (counters back below what was seen) counts `now` whole.
pub fn packet_in_growth(seen: &Stats, now: &Stats) -> [(&'static str, &'static str, u64); 4] {
    let grow = |a: u64, b: u64| if b >= a { b - a } else { b };
    [
        ("gateway-arp", "handled", grow(seen.answered, now.answered)),
        (
            "acl-reject",
            "handled",
            grow(seen.acl_rejected, now.acl_rejected),
        ),
        ("acl-log", "handled", grow(seen.acl_logged, now.acl_logged)),
        ("none", "dropped", grow(dropped(seen), dropped(now))),
    ]
}

/// Exports pinctrl's counters (called when they change).
pub fn packet_ins(now: &Stats) {
    let m = metrics();
    let Ok(mut seen) = m.pin_seen.lock() else {
        return;
    };
    for (handler, result, n) in packet_in_growth(&seen, now) {
        if n > 0 {
            m.packet_ins
                .get_or_create(&PacketInLabels {
                    handler: handler.into(),
                    result: result.into(),
                })
                .inc_by(n);
        }
    }
    *seen = now.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_in_growth_survives_a_dispatcher_restart() {
        let a = Stats {
            answered: 5,
            ..Default::default()
        };
        let b = Stats {
            answered: 7,
            ..Default::default()
        };
        assert_eq!(packet_in_growth(&a, &b)[0].2, 2);
        let restarted = Stats {
            answered: 1,
            ..Default::default()
        };
        assert_eq!(packet_in_growth(&b, &restarted)[0].2, 1);
    }

    #[test]
    fn series_are_registered_with_conventional_names() {
        bundle(3, Instant::now(), true);
        reconcile(true, Instant::now());
        installed(10, 2, 1);
        let text = weft_obs::encode();
        for s in [
            "weft_agent_bundle_duration_seconds_bucket",
            "weft_agent_bundles_total{result=\"ok\"}",
            "weft_agent_reconcile_duration_seconds_count{kind=\"full\"}",
            "weft_agent_flows_installed 10",
            "weft_agent_resyncs_total",
            "weft_agent_drift_repairs_total",
        ] {
            assert!(text.contains(s), "{s} missing in\n{text}");
        }
    }
}
