//! Pure address management: pick a free IP in a switch subnet, a MAC for it, and a free VNI.
//!
//! The caller passes the sets of addresses already claimed (read from the store) and a random
//! source; candidates are chosen from a random starting point so that two controller replicas
//! allocating at the same time rarely pick the same value. The claim itself (an etcd
//! transaction that fails if someone else took it) is what guarantees uniqueness; see
//! `intent.rs`.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use rand::Rng;

use crate::validate::{format_mac, MAX_VNI};

/// Nothing left to allocate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Every host address of the subnet is taken.
    #[error("subnet {subnet} of switch {switch:?} is exhausted: no free IP address")]
    SubnetExhausted {
        /// Switch name.
        switch: String,
        /// Its subnet.
        subnet: Ipv4Network,
    },
    /// No free MAC could be found.
    #[error("no free MAC address on switch {switch:?}")]
    MacExhausted {
        /// Switch name.
        switch: String,
    },
    /// Every VNI is taken.
    #[error("no free VNI left (1..={MAX_VNI} all in use)")]
    VniExhausted,
}

pub use crate::validate::gateway;

/// Picks a free IP in `subnet`, skipping the network, broadcast and gateway addresses and
/// everything in `used`. Starts at a random offset and scans from there.
pub fn pick_ip<R: Rng + ?Sized>(
    switch: &str,
    subnet: Ipv4Network,
    used: &HashSet<Ipv4Addr>,
    rng: &mut R,
) -> Result<Ipv4Addr, IpamError> {
    pick_ip_with(switch, subnet, |ip| used.contains(&ip), rng)
}

/// Like [`pick_ip`] with `is_used` answering whether an address is taken (so the caller can
/// look it up in whatever index it holds, without building a set).
pub fn pick_ip_with<R: Rng + ?Sized>(
    switch: &str,
    subnet: Ipv4Network,
    is_used: impl Fn(Ipv4Addr) -> bool,
    rng: &mut R,
) -> Result<Ipv4Addr, IpamError> {
    let net = u32::from(subnet.network());
    let bcast = u32::from(subnet.broadcast());
    // Allocatable range: network+2 ..= broadcast-1.
    let first = net.saturating_add(2);
    let last = bcast.saturating_sub(1);
    if first > last {
        return Err(IpamError::SubnetExhausted {
            switch: switch.into(),
            subnet,
        });
    }
    let count = last - first + 1;
    let start = rng.random_range(0..count);
    for i in 0..count {
        let ip = Ipv4Addr::from(first + (start + i) % count);
        if !is_used(ip) {
            return Ok(ip);
        }
    }
    Err(IpamError::SubnetExhausted {
        switch: switch.into(),
        subnet,
    })
}

/// The MAC derived from an IP: locally administered `0a:00:00` plus the IP's low 24 bits.
pub fn mac_for_ip(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format_mac([0x0a, 0, 0, o[1], o[2], o[3]])
}

/// Picks a MAC for `ip`: the derived one if free, else a random `0a:xx:xx:xx:xx:xx` not in
/// `used` (canonical lower-case strings).
pub fn pick_mac<R: Rng + ?Sized>(
    switch: &str,
    ip: Ipv4Addr,
    used: &HashSet<String>,
    rng: &mut R,
) -> Result<String, IpamError> {
    pick_mac_with(switch, ip, |m| used.contains(m), rng)
}

/// Like [`pick_mac`] with `is_used` answering whether a MAC is taken.
pub fn pick_mac_with<R: Rng + ?Sized>(
    switch: &str,
    ip: Ipv4Addr,
    is_used: impl Fn(&str) -> bool,
    rng: &mut R,
) -> Result<String, IpamError> {
    let derived = mac_for_ip(ip);
    if !is_used(&derived) {
        return Ok(derived);
    }
    pick_random_mac(switch, is_used, rng)
}

/// A random locally administered `0a:xx:xx:xx:xx:xx` for which `is_used` is false (a
/// dynamic MAC on a switch without a subnet, or when the derived one is taken).
pub fn pick_random_mac<R: Rng + ?Sized>(
    switch: &str,
    is_used: impl Fn(&str) -> bool,
    rng: &mut R,
) -> Result<String, IpamError> {
    for _ in 0..256 {
        let b: [u8; 5] = rng.random();
        let mac = format_mac([0x0a, b[0], b[1], b[2], b[3], b[4]]);
        if !is_used(&mac) {
            return Ok(mac);
        }
    }
    Err(IpamError::MacExhausted {
        switch: switch.into(),
    })
}

