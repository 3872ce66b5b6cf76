//! The plain server's loop takes a burst in receive batches and flushes a
//! turn's answers together (udp_loop.rs, issue 16). A burst from many
//! clients at once is answered to many destinations: each client gets
//! exactly its own answer, byte for byte, over real 127.0.0.1 UDP. Vector: a CoAP ping (CON, Empty, RFC 7252 §4.3) with message id
//! 0xMMMM is answered with the Reset `70 00 MM MM` (§3: Ver 1, T=RST,
//! TKL 0, Code 0.00, the ping's message id).

use std::time::Duration;

use lwm2m::server::ServerConfig;
use lwm2m::ContentFormat;
use server::LwM2mServer;
use tokio::net::UdpSocket;
use tokio::time::timeout;

use crate::virtual_meter::registry;

/// More clients than one receive turn takes (64).
const CLIENTS: u16 = 150;

#[tokio::test]
async fn a_burst_of_pings_from_many_clients_gets_each_its_own_reset() {
    let server = LwM2mServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig {
            registry: registry(),
            default_format: ContentFormat::Tlv,
            seed: 9,
        },
    )
    .await
    .expect("bind server");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    // All sent before any answer is read: the server finds a burst.
    for (i, c) in clients.iter().enumerate() {
        let mid = 0x4000 + i as u16;
        let [hi, lo] = mid.to_be_bytes();
        c.send_to(&[0x40, 0x00, hi, lo], server.local_addr())
            .await
            .unwrap();
    }
    for (i, c) in clients.iter().enumerate() {
        let mid = 0x4000 + i as u16;
        let [hi, lo] = mid.to_be_bytes();
        let mut buf = [0u8; 64];
        let (n, from) = timeout(Duration::from_secs(5), c.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("client {i}: no Reset within 5 s"))
            .unwrap();
        assert_eq!(from, server.local_addr());
        assert_eq!(&buf[..n], &[0x70, 0x00, hi, lo], "client {i}");
    }
    // Nothing more for anyone (one answer each): a short grace, then a
    // non-blocking look at every socket.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (i, c) in clients.iter().enumerate() {
        let mut buf = [0u8; 64];
        assert!(
            c.try_recv_from(&mut buf).is_err(),
            "client {i} got a second datagram"
        );
    }
}
