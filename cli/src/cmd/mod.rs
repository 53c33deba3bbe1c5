//! The commands: one file per noun, one line per noun in [`registry!`] below.
//!
//! Each noun declares its commands as a clap subcommand enum and implements [`Noun::plan`]:
//! a parsed command becomes a [`Step`] — ops for the invocation's one `Transact` (a write),
//! or a read run after it, or local output — together with how its result prints. Planning
//! and printing are pure; [`crate::run`] does the I/O.
//!
//! Adding a kind: a file `cmd/<noun>.rs` with its subcommand enum and `Noun` impl, one line
//! in `registry!`, and (for the database commands' completion) its table name in [`KINDS`].

use std::collections::HashMap;

use clap::Subcommand;
use thiserror::Error;
use weft_proto::v1 as pb;

use crate::args::WaitArg;
use crate::format::{Out, RenderError};
use crate::value::ValueError;

pub mod acl;
pub mod address_set;
pub mod agent_info;
pub mod chassis;
pub mod completion;
pub mod db;
pub mod flows;
pub mod gateway_chassis;
pub mod load_balancer;
pub mod meter;
pub mod nat;
pub mod port;
pub mod port_group;
pub mod port_map;
pub mod route;
pub mod router;
pub mod router_port;
pub mod show;
pub mod support_bundle;
pub mod switch;
pub mod sync;
pub mod topology;
pub mod trace;

/// Table names of the kinds, as ovn-nbctl spells them (the server resolves them
/// case-insensitively; weftctl uses this list for completion and help only).
pub const KINDS: &[&str] = &[
    "Logical_Switch",
    "Logical_Switch_Port",
    "Chassis",
    "Logical_Router",
    "Logical_Router_Port",
    "Address_Set",
    "Port_Group",
    "ACL",
    "Load_Balancer",
    "Meter",
];

/// Declares [`Command`] (every noun's subcommands flattened into one list) and dispatches
/// [`Noun::plan`] to the noun.
macro_rules! registry {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// Every command, named as in ovn-nbctl.
        #[derive(Debug, Clone, Subcommand)]
        pub enum Command {
            $(#[command(flatten)] $variant($ty),)*
        }

        impl Command {
            /// What the command does, as a [`Step`].
            pub fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
                match self {
                    $(Command::$variant(c) => c.plan(ctx),)*
                }
            }
        }
    };
}

registry! {
    Show(show::ShowCmd),
    Switch(switch::SwitchCmd),
    Port(port::PortCmd),
    Router(router::RouterCmd),
    RouterPort(router_port::RouterPortCmd),
    Chassis(chassis::ChassisCmd),
    AddressSet(address_set::AddressSetCmd),
    PortGroup(port_group::PortGroupCmd),
    Acl(acl::AclCmd),
    LoadBalancer(load_balancer::LoadBalancerCmd),
    Meter(meter::MeterCmd),
    Db(db::DbCmd),
    Sync(sync::SyncCmd),
    Topology(topology::TopologyCmd),
    Trace(trace::TraceCmd),
    Flows(flows::FlowsCmd),
    AgentInfo(agent_info::AgentInfoCmd),
    SupportBundle(support_bundle::SupportBundleCmd),
    Completion(completion::CompletionCmd),
    Route(route::RouteCmd),
    Nat(nat::NatCmd),
    PortMap(port_map::PortMapCmd),
    GatewayChassis(gateway_chassis::GatewayChassisCmd),
}

/// A noun's commands.
pub trait Noun {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError>;
}

/// What planning may need from the global options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCtx {
    pub wait: Option<WaitArg>,
    /// `--timeout` in milliseconds (0 = the controller's default).
    pub timeout_ms: u32,
    /// `--strict`: dead chassis fail a `--wait=hv` instead of being skipped.
    pub strict: bool,
}

impl PlanCtx {
    /// WriteOptions for a dedicated (sugar) RPC.
    pub fn write_options(&self, may_exist: bool, if_exists: bool) -> pb::WriteOptions {
        pb::WriteOptions {
            may_exist,
            if_exists,
            wait: self.wait_mode(false) as i32,
            timeout_ms: self.timeout_ms,
            strict: self.strict,
        }
    }