/// Picks a free VNI in 1..=16777215.
pub fn pick_vni<R: Rng + ?Sized>(used: &HashSet<u32>, rng: &mut R) -> Result<u32, IpamError> {
    pick_in_range(1, MAX_VNI, used, rng).ok_or(IpamError::VniExhausted)
}

/// Picks a key in `lo..=hi` for which `is_used` is false, from a random start (so replicas
/// allocating at once rarely pick the same one; the claim compare makes it safe when they
/// do). Datapath and port tunnel keys.
pub fn pick_key<R: Rng + ?Sized>(
    lo: u32,
    hi: u32,
    is_used: impl Fn(u32) -> bool,
    rng: &mut R,
) -> Option<u32> {
    let count = u64::from(hi - lo) + 1;
    let start = rng.random_range(0..count);
    (0..count)
        .map(|i| lo + ((start + i) % count) as u32)
        .find(|v| !is_used(*v))
}

/// Picks a value in `lo..=hi` not in `used`, scanning from a random start.
fn pick_in_range<R: Rng + ?Sized>(
    lo: u32,
    hi: u32,
    used: &HashSet<u32>,
    rng: &mut R,
) -> Option<u32> {
    let count = u64::from(hi - lo) + 1;
    if used.len() as u64 >= count && used.iter().all(|v| (lo..=hi).contains(v)) {
        return None;
    }
    let start = rng.random_range(0..count);
    (0..count)
        .map(|i| lo + ((start + i) % count) as u32)
        .find(|v| !used.contains(v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn net(s: &str) -> Ipv4Network {
        crate::validate::parse_subnet("subnet", s).expect("valid")
    }

    #[test]
    fn allocates_every_host_but_network_broadcast_gateway_then_exhausts() {
        let subnet = net("10.0.0.0/28");
        let mut rng = StdRng::seed_from_u64(7);
        let mut used = HashSet::new();
        for _ in 0..13 {
            let ip = pick_ip("sw", subnet, &used, &mut rng).unwrap();
            assert!(subnet.contains(ip));
            assert_ne!(ip, subnet.network());
            assert_ne!(ip, subnet.broadcast());
            assert_ne!(ip, gateway(subnet));
            assert!(used.insert(ip), "duplicate {ip}");
        }
        let e = pick_ip("sw", subnet, &used, &mut rng).unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 10.0.0.0/28 of switch \"sw\" is exhausted: no free IP address"
        );
        // Reuse after delete.
        let freed = Ipv4Addr::new(10, 0, 0, 9);
        assert!(used.remove(&freed));
        assert_eq!(pick_ip("sw", subnet, &used, &mut rng).unwrap(), freed);
    }

    #[test]
    fn slash30_has_one_address() {
        let subnet = net("10.0.0.4/30");
        let mut rng = StdRng::seed_from_u64(1);
        let mut used = HashSet::new();
        let ip = pick_ip("sw", subnet, &used, &mut rng).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 6));
        used.insert(ip);
        assert!(pick_ip("sw", subnet, &used, &mut rng).is_err());
    }

    #[test]
    fn random_start_spreads_choices() {
        let subnet = net("10.0.0.0/16");
        let used = HashSet::new();
        let mut rng = StdRng::seed_from_u64(3);
        let picks: HashSet<Ipv4Addr> = (0..20)
            .map(|_| pick_ip("sw", subnet, &used, &mut rng).unwrap())
            .collect();
        assert!(picks.len() > 15);
    }

    #[test]
    fn macs() {
        let mut rng = StdRng::seed_from_u64(5);
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(mac_for_ip(ip), "0a:00:00:01:02:03");
        let mut used = HashSet::new();
        assert_eq!(
            pick_mac("sw", ip, &used, &mut rng).unwrap(),
            "0a:00:00:01:02:03"
        );
        used.insert("0a:00:00:01:02:03".to_string());
        let m = pick_mac("sw", ip, &used, &mut rng).unwrap();
        assert_ne!(m, "0a:00:00:01:02:03");
        assert!(
            crate::validate::parse_mac(&m).is_ok(),
            "{m} must be unicast"
        );
        assert!(m.starts_with("0a:"));
    }

    #[test]
    fn vnis() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut used = HashSet::new();
        for _ in 0..100 {
            let v = pick_vni(&used, &mut rng).unwrap();
            assert!((1..=MAX_VNI).contains(&v));
            assert!(used.insert(v));
        }
        let all: HashSet<u32> = (10..=20).collect();
        assert_eq!(pick_in_range(10, 20, &all, &mut rng), None);
        let mut almost = all.clone();
        almost.remove(&17);
        assert_eq!(pick_in_range(10, 20, &almost, &mut rng), Some(17));
    }
}
