//! Authentication and authorization of every gRPC call: a tower layer ([`AuthLayer`]) in
//! front of the services. Who calls is proved by a client certificate signed by the CA
//! (subject CN = name, OU = role; checked by rustls, read by
//! [`weft_proto::model::identity::cert_identity`]) or by a bearer token from the `--tokens`
//! file (`authorization: Bearer TOKEN`). What the call needs is [`access_of`] its method; the
//! role rule is [`weft_proto::model::identity::Role::allows`]. The caller's [`Identity`] goes
//! into the request's extensions, where the Southbound service checks that a chassis only
//! speaks for itself.
//!
//! - no credential: `Unauthenticated`;
//! - a credential whose role does not allow the call: `PermissionDenied`, naming the role
//!   needed and the caller;
//! - a revoked certificate (its serial in `--revoked`) or an unknown token: `Unauthenticated`.
//!
//! The token and revocation files are re-read when they change (checked at most once a
//! second), so issuing a token or revoking needs no restart; a file that does not exist
//! (yet) holds nothing. [`Policy::open`] (plain text without tokens, the
//! library default for in-process tests) lets everything through.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use weft_proto::model::identity::{
    cert_identity, parse_token_line, Access, Credential, Identity, IdentityError, Role,
};

/// Errors loading the policy files.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// `--tokens` or `--revoked`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A token file line is malformed.
    #[error("--tokens {path}: {source}")]
    Tokens {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        source: IdentityError,
    },
}

/// What a call to `path` (`/package.Service/Method`) needs.
pub fn access_of(path: &str) -> Access {
    let path = path.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health" => Access::Open,
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => {
            Access::Read
        }
        "weft.v1.Southbound" => Access::Southbound,
        "weft.v1.Northbound" => match method {
            "CreatePort" | "CreatePorts" | "DeletePort" => Access::PortWrite,
            m if READ_PREFIXES.iter().any(|p| m.starts_with(p)) => Access::Read,
            _ => Access::Write,
        },
        // Anything else (a service added later) needs the most privileged role.
        _ => Access::Write,
    }
}

/// Northbound methods that only read (or wait, `Sync`).
const READ_PREFIXES: [&str; 8] = [
    "Get",
    "List",
    "Show",
    "Trace",
    "Flows",
    "AgentInfo",
    "PhysicalTrace",
    "Sync",
];

/// The files loaded and when they were last checked.
#[derive(Default)]
struct Loaded {
    tokens: HashMap<String, (Role, String)>,
    revoked: HashSet<String>,
    tokens_mtime: Option<SystemTime>,
    revoked_mtime: Option<SystemTime>,
    checked: Option<Instant>,
}

/// The authorization policy of one controller.
#[derive(Clone)]
pub struct Policy {
    enforce: bool,
    tokens: Option<PathBuf>,
    revoked: Option<PathBuf>,
    loaded: Arc<Mutex<Loaded>>,
}

/// How a call was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the caller, when known (None under [`Policy::open`]).
    Allow(Option<Identity>),
    /// Refused with this status.
    Deny(tonic::Code, String),
}

