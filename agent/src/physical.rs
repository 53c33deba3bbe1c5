//! The physical layer: logical ports and datapaths ↔ ofports, tunnels and provider bridges.
//!
//! - **Local VIFs.** Stage output (table 70): `metadata=DP,reg15=PORT → output:OFPORT`
//!   ([`output_local`]).
//! - **Remote ports.** Stage dispatch (58): `metadata=DP,reg15=PORT → goto output`
//!   ([`dispatch_remote`]), skipping the egress stages, which run on the port's chassis.
//!   Output: `reg10=0/FROM_TUNNEL,metadata=DP,reg15=PORT → tun_id=VNI, tun_dst=IP,
//!   [Geneve option], output:TUNNEL` ([`output_remote`]). The `reg10` match is what keeps a
//!   packet that came in on a tunnel from ever leaving on one.
//! - **Tunnels on the wire.** `tun_id` carries the switch's VNI (the datapath key stays
//!   local to OpenFlow metadata). With **Geneve** one option, class [`GENEVE_CLASS`] 0x0102
//!   type [`GENEVE_TYPE`] 0x80, 4 bytes (as OVN), mapped to `tun_metadata0` by the TLV
//!   table ([`tlv_map`], installed by the agent on connect), carries
//!   `in-port key << 16 | out-port key` (in key: bits 16..30, out key: bits 0..15). The
//!   receiver ([`tunnel_ingress`]) copies both into reg14/reg15 and jumps straight to the
//!   egress stages (pre-ct-out) of the destination port; out key [`KEY_MULTICAST`] (flood
//!   and unknown unicast) re-runs L2 lookup with FROM_TUNNEL (local ports only). With
//!   **VXLAN and GRE** only the VNI travels: the receiver re-runs L2 lookup with FROM_TUNNEL,
//!   and the output stage never re-tunnels.
//! - **Provider bridges** (`--bridge-mappings physnet:br-ex`, OVN's `ovn-bridge-mappings`):
//!   a patch port pair per mapping, [`patch_port_names`], created in OVSDB by the agent;
//!   routers' gateway ports will use them (no flows yet).

use std::collections::BTreeMap;

use weft_openflow::codec::nxm::{nxm_nx_reg, nxm_nx_tun_metadata};
use weft_openflow::codec::TlvMap;
use weft_openflow::flow::{Action, Flow, Match, MatchField, SetField, SubField};

use crate::pipeline::classify::{set_datapath, PRIO_CLASSIFY};
use crate::pipeline::l2::{metadata, set_outport};
use crate::pipeline::{reg, Encap, Stage, TunnelTarget};
use crate::view::{Port, Switch};

/// Geneve option class and type of the port keys (OVN's).
pub const GENEVE_CLASS: u16 = 0x0102;
pub const GENEVE_TYPE: u8 = 0x80;
/// Option length in bytes.
pub const GENEVE_LEN: u8 = 4;
/// `tun_metadata<index>` the option is mapped to.
pub const TUN_METADATA_INDEX: u8 = 0;
/// Out-port key meaning "flood to your local ports" (port keys are at most 32767).
pub const KEY_MULTICAST: u32 = 0x8000;

/// Priorities.
pub const PRIO_DISPATCH: u16 = 50;
pub const PRIO_OUTPUT: u16 = 100;
/// Geneve ingress with out key KEY_MULTICAST (above [`PRIO_CLASSIFY`]).
pub const PRIO_TUNNEL_MULTICAST: u16 = 110;

/// The TLV-table entry of the Geneve port-key option.
pub fn tlv_map() -> TlvMap {
    TlvMap {
        option_class: GENEVE_CLASS,
        option_type: GENEVE_TYPE,
        option_len: GENEVE_LEN,
        index: u16::from(TUN_METADATA_INDEX),
    }
}

fn option_bits(start: u16, end: u16) -> SubField {
    SubField::bits(nxm_nx_tun_metadata(TUN_METADATA_INDEX), start, end)
}

/// The option bits of the input port key (16..30) and the output port key (0..15).
pub fn option_inport() -> SubField {
    option_bits(16, 30)
}
pub fn option_outport() -> SubField {
    option_bits(0, 15)
}

fn outport_match(sw: &Switch, key: u32) -> [MatchField; 2] {
    [
        metadata(sw),
        MatchField::Reg {
            index: reg::OUTPORT,
            value: key,
            mask: None,
        },
    ]
}

/// Tunnel header actions for a packet of `sw` to `t` (reg14/reg15 already set), then out.
pub fn encap_actions(sw: &Switch, t: &TunnelTarget) -> Vec<Action> {
    let mut a = vec![
        Action::SetField(SetField::TunId(u64::from(sw.vni))),
        Action::SetField(SetField::TunDst(t.remote_ip)),
    ];
    if t.encap == Encap::Geneve {
        a.push(Action::MoveBits {
            src: SubField::bits(nxm_nx_reg(reg::INPORT), 0, 14),
            dst: option_inport(),
        });
        a.push(Action::MoveBits {
            src: SubField::bits(nxm_nx_reg(reg::OUTPORT), 0, 15),
            dst: option_outport(),
        });
    }
    a.push(Action::Output(t.ofport));
    a
}

/// One flood-group bucket towards a remote chassis: out key [`KEY_MULTICAST`], tunnel.
pub fn flood_bucket(sw: &Switch, t: &TunnelTarget) -> Vec<Action> {
    let mut a = vec![set_outport(KEY_MULTICAST)];
    a.extend(encap_actions(sw, t));
    a
}

/// Dispatch: a remote port's packets skip the local egress stages.
pub fn dispatch_remote(sw: &Switch, port: &Port, cookie: u64) -> Flow {
    Flow {
        table: Stage::Dispatch.table(),
        priority: PRIO_DISPATCH,
        cookie,
        matches: Match::from_fields(outport_match(sw, port.key)),
        actions: vec![Stage::Output.goto()],
    }
}

