//! `ServerHandle::discard_registration` over real 127.0.0.1 UDP (ETS 1.1
//! int-105 "Discarded Register Update"): the trigger goes out, the
//! registration is gone from the snapshot with a `Discarded` event, and the
//! client's Update to the old location is answered 4.04 Not Found (LwM2M
//! 1.1 Core §6.2.2) with its message id and token (RFC 7252 §5.3.2).

use std::time::Duration;

use coap_lite::{
    CoapOption, ContentFormat as CoapFormat, MessageClass, MessageType, Packet, RequestType,
    ResponseType,
};
use lwm2m::server::{DmRequest, ServerConfig, ServerEvent};
use lwm2m::ContentFormat;
use server::{EventSeq, LwM2mServer};
use tokio::net::UdpSocket;

use crate::virtual_meter::{path, registry};

const WITHIN: Duration = Duration::from_secs(5);

/// CON POST to `segments` with `query`, token `[0xd1, mid]`.
fn post(mid: u16, segments: &[&str], query: &[&str], links: Option<&str>) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![0xd1, mid as u8]);
    for s in segments {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    if let Some(links) = links {
        p.set_content_format(CoapFormat::ApplicationLinkFormat);
        p.payload = links.as_bytes().to_vec();
    }
    p
}

async fn recv(socket: &UdpSocket) -> Packet {
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WITHIN, socket.recv_from(&mut buf))
        .await
        .expect("a datagram from the server in time")
        .unwrap();
    Packet::from_bytes(&buf[..n]).unwrap()
}

#[tokio::test]
async fn a_discarded_registration_answers_the_triggered_update_with_4_04() {
    let config = ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 43,
    };
    let server = LwM2mServer::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = server.local_addr();
    let register = post(
        0x5001,
        &["rd"],
        &["ep=discarded", "lt=60", "lwm2m=1.1", "b=U"],
        Some("</1/0>,</3/0>"),
    );
    client
        .send_to(&register.to_bytes().unwrap(), to)
        .await
        .unwrap();
    let created = recv(&client).await;
    assert_eq!(
        created.header.code,
        MessageClass::Response(ResponseType::Created)
    );
    let location: Vec<String> = created
        .get_option(CoapOption::LocationPath)
        .unwrap()
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let (seq, _) = server
        .await_registered("discarded", EventSeq::START, WITHIN)
        .await
        .unwrap();

    let trigger = DmRequest::Execute {
        path: path("/1/0/8"),
        arguments: None,
    };
    let at = server
        .discard_registration("discarded", Some(trigger))
        .await
        .unwrap();
    assert_eq!(at, format!("/{}", location.join("/")));
    let (_, event) = server
        .await_event(seq, WITHIN, |e| matches!(e, ServerEvent::Discarded { .. }))
        .await
        .unwrap();
    // The snapshot is current before a waiter sees the event.
    assert_eq!(server.registration("discarded"), None);
    assert_eq!(
        event,
        ServerEvent::Discarded {
            endpoint: "discarded".into(),
            location: at.clone(),
        }
    );

    // The Execute of Registration Update Trigger reached the client.
    let execute = recv(&client).await;
    assert_eq!(
        execute.header.code,
        MessageClass::Request(RequestType::Post)
    );
    assert_eq!(lwm2m::coap::options::uri_path_string(&execute), "/1/0/8");

    // The Update it provokes: ACK 4.04, mid 0x5002, token d1 02.
    let segments: Vec<&str> = location.iter().map(String::as_str).collect();
    let update = post(0x5002, &segments, &[], None);
    client
        .send_to(&update.to_bytes().unwrap(), to)
        .await
        .unwrap();
    let answer = recv(&client).await;
    assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::NotFound)
    );
    assert_eq!(answer.header.message_id, 0x5002);
    assert_eq!(answer.get_token(), &[0xd1, 0x02]);

    // Discarding what is not there says so.
    let again = server.discard_registration("discarded", None).await;
    assert!(
        matches!(&again, Err(e) if e.to_string().contains("discarded")),
        "{again:?}"
    );
    server.shutdown().await;
}
