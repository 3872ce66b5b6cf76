//! The embedded server against the sans-IO LwM2M client of the `lwm2m` crate,
//! each driven over its own 127.0.0.1 UDP socket: registration, device
//! management and observation end to end (LwM2M 1.1 Core §6.2–§6.4).

use std::time::Duration;

use lwm2m::client::ClientEvent;
use lwm2m::format::Record;
use lwm2m::server::{Content, Response, ServerConfig, ServerEvent, WriteMode};
use lwm2m::{ContentFormat, Value};
use server::{Direction, EventSeq, LwM2mServer, ServerHandle};

use crate::virtual_meter::{path, registry, VirtualMeter};

const WITHIN: Duration = Duration::from_secs(5);

async fn start_server() -> ServerHandle {
    let config = ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 1,
    };
    LwM2mServer::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("bind server")
        .with_request_timeout(WITHIN)
}

async fn registered_meter(server: &ServerHandle, endpoint: &str) -> VirtualMeter {
    let after = server.current_seq();
    let meter = VirtualMeter::start(endpoint, server.local_addr(), Duration::from_secs(60)).await;
    server
        .await_registered(endpoint, after, WITHIN)
        .await
        .expect("meter registers");
    // The server's event comes before the meter has read the 2.01.
    meter
        .wait_for(WITHIN, |e| matches!(e, ClientEvent::Registered { .. }))
        .await;
    meter
}

fn records(response: &Response) -> &[Record] {
    match &response.content {
        Content::Records(r) => r,
        other => panic!("expected records, got {other:?}"),
    }
}

fn value_at(response: &Response, p: &str) -> Value {
    records(response)
        .iter()
        .find(|r| r.path == path(p))
        .unwrap_or_else(|| panic!("{p} missing from {response:?}"))
        .value
        .clone()
}

#[tokio::test]
async fn a_meter_registration_is_seen_by_await_registered() {
    let server = start_server().await;
    let meter = VirtualMeter::start("meter-1", server.local_addr(), Duration::from_secs(60)).await;
    let (_, reg) = server
        .await_registered("meter-1", EventSeq::START, WITHIN)
        .await
        .unwrap();
    assert_eq!(reg.endpoint, "meter-1");
    assert_eq!(reg.peer, meter.local_addr);
    assert_eq!(reg.lifetime, Duration::from_secs(60));
    assert!(reg.instances().contains(&path("/3/0")), "{:?}", reg.objects);
    assert_eq!(
        server.registration("meter-1").map(|r| r.location),
        Some(reg.location.clone())
    );
    assert!(
        server::describe_event(&ServerEvent::Registered(std::sync::Arc::new(reg.clone())))
            .starts_with("registered meter-1 at /")
    );
    meter.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_read_returns_the_meters_value() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-read").await;
    for format in [
        None,
        Some(ContentFormat::Tlv),
        Some(ContentFormat::SenmlJson),
        Some(ContentFormat::Text),
    ] {
        let response = server
            .read("meter-read", path("/3/0/0"), format)
            .await
            .unwrap();
        assert_eq!(response.code, 205, "{format:?}");
        assert_eq!(
            value_at(&response, "/3/0/0"),
            Value::String("meterbench".into()),
            "{format:?}"
        );
    }
    let whole = server.read("meter-read", path("/3/0"), None).await.unwrap();
    assert_eq!(value_at(&whole, "/3/0/9"), Value::Integer(87));
    meter.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_written_value_reads_back() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-write").await;
    let offset = path("/3/0/14");
    let written = server
        .write(
            "meter-write",
            offset,
            WriteMode::Replace,
            vec![Record::new(offset, Value::String("+02:00".into()))],
            Some(ContentFormat::Text),
        )
        .await
        .unwrap();
    assert_eq!(written.code, 204);
    let read = server.read("meter-write", offset, None).await.unwrap();
    assert_eq!(value_at(&read, "/3/0/14"), Value::String("+02:00".into()));
    assert!(meter
        .events()
        .contains(&ClientEvent::Written { path: offset }));
    meter.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_observation_delivers_a_notification() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-obs").await;
    let battery = path("/3/0/9");
    let observation = server.observe("meter-obs", battery, None).await.unwrap();
    assert_eq!(observation.first.code, 205);
    assert_eq!(value_at(&observation.first, "/3/0/9"), Value::Integer(87));

    meter.set_value(battery, Value::Integer(42));
    let note = server
        .await_notification(&observation, observation.seq, WITHIN)
        .await
        .unwrap();
    assert_eq!(note.path, battery);
    assert!(
        note.records
            .contains(&Record::new(battery, Value::Integer(42))),
        "{:?}",
        note.records
    );

    let cancelled = server.cancel_observe("meter-obs", battery).await.unwrap();
    assert!(cancelled.is_success(), "{cancelled:?}");
    meter.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn execute_reaches_the_meter() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-exec").await;
    let response = server
        .execute("meter-exec", path("/3/0/4"), None)
        .await
        .unwrap();
    assert_eq!(response.code, 204);
    assert!(meter
        .events()
        .iter()
        .any(|e| matches!(e, ClientEvent::Executed { path: p, .. } if *p == path("/3/0/4"))));
    meter.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn discover_lists_the_device_resources() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-disc").await;
    let links = server.discover("meter-disc", path("/3/0")).await.unwrap();
    let targets: Vec<&str> = links.iter().map(|l| l.target.as_str()).collect();
    assert!(
        targets.contains(&"/3/0/0") && targets.contains(&"/3/0/9"),
        "{targets:?}"
    );
    meter.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_deregistration_is_awaited_and_forgotten() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-dereg").await;
    let after = server.current_seq();
    meter.deregister();
    let (_, event) = server
        .await_deregistered("meter-dereg", after, WITHIN)
        .await
        .unwrap();
    assert_eq!(
        event,
        ServerEvent::Deregistered {
            endpoint: "meter-dereg".into()
        }
    );
    assert_eq!(server.registration("meter-dereg"), None);
    let log = server.log_since(0);
    assert!(
        log.iter()
            .any(|e| e.direction == Direction::In && e.summary.contains("DELETE")),
        "{log:#?}"
    );
    meter.kill().await;
    server.shutdown().await;
}

