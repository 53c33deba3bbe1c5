//! The load balancer phase of the comparison (issue 12): after the ports converged, both
//! systems get the same switch load balancers ([`plan`], pure), and the bench measures
//!
//! - **LB convergence**: first write → every LB written and attached to every switch and
//!   `--wait=hv sync` returned (Weft: `Transact`, [`LbScale::batch`] LB inserts per call,
//!   then one `load_balancer` add per switch and call of up to [`LbScale::batch`] names;
//!   OVN: `ovn-nbctl`, the same numbers of chained `lb-add` and `ls-lb-add`);
//! - **flows per host** after it;
//! - **one backend change**: one VIP's backend list with one backend replaced, with
//!   `--wait=hv` (every host applied it), [`LbScale::changes`] times, median and p99.
//!
//! Topology: LB `lb{i}` has one TCP VIP `10.96.{i / 250}.{i % 250 + 1}:80` over
//! [`LbScale::backends`] backends `10.{100 + i / 250}.{i % 250}.{k + 1}:8080` (addresses, not
//! ports: the data plane compiles them the same way), like one Kubernetes Service per LB;
//! every LB is on every switch (every host has ports on every switch).

use std::time::{Duration, Instant};

use weft_proto::v1::{column_op, object, op, ColumnOp, LoadBalancer, Op, UpdateOp};

use super::{render_phase, CompareConfig, PhaseLabels, PhaseView, SystemReport};
use crate::Timing;

/// Sizes of the LB phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbScale {
    /// VIPs (= load balancers).
    pub vips: usize,
    /// Backends per VIP.
    pub backends: usize,
    /// LB inserts (and switch attachments) per write call.
    pub batch: usize,
    /// Timed backend changes.
    pub changes: usize,
}

impl Default for LbScale {
    fn default() -> Self {
        LbScale {
            vips: 1000,
            backends: 10,
            batch: 50,
            changes: 10,
        }
    }
}

/// One LB of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbSpec {
    pub name: String,
    pub vip: String,
    pub backends: Vec<String>,
}

/// The VIP of LB `i`.
pub fn vip(i: usize) -> String {
    format!("10.96.{}.{}:80", (i / 250) % 256, i % 250 + 1)
}

/// Backend `k` of LB `i`.
pub fn backend(i: usize, k: usize) -> String {
    format!(
        "10.{}.{}.{}:8080",
        100 + (i / 250) % 100,
        i % 250,
        k % 250 + 1
    )
}

/// The LBs of the phase.
pub fn plan(s: &LbScale) -> Vec<LbSpec> {
    (0..s.vips)
        .map(|i| LbSpec {
            name: format!("lb{i}"),
            vip: vip(i),
            backends: (0..s.backends).map(|k| backend(i, k)).collect(),
        })
        .collect()
}

/// The backend list of change `n`: LB `n % vips` with its first backend replaced.
pub fn changed(s: &LbScale, n: usize) -> (usize, String) {
    let i = n % s.vips.max(1);
    let mut b: Vec<String> = (0..s.backends).map(|k| backend(i, k)).collect();
    if let Some(first) = b.first_mut() {
        *first = format!("10.250.{}.{}:8080", (n / 250) % 256, n % 250 + 1);
    }
    (i, b.join(","))
}

/// What the LB phase measured for one system.
#[derive(Clone, Debug, PartialEq)]
pub struct LbReport {
    pub vips: usize,
    pub backends: usize,
    pub switches: usize,
    /// Write calls made.
    pub calls: usize,
    /// First write → last write answered.
    pub write_time: Duration,
    /// First write → `--wait=hv sync` returned.
    pub convergence: Duration,
    /// (host, flows on br-int) after convergence.
    pub flows_per_host: Vec<(String, u64)>,
    /// One backend change with `--wait=hv`, each.
    pub change: Timing,
    /// Where the time of the backend changes went (Weft only; empty for OVN).
    pub stages: Vec<super::stages::StageRow>,
}

