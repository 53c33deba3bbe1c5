//! The OVSDB side of the management port: Port + Interface `NAME` (type `internal`) on the
//! integration bridge, `external_ids:iface-id` = the logical port, `mac` = its MAC, marked
//! `weft-owner=weft-agent`. Idempotent: an existing port is reused and only its wrong
//! columns are corrected; a port of that name that the agent does not own is left alone
//! (an error).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use weft_ovsdb::atom::{json_named_uuid, json_str_map};
use weft_ovsdb::ops::{self, eq, selected_rows};
use weft_ovsdb::vswitch::{DB, OWNER_KEY, OWNER_VALUE};
use weft_ovsdb::{Client, ClientConfig, Endpoint, Row, RowExt, Uuid};

use super::MgmtError;

fn err(e: impl std::fmt::Display) -> MgmtError {
    MgmtError::Ovsdb(e.to_string())
}

fn uuid_of(row: &Row) -> Option<Uuid> {
    row.get("_uuid").and_then(|d| d.uuids().into_iter().next())
}

/// The `external_ids` the management Interface carries.
pub fn iface_ids(lport: &str) -> BTreeMap<String, String> {
    [
        ("iface-id".to_string(), lport.to_string()),
        (OWNER_KEY.to_string(), OWNER_VALUE.to_string()),
        ("weft-mgmt".to_string(), "true".to_string()),
    ]
    .into()
}

/// Pure: the ops that bring the management port to (`name`, `lport`, `mac`) given the
/// bridge's uuid and the current Port and Interface rows of that name (empty = up to date).
pub fn plan_port(
    bridge: &Uuid,
    name: &str,
    lport: &str,
    mac: &str,
    port: Option<&Row>,
    iface: Option<&Row>,
) -> Result<Vec<Value>, MgmtError> {
    let ids = iface_ids(lport);
    let Some(port) = port else {
        return Ok(vec![
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
                ops::row([
                    ("name", json!(name)),
                    ("type", json!("internal")),
                    ("mac", json!(mac)),
                    ("external_ids", json_str_map(&ids)),
                ]),
                Some("iface"),
            ),
            ops::insert(
                "Port",
                ops::row([
                    ("name", json!(name)),
                    ("interfaces", json_named_uuid("iface")),
                    (
                        "external_ids",
                        json_str_map(&[(OWNER_KEY.to_string(), OWNER_VALUE.to_string())].into()),
                    ),
                ]),
                Some("port"),
            ),
            ops::mutate(
                "Bridge",
                vec![eq("_uuid", bridge.to_json())],
                vec![ops::mutation("ports", "insert", json_named_uuid("port"))],
            ),
            ops::comment(&format!("weft-agent: management port {name}")),
        ]);
    };
    if port
        .str_map_col("external_ids")
        .get(OWNER_KEY)
        .map(String::as_str)
        != Some(OWNER_VALUE)
    {
        return Err(MgmtError::Ovsdb(format!(
            "port {name:?} exists and is not weft-agent's (no external_ids:{OWNER_KEY}); \
             pick another --mgmt-interface or remove it"
        )));
    }
    let Some(iface) = iface else {
        return Err(MgmtError::Ovsdb(format!(
            "port {name:?} has no interface {name:?}"
        )));
    };
    let mut set = Map::new();
    if iface.str_col("type") != Some("internal") {
        set.insert("type".into(), json!("internal"));
    }
    let have_mac = iface
        .get("mac")
        .and_then(|d| d.strings().into_iter().next());
    if have_mac.as_deref() != Some(mac) {
        set.insert("mac".into(), json!(mac));
    }
    let mut have_ids = iface.str_map_col("external_ids");
    let before = have_ids.clone();
    have_ids.extend(ids);
    if have_ids != before {
        set.insert("external_ids".into(), json_str_map(&have_ids));
    }
    if set.is_empty() {
        return Ok(Vec::new());
    }
    let uuid = uuid_of(iface).ok_or_else(|| err("interface without _uuid"))?;
    Ok(vec![
        ops::update("Interface", vec![eq("_uuid", uuid.to_json())], set),
        ops::comment(&format!("weft-agent: management port {name}")),
    ])
}

