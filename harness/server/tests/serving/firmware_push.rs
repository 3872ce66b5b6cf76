//! Firmware delivery end to end over 127.0.0.1: the embedded server pushes
//! an image into a meter's /5/0/0 with Block1 (LwM2M 1.1 Core §E.6, RFC
//! 7959 §2.5), and `FirmwareDelivery` hands out Package URIs whose file
//! servers a device pulls from, reporting every transfer's figures.
//!
//! The meter is the sans-IO `lwm2m::client::Client` on a real UDP socket;
//! it can lose chosen datagrams, each way, to force retransmissions.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coap_lite::MessageType;
use lwm2m::client::{Client, ClientConfig, ClientEvent, ObjectStore};
use lwm2m::coap::block::{Block2Download, DownloadStatus};
use lwm2m::coap::wire;
use lwm2m::{ContentFormat, Path, Registry, Value};
use server::firmware::{
    generate_fixtures, DeliveryError, DeliveryMethodKind, FirmwareDelivery, TransferProgress,
};
use server::{LwM2mServer, ServerConfig, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};

const ENDPOINT: &str = "meter-push";

fn registry() -> Registry {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects");
    Registry::load_dir(&dir).expect("fixtures/objects loads")
}

fn package() -> Path {
    Path::resource(5, 0, 0)
}

/// Which datagrams the meter loses: numbers (1-based, counted after it
/// registered) of those it sends and of those it receives.
#[derive(Default, Clone)]
struct Loss {
    outgoing: BTreeSet<u64>,
    incoming: BTreeSet<u64>,
}

struct Meter {
    events: Arc<Mutex<Vec<ClientEvent>>>,
    package: Arc<Mutex<Option<Vec<u8>>>>,
    dropped: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Meter {
    /// Registers with `server`; /5/0/0 takes Block1 bodies up to
    /// `max_size` in blocks of at most 2^(max_szx+4) bytes.
    async fn start(server: SocketAddr, max_size: usize, max_szx: u8, loss: Loss) -> Meter {
        let registry = registry();
        let mut store = ObjectStore::new(registry.clone());
        store.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
        store.set(Path::resource(5, 0, 3), Value::Integer(0));
        store.set(Path::resource(5, 0, 5), Value::Integer(0));
        let mut client = Client::new(
            ClientConfig {
                endpoint: ENDPOINT.into(),
                server,
                lifetime: Duration::from_secs(3600),
                lwm2m_version: "1.1".into(),
                binding: "U".into(),
                registry,
                preferred_format: ContentFormat::Tlv,
                seed: 5,
                bootstrap: None,
                retry: Default::default(),
            },
            store,
        );
        client.accept_block1(package(), max_size, max_szx);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let pkg = Arc::new(Mutex::new(None));
        let dropped = Arc::new(Mutex::new(0));
        let task = tokio::spawn(run(
            socket,
            client,
            loss,
            events.clone(),
            pkg.clone(),
            dropped.clone(),
        ));
        Meter {
            events,
            package: pkg,
            dropped,
            task,
        }
    }

    fn package(&self) -> Option<Vec<u8>> {
        self.package.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    fn dropped(&self) -> u32 {
        *self.dropped.lock().unwrap()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn run(
    socket: UdpSocket,
    mut client: Client,
    loss: Loss,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    taken: Arc<Mutex<Option<Vec<u8>>>>,
    dropped: Arc<Mutex<u32>>,
) {
    client.start(now());
    let mut buf = vec![0u8; 65_535];
    let (mut sent, mut received) = (0u64, 0u64);
    let mut registered = false;
    loop {
        while let Some(t) = client.poll_transmit() {
            if registered {
                sent += 1;
                if loss.outgoing.contains(&sent) {
                    *dropped.lock().unwrap() += 1;
                    continue;
                }
            }
            let _ = socket.send_to(&t.payload, t.destination).await;
        }
        while let Some(e) = client.poll_event() {
            match &e {
                ClientEvent::Registered { .. } => registered = true,
                ClientEvent::Written { path } if *path == package() => {
                    if let Some(Value::Opaque(bytes)) = client.store().get(path) {
                        *taken.lock().unwrap() = Some(bytes.clone());
                    }
                }
                _ => {}
            }
            events.lock().unwrap().push(e);
        }
        let deadline = client.poll_timeout().map(Instant::from_std);
        let wake_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, peer)) = r {
                    if registered {
                        received += 1;
                        if loss.incoming.contains(&received) {
                            *dropped.lock().unwrap() += 1;
                            continue;
                        }
                    }
                    client.handle_datagram(now(), peer, &buf[..n]);
                }
            }
            () = sleep_until(wake_at), if deadline.is_some() => client.handle_timeout(now()),
        }
    }
}