/// Output to a local VIF.
pub fn output_local(sw: &Switch, port: &Port, ofport: u32, cookie: u64) -> Flow {
    Flow {
        table: Stage::Output.table(),
        priority: PRIO_OUTPUT,
        cookie,
        matches: Match::from_fields(outport_match(sw, port.key)),
        actions: vec![Action::Output(ofport)],
    }
}

/// Output to a remote port: tunnel, unless the packet came from a tunnel.
pub fn output_remote(sw: &Switch, port: &Port, t: &TunnelTarget, cookie: u64) -> Flow {
    let not_from_tunnel = MatchField::Reg {
        index: reg::FLAGS,
        value: 0,
        mask: Some(reg::FLAG_FROM_TUNNEL),
    };
    Flow {
        table: Stage::Output.table(),
        priority: PRIO_OUTPUT,
        cookie,
        matches: Match::from_fields(outport_match(sw, port.key)).with(not_from_tunnel),
        actions: encap_actions(sw, t),
    }
}

fn set_from_tunnel() -> Action {
    Action::SetField(SetField::Reg {
        index: reg::FLAGS,
        value: reg::FLAG_FROM_TUNNEL,
    })
}

/// Tunnel ingress (table classify) of one switch, one or two flows per tunnel port:
/// - VXLAN/GRE: `in_port=TUN,tun_id=VNI → metadata=DP, FROM_TUNNEL, goto l2-lookup`;
/// - Geneve: `in_port=TUN,tun_id=VNI → metadata=DP, FROM_TUNNEL, reg14 ← option[16..30],
///   reg15 ← option[0..15], goto pre-ct-out`, and above it, for out key 0x8000
///   (`tun_metadata0=0x8000/0x8000`): the same with reg14 only, `goto l2-lookup`.
pub fn tunnel_ingress(sw: &Switch, tunnels: &BTreeMap<Encap, u32>, cookie: u64) -> Vec<Flow> {
    let mut out = Vec::new();
    for (encap, ofport) in tunnels {
        let m = Match::from_fields([
            MatchField::InPort(*ofport),
            MatchField::TunId {
                value: u64::from(sw.vni),
                mask: None,
            },
        ]);
        let base = vec![set_datapath(sw), set_from_tunnel()];
        if *encap != Encap::Geneve {
            let mut actions = base;
            actions.push(Stage::L2Lookup.goto());
            out.push(Flow {
                table: Stage::Classify.table(),
                priority: PRIO_CLASSIFY,
                cookie,
                matches: m,
                actions,
            });
            continue;
        }
        let inport = Action::MoveBits {
            src: option_inport(),
            dst: SubField::bits(nxm_nx_reg(reg::INPORT), 0, 14),
        };
        let outport = Action::MoveBits {
            src: option_outport(),
            dst: SubField::bits(nxm_nx_reg(reg::OUTPORT), 0, 15),
        };
        let mut mc = base.clone();
        mc.extend([inport.clone(), Stage::L2Lookup.goto()]);
        out.push(Flow {
            table: Stage::Classify.table(),
            priority: PRIO_TUNNEL_MULTICAST,
            cookie,
            matches: m.clone().with(MatchField::TunMetadata {
                index: TUN_METADATA_INDEX,
                value: KEY_MULTICAST.to_be_bytes().to_vec(),
                mask: Some(KEY_MULTICAST.to_be_bytes().to_vec()),
            }),
            actions: mc,
        });
        let mut uc = base;
        uc.extend([inport, outport, Stage::PreCtOut.goto()]);
        out.push(Flow {
            table: Stage::Classify.table(),
            priority: PRIO_CLASSIFY,
            cookie,
            matches: m,
            actions: uc,
        });
    }
    out
}

/// A `physnet:bridge` entry of `--bridge-mappings`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeMapping {
    pub physnet: String,
    pub bridge: String,
}

/// The patch port pair between the integration bridge and a provider bridge:
/// (`patch-<int>-to-<ext>` on the integration bridge, `patch-<ext>-to-<int>` on the other).
pub fn patch_port_names(integration: &str, provider: &str) -> (String, String) {
    (
        format!("patch-{integration}-to-{provider}"),
        format!("patch-{provider}-to-{integration}"),
    )
}

/// Parses `physnet:bridge[,physnet:bridge...]`.
pub fn parse_bridge_mappings(items: &[String]) -> Result<Vec<BridgeMapping>, String> {
    let mut out: Vec<BridgeMapping> = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (physnet, bridge) = item
            .split_once(':')
            .ok_or_else(|| format!("{item:?}: expected PHYSNET:BRIDGE"))?;
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        if !ok(physnet) || !ok(bridge) {
            return Err(format!(
                "{item:?}: names are 1-63 characters of [A-Za-z0-9_.-]"
            ));
        }
        if out
            .iter()
            .any(|m| m.physnet == physnet || m.bridge == bridge)
        {
            return Err(format!("{item:?}: physnet or bridge mapped twice"));
        }
        out.push(BridgeMapping {
            physnet: physnet.to_string(),
            bridge: bridge.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_mappings_parse() {
        let m = parse_bridge_mappings(&["physnet:br-ex".into(), " ext2:br-ex2 ".into()]).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].bridge, "br-ex");
        assert!(parse_bridge_mappings(&["nocolon".into()]).is_err());
        assert!(parse_bridge_mappings(&["a:br".into(), "a:br2".into()]).is_err());
        assert_eq!(
            patch_port_names("br-int", "br-ex"),
            (
                "patch-br-int-to-br-ex".into(),
                "patch-br-ex-to-br-int".into()
            )
        );
    }
}
