//! The Weft side of the comparison: a `weft-testbed` with etcd, one weft-controller and a
//! weft-agent per host; ports through the northbound gRPC API. Called by
//! [`super::run_compare`].

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint};
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::{
    column_op, object, op, Acl, AddressSet, ColumnOp, CreatePortRequest, CreatePortsRequest,
    CreateSwitchRequest, InsertOp, ListPortsRequest, LogicalSwitch, LogicalSwitchPort, Object, Op,
    PortGroup, SyncRequest, TransactRequest, UpdateOp, WaitMode, WriteOptions,
};
use weft_testbed::net::marked_pids;
use weft_testbed::testbed::{Encap, TestbedConfig};

use super::{
    bind_vifs, cpu_snapshot, flows_per_host, poll_until, procstat, stages, switch_name,
    switch_subnet, usage, CompareConfig, PlannedPort, System, SystemReport,
};
use crate::Timing;

pub(super) type Client = NorthboundClient<Channel>;

fn lsp(p: &PlannedPort) -> LogicalSwitchPort {
    LogicalSwitchPort {
        name: p.name.clone(),
        switch_name: p.switch.clone(),
        addresses: vec!["dynamic".into()],
        enabled: true,
        ..Default::default()
    }
}

fn wait_hv(timeout: Duration) -> Option<WriteOptions> {
    Some(WriteOptions {
        wait: WaitMode::WaitHv as i32,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        ..Default::default()
    })
}

/// How batches go in: decided by the first batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CreatePath {
    Batch,
    Concurrent,
}

