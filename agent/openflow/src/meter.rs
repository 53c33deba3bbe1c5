//! Meters: the typed model ([`Meter`], [`MeterBand`], [`MeterStats`]), its rendering as
//! `ovs-ofctl -O OpenFlow15 dump-meters BR` / `meter-stats BR` print it (OVS 3.1), and the
//! OpenFlow 1.3+ wire structures (`ofp_meter_mod` body, `ofp_meter_config`, `ofp_meter_stats`)
//! used by [`crate::codec`].
//!
//! The userspace datapath supports drop bands only; `dscp_remark` and other band types are
//! decoded so a foreign meter can still be read and deleted.
//!
//! Meters cannot be changed inside an OpenFlow bundle on Open vSwitch 3.1 (a bundled
//! meter_mod is rejected with `OFPBFC_MSG_UNSUP`); see [`crate::channel::BundleOp`] for how
//! the channel orders them around a bundle.

use std::fmt::Write;

use crate::codec::CodecError;

/// `ofp_meter_flags`.
pub mod flags {
    pub const KBPS: u16 = 1;
    pub const PKTPS: u16 = 2;
    pub const BURST: u16 = 4;
    pub const STATS: u16 = 8;
}

/// Band types.
pub const OFPMBT_DROP: u16 = 1;
pub const OFPMBT_DSCP_REMARK: u16 = 2;

/// The unit of a meter's band rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MeterUnit {
    /// Kilobits per second (`kbps`).
    #[default]
    Kbps,
    /// Packets per second (`pktps`).
    Pktps,
}

/// What a band does when its rate is exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BandType {
    #[default]
    Drop,
    DscpRemark {
        prec_level: u8,
    },
    /// Another band type read back from a switch (experimenter bands).
    Other(u16),
}

/// One meter band. `burst_size` is only meaningful (and only printed) when the meter has
/// `burst` set; otherwise keep it 0 (the codec decodes it as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MeterBand {
    pub kind: BandType,
    pub rate: u32,
    pub burst_size: u32,
}

/// A meter (`meter=ID kbps burst stats bands=type=drop rate=R burst_size=B`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Meter {
    pub id: u32,
    pub unit: MeterUnit,
    pub burst: bool,
    pub stats: bool,
    pub bands: Vec<MeterBand>,
}

impl Meter {
    /// The OFPMF_* flags for this meter.
    pub fn flags(&self) -> u16 {
        let mut f = match self.unit {
            MeterUnit::Kbps => flags::KBPS,
            MeterUnit::Pktps => flags::PKTPS,
        };
        if self.burst {
            f |= flags::BURST;
        }
        if self.stats {
            f |= flags::STATS;
        }
        f
    }
}

/// Per-band counters of a [`MeterStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BandStats {
    pub packet_count: u64,
    pub byte_count: u64,
}

/// One meter's statistics (`OFPMP_METER` reply entry).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub bands: Vec<BandStats>,
}

/// Meter ids above this are reserved (`slowpath`, `controller`, `all`).
pub const OFPM_MAX: u32 = 0xffff_0000;
pub const OFPM_SLOWPATH: u32 = 0xffff_fffd;
pub const OFPM_CONTROLLER: u32 = 0xffff_fffe;
/// Every meter (stats/config requests, delete all).
pub const OFPM_ALL: u32 = 0xffff_ffff;

fn meter_id_text(id: u32, sep: char) -> String {
    if id <= OFPM_MAX {
        return format!("meter{sep}{id}");
    }
    let name = match id {
        OFPM_SLOWPATH => "slowpath",
        OFPM_CONTROLLER => "controller",
        OFPM_ALL => "all",
        _ => "unknown",
    };
    format!("meter{sep}{name}")
}

/// Renders a meter as `ovs-ofctl -O OpenFlow15 dump-meters` prints it: the header line and
/// one `type=...` line per band, joined by `\n` (no trailing newline).
pub fn render_meter(m: &Meter) -> String {
    let mut s = meter_id_text(m.id, '=');
    s.push(' ');
    match m.unit {
        MeterUnit::Kbps => s.push_str("kbps "),
        MeterUnit::Pktps => s.push_str("pktps "),
    }
    if m.burst {
        s.push_str("burst ");
    }
    if m.stats {
        s.push_str("stats ");
    }
    s.push_str("bands=");
    for b in &m.bands {
        s.push_str("\ntype=");
        match b.kind {
            BandType::Drop => s.push_str("drop"),
            BandType::DscpRemark { .. } => s.push_str("dscp_remark"),
            BandType::Other(t) => {
                let _ = write!(s, "{t}");
            }
        }
        let _ = write!(s, " rate={}", b.rate);
        if m.burst {
            let _ = write!(s, " burst_size={}", b.burst_size);
        }
        if let BandType::DscpRemark { prec_level } = b.kind {
            let _ = write!(s, " prec_level={prec_level}");
        }
    }
    s
}

