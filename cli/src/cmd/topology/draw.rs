//! Laying out a [`Topology`] and drawing it as SVG or Graphviz DOT. Pure and deterministic:
//! the same topology gives the same bytes.
//!
//! The SVG layout has three rows: routers on top, switches below them, then one column per
//! chassis (alive ones solid, dead ones dashed and grey with "dead") holding the ports it
//! binds, and a last "unbound ports" column. Each switch has a colour; its ports hang off a
//! bus of that colour: from the switch down to a channel of its own, across to a lane in
//! the column's left gutter, and a stub into each port. Down ports are red with "down", up
//! ports green with "up". Switch—router links are straight lines labelled with the router
//! port and its networks; router—router peers are dashed arcs above the router row. Text is
//! monospace, so box widths follow from the number of characters.

use std::fmt::Write as _;

use super::{ChassisState, PortNode, Topology};

/// Switch colours (no red: red means down).
const PALETTE: &[&str] = &[
    "#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#ad1457", "#558b2f", "#283593",
];
const UP: &str = "#2e7d32";
const DOWN: &str = "#c62828";
const DEAD: &str = "#9e9e9e";
const ROUTER: &str = "#e65100";

const MARGIN: i32 = 20;
const GAP: i32 = 30;
/// Width of one character at font size 12 (monospace: 0.6 em), in tenths of a pixel.
const CHAR12: i32 = 72;
/// The same at font size 10.
const CHAR10: i32 = 60;
const PORT_H: i32 = 38;
const PORT_GAP: i32 = 8;
const COL_HEAD: i32 = 44;
const LANE: i32 = 6;
const UNBOUND_SUB: &str = "no chassis binds these";

/// The colour of switch number `i`.
pub fn switch_color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Text as SVG/XML character data or attribute value.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A string as a DOT quoted ID (`"..."`), also for labels (`\n` breaks lines).
pub fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Pixel width of `text` at 12 px (`big`) or 10 px.
fn text_w(text: &str, big: bool) -> i32 {
    let n = i32::try_from(text.chars().count()).unwrap_or(i32::MAX / CHAR12);
    (n.saturating_mul(if big { CHAR12 } else { CHAR10 }) + 9) / 10
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    fn cx(&self) -> i32 {
        self.x + self.w / 2
    }
    fn bottom(&self) -> i32 {
        self.y + self.h
    }
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub width: i32,
    pub height: i32,
    /// One per `Topology::routers`.
    pub routers: Vec<Rect>,
    /// One per `Topology::switches`.
    pub switches: Vec<Rect>,
    /// One per chassis, then the unbound column if any.
    pub columns: Vec<Column>,
    /// The y of switch `i`'s channel (between the switch row and the columns).
    pub channels: Vec<i32>,
    pub legend_y: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Chassis name; `None` for the unbound column.
    pub chassis: Option<String>,
    pub rect: Rect,
    /// Indexes into `Topology::ports`, with each port's box.
    pub ports: Vec<(usize, Rect)>,
    /// Switch indexes that have ports here, in order; lane `k` is at `lane_x(k)`.
    pub lanes: Vec<usize>,
}

impl Column {
    fn lane_x(&self, k: usize) -> i32 {
        self.rect.x + 8 + LANE * i32::try_from(k).unwrap_or(0)
    }
}

fn router_lines(t: &Topology, i: usize) -> Vec<String> {
    t.routers[i]
        .ports
        .iter()
        .map(|p| {
            let mut s = format!("{} {}", p.name, p.networks.join(" "));
            if !p.enabled {
                s.push_str(" (disabled)");
            }
            s.trim_end().to_string()
        })
        .collect()
}

fn router_title(t: &Topology, i: usize) -> String {
    let r = &t.routers[i];
    if r.enabled {
        format!("router {}", r.name)
    } else {
        format!("router {} (disabled)", r.name)
    }
}

fn switch_sub(t: &Topology, i: usize) -> String {
    let s = &t.switches[i];
    if s.subnet.is_empty() {
        format!("vni {}", s.vni)
    } else {
        format!("{} · vni {}", s.subnet, s.vni)
    }
}

