//! Bootstrap and DTLS on the virtual meter, as a process: powered by
//! `VirtualPower`, configured over its PTY by the rig's AT engine with the
//! dialect's named commands, bootstrapped by the sans-IO
//! `lwm2m::bootstrap::BootstrapServer` and registered with the sans-IO
//! `lwm2m::server::Server`, both behind `dtls::OpensslServer` on real UDP
//! sockets the test owns. Loopback only; every wait is bounded.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dtls::{DtlsServer, OpensslServer, SecretKey, ServerConfig};
use lwm2m::bootstrap::{
    BootstrapEvent, BootstrapOp, BootstrapScript, BootstrapServer, BootstrapServerConfig,
    ServerAccount,
};
use lwm2m::format::Record;
use lwm2m::server::{Server, ServerEvent};
use lwm2m::{ContentFormat, Registry, Value};
use rig::{Debug as _, Dialect, Modem as _, Power as _, SerialModem};
use sim::{VirtualDebug, VirtualMeterSpec, VirtualPower};

const WAIT: Duration = Duration::from_secs(30);
const BS_KEY: &str = "5eb0075742a1c0ffee0000000000b5b5";
const DEV_KEY: &str = "de71ce0000c0ffee5eb0075742a1d1d1";
const NEW_KEY: &str = "0e1e2e3e4e5e6e7e8e9eaebecedeeefe";
const WRONG_KEY: &str = "bad0bad0bad0bad0bad0bad0bad0bad0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec(state: &Path, seed: u64) -> VirtualMeterSpec {
    // Debug logs in the device log: the key must not appear even there. The
    // level reaches only the meter's process, through env(1): setting it in
    // this process would race the other tests' threads of this binary.
    VirtualMeterSpec {
        program: PathBuf::from("/usr/bin/env"),
        args_prefix: vec![
            "RUST_LOG=debug".to_owned(),
            env!("CARGO_BIN_EXE_virtual-meter").to_owned(),
        ],
        state_dir: state.to_owned(),
        objects_dir: root().join("fixtures/objects"),
        seed,
    }
}

fn registry() -> Registry {
    Registry::load_dir(&root().join("fixtures/objects")).unwrap()
}

fn key(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).unwrap()
}

/// PSK tables the test edits while the servers run.
type Keys = Arc<Mutex<HashMap<String, Vec<u8>>>>;

fn lookup(keys: &Keys) -> dtls::PskLookup {
    let keys = Arc::clone(keys);
    Arc::new(move |identity: &str| {
        let k = keys.lock().unwrap().get(identity).cloned()?;
        SecretKey::new(k).ok()
    })
}

/// What the test's servers saw.
#[derive(Debug, Clone)]
enum Seen {
    Bootstrap(BootstrapEvent),
    Server(ServerEvent),
    BootstrapDtls(dtls::ServerEvent),
    ServerDtls(dtls::ServerEvent),
}

enum App {
    Bootstrap(Box<BootstrapServer>),
    Lwm2m(Box<Server>),
}

/// One UDP socket, optionally behind DTLS, serving one sans-IO role.
struct Endpoint {
    socket: UdpSocket,
    dtls: Option<OpensslServer>,
    app: App,
}

impl Endpoint {
    fn new(app: App, keys: Option<&Keys>) -> Endpoint {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let dtls = keys.map(|k| OpensslServer::new(ServerConfig::new(lookup(k))).unwrap());
        Endpoint { socket, dtls, app }
    }

    fn uri(&self) -> String {
        let scheme = if self.dtls.is_some() { "coaps" } else { "coap" };
        format!("{scheme}://{}", self.socket.local_addr().unwrap())
    }

