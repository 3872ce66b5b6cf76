//! The HTTP firmware file server over loopback: Range requests, refusals.
//! Requests are written by hand on a TCP socket so that paths reach the
//! server exactly as written (an HTTP client library would normalise `..`).

use std::sync::Arc;
use std::time::Duration;

use server::firmware::{generate_fixtures, HttpFileServer, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"TOP-SECRET-BESIDE-THE-STORE";

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn request(server: &HttpFileServer, method: &str, path: &str, extra: &str) -> Response {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
        server.local_addr()
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("the HTTP server answers within 5 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

async fn served() -> (tempfile::TempDir, Arc<Store>, HttpFileServer) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    generate_fixtures(&dir).unwrap();
    std::fs::write(root.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(dir.join("unlisted.bin"), SECRET).unwrap();
    let store = Arc::new(Store::load(&dir).unwrap());
    let server = HttpFileServer::bind("127.0.0.1:0".parse().unwrap(), Arc::clone(&store))
        .await
        .unwrap();
    (root, store, server)
}

#[tokio::test]
async fn a_whole_image_and_a_range_come_back_exactly() {
    let (_root, store, server) = served().await;
    let image = store.get("meter-1.0.bin").unwrap();
    assert!(server.url("meter-1.0.bin").starts_with("http://127.0.0.1:"));
    assert!(server.url("meter-1.0.bin").ends_with("/fw/meter-1.0.bin"));

    let r = request(&server, "GET", "/fw/meter-1.0.bin", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_slice(), &image.bytes[..]);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    // Resume from byte 40000 to the end, and a middle slice.
    let r = request(
        &server,
        "GET",
        "/fw/meter-1.0.bin",
        "Range: bytes=40000-\r\n",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_slice(), &image.bytes[40_000..]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 40000-{}/{}", image.len() - 1, image.len()).as_str())
    );
    let r = request(
        &server,
        "GET",
        "/fw/meter-1.0.bin",
        "Range: bytes=100-163\r\n",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_slice(), &image.bytes[100..164]);

    // Past the end: 416.
    let r = request(
        &server,
        "GET",
        "/fw/meter-1.0.bin",
        "Range: bytes=999999-\r\n",
    )
    .await;
    assert_eq!(r.status, 416);
    server.shutdown().await;
}

#[tokio::test]
async fn paths_outside_the_store_and_listings_get_404() {
    let (_root, _store, server) = served().await;
    for path in [
        "/fw/../secret.txt",
        "/fw/../../Cargo.toml",
        "/fw/%2e%2e/secret.txt",
        "/fw/..%2fsecret.txt",
        "/fw/%2e%2e%2fsecret.txt",
        "/secret.txt",
        "/fw/",
        "/fw",
        "/",
        "/fw/unlisted.bin",
        "/fw/manifest.yaml",
        "/fw//meter-1.0.bin",
        "/fw/./meter-1.0.bin",
        "/store/meter-1.0.bin",
        "/fw/meter-1.0.bin/",
    ] {
        let r = request(&server, "GET", path, "").await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path} leaked"
        );
    }
    // An absolute-form request target naming a file outside.
    let r = request(&server, "GET", "http://127.0.0.1/../secret.txt", "").await;
    assert_ne!(r.status, 200);
}
