//! The one retry loop: plan a list of ops on a fresh state, commit them as one store
//! transaction, and on a lost compare re-plan on a state that includes the conflicting write.
//! Every northbound write goes through [`Intent::transact`].

use std::time::Duration;

use rand::Rng;
use weft_proto::v1::{op, Op};

use super::plan::{Plan, Planned};
use crate::error::{ApiError, ApiResult};
use crate::intent::Intent;

/// How often a write retries after losing a race before giving up with Unavailable.
pub const MAX_ATTEMPTS: usize = 200;

/// What a committed (or dry-run) transaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Revision of the commit; for a transaction that changed nothing (or a dry run), the
    /// revision of the state it read.
    pub revision: i64,
    /// One result per op.
    pub results: Vec<Planned>,
    /// The keys written, as text (filled for dry runs).
    pub changes: Vec<String>,
    /// Whether anything was written.
    pub committed: bool,
}

/// A failed transaction: which op failed (None: the transaction as a whole) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactError {
    /// Index of the op that failed.
    pub op: Option<usize>,
    /// The error.
    pub error: ApiError,
}

impl TransactError {
    /// The error with its message prefixed by `ops[i]: ` (the Transact RPC's form).
    pub fn with_op_prefix(self) -> ApiError {
        let Some(i) = self.op else { return self.error };
        map_message(self.error, |m| format!("ops[{i}]: {m}"))
    }
}

impl From<ApiError> for TransactError {
    fn from(error: ApiError) -> Self {
        TransactError { op: None, error }
    }
}

/// Rewrites an error's message, keeping its code.
pub fn map_message(e: ApiError, f: impl FnOnce(String) -> String) -> ApiError {
    match e {
        ApiError::InvalidArgument(m) => ApiError::InvalidArgument(f(m)),
        ApiError::NotFound(m) => ApiError::NotFound(f(m)),
        ApiError::AlreadyExists(m) => ApiError::AlreadyExists(f(m)),
        ApiError::FailedPrecondition(m) => ApiError::FailedPrecondition(f(m)),
        ApiError::Unavailable(m) => ApiError::Unavailable(f(m)),
        ApiError::DeadlineExceeded(m) => ApiError::DeadlineExceeded(f(m)),
        ApiError::Internal(m) => ApiError::Internal(f(m)),
    }
}

async fn backoff(attempt: usize) {
    if attempt >= 2 {
        let ms = rand::rng().random_range(0..(5 * attempt.min(10) as u64 + 1));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Runs one op on the plan.
pub fn run_op(plan: &mut Plan, op: &Op) -> ApiResult<Planned> {
    match &op.op {
        Some(op::Op::Insert(i)) => {
            let obj = i.object.clone().ok_or_else(|| {
                ApiError::InvalidArgument("invalid object \"\": insert needs an object".into())
            })?;
            plan.insert(obj, i.may_exist)
        }
        Some(op::Op::Update(u)) => plan.update(&u.kind, &u.name, &u.columns, u.if_exists),
        Some(op::Op::Delete(d)) => plan.delete(&d.kind, &d.name, d.if_exists),
        None => Err(ApiError::InvalidArgument(
            "invalid op \"\": no insert, update or delete set".into(),
        )),
    }
}

/// How an oversize plan is handled.
pub enum Oversize {
    /// Refused with InvalidArgument naming the limit.
    Refuse,
    /// The caller has a chunked path (ls-del of a large switch): [`Intent::transact`]
    /// returns an [`Outcome`] with `committed == false` and no results, and the caller
    /// falls back to it.
    Fallback,
}

/// The message for a transaction larger than the store takes.
pub fn oversize_message(compares: usize, ops: usize, max: usize) -> String {
    format!(
        "the transaction needs {} etcd transaction operations but the limit is {max} \
         (--etcd-max-txn-ops): split it into smaller transactions, or raise etcd's \
         --max-txn-ops and the controller's --etcd-max-txn-ops",
        compares.max(ops)
    )
}

impl Intent {
    /// Runs `ops` as one transaction (see the module docs). With `dry_run` nothing is
    /// committed. `oversize` says what a plan larger than one store transaction does; with
    /// [`Oversize::Fallback`] such a plan returns an outcome with `committed == false` and
    /// `results` empty, for the caller's chunked path.
    pub async fn transact(
        &self,
        ops: &[Op],
        dry_run: bool,
        oversize: Oversize,
    ) -> Result<Outcome, TransactError> {
        let max = self.limits().max_txn_ops;
        let mut after = None;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let base = match after {
                None => self.read_state().await?,
                Some(rev) => self.state_at_least(rev).await?,
            };
            let mut plan = Plan::new(&base, self.keys())
                .with_max_ops(max)
                .with_acl_max_flows(self.limits().acl_max_flows);
            plan.reserve_inserts(ops.iter().filter_map(|o| match &o.op {
                Some(op::Op::Insert(i)) => i.object.as_ref(),
                _ => None,
            }));
            let mut results = Vec::with_capacity(ops.len());
            for (i, o) in ops.iter().enumerate() {
                let r =
                    run_op(&mut plan, o).map_err(|error| TransactError { op: Some(i), error })?;
                results.push(r);
            }
            let (nc, no) = plan.size();
            if nc.max(no) > max {
                return match oversize {
                    Oversize::Fallback => Ok(Outcome {
                        revision: base.revision,
                        results: Vec::new(),
                        changes: Vec::new(),
                        committed: false,
                    }),
                    Oversize::Refuse => {
                        Err(ApiError::InvalidArgument(oversize_message(nc, no, max)).into())
                    }
                };
            }
            if dry_run || plan.is_empty() {
                return Ok(Outcome {
                    revision: base.revision,
                    results,
                    changes: plan.describe(),
                    committed: false,
                });
            }
            let r = self
                .store()
                .txn(plan.to_txn())
                .await
                .map_err(ApiError::from)?;
            if r.succeeded {
                tracing::info!(
                    ops = ops.len(),
                    compares = nc,
                    writes = no,
                    revision = r.revision,
                    attempt,
                    "transaction committed"
                );
                return Ok(Outcome {
                    revision: r.revision,
                    results,
                    changes: Vec::new(),
                    committed: true,
                });
            }
            after = Some(r.revision);
        }
        Err(ApiError::Unavailable(format!(
            "transaction: too many concurrent conflicting writes, gave up after {MAX_ATTEMPTS} \
             attempts; retry"
        ))
        .into())
    }
}
