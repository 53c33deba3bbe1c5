//! The `weftctl` binary: parse the command line, run it, print the output. The logic lives
//! in the `weftctl` library (start at its crate docs).

use std::io::Write;
use std::process::ExitCode;

use weftctl::args::CONTROLLER_ENV;
use weftctl::chain::{self, ParseError};
use weftctl::error::{one_line, CliError};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // `weftctl cert ...` is a local tool with its own grammar (no controller involved).
    if args.first().is_some_and(|a| a == "cert") {
        use clap::Parser;
        let argv = std::iter::once(std::ffi::OsString::from("weftctl cert"))
            .chain(std::env::args_os().skip(2));
        let cli = weftctl::cert::CertCli::parse_from(argv);
        return match weftctl::cert::run(cli) {
            Ok(out) => {
                let _ = std::io::stdout().lock().write_all(out.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("weftctl cert: {}", one_line(&e.to_string()));
                ExitCode::FAILURE
            }
        };
    }
    let inv = match chain::parse(&args) {
        Ok(inv) => inv,
        // Help, version (exit 0) and clap's usage errors (exit 2), in clap's format.
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Usage(e)) => return fail(&CliError::from(e)),
    };
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
    let env = std::env::var(CONTROLLER_ENV).ok();
    match runtime.block_on(weftctl::run::run(inv, env)) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A closed pipe (`weftctl show | head -1`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("weftctl: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => fail(&e),
    }
}

/// Prints `weftctl: <one line>` and returns the error's exit status.
fn fail(e: &CliError) -> ExitCode {
    eprintln!("weftctl: {}", one_line(&e.to_string()));
    ExitCode::from(e.exit_code())
}
