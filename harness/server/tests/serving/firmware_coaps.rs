//! Firmware pull over CoAPS: the delivery's `coaps://` Package URI fetched
//! with Block2 by a DTLS 1.2 PSK client ([`dtls::OpensslClient`]) that
//! authenticates with a key from the same credential store the LwM2M server
//! uses; a wrong key gets no byte; a revoked key ends the download session
//! at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use dtls::{ClientConfig, ClientState, DtlsClient, OpensslClient, Psk, SecretKey};
use lwm2m::coap::block::{BlockKind, BlockOption};
use lwm2m::coap::wire;
use server::firmware::{generate_fixtures, DeliveryMethodKind, FirmwareDelivery};
use server::{Carried, CredentialStore};
use tokio::net::UdpSocket;

const IMAGE: &str = "meter-2.0.bin";

fn psk(identity: &str, key: &[u8]) -> Psk {
    Psk::new(identity, SecretKey::new(key.to_vec()).unwrap()).unwrap()
}

/// A DTLS client on a UDP socket, driven until each answer arrives.
struct SecureClient {
    socket: UdpSocket,
    dtls: OpensslClient,
    next_id: u16,
}

impl SecureClient {
    async fn connect(server: SocketAddr, psk: Psk) -> SecureClient {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dtls = OpensslClient::connect(ClientConfig::new(psk), server, Instant::now()).unwrap();
        let mut c = SecureClient {
            socket,
            dtls,
            next_id: 0x100,
        };
        c.pump_until(|c| !matches!(c.dtls.state(), ClientState::Handshaking))
            .await;
        c
    }

    /// Moves datagrams both ways until `done` or 5 s pass.
    async fn pump_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65_535];
        loop {
            while let Some(t) = self.dtls.poll_transmit() {
                self.socket
                    .send_to(&t.payload, t.destination)
                    .await
                    .unwrap();
            }
            if done(self) || Instant::now() >= deadline {
                return;
            }
            if let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(50), self.socket.recv_from(&mut buf))
                    .await
            {
                self.dtls.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            self.dtls.handle_timeout(Instant::now());
        }
    }

    async fn get_block(&mut self, name: &str, num: u32, szx: u8) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Get);
        p.header.message_id = self.next_id;
        p.set_token(self.next_id.to_be_bytes().to_vec());
        self.next_id = self.next_id.wrapping_add(1);
        p.add_option(CoapOption::UriPath, b"fw".to_vec());
        p.add_option(CoapOption::UriPath, name.as_bytes().to_vec());
        BlockOption::new(num, false, szx)
            .unwrap()
            .set_on(&mut p, BlockKind::Block2);
        self.dtls.send(Instant::now(), &wire::encode(&p)).unwrap();
        let mut answer = None;
        self.pump_until(|c| {
            answer = c.dtls.poll_received();
            answer.is_some()
        })
        .await;
        let response = wire::decode(&answer.expect("the file server answers within 5 s")).unwrap();
        assert_eq!(response.header.message_id, p.header.message_id);
        response
    }
}

async fn delivery(credentials: CredentialStore) -> (tempfile::TempDir, FirmwareDelivery) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    generate_fixtures(&dir).unwrap();
    let delivery = FirmwareDelivery::start_with_credentials(
        &dir,
        "127.0.0.1".parse().unwrap(),
        None,
        credentials,
    )
    .await
    .unwrap();
    (root, delivery)
}

