//! Intent reads and the per-object write RPCs, as sugar over the one generic transaction
//! ([`Intent::transact`], see [`crate::objects`]): each builds its ops, runs them, and maps
//! the result back to its reply. Status writes (what agents report) are in
//! [`crate::status`]. Start with [`Intent::create_port`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rand::Rng;
use tokio::sync::watch;
use weft_proto::v1::{
    column_op::Action, object, op, ColumnOp, DeleteOp, InsertOp, LogicalSwitch, LogicalSwitchPort,
    Object, Op as TxOp, UpdateOp,
};

use crate::acks::AckTable;
use crate::cache::CacheSnapshot;
use crate::error::{ApiError, ApiResult};
use crate::kinds;
use crate::objects::transact::{map_message, Oversize, TransactError};
use crate::state::{ClusterState, Keys};
use crate::store::{Compare, IntentStore, KeyValue, Op, Txn};
use crate::validate::{self, parse_addresses, parse_port_security, validate_name, ValidationError};

pub use crate::objects::transact::MAX_ATTEMPTS;

/// How long a write waits for the cache to reach the revision it read before falling back to
/// reading etcd.
const CACHE_WAIT: Duration = Duration::from_millis(250);
/// Largest number of ports one status report may carry.
pub const MAX_REPORTED_PORTS: usize = 16384;

/// Size limits of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of compares, or of operations, one store transaction may hold: etcd's
    /// `--max-txn-ops` (etcd's default is 128).
    pub max_txn_ops: usize,
    /// Largest number of ports one `CreatePorts` call may carry.
    pub max_batch: usize,
    /// Largest number of flows one ACL's match may compile to (`--acl-max-flows`).
    pub acl_max_flows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_txn_ops: 128,
            max_batch: 1000,
            acl_max_flows: weft_proto::model::acl::DEFAULT_MAX_FLOWS,
        }
    }
}

/// Intent reads and writes over a store.
#[derive(Clone)]
pub struct Intent {
    pub(crate) store: Arc<dyn IntentStore>,
    pub(crate) keys: Keys,
    pub(crate) limits: Limits,
    /// The controller's cache, when it runs one: writes plan on it (once it has caught up
    /// with etcd's current revision) instead of ranging etcd.
    cache: Option<watch::Receiver<Arc<CacheSnapshot>>>,
    /// Applied-revision acks this replica received (see [`crate::acks`]).
    pub(crate) acks: Arc<AckTable>,
}

pub(crate) fn decode<M: Message + Default>(kv: &KeyValue) -> ApiResult<M> {
    M::decode(kv.value.as_slice())
        .map_err(|e| ApiError::Internal(format!("corrupt value at {}: {e}", kv.key)))
}

pub(crate) fn text(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

pub(crate) async fn backoff(attempt: usize) {
    if attempt >= 2 {
        let ms = rand::rng().random_range(0..(5 * attempt.min(10) as u64 + 1));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

pub(crate) fn contention(what: &str) -> ApiError {
    ApiError::Unavailable(format!(
        "{what}: too many concurrent conflicting writes, gave up after {MAX_ATTEMPTS} attempts; retry"
    ))
}

/// An insert op.
pub fn insert(obj: Object, may_exist: bool) -> TxOp {
    TxOp {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(obj),
            may_exist,
        })),
    }
}

/// A delete op.
pub fn delete(kind: &str, name: &str, if_exists: bool) -> TxOp {
    TxOp {
        op: Some(op::Op::Delete(DeleteOp {
            kind: kind.into(),
            name: name.into(),
            if_exists,
        })),
    }
}

/// An update op setting one column to `values`.
pub fn set(kind: &str, name: &str, column: &str, values: Vec<String>) -> TxOp {
    TxOp {
        op: Some(op::Op::Update(UpdateOp {
            kind: kind.into(),
            name: name.into(),
            columns: vec![ColumnOp {
                action: Action::Set as i32,
                column: column.into(),
                key: String::new(),
                values,
            }],
            if_exists: false,
        })),
    }
}

fn port_of(obj: Option<Object>) -> ApiResult<LogicalSwitchPort> {
    match obj.and_then(|o| o.kind) {
        Some(object::Kind::LogicalSwitchPort(p)) => Ok(p),
        _ => Err(ApiError::Internal("op returned no port".into())),
    }
}

