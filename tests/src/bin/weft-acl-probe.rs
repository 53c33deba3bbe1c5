//! `weft-acl-probe`: what the ACL end-to-end tests run inside pod namespaces (no dependency
//! on nc/hping being installed).
//!
//! ```text
//! weft-acl-probe serve PORT...              # TCP + UDP echo on every PORT until killed
//! weft-acl-probe tcp ADDR:PORT TIMEOUT_MS   # connect, exchange one line
//! weft-acl-probe udp ADDR:PORT TIMEOUT_MS   # send one datagram, wait for the echo
//! weft-acl-probe hold ADDR:PORT SECONDS     # one connection, a line every 100 ms
//! ```
//! `tcp` and `udp` print one word and the elapsed milliseconds: `open 3`, `refused 2`,
//! `timeout 2000`, `unreachable 4` or `error 1 <why>`; exit status 0 whatever the outcome
//! (the test decides). `hold` prints `sent N ok M first_fail_ms F` (F = -1 when none failed)
//! when the time is up; a line that gets no echo within 1 s counts as failed and the
//! connection is kept.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn serve(ports: &[u16]) {
    let mut handles = Vec::new();
    for &p in ports {
        let l = TcpListener::bind(("0.0.0.0", p)).unwrap_or_else(|e| {
            eprintln!("bind tcp {p}: {e}");
            std::process::exit(1)
        });
        handles.push(std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let Ok(w) = s.try_clone() else { return };
                    let mut w = w;
                    let r = BufReader::new(s);
                    for line in r.lines() {
                        let Ok(line) = line else { return };
                        if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        }));
        let u = UdpSocket::bind(("0.0.0.0", p)).unwrap_or_else(|e| {
            eprintln!("bind udp {p}: {e}");
            std::process::exit(1)
        });
        handles.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                if let Ok((n, peer)) = u.recv_from(&mut buf) {
                    let _ = u.send_to(&buf[..n], peer);
                }
            }
        }));
    }
    println!("serving {ports:?}");
    let _ = std::io::stdout().flush();
    for h in handles {
        let _ = h.join();
    }
}

fn word(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ConnectionRefused => "refused",
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout",
        _ => match e.raw_os_error() {
            Some(113) | Some(101) => "unreachable", // EHOSTUNREACH, ENETUNREACH
            _ => "error",
        },
    }
}

fn tcp(addr: SocketAddr, timeout: Duration) -> String {
    let t0 = Instant::now();
    let ms = |t: Instant| t.elapsed().as_millis();
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(timeout));
            if let Err(e) = s.write_all(b"hello\n") {
                return format!("{} {} {e}", word(&e), ms(t0));
            }
            let mut line = String::new();
            match BufReader::new(s).read_line(&mut line) {
                Ok(n) if n > 0 => format!("open {}", ms(t0)),
                Ok(_) => format!("error {} closed", ms(t0)),
                Err(e) => format!("{} {} {e}", word(&e), ms(t0)),
            }
        }
        Err(e) => format!("{} {} {e}", word(&e), ms(t0)),
    }
}

fn udp(addr: SocketAddr, timeout: Duration) -> String {
    let t0 = Instant::now();
    let ms = |t: Instant| t.elapsed().as_millis();
    let s = match UdpSocket::bind("0.0.0.0:0") {
        Ok(s) => s,
        Err(e) => return format!("error 0 {e}"),
    };
    if let Err(e) = s.connect(addr) {
        return format!("error 0 {e}");
    }
    let _ = s.set_read_timeout(Some(timeout));
    if let Err(e) = s.send(b"ping") {
        return format!("{} {} {e}", word(&e), ms(t0));
    }
    let mut buf = [0u8; 64];
    match s.recv(&mut buf) {
        Ok(_) => format!("reply {}", ms(t0)),
        Err(e) => format!("{} {} {e}", word(&e), ms(t0)),
    }
}

fn hold(addr: SocketAddr, secs: u64) -> String {
    let t0 = Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return format!("sent 0 ok 0 first_fail_ms 0 connect: {e}"),
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let mut r = match s.try_clone() {
        Ok(c) => BufReader::new(c),
        Err(e) => return format!("sent 0 ok 0 first_fail_ms 0 {e}"),
    };
    println!("connected");
    let _ = std::io::stdout().flush();
    let (mut sent, mut ok, mut first_fail) = (0u64, 0u64, -1i128);
    let mut pending = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        sent += 1;
        if s.write_all(format!("{sent}\n").as_bytes()).is_err() {
            if first_fail < 0 {
                first_fail = t0.elapsed().as_millis() as i128;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        pending += 1;
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(n) if n > 0 => {
                // Late echoes of earlier lines count once each.
                ok += 1;
                pending -= 1;
            }
            _ => {
                if first_fail < 0 {
                    first_fail = t0.elapsed().as_millis() as i128;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = pending;
    format!("sent {sent} ok {ok} first_fail_ms {first_fail}")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = |i: usize| -> SocketAddr {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("expected ADDR:PORT");
            std::process::exit(2)
        })
    };
    let num = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("expected a number");
            std::process::exit(2)
        })
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let ports: Vec<u16> = args[1..].iter().filter_map(|p| p.parse().ok()).collect();
            serve(&ports)
        }
        Some("tcp") => println!("{}", tcp(addr(1), Duration::from_millis(num(2)))),
        Some("udp") => println!("{}", udp(addr(1), Duration::from_millis(num(2)))),
        Some("hold") => println!("{}", hold(addr(1), num(2))),
        _ => {
            eprintln!("usage: weft-acl-probe serve PORT... | tcp|udp ADDR:PORT TIMEOUT_MS | hold ADDR:PORT SECONDS");
            std::process::exit(2)
        }
    }
}
