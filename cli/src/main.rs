//! The `weftctl` binary: parse the command line, make the one gRPC call, print the reply.
//! The logic lives in the `weftctl` library (start at its crate docs).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use weftctl::args::Cli;
use weftctl::client::{self, ClientConfig, CONNECT_TIMEOUT};
use weftctl::error::{one_line, CliError};
use weftctl::{format, request};

/// Runs one command: build the call, execute it, print the rendered reply to stdout.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let call = request::build(&cli).map_err(CliError::from)?;
    let cfg = ClientConfig {
        url: cli.global.controller.clone(),
        connect_timeout: CONNECT_TIMEOUT,
        request_timeout: request::client_deadline(&cli),
    };
    let reply = client::execute(&cfg, call).await?;
    let out = format::render(&reply, cli.global.output).map_err(CliError::from)?;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`weftctl show | head -1`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// The line and exit status for an error `run` returned.
fn render_error(err: &anyhow::Error) -> (String, u8) {
    match err.downcast_ref::<CliError>() {
        Some(e) => (one_line(&e.to_string()), e.exit_code()),
        None => (one_line(&format!("{err:#}")), 1),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weftctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let (line, code) = render_error(&err);
            eprintln!("weftctl: {line}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weftctl::request::RequestError;

    #[test]
    fn cli_errors_keep_their_exit_code() {
        let usage = anyhow::Error::new(CliError::from(RequestError::OptionNotValid {
            option: "if-exists",
            command: "show",
            valid: "ls-del, lsp-del",
        }));
        let (line, code) = render_error(&usage);
        assert_eq!(code, 2);
        assert!(line.contains("--if-exists"), "{line}");
        let status = anyhow::Error::new(CliError::Status(Box::new(tonic::Status::already_exists(
            "switch \"sw1\" already exists",
        ))));
        assert_eq!(
            render_error(&status),
            ("switch \"sw1\" already exists".to_string(), 1)
        );
    }

    #[test]
    fn other_errors_render_with_their_chain_on_one_line() {
        let e = anyhow::anyhow!("inner").context("outer\nline");
        assert_eq!(render_error(&e), ("outer line: inner".to_string(), 1));
    }
}
