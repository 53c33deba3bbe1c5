//! Logging set-up shared by every Weft daemon: one filter variable, `WEFT_LOG` (the
//! `tracing` `EnvFilter` syntax, e.g. `info,weft_agent::cni=debug`), with `RUST_LOG` as a
//! fallback and `info` as the default; ANSI colour only when the output is a terminal and
//! `NO_COLOR` is not set (logs written to files or journald carry no escape codes).

use std::io::IsTerminal;

/// The variable every binary reads its log filter from.
pub const LOG_ENV: &str = "WEFT_LOG";
/// Read when [`LOG_ENV`] is unset or empty.
pub const FALLBACK_LOG_ENV: &str = "RUST_LOG";

/// Pure: the filter to use given the values of `WEFT_LOG` and `RUST_LOG`.
pub fn filter_spec(weft_log: Option<&str>, rust_log: Option<&str>) -> String {
    [weft_log, rust_log]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("info")
        .to_string()
}

/// Pure: colour only on a terminal, and never with `NO_COLOR` set to anything non-empty.
pub fn use_ansi(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the global subscriber (stdout, as `tracing_subscriber::fmt` writes). A filter
/// that does not parse is reported on stderr and `info` is used.
pub fn init() {
    let env = |k: &str| std::env::var(k).ok();
    let spec = filter_spec(env(LOG_ENV).as_deref(), env(FALLBACK_LOG_ENV).as_deref());
    let filter = tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("invalid {LOG_ENV} {spec:?}: {e}; using \"info\"");
        tracing_subscriber::EnvFilter::new("info")
    });
    let ansi = use_ansi(std::io::stdout().is_terminal(), env("NO_COLOR").as_deref());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weft_log_first_then_rust_log_then_info() {
        assert_eq!(filter_spec(Some("debug"), Some("warn")), "debug");
        assert_eq!(filter_spec(None, Some("warn")), "warn");
        assert_eq!(filter_spec(Some(" "), Some("warn")), "warn");
        assert_eq!(filter_spec(None, None), "info");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, Some("")));
        assert!(!use_ansi(true, Some("1")));
        assert!(!use_ansi(false, None));
    }
}
