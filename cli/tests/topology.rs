//! `weftctl topology` end to end: a real controller over a real etcd, two switches joined by
//! a router, ports bound on an alive and on a dead chassis (the test plays both agents over
//! the southbound API) and an unbound one. The SVG is rendered to PNG with `rsvg-convert`,
//! and the test reads the PNG back (a small zlib inflater below) to check that the picture
//! is really drawn: its size is the SVG's, it is not blank, and the colours of the markers
//! (red for down ports, grey for the dead chassis, green for up ports, orange for routers)
//! are on it. `-o dot` is checked for its nodes and edges.
//!
//! Needs `cargo build -p weft-controller`, etcd and `rsvg-convert` (Debian: librsvg2-bin,
//! installed by scripts/setup.sh); a missing one fails the test unless WEFT_ALLOW_SKIP=1.
//! With WEFT_TOPOLOGY_OUT=DIR the SVG, PNG and DOT are also copied to DIR for a look.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context};
use weft_proto::v1::southbound_client::SouthboundClient;
use weft_proto::v1::{Chassis, PortBinding, StatusReport, SubscribeRequest};
use weft_testbed::etcd::Etcd;
use weft_testbed::process::{free_port, wait_until, Proc, ProcSpec};

/// etcd + one controller on it (as in tests/weftctl.rs).
struct Deployment {
    url: String,
    controller: Proc,
    _etcd: Etcd,
    dir: tempfile::TempDir,
}

impl Deployment {
    fn start(extra: &[&str]) -> anyhow::Result<Deployment> {
        let bin = weft_testbed::find_bin("weft-controller")?;
        let etcd = Etcd::start()?;
        let dir = tempfile::Builder::new().prefix("weftctl-topo-").tempdir()?;
        let listen = format!("127.0.0.1:{}", free_port()?);
        let spec = ProcSpec::new("weft-controller", bin, dir.path().join("controller.log"))
            .args(["--listen", &listen])
            .args(["--etcd", &etcd.endpoint()])
            .args(["--prefix", "/weft"])
            .args(["--store", "etcd", "--insecure"])
            .args(extra.iter().copied());
        let mut controller = spec.spawn()?;
        let url = format!("http://{listen}");
        let mut exited = false;
        let ready = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            if !controller.is_running() {
                exited = true;
                return true;
            }
            weftctl(&url, &["ls-list"]).is_ok_and(|o| o.status.success())
        });
        if exited || !ready {
            bail!(
                "weft-controller on {listen} did not come up; log tail:\n{}",
                controller.log_tail(20)
            );
        }
        Ok(Deployment {
            url,
            controller,
            _etcd: etcd,
            dir,
        })
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = weftctl(&self.url, args).unwrap_or_else(|e| panic!("weftctl {args:?}: {e:#}"));
        assert!(
            o.status.success(),
            "weftctl {args:?} failed: {}\ncontroller log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.controller.log_tail(10)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn weftctl(url: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .env("WEFT_INSECURE", "1")
        .env_remove("WEFT_CONTROLLER")
        .arg("--controller")
        .arg(url)
        .args(args)
        .output()
        .context("spawning weftctl")
}

fn chassis(name: &str, ip: &str) -> SubscribeRequest {
    SubscribeRequest {
        chassis: Some(Chassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into()],
            datapath_type: "netdev".into(),
            version: "test".into(),
            ..Default::default()
        }),
    }
}

fn report(chassis: &str, ports: &[(&str, bool)]) -> StatusReport {
    StatusReport {
        chassis: chassis.into(),
        applied_revision: 1,
        ports: ports
            .iter()
            .map(|&(p, up)| PortBinding {
                port: p.into(),
                chassis: chassis.into(),
                up,
            })
            .collect(),
        last_error: String::new(),
    }
}

/// The content of every `<text>` element, unescaped.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|s| {
            let (_, body) = s.split_once('>')?;
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

