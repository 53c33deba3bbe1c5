//! `Address_Set`: a named set of IPv4/IPv6 addresses and prefixes (OVN's), referred to by
//! ACL matches as `$NAME`. Kept in the state's generic object map: no index needs it yet.

use ipnetwork::IpNetwork;
use prost::Message;
use weft_proto::v1::{object, AddressSet, ColumnType, Object};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan};
use crate::state::ClusterState;
use crate::validate::{validate_name, ValidationError};

/// The kind.
pub struct AddressSetKind;

/// Kind name.
pub const NAME: &str = "Address_Set";

/// Largest number of addresses in one set.
pub const MAX_ADDRESSES: usize = 16384;

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::rw("addresses", ColumnType::Set),
    EXTERNAL_IDS,
];

super::object_accessors!(AddressSet, AddressSet, aset, aset_mut);

/// Validates and normalizes the addresses (canonical text, duplicates dropped).
fn check(a: &mut AddressSet) -> Result<(), ValidationError> {
    validate_name("address_set.name", &a.name)?;
    if weft_proto::model::acl::implied_port_group(&a.name).is_some() {
        return Err(ValidationError::new(
            "address_set.name",
            &a.name,
            "names ending in _ip4 or _ip6 are the address sets port groups imply",
        ));
    }
    if a.addresses.len() > MAX_ADDRESSES {
        return Err(ValidationError::new(
            "address_set.addresses",
            &format!("{} entries", a.addresses.len()),
            format!("too many entries (at most {MAX_ADDRESSES})"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(a.addresses.len());
    for (i, s) in a.addresses.iter().enumerate() {
        let net: IpNetwork = s.trim().parse().map_err(|_| {
            ValidationError::new(
                format!("address_set.addresses[{i}]"),
                s,
                "expected an IPv4 or IPv6 address or prefix (10.0.0.5, 10.0.0.0/24, fd00::/64)",
            )
        })?;
        let text = if net.prefix() == if net.is_ipv4() { 32 } else { 128 } {
            net.ip().to_string()
        } else {
            format!("{}/{}", net.network(), net.prefix())
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    a.addresses = out;
    check_map("address_set.external_ids", &a.external_ids)
}

impl Kind for AddressSetKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["address set", "as"]
    }
    fn prefix(&self) -> &'static str {
        "nb/address_sets/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        aset(obj).map(|a| a.encode_to_vec()).unwrap_or_default()
    }
    super::generic_methods!(AddressSet, AddressSet, aset);
    fn get_column(&self, obj: &Object, column: &str, _state: &ClusterState) -> Option<ColumnValue> {
        let a = aset(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&a.name),
            "addresses" => ColumnValue::set(&a.addresses),
            "external_ids" => ColumnValue::map(&a.external_ids),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(a) = aset_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "addresses" => a.addresses = v.into_set(column)?,
            "external_ids" => set_map(&mut a.external_ids, column, v)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn insert(&self, obj: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(aset_mut(obj).ok_or_else(|| ApiError::Internal("not an address set".into()))?)?;
        Ok(())
    }
    fn update(&self, _old: &Object, new: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(aset_mut(new).ok_or_else(|| ApiError::Internal("not an address set".into()))?)?;
        Ok(())
    }
    fn delete(&self, _obj: &Object, _plan: &mut Plan) -> ApiResult<()> {
        Ok(())
    }
}