fn port_status(p: &PortNode) -> String {
    let mut s = if p.up { "up" } else { "down" }.to_string();
    if !p.enabled {
        s.push_str(" · disabled");
    }
    if !p.kind.is_empty() {
        s.push_str(&format!(" · {}", p.kind));
    }
    if !p.ip.is_empty() {
        s.push_str(&format!(" · {}", p.ip));
    }
    s
}

fn chassis_sub(state: ChassisState, encap_ip: &str) -> String {
    match state {
        ChassisState::Alive if encap_ip.is_empty() => "alive".to_string(),
        ChassisState::Alive => format!("alive · {encap_ip}"),
        ChassisState::Dead if encap_ip.is_empty() => "dead".to_string(),
        ChassisState::Dead => format!("dead · {encap_ip}"),
        ChassisState::Unknown => "unknown (not registered)".to_string(),
    }
}

/// The heading of the picture.
fn title(t: &Topology) -> String {
    let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    format!(
        "Weft topology · revision {} · {}, {}, {}, {}",
        t.revision,
        n(t.routers.len(), "router", "routers"),
        n(t.switches.len(), "switch", "switches"),
        n(t.chassis.len(), "chassis", "chassis"),
        n(t.ports.len(), "port", "ports"),
    )
}

/// Lays a row of boxes of these widths out from x = 0; returns the x's and the row's width.
fn row(widths: &[i32]) -> (Vec<i32>, i32) {
    let mut xs = Vec::with_capacity(widths.len());
    let mut x = 0;
    for (i, w) in widths.iter().enumerate() {
        if i > 0 {
            x += GAP;
        }
        xs.push(x);
        x += w;
    }
    (xs, x)
}