/// Renders meter statistics as `ovs-ofctl meter-stats` prints them (duration excluded: it
/// is printed as `duration:S.NNNs`, which is included here with nanoseconds to 3 digits).
pub fn render_meter_stats(ms: &MeterStats) -> String {
    let mut s = format!(
        "{} flow_count:{} packet_in_count:{} byte_in_count:{} duration:{}.{:03}s bands:",
        meter_id_text(ms.meter_id, ':'),
        ms.flow_count,
        ms.packet_in_count,
        ms.byte_in_count,
        ms.duration_sec,
        ms.duration_nsec / 1_000_000
    );
    for (i, b) in ms.bands.iter().enumerate() {
        let _ = write!(
            s,
            "\n{i}: packet_count:{} byte_count:{}",
            b.packet_count, b.byte_count
        );
    }
    s
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends the bands of `m` (`ofp_meter_band_drop` / `_dscp_remark`, 16 bytes each).
pub(crate) fn encode_bands(out: &mut Vec<u8>, m: &Meter) -> Result<(), CodecError> {
    for b in &m.bands {
        let (t, prec) = match b.kind {
            BandType::Drop => (OFPMBT_DROP, 0),
            BandType::DscpRemark { prec_level } => (OFPMBT_DSCP_REMARK, prec_level),
            BandType::Other(t) => {
                return Err(CodecError::Unencodable {
                    what: "meter band",
                    value: format!("type {t}"),
                })
            }
        };
        put_u16(out, t);
        put_u16(out, 16);
        put_u32(out, b.rate);
        put_u32(out, b.burst_size);
        out.push(prec);
        out.extend_from_slice(&[0; 3]);
    }
    Ok(())
}

/// Decodes bands filling `buf`.
pub(crate) fn decode_bands(buf: &[u8]) -> Result<Vec<MeterBand>, CodecError> {
    let mut bands = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 16 {
            return Err(CodecError::Truncated {
                what: "meter band",
                need: 16,
                have: rest.len(),
            });
        }
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 16 || len > rest.len() || len % 8 != 0 {
            return Err(CodecError::BadLength {
                what: "meter band",
                len,
            });
        }
        let rate = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let burst_size = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let kind = match t {
            OFPMBT_DROP => BandType::Drop,
            OFPMBT_DSCP_REMARK => BandType::DscpRemark {
                prec_level: rest[12],
            },
            t => BandType::Other(t),
        };
        bands.push(MeterBand {
            kind,
            rate,
            burst_size,
        });
        rest = &rest[len..];
    }
    Ok(bands)
}

/// A meter from its OFPMF_* flags, id and bands. Without the `burst` flag the band's
/// burst size is not used, and OVS 3.1 reports it as the rate; it is normalised to 0 so a
/// meter reads back equal to what was sent.
pub(crate) fn meter_from_parts(id: u32, f: u16, mut bands: Vec<MeterBand>) -> Meter {
    if f & flags::BURST == 0 {
        for b in &mut bands {
            b.burst_size = 0;
        }
    }
    Meter {
        id,
        unit: if f & flags::PKTPS != 0 {
            MeterUnit::Pktps
        } else {
            MeterUnit::Kbps
        },
        burst: f & flags::BURST != 0,
        stats: f & flags::STATS != 0,
        bands,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_dump_meters() {
        let m = Meter {
            id: 5,
            unit: MeterUnit::Kbps,
            burst: true,
            stats: true,
            bands: vec![MeterBand {
                kind: BandType::Drop,
                rate: 10000,
                burst_size: 1000,
            }],
        };
        assert_eq!(
            render_meter(&m),
            "meter=5 kbps burst stats bands=\ntype=drop rate=10000 burst_size=1000"
        );
        let m = Meter {
            id: 6,
            unit: MeterUnit::Pktps,
            bands: vec![MeterBand {
                rate: 100,
                ..MeterBand::default()
            }],
            ..Meter::default()
        };
        assert_eq!(render_meter(&m), "meter=6 pktps bands=\ntype=drop rate=100");
    }
}
