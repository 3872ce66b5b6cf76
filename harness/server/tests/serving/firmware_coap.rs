//! The CoAP firmware file server over loopback: Block2 downloads at several
//! block sizes, resume, ETag/Size2, refusals of every path outside the store,
//! duplicates, progress events, and libcoap's coap-client as a real client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::coap::block::{BlockKind, BlockOption};
use lwm2m::coap::wire;
use server::firmware::{generate_fixtures, CoapFileServer, FileService, ProgressEvent, Store};
use tokio::net::UdpSocket;

const SECRET: &[u8] = b"TOP-SECRET-BESIDE-THE-STORE";

/// A store in `<tmp>/store`, with secret files beside it and inside it (unlisted).
fn store_with_secrets() -> (tempfile::TempDir, Arc<Store>) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    generate_fixtures(&dir).unwrap();
    std::fs::write(root.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(dir.join("unlisted.bin"), SECRET).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub").join("x.bin"), SECRET).unwrap();
    let store = Arc::new(Store::load(&dir).unwrap());
    (root, store)
}

struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    next_id: u16,
}

impl Client {
    async fn new(server: SocketAddr) -> Client {
        Client {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            next_id: 1,
        }
    }

    fn request(&mut self, segments: &[&[u8]], block: Option<BlockOption>) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Get);
        p.header.message_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        p.set_token(vec![0xab, self.next_id as u8]);
        for s in segments {
            p.add_option(CoapOption::UriPath, s.to_vec());
        }
        if let Some(b) = block {
            b.set_on(&mut p, BlockKind::Block2);
        }
        p
    }

    async fn exchange(&mut self, request: &Packet) -> Packet {
        self.socket
            .send_to(&wire::encode(request), self.server)
            .await
            .unwrap();
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), self.socket.recv_from(&mut buf))
            .await
            .expect("the file server answers within 2 s")
            .unwrap();
        let response = wire::decode(&buf[..n]).unwrap();
        assert_eq!(response.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(response.header.message_id, request.header.message_id);
        assert_eq!(response.get_token(), request.get_token());
        response
    }

    async fn get(&mut self, segments: &[&[u8]], block: Option<BlockOption>) -> Packet {
        let request = self.request(segments, block);
        self.exchange(&request).await
    }

    /// Downloads `name` from block `first` on at `szx`; the bytes, the
    /// ETags seen and the number of blocks.
    async fn download(&mut self, name: &str, szx: u8, first: u32) -> (Vec<u8>, Vec<Vec<u8>>, u32) {
        let mut data = Vec::new();
        let mut etags = Vec::new();
        for num in first..first + 100_000 {
            let r = self
                .get(
                    &[b"fw", name.as_bytes()],
                    Some(BlockOption::new(num, false, szx).unwrap()),
                )
                .await;
            assert_eq!(r.header.code, MessageClass::Response(ResponseType::Content));
            etags.push(
                r.get_first_option(CoapOption::ETag)
                    .cloned()
                    .unwrap_or_default(),
            );
            let b = BlockOption::from_packet(&r, BlockKind::Block2)
                .unwrap()
                .expect("every answer carries Block2");
            assert_eq!((b.num, b.szx), (num, szx));
            if num == first {
                assert_eq!(
                    lwm2m::coap::options::uint(&r, CoapOption::ContentFormat),
                    Some(42)
                );
            }
            data.extend_from_slice(&r.payload);
            if !b.more {
                return (data, etags, num - first + 1);
            }
            assert_eq!(r.payload.len(), b.size(), "only the last block is short");
        }
        panic!("download did not end");
    }
}

async fn served() -> (tempfile::TempDir, Arc<Store>, CoapFileServer) {
    let (root, store) = store_with_secrets();
    let server = CoapFileServer::bind("127.0.0.1:0".parse().unwrap(), Arc::clone(&store))
        .await
        .unwrap();
    (root, store, server)
}

