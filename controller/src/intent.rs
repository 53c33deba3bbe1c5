//! Intent operations on top of an [`IntentStore`]: every write reads what it needs, validates,
//! and commits ONE transaction whose compares re-check the preconditions it relied on (object
//! absent/unchanged, address claims free). When a compare fails, it re-reads and tries again
//! (bounded), so a conflicting concurrent write turns into the right error or a fresh
//! allocation, never a duplicate. Start with [`Intent::create_port`].

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use prost::Message;
use rand::Rng;
use tokio::sync::watch;
use weft_proto::v1::{Chassis, LogicalSwitch, LogicalSwitchPort, PortBinding, StatusReport};

use crate::cache::CacheSnapshot;
use crate::error::{ApiError, ApiResult};
use crate::ipam;
use crate::state::{ClusterState, Keys, Sighting};
use crate::store::RangeResult;
use crate::store::{Compare, IntentStore, KeyValue, Op, Txn};
use crate::validate::{
    self, parse_addresses, parse_port_security, validate_name, AddressEntry, ValidationError,
};
use crate::view::resolve_port;

/// How often a write retries after losing a race before giving up with Unavailable.
const MAX_ATTEMPTS: usize = 200;
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_txn_ops: 128,
            max_batch: 1000,
        }
    }
}

/// Intent reads and writes over a store.
#[derive(Clone)]
pub struct Intent {
    store: Arc<dyn IntentStore>,
    keys: Keys,
    limits: Limits,
    /// The controller's cache, when it runs one: creates read claims and VIF sightings from it
    /// (once it has caught up with the revision they read) instead of ranging etcd.
    cache: Option<watch::Receiver<Arc<CacheSnapshot>>>,
}

/// Renames a port-level validation error to its place in a batch: `port.name` or
/// `addresses[1]` of the third port become `ports[2].name`, `ports[2].addresses[1]`.
fn in_batch(i: usize, mut e: ValidationError) -> ValidationError {
    let f = e
        .field
        .strip_prefix("port.")
        .unwrap_or(&e.field)
        .to_string();
    e.field = format!("ports[{i}].{f}");
    e
}

/// Transaction size of a set of compares and ops as etcd counts it (the larger of the two).
fn txn_size(t: &Txn) -> usize {
    t.compares.len().max(t.ops.len())
}

fn decode<M: Message + Default>(kv: &KeyValue) -> ApiResult<M> {
    M::decode(kv.value.as_slice())
        .map_err(|e| ApiError::Internal(format!("corrupt value at {}: {e}", kv.key)))
}

