//! Splits a command line into its commands (ovn-nbctl's `--` chaining). Pure: no I/O.
//!
//! `weftctl [GLOBAL] CMD ARGS -- [CMD-OPTS] CMD ARGS -- ...` is cut at every `--`. In each
//! piece, global options (wherever they are) move to the front and per-command flags written
//! before the command name (`--may-exist ls-add a`, as ovn-nbctl allows) move behind it; then
//! clap parses `weftctl [GLOBAL] CMD [FLAGS] ARGS` with [`Cli`]. The pieces' global options are
//! merged (the same option twice with different values is an error).
//!
//! A per-command flag given to a command that does not have it is refused here with one line
//! naming the commands that do (`option --may-exist is not valid for command ls-del (only for
//! ls-add, ...)`), not with clap's multi-line message.

use std::collections::HashMap;
use std::ffi::OsString;

use clap::FromArgMatches;
use thiserror::Error;

use crate::args::{Cli, GlobalOpts};
use crate::cmd::Command;

/// One invocation: the merged global options and the commands in order.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub global: GlobalOpts,
    pub commands: Vec<Command>,
}

/// A command line weftctl rejects itself (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    #[error("option --{option} is not valid for command {command} (only for {valid})")]
    OptionNotValid {
        option: String,
        command: String,
        valid: String,
    },
    #[error("option {option} is given more than once with different values")]
    Conflict { option: &'static str },
    #[error("option {option} must be written just before or after a command")]
    OptionWithoutCommand { option: String },
    #[error("argument {0:?} is not valid UTF-8")]
    NotUtf8(String),
}

/// Why the command line could not be parsed.
#[derive(Debug, Error)]
pub enum ParseError {
    /// clap's own error, help or version text: print it with `exit()`.
    #[error("{0}")]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    Usage(#[from] ChainError),
}

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Invocation, ParseError> {
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.clone()
                .into_string()
                .map_err(|a| ChainError::NotUtf8(a.to_string_lossy().into_owned()))
        })
        .collect::<Result<_, _>>()?;
    let grammar = Grammar::new();
    let mut global = GlobalOpts::default();
    let mut commands = Vec::new();
    let segments: Vec<&[String]> = args.split(|a| a == "--").collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() && !(i == 0 && segments.len() == 1) {
            continue;
        }
        let argv = grammar.reorder(seg)?;
        let matches = crate::args::command().try_get_matches_from(argv)?;
        let cli = Cli::from_arg_matches(&matches)?;
        merge(&mut global, cli.global)?;
        commands.extend(cli.command);
    }
    if commands.is_empty() {
        return Err(crate::args::command()
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required",
            )
            .into());
    }
    Ok(Invocation { global, commands })
}

/// What weftctl's clap definition says about option names.
struct Grammar {
    /// Global long option names (and aliases) → whether they take a value.
    long: HashMap<String, bool>,
    /// Global short option letters (and aliases) → whether they take a value.
    short: HashMap<char, bool>,
    cmd: clap::Command,
}

