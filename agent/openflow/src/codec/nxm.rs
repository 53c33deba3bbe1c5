//! NXM/OXM field headers by name, for the actions that name fields by header rather than by
//! value: `learn` specs and the `ct` zone source ([`crate::flow::SubField`]). The table
//! gives each header the name `ovs-ofctl` prints inside `FIELD[a..b]` (the NXM name where
//! one exists, as OVS's `mf_format_subfield` does), its `ovs-ofctl` field name for
//! `learn`'s whole-field immediates (`eth_type=0x800`), and how that immediate is printed.

use crate::flow::SubField;

/// Builds an NXM/OXM header (no mask).
pub const fn header(class: u16, field: u8, len: u8) -> u32 {
    ((class as u32) << 16) | ((field as u32) << 9) | len as u32
}

pub const NXM_OF_IN_PORT: u32 = header(0, 0, 2);
pub const NXM_OF_ETH_DST: u32 = header(0, 1, 6);
pub const NXM_OF_ETH_SRC: u32 = header(0, 2, 6);
pub const NXM_OF_ETH_TYPE: u32 = header(0, 3, 2);
pub const NXM_OF_VLAN_TCI: u32 = header(0, 4, 2);
pub const NXM_OF_IP_PROTO: u32 = header(0, 6, 1);
pub const NXM_OF_IP_SRC: u32 = header(0, 7, 4);
pub const NXM_OF_IP_DST: u32 = header(0, 8, 4);
pub const NXM_OF_TCP_SRC: u32 = header(0, 9, 2);
pub const NXM_OF_TCP_DST: u32 = header(0, 10, 2);
pub const NXM_OF_UDP_SRC: u32 = header(0, 11, 2);
pub const NXM_OF_UDP_DST: u32 = header(0, 12, 2);
pub const NXM_OF_ARP_OP: u32 = header(0, 15, 2);
pub const NXM_OF_ARP_SPA: u32 = header(0, 16, 4);
pub const NXM_OF_ARP_TPA: u32 = header(0, 17, 4);
/// `NXM_NX_REGn` for n in 0..16.
pub const fn nxm_nx_reg(n: u8) -> u32 {
    header(1, n, 4)
}
pub const NXM_NX_TUN_ID: u32 = header(1, 16, 8);
pub const NXM_NX_ARP_SHA: u32 = header(1, 17, 6);
pub const NXM_NX_ARP_THA: u32 = header(1, 18, 6);
pub const NXM_NX_IPV6_SRC: u32 = header(1, 19, 16);
pub const NXM_NX_IPV6_DST: u32 = header(1, 20, 16);
pub const NXM_NX_ND_TARGET: u32 = header(1, 23, 16);
pub const NXM_NX_ND_SLL: u32 = header(1, 24, 6);
pub const NXM_NX_ND_TLL: u32 = header(1, 25, 6);
pub const NXM_NX_TUN_IPV4_SRC: u32 = header(1, 31, 4);
pub const NXM_NX_TUN_IPV4_DST: u32 = header(1, 32, 4);
pub const NXM_NX_CT_STATE: u32 = header(1, 105, 4);
pub const NXM_NX_CT_ZONE: u32 = header(1, 106, 2);
pub const NXM_NX_CT_MARK: u32 = header(1, 107, 4);
pub const NXM_NX_CT_LABEL: u32 = header(1, 108, 16);
/// `NXM_NX_XXREGn` (128-bit, n in 0..4).
pub const fn nxm_nx_xxreg(n: u8) -> u32 {
    header(1, 111 + n, 16)
}
/// `NXM_NX_TUN_METADATAn` (n in 0..64) as actions name it: the field's full 124-byte width.
pub const fn nxm_nx_tun_metadata(n: u8) -> u32 {
    header(1, 40 + n, 124)
}
/// The header as Weft models it: a `tun_metadata` header of any length becomes the
/// 124-byte form of [`nxm_nx_tun_metadata`] (what OVS prints); others are unchanged.
pub const fn canonical_header(h: u32) -> u32 {
    let class = (h >> 16) as u16;
    let field = ((h >> 9) & 0x7f) as u8;
    if class == 1 && field >= 40 && field < 104 && (h & 0x100) == 0 {
        nxm_nx_tun_metadata(field - 40)
    } else {
        h
    }
}
pub const OXM_OF_METADATA: u32 = header(0x8000, 2, 8);
pub const OXM_OF_IN_PORT: u32 = header(0x8000, 0, 4);

/// How `ovs-ofctl` prints a field's value (OVS's `enum mf_string`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFormat {
    Decimal,
    Hex,
    Ethernet,
    Ipv4,
    Ipv6,
    /// An OpenFlow port number (reserved ports by name).
    Port,
}

