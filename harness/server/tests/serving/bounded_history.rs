//! A server bound with a small message log and event history (what
//! `meterbench serve` and the fleet benchmark run with, issue 16): what it
//! drops is counted, a reader that fell behind sees a gap in the event
//! numbers rather than unbounded memory, and what it still holds reads as
//! before — each datagram with its decoded summary.

use std::time::Duration;

use coap_lite::{CoapOption, ContentFormat as CoapFormat, MessageClass, MessageType, Packet};
use coap_lite::{RequestType, ResponseType};
use lwm2m::server::{ServerConfig, ServerEvent};
use lwm2m::ContentFormat;
use server::{Direction, EventSeq, LwM2mServer, ServerOptions};
use tokio::net::UdpSocket;

use crate::virtual_meter::registry;

const WITHIN: Duration = Duration::from_secs(5);

/// A Register (LwM2M 1.1 Core §6.2.1) of `endpoint` with one object instance.
fn register(endpoint: &str, mid: u16) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![0xb0, mid as u8]);
    p.add_option(CoapOption::UriPath, b"rd".to_vec());
    for q in [
        format!("ep={endpoint}"),
        "lt=600".into(),
        "lwm2m=1.1".into(),
    ] {
        p.add_option(CoapOption::UriQuery, q.into_bytes());
    }
    p.set_content_format(CoapFormat::ApplicationLinkFormat);
    p.payload = b"</3/0>".to_vec();
    p.to_bytes().unwrap()
}

#[tokio::test]
async fn a_small_log_and_history_count_what_they_drop_and_readers_see_the_gap() {
    let config = ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 7,
    };
    let options = ServerOptions {
        log_capacity: 4,
        event_capacity: 3,
        ..ServerOptions::default()
    };
    let server = LwM2mServer::bind_with("127.0.0.1:0".parse().unwrap(), config, options)
        .await
        .unwrap();
    // Subscribed before anything happens, and not read until the end.
    let mut late_reader = server.subscribe();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 1500];
    for i in 0..6u16 {
        client
            .send_to(
                &register(&format!("bounded-{i}"), 0x100 + i),
                server.local_addr(),
            )
            .await
            .unwrap();
        let (n, _) = tokio::time::timeout(WITHIN, client.recv_from(&mut buf))
            .await
            .expect("a 2.01 in time")
            .unwrap();
        let reply = Packet::from_bytes(&buf[..n]).unwrap();
        assert_eq!(
            reply.header.code,
            MessageClass::Response(ResponseType::Created)
        );
    }
    let (_, last) = server
        .await_registered("bounded-5", EventSeq::START, WITHIN)
        .await
        .unwrap();
    assert_eq!(last.endpoint, "bounded-5");

    // Six Registers in and six 2.01s out: twelve entries in a log of four.
    let stats = server.stats();
    assert_eq!((stats.datagrams_in, stats.datagrams_out), (6, 6));
    assert_eq!(stats.log_dropped, 8, "{stats:?}");
    let held = server.log_since(0);
    assert_eq!(held.len(), 4);
    assert_eq!(held[0].index, 8);
    let last_in = held
        .iter()
        .rev()
        .find(|e| e.direction == Direction::In)
        .unwrap();
    assert!(
        last_in.summary.starts_with("CON POST") && last_in.summary.contains("ep=bounded-5"),
        "{}",
        last_in.summary
    );
    // Six Registered events (and nothing else here) in a history of three.
    assert_eq!(stats.events_dropped, 3, "{stats:?}");
    assert_eq!(server.registered_endpoints().len(), 6);

    // The reader that did not keep up gets the oldest event still held:
    // its number tells it three were missed.
    let (seq, event) = tokio::time::timeout(WITHIN, late_reader.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seq, EventSeq(4));
    assert!(
        matches!(&event, ServerEvent::Registered(r) if r.endpoint == "bounded-3"),
        "{event:?}"
    );
    server.shutdown().await;
}