fn mtime(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Policy {
    /// Everything allowed, no identities (plain text without tokens; in-process tests).
    pub fn open() -> Policy {
        Policy {
            enforce: false,
            tokens: None,
            revoked: None,
            loaded: Arc::default(),
        }
    }

    /// Every call authenticated, by certificate or by a token of `tokens`; certificates
    /// whose serial is listed in `revoked` (one hex serial per line) are refused. Reads both
    /// files now so a bad file stops the start-up.
    pub fn enforced(
        tokens: Option<PathBuf>,
        revoked: Option<PathBuf>,
    ) -> Result<Policy, AuthError> {
        let p = Policy {
            enforce: true,
            tokens,
            revoked,
            loaded: Arc::default(),
        };
        let mut l = Loaded::default();
        p.reload(&mut l, true)?;
        *p.loaded.lock().unwrap_or_else(|e| e.into_inner()) = l;
        Ok(p)
    }

    /// Whether calls are checked.
    pub fn is_enforced(&self) -> bool {
        self.enforce
    }

    fn reload(&self, l: &mut Loaded, force: bool) -> Result<(), AuthError> {
        if let Some(path) = &self.tokens {
            let m = mtime(path);
            if force || m != l.tokens_mtime {
                let text = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    // A token file not created yet holds no token (it is read once it appears).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(source) => {
                        return Err(AuthError::Read {
                            what: "--tokens",
                            path: path.clone(),
                            source,
                        })
                    }
                };
                let mut tokens = HashMap::new();
                for (i, line) in text.lines().enumerate() {
                    let e = parse_token_line(i + 1, line).map_err(|source| AuthError::Tokens {
                        path: path.clone(),
                        source,
                    })?;
                    if let Some(e) = e {
                        tokens.insert(e.token, (e.role, e.name));
                    }
                }
                l.tokens = tokens;
                l.tokens_mtime = m;
            }
        }
        if let Some(path) = &self.revoked {
            let m = mtime(path);
            if force || m != l.revoked_mtime {
                let text = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    // A revocation list not created yet revokes nothing.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(source) => {
                        return Err(AuthError::Read {
                            what: "--revoked",
                            path: path.clone(),
                            source,
                        })
                    }
                };
                l.revoked = text
                    .lines()
                    .map(|s| s.split('#').next().unwrap_or("").trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_ascii_lowercase().trim_start_matches("0x").to_string())
                    .collect();
                l.revoked_mtime = m;
            }
        }
        Ok(())
    }

    /// Re-reads changed files at most once a second. A file that became unreadable or
    /// malformed keeps the last good contents (and is logged).
    fn refresh(&self) -> std::sync::MutexGuard<'_, Loaded> {
        let mut l = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if l.checked
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            l.checked = Some(Instant::now());
            let mut next = Loaded {
                tokens: l.tokens.clone(),
                revoked: l.revoked.clone(),
                tokens_mtime: l.tokens_mtime,
                revoked_mtime: l.revoked_mtime,
                checked: l.checked,
            };
            match self.reload(&mut next, false) {
                Ok(()) => {
                    if next.tokens_mtime != l.tokens_mtime || next.revoked_mtime != l.revoked_mtime
                    {
                        tracing::info!(
                            tokens = next.tokens.len(),
                            revoked = next.revoked.len(),
                            "reloaded the token and revocation files"
                        );
                    }
                    *l = next;
                }
                Err(e) => {
                    tracing::error!(error = %e, "keeping the last good token/revocation files")
                }
            }
        }
        l
    }

    /// Decides a call to `path` from the caller's certificate (DER of the end-entity
    /// certificate, when TLS gave one) and `authorization` header.
    pub fn decide(&self, path: &str, cert: Option<&[u8]>, authorization: Option<&str>) -> Decision {
        if !self.enforce {
            return Decision::Allow(None);
        }
        let access = access_of(path);
        if access == Access::Open {
            // Health checks answer whoever asks, whatever credential (or junk) it carries.
            return Decision::Allow(None);
        }
        let method = path.trim_start_matches('/');
        let identity = {
            let l = self.refresh();
            if let Some(der) = cert {
                match cert_identity(der) {
                    Ok(id) => {
                        if let Credential::Certificate { serial } = &id.via {
                            if l.revoked.contains(serial) {
                                return Decision::Deny(
                                    tonic::Code::Unauthenticated,
                                    format!(
                                        "certificate of {:?} (serial {serial}) is revoked",
                                        id.name
                                    ),
                                );
                            }
                        }
                        Some(id)
                    }
                    Err(e) => {
                        return Decision::Deny(
                            tonic::Code::Unauthenticated,
                            format!("client certificate not usable: {e}"),
                        )
                    }
                }
            } else if let Some(h) = authorization {
                let token = h
                    .strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
                    .unwrap_or("")
                    .trim();
                match l.tokens.get(token) {
                    Some((role, name)) => Some(Identity {
                        name: name.clone(),
                        role: *role,
                        via: Credential::Token,
                    }),
                    None => {
                        return Decision::Deny(
                            tonic::Code::Unauthenticated,
                            "the bearer token is not known (revoked, mistyped, or not in the controller's --tokens file)".into(),
                        )
                    }
                }
            } else {
                None
            }
        };
        let Some(id) = identity else {
            return Decision::Deny(
                tonic::Code::Unauthenticated,
                format!(
                    "{method} needs a credential: a client certificate signed by the Weft CA, or `authorization: Bearer TOKEN` (weftctl --cert/--key or --token)"
                ),
            );
        };
        if !id.role.allows(access) {
            return Decision::Deny(
                tonic::Code::PermissionDenied,
                format!(
                    "{method} needs role {}; {id} does not have it",
                    access.needs()
                ),
            );
        }
        Decision::Allow(Some(id))
    }
}

/// The caller of the current request, as the auth layer put it into its extensions.
pub fn caller<T>(req: &tonic::Request<T>) -> Option<&Identity> {
    req.extensions().get::<Identity>()
}