/// `ovn-nbctl` argument lists: the LBs in batches of `batch` chained `lb-add`s, then every
/// switch's `ls-lb-add`s, `batch` per call.
pub fn ovn_nbctl_calls(p: &[LbSpec], switches: &[String], batch: usize) -> Vec<Vec<String>> {
    let mut calls = Vec::new();
    for chunk in p.chunks(batch.max(1)) {
        let mut v = Vec::new();
        for l in chunk {
            v.extend([
                "--".to_string(),
                "lb-add".into(),
                l.name.clone(),
                l.vip.clone(),
                l.backends.join(","),
                "tcp".into(),
            ]);
        }
        calls.push(v);
    }
    for sw in switches {
        for chunk in p.chunks(batch.max(1)) {
            let mut v = Vec::new();
            for l in chunk {
                v.extend([
                    "--".to_string(),
                    "ls-lb-add".into(),
                    sw.clone(),
                    l.name.clone(),
                ]);
            }
            calls.push(v);
        }
    }
    calls
}

fn switch_names(cfg: &CompareConfig) -> Vec<String> {
    (0..cfg.switches).map(super::switch_name).collect()
}

/// The Weft side: `Transact` batches, then `Sync --wait=hv`, then the timed changes.
pub async fn weft_phase(
    client: &mut super::weft::Client,
    cfg: &CompareConfig,
    s: &LbScale,
    tb: &weft_testbed::testbed::Testbed,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<LbReport> {
    use super::weft::{insert, transact};
    let p = plan(s);
    let switches = switch_names(cfg);
    progress(&format!(
        "weft: LB phase: {} VIPs x {} backends on {} switches",
        p.len(),
        s.backends,
        switches.len()
    ));
    let t0 = Instant::now();
    let mut calls = 0;
    for chunk in p.chunks(s.batch.max(1)) {
        let ops = chunk
            .iter()
            .map(|l| {
                insert(object::Kind::LoadBalancer(LoadBalancer {
                    name: l.name.clone(),
                    vips: [(l.vip.clone(), l.backends.join(","))].into(),
                    protocol: "tcp".into(),
                    ..Default::default()
                }))
            })
            .collect();
        transact(client, ops, false, cfg.timeout).await?;
        calls += 1;
    }
    for sw in &switches {
        for chunk in p.chunks(s.batch.max(1)) {
            let op = update(
                "Logical_Switch",
                sw,
                column_op::Action::Add,
                "load_balancer",
                "",
                chunk.iter().map(|l| l.name.clone()).collect(),
            );
            transact(client, vec![op], false, cfg.timeout).await?;
            calls += 1;
        }
    }
    let write_time = t0.elapsed();
    super::weft::sync_hv(client, cfg.timeout).await?;
    let convergence = t0.elapsed();
    progress(&format!("weft: LBs converged in {convergence:?}"));
    let flows_per_host = super::flows_per_host(tb)?;
    let mut change = Timing::default();
    let before = super::stages::scrape_all(tb);
    for n in 0..s.changes {
        let (i, backends) = changed(s, n);
        let op = update(
            "Load_Balancer",
            &format!("lb{i}"),
            column_op::Action::Set,
            "vips",
            &vip(i),
            vec![backends],
        );
        let t = Instant::now();
        transact(client, vec![op], true, cfg.timeout).await?;
        let took = t.elapsed();
        if std::env::var_os("WEFT_BENCH_SAMPLES").is_some() {
            progress(&format!("weft: backend change {n} (lb{i}): {took:?}"));
        }
        change.push(took);
    }
    let stages = match (before, super::stages::scrape_all(tb)) {
        (Ok(b), Ok(a)) => super::stages::between(b, a, s.changes),
        (Err(e), _) | (_, Err(e)) => {
            progress(&format!("weft: no LB stage breakdown: {e}"));
            Vec::new()
        }
    };
    Ok(LbReport {
        vips: p.len(),
        backends: s.backends,
        switches: switches.len(),
        calls,
        write_time,
        convergence,
        flows_per_host,
        change,
        stages,
    })
}

fn update(
    kind: &str,
    name: &str,
    action: column_op::Action,
    column: &str,
    key: &str,
    values: Vec<String>,
) -> Op {
    Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: kind.into(),
            name: name.into(),
            columns: vec![ColumnOp {
                action: action as i32,
                column: column.into(),
                key: key.into(),
                values,
            }],
            if_exists: false,
        })),
    }
}

