//! ACL stages (OVN's semantics), pure: conntrack for stateful switches and each ACL's flows.
//!
//! A switch is *stateful* when an ACL other than `allow-stateless` applies to one of its
//! ports (on the switch, or on a port group with a port on it). On a stateful switch
//! ([`switch_flows`], owner: the switch):
//! - 26 ct-in: `metadata=DP, ip|ipv6` → `ct(table=27, zone=reg13)`: the input port's zone,
//!   loaded at classify (1 recirculation); IPv6 neighbour discovery and MLD ([`ND_TYPES`])
//!   skip conntrack (priority 110) and the ACLs (65535), as in OVN;
//! - 30 acl-in and 62 acl-out, priority 65535: `ct_state=+inv+trk` → drop;
//!   `+est+rpl+trk` (replies of committed connections) and `-new+rel+trk` (related, e.g.
//!   ICMP errors) → skip the ACLs (`reg8[1]=1`: no commit) to the stage after acl-*-act;
//! - 38 commit-in / 66 commit-out, priority 100: `ip|ipv6, reg8[1]=0` →
//!   `ct(commit, zone=reg13)` (no `table=`: no recirculation), so every allowed IP packet's
//!   connection is tracked and its replies pass;
//! - 61 ct-out: `metadata=DP, ip|ipv6` → `ct(table=62, zone=reg13)` where 60 pre-ct-out
//!   ([`port_flows`], owner: each local port of a stateful switch) loaded the *output*
//!   port's zone into reg13 and cleared reg8: to-lport ACLs run on the destination chassis,
//!   in the destination port's zone, also for traffic that came over a tunnel (Geneve
//!   enters at 60 with reg15 set, VXLAN re-runs l2-lookup and dispatch).
//!
//! Each ACL ([`acl_flows`], owner: the ACL, cookie kind 0x06 = `weft_proto::model::acl::COOKIE_KIND`)
//! is flows in acl-in (from-lport) or acl-out (to-lport) at priority 1000 + its priority,
//! matching `metadata=DP` (a switch's ACL) or its group's ports (`reg14`/`reg15`), and its
//! match ([`super::acl_match`]): `allow`/`allow-related` → next (committed on a stateful
//! switch), `allow-stateless` → `reg8[1]=1`, next (not committed), `drop` → drop, `reject`
//! → `controller(userdata=OP_ACL_REJECT ..., meter)` (pinctrl answers with a TCP RST or an
//! ICMP unreachable). `--log` adds `controller(userdata=OP_ACL_LOG ..., meter)` first: the
//! copy goes to the agent through its meter, the packet continues at once.
//!
//! Established connections and a new `drop` ACL: the ACLs see every packet but replies and
//! related ones, so a new drop ACL stops the original direction of established connections
//! at once (replies still pass until conntrack forgets the connection); nothing is marked in
//! `ct_mark`. A new allow admits new connections; existing ones are unaffected.

use weft_openflow::codec::nxm::{nxm_nx_reg, NXM_NX_CT_LABEL};
use weft_openflow::flow::{
    Action, Controller, Ct, CtZone, Flow, Match, MatchField, Nat, SetField, SubField,
};
use weft_openflow::meter::{BandType, Meter, MeterBand};
use weft_proto::model::acl::{Direction, Entity, Verdict, COOKIE_KIND};
use weft_proto::model::meter::MeterUnit;

use super::acl_match::{self, Lowered};
use super::{punt, reg, CompileInput, Stage};
use crate::view::{Port, Switch};
use crate::view_acl::Acl;

