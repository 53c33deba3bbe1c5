//! `weftctl cert ...`: the CA and credential workflow, run locally (no controller):
//!
//! - `cert init --dir D` makes a CA: `D/ca.pem` (give it to every process as `--ca`) and
//!   `D/ca-key.pem` (keep it offline; only `cert issue` reads it);
//! - `cert issue --dir D --name N --role R [--san S]...` issues `D/N.pem` and `D/N-key.pem`
//!   signed by the CA. The subject CN is the name (a chassis name for the agent role), the
//!   subject OU the role (admin, reader, agent, controller); `--san` adds DNS names or IP
//!   addresses (a controller's certificate needs the addresses clients dial);
//! - `cert token --role R --name N` prints a random token line for the controller's
//!   `--tokens` file;
//! - `cert show FILE` prints a certificate's name, role, serial and SAN DNS names (what the
//!   controller will see; the serial is what `--revoked` lists).
//!
//! Certificates use ECDSA P-256 keys. See docs/security.md.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use weft_proto::model::identity::{parse_certificate, Role};

/// Errors of the `cert` commands.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// rcgen refused.
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// `weftctl cert` (local CA and credential tools).
#[derive(Debug, Parser)]
#[command(
    name = "weftctl cert",
    about = "Local CA, certificate and token tools (see docs/security.md)"
)]
pub struct CertCli {
    #[command(subcommand)]
    pub cmd: CertCmd,
}

/// The `cert` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Create a CA in DIR (ca.pem, ca-key.pem).
    Init {
        /// Directory to write to (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's subject CN.
        #[arg(long, default_value = "Weft CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Overwrite an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue NAME.pem and NAME-key.pem signed by the CA in DIR.
    Issue {
        /// Directory holding ca.pem and ca-key.pem; the new files go there too.
        #[arg(long)]
        dir: PathBuf,
        /// Holder: a chassis name for the agent role, a user or service name otherwise.
        #[arg(long)]
        name: String,
        /// admin, reader, agent or controller.
        #[arg(long)]
        role: String,
        /// Subject alternative names (DNS names or IP addresses), comma separated or repeated.
        #[arg(long, value_delimiter = ',')]
        san: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Output file stem (default: NAME).
        #[arg(long)]
        out: Option<String>,
    },
    /// Print a new random token line (ROLE NAME TOKEN) for the controller's --tokens file.
    Token {
        /// admin, reader or agent.
        #[arg(long)]
        role: String,
        /// Holder's name.
        #[arg(long)]
        name: String,
    },
    /// Print a certificate's name, role, serial and SAN DNS names.
    Show {
        /// PEM file.
        file: PathBuf,
    },
}

