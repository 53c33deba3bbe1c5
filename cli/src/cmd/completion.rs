//! `completion bash|zsh|fish`: shell completion scripts generated from weftctl's own clap
//! definition (commands, each command's flags and fixed values, global options, kind names
//! for the database commands), `--` chains included.
//!
//! Install: `source <(weftctl completion bash)`; zsh: `source <(weftctl completion zsh)` (or
//! save it as `_weftctl` in `$fpath`); fish: `weftctl completion fish | source`.

use clap::{Subcommand, ValueEnum};

use super::{CmdError, Noun, PlanCtx, Step, KINDS};

#[derive(Debug, Clone, Subcommand)]
pub enum CompletionCmd {
    /// Print a shell completion script (bash, zsh or fish).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Shells weftctl completes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Noun for CompletionCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let CompletionCmd::Completion { shell } = self;
        let model = Model::from_clap(&crate::args::command());
        Ok(Step::Local(match shell {
            Shell::Bash => bash(&model),
            Shell::Zsh => zsh(&model),
            Shell::Fish => fish(&model),
        }))
    }
}

/// An option as the scripts need it.
#[derive(Debug, Clone)]
struct Opt {
    /// `--name` and `-x` spellings.
    names: Vec<String>,
    takes_value: bool,
    values: Vec<String>,
    help: String,
}

#[derive(Debug, Clone)]
struct Cmd {
    name: String,
    about: String,
    opts: Vec<Opt>,
    /// Fixed values per positional argument (empty: free text, e.g. a name).
    positionals: Vec<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Model {
    globals: Vec<Opt>,
    commands: Vec<Cmd>,
}

fn opt_of(a: &clap::Arg) -> Opt {
    let mut names: Vec<String> = a
        .get_long_and_visible_aliases()
        .unwrap_or_default()
        .into_iter()
        .map(|l| format!("--{l}"))
        .collect();
    names.extend(
        a.get_short_and_visible_aliases()
            .unwrap_or_default()
            .into_iter()
            .map(|s| format!("-{s}")),
    );
    Opt {
        names,
        takes_value: a.get_action().takes_values(),
        values: possible(a),
        help: first_line(a.get_help().map(|h| h.to_string()).unwrap_or_default()),
    }
}

fn possible(a: &clap::Arg) -> Vec<String> {
    a.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect()
}

fn first_line(s: String) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

impl Model {
    fn from_clap(cmd: &clap::Command) -> Model {
        let skip = |a: &&clap::Arg| !matches!(a.get_id().as_str(), "help" | "version");
        let globals = cmd
            .get_arguments()
            .filter(skip)
            .filter(|a| !a.is_positional())
            .map(opt_of)
            .collect();
        let commands = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .map(|s| Cmd {
                name: s.get_name().to_string(),
                about: first_line(s.get_about().map(|h| h.to_string()).unwrap_or_default()),
                opts: s
                    .get_arguments()
                    .filter(skip)
                    .filter(|a| !a.is_positional())
                    .map(opt_of)
                    .collect(),
                positionals: s
                    .get_positionals()
                    .map(|a| {
                        if a.get_id() == "kind" {
                            KINDS.iter().map(|k| k.to_string()).collect()
                        } else {
                            possible(a)
                        }
                    })
                    .collect(),
            })
            .collect();
        Model { globals, commands }
    }

    fn command_names(&self) -> Vec<&str> {
        self.commands.iter().map(|c| c.name.as_str()).collect()
    }

