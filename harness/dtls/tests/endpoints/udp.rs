//! Real sockets on 127.0.0.1: the sans-IO endpoints behind a blocking loop,
//! and the loopback handshake time.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pair;
use crate::pair::{client_config, keys};
use crate::udp_endpoint::{run_client, serve, COAP_PAYLOAD};
use dtls::{CipherSuite, ClientState, DtlsClient, OpensslClient, OpensslServer, ServerEvent};

const KEY: &[u8] = b"udp-test-key-16b";

fn coap_get(message_id: u16) -> Vec<u8> {
    let mut p = coap_lite::Packet::new();
    p.header.set_type(coap_lite::MessageType::Confirmable);
    p.header.message_id = message_id;
    p.header.code = coap_lite::MessageClass::Request(coap_lite::RequestType::Get);
    p.set_token(vec![1, 2]);
    p.add_option(coap_lite::CoapOption::UriPath, b"x".to_vec());
    p.to_bytes().unwrap()
}

#[test]
fn two_udp_sockets_on_loopback_handshake_and_exchange_coap() {
    pair::init_tracing();
    let server_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server_socket.local_addr().unwrap();
    let server = OpensslServer::new(keys(&[("meter", KEY)])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(server_socket, server, stop, deadline))
    };

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut results = Vec::new();
    for suite in CipherSuite::ALL {
        let mut client = OpensslClient::connect(
            client_config("meter", KEY, &[suite]),
            server_addr,
            Instant::now(),
        )
        .unwrap();
        let connected = run_client(&socket, &mut client, deadline, |c| {
            matches!(c.state(), ClientState::Connected(_))
        });
        assert!(connected, "{suite}: {:?}", client.state());
        client.send(Instant::now(), &coap_get(7)).unwrap();
        let mut answer = None;
        run_client(&socket, &mut client, deadline, |c| {
            answer = c.poll_received();
            answer.is_some()
        });
        let answer = coap_lite::Packet::from_bytes(&answer.expect("CoAP answer")).unwrap();
        assert_eq!(answer.payload, COAP_PAYLOAD);
        assert_eq!(answer.header.message_id, 7);
        client.close(Instant::now());
        run_client(&socket, &mut client, deadline, |_| true);
        results.push(suite);
    }
    stop.store(true, Ordering::Relaxed);
    let events = handle.join().unwrap();
    let completed: Vec<CipherSuite> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::HandshakeCompleted {
                suite, identity, ..
            } if identity == "meter" => Some(*suite),
            _ => None,
        })
        .collect();
    assert_eq!(completed, CipherSuite::ALL.to_vec());
    // The second handshake came from the same port and replaced nothing: the
    // first session ended with close_notify.
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ServerEvent::SessionClosed { .. }))
            .count(),
        2
    );
}

/// Loopback handshake time over real sockets, median of N (each a fresh
/// client socket, cookie exchange included: 3 round trips).
#[test]
fn loopback_handshake_time_median() {
    let server_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server_socket.local_addr().unwrap();
    let server = OpensslServer::new(keys(&[("meter", KEY)])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(server_socket, server, stop, deadline))
    };
    const N: usize = 31;
    for suite in CipherSuite::ALL {
        let mut times = Vec::with_capacity(N);
        for _ in 0..N {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let start = Instant::now();
            let mut client =
                OpensslClient::connect(client_config("meter", KEY, &[suite]), server_addr, start)
                    .unwrap();
            assert!(run_client(&socket, &mut client, deadline, |c| matches!(
                c.state(),
                ClientState::Connected(_)
            )));
            times.push(start.elapsed());
            client.close(Instant::now());
            run_client(&socket, &mut client, deadline, |_| true);
        }
        times.sort();
        let median = times[N / 2];
        println!(
            "dtls loopback handshake {suite}: median {:?} over {N} (min {:?}, max {:?})",
            median,
            times[0],
            times[N - 1]
        );
        assert!(median < Duration::from_millis(500), "{median:?}");
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}