#[tokio::test]
async fn block2_download_at_szx_2_and_6_reassembles_the_exact_image() {
    let (_root, store, server) = served().await;
    let mut client = Client::new(server.local_addr()).await;
    for name in ["meter-1.0.bin", "meter-2.0.bin"] {
        let image = store.get(name).unwrap();
        for szx in [2u8, 6] {
            let (data, etags, blocks) = client.download(name, szx, 0).await;
            assert_eq!(data.as_slice(), &image.bytes[..], "{name} at szx {szx}");
            assert_eq!(blocks as usize, image.len().div_ceil(16 << szx));
            assert!(
                etags.iter().all(|e| e.as_slice() == image.etag()),
                "ETag is the first 8 bytes of SHA-256 on every block"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_download_resumes_from_any_block() {
    let (_root, store, server) = served().await;
    let image = store.get("meter-1.0.bin").unwrap();
    let mut client = Client::new(server.local_addr()).await;
    // Resume at block 37 of 64-byte blocks, i.e. byte 2368.
    let (data, _, _) = client.download("meter-1.0.bin", 2, 37).await;
    assert_eq!(data.as_slice(), &image.bytes[37 * 64..]);
    // And with a different block size than the first part: block 5 of 1024
    // bytes, i.e. byte 5120 (RFC 7959 §2.4 lets the size change).
    let (data, _, _) = client.download("meter-1.0.bin", 6, 5).await;
    assert_eq!(data.as_slice(), &image.bytes[5 * 1024..]);
    // The last, short block alone.
    let last = (image.len() / 1024) as u32;
    let r = client
        .get(
            &[b"fw", b"meter-1.0.bin"],
            Some(BlockOption::new(last, false, 6).unwrap()),
        )
        .await;
    assert_eq!(r.payload.as_slice(), &image.bytes[last as usize * 1024..]);
    // Past the end: 4.02 Bad Option.
    let r = client
        .get(
            &[b"fw", b"meter-1.0.bin"],
            Some(BlockOption::new(last + 1, false, 6).unwrap()),
        )
        .await;
    assert_eq!(
        r.header.code,
        MessageClass::Response(ResponseType::BadOption)
    );
}

#[tokio::test]
async fn etag_is_stable_and_size2_announces_the_length() {
    let (_root, store, server) = served().await;
    let image = store.get("meter-2.0.bin").unwrap();
    let mut client = Client::new(server.local_addr()).await;
    // Without Block2: block 0 at the server's preferred 1024 bytes.
    let first = client.get(&[b"fw", b"meter-2.0.bin"], None).await;
    let b = BlockOption::from_packet(&first, BlockKind::Block2)
        .unwrap()
        .unwrap();
    assert_eq!((b.num, b.more, b.size()), (0, true, 1024));
    assert_eq!(
        lwm2m::coap::options::uint(&first, CoapOption::Size2),
        Some(65_536)
    );
    let tag = first.get_first_option(CoapOption::ETag).cloned().unwrap();
    assert_eq!(tag.len(), 8);
    assert_eq!(tag.as_slice(), &image.sha256[..8]);
    // Same tag from a second server on the same store, i.e. stable.
    let other = CoapFileServer::bind("127.0.0.1:0".parse().unwrap(), Arc::clone(&store))
        .await
        .unwrap();
    let mut client2 = Client::new(other.local_addr()).await;
    let again = client2.get(&[b"fw", b"meter-2.0.bin"], None).await;
    assert_eq!(again.get_first_option(CoapOption::ETag), Some(&tag));
    // Different images, different tags.
    let broken = client.get(&[b"fw", b"meter-2.0-broken.bin"], None).await;
    assert_ne!(broken.get_first_option(CoapOption::ETag), Some(&tag));
}

#[tokio::test]
async fn paths_outside_the_store_get_4_04_and_nothing_outside_is_read() {
    let (root, _store, server) = served().await;
    let mut client = Client::new(server.local_addr()).await;
    let abs = root.path().join("secret.txt");
    let abs = abs.to_str().unwrap().as_bytes().to_vec();
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"fw", b"..", b"secret.txt"],
        vec![b"fw", b"../secret.txt"],
        vec![b"fw", b"..", b"..", b"Cargo.toml"],
        vec![b"fw", b"%2e%2e", b"secret.txt"],
        vec![b"fw", b"%2e%2e%2fsecret.txt"],
        vec![b"fw", b"..%2fsecret.txt"],
        vec![b"fw", &abs],
        vec![&abs],
        vec![b"fw", b"/etc/passwd"],
        vec![b"fw", b""],
        vec![b"fw", b"", b"meter-2.0.bin"],
        vec![b"", b"fw", b"meter-2.0.bin"],
        vec![b"fw"],
        vec![],
        vec![b"fw", b"sub"],
        vec![b"fw", b"sub", b"x.bin"],
        vec![b"fw", b"unlisted.bin"],
        vec![b"fw", b"manifest.yaml"],
        vec![b"fw", b"."],
        vec![b"fw", b"meter-2.0.bin", b""],
        vec![b"fw", b"meter-2.0.bin", b"x"],
        vec![b"fw", b"METER-2.0.BIN"],
        vec![b"fw", b"meter-2.0.bin\0"],
        vec![b"fw", &[0xff, 0xfe]],
        vec![b"secret.txt"],
        vec![b"store", b"meter-2.0.bin"],
    ];
    for segments in &cases {
        let r = client.get(segments, None).await;
        assert_eq!(
            r.header.code,
            MessageClass::Response(ResponseType::NotFound),
            "{segments:?}"
        );
        assert!(
            !r.payload.windows(SECRET.len()).any(|w| w == SECRET),
            "{segments:?} leaked"
        );
    }
    // The store serves the bytes it verified at load time: deleting every
    // file does not stop it, so no request reaches the file system at all.
    std::fs::remove_dir_all(root.path()).unwrap();
    let r = client
        .get(
            &[b"fw", b"meter-2.0.bin"],
            Some(BlockOption::new(3, false, 4).unwrap()),
        )
        .await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Content));
    // Not GET: 4.05.
    let mut put = client.request(&[b"fw", b"meter-2.0.bin"], None);
    put.header.code = MessageClass::Request(RequestType::Put);
    let r = client.exchange(&put).await;
    assert_eq!(
        r.header.code,
        MessageClass::Response(ResponseType::MethodNotAllowed)
    );
}

