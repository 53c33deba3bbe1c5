//! A throw-away CA and credentials for a testbed or a test, made with the real
//! `weftctl cert init/issue/token` (so the workflow users run is the one the tests run).
//! Start with [`Pki::create`]; [`Pki::issue`] makes `NAME.pem`/`NAME-key.pem` with the
//! subject CN = name and OU = role.
//!
//! The testbed registers the admin credential of each controller URL it starts
//! ([`register_url`]), so a [`crate::weftctl::Weftctl`] made for that URL with
//! [`crate::weftctl::Weftctl::new`] talks TLS without being told.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::Context;

/// A CA directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

/// One issued credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl Credential {
    /// `--ca CA --cert CERT --key KEY`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--ca".into(),
            self.ca.display().to_string(),
            "--cert".into(),
            self.cert.display().to_string(),
            "--key".into(),
            self.key.display().to_string(),
        ]
    }

    /// `WEFT_CA`, `WEFT_CERT`, `WEFT_KEY` (what weftctl, the agent and the controller read).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("WEFT_CA".into(), self.ca.display().to_string()),
            ("WEFT_CERT".into(), self.cert.display().to_string()),
            ("WEFT_KEY".into(), self.key.display().to_string()),
        ]
    }
}

fn weftctl(args: &[&str]) -> anyhow::Result<String> {
    let bin = crate::find_bin("weftctl")?;
    let bin = bin.to_str().context("weftctl path is not UTF-8")?;
    let mut full = vec!["cert"];
    full.extend_from_slice(args);
    crate::process::run(bin, &full)
}

impl Pki {
    /// A new CA in `dir` (created; an existing CA there is kept and reused).
    pub fn create(dir: &Path) -> anyhow::Result<Pki> {
        let d = dir.to_str().context("PKI dir is not UTF-8")?;
        if !dir.join("ca.pem").exists() {
            weftctl(&["init", "--dir", d, "--name", "Weft test CA"])?;
        }
        Ok(Pki {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The credential files of `stem` (issued or not).
    pub fn files(&self, stem: &str) -> Credential {
        Credential {
            ca: self.ca(),
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
        }
    }

    /// Issues (or reuses, when already issued) `name`'s certificate with `role` and `sans`.
    pub fn issue(&self, name: &str, role: &str, sans: &[&str]) -> anyhow::Result<Credential> {
        self.issue_as(name, name, role, sans)
    }

    /// Like [`Pki::issue`] into files named `stem` (several certificates for one name).
    pub fn issue_as(
        &self,
        stem: &str,
        name: &str,
        role: &str,
        sans: &[&str],
    ) -> anyhow::Result<Credential> {
        let f = self.files(stem);
        if f.cert.exists() && f.key.exists() {
            return Ok(f);
        }
        let d = self.dir.to_str().context("PKI dir is not UTF-8")?;
        let san = sans.join(",");
        let mut args = vec![
            "issue", "--dir", d, "--name", name, "--role", role, "--out", stem,
        ];
        if !san.is_empty() {
            args.extend(["--san", san.as_str()]);
        }
        weftctl(&args)?;
        Ok(f)
    }

    /// A new `ROLE NAME TOKEN` line (`weftctl cert token`); the token is the third field.
    pub fn token_line(role: &str, name: &str) -> anyhow::Result<String> {
        Ok(weftctl(&["token", "--role", role, "--name", name])?
            .trim()
            .to_string())
    }

    /// The serial number of `stem`'s certificate (`weftctl cert show`).
    pub fn serial(&self, stem: &str) -> anyhow::Result<String> {
        let f = self.files(stem);
        let out = weftctl(&["show", f.cert.to_str().context("path not UTF-8")?])?;
        out.lines()
            .find_map(|l| l.strip_prefix("serial: "))
            .map(str::to_string)
            .context("weftctl cert show printed no serial")
    }
}

/// Controller URL → the environment weftctl needs for it.
type Registry = Mutex<HashMap<String, Vec<(String, String)>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// Records the environment weftctl needs for controller `url` (its admin credential).
pub fn register_url(url: &str, env: Vec<(String, String)>) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(url.to_string(), env);
}

/// The environment registered for `url` (several URLs, comma separated: the first known);
/// `WEFT_INSECURE=1` for one never registered (a plain-text controller started by hand).
pub fn env_for(url: &str) -> Vec<(String, String)> {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    url.split(',')
        .find_map(|u| r.get(u.trim()).cloned())
        .unwrap_or_else(|| vec![("WEFT_INSECURE".into(), "1".into())])
}