    /// How long the controller gives each chassis' agent (flows, agent-info, trace
    /// --physical): a third of `--timeout`, so that a physical trace's two hops and the reply
    /// fit in it; 0 (the controller's default, 3 s) without `--timeout`.
    pub fn chassis_timeout_ms(&self) -> u32 {
        match self.timeout_ms {
            0 => 0,
            t => (t / 3).max(1),
        }
    }

    /// The wait mode: `--wait` if given, else `default_hv` (true for `sync`).
    pub fn wait_mode(&self, default_hv: bool) -> pb::WaitMode {
        match (self.wait, default_hv) {
            (Some(WaitArg::Hv), _) | (None, true) => pb::WaitMode::WaitHv,
            (Some(WaitArg::None), _) | (None, false) => pb::WaitMode::WaitNone,
        }
    }
}

/// What one command does.
pub enum Step {
    /// A write: its ops join the invocation's one Transact.
    Write(Box<Write>),
    /// A read (or sync), run after the transaction commits.
    Read(Read),
    /// Output made without the controller (completion scripts).
    Local(String),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Write(w) => f
                .debug_struct("Write")
                .field("ops", &w.ops)
                .field("sugar", &w.sugar)
                .finish_non_exhaustive(),
            Step::Read(r) => f
                .debug_struct("Read")
                .field("calls", &r.calls)
                .finish_non_exhaustive(),
            Step::Local(s) => f.debug_tuple("Local").field(s).finish(),
        }
    }
}

/// How a write prints, given its ops' results.
pub type WriteRender = Box<dyn Fn(&Outcome<'_>, &Out) -> Result<String, CmdError>>;
/// How a read prints, given its calls' replies (one per call, in order).
pub type ReadRender = Box<dyn Fn(&[Reply], &Out) -> Result<String, CmdError>>;

/// A write command.
pub struct Write {
    pub ops: Vec<pb::Op>,
    /// The dedicated RPC that does the same when the command runs alone and not as a dry
    /// run (keeps today's replies and messages, e.g. `ports[1].name`).
    pub sugar: Option<Sugar>,
    pub render: WriteRender,
}

/// The results of one write command's ops.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub revision: i64,
    pub results: &'a [pb::OpResult],
}

/// One write step's (revision, results).
pub type WriteResults = (i64, Vec<pb::OpResult>);

/// A read command: calls made in order, then rendered together.
pub struct Read {
    pub calls: Vec<Call>,
    pub render: ReadRender,
}

/// A dedicated northbound write RPC.
#[derive(Debug, Clone, PartialEq)]
pub enum Sugar {
    CreateSwitch(pb::CreateSwitchRequest),
    DeleteSwitch(pb::DeleteRequest),
    CreatePort(pb::CreatePortRequest),
    CreatePorts(pb::CreatePortsRequest),
    DeletePort(pb::DeleteRequest),
    SetPortAddresses(pb::SetPortAddressesRequest),
    SetPortSecurity(pb::SetPortSecurityRequest),
    SetPortEnabled(pb::SetPortEnabledRequest),
    DeleteChassis(pb::DeleteRequest),
}

/// A northbound read RPC (or Sync).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Show,
    ListSwitches,
    ListPorts(String),
    GetPort(String),
    ListChassis,
    ListObjects(pb::ListObjectsRequest),
    Sync(pb::SyncRequest),
    Trace(pb::TraceRequest),
    Flows(pb::FlowsRequest),
    AgentInfo(pb::AgentInfoQuery),
    PhysicalTrace(pb::PhysicalTraceRequest),
}

/// The reply to a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Show(pb::ShowReply),
    Switches(pb::ListSwitchesReply),
    Ports(pb::ListPortsReply),
    Port(pb::LogicalSwitchPort),
    Chassis(pb::ListChassisReply),
    Objects(pb::ListObjectsReply),
    Sync(pb::WriteReply),
    Trace(pb::TraceReply),
    Flows(pb::FlowsReply),
    AgentInfo(pb::AgentInfoReply),
    PhysicalTrace(pb::PhysicalTraceReply),
}

