//! Where the time of one more port goes (issue 17): the controller's and every agent's
//! Prometheus histograms are scraped before and after the timed single adds, and each stage's
//! `_sum` / `_count` growth is divided by the number of adds. Nothing is added to the hot path:
//! the series are the processes' own always-on metrics (an atomic add per observation).
//!
//! Start with [`Scrape::get`] and [`breakdown`]; [`render`] makes the Markdown table.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("invalid metrics URL {0:?} (want http://HOST:PORT/PATH)")]
    Url(String),
    #[error("scraping {url}: {source}")]
    Io { url: String, source: std::io::Error },
}

/// One process' histogram sums and counts: `name_sum{k=v,...}` / `name_count{...}` → value
/// (labels without quotes, in the order the process wrote them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape(pub HashMap<String, f64>);

impl Scrape {
    /// Pure: the `_sum` and `_count` series of a Prometheus text exposition.
    pub fn parse(text: &str) -> Scrape {
        let mut m = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = series.split('{').next().unwrap_or("");
            if !(name.ends_with("_sum") || name.ends_with("_count")) {
                continue;
            }
            if let Ok(v) = value.parse::<f64>() {
                m.insert(series.replace('"', ""), v);
            }
        }
        Scrape(m)
    }

    /// GETs `url` (plain HTTP/1.0) and parses it.
    pub fn get(url: &str) -> Result<Scrape, ScrapeError> {
        let bad = || ScrapeError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let addr: SocketAddr = host.parse().map_err(|_| bad())?;
        let io = |source| ScrapeError::Io {
            url: url.to_string(),
            source,
        };
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(io)?;
        write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(io)?;
        let mut body = String::new();
        s.read_to_string(&mut body).map_err(io)?;
        let body = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok(Scrape::parse(body))
    }

    fn value(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

/// Which series a stage is, and from which processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Controller,
    /// Summed over every agent.
    Agents,
}

/// The stages of one more port, in path order: (what, source, histogram name, labels).
pub const STAGES: &[(&str, Source, &str, &str)] = &[
    (
        "Transact RPC in the controller (all of it, `--wait=hv` included)",
        Source::Controller,
        "weft_controller_request_duration_seconds",
        "{method=weft.v1.Northbound/Transact}",
    ),
    (
        "CreatePort RPC in the controller (all of it, `--wait=hv` included)",
        Source::Controller,
        "weft_controller_request_duration_seconds",
        "{method=weft.v1.Northbound/CreatePort}",
    ),
    (
        "… `--wait=hv` part (write committed → every live chassis acked)",
        Source::Controller,
        "weft_controller_wait_hv_duration_seconds",
        "",
    ),
    (
        "etcd txn (the write; in the controller also ack flushes)",
        Source::Controller,
        "weft_controller_etcd_request_duration_seconds",
        "{op=txn}",
    ),
    (
        "etcd get",
        Source::Controller,
        "weft_controller_etcd_request_duration_seconds",
        "{op=get}",
    ),
    (
        "etcd range",
        Source::Controller,
        "weft_controller_etcd_request_duration_seconds",
        "{op=range}",
    ),
    (
        "watch: txn returned → cache applied its revision",
        Source::Controller,
        "weft_controller_watch_delay_seconds",
        "",
    ),
    (
        "view delta computed + encoded (per stream)",
        Source::Controller,
        "weft_controller_view_update_seconds",
        "",
    ),
    (
        "agent: view update applied + owners recompiled",
        Source::Agents,
        "weft_agent_view_update_seconds",
        "",
    ),
    (
        "agent: incremental reconcile (diff, ids, bundle)",
        Source::Agents,
        "weft_agent_reconcile_duration_seconds",
        "{kind=incremental}",
    ),
    (
        "agent: … ids persisted to OVSDB",
        Source::Agents,
        "weft_agent_persist_ids_seconds",
        "",
    ),
    (
        "agent: … OpenFlow bundle committed",
        Source::Agents,
        "weft_agent_bundle_duration_seconds",
        "",
    ),
    (
        "agent: full reconcile (read-back + diff in the main loop)",
        Source::Agents,
        "weft_agent_reconcile_duration_seconds",
        "{kind=full}",
    ),
    (
        "agent: periodic resync, read-back (in the background)",
        Source::Agents,
        "weft_agent_reconcile_duration_seconds",
        "{kind=read_back}",
    ),
    (
        "agent: periodic resync, diff + bundle (in the main loop)",
        Source::Agents,
        "weft_agent_reconcile_duration_seconds",
        "{kind=resync}",
    ),
    (
        "agent: status report RPC (the ack)",
        Source::Agents,
        "weft_agent_report_seconds",
        "",
    ),
    (
        "ReportStatus in the controller",
        Source::Controller,
        "weft_controller_request_duration_seconds",
        "{method=weft.v1.Southbound/ReportStatus}",
    ),
    (
        "ack flush (batched etcd write of held acks)",
        Source::Controller,
        "weft_controller_ack_flush_seconds",
        "",
    ),
];

/// One stage over the timed adds.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRow {
    pub stage: String,
    /// Observations per add (e.g. one view update per stream: N).
    pub calls_per_add: f64,
    /// Mean seconds per observation.
    pub mean_s: f64,
    /// Seconds per add, all observations (summed over processes: CPU-ish, not wall clock
    /// when the processes run in parallel).
    pub per_add_s: f64,
}

