//! The OVSDB side of a CNI or CNM attachment: the Port + Interface of the host veth on the
//! integration bridge, with `external_ids:iface-id=<logical port>` (how the agent binds VIFs)
//! and our marks: [`CNI_KEY`] = the container id (the row is ours; DEL removes only such
//! rows) and [`LPORT_KEY`] = `created` when ADD created the logical port (DEL deletes only
//! those on the controller).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use weft_ovsdb::atom::{json_named_uuid, json_str_map};
use weft_ovsdb::ops::{self, eq, selected_rows};
use weft_ovsdb::vswitch::{DB, OWNER_KEY};
use weft_ovsdb::{Client, ClientConfig, Endpoint, Row, RowExt, Uuid};

use super::PlugError;

/// `external_ids` key on the Interface and Port: the container id that owns them.
pub const CNI_KEY: &str = "weft-cni";
/// `external_ids` key on the Interface and Port: the Docker endpoint id that owns them.
pub const CNM_KEY: &str = "weft-cnm";
/// `external_ids` key on the Interface: the Docker network id of a CNM attachment.
pub const CNM_NETWORK_KEY: &str = "weft-cnm-network";
/// The marks that make a row a container's (copied to the Port; [`del_vif`] removes only
/// rows without the agent's own mark).
pub const OWNER_KEYS: [&str; 2] = [CNI_KEY, CNM_KEY];
/// `external_ids` key on the Interface: `created` when ADD created the logical port.
pub const LPORT_KEY: &str = "weft-cni-lport";
/// Value of [`LPORT_KEY`] for a logical port ADD created.
pub const LPORT_CREATED: &str = "created";
/// `external_ids` key on the Interface: the CNI network name (GC removes only its own).
pub const NETWORK_KEY: &str = "weft-cni-network";
/// `external_ids` key on the Interface: `CNI_IFNAME` in the container.
pub const IFNAME_KEY: &str = "weft-cni-ifname";

fn err(e: impl std::fmt::Display) -> PlugError {
    PlugError::Datapath(format!("OVSDB: {e}"))
}

/// Connects to the OVSDB server at `target` (`unix:PATH` or `tcp:IP:PORT`).
pub async fn connect(target: &str) -> Result<Client, PlugError> {
    let ep: Endpoint = target.parse().map_err(err)?;
    let cfg = ClientConfig {
        request_timeout: Some(Duration::from_secs(10)),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    Client::connect(&ep, cfg).await.map_err(err)
}

fn uuid_of(row: &Row) -> Option<Uuid> {
    row.get("_uuid").and_then(|d| d.uuids().into_iter().next())
}

/// Pure: the ops that create Port + Interface `name` with `ids` on the bridge `bridge`,
/// guarded so they fail if a Port of that name appeared meanwhile.
pub fn plan_add_vif(bridge: &Uuid, name: &str, ids: &BTreeMap<String, String>) -> Vec<Value> {
    let mut port_ids = BTreeMap::new();
    for k in OWNER_KEYS {
        if let Some(c) = ids.get(k) {
            port_ids.insert(k.to_string(), c.clone());
        }
    }
    vec![
        ops::wait(
            "Port",
            vec![eq("name", json!(name))],
            &["name"],
            "==",
            vec![],
            Some(0),
        ),
        ops::insert(
            "Interface",
            ops::row([("name", json!(name)), ("external_ids", json_str_map(ids))]),
            Some("iface"),
        ),
        ops::insert(
            "Port",
            ops::row([
                ("name", json!(name)),
                ("interfaces", json_named_uuid("iface")),
                ("external_ids", json_str_map(&port_ids)),
            ]),
            Some("port"),
        ),
        ops::mutate(
            "Bridge",
            vec![eq("_uuid", bridge.to_json())],
            vec![ops::mutation("ports", "insert", json_named_uuid("port"))],
        ),
        ops::comment(&format!("weft-agent: plug {name}")),
    ]
}

/// Pure: the ops that detach Port `port` from every bridge (OVSDB then garbage-collects the
/// Port and its Interface).
pub fn plan_del_port(port: &Uuid, name: &str) -> Vec<Value> {
    vec![
        ops::mutate(
            "Bridge",
            vec![],
            vec![ops::mutation("ports", "delete", port.to_json())],
        ),
        ops::comment(&format!("weft-agent: unplug {name}")),
    ]
}

/// The rows of one `select` on `table` where `conditions` hold, with `columns`.
async fn select(
    client: &Client,
    table: &str,
    conditions: Vec<Value>,
    columns: &[&str],
) -> Result<Vec<Row>, PlugError> {
    let r = client
        .transact(DB, vec![ops::select(table, conditions, Some(columns))])
        .await
        .map_err(err)?;
    Ok(r.first()
        .map(selected_rows)
        .transpose()
        .map_err(err)?
        .unwrap_or_default())
}

/// Adds the VIF `name` to `bridge` with `ids` as the Interface's `external_ids`.
pub async fn add_vif(
    client: &Client,
    bridge: &str,
    name: &str,
    ids: &BTreeMap<String, String>,
) -> Result<(), PlugError> {
    let bridges = select(
        client,
        "Bridge",
        vec![eq("name", json!(bridge))],
        &["_uuid"],
    )
    .await?;
    let Some(b) = bridges.first().and_then(uuid_of) else {
        return Err(PlugError::Datapath(format!(
            "bridge {bridge:?} does not exist (is weft-agent running on this host?)"
        )));
    };
    client
        .transact(DB, plan_add_vif(&b, name, ids))
        .await
        .map_err(err)?;
    Ok(())
}

/// The `external_ids` of the Interface `name`, None when there is none.
pub async fn vif_ids(
    client: &Client,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, PlugError> {
    let rows = select(
        client,
        "Interface",
        vec![eq("name", json!(name))],
        &["external_ids"],
    )
    .await?;
    Ok(rows.first().map(|row| row.str_map_col("external_ids")))
}

/// The Interfaces whose `external_ids:iface-id` is `port`: (name, external_ids).
pub async fn vifs_with_iface_id(
    client: &Client,
    port: &str,
) -> Result<Vec<(String, BTreeMap<String, String>)>, PlugError> {
    let rows = select(
        client,
        "Interface",
        vec![json!([
            "external_ids",
            "includes",
            ["map", [["iface-id", port]]]
        ])],
        &["name", "external_ids"],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let name = row
                .get("name")
                .and_then(|d| d.strings().into_iter().next())
                .unwrap_or_default();
            (name, row.str_map_col("external_ids"))
        })
        .collect())
}