/// A single-op error as the per-object RPCs report it (no `ops[0]` prefix).
fn single(e: TransactError) -> ApiError {
    e.error
}

/// Renames an error of the `i`th port of a batch: `invalid port.name ...` and
/// `invalid addresses[1] ...` become `invalid ports[i].name ...`, `invalid
/// ports[i].addresses[1] ...`; other messages get a `ports[i]: ` prefix.
fn in_batch(i: usize, e: ApiError) -> ApiError {
    map_message(e, |m| {
        if m.contains("(port.") {
            return m.replace("(port.", &format!("(ports[{i}]."));
        }
        match m.strip_prefix("invalid ") {
            Some(rest) => {
                let rest = rest.strip_prefix("port.").unwrap_or(rest);
                format!("invalid ports[{i}].{rest}")
            }
            None => format!("ports[{i}]: {m}"),
        }
    })
}

impl Intent {
    /// Intent over `store`, keys under `prefix` (e.g. `/weft`).
    pub fn new(store: Arc<dyn IntentStore>, prefix: &str) -> Self {
        Intent {
            store,
            keys: Keys::new(prefix),
            limits: Limits::default(),
            cache: None,
            acks: Arc::new(AckTable::default()),
        }
    }

    /// The same intent planning on `cache` (see [`crate::cache`]) when it has caught up with
    /// etcd; etcd is ranged otherwise.
    pub fn with_cache(mut self, cache: watch::Receiver<Arc<CacheSnapshot>>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The same intent with other size limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The size limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The acks this replica holds.
    pub fn acks(&self) -> &Arc<AckTable> {
        &self.acks
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn IntentStore> {
        &self.store
    }

    /// The cached state once it reflects at least `min_revision`; None without a cache,
    /// while it is disconnected, or when it does not catch up within [`CACHE_WAIT`].
    async fn cached_at(&self, min_revision: i64) -> Option<Arc<ClusterState>> {
        let mut rx = self.cache.clone()?;
        let wait = async {
            loop {
                {
                    let snap = rx.borrow_and_update();
                    if snap.connected && snap.state.revision >= min_revision {
                        return Some(snap.state.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(CACHE_WAIT, wait).await.ok().flatten()
    }

    /// Reads everything under the prefix in one range (one consistent revision).
    pub async fn load(&self) -> ApiResult<ClusterState> {
        let r = self.store.range(self.keys.root()).await?;
        Ok(ClusterState::from_kvs(&self.keys, &r.kvs, r.revision))
    }

    /// The state as of now: the cached state once it reflects etcd's current revision (one
    /// single-key read to learn it), so a read or a plan never misses a write that returned
    /// before it; without a cache, or when it lags, one range of everything.
    pub async fn read_state(&self) -> ApiResult<Arc<ClusterState>> {
        if self.cache.is_some() {
            let rev = self.current_revision().await?;
            if let Some(st) = self.cached_at(rev).await {
                return Ok(st);
            }
        }
        Ok(Arc::new(self.load().await?))
    }

    /// A state at `revision` or later (after a lost compare at that revision): the cache
    /// once it got there, else one range.
    pub async fn state_at_least(&self, revision: i64) -> ApiResult<Arc<ClusterState>> {
        if let Some(st) = self.cached_at(revision).await {
            return Ok(st);
        }
        Ok(Arc::new(self.load().await?))
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> ApiResult<i64> {
        Ok(self.store.get(self.keys.root()).await?.1)
    }

    async fn get_switch(&self, name: &str) -> ApiResult<(Option<(LogicalSwitch, i64)>, i64)> {
        let (kv, rev) = self.store.get(&self.keys.switch(name)).await?;
        Ok(match kv {
            Some(kv) => (Some((decode(&kv)?, kv.mod_revision)), rev),
            None => (None, rev),
        })
    }

    /// Creates a switch (allocating its VNI when 0, and its datapath key). With `may_exist`,
    /// an existing switch is returned unchanged.
    pub async fn create_switch(
        &self,
        sw: LogicalSwitch,
        may_exist: bool,
    ) -> ApiResult<(i64, LogicalSwitch)> {
        validate::validate_switch(&sw)?;
        let name = sw.name.clone();
        let ops = [insert(
            crate::objects::object(object::Kind::LogicalSwitch(sw)),
            may_exist,
        )];
        let out = self
            .transact(&ops, false, Oversize::Refuse)
            .await
            .map_err(single)?;
        match out
            .results
            .into_iter()
            .next()
            .and_then(|r| r.object)
            .and_then(|o| o.kind)
        {
            Some(object::Kind::LogicalSwitch(s)) => {
                if out.committed {
                    tracing::info!(switch = %name, vni = s.vni, subnet = %s.subnet, revision = out.revision, "switch created");
                }
                Ok((out.revision, s))
            }
            _ => Err(ApiError::Internal(
                "create switch returned no switch".into(),
            )),
        }
    }

    /// Deletes a switch with its ports, bindings and claims: one transaction when it fits
    /// within `--etcd-max-txn-ops`, otherwise in chunks (see `delete_switch_chunked`).
    pub async fn delete_switch(&self, name: &str, if_exists: bool) -> ApiResult<i64> {
        validate_name("name", name)?;
        let ops = [delete(kinds::switch::NAME, name, if_exists)];
        let out = self
            .transact(&ops, false, Oversize::Fallback)
            .await
            .map_err(single)?;
        if out.results.is_empty() {
            return self.delete_switch_chunked(name, if_exists).await;
        }
        if out.committed {
            tracing::info!(switch = %name, revision = out.revision, "switch deleted");
        }
        Ok(out.revision)
    }

    /// Creates a port on an existing switch, claiming its addresses and a port key.
    pub async fn create_port(
        &self,
        req: LogicalSwitchPort,
        may_exist: bool,
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        validate_name("port.name", &req.name)?;
        validate_name("port.switch_name", &req.switch_name)?;
        let ops = [insert(
            crate::objects::object(object::Kind::LogicalSwitchPort(req)),
            may_exist,
        )];
        self.one_port(&ops).await
    }

    /// Creates many ports (on one or several existing switches) in ONE transaction: all or
    /// nothing. Every port is validated before anything is read; errors name `ports[i].field`.
    /// With `may_exist`, a port that already exists on the same switch is returned unchanged.
    /// Returns the ports in request order.
    pub async fn create_ports(
        &self,
        reqs: Vec<LogicalSwitchPort>,
        may_exist: bool,
    ) -> ApiResult<(i64, Vec<LogicalSwitchPort>)> {
        let n = reqs.len();
        if n == 0 {
            return Err(ValidationError::new(
                "ports",
                "0 entries",
                "at least one port is required",
            )
            .into());
        }
        if n > self.limits.max_batch {
            return Err(ValidationError::new(
                "ports",
                &format!("{n} entries"),
                format!(
                    "too many ports in one call (at most {}, the controller's --max-batch)",
                    self.limits.max_batch
                ),
            )
            .into());
        }
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, p) in reqs.iter().enumerate() {
            let f = |e: ValidationError| in_batch(i, e.into());
            validate_name("port.name", &p.name).map_err(f)?;
            validate_name("port.switch_name", &p.switch_name).map_err(f)?;
            validate::validate_port_type(&p.r#type).map_err(f)?;
            parse_port_security(&p.port_security).map_err(f)?;
            if p.addresses.len() > validate::MAX_ENTRIES {
                parse_addresses(&p.addresses, None, &p.switch_name).map_err(f)?;
            }
            if let Some(j) = first.insert(p.name.as_str(), i) {
                return Err(ValidationError::new(
                    format!("ports[{i}].name"),
                    &p.name,
                    format!("duplicate of ports[{j}].name in this batch"),
                )
                .into());
            }
        }
        let ops: Vec<TxOp> = reqs
            .into_iter()
            .map(|p| {
                insert(
                    crate::objects::object(object::Kind::LogicalSwitchPort(p)),
                    may_exist,
                )
            })
            .collect();
        let out = match self.transact(&ops, false, Oversize::Refuse).await {
            Ok(out) => out,
            Err(TransactError { op: Some(i), error }) => return Err(in_batch(i, error)),
            Err(TransactError { op: None, error }) => {
                return Err(self.batch_oversize(&ops, error).await)
            }
        };
        let mut ports = Vec::with_capacity(n);
        for r in out.results {
            ports.push(port_of(r.object)?);
        }
        tracing::info!(
            ports = n,
            revision = out.revision,
            "ports created in one transaction"
        );
        Ok((out.revision, ports))
    }

    /// Turns an oversize refusal of a batch into the batch's own message: how many etcd
    /// operations it needs and how many of its ports fit in one call.
    async fn batch_oversize(&self, ops: &[TxOp], error: ApiError) -> ApiError {
        let ApiError::InvalidArgument(m) = &error else {
            return error;
        };
        if !m.contains("--etcd-max-txn-ops") {
            return error;
        }
        let max = self.limits.max_txn_ops;
        let Ok(base) = self.read_state().await else {
            return error;
        };
        let mut plan = crate::objects::Plan::new(&base, &self.keys);
        let mut fit = 0;
        for o in ops {
            if crate::objects::transact::run_op(&mut plan, o).is_err() {
                break;
            }
            let (c, w) = plan.size();
            if c.max(w) <= max {
                fit += 1;
            }
        }
        let (c, w) = plan.size();
        ValidationError::new(
            "ports",
            &format!("{} entries", ops.len()),
            format!(
                "the batch needs {} etcd transaction operations but the limit is {max} \
                 (--etcd-max-txn-ops); only the first {fit} of these ports fit in one \
                 call: send smaller batches, or raise etcd's --max-txn-ops and the \
                 controller's --etcd-max-txn-ops",
                c.max(w)
            ),
        )
        .into()
    }

    /// Runs single-op `ops` and returns the revision and the port the op left.
    async fn one_port(&self, ops: &[TxOp]) -> ApiResult<(i64, LogicalSwitchPort)> {
        let out = self
            .transact(ops, false, Oversize::Refuse)
            .await
            .map_err(single)?;
        let p = port_of(out.results.into_iter().next().and_then(|r| r.object))?;
        Ok((out.revision, p))
    }

    /// Deletes a port, its claims and its binding.
    pub async fn delete_port(&self, name: &str, if_exists: bool) -> ApiResult<i64> {
        validate_name("name", name)?;
        let ops = [delete(kinds::port::NAME, name, if_exists)];
        let out = self
            .transact(&ops, false, Oversize::Refuse)
            .await
            .map_err(single)?;
        Ok(out.revision)
    }

    /// Sets one column of a port and returns the port with its status.
    async fn set_port_column(
        &self,
        name: &str,
        column: &str,
        values: Vec<String>,
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        validate_name("port", name)?;
        let ops = [set(kinds::port::NAME, name, column, values)];
        self.one_port(&ops).await
    }

    /// Replaces a port's addresses, moving its claims (a kept `dynamic` keeps its address).
    pub async fn set_port_addresses(
        &self,
        name: &str,
        addresses: &[String],
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        if addresses.len() > validate::MAX_ENTRIES {
            parse_addresses(addresses, None, "")?;
        }
        self.set_port_column(name, "addresses", addresses.to_vec())
            .await
    }

    /// Replaces a port's port-security entries.
    pub async fn set_port_security(
        &self,
        name: &str,
        entries: &[String],
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        parse_port_security(entries)?;
        self.set_port_column(name, "port_security", entries.to_vec())
            .await
    }

    /// Sets a port's administrative state. Setting the current state writes nothing and
    /// returns the read revision.
    pub async fn set_port_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        self.set_port_column(name, "enabled", vec![enabled.to_string()])
            .await
    }

    /// Deletes a switch too large for one transaction with all its ports, bindings and
    /// claims (the generic planner handles the ones that fit). A larger switch is deleted ports first, in transactions of at most that
    /// size (each guarded by the switch's and each port's mod_revision, deleting the port, its
    /// binding and its claims), and the switch itself last (guarded by the switch's and the
    /// port-set generation's mod_revision: a port created or deleted meanwhile makes it re-read
    /// and go on). Views meanwhile see the switch lose ports, never ports without a switch; an
    /// interrupted delete leaves the switch with fewer ports, and a repeated ls-del finishes it.
    async fn delete_switch_chunked(&self, name: &str, if_exists: bool) -> ApiResult<i64> {
        'attempt: for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, rev) = self.get_switch(name).await?;
            let Some((sw, sw_rev)) = existing else {
                if if_exists {
                    return Ok(rev);
                }
                return Err(ApiError::NotFound(format!("switch {name:?} not found")));
            };
            let (gen, _) = self.store.get(&self.keys.gen(name)).await?;
            let gen_rev = gen.map(|kv| kv.mod_revision).unwrap_or(0);
            let ports = self.store.range(&self.keys.ports()).await?;
            let mut mine: Vec<(&KeyValue, LogicalSwitchPort)> = Vec::new();
            for kv in &ports.kvs {
                let p: LogicalSwitchPort = decode(kv)?;
                if p.switch_name == name {
                    mine.push((kv, p));
                }
            }
            let guard = [
                Compare::ModRevision(self.keys.switch(name), sw_rev),
                Compare::ModRevision(self.keys.gen(name), gen_rev),
            ];
            let mut last_ops = vec![
                Op::Delete(self.keys.switch(name)),
                Op::DeletePrefix(self.keys.claims_ip(name)),
                Op::DeletePrefix(self.keys.claims_mac(name)),
                Op::DeletePrefix(format!("{}claims/pk/{name}/", self.keys.root())),
                Op::Delete(self.keys.gen(name)),
            ];
            if sw.vni != 0 {
                last_ops.push(Op::Delete(self.keys.claim_vni(sw.vni)));
            }
            if sw.tunnel_key != 0 {
                last_ops.push(Op::Delete(format!(
                    "{}{}",
                    self.keys.root(),
                    kinds::switch::datapath_claim(sw.tunnel_key)
                )));
            }
            let n = mine.len();
            let max = self.limits.max_txn_ops;
            if last_ops.len() + 2 * n <= max {
                // Small enough: one transaction (the prefix deletes cover the claims).
                let mut ops = last_ops;
                for (kv, p) in &mine {
                    ops.push(Op::Delete(kv.key.clone()));
                    ops.push(Op::Delete(self.keys.binding(&p.name)));
                }
                let r = self
                    .store
                    .txn(Txn {
                        compares: guard.to_vec(),
                        ops,
                    })
                    .await?;
                if r.succeeded {
                    tracing::info!(switch = %name, ports = n, revision = r.revision, "switch deleted");
                    return Ok(r.revision);
                }
                continue;
            }
            // Ports first, in chunks: each port with its binding and its claims.
            let mut chunks = 0;
            let mut t = Txn::default();
            let mut pending = mine.iter().peekable();
            while let Some((kv, p)) = pending.next() {
                let (ips, macs) = kinds::port::claims_of(p);
                let mut ops = vec![
                    Op::Delete(kv.key.clone()),
                    Op::Delete(self.keys.binding(&p.name)),
                ];
                ops.extend(ips.iter().map(|ip| {
                    Op::Delete(format!(
                        "{}{}",
                        self.keys.root(),
                        kinds::port::ip_claim(name, ip)
                    ))
                }));
                if p.tunnel_key != 0 {
                    ops.push(Op::Delete(format!(
                        "{}{}",
                        self.keys.root(),
                        kinds::port::key_claim(name, p.tunnel_key)
                    )));
                }
                ops.extend(
                    macs.iter()
                        .map(|m| Op::Delete(self.keys.claim_mac(name, m))),
                );
                // A port's pieces never straddle transactions; a port with more pieces than
                // a transaction takes leaves its claims to the final prefix deletes.
                ops.truncate(max);
                if !t.ops.is_empty()
                    && (t.ops.len() + ops.len() > max || t.compares.len() + 1 > max)
                {
                    if !self.store.txn(std::mem::take(&mut t)).await?.succeeded {
                        continue 'attempt;
                    }
                    chunks += 1;
                }
                if t.compares.is_empty() {
                    t.compares
                        .push(Compare::ModRevision(self.keys.switch(name), sw_rev));
                }
                t.compares
                    .push(Compare::ModRevision(kv.key.clone(), kv.mod_revision));
                t.ops.extend(ops);
                if pending.peek().is_none() {
                    if !self.store.txn(std::mem::take(&mut t)).await?.succeeded {
                        continue 'attempt;
                    }
                    chunks += 1;
                }
            }
            let r = self
                .store
                .txn(Txn {
                    compares: guard.to_vec(),
                    ops: last_ops,
                })
                .await?;
            if r.succeeded {
                tracing::info!(switch = %name, ports = n, port_txns = chunks, revision = r.revision, "switch deleted");
                return Ok(r.revision);
            }
        }
        Err(contention("delete switch"))
    }
}