fn text(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

/// IPs and MACs a stored port holds claims on.
fn claims_of(p: &LogicalSwitchPort) -> (Vec<Ipv4Addr>, Vec<String>) {
    let v = resolve_port(p, "");
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    for a in v.addresses {
        macs.push(a.mac);
        ips.extend(a.ips.iter().filter_map(|ip| ip.parse::<Ipv4Addr>().ok()));
    }
    (ips, macs)
}

fn entry_string(e: &AddressEntry) -> String {
    match e {
        AddressEntry::Dynamic => "dynamic".into(),
        AddressEntry::Unknown => "unknown".into(),
        AddressEntry::Static { mac, ips } => {
            let mut s = mac.clone();
            for ip in ips {
                s.push(' ');
                s.push_str(&ip.to_string());
            }
            s
        }
    }
}

/// Claims currently held on a switch: IP → port, MAC → port. Persistent maps, so taking them
/// from the cached state costs nothing and the batch's own claims are added in O(log n).
#[derive(Clone, Default)]
struct SwitchClaims {
    ips: imbl::OrdMap<Ipv4Addr, String>,
    macs: imbl::OrdMap<String, String>,
}

/// What a port's addresses resolve to: normalized entries, dynamic allocation, claims.
struct ResolvedAddresses {
    addresses: Vec<String>,
    dynamic: String,
    ips: Vec<Ipv4Addr>,
    macs: Vec<String>,
}

async fn backoff(attempt: usize) {
    if attempt >= 2 {
        let ms = rand::rng().random_range(0..(5 * attempt.min(10) as u64 + 1));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn contention(what: &str) -> ApiError {
    ApiError::Unavailable(format!(
        "{what}: too many concurrent conflicting writes, gave up after {MAX_ATTEMPTS} attempts; retry"
    ))
}

impl Intent {
    /// Intent over `store`, keys under `prefix` (e.g. `/weft`).
    pub fn new(store: Arc<dyn IntentStore>, prefix: &str) -> Self {
        Intent {
            store,
            keys: Keys::new(prefix),
            limits: Limits::default(),
            cache: None,
        }
    }

    /// The same intent reading claims and sightings from `cache` (see [`crate::cache`]) when
    /// it has caught up with what a write read; etcd is read otherwise, and on every retry.
    pub fn with_cache(mut self, cache: watch::Receiver<Arc<CacheSnapshot>>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The cached state once it reflects at least `min_revision` (so it holds every claim and
    /// sighting committed before the caller's reads); None without a cache, while it is
    /// disconnected, or when it does not catch up within [`CACHE_WAIT`].
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

    /// Claims of `switch`: from `cached` when given, else read from etcd.
    async fn claims_for(
        &self,
        switch: &str,
        cached: Option<&ClusterState>,
    ) -> ApiResult<SwitchClaims> {
        match cached {
            Some(st) => Ok(SwitchClaims {
                ips: st.ip_claims.get(switch).cloned().unwrap_or_default(),
                macs: st.mac_claims.get(switch).cloned().unwrap_or_default(),
            }),
            None => self.switch_claims(switch).await,
        }
    }

    /// The VIF sighting of a port that is being created: from `cached` when given, else read
    /// from etcd.
    async fn sighting_for(
        &self,
        port: &str,
        cached: Option<&ClusterState>,
    ) -> ApiResult<Option<Sighting>> {
        if let Some(st) = cached {
            return Ok(st.sightings.get(port).cloned());
        }
        let (kv, _) = self.store.get(&self.keys.sighting(port)).await?;
        Ok(kv.map(|kv| Sighting {
            chassis: text(&kv),
            mod_revision: kv.mod_revision,
        }))
    }

    /// Sightings of the ports `names` (in order), as [`Intent::sighting_for`].
    async fn sightings_for(
        &self,
        names: &[&str],
        cached: Option<&ClusterState>,
    ) -> ApiResult<Vec<Option<Sighting>>> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(64) {
            let futs: Vec<_> = chunk.iter().map(|n| self.sighting_for(n, cached)).collect();
            for r in futures::future::join_all(futs).await {
                out.push(r?);
            }
        }
        Ok(out)
    }

    /// The compare and ops that bind a port being created to the chassis that already has its
    /// VIF, in the create's own transaction: the binding (up = false; the agent reports up
    /// after it applied the create's revision) and the consumed sighting's delete, guarded by
    /// the sighting's mod_revision.
    fn bind_from_sighting(&self, port: &str, s: &Sighting) -> (Compare, [Op; 2]) {
        let key = self.keys.sighting(port);
        let binding = PortBinding {
            port: port.to_string(),
            chassis: s.chassis.clone(),
            up: false,
        };
        (
            Compare::ModRevision(key.clone(), s.mod_revision),
            [
                Op::put(self.keys.binding(port), binding.encode_to_vec()),
                Op::Delete(key),
            ],
        )
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

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn IntentStore> {
        &self.store
    }

    /// Reads everything under the prefix in one range (one consistent revision).
    pub async fn load(&self) -> ApiResult<ClusterState> {
        let r = self.store.range(self.keys.root()).await?;
        Ok(ClusterState::from_kvs(&self.keys, &r.kvs, r.revision))
    }

    /// The state as of now, for reads: the cached state once it reflects etcd's current
    /// revision (one single-key read to learn it), so a read never misses a write that
    /// returned before it; without a cache, or when it lags, one range of everything.
    pub async fn read_state(&self) -> ApiResult<Arc<ClusterState>> {
        if self.cache.is_some() {
            let rev = self.current_revision().await?;
            if let Some(st) = self.cached_at(rev).await {
                return Ok(st);
            }
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

    async fn get_port(&self, name: &str) -> ApiResult<(Option<(LogicalSwitchPort, i64)>, i64)> {
        let (kv, rev) = self.store.get(&self.keys.port(name)).await?;
        Ok(match kv {
            Some(kv) => (Some((decode(&kv)?, kv.mod_revision)), rev),
            None => (None, rev),
        })
    }

    async fn switch_claims(&self, switch: &str) -> ApiResult<SwitchClaims> {
        let ip_prefix = self.keys.claims_ip(switch);
        let mac_prefix = self.keys.claims_mac(switch);
        let ips = self.store.range(&ip_prefix).await?;
        let macs = self.store.range(&mac_prefix).await?;
        Ok(SwitchClaims {
            ips: ips
                .kvs
                .iter()
                .filter_map(|kv| {
                    let ip = kv.key.strip_prefix(&ip_prefix)?.parse::<Ipv4Addr>().ok()?;
                    Some((ip, text(kv)))
                })
                .collect(),
            macs: macs
                .kvs
                .iter()
                .filter_map(|kv| Some((kv.key.strip_prefix(&mac_prefix)?.to_string(), text(kv))))
                .collect(),
        })
    }

    /// Creates a switch (allocating its VNI when 0). With `may_exist`, an existing switch is
    /// returned unchanged.
    pub async fn create_switch(
        &self,
        mut sw: LogicalSwitch,
        may_exist: bool,
    ) -> ApiResult<(i64, LogicalSwitch)> {
        let subnet = validate::validate_switch(&sw)?;
        sw.subnet = subnet.map(|n| n.to_string()).unwrap_or_default();
        let requested_vni = sw.vni;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, rev) = self.get_switch(&sw.name).await?;
            if let Some((existing, _)) = existing {
                if may_exist {
                    return Ok((rev, existing));
                }
                return Err(ApiError::AlreadyExists(format!(
                    "switch {:?} already exists",
                    sw.name
                )));
            }
            let vni = if requested_vni != 0 {
                let (claim, _) = self.store.get(&self.keys.claim_vni(requested_vni)).await?;
                if let Some(kv) = claim {
                    return Err(ApiError::AlreadyExists(
                        ValidationError::new(
                            "switch.vni",
                            &requested_vni.to_string(),
                            format!("VNI already used by switch {:?}", text(&kv)),
                        )
                        .to_string(),
                    ));
                }
                requested_vni
            } else {
                let r = self.store.range(&self.keys.claims_vni()).await?;
                let prefix = self.keys.claims_vni();
                let used: HashSet<u32> = r
                    .kvs
                    .iter()
                    .filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse().ok())
                    .collect();
                ipam::pick_vni(&used, &mut rand::rng())?
            };
            sw.vni = vni;
            let txn = Txn {
                compares: vec![
                    Compare::ModRevision(self.keys.switch(&sw.name), 0),
                    Compare::ModRevision(self.keys.claim_vni(vni), 0),
                ],
                ops: vec![
                    Op::put(self.keys.switch(&sw.name), sw.encode_to_vec()),
                    Op::put(self.keys.claim_vni(vni), sw.name.clone().into_bytes()),
                ],
            };
            let r = self.store.txn(txn).await?;
            if r.succeeded {
                tracing::info!(switch = %sw.name, vni, subnet = %sw.subnet, revision = r.revision, "switch created");
                return Ok((r.revision, sw));
            }
        }
        Err(contention("create switch"))
    }

    /// Deletes a switch with all its ports, bindings and claims.
    ///
    /// When everything fits in one transaction (within `--etcd-max-txn-ops`) it is one
    /// transaction. A larger switch is deleted ports first, in transactions of at most that
    /// size (each guarded by the switch's and each port's mod_revision, deleting the port, its
    /// binding and its claims), and the switch itself last (guarded by the switch's and the
    /// port-set generation's mod_revision: a port created or deleted meanwhile makes it re-read
    /// and go on). Views meanwhile see the switch lose ports, never ports without a switch; an
    /// interrupted delete leaves the switch with fewer ports, and a repeated ls-del finishes it.
    pub async fn delete_switch(&self, name: &str, if_exists: bool) -> ApiResult<i64> {
        validate_name("name", name)?;
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
                Op::Delete(self.keys.gen(name)),
            ];
            if sw.vni != 0 {
                last_ops.push(Op::Delete(self.keys.claim_vni(sw.vni)));
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
                let (ips, macs) = claims_of(p);
                let mut ops = vec![
                    Op::Delete(kv.key.clone()),
                    Op::Delete(self.keys.binding(&p.name)),
                ];
                ops.extend(
                    ips.iter()
                        .map(|ip| Op::Delete(self.keys.claim_ip(name, *ip))),
                );
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

    /// Resolves requested addresses for `port` on `switch`: parses them, keeps or allocates
    /// the dynamic address, and checks static claims against `claims` (claims held by
    /// `port` itself are fine).
    fn resolve_addresses(
        port: &str,
        switch: &str,
        subnet: Option<Ipv4Network>,
        entries: &[AddressEntry],
        old_dynamic: Option<(String, Ipv4Addr)>,
        claims: &SwitchClaims,
        field_prefix: &str,
    ) -> ApiResult<ResolvedAddresses> {
        let mut ips = Vec::new();
        let mut macs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if let AddressEntry::Static { mac, ips: eips } = e {
                let field = format!("{field_prefix}addresses[{i}]");
                let value = entry_string(e);
                if let Some(owner) = claims.macs.get(mac).filter(|o| o.as_str() != port) {
                    return Err(ApiError::AlreadyExists(
                        ValidationError::new(
                            field,
                            &value,
                            format!(
                                "MAC {mac} already used by port {owner:?} on switch {switch:?}"
                            ),
                        )
                        .to_string(),
                    ));
                }
                macs.push(mac.clone());
                for ip in eips {
                    if let Some(owner) = claims.ips.get(ip).filter(|o| o.as_str() != port) {
                        return Err(ApiError::AlreadyExists(
                            ValidationError::new(
                                field,
                                &value,
                                format!(
                                    "IP {ip} already used by port {owner:?} on switch {switch:?}"
                                ),
                            )
                            .to_string(),
                        ));
                    }
                    ips.push(*ip);
                }
            }
        }
        let mut dynamic = String::new();
        if entries.contains(&AddressEntry::Dynamic) {
            let subnet = subnet.ok_or_else(|| {
                ApiError::FailedPrecondition(format!(
                    "switch {switch:?} has no subnet for a dynamic address"
                ))
            })?;
            // Keep the previous allocation when it is still ours and does not clash.
            let keep = old_dynamic.filter(|(mac, ip)| {
                subnet.contains(*ip)
                    && !ips.contains(ip)
                    && !macs.contains(mac)
                    && claims.ips.get(ip).is_none_or(|o| o == port)
                    && claims.macs.get(mac).is_none_or(|o| o == port)
            });
            let (mac, ip) = match keep {
                Some(k) => k,
                None => {
                    let mut rng = rand::rng();
                    let ip = ipam::pick_ip_with(
                        switch,
                        subnet,
                        |ip| claims.ips.contains_key(&ip) || ips.contains(&ip),
                        &mut rng,
                    )?;
                    let mac = ipam::pick_mac_with(
                        switch,
                        ip,
                        |m| claims.macs.contains_key(m) || macs.iter().any(|x| x == m),
                        &mut rng,
                    )?;
                    (mac, ip)
                }
            };
            dynamic = format!("{mac} {ip}");
            ips.push(ip);
            macs.push(mac);
        }
        Ok(ResolvedAddresses {
            addresses: entries.iter().map(entry_string).collect(),
            dynamic,
            ips,
            macs,
        })
    }

    /// Creates a port on an existing switch, claiming its addresses.
    pub async fn create_port(
        &self,
        req: LogicalSwitchPort,
        may_exist: bool,
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        validate_name("port.name", &req.name)?;
        validate_name("port.switch_name", &req.switch_name)?;
        validate::validate_port_type(&req.r#type)?;
        let security = parse_port_security(&req.port_security)?;
        if req.addresses.len() > validate::MAX_ENTRIES {
            // checked before any read so oversize requests cost nothing
            parse_addresses(&req.addresses, None, &req.switch_name)?;
        }
        let name = req.name.clone();
        let switch = req.switch_name.clone();
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, rev) = self.get_port(&name).await?;
            if let Some((p, _)) = existing {
                if may_exist && p.switch_name == switch {
                    return Ok((rev, self.port_with_binding(p).await?));
                }
                return Err(ApiError::AlreadyExists(format!(
                    "port {name:?} already exists on switch {:?}",
                    p.switch_name
                )));
            }
            let (sw, _) = self.get_switch(&switch).await?;
            let Some((sw, sw_rev)) = sw else {
                return Err(ApiError::NotFound(format!(
                    "switch {switch:?} not found (port.switch_name)"
                )));
            };
            let subnet = validate::stored_subnet(&sw);
            check_dynamic_has_subnet(&req.addresses, subnet, &switch, "")?;
            let entries = parse_addresses(&req.addresses, subnet, &switch)?;
            // First attempt: claims and sightings from the cache once it has caught up with
            // the reads above; after a lost race, from etcd.
            let cached = if attempt == 0 {
                self.cached_at(rev).await
            } else {
                None
            };
            let claims = if entries.is_empty() {
                SwitchClaims::default()
            } else {
                self.claims_for(&switch, cached.as_deref()).await?
            };
            let res = Self::resolve_addresses(&name, &switch, subnet, &entries, None, &claims, "")?;
            let sighting = self.sighting_for(&name, cached.as_deref()).await?;
            let mut port = LogicalSwitchPort {
                name: name.clone(),
                switch_name: switch.clone(),
                addresses: res.addresses,
                port_security: security.iter().map(security_string).collect(),
                r#type: String::new(),
                enabled: true,
                dynamic_addresses: res.dynamic,
                up: false,
                chassis: String::new(),
            };
            let mut compares = vec![
                Compare::ModRevision(self.keys.port(&name), 0),
                Compare::ModRevision(self.keys.switch(&switch), sw_rev),
            ];
            let mut ops = vec![
                Op::put(self.keys.port(&name), port.encode_to_vec()),
                Op::put(self.keys.gen(&switch), Vec::new()),
            ];
            for ip in &res.ips {
                compares.push(Compare::ModRevision(self.keys.claim_ip(&switch, *ip), 0));
                ops.push(Op::put(
                    self.keys.claim_ip(&switch, *ip),
                    name.clone().into_bytes(),
                ));
            }
            for mac in &res.macs {
                compares.push(Compare::ModRevision(self.keys.claim_mac(&switch, mac), 0));
                ops.push(Op::put(
                    self.keys.claim_mac(&switch, mac),
                    name.clone().into_bytes(),
                ));
            }
            // Its VIF is already on a chassis: bind in this transaction, so the create's
            // revision carries the binding and --wait=hv covers every host's flows for it.
            if let Some(s) = &sighting {
                if ops.len() + 2 <= self.limits.max_txn_ops {
                    let (cmp, bind) = self.bind_from_sighting(&name, s);
                    compares.push(cmp);
                    ops.extend(bind);
                    port.chassis = s.chassis.clone();
                }
            }
            let r = self.store.txn(Txn { compares, ops }).await?;
            if r.succeeded {
                tracing::info!(port = %name, switch = %switch, dynamic = %port.dynamic_addresses, chassis = %port.chassis, revision = r.revision, attempt, "port created");
                return Ok((r.revision, port));
            }
        }
        Err(contention("create port"))
    }

    /// A port with `up` and `chassis` read from its binding.
    async fn port_with_binding(&self, mut p: LogicalSwitchPort) -> ApiResult<LogicalSwitchPort> {
        let (b, _) = self.store.get(&self.keys.binding(&p.name)).await?;
        p.up = false;
        p.chassis.clear();
        if let Some(kv) = b {
            let b: PortBinding = decode(&kv)?;
            p.up = b.up;
            p.chassis = b.chassis;
        }
        Ok(p)
    }

    /// Creates many ports (on one or several existing switches) in ONE transaction: all or
    /// nothing. Every port is validated before anything is read; errors name `ports[i].field`.
    /// Dynamic addresses are allocated so they collide neither with each other nor with stored
    /// claims. With `may_exist`, a port that already exists on the same switch is returned
    /// unchanged (and adds nothing to the transaction). Returns the ports in request order.
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
        let mut security = Vec::with_capacity(n);
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, p) in reqs.iter().enumerate() {
            let f = |e: ValidationError| in_batch(i, e);
            validate_name("name", &p.name).map_err(f)?;
            validate_name("switch_name", &p.switch_name).map_err(f)?;
            validate::validate_port_type(&p.r#type).map_err(f)?;
            security.push(parse_port_security(&p.port_security).map_err(f)?);
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
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            // Which ports exist already (reads in parallel, bounded).
            let mut existing = Vec::with_capacity(n);
            for chunk in reqs.chunks(64) {
                let names: Vec<String> = chunk.iter().map(|p| p.name.clone()).collect();
                let futs: Vec<_> = names.iter().map(|name| self.get_port(name)).collect();
                existing.extend(futures::future::join_all(futs).await);
            }
            let mut read_rev = 0;
            let mut kept: Vec<Option<LogicalSwitchPort>> = vec![None; n];
            for (i, r) in existing.into_iter().enumerate() {
                let (ex, rev) = r?;
                read_rev = read_rev.max(rev);
                if let Some((p, _)) = ex {
                    if may_exist && p.switch_name == reqs[i].switch_name {
                        kept[i] = Some(p);
                        continue;
                    }
                    return Err(ApiError::AlreadyExists(format!(
                        "ports[{i}].name: port {:?} already exists on switch {:?}",
                        p.name, p.switch_name
                    )));
                }
            }
            // The switches of the new ports, in first-use order.
            let mut switches: HashMap<String, (i64, Option<Ipv4Network>)> = HashMap::new();
            let mut switch_order: Vec<String> = Vec::new();
            for (i, p) in reqs.iter().enumerate() {
                if kept[i].is_some() || switches.contains_key(&p.switch_name) {
                    continue;
                }
                let (sw, _) = self.get_switch(&p.switch_name).await?;
                let Some((sw, sw_rev)) = sw else {
                    return Err(ApiError::NotFound(format!(
                        "switch {:?} not found (ports[{i}].switch_name)",
                        p.switch_name
                    )));
                };
                switches.insert(
                    p.switch_name.clone(),
                    (sw_rev, validate::stored_subnet(&sw)),
                );
                switch_order.push(p.switch_name.clone());
            }
            // Parse every new port's addresses before claiming anything.
            let mut entries: Vec<Vec<AddressEntry>> = vec![Vec::new(); n];
            for (i, p) in reqs.iter().enumerate() {
                if kept[i].is_some() {
                    continue;
                }
                let subnet = switches.get(&p.switch_name).and_then(|(_, s)| *s);
                let prefix = format!("ports[{i}].");
                check_dynamic_has_subnet(&p.addresses, subnet, &p.switch_name, &prefix)?;
                entries[i] = parse_addresses(&p.addresses, subnet, &p.switch_name)
                    .map_err(|e| in_batch(i, e))?;
            }
            // First attempt: claims and sightings from the cache once it has caught up with
            // the reads above; after a lost race, from etcd.
            let cached = if attempt == 0 {
                self.cached_at(read_rev).await
            } else {
                None
            };
            let mut claims: HashMap<String, SwitchClaims> = HashMap::new();
            for (i, p) in reqs.iter().enumerate() {
                if kept[i].is_none()
                    && !entries[i].is_empty()
                    && !claims.contains_key(&p.switch_name)
                {
                    let c = self.claims_for(&p.switch_name, cached.as_deref()).await?;
                    claims.insert(p.switch_name.clone(), c);
                }
            }
            let mut txn = Txn::default();
            // Per-port transaction size, for the "how many fit" hint.
            let mut costs: Vec<usize> = Vec::new();
            let mut seen_switch: HashSet<&str> = HashSet::new();
            let mut created: Vec<Option<LogicalSwitchPort>> = vec![None; n];
            for (i, p) in reqs.iter().enumerate() {
                if kept[i].is_some() {
                    continue;
                }
                let switch = p.switch_name.as_str();
                let subnet = switches.get(switch).and_then(|(_, s)| *s);
                let empty = SwitchClaims::default();
                let res = {
                    let c = claims.get(switch).unwrap_or(&empty);
                    Self::resolve_addresses(
                        &p.name,
                        switch,
                        subnet,
                        &entries[i],
                        None,
                        c,
                        &format!("ports[{i}]."),
                    )?
                };
                if let Some(c) = claims.get_mut(switch) {
                    for ip in &res.ips {
                        c.ips.insert(*ip, p.name.clone());
                    }
                    for mac in &res.macs {
                        c.macs.insert(mac.clone(), p.name.clone());
                    }
                }
                let port = LogicalSwitchPort {
                    name: p.name.clone(),
                    switch_name: p.switch_name.clone(),
                    addresses: res.addresses,
                    port_security: security[i].iter().map(security_string).collect(),
                    r#type: String::new(),
                    enabled: true,
                    dynamic_addresses: res.dynamic,
                    up: false,
                    chassis: String::new(),
                };
                let mut cost = 1 + res.ips.len() + res.macs.len();
                if seen_switch.insert(switch) {
                    cost += 1;
                    let sw_rev = switches.get(switch).map(|(r, _)| *r).unwrap_or(0);
                    txn.compares
                        .push(Compare::ModRevision(self.keys.switch(switch), sw_rev));
                    txn.ops.push(Op::put(self.keys.gen(switch), Vec::new()));
                }
                costs.push(cost);
                txn.compares
                    .push(Compare::ModRevision(self.keys.port(&p.name), 0));
                txn.ops
                    .push(Op::put(self.keys.port(&p.name), port.encode_to_vec()));
                for ip in &res.ips {
                    let key = self.keys.claim_ip(switch, *ip);
                    txn.compares.push(Compare::ModRevision(key.clone(), 0));
                    txn.ops.push(Op::put(key, p.name.clone().into_bytes()));
                }
                for mac in &res.macs {
                    let key = self.keys.claim_mac(switch, mac);
                    txn.compares.push(Compare::ModRevision(key.clone(), 0));
                    txn.ops.push(Op::put(key, p.name.clone().into_bytes()));
                }
                created[i] = Some(port);
            }
            let size = txn_size(&txn);
            if size > self.limits.max_txn_ops {
                let mut total = 0;
                let fit = costs
                    .iter()
                    .take_while(|c| {
                        total += **c;
                        total <= self.limits.max_txn_ops
                    })
                    .count();
                return Err(ValidationError::new(
                    "ports",
                    &format!("{n} entries"),
                    format!(
                        "the batch needs {size} etcd transaction operations but the limit is {} \
                         (--etcd-max-txn-ops); only the first {fit} of these ports fit in one \
                         call: send smaller batches, or raise etcd's --max-txn-ops and the \
                         controller's --etcd-max-txn-ops",
                        self.limits.max_txn_ops
                    ),
                )
                .into());
            }
            let new_count = costs.len();
            // Ports whose VIF is already on a chassis are bound in this same transaction (as
            // many as fit; the others are bound by their chassis' next report).
            let new_idx: Vec<usize> = (0..n).filter(|i| created[*i].is_some()).collect();
            let names: Vec<&str> = new_idx.iter().map(|i| reqs[*i].name.as_str()).collect();
            let sightings = self.sightings_for(&names, cached.as_deref()).await?;
            let mut bound = 0;
            for (i, s) in new_idx.iter().zip(sightings) {
                let Some(s) = s else { continue };
                if txn.ops.len() + 2 > self.limits.max_txn_ops
                    || txn.compares.len() + 1 > self.limits.max_txn_ops
                {
                    break;
                }
                let (cmp, bind) = self.bind_from_sighting(&reqs[*i].name, &s);
                txn.compares.push(cmp);
                txn.ops.extend(bind);
                if let Some(p) = created[*i].as_mut() {
                    p.chassis = s.chassis;
                }
                bound += 1;
            }
            let revision = if new_count == 0 {
                read_rev
            } else {
                let r = self.store.txn(txn).await?;
                if !r.succeeded {
                    continue;
                }
                r.revision
            };
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                match (kept[i].take(), created[i].take()) {
                    (Some(p), _) => out.push(self.port_with_binding(p).await?),
                    (None, Some(p)) => out.push(p),
                    (None, None) => {
                        return Err(ApiError::Internal(format!(
                            "ports[{i}] neither kept nor created"
                        )))
                    }
                }
            }
            tracing::info!(
                ports = n,
                created = new_count,
                bound,
                switches = switch_order.len(),
                ops = size,
                revision,
                attempt,
                "ports created in one transaction"
            );
            return Ok((revision, out));
        }
        Err(contention("create ports"))
    }

    /// Deletes a port, its claims and its binding.
    pub async fn delete_port(&self, name: &str, if_exists: bool) -> ApiResult<i64> {
        validate_name("name", name)?;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, rev) = self.get_port(name).await?;
            let Some((p, p_rev)) = existing else {
                if if_exists {
                    return Ok(rev);
                }
                return Err(ApiError::NotFound(format!("port {name:?} not found")));
            };
            let (ips, macs) = claims_of(&p);
            let mut ops = vec![
                Op::Delete(self.keys.port(name)),
                Op::Delete(self.keys.binding(name)),
                Op::put(self.keys.gen(&p.switch_name), Vec::new()),
            ];
            ops.extend(
                ips.iter()
                    .map(|ip| Op::Delete(self.keys.claim_ip(&p.switch_name, *ip))),
            );
            ops.extend(
                macs.iter()
                    .map(|m| Op::Delete(self.keys.claim_mac(&p.switch_name, m))),
            );
            let txn = Txn {
                compares: vec![Compare::ModRevision(self.keys.port(name), p_rev)],
                ops,
            };
            let r = self.store.txn(txn).await?;
            if r.succeeded {
                tracing::info!(port = %name, switch = %p.switch_name, revision = r.revision, "port deleted");
                return Ok(r.revision);
            }
        }
        Err(contention("delete port"))
    }

    /// Replaces a port's addresses, moving its claims.
    pub async fn set_port_addresses(
        &self,
        name: &str,
        addresses: &[String],
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        validate_name("port", name)?;
        if addresses.len() > validate::MAX_ENTRIES {
            parse_addresses(addresses, None, "")?;
        }
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, _) = self.get_port(name).await?;
            let Some((old, p_rev)) = existing else {
                return Err(ApiError::NotFound(format!("port {name:?} not found")));
            };
            let switch = old.switch_name.clone();
            let (sw, _) = self.get_switch(&switch).await?;
            let subnet = sw.as_ref().and_then(|(s, _)| validate::stored_subnet(s));
            check_dynamic_has_subnet(addresses, subnet, &switch, "")?;
            let entries = parse_addresses(addresses, subnet, &switch)?;
            let claims = self.switch_claims(&switch).await?;
            let old_dynamic = old
                .addresses
                .iter()
                .any(|a| a == "dynamic")
                .then(|| validate::parse_dynamic(&old.dynamic_addresses))
                .flatten();
            let res =
                Self::resolve_addresses(name, &switch, subnet, &entries, old_dynamic, &claims, "")?;
            let (old_ips, old_macs) = claims_of(&old);
            let mut port = old.clone();
            port.addresses = res.addresses;
            port.dynamic_addresses = res.dynamic;
            port.up = false;
            port.chassis.clear();
            let mut compares = vec![Compare::ModRevision(self.keys.port(name), p_rev)];
            let mut ops = vec![Op::put(self.keys.port(name), port.encode_to_vec())];
            for ip in old_ips.iter().filter(|ip| !res.ips.contains(ip)) {
                ops.push(Op::Delete(self.keys.claim_ip(&switch, *ip)));
            }
            for mac in old_macs.iter().filter(|m| !res.macs.contains(m)) {
                ops.push(Op::Delete(self.keys.claim_mac(&switch, mac)));
            }
            for ip in res.ips.iter().filter(|ip| !old_ips.contains(ip)) {
                compares.push(Compare::ModRevision(self.keys.claim_ip(&switch, *ip), 0));
                ops.push(Op::put(
                    self.keys.claim_ip(&switch, *ip),
                    name.as_bytes().to_vec(),
                ));
            }
            for mac in res.macs.iter().filter(|m| !old_macs.contains(m)) {
                compares.push(Compare::ModRevision(self.keys.claim_mac(&switch, mac), 0));
                ops.push(Op::put(
                    self.keys.claim_mac(&switch, mac),
                    name.as_bytes().to_vec(),
                ));
            }
            let r = self.store.txn(Txn { compares, ops }).await?;
            if r.succeeded {
                tracing::info!(port = %name, switch = %switch, revision = r.revision, "port addresses set");
                return Ok((r.revision, port));
            }
        }
        Err(contention("set port addresses"))
    }

    /// Replaces a port's port-security entries.
    pub async fn set_port_security(
        &self,
        name: &str,
        entries: &[String],
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        validate_name("port", name)?;
        let security = parse_port_security(entries)?;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, _) = self.get_port(name).await?;
            let Some((mut port, p_rev)) = existing else {
                return Err(ApiError::NotFound(format!("port {name:?} not found")));
            };
            port.port_security = security.iter().map(security_string).collect();
            let txn = Txn {
                compares: vec![Compare::ModRevision(self.keys.port(name), p_rev)],
                ops: vec![Op::put(self.keys.port(name), port.encode_to_vec())],
            };
            let r = self.store.txn(txn).await?;
            if r.succeeded {
                tracing::info!(port = %name, revision = r.revision, "port security set");
                return Ok((r.revision, port));
            }
        }
        Err(contention("set port security"))
    }

    /// Sets a port's administrative state. Setting the current state writes nothing and
    /// returns the read revision.
    pub async fn set_port_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> ApiResult<(i64, LogicalSwitchPort)> {
        validate_name("port", name)?;
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (existing, rev) = self.get_port(name).await?;
            let Some((mut port, p_rev)) = existing else {
                return Err(ApiError::NotFound(format!("port {name:?} not found")));
            };
            if port.enabled == enabled {
                return Ok((rev, self.port_with_binding(port).await?));
            }
            port.enabled = enabled;
            let txn = Txn {
                compares: vec![Compare::ModRevision(self.keys.port(name), p_rev)],
                ops: vec![Op::put(self.keys.port(name), port.encode_to_vec())],
            };
            let r = self.store.txn(txn).await?;
            if r.succeeded {
                tracing::info!(port = %name, enabled, revision = r.revision, "port enabled set");
                return Ok((r.revision, self.port_with_binding(port).await?));
            }
        }
        Err(contention("set port enabled"))
    }

    /// Registers a chassis: its record is persistent and rewritten only when it changed (so a
    /// reconnecting agent does not disturb any view), its `status/alive/` key goes on `lease`.
    pub async fn register_chassis(&self, chassis: &Chassis, lease: i64) -> ApiResult<i64> {
        let mut c = chassis.clone();
        c.alive = false;
        c.applied_revision = 0;
        let value = c.encode_to_vec();
        let (existing, _) = self.store.get(&self.keys.chassis(&c.name)).await?;
        let mut ops = vec![Op::Put {
            key: self.keys.alive(&c.name),
            value: Vec::new(),
            lease,
        }];
        // A record left on a lease by an older controller is moved off it.
        if existing
            .as_ref()
            .is_none_or(|kv| kv.value != value || kv.lease != 0)
        {
            ops.push(Op::put(self.keys.chassis(&c.name), value));
        }
        let r = self
            .store
            .txn(Txn {
                compares: vec![],
                ops,
            })
            .await?;
        Ok(r.revision)
    }

    /// Deletes a chassis that is not alive: its record and every binding and VIF sighting
    /// naming it (its ports become unbound). Refused with FailedPrecondition while its agent holds a lease.
    pub async fn delete_chassis(&self, name: &str, if_exists: bool) -> ApiResult<i64> {
        validate_name("name", name)?;
        'attempt: for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (ch, rev) = self.store.get(&self.keys.chassis(name)).await?;
            let Some(ch) = ch else {
                if if_exists {
                    return Ok(rev);
                }
                return Err(ApiError::NotFound(format!("chassis {name:?} not found")));
            };
            let (alive, _) = self.store.get(&self.keys.alive(name)).await?;
            if alive.is_some() {
                return Err(ApiError::FailedPrecondition(format!(
                    "chassis {name:?} is alive (its agent is connected): stop the agent and wait \
                     for its lease to expire before deleting it"
                )));
            }
            let guard = [
                Compare::ModRevision(self.keys.alive(name), 0),
                Compare::ModRevision(ch.key.clone(), ch.mod_revision),
            ];
            let bindings = self.store.range(&self.keys.bindings()).await?;
            let sightings = self.store.range(&self.keys.sightings()).await?;
            let mut changes = Vec::new();
            for kv in &bindings.kvs {
                let b: PortBinding = decode(kv)?;
                if b.chassis == name {
                    changes.push((
                        Compare::ModRevision(kv.key.clone(), kv.mod_revision),
                        Op::Delete(kv.key.clone()),
                    ));
                }
            }
            for kv in sightings.kvs.iter().filter(|kv| text(kv) == name) {
                changes.push((
                    Compare::ModRevision(kv.key.clone(), kv.mod_revision),
                    Op::Delete(kv.key.clone()),
                ));
            }
            let per_txn = self.limits.max_txn_ops.saturating_sub(guard.len()).max(1);
            // Bindings first (in as many transactions as needed), the record last, so an
            // interrupted delete leaves a record that a second chassis-del finishes.
            for chunk in changes.chunks(per_txn) {
                let t = Txn {
                    compares: guard
                        .iter()
                        .cloned()
                        .chain(chunk.iter().map(|(c, _)| c.clone()))
                        .collect(),
                    ops: chunk.iter().map(|(_, o)| o.clone()).collect(),
                };
                if !self.store.txn(t).await?.succeeded {
                    continue 'attempt;
                }
            }
            let t = Txn {
                compares: guard.to_vec(),
                ops: vec![
                    Op::Delete(self.keys.chassis(name)),
                    Op::Delete(self.keys.applied(name)),
                    Op::Delete(self.keys.error(name)),
                ],
            };
            let r = self.store.txn(t).await?;
            if r.succeeded {
                tracing::info!(chassis = %name, bindings = changes.len(), revision = r.revision, "chassis deleted");
                return Ok(r.revision);
            }
        }
        Err(contention("delete chassis"))
    }

    /// Records a chassis' applied revision (on its lease) and reconciles the bindings naming
    /// it with the reported set. Writes nothing when nothing changed.
    ///
    /// `cached`, when given, is the controller's cached state: if it shows the bindings
    /// already as reported, only the ack (and error) are written and the two range reads of
    /// every binding and port are skipped. That is the common case (an ack after every
    /// applied revision); a stale cache only delays a binding change to the next report.
    pub async fn report_status(
        &self,
        report: &StatusReport,
        cached: Option<&ClusterState>,
    ) -> ApiResult<i64> {
        validate_name("chassis", &report.chassis)?;
        if report.ports.len() > MAX_REPORTED_PORTS {
            return Err(ValidationError::new(
                "ports",
                &format!("{} entries", report.ports.len()),
                format!("too many entries (at most {MAX_REPORTED_PORTS})"),
            )
            .into());
        }
        let mut reported: HashMap<&str, bool> = HashMap::new();
        for (i, b) in report.ports.iter().enumerate() {
            validate_name(&format!("ports[{i}].port"), &b.port)?;
            if !b.chassis.is_empty() && b.chassis != report.chassis {
                return Err(ValidationError::new(
                    format!("ports[{i}].chassis"),
                    &b.chassis,
                    format!(
                        "must be empty or the reporting chassis {:?}",
                        report.chassis
                    ),
                )
                .into());
            }
            reported.insert(b.port.as_str(), b.up);
        }
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (ch, _) = self.store.get(&self.keys.alive(&report.chassis)).await?;
            let Some(ch) = ch else {
                return Err(ApiError::FailedPrecondition(format!(
                    "chassis {:?} is not registered or not alive (no open Subscribe stream)",
                    report.chassis
                )));
            };
            let (applied, _) = self.store.get(&self.keys.applied(&report.chassis)).await?;
            let (error, _) = self.store.get(&self.keys.error(&report.chassis)).await?;
            let unchanged = attempt == 0 && cached.is_some_and(|st| bindings_match(st, report));
            let (bindings, ports, sightings) = if unchanged {
                (
                    RangeResult::default(),
                    RangeResult::default(),
                    RangeResult::default(),
                )
            } else {
                (
                    self.store.range(&self.keys.bindings()).await?,
                    self.store.range(&self.keys.ports()).await?,
                    self.store.range(&self.keys.sightings()).await?,
                )
            };
            let port_names: HashSet<&str> = ports
                .kvs
                .iter()
                .filter_map(|kv| kv.key.strip_prefix(&self.keys.ports()))
                .collect();
            let mut current: HashMap<String, (PortBinding, i64)> = HashMap::new();
            for kv in &bindings.kvs {
                let b: PortBinding = decode(kv)?;
                current.insert(b.port.clone(), (b, kv.mod_revision));
            }
            // With `unchanged` nothing was read (`port_names`, `current` and `seen` are empty):
            // no binding or sighting changes, only the ack and the error below.
            let guard = Compare::ModRevision(ch.key.clone(), ch.mod_revision);
            // Binding and sighting changes as (compares, op); written in transactions of at
            // most --etcd-max-txn-ops (a host with many ports reports more than etcd takes at
            // once), the applied revision last, so an ack never precedes the bindings it covers.
            let mut changes: Vec<(Vec<Compare>, Op)> = Vec::new();
            let sighting_prefix = self.keys.sightings();
            let mut seen: HashMap<&str, (String, i64)> = HashMap::new();
            for kv in &sightings.kvs {
                if let Some(port) = kv.key.strip_prefix(&sighting_prefix) {
                    seen.insert(port, (text(kv), kv.mod_revision));
                }
            }
            // Sightings: a reported VIF whose port does not exist is recorded (unless another
            // chassis reported it first), so a later create binds it in its own transaction;
            // this chassis' sightings of VIFs it no longer has, or of ports that now exist, go.
            for port in reported.keys().filter(|_| !unchanged) {
                if port_names.contains(port) || seen.contains_key(port) {
                    continue;
                }
                let key = self.keys.sighting(port);
                changes.push((
                    vec![
                        Compare::ModRevision(key.clone(), 0),
                        Compare::ModRevision(self.keys.port(port), 0),
                    ],
                    Op::put(key, report.chassis.clone().into_bytes()),
                ));
            }
            for (port, (chassis, rev)) in &seen {
                if *chassis == report.chassis
                    && (!reported.contains_key(port) || port_names.contains(port))
                {
                    let key = self.keys.sighting(port);
                    changes.push((
                        vec![Compare::ModRevision(key.clone(), *rev)],
                        Op::Delete(key),
                    ));
                }
            }
            for (port, up) in &reported {
                if !port_names.contains(port) {
                    continue; // a VIF for a port that does not exist (yet): not bound
                }
                let want = PortBinding {
                    port: port.to_string(),
                    chassis: report.chassis.clone(),
                    up: *up,
                };
                let key = self.keys.binding(port);
                let cur_rev = match current.get(*port) {
                    Some((b, _)) if *b == want => continue,
                    Some((_, rev)) => *rev,
                    None => 0,
                };
                changes.push((
                    vec![Compare::ModRevision(key.clone(), cur_rev)],
                    Op::put(key, want.encode_to_vec()),
                ));
            }
            for (port, (b, rev)) in &current {
                if b.chassis == report.chassis && !reported.contains_key(port.as_str()) {
                    let key = self.keys.binding(port);
                    changes.push((
                        vec![Compare::ModRevision(key.clone(), *rev)],
                        Op::Delete(key),
                    ));
                }
            }
            let applied_now = applied.as_ref().and_then(|kv| text(kv).parse::<i64>().ok());
            let ack = (applied_now != Some(report.applied_revision)
                || applied.as_ref().is_some_and(|kv| kv.lease != ch.lease))
            .then(|| Op::Put {
                key: self.keys.applied(&report.chassis),
                value: report.applied_revision.to_string().into_bytes(),
                lease: ch.lease,
            });
            // The last error, written only when it changed (absent = none).
            // Long errors are cut (never rejected: the report must still record the bindings).
            let mut last_error = report.last_error.as_str();
            if last_error.len() > validate::MAX_STRING_LEN {
                let mut end = validate::MAX_STRING_LEN;
                while !last_error.is_char_boundary(end) {
                    end -= 1;
                }
                last_error = &last_error[..end];
            }
            let error_now = error.as_ref().map(text).unwrap_or_default();
            if error_now != last_error {
                let key = self.keys.error(&report.chassis);
                let rev = error.as_ref().map(|kv| kv.mod_revision).unwrap_or(0);
                let op = if last_error.is_empty() {
                    Op::Delete(key.clone())
                } else {
                    Op::put(key.clone(), last_error.as_bytes().to_vec())
                };
                changes.push((vec![Compare::ModRevision(key, rev)], op));
            }
            if changes.is_empty() && ack.is_none() {
                return Ok(match (unchanged, cached) {
                    (true, Some(st)) => st.revision,
                    _ => bindings.revision,
                });
            }
            let mut chunks: Vec<Txn> = Vec::new();
            for (cmps, op) in &changes {
                let fits = chunks.last().is_some_and(|t| {
                    t.compares.len() + cmps.len() <= self.limits.max_txn_ops
                        && t.ops.len() < self.limits.max_txn_ops
                });
                if !fits {
                    chunks.push(Txn {
                        compares: vec![guard.clone()],
                        ops: Vec::new(),
                    });
                }
                if let Some(t) = chunks.last_mut() {
                    t.compares.extend(cmps.iter().cloned());
                    t.ops.push(op.clone());
                }
            }
            if let Some(ack) = ack {
                match chunks.last_mut() {
                    Some(last) if last.ops.len() < self.limits.max_txn_ops => last.ops.push(ack),
                    _ => chunks.push(Txn {
                        compares: vec![guard.clone()],
                        ops: vec![ack],
                    }),
                }
            }
            let mut revision = 0;
            let mut lost = false;
            for t in chunks {
                let r = self.store.txn(t).await?;
                if !r.succeeded {
                    lost = true;
                    break;
                }
                revision = r.revision;
            }
            if !lost {
                tracing::debug!(chassis = %report.chassis, applied = report.applied_revision, bindings = changes.len(), revision, "status recorded");
                return Ok(revision);
            }
        }
        Err(contention("report status"))
    }
}

