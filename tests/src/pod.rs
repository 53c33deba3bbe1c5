//! Pods: a network namespace with `eth0`, the peer of a veth whose host end is a port of the
//! host's `br-int` with `external_ids:iface-id=<logical port>`. MAC and IP come from the
//! logical port; tx checksum offload is off (userspace datapath); MTU is the underlay MTU minus
//! the encap overhead. Create with [`create_pod`]; [`Pod`] has `ping`, `exec` and friends.

use crate::net::{ip_n, netns_add, netns_del, tx_offload_off};
use crate::process::run;
use crate::weftctl::PortAddress;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};

/// A pod as created (plain data: serialisable into the sandbox state file, cloneable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub name: String,
    /// Logical port the pod's VIF is bound to.
    pub lport: String,
    /// 1-based host index.
    pub host: usize,
    /// The pod's namespace.
    pub netns: String,
    /// The host's namespace.
    pub host_netns: String,
    /// Host-side veth name (a port of br-int).
    pub veth: String,
    /// OVSDB of the host (`unix:PATH`).
    pub ovsdb: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
}

/// What [`create_pod`] needs.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub name: String,
    pub lport: String,
    pub host: usize,
    pub netns: String,
    pub host_netns: String,
    pub veth: String,
    pub ovsdb: String,
    pub bridge: String,
    pub address: PortAddress,
    pub mtu: u32,
}

/// Create the namespace, the veth, address it, and plug the host end into br-int. On failure
/// everything created so far is removed.
pub fn create_pod(spec: &PodSpec) -> anyhow::Result<Pod> {
    if crate::net::netns_exists(&spec.netns) {
        bail!("pod namespace {} already exists", spec.netns);
    }
    let pod = Pod {
        name: spec.name.clone(),
        lport: spec.lport.clone(),
        host: spec.host,
        netns: spec.netns.clone(),
        host_netns: spec.host_netns.clone(),
        veth: spec.veth.clone(),
        ovsdb: spec.ovsdb.clone(),
        mac: spec.address.mac.clone(),
        ip: spec.address.ip,
        prefix_len: spec.address.prefix_len,
        gateway: spec.address.gateway,
        mtu: spec.mtu,
    };
    match plumb(spec, &pod) {
        Ok(()) => Ok(pod),
        Err(e) => {
            delete_pod(&pod);
            Err(e.context(format!("creating pod {}", spec.name)))
        }
    }
}

fn plumb(spec: &PodSpec, pod: &Pod) -> anyhow::Result<()> {
    let mtu = spec.mtu.to_string();
    netns_add(&pod.netns)?;
    let h = &pod.host_netns;
    ip_n(
        h,
        &[
            "link", "add", &pod.veth, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "mtu",
            &mtu, "netns", &pod.netns,
        ],
    )?;
    ip_n(h, &["link", "set", &pod.veth, "up"])?;
    tx_offload_off(h, &pod.veth)?;
    let p = &pod.netns;
    ip_n(p, &["link", "set", "eth0", "address", &pod.mac])?;
    ip_n(p, &["link", "set", "eth0", "up"])?;
    let cidr = format!("{}/{}", pod.ip, pod.prefix_len);
    ip_n(p, &["addr", "add", &cidr, "dev", "eth0"])?;
    if let Some(gw) = pod.gateway.filter(|gw| *gw != pod.ip) {
        ip_n(
            p,
            &[
                "route",
                "add",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                "eth0",
            ],
        )?;
    }
    tx_offload_off(p, "eth0")?;
    let db = format!("--db={}", pod.ovsdb);
    let iface_id = format!("external_ids:iface-id={}", pod.lport);
    run(
        "ovs-vsctl",
        &[
            &db,
            "--timeout=30",
            "add-port",
            &spec.bridge,
            &pod.veth,
            "--",
            "set",
            "interface",
            &pod.veth,
            &iface_id,
        ],
    )?;
    Ok(())
}

/// Unplug from br-int and delete the namespace (which deletes the veth). Best effort.
pub fn delete_pod(pod: &Pod) {
    let db = format!("--db={}", pod.ovsdb);
    let _ = run(
        "ovs-vsctl",
        &[&db, "--timeout=10", "--if-exists", "del-port", &pod.veth],
    );
    netns_del(&pod.netns);
    // If the pod netns was already gone, the host end may remain.
    let _ = ip_n(&pod.host_netns, &["link", "del", &pod.veth]);
}

/// Result of a ping run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
}

impl PingResult {
    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }
    /// At least one reply.
    pub fn any(&self) -> bool {
        self.received > 0
    }
    /// Every request answered (and at least one sent).
    pub fn all(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted
    }
}

/// Parse ping's summary line "N packets transmitted, M received, ...".
pub fn parse_ping(out: &str) -> Option<PingResult> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    Some(PingResult {
        transmitted: nums.next()?,
        received: nums.next()?,
    })
}

