//! The host side of the management port: the internal link's MAC, MTU and state, its
//! address and the cluster routes, with `ip` (child processes, in the agent's own network
//! namespace, which is the host's). [`commands`] is the pure planner: from what `ip -j`
//! shows to the commands that correct it (none when everything is in place, so a restarted
//! agent changes nothing). Only the management link's own addresses and routes are touched.

use serde_json::Value;
use tokio::process::Command;

use super::{HostPlan, MgmtError};

async fn ip(args: &[String]) -> Result<String, MgmtError> {
    let out = Command::new("ip")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| MgmtError::Host(format!("cannot run ip: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(MgmtError::Host(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Array(Vec::new()))
}

/// Pure: the `ip` commands that bring link `iface` to `plan`, given `ip -j link show dev`,
/// `ip -j -4 addr show dev` and `ip -j -4 route show dev` of it.
pub fn commands(
    iface: &str,
    plan: &HostPlan,
    link: &Value,
    addrs: &Value,
    routes: &Value,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let l = link.get(0).cloned().unwrap_or(Value::Null);
    let mac = l.get("address").and_then(Value::as_str).unwrap_or("");
    if !mac.eq_ignore_ascii_case(&plan.mac) {
        out.push(args(&["link", "set", "dev", iface, "address", &plan.mac]));
    }
    if l.get("mtu").and_then(Value::as_u64) != Some(u64::from(plan.mtu)) {
        out.push(args(&[
            "link",
            "set",
            "dev",
            iface,
            "mtu",
            &plan.mtu.to_string(),
        ]));
    }
    let up = l
        .get("flags")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("UP")));
    if !up {
        out.push(args(&["link", "set", "dev", iface, "up"]));
    }
    let want = plan.address.to_string();
    let mut have_want = false;
    for info in addrs
        .get(0)
        .and_then(|a| a.get("addr_info"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(local), Some(len)) = (
            info.get("local").and_then(Value::as_str),
            info.get("prefixlen").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let a = format!("{local}/{len}");
        if a == want {
            have_want = true;
        } else {
            out.push(args(&["addr", "del", &a, "dev", iface]));
        }
    }
    if !have_want {
        out.push(args(&["addr", "add", &want, "dev", iface]));
    }
    let have: Vec<(String, String, String)> = routes
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("dst"), s("gateway"), s("protocol"))
        })
        .collect();
    for r in &plan.routes {
        let dst = r.dst.to_string();
        let via = r.via.to_string();
        let present = have.iter().any(|(d, g, _)| {
            (d == &dst || (r.dst.prefix() == 32 && *d == r.dst.ip().to_string())) && g == &via
        });
        if !present {
            out.push(args(&["route", "replace", &dst, "via", &via, "dev", iface]));
        }
    }
    for (d, _, proto) in &have {
        if proto == "kernel" {
            continue;
        }
        let wanted = plan.routes.iter().any(|r| {
            r.dst.to_string() == *d || (r.dst.prefix() == 32 && r.dst.ip().to_string() == *d)
        });
        if !wanted {
            out.push(args(&["route", "del", d, "dev", iface]));
        }
    }
    out
}

/// Brings the host's link `iface` to `plan`; true when something was changed. An absent
/// link (ovs-vswitchd has not created it yet) is an error, retried by the caller.
pub async fn ensure(iface: &str, plan: &HostPlan) -> Result<bool, MgmtError> {
    let link = ip(&args(&["-j", "link", "show", "dev", iface]))
        .await
        .map_err(|e| MgmtError::Host(format!("management link {iface:?} not there (yet): {e}")))?;
    let addrs = ip(&args(&["-j", "-4", "addr", "show", "dev", iface])).await?;
    let routes = ip(&args(&["-j", "-4", "route", "show", "dev", iface])).await?;
    let cmds = commands(iface, plan, &json(&link), &json(&addrs), &json(&routes));
    let changed = !cmds.is_empty();
    for c in cmds {
        ip(&c).await?;
    }
    Ok(changed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::HostRoute;
    use super::*;
    use serde_json::json;

    fn plan() -> HostPlan {
        HostPlan {
            mac: "0a:00:00:3d:00:09".into(),
            address: "10.61.0.9/24".parse().unwrap(),
            mtu: 1400,
            routes: vec![HostRoute {
                dst: "10.62.0.0/16".parse().unwrap(),
                via: "10.61.0.1".parse().unwrap(),
            }],
        }
    }

    fn joined(c: Vec<Vec<String>>) -> Vec<String> {
        c.into_iter().map(|v| v.join(" ")).collect()
    }

    #[test]
    fn a_fresh_link_gets_mac_mtu_address_and_routes() {
        let link = json!([{"ifname": "weft-mp0", "address": "6e:11:22:33:44:55", "mtu": 1500, "flags": ["BROADCAST", "MULTICAST"]}]);
        let c = joined(commands(
            "weft-mp0",
            &plan(),
            &link,
            &json!([{"addr_info": []}]),
            &json!([]),
        ));
        assert_eq!(
            c,
            [
                "link set dev weft-mp0 address 0a:00:00:3d:00:09",
                "link set dev weft-mp0 mtu 1400",
                "link set dev weft-mp0 up",
                "addr add 10.61.0.9/24 dev weft-mp0",
                "route replace 10.62.0.0/16 via 10.61.0.1 dev weft-mp0",
            ]
        );
    }

    #[test]
    fn a_configured_link_needs_nothing_and_strays_go() {
        let link = json!([{"address": "0a:00:00:3d:00:09", "mtu": 1400, "flags": ["BROADCAST", "UP", "LOWER_UP"]}]);
        let addrs = json!([{"addr_info": [{"local": "10.61.0.9", "prefixlen": 24}]}]);
        let routes = json!([
            {"dst": "10.61.0.0/24", "protocol": "kernel", "scope": "link"},
            {"dst": "10.62.0.0/16", "gateway": "10.61.0.1"}
        ]);
        assert!(commands("weft-mp0", &plan(), &link, &addrs, &routes).is_empty());
        let addrs = json!([{"addr_info": [{"local": "10.61.0.4", "prefixlen": 24}, {"local": "10.61.0.9", "prefixlen": 24}]}]);
        let routes = json!([
            {"dst": "10.62.0.0/16", "gateway": "10.61.0.254"},
            {"dst": "10.70.0.0/16", "gateway": "10.61.0.1"}
        ]);
        let c = joined(commands("weft-mp0", &plan(), &link, &addrs, &routes));
        assert_eq!(
            c,
            [
                "addr del 10.61.0.4/24 dev weft-mp0",
                "route replace 10.62.0.0/16 via 10.61.0.1 dev weft-mp0",
                "route del 10.70.0.0/16 dev weft-mp0",
            ]
        );
    }
}