/// The number after `attr="` in the `<svg` element.
fn svg_attr(svg: &str, attr: &str) -> u32 {
    let head = svg.split_once("<svg").map_or("", |(_, s)| s);
    let head = head.split_once('>').map_or("", |(h, _)| h);
    head.split_once(&format!(" {attr}=\""))
        .and_then(|(_, v)| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn topology_svg_renders_to_a_png_with_every_name_and_marker() {
    let name = "topology_svg_renders_to_a_png_with_every_name_and_marker";
    let mut missing = weft_testbed::skip::missing_bins(&["weft-controller"]);
    missing.extend(weft_testbed::skip::missing_tools(&[
        ("etcd", "apt-get install etcd-server"),
        ("rsvg-convert", "apt-get install librsvg2-bin"),
    ]));
    if !weft_testbed::skip::require(name, &missing) {
        return;
    }
    let d = Deployment::start(&["--lease-ttl", "2"])
        .unwrap_or_else(|e| panic!("cannot start etcd + weft-controller: {e:#}"));

    // The network: sw-front and sw-back joined by router edge; four VIFs.
    d.ok(&["ls-add", "sw-front", "--subnet", "10.7.0.0/24"]);
    d.ok(&["ls-add", "sw-back", "--subnet", "10.7.1.0/24"]);
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let chain = words(
        "lr-add edge \
         -- lrp-add edge edge-front 0a:00:00:00:07:01 10.7.0.1/24 \
         -- lrp-add edge edge-back 0a:00:00:00:07:02 10.7.1.1/24 \
         -- lsp-add sw-front front-edge -- lsp-set-type front-edge router \
         -- lsp-set-options front-edge router-port=edge-front \
         -- lsp-add sw-back back-edge -- lsp-set-type back-edge router \
         -- lsp-set-options back-edge router-port=edge-back \
         -- lsp-add sw-front web1 -- lsp-add sw-front web2 \
         -- lsp-add sw-back db1 -- lsp-add sw-back spare",
    );
    d.ok(&chain.iter().map(String::as_str).collect::<Vec<_>>());
    d.ok(&["lsp-set-addresses", "web1", "0a:00:00:00:07:10 10.7.0.10"]);

    // hv-alive binds web1 (up) and web2 (down); hv-gone binds db1 and then goes away.
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let mut sb1 = rt
        .block_on(SouthboundClient::connect(d.url.clone()))
        .unwrap_or_else(|e| panic!("southbound connect: {e}"));
    let mut sb2 = sb1.clone();
    let mut s1 = rt
        .block_on(sb1.subscribe(chassis("hv-alive", "192.0.2.1")))
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
        .into_inner();
    let mut s2 = rt
        .block_on(sb2.subscribe(chassis("hv-gone", "192.0.2.2")))
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
        .into_inner();
    let r1 = rt.spawn(async move { while let Ok(Some(_)) = s1.message().await {} });
    let r2 = rt.spawn(async move { while let Ok(Some(_)) = s2.message().await {} });
    let both = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        ["hv-alive", "hv-gone"]
            .iter()
            .all(|c| d.ok(&["get", "Chassis", c, "alive"]) == "true\n")
    });
    assert!(both, "chassis not alive: {}", d.ok(&["chassis-list"]));
    rt.block_on(sb1.report_status(report("hv-alive", &[("web1", true), ("web2", false)])))
        .unwrap_or_else(|e| panic!("report: {e}"));
    rt.block_on(sb2.report_status(report("hv-gone", &[("db1", true)])))
        .unwrap_or_else(|e| panic!("report: {e}"));
    let bound = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let s = d.ok(&["show"]);
        s.contains("port web1 (up on hv-alive)") && s.contains("on hv-gone")
    });
    assert!(bound, "bindings not reported: {}", d.ok(&["show"]));
    r2.abort();
    drop(sb2);
    let dead = wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        d.ok(&["get", "Chassis", "hv-gone", "alive"]) == "false\n"
    });
    assert!(dead, "hv-gone still alive: {}", d.ok(&["chassis-list"]));
    let show = d.ok(&["show"]);

    // SVG: every name as text, the markers where expected.
    let svg = d.ok(&["topology", "-o", "svg"]);
    assert_eq!(d.ok(&["topology"]), svg, "svg is the default");
    assert_eq!(d.ok(&["topology", "-o", "svg"]), svg, "deterministic");
    let texts = svg_texts(&svg);
    let has = |s: &str| texts.iter().any(|t| t == s);
    for t in [
        "switch sw-front",
        "switch sw-back",
        "router edge",
        "chassis hv-alive",
        "chassis hv-gone",
        "unbound ports",
        "web1",
        "web2",
        "db1",
        "spare",
        "edge-front 10.7.0.1/24",
        "edge-back 10.7.1.1/24",
        "up · 10.7.0.10",
        "alive · 192.0.2.1",
        "dead · 192.0.2.2",
    ] {
        assert!(
            has(t),
            "no <text>{t}</text> in the SVG; texts: {texts:?}\nshow:\n{show}"
        );
    }
    assert!(texts.iter().any(|t| t.starts_with("down")), "{texts:?}");
    // The router ports are links, not port boxes.
    assert!(!has("front-edge") && !has("back-edge"), "{texts:?}");
    assert_eq!(svg.matches(r#"class="chassis dead""#).count(), 1, "{svg}");
    assert_eq!(svg.matches(r#"class="chassis alive""#).count(), 1, "{svg}");
    assert_eq!(svg.matches(r#"class="router-link""#).count(), 2, "{svg}");
    let ups = svg.matches(r#"class="port up""#).count();
    let downs = svg.matches(r#"class="port down""#).count();
    assert_eq!(ups + downs, 4, "{svg}");
    assert!(
        ups >= 1 && downs >= 2,
        "web1 up; web2 and spare down: {svg}"
    );

    // PNG: rendered by rsvg-convert, read back.
    let svg_path = d.dir.path().join("topology.svg");
    let png_path = d.dir.path().join("topology.png");
    std::fs::write(&svg_path, &svg).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png_path)
        .arg(&svg_path)
        .output()
        .unwrap_or_else(|e| panic!("rsvg-convert: {e}"));
    assert!(
        out.status.success(),
        "rsvg-convert failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&png_path).unwrap_or_else(|e| panic!("{e}"));
    assert!(png.len() > 4000, "PNG only {} bytes", png.len());
    let img = png::decode(&png).unwrap_or_else(|e| panic!("decoding the PNG: {e}"));
    let (w, h) = (svg_attr(&svg, "width"), svg_attr(&svg, "height"));
    assert!(w >= 400 && h >= 300, "svg {w}x{h}");
    assert_eq!((img.width, img.height), (w, h), "PNG size is not the SVG's");
    let total = u64::from(w) * u64::from(h);
    let ink = img.count(|[r, g, b, a]| a > 0 && (r < 235 || g < 235 || b < 235));
    assert!(
        ink * 100 > total * 3 && ink * 100 < total * 60,
        "{ink} of {total} pixels are not white: blank or garbage"
    );
    let near = |c: [u8; 3]| {
        move |[r, g, b, a]: [u8; 4]| {
            a > 200 && r.abs_diff(c[0]) < 24 && g.abs_diff(c[1]) < 24 && b.abs_diff(c[2]) < 24
        }
    };
    let red = img.count(near([0xc6, 0x28, 0x28]));
    let green = img.count(near([0x2e, 0x7d, 0x32]));
    let grey = img.count(near([0x9e, 0x9e, 0x9e]));
    let orange = img.count(near([0xe6, 0x51, 0x00]));
    assert!(red > 300, "down ports: {red} red pixels");
    assert!(green > 150, "up port: {green} green pixels");
    assert!(grey > 150, "dead chassis: {grey} grey pixels");
    assert!(orange > 150, "router: {orange} orange pixels");

    // DOT: nodes, clusters and edges.
    let dot = d.ok(&["topology", "-o", "dot"]);
    for s in [
        "graph weft {",
        r#""router/edge" [label="router edge\nedge-back 10.7.1.1/24\nedge-front 10.7.0.1/24""#,
        r#""switch/sw-front" [label="switch sw-front\n10.7.0.0/24"#,
        r#"subgraph "cluster_chassis/hv-alive""#,
        r#"subgraph "cluster_chassis/hv-gone""#,
        "label=\"chassis hv-gone\\ndead · 192.0.2.2\"; style=\"rounded,dashed\"",
        r#"subgraph "cluster_unbound""#,
        r#""port/web1" [label="web1\nup · 10.7.0.10""#,
        r#""switch/sw-front" -- "port/web1""#,
        r#""switch/sw-front" -- "port/web2""#,
        r#""switch/sw-back" -- "port/db1""#,
        r#""switch/sw-back" -- "port/spare""#,
        r#""router/edge" -- "switch/sw-front" [label="edge-front\n10.7.0.1/24""#,
        r#""router/edge" -- "switch/sw-back" [label="edge-back\n10.7.1.1/24""#,
    ] {
        assert!(dot.contains(s), "{s} not in:\n{dot}");
    }
    assert!(
        dot.contains("\"port/spare\" [label=\"spare\\ndown"),
        "{dot}"
    );
    assert!(dot.trim_end().ends_with('}'));
    // JSON: the model.
    let json = d.ok(&["topology", "-o", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["links"].as_array().map(Vec::len), Some(2), "{v}");
    // A table format is not a picture: usage error.
    let o = weftctl(&d.url, &["topology", "-o", "csv"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.status.code(), Some(2), "{o:?}");

    if let Some(dir) = std::env::var_os("WEFT_TOPOLOGY_OUT") {
        let dir = Path::new(&dir);
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::copy(&svg_path, dir.join("topology.svg"));
        let _ = std::fs::copy(&png_path, dir.join("topology.png"));
        let _ = std::fs::write(dir.join("topology.dot"), &dot);
    }
    r1.abort();
}

/// Just enough PNG to read back what rsvg-convert writes: 8-bit RGB or RGBA, not interlaced.
mod png {
    use anyhow::{bail, ensure, Context};

    pub struct Image {
        pub width: u32,
        pub height: u32,
        /// RGBA, row by row.
        pub pixels: Vec<[u8; 4]>,
    }

    impl Image {
        pub fn count(&self, f: impl Fn([u8; 4]) -> bool) -> u64 {
            self.pixels.iter().filter(|&&p| f(p)).count() as u64
        }
    }

    pub fn decode(data: &[u8]) -> anyhow::Result<Image> {
        ensure!(data.starts_with(b"\x89PNG\r\n\x1a\n"), "no PNG signature");
        let mut pos = 8;
        let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
        let mut idat = Vec::new();
        while pos + 8 <= data.len() {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into()?) as usize;
            let kind = &data[pos + 4..pos + 8];
            let body = data
                .get(pos + 8..pos + 8 + len)
                .context("truncated chunk")?;
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(body[0..4].try_into()?);
                    height = u32::from_be_bytes(body[4..8].try_into()?);
                    ensure!(body[8] == 8, "bit depth {}", body[8]);
                    channels = match body[9] {
                        2 => 3,
                        6 => 4,
                        t => bail!("colour type {t}"),
                    };
                    ensure!(body[12] == 0, "interlaced");
                }
                b"IDAT" => idat.extend_from_slice(body),
                b"IEND" => break,
                _ => {}
            }
            pos += 12 + len;
        }
        ensure!(width > 0 && height > 0, "no IHDR");
        ensure!(idat.len() > 2, "no IDAT");
        let raw = inflate(&idat[2..])?;
        let stride = width as usize * channels;
        ensure!(
            raw.len() >= (stride + 1) * height as usize,
            "{} bytes of image data for {width}x{height}",
            raw.len()
        );
        let mut prev = vec![0u8; stride];
        let mut pixels = Vec::with_capacity(width as usize * height as usize);
        for y in 0..height as usize {
            let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
            let mut cur = line[1..].to_vec();
            for i in 0..stride {
                let a = if i >= channels { cur[i - channels] } else { 0 };
                let b = prev[i];
                let c = if i >= channels { prev[i - channels] } else { 0 };
                let pred = match line[0] {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    4 => {
                        let p = i16::from(a) + i16::from(b) - i16::from(c);
                        let (pa, pb, pc) = (
                            (p - i16::from(a)).abs(),
                            (p - i16::from(b)).abs(),
                            (p - i16::from(c)).abs(),
                        );
                        if pa <= pb && pa <= pc {
                            a
                        } else if pb <= pc {
                            b
                        } else {
                            c
                        }
                    }
                    f => bail!("filter {f}"),
                };
                cur[i] = cur[i].wrapping_add(pred);
            }
            for px in cur.chunks(channels) {
                pixels.push([px[0], px[1], px[2], if channels == 4 { px[3] } else { 255 }]);
            }
            prev = cur;
        }
        Ok(Image {
            width,
            height,
            pixels,
        })
    }

    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u32,
        n: u32,
    }

    impl Bits<'_> {
        fn bits(&mut self, k: u32) -> anyhow::Result<u32> {
            while self.n < k {
                let b = *self.data.get(self.pos).context("deflate data ends early")?;
                self.pos += 1;
                self.buf |= u32::from(b) << self.n;
                self.n += 8;
            }
            let v = self.buf & ((1u32 << k) - 1);
            self.buf = if k == 32 { 0 } else { self.buf >> k };
            self.n -= k;
            Ok(v)
        }
    }

    /// A canonical Huffman code: how many codes of each length, symbols in code order.
    struct Huffman {
        counts: [u16; 16],
        symbols: Vec<u16>,
    }

    impl Huffman {
        fn new(lengths: &[u8]) -> Huffman {
            let mut counts = [0u16; 16];
            for &l in lengths {
                counts[usize::from(l)] += 1;
            }
            counts[0] = 0;
            let mut offs = [0u16; 16];
            for l in 1..16 {
                offs[l] = offs[l - 1] + counts[l - 1];
            }
            let mut symbols = vec![0u16; lengths.len()];
            for (s, &l) in lengths.iter().enumerate() {
                if l != 0 {
                    symbols[usize::from(offs[usize::from(l)])] = s as u16;
                    offs[usize::from(l)] += 1;
                }
            }
            Huffman { counts, symbols }
        }

        fn decode(&self, b: &mut Bits<'_>) -> anyhow::Result<u16> {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for len in 1..16 {
                code |= b.bits(1)? as i32;
                let count = i32::from(self.counts[len]);
                if code - count < first {
                    return Ok(self.symbols[(index + code - first) as usize]);
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            bail!("bad Huffman code")
        }
    }

    const LEN_BASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEN_EXTRA: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DIST_BASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DIST_EXTRA: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];

    /// Raw deflate (RFC 1951).
    pub fn inflate(data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut b = Bits {
            data,
            pos: 0,
            buf: 0,
            n: 0,
        };
        let mut out = Vec::new();
        loop {
            let last = b.bits(1)? == 1;
            match b.bits(2)? {
                0 => {
                    b.buf = 0;
                    b.n = 0;
                    let p = b.pos;
                    let len = usize::from(u16::from_le_bytes(
                        data.get(p..p + 2).context("stored block")?.try_into()?,
                    ));
                    let body = data.get(p + 4..p + 4 + len).context("stored block")?;
                    out.extend_from_slice(body);
                    b.pos = p + 4 + len;
                }
                1 => {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    codes(
                        &mut b,
                        &mut out,
                        &Huffman::new(&l),
                        &Huffman::new(&[5u8; 30]),
                    )?;
                }
                2 => {
                    let hlit = b.bits(5)? as usize + 257;
                    let hdist = b.bits(5)? as usize + 1;
                    let hclen = b.bits(4)? as usize + 4;
                    const ORDER: [usize; 19] = [
                        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                    ];
                    let mut cl = [0u8; 19];
                    for &i in ORDER.iter().take(hclen) {
                        cl[i] = b.bits(3)? as u8;
                    }
                    let clh = Huffman::new(&cl);
                    let mut lengths = Vec::with_capacity(hlit + hdist);
                    while lengths.len() < hlit + hdist {
                        let sym = clh.decode(&mut b)?;
                        match sym {
                            0..=15 => lengths.push(sym as u8),
                            16 => {
                                let prev = *lengths.last().context("repeat with no length")?;
                                let n = 3 + b.bits(2)?;
                                lengths.extend((0..n).map(|_| prev));
                            }
                            17 => {
                                let n = 3 + b.bits(3)?;
                                lengths.extend((0..n).map(|_| 0));
                            }
                            _ => {
                                let n = 11 + b.bits(7)?;
                                lengths.extend((0..n).map(|_| 0));
                            }
                        }
                    }
                    ensure!(lengths.len() == hlit + hdist, "code lengths overrun");
                    let lit = Huffman::new(&lengths[..hlit]);
                    let dist = Huffman::new(&lengths[hlit..]);
                    codes(&mut b, &mut out, &lit, &dist)?;
                }
                t => bail!("deflate block type {t}"),
            }
            if last {
                return Ok(out);
            }
        }
    }

    fn codes(
        b: &mut Bits<'_>,
        out: &mut Vec<u8>,
        lit: &Huffman,
        dist: &Huffman,
    ) -> anyhow::Result<()> {
        loop {
            let sym = usize::from(lit.decode(b)?);
            if sym < 256 {
                out.push(sym as u8);
            } else if sym == 256 {
                return Ok(());
            } else {
                let i = sym - 257;
                ensure!(i < 29, "length symbol {sym}");
                let len = usize::from(LEN_BASE[i]) + b.bits(u32::from(LEN_EXTRA[i]))? as usize;
                let d = usize::from(dist.decode(b)?);
                ensure!(d < 30, "distance symbol {d}");
                let back = usize::from(DIST_BASE[d]) + b.bits(u32::from(DIST_EXTRA[d]))? as usize;
                ensure!(back <= out.len(), "distance {back} too far back");
                let start = out.len() - back;
                for k in 0..len {
                    out.push(out[start + k]);
                }
            }
        }
    }

    #[test]
    fn inflates_stored_and_fixed_blocks() {
        // "abc" stored, and "aaaaaaaaaa" with fixed codes (zlib -1 output, header stripped).
        let stored = [0x01, 0x03, 0x00, 0xfc, 0xff, b'a', b'b', b'c'];
        assert_eq!(inflate(&stored).unwrap_or_default(), b"abc");
        let fixed = [0x4b, 0x4c, 0x84, 0x01, 0x00];
        assert_eq!(inflate(&fixed).unwrap_or_default(), b"aaaaaaaaaa");
    }
}
