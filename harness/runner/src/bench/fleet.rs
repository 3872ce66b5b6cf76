//! `meterbench bench fleet`: N lightweight meters in this one process, each
//! its own UDP socket on 127.0.0.1, against the embedded LwM2M server run as
//! a child process, so that the server's memory is the server's alone
//! (VmRSS of the child from /proc/<pid>/status before and after the fleet
//! registers). Each meter registers, is observed (once the whole fleet is
//! registered, the child observes /3/0/13 on every registration), answers
//! with notifications, updates and de-registers; with `--dtls` each first
//! completes a DTLS 1.2 PSK handshake with its own freshly generated key.
//!
//! The limit to compare against is measured in the same run: a bare UDP
//! echo child, the same sockets, the same datagram (a Register's bytes) and
//! the same in-flight window. A ratio to it survives a shared, noisy machine
//! better than a bare rate does.
//!
//! The meters are not the `lwm2m` client role: a client role per meter
//! carries the object store and the state machines a conformance case needs,
//! which at 10,000 meters would make the load generator, not the server, the
//! thing measured. They speak only what the benchmark does, with the same
//! codec (coap-lite) and RFC 7252 retransmission (ACK_TIMEOUT 2 s doubling,
//! MAX_RETRANSMIT 4) — each message checked as a real client checks it.
//!
//! Bounded: every phase has a deadline; a meter that does not finish in
//! time is counted, and the command exits 1 naming the phase, how many
//! did not complete and why the first of them did not.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use dtls::{ClientConfig, ClientState, DtlsClient, OpensslClient, Psk, SecretKey};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::{FleetArgs, FleetServerArgs};

mod workers;
pub use workers::clients_main;

/// The resource every meter is observed on: Device Current Time (object 3
/// resource 13, LwM2M 1.1 Core Appendix E.4), a value every meter has.
const OBSERVED: &str = "/3/0/13";

/// Observe requests the server child hands to its server at once.
const OBSERVE_WINDOW: usize = 256;

/// RFC 7252 §4.8 transmission parameters.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_RETRANSMIT: u32 = 4;

/// The Register payload: eight object instances, as in issue 16's
/// measurement (LwM2M 1.1 Core §6.2.1 "Objects and Object Instances").
const OBJECT_LINKS: &str = "</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</10/0>,</19/0>";

/// Register lifetime: a day, so nothing expires during the run.
const LIFETIME: u64 = 86_400;

/// The Current Time value a notification carries, in LwM2M TLV (Core
/// §7.4.3): type byte 0b11_0_00_100 (resource with value, 8-bit id,
/// length 4 in the type byte), id 13, then a 4-byte big-endian Integer
/// (Time is an Integer of seconds, Core Appendix C).
fn current_time_tlv(seconds: u32) -> Vec<u8> {
    let mut v = vec![0xC4, 0x0D];
    v.extend_from_slice(&seconds.to_be_bytes());
    v
}

/// LwM2M TLV's Content-Format number (Core §7.4.3, 11542).
const TLV: u16 = 11542;

// ---------------------------------------------------------------- the child

