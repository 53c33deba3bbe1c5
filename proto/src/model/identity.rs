//! Who a caller is and what it may do: the [`Role`]s, the [`Access`] classes of the API, the
//! rule joining them ([`Role::allows`]), the identity a Weft certificate carries (read from
//! its DER by [`cert_identity`]: the subject CN names the holder, the subject OU its role)
//! and the token file's line grammar ([`parse_token_line`]). Pure: no I/O.
//!
//! The certificates are checked against the CA by rustls before anything here reads them;
//! this module only extracts the subject, the SAN DNS names and the serial number, and must
//! never panic on any input (it is fuzzed).

use std::fmt;

/// Errors reading an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The DER is not a certificate this parser understands.
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    /// The certificate's subject has no CN.
    #[error("certificate subject has no common name (CN)")]
    NoCommonName,
    /// The certificate's subject OU is not a Weft role.
    #[error("certificate role (subject OU) {0:?} is not one of admin, reader, agent, controller")]
    BadRole(String),
    /// The certificate's subject has no OU.
    #[error("certificate subject has no role (OU admin, reader, agent or controller)")]
    NoRole,
    /// A token file line is malformed.
    #[error("line {line}: {reason}")]
    TokenLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// What a credential lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads: Get/List/Show, trace, flows, agent-info, sync.
    Reader,
    /// Reads and every write.
    Admin,
    /// A chassis' agent: its own Southbound stream and status reports, plus what its CNI front
    /// end needs on the northbound (reads, creating and deleting ports).
    Agent,
    /// A controller's server (and etcd client) certificate: no API access.
    Controller,
}

impl Role {
    /// Every role, for help texts.
    pub const ALL: [Role; 4] = [Role::Reader, Role::Admin, Role::Agent, Role::Controller];

    /// The name used in certificates (subject OU), token files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Controller => "controller",
        }
    }

    /// Whether this role may make a call of class `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Open => true,
            Access::Read => matches!(self, Role::Reader | Role::Admin | Role::Agent),
            Access::PortWrite => matches!(self, Role::Admin | Role::Agent),
            Access::Write => self == Role::Admin,
            Access::Southbound => self == Role::Agent,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::BadRole(s.to_string()))
    }
}

/// The classes of API call, from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, even unauthenticated (gRPC health).
    Open,
    /// Reads.
    Read,
    /// Creating and deleting logical switch ports (the CNI front end).
    PortWrite,
    /// Every other write.
    Write,
    /// The Southbound service (a chassis' own stream and status).
    Southbound,
}

impl Access {
    /// The least role that may make such a call, for error messages.
    pub fn needs(self) -> &'static str {
        match self {
            Access::Open => "none",
            Access::Read => "reader",
            Access::PortWrite => "admin (or agent)",
            Access::Write => "admin",
            Access::Southbound => "agent (a chassis certificate)",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The holder's name: a chassis name for agents, a user or service name otherwise.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How it proved it.
    pub via: Credential,
}

/// How an [`Identity`] was proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A client certificate signed by the CA; its serial number in lower-case hex.
    Certificate {
        /// Serial number, hex.
        serial: String,
    },
    /// A bearer token from the token file.
    Token,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.via {
            Credential::Certificate { serial } => {
                write!(f, "{} ({}, certificate {serial})", self.name, self.role)
            }
            Credential::Token => write!(f, "{} ({}, token)", self.name, self.role),
        }
    }
}

/// What [`parse_certificate`] reads from a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFields {
    /// Subject CN values.
    pub common_names: Vec<String>,
    /// Subject OU values.
    pub org_units: Vec<String>,
    /// SAN dNSName entries.
    pub dns_names: Vec<String>,
    /// Serial number, lower-case hex without leading zero bytes.
    pub serial: String,
}