    fn pump(&mut self, now: Instant, seen: &Mutex<Vec<Seen>>) {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = self.socket.recv_from(&mut buf) {
            let plain: Vec<(SocketAddr, Option<String>, Vec<u8>)> = match self.dtls.as_mut() {
                Some(d) => {
                    d.handle_datagram(now, peer, &buf[..n]);
                    let identity = d.session(peer).and_then(|s| s.identity);
                    std::iter::from_fn(|| d.poll_received())
                        .map(|r| (r.peer, identity.clone(), r.payload))
                        .collect()
                }
                None => vec![(peer, None, buf[..n].to_vec())],
            };
            for (peer, identity, data) in plain {
                self.app_datagram(now, peer, identity.as_deref(), &data);
            }
        }
        if let Some(d) = self.dtls.as_mut() {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                d.handle_timeout(now);
            }
        }
        match &mut self.app {
            App::Bootstrap(b) if b.poll_timeout().is_some_and(|t| t <= now) => {
                b.handle_timeout(now)
            }
            App::Lwm2m(s) if s.poll_timeout().is_some_and(|t| t <= now) => s.handle_timeout(now),
            _ => {}
        }
        let mut out = Vec::new();
        let mut events = Vec::new();
        match &mut self.app {
            App::Bootstrap(b) => {
                out.extend(std::iter::from_fn(|| b.poll_transmit()));
                events.extend(std::iter::from_fn(|| b.poll_event()).map(Seen::Bootstrap));
            }
            App::Lwm2m(s) => {
                out.extend(std::iter::from_fn(|| s.poll_transmit()));
                events.extend(std::iter::from_fn(|| s.poll_event()).map(Seen::Server));
            }
        }
        for t in out {
            match self.dtls.as_mut() {
                Some(d) => {
                    let _ = d.send(now, t.destination, &t.payload);
                }
                None => {
                    let _ = self.socket.send_to(&t.payload, t.destination);
                }
            }
        }
        if let Some(d) = self.dtls.as_mut() {
            while let Some(t) = d.poll_transmit() {
                let _ = self.socket.send_to(&t.payload, t.destination);
            }
            let bootstrap = matches!(self.app, App::Bootstrap(_));
            events.extend(std::iter::from_fn(|| d.poll_event()).map(|e| {
                if bootstrap {
                    Seen::BootstrapDtls(e)
                } else {
                    Seen::ServerDtls(e)
                }
            }));
        }
        seen.lock().unwrap().extend(events);
    }

    fn app_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        identity: Option<&str>,
        data: &[u8],
    ) {
        match &mut self.app {
            App::Bootstrap(b) => b.handle_datagram(now, peer, data),
            App::Lwm2m(s) => s.handle_datagram_authenticated(now, peer, identity, data),
        }
    }
}

enum Command {
    Script(String, BootstrapScript),
}

