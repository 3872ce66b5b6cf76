//! The harness side of a virtual meter, minimal, for this crate's process
//! tests: the PTY port (raw, 100 ms read ticks, bounded waits) and a CoAP
//! server played by hand over loopback UDP.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices};
use sim::VirtualMeterSpec;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn objects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects")
}

pub fn spec(state: &Path, seed: u64) -> VirtualMeterSpec {
    VirtualMeterSpec {
        program: PathBuf::from(env!("CARGO_BIN_EXE_virtual-meter")),
        args_prefix: Vec::new(),
        state_dir: state.to_owned(),
        objects_dir: objects_dir(),
        seed,
    }
}

pub struct Port {
    file: File,
    pending: Vec<u8>,
    pub seen: Vec<String>,
}

impl Port {
    pub fn open(path: &Path) -> Port {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open PTY link");
        let mut tio = tcgetattr(file.as_fd()).unwrap();
        cfmakeraw(&mut tio);
        tio.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        tio.control_chars[SpecialCharacterIndices::VTIME as usize] = 1;
        tcsetattr(file.as_fd(), SetArg::TCSANOW, &tio).unwrap();
        Port {
            file,
            pending: Vec::new(),
            seen: Vec::new(),
        }
    }

    pub fn line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
                let raw: Vec<u8> = self.pending.drain(..=pos).collect();
                let l = String::from_utf8_lossy(&raw).trim().to_owned();
                if !l.is_empty() {
                    self.seen.push(l.clone());
                    return Some(l);
                }
                continue;
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 256];
            match self.file.read(&mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits up to `within` for a line starting with `prefix`.
    pub fn wait_for_within(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while let Some(l) = self.line(deadline) {
            if l.starts_with(prefix) {
                return l;
            }
        }
        panic!(
            "no line starting with {prefix:?} within {within:?}; seen: {:?}",
            self.seen
        );
    }

    pub fn wait_for(&mut self, prefix: &str) -> String {
        self.wait_for_within(prefix, WAIT)
    }

    /// Sends a command; the answer's lines up to the final result (echo and URCs skipped).
    pub fn command(&mut self, cmd: &str) -> Vec<String> {
        self.file.write_all(format!("{cmd}\r").as_bytes()).unwrap();
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        while let Some(l) = self.line(deadline) {
            let urc = l.starts_with("+LWM2M:")
                || l == "+SYSSTART"
                || l.starts_with("+MBSWITCH:")
                || (l.starts_with("+CEREG: ") && !l.contains(','));
            if l == cmd || urc {
                continue;
            }
            let done = l == "OK" || l == "ERROR" || l.starts_with("+CME ERROR:");
            lines.push(l);
            if done {
                return lines;
            }
        }
        panic!(
            "no final result for {cmd:?}; got {lines:?}; seen: {:?}",
            self.seen
        );
    }
}

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

pub fn path(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::UriPath)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `recv_from` that retries when a signal interrupts it.
pub fn recv(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
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