/// The layout of `t`.
pub fn layout(t: &Topology) -> Layout {
    let switch_index = |name: &str| t.switches.iter().position(|s| s.name == name);

    // Router row.
    let router_sizes: Vec<(i32, i32)> = (0..t.routers.len())
        .map(|i| {
            let lines = router_lines(t, i);
            let w = lines
                .iter()
                .map(|l| text_w(l, false))
                .chain([text_w(&router_title(t, i), true)])
                .max()
                .unwrap_or(0)
                + 20;
            let n = i32::try_from(lines.len()).unwrap_or(0);
            (w.max(110), 28 + 14 * n)
        })
        .collect();
    // Switch row.
    let switch_sizes: Vec<(i32, i32)> = (0..t.switches.len())
        .map(|i| {
            let w = text_w(&format!("switch {}", t.switches[i].name), true)
                .max(text_w(&switch_sub(t, i), false))
                + 20;
            (w.max(110), 42)
        })
        .collect();
    // Columns: chassis, then unbound.
    let mut cols: Vec<(Option<String>, Vec<usize>)> = t
        .chassis
        .iter()
        .map(|c| {
            let ports = t
                .ports
                .iter()
                .enumerate()
                .filter(|(_, p)| p.chassis == c.name)
                .map(|(i, _)| i)
                .collect();
            (Some(c.name.clone()), ports)
        })
        .collect();
    if t.has_unbound() {
        let ports = t
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.chassis.is_empty())
            .map(|(i, _)| i)
            .collect();
        cols.push((None, ports));
    }
    let col_specs: Vec<(Vec<usize>, i32, i32)> = cols
        .iter()
        .map(|(name, ports)| {
            let mut lanes: Vec<usize> = ports
                .iter()
                .filter_map(|&p| switch_index(&t.ports[p].switch))
                .collect();
            lanes.sort_unstable();
            lanes.dedup();
            let gutter = 10 + LANE * i32::try_from(lanes.len()).unwrap_or(0);
            let head = match name {
                Some(n) => {
                    let c = t.chassis.iter().find(|c| &c.name == n);
                    let sub = c.map(|c| chassis_sub(c.state, &c.encap_ip));
                    text_w(&format!("chassis {n}"), true).max(sub.map_or(0, |s| text_w(&s, false)))
                        + 20
                }
                None => text_w("unbound ports", true).max(text_w(UNBOUND_SUB, false)) + 20,
            };
            let port_w = ports
                .iter()
                .map(|&p| {
                    text_w(&t.ports[p].name, true).max(text_w(&port_status(&t.ports[p]), false))
                        + 16
                })
                .max()
                .unwrap_or(0)
                .max(90);
            let w = head.max(gutter + port_w + 10).max(140);
            let n = i32::try_from(ports.len()).unwrap_or(0).max(1);
            let h = COL_HEAD + n * (PORT_H + PORT_GAP) + PORT_GAP;
            (lanes, w, h)
        })
        .collect();

    let (rxs, rrow) = row(&router_sizes.iter().map(|s| s.0).collect::<Vec<_>>());
    let (sxs, srow) = row(&switch_sizes.iter().map(|s| s.0).collect::<Vec<_>>());
    let (cxs, crow) = row(&col_specs.iter().map(|s| s.1).collect::<Vec<_>>());
    // The title is 14 px bold: 7/6 of the 12 px width.
    let title_w = text_w(&title(t), true) * 7 / 6;
    let inner = rrow.max(srow).max(crow).max(title_w).max(400);
    let width = inner + 2 * MARGIN;
    let offset = |roww: i32| MARGIN + (inner - roww) / 2;

    let mut y = 44;
    if !t.peers.is_empty() {
        y += 30;
    }
    let router_h = router_sizes.iter().map(|s| s.1).max().unwrap_or(0);
    let routers: Vec<Rect> = router_sizes
        .iter()
        .zip(&rxs)
        .map(|(&(w, h), &x)| Rect {
            x: offset(rrow) + x,
            y,
            w,
            h,
        })
        .collect();
    if !routers.is_empty() {
        y += router_h + 70;
    }
    let switches: Vec<Rect> = switch_sizes
        .iter()
        .zip(&sxs)
        .map(|(&(w, h), &x)| Rect {
            x: offset(srow) + x,
            y,
            w,
            h,
        })
        .collect();
    let mut channels = Vec::new();
    if !switches.is_empty() {
        y += 42 + 14;
        for i in 0..switches.len() {
            channels.push(y + 8 * i32::try_from(i).unwrap_or(0));
        }
        y += 8 * i32::try_from(switches.len()).unwrap_or(0) + 14;
    }
    let mut columns = Vec::new();
    let mut bottom = y;
    for (((name, ports), (lanes, w, h)), &x) in cols.into_iter().zip(col_specs).zip(&cxs) {
        let rect = Rect {
            x: offset(crow) + x,
            y,
            w,
            h,
        };
        bottom = bottom.max(rect.bottom());
        let gutter = 10 + LANE * i32::try_from(lanes.len()).unwrap_or(0);
        let boxes = ports
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let k = i32::try_from(k).unwrap_or(0);
                (
                    p,
                    Rect {
                        x: rect.x + gutter,
                        y: rect.y + COL_HEAD + PORT_GAP + k * (PORT_H + PORT_GAP),
                        w: rect.w - gutter - 10,
                        h: PORT_H,
                    },
                )
            })
            .collect();
        columns.push(Column {
            chassis: name,
            rect,
            ports: boxes,
            lanes,
        });
    }
    Layout {
        width,
        height: bottom + 50,
        routers,
        switches,
        columns,
        channels,
        legend_y: bottom + 28,
    }
}

fn text(out: &mut String, x: i32, y: i32, size: u32, attrs: &str, s: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="{size}"{attrs}>{}</text>"#,
        xml_escape(s)
    );
}

