//! The CNI_NETNS check: the path must be a network namespace, and not one the agent must
//! never touch (its own, the host's = PID 1's, the one ovs-vswitchd runs in). Namespaces are
//! compared by the device and inode of their nsfs file, as `ip netns identify` does.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;

use super::PlugError;

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// What a path turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsInfo {
    pub id: NsId,
    /// The namespace type from the nsfs name (`net` of `net:[4026532281]`); None when the
    /// name does not tell (a bind mount such as `/run/netns/X`) or it is no namespace.
    pub kind: Option<String>,
    /// On the nsfs device (a namespace file, maybe bind-mounted).
    pub nsfs: bool,
}

/// Reads what `path` is: opens it and reads `/proc/self/fd/N`, which names an nsfs file
/// `TYPE:[INODE]`.
pub fn inspect(path: &str) -> std::io::Result<NsInfo> {
    let f = File::open(path)?;
    let m = f.metadata()?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let name = link.to_string_lossy();
    let kind = name
        .strip_suffix(']')
        .and_then(|s| s.split_once(":["))
        .filter(|(_, ino)| ino.parse::<u64>().ok() == Some(m.ino()))
        .map(|(k, _)| k.to_string());
    let nsfs = std::fs::metadata("/proc/self/ns/net").is_ok_and(|own| own.dev() == m.dev());
    Ok(NsInfo {
        id: NsId {
            dev: m.dev(),
            ino: m.ino(),
        },
        kind,
        nsfs,
    })
}

/// Pure: where to open `path` from: itself when it exists here, else the same path in PID 1's
/// mount namespace (`/proc/1/root/PATH`) when that exists. An agent in a pod with the host's
/// PID namespace then finds a namespace the runtime bind-mounted after the agent started even
/// when the mount did not propagate into the agent's container (`mountPropagation:
/// HostToContainer` ignored, as by `podman kube play`).
pub fn resolve_with(path: &str, exists: impl Fn(&str) -> bool) -> String {
    if path.is_empty() || exists(path) {
        return path.to_string();
    }
    let via_init = format!("/proc/1/root{path}");
    if path.starts_with('/') && exists(&via_init) {
        via_init
    } else {
        path.to_string()
    }
}

/// [`resolve_with`] on this machine.
pub fn resolve(path: &str) -> String {
    resolve_with(path, |p| std::path::Path::new(p).exists())
}