/// Errors of planning and printing commands.
#[derive(Debug, Error)]
pub enum CmdError {
    /// A malformed value or argument (exit status 2).
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A malformed argument (exit status 2).
    #[error("{command}: {reason}")]
    Usage {
        command: &'static str,
        reason: String,
    },
    /// A column the kind does not have (exit status 1, as when the controller says so).
    #[error("{kind} has no column {column:?} (columns: {known})")]
    UnknownColumn {
        kind: String,
        column: String,
        known: String,
    },
    /// `get T R COLUMN:KEY` for a key the map lacks.
    #[error("{kind} {name:?} column {column}: no key {key:?}")]
    NoKey {
        kind: String,
        name: String,
        column: String,
        key: String,
    },
    /// `COLUMN:KEY` on a column that is not a map, or an operator that does not apply.
    #[error("{kind} column {column}: {reason}")]
    BadColumnUse {
        kind: String,
        column: String,
        reason: String,
    },
    /// A named object the reply does not have (`show SWITCH`, `lrp-list ROUTER`).
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    /// The reply does not match the contract.
    #[error("malformed reply from controller: {0}")]
    MalformedReply(&'static str),
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl CmdError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CmdError::Value(_) | CmdError::Usage { .. } => 2,
            _ => 1,
        }
    }
}

impl From<serde_json::Error> for CmdError {
    fn from(e: serde_json::Error) -> Self {
        CmdError::Render(RenderError::Json(e))
    }
}

// ---- Op builders shared by the nouns ----

/// Wraps an object into its `Object` oneof.
pub fn object(kind: pb::object::Kind) -> pb::Object {
    pb::Object { kind: Some(kind) }
}

pub fn insert(kind: pb::object::Kind, may_exist: bool) -> pb::Op {
    pb::Op {
        op: Some(pb::op::Op::Insert(pb::InsertOp {
            object: Some(object(kind)),
            may_exist,
        })),
    }
}

pub fn update(kind: &str, name: &str, columns: Vec<pb::ColumnOp>, if_exists: bool) -> pb::Op {
    pb::Op {
        op: Some(pb::op::Op::Update(pb::UpdateOp {
            kind: kind.to_string(),
            name: name.to_string(),
            columns,
            if_exists,
        })),
    }
}

pub fn delete(kind: &str, name: &str, if_exists: bool) -> pb::Op {
    pb::Op {
        op: Some(pb::op::Op::Delete(pb::DeleteOp {
            kind: kind.to_string(),
            name: name.to_string(),
            if_exists,
        })),
    }
}

pub fn column_op(
    action: pb::column_op::Action,
    column: &str,
    key: Option<&str>,
    values: Vec<String>,
) -> pb::ColumnOp {
    pb::ColumnOp {
        action: action as i32,
        column: column.to_string(),
        key: key.unwrap_or_default().to_string(),
        values,
    }
}

/// Replaces a set or map column; an empty list clears it.
pub fn set_or_clear(column: &str, values: Vec<String>) -> pb::ColumnOp {
    if values.is_empty() {
        column_op(pb::column_op::Action::Clear, column, None, values)
    } else {
        column_op(pb::column_op::Action::Set, column, None, values)
    }
}

/// Sets a scalar column.
pub fn set_scalar(column: &str, value: impl Into<String>) -> pb::ColumnOp {
    column_op(pb::column_op::Action::Set, column, None, vec![value.into()])
}

// ---- Printing helpers shared by the nouns ----

/// Writes print nothing in text form, as ovn-nbctl.
pub fn quiet_text(out: &Out) -> bool {
    !out.json()
}

/// The object of a result, if any.
pub fn result_kind(r: &pb::OpResult) -> Option<&pb::object::Kind> {
    r.object.as_ref().and_then(|o| o.kind.as_ref())
}

/// A write's generic JSON: `{"revision": N, "results": [{"object": ..., "changed": ...}]}`.
pub fn render_results(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let reply = crate::json::TransactReply {
        revision: o.revision,
        results: o.results.iter().map(Into::into).collect(),
    };
    Ok(crate::format::json_text(&reply, out)?)
}

