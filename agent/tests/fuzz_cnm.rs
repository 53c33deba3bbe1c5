//! Short fixed-seed fuzz runs of the Docker driver's input parsers: the HTTP request head
//! (`parse_head`), every request body as the driver decodes it, and the validators run on
//! what decodes (driver options, pools, PoolIDs, address requests, endpoint interfaces,
//! port bindings). Every input is accepted or refused with an error, never a panic; what is
//! accepted is re-checked.

use serde_json::{Map, Value};
use weft_agent::cnm::wire::{self, CreateNetwork, EndpointRef, PoolId, RequestPool};

/// xorshift64*: the same sequence in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    " ",
    "0",
    "1",
    "-1",
    "6",
    "17",
    "65536",
    "1e9",
    "null",
    "true",
    "\u{0}",
    "é",
    "/",
    "\r\n",
    "NetworkID",
    "EndpointID",
    "Options",
    "Interface",
    "Address",
    "MacAddress",
    "AddressIPv6",
    "IPv4Data",
    "IPv6Data",
    "Pool",
    "PoolID",
    "SubPool",
    "V6",
    "Gateway",
    "com.docker.network.generic",
    "com.docker.network.portmap",
    "weft.switch",
    "RequestAddressType",
    "com.docker.network.gateway",
    "Proto",
    "Port",
    "HostPort",
    "HostIP",
    "10.0.0.0/24",
    "10.0.0.5",
    "10.0.0.5/24",
    "300.1.1.1",
    "fd00::1/64",
    "0a:58:00:00:00:01",
    "zz",
    "weft/10.0.0.0/24",
    "weft/10.0.0.0/24/blue",
    "blue",
    "0123456789abcdef0123456789abcdef",
    "Content-Length",
    "Transfer-Encoding",
    "chunked",
    "POST",
    "/NetworkDriver.Join",
    "HTTP/1.1",
    "99999999999999999999",
];

fn random_text(r: &mut Rng) -> String {
    let n = r.below(40);
    (0..n).map(|_| PIECES[r.below(PIECES.len())]).collect()
}

/// A JSON object with random keys from the protocol and random values.
fn random_json(r: &mut Rng, depth: usize) -> Value {
    match r.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(r.below(2) == 0),
        2 => Value::from(r.next() as i64 % 70000),
        3 | 4 => Value::String(PIECES[r.below(PIECES.len())].to_string()),
        5 => Value::Array((0..r.below(3)).map(|_| random_json(r, depth + 1)).collect()),
        _ => {
            let mut m = Map::new();
            for _ in 0..r.below(5) {
                m.insert(
                    PIECES[r.below(PIECES.len())].to_string(),
                    random_json(r, depth + 1),
                );
            }
            Value::Object(m)
        }
    }
}

fn exercise(body: &[u8]) {
    if let Ok(cn) = wire::decode::<CreateNetwork>(body) {
        let _ = wire::check_id("NetworkID", &cn.network_id);
        if let Ok(Some(sw)) = wire::network_switch_option(&cn.options) {
            assert!(wire::valid_name(&sw), "accepted switch {sw:?}");
        }
        if let Ok(pool) = wire::network_pool(&cn) {
            assert!((8..=30).contains(&pool.prefix()));
            assert!(wire::valid_name(&wire::switch_for_pool(&pool)));
        }
    }
    if let Ok(ep) = wire::decode::<EndpointRef>(body) {
        let pool = "10.0.0.0/24".parse().expect("pool");
        if let Ok((Some(ip), _)) = wire::endpoint_address(ep.interface.as_ref(), &pool) {
            assert!(pool.contains(ip));
        }
        if let Ok(bs) = wire::parse_bindings(&ep.options) {
            for b in &bs {
                assert!(b.port != 0 && b.host_port != 0);
            }
            let held = vec![("x".to_string(), bs.clone())];
            let _ = wire::binding_conflict(&bs, &held, "y");
        }
    }
    if let Ok(rp) = wire::decode::<RequestPool>(body) {
        if let Ok((Some(net), _)) = wire::check_pool_request(&rp) {
            let id = PoolId {
                subnet: net,
                switch: None,
            };
            assert_eq!(PoolId::parse(&id.encode()).expect("round trip"), id);
        }
    }
    if let Ok(ar) = wire::decode::<wire::AddressRequest>(body) {
        if let Ok(a) = wire::check_address_request(&ar) {
            if let Some(ip) = a.ip {
                assert!(a.pool.subnet.contains(ip));
            }
        }
    }
}

#[test]
fn request_bodies_never_panic() {
    let mut r = Rng(0x5eed_cafe_f00d_0001);
    for _ in 0..20_000 {
        let v = random_json(&mut r, 0);
        exercise(v.to_string().as_bytes());
        exercise(random_text(&mut r).as_bytes());
    }
}

#[test]
fn request_heads_never_panic() {
    let mut r = Rng(0x5eed_cafe_f00d_0002);
    for _ in 0..20_000 {
        let mut head = random_text(&mut r);
        if r.below(2) == 0 {
            head = format!(
                "POST /{} HTTP/1.1\r\nContent-Length: {}\r\n{}",
                PIECES[r.below(PIECES.len())],
                PIECES[r.below(PIECES.len())],
                random_text(&mut r)
            );
        }
        if let Ok(h) = wire::parse_head(head.as_bytes()) {
            assert!(h.content_length <= wire::MAX_BODY_BYTES);
        }
        let _ = wire::method_of(&head);
    }
}
