//! `meterbench bench firmware`: how fast our CoAP file server delivers an
//! image, against two yardsticks run in the same process and the same run
//! (issue 16, "A datagram path without hops"):
//!
//! - the floor: a do-nothing server ([`floor`]) that answers each Block2
//!   GET with the next slice of the image and nothing else — what moving
//!   the bytes costs on this machine now;
//! - libcoap's `coap-server`, a mature C implementation.
//!
//! Every server is timed with the in-process stop-and-wait client
//! ([`client`]: one CON GET per block, the next when the answer is in), so
//! no client's start-up or own cost masks the servers' (the primary
//! columns); libcoap's `coap-client`, a process per download, is timed as a
//! third column. Each figure is the median of N downloads, alternating
//! between the servers (in a rotating order) so that machine noise hits all
//! alike, with its run-to-run spread, (p90 - p10) / median.
//!
//! Two modes: pinned — this process's bench thread, every thread it starts
//! (the servers' threads and runtimes) and libcoap's server child all on one
//! CPU (`sched_setaffinity`, inherited) — and unpinned, on every CPU the
//! process may use. Pinned shows each server's own cost; unpinned adds what
//! waking threads across cores costs.
//!
//! libcoap's `coap-server` cannot serve a file from disk; with `-d N` it
//! creates a resource for a PUT to an unknown path and then serves that body
//! block-wise (its COAP_BLOCK_USE_LIBCOAP mode). So the image is first PUT
//! to it (Block1, by `coap-client -m put -f`), outside the timing. Before
//! timing, one download from each server by each client is compared byte
//! for byte with the image, and every timed in-process download is too.

pub mod affinity;
pub(crate) mod block_wire;
pub mod client;
pub mod floor;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::coap_files::{CoapFileServer, Placement};
use super::generate::{generate_fixtures, BENCH_IMAGE};
use super::store::Store;
use super::FirmwareError;
use client::ClientOptions;
use floor::FloorServer;

/// Goals of issue 16 for meterbench's file server.
pub const GOAL_FLOOR_PINNED: f64 = 1.1;
pub const GOAL_FLOOR_UNPINNED: f64 = 1.3;
pub const GOAL_LIBCOAP: f64 = 0.7;
pub const GOAL_SPREAD: f64 = 0.10;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A store folder holding `image`; `None`: generate the fixtures into a
    /// temporary folder and use [`BENCH_IMAGE`].
    pub store_dir: Option<PathBuf>,
    pub image: String,
    /// Block sizes in bytes (16 … 1024).
    pub block_sizes: Vec<usize>,
    /// Timed downloads per server, client and block size.
    pub repetitions: usize,
    pub client: PathBuf,
    pub libcoap_server: PathBuf,
    /// Longest one download may take.
    pub timeout: Duration,
    /// Which modes to run, in order.
    pub modes: Vec<Mode>,
    /// Also time downloads with libcoap's coap-client (a process each).
    pub coap_client: bool,
    /// Also time our file server as a task of a multi-thread runtime (two
    /// workers) beside its default, a thread of its own: the measurement
    /// behind that default (docs/perf/firmware-datapath.md).
    pub runtimes: bool,
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
            modes: vec![Mode::Pinned, Mode::Unpinned],
            coap_client: true,
            runtimes: false,
        }
    }
}

/// Where the bench and the servers may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All on one CPU.
    Pinned,
    /// On every CPU the process may use.
    Unpinned,
}

/// A server the benchmark times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Floor,
    /// Our file server as it runs by default (its own thread, blocking calls).
    Meterbench,
    /// Our file server on its own thread with a current-thread runtime
    /// (its default before blocking calls were measured against it).
    MeterbenchOwnRuntime,
    /// Our file server as a task of a two-worker multi-thread runtime.
    MeterbenchMultiThread,
    Libcoap,
}

