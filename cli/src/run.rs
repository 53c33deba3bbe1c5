//! Runs one invocation: plan every command, make the one write (a Transact, or the
//! dedicated RPC when a lone command has one), then the reads in order, and put the output
//! together. The I/O is [`run`]; deciding and assembling are the pure functions below it.

use std::time::Duration;

use weft_proto::v1 as pb;

use crate::args::{resolve_controller, GlobalOpts};
use crate::chain::Invocation;
use crate::client::{Client, ClientConfig, CONNECT_TIMEOUT};
use crate::cmd::{CmdError, Outcome, PlanCtx, Step, Sugar, Write, WriteResults};
use crate::error::CliError;
use crate::format::{self, Out};
use crate::json;

/// How long the controller waits by default for `--wait=hv` (see WriteOptions.timeout_ms).
pub const SERVER_DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Extra time the client allows on top of the wait bound before giving up on a reply.
pub const CLIENT_SLACK: Duration = Duration::from_secs(10);

/// Runs `inv` and returns what to print on stdout. `env_controller` is `WEFT_CONTROLLER`.
pub async fn run(inv: Invocation, env_controller: Option<String>) -> Result<String, CliError> {
    let g = &inv.global;
    let ctx = plan_ctx(g);
    let steps: Vec<Step> = inv
        .commands
        .iter()
        .map(|c| c.plan(&ctx))
        .collect::<Result<_, CmdError>>()?;
    let chained = steps.len() > 1 || g.oneline;
    let out = Out::from_global(g, chained);

    let mut client = None;
    if steps.iter().any(|s| !matches!(s, Step::Local(_))) {
        let transport = weft_proto::tls::Transport::from_flags(
            g.insecure,
            g.ca.clone(),
            g.cert.clone(),
            g.key.clone(),
        )
        .map_err(CliError::Tls)?;
        let cfg = ClientConfig {
            transport,
            token: g.token.clone(),
            url: resolve_controller(g.controller.as_deref(), env_controller.as_deref())?,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: client_deadline(g),
        };
        client = Some(Client::connect(&cfg).await?);
    }

    // The one write.
    let mut outcomes: Vec<Option<WriteResults>> = Vec::new();
    match write_call(&steps, g) {
        WriteCall::None => outcomes.resize(steps.len(), None),
        WriteCall::Sugar(s) => {
            let c = client
                .as_mut()
                .ok_or(CliError::MalformedReply("no client"))?;
            outcomes.push(Some(c.sugar(*s).await?));
        }
        WriteCall::Transact(req, counts) => {
            let c = client
                .as_mut()
                .ok_or(CliError::MalformedReply("no client"))?;
            let reply = c.transact(*req).await?;
            if g.dry_run {
                return Ok(dry_run_output(&reply, &out)?);
            }
            outcomes = split_results(&steps, &counts, reply)?;
        }
    }

    warn_skipped(client.as_mut());
    // Every command's output, in order; reads run now, after the commit.
    let mut outputs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        outputs.push(match step {
            Step::Write(w) => {
                let (revision, results) = outcomes
                    .get(i)
                    .and_then(Option::as_ref)
                    .ok_or(CliError::MalformedReply("a write has no result"))?;
                (w.render)(
                    &Outcome {
                        revision: *revision,
                        results,
                    },
                    &out,
                )?
            }
            Step::Read(r) => {
                let c = client
                    .as_mut()
                    .ok_or(CliError::MalformedReply("no client"))?;
                let mut replies = Vec::new();
                for call in &r.calls {
                    replies.push(c.call(call).await?);
                }
                warn_skipped(Some(&mut *c));
                (r.render)(&replies, &out)?
            }
            Step::Local(s) => s.clone(),
        });
    }
    Ok(assemble(&outputs, chained))
}

/// What planning takes from the global options.
pub fn plan_ctx(g: &GlobalOpts) -> PlanCtx {
    PlanCtx {
        wait: g.wait,
        timeout_ms: g.timeout.map(|s| s.saturating_mul(1000)).unwrap_or(0),
        strict: g.strict,
    }
}