/// The child: the embedded server (or a bare echo) until stdin closes.
pub fn server_main(args: FleetServerArgs) -> ExitCode {
    if args.echo {
        return echo_main(args.bind);
    }
    let registry = match lwm2m::Registry::load_dir(&args.objects) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let psks = match args.credentials.as_deref().map(read_psks).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return fail(&e),
    };
    // The server's socket loop has its own thread (server::udp_loop); this
    // one only observes each new registration.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let config = lwm2m::server::ServerConfig {
            registry,
            default_format: lwm2m::ContentFormat::Tlv,
            seed: std::process::id() as u64,
        };
        let security = if psks.is_empty() {
            server::SecurityConfig::NoSec
        } else {
            // Room for every meter's session: the default table (sized for
            // a bench, and a bound on what a handshake flood can hold)
            // would refuse the fleet past its size.
            let defaults = server::DtlsSettings::default();
            server::SecurityConfig::Psk(server::DtlsSettings {
                max_sessions: defaults.max_sessions.max(psks.len() + 64),
                ..defaults
            })
        };
        // A bounded log and history, as `serve` has: a fleet's memory is
        // its registrations', not a record of every datagram.
        let options = server::ServerOptions {
            log_capacity: args.log_capacity,
            event_capacity: args.log_capacity,
            ..server::ServerOptions::default()
        };
        let handle = match server::LwM2mServer::bind_secure_with(args.bind, config, security, options).await {
            Ok(h) => h,
            Err(e) => return fail(&e.to_string()),
        };
        for (endpoint, psk) in psks {
            handle.set_psk(&endpoint, psk);
        }
        println!("listening {}", handle.local_addr());
        let _ = std::io::stdout().flush();
        // The parent's requests, a line each, until stdin closes.
        let (tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let path: lwm2m::Path = OBSERVED.parse().expect("a valid path");
        let mut events = handle.subscribe();
        let mut last_seen = handle.current_seq();
        let mut observed = std::collections::HashSet::new();
        // Observing starts when the parent says `observe`, after the fleet
        // registered: the registration phase then measures Registers alone
        // (as a load generator apart from the project does against `serve`),
        // and the observation phase its own rate.
        let mut observing = false;
        // Observe requests not yet handed to the server, and those being
        // handed (a round trip to its thread each). A window, not a task
        // per registration: 100,000 tasks waiting on a busy server thread
        // held about 1 KiB each, which this process's VmRSS — the figure
        // of server memory per device — counted as the server's (issue 16).
        let mut waiting: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut in_hand = JoinSet::new();
        loop {
            while in_hand.len() < OBSERVE_WINDOW {
                let Some(endpoint) = waiting.pop_front() else { break };
                let handle = handle.clone();
                in_hand.spawn(async move {
                    let request = lwm2m::server::DmRequest::Observe { path, format: None };
                    if let Err(e) = handle.start_request(&endpoint, request).await {
                        eprintln!("observe {endpoint}: {e}");
                    }
                });
            }
            if waiting.len() * 4 < waiting.capacity() && waiting.capacity() > 1024 {
                waiting.shrink_to(waiting.len() * 2);
            }
            tokio::select! {
                Some(_) = in_hand.join_next(), if !in_hand.is_empty() => {}
                request = requests.recv() => match request.as_deref() {
                    None => break,
                    Some("observe") => {
                        // From now on, every registration; those before
                        // from the server's list (not from events the
                        // reader left unread while the fleet registered).
                        observing = true;
                        events = handle.subscribe();
                        last_seen = handle.current_seq();
                        for endpoint in handle.registered_endpoints() {
                            if observed.insert(endpoint.clone()) {
                                waiting.push_back(endpoint);
                            }
                        }
                    }
                    Some("trim") => {
                        let released = release_free_memory();
                        let stats = handle.stats();
                        println!(
                            "trimmed {released}; log dropped {}, events dropped {}, datagrams dropped for a full receive buffer {}",
                            stats.log_dropped,
                            stats.events_dropped,
                            stats
                                .receive_buffer_drops
                                .map_or_else(|| "unknown".to_string(), |n| n.to_string())
                        );
                        let _ = std::io::stdout().flush();
                    }
                    Some(other) => eprintln!("fleet server: unknown request {other:?}"),
                },
                next = events.next(), if observing => match next {
                    Some((seq, event)) => {
                        // The history is bounded: a reader that fell more
                        // than its capacity behind finds a gap in the
                        // numbers, and catches up from the registrations.
                        let gap = seq.0 > last_seen.0 + 1;
                        last_seen = seq;
                        let mut new = Vec::new();
                        if gap {
                            new.extend(
                                handle
                                    .registered_endpoints()
                                    .into_iter()
                                    .filter(|ep| !observed.contains(ep)),
                            );
                        }
                        match event {
                            lwm2m::server::ServerEvent::Registered(r) => new.push(r.endpoint.clone()),
                            lwm2m::server::ServerEvent::Deregistered { endpoint }
                            | lwm2m::server::ServerEvent::Expired { endpoint } => {
                                observed.remove(&endpoint);
                            }
                            _ => {}
                        }
                        for endpoint in new {
                            // Not awaited here: the answer is a round trip
                            // to the server's thread, and this reader must
                            // keep up with the registrations.
                            if observed.insert(endpoint.clone()) {
                                waiting.push_back(endpoint);
                            }
                        }
                    }
                    None => break,
                },
            }
        }
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Hands the heap's free pages back to the system. glibc keeps memory a
/// process freed (the de-registered fleet's) in its arenas, so VmRSS after
/// de-registration says what glibc holds, not what the server does;
/// malloc_trim(3) releases it. Says whether anything was released.
fn release_free_memory() -> &'static str {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims glibc's own heap.
        if unsafe { libc::malloc_trim(0) } == 1 {
            "memory"
        } else {
            "nothing"
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        "nothing (not glibc)"
    }
}

/// The yardstick: answers every datagram with itself, nothing else.
fn echo_main(bind: SocketAddr) -> ExitCode {
    let socket = match std::net::UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot bind {bind}: {e}")),
    };
    match socket.local_addr() {
        Ok(a) => println!("listening {a}"),
        Err(e) => return fail(&e.to_string()),
    }
    let _ = std::io::stdout().flush();
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

/// The PSK file the parent writes for the child: one `endpoint hex-key`
/// per line (identity = endpoint). Mode 0600 in a private temporary folder,
/// removed when the run ends; never printed.
fn read_psks(path: &std::path::Path) -> Result<Vec<(String, Psk)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let (endpoint, key) = line.split_once(' ').ok_or_else(|| {
                format!("{}:{}: expected `endpoint hex-key`", path.display(), n + 1)
            })?;
            let key = SecretKey::from_hex(key.trim())
                .map_err(|e| format!("{}:{}: key of {endpoint}: {e}", path.display(), n + 1))?;
            let psk = Psk::new(endpoint, key)
                .map_err(|e| format!("{}:{}: {endpoint}: {e}", path.display(), n + 1))?;
            Ok((endpoint.to_string(), psk))
        })
        .collect()
}