/// The tower layer applying a [`Policy`] to every request.
#[derive(Clone)]
pub struct AuthLayer {
    policy: Policy,
}

impl AuthLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Policy) -> AuthLayer {
        AuthLayer { policy }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: Policy,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs());
        let cert = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let authz = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.policy.decide(req.uri().path(), cert, authz) {
            Decision::Allow(id) => {
                if let Some(id) = id {
                    req.extensions_mut().insert(id);
                }
                let fut = self.inner.call(req);
                Box::pin(fut)
            }
            Decision::Deny(code, msg) => {
                tracing::info!(method = %req.uri().path(), code = ?code, reason = %msg, "call refused");
                let status = tonic::Status::new(code, msg);
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn methods_classified() {
        assert_eq!(access_of("/weft.v1.Northbound/ListPorts"), Access::Read);
        assert_eq!(access_of("/weft.v1.Northbound/Show"), Access::Read);
        assert_eq!(access_of("/weft.v1.Northbound/Trace"), Access::Read);
        assert_eq!(access_of("/weft.v1.Northbound/Sync"), Access::Read);
        assert_eq!(
            access_of("/weft.v1.Northbound/CreatePort"),
            Access::PortWrite
        );
        assert_eq!(
            access_of("/weft.v1.Northbound/DeletePort"),
            Access::PortWrite
        );
        assert_eq!(access_of("/weft.v1.Northbound/CreateSwitch"), Access::Write);
        assert_eq!(access_of("/weft.v1.Northbound/Transact"), Access::Write);
        assert_eq!(
            access_of("/weft.v1.Northbound/DeleteChassis"),
            Access::Write
        );
        assert_eq!(
            access_of("/weft.v1.Southbound/Subscribe"),
            Access::Southbound
        );
        assert_eq!(access_of("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(access_of("/weft.v2.Other/Get"), Access::Write);
    }

    #[test]
    fn tokens_decide_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# role name token\nreader bob rrrrrrrrrrrrrrrrrrrr\nadmin alice aaaaaaaaaaaaaaaaaaaa\n",
        )
        .unwrap();
        let p = Policy::enforced(Some(path.clone()), None).unwrap();
        let d = |m: &str, t: Option<&str>| p.decide(m, None, t);
        match d("/weft.v1.Northbound/ListPorts", None) {
            Decision::Deny(tonic::Code::Unauthenticated, m) => {
                assert!(m.contains("--token"), "{m}")
            }
            o => panic!("{o:?}"),
        }
        match d(
            "/weft.v1.Northbound/CreateSwitch",
            Some("Bearer rrrrrrrrrrrrrrrrrrrr"),
        ) {
            Decision::Deny(tonic::Code::PermissionDenied, m) => {
                assert!(
                    m.contains("needs role admin") && m.contains("bob (reader, token)"),
                    "{m}"
                )
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            d(
                "/weft.v1.Northbound/ListPorts",
                Some("Bearer rrrrrrrrrrrrrrrrrrrr")
            ),
            Decision::Allow(Some(_))
        ));
        assert!(matches!(
            d(
                "/weft.v1.Northbound/CreateSwitch",
                Some("Bearer aaaaaaaaaaaaaaaaaaaa")
            ),
            Decision::Allow(Some(_))
        ));
        assert!(matches!(
            d(
                "/weft.v1.Southbound/Subscribe",
                Some("Bearer aaaaaaaaaaaaaaaaaaaa")
            ),
            Decision::Deny(tonic::Code::PermissionDenied, _)
        ));
        assert!(matches!(
            d("/weft.v1.Northbound/ListPorts", Some("Bearer nope")),
            Decision::Deny(tonic::Code::Unauthenticated, _)
        ));
        assert!(matches!(
            d("/grpc.health.v1.Health/Check", None),
            Decision::Allow(None)
        ));
        // Revoking bob: remove his line; picked up without a restart.
        std::thread::sleep(Duration::from_millis(1100));
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "admin alice aaaaaaaaaaaaaaaaaaaa").unwrap();
        drop(f);
        assert!(matches!(
            d(
                "/weft.v1.Northbound/ListPorts",
                Some("Bearer rrrrrrrrrrrrrrrrrrrr")
            ),
            Decision::Deny(tonic::Code::Unauthenticated, _)
        ));
        // A malformed file refuses the start-up, naming the line.
        std::fs::write(&path, "admin alice short\n").unwrap();
        let e = Policy::enforced(Some(path), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn open_policy_allows_everything() {
        assert_eq!(
            Policy::open().decide("/weft.v1.Northbound/CreateSwitch", None, None),
            Decision::Allow(None)
        );
    }
}