/// A Bootstrap-Server (coaps with the bootstrap PSK table, or plain coap)
/// and an LwM2M Server (coaps, the device PSK table, an identity may only
/// register as the endpoint its name ends with) on one thread.
struct Servers {
    bootstrap_uri: String,
    server_uri: String,
    bootstrap_keys: Keys,
    server_keys: Keys,
    seen: Arc<Mutex<Vec<Seen>>>,
    commands: Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Servers {
    fn start() -> Servers {
        Self::start_with(true)
    }

    fn start_with(secure_bootstrap: bool) -> Servers {
        let bootstrap_keys: Keys = Arc::default();
        let server_keys: Keys = Arc::default();
        let mut bs = Endpoint::new(
            App::Bootstrap(Box::new(BootstrapServer::new(BootstrapServerConfig {
                registry: registry(),
                default_format: ContentFormat::Tlv,
                seed: 1,
            }))),
            secure_bootstrap.then_some(&bootstrap_keys),
        );
        let mut server = Server::new(lwm2m::server::ServerConfig {
            registry: registry(),
            default_format: ContentFormat::Tlv,
            seed: 2,
        });
        // Identity `<anything>-<endpoint>` may act as `<endpoint>` only.
        server.set_authorizer(Box::new(
            |endpoint: &str, identity: Option<&str>| match identity {
                Some(i) if i.ends_with(&format!("-{endpoint}")) => Ok(()),
                other => Err(format!("identity {other:?} may not act as {endpoint}")),
            },
        ));
        let mut dm = Endpoint::new(App::Lwm2m(Box::new(server)), Some(&server_keys));
        let (bootstrap_uri, server_uri) = (bs.uri(), dm.uri());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (commands, inbox): (Sender<Command>, Receiver<Command>) = mpsc::channel();
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            // Bounded even if the test forgets to stop it.
            let give_up = Instant::now() + Duration::from_secs(300);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
                    while let Ok(Command::Script(ep, script)) = inbox.try_recv() {
                        if let App::Bootstrap(b) = &mut bs.app {
                            b.set_script(ep, script);
                        }
                    }
                    let now = Instant::now();
                    bs.pump(now, &seen);
                    dm.pump(now, &seen);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Servers {
            bootstrap_uri,
            server_uri,
            bootstrap_keys,
            server_keys,
            seen,
            commands,
            stop,
            thread: Some(thread),
        }
    }

    /// The Bootstrap-Server accepts `identity` with the key `key_hex`.
    fn add_bootstrap_key(&self, identity: &str, key_hex: &str) {
        let mut keys = self.bootstrap_keys.lock().unwrap();
        keys.insert(identity.to_owned(), key(key_hex));
    }

    /// The LwM2M Server accepts `identity` with the key `key_hex`.
    fn add_server_key(&self, identity: &str, key_hex: &str) {
        let mut keys = self.server_keys.lock().unwrap();
        keys.insert(identity.to_owned(), key(key_hex));
    }

    /// The next Bootstrap-Request of `endpoint` provisions an account on the
    /// LwM2M Server with the PSK `identity` / `key_hex`.
    fn provision(&self, endpoint: &str, identity: &str, key_hex: &str) {
        self.script(
            endpoint,
            BootstrapScript::standard(&device_account(self, identity, key_hex)),
        );
    }

    /// The next Bootstrap-Request of `endpoint` runs `script`.
    fn script(&self, endpoint: &str, script: BootstrapScript) {
        self.commands
            .send(Command::Script(endpoint.to_owned(), script))
            .unwrap();
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.seen().iter().filter(|s| f(s)).count()
    }

    /// Waits until `f` holds for what was seen; false at the deadline.
    fn wait(&self, within: Duration, f: impl Fn(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if f(&self.seen()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        f(&self.seen())
    }

    /// Waits until `f` holds for at least `n` of the things seen.
    fn wait_count(&self, n: usize, f: impl Fn(&Seen) -> bool) -> bool {
        self.wait(WAIT, |s| s.iter().filter(|x| f(x)).count() >= n)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bootstrap_requests(s: &Seen) -> bool {
    matches!(s, Seen::Bootstrap(BootstrapEvent::Requested { .. }))
}

fn registered_as(endpoint: &str) -> impl Fn(&Seen) -> bool + '_ {
    move |s| matches!(s, Seen::Server(ServerEvent::Registered(r)) if r.endpoint == endpoint)
}

fn dtls_identity(identity: &str) -> impl Fn(&Seen) -> bool + '_ {
    move |s| matches!(s, Seen::ServerDtls(dtls::ServerEvent::HandshakeCompleted { identity: i, .. }) if i == identity)
}

/// The device end: its power, its modem (the rig's AT engine) and debug port.
struct Device {
    power: VirtualPower,
    modem: rig::wrap::TranscriptRecorder<SerialModem>,
    dialect: Dialect,
    spec: VirtualMeterSpec,
}

impl Device {
    fn power_on(state: &Path, seed: u64) -> Device {
        let dialect =
            Dialect::load(&root().join("fixtures/modems/meterbench-virtual.yaml")).unwrap();
        let spec = spec(state, seed);
        let mut power = VirtualPower::new(spec.clone());
        power.on().unwrap();
        let mut modem = rig::wrap::TranscriptRecorder::new(SerialModem::new(
            spec.pty_path(),
            115_200,
            dialect.clone(),
        ));
        modem.open().unwrap();
        Device {
            power,
            modem,
            dialect,
            spec,
        }
    }

    /// Sends the dialect command `name`, rendered with `vars`, the way the
    /// runner does (secret variables masked in the transcript); expects OK.
    fn command(&mut self, name: &str, vars: &[(&str, &str)]) {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (line, shown) = self.dialect.render_shown(name, &vars).unwrap();
        let r = self
            .modem
            .command_shown(&line, &shown, self.dialect.command_timeout)
            .unwrap();
        assert!(r.is_ok(), "{name}: `{shown}` -> {}", r.summary());
    }

    /// Brings the device up for bootstrap: Bootstrap-Server URI and its
    /// per-device PSK, endpoint, lifetime, start.
    fn bring_up_for_bootstrap(&mut self, servers: &Servers, endpoint: &str) {
        let bs_identity = format!("bs-{endpoint}");
        self.command("echo_off", &[]);
        self.command("radio_on", &[]);
        self.command(
            "bootstrap_server",
            &[("bootstrap_uri", &servers.bootstrap_uri)],
        );
        self.command(
            "bootstrap_psk",
            &[("identity", &bs_identity), ("key", BS_KEY)],
        );
        self.command("lwm2m_endpoint", &[("endpoint", endpoint)]);
        self.command("lwm2m_lifetime", &[("lifetime", "60")]);
        self.command("lwm2m_start", &[]);
    }

    fn wait_urc(&mut self, prefix: &str) -> String {
        self.modem
            .wait_for_line(prefix, WAIT)
            .unwrap_or_else(|e| panic!("no {prefix:?}: {e}"))
    }

    fn debug_state(&self) -> BTreeMap<String, String> {
        VirtualDebug::new(&self.spec.state_dir)
            .read_state()
            .unwrap()
    }

    fn device_log(&self) -> String {
        std::fs::read_to_string(self.spec.device_log_path()).unwrap_or_default()
    }

    fn power_cycle(&mut self) {
        self.power.off().unwrap();
        self.modem.close();
        self.power.on().unwrap();
        self.modem.open().unwrap();
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.power.off();
    }
}

/// Keys must not appear in any form a log could hold them in.
fn assert_no_key(what: &str, text: &str, keys: &[&str]) {
    for k in keys {
        assert!(!text.contains(k), "{what} holds a key");
        assert!(
            !text.contains(&k.to_ascii_uppercase()),
            "{what} holds a key (upper case)"
        );
    }
}

fn device_account(servers: &Servers, identity: &str, key_hex: &str) -> ServerAccount {
    let mut a = ServerAccount::psk(
        101,
        servers.server_uri.clone(),
        identity.as_bytes().to_vec(),
        key(key_hex),
    );
    a.lifetime = Duration::from_secs(60);
    a
}

#[test]
fn bootstraps_over_dtls_registers_with_the_provisioned_psk_and_keeps_it_across_power_cuts() {
    let servers = Servers::start();
    let ep = "sec-meter-1";
    servers.add_bootstrap_key(&format!("bs-{ep}"), BS_KEY);
    servers.add_server_key(&format!("dev-{ep}"), DEV_KEY);
    servers.provision(ep, &format!("dev-{ep}"), DEV_KEY);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 31);
    device.bring_up_for_bootstrap(&servers, ep);
    device.wait_urc("+LWM2M: bootstrapped");
    let registered = device.wait_urc("+LWM2M: registered");
    assert!(registered.contains("/rd/"), "{registered}");
    assert!(servers.wait(WAIT, |s| s.iter().any(registered_as(ep))));
    assert_eq!(servers.count(dtls_identity(&format!("dev-{ep}"))), 1);
    assert!(servers.seen().iter().any(|s| matches!(
        s,
        Seen::BootstrapDtls(dtls::ServerEvent::HandshakeCompleted { identity, .. }) if *identity == format!("bs-{ep}")
    )));

    // NV holds the account; the debug port shows identity and fingerprint only.
    let state = device.debug_state();
    assert_eq!(state["lwm2m.accounts"], "1");
    let account = &state["lwm2m.account.101"];
    assert!(account.contains(&servers.server_uri), "{account}");
    assert!(account.contains(&format!("\"dev-{ep}\"")), "{account}");
    assert!(state["lwm2m.bootstrap_psk"].starts_with(&format!("\"bs-{ep}\" sha256:")));
    let accounts_at = device
        .modem
        .command("AT+LWM2MACC?", Duration::from_secs(5))
        .unwrap();
    assert!(accounts_at.is_ok());

    // A power cut: the device comes back with the persisted account and
    // registers again over DTLS, without a second bootstrap.
    device.power_cycle();
    device.wait_urc("+LWM2M: registered");
    assert!(servers.wait_count(2, registered_as(ep)));
    assert_eq!(servers.count(bootstrap_requests), 1, "no second bootstrap");
    assert_eq!(servers.count(dtls_identity(&format!("dev-{ep}"))), 2);

    // The transcript shows the bootstrap_psk command masked; nothing a
    // report could hold carries a key.
    let transcript = device.modem.transcript().to_text();
    assert!(
        transcript.contains(&format!("AT+LWM2MBSPSK=\"bs-{ep}\",\"***\"")),
        "{transcript}"
    );
    assert_no_key("the AT transcript", &transcript, &[BS_KEY, DEV_KEY]);
    assert_no_key("the debug port", &format!("{state:?}"), &[BS_KEY, DEV_KEY]);
    let log = device.device_log();
    assert!(
        log.contains("DTLS session established"),
        "device log: {log}"
    );
    // The level reached the meter: the check above covered its debug lines.
    assert!(
        log.contains(" DEBUG "),
        "no debug lines in device log: {log}"
    );
    assert_no_key("device.log", &log, &[BS_KEY, DEV_KEY]);
}

#[test]
fn a_wrong_psk_is_refused_reported_without_registration_and_falls_back_to_bootstrap() {
    let servers = Servers::start();
    let ep = "sec-meter-2";
    servers.add_bootstrap_key(&format!("bs-{ep}"), BS_KEY);
    servers.add_server_key(&format!("dev-{ep}"), DEV_KEY);
    // Bootstrap hands out a key the LwM2M server does not hold.
    servers.provision(ep, &format!("dev-{ep}"), WRONG_KEY);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 32);
    device.bring_up_for_bootstrap(&servers, ep);
    device.wait_urc("+LWM2M: bootstrapped");
    let failed = device.wait_urc("+LWM2M: dtls failed");
    assert!(failed.contains("wrong key"), "{failed}");
    let reg_failed = device.wait_urc("+LWM2M: registration failed");
    assert!(reg_failed.contains("DTLS handshake"), "{reg_failed}");
    // After BOOTSTRAP_AFTER failed Registers the device bootstraps again.
    assert!(
        servers.wait_count(2, bootstrap_requests),
        "{:?}",
        servers.seen()
    );
    assert_eq!(servers.count(registered_as(ep)), 0, "never registered");
    assert!(
        servers.count(|s| matches!(
            s,
            Seen::ServerDtls(dtls::ServerEvent::HandshakeFailed { .. })
        )) >= 1
    );
    let transcript = device.modem.transcript().to_text();
    assert_no_key(
        "the AT transcript",
        &transcript,
        &[BS_KEY, DEV_KEY, WRONG_KEY],
    );
    assert_no_key(
        "device.log",
        &device.device_log(),
        &[BS_KEY, DEV_KEY, WRONG_KEY],
    );
}

#[test]
fn a_credential_that_no_longer_works_leads_to_a_new_bootstrap_and_the_old_one_is_gone() {
    let servers = Servers::start();
    let ep = "sec-meter-3";
    let (old_id, new_id) = (format!("dev-{ep}"), format!("dev2-{ep}"));
    servers.add_bootstrap_key(&format!("bs-{ep}"), BS_KEY);
    servers.add_server_key(&old_id, DEV_KEY);
    servers.provision(ep, &old_id, DEV_KEY);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 33);
    device.bring_up_for_bootstrap(&servers, ep);
    device.wait_urc("+LWM2M: registered");
    assert!(servers.wait(WAIT, |s| s.iter().any(dtls_identity(&old_id))));

