//! Memory and CPU of a process from `/proc`: `VmRSS` from `/proc/PID/status`, user + system
//! CPU ticks from `/proc/PID/stat`. The parsers are pure; [`sample`] reads the files.

/// One reading of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcSample {
    pub pid: u32,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// `VmRSS:  1234 kB` → 1234.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`). The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after[0] is field 3 (state): utime is field 14 → index 11, stime index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The first NUL-separated word of `/proc/PID/cmdline`'s program, without its directory.
pub fn program_name(cmdline: &[u8]) -> String {
    let first = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let s = String::from_utf8_lossy(first);
    s.rsplit('/').next().unwrap_or_default().to_string()
}

/// The value after `flag` in a NUL-separated command line (`--chassis host1` → `host1`).
pub fn flag_value(cmdline: &[u8], flag: &str) -> Option<String> {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let i = args.iter().position(|a| *a == flag.as_bytes())?;
    args.get(i + 1)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Read a live process; `None` when it is gone or unreadable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(ProcSample {
        pid,
        rss_kib: parse_status_rss_kib(&status)?,
        cpu_ticks: parse_stat_cpu_ticks(&stat)?,
    })
}

/// `/proc/PID/cmdline`, empty when unreadable.
pub fn cmdline(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when that fails, as on every Linux here).
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_status() {
        let s = "Name:\tetcd\nVmPeak:\t 999 kB\nVmRSS:\t   51234 kB\nThreads: 9\n";
        assert_eq!(parse_status_rss_kib(s), Some(51234));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_from_stat_with_odd_comm() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "42 (we ird) name)) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(22));
        assert_eq!(parse_stat_cpu_ticks("42 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn cmdline_parts() {
        let c = b"/work/target/release/weft-agent\0--chassis\0host3\0--encap\0geneve\0";
        assert_eq!(program_name(c), "weft-agent");
        assert_eq!(flag_value(c, "--chassis").as_deref(), Some("host3"));
        assert_eq!(flag_value(c, "--missing"), None);
        assert_eq!(flag_value(b"x\0--chassis", "--chassis"), None);
        assert_eq!(program_name(b""), "");
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
    }
}
