//! Loading TLS material for Weft's gRPC (rustls through tonic): [`Transport`] is what every
//! binary's `--ca/--cert/--key/--insecure` flags resolve to; [`TlsFiles::server_config`] and
//! [`TlsFiles::client_config`] build tonic's configs. TLS is the default; plain text only
//! with an explicit `--insecure`, which the caller logs.
//!
//! A controller address's scheme does not choose TLS, the transport does: [`url_for`] turns
//! `http://` into `https://` under TLS (tonic only speaks TLS to `https://` URIs), so the same
//! addresses work in both modes.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// `--ca`, `--cert` or `--key`.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Neither TLS files nor `--insecure` were given.
    #[error("TLS is on by default: give --ca, --cert and --key (see docs/security.md), or --insecure for plain text")]
    Missing,
    /// A file is not PEM of the right kind.
    #[error("{what} {path} is not a PEM {expected}")]
    NotPem {
        /// `--ca`, `--cert` or `--key`.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
}

/// The CA, certificate and key paths of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) peers are checked against.
    pub ca: PathBuf,
    /// This process' certificate (PEM); None for a client that authenticates by token.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

/// How a process talks gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plain text (`--insecure`): no encryption, no certificate identities.
    Insecure,
    /// TLS with these files.
    Tls(TlsFiles),
}

impl Transport {
    /// Resolves the usual flags. `insecure` wins only when no TLS file is given; giving both
    /// is refused so a stray `--insecure` never silently drops TLS.
    pub fn from_flags(
        insecure: bool,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Transport, String> {
        match (insecure, ca, cert, key) {
            (true, None, None, None) => Ok(Transport::Insecure),
            (true, ..) => Err("--insecure cannot be combined with --ca/--cert/--key".into()),
            (false, None, None, None) => Err(TlsError::Missing.to_string()),
            (false, None, ..) => Err("--cert/--key need --ca (the CA certificate)".into()),
            (false, Some(ca), cert, key) => {
                if cert.is_some() != key.is_some() {
                    return Err("--cert and --key go together".into());
                }
                Ok(Transport::Tls(TlsFiles { ca, cert, key }))
            }
        }
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }
}

fn read(what: &'static str, path: &Path, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !String::from_utf8_lossy(&data).contains("-----BEGIN ") {
        return Err(TlsError::NotPem {
            what,
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(data)
}

impl TlsFiles {
    fn identity(&self) -> Result<Option<Identity>, TlsError> {
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Ok(Some(Identity::from_pem(
                read("--cert", c, "certificate")?,
                read("--key", k, "private key")?,
            ))),
            _ => Ok(None),
        }
    }

    fn ca_cert(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read(
            "--ca",
            &self.ca,
            "certificate",
        )?))
    }

    /// The server side: this certificate, and client certificates checked against the CA
    /// (optional at the TLS layer: a client may authenticate by token instead; the
    /// authorization layer refuses what needs a certificate).
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        let id = self.identity()?.ok_or_else(|| TlsError::Read {
            what: "--cert",
            path: PathBuf::new(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "a server needs --cert and --key",
            ),
        })?;
        Ok(ServerTlsConfig::new()
            .identity(id)
            .client_ca_root(self.ca_cert()?)
            .client_auth_optional(true))
    }

    /// The client side: the server checked against the CA (only the CA: no system roots),
    /// and this certificate presented when there is one.
    pub fn client_config(&self) -> Result<ClientTlsConfig, TlsError> {
        let mut c = ClientTlsConfig::new().ca_certificate(self.ca_cert()?);
        if let Some(id) = self.identity()? {
            c = c.identity(id);
        }
        Ok(c)
    }
}

/// The URL to dial for `url` under `transport`: `http://` becomes `https://` under TLS and
/// the reverse under `--insecure`.
pub fn url_for(url: &str, transport: &Transport) -> String {
    match transport {
        Transport::Tls(_) => match url.strip_prefix("http://") {
            Some(rest) => format!("https://{rest}"),
            None => url.to_string(),
        },
        Transport::Insecure => match url.strip_prefix("https://") {
            Some(rest) => format!("http://{rest}"),
            None => url.to_string(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_resolve() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            Transport::from_flags(true, None, None, None).unwrap(),
            Transport::Insecure
        );
        let e = Transport::from_flags(false, None, None, None).unwrap_err();
        assert!(e.contains("--insecure") && e.contains("--ca"), "{e}");
        assert!(Transport::from_flags(true, p("ca"), None, None).is_err());
        assert!(Transport::from_flags(false, p("ca"), p("c"), None).is_err());
        assert!(Transport::from_flags(false, None, p("c"), p("k")).is_err());
        let t = Transport::from_flags(false, p("ca"), None, None).unwrap();
        assert!(t.is_tls());
        assert_eq!(url_for("http://1.2.3.4:7600", &t), "https://1.2.3.4:7600");
        assert_eq!(url_for("https://h:1", &Transport::Insecure), "http://h:1");
    }

    #[test]
    fn unreadable_and_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("weft-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let f = TlsFiles {
            ca: junk.clone(),
            cert: None,
            key: None,
        };
        let e = f.client_config().unwrap_err().to_string();
        assert!(e.contains("--ca") && e.contains("junk.pem"), "{e}");
        let f = TlsFiles {
            ca: dir.join("missing.pem"),
            cert: None,
            key: None,
        };
        let e = f.client_config().unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