    // The server removes the account (its identity is unknown from now on)
    // and bootstrap would hand out a new credential.
    {
        let mut keys = servers.server_keys.lock().unwrap();
        keys.clear();
        keys.insert(new_id.clone(), key(NEW_KEY));
    }
    servers.provision(ep, &new_id, NEW_KEY);
    device.power_cycle();
    device.wait_urc("+LWM2M: dtls failed");
    device.wait_urc("+LWM2M: bootstrapped");
    device.wait_urc("+LWM2M: registered");
    assert!(servers.wait(WAIT, |s| s.iter().any(dtls_identity(&new_id))));
    assert_eq!(servers.count(bootstrap_requests), 2);
    let state = device.debug_state();
    assert_eq!(state["lwm2m.accounts"], "1");
    assert!(
        state["lwm2m.account.101"].contains(&format!("\"{new_id}\"")),
        "{state:?}"
    );
    assert_no_key(
        "device.log",
        &device.device_log(),
        &[BS_KEY, DEV_KEY, NEW_KEY],
    );
}

#[test]
fn bootstrap_over_plain_coap_then_registration_over_dtls() {
    let servers = Servers::start_with(false);
    assert!(servers.bootstrap_uri.starts_with("coap://"));
    let ep = "sec-meter-4";
    servers.add_server_key(&format!("dev-{ep}"), DEV_KEY);
    servers.provision(ep, &format!("dev-{ep}"), DEV_KEY);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 34);
    device.command("echo_off", &[]);
    device.command(
        "bootstrap_server",
        &[("bootstrap_uri", &servers.bootstrap_uri)],
    );
    device.command("lwm2m_endpoint", &[("endpoint", ep)]);
    // Start with a Bootstrap-Server and no account: bootstrap first.
    device.command("lwm2m_start", &[]);
    device.wait_urc("+LWM2M: bootstrapped");
    device.wait_urc("+LWM2M: registered");
    assert!(servers.wait(WAIT, |s| s.iter().any(registered_as(ep))));
    assert_eq!(servers.count(dtls_identity(&format!("dev-{ep}"))), 1);
    assert!(!servers
        .seen()
        .iter()
        .any(|s| matches!(s, Seen::BootstrapDtls(_))));

    // An explicit bootstrap (AT+LWM2MBOOT) runs again on request.
    device.command("bootstrap_start", &[]);
    device.wait_urc("+LWM2M: bootstrapped");
    device.wait_urc("+LWM2M: registered");
    assert_eq!(servers.count(bootstrap_requests), 2);
    assert_no_key("device.log", &device.device_log(), &[DEV_KEY]);
}

