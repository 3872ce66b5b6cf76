//! The harness side of a virtual meter, minimal, for this crate's process
//! tests: the PTY port (`meter_io`) and a CoAP server played by hand over
//! loopback UDP.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use rig::Power as _;
use sim::VirtualPower;

pub use crate::meter_io::{spec, Port};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub socket: UdpSocket,
}

impl Server {
    pub fn new() -> Server {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Server { socket }
    }

    pub fn uri(&self) -> String {
        format!("coap://{}", self.socket.local_addr().unwrap())
    }

    /// The next CoAP request, skipping anything else, within `within`.
    pub fn request_within(&self, within: Duration) -> (Packet, SocketAddr) {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok((n, peer)) = recv(&self.socket, &mut buf) else {
                continue;
            };
            if let Ok(p) = Packet::from_bytes(&buf[..n]) {
                if matches!(p.header.code, MessageClass::Request(_)) {
                    return (p, peer);
                }
            }
        }
        panic!("no CoAP request within {within:?}");
    }

    /// The next Register (POST /rd) within `within`, skipping other requests.
    pub fn register_within(&self, within: Duration) -> (Packet, SocketAddr) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no Register within {within:?}");
            let (p, peer) = self.request_within(left);
            if p.header.code == MessageClass::Request(RequestType::Post) && path(&p) == ["rd"] {
                return (p, peer);
            }
        }
    }

    pub fn reply(&self, to: &Packet, peer: SocketAddr, code: ResponseType, location: &[&str]) {
        let mut r = Packet::new();
        r.header.set_type(MessageType::Acknowledgement);
        r.header.message_id = to.header.message_id;
        r.header.code = MessageClass::Response(code);
        r.set_token(to.get_token().to_vec());
        for seg in location {
            r.add_option(CoapOption::LocationPath, seg.as_bytes().to_vec());
        }
        self.socket.send_to(&r.to_bytes().unwrap(), peer).unwrap();
    }

    /// Accepts the next Register; returns it and the client's address.
    pub fn accept_register(&self, within: Duration, location: &str) -> (Packet, SocketAddr) {
        let (reg, peer) = self.register_within(within);
        self.reply(&reg, peer, ResponseType::Created, &["rd", location]);
        (reg, peer)
    }

    /// Sends a confirmable request and returns the response (skipping other traffic).
    pub fn exchange(&self, peer: SocketAddr, mut req: Packet, mid: u16) -> Packet {
        req.header.set_type(MessageType::Confirmable);
        req.header.message_id = mid;
        req.set_token(mid.to_be_bytes().to_vec());
        self.socket.send_to(&req.to_bytes().unwrap(), peer).unwrap();
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok((n, _)) = recv(&self.socket, &mut buf) else {
                continue;
            };
            if let Ok(p) = Packet::from_bytes(&buf[..n]) {
                if p.header.message_id == mid && matches!(p.header.code, MessageClass::Response(_))
                {
                    return p;
                }
            }
        }
        panic!("no response to message {mid}");
    }

    /// PUT `value` as text/plain to `path`; expects 2.04.
    pub fn write_text(&self, peer: SocketAddr, path: &str, value: &str, mid: u16) {
        let mut w = request(RequestType::Put, path);
        w.set_content_format(coap_lite::ContentFormat::TextPlain);
        w.payload = value.as_bytes().to_vec();
        let r = self.exchange(peer, w, mid);
        assert_eq!(
            r.header.code,
            MessageClass::Response(ResponseType::Changed),
            "{path}"
        );
    }

    /// The next notification of the observation whose token is `mid`'s
    /// bytes (as [`Server::exchange`] set it), acknowledged if confirmable
    /// so the meter keeps notifying; None at `deadline`.
    pub fn notification(&self, mid: u16, deadline: Instant) -> Option<Packet> {
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((n, from)) = recv(&self.socket, &mut buf) else {
                continue;
            };
            let Ok(p) = Packet::from_bytes(&buf[..n]) else {
                continue;
            };
            if p.get_token() != mid.to_be_bytes() || p.get_observe_value().is_none() {
                continue;
            }
            if p.header.get_type() == MessageType::Confirmable {
                let mut ack = Packet::new();
                ack.header.set_type(MessageType::Acknowledgement);
                ack.header.message_id = p.header.message_id;
                self.socket.send_to(&ack.to_bytes().unwrap(), from).unwrap();
            }
            return Some(p);
        }
        None
    }

    /// GET `path` as text/plain; the payload as a string.
    pub fn read_text(&self, peer: SocketAddr, path: &str, mid: u16) -> String {
        let mut read = request(RequestType::Get, path);
        read.add_option(CoapOption::Accept, vec![0]);
        let resp = self.exchange(peer, read, mid);
        assert_eq!(
            resp.header.code,
            MessageClass::Response(ResponseType::Content),
            "read {path}"
        );
        String::from_utf8_lossy(&resp.payload).into_owned()
    }
}

pub fn request(method: RequestType, path: &str) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    for seg in path.trim_start_matches('/').split('/') {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    p
}

/// The Uri-Path segments of `p`.
pub fn path(p: &Packet) -> Vec<String> {
    option_texts(p, CoapOption::UriPath)
}

/// The Uri-Query items of `p`.
pub fn query(p: &Packet) -> Vec<String> {
    option_texts(p, CoapOption::UriQuery)
}

fn option_texts(p: &Packet, option: CoapOption) -> Vec<String> {
    p.get_option(option)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `recv_from` that retries when a signal (SIGCHLD from a meter another
/// test powered off) interrupts it.
pub fn recv(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A fresh meter (state in a new temporary directory) powered on, with
/// its AT port open.
pub fn power_on(seed: u64) -> (tempfile::TempDir, VirtualPower, Port) {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), seed));
    power.on().unwrap();
    let port = Port::open(&power.spec().pty_path());
    (dir, power, port)
}

/// Starts the client against `server` over AT and accepts its Register.
pub fn bring_up(port: &mut Port, server: &Server, location: &str) -> (Packet, SocketAddr) {
    port.command("ATE0");
    port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri()));
    port.command("AT+LWM2MSTART");
    let r = server.accept_register(WAIT, location);
    port.wait_for("+LWM2M: registered");
    r
}
