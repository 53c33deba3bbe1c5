//! The one place that decides what a test does when something it needs is missing.
//!
//! No test passes by skipping: a missing binary, tool or privilege FAILS the test with a
//! message naming what is missing and how to get it, unless `WEFT_ALLOW_SKIP=1` is set, in
//! which case the test prints `SKIPPED <test>: <why>` and returns. CI installs and builds
//! everything (scripts/setup.sh, `cargo build --workspace --bins`), so nothing skips there.
//!
//! ```ignore
//! if !weft_testbed::skip::require("my_test", &missing) {
//!     return; // only reached with WEFT_ALLOW_SKIP=1
//! }
//! ```

/// The environment variable that turns a missing prerequisite from a failure into a skip.
pub const ALLOW_SKIP_ENV: &str = "WEFT_ALLOW_SKIP";

/// How to get everything the tests need; appended to every failure.
pub const HOW_TO_GET: &str = "install the tools with scripts/setup.sh (as root) and build the \
     binaries with `cargo build --workspace --bins`; or set WEFT_ALLOW_SKIP=1 to skip instead";

/// What a test does about its missing prerequisites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is missing: run.
    Run,
    /// Something is missing and `WEFT_ALLOW_SKIP=1`: print this line and return.
    Skip(String),
    /// Something is missing and skipping is not allowed: fail with this message.
    Fail(String),
}

/// The pure decision: `allow_skip` is the value of `WEFT_ALLOW_SKIP` (None when unset), and
/// `missing` lists what is missing, each entry naming the thing and how to get it. Only the
/// exact value `1` allows skipping.
pub fn decide(test: &str, allow_skip: Option<&str>, missing: &[String]) -> Decision {
    if missing.is_empty() {
        return Decision::Run;
    }
    let why = missing.join("; ");
    if allow_skip == Some("1") {
        Decision::Skip(format!("SKIPPED {test}: {why}"))
    } else {
        Decision::Fail(format!(
            "{test} cannot run, missing: {why}. To fix: {HOW_TO_GET}"
        ))
    }
}

/// True when the test should run. When something is missing it panics with the reason (the
/// test fails), or, with `WEFT_ALLOW_SKIP=1`, prints `SKIPPED <test>: <why>` and returns false.
#[track_caller]
pub fn require(test: &str, missing: &[String]) -> bool {
    let allow = std::env::var(ALLOW_SKIP_ENV).ok();
    act(decide(test, allow.as_deref(), missing))
}

/// Carry out a decision: true to run, false (after printing the SKIPPED line) to return, or
/// panic with the failure.
#[track_caller]
fn act(decision: Decision) -> bool {
    match decision {
        Decision::Run => true,
        Decision::Skip(line) => {
            eprintln!("{line}");
            false
        }
        Decision::Fail(msg) => panic!("{msg}"),
    }
}

/// What of this workspace's binaries `bins` is not built (each entry names the path and the
/// fix, see [`crate::find_bin`]).
pub fn missing_bins(bins: &[&str]) -> Vec<String> {
    bins.iter()
        .filter_map(|b| crate::find_bin(b).err().map(|e| e.to_string()))
        .collect()
}

/// What of the programs `tools` (name, how to install it) is not on PATH (or in the sbin
/// directories).
pub fn missing_tools(tools: &[(&str, &str)]) -> Vec<String> {
    tools
        .iter()
        .filter(|(prog, _)| crate::etcd::which(prog).is_none())
        .map(|(prog, how)| format!("`{prog}` not found on PATH ({how})"))
        .collect()
}

/// "root privileges" when this process is not root, else nothing.
pub fn missing_root() -> Vec<String> {
    if crate::is_root() {
        Vec::new()
    } else {
        vec!["root privileges (network namespaces and OVS need them): run as root".into()]
    }
}

/// [`require`] for this workspace's binaries.
#[track_caller]
pub fn require_bins(test: &str, bins: &[&str]) -> bool {
    require(test, &missing_bins(bins))
}

/// [`require`] for programs on PATH, each given with how to install it.
#[track_caller]
pub fn require_tools(test: &str, tools: &[(&str, &str)]) -> bool {
    require(test, &missing_tools(tools))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Vec<String> {
        vec![
            "binary `weft-agent` not found at target/debug/weft-agent".to_string(),
            "`etcd` not found on PATH (apt-get install etcd-server)".to_string(),
        ]
    }

    #[test]
    fn nothing_missing_runs_whatever_the_env() {
        for env in [None, Some("1"), Some("0"), Some("")] {
            assert_eq!(decide("t", env, &[]), Decision::Run, "{env:?}");
        }
    }

    #[test]
    fn missing_fails_unless_skip_is_allowed() {
        for env in [
            None,
            Some("0"),
            Some(""),
            Some("yes"),
            Some("true"),
            Some(" 1"),
        ] {
            match decide("my_test", env, &missing()) {
                Decision::Fail(msg) => {
                    assert!(msg.contains("my_test"), "{msg}");
                    assert!(msg.contains("weft-agent"), "{msg}");
                    assert!(msg.contains("etcd-server"), "{msg}");
                    assert!(msg.contains("scripts/setup.sh"), "{msg}");
                    assert!(msg.contains("cargo build --workspace --bins"), "{msg}");
                    assert!(msg.contains("WEFT_ALLOW_SKIP=1"), "{msg}");
                }
                other => panic!("{env:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn allow_skip_prints_skipped_with_the_reason() {
        match decide("my_test", Some("1"), &missing()) {
            Decision::Skip(line) => {
                assert!(line.starts_with("SKIPPED my_test: "), "{line}");
                assert!(line.contains("weft-agent"), "{line}");
                assert!(line.contains("etcd"), "{line}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_bins_and_tools_name_what_is_missing() {
        let bins = missing_bins(&["definitely-not-a-weft-binary"]);
        assert_eq!(bins.len(), 1);
        assert!(bins[0].contains("definitely-not-a-weft-binary"), "{bins:?}");
        assert!(
            bins[0].contains("cargo build --workspace --bins"),
            "{bins:?}"
        );
        let tools = missing_tools(&[
            ("definitely-not-a-tool", "apt-get install nothing"),
            ("sh", ""),
        ]);
        assert_eq!(tools.len(), 1, "{tools:?}");
        assert!(tools[0].contains("definitely-not-a-tool"), "{tools:?}");
        assert!(tools[0].contains("apt-get install nothing"), "{tools:?}");
    }

    #[test]
    fn act_runs_skips_or_panics() {
        assert!(act(decide("t", None, &[])));
        assert!(!act(decide("t", Some("1"), &missing())));
        let failed = std::panic::catch_unwind(|| act(decide("t", None, &missing())));
        let msg = failed.expect_err("must panic");
        let msg = msg.downcast_ref::<String>().expect("String payload");
        assert!(msg.contains("t cannot run, missing"), "{msg}");
    }
}
