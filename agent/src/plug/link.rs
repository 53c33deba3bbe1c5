//! Linux links for CNI and CNM: the veth pair, for CNI with the container side configured
//! inside the container's network namespace, for Docker with both ends here (Docker moves and
//! configures the peer itself); the namespace commands run as (`nsenter --net=PATH ip ...`), checksum offload off for the userspace
//! datapath. Everything runs `ip`/`ethtool` as child processes; failures carry their stderr.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::Value;
use tokio::process::Command;

use super::PlugError;

async fn run(program: &str, args: &[&str]) -> Result<String, PlugError> {
    let out = Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| PlugError::Datapath(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(PlugError::Datapath(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `ip ARGS` in our own namespace.
async fn ip(args: &[&str]) -> Result<String, PlugError> {
    run("ip", args).await
}

/// `PROGRAM ARGS` inside the namespace at `netns`.
async fn run_in(netns: &str, program: &str, args: &[&str]) -> Result<String, PlugError> {
    let net = format!("--net={netns}");
    let mut full = vec![net.as_str(), program];
    full.extend_from_slice(args);
    run("nsenter", &full).await
}

/// `ip ARGS` in the namespace at `ns`, or in ours when None.
async fn ip_at(ns: Option<&str>, args: &[&str]) -> Result<String, PlugError> {
    match ns {
        None => ip(args).await,
        Some(n) => run_in(n, "ip", args).await,
    }
}

fn is_missing(e: &PlugError) -> bool {
    matches!(e, PlugError::Datapath(m) if m.contains("Cannot find device") || m.contains("does not exist"))
}

/// The container side as ADD wants it.
#[derive(Debug, Clone)]
pub struct ContainerSide<'a> {
    pub netns: &'a str,
    /// Name the peer is created with (in the container namespace), then renamed.
    pub temp_ifname: &'a str,
    pub ifname: &'a str,
    pub mac: &'a str,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
    /// `ethtool -K IF tx off` on both ends (userspace datapath).
    pub tx_offload_off: bool,
}

/// Creates the veth (`host` in the namespace at `host_ns`, ours when None; the peer in the
/// container namespace), configures the container side and brings both up. Does not clean
/// up on failure (the caller does, with [`delete_link`] on `host`, which removes the peer).
pub async fn create_veth(
    host_ns: Option<&str>,
    host: &str,
    c: &ContainerSide<'_>,
) -> Result<(), PlugError> {
    if !Path::new(c.netns).exists() {
        return Err(PlugError::Netns {
            path: c.netns.to_string(),
            reason: "no such network namespace".into(),
        });
    }
    if run_in(c.netns, "ip", &["link", "show", "dev", c.ifname])
        .await
        .is_ok()
    {
        return Err(PlugError::Datapath(format!(
            "interface {} already exists in {}",
            c.ifname, c.netns
        )));
    }
    let mtu = c.mtu.to_string();
    ip_at(
        host_ns,
        &[
            "link",
            "add",
            host,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            c.temp_ifname,
            "mtu",
            &mtu,
            "netns",
            c.netns,
        ],
    )
    .await?;
    let ns = c.netns;
    run_in(
        ns,
        "ip",
        &["link", "set", "dev", c.temp_ifname, "name", c.ifname],
    )
    .await?;
    run_in(
        ns,
        "ip",
        &["link", "set", "dev", c.ifname, "address", c.mac],
    )
    .await?;
    let cidr = format!("{}/{}", c.ip, c.prefix_len);
    run_in(ns, "ip", &["addr", "add", &cidr, "dev", c.ifname]).await?;
    run_in(ns, "ip", &["link", "set", "dev", c.ifname, "up"]).await?;
    run_in(ns, "ip", &["link", "set", "dev", "lo", "up"]).await?;
    if let Some(gw) = c.gateway.filter(|g| *g != c.ip) {
        run_in(
            ns,
            "ip",
            &[
                "route",
                "replace",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                c.ifname,
            ],
        )
        .await?;
    }
    if c.tx_offload_off {
        run_in(ns, "ethtool", &["-K", c.ifname, "tx", "off"]).await?;
        match host_ns {
            None => run("ethtool", &["-K", host, "tx", "off"]).await?,
            Some(n) => run_in(n, "ethtool", &["-K", host, "tx", "off"]).await?,
        };
    }
    ip_at(host_ns, &["link", "set", "dev", host, "up"]).await?;
    Ok(())
}

/// Creates the veth `host`/`peer`, both in the namespace at `host_ns` (ours when None), the
/// peer with `mac` and left down for the runtime to move into its sandbox; tx checksum
/// offload off on both ends when asked (the setting moves with the peer). Does not clean up
/// on failure (the caller deletes `host`).
pub async fn create_pair(
    host_ns: Option<&str>,
    host: &str,
    peer: &str,
    mac: &str,
    mtu: u32,
    tx_offload_off: bool,
) -> Result<(), PlugError> {
    let mtu = mtu.to_string();
    ip_at(
        host_ns,
        &[
            "link", "add", host, "mtu", &mtu, "type", "veth", "peer", "name", peer, "mtu", &mtu,
        ],
    )
    .await?;
    ip_at(host_ns, &["link", "set", "dev", peer, "address", mac]).await?;
    if tx_offload_off {
        for dev in [host, peer] {
            match host_ns {
                None => run("ethtool", &["-K", dev, "tx", "off"]).await?,
                Some(n) => run_in(n, "ethtool", &["-K", dev, "tx", "off"]).await?,
            };
        }
    }
    ip_at(host_ns, &["link", "set", "dev", host, "up"]).await?;
    Ok(())
}

/// Deletes a link in the namespace at `ns` (ours when None), and so its veth peer; a
/// missing link is not an error.
pub async fn delete_link(ns: Option<&str>, name: &str) -> Result<(), PlugError> {
    match ip_at(ns, &["link", "del", "dev", name]).await {
        Ok(_) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What `ip -j addr show` says about one interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkInfo {
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// IPv4 addresses with prefix length.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// Pure: parses `ip -j addr show dev X` output.
pub fn parse_ip_addr_json(out: &str) -> Option<LinkInfo> {
    let v: Value = serde_json::from_str(out).ok()?;
    let l = v.as_array()?.first()?;
    let ipv4 = l
        .get("addr_info")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|x| x.get("family").and_then(Value::as_str) == Some("inet"))
                .filter_map(|x| {
                    let ip = x.get("local")?.as_str()?.parse().ok()?;
                    let len = u8::try_from(x.get("prefixlen")?.as_u64()?).ok()?;
                    Some((ip, len))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(LinkInfo {
        mac: l.get("address").and_then(Value::as_str).map(str::to_owned),
        mtu: l
            .get("mtu")
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok()),
        up: l
            .get("flags")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("UP"))),
        ipv4,
    })
}

/// The link `name` in our namespace (`netns` None) or in the namespace at `netns`.
pub async fn link_info(netns: Option<&str>, name: &str) -> Result<LinkInfo, PlugError> {
    let args = ["-j", "addr", "show", "dev", name];
    let out = ip_at(netns, &args).await?;
    parse_ip_addr_json(&out)
        .ok_or_else(|| PlugError::Datapath(format!("cannot parse `ip -j addr show dev {name}`")))
}

/// Whether the namespace at `netns` has a default route via `gw`.
pub async fn has_default_route(netns: &str, gw: Ipv4Addr) -> Result<bool, PlugError> {
    let out = run_in(netns, "ip", &["-j", "route", "show", "default"]).await?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| PlugError::Datapath(format!("cannot parse `ip -j route`: {e}")))?;
    let gw = gw.to_string();
    Ok(v.as_array().is_some_and(|rs| {
        rs.iter()
            .any(|r| r.get("gateway").and_then(Value::as_str) == Some(gw.as_str()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let out = r#"[{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,"address":"0a:00:00:00:00:05","addr_info":[{"family":"inet","local":"10.0.0.5","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#;
        let l = parse_ip_addr_json(out).expect("parse");
        assert_eq!(l.mac.as_deref(), Some("0a:00:00:00:00:05"));
        assert_eq!(l.mtu, Some(1400));
        assert!(l.up);
        assert_eq!(l.ipv4, vec![(Ipv4Addr::new(10, 0, 0, 5), 24)]);
        assert_eq!(parse_ip_addr_json("[]"), None);
        assert_eq!(parse_ip_addr_json("garbage"), None);
    }
}