/// Every Interface marked by weft-cni ([`CNI_KEY`]): (name, external_ids).
pub async fn cni_vifs(
    client: &Client,
) -> Result<Vec<(String, BTreeMap<String, String>)>, PlugError> {
    marked_vifs(client, CNI_KEY).await
}

/// Every Interface whose `external_ids` has `key`: (name, external_ids).
pub async fn marked_vifs(
    client: &Client,
    key: &str,
) -> Result<Vec<(String, BTreeMap<String, String>)>, PlugError> {
    let rows = select(client, "Interface", vec![], &["name", "external_ids"]).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let ids = row.str_map_col("external_ids");
            ids.contains_key(key).then(|| {
                let name = row
                    .get("name")
                    .and_then(|d| d.strings().into_iter().next())
                    .unwrap_or_default();
                (name, ids)
            })
        })
        .collect())
}

/// Removes the Port `name` from its bridge, if it exists and is not the agent's own.
pub async fn del_vif(client: &Client, name: &str) -> Result<(), PlugError> {
    let rows = select(
        client,
        "Port",
        vec![eq("name", json!(name))],
        &["_uuid", "external_ids"],
    )
    .await?;
    for row in rows {
        if row.str_map_col("external_ids").contains_key(OWNER_KEY) {
            return Err(PlugError::Datapath(format!(
                "port {name:?} belongs to weft-agent, not to a container"
            )));
        }
        if let Some(u) = uuid_of(&row) {
            client
                .transact(DB, plan_del_port(&u, name))
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_plan_marks_rows() {
        let b = Uuid::parse("11111111-1111-1111-1111-111111111111").expect("u");
        let ids: BTreeMap<String, String> = [
            ("iface-id".to_string(), "lp1".to_string()),
            (CNI_KEY.to_string(), "cid".to_string()),
        ]
        .into();
        let p = plan_add_vif(&b, "weft0", &ids);
        assert_eq!(p[0]["op"], json!("wait"));
        assert_eq!(
            p[1]["row"]["external_ids"],
            json!(["map", [["iface-id", "lp1"], ["weft-cni", "cid"]]])
        );
        assert_eq!(
            p[2]["row"]["external_ids"],
            json!(["map", [["weft-cni", "cid"]]])
        );
        assert_eq!(
            p[3]["mutations"],
            json!([["ports", "insert", ["named-uuid", "port"]]])
        );
        let d = plan_del_port(&b, "weft0");
        assert_eq!(d[0]["where"], json!([]));
    }
}