#[test]
fn a_forbidden_registration_falls_back_to_bootstrap() {
    let servers = Servers::start();
    let ep = "sec-meter-5";
    servers.add_bootstrap_key(&format!("bs-{ep}"), BS_KEY);
    // A valid credential, but of another device: the server answers 4.03.
    let foreign = "dev-other-meter";
    servers.add_server_key(foreign, DEV_KEY);
    servers.provision(ep, foreign, DEV_KEY);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 35);
    device.bring_up_for_bootstrap(&servers, ep);
    device.wait_urc("+LWM2M: bootstrapped");
    let refused = device.wait_urc("+LWM2M: registration failed");
    assert!(refused.contains("4.03"), "{refused}");
    assert!(
        servers.wait_count(2, bootstrap_requests),
        "{:?}",
        servers.seen()
    );
    assert!(servers.count(|s| matches!(s, Seen::Server(ServerEvent::Forbidden { .. }))) >= 2);
    assert_eq!(servers.count(registered_as(ep)), 0);
}

#[test]
fn a_fallback_bootstrap_waits_the_client_hold_off_time_the_bootstrap_server_set() {
    // Security object resource 11 (LwM2M 1.1 Core §E.1; OMA registry
    // 0.xml): "the number of seconds to wait before initiating a Client
    // Initiated Bootstrap once the LwM2M Client has determined it should
    // initiate this bootstrap mode".
    let servers = Servers::start();
    let ep = "sec-meter-6";
    servers.add_bootstrap_key(&format!("bs-{ep}"), BS_KEY);
    // A credential of another device: every Register is refused (4.03), so
    // after BOOTSTRAP_AFTER (2) failures the meter decides to bootstrap again.
    let foreign = "dev-other-meter";
    servers.add_server_key(foreign, DEV_KEY);
    let hold_off = Duration::from_secs(3);
    let mut script = BootstrapScript::standard(&device_account(&servers, foreign, DEV_KEY));
    let finish = script.steps.pop().expect("standard ends with Finish");
    script = script.then(BootstrapOp::Write {
        path: lwm2m::Path::instance(0, 0),
        records: vec![Record::new(
            lwm2m::Path::resource(0, 0, 11),
            Value::Integer(hold_off.as_secs() as i64),
        )],
    });
    script.steps.push(finish);
    servers.script(ep, script);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 36);
    device.bring_up_for_bootstrap(&servers, ep);
    device.wait_urc("+LWM2M: bootstrapped");
    let forbidden = |s: &Seen| matches!(s, Seen::Server(ServerEvent::Forbidden { .. }));
    // Timestamps by polling every 2 ms: the decision is the second refusal.
    let deadline = Instant::now() + WAIT;
    while servers.count(forbidden) < 2 {
        assert!(Instant::now() < deadline, "{:?}", servers.seen());
        std::thread::sleep(Duration::from_millis(2));
    }
    let decided = Instant::now();
    assert_eq!(servers.count(bootstrap_requests), 1);
    while servers.count(bootstrap_requests) < 2 {
        assert!(Instant::now() < deadline, "{:?}", servers.seen());
        std::thread::sleep(Duration::from_millis(2));
    }
    let waited = decided.elapsed();
    // The refusal is seen up to one server poll (5 ms) late, the request
    // likewise; the second handshake with the Bootstrap-Server adds time.
    assert!(
        waited >= hold_off - Duration::from_millis(20),
        "Bootstrap-Request {waited:?} after the decision, hold-off {hold_off:?}"
    );
    assert!(waited < hold_off + Duration::from_secs(3), "{waited:?}");
    assert!(
        device
            .device_log()
            .contains("waiting the Client Hold Off Time"),
        "the device log says why it waits"
    );
}