/// Whether `nsenter --net=PATH true` can enter `path` as a network namespace (it cannot
/// enter any other kind); changes nothing.
async fn enters_as_network_namespace(path: &str) -> bool {
    tokio::process::Command::new("nsenter")
        .arg(format!("--net={path}"))
        .arg("true")
        .kill_on_drop(true)
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// Pure: whether `target` (the namespace at `path`) may be used as a pod's namespace, given
/// the namespaces that may not (`(what it is, its identity)`).
pub fn check(path: &str, target: &NsInfo, forbidden: &[(&str, NsId)]) -> Result<(), PlugError> {
    let refuse = |reason: String| PlugError::Netns {
        path: path.to_string(),
        reason,
    };
    match target.kind.as_deref() {
        Some("net") => {}
        Some(other) => {
            return Err(refuse(format!(
                "is a {other} namespace, not a network namespace"
            )))
        }
        None if target.nsfs => {
            return Err(refuse("is a namespace but not a network namespace".into()))
        }
        None => return Err(refuse("is not a network namespace".into())),
    }
    for (what, id) in forbidden {
        if *id == target.id {
            return Err(refuse(format!(
                "is {what}; a pod needs a network namespace of its own"
            )));
        }
    }
    Ok(())
}

/// Checks `path` against the agent's own namespace, the host's (PID 1's) and `host_netns`
/// (where ovs-vswitchd runs, when configured). A forbidden namespace that cannot be read
/// (no /proc/1 in a container without the host's PID namespace) is skipped.
pub async fn check_path(path: &str, host_netns: Option<&str>) -> Result<(), PlugError> {
    let mut target = inspect(path).map_err(|e| PlugError::Netns {
        path: path.to_string(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "no such network namespace".into()
        } else {
            format!("cannot open: {e}")
        },
    })?;
    if target.kind.is_none() && target.nsfs && enters_as_network_namespace(path).await {
        target.kind = Some("net".into());
    }
    let mut forbidden = Vec::new();
    for (what, p) in [
        (
            "the agent's own network namespace",
            Some("/proc/self/ns/net"),
        ),
        (
            "the host's network namespace (PID 1's)",
            Some("/proc/1/ns/net"),
        ),
        ("the network namespace ovs-vswitchd runs in", host_netns),
    ] {
        if let Some(info) = p.and_then(|p| inspect(p).ok()) {
            forbidden.push((what, info.id));
        }
    }
    check(path, &target, &forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ino: u64, kind: Option<&str>) -> NsInfo {
        NsInfo {
            id: NsId { dev: 4, ino },
            kind: kind.map(str::to_string),
            nsfs: true,
        }
    }

    #[test]
    fn refuses_non_network_and_forbidden_namespaces() {
        let host = NsId { dev: 4, ino: 1 };
        let own = NsId { dev: 4, ino: 2 };
        let forbidden = [("the host's", host), ("the agent's own", own)];
        assert!(check("/run/netns/p", &info(3, Some("net")), &forbidden).is_ok());
        let e = check("/proc/1/ns/net", &info(1, Some("net")), &forbidden).unwrap_err();
        assert!(matches!(e, PlugError::Netns { .. }), "{e}");
        assert!(e.to_string().contains("/proc/1/ns/net"), "{e}");
        assert!(e.to_string().contains("the host's"), "{e}");
        let e = check("/x", &info(2, Some("net")), &forbidden).unwrap_err();
        assert!(e.to_string().contains("agent's own"), "{e}");
        let e = check("/proc/9/ns/mnt", &info(7, Some("mnt")), &forbidden).unwrap_err();
        assert!(e.to_string().contains("mnt namespace"), "{e}");
        let e = check("/run/netns/m", &info(8, None), &forbidden).unwrap_err();
        assert!(
            e.to_string().contains("a namespace but not a network"),
            "{e}"
        );
        let mut file = info(9, None);
        file.nsfs = false;
        let e = check("/etc/hostname", &file, &forbidden).unwrap_err();
        assert!(e.to_string().contains("is not a network namespace"), "{e}");
    }

    #[test]
    fn resolves_through_pid1_when_not_visible_here() {
        let here = |p: &str| p == "/run/netns/a";
        assert_eq!(resolve_with("/run/netns/a", here), "/run/netns/a");
        let init = |p: &str| p == "/proc/1/root/run/netns/b";
        assert_eq!(
            resolve_with("/run/netns/b", init),
            "/proc/1/root/run/netns/b"
        );
        assert_eq!(resolve_with("/run/netns/c", |_| false), "/run/netns/c");
        assert_eq!(resolve_with("", |_| true), "");
    }

    #[tokio::test]
    async fn inspects_real_namespaces() {
        let own = inspect("/proc/self/ns/net").expect("own netns");
        assert_eq!(own.kind.as_deref(), Some("net"));
        let mnt = inspect("/proc/self/ns/mnt").expect("own mntns");
        assert_eq!(mnt.kind.as_deref(), Some("mnt"));
        let file = inspect("/proc/self/status").expect("a file");
        assert_eq!(file.kind, None);
        assert!(!file.nsfs);
        assert!(check_path("/proc/self/ns/net", None).await.is_err());
        assert!(check_path("/proc/self/ns/mnt", None).await.is_err());
        assert!(check_path("/nonexistent/netns", None)
            .await
            .unwrap_err()
            .to_string()
            .contains("no such network namespace"));
    }
}
