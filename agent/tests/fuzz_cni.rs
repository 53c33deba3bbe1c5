//! Short fixed-seed fuzz runs (in CI) of the CNI input parsers: the network configuration
//! on stdin (`parse_netconf`, `conf_version`), `CNI_ARGS`, the CNI environment
//! (`parse_env`), and the request the plugin sends the agent (decoded as the agent's CNI
//! server decodes it, then `validate`d). Every input is accepted or refused with an error,
//! never a panic; what is accepted is re-checked.

use std::collections::BTreeMap;

use weft_agent::cni::spec::{self, Request};

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
    "1e9",
    "null",
    "true",
    "a",
    "/",
    "..",
    ";",
    "=",
    "\\u0000",
    "\u{0}",
    "\n",
    "é",
    "cniVersion",
    "1.0.0",
    "0.4.0",
    "weft",
    "switch",
    "agentSocket",
    "mtu",
    "65536",
    "/var/run/weft/cni.sock",
    "IP=",
    "MAC=",
    "WEFT_PORT=",
    "K8S_POD_NAME=",
    "eth0",
    "/proc/1/ns/net",
    "/var/run/netns/x",
];

fn mutate(r: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..=r.below(4) {
        let at = r.below(s.len() + 1);
        match r.below(3) {
            0 => {
                let ins: Vec<char> = PIECES[r.below(PIECES.len())].chars().collect();
                s.splice(at..at, ins);
            }
            1 if at < s.len() => {
                s.remove(at);
            }
            _ => {
                let end = (at + r.below(8)).min(s.len());
                s.drain(at..end);
            }
        }
    }
    s.into_iter().collect()
}

#[test]
fn fuzz_netconf_and_cni_args() {
    let confs = [
        r#"{"cniVersion":"1.0.0","name":"weft","type":"weft-cni","switch":"pods","agentSocket":"/var/run/weft/cni.sock","mtu":1400}"#,
        r#"{"cniVersion":"0.4.0","name":"n","type":"weft-cni","switch":"s"}"#,
        include_str!("../../deploy/cni/10-weft.conflist"),
    ];
    let args = [
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        "WEFT_PORT=p1;IP=10.0.0.5;MAC=00:11:22:33:44:55",
        "",
    ];
    let mut r = Rng(0xc0ff_ee01);
    for _ in 0..20_000 {
        let k = r.below(confs.len());
        let c = mutate(&mut r, confs[k]);
        let _ = spec::conf_version(c.as_bytes());
        let _ = spec::parse_netconf(c.as_bytes());
        let k = r.below(args.len());
        let a = mutate(&mut r, args[k]);
        if let Ok(m) = spec::parse_cni_args(&a) {
            let _ = spec::port_name("0123456789abcdef", &m);
        }
        let _ = spec::parse_cidr(&a);
        let _ = spec::valid_mac(&a);
        let _ = spec::valid_ifname(&a);
    }
}

#[test]
fn fuzz_cni_environment() {
    let base: BTreeMap<&str, &str> = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "0123456789abcdef"),
        ("CNI_NETNS", "/var/run/netns/pod1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "K8S_POD_NAME=web-0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .into();
    let mut r = Rng(0xc0ff_ee02);
    for _ in 0..20_000 {
        let mut env: BTreeMap<String, String> = base
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let keys: Vec<&str> = base.keys().copied().collect();
        for _ in 0..=r.below(3) {
            let k = keys[r.below(keys.len())];
            if r.below(5) == 0 {
                env.remove(k);
            } else {
                let v = env.get(k).cloned().unwrap_or_default();
                env.insert(k.to_string(), mutate(&mut r, &v));
            }
        }
        let _ = spec::parse_env(|k| env.get(k).cloned());
    }
}

#[test]
fn fuzz_agent_requests() {
    let seed = r#"{"command":"ADD","container_id":"0123456789abcdef","netns":"/var/run/netns/pod1","ifname":"eth0","args":{"K8S_POD_NAME":"web-0"},"network":"weft","switch":"pods","mtu":1400}"#;
    let mut r = Rng(0xc0ff_ee03);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let s = mutate(&mut r, seed);
        let Ok(req) = serde_json::from_str::<Request>(&s) else {
            continue;
        };
        if req.validate().is_ok() {
            accepted += 1;
            // An accepted request survives a round trip unchanged and is still valid.
            let again: Request =
                serde_json::from_str(&serde_json::to_string(&req).expect("encode"))
                    .expect("decode");
            assert_eq!(again, req);
            assert!(again.validate().is_ok());
        }
    }
    assert!(
        accepted > 0,
        "no mutated request was accepted: the seed does not parse"
    );
}