/// Register of the ACL bits (OVN-reserved reg8 in the table map).
pub const REG_ACL: u8 = 8;
/// In [`REG_ACL`]: do not commit (replies, related, allow-stateless).
pub const BIT_NO_COMMIT: u32 = 0x2;
/// In [`REG_ACL`]: the allowing ACL has a `--label`, loaded into [`REG_LABEL`]; the commit
/// stage writes it to the connection's `ct_label.label` (OVN's `ct_label[96..127]`).
pub const BIT_LABEL: u32 = 0x4;
/// Register of an allowing ACL's label (OVN's reg3).
pub const REG_LABEL: u8 = 3;
/// The label's bits in `ct_label` (OVN's `ct_label.label`).
pub const CT_LABEL_OFS: u16 = 96;
/// ACL priorities are offset by this (OVN's), below the conntrack rules.
pub const PRIO_ACL_BASE: u16 = 1000;
/// The conntrack rules of acl-in/acl-out.
pub const PRIO_CT: u16 = 65535;
/// ct-in, ct-out, commit and pre-ct-out flows.
pub const PRIO_STAGE: u16 = 100;
/// Neighbour discovery and MLD bypass conntrack (above [`PRIO_STAGE`]).
pub const PRIO_ND: u16 = 110;
/// ICMPv6 types never tracked nor filtered, as in OVN: MLD query/report/done (130-132),
/// RS, RA, NS, NA (133-136), MLDv2 report (143).
pub const ND_TYPES: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];
/// Largest number of flows one ACL may compile to here (the controller refuses larger ones
/// at write time with `--acl-max-flows`; this bounds what a changed set may grow it to).
pub const MAX_FLOWS: usize = 100_000;

const ETH_IP: u16 = 0x0800;
const ETH_IP6: u16 = 0x86dd;
const NXM_NX_REG13: u32 = 0x0001_1a04;

fn zone_field() -> CtZone {
    CtZone::Field(SubField::bits(NXM_NX_REG13, 0, 15))
}

fn md(sw: &Switch) -> MatchField {
    MatchField::Metadata {
        value: u64::from(sw.key),
        mask: None,
    }
}

fn no_commit() -> Action {
    Action::SetField(SetField::RegMasked {
        index: REG_ACL,
        value: BIT_NO_COMMIT,
        mask: BIT_NO_COMMIT,
    })
}

fn flow(
    stage: Stage,
    priority: u16,
    cookie: u64,
    fields: Vec<MatchField>,
    actions: Vec<Action>,
) -> Flow {
    Flow {
        table: stage.table(),
        priority,
        cookie,
        matches: Match::from_fields(fields),
        actions,
    }
}

fn ct_state(value: u8, mask: u8) -> MatchField {
    MatchField::CtState {
        value,
        mask: Some(mask),
    }
}