#[tokio::test]
async fn progress_counts_blocks_and_duplicate_requests() {
    let (_root, store, server) = served().await;
    let mut events = server.subscribe();
    let mut client = Client::new(server.local_addr()).await;
    let size = store.get("meter-2.0.bin").unwrap().len();
    // 64 blocks of 1024 bytes; block 10's request is sent three times with
    // the same message id (a CON whose ACK was lost twice), block 20's twice
    // with a new id each time (an application-level retry).
    for num in 0..64u32 {
        let request = client.request(
            &[b"fw", b"meter-2.0.bin"],
            Some(BlockOption::new(num, false, 6).unwrap()),
        );
        let first = client.exchange(&request).await;
        if num == 10 {
            for _ in 0..2 {
                let again = client.exchange(&request).await;
                assert_eq!(wire::encode(&again), wire::encode(&first), "same answer");
            }
        }
        if num == 20 {
            client
                .get(
                    &[b"fw", b"meter-2.0.bin"],
                    Some(BlockOption::new(num, false, 6).unwrap()),
                )
                .await;
        }
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            Ok(Ok(e)) => {
                let done = matches!(e, ProgressEvent::Completed(_));
                seen.push(e);
                if done {
                    break;
                }
            }
            _ => break,
        }
    }
    assert!(
        matches!(seen.first(), Some(ProgressEvent::Started(_))),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| matches!(e, ProgressEvent::Progress(_))));
    let Some(ProgressEvent::Completed(stats)) = seen.last() else {
        panic!("no completion: {seen:?}");
    };
    assert_eq!(stats.image, "meter-2.0.bin");
    assert_eq!(stats.blocks, 64);
    assert_eq!(stats.bytes as usize, size);
    assert_eq!(stats.offset, size);
    assert_eq!(stats.duplicates, 2);
    assert_eq!(stats.repeated_blocks, 1);
    assert_eq!(stats.retransmissions(), 3);
    assert!(stats.complete);
    assert!(stats.to_string().contains("65536/65536 bytes"), "{stats}");
    let snapshot = server.transfers();
    assert_eq!(snapshot.last(), Some(stats));
}