/// Says on stderr which dead chassis the last `--wait=hv` did not wait for (and forgets them).
fn warn_skipped(client: Option<&mut Client>) {
    if let Some(c) = client {
        if !c.skipped.is_empty() {
            eprintln!(
                "weftctl: warning: --wait=hv did not wait for dead chassis {} (use --strict to fail instead)",
                c.skipped.join(", ")
            );
            c.skipped.clear();
        }
    }
}

/// How long the client waits for each reply: the wait bound (`--timeout`, or the server's
/// default) plus [`CLIENT_SLACK`].
pub fn client_deadline(g: &GlobalOpts) -> Duration {
    g.timeout
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or(SERVER_DEFAULT_WAIT)
        + CLIENT_SLACK
}

/// The invocation's one write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteCall {
    /// No command writes.
    None,
    /// A lone command with a dedicated RPC (today's behaviour and messages).
    Sugar(Box<Sugar>),
    /// Every write command's ops in one Transact; `counts[i]` ops belong to step i.
    Transact(Box<pb::TransactRequest>, Vec<usize>),
}

/// Decides the write: none, the sugar RPC (one command, not a dry run), or one Transact.
pub fn write_call(steps: &[Step], g: &GlobalOpts) -> WriteCall {
    let writes: Vec<&Write> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Write(w) => Some(w.as_ref()),
            _ => None,
        })
        .collect();
    if writes.is_empty() {
        return WriteCall::None;
    }
    if let ([Step::Write(w)], false) = (steps, g.dry_run) {
        if let Some(s) = &w.sugar {
            return WriteCall::Sugar(Box::new(s.clone()));
        }
    }
    let ctx = plan_ctx(g);
    let counts = steps
        .iter()
        .map(|s| match s {
            Step::Write(w) => w.ops.len(),
            _ => 0,
        })
        .collect();
    WriteCall::Transact(
        Box::new(pb::TransactRequest {
            ops: writes.iter().flat_map(|w| w.ops.iter().cloned()).collect(),
            dry_run: g.dry_run,
            wait: ctx.wait_mode(false) as i32,
            timeout_ms: ctx.timeout_ms,
            strict: ctx.strict,
        }),
        counts,
    )
}

/// Hands each write step its slice of the results (reads get `None`).
pub fn split_results(
    steps: &[Step],
    counts: &[usize],
    reply: pb::TransactReply,
) -> Result<Vec<Option<WriteResults>>, CliError> {
    let total: usize = counts.iter().sum();
    if reply.results.len() != total {
        return Err(CliError::MalformedReply(
            "Transact returned a different number of results than ops",
        ));
    }
    let mut results = reply.results.into_iter();
    Ok(steps
        .iter()
        .zip(counts)
        .map(|(s, &n)| match s {
            Step::Write(_) => Some((reply.revision, results.by_ref().take(n).collect())),
            _ => None,
        })
        .collect())
}

/// `--dry-run`: the lines of what would change (JSON: the whole reply).
pub fn dry_run_output(reply: &pb::TransactReply, out: &Out) -> Result<String, CmdError> {
    if out.json() {
        let v = json::DryRunReply {
            revision: reply.revision,
            changes: reply.changes.clone(),
            results: reply.results.iter().map(Into::into).collect(),
        };
        return Ok(format::json_text(&v, out)?);
    }
    Ok(format::lines(&reply.changes))
}

