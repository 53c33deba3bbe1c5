//! Shared helpers of the end-to-end tests.
#![allow(dead_code)]

use weft_testbed::testbed::{Testbed, TestbedConfig};

/// True when every Weft binary the test needs is built. Otherwise prints why the test is
/// skipped (the only reason an end-to-end test skips) and returns false.
pub fn bins_present(test: &str, bins: &[&str]) -> bool {
    let missing: Vec<String> = bins
        .iter()
        .filter_map(|b| weft_testbed::find_bin(b).err().map(|e| e.to_string()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!("SKIPPED {test}: {}", missing.join("; "));
    false
}

/// Binaries a full deployment needs.
pub const ALL_BINS: &[&str] = &["weft-controller", "weft-agent", "weftctl"];

/// Start a testbed or fail the test with the full error (logs included).
pub fn start(cfg: TestbedConfig) -> Testbed {
    match cfg.start() {
        Ok(tb) => tb,
        Err(e) => panic!("testbed did not start: {e:#}"),
    }
}

/// Run weftctl, failing the test with its error.
pub fn ctl(tb: &mut Testbed, args: &[&str]) -> String {
    match tb.ctl(args) {
        Ok(out) => out,
        Err(e) => panic!("weftctl {}: {e:#}", args.join(" ")),
    }
}

/// `ls-add SW --subnet CIDR`.
pub fn switch(tb: &mut Testbed, name: &str, subnet: &str) {
    ctl(tb, &["ls-add", name, "--subnet", subnet]);
}

/// `lsp-add SW PORT` + `lsp-set-addresses PORT dynamic`.
pub fn dyn_port(tb: &mut Testbed, sw: &str, port: &str) {
    ctl(tb, &["lsp-add", sw, port]);
    ctl(tb, &["lsp-set-addresses", port, "dynamic"]);
}

/// `lsp-add SW PORT` + static "MAC IP".
pub fn static_port(tb: &mut Testbed, sw: &str, port: &str, mac: &str, ip: &str) {
    ctl(tb, &["lsp-add", sw, port]);
    ctl(tb, &["lsp-set-addresses", port, &format!("{mac} {ip}")]);
}

/// Add a pod for `port` (named like the port) on `host`, failing the test on error.
pub fn pod(tb: &mut Testbed, host: usize, port: &str) -> weft_testbed::pod::Pod {
    match tb.add_pod(host, port, port) {
        Ok(p) => p,
        Err(e) => panic!("pod {port} on host{host}: {e:#}"),
    }
}

/// `--wait=hv sync`, failing the test on error (with agent logs).
pub fn sync(tb: &mut Testbed) {
    if let Err(e) = tb.sync() {
        let logs: Vec<String> = tb
            .hosts()
            .iter()
            .filter_map(|h| {
                let log = h.agent_log()?;
                Some(format!(
                    "--- {} agent log:\n{}",
                    h.name,
                    weft_testbed::process::log_tail(log, 20)
                ))
            })
            .collect();
        panic!("sync --wait=hv failed: {e:#}\n{}", logs.join("\n"));
    }
}