    /// Every option (global or per-command) that takes a separate value.
    fn value_options(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .globals
            .iter()
            .chain(self.commands.iter().flat_map(|c| c.opts.iter()))
            .filter(|o| o.takes_value)
            .flat_map(|o| o.names.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Per-command flags that may also be written before the command name.
    fn command_flags(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .commands
            .iter()
            .flat_map(|c| c.opts.iter())
            .filter(|o| !o.takes_value)
            .flat_map(|o| o.names.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn global_names(&self) -> Vec<String> {
        self.globals
            .iter()
            .flat_map(|o| o.names.iter().cloned())
            .collect()
    }
}

/// A single-quoted shell word (bash, zsh and fish all read `'...'` literally but for `'`).
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// fish's single quotes escape `'` and `\` with a backslash.
fn fish_sq(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

fn bash(m: &Model) -> String {
    let mut s = String::new();
    s.push_str("# bash completion for weftctl (generated by `weftctl completion bash`)\n");
    s.push_str("_weftctl() {\n");
    s.push_str(
        "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n",
    );
    s.push_str(&format!(
        "    local globals={}\n",
        sq(&m.global_names().join(" "))
    ));
    s.push_str(&format!(
        "    local cmdflags={}\n",
        sq(&m.command_flags().join(" "))
    ));
    s.push_str(&format!(
        "    local commands={}\n",
        sq(&m.command_names().join(" "))
    ));
    s.push_str("    case \"$prev\" in\n");
    for o in m.globals.iter().filter(|o| o.takes_value) {
        s.push_str(&format!(
            "        {}) COMPREPLY=($(compgen -W {} -- \"$cur\")); return ;;\n",
            o.names.join("|"),
            sq(&o.values.join(" "))
        ));
    }
    s.push_str("    esac\n");
    s.push_str("    local i w cmd='' pos=0\n");
    s.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n");
    s.push_str("        w=\"${COMP_WORDS[i]}\"\n");
    s.push_str("        if [[ \"$w\" == -- ]]; then cmd=''; pos=0; continue; fi\n");
    s.push_str("        case \"$w\" in\n");
    s.push_str(&format!(
        "            {}) ((i++)); continue ;;\n",
        m.value_options().join("|")
    ));
    s.push_str("            -*) continue ;;\n");
    s.push_str("        esac\n");
    s.push_str("        if [[ -z \"$cmd\" ]]; then cmd=\"$w\"; else ((pos++)); fi\n");
    s.push_str("    done\n");
    s.push_str("    if [[ -z \"$cmd\" ]]; then\n");
    s.push_str("        if [[ \"$cur\" == -* ]]; then\n");
    s.push_str("            COMPREPLY=($(compgen -W \"$globals $cmdflags --help --version\" -- \"$cur\"))\n");
    s.push_str("        else\n");
    s.push_str("            COMPREPLY=($(compgen -W \"$commands\" -- \"$cur\"))\n");
    s.push_str("        fi\n");
    s.push_str("        return\n");
    s.push_str("    fi\n");
    s.push_str("    local opts='' vals=''\n");
    s.push_str("    case \"$cmd\" in\n");
    for c in &m.commands {
        let opts: Vec<String> = c.opts.iter().flat_map(|o| o.names.clone()).collect();
        s.push_str(&format!("        {})\n", c.name));
        s.push_str(&format!("            opts={}\n", sq(&opts.join(" "))));
        let fixed: Vec<(usize, &Vec<String>)> = c
            .positionals
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if !fixed.is_empty() {
            s.push_str("            case $pos in\n");
            for (i, v) in fixed {
                s.push_str(&format!(
                    "                {i}) vals={} ;;\n",
                    sq(&v.join(" "))
                ));
            }
            s.push_str("            esac\n");
        }
        s.push_str("            ;;\n");
    }
    s.push_str("    esac\n");
    s.push_str("    if [[ \"$cur\" == -* ]]; then\n");
    s.push_str("        COMPREPLY=($(compgen -W \"$opts $globals -- --help\" -- \"$cur\"))\n");
    s.push_str("    elif [[ -n \"$vals\" ]]; then\n");
    s.push_str("        COMPREPLY=($(compgen -W \"$vals\" -- \"$cur\"))\n");
    s.push_str("    fi\n");
    s.push_str("}\n");
    s.push_str("complete -F _weftctl weftctl\n");
    s
}

fn zsh(m: &Model) -> String {
    let esc = |t: &str| t.replace(':', "\\:");
    let mut s = String::new();
    s.push_str("#compdef weftctl\n");
    s.push_str("# zsh completion for weftctl (generated by `weftctl completion zsh`)\n");
    s.push_str("_weftctl() {\n");
    s.push_str("    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}\n");
    s.push_str(&format!(
        "    local -a globals=({})\n",
        m.global_names().join(" ")
    ));
    s.push_str(&format!(
        "    local -a cmdflags=({})\n",
        m.command_flags().join(" ")
    ));
    s.push_str("    local -a commands=(\n");
    for c in &m.commands {
        s.push_str(&format!(
            "        {}\n",
            sq(&format!("{}:{}", esc(&c.name), c.about))
        ));
    }
    s.push_str("    )\n");
    s.push_str("    case $prev in\n");
    for o in m.globals.iter().filter(|o| o.takes_value) {
        let vals: Vec<String> = o.values.iter().map(|v| sq(v)).collect();
        s.push_str(&format!(
            "        {}) {}; return ;;\n",
            o.names.join("|"),
            if vals.is_empty() {
                "_message value".to_string()
            } else {
                format!("compadd -- {}", vals.join(" "))
            }
        ));
    }
    s.push_str("    esac\n");
    s.push_str("    local i w cmd='' pos=0\n");
    s.push_str("    for ((i = 2; i < CURRENT; i++)); do\n");
    s.push_str("        w=${words[i]}\n");
    s.push_str("        if [[ $w == -- ]]; then cmd=''; pos=0; continue; fi\n");
    s.push_str("        case $w in\n");
    s.push_str(&format!(
        "            {}) ((i++)); continue ;;\n",
        m.value_options().join("|")
    ));
    s.push_str("            -*) continue ;;\n");
    s.push_str("        esac\n");
    s.push_str("        if [[ -z $cmd ]]; then cmd=$w; else ((pos++)); fi\n");
    s.push_str("    done\n");
    s.push_str("    if [[ -z $cmd ]]; then\n");
    s.push_str("        if [[ $cur == -* ]]; then\n");
    s.push_str("            compadd -- $globals $cmdflags --help --version\n");
    s.push_str("        else\n");
    s.push_str("            _describe -t commands 'weftctl command' commands\n");
    s.push_str("        fi\n");
    s.push_str("        return\n");
    s.push_str("    fi\n");
    s.push_str("    local -a opts vals\n");
    s.push_str("    case $cmd in\n");
    for c in &m.commands {
        let opts: Vec<String> = c.opts.iter().flat_map(|o| o.names.clone()).collect();
        s.push_str(&format!("        {})\n", c.name));
        s.push_str(&format!("            opts=({})\n", opts.join(" ")));
        let fixed: Vec<(usize, &Vec<String>)> = c
            .positionals
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if !fixed.is_empty() {
            s.push_str("            case $pos in\n");
            for (i, v) in fixed {
                let vals: Vec<String> = v.iter().map(|x| sq(x)).collect();
                s.push_str(&format!(
                    "                {i}) vals=({}) ;;\n",
                    vals.join(" ")
                ));
            }
            s.push_str("            esac\n");
        }
        s.push_str("            ;;\n");
    }
    s.push_str("    esac\n");
    s.push_str("    if [[ $cur == -* ]]; then\n");
    s.push_str("        compadd -- $opts $globals -- --help\n");
    s.push_str("    elif (( ${#vals} )); then\n");
    s.push_str("        compadd -- $vals\n");
    s.push_str("    fi\n");
    s.push_str("}\n");
    s.push_str("if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n");
    s.push_str("    _weftctl \"$@\"\n");
    s.push_str("else\n");
    s.push_str("    compdef _weftctl weftctl\n");
    s.push_str("fi\n");
    s
}

fn fish(m: &Model) -> String {
    let mut s = String::new();
    s.push_str("# fish completion for weftctl (generated by `weftctl completion fish`)\n");
    s.push_str(
        "# The command of the current `--` piece and the index of the argument being typed.\n",
    );
    s.push_str("function __weftctl_state\n");
    s.push_str("    set -l cmd ''\n");
    s.push_str("    set -l pos 0\n");
    s.push_str("    set -l skip 0\n");
    s.push_str("    for t in (commandline -opc)[2..-1]\n");
    s.push_str("        if test $skip = 1\n");
    s.push_str("            set skip 0\n");
    s.push_str("            continue\n");
    s.push_str("        end\n");
    s.push_str("        switch $t\n");
    s.push_str("            case --\n");
    s.push_str("                set cmd ''\n");
    s.push_str("                set pos 0\n");
    let vo: Vec<String> = m.value_options().iter().map(|o| fish_sq(o)).collect();
    s.push_str(&format!("            case {}\n", vo.join(" ")));
    s.push_str("                set skip 1\n");
    s.push_str("            case '-*'\n");
    s.push_str("            case '*'\n");
    s.push_str("                if test -z \"$cmd\"\n");
    s.push_str("                    set cmd $t\n");
    s.push_str("                else\n");
    s.push_str("                    set pos (math $pos + 1)\n");
    s.push_str("                end\n");
    s.push_str("        end\n");
    s.push_str("    end\n");
    s.push_str("    echo \"$cmd\"\n");
    s.push_str("    echo $pos\n");
    s.push_str("end\n");
    s.push_str("function __weftctl_needs_command\n");
    s.push_str("    set -l st (__weftctl_state)\n");
    s.push_str("    test -z \"$st[1]\"\n");
    s.push_str("end\n");
    s.push_str(
        "# __weftctl_at CMD [POS]: the current piece runs CMD (and the argument is at POS).\n",
    );
    s.push_str("function __weftctl_at\n");
    s.push_str("    set -l st (__weftctl_state)\n");
    s.push_str("    test \"$st[1]\" = \"$argv[1]\"; or return 1\n");
    s.push_str("    test (count $argv) -lt 2; or test \"$st[2]\" = \"$argv[2]\"\n");
    s.push_str("end\n");
    s.push_str("complete -c weftctl -f\n");
    let opt_line = |cond: &str, o: &Opt| -> String {
        let mut line = format!("complete -c weftctl -n {}", fish_sq(cond));
        for n in &o.names {
            match n.strip_prefix("--") {
                Some(l) => line.push_str(&format!(" -l {l}")),
                None => line.push_str(&format!(" -s {}", n.trim_start_matches('-'))),
            }
        }
        if o.takes_value {
            line.push_str(" -r");
            if !o.values.is_empty() {
                line.push_str(&format!(" -x -a {}", fish_sq(&o.values.join(" "))));
            }
        }
        if !o.help.is_empty() {
            line.push_str(&format!(" -d {}", fish_sq(&o.help)));
        }
        line.push('\n');
        line
    };
    for o in &m.globals {
        s.push_str(&opt_line("true", o));
    }
    for c in &m.commands {
        s.push_str(&format!(
            "complete -c weftctl -n __weftctl_needs_command -a {} -d {}\n",
            fish_sq(&c.name),
            fish_sq(&c.about)
        ));
    }
    for c in &m.commands {
        let cond = format!("__weftctl_at {}", c.name);
        for o in &c.opts {
            s.push_str(&opt_line(&cond, o));
        }
        for (i, v) in c.positionals.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            s.push_str(&format!(
                "complete -c weftctl -n {} -a {}\n",
                fish_sq(&format!("__weftctl_at {} {i}", c.name)),
                fish_sq(&v.join(" "))
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn script(shell: &str) -> String {
        match step(&["completion", shell]) {
            Step::Local(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_script_names_every_command_and_flag() {
        let model = Model::from_clap(&crate::args::command());
        assert!(model.commands.len() > 30, "{}", model.commands.len());
        for shell in ["bash", "zsh", "fish"] {
            let s = script(shell);
            for c in &model.commands {
                assert!(s.contains(&c.name), "{shell}: {}", c.name);
            }
            for flag in [
                "--may-exist",
                "--if-exists",
                "--subnet",
                "--dry-run",
                "--format",
            ] {
                assert!(s.contains(flag.trim_start_matches('-')), "{shell}: {flag}");
            }
            for v in ["Logical_Switch_Port", "enabled", "disabled", "csv", "zsh"] {
                assert!(s.contains(v), "{shell}: {v}");
            }
        }
        assert!(script("bash").ends_with("complete -F _weftctl weftctl\n"));
        assert!(script("zsh").starts_with("#compdef weftctl\n"));
    }

    #[test]
    fn model_reads_the_clap_definition() {
        let m = Model::from_clap(&crate::args::command());
        let ls_add = m
            .commands
            .iter()
            .find(|c| c.name == "ls-add")
            .expect("ls-add");
        let names: Vec<&str> = ls_add
            .opts
            .iter()
            .flat_map(|o| o.names.iter().map(String::as_str))
            .collect();
        assert_eq!(names, ["--subnet", "--vni", "--mtu", "--may-exist"]);
        let set = m.commands.iter().find(|c| c.name == "set").expect("set");
        assert_eq!(set.positionals[0].len(), KINDS.len());
        assert!(m.value_options().contains(&"--controller".to_string()));
        assert!(m.value_options().contains(&"-o".to_string()));
        assert!(m.command_flags().contains(&"--may-exist".to_string()));
        assert_eq!(sq("it's"), r"'it'\''s'");
        assert_eq!(fish_sq(r"a'b\c"), r"'a\'b\\c'");
    }
}