/// The identity a Weft certificate carries: the subject CN is the name, the subject OU the
/// role.
pub fn cert_identity(der: &[u8]) -> Result<Identity, IdentityError> {
    let f = parse_certificate(der)?;
    let name = f
        .common_names
        .first()
        .cloned()
        .ok_or(IdentityError::NoCommonName)?;
    let ou = f.org_units.first().ok_or(IdentityError::NoRole)?;
    let role: Role = ou.parse()?;
    Ok(Identity {
        name,
        role,
        via: Credential::Certificate { serial: f.serial },
    })
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: tag and contents.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads one element from the front of `b`; returns it and the rest.
fn tlv(b: &[u8]) -> Result<(Tlv<'_>, &[u8]), IdentityError> {
    let bad = IdentityError::Malformed;
    let (&tag, rest) = b.split_first().ok_or(bad("truncated element"))?;
    if tag & 0x1f == 0x1f {
        return Err(bad("multi-byte tags are not used in certificates"));
    }
    let (&l0, rest) = rest.split_first().ok_or(bad("truncated length"))?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | x as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad("element longer than its container"));
    }
    Ok((
        Tlv {
            tag,
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// Reads an element that must have tag `tag`.
fn expect<'a>(
    b: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(Tlv<'a>, &'a [u8]), IdentityError> {
    let (t, rest) = tlv(b)?;
    if t.tag != tag {
        return Err(IdentityError::Malformed(what));
    }
    Ok((t, rest))
}

/// The string value of a directory string (UTF8String, PrintableString, IA5String,
/// TeletexString taken as Latin-1); None for other types.
fn dir_string(t: &Tlv<'_>) -> Option<String> {
    match t.tag {
        0x0c | 0x13 | 0x16 => std::str::from_utf8(t.body).ok().map(str::to_string),
        0x14 => Some(t.body.iter().map(|&b| b as char).collect()),
        _ => None,
    }
}

/// Reads a certificate's subject CN and OU, its SAN DNS names and its serial number.
pub fn parse_certificate(der: &[u8]) -> Result<CertFields, IdentityError> {
    let (cert, _) = expect(der, 0x30, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(cert.body, 0x30, "tbsCertificate is not a SEQUENCE")?;
    let mut b = tbs.body;
    let (first, rest) = tlv(b)?;
    if first.tag == 0xa0 {
        b = rest;
    }
    let (serial, b) = expect(b, 0x02, "serialNumber is not an INTEGER")?;
    let (_sig, b) = expect(b, 0x30, "signature is not a SEQUENCE")?;
    let (_issuer, b) = expect(b, 0x30, "issuer is not a SEQUENCE")?;
    let (_validity, b) = expect(b, 0x30, "validity is not a SEQUENCE")?;
    let (subject, mut b) = expect(b, 0x30, "subject is not a SEQUENCE")?;
    let mut f = CertFields {
        serial: serial
            .body
            .iter()
            .skip_while(|&&x| x == 0)
            .map(|x| format!("{x:02x}"))
            .collect(),
        ..CertFields::default()
    };
    if f.serial.is_empty() {
        f.serial = "00".into();
    }
    let mut rdns = subject.body;
    while !rdns.is_empty() {
        let (set, rest) = expect(rdns, 0x31, "subject RDN is not a SET")?;
        rdns = rest;
        let mut atvs = set.body;
        while !atvs.is_empty() {
            let (atv, rest) = expect(atvs, 0x30, "subject attribute is not a SEQUENCE")?;
            atvs = rest;
            let (oid, rest) = expect(atv.body, 0x06, "attribute type is not an OID")?;
            let (val, _) = tlv(rest)?;
            let Some(v) = dir_string(&val) else { continue };
            if oid.body == OID_CN {
                f.common_names.push(v);
            } else if oid.body == OID_OU {
                f.org_units.push(v);
            }
        }
    }
    // subjectPublicKeyInfo, then the optional unique IDs and [3] extensions.
    let (_spki, rest) = expect(b, 0x30, "subjectPublicKeyInfo is not a SEQUENCE")?;
    b = rest;
    while !b.is_empty() {
        let (t, rest) = tlv(b)?;
        b = rest;
        if t.tag != 0xa3 {
            continue;
        }
        let (exts, _) = expect(t.body, 0x30, "extensions is not a SEQUENCE")?;
        let mut e = exts.body;
        while !e.is_empty() {
            let (ext, rest) = expect(e, 0x30, "extension is not a SEQUENCE")?;
            e = rest;
            let (oid, mut r) = expect(ext.body, 0x06, "extension id is not an OID")?;
            let (mut v, rest) = tlv(r)?;
            if v.tag == 0x01 {
                r = rest;
                v = tlv(r)?.0;
            }
            if oid.body != OID_SAN || v.tag != 0x04 {
                continue;
            }
            let (names, _) = expect(v.body, 0x30, "subjectAltName is not a SEQUENCE")?;
            let mut n = names.body;
            while !n.is_empty() {
                let (gn, rest) = tlv(n)?;
                n = rest;
                if gn.tag == 0x82 {
                    if let Ok(s) = std::str::from_utf8(gn.body) {
                        f.dns_names.push(s.to_string());
                    }
                }
            }
        }
    }
    Ok(f)
}

/// One entry of the controller's token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// The role the token grants.
    pub role: Role,
    /// Who holds it (a chassis name for the agent role).
    pub name: String,
    /// The bearer secret.
    pub token: String,
}

/// Shortest accepted token (characters).
pub const MIN_TOKEN_LEN: usize = 16;

/// Parses one token file line, `ROLE NAME TOKEN`; None for blank lines and `#` comments.
pub fn parse_token_line(line_no: usize, line: &str) -> Result<Option<TokenEntry>, IdentityError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let err = |reason: String| IdentityError::TokenLine {
        line: line_no,
        reason,
    };
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [role, name, token] = parts.as_slice() else {
        return Err(err(format!(
            "expected ROLE NAME TOKEN, got {} fields",
            parts.len()
        )));
    };
    let role: Role = role
        .parse()
        .map_err(|e: IdentityError| err(e.to_string()))?;
    if role == Role::Controller {
        return Err(err("the controller role is for certificates only".into()));
    }
    if token.len() < MIN_TOKEN_LEN || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(err(format!(
            "token of {name:?} must be at least {MIN_TOKEN_LEN} printable ASCII characters"
        )));
    }
    Ok(Some(TokenEntry {
        role,
        name: name.to_string(),
        token: token.to_string(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A DER length.
    fn len(n: usize) -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else if n < 0x100 {
            vec![0x81, n as u8]
        } else {
            vec![0x82, (n >> 8) as u8, n as u8]
        }
    }
    fn el(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend(len(body.len()));
        v.extend_from_slice(body);
        v
    }
    fn atv(oid: &[u8], v: &str) -> Vec<u8> {
        el(
            0x31,
            &el(0x30, &[el(0x06, oid), el(0x0c, v.as_bytes())].concat()),
        )
    }
    /// A certificate-shaped DER (unsigned: the parser does not check signatures).
    fn cert(cn: Option<&str>, ou: Option<&str>, dns: &[&str]) -> Vec<u8> {
        let mut subject = Vec::new();
        if let Some(ou) = ou {
            subject.extend(atv(OID_OU, ou));
        }
        if let Some(cn) = cn {
            subject.extend(atv(OID_CN, cn));
        }
        let names: Vec<u8> = dns.iter().flat_map(|d| el(0x82, d.as_bytes())).collect();
        let san = el(
            0x30,
            &[el(0x06, OID_SAN), el(0x04, &el(0x30, &names))].concat(),
        );
        let tbs = [
            el(0xa0, &el(0x02, &[2])),
            el(0x02, &[0x00, 0x9a, 0x01]),
            el(0x30, &el(0x06, &[0x2a])),
            el(0x30, &atv(OID_CN, "weft-ca")),
            el(0x30, &[]),
            el(0x30, &subject),
            el(0x30, &el(0x03, &[0, 1, 2])),
            el(0xa3, &el(0x30, &san)),
        ]
        .concat();
        el(
            0x30,
            &[el(0x30, &tbs), el(0x30, &[]), el(0x03, &[0])].concat(),
        )
    }

    #[test]
    fn reads_cn_ou_san_serial() {
        let d = cert(Some("host1"), Some("agent"), &["host1", "x.example"]);
        let f = parse_certificate(&d).unwrap();
        assert_eq!(f.common_names, vec!["host1"]);
        assert_eq!(f.org_units, vec!["agent"]);
        assert_eq!(f.dns_names, vec!["host1", "x.example"]);
        assert_eq!(f.serial, "9a01");
        let id = cert_identity(&d).unwrap();
        assert_eq!((id.name.as_str(), id.role), ("host1", Role::Agent));
        assert_eq!(id.to_string(), "host1 (agent, certificate 9a01)");
    }

    #[test]
    fn identity_errors_name_what_is_missing() {
        assert_eq!(
            cert_identity(&cert(None, Some("admin"), &[])).unwrap_err(),
            IdentityError::NoCommonName
        );
        assert_eq!(
            cert_identity(&cert(Some("a"), None, &[])).unwrap_err(),
            IdentityError::NoRole
        );
        let e = cert_identity(&cert(Some("a"), Some("root"), &[])).unwrap_err();
        assert!(e.to_string().contains("\"root\""), "{e}");
    }

    #[test]
    fn roles_and_access() {
        use Access::*;
        for r in Role::ALL {
            assert!(r.allows(Open));
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!(Role::Reader.allows(Read) && !Role::Reader.allows(PortWrite));
        assert!(!Role::Reader.allows(Write) && !Role::Reader.allows(Southbound));
        assert!(Role::Admin.allows(Write) && Role::Admin.allows(PortWrite));
        assert!(!Role::Admin.allows(Southbound));
        assert!(Role::Agent.allows(Southbound) && Role::Agent.allows(PortWrite));
        assert!(!Role::Agent.allows(Write));
        assert!(!Role::Controller.allows(Read));
    }

    #[test]
    fn token_lines() {
        assert_eq!(parse_token_line(1, "  # c").unwrap(), None);
        assert_eq!(parse_token_line(1, "").unwrap(), None);
        let t = parse_token_line(2, "admin alice 0123456789abcdef0")
            .unwrap()
            .unwrap();
        assert_eq!((t.role, t.name.as_str()), (Role::Admin, "alice"));
        let e = parse_token_line(3, "admin alice short").unwrap_err();
        assert!(e.to_string().starts_with("line 3:"), "{e}");
        assert!(parse_token_line(4, "root x 0123456789abcdef0").is_err());
        assert!(parse_token_line(5, "controller x 0123456789abcdef0").is_err());
        assert!(parse_token_line(6, "admin alice").is_err());
    }

    /// Short fuzz loop: random bytes, truncations and byte flips of a valid certificate never
    /// panic (run in CI with the unit tests).
    #[test]
    fn fuzz_parse_certificate_never_panics() {
        let good = cert(Some("host1"), Some("agent"), &["host1"]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in 0..good.len() {
            let _ = parse_certificate(&good[..n]);
        }
        for _ in 0..20_000 {
            let mut d = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % d.len();
                d[i] = next() as u8;
            }
            let _ = parse_certificate(&d);
            let _ = cert_identity(&d);
            let len = (next() % 64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_certificate(&junk);
        }
    }
}
