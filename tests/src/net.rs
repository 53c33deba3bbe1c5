//! Network namespace and link plumbing (thin wrappers over `ip`, `ethtool`), the naming scheme
//! for a testbed run, and clean-up of what an earlier (crashed) run left behind.
//!
//! Names: every run has a short prefix `PFX` (at most 10 characters of `[a-z0-9]`). Namespaces
//! are `PFX-fab` (fabric), `PFX-hN` (host N), `PFX-p-NAME` (pods). The only link in the root
//! namespace is `PFX-m` (management veth, see [`crate::testbed`]); every other link lives inside
//! one of the run's namespaces, so its short fixed name cannot collide with another run's.

use crate::process::{kill_pid, pid_alive, run};
use anyhow::{bail, Context};
use std::net::Ipv4Addr;
use std::path::Path;

/// Longest allowed run prefix, so that `PFX-m` fits the 15-character link-name limit.
pub const MAX_PREFIX_LEN: usize = 10;

/// Environment variable set on every process a testbed starts; its value is the run prefix.
/// [`cleanup_stale`] finds leftover root-namespace processes (etcd, controllers) by it.
pub const MARKER_ENV: &str = "WEFT_TESTBED";

/// Check a run prefix: 1..=10 characters of lower-case ASCII letters and digits, starting with
/// a letter.
pub fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    let ok_chars = prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let starts_alpha = prefix
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase());
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !ok_chars || !starts_alpha {
        bail!(
            "invalid testbed prefix {prefix:?}: want 1..={MAX_PREFIX_LEN} characters of [a-z0-9], starting with a letter"
        );
    }
    Ok(())
}

/// A fresh random prefix `wt` + 6 base-36 characters.
pub fn random_prefix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::from("wt");
    for _ in 0..6 {
        let i = rand::random_range(0..ALPHABET.len());
        s.push(char::from(ALPHABET[i]));
    }
    s
}

/// The names used by one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> anyhow::Result<Names> {
        validate_prefix(prefix)?;
        Ok(Names {
            prefix: prefix.to_string(),
        })
    }
    /// The fabric namespace (underlay and management bridges).
    pub fn fabric(&self) -> String {
        format!("{}-fab", self.prefix)
    }
    /// Namespace of host `n` (1-based).
    pub fn host(&self, n: usize) -> String {
        format!("{}-h{n}", self.prefix)
    }
    /// Namespace of pod `name`.
    pub fn pod(&self, name: &str) -> String {
        format!("{}-p-{name}", self.prefix)
    }
    /// The "outside" namespace (`TestbedConfig::external`): the provider network and beyond.
    pub fn outside(&self) -> String {
        format!("{}-out", self.prefix)
    }
    /// Root-namespace end of the management veth.
    pub fn root_link(&self) -> String {
        format!("{}-m", self.prefix)
    }
}

/// Host-side veth name for a pod: `v` + 8 hex digits of a stable hash of the pod name (15-char
/// limit, unique per host for practical purposes).
pub fn pod_veth_name(pod: &str) -> String {
    // FNV-1a, 32 bit: stable across builds, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in pod.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("v{h:08x}")
}

/// Pod names: 1..=40 characters of `[A-Za-z0-9_.-]` (they become namespace names).
pub fn validate_pod_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.starts_with('.');
    if !ok {
        bail!("invalid pod name {name:?}: want 1..=40 characters of [A-Za-z0-9_.-]");
    }
    Ok(())
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