impl ServerKind {
    pub fn label(self) -> &'static str {
        match self {
            ServerKind::Floor => "floor",
            ServerKind::Meterbench => "meterbench",
            ServerKind::MeterbenchOwnRuntime => "meterbench own-thread rt",
            ServerKind::MeterbenchMultiThread => "meterbench multi-thread rt",
            ServerKind::Libcoap => "libcoap",
        }
    }
}

/// A server's figures at one block size.
#[derive(Debug, Clone)]
pub struct Series {
    pub server: ServerKind,
    /// With the in-process client.
    pub in_process: Vec<Duration>,
    /// With coap-client; empty when not timed.
    pub coap_client: Vec<Duration>,
    /// Requests the in-process client sent again in the timed runs (each
    /// costs its timeout: a run with one is an outlier, and says so).
    pub retransmissions: u32,
}

/// The figures of one block size.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub block_size: usize,
    pub series: Vec<Series>,
}

impl BenchRow {
    pub fn series(&self, server: ServerKind) -> Option<&Series> {
        self.series.iter().find(|s| s.server == server)
    }

    /// Median in-process time of `a` / that of `b`.
    pub fn ratio(&self, a: ServerKind, b: ServerKind) -> Option<f64> {
        let a = median(&self.series(a)?.in_process).as_secs_f64();
        let b = median(&self.series(b)?.in_process).as_secs_f64();
        (b > 0.0).then(|| a / b)
    }
}

/// The figures of one mode.
#[derive(Debug, Clone)]
pub struct ModeReport {
    pub mode: Mode,
    /// The CPUs the bench thread ran on (e.g. `[0]`).
    pub cpus: Vec<usize>,
    /// The CPUs libcoap's server child was allowed, read from /proc.
    pub libcoap_cpus: Option<String>,
    pub rows: Vec<BenchRow>,
}

impl ModeReport {
    fn floor_goal(&self) -> f64 {
        match self.mode {
            Mode::Pinned => GOAL_FLOOR_PINNED,
            Mode::Unpinned => GOAL_FLOOR_UNPINNED,
        }
    }
}

/// The result of a run; its Display is what the CLI prints.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub image: String,
    pub size: usize,
    pub repetitions: usize,
    pub client: PathBuf,
    pub modes: Vec<ModeReport>,
    /// /proc/loadavg before and after.
    pub load: (String, String),
}

