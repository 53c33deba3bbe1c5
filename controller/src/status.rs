//! What agents report, apart from intent: chassis registration and liveness, applied
//! revisions, errors, port bindings and VIF sightings. Start with [`Intent::report_status`].

use std::collections::{HashMap, HashSet};

use prost::Message;
use weft_proto::v1::{Chassis, PortBinding, StatusReport};

use crate::error::{ApiError, ApiResult};
use crate::intent::{backoff, contention, decode, text, Intent, MAX_ATTEMPTS, MAX_REPORTED_PORTS};
use crate::state::ClusterState;
use crate::store::{Compare, Op, RangeResult, Txn};
use crate::validate::{self, validate_name, ValidationError};

impl Intent {
    /// Registers a chassis: its record is persistent and rewritten only when it changed (so a
    /// reconnecting agent does not disturb any view), its `status/alive/` key goes on `lease`.
    pub async fn register_chassis(&self, chassis: &Chassis, lease: i64) -> ApiResult<i64> {
        let mut c = chassis.clone();
        c.alive = false;
        c.applied_revision = 0;
        c.last_error.clear();
        let (existing, _) = self.store.get(&self.keys.chassis(&c.name)).await?;
        let existing_c = match &existing {
            Some(kv) => Some(decode::<Chassis>(kv)?),
            None => None,
        };
        // A user's external_ids survive the agent's registration.
        if let Some(old) = &existing_c {
            if c.external_ids.is_empty() {
                c.external_ids = old.external_ids.clone();
            }
        }
        let (alive, _) = self.store.get(&self.keys.alive(&c.name)).await?;
        if let (Some(alive), Some(old)) = (&alive, &existing_c) {
            // Another agent holds the name: a restart of the same agent re-registers with
            // the same encapsulation, a second agent with the same --chassis does not.
            let same = old.encap_ip == c.encap_ip
                && old.encap_types == c.encap_types
                && old.datapath_type == c.datapath_type;
            if alive.lease != lease && !same {
                return Err(ApiError::AlreadyExists(format!(
                    "chassis {:?} is already registered and alive with encap_ip {} ({}): \
                     another weft-agent uses this --chassis name; stop it, or give this one \
                     another name",
                    c.name,
                    old.encap_ip,
                    old.encap_types.join(",")
                )));
            }
        }
        let value = c.encode_to_vec();
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
    /// Records what `report.chassis` reports: its applied revision (refused beyond etcd's
    /// current revision: an agent can only apply revisions it was sent, and a forged ack
    /// would make `--wait=hv` return early), its bindings and sightings, its last error.
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
        // The usual report: an ack whose bindings and error the cache already shows. It is
        // held in memory (see crate::acks) and written to etcd in a batch, not read-checked
        // and written here: no etcd round trip on the --wait=hv path.
        if let Some(st) = cached {
            if let Some(alive_rev) = held_ack(st, report) {
                if self
                    .acks
                    .record(&report.chassis, report.applied_revision, alive_rev)
                {
                    self.acks.kick(
                        self.store.clone(),
                        self.keys.clone(),
                        self.limits.max_txn_ops,
                    );
                }
                return Ok(st.revision);
            }
        }
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (ch, etcd_revision) = self.store.get(&self.keys.alive(&report.chassis)).await?;
            check_applied_revision(report.applied_revision, etcd_revision)?;
            let Some(ch) = ch else {
                return Err(ApiError::FailedPrecondition(format!(
                    "chassis {:?} is not registered or not alive (no open Subscribe stream)",
                    report.chassis
                )));
            };
            let (applied, _) = self.store.get(&self.keys.applied(&report.chassis)).await?;
            let (error, _) = self.store.get(&self.keys.error(&report.chassis)).await?;
            let unchanged = attempt == 0 && cached.is_some_and(|st| bindings_match(st, report));
            // What the report is compared with: from the cache on the first attempt (only
            // the reported ports and this chassis' bindings and sightings: O(this chassis),
            // the compares catch a stale cache), from etcd ranges on a retry.
            let known = match (unchanged, cached) {
                (true, _) => Known::default(),
                (false, Some(st)) if attempt == 0 => Known::from_state(st, report),
                _ => Known::from_ranges(
                    &self.keys,
                    &self.store.range(&self.keys.bindings()).await?,
                    &self.store.range(&self.keys.ports()).await?,
                    &self.store.range(&self.keys.sightings()).await?,
                )?,
            };
            let bindings_revision = known.revision;
            let Known {
                port_revs,
                current,
                seen,
                ..
            } = known;
            let port_names: HashSet<&str> = port_revs.keys().map(String::as_str).collect();
            // With `unchanged` nothing was read (`port_names`, `current` and `seen` are empty):
            // no binding or sighting changes, only the ack and the error below.
            let guard = Compare::ModRevision(ch.key.clone(), ch.mod_revision);
            // Binding and sighting changes as (compares, op); written in transactions of at
            // most --etcd-max-txn-ops (a host with many ports reports more than etcd takes at
            // once), the applied revision last, so an ack never precedes the bindings it covers.
            let mut changes: Vec<(Vec<Compare>, Op)> = Vec::new();
            // Sightings: a reported VIF whose port does not exist is recorded (unless another
            // chassis reported it first), so a later create binds it in its own transaction;
            // this chassis' sightings of VIFs it no longer has, or of ports that now exist, go.
            for port in reported.keys().filter(|_| !unchanged) {
                if port_names.contains(port) || seen.contains_key(*port) {
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
                    && (!reported.contains_key(port.as_str()) || port_names.contains(port.as_str()))
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
                // The port must still be the one seen (a stale cache fails the compare).
                let port_rev = port_revs.get(*port).copied().unwrap_or(0);
                changes.push((
                    vec![
                        Compare::ModRevision(key.clone(), cur_rev),
                        Compare::ModRevision(self.keys.port(port), port_rev),
                    ],
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
            // Control characters are escaped: the text reaches terminals (chassis-list).
            let last_error = stored_error(&report.last_error);
            let last_error = last_error.as_str();
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
                    _ => bindings_revision,
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
                // Supersedes an older held ack, so its batched write cannot go after this one.
                self.acks
                    .record(&report.chassis, report.applied_revision, ch.mod_revision);
                tracing::debug!(chassis = %report.chassis, applied = report.applied_revision, bindings = changes.len(), revision, "status recorded");
                return Ok(revision);
            }
        }
        Err(contention("report status"))
    }
}

/// What a status report is reconciled with: existing ports (with their mod_revision),
/// bindings and sightings (with theirs).
#[derive(Debug, Default)]
struct Known {
    port_revs: HashMap<String, i64>,
    current: HashMap<String, (PortBinding, i64)>,
    seen: HashMap<String, (String, i64)>,
    /// The store revision this reflects.
    revision: i64,
}

impl Known {
    /// Pure: from the cached state, only what `report` can touch: its ports, and the
    /// bindings and sightings naming its chassis.
    fn from_state(st: &ClusterState, report: &StatusReport) -> Known {
        let mut k = Known {
            revision: st.revision,
            ..Known::default()
        };
        let rev = |rel: String| st.revs.get(&rel).copied().unwrap_or(0);
        let none = Default::default();
        let mine_bound = st.bindings_by_chassis.get(&report.chassis).unwrap_or(&none);
        let mine_seen = st
            .sightings_by_chassis
            .get(&report.chassis)
            .unwrap_or(&none);
        let names = report
            .ports
            .iter()
            .map(|b| &b.port)
            .chain(mine_bound.iter())
            .chain(mine_seen.iter());
        for name in names {
            if st.ports.contains_key(name) {
                k.port_revs
                    .insert(name.clone(), rev(format!("nb/ports/{name}")));
            }
            if let Some(b) = st.bindings.get(name) {
                k.current.insert(
                    name.clone(),
                    (b.clone(), rev(format!("status/bindings/{name}"))),
                );
            }
            if let Some(s) = st.sightings.get(name) {
                k.seen
                    .insert(name.clone(), (s.chassis.clone(), s.mod_revision));
            }
        }
        k
    }

    /// From full range reads of bindings, ports and sightings.
    fn from_ranges(
        keys: &crate::state::Keys,
        bindings: &RangeResult,
        ports: &RangeResult,
        sightings: &RangeResult,
    ) -> ApiResult<Known> {
        let mut k = Known {
            revision: bindings.revision,
            ..Known::default()
        };
        for kv in &ports.kvs {
            if let Some(name) = kv.key.strip_prefix(&keys.ports()) {
                k.port_revs.insert(name.to_string(), kv.mod_revision);
            }
        }
        for kv in &bindings.kvs {
            let b: PortBinding = decode(kv)?;
            k.current.insert(b.port.clone(), (b, kv.mod_revision));
        }
        for kv in &sightings.kvs {
            if let Some(port) = kv.key.strip_prefix(&keys.sightings()) {
                k.seen.insert(port.to_string(), (text(kv), kv.mod_revision));
            }
        }
        Ok(k)
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
    // This chassis' sightings are all of VIFs it still has, for ports that do not exist
    // (through the per-chassis indexes: O(this chassis' ports), not O(deployment)).
    let none = Default::default();
    let sightings_current = state
        .sightings_by_chassis
        .get(&report.chassis)
        .unwrap_or(&none)
        .iter()
        .all(|port| reported.contains(port.as_str()) && !state.ports.contains_key(port));
    sightings_current
        && state
            .bindings_by_chassis
            .get(&report.chassis)
            .unwrap_or(&none)
            .iter()
            .all(|port| reported.contains(port.as_str()))
}

/// Pure: the error text as stored: control characters escaped, cut at
/// `validate::MAX_STRING_LEN` bytes (never rejected: the report must still record the
/// bindings).
fn stored_error(reported: &str) -> String {
    let mut escaped = validate::escape_control_chars(reported);
    if escaped.len() > validate::MAX_STRING_LEN {
        let mut end = validate::MAX_STRING_LEN;
        while !escaped.is_char_boundary(end) {
            end -= 1;
        }
        escaped.truncate(end);
    }
    escaped
}

/// Pure: when `report` needs no etcd write but its ack (the chassis is alive in `state`, the
/// applied revision is within what `state` has seen, bindings, sightings and the error are
/// as `state` shows them), the mod_revision of the chassis' alive key to hold the ack under.
fn held_ack(state: &ClusterState, report: &StatusReport) -> Option<i64> {
    if !state.alive.contains(&report.chassis)
        || report.applied_revision < 0
        || report.applied_revision > state.revision
    {
        return None;
    }
    let alive_rev = *state
        .revs
        .get(&format!("status/alive/{}", report.chassis))?;
    let error_now = state
        .errors
        .get(&report.chassis)
        .map(String::as_str)
        .unwrap_or("");
    (stored_error(&report.last_error) == error_now && bindings_match(state, report))
        .then_some(alive_rev)
}

/// Pure: an applied revision must be 0..=`etcd_revision` (etcd's current revision, read in
/// the same call): an agent only applies revisions the controller sent it.
fn check_applied_revision(applied: i64, etcd_revision: i64) -> Result<(), ValidationError> {
    if applied < 0 || applied > etcd_revision {
        return Err(ValidationError::new(
            "applied_revision",
            &applied.to_string(),
            format!(
                "must be between 0 and etcd's current revision {etcd_revision} \
                 (an agent can only apply a revision it was sent)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::Sighting;
    use weft_proto::v1::LogicalSwitchPort;

    #[test]
    fn applied_revision_is_bounded_by_etcd() {
        assert!(check_applied_revision(0, 10).is_ok());
        assert!(check_applied_revision(10, 10).is_ok());
        let e = check_applied_revision(999_999_999, 10).unwrap_err();
        assert_eq!(e.field, "applied_revision");
        assert_eq!(e.value, "999999999");
        assert!(e.reason.contains("current revision 10"), "{}", e.reason);
        assert!(check_applied_revision(-1, 10).is_err());
    }

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

    /// Fills the per-chassis indexes the way `apply_put` keeps them.
    fn index(st: &mut ClusterState) {
        st.bindings_by_chassis = Default::default();
        st.sightings_by_chassis = Default::default();
        for (p, b) in st.bindings.clone() {
            let mut set = st
                .bindings_by_chassis
                .get(&b.chassis)
                .cloned()
                .unwrap_or_default();
            set.insert(p);
            st.bindings_by_chassis.insert(b.chassis, set);
        }
        for (p, s) in st.sightings.clone() {
            let mut set = st
                .sightings_by_chassis
                .get(&s.chassis)
                .cloned()
                .unwrap_or_default();
            set.insert(p);
            st.sightings_by_chassis.insert(s.chassis, set);
        }
    }

    #[test]
    fn indexes_follow_puts_and_deletes() {
        let k = crate::state::Keys::new("/w");
        let mut st = ClusterState::default();
        let b = |c: &str| {
            PortBinding {
                port: "p1".into(),
                chassis: c.into(),
                up: true,
            }
            .encode_to_vec()
        };
        st.apply_put(&k, &k.binding("p1"), &b("hv1"), 2);
        st.apply_put(&k, &k.binding("p1"), &b("hv2"), 3);
        assert!(!st.bindings_by_chassis.contains_key("hv1"));
        assert!(st.bindings_by_chassis["hv2"].contains("p1"));
        st.apply_delete(&k, &k.binding("p1"), 4);
        assert!(st.bindings_by_chassis.is_empty());
        st.apply_put(&k, &k.sighting("v1"), b"hv1", 5);
        st.apply_put(&k, &k.sighting("v1"), b"hv3", 6);
        assert_eq!(st.sightings_by_chassis.len(), 1);
        assert!(st.sightings_by_chassis["hv3"].contains("v1"));
        st.apply_delete(&k, &k.sighting("v1"), 7);
        assert!(st.sightings_by_chassis.is_empty());
    }

    #[test]
    fn known_from_the_cache_is_only_what_the_report_touches() {
        let k = crate::state::Keys::new("/w");
        let mut st = ClusterState::default();
        let port = |n: &str| {
            LogicalSwitchPort {
                name: n.into(),
                switch_name: "sw".into(),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let bind = |p: &str, c: &str| {
            PortBinding {
                port: p.into(),
                chassis: c.into(),
                up: true,
            }
            .encode_to_vec()
        };
        st.apply_put(&k, &k.port("p1"), &port("p1"), 2);
        st.apply_put(&k, &k.port("p2"), &port("p2"), 3);
        st.apply_put(&k, &k.port("p3"), &port("p3"), 4);
        st.apply_put(&k, &k.binding("p1"), &bind("p1", "hv1"), 5);
        st.apply_put(&k, &k.binding("p2"), &bind("p2", "hv1"), 6);
        st.apply_put(&k, &k.binding("p3"), &bind("p3", "hv2"), 7);
        st.apply_put(&k, &k.sighting("v1"), b"hv1", 8);
        st.apply_put(&k, &k.sighting("v2"), b"hv2", 9);
        st.revision = 9;
        // hv1 reports p1 and a new VIF v3: p2 (its binding, unreported) and v1 (its
        // sighting) come along; p3 and v2 (hv2's) do not.
        let known = Known::from_state(&st, &report("hv1", &[("p1", true), ("v3", false)]));
        let mut ports: Vec<_> = known.port_revs.iter().collect();
        ports.sort();
        assert_eq!(
            ports,
            vec![(&"p1".to_string(), &2), (&"p2".to_string(), &3)]
        );
        assert_eq!(known.current["p1"].1, 5);
        assert_eq!(known.current["p2"].1, 6);
        assert!(!known.current.contains_key("p3"));
        assert_eq!(known.seen["v1"], ("hv1".to_string(), 8));
        assert!(!known.seen.contains_key("v2"));
        assert_eq!(known.revision, 9);
    }

    #[test]
    fn held_ack_only_when_nothing_but_the_ack_changes() {
        let k = crate::state::Keys::new("/w");
        let mut st = ClusterState::default();
        st.apply_put(&k, &k.alive("hv1"), b"", 5);
        st.apply_put(&k, &k.error("hv1"), b"boom", 6);
        st.revision = 10;
        let mut r = report("hv1", &[]);
        r.applied_revision = 10;
        assert_eq!(held_ack(&st, &r), None, "the error changes (cleared)");
        r.last_error = "boom".into();
        assert_eq!(held_ack(&st, &r), Some(5));
        r.applied_revision = 11;
        assert_eq!(held_ack(&st, &r), None, "beyond what the cache has seen");
        r.applied_revision = 10;
        let mut other = r.clone();
        other.chassis = "hv2".into();
        assert_eq!(held_ack(&st, &other), None, "not alive");
        let mut vif = r.clone();
        vif.ports.push(PortBinding {
            port: "v9".into(),
            chassis: "hv1".into(),
            up: false,
        });
        assert_eq!(held_ack(&st, &vif), None, "a new sighting to write");
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
        index(&mut st);
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
