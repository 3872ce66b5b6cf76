//! The embedded server against hand-built CoAP datagrams (coap-lite), over
//! real 127.0.0.1 UDP: what any third-party LwM2M client would send
//! (LwM2M 1.1 Transport §6, RFC 7252 §3).

use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{
    CoapOption, ContentFormat as CoapFormat, MessageClass, MessageType, Packet, RequestType,
    ResponseType,
};
use lwm2m::server::{Content, ServerConfig, ServerEvent};
use lwm2m::{ContentFormat, Value};
use server::{Direction, EventSeq, LwM2mServer, ServerError, ServerHandle};
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

use crate::virtual_meter::{path, registry};

const WITHIN: Duration = Duration::from_secs(5);

fn config() -> ServerConfig {
    ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 42,
    }
}

async fn start_server() -> ServerHandle {
    LwM2mServer::bind("127.0.0.1:0".parse().unwrap(), config())
        .await
        .expect("bind server")
}

struct RawClient {
    socket: UdpSocket,
    server: SocketAddr,
}

impl RawClient {
    async fn new(server: SocketAddr) -> Self {
        RawClient {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    async fn send(&self, packet: &Packet) {
        self.send_bytes(&packet.to_bytes().unwrap()).await;
    }

    async fn send_bytes(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// The next datagram from the server accepted by `pred`, skipping others.
    async fn recv_matching(&self, pred: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = Instant::now() + WITHIN;
        let mut buf = [0u8; 2048];
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .expect("no datagram from the server in time")
                .unwrap();
            if let Ok(p) = Packet::from_bytes(&buf[..n]) {
                if pred(&p) {
                    return p;
                }
            }
        }
    }

    /// Registers `endpoint` and returns the Location-Path segments from the 2.01.
    async fn register(&self, endpoint: &str, mid: u16) -> Vec<String> {
        self.register_for(endpoint, mid, 60).await
    }

    async fn register_for(&self, endpoint: &str, mid: u16, lifetime_s: u32) -> Vec<String> {
        self.send(&register_packet(endpoint, mid, lifetime_s)).await;
        let ack = self.recv_matching(|p| p.header.message_id == mid).await;
        assert_eq!(ack.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(
            ack.header.code,
            MessageClass::Response(ResponseType::Created)
        );
        ack.get_option(CoapOption::LocationPath)
            .expect("2.01 Created carries Location-Path (LwM2M 1.1 Transport §6.2.1)")
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }
}

/// CON POST /rd?ep=..&lt=..&lwm2m=1.1&b=U with the object list `</3/0>` (LwM2M 1.1 Transport §6.2.1).
fn register_packet(endpoint: &str, mid: u16, lifetime_s: u32) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![0xa1, 0xb2, mid as u8]);
    p.add_option(CoapOption::UriPath, b"rd".to_vec());
    for q in [
        format!("ep={endpoint}"),
        format!("lt={lifetime_s}"),
        "lwm2m=1.1".into(),
        "b=U".into(),
    ] {
        p.add_option(CoapOption::UriQuery, q.into_bytes());
    }
    p.set_content_format(CoapFormat::ApplicationLinkFormat);
    p.payload = b"</3/0>".to_vec();
    p
}

fn uri_path(p: &Packet) -> String {
    lwm2m::coap::options::uri_path_string(p)
}

/// The piggybacked response to a server request (RFC 7252 §5.2.1): same mid and token.
fn ack_for(request: &Packet, code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.code = MessageClass::Response(code);
    p.header.message_id = request.header.message_id;
    p.set_token(request.get_token().to_vec());
    p
}

#[tokio::test]
async fn a_raw_register_is_answered_with_created_and_seen_as_an_event() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    let location = client.register("raw-1", 0x1001).await;
    assert_eq!(location[0], "rd");

    let (seq, reg) = server
        .await_registered("raw-1", EventSeq::START, WITHIN)
        .await
        .unwrap();
    assert!(seq > EventSeq::START);
    assert_eq!(reg.location, format!("/{}", location.join("/")));
    assert_eq!(reg.lifetime, Duration::from_secs(60));
    assert_eq!(reg.peer, client.socket.local_addr().unwrap());
    assert!(reg.has_object(3));
    assert_eq!(server.registration("raw-1"), Some(reg));
    assert_eq!(server.registrations().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_garbage_datagram_is_logged_and_the_next_register_still_answered() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    let before = server.current_seq();
    // Version 3, TKL 15: not CoAP (RFC 7252 §3 allows version 1 and TKL <= 8).
    client.send_bytes(&[0xff, 0xff, 0x00, 0x01, 0x02]).await;
    let (_, malformed) = server
        .await_event(before, WITHIN, |e| {
            matches!(e, ServerEvent::Malformed { .. })
        })
        .await
        .expect("the core reports the garbage as Malformed");
    let ServerEvent::Malformed { peer, .. } = malformed else {
        unreachable!()
    };
    assert_eq!(peer, client.socket.local_addr().unwrap());

    client.register("after-garbage", 0x2002).await;
    server
        .await_registered("after-garbage", before, WITHIN)
        .await
        .unwrap();

    let log = server.log_since(0);
    let garbage = &log[0];
    assert_eq!(garbage.direction, Direction::In);
    assert_eq!(garbage.bytes, vec![0xff, 0xff, 0x00, 0x01, 0x02]);
    assert!(
        garbage.summary.contains("undecodable"),
        "summary was {:?}",
        garbage.summary
    );
    assert!(
        garbage.to_line().ends_with("| ffff000102"),
        "{}",
        garbage.to_line()
    );
    assert!(server.stats().malformed >= 1);
    server.shutdown().await;
}

#[tokio::test]
async fn the_message_log_holds_both_directions_with_summaries() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    client.register("logged", 0x3003).await;
    server
        .await_registered("logged", EventSeq::START, WITHIN)
        .await
        .unwrap();

