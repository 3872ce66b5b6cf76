//! A blocking UDP loop around a sans-IO endpoint, the shape the server
//! crate's tokio loop will have: receive with a timeout no later than
//! `poll_timeout`, feed, drain. Bounded by a deadline.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::{MessageClass, MessageType, Packet, ResponseType};
use dtls::{DtlsClient, DtlsServer, OpensslServer, ServerEvent};

pub const COAP_PAYLOAD: &[u8] = b"hello from meterbench";

/// Builds the 2.05 answer to a decrypted CoAP CON (ACK, same id and token),
/// or `None` for anything else.
pub fn coap_answer(request: &[u8]) -> Option<Vec<u8>> {
    let packet = Packet::from_bytes(request).ok()?;
    if packet.header.get_type() != MessageType::Confirmable {
        return None;
    }
    let mut reply = Packet::new();
    reply.header.set_type(MessageType::Acknowledgement);
    reply.header.message_id = packet.header.message_id;
    reply.header.code = MessageClass::Response(ResponseType::Content);
    reply.set_token(packet.get_token().to_vec());
    reply.payload = COAP_PAYLOAD.to_vec();
    reply.to_bytes().ok()
}

/// Runs `server` on `socket` until `stop` is set or `deadline` passes,
/// answering every CoAP CON; returns the events seen.
pub fn serve(
    socket: UdpSocket,
    mut server: OpensslServer,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let now = Instant::now();
        let wait = server
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(20))
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        socket.set_read_timeout(Some(wait)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => server.handle_datagram(Instant::now(), peer, &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("recv_from: {e}"),
        }
        server.handle_timeout(Instant::now());
        while let Some(received) = server.poll_received() {
            if let Some(answer) = coap_answer(&received.payload) {
                server.send(Instant::now(), received.peer, &answer).unwrap();
            }
        }
        while let Some(event) = server.poll_event() {
            events.push(event);
        }
        while let Some(t) = server.poll_transmit() {
            socket.send_to(&t.payload, t.destination).unwrap();
        }
    }
    server.shutdown(Instant::now());
    while let Some(t) = server.poll_transmit() {
        let _ = socket.send_to(&t.payload, t.destination);
    }
    while let Some(event) = server.poll_event() {
        events.push(event);
    }
    events
}

/// Drives `client` on `socket` until `done(client)` or the deadline.
pub fn run_client(
    socket: &UdpSocket,
    client: &mut dyn DtlsClient,
    deadline: Instant,
    mut done: impl FnMut(&mut dyn DtlsClient) -> bool,
) -> bool {
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(t) = client.poll_transmit() {
            socket.send_to(&t.payload, t.destination).unwrap();
        }
        if done(client) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = client
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(20))
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        socket.set_read_timeout(Some(wait)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => client.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("recv_from: {e}"),
        }
        client.handle_timeout(Instant::now());
    }
}