/// NXM name, `ovs-ofctl` field name and value format of a header Weft knows.
pub fn field_info(h: u32) -> Option<(String, &'static str, ValueFormat)> {
    use ValueFormat::*;
    let fixed = |n: &str, f: &'static str, v: ValueFormat| Some((n.to_string(), f, v));
    match h {
        NXM_OF_IN_PORT => fixed("NXM_OF_IN_PORT", "in_port", Port),
        NXM_OF_ETH_DST => fixed("NXM_OF_ETH_DST", "eth_dst", Ethernet),
        NXM_OF_ETH_SRC => fixed("NXM_OF_ETH_SRC", "eth_src", Ethernet),
        NXM_OF_ETH_TYPE => fixed("NXM_OF_ETH_TYPE", "eth_type", Hex),
        NXM_OF_VLAN_TCI => fixed("NXM_OF_VLAN_TCI", "vlan_tci", Hex),
        NXM_OF_IP_PROTO => fixed("NXM_OF_IP_PROTO", "nw_proto", Decimal),
        NXM_OF_IP_SRC => fixed("NXM_OF_IP_SRC", "ip_src", Ipv4),
        NXM_OF_IP_DST => fixed("NXM_OF_IP_DST", "ip_dst", Ipv4),
        NXM_OF_TCP_SRC => fixed("NXM_OF_TCP_SRC", "tcp_src", Decimal),
        NXM_OF_TCP_DST => fixed("NXM_OF_TCP_DST", "tcp_dst", Decimal),
        NXM_OF_UDP_SRC => fixed("NXM_OF_UDP_SRC", "udp_src", Decimal),
        NXM_OF_UDP_DST => fixed("NXM_OF_UDP_DST", "udp_dst", Decimal),
        NXM_OF_ARP_OP => fixed("NXM_OF_ARP_OP", "arp_op", Decimal),
        NXM_OF_ARP_SPA => fixed("NXM_OF_ARP_SPA", "arp_spa", Ipv4),
        NXM_OF_ARP_TPA => fixed("NXM_OF_ARP_TPA", "arp_tpa", Ipv4),
        NXM_NX_TUN_ID => fixed("NXM_NX_TUN_ID", "tun_id", Hex),
        NXM_NX_ARP_SHA => fixed("NXM_NX_ARP_SHA", "arp_sha", Ethernet),
        NXM_NX_ARP_THA => fixed("NXM_NX_ARP_THA", "arp_tha", Ethernet),
        NXM_NX_IPV6_SRC => fixed("NXM_NX_IPV6_SRC", "ipv6_src", Ipv6),
        NXM_NX_IPV6_DST => fixed("NXM_NX_IPV6_DST", "ipv6_dst", Ipv6),
        NXM_NX_ND_TARGET => fixed("NXM_NX_ND_TARGET", "nd_target", Ipv6),
        NXM_NX_ND_SLL => fixed("NXM_NX_ND_SLL", "nd_sll", Ethernet),
        NXM_NX_ND_TLL => fixed("NXM_NX_ND_TLL", "nd_tll", Ethernet),
        NXM_NX_TUN_IPV4_SRC => fixed("NXM_NX_TUN_IPV4_SRC", "tun_src", Ipv4),
        NXM_NX_TUN_IPV4_DST => fixed("NXM_NX_TUN_IPV4_DST", "tun_dst", Ipv4),
        NXM_NX_CT_STATE => fixed("NXM_NX_CT_STATE", "ct_state", Hex),
        NXM_NX_CT_ZONE => fixed("NXM_NX_CT_ZONE", "ct_zone", Hex),
        NXM_NX_CT_MARK => fixed("NXM_NX_CT_MARK", "ct_mark", Hex),
        NXM_NX_CT_LABEL => fixed("NXM_NX_CT_LABEL", "ct_label", Hex),
        OXM_OF_METADATA => fixed("OXM_OF_METADATA", "metadata", Hex),
        OXM_OF_IN_PORT => fixed("OXM_OF_IN_PORT", "in_port_oxm", Port),
        _ => {
            let class = (h >> 16) as u16;
            let field = ((h >> 9) & 0x7f) as u8;
            let len = (h & 0xff) as u8;
            match (class, field, len) {
                (1, n, 4) if n < 16 => Some((format!("NXM_NX_REG{n}"), "", Hex)),
                (1, n, 124) if (40..104).contains(&n) => {
                    Some((format!("NXM_NX_TUN_METADATA{}", n - 40), "", Hex))
                }
                (1, n, 16) if (111..115).contains(&n) => {
                    Some((format!("NXM_NX_XXREG{}", n - 111), "", Hex))
                }
                _ => None,
            }
        }
    }
}

/// The name printed for a header (`NXM_NX_REG13`), or `0xHHHHHHHH` for an unknown one.
pub fn header_name(h: u32) -> String {
    match field_info(h) {
        Some((n, _, _)) => n,
        None => format!("{h:#010x}"),
    }
}

/// Renders a subfield as `ovs-ofctl` does: `NAME[]`, `NAME[bit]` or `NAME[a..b]`.
pub fn format_subfield(sf: &SubField) -> String {
    let name = header_name(sf.header);
    if sf.ofs == 0 && sf.n_bits == sf.field_bits() {
        format!("{name}[]")
    } else if sf.n_bits == 1 {
        format!("{name}[{}]", sf.ofs)
    } else {
        format!(
            "{name}[{}..{}]",
            sf.ofs,
            u32::from(sf.ofs) + u32::from(sf.n_bits) - 1
        )
    }
}

/// `ofs_nbits` as NXM actions encode a subfield range.
pub fn encode_ofs_nbits(ofs: u16, n_bits: u16) -> u16 {
    (ofs << 6) | (n_bits.saturating_sub(1) & 0x3f)
}

/// The inverse of [`encode_ofs_nbits`]: `(ofs, n_bits)`.
pub fn decode_ofs_nbits(v: u16) -> (u16, u16) {
    (v >> 6, (v & 0x3f) + 1)
}
