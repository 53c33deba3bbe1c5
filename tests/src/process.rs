//! Child processes owned by the harness: spawn (optionally inside a netns, optionally detached
//! into its own session), log to a file, stop by PID, restart with the same command line.
//! Also small helpers: running a command and capturing its output, and free TCP ports.

use anyhow::{bail, Context};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to run. Kept so that a stopped process can be started again identically.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Short human name used in error messages ("etcd", "agent host2", ...).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// Run inside this network namespace (`ip netns exec NS`, which execs, so the PID is the
    /// program's own).
    pub netns: Option<String>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
    /// Start in a new session (`setsid`), so the process outlives the caller (sandbox).
    pub detach: bool,
}

impl ProcSpec {
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Self {
        ProcSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
            log: log.into(),
            detach: false,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn netns(mut self, ns: Option<String>) -> Self {
        self.netns = ns;
        self
    }

    pub fn detach(mut self, detach: bool) -> Self {
        self.detach = detach;
        self
    }

    /// The full command (program + args) after the netns/setsid wrappers.
    fn command(&self) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if self.detach {
            argv.push("setsid".into());
        }
        if let Some(ns) = &self.netns {
            argv.extend(["ip".into(), "netns".into(), "exec".into(), ns.into()]);
        }
        argv.push(self.program.clone().into_os_string());
        argv.extend(self.args.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// A [`Proc`] for this spec that is not started yet ([`Proc::start`] starts it).
    pub fn spawn_stopped(&self) -> Proc {
        Proc {
            spec: self.clone(),
            child: None,
        }
    }

    /// Spawn it. The returned [`Proc`] kills the process on drop (call [`Proc::forget`] to
    /// keep a detached one running).
    pub fn spawn(&self) -> anyhow::Result<Proc> {
        let mut p = Proc {
            spec: self.clone(),
            child: None,
        };
        p.start()?;
        Ok(p)
    }
}

/// A process the harness started. Killed (SIGKILL) and reaped on drop, unless detached.
#[derive(Debug)]
pub struct Proc {
    spec: ProcSpec,
    child: Option<Child>,
}

impl Proc {
    pub fn spec(&self) -> &ProcSpec {
        &self.spec
    }

    /// PID of the running process, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (not exited, not a zombie).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Start it (again) with the same command line. Error if it is already running.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!(
                "{} is already running (pid {:?})",
                self.spec.name,
                self.pid()
            );
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .with_context(|| format!("opening log file {}", self.spec.log.display()))?;
        let log2 = log.try_clone()?;
        let child = self
            .spec
            .command()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .with_context(|| {
                format!(
                    "spawning {} ({})",
                    self.spec.name,
                    self.spec.program.display()
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Reaps.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    if !matches!(c.try_wait(), Ok(None)) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Forget the child without killing it (after a detached spawn; the caller keeps the
    /// PID). Returns the PID.
    pub fn forget(&mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// The last `n` lines of the log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.spec.log, n)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of a file ("" if unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether a PID names a live, non-zombie process.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: "PID (comm) STATE ..."; comm may contain spaces or parens, so split on the
        // last ')'.
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(
                s[i + 1..].trim_start().chars().next(),
                Some('Z') | Some('X')
            ),
            None => false,
        },
        Err(_) => false,
    }
}

/// Send SIGKILL to a PID we recorded earlier (no-op if it is gone) and wait up to 5 s for it
/// to disappear.
pub fn kill_pid(pid: u32) {
    if !pid_alive(pid) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run a command to completion; stdout on success, an error with the command line, exit
/// status and stderr otherwise.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_env(program, args, &[])
}

/// [`run`] with extra environment variables.
pub fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running `{program}` (is it installed and on PATH?)"))?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            program,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`run`] inside a network namespace (`ip netns exec NS PROGRAM ARGS`).
pub fn run_in(netns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", netns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that is free right now and not handed out before by this process.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        drop(l);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        let set = guard.get_or_insert_with(HashSet::new);
        if set.insert(port) {
            return Ok(port);
        }
    }
    bail!("could not find a free TCP port")
}

/// Poll `f` every `every` until it returns true or `timeout` elapses.
pub fn wait_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let a = free_port().expect("port");
        let b = free_port().expect("port");
        assert_ne!(a, b);
    }

    #[test]
    fn run_reports_stderr_and_status() {
        let err = run("sh", &["-c", "echo boom >&2; exit 3"])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("boom") && err.contains('3'), "{err}");
        assert_eq!(run("sh", &["-c", "echo hi"]).expect("runs"), "hi\n");
    }

    #[test]
    fn proc_kill_and_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = ProcSpec::new("sleeper", "sleep", dir.path().join("log")).arg("30");
        let mut p = spec.spawn().expect("spawn");
        let pid = p.pid().expect("pid");
        assert!(pid_alive(pid));
        p.kill();
        assert!(!pid_alive(pid));
        assert!(!p.is_running());
        p.start().expect("restart");
        assert!(p.is_running());
        assert!(p.start().is_err(), "double start must fail");
    }

    #[test]
    fn pid_alive_false_for_exited() {
        let mut c = Command::new("true").spawn().expect("spawn");
        let pid = c.id();
        c.wait().expect("wait");
        assert!(!pid_alive(pid));
    }
}

/// A working directory: a temp dir removed on drop, or a caller-chosen one that is kept.
#[derive(Debug)]
pub enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    /// A new temp dir `/tmp/PREFIXxxxxxx` (short, for unix socket paths).
    pub fn temp(prefix: &str) -> anyhow::Result<WorkDir> {
        Ok(WorkDir::Temp(
            tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp")?,
        ))
    }

    /// `dir`, created if missing, not removed on drop.
    pub fn kept(dir: &Path) -> anyhow::Result<WorkDir> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(WorkDir::Kept(dir.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(t) => t.path(),
            WorkDir::Kept(p) => p,
        }
    }

    /// Stop removing it on drop; returns the path.
    pub fn keep(&mut self) -> PathBuf {
        let path = self.path().to_path_buf();
        if let WorkDir::Temp(_) = self {
            if let WorkDir::Temp(t) = std::mem::replace(self, WorkDir::Kept(path.clone())) {
                let _ = t.keep();
            }
        }
        path
    }
}
