//! `weft-tcpcheck`: a tiny TCP transfer check used by the end-to-end tests inside pod
//! namespaces (no dependency on nc/iperf being installed).
//!
//! ```text
//! weft-tcpcheck server ADDR:PORT BYTES   # accept one connection, read BYTES, verify, reply "ok"
//! weft-tcpcheck client ADDR:PORT BYTES   # send BYTES of a fixed pattern, wait for "ok"
//! weft-tcpcheck hold-server ADDR:PORT SECS  # accept one connection, echo it for SECS
//! weft-tcpcheck hold-client ADDR:PORT SECS  # one connection, a line every 100 ms, each echoed
//! ```
//! The server prints the peer (`ok BYTES from PEER`), so a test sees a NAT's source address.
//! Exit status 0 when the full, uncorrupted transfer was acknowledged; 1 otherwise, with the
//! reason on stderr. Both sides give up after 30 s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn pattern(i: u64) -> u8 {
    // Truncation intended: a byte pattern that is not periodic in 256.
    ((i * 7 + 3) % 251) as u8
}

fn server(addr: SocketAddr, bytes: u64) -> Result<(), String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let (mut s, peer) = l.accept().map_err(|e| format!("accept: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got: u64 = 0;
    loop {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("read after {got} bytes: {e}"))?;
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            let idx = got + k as u64;
            if *b != pattern(idx) {
                return Err(format!("corrupt byte at offset {idx} from {peer}"));
            }
        }
        got += n as u64;
        if got >= bytes {
            break;
        }
    }
    if got != bytes {
        return Err(format!("got {got} bytes from {peer}, want {bytes}"));
    }
    s.write_all(b"ok\n").map_err(|e| format!("ack: {e}"))?;
    println!("ok {got} from {peer}");
    Ok(())
}

/// Echoes one connection until it closes or `secs` pass.
fn hold_server(addr: SocketAddr, secs: u64) -> Result<(), String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let (mut s, peer) = l.accept().map_err(|e| format!("accept: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(secs)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut total = 0u64;
    loop {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("read after {total} bytes from {peer}: {e}"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        s.write_all(&buf[..n])
            .map_err(|e| format!("echo after {total} bytes: {e}"))?;
    }
    println!("ok {total} from {peer}");
    Ok(())
}

/// One connection for `secs`: a line every 100 ms, each echoed within 10 s.
fn hold_client(addr: SocketAddr, secs: u64) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let line = format!("{n:08}\n");
        s.write_all(line.as_bytes())
            .map_err(|e| format!("write {n}: {e}"))?;
        let mut back = [0u8; 9];
        s.read_exact(&mut back)
            .map_err(|e| format!("echo {n} after {:?}: {e}", start.elapsed()))?;
        if back != line.as_bytes() {
            return Err(format!("echo {n} corrupt: {back:?}"));
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("ok {n} round trips");
    Ok(())
}

fn client(addr: SocketAddr, bytes: u64) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut sent: u64 = 0;
    let mut chunk = Vec::with_capacity(64 * 1024);
    while sent < bytes {
        chunk.clear();
        let n = (bytes - sent).min(64 * 1024);
        chunk.extend((0..n).map(|k| pattern(sent + k)));
        s.write_all(&chunk)
            .map_err(|e| format!("write after {sent} bytes: {e}"))?;
        sent += n;
    }
    let mut ack = [0u8; 3];
    s.read_exact(&mut ack)
        .map_err(|e| format!("waiting for ack: {e}"))?;
    if &ack != b"ok\n" {
        return Err(format!("bad ack {ack:?}"));
    }
    println!("ok {sent}");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: weft-tcpcheck server|client ADDR:PORT BYTES | hold-server|hold-client ADDR:PORT SECS";
    let (mode, addr, bytes) = match args.as_slice() {
        [_, m, a, b] => (m.as_str(), a, b),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("invalid ADDR:PORT {addr:?}; {usage}");
            std::process::exit(2);
        }
    };
    let bytes: u64 = match bytes.parse() {
        Ok(b) => b,
        Err(_) => {
            eprintln!("invalid BYTES {bytes:?}; {usage}");
            std::process::exit(2);
        }
    };
    let res = match mode {
        "server" => server(addr, bytes),
        "client" => client(addr, bytes),
        "hold-server" => hold_server(addr, bytes),
        "hold-client" => hold_client(addr, bytes),
        other => {
            eprintln!("unknown mode {other:?}; {usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("weft-tcpcheck {mode}: {e}");
        std::process::exit(1);
    }
}
