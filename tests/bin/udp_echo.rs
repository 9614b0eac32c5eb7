//! A tiny UDP tool for tests (busybox has no UDP server):
//! `udp-echo serve PORT` answers each datagram with "echo:" + datagram;
//! `udp-echo ask HOST:PORT MESSAGE` prints the answer (2 s timeout).

use std::net::UdpSocket;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(args[2].parse().expect("port")),
        Some("ask") => ask(&args[2], &args[3]),
        _ => {
            eprintln!("usage: udp-echo serve PORT | ask HOST:PORT MESSAGE");
            std::process::exit(2);
        }
    }
}

fn serve(port: u16) {
    let sock = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, peer);
        }
    }
}

fn ask(target: &str, message: &str) {
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    sock.send_to(message.as_bytes(), target).expect("send");
    let mut buf = [0u8; 2048];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => println!("{}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => {
            eprintln!("no answer: {e}");
            std::process::exit(1);
        }
    }
}