/// Cancel by Reset (RFC 7641 §3.6, ETS 1.1 int-302): the server forgets
/// the observation, answers the meter's next notification with RST, and
/// the meter sends no further notification with that token.
#[tokio::test]
async fn a_forgotten_observation_is_reset_and_stops_at_the_meter() {
    let server = start_server().await;
    let meter = registered_meter(&server, "meter-rst").await;
    let battery = path("/3/0/9");
    server.observe("meter-rst", battery, None).await.unwrap();
    let token = server
        .forget_observation("meter-rst", battery)
        .await
        .unwrap();
    let again = server.forget_observation("meter-rst", battery).await;
    assert!(
        again
            .unwrap_err()
            .to_string()
            .contains("no observation of /3/0/9"),
        "a second forget finds nothing"
    );
    let from = server.log_len();
    let is_notification = |e: &server::LogEntry| {
        e.direction == Direction::In
            && coap_lite::Packet::from_bytes(&e.bytes).is_ok_and(|p| {
                p.get_token() == token.as_slice()
                    && p.get_option(coap_lite::CoapOption::Observe).is_some()
            })
    };
    meter.set_value(battery, Value::Integer(41));
    let deadline = tokio::time::Instant::now() + WITHIN;
    let reset = loop {
        let log = server.log_since(from);
        let note = log.iter().find(|e| is_notification(e)).cloned();
        let rst = note.and_then(|n| {
            let mid = coap_lite::Packet::from_bytes(&n.bytes)
                .unwrap()
                .header
                .message_id;
            log.iter()
                .find(|e| {
                    e.direction == Direction::Out
                        && e.bytes.len() == 4
                        && e.bytes[0] & 0x30 == 0x30
                        && u16::from_be_bytes([e.bytes[2], e.bytes[3]]) == mid
                })
                .cloned()
        });
        if let Some(rst) = rst {
            break rst;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notification answered with RST within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(reset.summary.starts_with("RST"), "{}", reset.summary);
    let after_reset = server.log_len();
    meter.set_value(battery, Value::Integer(40));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !server.log_since(after_reset).iter().any(is_notification),
        "the meter kept notifying after the Reset"
    );
    meter.kill().await;
    server.shutdown().await;
}