/// The conntrack flows of a stateful switch (none otherwise).
pub fn switch_flows(input: &CompileInput, sw: &Switch, cookie: u64) -> Vec<Flow> {
    use weft_openflow::flow::ct_state as cs;
    if !input.view.is_stateful(&sw.name) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for eth in [ETH_IP, ETH_IP6] {
        let ip = || vec![md(sw), MatchField::EthType(eth)];
        for (stage, next) in [
            (Stage::CtIn, Stage::CtStateIn),
            (Stage::CtOut, Stage::AclOut),
        ] {
            out.push(flow(
                stage,
                PRIO_STAGE,
                cookie,
                ip(),
                // `nat`: a connection a load balancer DNATed ([`super::lb`]) gets its
                // translation here, so lb-vip and lb-out (which look up only untracked
                // packets) add no recirculation on stateful switches.
                vec![Action::Ct(Ct {
                    table: Some(next.table()),
                    zone: zone_field(),
                    nat: Some(Nat::default()),
                    ..Ct::default()
                })],
            ));
        }
        for stage in [Stage::CommitIn, Stage::CommitOut] {
            let mut m = ip();
            m.push(MatchField::Reg {
                index: REG_ACL,
                value: 0,
                mask: Some(BIT_NO_COMMIT),
            });
            m.push(ct_state(cs::TRK, cs::TRK));
            let mut labelled = m.clone();
            out.push(flow(
                stage,
                PRIO_STAGE,
                cookie,
                m,
                vec![
                    Action::Ct(Ct {
                        commit: true,
                        zone: zone_field(),
                        ..Ct::default()
                    }),
                    stage.goto_next(),
                ],
            ));
            // A labelled ACL allowed it: the same commit, writing the label.
            for f in &mut labelled {
                if let MatchField::Reg { index, value, mask } = f {
                    if *index == REG_ACL {
                        *value = BIT_LABEL;
                        *mask = Some(BIT_NO_COMMIT | BIT_LABEL);
                    }
                }
            }
            out.push(flow(
                stage,
                PRIO_STAGE + 1,
                cookie,
                labelled,
                vec![
                    Action::Ct(Ct {
                        commit: true,
                        zone: zone_field(),
                        exec: vec![Action::MoveBits {
                            src: SubField::whole(nxm_nx_reg(REG_LABEL)),
                            dst: SubField::bits(NXM_NX_CT_LABEL, CT_LABEL_OFS, CT_LABEL_OFS + 31),
                        }],
                        ..Ct::default()
                    }),
                    stage.goto_next(),
                ],
            ));
        }
    }
    // Neighbour discovery and MLD: no conntrack (it would call them invalid), no ACL.
    for t in ND_TYPES {
        let nd = || {
            vec![
                md(sw),
                MatchField::EthType(ETH_IP6),
                MatchField::IpProto(58),
                MatchField::Icmpv6Type(t),
            ]
        };
        for stage in [Stage::CtIn, Stage::CtOut] {
            out.push(flow(
                stage,
                PRIO_ND,
                cookie,
                nd(),
                vec![no_commit(), stage.goto_next()],
            ));
        }
        for (stage, skip_to) in [
            (Stage::AclIn, Stage::AclInAct.next()),
            (Stage::AclOut, Stage::AclOutAct.next()),
        ] {
            out.push(flow(
                stage,
                PRIO_CT,
                cookie,
                nd(),
                vec![no_commit(), Action::GotoTable(skip_to)],
            ));
        }
    }
    for (stage, skip_to) in [
        (Stage::AclIn, Stage::AclInAct.next()),
        (Stage::AclOut, Stage::AclOutAct.next()),
    ] {
        out.push(flow(
            stage,
            PRIO_CT,
            cookie,
            vec![md(sw), ct_state(cs::INV | cs::TRK, cs::INV | cs::TRK)],
            Vec::new(),
        ));
        let skip = || vec![no_commit(), Action::GotoTable(skip_to)];
        out.push(flow(
            stage,
            PRIO_CT,
            cookie,
            vec![
                md(sw),
                ct_state(
                    cs::EST | cs::RPL | cs::TRK,
                    cs::EST | cs::RPL | cs::TRK | cs::INV,
                ),
            ],
            skip(),
        ));
        out.push(flow(
            stage,
            PRIO_CT,
            cookie,
            vec![
                md(sw),
                ct_state(cs::REL | cs::TRK, cs::REL | cs::TRK | cs::NEW | cs::INV),
            ],
            skip(),
        ));
    }
    out
}

/// pre-ct-out of a local port on a stateful switch: reg13 = its zone, reg8 cleared.
pub fn port_flows(input: &CompileInput, sw: &Switch, port: &Port, cookie: u64) -> Vec<Flow> {
    if !input.view.is_stateful(&sw.name) {
        return Vec::new();
    }
    let Some(zone) = input.ids.zone(&port.name) else {
        return Vec::new();
    };
    vec![flow(
        Stage::PreCtOut,
        PRIO_STAGE,
        cookie,
        vec![
            md(sw),
            MatchField::Reg {
                index: reg::OUTPORT,
                value: port.key,
                mask: None,
            },
        ],
        vec![
            Action::SetField(SetField::RegMasked {
                index: reg::ZONE,
                value: u32::from(zone),
                mask: 0xffff,
            }),
            Action::SetField(SetField::RegMasked {
                index: REG_ACL,
                value: 0,
                mask: BIT_NO_COMMIT,
            }),
            Stage::PreCtOut.goto_next(),
        ],
    )]
}

/// The cookie of an ACL's flows.
pub fn cookie(key: &str) -> u64 {
    weft_proto::model::acl::acl_cookie(key)
}

/// Userdata of a log punt: opcode, direction (0 from-lport, 1 to-lport), verdict code, the
/// ACL's cookie (8 bytes), then severity, name and key, each one length byte + text.
pub fn log_userdata(acl: &Acl) -> Vec<u8> {
    let mut u = punt::OP_ACL_LOG.to_be_bytes().to_vec();
    u.push(u8::from(acl.direction == Direction::ToLport));
    u.push(verdict_code(acl.verdict));
    u.extend_from_slice(&cookie(&acl.key).to_be_bytes());
    let severity = if acl.severity.is_empty() {
        "info"
    } else {
        acl.severity.as_str()
    };
    for s in [severity, acl.name.as_str(), acl.key.as_str()] {
        let b = &s.as_bytes()[..s.len().min(255)];
        u.push(b.len() as u8);
        u.extend_from_slice(b);
    }
    u
}