fn port_of(uri: &str) -> u16 {
    let rest = uri.strip_prefix("coaps://127.0.0.1:").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_device_with_its_server_psk_downloads_the_image_byte_for_byte_over_coaps() {
    let credentials = CredentialStore::new();
    let key = b"0123456789abcdef";
    credentials.set("meter-1", psk("meter-1-id", key));
    let (_root, delivery) = delivery(credentials).await;
    let uri = delivery
        .package_uri(IMAGE, DeliveryMethodKind::PullCoaps)
        .await
        .unwrap();
    assert!(uri.ends_with(&format!("/fw/{IMAGE}")), "{uri}");
    let server: SocketAddr = ([127, 0, 0, 1], port_of(&uri)).into();

    let mut client = SecureClient::connect(server, psk("meter-1-id", key)).await;
    assert!(
        matches!(client.dtls.state(), ClientState::Connected(_)),
        "handshake: {:?}",
        client.dtls.state()
    );
    let szx = 5; // 512-byte blocks
    let mut data = Vec::new();
    for num in 0..10_000 {
        let r = client.get_block(IMAGE, num, szx).await;
        assert_eq!(r.header.code, MessageClass::Response(ResponseType::Content));
        let b = BlockOption::from_packet(&r, BlockKind::Block2)
            .unwrap()
            .expect("every answer carries Block2");
        assert_eq!((b.num, b.szx), (num, szx));
        data.extend_from_slice(&r.payload);
        if !b.more {
            break;
        }
    }
    assert_eq!(data, delivery.image(IMAGE).unwrap().bytes.to_vec());

    // The figures are the CoAPS server's, under the pull-coaps method.
    let mut progress = None;
    for _ in 0..50 {
        progress = delivery.progress(IMAGE).filter(|p| p.complete);
        if progress.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let progress = progress.expect("the transfer completed");
    assert_eq!(progress.method, DeliveryMethodKind::PullCoaps);
    assert_eq!(progress.size, data.len());
    assert_eq!(progress.block_size, 512);

    // The capture holds the records as they went and the CoAP inside them.
    let captured = delivery.capture().since(0);
    let of = |c: Carried| captured.iter().filter(move |d| d.carried == c);
    assert_eq!(
        of(Carried::Dtls).next().map(|d| (d.to, d.bytes[0])),
        Some((server, 22)),
        "first the ClientHello (a handshake record) to the file server"
    );
    let inside: Vec<_> = of(Carried::DecryptedCoap).collect();
    assert!(
        inside.len() >= 2 * data.len().div_ceil(512),
        "each GET and its answer"
    );
    assert!(inside.iter().all(|d| d.from == server || d.to == server));
    assert!(
        of(Carried::Dtls).count() > inside.len(),
        "handshake records too"
    );
    assert_eq!(of(Carried::Coap).count(), 0, "nothing in clear on the wire");
    delivery.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_gets_no_session_and_no_byte() {
    let credentials = CredentialStore::new();
    credentials.set("meter-1", psk("meter-1-id", b"0123456789abcdef"));
    let (_root, delivery) = delivery(credentials).await;
    let uri = delivery
        .package_uri(IMAGE, DeliveryMethodKind::PullCoaps)
        .await
        .unwrap();
    let server: SocketAddr = ([127, 0, 0, 1], port_of(&uri)).into();
    let client = SecureClient::connect(server, psk("meter-1-id", b"not-the-key")).await;
    assert!(
        matches!(client.dtls.state(), ClientState::Failed(_)),
        "handshake: {:?}",
        client.dtls.state()
    );
    assert!(delivery.transfers().is_empty());
    delivery.shutdown().await;
}

#[tokio::test]
async fn a_revoked_key_closes_the_open_download_session_and_cannot_handshake_again() {
    let credentials = CredentialStore::new();
    let key = b"0123456789abcdef";
    credentials.set("meter-1", psk("meter-1-id", key));
    let (_root, delivery) = delivery(credentials.clone()).await;
    let uri = delivery
        .package_uri(IMAGE, DeliveryMethodKind::PullCoaps)
        .await
        .unwrap();
    let server: SocketAddr = ([127, 0, 0, 1], port_of(&uri)).into();
    let mut client = SecureClient::connect(server, psk("meter-1-id", key)).await;
    let r = client.get_block(IMAGE, 0, 5).await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Content));
    // The next request, encrypted in the session but not yet sent.
    let mut next = Packet::new();
    next.header.set_type(MessageType::Confirmable);
    next.header.code = MessageClass::Request(RequestType::Get);
    next.header.message_id = 0x7777;
    next.add_option(CoapOption::UriPath, b"fw".to_vec());
    next.add_option(CoapOption::UriPath, IMAGE.as_bytes().to_vec());
    BlockOption::new(1, false, 5)
        .unwrap()
        .set_on(&mut next, BlockKind::Block2);
    client
        .dtls
        .send(Instant::now(), &wire::encode(&next))
        .unwrap();
    let late = client
        .dtls
        .poll_transmit()
        .expect("encrypted request")
        .payload;

    // Revoked: the file server closes the session with close_notify.
    assert!(credentials.remove("meter-1"));
    client
        .pump_until(|c| matches!(c.dtls.state(), ClientState::Closed(_)))
        .await;
    assert_eq!(
        client.dtls.state(),
        &ClientState::Closed(dtls::CloseReason::PeerClosed),
        "close_notify, not the 30-minute idle timeout"
    );
    // The session's state is gone: its next datagram gets no answer.
    client.socket.send_to(&late, server).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let answer = tokio::time::timeout(
        Duration::from_millis(1500),
        client.socket.recv_from(&mut buf),
    )
    .await;
    assert!(answer.is_err(), "the server answered a revoked session");
    // A new handshake from the same address with the revoked key fails.
    client.dtls = OpensslClient::connect(
        ClientConfig::new(psk("meter-1-id", key)),
        server,
        Instant::now(),
    )
    .unwrap();
    client
        .pump_until(|c| !matches!(c.dtls.state(), ClientState::Handshaking))
        .await;
    assert!(
        matches!(client.dtls.state(), ClientState::Failed(reason) if reason.is_unknown_identity()),
        "handshake: {:?}",
        client.dtls.state()
    );
    // Only block 0 was served.
    let progress = delivery.progress(IMAGE).expect("one block was served");
    assert!(!progress.complete);
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_revocation_closes_the_sessions_on_the_lwm2m_server_and_the_file_server_alike() {
    // As the runner wires them: the file server takes the LwM2M server's store.
    let lwm2m = server::LwM2mServer::bind_secure(
        "127.0.0.1:0".parse().unwrap(),
        lwm2m::server::ServerConfig {
            registry: lwm2m::Registry::core(),
            default_format: lwm2m::ContentFormat::Tlv,
            seed: 5,
        },
        server::SecurityConfig::psk(),
    )
    .await
    .unwrap();
    let credential = lwm2m.provision_psk("meter-1").unwrap();
    let (_root, delivery) = delivery(lwm2m.credentials().clone()).await;
    let uri = delivery
        .package_uri(IMAGE, DeliveryMethodKind::PullCoaps)
        .await
        .unwrap();
    let files: SocketAddr = ([127, 0, 0, 1], port_of(&uri)).into();
    let mut to_files = SecureClient::connect(files, credential.clone()).await;
    let mut to_server = SecureClient::connect(lwm2m.local_addr(), credential).await;
    for c in [&to_files, &to_server] {
        assert!(matches!(c.dtls.state(), ClientState::Connected(_)));
    }
    assert!(lwm2m.credentials().remove("meter-1"));
    for c in [&mut to_files, &mut to_server] {
        c.pump_until(|c| matches!(c.dtls.state(), ClientState::Closed(_)))
            .await;
        assert_eq!(
            c.dtls.state(),
            &ClientState::Closed(dtls::CloseReason::PeerClosed)
        );
    }
    delivery.shutdown().await;
    lwm2m.shutdown().await;
}

#[tokio::test]
async fn pull_coaps_without_a_credential_store_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    generate_fixtures(&dir).unwrap();
    let delivery = FirmwareDelivery::start(&dir, "127.0.0.1".parse().unwrap(), None)
        .await
        .unwrap();
    let err = delivery
        .package_uri(IMAGE, DeliveryMethodKind::PullCoaps)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("credential store"), "{err}");
}

#[test]
fn pull_coaps_needs_coaps_in_protocol_support() {
    use lwm2m::firmware::ProtocolSupport;
    let m: DeliveryMethodKind = "pull-coaps".parse().unwrap();
    assert_eq!(m, DeliveryMethodKind::PullCoaps);
    assert!(m
        .applicability(None, Some(&[ProtocolSupport::Coap, ProtocolSupport::Http]))
        .is_err());
    assert!(m
        .applicability(None, Some(&[ProtocolSupport::Coap, ProtocolSupport::Coaps]))
        .is_ok());
}
