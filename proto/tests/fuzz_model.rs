//! Short fixed-seed fuzz runs (in CI with the unit tests) of the shared model's parsers and
//! the northbound request validators: the match-expression parser, the microflow parser, the
//! address, port security, subnet, MAC and name grammars, the switch and chassis validators
//! and the token-file and certificate readers. Every input must give a value or an error,
//! never a panic; what is accepted must be stable (parsing it twice gives the same answer).
//!
//! Inputs: mutations (insert, delete, replace, duplicate a slice) of valid seeds, and random
//! strings over an alphabet of the grammars' own characters plus control and non-ASCII ones.

use weft_proto::model::{expr, identity, validate};
use weft_proto::v1::{Chassis, LogicalSwitch};

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

const ALPHABET: &[&str] = &[
    "0",
    "1",
    "9",
    "a",
    "f",
    "x",
    ".",
    "/",
    ":",
    "::",
    " ",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "{",
    "}",
    ",",
    "==",
    "!=",
    "<=",
    ">",
    "\"",
    "$",
    "@",
    "-",
    "_",
    "ip4",
    "tcp",
    "inport",
    "eth.src",
    "ip4.dst",
    "10.0.0.1",
    "ff:ff:ff:ff:ff:ff",
    "dynamic",
    "router",
    "unknown",
    "0x",
    "/32",
    "\u{0}",
    "\n",
    "\t",
    "\u{7f}",
    "é",
    "∀",
    "255",
    "256",
    "65536",
    "-1",
    "00:11:22:33:44:55",
];

fn random_string(r: &mut Rng) -> String {
    let n = r.below(12);
    (0..n).map(|_| ALPHABET[r.below(ALPHABET.len())]).collect()
}

fn mutate(r: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..=r.below(3) {
        let at = r.below(s.len() + 1);
        match r.below(4) {
            0 => {
                let ins: Vec<char> = ALPHABET[r.below(ALPHABET.len())].chars().collect();
                s.splice(at..at, ins);
            }
            1 if at < s.len() => {
                s.remove(at);
            }
            2 if at < s.len() => {
                s[at] = ALPHABET[r.below(ALPHABET.len())]
                    .chars()
                    .next()
                    .unwrap_or('x');
            }
            _ => {
                let end = (at + r.below(6)).min(s.len());
                let dup: Vec<char> = s[at..end].to_vec();
                s.splice(at..at, dup);
            }
        }
    }
    s.into_iter().collect()
}

/// `n` inputs: alternately a mutated seed and a random string.
fn inputs(seed: u64, seeds: &[&str], n: usize) -> Vec<String> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            if i % 2 == 0 && !seeds.is_empty() {
                let k = r.below(seeds.len());
                mutate(&mut r, seeds[k])
            } else {
                random_string(&mut r)
            }
        })
        .collect()
}

#[test]
fn fuzz_match_expressions() {
    let seeds = [
        "ip4 && tcp.dst == 80",
        "inport == \"p1\" && eth.src == 00:11:22:33:44:55",
        "ip4.dst == {10.0.0.0/24, 10.1.0.1} || !(udp)",
        "ip6.src == fe80::1/64 && ip.ttl > 1",
        "outport == @pg1 && ip4.src == $as1",
        "1",
    ];
    let mut accepted = 0;
    for s in inputs(0x5eed_0001, &seeds, 20_000) {
        let a = expr::parse(&s);
        assert_eq!(
            format!("{a:?}"),
            format!("{:?}", expr::parse(&s)),
            "unstable on {s:?}"
        );
        accepted += a.is_ok() as usize;
        let _ = expr::parse_microflow(&s);
    }
    // The run exercises both sides of the grammar.
    assert!(
        accepted > 100,
        "only {accepted} inputs parsed: the seeds are not reaching the grammar"
    );
}

#[test]
fn fuzz_addresses_and_port_security() {
    let subnet = validate::parse_subnet("subnet", "10.0.0.0/24").ok();
    let seeds = [
        "00:11:22:33:44:55 10.0.0.5",
        "dynamic",
        "router",
        "unknown",
        "00:11:22:33:44:55 10.0.0.5 10.0.0.6",
        "dynamic 10.0.0.9",
        "00:00:00:00:00:01 fe80::1",
    ];
    for s in inputs(0x5eed_0002, &seeds, 20_000) {
        let entries = vec![s.clone()];
        let _ = validate::parse_addresses(&entries, subnet, "sw");
        let _ = validate::parse_addresses(&entries, None, "sw");
        let _ = validate::parse_port_security(&entries);
        let _ = validate::parse_security_ip(&s);
        let _ = validate::parse_mac(&s);
        let _ = validate::parse_dynamic(&s);
        if let Ok(net) = validate::parse_subnet("subnet", &s) {
            // What is accepted as a subnet has a usable gateway.
            let _ = validate::gateway(net);
        }
        let _ = validate::validate_name("name", &s);
        let _ = validate::no_control_chars("field", &s);
        assert!(!validate::escape_control_chars(&s)
            .chars()
            .any(|c| c.is_control()));
    }
}

#[test]
fn fuzz_switch_and_chassis_validators() {
    let names = ["sw0", "host1", "a-b.c_d"];
    let subnets = ["10.0.0.0/24", "192.168.1.0/30", "fd00::/64"];
    let ips = ["172.31.0.1", "10.0.0.1", "::1"];
    let mut r = Rng(0x5eed_0003);
    let name_in = inputs(0x5eed_0004, &names, 5_000);
    let subnet_in = inputs(0x5eed_0005, &subnets, 5_000);
    let ip_in = inputs(0x5eed_0006, &ips, 5_000);
    for i in 0..5_000 {
        let sw = LogicalSwitch {
            name: name_in[i].clone(),
            subnet: subnet_in[i].clone(),
            vni: r.next() as u32,
            mtu: r.next() as u32,
            other_config: [(name_in[(i + 1) % 5_000].clone(), ip_in[i].clone())].into(),
            ..Default::default()
        };
        let _ = validate::validate_switch(&sw);
        let _ = validate::validate_map("other_config", sw.other_config.iter());
        let ch = Chassis {
            name: name_in[i].clone(),
            encap_ip: ip_in[i].clone(),
            encap_types: (0..r.below(4))
                .map(|k| name_in[(i + k) % 5_000].clone())
                .collect(),
            datapath_type: subnet_in[i].clone(),
            ..Default::default()
        };
        let _ = validate::validate_chassis(&ch);
        let _ = validate::validate_port_type(&name_in[i]);
    }
}

#[test]
fn fuzz_token_lines() {
    let seeds = [
        "admin alice 0123456789abcdef01",
        "reader bob ffffffffffffffffff",
        "# x",
    ];
    for (i, s) in inputs(0x5eed_0007, &seeds, 20_000).iter().enumerate() {
        if let Ok(Some(e)) = identity::parse_token_line(i + 1, s) {
            assert!(e.token.len() >= identity::MIN_TOKEN_LEN, "{s:?}");
        }
    }
}
