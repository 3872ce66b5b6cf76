//! What the firmware tests share: a virtual meter powered by `VirtualPower`,
//! its AT port, an LwM2M server played by the test over UDP (answers the
//! registration interface, sends device management requests and waits for
//! their answers), and package servers (CoAP Block2 with `respond_block2`,
//! a minimal HTTP/1.1 responder with Range). Loopback only, bounded waits.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::coap::block::{respond_block2, BlockKind, BlockOption};
use rig::{Debug as _, Power as _};
use sim::{VirtualDebug, VirtualPower};

pub const WAIT: Duration = Duration::from_secs(15);

pub use crate::meter_io::{spec, Port};

/// A powered meter registered with a test server.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub power: VirtualPower,
    pub port: Port,
    pub server: Lwm2m,
}

impl Bench {
    /// Powers a fresh meter, runs `setup` AT commands, starts the client and
    /// waits for its Register.
    pub fn start(seed: u64, setup: &[&str]) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let mut power = VirtualPower::new(spec(dir.path(), seed));
        power.on().unwrap();
        let mut port = Port::open(&power.spec().pty_path());
        port.wait_for("+SYSSTART");
        let mut server = Lwm2m::new();
        assert_eq!(port.command("ATE0"), vec!["OK"]);
        for line in setup {
            assert_eq!(port.command(line), vec!["OK"], "{line}");
        }
        assert_eq!(
            port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri())),
            vec!["OK"]
        );
        assert_eq!(port.command("AT+LWM2MSTART"), vec!["OK"]);
        server.await_register(WAIT);
        Bench {
            dir,
            power,
            port,
            server,
        }
    }

    pub fn debug(&self) -> std::collections::BTreeMap<String, String> {
        VirtualDebug::new(self.dir.path()).read_state().unwrap()
    }

    /// Waits until the debug port shows `key` satisfying `pred`.
    pub fn await_debug(&self, key: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let v = self.debug().get(key).cloned().unwrap_or_default();
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{key} stayed {v:?} for {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn recv(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Ok(r) => return Some(r),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

pub fn uri_path(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::UriPath)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn code_of(p: &Packet) -> u16 {
    let raw: u8 = p.header.code.into();
    u16::from(raw >> 5) * 100 + u16::from(raw & 0x1f)
}

/// The LwM2M server, played by the test.
pub struct Lwm2m {
    socket: UdpSocket,
    /// The meter's address (from its latest Register).
    pub meter: Option<SocketAddr>,
    pub registers: u32,
    next_mid: u16,
}

impl Lwm2m {
    pub fn new() -> Lwm2m {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Lwm2m {
            socket,
            meter: None,
            registers: 0,
            next_mid: 0x4000,
        }
    }

    pub fn uri(&self) -> String {
        format!("coap://{}", self.socket.local_addr().unwrap())
    }

    /// Receives one datagram and answers it if it is a registration
    /// request; returns other packets.
    fn poll(&mut self) -> Option<(Packet, SocketAddr)> {
        let mut buf = vec![0u8; 65_535];
        let (n, peer) = recv(&self.socket, &mut buf)?;
        let p = Packet::from_bytes(&buf[..n]).ok()?;
        if let MessageClass::Request(method) = p.header.code {
            let path = uri_path(&p);
            let (code, location) = match (method, path.first().map(String::as_str)) {
                (RequestType::Post, Some("rd")) if path.len() == 1 => {
                    self.registers += 1;
                    self.meter = Some(peer);
                    (
                        ResponseType::Created,
                        vec!["rd".to_owned(), format!("r{}", self.registers)],
                    )
                }
                (RequestType::Post, Some("rd")) => (ResponseType::Changed, vec![]),
                (RequestType::Delete, Some("rd")) => (ResponseType::Deleted, vec![]),
                _ => (ResponseType::NotFound, vec![]),
            };
            let mut r = Packet::new();
            r.header.set_type(MessageType::Acknowledgement);
            r.header.message_id = p.header.message_id;
            r.header.code = MessageClass::Response(code);
            r.set_token(p.get_token().to_vec());
            for seg in location {
                r.add_option(CoapOption::LocationPath, seg.into_bytes());
            }
            let _ = self.socket.send_to(&r.to_bytes().unwrap(), peer);
            return None;
        }
        if p.header.get_type() == MessageType::Confirmable {
            // A CON notification or the like: acknowledge.
            let mut ack = Packet::new();
            ack.header.set_type(MessageType::Acknowledgement);
            ack.header.message_id = p.header.message_id;
            let _ = self.socket.send_to(&ack.to_bytes().unwrap(), peer);
        }
        Some((p, peer))
    }

    /// Waits for the next Register (counts it).
    pub fn await_register(&mut self, within: Duration) {
        let before = self.registers;
        let deadline = Instant::now() + within;
        while self.registers == before {
            assert!(Instant::now() < deadline, "no Register within {within:?}");
            self.poll();
        }
    }

    /// Sends `req` (CON) to the meter and returns its response.
    pub fn exchange(&mut self, mut req: Packet) -> Packet {
        let peer = self.meter.expect("the meter registered");
        self.next_mid = self.next_mid.wrapping_add(1);
        let mid = self.next_mid;
        req.header.set_type(MessageType::Confirmable);
        req.header.message_id = mid;
        req.set_token(mid.to_be_bytes().to_vec());
        let bytes = req.to_bytes().unwrap();
        let deadline = Instant::now() + WAIT;
        let mut resend = Instant::now();
        loop {
            if Instant::now() >= resend {
                self.socket.send_to(&bytes, peer).unwrap();
                resend = Instant::now() + Duration::from_secs(2);
            }
            assert!(
                Instant::now() < deadline,
                "no response to {:?}",
                uri_path(&req)
            );
            if let Some((p, _)) = self.poll() {
                if p.get_token() == mid.to_be_bytes()
                    && matches!(p.header.code, MessageClass::Response(_))
                {
                    return p;
                }
            }
        }
    }

    pub fn read_text(&mut self, path: &str) -> (u16, String) {
        let mut req = request(RequestType::Get, path);
        req.add_option(CoapOption::Accept, vec![0]);
        let r = self.exchange(req);
        (
            code_of(&r),
            String::from_utf8_lossy(&r.payload).into_owned(),
        )
    }

    pub fn write_text(&mut self, path: &str, value: &str) -> u16 {
        let mut req = request(RequestType::Put, path);
        req.add_option(CoapOption::ContentFormat, vec![0]);
        req.payload = value.as_bytes().to_vec();
        code_of(&self.exchange(req))
    }

    pub fn execute(&mut self, path: &str) -> u16 {
        code_of(&self.exchange(request(RequestType::Post, path)))
    }

    /// Polls `path` until it reads `expected`; fails with the last value.
    pub fn await_value(&mut self, path: &str, expected: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (code, v) = self.read_text(path);
            if code == 205 && v == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} read {code} {v:?}, expected {expected:?} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// State and Update Result of object 5.
    pub fn firmware_status(&mut self) -> (String, String) {
        (self.read_text("/5/0/3").1, self.read_text("/5/0/5").1)
    }

    /// Pushes `image` to `path` with Block1 in blocks of 2^(szx+4) bytes;
    /// the final response code.
    pub fn push_block1(&mut self, path: &str, image: &[u8], szx: u8) -> u16 {
        let size = 16usize << szx;
        let blocks = image.len().div_ceil(size).max(1);
        for num in 0..blocks {
            let chunk = &image[num * size..((num + 1) * size).min(image.len())];
            let more = num + 1 < blocks;
            let mut req = request(RequestType::Put, path);
            req.add_option(CoapOption::ContentFormat, vec![42]);
            BlockOption::new(num as u32, more, szx)
                .unwrap()
                .set_on(&mut req, BlockKind::Block1);
            req.payload = chunk.to_vec();
            let r = self.exchange(req);
            let code = code_of(&r);
            if !more || code != 231 {
                return code;
            }
        }
        unreachable!()
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

/// A CoAP file server for packages: GET with Block2 via `respond_block2`.
pub struct CoapFiles {
    pub addr: SocketAddr,
    /// (block offset, block size) of every GET, in order.
    pub requests: Arc<Mutex<Vec<(usize, usize)>>>,
    /// Blocks still answered; then the server goes silent.
    pub answer: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CoapFiles {
    pub fn start(files: HashMap<String, Vec<u8>>, per_block_delay: Duration) -> CoapFiles {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicUsize::new(usize::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (requests, answer, stop) = (requests.clone(), answer.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Some((n, peer)) = recv(&socket, &mut buf) else {
                        continue;
                    };
                    let Ok(req) = Packet::from_bytes(&buf[..n]) else {
                        continue;
                    };
                    let block = BlockOption::from_packet(&req, BlockKind::Block2)
                        .ok()
                        .flatten();
                    requests
                        .lock()
                        .unwrap()
                        .push(block.map_or((0, 1024), |b| (b.offset(), b.size())));
                    if answer.load(Ordering::Relaxed) == 0 {
                        continue;
                    }
                    let _ = answer.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
                        Some(a.saturating_sub(1))
                    });
                    std::thread::sleep(per_block_delay);
                    let name = uri_path(&req).join("/");
                    let mut resp = match files.get(&name) {
                        Some(image) => {
                            let etag = (image.len() as u32).to_be_bytes();
                            respond_block2(&req, image, &etag, 6, Some(42))
                        }
                        None => {
                            let mut p = Packet::new();
                            p.header.code = MessageClass::Response(ResponseType::NotFound);
                            p
                        }
                    };
                    resp.header.set_type(MessageType::Acknowledgement);
                    resp.header.message_id = req.header.message_id;
                    resp.set_token(req.get_token().to_vec());
                    let _ = socket.send_to(&resp.to_bytes().unwrap(), peer);
                }
            });
        }
        CoapFiles {
            addr,
            requests,
            answer,
            stop,
        }
    }

    pub fn uri(&self, name: &str) -> String {
        format!("coap://{}/{name}", self.addr)
    }
}

impl Drop for CoapFiles {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A minimal HTTP/1.1 responder (test double): GET of known names, with
/// `Range: bytes=N-` answered 206.
pub struct HttpFiles {
    pub addr: SocketAddr,
    /// The Range header of each request ("" when none).
    pub ranges: Arc<Mutex<Vec<String>>>,
}

impl HttpFiles {
    pub fn start(files: HashMap<String, Vec<u8>>) -> HttpFiles {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(WAIT));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                let mut range = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("range") {
                            range = v.trim().to_owned();
                        }
                    }
                }
                seen.lock().unwrap().push(range.clone());
                let name = first
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_owned();
                let mut out = stream;
                let Some(image) = files.get(&name) else {
                    let _ = out.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                };
                let start = range
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|s| *s < image.len());
                let (status, body, extra) = match start {
                    Some(s) => (
                        "206 Partial Content",
                        &image[s..],
                        format!(
                            "Content-Range: bytes {s}-{}/{}\r\n",
                            image.len() - 1,
                            image.len()
                        ),
                    ),
                    None => ("200 OK", &image[..], String::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"{}\"\r\n{extra}Connection: close\r\n\r\n",
                    body.len(),
                    image.len()
                );
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(body);
            }
        });
        HttpFiles { addr, ranges }
    }
}

/// A test image: `len` body bytes, deterministic.
pub fn image(version: &str, self_test: u8, len: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    sim::firmware::image::build(version, self_test, &body)
}

pub fn files(entries: &[(&str, Vec<u8>)]) -> HashMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(n, b)| (n.to_string(), b.clone()))
        .collect()
}
