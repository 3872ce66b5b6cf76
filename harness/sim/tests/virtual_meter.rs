//! The virtual meter as a process: powered by `VirtualPower`, spoken to over
//! its PTY with AT, registering over real UDP with a CoAP server the test
//! plays by hand (coap-lite). Loopback only; every wait is bounded.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices};
use rig::{Debug as _, Power as _};
use sim::{VirtualDebug, VirtualMeterSpec, VirtualPower};

const WAIT: Duration = Duration::from_secs(10);

fn objects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects")
}

fn spec(state: &Path, seed: u64) -> VirtualMeterSpec {
    VirtualMeterSpec {
        program: PathBuf::from(env!("CARGO_BIN_EXE_virtual-meter")),
        args_prefix: Vec::new(),
        state_dir: state.to_owned(),
        objects_dir: objects_dir(),
        seed,
    }
}

/// The harness end of the modem's serial port, minimal: raw mode, reads
/// with a 100 ms tick so waits are bounded.
struct Port {
    file: File,
    pending: Vec<u8>,
    seen: Vec<String>,
}

impl Port {
    fn open(path: &Path) -> Port {
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

    /// Next non-empty line, or None at the deadline / on a read error.
    fn line(&mut self, deadline: Instant) -> Option<String> {
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

    /// Waits for a line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(l) = self.line(deadline) {
            if l.starts_with(prefix) {
                return l;
            }
        }
        panic!(
            "no line starting with {prefix:?} within {WAIT:?}; seen: {:?}",
            self.seen
        );
    }

    /// Sends a command and returns the lines up to and including the final result.
    fn command(&mut self, cmd: &str) -> Vec<String> {
        self.file.write_all(format!("{cmd}\r").as_bytes()).unwrap();
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        while let Some(l) = self.line(deadline) {
            let urc = l.starts_with("+LWM2M:")
                || l == "+SYSSTART"
                || l == "+CEREG: 0"
                || l == "+CEREG: 1";
            if l == cmd || urc {
                continue; // echo, URCs
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

/// The CoAP side the test plays: receives a request, answers it.
struct Server {
    socket: UdpSocket,
}

impl Server {
    fn new() -> Server {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Server { socket }
    }
    fn uri(&self) -> String {
        format!("coap://{}", self.socket.local_addr().unwrap())
    }
    /// The next CoAP request (skipping anything that is not one).
    fn request(&self) -> (Packet, SocketAddr) {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let (n, peer) =
                recv(&self.socket, &mut buf).expect("a datagram from the meter in time");
            if let Ok(p) = Packet::from_bytes(&buf[..n]) {
                if matches!(p.header.code, MessageClass::Request(_)) {
                    return (p, peer);
                }
            }
        }
        panic!("no CoAP request within {WAIT:?}");
    }
    /// The next Register (POST /rd), skipping De-registers and others.
    fn register(&self) -> (Packet, SocketAddr) {
        for _ in 0..10 {
            let (p, peer) = self.request();
            if p.header.code == MessageClass::Request(RequestType::Post) && path(&p) == ["rd"] {
                return (p, peer);
            }
        }
        panic!("no Register");
    }
    fn reply(&self, to: &Packet, peer: SocketAddr, code: ResponseType, location: &[&str]) {
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
}

fn path(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::UriPath)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn query(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::UriQuery)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `recv_from` that retries when a signal (SIGCHLD from a meter another
/// test powered off) interrupts it.
fn recv(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn power_on_publishes_a_pty_that_answers_at() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 1));
    power.on().unwrap();
    assert!(power.is_on());
    let mut port = Port::open(&power.spec().pty_path());
    assert_eq!(port.command("AT"), vec!["OK"]);
    assert_eq!(port.command("AT+CGMI"), vec!["meterbench", "OK"]);
    assert_eq!(port.command("ATE0"), vec!["OK"]);
    assert_eq!(port.command("AT+CFUN?"), vec!["+CFUN: 1", "OK"]);
    assert_eq!(port.command("AT+CEREG?"), vec!["+CEREG: 0,1", "OK"]);
    assert_eq!(port.command("AT+NOPE"), vec!["ERROR"]);
    assert_eq!(
        port.command("AT+LWM2MSTART"),
        vec!["+CME ERROR: 3"],
        "no server configured yet"
    );
    let csq = port.command("AT+CSQ");
    assert!(csq[0].starts_with("+CSQ: ") && csq[1] == "OK", "{csq:?}");
    // The boot URC was printed before anyone opened the port and is still there to read.
    assert!(
        port.seen.iter().any(|l| l == "+SYSSTART"),
        "{:?}",
        port.seen
    );
    power.off().unwrap();
}

#[test]
fn lwm2m_start_registers_with_the_configured_server_and_autostarts_after_power_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new();
    let mut power = VirtualPower::new(spec(dir.path(), 2));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri())),
        vec!["OK"]
    );
    assert_eq!(port.command("AT+LWM2MEP=\"meter-under-test\""), vec!["OK"]);
    assert_eq!(port.command("AT+LWM2MLT=60"), vec!["OK"]);
    assert_eq!(port.command("AT+LWM2MSTART"), vec!["OK"]);

    let (reg, peer) = server.register();
    assert!(peer.ip().is_loopback());
    let q = query(&reg);
    assert!(q.contains(&"ep=meter-under-test".to_owned()), "{q:?}");
    assert!(q.contains(&"lt=60".to_owned()), "{q:?}");
    let objects = String::from_utf8_lossy(&reg.payload).into_owned();
    assert!(objects.contains("</3/0>"), "object list {objects:?}");
    server.reply(&reg, peer, ResponseType::Created, &["rd", "m1"]);
    assert_eq!(
        port.wait_for("+LWM2M: registered"),
        "+LWM2M: registered /rd/m1"
    );

    // Power cut, then power on: the client was enabled, so it registers by itself.
    power.off().unwrap();
    power.on().unwrap();
    let (reg2, _) = server.register();
    assert!(query(&reg2).contains(&"ep=meter-under-test".to_owned()));
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["boot_count"], "2");
    assert_eq!(state["lwm2m.enabled"], "true");
}