/// `ip -n NS ARGS`.
pub fn ip_n(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Create a namespace with `lo` up.
pub fn netns_add(ns: &str) -> anyhow::Result<()> {
    ip(&["netns", "add", ns]).with_context(|| format!("creating netns {ns}"))?;
    ip_n(ns, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// Kill every process inside the namespace, then delete it. No error if it does not exist.
pub fn netns_del(ns: &str) {
    for pid in netns_pids(ns) {
        kill_pid(pid);
    }
    if netns_exists(ns) {
        let _ = ip(&["netns", "del", ns]);
    }
}

/// Whether `/run/netns/NS` exists.
pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// All named namespaces.
pub fn netns_list() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// PIDs of processes in a namespace (`ip netns pids`).
pub fn netns_pids(ns: &str) -> Vec<u32> {
    if !netns_exists(ns) {
        return Vec::new();
    }
    ip(&["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether a link exists in the root namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// `ethtool -K DEV tx off` in a namespace: with the userspace datapath, TCP leaving a veth
/// with offloaded (unfinished) checksums is never fixed up, so it must be computed in software.
pub fn tx_offload_off(ns: &str, dev: &str) -> anyhow::Result<()> {
    run(
        "ip",
        &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"],
    )
    .with_context(|| format!("ethtool -K {dev} tx off in {ns}"))?;
    Ok(())
}

/// PIDs of root-namespace processes whose environment carries `WEFT_TESTBED=prefix`.
pub fn marked_pids(prefix: &str) -> Vec<u32> {
    let needle = format!("{MARKER_ENV}={prefix}");
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Remove everything a run with this prefix may have left: processes marked with the prefix,
/// processes in its namespaces, the namespaces, and the root management link.
pub fn cleanup_stale(prefix: &str) -> anyhow::Result<()> {
    validate_prefix(prefix)?;
    for pid in marked_pids(prefix) {
        kill_pid(pid);
    }
    let dash = format!("{prefix}-");
    let mut namespaces: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&dash))
        .collect();
    // Pods first, fabric last (so veth peers disappear with their owners in a sane order).
    namespaces.sort_by_key(|n| {
        if n.ends_with("-fab") {
            2
        } else if n.contains("-p-") {
            0
        } else {
            1
        }
    });
    for ns in namespaces {
        netns_del(&ns);
    }
    let names = Names::new(prefix)?;
    if link_exists(&names.root_link()) {
        let _ = ip(&["link", "del", &names.root_link()]);
    }
    Ok(())
}

/// Directory under which owned (test) runs keep their files: `/tmp/weft-testbed/PFX`.
pub const RUNS_DIR: &str = "/tmp/weft-testbed";

/// File in a run directory that was torn down but kept for inspection
/// (`WEFT_TESTBED_KEEP`); [`cleanup_orphans`] skips such directories.
pub const KEPT_MARKER: &str = "kept";

/// Clean up every run under [`RUNS_DIR`] whose owner process (recorded in `owner.pid`) is
/// gone — left behind by a test that crashed or was interrupted. Returns the prefixes cleaned.
pub fn cleanup_orphans() -> Vec<String> {
    let mut cleaned = Vec::new();
    let Ok(rd) = std::fs::read_dir(RUNS_DIR) else {
        return cleaned;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let Some(prefix) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if validate_prefix(&prefix).is_err() || e.path().join(KEPT_MARKER).exists() {
            continue;
        }
        let owner = std::fs::read_to_string(e.path().join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let orphan = match owner {
            Some(pid) => !pid_alive(pid),
            // No owner file: only clean it if it is old (a run being set up writes it first).
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 600),
        };
        if orphan {
            let _ = cleanup_stale(&prefix);
            let _ = std::fs::remove_dir_all(e.path());
            cleaned.push(prefix);
        }
    }
    cleaned
}

/// Pick a /24 in 10.128.0.0/9 for the management network that no address or route in the
/// root namespace overlaps. Returns its first three octets.
pub fn pick_mgmt_subnet() -> anyhow::Result<[u8; 3]> {
    let used = ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default()
        + &ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
    for _ in 0..200 {
        let b = rand::random_range(128u8..=254);
        let c = rand::random_range(0u8..=255);
        let net = format!("10.{b}.{c}.");
        if !used.contains(&net) && !used.contains(&format!("10.{b}.0.0/16")) {
            return Ok([10, b, c]);
        }
    }
    bail!("no free /24 found in 10.128.0.0/9 for the management network")
}

/// Whether some other interface in the root namespace has an address in `net`/24 (used
/// after assigning ours, to detect a race with a concurrent run).
pub fn mgmt_subnet_conflicts(net: [u8; 3], our_link: &str) -> bool {
    let out = ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
    let needle = format!(" {}.{}.{}.", net[0], net[1], net[2]);
    out.lines()
        .any(|l| l.contains(&needle) && !l.contains(&format!(" {our_link} ")))
}

/// Address `host` in the /24 `net`.
pub fn addr_in(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(validate_prefix("wt1234ab").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("Wt").is_err());
        assert!(validate_prefix("1abc").is_err());
        assert!(validate_prefix("abcdefghijk").is_err());
        assert!(validate_prefix("ab-c").is_err());
        for _ in 0..20 {
            let p = random_prefix();
            assert!(validate_prefix(&p).is_ok(), "{p}");
        }
    }

    #[test]
    fn names_fit_link_limits() {
        let n = Names::new("abcdefghij").expect("valid");
        assert!(n.root_link().len() <= 15);
        assert_eq!(n.host(3), "abcdefghij-h3");
        assert_eq!(n.pod("p1"), "abcdefghij-p-p1");
        assert_eq!(n.fabric(), "abcdefghij-fab");
    }

    #[test]
    fn veth_names_are_stable_and_short() {
        let a = pod_veth_name("pod-a");
        assert_eq!(a, pod_veth_name("pod-a"));
        assert_ne!(a, pod_veth_name("pod-b"));
        assert!(a.len() <= 15);
    }

    #[test]
    fn pod_names() {
        assert!(validate_pod_name("p1").is_ok());
        assert!(validate_pod_name("web-1.a_b").is_ok());
        assert!(validate_pod_name("").is_err());
        assert!(validate_pod_name("a/b").is_err());
        assert!(validate_pod_name(".hidden").is_err());
        assert!(validate_pod_name(&"x".repeat(41)).is_err());
    }
}
