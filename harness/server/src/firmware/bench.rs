//! `meterbench bench firmware`: how fast our CoAP file server delivers an
//! image, against libcoap's own server, both timed with libcoap's client.
//!
//! libcoap's `coap-server` cannot serve a file from disk; with `-d N` it
//! creates a resource for a PUT to an unknown path and then serves that body
//! block-wise (its COAP_BLOCK_USE_LIBCOAP mode). So the image is first PUT
//! to it (Block1, by `coap-client -m put -f`), outside the timing. Each timed
//! run is one `coap-client -b <size> -o /dev/null <url>` process, alternating
//! between the two servers so that machine noise hits both alike; process
//! start-up is in both figures. Before timing, one download from each server
//! is compared byte for byte with the image.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::coap_files::CoapFileServer;
use super::generate::{generate_fixtures, BENCH_IMAGE};
use super::store::Store;
use super::FirmwareError;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A store folder holding `image`; `None`: generate the fixtures into a
    /// temporary folder and use [`BENCH_IMAGE`].
    pub store_dir: Option<PathBuf>,
    pub image: String,
    /// Block sizes in bytes (16 … 1024).
    pub block_sizes: Vec<usize>,
    /// Timed downloads per server and block size.
    pub repetitions: usize,
    pub client: PathBuf,
    pub libcoap_server: PathBuf,
    /// Longest one download may take.
    pub timeout: Duration,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            store_dir: None,
            image: BENCH_IMAGE.to_owned(),
            block_sizes: vec![512, 1024],
            repetitions: 5,
            client: PathBuf::from("/usr/bin/coap-client-notls"),
            libcoap_server: PathBuf::from("/usr/bin/coap-server-notls"),
            timeout: Duration::from_secs(60),
        }
    }
}

/// The figures of one block size.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub block_size: usize,
    pub ours: Vec<Duration>,
    pub theirs: Vec<Duration>,
}

impl BenchRow {
    pub fn ours_median(&self) -> Duration {
        median(&self.ours)
    }

    pub fn theirs_median(&self) -> Duration {
        median(&self.theirs)
    }

    /// Median time ours / median time libcoap's: below 1.0 means ours is faster.
    pub fn ratio(&self) -> f64 {
        let theirs = self.theirs_median().as_secs_f64();
        if theirs > 0.0 {
            self.ours_median().as_secs_f64() / theirs
        } else {
            f64::NAN
        }
    }
}