/// Pure: the stage rows from the scrapes before and after `adds` single adds. Stages with
/// no observation are left out.
pub fn breakdown(
    controller: (&Scrape, &Scrape),
    agents: &[(Scrape, Scrape)],
    adds: usize,
) -> Vec<StageRow> {
    let adds = adds.max(1) as f64;
    let mut rows = Vec::new();
    for (stage, source, name, labels) in STAGES {
        let sum_key = format!("{name}_sum{labels}");
        let count_key = format!("{name}_count{labels}");
        let delta = |(b, a): (&Scrape, &Scrape)| {
            (
                a.value(&sum_key) - b.value(&sum_key),
                a.value(&count_key) - b.value(&count_key),
            )
        };
        let (sum, count) = match source {
            Source::Controller => delta(controller),
            Source::Agents => agents
                .iter()
                .map(|(b, a)| delta((b, a)))
                .fold((0.0, 0.0), |(s, c), (ds, dc)| (s + ds, c + dc)),
        };
        if count <= 0.0 {
            continue;
        }
        rows.push(StageRow {
            stage: stage.to_string(),
            calls_per_add: count / adds,
            mean_s: sum / count,
            per_add_s: sum / adds,
        });
    }
    rows
}

/// The controller's (first replica's) and every agent's scrape, in host order.
pub fn scrape_all(
    tb: &weft_testbed::testbed::Testbed,
) -> Result<(Scrape, Vec<Scrape>), ScrapeError> {
    let ctl = match tb.controller_metrics_urls().first() {
        Some(u) => Scrape::get(u)?,
        None => Scrape::default(),
    };
    let agents = tb
        .hosts()
        .iter()
        .map(|h| Scrape::get(&h.metrics_url()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ctl, agents))
}

/// [`breakdown`] of two [`scrape_all`] results.
pub fn between(
    before: (Scrape, Vec<Scrape>),
    after: (Scrape, Vec<Scrape>),
    changes: usize,
) -> Vec<StageRow> {
    let agents: Vec<_> = before.1.into_iter().zip(after.1).collect();
    breakdown((&before.0, &after.0), &agents, changes)
}

/// Markdown table of [`breakdown`]'s rows (one more port).
pub fn render(rows: &[StageRow], adds: usize) -> String {
    render_titled(rows, adds, "one more port", "adds", "add")
}

/// Markdown table of [`breakdown`]'s rows over `n` changes of the kind `what`
/// (`plural`/`singular`: how one change is called in the table).
pub fn render_titled(
    rows: &[StageRow],
    n: usize,
    what: &str,
    plural: &str,
    singular: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Where the time of {what} goes (Weft, {n} {plural}; means from the processes' \
         Prometheus histograms, scraped before and after the {plural}):\n"
    );
    let _ = writeln!(
        out,
        "| stage | calls per {singular} | mean per call | per {singular} |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} ms | {:.2} ms |",
            r.stage,
            r.calls_per_add,
            r.mean_s * 1e3,
            r.per_add_s * 1e3
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_sums_and_counts_and_breaks_down() {
        let before = Scrape::parse(
            "# HELP x\nweft_controller_wait_hv_duration_seconds_sum 1.0\n\
             weft_controller_wait_hv_duration_seconds_count 10\n\
             weft_controller_wait_hv_duration_seconds_bucket{le=\"0.1\"} 3\n\
             weft_controller_etcd_request_duration_seconds_sum{op=\"txn\"} 0.5\n\
             weft_controller_etcd_request_duration_seconds_count{op=\"txn\"} 5\n",
        );
        assert_eq!(before.0.len(), 4, "{before:?}");
        let after = Scrape::parse(
            "weft_controller_wait_hv_duration_seconds_sum 1.5\n\
             weft_controller_wait_hv_duration_seconds_count 20\n\
             weft_controller_etcd_request_duration_seconds_sum{op=\"txn\"} 0.9\n\
             weft_controller_etcd_request_duration_seconds_count{op=\"txn\"} 25\n",
        );
        let a0 =
            Scrape::parse("weft_agent_report_seconds_sum 0\nweft_agent_report_seconds_count 0\n");
        let a1 = Scrape::parse(
            "weft_agent_report_seconds_sum 0.2\nweft_agent_report_seconds_count 10\n",
        );
        let rows = breakdown((&before, &after), &[(a0.clone(), a1.clone()), (a0, a1)], 10);
        let wait = rows.iter().find(|r| r.stage.contains("wait=hv")).unwrap();
        assert_eq!(wait.calls_per_add, 1.0);
        assert!((wait.mean_s - 0.05).abs() < 1e-9);
        let txn = rows
            .iter()
            .find(|r| r.stage.starts_with("etcd txn"))
            .unwrap();
        assert_eq!(txn.calls_per_add, 2.0);
        assert!((txn.mean_s - 0.02).abs() < 1e-9);
        let rep = rows
            .iter()
            .find(|r| r.stage.contains("report RPC"))
            .unwrap();
        assert_eq!(rep.calls_per_add, 2.0, "summed over both agents");
        assert!((rep.per_add_s - 0.04).abs() < 1e-9);
        assert!(!rows.iter().any(|r| r.stage.contains("resync")));
        assert!(render(&rows, 10).contains("| etcd txn"));
    }
}
