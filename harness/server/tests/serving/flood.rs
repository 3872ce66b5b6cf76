//! One peer floods the server while others register (issue 16: "a flood
//! from one peer does not starve the others ... and datagrams dropped for
//! a full receive buffer are counted and visible"), over real 127.0.0.1 UDP.
//!
//! The socket's receive buffer is one queue for every peer, so a flood
//! crowds the others' datagrams out there, before the server could choose
//! among them. What the server owes them is what a CoAP client relies on
//! (RFC 7252 §4.2): a Register it retransmits gets through, and what the
//! kernel dropped is counted in the server's statistics.

use std::net::UdpSocket as StdUdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::server::ServerConfig;
use lwm2m::ContentFormat;
use server::LwM2mServer;
use tokio::net::UdpSocket;

use crate::virtual_meter::registry;

/// Meters that register during the flood.
const METERS: usize = 40;
/// Datagrams the flooding peer sends, as fast as its socket takes them.
const FLOOD: u32 = 200_000;

fn register_packet(endpoint: &str, mid: u16) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(mid.to_be_bytes().to_vec());
    p.add_option(CoapOption::UriPath, b"rd".to_vec());
    for q in [
        format!("ep={endpoint}"),
        "lt=600".into(),
        "lwm2m=1.1".into(),
    ] {
        p.add_option(CoapOption::UriQuery, q.into_bytes());
    }
    p.add_option(CoapOption::ContentFormat, vec![40]);
    p.payload = b"</3/0>".to_vec();
    p.to_bytes().unwrap()
}

/// Registers as a CoAP client does: the same CON (same message id) again
/// after 1 s, 2 s, 4 s, 8 s without its answer (RFC 7252 §4.2, ACK_TIMEOUT
/// 1 s here), then gives up. The code of the answer.
async fn register(server: std::net::SocketAddr, endpoint: String, mid: u16) -> Option<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagram = register_packet(&endpoint, mid);
    let mut wait = Duration::from_secs(1);
    for _ in 0..5 {
        socket.send_to(&datagram, server).await.unwrap();
        let mut buf = [0u8; 512];
        if let Ok(Ok((n, _))) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            let answer = Packet::from_bytes(&buf[..n]).ok()?;
            if answer.header.message_id == mid {
                return Some(answer.header.code.into());
            }
        }
        wait *= 2;
    }
    None
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_register_through_another_peers_flood_and_the_drops_are_counted() {
    let server = LwM2mServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig {
            registry: registry(),
            default_format: ContentFormat::Tlv,
            seed: 7,
        },
    )
    .await
    .expect("bind server");
    let addr = server.local_addr();
    assert_eq!(server.stats().receive_buffer_drops, Some(0));

    // The flood: CoAP pings (each costs the server a Reset), from one
    // socket, for as long as the meters register (or FLOOD datagrams).
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU32::new(0));
    let flooding = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
            let mut sent = 0u32;
            while sent < FLOOD && !stop.load(Ordering::Relaxed) {
                let [hi, lo] = (sent as u16).to_be_bytes();
                if socket.send_to(&[0x40, 0x00, hi, lo], addr).is_ok() {
                    sent += 1;
                    progress.store(sent, Ordering::Relaxed);
                }
            }
            sent
        })
    };
    // The meters start into a flood already under way.
    while progress.load(Ordering::Relaxed) < FLOOD / 10 && !flooding.is_finished() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let meters: Vec<_> = (0..METERS)
        .map(|i| tokio::spawn(register(addr, format!("flooded-{i}"), 0x100 + i as u16)))
        .collect();
    let mut codes = Vec::new();
    for m in meters {
        codes.push(m.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flooding.join().unwrap();

    let created: u8 = MessageClass::Response(ResponseType::Created).into();
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(*code, Some(created), "flooded-{i}, beside {sent} pings");
    }
    assert_eq!(server.registrations().len(), METERS);
    let stats = server.stats();
    let dropped = stats
        .receive_buffer_drops
        .expect("Linux counts the receive buffer's drops");
    // What came in and what was dropped account for what was sent, at most.
    assert!(
        stats.datagrams_in + dropped <= u64::from(sent) + 5 * METERS as u64,
        "{stats:?}, {sent} sent"
    );
    eprintln!(
        "{sent} pings from one peer: {} datagrams in, {dropped} dropped for a full receive buffer; {METERS} of {METERS} meters registered",
        stats.datagrams_in
    );
    server.shutdown().await;
}
