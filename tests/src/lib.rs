//! `weft-testbed`: simulated multi-host Weft deployments on one machine.
//!
//! Start here:
//! - [`etcd::Etcd`] — a real etcd on loopback with a temp data dir.
//! - [`ovs::Ovs`] — an ovsdb-server + ovs-vswitchd pair in a temp dir, optionally in a netns.
//! - [`bin_path`] / [`find_bin`] — locate this workspace's binaries (`weft-controller`,
//!   `weft-agent`, `weftctl`).
//! - [`skip::require`] — what a test does when a prerequisite is missing: fail, naming it and
//!   how to get it, unless `WEFT_ALLOW_SKIP=1` (then it prints `SKIPPED <test>: <why>`).
//!
//! Every process is started by the harness, tracked by PID, and killed on drop, so several
//! instances can run side by side in one test process.

pub mod cri;
pub mod docker;
pub mod etcd;
pub mod net;
pub mod ovs;
pub mod pki;
pub mod pod;
pub mod process;
pub mod sandbox;
pub mod skip;
pub mod testbed;
pub mod weftctl;

use std::path::PathBuf;

/// Where this workspace's `target/` directory is (compile-time manifest dir + `..`), unless
/// `CARGO_TARGET_DIR` was set at runtime.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// Path of a workspace binary: `$WEFT_BIN_DIR/NAME` if `WEFT_BIN_DIR` is set, otherwise the
/// newer of `target/debug/NAME` and `target/release/NAME` of this workspace. When neither
/// exists it returns the `target/debug` path (use [`find_bin`] for an error instead).
pub fn bin_path(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let target = target_dir();
    let debug = target.join("debug").join(name);
    let release = target.join("release").join(name);
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(&debug), mtime(&release)) {
        (Some(d), Some(r)) if r > d => release,
        (None, Some(_)) => release,
        _ => debug,
    }
}

/// Like [`bin_path`] but fails, naming the path and the fix, when the binary is missing.
pub fn find_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_path(name);
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!(
            "binary `{name}` not found at {} (run cargo build --workspace --bins, or set WEFT_BIN_DIR)",
            path.display()
        )
    }
}

/// Whether this process runs as root (real uid 0, from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .as_deref()
        == Some("0")
}

/// Whether [`find_bin`] would succeed.
pub fn bin_available(name: &str) -> bool {
    bin_path(name).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_error_names_the_fix() {
        let err = find_bin("definitely-not-a-weft-binary")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("cargo build --workspace --bins"), "{err}");
        assert!(err.contains("definitely-not-a-weft-binary"), "{err}");
    }

    #[test]
    fn bin_path_is_under_target() {
        if std::env::var_os("WEFT_BIN_DIR").is_none() {
            let p = bin_path("weftctl");
            assert!(p.to_string_lossy().contains("target"), "{}", p.display());
            assert!(p.ends_with("weftctl"));
        }
    }
}