    let log = server.log_since(0);
    assert_eq!(server.log_len(), log.len());
    let inbound = log
        .iter()
        .find(|e| e.direction == Direction::In)
        .expect("the Register was logged");
    let outbound = log
        .iter()
        .find(|e| e.direction == Direction::Out)
        .expect("the 2.01 was logged");
    assert_eq!(
        inbound.bytes,
        register_packet("logged", 0x3003, 60).to_bytes().unwrap()
    );
    assert!(inbound.summary.contains("POST"), "{}", inbound.summary);
    assert!(outbound.summary.contains("2.01"), "{}", outbound.summary);
    assert_eq!(outbound.peer, client.socket.local_addr().unwrap());
    assert!(inbound.index < outbound.index);
    assert!(inbound.time <= outbound.time);
    assert_eq!(
        server.log_since(outbound.index).first().map(|e| e.index),
        Some(outbound.index)
    );

    let stats = server.stats();
    assert!(stats.datagrams_in >= 1 && stats.datagrams_out >= 1);
    assert_eq!(stats.datagrams(), stats.datagrams_in + stats.datagrams_out);

    let mut pcap = Vec::new();
    server
        .write_pcap(server::PcapView::Wire, &mut pcap)
        .unwrap();
    // 24-byte file header, then per datagram a 16-byte record header, 52 bytes
    // of exported-PDU tags (dissector, IPv4 addresses, UDP ports) and the payload.
    let expected: usize = 24 + log.iter().map(|e| 16 + 52 + e.bytes.len()).sum::<usize>();
    assert_eq!(pcap.len(), expected);
    server.shutdown().await;
}

#[tokio::test]
async fn a_read_is_sent_to_the_client_and_its_answer_decoded() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    client.register("raw-read", 0x4004).await;
    server
        .await_registered("raw-read", EventSeq::START, WITHIN)
        .await
        .unwrap();

    let reading = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .read("raw-read", path("/3/0/0"), Some(ContentFormat::Text))
                .await
        })
    };
    let get = client
        .recv_matching(|p| p.header.get_type() == MessageType::Confirmable)
        .await;
    assert_eq!(get.header.code, MessageClass::Request(RequestType::Get));
    assert_eq!(uri_path(&get), "/3/0/0");
    let mut answer = ack_for(&get, ResponseType::Content);
    answer.set_content_format(CoapFormat::TextPlain);
    answer.payload = b"meterbench".to_vec();
    client.send(&answer).await;

    let response = timeout(WITHIN, reading).await.unwrap().unwrap().unwrap();
    assert_eq!(response.code, 205);
    let Content::Records(records) = response.content else {
        panic!("expected records, got {:?}", response.content)
    };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].path, path("/3/0/0"));
    assert_eq!(records[0].value, Value::String("meterbench".into()));
    server.shutdown().await;
}

#[tokio::test]
async fn a_not_found_answer_is_a_response_not_an_error() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    client.register("raw-404", 0x5005).await;
    server
        .await_registered("raw-404", EventSeq::START, WITHIN)
        .await
        .unwrap();

    let reading = {
        let server = server.clone();
        tokio::spawn(async move { server.read("raw-404", path("/3/0/1"), None).await })
    };
    let get = client
        .recv_matching(|p| p.header.get_type() == MessageType::Confirmable)
        .await;
    client.send(&ack_for(&get, ResponseType::NotFound)).await;
    let response = timeout(WITHIN, reading).await.unwrap().unwrap().unwrap();
    assert_eq!(response.code, 404);
    assert!(!response.is_success());
    server.shutdown().await;
}