/// Ping arguments: exactly `count` echoes `interval_ms` apart; after the last one ping waits
/// up to 2 s for outstanding replies. (No `-w`: with a deadline, iputils ping keeps sending
/// until it has `count` replies, and echoes outstanding at the deadline count as lost.)
fn ping_args(ip: &str, count: u32, interval_ms: u32) -> Vec<String> {
    let interval = format!("{}.{:03}", interval_ms / 1000, interval_ms % 1000);
    vec![
        "ping".into(),
        "-n".into(),
        "-q".into(),
        "-c".into(),
        count.to_string(),
        "-i".into(),
        interval,
        "-W".into(),
        "2".into(),
        ip.into(),
    ]
}

impl Pod {
    /// Run a command in the pod's namespace; stdout on success, error with stderr otherwise.
    pub fn exec(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", &self.netns];
        full.extend_from_slice(cmd);
        run("ip", &full)
    }

    /// Run a command in the pod; the raw output whatever the exit status.
    pub fn exec_output(&self, cmd: &[&str]) -> anyhow::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {cmd:?} in pod {}", self.name))
    }

    /// Start a command in the pod in the background; stdout/stderr piped. The caller owns it.
    pub fn spawn(&self, cmd: &[&str]) -> anyhow::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {cmd:?} in pod {}", self.name))
    }

    /// `ping -c COUNT` (200 ms apart) to `ip`; how many were answered. Loss is not an error.
    pub fn ping(&self, ip: impl ToString, count: u32) -> anyhow::Result<PingResult> {
        self.ping_interval(ip, count, 200)
    }

    /// Like [`Pod::ping`] with the interval in milliseconds (root may go below 200).
    pub fn ping_interval(
        &self,
        ip: impl ToString,
        count: u32,
        interval_ms: u32,
    ) -> anyhow::Result<PingResult> {
        let args = ping_args(&ip.to_string(), count, interval_ms);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.exec_output(&argv)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        parse_ping(&stdout).with_context(|| {
            format!(
                "ping from pod {} printed no summary: {stdout} {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Start a long ping in the background; [`BackgroundPing::wait`] returns the counts.
    pub fn ping_background(
        &self,
        ip: impl ToString,
        count: u32,
        interval_ms: u32,
    ) -> anyhow::Result<BackgroundPing> {
        let args = ping_args(&ip.to_string(), count, interval_ms);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(BackgroundPing {
            child: Some(self.spawn(&argv)?),
        })
    }

    /// The pod's ICMP `InEchos` counter (echo requests received), from `/proc/net/snmp`.
    pub fn icmp_in_echos(&self) -> anyhow::Result<u64> {
        let snmp = self.exec(&["cat", "/proc/net/snmp"])?;
        snmp_counter(&snmp, "Icmp", "InEchos")
            .with_context(|| format!("no Icmp InEchos in /proc/net/snmp of pod {}", self.name))
    }
}

/// A ping running in the background. Killed on drop if not waited for.
#[derive(Debug)]
pub struct BackgroundPing {
    child: Option<Child>,
}

impl BackgroundPing {
    /// Whether ping is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait for ping to finish and parse its summary.
    pub fn wait(mut self) -> anyhow::Result<PingResult> {
        let child = self.child.take().context("ping already waited for")?;
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        parse_ping(&stdout).with_context(|| format!("ping printed no summary: {stdout}"))
    }
}

impl Drop for BackgroundPing {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A counter from `/proc/net/snmp` ("Proto: names..." line followed by "Proto: values...").
pub fn snmp_counter(snmp: &str, proto: &str, name: &str) -> Option<u64> {
    let tag = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&tag));
    let header = lines.next()?;
    let values = lines.next()?;
    let idx = header.split_whitespace().position(|h| h == name)?;
    values.split_whitespace().nth(idx)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_summary() {
        let out = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n5 packets transmitted, 3 received, 40% packet loss, time 804ms\n";
        let r = parse_ping(out).expect("summary");
        assert_eq!(
            r,
            PingResult {
                transmitted: 5,
                received: 3
            }
        );
        assert_eq!(r.lost(), 2);
        assert!(r.any() && !r.all());
        let errs = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2040ms";
        assert_eq!(
            parse_ping(errs),
            Some(PingResult {
                transmitted: 3,
                received: 0
            })
        );
        assert_eq!(parse_ping("connect: Network is unreachable"), None);
    }

    #[test]
    fn ping_args_bound_the_run() {
        let a = ping_args("10.0.0.1", 10, 50);
        assert!(a.windows(2).any(|w| w[0] == "-i" && w[1] == "0.050"));
        assert!(a.windows(2).any(|w| w[0] == "-c" && w[1] == "10"));
        assert!(
            !a.iter().any(|x| x == "-w"),
            "no deadline: it changes -c semantics"
        );
    }

    #[test]
    fn snmp() {
        let s = "Ip: Forwarding DefaultTTL\nIp: 2 64\nIcmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos\nIcmp: 9 0 0 1 0 0 0 0 7\n";
        assert_eq!(snmp_counter(s, "Icmp", "InEchos"), Some(7));
        assert_eq!(snmp_counter(s, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(snmp_counter(s, "Tcp", "InSegs"), None);
    }
}
