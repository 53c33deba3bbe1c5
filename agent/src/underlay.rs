//! Tunnel neighbour warm-up for the userspace datapath.
//!
//! With `datapath_type=netdev`, OVS resolves a tunnel's underlay next hop itself: its
//! `tnl/neigh` cache is filled by snooping ARP/ND replies on the bridge that holds the local
//! underlay address, and a tunnelled packet that finds no entry is DROPPED (OVS sends an ARP
//! request instead). So the first packet towards a chassis this host has never tunnelled to
//! (a new pod's first ping, when it is the first pod of its switch here) would be lost.
//!
//! When a remote chassis appears in the view, the agent sends one empty UDP datagram from the
//! host to its encap IP (the discard port): the host kernel resolves the address by ARP
//! through that bridge and OVS learns the reply, well before the view's flows are acked. It
//! is harmless with the kernel datapath, which uses the kernel's table anyway.
//!
//! [`Warmup::due`] (pure) decides which addresses to probe; [`on_delta`] does it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::debug;
use weft_proto::model::view::ViewDelta;

/// The discard port (RFC 863): nothing answers, the kernel at most returns port-unreachable.
const DISCARD_PORT: u16 = 9;

/// An address probed this recently is not probed again when its chassis is re-announced
/// (OVS keeps a learned neighbour for 15 minutes of idleness).
pub const REPROBE_AFTER: Duration = Duration::from_secs(60);

/// Which encap IPs were probed when.
#[derive(Debug, Default)]
pub struct Warmup {
    probed: HashMap<IpAddr, Instant>,
}

impl Warmup {
    /// The addresses among `encap_ips` to probe at `now` (valid, not probed within
    /// [`REPROBE_AFTER`]), recorded as probed. Unparsable ones are skipped: the view
    /// validation reports them.
    pub fn due<'a>(
        &mut self,
        encap_ips: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for s in encap_ips {
            let Ok(ip) = s.parse::<IpAddr>() else {
                continue;
            };
            if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
                continue;
            }
            let fresh = self
                .probed
                .get(&ip)
                .is_some_and(|t| now.saturating_duration_since(*t) < REPROBE_AFTER);
            if !fresh && !out.contains(&ip) {
                self.probed.insert(ip, now);
                out.push(ip);
            }
        }
        out
    }
}

fn state() -> &'static Mutex<Warmup> {
    static STATE: OnceLock<Mutex<Warmup>> = OnceLock::new();
    STATE.get_or_init(|| Mutex::new(Warmup::default()))
}

/// Probes the encap IPs of the remote chassis `delta` adds or changes (see the module doc).
/// Never blocks: one non-blocking send per address, errors only logged.
pub fn on_delta(delta: &ViewDelta) {
    if delta.chassis.is_empty() {
        return;
    }
    let due = match state().lock() {
        Ok(mut w) => w.due(
            delta.chassis.iter().map(|c| c.encap_ip.as_str()),
            Instant::now(),
        ),
        Err(_) => return,
    };
    for ip in due {
        if let Err(e) = probe(ip) {
            debug!(%ip, error = %e, "tunnel neighbour probe not sent");
        }
    }
}

fn probe(ip: IpAddr) -> std::io::Result<()> {
    let local: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(local)?;
    s.set_nonblocking(true)?;
    s.send_to(&[], (ip, DISCARD_PORT))?;
    debug!(%ip, "tunnel neighbour probe sent");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_each_new_address_once_until_it_is_stale() {
        let mut w = Warmup::default();
        let t0 = Instant::now();
        let got = w.due(["172.31.0.12", "172.31.0.13", "172.31.0.12", "fd00::1"], t0);
        assert_eq!(
            got,
            ["172.31.0.12", "172.31.0.13", "fd00::1"]
                .map(|s| s.parse::<IpAddr>().unwrap())
                .to_vec()
        );
        assert!(w
            .due(["172.31.0.12"], t0 + Duration::from_secs(5))
            .is_empty());
        assert_eq!(
            w.due(["172.31.0.12"], t0 + REPROBE_AFTER).len(),
            1,
            "probed again once stale"
        );
    }

    #[test]
    fn skips_what_is_no_unicast_address() {
        let mut w = Warmup::default();
        let got = w.due(
            ["", "not-an-ip", "0.0.0.0", "127.0.0.1", "224.0.0.1", "::"],
            Instant::now(),
        );
        assert!(got.is_empty(), "{got:?}");
    }
}
