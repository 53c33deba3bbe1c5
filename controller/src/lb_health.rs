//! Load balancer backend health: status that agents report (`ReportHealth`), not intent.
//! Each agent checks the backends whose ports are bound on its chassis (the VIPs with a
//! `health_check`, `lb-hc-add`) and reports changes; each backend's state is one key,
//! `status/lb_health/LB/VIP/BACKEND` = `online` | `offline`, so chassis never write the same
//! key. A change logs the LB as changed: every view that carries the LB gets it again with
//! `LoadBalancerView.backend_status`, and the agents drop an offline backend from the VIP's
//! select group (see docs/load-balancing.md, "Health checks").

use std::collections::HashMap;

use prost::Message;
use weft_proto::model::load_balancer::{parse_endpoint, status_key, STATUS_OFFLINE, STATUS_ONLINE};
use weft_proto::v1::{HealthReport, LoadBalancer};

use crate::error::{ApiError, ApiResult};
use crate::intent::{Intent, MAX_REPORTED_PORTS};
use crate::state::ClusterState;
use crate::store::{Op, Txn};
use crate::validate::{validate_name, ValidationError};

/// Where backend health lives, relative to the root.
pub const PREFIX: &str = "status/lb_health/";

/// `LB/VIP/BACKEND` (the key below [`PREFIX`]) → (LB, `"VIP BACKEND"`). VIPs and backends in
/// canonical text have no `/`.
pub fn parse_key(rest: &str) -> Option<(&str, String)> {
    let mut it = rest.splitn(3, '/');
    let (lb, vip, backend) = (it.next()?, it.next()?, it.next()?);
    if lb.is_empty() || vip.is_empty() || backend.is_empty() {
        return None;
    }
    Some((lb, format!("{vip} {backend}")))
}