/// True when `state` already holds exactly the bindings `report` asks for: every reported
/// port that exists is bound to the reporting chassis with the reported `up`, every reported
/// VIF whose port does not exist has a sighting, and no other binding or sighting names that
/// chassis.
fn bindings_match(state: &ClusterState, report: &StatusReport) -> bool {
    let mut reported = HashSet::with_capacity(report.ports.len());
    for b in &report.ports {
        reported.insert(b.port.as_str());
        if !state.ports.contains_key(&b.port) {
            // A VIF without its port must be recorded as a sighting (by any chassis).
            if !state.sightings.contains_key(&b.port) {
                return false;
            }
            continue;
        }
        match state.bindings.get(&b.port) {
            Some(cur) if cur.chassis == report.chassis && cur.up == b.up => {}
            _ => return false,
        }
    }
    // This chassis' sightings are all of VIFs it still has, for ports that do not exist.
    let sightings_current = state.sightings.iter().all(|(port, s)| {
        s.chassis != report.chassis
            || (reported.contains(port.as_str()) && !state.ports.contains_key(port))
    });
    sightings_current
        && state
            .bindings
            .iter()
            .all(|(port, b)| b.chassis != report.chassis || reported.contains(port.as_str()))
}

/// `dynamic` on a switch without subnet is a FailedPrecondition (the request is well-formed,
/// the switch cannot serve it).
fn check_dynamic_has_subnet(
    addresses: &[String],
    subnet: Option<Ipv4Network>,
    switch: &str,
    field_prefix: &str,
) -> ApiResult<()> {
    if subnet.is_some() {
        return Ok(());
    }
    match addresses.iter().position(|a| a.trim() == "dynamic") {
        Some(i) => Err(ApiError::FailedPrecondition(
            ValidationError::new(
                format!("{field_prefix}addresses[{i}]"),
                "dynamic",
                format!("switch {switch:?} has no subnet to allocate from"),
            )
            .to_string(),
        )),
        None => Ok(()),
    }
}

