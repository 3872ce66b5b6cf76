//! The firmware downloader in-process (no meter): CoAP Block2 at any block
//! size into a slot file, resume from an offset with the ETag, HTTP with
//! Range, CoAPS (Block2 under DTLS 1.2 PSK), and the failures mapped to
//! object 5's Update Results.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use lwm2m::firmware::{ProtocolSupport, UpdateResult};
use sim::firmware::download::{self, DownloadEvent, DownloadEventKind, DownloadJob, Target};

use crate::firmware_support::{files, image, CoapFiles, HttpFiles, WAIT};

fn job(dir: &std::path::Path, uri: String, szx: u8) -> DownloadJob {
    DownloadJob {
        target: Target::Firmware,
        generation: 1,
        uri,
        slot: dir.join("slot-b.bin"),
        offset: 0,
        etag: None,
        szx,
        limit: 256 * 1024,
        stall: Some(Duration::from_secs(2)),
        protocols: vec![ProtocolSupport::Coap, ProtocolSupport::Http],
        psk: None,
        seed: 7,
    }
}

/// Runs a download to its end; the events seen.
fn run(job: DownloadJob) -> Vec<DownloadEventKind> {
    let (tx, rx) = mpsc::channel::<DownloadEvent>();
    let tx = std::sync::Mutex::new(tx);
    let _h = download::spawn(
        job,
        Arc::new(move |e| {
            let _ = tx.lock().unwrap().send(e);
        }),
    )
    .unwrap();
    let mut events = Vec::new();
    loop {
        let e = rx.recv_timeout(WAIT).expect("download ends in time");
        let last = !matches!(e.kind, DownloadEventKind::Progress { .. });
        events.push(e.kind);
        if last {
            return events;
        }
    }
}

fn failure(events: &[DownloadEventKind]) -> UpdateResult {
    match events.last() {
        Some(DownloadEventKind::Failed(f)) => f.kind.update_result(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn coap_block2_downloads_at_every_block_size() {
    let img = image("2.0", 0, 3000);
    let server = CoapFiles::start(files(&[("fw/meter.bin", img.clone())]), Duration::ZERO);
    for szx in [0u8, 2, 6] {
        let dir = tempfile::tempdir().unwrap();
        server.requests.lock().unwrap().clear();
        let events = run(job(dir.path(), server.uri("fw/meter.bin"), szx));
        assert_eq!(
            events.last(),
            Some(&DownloadEventKind::Complete {
                size: img.len() as u64
            })
        );
        assert_eq!(std::fs::read(dir.path().join("slot-b.bin")).unwrap(), img);
        let requests = server.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), img.len().div_ceil(16 << szx), "szx {szx}");
        assert!(requests.iter().all(|(_, size)| *size == 16 << szx));
    }
}

#[test]
fn a_resumed_coap_download_starts_at_its_offset_and_a_changed_image_restarts() {
    let img = image("2.0", 0, 9000);
    let server = CoapFiles::start(files(&[("meter.bin", img.clone())]), Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slot-b.bin"), &img[..4096 + 100]).unwrap();
    let etag = (img.len() as u32).to_be_bytes().to_vec();
    let mut j = job(dir.path(), server.uri("meter.bin"), 6);
    j.offset = 4096;
    j.etag = Some(etag);
    let events = run(j.clone());
    assert!(matches!(
        events.last(),
        Some(DownloadEventKind::Complete { .. })
    ));
    assert_eq!(server.requests.lock().unwrap()[0].0, 4096);
    assert_eq!(std::fs::read(dir.path().join("slot-b.bin")).unwrap(), img);

    // The image under that ETag changed: the download starts over from 0.
    server.requests.lock().unwrap().clear();
    std::fs::write(dir.path().join("slot-b.bin"), &img[..4096]).unwrap();
    j.etag = Some(b"other".to_vec());
    let events = run(j);
    assert!(matches!(
        events.last(),
        Some(DownloadEventKind::Complete { .. })
    ));
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!((requests[0].0, requests[1].0), (4096, 0));
    assert_eq!(std::fs::read(dir.path().join("slot-b.bin")).unwrap(), img);
}

#[test]
fn http_downloads_and_resumes_with_range() {
    let img = image("2.0", 0, 20_000);
    let server = HttpFiles::start(files(&[("meter.bin", img.clone())]));
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("http://{}/meter.bin", server.addr);
    let events = run(job(dir.path(), uri.clone(), 6));
    assert!(matches!(
        events.last(),
        Some(DownloadEventKind::Complete { .. })
    ));
    assert_eq!(std::fs::read(dir.path().join("slot-b.bin")).unwrap(), img);

    std::fs::write(dir.path().join("slot-b.bin"), &img[..8192]).unwrap();
    let mut j = job(dir.path(), uri, 6);
    j.offset = 8192;
    j.etag = Some(format!("\"{}\"", img.len()).into_bytes());
    let events = run(j);
    assert!(matches!(
        events.last(),
        Some(DownloadEventKind::Complete { .. })
    ));
    assert_eq!(std::fs::read(dir.path().join("slot-b.bin")).unwrap(), img);
    assert_eq!(
        server.ranges.lock().unwrap().as_slice(),
        ["", "bytes=8192-"]
    );
}

#[test]
fn failures_map_to_their_update_results() {
    let big = image("2.0", 0, 10_000);
    let server = CoapFiles::start(files(&[("big.bin", big)]), Duration::ZERO);
    let http = HttpFiles::start(files(&[]));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (server.uri("missing.bin"), UpdateResult::InvalidUri),
        (
            format!("http://{}/missing.bin", http.addr),
            UpdateResult::InvalidUri,
        ),
        ("not a uri".to_owned(), UpdateResult::InvalidUri),
        (
            "coap://127.0.0.1:99999/x".to_owned(),
            UpdateResult::InvalidUri,
        ),
        (
            "ftp://127.0.0.1/x.bin".to_owned(),
            UpdateResult::UnsupportedProtocol,
        ),
        (
            "coaps://127.0.0.1/x.bin".to_owned(),
            UpdateResult::UnsupportedProtocol,
        ),
        (
            "https://127.0.0.1/x.bin".to_owned(),
            UpdateResult::UnsupportedProtocol,
        ),
    ];
    for (uri, expected) in cases {
        assert_eq!(failure(&run(job(d, uri.clone(), 6))), expected, "{uri}");
    }
    let mut small = job(d, server.uri("big.bin"), 6);
    small.limit = 8192;
    assert_eq!(failure(&run(small)), UpdateResult::NotEnoughFlash);

    server.answer.store(2, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        failure(&run(job(d, server.uri("big.bin"), 6))),
        UpdateResult::ConnectionLost
    );
    // Nobody listens on the HTTP port any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    assert_eq!(
        failure(&run(job(d, format!("http://{addr}/x.bin"), 6))),
        UpdateResult::ConnectionLost
    );
}

