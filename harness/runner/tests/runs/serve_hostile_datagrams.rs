//! `meterbench serve` answers what a peer sends and stays up: datagrams that
//! once killed it, sent over real loopback UDP to the real binary.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

struct Serve {
    child: Child,
    port: u16,
    /// Held open and never read, when a test asks for that.
    _stderr: Option<std::process::ChildStderr>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve() -> Serve {
    start_serve_logging(None)
}

/// `meterbench serve` with `RUST_LOG` set to `log` and its stderr a pipe
/// that nobody reads (or, without `log`, stderr discarded).
fn start_serve_logging(log: Option<&str>) -> Serve {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterbench"))
        .current_dir(&root)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .envs(log.map(|l| ("RUST_LOG", l)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if log.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let stderr = child.stderr.take();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.contains("listening"), "{banner}");
    // Keep draining stdout so serve never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Serve {
        child,
        port,
        _stderr: stderr,
    }
}

fn post(mid: u16, path: &[&str], query: &[&str], objects: Option<&str>) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![0x51, 0x52]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    if let Some(objects) = objects {
        p.add_option(CoapOption::ContentFormat, vec![40]);
        p.payload = objects.as_bytes().to_vec();
    }
    p.to_bytes().unwrap()
}

fn ask(socket: &UdpSocket, port: u16, datagram: &[u8]) -> Packet {
    socket
        .send_to(datagram, ("127.0.0.1", port))
        .expect("send to serve");
    let mut buf = [0u8; 2048];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("meterbench serve answers within 5 s");
    Packet::from_bytes(&buf[..n]).unwrap()
}

fn location(p: &Packet) -> Vec<String> {
    p.get_option(CoapOption::LocationPath)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `CON POST /rd?ep=x&lt=18446744073709551615` once made serve panic
/// ("overflow when adding duration to instant") and exit. LwM2M 1.1 Core
/// §6.2.1 lets a client name any lifetime: it is registered (2.01), an
/// Update with the same `lt` is 2.04, a number past u64 is 4.00, and serve
/// is still there to register the next device.
#[test]
fn a_lifetime_of_u64_max_is_answered_and_serve_stays_up() {
    let mut serve = start_serve();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = serve.port;

    let reply = ask(
        &socket,
        port,
        &post(
            1,
            &["rd"],
            &["ep=x", "lt=18446744073709551615"],
            Some("</3/0>"),
        ),
    );
    assert_eq!(
        reply.header.code,
        MessageClass::Response(ResponseType::Created)
    );
    let loc = location(&reply);
    let segs: Vec<&str> = loc.iter().map(String::as_str).collect();

    let reply = ask(
        &socket,
        port,
        &post(2, &segs, &["lt=18446744073709551615"], None),
    );
    assert_eq!(
        reply.header.code,
        MessageClass::Response(ResponseType::Changed)
    );

    let reply = ask(
        &socket,
        port,
        &post(3, &segs, &["lt=18446744073709551616"], None),
    );
    assert_eq!(
        reply.header.code,
        MessageClass::Response(ResponseType::BadRequest)
    );

    let reply = ask(
        &socket,
        port,
        &post(4, &["rd"], &["ep=y", "lt=60", "lwm2m=1.1"], Some("</3/0>")),
    );
    assert_eq!(
        reply.header.code,
        MessageClass::Response(ResponseType::Created)
    );
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "meterbench serve is still running"
    );
}

/// The server logs each datagram at debug level. With its stderr a pipe
/// nobody reads, the pipe fills after a few hundred lines; the datagram
/// loop must not wait for it (issue 16: "a slow stderr reader must not
/// stall the datagram loop"). 3,000 CoAP pings, each answered with a Reset
/// (RFC 7252 §4.3), write about a megabyte of log.
#[test]
fn serve_keeps_answering_while_nobody_reads_its_log() {
    let serve = start_serve_logging(Some("debug"));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for mid in 0..3000u16 {
        let [hi, lo] = mid.to_be_bytes();
        let reply = ask(&socket, serve.port, &[0x40, 0x00, hi, lo]);
        assert_eq!(reply.header.get_type(), MessageType::Reset, "ping {mid}");
        assert_eq!(reply.header.message_id, mid);
    }
}