fn security_string(a: &weft_proto::v1::PortAddress) -> String {
    let mut s = a.mac.clone();
    for ip in &a.ips {
        s.push(' ');
        s.push_str(ip);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::Sighting;

    fn report(chassis: &str, ports: &[(&str, bool)]) -> StatusReport {
        StatusReport {
            chassis: chassis.into(),
            applied_revision: 1,
            ports: ports
                .iter()
                .map(|(p, up)| PortBinding {
                    port: p.to_string(),
                    chassis: chassis.into(),
                    up: *up,
                })
                .collect(),
            last_error: String::new(),
        }
    }

    #[test]
    fn bindings_match_accounts_for_sightings() {
        let mut st = ClusterState::default();
        let sight = |c: &str| Sighting {
            chassis: c.into(),
            mod_revision: 3,
        };
        st.sightings.insert("v1".into(), sight("hv2"));
        st.sightings.insert("v2".into(), sight("hv2"));
        st.sightings.insert("w1".into(), sight("hv1"));
        st.ports.insert(
            "p1".into(),
            LogicalSwitchPort {
                name: "p1".into(),
                ..Default::default()
            },
        );
        st.bindings.insert(
            "p1".into(),
            PortBinding {
                port: "p1".into(),
                chassis: "hv1".into(),
                up: true,
            },
        );
        // hv2: both VIFs sighted, no port, no binding: nothing to write.
        assert!(bindings_match(
            &st,
            &report("hv2", &[("v1", false), ("v2", false)])
        ));
        // A VIF gone from the report: its sighting must go.
        assert!(!bindings_match(&st, &report("hv2", &[("v1", false)])));
        // A new VIF without a sighting must be recorded.
        assert!(!bindings_match(
            &st,
            &report("hv2", &[("v1", false), ("v2", false), ("v3", false)])
        ));
        // A VIF sighted by another chassis first is left alone.
        assert!(bindings_match(
            &st,
            &report("hv2", &[("v1", false), ("v2", false), ("w1", false)])
        ));
        // hv1: p1 bound up, w1 sighted.
        assert!(bindings_match(
            &st,
            &report("hv1", &[("p1", true), ("w1", false)])
        ));
        assert!(!bindings_match(
            &st,
            &report("hv1", &[("p1", false), ("w1", false)])
        ));
        // A sighting of a port that now exists is stale.
        st.ports.insert(
            "w1".into(),
            LogicalSwitchPort {
                name: "w1".into(),
                ..Default::default()
            },
        );
        assert!(!bindings_match(&st, &report("hv1", &[("p1", true)])));
    }
}