#[test]
fn server_reboot_execute_is_answered_then_the_meter_reboots_and_registers_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new();
    let mut power = VirtualPower::new(spec(dir.path(), 3));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri()));
    port.command("AT+LWM2MSTART");
    let (reg, peer) = server.register();
    server.reply(&reg, peer, ResponseType::Created, &["rd", "x"]);
    port.wait_for("+LWM2M: registered");

    let mut exec = Packet::new();
    exec.header.set_type(MessageType::Confirmable);
    exec.header.message_id = 0x4242;
    exec.header.code = MessageClass::Request(RequestType::Post);
    exec.set_token(vec![1, 2, 3, 4]);
    for seg in ["3", "0", "4"] {
        exec.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    server
        .socket
        .send_to(&exec.to_bytes().unwrap(), peer)
        .unwrap();

    // The Execute's answer comes first, then (maybe a De-register, then) a new Register.
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    let mut answered = false;
    while !answered && Instant::now() < deadline {
        let (n, _) = recv(&server.socket, &mut buf).unwrap();
        let p = Packet::from_bytes(&buf[..n]).unwrap();
        if p.header.message_id == 0x4242 && matches!(p.header.code, MessageClass::Response(_)) {
            assert_eq!(p.header.code, MessageClass::Response(ResponseType::Changed));
            answered = true;
        }
    }
    assert!(answered, "Execute /3/0/4 answered 2.04");
    port.wait_for("+LWM2M: reboot");
    port.wait_for("+SYSSTART");
    let (reg2, peer2) = server.register();
    server.reply(&reg2, peer2, ResponseType::Created, &["rd", "y"]);
    assert_eq!(
        port.wait_for("+LWM2M: registered"),
        "+LWM2M: registered /rd/y"
    );
    assert_eq!(
        VirtualDebug::new(dir.path()).read_state().unwrap()["boot_count"],
        "2"
    );
}

#[test]
fn power_off_kills_the_process_and_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 4));
    power.on().unwrap();
    let pid = power.pid().expect("running");
    let mut port = Port::open(&power.spec().pty_path());
    assert_eq!(port.command("AT"), vec!["OK"]);
    power.off().unwrap();
    assert!(!power.is_on());
    assert!(
        !pid_alive(pid),
        "meter process {pid} is gone (killed and reaped)"
    );
    assert!(
        std::fs::symlink_metadata(power.spec().pty_path()).is_err(),
        "PTY link removed"
    );
    // The old port is dead: nothing answers any more.
    let _ = port.file.write_all(b"AT\r");
    assert_eq!(port.line(Instant::now() + Duration::from_millis(500)), None);
    power.off().unwrap(); // off twice is fine
}

#[test]
fn settings_survive_a_power_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 5));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command("AT+LWM2MSRV=\"coap://127.0.0.1:5999\""),
        vec!["OK"]
    );
    assert_eq!(port.command("AT+LWM2MEP=\"kept\""), vec!["OK"]);
    assert_eq!(port.command("AT+LWM2MLT=77"), vec!["OK"]);
    power.off().unwrap();
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    assert_eq!(
        port.command("AT+LWM2MSRV?"),
        vec!["+LWM2MSRV: \"coap://127.0.0.1:5999\"", "OK"]
    );
    assert_eq!(
        port.command("AT+LWM2MEP?"),
        vec!["+LWM2MEP: \"kept\"", "OK"]
    );
    assert_eq!(port.command("AT+LWM2MLT?"), vec!["+LWM2MLT: 77", "OK"]);
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["boot_count"], "2");
    assert_eq!(state["lwm2m.enabled"], "false");
    // The device log holds both boots.
    let log = std::fs::read_to_string(power.spec().device_log_path()).unwrap();
    assert_eq!(log.matches("booted").count(), 2, "{log}");
}