async fn server() -> ServerHandle {
    LwM2mServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig {
            registry: registry(),
            default_format: ContentFormat::Tlv,
            seed: 3,
        },
    )
    .await
    .unwrap()
}

async fn registered(
    server: &ServerHandle,
    meter_loss: Loss,
    max_size: usize,
    max_szx: u8,
) -> Meter {
    let after = server.current_seq();
    let meter = Meter::start(server.local_addr(), max_size, max_szx, meter_loss).await;
    server
        .await_registered(ENDPOINT, after, Duration::from_secs(10))
        .await
        .unwrap();
    meter
}

fn image(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[tokio::test]
async fn a_64k_push_renegotiates_to_the_meter_block_size_and_survives_loss() {
    let server = server().await;
    // Lost: two of the meter's answers and two of the server's blocks.
    let loss = Loss {
        outgoing: [5, 120].into(),
        incoming: [30, 200].into(),
    };
    let meter = registered(&server, loss, 128 * 1024, 4).await;
    let body = image(64 * 1024);
    let mut seen = Vec::new();
    let report = server
        .push_firmware_with_progress(
            ENDPOINT,
            package(),
            body.clone(),
            6,
            Duration::from_secs(120),
            |p| seen.push(p.clone()),
        )
        .await
        .unwrap();
    assert_eq!(report.code, 204, "{report}");
    assert!(report.is_success());
    assert_eq!(meter.package().as_deref(), Some(&body[..]), "bytes intact");
    let blocks_seen = meter
        .events()
        .iter()
        .filter(|e| matches!(e, ClientEvent::Block1Received { .. }))
        .count();
    assert_eq!(blocks_seen, 255, "every block but the last answered 2.31");
    assert_eq!((report.bytes, report.total), (65_536, 65_536));
    assert_eq!(report.block_size, 256);
    assert_eq!(report.blocks, 256);
    assert_eq!(report.renegotiations, 1, "one 4.13 on block 0");
    assert_eq!(meter.dropped(), 4);
    assert_eq!(report.retransmissions, 4, "one per lost datagram");
    assert_eq!(report.size1, None);
    assert!(report.elapsed > Duration::ZERO);
    assert!(seen.len() >= 16 && seen.last().unwrap().finished);
    // The message log holds every block, retransmissions included.
    let puts = server
        .log_since(0)
        .iter()
        .filter(|e| e.summary.contains("PUT") && e.summary.contains("5/0/0"))
        .count();
    assert!(puts >= 256 + 1 + 2, "{puts} PUTs logged");
}

#[tokio::test]
async fn a_push_the_meter_refuses_as_too_large_reports_4_13_and_its_limit() {
    let server = server().await;
    let meter = registered(&server, Loss::default(), 16 * 1024, 6).await;
    let report = server
        .push_firmware(
            ENDPOINT,
            package(),
            image(64 * 1024),
            6,
            Duration::from_secs(30),
        )
        .await
        .expect("a refusal is an answer");
    assert_eq!(report.code, 413);
    assert_eq!(report.size1, Some(16 * 1024));
    assert!(!report.is_success());
    assert_eq!((report.bytes, report.blocks), (0, 0));
    assert!(report.to_string().contains("4.13"), "{report}");
    assert!(meter.package().is_none());
}

#[tokio::test]
async fn a_push_with_a_reserved_block_size_is_refused_before_sending() {
    let server = server().await;
    let _meter = registered(&server, Loss::default(), 1024, 6).await;
    let before = server.stats();
    let err = server
        .push_firmware(ENDPOINT, package(), vec![0; 100], 7, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SZX 7"), "{err}");
    assert_eq!(server.stats(), before, "nothing was sent");
}

// ----- FirmwareDelivery -----

async fn delivery() -> (tempfile::TempDir, FirmwareDelivery) {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    let d = FirmwareDelivery::start(dir.path(), IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .unwrap();
    (dir, d)
}

#[tokio::test]
async fn an_unknown_image_fails_before_anything_starts_and_names_what_exists() {
    let (_dir, d) = delivery().await;
    let err = d.image("meter-9.9.bin").unwrap_err();
    let DeliveryError::UnknownImage { ref known, .. } = err else {
        panic!("{err}")
    };
    assert!(known.iter().any(|n| n == "meter-2.0.bin"));
    assert!(err.to_string().contains("meter-9.9.bin"), "{err}");
    assert!(d
        .package_uri("meter-9.9.bin", DeliveryMethodKind::PullCoap)
        .await
        .is_err());
    assert!(d.coap_server().is_none() && d.http_server().is_none());
    d.shutdown().await;
}

#[tokio::test]
async fn a_folder_holding_only_the_committed_manifest_gets_its_images_generated() {
    let dir = tempfile::tempdir().unwrap();
    let committed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/firmware/manifest.yaml");
    std::fs::copy(committed, dir.path().join("manifest.yaml")).unwrap();
    let d = FirmwareDelivery::start(dir.path(), IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .unwrap();
    assert_eq!(d.image("meter-2.0.bin").unwrap().len(), 65_536);
    d.shutdown().await;
}

#[tokio::test]
async fn a_missing_image_in_a_hand_written_store_is_an_error_not_generated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("manifest.yaml"),
        "images:\n  - name: vendor.bin\n    version: \"1\"\n    size: 3\n    sha256: 039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81\n",
    )
    .unwrap();
    let err = FirmwareDelivery::start(dir.path(), IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("vendor.bin"), "{err}");
}

/// Downloads `uri` (coap://host:port/fw/name) with Block2 at `szx`.
async fn coap_pull(uri: &str, szx: u8) -> Vec<u8> {
    let rest = uri.strip_prefix("coap://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let addr: SocketAddr = authority.parse().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
    let mut dl = Block2Download::new(segments, szx).unwrap();
    let mut mid = 100u16;
    let mut buf = vec![0u8; 2048];
    while let Some(mut get) = dl.next_request() {
        mid += 1;
        get.header.set_type(MessageType::Confirmable);
        get.header.message_id = mid;
        get.set_token(mid.to_be_bytes().to_vec());
        socket.send_to(&wire::encode(&get), addr).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("the file server answers")
            .unwrap();
        let response = wire::decode(&buf[..n]).unwrap();
        if let DownloadStatus::Complete { .. } = dl.handle_response(&response).unwrap() {
            break;
        }
    }
    dl.data().to_vec()
}

#[tokio::test]
async fn pull_coap_serves_the_image_and_reports_its_progress() {
    let (_dir, d) = delivery().await;
    assert!(d.progress("meter-2.0.bin").is_none(), "nothing offered yet");
    let uri = d
        .package_uri("meter-2.0.bin", DeliveryMethodKind::PullCoap)
        .await
        .unwrap();
    let port = d.coap_server().unwrap().local_addr().port();
    assert_eq!(uri, format!("coap://127.0.0.1:{port}/fw/meter-2.0.bin"));
    assert!(d.http_server().is_none(), "HTTP starts only when asked for");
    let bytes = coap_pull(&uri, 5).await;
    assert_eq!(bytes, d.image("meter-2.0.bin").unwrap().bytes.to_vec());
    let p: TransferProgress = d.progress("meter-2.0.bin").expect("progress");
    assert_eq!(p.method, DeliveryMethodKind::PullCoap);
    assert_eq!((p.bytes, p.blocks, p.block_size), (65_536, 128, 512));
    assert!(p.complete && p.peer.is_some());
    assert_eq!(p.fraction(), 1.0);
    let props = p.properties();
    assert!(props.contains(&("firmware.method".into(), "pull-coap".into())));
    assert!(props.contains(&("firmware.bytes".into(), "65536".into())));
    assert!(p.to_string().contains("65536/65536 bytes"), "{p}");
    d.shutdown().await;
}

#[tokio::test]
async fn pull_http_uri_names_the_advertised_host_and_range_requests_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    let d = FirmwareDelivery::start(
        dir.path(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some("localhost".into()),
    )
    .await
    .unwrap();
    let uri = d
        .package_uri("meter-1.0.bin", DeliveryMethodKind::PullHttp)
        .await
        .unwrap();
    let addr = d.http_server().unwrap().local_addr();
    assert_eq!(
        uri,
        format!("http://localhost:{}/fw/meter-1.0.bin", addr.port())
    );
    // A device that got 40000 bytes before a power cut resumes with Range.
    for range in ["bytes=0-39999", "bytes=40000-"] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /fw/meter-1.0.bin HTTP/1.1\r\nHost: localhost\r\nRange: {range}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        assert!(raw.starts_with(b"HTTP/1.1 206"), "{range}");
    }
    let p = d.progress("meter-1.0.bin").expect("progress");
    assert_eq!(p.method, DeliveryMethodKind::PullHttp);
    assert_eq!((p.bytes, p.blocks), (61_234, 2));
    assert_eq!((p.offset, p.size), (61_234, 61_234));
    assert!(p.complete);
    d.shutdown().await;
}

#[tokio::test]
async fn push_through_the_delivery_records_the_code_and_figures() {
    let server = server().await;
    let _meter = registered(&server, Loss::default(), 128 * 1024, 6).await;
    let (_dir, d) = delivery().await;
    let mut updates = 0;
    let report = d
        .push(
            &server,
            ENDPOINT,
            "meter-2.0.bin",
            6,
            Duration::from_secs(60),
            |_| updates += 1,
        )
        .await
        .unwrap();
    assert_eq!(report.code, 204);
    assert!(updates >= 64 / 16);
    let p = d.progress("meter-2.0.bin").unwrap();
    assert_eq!(p.method, DeliveryMethodKind::Push);
    assert_eq!((p.bytes, p.blocks, p.code), (65_536, 64, Some(204)));
    assert!(p.complete);
    assert!(p
        .properties()
        .contains(&("firmware.code".into(), "2.04".into())));
    d.shutdown().await;
    server.shutdown().await;
}

#[test]
fn methods_the_device_does_not_offer_are_not_applicable() {
    use lwm2m::firmware::{DeliveryMethod, ProtocolSupport};
    let coap_only = [ProtocolSupport::Coap];
    assert!(DeliveryMethodKind::PullCoap
        .applicability(Some(DeliveryMethod::Pull), Some(&coap_only))
        .is_ok());
    let why = DeliveryMethodKind::PullHttp
        .applicability(Some(DeliveryMethod::Both), Some(&coap_only))
        .unwrap_err();
    assert!(why.contains("Http"), "{why}");
    assert!(DeliveryMethodKind::Push
        .applicability(Some(DeliveryMethod::Pull), None)
        .is_err());
    assert!(DeliveryMethodKind::PullCoap
        .applicability(Some(DeliveryMethod::Push), None)
        .is_err());
    assert!(DeliveryMethodKind::Push.applicability(None, None).is_ok());
    assert_eq!(
        "pull-http".parse::<DeliveryMethodKind>(),
        Ok(DeliveryMethodKind::PullHttp)
    );
    assert!("ftp".parse::<DeliveryMethodKind>().is_err());
}
