//! A real single-member etcd on 127.0.0.1 for tests: free random client and peer ports, a temp
//! data dir, killed by PID on drop. Start with [`Etcd::start`].

use crate::process::{free_port, wait_until, Proc, ProcSpec, WorkDir};
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long to wait for etcd to answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start an [`Etcd`]. `Default` is what [`Etcd::start`] uses.
#[derive(Debug, Clone, Default)]
pub struct EtcdConfig {
    /// Keep data and log here (created if missing, not removed on drop). Default: a temp dir
    /// removed on drop.
    pub dir: Option<PathBuf>,
    /// Start etcd in its own session so it can outlive this process (see [`Etcd::leak`]).
    pub detach: bool,
    /// Extra environment variables for the etcd process.
    pub env: Vec<(String, String)>,
    /// Serve clients over TLS with this server certificate, and require client
    /// certificates signed by its CA (`--client-cert-auth`). `/health` is then read from a
    /// plain-text metrics listener on loopback.
    pub tls: Option<crate::pki::Credential>,
}

/// A running (or stopped) etcd. Drop kills it and removes its temp dir.
#[derive(Debug)]
pub struct Etcd {
    proc: Proc,
    client_port: u16,
    /// Where `/health` is served (the client port unless TLS).
    health_port: u16,
    tls: bool,
    data_dir: PathBuf,
    // Dropped last (field order): removes data dir and log.
    dir: WorkDir,
}

/// What remains of an etcd after [`Etcd::leak`]: it keeps running, nobody owns it.
#[derive(Debug, Clone)]
pub struct LeakedEtcd {
    pub pid: Option<u32>,
    pub endpoint: String,
    pub dir: PathBuf,
}

impl Etcd {
    /// Start etcd on free ports in a temp dir and wait until `/health` says true.
    pub fn start() -> anyhow::Result<Etcd> {
        Self::start_with(EtcdConfig::default())
    }

    /// Start with a config. Retries with new ports if the first pick was taken meanwhile.
    pub fn start_with(cfg: EtcdConfig) -> anyhow::Result<Etcd> {
        let etcd = which("etcd").context(
            "`etcd` not found on PATH (run scripts/setup.sh, or apt-get install etcd-server)",
        )?;
        let mut last_err = None;
        for _attempt in 0..3 {
            let dir = match &cfg.dir {
                Some(d) => {
                    // A failed attempt may have left a half-initialised member dir.
                    let _ = std::fs::remove_dir_all(d.join("data"));
                    WorkDir::kept(d)?
                }
                None => WorkDir::temp("weft-etcd-")?,
            };
            match Self::start_in(&etcd, dir, &cfg) {
                Ok(e) => return Ok(e),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    fn start_in(etcd: &Path, dir: WorkDir, cfg: &EtcdConfig) -> anyhow::Result<Etcd> {
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let data_dir = dir.path().join("data");
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let name = "weft-test";
        let spec = ProcSpec::new("etcd", etcd, dir.path().join("etcd.log"))
            .args(["--name", name])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .args(["--initial-cluster-state", "new"])
            // Weft's CreatePorts puts a 100-port batch (~300 ops) in one transaction; etcd's
            // default limit is 128. Controllers run with --etcd-max-txn-ops 2048 to match.
            .args(["--max-txn-ops", "2048"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .detach(cfg.detach);
        let mut health_port = client_port;
        let spec = match &cfg.tls {
            Some(t) => {
                health_port = free_port()?;
                spec.arg("--cert-file")
                    .arg(&t.cert)
                    .arg("--key-file")
                    .arg(&t.key)
                    .arg("--trusted-ca-file")
                    .arg(&t.ca)
                    .arg("--client-cert-auth")
                    .args([
                        "--listen-metrics-urls",
                        &format!("http://127.0.0.1:{health_port}"),
                    ])
            }
            None => spec,
        };
        let spec = cfg.env.iter().fold(spec, |s, (k, v)| s.env(k, v));
        let proc = spec.spawn()?;
        let mut e = Etcd {
            proc,
            client_port,
            health_port,
            tls: cfg.tls.is_some(),
            data_dir,
            dir,
        };
        e.wait_ready()?;
        Ok(e)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let port = self.health_port;
        let mut exited = false;
        let ok = wait_until(READY_TIMEOUT, Duration::from_millis(50), || {
            if !self.proc.is_running() {
                exited = true;
                return true;
            }
            healthy(port)
        });
        if exited || !ok {
            let tail = self.proc.log_tail(15);
            self.proc.kill();
            bail!(
                "etcd on port {port} {}; log tail:\n{tail}",
                if exited {
                    "exited"
                } else {
                    "did not become healthy in 30s"
                }
            );
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`, the client URL (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Whether etcd serves TLS (and requires client certificates).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The data dir (kept across [`Etcd::stop`] / [`Etcd::restart`]).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// PID while running.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// Kill etcd (SIGKILL, like a crash). The data dir stays.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Start again on the same ports with the same data dir; waits until healthy.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.kill();
        self.proc.start()?;
        self.wait_ready()
    }

    /// Stop owning the process and the directory: etcd keeps running after this process
    /// exits (use with [`EtcdConfig::detach`]).
    pub fn leak(mut self) -> LeakedEtcd {
        LeakedEtcd {
            pid: self.proc.forget(),
            endpoint: self.endpoint(),
            dir: self.dir.keep(),
        }
    }

    /// Path of the etcd log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.proc.kill();
    }
}

/// A real etcd cluster of several members on loopback (each with its own data dir), for
/// tests of a member failing. Start with [`EtcdCluster::start`].
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `n` members that form one cluster and waits until each is healthy.
    pub fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        let etcd = which("etcd").context(
            "`etcd` not found on PATH (run scripts/setup.sh, or apt-get install etcd-server)",
        )?;
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let name = |i: usize| format!("m{i}");
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("{}=http://127.0.0.1:{peer}", name(i)))
            .collect();
        let token = format!("weft-{}-{}", std::process::id(), free_port()?);
        let mut members = Vec::new();
        for (i, (client_port, peer_port)) in ports.iter().copied().enumerate() {
            let dir = WorkDir::temp("weft-etcd-")?;
            let data_dir = dir.path().join("data");
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let spec = ProcSpec::new(
                format!("etcd {}", name(i)),
                &etcd,
                dir.path().join("etcd.log"),
            )
            .args(["--name", &name(i)])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &token])
            .args(["--max-txn-ops", "2048"])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
            let proc = spec.spawn()?;
            members.push(Etcd {
                proc,
                client_port,
                health_port: client_port,
                tls: false,
                data_dir,
                dir,
            });
        }
        // Members become healthy only together (a quorum must form).
        for m in &mut members {
            m.wait_ready()?;
        }
        Ok(EtcdCluster { members })
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Etcd::endpoint).collect()
    }

    /// Member `i` (0-based).
    pub fn member(&mut self, i: usize) -> Option<&mut Etcd> {
        self.members.get_mut(i)
    }
}

/// GET /health over plain TCP; true when etcd reports `"health":"true"`.
fn healthy(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.replace(' ', "").contains("\"health\":\"true\"")
}

/// Find a program on PATH (plus the sbin dirs, which a non-login root shell may lack).
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/local/sbin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