/// A child process (server or echo), ended when dropped.
struct ChildServer {
    child: Child,
    /// Closing it tells the child to stop.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    /// The child's later stdout lines.
    lines: std::sync::mpsc::Receiver<String>,
}

impl ChildServer {
    /// `METERBENCH_FLEET_SERVER_PREFIX` (e.g. `heaptrack -o /tmp/fleet`)
    /// runs the server child (not the echo) under a profiler, which is how docs/perf's heap
    /// profile was taken; the memory figures are then the profiler's
    /// process's, not the server's, so read the profile instead.
    fn start(extra: &[String]) -> Result<ChildServer, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find meterbench itself: {e}"))?;
        let prefix = match extra.iter().any(|a| a == "--echo") {
            true => String::new(),
            false => std::env::var("METERBENCH_FLEET_SERVER_PREFIX").unwrap_or_default(),
        };
        let mut prefix = prefix.split_whitespace();
        let mut command = match prefix.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(prefix).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["bench", "fleet-server", "--bind", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the server child: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout from the server child")?;
        let mut lines = BufReader::new(stdout).lines();
        // The child prints one line once bound (or exits with an error on stderr).
        // A profiler prefix may say a line or two of its own first.
        let first = lines
            .by_ref()
            .take(8)
            .map_while(Result::ok)
            .find(|l| l.starts_with("listening "))
            .unwrap_or_default();
        let Some(addr) = first
            .strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the server child did not start (said {first:?})"));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildServer {
            child,
            stdin,
            addr,
            lines: rx,
        })
    }

    /// Asks the server child to hand its free heap back to the system
    /// (see `release_free_memory`); its answer, if it came within 10 s.
    fn trim(&mut self) -> Option<String> {
        self.say("trim").ok()?;
        self.lines.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// One request line to the child (`trim`, `observe`).
    fn say(&mut self, word: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or("the server child's stdin is closed")?;
        writeln!(stdin, "{word}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot reach the server child: {e}"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set (VmRSS), in KiB.
    fn rss_kib(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{path} has no VmRSS line"))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Give it a moment to stop on its own, then end it.
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the meters

/// One meter's connection: plain UDP or a DTLS association over it.
struct Meter {
    index: usize,
    endpoint: String,
    socket: UdpSocket,
    server: SocketAddr,
    dtls: Option<Box<dyn DtlsClient>>,
    /// The meter's own key, until its handshake starts.
    psk: Option<Psk>,
    next_mid: u16,
    next_token: u64,
    location: Option<String>,
    /// The token of the server's observation, once its GET came.
    observation: Option<Vec<u8>>,
    observe_seq: u32,
    /// Our answers to the server's requests, by message id, replayed for a
    /// retransmitted request (RFC 7252 §4.5).
    answered: HashMap<u16, Vec<u8>>,
}

/// What one meter did in a phase.
type Outcome = Result<Duration, String>;

impl Meter {
    async fn open(index: usize, server: SocketAddr, psk: Option<Psk>) -> Result<Meter, String> {
        let socket = UdpSocket::bind((meter_address(index), 0))
            .await
            .map_err(|e| format!("meter {index}: cannot bind a UDP socket: {e}"))?;
        Ok(Meter {
            index,
            endpoint: endpoint(index),
            socket,
            server,
            dtls: None,
            psk,
            next_mid: (index as u16).wrapping_mul(7919),
            next_token: index as u64 * 1_000_003,
            location: None,
            observation: None,
            observe_seq: 1,
            answered: HashMap::new(),
        })
    }

    fn mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn token(&mut self) -> Vec<u8> {
        self.next_token += 1;
        self.next_token.to_be_bytes()[4..].to_vec()
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        match &mut self.dtls {
            None => self
                .socket
                .send_to(payload, self.server)
                .await
                .map(|_| ())
                .map_err(|e| format!("send: {e}")),
            Some(dtls) => {
                dtls.send(Instant::now(), payload)
                    .map_err(|e| format!("DTLS send: {e}"))?;
                self.flush_dtls().await
            }
        }
    }

    async fn flush_dtls(&mut self) -> Result<(), String> {
        if let Some(dtls) = &mut self.dtls {
            while let Some(t) = dtls.poll_transmit() {
                self.socket
                    .send_to(&t.payload, t.destination)
                    .await
                    .map_err(|e| format!("send: {e}"))?;
            }
        }
        Ok(())
    }

    /// The next CoAP datagram from the server before `until`, or `None`.
    async fn recv(&mut self, until: Instant) -> Result<Option<Vec<u8>>, String> {
        let mut buf = [0u8; 2048];
        loop {
            if let Some(plain) = self.dtls.as_mut().and_then(|d| d.poll_received()) {
                return Ok(Some(plain));
            }
            let dtls_timer = self.dtls.as_ref().and_then(|d| d.poll_timeout());
            let wake = dtls_timer.map_or(until, |t| t.min(until));
            let got = tokio::time::timeout_at(wake.into(), self.socket.recv_from(&mut buf)).await;
            match got {
                Ok(Ok((n, from))) => match &mut self.dtls {
                    None if from == self.server => return Ok(Some(buf[..n].to_vec())),
                    None => {}
                    Some(dtls) => {
                        dtls.handle_datagram(Instant::now(), from, &buf[..n]);
                        self.flush_dtls().await?;
                    }
                },
                Ok(Err(e)) => return Err(format!("receive: {e}")),
                Err(_) => {
                    if Instant::now() >= until {
                        return Ok(None);
                    }
                    if let Some(dtls) = &mut self.dtls {
                        dtls.handle_timeout(Instant::now());
                        self.flush_dtls().await?;
                    }
                }
            }
            if let Some(ClientState::Failed(f)) = self.dtls.as_ref().map(|d| d.state().clone()) {
                return Err(format!("DTLS handshake failed: {f}"));
            }
        }
    }

    /// Runs the DTLS handshake to the end (nothing to do for plain UDP):
    /// the client starts here, so its retransmission timers (RFC 6347
    /// §4.2.4) run from now.
    async fn handshake(&mut self, until: Instant) -> Outcome {
        let start = Instant::now();
        let Some(psk) = self.psk.take() else {
            return Ok(Duration::ZERO);
        };
        let client = OpensslClient::connect(ClientConfig::new(psk), self.server, start)
            .map_err(|e| format!("DTLS client: {e}"))?;
        self.dtls = Some(Box::new(client));
        self.flush_dtls().await?;
        let mut buf = [0u8; 2048];
        loop {
            let Some(dtls) = self.dtls.as_mut() else {
                return Err("no DTLS client".into());
            };
            match dtls.state().clone() {
                ClientState::Connected(_) => return Ok(start.elapsed()),
                ClientState::Failed(f) => return Err(format!("DTLS handshake failed: {f}")),
                ClientState::Closed(r) => return Err(format!("DTLS closed: {r}")),
                ClientState::Handshaking => {}
            }
            let wake = dtls.poll_timeout().map_or(until, |t| t.min(until));
            match tokio::time::timeout_at(wake.into(), self.socket.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => dtls.handle_datagram(Instant::now(), from, &buf[..n]),
                Ok(Err(e)) => return Err(format!("receive: {e}")),
                Err(_) if Instant::now() >= until => {
                    return Err("DTLS handshake did not complete in time".into())
                }
                Err(_) => dtls.handle_timeout(Instant::now()),
            }
            self.flush_dtls().await?;
        }
    }

    /// A message from the server that is not the answer being awaited:
    /// its Observe GET (answered 2.05 with Observe, RFC 7641 §3.1 / §4.1)
    /// or a retransmission of it (the same answer again, RFC 7252 §4.5).
    async fn on_server_message(&mut self, datagram: &[u8]) -> Result<(), String> {
        let Ok(message) = Packet::from_bytes(datagram) else {
            return Err(format!(
                "undecodable datagram from the server: {}",
                hex::encode(datagram)
            ));
        };
        let mid = message.header.message_id;
        if let Some(answer) = self.answered.get(&mid).cloned() {
            return self.send(&answer).await;
        }
        let is_observe_get = message.header.code == MessageClass::Request(RequestType::Get)
            && message.get_option(CoapOption::Observe).is_some();
        if !is_observe_get {
            // A stray ACK or response (a late duplicate): nothing to do.
            return Ok(());
        }
        let mut answer = Packet::new();
        answer.header.set_type(MessageType::Acknowledgement);
        answer.header.message_id = mid;
        answer.header.code = MessageClass::Response(ResponseType::Content);
        answer.set_token(message.get_token().to_vec());
        answer.add_option(CoapOption::Observe, vec![0]);
        answer.add_option(CoapOption::ContentFormat, TLV.to_be_bytes().to_vec());
        answer.payload = current_time_tlv(1_700_000_000);
        let bytes = answer.to_bytes().map_err(|e| format!("encode: {e:?}"))?;
        self.answered.insert(mid, bytes.clone());
        self.observation = Some(message.get_token().to_vec());
        self.send(&bytes).await
    }

    /// Sends a Confirmable request, retransmitted per RFC 7252 §4.2, and
    /// returns the piggybacked or separate response.
    async fn request(&mut self, mut packet: Packet, until: Instant) -> Result<Packet, String> {
        let mid = self.mid();
        let token = self.token();
        packet.header.set_type(MessageType::Confirmable);
        packet.header.message_id = mid;
        packet.set_token(token.clone());
        let bytes = packet.to_bytes().map_err(|e| format!("encode: {e:?}"))?;
        let mut timeout = ACK_TIMEOUT;
        for _ in 0..=MAX_RETRANSMIT {
            self.send(&bytes).await?;
            let retry_at = (Instant::now() + timeout).min(until);
            while let Some(datagram) = self.recv(retry_at).await? {
                let Ok(reply) = Packet::from_bytes(&datagram) else {
                    return Err(format!("undecodable answer: {}", hex::encode(&datagram)));
                };
                let is_response = matches!(reply.header.code, MessageClass::Response(_));
                let matches = match reply.header.get_type() {
                    MessageType::Acknowledgement => reply.header.message_id == mid,
                    MessageType::Reset if reply.header.message_id == mid => {
                        return Err("the server answered with Reset".into())
                    }
                    _ => is_response && reply.get_token() == token.as_slice(),
                };
                if matches && is_response {
                    return Ok(reply);
                }
                if !matches {
                    self.on_server_message(&datagram).await?;
                }
                // An empty ACK: a separate response follows; keep waiting.
            }
            if Instant::now() >= until {
                break;
            }
            timeout *= 2;
        }
        Err(format!(
            "no answer to {} within the phase's deadline",
            describe(&packet)
        ))
    }

    async fn register(&mut self, until: Instant) -> Outcome {
        let start = Instant::now();
        let reply = self.request(register_packet(&self.endpoint), until).await?;
        expect(&reply, ResponseType::Created, "Register")?;
        let segments: Vec<String> = reply
            .get_option(CoapOption::LocationPath)
            .map(|l| {
                l.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if segments.first().map(String::as_str) != Some("rd") || segments.len() < 2 {
            return Err(format!(
                "2.01 without a Location-Path under /rd: {segments:?}"
            ));
        }
        let latency = start.elapsed();
        self.location = Some(segments.join("/"));
        Ok(latency)
    }

    /// Waits for the server's Observe GET (it may have come already).
    async fn await_observed(&mut self, until: Instant) -> Outcome {
        let start = Instant::now();
        while self.observation.is_none() {
            match self.recv(until).await? {
                Some(d) => self.on_server_message(&d).await?,
                None => return Err(format!("the server did not observe {OBSERVED}")),
            }
        }
        Ok(start.elapsed())
    }

    /// One Confirmable notification (RFC 7641 §4.2), acknowledged by the server.
    async fn notify(&mut self, until: Instant) -> Outcome {
        let start = Instant::now();
        let token = self
            .observation
            .clone()
            .ok_or("not observed, nothing to notify")?;
        let mid = self.mid();
        self.observe_seq += 1;
        let mut n = Packet::new();
        n.header.set_type(MessageType::Confirmable);
        n.header.message_id = mid;
        n.header.code = MessageClass::Response(ResponseType::Content);
        n.set_token(token);
        let seq = self.observe_seq.to_be_bytes();
        n.add_option(CoapOption::Observe, seq[1..].to_vec());
        n.add_option(CoapOption::ContentFormat, TLV.to_be_bytes().to_vec());
        n.payload = current_time_tlv(1_700_000_000 + self.observe_seq);
        let bytes = n.to_bytes().map_err(|e| format!("encode: {e:?}"))?;
        let mut timeout = ACK_TIMEOUT;
        for _ in 0..=MAX_RETRANSMIT {
            self.send(&bytes).await?;
            let retry_at = (Instant::now() + timeout).min(until);
            while let Some(d) = self.recv(retry_at).await? {
                let Ok(reply) = Packet::from_bytes(&d) else {
                    continue;
                };
                // Only an ACK or RST answers it (RFC 7252 §4.2): the
                // server's own CON and NON requests take their message ids
                // from its own space, which may hold this one too (it did,
                // once in 100,000 meters).
                if reply.header.message_id == mid {
                    match reply.header.get_type() {
                        MessageType::Acknowledgement => return Ok(start.elapsed()),
                        MessageType::Reset => {
                            return Err(
                                "the server reset the notification (it knows no such observation)"
                                    .into(),
                            )
                        }
                        _ => {}
                    }
                }
                self.on_server_message(&d).await?;
            }
            if Instant::now() >= until {
                break;
            }
            timeout *= 2;
        }
        Err("notification not acknowledged".into())
    }

    async fn update(&mut self, until: Instant) -> Outcome {
        let start = Instant::now();
        let location = self.location.clone().ok_or("not registered")?;
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(RequestType::Post);
        for s in location.split('/') {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        let reply = self.request(p, until).await?;
        expect(&reply, ResponseType::Changed, "Update")?;
        Ok(start.elapsed())
    }

    async fn deregister(&mut self, until: Instant) -> Outcome {
        let start = Instant::now();
        let location = self.location.clone().ok_or("not registered")?;
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(RequestType::Delete);
        for s in location.split('/') {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        let reply = self.request(p, until).await?;
        expect(&reply, ResponseType::Deleted, "De-register")?;
        self.location = None;
        Ok(start.elapsed())
    }

    /// One bare round trip to the echo child with a Register's bytes.
    async fn echo(&mut self, echo: SocketAddr, until: Instant) -> Outcome {
        let start = Instant::now();
        let mid = self.mid();
        let mut p = register_packet(&self.endpoint);
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = mid;
        let bytes = p.to_bytes().map_err(|e| format!("encode: {e:?}"))?;
        let mut buf = [0u8; 2048];
        let mut timeout = ACK_TIMEOUT;
        for _ in 0..=MAX_RETRANSMIT {
            self.socket
                .send_to(&bytes, echo)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let retry_at = (Instant::now() + timeout).min(until);
            while let Ok(got) =
                tokio::time::timeout_at(retry_at.into(), self.socket.recv_from(&mut buf)).await
            {
                let (n, from) = got.map_err(|e| format!("receive: {e}"))?;
                if from == echo && buf[..n] == bytes[..] {
                    return Ok(start.elapsed());
                }
            }
            if Instant::now() >= until {
                break;
            }
            timeout *= 2;
        }
        Err("no echo".into())
    }
}

/// Meters per loopback address: fewer than the ephemeral ports of one
/// address (32768-60999 by default on Linux, 28,232), so 100,000 meters
/// spread over 127.0.0.1, 127.0.1.1, ... and never run out of ports.
const METERS_PER_ADDRESS: usize = 20_000;

/// The loopback address meter `index` binds: 127.0.k.1 for the k-th
/// group of [`METERS_PER_ADDRESS`] (all of 127/8 is loopback, RFC 1122 §3.2.1.3).
fn meter_address(index: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, (index / METERS_PER_ADDRESS).min(255) as u8, 1)
}

fn endpoint(index: usize) -> String {
    format!("fleet-{index:06}")
}

fn register_packet(endpoint: &str) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Post);
    p.add_option(CoapOption::UriPath, b"rd".to_vec());
    for q in [
        format!("ep={endpoint}"),
        format!("lt={LIFETIME}"),
        "lwm2m=1.1".to_string(),
        "b=U".to_string(),
    ] {
        p.add_option(CoapOption::UriQuery, q.into_bytes());
    }
    p.add_option(CoapOption::ContentFormat, vec![40]);
    p.payload = OBJECT_LINKS.as_bytes().to_vec();
    p
}

fn describe(p: &Packet) -> String {
    format!(
        "{:?} {}",
        p.header.code,
        lwm2m::coap::options::uri_path_string(p)
    )
}

fn expect(reply: &Packet, want: ResponseType, what: &str) -> Result<(), String> {
    if reply.header.code == MessageClass::Response(want) {
        return Ok(());
    }
    Err(format!(
        "{what} answered {} {:?}",
        reply.header.code,
        String::from_utf8_lossy(&reply.payload)
    ))
}

// ---------------------------------------------------------------- phases

/// What a phase did: how many meters completed it, in how long, the
/// per-meter times of those that did, and the first failure.
struct PhaseReport {
    done: usize,
    elapsed: Duration,
    times: Vec<Duration>,
    first_error: Option<String>,
}

impl PhaseReport {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `done/want in T s = R /s`, as every phase's line prints it (the
    /// test reads these figures back).
    fn throughput(&self, want: usize) -> String {
        format!(
            "{}/{want} in {:.3} s = {:.0} /s",
            self.done,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

#[derive(Clone, Copy)]
enum Step {
    Echo(SocketAddr),
    Handshake,
    Register,
    Observed,
    Notify(u32),
    Update,
    Deregister,
}

/// Runs `step` on every meter, at most `in_flight` at a time.
async fn phase(
    meters: Vec<Meter>,
    step: Step,
    in_flight: usize,
    timeout: Duration,
) -> (Vec<Meter>, PhaseReport) {
    let start = Instant::now();
    let until = start + timeout;
    let window = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut tasks = JoinSet::new();
    let total = meters.len();
    for mut meter in meters {
        let window = window.clone();
        tasks.spawn_local(async move {
            let mut results = Vec::new();
            let rounds = match step {
                Step::Notify(k) => k,
                _ => 1,
            };
            for _ in 0..rounds {
                let Ok(_permit) = window.acquire().await else {
                    break;
                };
                let outcome = match step {
                    Step::Echo(echo) => meter.echo(echo, until).await,
                    Step::Handshake => meter.handshake(until).await,
                    Step::Register => meter.register(until).await,
                    Step::Observed => meter.await_observed(until).await,
                    Step::Notify(_) => meter.notify(until).await,
                    Step::Update => meter.update(until).await,
                    Step::Deregister => meter.deregister(until).await,
                };
                let failed = outcome.is_err();
                results.push(outcome.map_err(|e| format!("{}: {e}", meter.endpoint)));
                if failed {
                    break;
                }
            }
            (meter, results)
        });
    }
    let mut meters = Vec::with_capacity(total);
    let mut report = PhaseReport {
        done: 0,
        elapsed: Duration::ZERO,
        times: Vec::new(),
        first_error: None,
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok((meter, results)) = joined else {
            report
                .first_error
                .get_or_insert("a meter task panicked".into());
            continue;
        };
        for r in results {
            match r {
                Ok(t) => {
                    report.done += 1;
                    report.times.push(t);
                }
                Err(e) => {
                    report.first_error.get_or_insert(e);
                }
            }
        }
        meters.push(meter);
    }
    report.elapsed = start.elapsed();
    meters.sort_by_key(|m| m.index);
    (meters, report)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The soft limit on open files, from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A private folder for the PSK file, removed on drop.
struct SecretDir(PathBuf);

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fresh keys, one per meter, never shared and never printed; written to
/// a 0600 file in a 0700 folder for the server child.
fn make_psks(n: usize) -> Result<(SecretDir, Vec<Psk>), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = std::env::temp_dir().join(format!(
        "meterbench-fleet-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = SecretDir(dir);
    let mut psks = Vec::with_capacity(n);
    let mut text = String::new();
    for i in 0..n {
        let key = SecretKey::generate(16).map_err(|e| format!("key for meter {i}: {e}"))?;
        text.push_str(&format!("{} {}\n", endpoint(i), hex::encode(key.expose())));
        psks.push(Psk::new(endpoint(i), key).map_err(|e| format!("PSK of meter {i}: {e}"))?);
    }
    let file = dir.0.join("psks");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((dir, psks))
}

// ---------------------------------------------------------------- the parent

pub fn main(args: FleetArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &FleetArgs) -> Result<(), String> {
    let n = args.meters;
    if n == 0 {
        return Err("--meters must be at least 1".into());
    }
    // Each worker holds its meters' sockets and a few more files.
    let mut per_worker = args.per_worker.max(1);
    if let Some(limit) = open_file_limit() {
        let room = limit.saturating_sub(64) as usize;
        if room == 0 {
            return Err(format!("a process may open only {limit} files (ulimit -n)"));
        }
        per_worker = per_worker.min(room);
    }
    let secrets = if args.dtls {
        Some(make_psks(n)?.0)
    } else {
        None
    };
    let psk_file = secrets.as_ref().map(|dir| dir.0.join("psks"));
    let log = args.server_log.max(1).to_string();
    let echo = ChildServer::start(&["--echo".into()])?;
    let mut extra = vec![
        "--objects".to_string(),
        args.objects.display().to_string(),
        "--log-capacity".into(),
        log,
    ];
    if let Some(file) = &psk_file {
        extra.push("--credentials".into());
        extra.push(file.display().to_string());
    }
    let mut server = ChildServer::start(&extra)?;
    let mut workers = workers::Workers::start(
        args,
        per_worker,
        server.addr,
        echo.addr,
        psk_file.as_deref(),
    )?;
    let result = fleet(args, &mut workers, &echo, &mut server);
    drop(workers);
    drop(secrets);
    result
}

fn fleet(
    args: &FleetArgs,
    workers: &mut workers::Workers,
    echo: &ChildServer,
    server: &mut ChildServer,
) -> Result<(), String> {
    let n = args.meters;
    let w = args.in_flight.max(1);
    let timeout = args.timeout;
    println!(
        "fleet: {n} meters in {} worker process(es), {}, {w} in flight, {} notification(s) each, phase timeout {} s",
        workers.len(),
        if args.dtls {
            "DTLS 1.2 PSK (a fresh key per meter)"
        } else {
            "plain CoAP over UDP"
        },
        args.notifications,
        timeout.as_secs()
    );
    println!(
        "server: child pid {} at {}; memory is its VmRSS from /proc/{}/status; its log and event history keep {} entries",
        server.pid(),
        server.addr,
        server.pid(),
        args.server_log.max(1)
    );
    let mut failures = Vec::new();
    let mut check = |name: &str, r: &PhaseReport, want: usize| {
        if r.done < want {
            failures.push(format!(
                "{name}: {} of {want} did not complete (first: {})",
                want - r.done,
                r.first_error.as_deref().unwrap_or("?")
            ));
        }
    };

    let mut echo_report = workers.run("echo");
    echo_report.times.sort();
    let echo_rate = echo_report.rate();
    println!(
        "bare UDP echo: {}/{n} in {:.3} s = {:.0} /s, p50 {}, p99 {} (same sockets, datagram and window; child pid {})",
        echo_report.done,
        echo_report.elapsed.as_secs_f64(),
        echo_rate,
        ms(percentile(&echo_report.times, 50)),
        ms(percentile(&echo_report.times, 99)),
        echo.pid()
    );
    check("bare UDP echo", &echo_report, n);

    // Let the server settle before its baseline memory.
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = server.rss_kib()?;
    if args.dtls {
        let r = workers.run("handshake");
        println!("handshakes: {}", r.throughput(n));
        check("DTLS handshakes", &r, n);
    }
    let rss_sessions = server.rss_kib()?;
    let mut reg = workers.run("register");
    reg.times.sort();
    let rss_registered = server.rss_kib()?;
    println!(
        "registered: {}/{n} in {:.3} s = {:.0} /s, {:.2} x the bare UDP echo rate",
        reg.done,
        reg.elapsed.as_secs_f64(),
        reg.rate(),
        reg.rate() / echo_rate.max(1e-9)
    );
    println!(
        "registration latency: p50 {}, p99 {}",
        ms(percentile(&reg.times, 50)),
        ms(percentile(&reg.times, 99))
    );
    check("registration", &reg, n);
    let per_device =
        |after: u64, before: u64| after.saturating_sub(before) as f64 / reg.done.max(1) as f64;
    if args.dtls {
        println!(
            "server memory: {rss_before} KiB before, {rss_sessions} KiB with {n} DTLS sessions = {:.2} KiB per session, {rss_registered} KiB registered = {:.2} KiB per registered device (session and registration)",
            per_device(rss_sessions, rss_before),
            per_device(rss_registered, rss_before)
        );
    } else {
        println!(
            "server memory: {rss_before} KiB before, {rss_registered} KiB registered = {:.2} KiB per registered device",
            per_device(rss_registered, rss_before)
        );
    }

    // Observed only now, so that the registration figures are the
    // Registers' alone: the server's Observe requests get their own phase.
    server.say("observe")?;
    let obs = workers.run("observed");
    println!("observed: {} ({OBSERVED})", obs.throughput(n));
    check("observation", &obs, n);
    if let Ok(rss_observed) = server.rss_kib() {
        println!(
            "server memory, observed too: {rss_observed} KiB = {:.2} KiB per registered and observed device",
            per_device(rss_observed, rss_before)
        );
    }
    let k = args.notifications;
    let notes = workers.run("notify");
    let want_notes = n * k as usize;
    println!(
        "notifications: {}/{want_notes} acknowledged in {:.3} s = {:.0} /s",
        notes.done,
        notes.elapsed.as_secs_f64(),
        notes.rate()
    );
    check("notifications", &notes, want_notes);
    let upd = workers.run("update");
    println!("updated: {}", upd.throughput(n));
    check("update", &upd, n);
    let dereg = workers.run("deregister");
    println!("deregistered: {}", dereg.throughput(n));
    check("de-registration", &dereg, n);
    if let Ok(rss) = server.rss_kib() {
        println!("server memory after de-registration: {rss} KiB (glibc keeps what was freed)");
    }
    match server.trim() {
        Some(said) => {
            if let Ok(rss) = server.rss_kib() {
                println!("server memory after malloc_trim: {rss} KiB ({said})");
            }
        }
        None => println!("server memory after malloc_trim: the server did not answer"),
    }
    // The duplicate cache forgets a de-registered meter's earlier
    // messages MAX_TRANSMIT_SPAN + MAX_LATENCY (145 s) after its
    // De-register and the De-register's own at EXCHANGE_LIFETIME (247 s,
    // RFC 7252 §4.8.2): what the server holds once they pass.
    let deregistered_at = Instant::now();
    for at in args.linger.iter().map(|s| Duration::from_secs(*s)) {
        let wait = at.saturating_sub(deregistered_at.elapsed());
        println!(
            "waiting {} s for the server's duplicate cache to expire (--linger)",
            wait.as_secs()
        );
        std::thread::sleep(wait);
        let said = server.trim();
        if let Ok(rss) = server.rss_kib() {
            println!(
                "server memory {} s after de-registration, after malloc_trim: {rss} KiB ({})",
                at.as_secs(),
                said.as_deref().unwrap_or("the server did not answer")
            );
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notification_payload_decodes_as_current_time() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects");
        let registry = lwm2m::Registry::load_dir(&dir).unwrap();
        let path: lwm2m::Path = OBSERVED.parse().unwrap();
        let records = lwm2m::format::decode(
            lwm2m::ContentFormat::Tlv,
            &path,
            &current_time_tlv(1_700_000_000),
            &registry,
        )
        .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].path, path);
        assert_eq!(lwm2m::ContentFormat::Tlv.code(), TLV);
    }

    #[test]
    fn meters_spread_over_loopback_addresses_in_groups() {
        assert_eq!(meter_address(0), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(meter_address(19_999), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(meter_address(20_000), std::net::Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(meter_address(99_999), std::net::Ipv4Addr::new(127, 0, 4, 1));
    }

    #[test]
    fn percentiles_pick_from_the_sorted_times() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 50), Duration::from_millis(51));
        assert_eq!(percentile(&times, 99), Duration::from_millis(100));
        assert_eq!(percentile(&[], 99), Duration::ZERO);
    }
}