#[test]
fn the_sans_io_service_answers_pings_with_reset_and_drops_garbage() {
    let (_root, store) = store_with_secrets();
    let mut service = FileService::new(store);
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let now = Instant::now();
    // CoAP ping (Empty CON) -> RST with the same id (RFC 7252 §4.3).
    let rst = service.handle_datagram(now, peer, &[0x40, 0x00, 0x12, 0x34]);
    assert_eq!(rst, Some(vec![0x70, 0x00, 0x12, 0x34]));
    // A CON with a format error -> RST; a NON one -> nothing.
    assert_eq!(
        service.handle_datagram(now, peer, &[0x49, 0x01, 0, 7]),
        Some(vec![0x70, 0x00, 0, 7])
    );
    assert_eq!(
        service.handle_datagram(now, peer, &[0x59, 0x01, 0, 7]),
        None
    );
    assert_eq!(service.handle_datagram(now, peer, &[1, 2]), None);
    // ACK and RST are not answered.
    assert_eq!(
        service.handle_datagram(now, peer, &[0x60, 0x00, 0, 8]),
        None
    );
    // A NON GET is answered with a NON.
    let mut p = Packet::new();
    p.header.set_type(MessageType::NonConfirmable);
    p.header.code = MessageClass::Request(RequestType::Get);
    p.header.message_id = 99;
    p.add_option(CoapOption::UriPath, b"fw".to_vec());
    p.add_option(CoapOption::UriPath, b"meter-1.0.bin".to_vec());
    let r = wire::decode(
        &service
            .handle_datagram(now, peer, &wire::encode(&p))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(r.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Content));
    // An SZX of 7 in the request: 4.00 Bad Request (RFC 7959 §2.2).
    p.header.message_id = 100;
    p.add_option(CoapOption::Block2, vec![0x07]);
    let r = wire::decode(
        &service
            .handle_datagram(now, peer, &wire::encode(&p))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        r.header.code,
        MessageClass::Response(ResponseType::BadRequest)
    );
    let refused: Vec<_> = std::iter::from_fn(|| service.poll_event())
        .filter(|e| matches!(e, ProgressEvent::Refused { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

fn coap_client() -> Option<&'static str> {
    let found = [
        "/usr/bin/coap-client-notls",
        "/usr/bin/coap-client-openssl",
        "/usr/bin/coap-client-gnutls",
        "/usr/bin/coap-client",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "coap-client is missing: install libcoap3-bin"
        );
        eprintln!("coap-client not installed; skipping (install libcoap3-bin)");
    }
    found
}

#[tokio::test]
async fn libcoap_coap_client_fetches_an_image_byte_for_byte() {
    let Some(client) = coap_client() else {
        return;
    };
    let (root, store, server) = served().await;
    let mut events = server.subscribe();
    for (name, block) in [("meter-1.0.bin", "64"), ("meter-2.0.bin", "1024")] {
        let out = root.path().join(format!("{name}.{block}.out"));
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(client)
                .args(["-b", block, "-B", "20", "-o"])
                .arg(&out)
                .arg(server.url(name))
                .kill_on_drop(true)
                .status(),
        )
        .await
        .expect("coap-client finishes within 30 s")
        .unwrap();
        assert!(status.success(), "{name}: {status}");
        let got = std::fs::read(&out).unwrap();
        assert_eq!(
            got.as_slice(),
            &store.get(name).unwrap().bytes[..],
            "{name} at {block}"
        );
    }
    // The progress of the libcoap download was published.
    let mut completed = 0;
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        if let ProgressEvent::Completed(s) = e {
            assert!(s.complete && s.offset == s.size, "{s}");
            completed += 1;
        }
    }
    assert_eq!(completed, 2);
    // A missing image: coap-client reports 4.04.
    let output = tokio::process::Command::new(client)
        .args(["-B", "5"])
        .arg(server.url("nope.bin"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("4.04"), "{text}");
}
