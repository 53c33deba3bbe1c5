//! Data-plane throughput (issue 17): pod-to-pod TCP with iperf3 between two simulated hosts
//! over Geneve, three ways on the same testbed hosts, one after the other:
//!
//! - **raw OVS**: no control plane; on each host's br-int one Geneve port to the other host
//!   and a single `actions=NORMAL` flow (MAC learning);
//! - **Weft**: etcd, weft-controller and a weft-agent per host, one logical switch, the two
//!   pods' ports with dynamic addresses;
//! - **OVN**: NB/SB, ovn-northd, an ovn-controller per host, the same switch and ports (static
//!   addresses).
//!
//! Pods are the testbed's (a namespace with a veth into br-int, the testbed's pod MTU, which
//! leaves room for the Geneve header). For each system, after a ping, `iperf3 -c` runs in the
//! pod on host 1 against `iperf3 -s -1` in the pod on host 2 for `--seconds`; the rate is the
//! receiver's (`end.sum_received`). CPU is that of both hosts' ovs-vswitchd (the userspace
//! datapath forwards in ovs-vswitchd) during the transfer, per Gbit received, and iperf3's own
//! `cpu_utilization_percent`. Start with [`run_dataplane`].
//!
//! With `services` (`--services`), Weft and OVN each run a second transfer with the same
//! stateful ACLs and a TCP load balancer in the path ([`services_commands`], the same
//! ovn-nbctl commands for both): iperf3 connects to the VIP, which DNATs to the server pod.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use weft_testbed::net::marked_pids;
use weft_testbed::pod::Pod;
use weft_testbed::testbed::{Encap, Testbed, TestbedConfig};
use weft_testbed::weftctl::PortAddress;

use crate::compare::{ovn, procstat, System};

/// What [`run_dataplane`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Seconds of each iperf3 transfer.
    pub seconds: u32,
    /// Parallel iperf3 streams (`-P`).
    pub streams: u32,
    /// Raw OVS, Weft and/or OVN (in this order).
    pub raw: bool,
    pub systems: Vec<System>,
    /// Also measure each system with ACLs and a load balancer in the path.
    pub services: bool,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            seconds: 10,
            streams: 1,
            raw: true,
            systems: vec![System::Weft, System::Ovn],
            services: false,
        }
    }
}

/// One system's transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    /// `raw OVS`, `Weft`, `OVN`.
    pub what: String,
    /// Receiver's rate, bits per second.
    pub bits_per_second: f64,
    /// TCP retransmissions the sender saw.
    pub retransmits: u64,
    /// ovs-vswitchd CPU seconds (both hosts) during the transfer.
    pub vswitchd_cpu_s: f64,
    /// iperf3's own CPU use (percent of one core): sender, receiver.
    pub iperf_cpu: (f64, f64),
    pub seconds: f64,
    /// The pods' MTU.
    pub mtu: u32,
}

impl Throughput {
    /// ovs-vswitchd CPU seconds per Gbit received.
    pub fn cpu_per_gbit(&self) -> f64 {
        let gbit = self.bits_per_second * self.seconds / 1e9;
        if gbit > 0.0 {
            self.vswitchd_cpu_s / gbit
        } else {
            0.0
        }
    }
}