/// The result of a run; its Display is the table the CLI prints.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub image: String,
    pub size: usize,
    pub repetitions: usize,
    pub client: PathBuf,
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "firmware download over CoAP Block2: {} ({} bytes), client {}, median of {} runs",
            self.image,
            self.size,
            self.client.display(),
            self.repetitions
        )?;
        writeln!(
            f,
            "{:>6}  {:>7}  {:>12}  {:>12}  {:>13}  {:>6}",
            "block", "blocks", "meterbench", "libcoap", "meterbench/s", "ratio"
        )?;
        for row in &self.rows {
            let ours = row.ours_median();
            writeln!(
                f,
                "{:>6}  {:>7}  {:>9.1} ms  {:>9.1} ms  {:>9.0} KiB  {:>6.2}",
                row.block_size,
                self.size.div_ceil(row.block_size),
                ours.as_secs_f64() * 1e3,
                row.theirs_median().as_secs_f64() * 1e3,
                self.size as f64 / 1024.0 / ours.as_secs_f64().max(1e-9),
                row.ratio()
            )?;
        }
        write!(
            f,
            "ratio = meterbench median / libcoap coap-server median (below 1.00: meterbench is faster)"
        )
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error("{} is missing: install libcoap3-bin", path.display())]
    ToolMissing { path: PathBuf },
    #[error("image {0:?} is not in the store")]
    NoSuchImage(String),
    #[error("block size {0} is not one of 16, 32, … 1024")]
    BlockSize(usize),
    #[error("{what} failed: {detail}")]
    Tool { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the benchmark.
pub async fn run(opts: BenchOptions) -> Result<BenchReport, BenchError> {
    for tool in [&opts.client, &opts.libcoap_server] {
        if !tool.exists() {
            return Err(BenchError::ToolMissing { path: tool.clone() });
        }
    }
    for &size in &opts.block_sizes {
        if !(16..=1024).contains(&size) || !size.is_power_of_two() {
            return Err(BenchError::BlockSize(size));
        }
    }
    let scratch = std::env::temp_dir().join(format!("meterbench-bench-{}", std::process::id()));
    let store_dir = match &opts.store_dir {
        Some(d) => d.clone(),
        None => {
            generate_fixtures(&scratch)?;
            scratch.clone()
        }
    };
    let result = run_in(&opts, &store_dir, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run_in(
    opts: &BenchOptions,
    store_dir: &Path,
    scratch: &Path,
) -> Result<BenchReport, BenchError> {
    let store = Arc::new(Store::load(store_dir)?);
    let image = store
        .get(&opts.image)
        .ok_or_else(|| BenchError::NoSuchImage(opts.image.clone()))?
        .clone();
    std::fs::create_dir_all(scratch).map_err(|source| BenchError::Io {
        what: format!("creating {}", scratch.display()),
        source,
    })?;

    let ours =
        CoapFileServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::clone(&store)).await?;
    let ours_url = ours.url(&opts.image);

    let port = free_udp_port().map_err(|source| BenchError::Io {
        what: "finding a free UDP port".into(),
        source,
    })?;
    let mut theirs = LibcoapServer::start(&opts.libcoap_server, port)?;
    let theirs_url = format!("coap://127.0.0.1:{port}/fw/{}", opts.image);
    upload(opts, &image.path, &theirs_url).await?;

    let mut rows = Vec::new();
    for &block_size in &opts.block_sizes {
        for (who, url) in [("meterbench", &ours_url), ("libcoap", &theirs_url)] {
            let out = scratch.join(format!("check-{who}-{block_size}.bin"));
            download(opts, block_size, url, &out).await?;
            let got = std::fs::read(&out).map_err(|source| BenchError::Io {
                what: format!("reading {}", out.display()),
                source,
            })?;
            if got.as_slice() != &image.bytes[..] {
                return Err(BenchError::Tool {
                    what: format!("{who}'s server at block size {block_size}"),
                    detail: format!(
                        "delivered {} bytes that differ from the {}-byte image",
                        got.len(),
                        image.len()
                    ),
                });
            }
        }
        let mut row = BenchRow {
            block_size,
            ours: Vec::new(),
            theirs: Vec::new(),
        };
        for _ in 0..opts.repetitions.max(1) {
            row.ours
                .push(download(opts, block_size, &ours_url, Path::new("/dev/null")).await?);
            row.theirs
                .push(download(opts, block_size, &theirs_url, Path::new("/dev/null")).await?);
        }
        tracing::info!(block_size, ours = ?row.ours_median(), theirs = ?row.theirs_median(), "bench row");
        rows.push(row);
    }
    theirs.stop().await;
    ours.shutdown().await;
    Ok(BenchReport {
        image: opts.image.clone(),
        size: image.len(),
        repetitions: opts.repetitions.max(1),
        client: opts.client.clone(),
        rows,
    })
}

/// One `coap-client` download; its wall time.
async fn download(
    opts: &BenchOptions,
    block_size: usize,
    url: &str,
    out: &Path,
) -> Result<Duration, BenchError> {
    let mut cmd = Command::new(&opts.client);
    cmd.arg("-b")
        .arg(block_size.to_string())
        .arg("-B")
        .arg(opts.timeout.as_secs().max(1).to_string())
        .arg("-o")
        .arg(out)
        .arg(url);
    let started = Instant::now();
    run_tool(
        cmd,
        opts.timeout,
        &format!("coap-client GET {url} (block {block_size})"),
    )
    .await?;
    Ok(started.elapsed())
}

/// PUTs the image to libcoap's server (its dynamic resource).
async fn upload(opts: &BenchOptions, file: &Path, url: &str) -> Result<(), BenchError> {
    // The server may take a moment to bind; retry briefly.
    let mut last = None;
    for _ in 0..20 {
        let mut cmd = Command::new(&opts.client);
        cmd.args(["-m", "put", "-b", "1024", "-B", "10", "-f"])
            .arg(file)
            .arg(url);
        match run_tool(cmd, opts.timeout, &format!("coap-client PUT {url}")).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or(BenchError::Tool {
        what: format!("coap-client PUT {url}"),
        detail: "never attempted".into(),
    }))
}

async fn run_tool(mut cmd: Command, timeout: Duration, what: &str) -> Result<(), BenchError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| BenchError::Io {
        what: what.to_owned(),
        source,
    })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| BenchError::Tool {
            what: what.to_owned(),
            detail: format!("no result within {timeout:?}"),
        })?
        .map_err(|source| BenchError::Io {
            what: what.to_owned(),
            source,
        })?;
    // coap-client exits 0 even on some CoAP errors; a 4.xx/5.xx shows on stderr.
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || reports_error_code(&stderr) {
        return Err(BenchError::Tool {
            what: what.to_owned(),
            detail: format!("{}: {}", output.status, stderr.trim()),
        });
    }
    Ok(())
}

/// Whether coap-client's output names a 4.xx or 5.xx response code.
fn reports_error_code(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|t| {
            let b = t.as_bytes();
            b.len() == 4
                && matches!(b[0], b'4' | b'5')
                && b[1] == b'.'
                && b[2].is_ascii_digit()
                && b[3].is_ascii_digit()
        })
}

/// libcoap's coap-server, stopped on drop.
struct LibcoapServer {
    child: Child,
}

impl LibcoapServer {
    fn start(binary: &Path, port: u16) -> Result<Self, BenchError> {
        let child = Command::new(binary)
            .args([
                "-A",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-d",
                "4",
                "-v",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BenchError::Io {
                what: format!("starting {}", binary.display()),
                source,
            })?;
        Ok(LibcoapServer { child })
    }

    async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_udp_port() -> std::io::Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.port())
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coap_client_error_codes_are_recognised() {
        assert!(reports_error_code("4.04 Not Found"));
        assert!(reports_error_code("got 5.03\n"));
        assert!(!reports_error_code("coap-client v4.3.1"));
        assert!(!reports_error_code(""));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(&[ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