#[tokio::test]
async fn a_reset_answer_is_a_reset_error() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    client.register("raw-rst", 0x6006).await;
    server
        .await_registered("raw-rst", EventSeq::START, WITHIN)
        .await
        .unwrap();

    let executing = {
        let server = server.clone();
        tokio::spawn(async move { server.execute("raw-rst", path("/3/0/4"), None).await })
    };
    let post = client
        .recv_matching(|p| p.header.get_type() == MessageType::Confirmable)
        .await;
    assert_eq!(post.header.code, MessageClass::Request(RequestType::Post));
    let mut rst = Packet::new();
    rst.header.set_type(MessageType::Reset);
    rst.header.code = MessageClass::Empty;
    rst.header.message_id = post.header.message_id;
    client.send(&rst).await;
    let err = timeout(WITHIN, executing)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, ServerError::Reset { ref endpoint, .. } if endpoint == "raw-rst"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_to_an_unregistered_endpoint_errors_at_once() {
    let server = start_server().await;
    let started = Instant::now();
    let err = server
        .read("nobody", path("/3/0/0"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServerError::NotRegistered(ref ep) if ep == "nobody"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(err.to_string(), "no registration for endpoint \"nobody\"");
    server.shutdown().await;
}

#[tokio::test]
async fn await_event_times_out_quickly_when_nothing_matches() {
    let server = start_server().await;
    let started = Instant::now();
    let err = server
        .await_event(EventSeq::START, Duration::from_millis(100), |_| false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServerError::Timeout { after, .. } if after == Duration::from_millis(100)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let err = server
        .await_registered("ghost", EventSeq::START, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 50ms waiting for ghost to register"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn binding_an_address_in_use_says_which() {
    let first = start_server().await;
    let addr = first.local_addr();
    let err = LwM2mServer::bind(addr, config()).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot bind UDP {addr}: ")),
        "{message}"
    );
    assert!(matches!(err, ServerError::Bind { .. }));
    first.shutdown().await;
}

#[tokio::test]
async fn after_shutdown_waiters_get_shutdown_and_the_port_is_free() {
    let server = start_server().await;
    let addr = server.local_addr();
    let waiter = {
        let server = server.clone();
        tokio::spawn(async move { server.await_event(EventSeq::START, WITHIN, |_| false).await })
    };
    tokio::task::yield_now().await;
    server.shutdown().await;
    assert!(!server.is_running());
    let err = timeout(WITHIN, waiter).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, ServerError::Shutdown), "{err}");
    assert!(matches!(
        server.read("x", path("/3"), None).await,
        Err(ServerError::Shutdown)
    ));
    server.shutdown().await; // idempotent
    let again = LwM2mServer::bind(addr, config())
        .await
        .expect("port released");
    again.shutdown().await;
}

#[tokio::test]
async fn an_event_stream_yields_events_in_order() {
    let server = start_server().await;
    let mut stream = server.subscribe();
    let client = RawClient::new(server.local_addr()).await;
    client.register("streamed", 0x7007).await;
    let (seq, event) = timeout(WITHIN, stream.next()).await.unwrap().unwrap();
    assert!(matches!(event, ServerEvent::Registered(ref r) if r.endpoint == "streamed"));
    assert_eq!(server.events_since(EventSeq::START)[0].0, seq);
    server.shutdown().await;
    assert!(
        timeout(WITHIN, async { while stream.next().await.is_some() {} })
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_registration_without_update_expires_on_the_servers_own_timer() {
    let server = start_server().await;
    let client = RawClient::new(server.local_addr()).await;
    client.register_for("short-lived", 0x8008, 1).await;
    let (registered, _) = server
        .await_registered("short-lived", EventSeq::START, WITHIN)
        .await
        .unwrap();
    let started = Instant::now();
    let (_, event) = server
        .await_deregistered("short-lived", registered, WITHIN)
        .await
        .unwrap();
    assert_eq!(
        event,
        ServerEvent::Expired {
            endpoint: "short-lived".into()
        }
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "expired after {:?}",
        started.elapsed()
    );
    assert_eq!(server.registration("short-lived"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn serve_until_describes_each_event_and_stops_the_server() {
    let server = start_server().await;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let server = server.clone();
        let lines = lines.clone();
        tokio::spawn(async move {
            server::serve_until(
                &server,
                async {
                    let _ = stopped.await;
                },
                move |_, event| lines.lock().unwrap().push(server::describe_event(event)),
            )
            .await
        })
    };
    let client = RawClient::new(server.local_addr()).await;
    let location = client.register("served", 0x9009).await;
    server
        .await_registered("served", EventSeq::START, WITHIN)
        .await
        .unwrap();
    // Let the serve loop pick the event up, then stop it (bounded).
    let deadline = Instant::now() + WITHIN;
    while lines.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    timeout(WITHIN, serving).await.unwrap().unwrap();
    assert!(!server.is_running());
    let lines = lines.lock().unwrap().clone();
    let expected = format!("registered served at /{} lifetime 60s", location.join("/"));
    assert!(lines[0].starts_with(&expected), "{lines:?}");
    assert!(lines[0].ends_with("objects </3/0>"), "{lines:?}");
}