/// A write's JSON with only the revision (deletes).
pub fn render_revision(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    Ok(crate::format::json_text(
        &crate::json::WriteReply {
            revision: o.revision,
        },
        out,
    )?)
}

/// A plain write of `ops` (no sugar) whose output is the revision only.
pub fn revision_write(ops: Vec<pb::Op>) -> Step {
    Step::Write(Box::new(Write {
        ops,
        sugar: None,
        render: Box::new(render_revision),
    }))
}

/// `command`'s usage error for an argument the model refused.
pub fn usage_error(command: &'static str, e: weft_proto::model::ValidationError) -> CmdError {
    CmdError::Usage {
        command,
        reason: e.to_string(),
    }
}

/// The one reply a single-call read got.
pub fn one_reply(replies: &[Reply]) -> Result<&Reply, CmdError> {
    replies
        .first()
        .ok_or(CmdError::MalformedReply("no reply to the read"))
}

/// A sorted copy of a proto map.
pub fn sorted_map(m: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort();
    v
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Parsing a single command line into its step, for the nouns' tests.
    use super::*;

    /// Parses `weftctl ARGS` (one command) and plans it.
    pub fn step(args: &[&str]) -> Step {
        step_with(args, PlanCtx::default())
    }

    pub fn step_with(args: &[&str], ctx: PlanCtx) -> Step {
        let cmd = parse(args);
        match cmd.plan(&ctx) {
            Ok(s) => s,
            Err(e) => panic!("plan {args:?}: {e}"),
        }
    }

    pub fn plan_err(args: &[&str]) -> CmdError {
        match parse(args).plan(&PlanCtx::default()) {
            Ok(s) => panic!("{args:?} planned: {s:?}"),
            Err(e) => e,
        }
    }

    pub fn parse(args: &[&str]) -> Command {
        let argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        match crate::chain::parse(&argv) {
            Ok(mut inv) if inv.commands.len() == 1 => inv.commands.remove(0),
            Ok(inv) => panic!("{args:?}: {} commands", inv.commands.len()),
            Err(e) => panic!("parse {args:?}: {e}"),
        }
    }

    /// The first column op of a write's first op, an update of `kind` `name`: (action,
    /// values).
    pub fn first_column(w: &Write, kind: &str, name: &str) -> (i32, Vec<String>) {
        match &w.ops[0].op {
            Some(pb::op::Op::Update(u)) => {
                assert_eq!((u.kind.as_str(), u.name.as_str()), (kind, name));
                (u.columns[0].action, u.columns[0].values.clone())
            }
            other => panic!("not an update: {other:?}"),
        }
    }

    pub fn write(args: &[&str]) -> Write {
        match step(args) {
            Step::Write(w) => *w,
            other => panic!("{args:?}: not a write: {other:?}"),
        }
    }

    pub fn read(args: &[&str]) -> Read {
        match step(args) {
            Step::Read(r) => r,
            other => panic!("{args:?}: not a read: {other:?}"),
        }
    }

    /// Renders a write's results in text (`json` false) or JSON.
    pub fn render_write(w: &Write, revision: i64, results: &[pb::OpResult], json: bool) -> String {
        let out = out(json);
        match (w.render)(&Outcome { revision, results }, &out) {
            Ok(s) => s,
            Err(e) => panic!("render: {e}"),
        }
    }

    pub fn render_read(r: &Read, replies: &[Reply], out: &Out) -> String {
        match (r.render)(replies, out) {
            Ok(s) => s,
            Err(e) => panic!("render: {e}"),
        }
    }

    pub fn out(json: bool) -> Out {
        Out {
            format: json.then_some(crate::args::Format::Json),
            ..Default::default()
        }
    }

    pub fn json(s: &str) -> serde_json::Value {
        match serde_json::from_str(s) {
            Ok(v) => v,
            Err(e) => panic!("{e}: {s}"),
        }
    }

    pub fn result(kind: pb::object::Kind) -> pb::OpResult {
        pb::OpResult {
            object: Some(object(kind)),
            changed: true,
        }
    }
}