async fn connect(target: &str) -> Result<Client, MgmtError> {
    let ep: Endpoint = target.parse().map_err(err)?;
    let cfg = ClientConfig {
        request_timeout: Some(Duration::from_secs(10)),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    Client::connect(&ep, cfg).await.map_err(err)
}

/// Ensures the management port on `bridge` (see the module docs); true when it changed.
pub async fn ensure_port(
    ovsdb: &str,
    bridge: &str,
    name: &str,
    lport: &str,
    mac: &str,
) -> Result<bool, MgmtError> {
    let client = connect(ovsdb).await?;
    let r = async {
        let reads = client
            .transact(
                DB,
                vec![
                    ops::select("Bridge", vec![eq("name", json!(bridge))], Some(&["_uuid"])),
                    ops::select(
                        "Port",
                        vec![eq("name", json!(name))],
                        Some(&["_uuid", "external_ids"]),
                    ),
                    ops::select(
                        "Interface",
                        vec![eq("name", json!(name))],
                        Some(&["_uuid", "type", "mac", "external_ids"]),
                    ),
                ],
            )
            .await
            .map_err(err)?;
        let rows = |i: usize| -> Result<Vec<Row>, MgmtError> {
            Ok(reads
                .get(i)
                .map(selected_rows)
                .transpose()
                .map_err(err)?
                .unwrap_or_default())
        };
        let bridges = rows(0)?;
        let b = bridges
            .first()
            .and_then(uuid_of)
            .ok_or_else(|| MgmtError::Ovsdb(format!("bridge {bridge:?} does not exist yet")))?;
        let ports = rows(1)?;
        let ifaces = rows(2)?;
        let ops = plan_port(&b, name, lport, mac, ports.first(), ifaces.first())?;
        if ops.is_empty() {
            return Ok(false);
        }
        client.transact(DB, ops).await.map_err(err)?;
        Ok(true)
    }
    .await;
    client.close();
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(v: Value) -> Row {
        weft_ovsdb::atom::row_from_json(&v).unwrap()
    }

    const U: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn a_missing_port_is_created_internal_with_its_iface_id_and_mac() {
        let b = Uuid::parse(U).unwrap();
        let ops = plan_port(&b, "weft-mp0", "mgmt-h1", "0a:00:00:00:00:07", None, None).unwrap();
        assert_eq!(ops[1]["row"]["type"], json!("internal"));
        assert_eq!(ops[1]["row"]["mac"], json!("0a:00:00:00:00:07"));
        assert_eq!(
            ops[1]["row"]["external_ids"],
            json!([
                "map",
                [
                    ["iface-id", "mgmt-h1"],
                    ["weft-mgmt", "true"],
                    ["weft-owner", "weft-agent"]
                ]
            ])
        );
    }

    #[test]
    fn an_existing_port_is_reused_and_only_corrected() {
        let b = Uuid::parse(U).unwrap();
        let port = row(
            json!({"_uuid": ["uuid", U], "external_ids": ["map", [["weft-owner", "weft-agent"]]]}),
        );
        let good = row(
            json!({"_uuid": ["uuid", U], "type": "internal", "mac": "0a:00:00:00:00:07",
            "external_ids": ["map", [["iface-id", "mgmt-h1"], ["weft-mgmt", "true"], ["weft-owner", "weft-agent"]]]}),
        );
        let ops = plan_port(
            &b,
            "weft-mp0",
            "mgmt-h1",
            "0a:00:00:00:00:07",
            Some(&port),
            Some(&good),
        )
        .unwrap();
        assert!(ops.is_empty(), "{ops:?}");
        let ops = plan_port(
            &b,
            "weft-mp0",
            "mgmt-h1",
            "0a:00:00:00:00:08",
            Some(&port),
            Some(&good),
        )
        .unwrap();
        assert_eq!(ops[0]["op"], json!("update"));
        assert_eq!(ops[0]["row"], json!({"mac": "0a:00:00:00:00:08"}));
        // Somebody else's port of that name is not taken over.
        let foreign = row(json!({"_uuid": ["uuid", U], "external_ids": ["map", []]}));
        let e = plan_port(&b, "weft-mp0", "mgmt-h1", "m", Some(&foreign), Some(&good)).unwrap_err();
        assert!(e.to_string().contains("not weft-agent's"), "{e}");
    }
}