/// Userdata of a reject punt: opcode, direction.
pub fn reject_userdata(acl: &Acl) -> Vec<u8> {
    let mut u = punt::OP_ACL_REJECT.to_be_bytes().to_vec();
    u.push(u8::from(acl.direction == Direction::ToLport));
    u.extend_from_slice(&cookie(&acl.key).to_be_bytes());
    u
}

/// Wire code of a verdict in log userdata.
pub fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Allow => 0,
        Verdict::AllowRelated => 1,
        Verdict::AllowStateless => 2,
        Verdict::Drop => 3,
        Verdict::Reject => 4,
    }
}

/// A verdict from its wire code.
pub fn verdict_of(code: u8) -> Option<Verdict> {
    Some(match code {
        0 => Verdict::Allow,
        1 => Verdict::AllowRelated,
        2 => Verdict::AllowStateless,
        3 => Verdict::Drop,
        4 => Verdict::Reject,
        _ => return None,
    })
}

fn verdict_actions(input: &CompileInput, acl: &Acl, stage: Stage) -> Vec<Action> {
    let mut a = Vec::new();
    if acl.log {
        // The ACL's `--meter` when it has one (and it exists), else the agent's log meter.
        let named = crate::ids::acl_meter_owner(acl).and_then(|o| input.ids.meter(&o));
        if let Some(m) = named.or_else(|| input.ids.meter(punt::METER_ACL_LOG)) {
            a.push(Action::Controller(Controller {
                max_len: 256,
                userdata: log_userdata(acl),
                meter_id: Some(m),
                ..Controller::default()
            }));
        }
    }
    match acl.verdict {
        Verdict::Allow | Verdict::AllowRelated => {
            if acl.label != 0 {
                a.push(Action::SetField(SetField::Reg {
                    index: REG_LABEL,
                    value: acl.label,
                }));
                a.push(Action::SetField(SetField::RegMasked {
                    index: REG_ACL,
                    value: BIT_LABEL,
                    mask: BIT_LABEL,
                }));
            }
            a.push(stage.goto_next())
        }
        Verdict::AllowStateless => {
            a.push(no_commit());
            a.push(stage.goto_next());
        }
        Verdict::Drop => {}
        Verdict::Reject => {
            if let Some(m) = input.ids.meter(punt::METER_ACL_REJECT) {
                a.push(Action::Controller(Controller {
                    max_len: u16::MAX,
                    userdata: reject_userdata(acl),
                    meter_id: Some(m),
                    ..Controller::default()
                }));
            }
        }
    }
    a
}

/// The conjunction id of an ACL's `n`-th conjunct.
fn conj_id(key: &str, n: usize) -> u32 {
    let h = weft_proto::model::fnv1a64(format!("{key}#{n}").as_bytes());
    ((h >> 32) as u32 ^ h as u32) | 1
}

#[allow(clippy::too_many_arguments)]
fn emit(
    out: &mut Vec<Flow>,
    l: &Lowered,
    stage: Stage,
    priority: u16,
    cookie: u64,
    base: &[MatchField],
    actions: &[Action],
    id: u32,
) {
    let mut common: Vec<MatchField> = base.to_vec();
    common.extend(l.common.iter().cloned());
    match l.shape {
        weft_proto::model::match_dnf::Shape::Product(_) => {
            let mut combos: Vec<Vec<MatchField>> = vec![common];
            for d in &l.dims {
                let mut next = Vec::with_capacity(combos.len() * d.len());
                for c in &combos {
                    for alt in d {
                        let mut x = c.clone();
                        x.extend(alt.iter().cloned());
                        next.push(x);
                    }
                }
                combos = next;
            }
            for c in combos {
                out.push(flow(stage, priority, cookie, c, actions.to_vec()));
            }
        }
        weft_proto::model::match_dnf::Shape::Conjunction(_) => {
            let n = l.dims.len() as u8;
            for (k, d) in l.dims.iter().enumerate() {
                for alt in d {
                    let mut x = common.clone();
                    x.extend(alt.iter().cloned());
                    out.push(flow(
                        stage,
                        priority,
                        cookie,
                        x,
                        vec![Action::Conjunction {
                            id,
                            clause: k as u8 + 1,
                            n_clauses: n,
                        }],
                    ));
                }
            }
            let mut x = base.to_vec();
            x.push(MatchField::ConjId(id));
            out.push(flow(stage, priority, cookie, x, actions.to_vec()));
        }
    }
}

