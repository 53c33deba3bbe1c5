//! Captures what `ovs-ofctl` sends: a scripted fake switch on a unix socket answers hello,
//! echo, barrier, features and multipart requests (empty replies) and records every other
//! message, so tests can compare our encoding byte for byte with Open vSwitch's own.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

/// Runs `ovs-ofctl --no-names -O OpenFlow15 CMD unix:SOCK ARGS...` against a fake switch and
/// returns the messages it sent (other than hello/echo/barrier/features/multipart).
pub fn ofctl_capture(cmd: &str, args: &[&str]) -> anyhow::Result<Vec<Vec<u8>>> {
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&sock)?;
    let target = format!("unix:{}", sock.display());
    let mut command = Command::new("ovs-ofctl");
    command.args(["--no-names", "-O", "OpenFlow15", cmd, &target]);
    command.args(args);
    command.stderr(std::process::Stdio::piped());
    let mut child = command.spawn().context("running ovs-ofctl")?;
    listener.set_nonblocking(true)?;
    let mut waited = 0;
    let mut s = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    bail!("ovs-ofctl {cmd} {args:?} exited ({status}) before connecting: {err}");
                }
                waited += 1;
                if waited > 1000 {
                    let _ = child.kill();
                    bail!("ovs-ofctl {cmd} {args:?} never connected");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    };
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Hello with the OpenFlow 1.5 bitmap.
    s.write_all(&[6, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x40])?;
    let mut got = Vec::new();
    loop {
        let mut hdr = [0u8; 8];
        match s.read_exact(&mut hdr) {
            Ok(()) => {}
            Err(_) => break,
        }
        let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        let mut msg = hdr.to_vec();
        msg.resize(len.max(8), 0);
        s.read_exact(&mut msg[8..])?;
        let xid = &hdr[4..8];
        match hdr[1] {
            0 => {}
            2 => {
                let mut r = msg.clone();
                r[1] = 3;
                s.write_all(&r)?;
            }
            5 => {
                let mut r = vec![6, 6, 0, 32];
                r.extend_from_slice(xid);
                r.extend_from_slice(&[0; 12]);
                r.extend_from_slice(&[0xfe, 0, 0, 0, 0, 0, 0, 0x4f, 0, 0, 0, 0]);
                s.write_all(&r)?;
            }
            18 => {
                let mut r = vec![6, 19, 0, 16];
                r.extend_from_slice(xid);
                r.extend_from_slice(&msg[8..10]);
                r.extend_from_slice(&[0; 6]);
                s.write_all(&r)?;
            }
            20 => {
                let mut r = vec![6, 21, 0, 8];
                r.extend_from_slice(xid);
                s.write_all(&r)?;
            }
            _ => got.push(msg),
        }
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "ovs-ofctl {cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(got)
}

/// The single message `ovs-ofctl CMD` sent, with its xid set to `xid`.
pub fn ofctl_one(cmd: &str, args: &[&str], xid: u32) -> anyhow::Result<Vec<u8>> {
    let mut msgs = ofctl_capture(cmd, args)?;
    if msgs.len() != 1 {
        bail!("ovs-ofctl {cmd} {args:?} sent {} messages", msgs.len());
    }
    let mut m = msgs.remove(0);
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    Ok(m)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}