/// Create one batch; `path` is `None` before the first batch and is set by it.
async fn create_batch(
    client: &mut Client,
    ports: &[PlannedPort],
    path: &mut Option<CreatePath>,
) -> anyhow::Result<()> {
    if *path != Some(CreatePath::Concurrent) {
        let req = CreatePortsRequest {
            ports: ports.iter().map(lsp).collect(),
            options: None,
        };
        match client.create_ports(req).await {
            Ok(_) => {
                *path = Some(CreatePath::Batch);
                return Ok(());
            }
            Err(s) if path.is_none() && s.code() == tonic::Code::Unimplemented => {
                *path = Some(CreatePath::Concurrent);
            }
            Err(s) => anyhow::bail!("CreatePorts ({} ports): {s}", ports.len()),
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for p in ports {
        let mut c = client.clone();
        let req = CreatePortRequest {
            port: Some(lsp(p)),
            options: None,
        };
        let name = p.name.clone();
        set.spawn(async move { c.create_port(req).await.map_err(|s| (name, s)) });
    }
    while let Some(r) = set.join_next().await {
        if let Err((name, s)) = r.context("create task")? {
            anyhow::bail!("CreatePort {name}: {s}");
        }
    }
    Ok(())
}

async fn count_up(client: &mut Client, switches: usize) -> anyhow::Result<usize> {
    let mut n = 0;
    for s in 0..switches {
        let r = client
            .list_ports(ListPortsRequest {
                switch_name: switch_name(s),
            })
            .await
            .with_context(|| format!("ListPorts {}", switch_name(s)))?;
        n += r.into_inner().ports.iter().filter(|p| p.up).count();
    }
    Ok(n)
}

/// Control-plane processes of the run, by their `WEFT_TESTBED` marker.
fn processes(prefix: &str) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = marked_pids(prefix)
        .into_iter()
        .filter_map(|pid| {
            let cmd = procstat::cmdline(pid);
            let role = match procstat::program_name(&cmd).as_str() {
                "etcd" => "etcd".to_string(),
                "weft-controller" => "weft-controller".to_string(),
                "weft-agent" => format!(
                    "weft-agent {}",
                    procstat::flag_value(&cmd, "--chassis").unwrap_or_default()
                ),
                _ => return None,
            };
            Some((role, pid))
        })
        .collect();
    v.sort();
    v
}

/// Run the Weft side (see the module docs of [`super`]).
pub fn run(cfg: &CompareConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<SystemReport> {
    progress("weft: starting testbed (etcd, controller, agents)");
    let tb = TestbedConfig::new()
        .hosts(cfg.hosts)
        .controllers(1)
        .agents(true)
        .encap(Encap::Geneve)
        .log_filter(&std::env::var("WEFT_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .start()?;
    let url = tb.controller_url(1)?;
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // The testbed runs TLS: dial with its CA and admin certificate.
    let tls = match tb.pki() {
        Some(pki) => {
            let admin = pki.files("admin");
            Some(
                weft_proto::tls::TlsFiles {
                    ca: admin.ca,
                    cert: Some(admin.cert),
                    key: Some(admin.key),
                }
                .client_config()?,
            )
        }
        None => None,
    };
    let mut client: Client = rt.block_on(async {
        let mut ep = Endpoint::from_shared(match &tls {
            Some(_) => url.replacen("http://", "https://", 1),
            None => url.clone(),
        })?
        .connect_timeout(Duration::from_secs(10));
        if let Some(tls) = tls {
            ep = ep.tls_config(tls)?;
        }
        let ch = ep
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        anyhow::Ok(NorthboundClient::new(ch).max_decoding_message_size(256 << 20))
    })?;

    progress("weft: switches and VIFs");
    rt.block_on(async {
        for s in 0..cfg.switches {
            client
                .create_switch(CreateSwitchRequest {
                    switch: Some(LogicalSwitch {
                        name: switch_name(s),
                        subnet: switch_subnet(s),
                        ..Default::default()
                    }),
                    options: None,
                })
                .await
                .with_context(|| format!("CreateSwitch {}", switch_name(s)))?;
        }
        anyhow::Ok(())
    })?;
    if cfg.topology == super::Topology::Routed {
        progress("weft: router lr0 on every switch");
        rt.block_on(transact(
            &mut client,
            super::routed::weft_ops(cfg.switches),
            true,
            cfg.timeout,
        ))?;
    }
    let plan = cfg.plan();
    for h in tb.hosts() {
        let mine: Vec<PlannedPort> = plan.iter().filter(|p| p.host == h.index).cloned().collect();
        bind_vifs(h, &mine, cfg.batch)?;
    }

    let up0 = rt.block_on(count_up(&mut client, cfg.switches))?;
    let procs = processes(tb.prefix());
    let cpu0 = cpu_snapshot(&procs);
    progress(&format!("weft: creating {} ports", plan.len()));
    let t0 = Instant::now();
    let mut path = None;
    let mut calls = 0;
    rt.block_on(async {
        for chunk in plan.chunks(cfg.batch) {
            create_batch(&mut client, chunk, &mut path).await?;
            calls += 1;
        }
        anyhow::Ok(())
    })?;
    let create_time = t0.elapsed();
    // Ports up before the timed part (router-type ports, if they count as up) are not ours.
    let ports_up = poll_until(plan.len() + up0, cfg.poll, cfg.timeout, || {
        rt.block_on(count_up(&mut client, cfg.switches))
    })? - up0;
    let up_time = t0.elapsed();
    rt.block_on(client.sync(SyncRequest {
        revision: 0,
        options: wait_hv(cfg.timeout),
    }))
    .context("Sync --wait=hv")?;
    let convergence = t0.elapsed();
    progress(&format!(
        "weft: converged in {convergence:?} (up {up_time:?}); {} single adds",
        cfg.single_adds
    ));

    let scrape_all = || -> anyhow::Result<(stages::Scrape, Vec<stages::Scrape>)> {
        let ctl = match tb.controller_metrics_urls().first() {
            Some(u) => stages::Scrape::get(u)?,
            None => stages::Scrape::default(),
        };
        let agents = tb
            .hosts()
            .iter()
            .map(|h| stages::Scrape::get(&h.metrics_url()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((ctl, agents))
    };
    let before = scrape_all();
    let mut single = Timing::default();
    for k in 0..cfg.single_adds {
        let p = cfg.single_port(k);
        bind_vifs(tb.host(p.host)?, std::slice::from_ref(&p), 1)?;
        let t = Instant::now();
        rt.block_on(client.create_port(CreatePortRequest {
            port: Some(lsp(&p)),
            options: wait_hv(cfg.timeout),
        }))
        .with_context(|| format!("CreatePort {} --wait=hv", p.name))?;
        let took = t.elapsed();
        if std::env::var_os("WEFT_BENCH_SAMPLES").is_some() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let day = now.as_secs_f64() % 86400.0;
            progress(&format!(
                "weft: single add {} on host{}: {took:?} (ended {:02}:{:02}:{:09.6} UTC)",
                p.name,
                p.host,
                (day / 3600.0) as u64,
                (day % 3600.0 / 60.0) as u64,
                day % 60.0
            ));
        }
        single.push(took);
    }
    let stage_rows = match (before, scrape_all()) {
        (Ok((c0, a0)), Ok((c1, a1))) => {
            let agents: Vec<_> = a0.into_iter().zip(a1).collect();
            stages::breakdown((&c0, &c1), &agents, cfg.single_adds)
        }
        (Err(e), _) | (_, Err(e)) => {
            progress(&format!("weft: no stage breakdown: {e:#}"));
            Vec::new()
        }
    };
    let processes = usage(&procs, &cpu0);
    let flows = flows_per_host(&tb)?;
    let acl = match &cfg.acl {
        Some(s) => Some(rt.block_on(acl_phase(&mut client, cfg, s, &tb, progress))?),
        None => None,
    };
    let lb = match &cfg.lb {
        Some(s) => Some(rt.block_on(super::lb::weft_phase(&mut client, cfg, s, &tb, progress))?),
        None => None,
    };
    let create_path = match path {
        Some(CreatePath::Batch) => format!("CreatePorts, {} per call", cfg.batch),
        _ => format!("{} concurrent CreatePort per batch", cfg.batch),
    };
    Ok(SystemReport {
        system: System::Weft,
        create_path,
        create_calls: calls,
        ports: plan.len(),
        ports_up,
        create_time,
        up_time,
        convergence,
        single_adds: single,
        stages: stage_rows,
        flows_per_host: flows,
        processes,
        acl,
        lb,
    })
}

pub(super) fn insert(k: object::Kind) -> Op {
    Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(Object { kind: Some(k) }),
            may_exist: false,
        })),
    }
}

pub(super) async fn transact(
    client: &mut Client,
    ops: Vec<Op>,
    wait: bool,
    t: Duration,
) -> anyhow::Result<()> {
    client
        .transact(TransactRequest {
            ops,
            wait: if wait {
                WaitMode::WaitHv
            } else {
                WaitMode::WaitNone
            } as i32,
            timeout_ms: u32::try_from(t.as_millis()).unwrap_or(u32::MAX),
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("Transact: {s}"))?;
    Ok(())
}

/// `Sync` with `--wait=hv` (every chassis applied the current revision).
pub(super) async fn sync_hv(client: &mut Client, timeout: Duration) -> anyhow::Result<()> {
    client
        .sync(SyncRequest {
            revision: 0,
            options: wait_hv(timeout),
        })
        .await
        .map_err(|e| anyhow::anyhow!("Sync --wait=hv: {e}"))?;
    Ok(())
}

/// The ACL phase (see [`super::acl`]).
async fn acl_phase(
    client: &mut Client,
    cfg: &CompareConfig,
    s: &super::acl::AclScale,
    tb: &weft_testbed::testbed::Testbed,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<super::acl::AclReport> {
    let p = super::acl::plan(cfg, s);
    progress(&format!(
        "weft: ACL phase: {} groups, {} sets of {}, {} ACLs",
        p.groups.len(),
        p.sets.len(),
        s.set_size,
        p.acls.len()
    ));
    let t0 = Instant::now();
    let mut calls = 0;
    for (g, ports) in &p.groups {
        transact(
            client,
            vec![insert(object::Kind::PortGroup(PortGroup {
                name: g.clone(),
                ports: ports.clone(),
                ..Default::default()
            }))],
            false,
            cfg.timeout,
        )
        .await?;
        calls += 1;
    }
    for (name, addrs) in &p.sets {
        transact(
            client,
            vec![insert(object::Kind::AddressSet(AddressSet {
                name: name.clone(),
                addresses: addrs.clone(),
                ..Default::default()
            }))],
            false,
            cfg.timeout,
        )
        .await?;
        calls += 1;
    }
    for chunk in p.acls.chunks(s.batch.max(1)) {
        let ops = chunk
            .iter()
            .map(|a| {
                insert(object::Kind::Acl(Acl {
                    port_group: a.group.clone(),
                    direction: "to-lport".into(),
                    priority: a.priority,
                    r#match: a.matches.clone(),
                    action: "allow-related".into(),
                    ..Default::default()
                }))
            })
            .collect();
        transact(client, ops, false, cfg.timeout).await?;
        calls += 1;
    }
    let write_time = t0.elapsed();
    client
        .sync(SyncRequest {
            revision: 0,
            options: wait_hv(cfg.timeout),
        })
        .await
        .map_err(|e| anyhow::anyhow!("Sync --wait=hv: {e}"))?;
    let convergence = t0.elapsed();
    progress(&format!("weft: ACLs converged in {convergence:?}"));
    let flows_per_host = flows_per_host(tb)?;
    let mut set_change = Timing::default();
    for n in 0..s.set_changes {
        let set = format!("as{}", n % p.sets.len().max(1));
        let op = Op {
            op: Some(op::Op::Update(UpdateOp {
                kind: "Address_Set".into(),
                name: set,
                columns: vec![ColumnOp {
                    action: column_op::Action::Add as i32,
                    column: "addresses".into(),
                    key: String::new(),
                    values: vec![super::acl::change_address(n)],
                }],
                if_exists: false,
            })),
        };
        let t = Instant::now();
        transact(client, vec![op], true, cfg.timeout).await?;
        set_change.push(t.elapsed());
    }
    Ok(super::acl::AclReport {
        acls: p.acls.len(),
        groups: p.groups.len(),
        sets: p.sets.len(),
        set_size: s.set_size,
        calls,
        write_time,
        convergence,
        flows_per_host,
        set_change,
    })
}