/// Pure: (received bits/s, sender retransmits, sender CPU %, receiver CPU %) from
/// `iperf3 -J` output.
pub fn parse_iperf_json(json: &str) -> Option<(f64, u64, f64, f64)> {
    // A small scan instead of a JSON dependency: the keys are unique within their objects.
    let section = |name: &str| -> Option<&str> {
        let at = json.find(&format!("\"{name}\""))?;
        let rest = &json[at..];
        let end = rest.find('}')?;
        Some(&rest[..end])
    };
    let number = |s: &str, key: &str| -> Option<f64> {
        let at = s.find(&format!("\"{key}\""))?;
        let rest = &s[at + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        let end = rest
            .find(|c: char| {
                !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+')
            })
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    let received = number(section("sum_received")?, "bits_per_second")?;
    let retrans = section("sum_sent")
        .and_then(|s| number(s, "retransmits"))
        .unwrap_or(0.0) as u64;
    let cpu = section("cpu_utilization_percent");
    let host = cpu.and_then(|s| number(s, "host_total")).unwrap_or(0.0);
    let remote = cpu.and_then(|s| number(s, "remote_total")).unwrap_or(0.0);
    Some((received, retrans, host, remote))
}

fn vswitchd_cpu_ticks(prefix: &str) -> u64 {
    marked_pids(prefix)
        .into_iter()
        .filter(|&pid| procstat::program_name(&procstat::cmdline(pid)) == "ovs-vswitchd")
        .filter_map(procstat::sample)
        .map(|s| s.cpu_ticks)
        .sum()
}

/// Pings, then one iperf3 transfer from `client` to `server`.
/// The load balancer VIP of the `services` runs: outside the pods' subnet, reached through
/// their default gateway (the router port), as a Kubernetes service address is.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 100);
/// The pods' gateway: the router port of the `services` runs.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// The `services` configuration for switch `dp0` with the server pod at `server`, as
/// ovn-nbctl (and weftctl, which follows it) spell it: router `lr0` as the pods' gateway;
/// every IPv4 flow stateful (`allow-related` both ways), to-lport only iperf3 and ICMP
/// allowed (the rest of IPv4 dropped); VIP:5201 balanced to the server's port 5201.
pub fn services_commands(server: Ipv4Addr) -> Vec<Vec<String>> {
    let cmd = |args: &[&str]| -> Vec<String> { args.iter().map(|a| a.to_string()).collect() };
    let acl = |dir: &str, priority: &str, m: &str, verdict: &str| {
        cmd(&["acl-add", "dp0", dir, priority, m, verdict])
    };
    vec![
        cmd(&["lr-add", "lr0"]),
        cmd(&[
            "lrp-add",
            "lr0",
            "lr0-dp0",
            "0a:00:00:00:77:fe",
            &format!("{GATEWAY}/24"),
        ]),
        weft_testbed::weftctl::attach_router_port_args("dp0", "dp0-lr0", "lr0-dp0"),
        acl("from-lport", "1000", "ip4", "allow-related"),
        acl(
            "to-lport",
            "1000",
            "ip4 && tcp.dst == 5201",
            "allow-related",
        ),
        acl("to-lport", "1000", "icmp4", "allow-related"),
        acl("to-lport", "900", "ip4", "drop"),
        cmd(&[
            "lb-add",
            "lb0",
            &format!("{VIP}:5201"),
            &format!("{server}:5201"),
            "tcp",
        ]),
        cmd(&["ls-lb-add", "dp0", "lb0"]),
    ]
}

/// One iperf3 transfer from `client` to `server`, connecting to `to` (the server's address,
/// or a VIP that leads to it).
fn transfer(
    tb: &Testbed,
    what: &str,
    client: &Pod,
    server: &Pod,
    to: Ipv4Addr,
    cfg: &DataplaneConfig,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Throughput> {
    let ip = server.ip.to_string();
    let to = to.to_string();
    let mut pinged = false;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if client.exec(&["ping", "-c", "1", "-W", "1", &ip]).is_ok() {
            pinged = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !pinged {
        bail!("{what}: {} cannot ping {ip} within 30 s", client.name);
    }
    let mut srv = server
        .spawn(&["iperf3", "-s", "-1", "-p", "5201"])
        .with_context(|| format!("{what}: starting iperf3 -s (is iperf3 installed?)"))?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let listening = server
            .exec(&["cat", "/proc/net/tcp", "/proc/net/tcp6"])
            .map(|t| t.contains(":1451 "))
            .unwrap_or(false);
        if listening {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    progress(&format!(
        "{what}: iperf3 {} → {to} for {} s",
        client.name, cfg.seconds
    ));
    let ticks0 = vswitchd_cpu_ticks(tb.prefix());
    let started = Instant::now();
    let out = client.exec_output(&[
        "iperf3",
        "-c",
        &to,
        "-p",
        "5201",
        "-t",
        &cfg.seconds.to_string(),
        "-P",
        &cfg.streams.to_string(),
        "-J",
    ]);
    let seconds = started.elapsed().as_secs_f64();
    let ticks1 = vswitchd_cpu_ticks(tb.prefix());
    let _ = srv.kill();
    let _ = srv.wait();
    let out = out.with_context(|| format!("{what}: running iperf3 -c"))?;
    let json = String::from_utf8_lossy(&out.stdout);
    let Some((bps, retransmits, host, remote)) = parse_iperf_json(&json) else {
        bail!(
            "{what}: iperf3 -c gave no result: {} {}",
            json.chars().take(400).collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let tck = procstat::clk_tck().max(1) as f64;
    Ok(Throughput {
        what: what.to_string(),
        bits_per_second: bps,
        retransmits,
        vswitchd_cpu_s: ticks1.saturating_sub(ticks0) as f64 / tck,
        iperf_cpu: (host, remote),
        seconds: seconds.min(f64::from(cfg.seconds)).max(1.0),
        mtu: client.mtu,
    })
}

fn address(mac: &str, ip: Ipv4Addr) -> PortAddress {
    PortAddress {
        mac: mac.into(),
        ip,
        prefix_len: 24,
        gateway: Some(GATEWAY),
    }
}

const MAC1: &str = "0a:00:00:00:77:01";
const MAC2: &str = "0a:00:00:00:77:02";

fn raw(cfg: &DataplaneConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Throughput> {
    progress("raw OVS: two hosts, br-int NORMAL over one Geneve port each");
    let mut tb = TestbedConfig::new()
        .hosts(2)
        .controllers(0)
        .agents(false)
        .start()?;
    let ips: Vec<Ipv4Addr> = tb.hosts().iter().map(|h| h.underlay_ip).collect();
    for (i, h) in tb.hosts().iter().enumerate() {
        let other = ips[1 - i];
        h.ovs().vsctl(&[
            "set",
            "bridge",
            "br-int",
            "fail_mode=secure",
            "--",
            "--may-exist",
            "add-port",
            "br-int",
            "gnv0",
            "--",
            "set",
            "interface",
            "gnv0",
            "type=geneve",
            &format!("options:remote_ip={other}"),
        ])?;
        h.ovs().ofctl(&["del-flows", "br-int"])?;
        h.ovs()
            .ofctl(&["add-flow", "br-int", "priority=0,actions=NORMAL"])?;
    }
    let a = tb.add_pod_with_address(
        1,
        "raw1",
        "raw1",
        address(MAC1, Ipv4Addr::new(10, 77, 0, 11)),
    )?;
    let b = tb.add_pod_with_address(
        2,
        "raw2",
        "raw2",
        address(MAC2, Ipv4Addr::new(10, 77, 0, 12)),
    )?;
    transfer(&tb, "raw OVS", &a, &b, b.ip, cfg, progress)
}

fn weft(cfg: &DataplaneConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Throughput>> {
    progress("Weft: two hosts, etcd, controller, agents; one switch, two ports");
    let mut tb = TestbedConfig::new()
        .hosts(2)
        .controllers(1)
        .agents(true)
        .encap(Encap::Geneve)
        .log_filter(std::env::var("WEFT_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .start()?;
    tb.ctl(&["ls-add", "dp0", "--subnet", "10.77.0.0/24"])?;
    for p in ["dp1", "dp2"] {
        tb.ctl(&["lsp-add", "dp0", p])?;
        tb.ctl(&["lsp-set-addresses", p, "dynamic"])?;
    }
    let a = tb.add_pod(1, "dp1", "dp1")?;
    let b = tb.add_pod(2, "dp2", "dp2")?;
    tb.sync()?;
    let mut rows = vec![transfer(&tb, "Weft", &a, &b, b.ip, cfg, progress)?];
    if cfg.services {
        for c in services_commands(b.ip) {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            tb.ctl(&args)?;
        }
        tb.sync()?;
        rows.push(transfer(
            &tb,
            "Weft, ACLs + LB",
            &a,
            &b,
            VIP,
            cfg,
            progress,
        )?);
    }
    Ok(rows)
}

fn ovn(cfg: &DataplaneConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Throughput>> {
    progress("OVN: two hosts, NB/SB, northd, ovn-controllers; one switch, two ports");
    let mut tb = TestbedConfig::new()
        .hosts(2)
        .controllers(0)
        .agents(false)
        .start()?;
    let c = ovn::start_central(&tb)?;
    c.nbctl(&["ls-add", "dp0"])?;
    let ports = [
        ("dp1", MAC1, Ipv4Addr::new(10, 77, 0, 11)),
        ("dp2", MAC2, Ipv4Addr::new(10, 77, 0, 12)),
    ];
    for (p, mac, ip) in ports {
        c.nbctl(&[
            "lsp-add",
            "dp0",
            p,
            "--",
            "lsp-set-addresses",
            p,
            &format!("{mac} {ip}"),
        ])?;
    }
    let a = tb.add_pod_with_address(1, "dp1", "dp1", address(ports[0].1, ports[0].2))?;
    let b = tb.add_pod_with_address(2, "dp2", "dp2", address(ports[1].1, ports[1].2))?;
    c.nbctl(&["--wait=hv", "--timeout=60", "sync"])?;
    let mut rows = vec![transfer(&tb, "OVN", &a, &b, b.ip, cfg, progress)?];
    if cfg.services {
        for cmd in services_commands(b.ip) {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            c.nbctl(&args)?;
        }
        c.nbctl(&["--wait=hv", "--timeout=60", "sync"])?;
        rows.push(transfer(&tb, "OVN, ACLs + LB", &a, &b, VIP, cfg, progress)?);
    }
    drop(c);
    Ok(rows)
}

/// Runs raw OVS, then each system, each on fresh testbed hosts torn down before the next.
pub fn run_dataplane(
    cfg: &DataplaneConfig,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Throughput>> {
    if cfg.seconds == 0 || cfg.seconds > 600 {
        bail!("invalid seconds = {}: want 1..=600", cfg.seconds);
    }
    if cfg.streams == 0 || cfg.streams > 64 {
        bail!("invalid streams = {}: want 1..=64", cfg.streams);
    }
    let mut out = Vec::new();
    if cfg.raw {
        out.push(raw(cfg, progress)?);
    }
    for s in &cfg.systems {
        out.extend(match s {
            System::Weft => weft(cfg, progress)?,
            System::Ovn => ovn(cfg, progress)?,
        });
    }
    Ok(out)
}

/// Markdown table, ratios to the raw OVS row when there is one.
pub fn render(rows: &[Throughput], cfg: &DataplaneConfig) -> String {
    let raw = rows
        .iter()
        .find(|r| r.what == "raw OVS")
        .map(|r| r.bits_per_second);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "iperf3 TCP, pod on host 1 → pod on host 2 over Geneve, {} s, {} stream(s), pod MTU {}:\n",
        cfg.seconds,
        cfg.streams,
        rows.first().map(|r| r.mtu).unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "| system | throughput | vs raw OVS | retransmits | ovs-vswitchd CPU (both hosts) | CPU-s per Gbit | iperf3 CPU sender / receiver |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = raw
            .filter(|b| *b > 0.0)
            .map(|b| format!("{:.2}×", r.bits_per_second / b))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {:.2} Gbit/s | {} | {} | {:.2} s | {:.2} | {:.0} % / {:.0} % |",
            r.what,
            r.bits_per_second / 1e9,
            ratio,
            r.retransmits,
            r.vswitchd_cpu_s,
            r.cpu_per_gbit(),
            r.iperf_cpu.0,
            r.iperf_cpu.1
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_iperf3_json() {
        let j = r#"{"end": {"streams": [], "sum_sent": {"bytes": 10, "bits_per_second": 2.5e9, "retransmits": 17, "sender": true},
            "sum_received": {"bytes": 10, "bits_per_second": 2400000000.5, "sender": true},
            "cpu_utilization_percent": {"host_total": 81.5, "host_user": 1, "remote_total": 40.25}}}"#;
        let (bps, re, h, r) = parse_iperf_json(j).unwrap();
        assert!((bps - 2_400_000_000.5).abs() < 1.0);
        assert_eq!(re, 17);
        assert_eq!((h, r), (81.5, 40.25));
        assert!(parse_iperf_json("{\"error\": \"unable to connect\"}").is_none());
    }

    #[test]
    fn cpu_per_gbit_and_ratios() {
        let t = |what: &str, bps: f64| Throughput {
            what: what.into(),
            bits_per_second: bps,
            retransmits: 0,
            vswitchd_cpu_s: 10.0,
            iperf_cpu: (50.0, 40.0),
            seconds: 10.0,
            mtu: 1400,
        };
        assert!((t("x", 1e9).cpu_per_gbit() - 1.0).abs() < 1e-9);
        let md = render(
            &[t("raw OVS", 2e9), t("Weft", 1e9)],
            &DataplaneConfig::default(),
        );
        assert!(md.contains("| Weft | 1.00 Gbit/s | 0.50× |"), "{md}");
    }
}