/// The flows of one ACL (empty when it is not in the view or cannot compile here; the
/// reason is returned with the flows that could be built, none).
/// The meter of a logged ACL's `--meter` (empty without one): every ACL sharing a named
/// meter claims the same meter id with the same bands.
pub fn acl_meters(input: &CompileInput, key: &str) -> Vec<Meter> {
    let Some(acl) = input.view.acl().acl(key) else {
        return Vec::new();
    };
    let (Some(m), Some(id)) = (
        acl.meter.as_ref(),
        crate::ids::acl_meter_owner(acl).and_then(|o| input.ids.meter(&o)),
    ) else {
        return Vec::new();
    };
    let unit = match m.unit {
        MeterUnit::Kbps => weft_openflow::meter::MeterUnit::Kbps,
        MeterUnit::Pktps => weft_openflow::meter::MeterUnit::Pktps,
    };
    vec![Meter {
        id,
        unit,
        burst: m.burst > 0,
        stats: true,
        bands: vec![MeterBand {
            kind: BandType::Drop,
            rate: m.rate,
            burst_size: m.burst,
        }],
    }]
}

pub fn acl_flows(input: &CompileInput, key: &str) -> Result<Vec<Flow>, acl_match::LowerError> {
    let Some(acl) = input.view.acl().acl(key) else {
        return Ok(Vec::new());
    };
    let stage = match acl.direction {
        Direction::FromLport => Stage::AclIn,
        Direction::ToLport => Stage::AclOut,
    };
    let bases: Vec<Vec<MatchField>> = match &acl.entity {
        Entity::Switch(s) => match input.view.switch(s) {
            Some(sw) => vec![vec![md(sw)]],
            None => return Ok(Vec::new()),
        },
        // The group's ports are a dimension of the match (with their metadata).
        Entity::PortGroup(_) => vec![Vec::new()],
    };
    let lowered = acl_match::lower(
        input.view,
        input.chassis,
        &acl.entity,
        acl.direction,
        &acl.expr,
        MAX_FLOWS,
    )?;
    let priority = PRIO_ACL_BASE + acl.priority as u16;
    let actions = verdict_actions(input, acl, stage);
    let cookie = cookie(key);
    let mut out = Vec::new();
    for base in &bases {
        for (n, l) in lowered.iter().enumerate() {
            emit(
                &mut out,
                l,
                stage,
                priority,
                cookie,
                base,
                &actions,
                conj_id(key, n),
            );
        }
    }
    Ok(out)
}

