//! Flow statistics for the debug service over a short-lived OpenFlow connection of its own
//! to `BRIDGE.mgmt` (a service connection: it gets no packet-ins and shares nothing with the
//! agent's channel, so a slow debug request never delays a bundle). The codec decodes the
//! flows; [`counters`] reads the OXS statistics it skips from the same bytes.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use weft_openflow::codec::{
    self, FlowStatsRequest, Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
    OFP15_VERSION,
};
use weft_openflow::flow::{Flow, Group};

/// Errors reading flow statistics.
#[derive(Debug, thiserror::Error)]
pub enum OfStatsError {
    #[error("OpenFlow socket {socket}: {source}")]
    Io {
        socket: String,
        source: std::io::Error,
    },
    #[error("OpenFlow: {0}")]
    Codec(String),
    #[error("flow statistics: no answer within {0:?}")]
    Timeout(Duration),
    #[error("flow statistics: the switch refused the request: {0}")]
    Refused(String),
}

/// Per-flow counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub duration_sec: u32,
}

const OXS_BASIC: u16 = 0x8002;
const OXS_DURATION: u8 = 0;
const OXS_PACKET_COUNT: u8 = 4;
const OXS_BYTE_COUNT: u8 = 5;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The counters of every `ofp_flow_desc` in one FLOW_DESC multipart reply message (the
/// whole message, OpenFlow header included), in order (pure). Malformed entries end the walk.
pub fn counters(msg: &[u8]) -> Vec<Counters> {
    let mut out = Vec::new();
    // ofp_header (8) + multipart type, flags, pad (8).
    let mut at = 16;
    while at + 24 <= msg.len() {
        let Some(len) = be16(msg, at).map(usize::from) else {
            break;
        };
        if len < 24 || at + len > msg.len() {
            break;
        }
        let entry = &msg[at..at + len];
        let mut c = Counters::default();
        // ofp_match after the 24-byte fixed part.
        if let Some(mlen) = be16(entry, 26).map(usize::from) {
            let s = 24 + round8(mlen);
            if let Some(slen) = be16(entry, s + 2).map(usize::from) {
                let mut o = s + 4;
                let end = (s + slen).min(entry.len());
                while o + 4 <= end {
                    let (Some(class), Some(&fh), Some(&flen)) =
                        (be16(entry, o), entry.get(o + 2), entry.get(o + 3))
                    else {
                        break;
                    };
                    let v = o + 4;
                    if class == OXS_BASIC {
                        match fh >> 1 {
                            OXS_DURATION => c.duration_sec = be32(entry, v).unwrap_or(0),
                            OXS_PACKET_COUNT => c.packets = be64(entry, v).unwrap_or(0),
                            OXS_BYTE_COUNT => c.bytes = be64(entry, v).unwrap_or(0),
                            _ => {}
                        }
                    }
                    o = v + usize::from(flen);
                }
            }
        }
        out.push(c);
        at += len;
    }
    out
}

async fn read_msg(s: &mut UnixStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, OfStatsError> {
    let mut chunk = vec![0u8; 65536];
    loop {
        if let Some(n) = codec::frame_len(buf).map_err(|e| OfStatsError::Codec(e.to_string()))? {
            if buf.len() >= n {
                return Ok(buf.drain(..n).collect());
            }
        }
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|source| OfStatsError::Io {
                socket: "mgmt".into(),
                source,
            })?;
        if n == 0 {
            return Err(OfStatsError::Codec("connection closed".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Most reply bytes one request may bring back.
const MAX_REPLY_BYTES: usize = 64 << 20;

/// Sends one multipart request over a fresh connection and returns every reply part with its
/// raw message bytes.
async fn parts(
    mgmt: &Path,
    body: MultipartRequestBody,
    timeout: Duration,
) -> Result<Vec<(Vec<u8>, MultipartReplyBody)>, OfStatsError> {
    let work = async {
        let io = |source| OfStatsError::Io {
            socket: mgmt.display().to_string(),
            source,
        };
        let enc = |xid, m: &Message| {
            codec::encode_to_vec(xid, m).map_err(|e| OfStatsError::Codec(e.to_string()))
        };
        let mut s = UnixStream::connect(mgmt).await.map_err(io)?;
        s.write_all(&enc(
            1,
            &Message::Hello {
                versions: vec![OFP15_VERSION],
            },
        )?)
        .await
        .map_err(io)?;
        let xid = 2;
        s.write_all(&enc(
            xid,
            &Message::MultipartRequest(MultipartRequest { flags: 0, body }),
        )?)
        .await
        .map_err(io)?;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut total = 0usize;
        loop {
            let raw = read_msg(&mut s, &mut buf).await?;
            total += raw.len();
            if total > MAX_REPLY_BYTES {
                return Err(OfStatsError::Codec(format!(
                    "reply larger than {MAX_REPLY_BYTES} bytes"
                )));
            }
            let (h, msg) = match codec::decode(&raw) {
                Ok(x) => x,
                Err(_) => continue, // a message this codec does not know: not ours
            };
            match msg {
                Message::EchoRequest(p) => {
                    s.write_all(&enc(h.xid, &Message::EchoReply(p))?)
                        .await
                        .map_err(io)?;
                }
                Message::Error(e) if h.xid == xid => {
                    return Err(OfStatsError::Refused(format!("{e:?}")))
                }
                Message::MultipartReply(rep) if h.xid == xid => {
                    let more = rep.more();
                    out.push((raw, rep.body));
                    if !more {
                        return Ok(out);
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| OfStatsError::Timeout(timeout))?
}

/// The flows (with counters) whose cookie is `cookie` (every flow for 0), at most `limit`;
/// true when there were more.
pub async fn dump(
    mgmt: &Path,
    cookie: u64,
    limit: usize,
    timeout: Duration,
) -> Result<(Vec<(Flow, Counters)>, bool), OfStatsError> {
    let mut req = FlowStatsRequest::all();
    if cookie != 0 {
        req.cookie = cookie;
        req.cookie_mask = u64::MAX;
    }
    let mut out = Vec::new();
    let mut truncated = false;
    for (raw, body) in parts(mgmt, MultipartRequestBody::FlowDesc(req), timeout).await? {
        if let MultipartReplyBody::FlowDesc(flows) = body {
            let cs = counters(&raw);
            for (i, f) in flows.into_iter().enumerate() {
                if out.len() >= limit {
                    truncated = true;
                    break;
                }
                out.push((f, cs.get(i).copied().unwrap_or_default()));
            }
        }
    }
    Ok((out, truncated))
}

/// Every group.
pub async fn dump_groups(mgmt: &Path, timeout: Duration) -> Result<Vec<Group>, OfStatsError> {
    let body = MultipartRequestBody::GroupDesc {
        group_id: codec::OFPG_ALL,
    };
    let mut out = Vec::new();
    for (_, b) in parts(mgmt, body, timeout).await? {
        if let MultipartReplyBody::GroupDesc(g) = b {
            out.extend(g);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_oxs_counters_of_each_flow_desc() {
        // Two flow descs, each: 24 fixed bytes, an empty ofp_match (type 1, len 4, pad to 8),
        // ofp_stats with duration, packet and byte counts, then no instructions.
        fn entry(packets: u64, bytes: u64, dur: u32) -> Vec<u8> {
            let mut e = vec![0u8; 24];
            e.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]); // match
            let mut st = vec![0u8, 0, 0, 0];
            st.extend_from_slice(&[0x80, 0x02, OXS_DURATION << 1, 8]);
            st.extend_from_slice(&dur.to_be_bytes());
            st.extend_from_slice(&[0, 0, 0, 0]);
            st.extend_from_slice(&[0x80, 0x02, OXS_PACKET_COUNT << 1, 8]);
            st.extend_from_slice(&packets.to_be_bytes());
            st.extend_from_slice(&[0x80, 0x02, OXS_BYTE_COUNT << 1, 8]);
            st.extend_from_slice(&bytes.to_be_bytes());
            let slen = st.len() as u16;
            st[2..4].copy_from_slice(&slen.to_be_bytes());
            while st.len() % 8 != 0 {
                st.push(0);
            }
            e.extend_from_slice(&st);
            let len = e.len() as u16;
            e[0..2].copy_from_slice(&len.to_be_bytes());
            e
        }
        let mut msg = vec![0u8; 16];
        msg.extend(entry(3, 300, 7));
        msg.extend(entry(0, 0, 1));
        let c = counters(&msg);
        assert_eq!(
            c,
            vec![
                Counters {
                    packets: 3,
                    bytes: 300,
                    duration_sec: 7
                },
                Counters {
                    packets: 0,
                    bytes: 0,
                    duration_sec: 1
                }
            ]
        );
        assert!(counters(&msg[..20]).is_empty());
    }
}