/// The `backend_status` of `lb`'s view: the reported state of every backend of every VIP
/// that has a health check (reports for VIPs or backends the LB no longer has are left out).
pub fn view_status(state: &ClusterState, lb: &LoadBalancer) -> HashMap<String, String> {
    let Some(reported) = state.lb_health.get(&lb.name) else {
        return HashMap::new();
    };
    reported
        .iter()
        .filter(|(k, _)| {
            let Some((vip, backend)) = k.split_once(' ') else {
                return false;
            };
            lb.health_check.contains_key(vip)
                && lb
                    .vips
                    .get(vip)
                    .is_some_and(|b| b.split(',').any(|x| x == backend))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Intent {
    /// Records the backend states a chassis reports (only keys whose value changes are
    /// written). Malformed entries refuse the whole report, naming the field and value;
    /// entries for an LB, VIP, health check or backend that no longer exists are skipped
    /// (the agent's view may be a moment behind). Returns the etcd revision afterwards.
    pub async fn report_health(&self, report: &HealthReport) -> ApiResult<i64> {
        validate_name("chassis", &report.chassis)?;
        if report.backends.len() > MAX_REPORTED_PORTS {
            return Err(ValidationError::new(
                "backends",
                &format!("{} entries", report.backends.len()),
                format!("too many entries (at most {MAX_REPORTED_PORTS})"),
            )
            .into());
        }
        for (i, b) in report.backends.iter().enumerate() {
            validate_name(&format!("backends[{i}].load_balancer"), &b.load_balancer)?;
            let vip = parse_endpoint(&format!("backends[{i}].vip"), &b.vip)?;
            let backend = parse_endpoint(&format!("backends[{i}].backend"), &b.backend)?;
            if vip.to_string() != b.vip || backend.to_string() != b.backend {
                return Err(ValidationError::new(
                    format!("backends[{i}]"),
                    &status_key(&vip, &backend),
                    "VIP and backend must be in canonical text",
                )
                .into());
            }
            if b.status != STATUS_ONLINE && b.status != STATUS_OFFLINE {
                return Err(ValidationError::new(
                    format!("backends[{i}].status"),
                    &b.status,
                    "expected online or offline",
                )
                .into());
            }
        }
        let (alive, _) = self.store.get(&self.keys.alive(&report.chassis)).await?;
        if alive.is_none() {
            return Err(ApiError::FailedPrecondition(format!(
                "chassis {:?} is not registered or not alive (no open Subscribe stream)",
                report.chassis
            )));
        }
        let root = self.keys.root().to_string();
        let mut lbs: HashMap<&str, Option<LoadBalancer>> = HashMap::new();
        let mut ops = Vec::new();
        for b in &report.backends {
            if !lbs.contains_key(b.load_balancer.as_str()) {
                let key = format!("{root}nb/load_balancers/{}", b.load_balancer);
                let (kv, _) = self.store.get(&key).await?;
                let lb = kv.and_then(|kv| LoadBalancer::decode(kv.value.as_slice()).ok());
                lbs.insert(b.load_balancer.as_str(), lb);
            }
            let Some(Some(lb)) = lbs.get(b.load_balancer.as_str()) else {
                continue;
            };
            let known = lb.health_check.contains_key(&b.vip)
                && lb
                    .vips
                    .get(&b.vip)
                    .is_some_and(|l| l.split(',').any(|x| x == b.backend));
            if !known {
                continue;
            }
            let key = format!("{root}{PREFIX}{}/{}/{}", b.load_balancer, b.vip, b.backend);
            let (old, _) = self.store.get(&key).await?;
            if old.is_some_and(|kv| kv.value == b.status.as_bytes()) {
                continue;
            }
            ops.push(Op::put(key, b.status.clone().into_bytes()));
        }
        if ops.is_empty() {
            let (_, rev) = self.store.get(&self.keys.alive(&report.chassis)).await?;
            return Ok(rev);
        }
        let r = self
            .store
            .txn(Txn {
                compares: Vec::new(),
                ops,
            })
            .await?;
        Ok(r.revision)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use weft_proto::v1::{object, BackendHealth, Object};

    use super::*;
    use crate::intent::insert;
    use crate::objects::transact::Oversize;
    use crate::store::memory::MemoryStore;

    async fn dump(i: &Intent) -> Vec<(String, Vec<u8>)> {
        i.store()
            .range("/")
            .await
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect()
    }

    fn bh(vip: &str, backend: &str, status: &str) -> BackendHealth {
        BackendHealth {
            load_balancer: "web".into(),
            vip: vip.into(),
            backend: backend.into(),
            status: status.into(),
        }
    }

    #[tokio::test]
    async fn reports_are_checked_stored_and_shown_in_views() {
        let i = Intent::new(Arc::new(MemoryStore::new()), "/t");
        let lb = Object {
            kind: Some(object::Kind::LoadBalancer(LoadBalancer {
                name: "web".into(),
                vips: [(
                    "10.96.0.10:80".to_string(),
                    "10.0.0.5:8080,10.0.0.6:8080".to_string(),
                )]
                .into(),
                health_check: [("10.96.0.10:80".to_string(), String::new())].into(),
                ..Default::default()
            })),
        };
        i.transact(&[insert(lb, false)], false, Oversize::Refuse)
            .await
            .unwrap();
        let report = |b: Vec<BackendHealth>| HealthReport {
            chassis: "hv1".into(),
            backends: b,
        };
        // Not alive: refused.
        let e = i
            .report_health(&report(vec![bh(
                "10.96.0.10:80",
                "10.0.0.5:8080",
                "offline",
            )]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not alive"), "{e}");
        i.store()
            .txn(Txn {
                compares: Vec::new(),
                ops: vec![Op::put(i.keys().alive("hv1"), Vec::new())],
            })
            .await
            .unwrap();
        // Malformed entries: refused naming field and value, nothing written.
        for (b, needle) in [
            (bh("10.96.0.10:80", "10.0.0.5:8080", "down"), "down"),
            (
                bh("10.96.0.300:80", "10.0.0.5:8080", "online"),
                "10.96.0.300:80",
            ),
            (
                bh("10.96.0.10:080", "10.0.0.5:8080", "online"),
                "10.96.0.10:80",
            ),
        ] {
            let before = dump(&i).await;
            let e = i.report_health(&report(vec![b])).await.unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            assert_eq!(dump(&i).await, before);
        }
        // A good report; entries for what the LB does not have are skipped.
        i.report_health(&report(vec![
            bh("10.96.0.10:80", "10.0.0.5:8080", "offline"),
            bh("10.96.0.10:80", "10.0.0.9:8080", "offline"),
            bh("10.96.0.11:80", "10.0.0.5:8080", "offline"),
        ]))
        .await
        .unwrap();
        let st = i.load().await.unwrap();
        let l = match &st.objects[crate::kinds::load_balancer::NAME]["web"].kind {
            Some(object::Kind::LoadBalancer(l)) => l.clone(),
            _ => panic!(),
        };
        let v = view_status(&st, &l);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v["10.96.0.10:80 10.0.0.5:8080"], "offline");
        // Without the health check, the view carries no status.
        let mut l2 = l.clone();
        l2.health_check.clear();
        assert!(view_status(&st, &l2).is_empty());
    }

    #[test]
    fn keys_parse() {
        assert_eq!(
            parse_key("web/10.96.0.10:80/10.0.0.5:8080"),
            Some(("web", "10.96.0.10:80 10.0.0.5:8080".to_string()))
        );
        assert_eq!(parse_key("web/10.96.0.10:80"), None);
        assert_eq!(parse_key("/a/b"), None);
    }
}
