//! The firmware benchmark's yardsticks against real servers over loopback:
//! the in-process stop-and-wait client downloads byte for byte from the
//! do-nothing floor server and from our CoAP file server on each runtime it
//! can run on (issue 16).

use std::net::SocketAddr;
use std::sync::Arc;

use server::firmware::bench::client::{download, ClientOptions};
use server::firmware::bench::floor::FloorServer;
use server::firmware::coap_files::Placement;
use server::firmware::{generate_fixtures, CoapFileServer, Store};

const BENCH_IMAGE: &str = server::firmware::generate::BENCH_IMAGE;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    generate_fixtures(dir.path()).unwrap();
    let store = Arc::new(Store::load(dir.path()).unwrap());
    (dir, store)
}

#[test]
fn the_floor_server_delivers_an_image_byte_for_byte_at_every_block_size() {
    // Not a multiple of any block size, so the last block is short.
    let image: Arc<[u8]> = (0..70_001u32).map(|i| (i % 251) as u8).collect();
    let floor = FloorServer::start(loopback(), Arc::clone(&image)).unwrap();
    for block_size in [16, 64, 512, 1024] {
        let got = download(
            floor.local_addr(),
            &["fw", "any"],
            block_size,
            &ClientOptions::default(),
        )
        .unwrap();
        assert_eq!(&got.bytes[..], &image[..], "block size {block_size}");
        assert_eq!(got.blocks as usize, image.len().div_ceil(block_size));
        assert_eq!(got.retransmissions, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_file_server_delivers_the_bench_image_on_its_own_thread_and_on_a_runtime() {
    let (_dir, store) = store();
    let want = Arc::clone(&store.get(BENCH_IMAGE).unwrap().bytes);
    let own = CoapFileServer::bind(loopback(), Arc::clone(&store))
        .await
        .unwrap();
    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let on_runtime = CoapFileServer::serve_on(
        socket,
        Arc::clone(&store),
        Placement::Runtime(tokio::runtime::Handle::current()),
    )
    .unwrap();
    for (what, addr) in [
        ("own thread", own.local_addr()),
        ("runtime task", on_runtime.local_addr()),
    ] {
        let got = tokio::task::spawn_blocking(move || {
            download(addr, &["fw", BENCH_IMAGE], 1024, &ClientOptions::default())
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(&got.bytes[..], &want[..], "{what}");
        assert_eq!(got.blocks as usize, want.len().div_ceil(1024), "{what}");
    }
    // Both record the transfer as complete.
    for server in [&own, &on_runtime] {
        let stats = server.transfers();
        assert!(
            stats
                .iter()
                .any(|s| s.complete && s.bytes as usize == want.len()),
            "{stats:?}"
        );
    }
    own.shutdown().await;
    on_runtime.shutdown().await;
}

#[tokio::test]
async fn a_server_on_its_own_thread_keeps_serving_while_the_callers_runtime_is_blocked() {
    // The caller's runtime is current-thread and blocked in the download:
    // a server whose socket still belonged to it would never answer.
    let (_dir, store) = store();
    let want = Arc::clone(&store.get(BENCH_IMAGE).unwrap().bytes);
    let server = CoapFileServer::bind(loopback(), Arc::clone(&store))
        .await
        .unwrap();
    let got = download(
        server.local_addr(),
        &["fw", BENCH_IMAGE],
        512,
        &ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(&got.bytes[..], &want[..]);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_image_is_refused_with_4_04_naming_the_block() {
    let (_dir, store) = store();
    let server = CoapFileServer::bind(loopback(), store).await.unwrap();
    let addr = server.local_addr();
    let err = download(addr, &["fw", "no-such.bin"], 512, &ClientOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "block 0: the server answered 4.04");
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_recorded_file_server_runs_on_its_own_thread_and_captures_each_block_before_its_answer() {
    // The only thread of this runtime blocks in the download below: a file
    // server running as a task here would never answer it.
    let (_dir, store) = store();
    let want = Arc::clone(&store.get(BENCH_IMAGE).unwrap().bytes);
    let capture = server::Capture::new(10_000);
    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let recorded = server::Recorded::new(socket, capture.clone(), server::Carried::Coap).unwrap();
    let files = CoapFileServer::serve(recorded, Arc::clone(&store)).unwrap();
    let opts = ClientOptions {
        ack_timeout: std::time::Duration::from_millis(500),
        max_retransmit: 1,
        ..ClientOptions::default()
    };
    let got = download(files.local_addr(), &["fw", BENCH_IMAGE], 1024, &opts).unwrap();
    assert_eq!(&got.bytes[..], &want[..]);
    // Each request, then its answer: never an answer recorded before the
    // request it answers, though the server records on its own thread.
    let held = capture.since(0);
    assert_eq!(held.len(), 2 * got.blocks as usize);
    for pair in held.chunks(2) {
        assert_eq!(pair[0].to, files.local_addr(), "{pair:?}");
        assert_eq!(pair[1].from, files.local_addr(), "{pair:?}");
        assert_eq!(pair[0].from, pair[1].to);
    }
}