/// A CoAPS file server (test double): one image at `/fw/meter.bin`, Block2
/// answers as DTLS application data of a [`dtls::OpensslServer`] that
/// accepts one identity and key. Stops when dropped.
struct CoapsFiles {
    addr: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl CoapsFiles {
    fn start(identity: &'static str, key: &'static [u8], image: Vec<u8>) -> CoapsFiles {
        use coap_lite::{MessageType, Packet};
        use dtls::{DtlsServer, OpensslServer, SecretKey, ServerConfig};
        use lwm2m::coap::block::respond_block2;
        use std::sync::atomic::Ordering;

        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lookup: dtls::PskLookup = Arc::new(move |id: &str| {
            (id == identity).then(|| SecretKey::new(key.to_vec()).unwrap())
        });
        let mut server = OpensslServer::new(ServerConfig::new(lookup)).unwrap();
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    server.handle_datagram(std::time::Instant::now(), peer, &buf[..n]);
                }
                server.handle_timeout(std::time::Instant::now());
                while let Some(r) = server.poll_received() {
                    let Ok(req) = Packet::from_bytes(&r.payload) else {
                        continue;
                    };
                    let etag = (image.len() as u32).to_be_bytes();
                    let mut resp = respond_block2(&req, &image, &etag, 6, Some(42));
                    resp.header.set_type(MessageType::Acknowledgement);
                    resp.header.message_id = req.header.message_id;
                    resp.set_token(req.get_token().to_vec());
                    let _ =
                        server.send(std::time::Instant::now(), r.peer, &resp.to_bytes().unwrap());
                }
                while let Some(t) = server.poll_transmit() {
                    let _ = socket.send_to(&t.payload, t.destination);
                }
                while server.poll_event().is_some() {}
            }
        });
        CoapsFiles { addr, stop }
    }

    fn uri(&self) -> String {
        format!("coaps://{}/fw/meter.bin", self.addr)
    }
}

impl Drop for CoapsFiles {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn coaps_job(dir: &std::path::Path, uri: String, psk: Option<dtls::Psk>) -> DownloadJob {
    let mut j = job(dir, uri, 5);
    j.protocols.push(ProtocolSupport::Coaps);
    j.psk = psk;
    j
}

fn psk(identity: &str, key: &[u8]) -> dtls::Psk {
    dtls::Psk::new(identity, dtls::SecretKey::new(key.to_vec()).unwrap()).unwrap()
}

#[test]
fn coaps_downloads_under_dtls_with_the_server_account_psk() {
    let img = image("2.0", 0, 5000);
    let server = CoapsFiles::start("meter-1", b"0123456789abcdef", img.clone());
    let dir = tempfile::tempdir().unwrap();
    let events = run(coaps_job(
        dir.path(),
        server.uri(),
        Some(psk("meter-1", b"0123456789abcdef")),
    ));
    assert_eq!(
        events.last(),
        Some(&DownloadEventKind::Complete {
            size: img.len() as u64
        })
    );
    assert_eq!(std::fs::read(dir.path().join("slot-b.bin")).unwrap(), img);
}

#[test]
fn coaps_with_a_wrong_key_is_connection_lost_and_without_a_psk_unsupported() {
    let img = image("2.0", 0, 1000);
    let server = CoapsFiles::start("meter-1", b"0123456789abcdef", img);
    let dir = tempfile::tempdir().unwrap();
    let events = run(coaps_job(
        dir.path(),
        server.uri(),
        Some(psk("meter-1", b"wrong-key")),
    ));
    assert_eq!(failure(&events), UpdateResult::ConnectionLost);

    let events = run(coaps_job(dir.path(), server.uri(), None));
    assert_eq!(failure(&events), UpdateResult::UnsupportedProtocol);

    // A device that does not list CoAPS in /5/0/8 refuses the URI outright.
    let mut j = coaps_job(dir.path(), server.uri(), Some(psk("meter-1", b"k")));
    j.protocols.retain(|p| *p != ProtocolSupport::Coaps);
    assert_eq!(failure(&run(j)), UpdateResult::UnsupportedProtocol);
}
