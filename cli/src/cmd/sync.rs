//! `sync [--revision N]`: wait until every live chassis applied a revision.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::{one_reply, Call, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::json_text;
use crate::json;

#[derive(Debug, Clone, Subcommand)]
pub enum SyncCmd {
    /// Wait until every live chassis has applied the current (or given) revision.
    Sync {
        /// Revision to wait for (default: the controller's current revision).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        revision: Option<i64>,
    },
}

impl Noun for SyncCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        let SyncCmd::Sync { revision } = self;
        Ok(Step::Read(Read {
            calls: vec![Call::Sync(pb::SyncRequest {
                revision: revision.unwrap_or(0),
                options: Some(pb::WriteOptions {
                    wait: ctx.wait_mode(true) as i32,
                    timeout_ms: ctx.timeout_ms,
                    strict: ctx.strict,
                    ..Default::default()
                }),
            })],
            render: Box::new(|replies, out| {
                let Reply::Sync(r) = one_reply(replies)? else {
                    return Err(CmdError::MalformedReply("sync: not a WriteReply"));
                };
                if !out.json() {
                    return Ok(String::new());
                }
                Ok(json_text(&json::WriteReply::from(r), out)?)
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::WaitArg;
    use crate::cmd::testutil::*;

    fn sync_req(args: &[&str], ctx: PlanCtx) -> pb::SyncRequest {
        match step_with(args, ctx) {
            Step::Read(r) => match r.calls.as_slice() {
                [Call::Sync(s)] => *s,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sync_waits_for_chassis_unless_told_not_to() {
        let s = sync_req(&["sync"], PlanCtx::default());
        assert_eq!(s.revision, 0);
        assert_eq!(s.options.map(|o| o.wait), Some(pb::WaitMode::WaitHv as i32));
        let ctx = PlanCtx {
            wait: Some(WaitArg::None),
            timeout_ms: 7000,
            ..Default::default()
        };
        let s = sync_req(&["sync", "--revision", "42"], ctx);
        assert_eq!(s.revision, 42);
        let o = s.options.unwrap_or_default();
        assert_eq!(
            (o.wait, o.timeout_ms),
            (pb::WaitMode::WaitNone as i32, 7000)
        );
        let r = read(&["sync"]);
        let reply = [Reply::Sync(pb::WriteReply { revision: 42 })];
        assert_eq!(render_read(&r, &reply, &out(false)), "");
        assert_eq!(
            json(&render_read(&r, &reply, &out(true))),
            serde_json::json!({"revision": 42})
        );
    }
}