impl Grammar {
    fn new() -> Grammar {
        let cmd = crate::args::command();
        let mut long = HashMap::new();
        let mut short = HashMap::new();
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let takes = a.get_action().takes_values();
            for l in a.get_long_and_visible_aliases().into_iter().flatten() {
                long.insert(l.to_string(), takes);
            }
            if let Some(aliases) = a.get_all_aliases() {
                for l in aliases {
                    long.insert(l.to_string(), takes);
                }
            }
            for s in a.get_short_and_visible_aliases().into_iter().flatten() {
                short.insert(s, takes);
            }
            if let Some(aliases) = a.get_all_short_aliases() {
                for s in aliases {
                    short.insert(s, takes);
                }
            }
        }
        Grammar { long, short, cmd }
    }

    /// How many tokens from `toks[i]` form a global option (0: not one).
    fn global_len(&self, toks: &[String], i: usize) -> usize {
        let t = toks[i].as_str();
        let with_next = |takes: bool| if takes && i + 1 < toks.len() { 2 } else { 1 };
        if let Some(name) = t.strip_prefix("--") {
            match name.split_once('=') {
                Some((n, _)) if self.long.contains_key(n) => 1,
                Some(_) => 0,
                None => self.long.get(name).map_or(0, |&tk| with_next(tk)),
            }
        } else if let Some(rest) = t.strip_prefix('-') {
            let mut chars = rest.chars();
            match (chars.next(), chars.as_str()) {
                (Some(c), attached) => match self.short.get(&c) {
                    Some(&true) if attached.is_empty() => with_next(true),
                    Some(&true) => 1,
                    Some(&false) if attached.is_empty() => 1,
                    _ => 0,
                },
                (None, _) => 0,
            }
        } else {
            0
        }
    }

    /// `weftctl GLOBAL... CMD FLAGS... REST...` for one piece of the command line.
    fn reorder(&self, seg: &[String]) -> Result<Vec<String>, ChainError> {
        let mut front = vec!["weftctl".to_string()];
        let mut name: Option<&String> = None;
        let mut pre = Vec::new();
        let mut rest = Vec::new();
        let mut i = 0;
        while i < seg.len() {
            let n = self.global_len(seg, i);
            if n > 0 {
                front.extend(seg[i..i + n].iter().cloned());
                i += n;
                continue;
            }
            let t = &seg[i];
            if name.is_some() {
                rest.push(t.clone());
            } else if is_help_or_version(t) {
                front.push(t.clone());
            } else if t.starts_with('-') && t.len() > 1 {
                pre.push(t.clone());
            } else {
                name = Some(t);
            }
            i += 1;
        }
        let Some(name) = name else {
            if let Some(opt) = pre.first() {
                // An unknown option: let clap say so; a command's flag: say where it goes.
                if !self.is_command_flag(opt) {
                    front.push(opt.clone());
                    return Ok(front);
                }
                return Err(ChainError::OptionWithoutCommand {
                    option: opt.clone(),
                });
            }
            return Ok(front);
        };
        if let Some(sub) = self.cmd.find_subcommand(name) {
            for t in pre.iter().chain(rest.iter()) {
                self.check_flag(sub, t)?;
            }
        }
        front.push(name.clone());
        front.extend(pre);
        front.extend(rest);
        Ok(front)
    }

    /// Refuses `--FLAG` on `sub` when `sub` lacks it but other commands have it.
    fn check_flag(&self, sub: &clap::Command, tok: &str) -> Result<(), ChainError> {
        let Some(long) = tok.strip_prefix("--") else {
            return Ok(());
        };
        let long = long.split_once('=').map_or(long, |(n, _)| n);
        if long.is_empty() || long == "help" || has_long(sub, long) {
            return Ok(());
        }
        let valid: Vec<&str> = self
            .cmd
            .get_subcommands()
            .filter(|s| has_long(s, long))
            .map(|s| s.get_name())
            .collect();
        if valid.is_empty() {
            return Ok(()); // unknown everywhere: clap's message
        }
        Err(ChainError::OptionNotValid {
            option: long.to_string(),
            command: sub.get_name().to_string(),
            valid: valid.join(", "),
        })
    }

    fn is_command_flag(&self, tok: &str) -> bool {
        let Some(long) = tok.strip_prefix("--") else {
            return false;
        };
        let long = long.split_once('=').map_or(long, |(n, _)| n);
        self.cmd.get_subcommands().any(|s| has_long(s, long))
    }
}

fn is_help_or_version(t: &str) -> bool {
    matches!(t, "-h" | "--help" | "-V" | "--version")
}

fn has_long(cmd: &clap::Command, long: &str) -> bool {
    cmd.get_arguments().any(|a| {
        a.get_long_and_visible_aliases()
            .is_some_and(|v| v.contains(&long))
    })
}