/// Nearest-rank percentile `p` (0–100) of `times`.
pub fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Run-to-run spread: (p90 - p10) / median.
pub fn spread(times: &[Duration]) -> f64 {
    let m = median(times).as_secs_f64();
    if m <= 0.0 {
        return f64::NAN;
    }
    (percentile(times, 90.0).as_secs_f64() - percentile(times, 10.0).as_secs_f64()) / m
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "firmware download over CoAP Block2: {} ({} bytes), median of {} runs each",
            self.image, self.size, self.repetitions
        )?;
        writeln!(
            f,
            "in-process: one stop-and-wait CON GET per block; coap-client: {} (a process per download)",
            self.client.display()
        )?;
        writeln!(
            f,
            "load average before: {}   after: {}",
            self.load.0, self.load.1
        )?;
        let mut goals = Vec::new();
        for mode in &self.modes {
            writeln!(f)?;
            match mode.mode {
                Mode::Pinned => writeln!(
                    f,
                    "pinned: bench, servers and libcoap's coap-server on cpu {:?} (libcoap allowed: {})",
                    mode.cpus,
                    mode.libcoap_cpus.as_deref().unwrap_or("?")
                )?,
                Mode::Unpinned => writeln!(f, "unpinned: cpus {:?}", mode.cpus)?,
            }
            writeln!(
                f,
                "{:>6}  {:<27} {:>13} {:>7}  {:>13} {:>7}",
                "block", "server", "in-process", "spread", "coap-client", "spread"
            )?;
            for row in &mode.rows {
                for s in &row.series {
                    write!(
                        f,
                        "{:>6}  {:<27} {:>10.1} ms {:>6.1}%",
                        row.block_size,
                        s.server.label(),
                        ms(median(&s.in_process)),
                        spread(&s.in_process) * 100.0
                    )?;
                    if s.coap_client.is_empty() {
                        write!(f, "  {:>13} {:>7}", "-", "-")?;
                    } else {
                        write!(
                            f,
                            "  {:>10.1} ms {:>6.1}%",
                            ms(median(&s.coap_client)),
                            spread(&s.coap_client) * 100.0
                        )?;
                    }
                    match s.retransmissions {
                        0 => writeln!(f)?,
                        n => writeln!(f, "  ({n} requests resent)")?,
                    }
                }
                let floor = row.ratio(ServerKind::Meterbench, ServerKind::Floor);
                let libcoap = row.ratio(ServerKind::Meterbench, ServerKind::Libcoap);
                let ours_spread = row
                    .series(ServerKind::Meterbench)
                    .map(|s| spread(&s.in_process));
                writeln!(
                    f,
                    "{:>6}  meterbench/floor {:.2}, meterbench/libcoap {:.2}{}",
                    "",
                    floor.unwrap_or(f64::NAN),
                    libcoap.unwrap_or(f64::NAN),
                    [
                        (ServerKind::MeterbenchOwnRuntime, "own-thread rt"),
                        (ServerKind::MeterbenchMultiThread, "multi-thread rt"),
                    ]
                    .into_iter()
                    .filter_map(|(kind, label)| row
                        .ratio(kind, ServerKind::Floor)
                        .map(|r| format!(", {label}/floor {r:.2}")))
                    .collect::<String>()
                )?;
                let which = match mode.mode {
                    Mode::Pinned => "pinned",
                    Mode::Unpinned => "unpinned",
                };
                if let Some(r) = floor {
                    let goal = mode.floor_goal();
                    goals.push(format!(
                        "{which} {:>4} B: meterbench/floor {r:.2} <= {goal:.1}: {}",
                        row.block_size,
                        verdict(r <= goal)
                    ));
                }
                if let Some(r) = libcoap {
                    goals.push(format!(
                        "{which} {:>4} B: meterbench/libcoap {r:.2} <= {GOAL_LIBCOAP:.1}: {}",
                        row.block_size,
                        verdict(r <= GOAL_LIBCOAP)
                    ));
                }
                if let Some(s) = ours_spread {
                    goals.push(format!(
                        "{which} {:>4} B: meterbench spread {:.1}% < {:.0}%: {}",
                        row.block_size,
                        s * 100.0,
                        GOAL_SPREAD * 100.0,
                        verdict(s < GOAL_SPREAD)
                    ));
                }
            }
        }
        writeln!(f)?;
        writeln!(f, "goals (issue 16), on the in-process figures:")?;
        for g in &goals {
            writeln!(f, "  {g}")?;
        }
        write!(
            f,
            "spread = (p90 - p10) / median; ratios below 1.00: meterbench is faster"
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
    #[error("in-process download from {server}: {source}")]
    Client {
        server: &'static str,
        #[source]
        source: client::ClientError,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Runs the benchmark. The timed work runs on a thread of its own per mode
/// (pinned or not), with runtimes made there; this future only waits for it.
pub async fn run(opts: BenchOptions) -> Result<BenchReport, BenchError> {
    let need_libcoap = [&opts.libcoap_server, &opts.client];
    for tool in need_libcoap {
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
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread_opts = opts.clone();
    let thread_scratch = scratch.clone();
    std::thread::Builder::new()
        .name("firmware-bench".into())
        .spawn(move || {
            let _ = tx.send(run_modes(&thread_opts, &store_dir, &thread_scratch));
        })
        .map_err(io_error("starting the bench thread"))?;
    let result = rx.await.unwrap_or_else(|_| {
        Err(BenchError::Tool {
            what: "the bench thread".into(),
            detail: "ended without a result (panicked)".into(),
        })
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn run_modes(
    opts: &BenchOptions,
    store_dir: &Path,
    scratch: &Path,
) -> Result<BenchReport, BenchError> {
    let store = Arc::new(Store::load(store_dir)?);
    let image = store
        .get(&opts.image)
        .ok_or_else(|| BenchError::NoSuchImage(opts.image.clone()))?
        .clone();
    std::fs::create_dir_all(scratch)
        .map_err(io_error(format!("creating {}", scratch.display())))?;
    let all = affinity::allowed().map_err(io_error("reading this thread's CPU affinity"))?;
    let load_before = loadavg();
    let mut modes = Vec::new();
    for &mode in &opts.modes {
        let cpus = match mode {
            Mode::Pinned => vec![all[0]],
            Mode::Unpinned => all.clone(),
        };
        // Each mode on a fresh thread, so that what it starts inherits its mask.
        let report = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name(format!("firmware-bench-{mode:?}").to_lowercase())
                .spawn_scoped(scope, || {
                    affinity::set(&cpus).map_err(io_error("setting the CPU affinity"))?;
                    run_mode(opts, mode, cpus.clone(), &store, &image, scratch)
                })
                .map_err(io_error("starting a bench thread"))?
                .join()
                .unwrap_or_else(|_| {
                    Err(BenchError::Tool {
                        what: format!("the {mode:?} bench thread"),
                        detail: "panicked".into(),
                    })
                })
        })?;
        modes.push(report);
    }
    Ok(BenchReport {
        image: opts.image.clone(),
        size: image.len(),
        repetitions: opts.repetitions.max(1),
        client: opts.client.clone(),
        modes,
        load: (load_before, loadavg()),
    })
}

/// The servers of one mode, started from (and so on the CPUs of) its thread.
struct Servers {
    floor: FloorServer,
    ours: CoapFileServer,
    /// With `--runtimes`: ours on the placements it is compared with.
    ours_elsewhere: Vec<(ServerKind, CoapFileServer)>,
    libcoap: LibcoapServer,
    libcoap_addr: SocketAddr,
}

impl Servers {
    fn addr(&self, kind: ServerKind) -> SocketAddr {
        match kind {
            ServerKind::Floor => self.floor.local_addr(),
            ServerKind::Meterbench => self.ours.local_addr(),
            ServerKind::MeterbenchOwnRuntime | ServerKind::MeterbenchMultiThread => self
                .ours_elsewhere
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(self.ours.local_addr(), |(_, s)| s.local_addr()),
            ServerKind::Libcoap => self.libcoap_addr,
        }
    }
}

fn run_mode(
    opts: &BenchOptions,
    mode: Mode,
    cpus: Vec<usize>,
    store: &Arc<Store>,
    image: &super::store::Image,
    scratch: &Path,
) -> Result<ModeReport, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("starting a runtime"))?;
    let multi = if opts.runtimes {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(io_error("starting a multi-thread runtime"))?,
        )
    } else {
        None
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let floor = FloorServer::start(loopback, Arc::clone(&image.bytes))
        .map_err(io_error("starting the floor server"))?;
    let ours = rt.block_on(CoapFileServer::bind(loopback, Arc::clone(store)))?;
    let mut ours_elsewhere = Vec::new();
    if let Some(multi) = &multi {
        for (kind, placement) in [
            (ServerKind::MeterbenchOwnRuntime, Placement::OwnRuntime),
            (
                ServerKind::MeterbenchMultiThread,
                Placement::Runtime(multi.handle().clone()),
            ),
        ] {
            let server = rt.block_on(async {
                let socket = tokio::net::UdpSocket::bind(loopback)
                    .await
                    .map_err(io_error("binding a UDP socket"))?;
                CoapFileServer::serve_on(socket, Arc::clone(store), placement)
                    .map_err(BenchError::from)
            })?;
            ours_elsewhere.push((kind, server));
        }
    }
    let port = free_udp_port().map_err(io_error("finding a free UDP port"))?;
    let libcoap_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (libcoap, libcoap_cpus) = rt.block_on(async {
        let libcoap = LibcoapServer::start(&opts.libcoap_server, port)?;
        let cpus = libcoap.child.id().and_then(affinity::of_process);
        upload(opts, &image.path, &libcoap_url(port, &opts.image)).await?;
        Ok::<_, BenchError>((libcoap, cpus))
    })?;
    let servers = Servers {
        floor,
        ours,
        ours_elsewhere,
        libcoap,
        libcoap_addr,
    };
    let mut kinds = vec![ServerKind::Floor, ServerKind::Meterbench];
    kinds.extend(servers.ours_elsewhere.iter().map(|(kind, _)| *kind));
    kinds.push(ServerKind::Libcoap);

    let result = time_mode(opts, &rt, &servers, &kinds, image, scratch);
    let Servers {
        floor,
        ours,
        ours_elsewhere,
        mut libcoap,
        ..
    } = servers;
    rt.block_on(async {
        libcoap.stop().await;
        ours.shutdown().await;
        for (_, s) in ours_elsewhere {
            s.shutdown().await;
        }
    });
    drop(floor);
    drop(multi);
    Ok(ModeReport {
        mode,
        cpus,
        libcoap_cpus,
        rows: result?,
    })
}

fn libcoap_url(port: u16, image: &str) -> String {
    format!("coap://127.0.0.1:{port}/fw/{image}")
}

fn url_of(servers: &Servers, kind: ServerKind, image: &str) -> String {
    let addr = servers.addr(kind);
    format!("coap://{addr}/fw/{image}")
}

/// The in-process download of `image` from `kind`, checked byte for byte; its wall time.
fn timed_in_process(
    servers: &Servers,
    kind: ServerKind,
    image: &super::store::Image,
    block_size: usize,
    client_opts: &ClientOptions,
) -> Result<(Duration, u32), BenchError> {
    let started = Instant::now();
    let got = client::download(
        servers.addr(kind),
        &["fw", image.name()],
        block_size,
        client_opts,
    )
    .map_err(|source| BenchError::Client {
        server: kind.label(),
        source,
    })?;
    let elapsed = started.elapsed();
    if got.bytes.as_slice() != &image.bytes[..] {
        return Err(BenchError::Tool {
            what: format!("{}'s server at block size {block_size}", kind.label()),
            detail: format!(
                "delivered {} bytes that differ from the {}-byte image",
                got.bytes.len(),
                image.len()
            ),
        });
    }
    Ok((elapsed, got.retransmissions))
}

fn time_mode(
    opts: &BenchOptions,
    rt: &tokio::runtime::Runtime,
    servers: &Servers,
    kinds: &[ServerKind],
    image: &super::store::Image,
    scratch: &Path,
) -> Result<Vec<BenchRow>, BenchError> {
    let client_opts = ClientOptions {
        // Loopback answers come in microseconds; a lost datagram costs this.
        ack_timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let mut rows = Vec::new();
    for &block_size in &opts.block_sizes {
        // Untimed: each server, each client, checked against the image.
        for &kind in kinds {
            timed_in_process(servers, kind, image, block_size, &client_opts)?;
            if opts.coap_client {
                let out = scratch.join(format!(
                    "check-{}-{block_size}.bin",
                    kind.label().replace(' ', "-")
                ));
                let url = url_of(servers, kind, &opts.image);
                rt.block_on(coap_client_download(opts, block_size, &url, &out))?;
                let got =
                    std::fs::read(&out).map_err(io_error(format!("reading {}", out.display())))?;
                if got.as_slice() != &image.bytes[..] {
                    return Err(BenchError::Tool {
                        what: format!(
                            "{}'s server at block size {block_size} (coap-client)",
                            kind.label()
                        ),
                        detail: format!(
                            "delivered {} bytes that differ from the {}-byte image",
                            got.len(),
                            image.len()
                        ),
                    });
                }
            }
        }
        let mut series: Vec<Series> = kinds
            .iter()
            .map(|&server| Series {
                server,
                in_process: Vec::new(),
                coap_client: Vec::new(),
                retransmissions: 0,
            })
            .collect();
        for rep in 0..opts.repetitions.max(1) {
            // A rotating order, so no server always follows the same one.
            for i in 0..kinds.len() {
                let k = (i + rep) % kinds.len();
                let (t, resent) =
                    timed_in_process(servers, kinds[k], image, block_size, &client_opts)?;
                series[k].in_process.push(t);
                series[k].retransmissions += resent;
            }
            if opts.coap_client {
                for i in 0..kinds.len() {
                    let k = (i + rep) % kinds.len();
                    let url = url_of(servers, kinds[k], &opts.image);
                    let t = rt.block_on(coap_client_download(
                        opts,
                        block_size,
                        &url,
                        Path::new("/dev/null"),
                    ))?;
                    series[k].coap_client.push(t);
                }
            }
        }
        tracing::info!(block_size, "bench row done");
        rows.push(BenchRow { block_size, series });
    }
    Ok(rows)
}

/// One `coap-client` download; its wall time.
async fn coap_client_download(
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
    fn spread_is_the_p10_to_p90_width_over_the_median() {
        let ms = Duration::from_millis;
        // Ten runs 10..=19 ms: p10 = 10, p90 = 18, median 14.5.
        let times: Vec<Duration> = (10..20).map(ms).collect();
        assert_eq!(percentile(&times, 10.0), ms(10));
        assert_eq!(percentile(&times, 90.0), ms(18));
        assert!((spread(&times) - 8.0 / 14.5).abs() < 1e-9);
        assert_eq!(spread(&[ms(5); 7]), 0.0);
        assert!(spread(&[]).is_nan());
    }

    fn series(server: ServerKind, ms: &[u64]) -> Series {
        Series {
            server,
            in_process: ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            coap_client: Vec::new(),
            retransmissions: 0,
        }
    }

    #[test]
    fn the_report_says_which_goal_is_met_and_which_missed() {
        let row = BenchRow {
            block_size: 512,
            series: vec![
                series(ServerKind::Floor, &[100, 100, 100]),
                // 1.20x the floor, 0.60x libcoap, no spread.
                series(ServerKind::Meterbench, &[120, 120, 120]),
                series(ServerKind::Libcoap, &[200, 200, 200]),
            ],
        };
        assert_eq!(
            row.ratio(ServerKind::Meterbench, ServerKind::Floor),
            Some(1.2)
        );
        let mode = |mode| ModeReport {
            mode,
            cpus: vec![0],
            libcoap_cpus: Some("0".into()),
            rows: vec![row.clone()],
        };
        let report = BenchReport {
            image: "x.bin".into(),
            size: 1024,
            repetitions: 3,
            client: PathBuf::from("/usr/bin/coap-client-notls"),
            modes: vec![mode(Mode::Pinned), mode(Mode::Unpinned)],
            load: ("0.10 0.20 0.30".into(), "0.40 0.50 0.60".into()),
        };
        let text = report.to_string();
        for line in [
            "pinned  512 B: meterbench/floor 1.20 <= 1.1: MISSED",
            "unpinned  512 B: meterbench/floor 1.20 <= 1.3: met",
            "pinned  512 B: meterbench/libcoap 0.60 <= 0.7: met",
            "unpinned  512 B: meterbench spread 0.0% < 10%: met",
            "meterbench/floor 1.20, meterbench/libcoap 0.60",
            "load average before: 0.10 0.20 0.30   after: 0.40 0.50 0.60",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
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