/// The cookie kind byte of ACL flows.
pub const COOKIE: u8 = COOKIE_KIND;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use weft_openflow::render::render_flow;
    use weft_proto::model::view::ViewDelta;
    use weft_proto::v1::{
        AclView, AddressSetView, PortAddress, PortGroupView, PortView, SwitchView,
    };

    use super::super::{compile_all, recompile, CompileInput, Encap, Owner};
    use super::*;
    use crate::ids::Ids;
    use crate::view::ChassisView;

    fn pv(name: &str, key: u32, ip: &str, chassis: &str) -> PortView {
        PortView {
            name: name.into(),
            switch_name: "ls1".into(),
            addresses: vec![PortAddress {
                mac: format!("0a:00:00:00:00:{key:02x}"),
                ips: vec![ip.into()],
            }],
            chassis: chassis.into(),
            enabled: true,
            tunnel_key: key,
            ..Default::default()
        }
    }

    fn av(key: &str, dir: &str, prio: u32, m: &str, verdict: &str) -> AclView {
        AclView {
            key: key.into(),
            port_group: "web".into(),
            direction: dir.into(),
            priority: prio,
            r#match: m.into(),
            action: verdict.into(),
            ..Default::default()
        }
    }

    struct Fx {
        view: ChassisView,
        vifs: BTreeMap<String, u32>,
        tunnels: BTreeMap<Encap, u32>,
        ids: Ids,
    }

    impl Fx {
        fn new(acls: Vec<AclView>) -> Fx {
            let mut view = ChassisView::new();
            view.apply(&ViewDelta {
                revision: 1,
                snapshot: true,
                switches: vec![SwitchView {
                    name: "ls1".into(),
                    vni: 5,
                    tunnel_key: 7,
                    ..Default::default()
                }],
                ports: vec![
                    pv("w1", 1, "10.0.0.11", "hv1"),
                    pv("c1", 2, "10.0.0.21", "hv2"),
                ],
                port_groups: vec![PortGroupView {
                    name: "web".into(),
                    // c1 is on hv2: a to-lport ACL of the group needs no flow for it here.
                    ports: vec!["w1".into(), "c1".into()],
                    ip4: vec!["10.0.0.11".into()],
                    ..Default::default()
                }],
                address_sets: vec![AddressSetView {
                    name: "big".into(),
                    addresses: (1..=100).map(|i| format!("10.9.0.{i}")).collect(),
                }],
                acls,
                ..Default::default()
            })
            .unwrap();
            let vifs: BTreeMap<String, u32> = [("w1".to_string(), 1)].into();
            let mut ids = Ids::default();
            ids.sync(&view, "hv1", &vifs).unwrap();
            Fx {
                view,
                vifs,
                tunnels: [(Encap::Geneve, 100)].into(),
                ids,
            }
        }
        fn input(&self) -> CompileInput<'_> {
            CompileInput {
                chassis: "hv1",
                view: &self.view,
                vifs: &self.vifs,
                tunnels: &self.tunnels,
                ids: &self.ids,
                neighbours: &crate::pinctrl::neigh::NO_NEIGHBOURS,
                localnets: &crate::pipeline::NO_LOCALNETS,
            }
        }
        fn flows_of(&self, key: &str) -> Vec<String> {
            acl_flows(&self.input(), key)
                .unwrap()
                .iter()
                .map(render_flow)
                .collect()
        }
    }

    fn web() -> Vec<AclView> {
        vec![
            av(
                "pg:web:to-lport:1000:1",
                "to-lport",
                1000,
                "outport == @web && tcp.dst == 80",
                "allow-related",
            ),
            av(
                "pg:web:to-lport:900:2",
                "to-lport",
                900,
                "outport == @web && ip",
                "drop",
            ),
        ]
    }

    #[test]
    fn a_port_group_acl_matches_its_ports_and_the_match() {
        let fx = Fx::new(web());
        let f = fx.flows_of("pg:web:to-lport:1000:1");
        // tcp over IPv4 and IPv6, to w1 (metadata 7, reg15 1).
        assert_eq!(f.len(), 2, "{f:#?}");
        for l in &f {
            assert!(l.contains("table=62") && l.contains("priority=2000"), "{l}");
            assert!(l.contains("reg15=0x1") && l.contains("metadata=0x7"), "{l}");
            assert!(l.contains("tp_dst=80") || l.contains("tcp_dst=80"), "{l}");
            assert!(l.contains("goto_table:63"), "{l}");
        }
        let d = fx.flows_of("pg:web:to-lport:900:2");
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|l| l.ends_with("actions=drop")), "{d:#?}");
    }

    #[test]
    fn a_stateful_switch_gets_conntrack_stages() {
        let fx = Fx::new(web());
        assert!(fx.view.is_stateful("ls1"));
        let sw = fx.view.switch("ls1").unwrap().clone();
        let f: Vec<String> = switch_flows(&fx.input(), &sw, 9)
            .iter()
            .map(render_flow)
            .collect();
        let has = |t: &str, needle: &str| f.iter().any(|l| l.contains(t) && l.contains(needle));
        assert!(
            has("table=26", "ct(table=27,zone=NXM_NX_REG13[0..15],nat)"),
            "{f:#?}"
        );
        assert!(
            has("table=61", "ct(table=62,zone=NXM_NX_REG13[0..15],nat)"),
            "{f:#?}"
        );
        assert!(
            has("table=38", "ct(commit,zone=NXM_NX_REG13[0..15])"),
            "{f:#?}"
        );
        assert!(
            has("table=66", "ct(commit,zone=NXM_NX_REG13[0..15])"),
            "{f:#?}"
        );
        assert!(has("table=62", "+inv+trk"), "{f:#?}");
        assert!(has("table=30", "+est+rpl"), "{f:#?}");
        // Neighbour discovery skips conntrack and the ACLs.
        assert!(has("table=26", "icmp_type=135"), "{f:#?}");
        assert!(has("table=62", "icmp_type=136"), "{f:#?}");
        let w1 = fx.view.port("w1").unwrap().clone();
        let p: Vec<String> = port_flows(&fx.input(), &sw, &w1, 9)
            .iter()
            .map(render_flow)
            .collect();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("table=60") && p[0].contains("reg15=0x1"),
            "{p:?}"
        );
        // allow-stateless only: no conntrack.
        let fx2 = Fx::new(vec![av(
            "pg:web:from-lport:1:3",
            "from-lport",
            1,
            "ip",
            "allow-stateless",
        )]);
        assert!(!fx2.view.is_stateful("ls1"));
        assert!(switch_flows(&fx2.input(), &sw, 9).is_empty());
    }

    #[test]
    fn a_logged_acl_with_a_meter_uses_it_and_shares_it_unless_fair() {
        let metered = |key: &str, fair: bool| {
            let mut a = av(key, "to-lport", 1000, "tcp", "allow-related");
            a.log = true;
            a.meter = Some(weft_proto::v1::MeterView {
                name: "slow".into(),
                unit: "pktps".into(),
                rate: 2,
                burst: 1,
                fair,
            });
            a
        };
        let mut plain = av("pg:web:to-lport:1000:9", "to-lport", 1000, "udp", "allow");
        plain.log = true;
        let fx = Fx::new(vec![
            metered("pg:web:to-lport:1000:7", false),
            metered("pg:web:to-lport:1000:8", false),
            plain,
        ]);
        let id = fx
            .ids
            .meter("acl-meter/slow")
            .expect("the named meter has an id");
        let default = fx.ids.meter(punt::METER_ACL_LOG).unwrap();
        assert_ne!(id, default);
        for key in ["pg:web:to-lport:1000:7", "pg:web:to-lport:1000:8"] {
            let f = fx.flows_of(key);
            assert!(
                f.iter().all(|l| l.contains(&format!("meter_id={id}"))),
                "{f:#?}"
            );
            let m = acl_meters(&fx.input(), key);
            assert_eq!(m.len(), 1);
            assert_eq!(
                (m[0].id, m[0].bands[0].rate, m[0].bands[0].burst_size),
                (id, 2, 1)
            );
            assert_eq!(m[0].unit, weft_openflow::meter::MeterUnit::Pktps);
        }
        // Without --meter: the agent's log meter, and no meter of its own.
        let f = fx.flows_of("pg:web:to-lport:1000:9");
        assert!(
            f.iter().all(|l| l.contains(&format!("meter_id={default}"))),
            "{f:#?}"
        );
        assert!(acl_meters(&fx.input(), "pg:web:to-lport:1000:9").is_empty());
        // fair: one meter per ACL.
        let fx = Fx::new(vec![
            metered("pg:web:to-lport:1000:7", true),
            metered("pg:web:to-lport:1000:8", true),
        ]);
        let a = acl_meters(&fx.input(), "pg:web:to-lport:1000:7");
        let b = acl_meters(&fx.input(), "pg:web:to-lport:1000:8");
        assert_ne!(a[0].id, b[0].id);
    }

    #[test]
    fn a_labelled_acl_writes_its_label_to_ct_label_at_commit() {
        let mut a = av(
            "pg:web:to-lport:1000:7",
            "to-lport",
            1000,
            "tcp",
            "allow-related",
        );
        a.label = 0x1234;
        let fx = Fx::new(vec![a]);
        let f = fx.flows_of("pg:web:to-lport:1000:7");
        assert!(!f.is_empty());
        for l in &f {
            assert!(
                l.contains("set_field:0x1234->reg3") && l.contains("set_field:0x4/0x4->reg8"),
                "{l}"
            );
        }
        let sw = fx.view.switch("ls1").unwrap().clone();
        let c: Vec<String> = switch_flows(&fx.input(), &sw, 9)
            .iter()
            .map(render_flow)
            .filter(|l| l.contains("table=66") && l.contains("priority=101"))
            .collect();
        // IPv4 and IPv6, each: reg8 says labelled and committed.
        assert_eq!(c.len(), 2, "{c:#?}");
        for l in &c {
            assert!(l.contains("reg8=0x4/0x6"), "{l}");
            assert!(
                l.contains("exec(move:NXM_NX_REG3[]->NXM_NX_CT_LABEL[96..127])"),
                "{l}"
            );
        }
        // An unlabelled ACL loads nothing.
        let g = Fx::new(web());
        assert!(g
            .flows_of("pg:web:to-lport:1000:1")
            .iter()
            .all(|l| !l.contains("reg3")));
    }

    #[test]
    fn cross_products_use_conjunction_and_ranges_prefixes() {
        let fx = Fx::new(vec![
            av(
                "pg:web:to-lport:10:4",
                "to-lport",
                10,
                "ip4.src == $big && tcp.dst == {80, 443}",
                "allow",
            ),
            av(
                "pg:web:to-lport:11:5",
                "to-lport",
                11,
                "tcp.dst >= 1024",
                "drop",
            ),
        ]);
        let f = fx.flows_of("pg:web:to-lport:10:4");
        // 100 sources + 2 ports + the conj_id flow (w1 and the protocol are common).
        assert_eq!(f.len(), 103, "{:#?}", &f[..5]);
        assert_eq!(f.iter().filter(|l| l.contains("conjunction(")).count(), 102);
        assert_eq!(f.iter().filter(|l| l.contains("conj_id=")).count(), 1);
        let r = fx.flows_of("pg:web:to-lport:11:5");
        // 1024..65535 is 6 prefixes, over IPv4 and IPv6.
        assert_eq!(r.len(), 12, "{r:#?}");
        assert!(
            r.iter()
                .any(|l| l.contains("tp_dst=0x400/0xfc00") || l.contains("tcp_dst=0x400/0xfc00")),
            "{r:#?}"
        );
    }

    #[test]
    fn a_set_change_recompiles_only_the_acls_using_it() {
        let mut acls = web();
        acls.push(av(
            "pg:web:to-lport:10:4",
            "to-lport",
            10,
            "ip4.src == $big",
            "allow",
        ));
        let mut fx = Fx::new(acls);
        let mut st = compile_all(&fx.input());
        let ch = fx
            .view
            .apply(&ViewDelta {
                revision: 2,
                address_sets: vec![AddressSetView {
                    name: "big".into(),
                    addresses: vec!["10.9.0.1".into()],
                }],
                ..Default::default()
            })
            .unwrap();
        let r = recompile(&mut st, &fx.input(), &ch);
        assert_eq!(
            r.owners.into_iter().collect::<Vec<_>>(),
            [Owner::Acl("pg:web:to-lport:10:4".into())]
        );
        // Dropping the last stateful ACL turns conntrack off: the switch and its ports.
        let ch = fx
            .view
            .apply(&ViewDelta {
                revision: 3,
                deleted_acls: vec![
                    "pg:web:to-lport:1000:1".into(),
                    "pg:web:to-lport:900:2".into(),
                    "pg:web:to-lport:10:4".into(),
                ],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ch.stateful_switches.iter().collect::<Vec<_>>(), ["ls1"]);
        let r = recompile(&mut st, &fx.input(), &ch);
        assert!(r.owners.contains(&Owner::Switch("ls1".into())));
        assert!(r.owners.contains(&Owner::Port("w1".into())));
        assert!(st
            .flows()
            .all(|f| f.table != Stage::CtIn.table() || f.priority == 0));
    }
}