/// Merges one piece's global options into the invocation's.
fn merge(acc: &mut GlobalOpts, g: GlobalOpts) -> Result<(), ChainError> {
    fn one<T: PartialEq>(
        acc: &mut Option<T>,
        new: Option<T>,
        option: &'static str,
    ) -> Result<(), ChainError> {
        match (acc.as_ref(), new) {
            (_, None) => Ok(()),
            (None, new) => {
                *acc = new;
                Ok(())
            }
            (Some(a), Some(n)) if *a == n => Ok(()),
            (Some(_), Some(_)) => Err(ChainError::Conflict { option }),
        }
    }
    one(&mut acc.wait, g.wait, "--wait")?;
    one(&mut acc.timeout, g.timeout, "--timeout")?;
    one(&mut acc.format, g.format, "--format")?;
    one(&mut acc.columns, g.columns, "--columns")?;
    one(&mut acc.controller, g.controller, "--controller")?;
    one(&mut acc.ca, g.ca, "--ca")?;
    one(&mut acc.cert, g.cert, "--cert")?;
    one(&mut acc.key, g.key, "--key")?;
    one(&mut acc.token, g.token, "--token")?;
    acc.insecure |= g.insecure;
    acc.dry_run |= g.dry_run;
    acc.bare |= g.bare;
    acc.no_headings |= g.no_headings;
    acc.oneline |= g.oneline;
    acc.strict |= g.strict;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Format, WaitArg};
    use crate::cmd::{port::PortCmd, switch::SwitchCmd};

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(Into::into).collect()
    }

    fn inv(args: &[&str]) -> Invocation {
        parse(&os(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> ParseError {
        match parse(&os(args)) {
            Ok(i) => panic!("{args:?} parsed: {i:?}"),
            Err(e) => e,
        }
    }

    fn ls_add(name: &str, may_exist: bool) -> Command {
        Command::Switch(SwitchCmd::LsAdd {
            switch: name.into(),
            subnet: None,
            vni: None,
            mtu: None,
            may_exist,
        })
    }

    fn same(a: &Command, b: &Command) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn single_command_with_global_options_anywhere() {
        let i = inv(&["--wait=hv", "ls-add", "sw1", "-f", "json", "--timeout", "5"]);
        assert_eq!(i.global.wait, Some(WaitArg::Hv));
        assert_eq!(i.global.format, Some(Format::Json));
        assert_eq!(i.global.timeout, Some(5));
        assert_eq!(i.commands.len(), 1);
        assert!(same(&i.commands[0], &ls_add("sw1", false)));
        // -o and --output stay aliases of -f.
        assert_eq!(
            inv(&["ls-list", "-o", "json"]).global.format,
            Some(Format::Json)
        );
        assert_eq!(
            inv(&["-ojson", "ls-list"]).global.format,
            Some(Format::Json)
        );
        assert_eq!(
            inv(&["--output=csv", "ls-list"]).global.format,
            Some(Format::Csv)
        );
        assert_eq!(
            inv(&["--columns=name,vni", "ls-list"]).global.columns,
            Some(vec!["name".to_string(), "vni".to_string()])
        );
    }

    #[test]
    fn per_command_flags_before_or_after_the_name() {
        for args in [
            &["--may-exist", "ls-add", "sw1"][..],
            &["ls-add", "--may-exist", "sw1"],
            &["ls-add", "sw1", "--may-exist"],
            &["--", "--may-exist", "ls-add", "sw1"],
        ] {
            let i = inv(args);
            assert_eq!(i.commands.len(), 1, "{args:?}");
            assert!(same(&i.commands[0], &ls_add("sw1", true)), "{args:?}");
        }
    }

    #[test]
    fn chains_split_on_double_dash() {
        let i = inv(&[
            "--wait=hv",
            "ls-add",
            "a",
            "--",
            "lsp-add",
            "a",
            "p1",
            "--",
            "--may-exist",
            "lsp-add",
            "a",
            "p2",
            "--",
            "lsp-set-addresses",
            "p1",
            "dynamic",
        ]);
        assert_eq!(i.global.wait, Some(WaitArg::Hv));
        assert_eq!(i.commands.len(), 4);
        assert!(same(
            &i.commands[2],
            &Command::Port(PortCmd::LspAdd {
                switch: "a".into(),
                port: "p2".into(),
                may_exist: true
            })
        ));
        // Trailing and doubled separators are harmless; global options may sit in any piece.
        let i = inv(&["ls-add", "a", "--", "--", "-f", "json", "ls-add", "b", "--"]);
        assert_eq!(i.commands.len(), 2);
        assert_eq!(i.global.format, Some(Format::Json));
        // The same global option twice must agree.
        let i = inv(&["--wait=hv", "ls-add", "a", "--", "--wait=hv", "ls-add", "b"]);
        assert_eq!(i.global.wait, Some(WaitArg::Hv));
        let e = err(&[
            "--wait=hv",
            "ls-add",
            "a",
            "--",
            "--wait=none",
            "ls-add",
            "b",
        ]);
        assert_eq!(
            e.to_string(),
            "option --wait is given more than once with different values"
        );
    }

    #[test]
    fn flag_for_another_command_is_one_line() {
        let e = err(&["--may-exist", "ls-del", "sw1"]);
        let s = e.to_string();
        assert!(
            s.starts_with("option --may-exist is not valid for command ls-del (only for ls-add, "),
            "{s}"
        );
        assert!(s.contains("lsp-add-batch"), "{s}");
        assert!(matches!(e, ParseError::Usage(_)));
        let e = err(&["ls-add", "a", "--", "lsp-del", "p1", "--may-exist"]);
        assert!(e.to_string().contains("command lsp-del"), "{e}");
        let e = err(&["--if-exists", "ls-add", "sw1"]);
        assert!(e.to_string().contains("--if-exists"), "{e}");
        let e = err(&["--may-exist", "--", "ls-add", "a"]);
        assert_eq!(
            e.to_string(),
            "option --may-exist must be written just before or after a command"
        );
    }

    #[test]
    fn clap_errors_stay_clap_errors() {
        for args in [
            &["ls-add", "sw1", "--vni", "abc"][..],
            &["--wait=sb", "sync"],
            &["-o", "yaml", "show"],
            &["nonsense"],
            &[],
            &["--"],
            &["--bogus", "show"],
            &["ls-add", "a", "--", "lsp-add", "a"],
        ] {
            match err(args) {
                ParseError::Clap(e) => assert_eq!(e.exit_code(), 2, "{args:?}"),
                other => panic!("{args:?}: {other}"),
            }
        }
        match err(&["--help"]) {
            ParseError::Clap(e) => assert_eq!(e.exit_code(), 0),
            other => panic!("{other}"),
        }
        match err(&["ls-add", "--help"]) {
            ParseError::Clap(e) => {
                let full = e.render().to_string();
                let help = full.split("Global options").next().unwrap_or_default();
                assert!(full.contains("Global options"), "{full}");
                assert!(help.contains("--may-exist"), "{help}");
                // Only ls-add's own flags.
                assert!(!help.contains("--if-exists"), "{help}");
                assert!(!help.contains("--wait"), "{help}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn values_that_look_like_flags_stay_arguments() {
        let i = inv(&["set", "Logical_Switch", "sw1", "external_ids:x=-1"]);
        assert_eq!(i.commands.len(), 1);
        let i = inv(&["add", "Logical_Switch", "sw1", "external_ids", "-x=1"]);
        assert_eq!(i.commands.len(), 1);
    }
}