#[test]
fn the_client_hold_off_time_is_kept_in_nv_across_a_power_cut() {
    // Security object resource 11 (LwM2M 1.1 Core §E.1; OMA registry
    // 0.xml) is the wait before every Client Initiated Bootstrap the client
    // decides on, not only in the session that received it: the meter keeps
    // what the Bootstrap-Server wrote with the accounts it provisioned.
    let servers = Servers::start();
    let ep = "sec-meter-7";
    servers.add_bootstrap_key(&format!("bs-{ep}"), BS_KEY);
    // Every Register is refused (4.03): after BOOTSTRAP_AFTER (2) failures,
    // 2 s apart, the meter decides to bootstrap again.
    let foreign = "dev-other-meter";
    servers.add_server_key(foreign, DEV_KEY);
    let mut script = BootstrapScript::standard(&device_account(&servers, foreign, DEV_KEY));
    let finish = script.steps.pop().expect("standard ends with Finish");
    script = script.then(BootstrapOp::Write {
        path: lwm2m::Path::instance(0, 0),
        records: vec![Record::new(
            lwm2m::Path::resource(0, 0, 11),
            Value::Integer(4),
        )],
    });
    script.steps.push(finish);
    servers.script(ep, script);

    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::power_on(dir.path(), 37);
    device.bring_up_for_bootstrap(&servers, ep);
    device.wait_urc("+LWM2M: bootstrapped");
    assert_eq!(device.debug_state()["lwm2m.bootstrap_hold_off_s"], "4");
    // Cut before the second refusal (RETRY_INITIAL after the first).
    let waiting = "waiting the Client Hold Off Time";
    let decided_before = device.device_log().matches(waiting).count();
    let requests_before = servers.count(bootstrap_requests);
    device.power_cycle();
    assert_eq!(
        device.debug_state()["lwm2m.bootstrap_hold_off_s"],
        "4",
        "NV keeps the Client Hold Off Time"
    );
    // After the cut the restored account is refused again; the first
    // decision to bootstrap waits the kept 4 s. With the factory 0 s the
    // Bootstrap-Request would go at once, without this log line, and only
    // a second bootstrap would bring the 4 s back: so no Bootstrap-Request
    // may come between the cut and this line.
    let deadline = Instant::now() + WAIT;
    loop {
        let requests = servers.count(bootstrap_requests);
        let log = device.device_log();
        let decisions: Vec<&str> = log.lines().filter(|l| l.contains(waiting)).collect();
        if decisions.len() > decided_before {
            let first = decisions[decided_before];
            assert!(first.contains("hold_off_s=4"), "{first}");
            assert_eq!(
                requests, requests_before,
                "a Bootstrap-Request went out after the cut without the hold-off"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no decision to bootstrap after the power cut:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