/// One command: its output as is. A chain (or `--oneline`): one line per command.
pub fn assemble(outputs: &[String], chained: bool) -> String {
    if !chained {
        return outputs.concat();
    }
    outputs
        .iter()
        .map(|o| format!("{}\n", format::oneline(o)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::WaitArg;
    use crate::cmd::testutil::result;

    fn steps(args: &[&str]) -> (Vec<Step>, GlobalOpts) {
        let argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let inv = crate::chain::parse(&argv).unwrap_or_else(|e| panic!("{e}"));
        let ctx = plan_ctx(&inv.global);
        let steps = inv
            .commands
            .iter()
            .map(|c| c.plan(&ctx).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        (steps, inv.global)
    }

    #[test]
    fn lone_command_uses_its_rpc_chain_uses_one_transact() {
        let (s, g) = steps(&["ls-add", "a"]);
        assert!(
            matches!(write_call(&s, &g), WriteCall::Sugar(b) if matches!(*b, Sugar::CreateSwitch(_)))
        );
        let (s, g) = steps(&["--dry-run", "ls-add", "a"]);
        assert!(matches!(write_call(&s, &g), WriteCall::Transact(ref r, _) if r.dry_run));
        let (s, g) = steps(&["lsp-set-type", "p1", "router"]);
        assert!(matches!(write_call(&s, &g), WriteCall::Transact(..)));
        let (s, g) = steps(&["ls-list"]);
        assert_eq!(write_call(&s, &g), WriteCall::None);

        let (s, g) = steps(&[
            "--wait=hv",
            "--timeout=5",
            "ls-add",
            "a",
            "--",
            "lsp-add",
            "a",
            "p1",
            "--",
            "ls-list",
            "--",
            "lsp-add-batch",
            "a",
            "p2",
            "p3",
            "--",
            "lsp-set-addresses",
            "p1",
            "dynamic",
        ]);
        let WriteCall::Transact(req, counts) = write_call(&s, &g) else {
            panic!("not a transact")
        };
        assert_eq!(counts, [1, 1, 0, 2, 1]);
        assert_eq!(req.ops.len(), 5);
        assert_eq!(req.wait, pb::WaitMode::WaitHv as i32);
        assert_eq!(req.timeout_ms, 5000);
        assert!(!req.dry_run);
        assert!(g.wait == Some(WaitArg::Hv));

        let reply = pb::TransactReply {
            results: (0..5)
                .map(|i| {
                    result(pb::object::Kind::LogicalSwitchPort(pb::LogicalSwitchPort {
                        name: format!("r{i}"),
                        ..Default::default()
                    }))
                })
                .collect(),
            revision: 77,
            changes: vec![],
        };
        let split = split_results(&s, &counts, reply.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(split.len(), 5);
        assert!(split[2].is_none());
        let batch = split[3].as_ref().map(|(r, v)| (*r, v.len()));
        assert_eq!(batch, Some((77, 2)));
        let mut short = reply;
        short.results.pop();
        assert!(split_results(&s, &counts, short).is_err());
    }

    #[test]
    fn chained_output_is_one_line_per_command() {
        assert_eq!(assemble(&["a\nb\n".into()], false), "a\nb\n");
        assert_eq!(
            assemble(
                &["".into(), "up\n".into(), "a\nb\n".into(), "".into()],
                true
            ),
            "\nup\na\\nb\n\n"
        );
    }

    #[test]
    fn dry_run_prints_the_changes() {
        let reply = pb::TransactReply {
            results: vec![pb::OpResult::default()],
            revision: 3,
            changes: vec!["put nb/switches/a".into(), "put claims/vni/5".into()],
        };
        let text = dry_run_output(&reply, &Out::default()).unwrap_or_default();
        assert_eq!(text, "put nb/switches/a\nput claims/vni/5\n");
        let out = Out {
            format: Some(crate::args::Format::Json),
            ..Default::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&dry_run_output(&reply, &out).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(v["changes"][1], "put claims/vni/5");
    }

    #[test]
    fn deadline_follows_timeout() {
        let g = GlobalOpts {
            timeout: Some(5),
            ..Default::default()
        };
        assert_eq!(client_deadline(&g), Duration::from_secs(5) + CLIENT_SLACK);
        assert_eq!(
            client_deadline(&GlobalOpts::default()),
            SERVER_DEFAULT_WAIT + CLIENT_SLACK
        );
    }
}
