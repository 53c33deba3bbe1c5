//! The errors `weftctl` reports, each rendered as ONE line with an exit status. Pure: no I/O.
//!
//! `main` prints `weftctl: <line>` to stderr. Exit status: 1 for anything the controller (or
//! the network) refused, 2 for a command line weftctl itself rejects (clap exits 2 on its own
//! usage errors before we get here).

use std::time::Duration;

use thiserror::Error;
use tonic::Code;

use crate::args::ControllerError;
use crate::chain::ChainError;
use crate::cmd::CmdError;

/// Everything that can go wrong after clap parsed the command line.
#[derive(Debug, Error)]
pub enum CliError {
    /// A command line the CLI rejects (a flag for another command, conflicting options).
    #[error(transparent)]
    Usage(#[from] ChainError),
    /// `--controller` / `WEFT_CONTROLLER` unusable.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A command's arguments or its reply (see [`CmdError::exit_code`]).
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// No connection to the controller could be made.
    #[error("cannot reach controller at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The controller did not answer within the client deadline.
    #[error("no reply from controller at {url} within {}s", .after.as_secs())]
    Timeout { url: String, after: Duration },
    /// The controller (or the gRPC layer) answered with an error status.
    #[error("{}", status_line(.0))]
    Status(Box<tonic::Status>),
    /// The reply lacks a field the contract says is always set.
    #[error("malformed reply from controller: {0}")]
    MalformedReply(&'static str),
    /// TLS flags or files unusable (`--ca/--cert/--key/--token/--insecure`).
    #[error("{0}")]
    Tls(String),
}

impl CliError {
    /// Process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Controller(_) | CliError::Tls(_) => 2,
            CliError::Cmd(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// The single line printed for a gRPC error status: the status message, or the code's
/// description when the message is empty.
pub fn status_line(status: &tonic::Status) -> String {
    let msg = one_line(status.message());
    if msg.is_empty() {
        one_line(status.code().description())
    } else {
        msg
    }
}

/// Collapses every run of whitespace (newlines included) into one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The innermost cause of an error chain (e.g. "Connection refused (os error 111)" under
/// tonic's "transport error"), on one line.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    one_line(&cur.to_string())
}

/// Turns a status from a call into a [`CliError`], recognising tonic's own client timeout
/// and connection failures (which are not answers from the controller).
pub fn from_status(status: tonic::Status, url: &str, deadline: Duration) -> CliError {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        return CliError::Timeout {
            url: url.to_string(),
            after: deadline,
        };
    }
    if status.code() == Code::Unavailable {
        if let Some(src) = std::error::Error::source(&status) {
            if is_connect_failure(src) {
                return CliError::Connect {
                    url: url.to_string(),
                    reason: root_cause(src),
                };
            }
        }
    }
    CliError::Status(Box::new(status))
}

fn is_connect_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::TimedOut
            );
        }
        if e.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_message_is_printed_on_one_line() {
        let st = tonic::Status::invalid_argument(
            "subnet: \"10.0.0.0/33\" is not a valid CIDR\n(prefix too long)",
        );
        let e = CliError::Status(Box::new(st));
        assert_eq!(
            e.to_string(),
            "subnet: \"10.0.0.0/33\" is not a valid CIDR (prefix too long)"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn empty_status_message_falls_back_to_the_code() {
        let e = CliError::Status(Box::new(tonic::Status::not_found("")));
        assert_eq!(e.to_string(), Code::NotFound.description());
    }

    #[test]
    fn usage_errors_exit_2() {
        let e = CliError::from(ChainError::OptionNotValid {
            option: "may-exist".into(),
            command: "ls-del".into(),
            valid: "ls-add, lsp-add".into(),
        });
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("option --may-exist"), "{e}");
    }

    #[test]
    fn connect_error_line() {
        let e = CliError::Connect {
            url: "http://127.0.0.1:7600".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach controller at http://127.0.0.1:7600: Connection refused (os error 111)"
        );
    }

    #[test]
    fn client_timeout_is_recognised() {
        let e = from_status(
            tonic::Status::cancelled("Timeout expired"),
            "http://h:1",
            Duration::from_secs(40),
        );
        assert_eq!(
            e.to_string(),
            "no reply from controller at http://h:1 within 40s"
        );
        // A server-side DeadlineExceeded (a --wait=hv timeout) is the server's message.
        let e = from_status(
            tonic::Status::deadline_exceeded("wait: 1 chassis did not apply revision 7 in 5s"),
            "http://h:1",
            Duration::from_secs(15),
        );
        assert_eq!(
            e.to_string(),
            "wait: 1 chassis did not apply revision 7 in 5s"
        );
    }

    #[test]
    fn unavailable_from_connection_refused_is_a_connect_error() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let st = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        let e = from_status(st, "http://h:1", Duration::from_secs(1));
        assert!(matches!(e, CliError::Connect { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("cannot reach controller at http://h:1: "));
        // Unavailable from the controller itself (etcd down) keeps its message.
        let e = from_status(
            tonic::Status::unavailable("etcd at http://127.0.0.1:2379 is unreachable"),
            "http://h:1",
            Duration::from_secs(1),
        );
        assert_eq!(
            e.to_string(),
            "etcd at http://127.0.0.1:2379 is unreachable"
        );
    }

    #[test]
    fn root_cause_walks_the_chain() {
        #[derive(Debug, Error)]
        #[error("transport error")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert_eq!(root_cause(&e), "Connection refused (os error 111)");
    }
}