fn write(path: &Path, data: &str, private: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, data).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn validity(p: &mut CertificateParams, days: u32) -> Result<(), CertError> {
    if days == 0 || days > 36_500 {
        return Err(CertError::Invalid(format!(
            "--days {days}: expected 1..=36500"
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(days as i64);
    let serial: [u8; 16] = rand_bytes();
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// 16 random bytes with the top bit clear (a positive serial) and a non-zero first byte.
fn rand_bytes() -> [u8; 16] {
    let mut b: [u8; 16] = rand::random();
    b[0] = (b[0] & 0x7f) | 0x01;
    b
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Runs a `cert` command; returns what to print.
pub fn run(cli: CertCli) -> Result<String, CertError> {
    match cli.cmd {
        CertCmd::Init {
            dir,
            name,
            days,
            force,
        } => {
            std::fs::create_dir_all(&dir).map_err(|source| CertError::Io {
                path: dir.clone(),
                source,
            })?;
            let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
            if !force && (cert_path.exists() || key_path.exists()) {
                return Err(CertError::Invalid(format!(
                    "{} already holds a CA (ca.pem or ca-key.pem); --force replaces it, and every certificate it issued stops being trusted",
                    dir.display()
                )));
            }
            let key = KeyPair::generate()?;
            let mut p = ca_params(&name);
            validity(&mut p, days)?;
            let cert = p.self_signed(&key)?;
            write(&key_path, &key.serialize_pem(), true)?;
            write(&cert_path, &cert.pem(), false)?;
            Ok(format!(
                "CA {name:?}: {} (distribute as --ca), {} (keep secret)\n",
                cert_path.display(),
                key_path.display()
            ))
        }
        CertCmd::Issue {
            dir,
            name,
            role,
            san,
            days,
            out,
        } => {
            let role: Role =
                role.parse()
                    .map_err(|e: weft_proto::model::identity::IdentityError| {
                        CertError::Invalid(format!("--role: {e}"))
                    })?;
            if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
                return Err(CertError::Invalid(format!(
                    "--name {name:?}: 1-64 printable characters"
                )));
            }
            let ca_pem = read(&dir.join("ca.pem"))?;
            let ca_key = KeyPair::from_pem(&read(&dir.join("ca-key.pem"))?)?;
            let ca_der = pem_der(&ca_pem).ok_or_else(|| {
                CertError::Invalid(format!("{}/ca.pem is not a PEM certificate", dir.display()))
            })?;
            let ca_name = parse_certificate(&ca_der)
                .map_err(|e| CertError::Invalid(format!("{}/ca.pem: {e}", dir.display())))?
                .common_names
                .into_iter()
                .next()
                .ok_or_else(|| CertError::Invalid("the CA certificate has no CN".into()))?;
            let issuer = Issuer::new(ca_params(&ca_name), ca_key);
            let mut p = CertificateParams::new(san.clone())?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name.as_str());
            dn.push(DnType::OrganizationalUnitName, role.as_str());
            p.distinguished_name = dn;
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            p.use_authority_key_identifier_extension = true;
            validity(&mut p, days)?;
            let key = KeyPair::generate()?;
            let cert = p.signed_by(&key, &issuer)?;
            let serial = parse_certificate(cert.der())
                .map(|f| f.serial)
                .unwrap_or_default();
            let stem = out.unwrap_or_else(|| name.clone());
            let (cert_path, key_path) = (
                dir.join(format!("{stem}.pem")),
                dir.join(format!("{stem}-key.pem")),
            );
            write(&key_path, &key.serialize_pem(), true)?;
            write(&cert_path, &cert.pem(), false)?;
            Ok(format!(
                "{} {name:?} role {role} serial {serial}{}: {} {}\n",
                "issued",
                if san.is_empty() {
                    String::new()
                } else {
                    format!(" san {}", san.join(","))
                },
                cert_path.display(),
                key_path.display()
            ))
        }
        CertCmd::Token { role, name } => {
            let role: Role =
                role.parse()
                    .map_err(|e: weft_proto::model::identity::IdentityError| {
                        CertError::Invalid(format!("--role: {e}"))
                    })?;
            if role == Role::Controller {
                return Err(CertError::Invalid(
                    "--role controller: tokens are for admin, reader or agent".into(),
                ));
            }
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CertError::Invalid(format!(
                    "--name {name:?}: no spaces or control characters"
                )));
            }
            let token: String = (0..2)
                .flat_map(|_| rand_bytes())
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(format!("{role} {name} {token}\n"))
        }
        CertCmd::Show { file } => {
            let pem = read(&file)?;
            let der = pem_der(&pem).ok_or_else(|| {
                CertError::Invalid(format!("{} is not a PEM certificate", file.display()))
            })?;
            let f = parse_certificate(&der)
                .map_err(|e| CertError::Invalid(format!("{}: {e}", file.display())))?;
            Ok(format!(
                "name: {}\nrole: {}\nserial: {}\ndns: {}\n",
                f.common_names.join(","),
                f.org_units.join(","),
                f.serial,
                f.dns_names.join(",")
            ))
        }
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    base64_decode(&pem[start..end])
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' | b' ' | b'\t' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_proto::model::identity::cert_identity;

    fn cli(args: &[&str]) -> CertCli {
        CertCli::parse_from(std::iter::once("cert").chain(args.iter().copied()))
    }

    #[test]
    fn init_issue_show_token() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        run(cli(&["init", "--dir", dir])).unwrap();
        let e = run(cli(&["init", "--dir", dir])).unwrap_err().to_string();
        assert!(e.contains("already holds a CA"), "{e}");
        let out = run(cli(&[
            "issue",
            "--dir",
            dir,
            "--name",
            "host1",
            "--role",
            "agent",
            "--san",
            "host1,10.0.0.1",
        ]))
        .unwrap();
        assert!(out.contains("role agent serial "), "{out}");
        let der = pem_der(&std::fs::read_to_string(d.path().join("host1.pem")).unwrap()).unwrap();
        let id = cert_identity(&der).unwrap();
        assert_eq!((id.name.as_str(), id.role), ("host1", Role::Agent));
        assert_eq!(parse_certificate(&der).unwrap().dns_names, vec!["host1"]);
        let e = run(cli(&[
            "issue", "--dir", dir, "--name", "x", "--role", "root",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"root\""), "{e}");
        let show = run(cli(&["show", d.path().join("host1.pem").to_str().unwrap()])).unwrap();
        assert!(show.contains("name: host1\nrole: agent\n"), "{show}");
        let t = run(cli(&["token", "--role", "reader", "--name", "bob"])).unwrap();
        let entry = weft_proto::model::identity::parse_token_line(1, &t)
            .unwrap()
            .unwrap();
        assert_eq!((entry.role, entry.name.as_str()), (Role::Reader, "bob"));
        let t2 = run(cli(&["token", "--role", "reader", "--name", "bob"])).unwrap();
        assert_ne!(t, t2);
    }
}