#[test]
fn spawn_failure_and_early_exit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = spec(dir.path(), 6);
    bad.program = PathBuf::from("/nonexistent/virtual-meter");
    let e = VirtualPower::new(bad).on().unwrap_err().to_string();
    assert!(e.contains("/nonexistent/virtual-meter"), "{e}");

    let mut no_objects = spec(dir.path(), 6);
    no_objects.objects_dir = dir.path().join("missing-objects");
    let mut power = VirtualPower::new(no_objects);
    let e = power.on().unwrap_err().to_string();
    assert!(
        e.contains("exited at power-on") && e.contains("missing-objects"),
        "{e}"
    );
    assert!(!power.is_on());
}

#[test]
fn dropping_the_driver_kills_the_meter() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 7));
    power.on().unwrap();
    let pid = power.pid().unwrap();
    drop(power);
    assert!(!pid_alive(pid));
}

/// Sends a confirmable request and returns the matching response.
fn exchange(server: &Server, peer: SocketAddr, mut req: Packet, mid: u16) -> Packet {
    req.header.set_type(MessageType::Confirmable);
    req.header.message_id = mid;
    req.set_token(mid.to_be_bytes().to_vec());
    server
        .socket
        .send_to(&req.to_bytes().unwrap(), peer)
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let (n, _) = recv(&server.socket, &mut buf).unwrap();
        if let Ok(p) = Packet::from_bytes(&buf[..n]) {
            if p.header.message_id == mid && matches!(p.header.code, MessageClass::Response(_)) {
                return p;
            }
        }
    }
    panic!("no response to message {mid}");
}

fn request(method: RequestType, path: &str) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    for seg in path.trim_start_matches('/').split('/') {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    p
}

#[test]
fn a_server_write_is_kept_in_nv_across_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new();
    let mut power = VirtualPower::new(spec(dir.path(), 8));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri()));
    port.command("AT+LWM2MSTART");
    let (reg, peer) = server.register();
    server.reply(&reg, peer, ResponseType::Created, &["rd", "w"]);
    port.wait_for("+LWM2M: registered");

    let mut write = request(RequestType::Put, "/3/0/15");
    write.set_content_format(coap_lite::ContentFormat::TextPlain);
    write.payload = b"Europe/Berlin".to_vec();
    let resp = exchange(&server, peer, write, 0x100);
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Changed)
    );

    // Persisted right after answering; read it the way a debugger reads flash.
    let deadline = Instant::now() + WAIT;
    loop {
        let state = VirtualDebug::new(dir.path()).read_state().unwrap();
        if state.get("written:/3/0/15").map(String::as_str) == Some("Europe/Berlin") {
            break;
        }
        assert!(Instant::now() < deadline, "write not persisted: {state:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    power.off().unwrap();
    power.on().unwrap();
    let (reg2, peer2) = server.register();
    server.reply(&reg2, peer2, ResponseType::Created, &["rd", "w2"]);
    let mut read = request(RequestType::Get, "/3/0/15");
    read.add_option(CoapOption::Accept, vec![0]); // text/plain
    let resp = exchange(&server, peer2, read, 0x200);
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert_eq!(String::from_utf8_lossy(&resp.payload), "Europe/Berlin");
}

#[test]
fn observing_current_time_gets_notifications_as_the_clock_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new();
    let mut power = VirtualPower::new(spec(dir.path(), 9));
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.command("ATE0");
    port.command(&format!("AT+LWM2MSRV=\"{}\"", server.uri()));
    port.command("AT+LWM2MSTART");
    let (reg, peer) = server.register();
    server.reply(&reg, peer, ResponseType::Created, &["rd", "o"]);
    port.wait_for("+LWM2M: registered");

    let mut observe = request(RequestType::Get, "/3/0/13");
    observe.set_observe_value(0);
    observe.add_option(CoapOption::Accept, vec![0]);
    let first = exchange(&server, peer, observe, 0x300);
    assert_eq!(
        first.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert!(
        first.get_observe_value().is_some(),
        "observation established"
    );
    let t0: i64 = String::from_utf8_lossy(&first.payload).parse().unwrap();

    // A notification with a later time arrives (the clock ticks every second).
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    loop {
        assert!(Instant::now() < deadline, "no notification within {WAIT:?}");
        let (n, from) = recv(&server.socket, &mut buf).unwrap();
        let Ok(p) = Packet::from_bytes(&buf[..n]) else {
            continue;
        };
        if p.get_token() != 0x300u16.to_be_bytes() || p.get_observe_value().is_none() {
            continue;
        }
        if p.header.get_type() == MessageType::Confirmable {
            let mut ack = Packet::new();
            ack.header.set_type(MessageType::Acknowledgement);
            ack.header.message_id = p.header.message_id;
            server
                .socket
                .send_to(&ack.to_bytes().unwrap(), from)
                .unwrap();
        }
        let t: i64 = String::from_utf8_lossy(&p.payload).parse().unwrap();
        assert!(t > t0, "notified time {t} after {t0}");
        break;
    }
}