/// The picture as a standalone SVG document.
pub fn render_svg(t: &Topology) -> String {
    let l = layout(t);
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans Mono, monospace">"#,
        w = l.width,
        h = l.height
    );
    let _ = writeln!(
        o,
        r##"<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
        l.width, l.height
    );
    text(&mut o, MARGIN, 26, 14, r#" font-weight="bold""#, &title(t));
    if t.switches.is_empty() && t.routers.is_empty() && t.chassis.is_empty() {
        text(
            &mut o,
            MARGIN,
            60,
            12,
            "",
            "(nothing to draw: no switches, routers or chassis)",
        );
    }

    // Router—router peers: dashed arcs above the router row.
    for p in &t.peers {
        let a = t.routers.iter().position(|r| r.name == p.router);
        let b = t.routers.iter().position(|r| r.name == p.peer_router);
        let (Some(a), Some(b)) = (a, b) else { continue };
        let (ra, rb) = (l.routers[a], l.routers[b]);
        let top = ra.y.min(rb.y) - 26;
        let _ = writeln!(
            o,
            r#"<path class="peer" d="M {} {} C {} {top} {} {top} {} {}" fill="none" stroke="{ROUTER}" stroke-width="1.5" stroke-dasharray="5 3"/>"#,
            ra.cx(),
            ra.y,
            ra.cx(),
            rb.cx(),
            rb.cx(),
            rb.y
        );
        text(
            &mut o,
            (ra.cx() + rb.cx()) / 2,
            top + 4,
            10,
            r#" text-anchor="middle""#,
            &format!("{} — {}", p.port, p.peer_port),
        );
    }

    // Switch—router links.
    for link in &t.links {
        let r = t.routers.iter().position(|r| r.name == link.router);
        let s = t.switches.iter().position(|s| s.name == link.switch);
        let (Some(r), Some(s)) = (r, s) else { continue };
        let (rr, sr) = (l.routers[r], l.switches[s]);
        let dash = if link.enabled {
            ""
        } else {
            r#" stroke-dasharray="4 3""#
        };
        let _ = writeln!(
            o,
            r#"<line class="router-link" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{ROUTER}" stroke-width="2"{dash}/>"#,
            rr.cx(),
            rr.bottom(),
            sr.cx(),
            sr.y
        );
        let mut label = format!("{} {}", link.router_port, link.networks.join(" "));
        if !link.enabled {
            label.push_str(" (disabled)");
        }
        // Nearer the switch than the router, so the labels of one router's links part.
        text(
            &mut o,
            rr.cx() + (sr.cx() - rr.cx()) * 7 / 10,
            rr.bottom() + (sr.y - rr.bottom()) * 7 / 10 + 4,
            10,
            r##" text-anchor="middle" stroke="#ffffff" stroke-width="3" paint-order="stroke""##,
            label.trim_end(),
        );
    }

    // Chassis columns (backgrounds first, so the buses run over them).
    for c in &l.columns {
        let r = c.rect;
        let state = c
            .chassis
            .as_ref()
            .and_then(|n| t.chassis.iter().find(|x| &x.name == n));
        let (class, fill, stroke, dash, head, sub) = match state {
            Some(ch) => {
                let sub = chassis_sub(ch.state, &ch.encap_ip);
                match ch.state {
                    ChassisState::Alive => ("chassis alive", "#f4f8fd", "#5c7cfa", "", ch, sub),
                    ChassisState::Dead => (
                        "chassis dead",
                        "#eeeeee",
                        DEAD,
                        r#" stroke-dasharray="6 4""#,
                        ch,
                        sub,
                    ),
                    ChassisState::Unknown => (
                        "chassis unknown",
                        "#fafafa",
                        DEAD,
                        r#" stroke-dasharray="2 3""#,
                        ch,
                        sub,
                    ),
                }
            }
            None => {
                let _ = writeln!(
                    o,
                    r##"<rect class="unbound" x="{}" y="{}" width="{}" height="{}" rx="6" fill="#fffde7" stroke="#bdbdbd" stroke-dasharray="2 3"/>"##,
                    r.x, r.y, r.w, r.h
                );
                text(
                    &mut o,
                    r.x + 10,
                    r.y + 18,
                    12,
                    r#" font-style="italic""#,
                    "unbound ports",
                );
                text(
                    &mut o,
                    r.x + 10,
                    r.y + 33,
                    10,
                    r##" fill="#616161""##,
                    UNBOUND_SUB,
                );
                continue;
            }
        };
        let _ = writeln!(
            o,
            r#"<rect class="{class}" x="{}" y="{}" width="{}" height="{}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>"#,
            r.x, r.y, r.w, r.h
        );
        let color = if head.state == ChassisState::Alive {
            "#1a237e"
        } else {
            "#757575"
        };
        text(
            &mut o,
            r.x + 10,
            r.y + 18,
            12,
            &format!(r#" font-weight="bold" fill="{color}""#),
            &format!("chassis {}", head.name),
        );
        text(
            &mut o,
            r.x + 10,
            r.y + 33,
            10,
            &format!(r#" fill="{color}""#),
            &sub,
        );
    }

    // Buses: switch → its channel → each column lane → a stub into each port.
    for (si, sr) in l.switches.iter().enumerate() {
        let color = switch_color(si);
        let ch = l.channels[si];
        for c in &l.columns {
            let Some(k) = c.lanes.iter().position(|&x| x == si) else {
                continue;
            };
            let lx = c.lane_x(k);
            let mine: Vec<&Rect> = c
                .ports
                .iter()
                .filter(|(p, _)| t.ports[*p].switch == t.switches[si].name)
                .map(|(_, r)| r)
                .collect();
            let Some(last) = mine.last() else { continue };
            let mut d = format!(
                "M {} {} V {ch} H {lx} V {}",
                sr.cx(),
                sr.bottom(),
                last.y + last.h / 2
            );
            for pr in &mine {
                let _ = write!(d, " M {lx} {} H {}", pr.y + pr.h / 2, pr.x);
            }
            let _ = writeln!(
                o,
                r#"<path class="bus" d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>"#
            );
        }
    }

    // Ports.
    for c in &l.columns {
        for (p, r) in &c.ports {
            let p = &t.ports[*p];
            let (state, stroke, fill) = if p.up {
                ("up", UP, "#e8f5e9")
            } else {
                ("down", DOWN, "#ffebee")
            };
            let dash = if p.enabled {
                ""
            } else {
                r#" stroke-dasharray="4 2""#
            };
            let _ = writeln!(
                o,
                r#"<rect class="port {state}" x="{}" y="{}" width="{}" height="{}" rx="4" fill="{fill}" stroke="{stroke}" stroke-width="2"{dash}/>"#,
                r.x, r.y, r.w, r.h
            );
            let sc = t
                .switches
                .iter()
                .position(|s| s.name == p.switch)
                .map_or("#000000", switch_color);
            let _ = writeln!(
                o,
                r#"<rect x="{}" y="{}" width="4" height="{}" fill="{sc}"/>"#,
                r.x + 2,
                r.y + 4,
                r.h - 8
            );
            text(&mut o, r.x + 10, r.y + 16, 12, "", &p.name);
            text(
                &mut o,
                r.x + 10,
                r.y + 30,
                10,
                &format!(r#" fill="{stroke}""#),
                &port_status(p),
            );
        }
    }

    // Routers and switches on top.
    for (i, r) in l.routers.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<rect class="router" x="{}" y="{}" width="{}" height="{}" rx="10" fill="#fff3e0" stroke="{ROUTER}" stroke-width="2"/>"##,
            r.x, r.y, r.w, r.h
        );
        text(
            &mut o,
            r.x + 10,
            r.y + 18,
            12,
            r#" font-weight="bold""#,
            &router_title(t, i),
        );
        for (k, line) in router_lines(t, i).iter().enumerate() {
            let dy = 14 * i32::try_from(k).unwrap_or(0);
            text(&mut o, r.x + 10, r.y + 34 + dy, 10, "", line);
        }
    }
    for (i, r) in l.switches.iter().enumerate() {
        let color = switch_color(i);
        let _ = writeln!(
            o,
            r##"<rect class="switch" x="{}" y="{}" width="{}" height="{}" rx="3" fill="#ffffff" stroke="{color}" stroke-width="2.5"/>"##,
            r.x, r.y, r.w, r.h
        );
        text(
            &mut o,
            r.x + 10,
            r.y + 18,
            12,
            &format!(r#" font-weight="bold" fill="{color}""#),
            &format!("switch {}", t.switches[i].name),
        );
        text(&mut o, r.x + 10, r.y + 33, 10, "", &switch_sub(t, i));
    }

    // Legend.
    let y = l.legend_y;
    let mut x = MARGIN;
    for (label, stroke, fill, dash) in [
        ("port up", UP, "#e8f5e9", ""),
        ("port down", DOWN, "#ffebee", ""),
        (
            "disabled",
            "#616161",
            "#ffffff",
            r#" stroke-dasharray="4 2""#,
        ),
        (
            "dead chassis",
            DEAD,
            "#eeeeee",
            r#" stroke-dasharray="6 4""#,
        ),
    ] {
        let _ = writeln!(
            o,
            r#"<rect x="{x}" y="{}" width="16" height="12" fill="{fill}" stroke="{stroke}" stroke-width="2"{dash}/>"#,
            y - 10
        );
        text(&mut o, x + 22, y, 10, "", label);
        x += 22 + text_w(label, false) + 20;
    }
    o.push_str("</svg>\n");
    o
}

/// The picture as a Graphviz graph (`weftctl topology -o dot | dot -Tpng > net.png`).
pub fn render_dot(t: &Topology) -> String {
    let q = dot_quote;
    let mut o = String::new();
    o.push_str("graph weft {\n");
    let _ = writeln!(
        o,
        "  graph [fontname=\"monospace\", labelloc=t, label={}];",
        q(&format!("Weft topology · revision {}", t.revision))
    );
    o.push_str("  node [fontname=\"monospace\", fontsize=11, shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n");
    o.push_str("  edge [fontname=\"monospace\", fontsize=9];\n");
    for (i, r) in t.routers.iter().enumerate() {
        let mut label = router_title(t, i);
        for line in router_lines(t, i) {
            label.push('\n');
            label.push_str(&line);
        }
        let _ = writeln!(
            o,
            "  {} [label={}, color=\"{ROUTER}\", fillcolor=\"#fff3e0\", penwidth=2];",
            q(&format!("router/{}", r.name)),
            q(&label)
        );
    }
    for (i, s) in t.switches.iter().enumerate() {
        let _ = writeln!(
            o,
            "  {} [label={}, shape=box, style=\"filled\", color=\"{}\", penwidth=2];",
            q(&format!("switch/{}", s.name)),
            q(&format!("switch {}\n{}", s.name, switch_sub(t, i))),
            switch_color(i)
        );
    }
    let port_node = |o: &mut String, p: &PortNode| {
        let (color, fill) = if p.up {
            (UP, "#e8f5e9")
        } else {
            (DOWN, "#ffebee")
        };
        let style = if p.enabled {
            "rounded,filled"
        } else {
            "rounded,filled,dashed"
        };
        let _ = writeln!(
            o,
            "    {} [label={}, color=\"{color}\", fillcolor=\"{fill}\", style=\"{style}\", penwidth=2];",
            q(&format!("port/{}", p.name)),
            q(&format!("{}\n{}", p.name, port_status(p)))
        );
    };
    for c in &t.chassis {
        let (style, color) = match c.state {
            ChassisState::Alive => ("rounded", "#5c7cfa"),
            ChassisState::Dead | ChassisState::Unknown => ("rounded,dashed", DEAD),
        };
        let _ = writeln!(
            o,
            "  subgraph {} {{",
            q(&format!("cluster_chassis/{}", c.name))
        );
        let _ = writeln!(
            o,
            "    label={}; style=\"{style}\"; color=\"{color}\"; fontcolor=\"{}\";",
            q(&format!(
                "chassis {}\n{}",
                c.name,
                chassis_sub(c.state, &c.encap_ip)
            )),
            if c.state == ChassisState::Alive {
                "#1a237e"
            } else {
                "#757575"
            }
        );
        for p in t.ports_on(&c.name) {
            port_node(&mut o, p);
        }
        o.push_str("  }\n");
    }
    if t.has_unbound() {
        o.push_str("  subgraph \"cluster_unbound\" {\n");
        o.push_str("    label=\"unbound ports\"; style=\"dotted\"; color=\"#bdbdbd\";\n");
        for p in t.ports_on("") {
            port_node(&mut o, p);
        }
        o.push_str("  }\n");
    }
    for p in &t.ports {
        let color = t
            .switches
            .iter()
            .position(|s| s.name == p.switch)
            .map_or("#000000", switch_color);
        let _ = writeln!(
            o,
            "  {} -- {} [color=\"{color}\"];",
            q(&format!("switch/{}", p.switch)),
            q(&format!("port/{}", p.name))
        );
    }
    for l in &t.links {
        let mut label = format!("{}\n{}", l.router_port, l.networks.join(" "));
        if !l.enabled {
            label.push_str("\n(disabled)");
        }
        let _ = writeln!(
            o,
            "  {} -- {} [label={}, color=\"{ROUTER}\", penwidth=2{}];",
            q(&format!("router/{}", l.router)),
            q(&format!("switch/{}", l.switch)),
            q(label.trim_end()),
            if l.enabled { "" } else { ", style=dashed" }
        );
    }
    for p in &t.peers {
        let _ = writeln!(
            o,
            "  {} -- {} [label={}, color=\"{ROUTER}\", style=dashed];",
            q(&format!("router/{}", p.router)),
            q(&format!("router/{}", p.peer_router)),
            q(&format!("{} — {}", p.port, p.peer_port))
        );
    }
    o.push_str("}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;
    use crate::cmd::topology::{ChassisNode, SwitchNode};

    /// The text content of every `<text>` element, unescaped.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text ")
            .skip(1)
            .filter_map(|s| {
                let body = s.split_once('>')?.1;
                let (t, _) = body.split_once("</text>")?;
                Some(
                    t.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&apos;", "'")
                        .replace("&amp;", "&"),
                )
            })
            .collect()
    }

    #[test]
    fn every_name_is_svg_text() {
        let t = sample();
        let svg = render_svg(&t);
        let all = texts(&svg).join("\n");
        for name in [
            "sw1", "sw2", "r0", "r1", "hv1", "hv2", "p1", "p2", "p3", "dangling",
        ] {
            assert!(all.contains(name), "{name} missing from {all}");
        }
        assert!(all.contains("router r1"), "{all}");
        assert!(all.contains("r1-sw1 10.0.0.1/24"), "{all}");
        assert!(all.contains("r0-r1 — r1-r0"), "{all}");
        assert!(all.contains("chassis hv2"), "{all}");
        assert!(all.contains("unbound ports"), "{all}");
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<text ").count(),
            svg.matches("</text>").count()
        );
    }

    #[test]
    fn down_ports_and_dead_chassis_are_marked() {
        let t = sample();
        let svg = render_svg(&t);
        // hv2 is dead: dashed grey with "dead"; hv1 alive.
        assert_eq!(svg.matches(r#"class="chassis dead""#).count(), 1, "{svg}");
        assert_eq!(svg.matches(r#"class="chassis alive""#).count(), 1);
        assert!(texts(&svg).iter().any(|s| s == "dead · 192.0.2.1"), "{svg}");
        assert!(texts(&svg).iter().any(|s| s == "alive · 192.0.2.1"));
        // p1 up; p2, p3 and dangling down (red); p3 disabled.
        assert_eq!(svg.matches(r#"class="port up""#).count(), 1);
        assert_eq!(svg.matches(r#"class="port down""#).count(), 3);
        let down = r#"class="port down" "#;
        let line = svg.lines().find(|l| l.contains(down)).unwrap_or_default();
        assert!(line.contains(&format!(r#"stroke="{DOWN}""#)), "{line}");
        let all = texts(&svg);
        assert!(all.iter().any(|s| s == "up · 10.0.0.2"), "{all:?}");
        assert!(
            all.iter().any(|s| s == "down · disabled · 10.0.1.3"),
            "{all:?}"
        );
        // A port whose chassis is gone.
        let mut t2 = t.clone();
        t2.chassis.push(ChassisNode {
            name: "gone".into(),
            encap_ip: String::new(),
            state: ChassisState::Unknown,
        });
        assert!(render_svg(&t2).contains("unknown (not registered)"));
    }

    #[test]
    fn odd_names_are_escaped_in_svg_and_dot() {
        let mut t = sample();
        t.switches.push(SwitchNode {
            name: "a<b>&\"c'".into(),
            subnet: String::new(),
            vni: 1,
        });
        t.ports[0].name = "x\\y\"z\n".into();
        let svg = render_svg(&t);
        assert!(svg.contains("switch a&lt;b&gt;&amp;&quot;c&apos;"), "{svg}");
        assert!(!svg.contains("a<b"));
        assert!(texts(&svg).iter().any(|s| s == "switch a<b>&\"c'"));
        let dot = render_dot(&t);
        assert!(dot.contains(r#""switch/a<b>&\"c'""#), "{dot}");
        assert!(dot.contains(r#""port/x\\y\"z\n""#), "{dot}");
        assert_eq!(xml_escape("\u{1}ok"), "?ok");
    }

    #[test]
    fn rendering_is_deterministic_and_the_layout_does_not_overlap() {
        let t = sample();
        assert_eq!(render_svg(&t), render_svg(&sample()));
        assert_eq!(render_dot(&t), render_dot(&sample()));
        let l = layout(&t);
        assert_eq!(l.columns.len(), 3);
        assert_eq!(l.columns[2].chassis, None);
        let overlap = |a: &Rect, b: &Rect| {
            a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
        };
        let mut boxes: Vec<Rect> = l.routers.clone();
        boxes.extend(&l.switches);
        boxes.extend(l.columns.iter().map(|c| c.rect));
        for (i, a) in boxes.iter().enumerate() {
            assert!(
                a.x >= 0 && a.x + a.w <= l.width && a.y + a.h <= l.height,
                "{a:?}"
            );
            for b in &boxes[i + 1..] {
                assert!(!overlap(a, b), "{a:?} overlaps {b:?}");
            }
        }
        for c in &l.columns {
            for (_, p) in &c.ports {
                assert!(
                    p.x > c.rect.x && p.x + p.w < c.rect.x + c.rect.w,
                    "{p:?} in {c:?}"
                );
                assert!(p.y > c.rect.y && p.y + p.h < c.rect.y + c.rect.h);
                // The lanes stay left of the ports.
                assert!(c.lane_x(c.lanes.len()) <= p.x);
            }
        }
        // Routers above switches above columns.
        assert!(l.routers[0].bottom() < l.switches[0].y);
        assert!(l.channels.iter().all(|&y| y > l.switches[0].bottom()));
        assert!(l.channels.iter().all(|&y| y < l.columns[0].rect.y));
    }

    #[test]
    fn dot_has_every_node_edge_and_marker() {
        let dot = render_dot(&sample());
        for id in [
            "router/r0",
            "router/r1",
            "switch/sw1",
            "switch/sw2",
            "port/p1",
            "port/p2",
            "port/p3",
            "cluster_chassis/hv1",
            "cluster_chassis/hv2",
            "cluster_unbound",
        ] {
            assert!(dot.contains(&format!("\"{id}\"")), "{id}: {dot}");
        }
        assert!(dot.contains(r#""switch/sw1" -- "port/p1""#), "{dot}");
        assert!(dot.contains(r#""router/r1" -- "switch/sw2" [label="r1-sw2\n10.0.1.1/24""#));
        assert!(dot.contains(r#""router/r0" -- "router/r1""#));
        assert!(dot.contains("chassis hv2\\ndead"), "{dot}");
        assert!(dot.contains("\"p2\\ndown\""), "{dot}");
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    }

    #[test]
    fn an_empty_network_still_draws() {
        let t = Topology::default();
        let svg = render_svg(&t);
        assert!(svg.contains("nothing to draw"));
        assert!(render_dot(&t).starts_with("graph weft {\n"));
    }
}