/// The OVN side: chained `ovn-nbctl` calls, `--wait=hv sync`, then `lb-add --may-exist`
/// changes with `--wait=hv`.
pub fn ovn_phase(
    cfg: &CompareConfig,
    s: &LbScale,
    tb: &weft_testbed::testbed::Testbed,
    nbctl: &mut dyn FnMut(&[&str]) -> anyhow::Result<String>,
    timeout: &str,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<LbReport> {
    let p = plan(s);
    let switches = switch_names(cfg);
    progress(&format!(
        "ovn: LB phase: {} VIPs x {} backends on {} switches",
        p.len(),
        s.backends,
        switches.len()
    ));
    let calls = ovn_nbctl_calls(&p, &switches, s.batch);
    let t0 = Instant::now();
    for args in &calls {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        nbctl(&refs)?;
    }
    let write_time = t0.elapsed();
    nbctl(&["--wait=hv", timeout, "sync"])?;
    let convergence = t0.elapsed();
    progress(&format!("ovn: LBs converged in {convergence:?}"));
    let flows_per_host = super::flows_per_host(tb)?;
    let mut change = Timing::default();
    for n in 0..s.changes {
        let (i, backends) = changed(s, n);
        let name = format!("lb{i}");
        let v = vip(i);
        let t = Instant::now();
        nbctl(&[
            "--wait=hv",
            timeout,
            "--may-exist",
            "lb-add",
            &name,
            &v,
            &backends,
            "tcp",
        ])?;
        change.push(t.elapsed());
    }
    Ok(LbReport {
        vips: p.len(),
        backends: s.backends,
        switches: switches.len(),
        calls: calls.len(),
        write_time,
        convergence,
        flows_per_host,
        change,
        stages: Vec::new(),
    })
}

/// The LB table of the report (after the ports' and the ACL phase's).
pub fn render(out: &mut String, cols: &[&SystemReport], both: bool) {
    use std::fmt::Write as _;
    let Some(first) = cols.iter().find_map(|c| c.lb.as_ref()) else {
        return;
    };
    let _ = writeln!(
        out,
        "LB phase: {} VIPs x {} backends, every LB on each of {} switches.\n",
        first.vips, first.backends, first.switches
    );
    let labels = PhaseLabels {
        what: "LB",
        calls: "write calls",
        objects: "the LBs",
        change: "one backend change",
    };
    render_phase(out, cols, both, &labels, |c| {
        c.lb.as_ref().map(|a| PhaseView {
            calls: a.calls,
            write_time: a.write_time,
            convergence: a.convergence,
            flows_per_host: &a.flows_per_host,
            change: &a.change,
        })
    });
    for c in cols {
        if let Some(lb) = c.lb.as_ref().filter(|l| !l.stages.is_empty()) {
            out.push('\n');
            out.push_str(&super::stages::render_titled(
                &lb.stages,
                lb.change.samples.len(),
                "one backend change",
                "changes",
                "change",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_the_asked_sizes_and_valid_rules() {
        let s = LbScale {
            vips: 1000,
            backends: 10,
            batch: 50,
            changes: 3,
        };
        let p = plan(&s);
        assert_eq!(p.len(), 1000);
        let vips: std::collections::BTreeSet<&String> = p.iter().map(|l| &l.vip).collect();
        assert_eq!(vips.len(), 1000, "VIPs are distinct");
        for l in &p {
            weft_proto::model::load_balancer::parse_vip_rule("v", &l.vip, &l.backends.join(","))
                .expect("valid");
            assert_eq!(l.backends.len(), 10);
        }
        let (i, b) = changed(&s, 2);
        assert_eq!(i, 2);
        assert_ne!(b, p[2].backends.join(","));
        let sw = vec!["ls0".to_string(), "ls1".to_string()];
        let calls = ovn_nbctl_calls(&p, &sw, 50);
        assert_eq!(calls.len(), 20 + 2 * 20);
        assert_eq!(calls[0][1], "lb-add");
        assert_eq!(calls[20][1], "ls-lb-add");
    }
}
