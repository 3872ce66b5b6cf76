//! The client side of the Bootstrap Interface (LwM2M 1.1 Core §6.1):
//! Bootstrap-Request, and serving the Bootstrap-Server's Discover, Read,
//! Write, Delete and Finish.
//!
//! Writes and Deletes go to a staged copy of the object store; nothing
//! reaches the live store until Bootstrap-Finish, and then only after the
//! whole staged configuration was validated ([`account::validate`]): an
//! inconsistent one is answered 4.06 Not Acceptable (Core §6.1.7.6) and the
//! session stays open for the server to correct it. A single Bootstrap-Write
//! that would leave a Security instance invalid is answered 4.00 and leaves
//! the staged copy as it was, so nothing is ever half-applied.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::{Client, ClientEvent, ObjectStore, RegistrationState};
use crate::bootstrap::account::{
    self, is_bootstrap_instance, security, SecurityMode, ServerAccount, SECURITY_OBJECT,
    SERVER_OBJECT,
};
use crate::coap::{code, options};
use crate::format::link::{encode_links, Link};
use crate::format::{self, ContentFormat};
use crate::path::Path;
use crate::value::Value;

/// The Device object: never deleted by Bootstrap-Delete (Core §6.1.7.5).
const DEVICE_OBJECT: u16 = 3;
/// The Access Control object, which bootstrap may read and delete (Core §6.1.7.2).
const ACCESS_CONTROL_OBJECT: u16 = 2;
/// Security object resource 11, Client Hold Off Time (Core §E.1, registry
/// 0.xml): "the number of seconds to wait before initiating a Client
/// Initiated Bootstrap once the LwM2M Client has determined it should
/// initiate this bootstrap mode"; relevant on the Bootstrap-Server account only.
const CLIENT_HOLD_OFF_TIME: u16 = 11;

/// Registration retry timings and when to give up on the server account.
///
/// LwM2M 1.1 Core §6.2.1.1 leaves the schedule to the client (its defaults
/// are a Communication Retry Timer of 60 s and a Retry Count of 5); after the
/// retries are exhausted a client with a Bootstrap-Server account falls back
/// to client-initiated bootstrap. Tests and the virtual meter use short ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First wait after a failure; doubled on each further failure.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// Consecutive failed Registers after which a client with a
    /// Bootstrap-Server account bootstraps again (0 or 1: at the first failure).
    pub bootstrap_after: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: super::RETRY_INITIAL,
            max: super::RETRY_MAX,
            bootstrap_after: 5,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failures + 1`.
    pub fn backoff(&self, failures: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << failures.min(16))
            .min(self.max)
    }
}

/// The client's Bootstrap-Server account and bootstrap behaviour.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// Where Bootstrap-Request goes (the caller resolved the account's URI).
    pub server: SocketAddr,
    /// The account's URI as /0/x/0 holds it.
    pub server_uri: String,
    /// The Security instance id of the Bootstrap-Server account.
    pub security_instance: u16,
    pub security_mode: SecurityMode,
    pub psk_identity: Vec<u8>,
    /// Never printed.
    pub psk_key: Vec<u8>,
    /// `pct` of the Bootstrap-Request (Core §6.1.5): the format the client
    /// wants Bootstrap-Writes in.
    pub preferred_format: Option<ContentFormat>,
    /// Security modes the device implements; a Security instance with
    /// another mode is refused (4.00).
    pub supported_modes: Vec<SecurityMode>,
    /// How long after the Bootstrap-Request (or the server's last
    /// operation) the client waits for Bootstrap-Finish before failing.
    pub finish_timeout: Duration,
    /// Objects besides 1 and 2 whose instances a Bootstrap-Delete of `/`
    /// removes. Other objects are the device's own (a meter's firmware or
    /// connectivity objects) and are kept, as clients without a delete
    /// handler for them do; the Device object is always kept (§6.1.7.5).
    pub deletable_objects: Vec<u16>,
    /// Client Hold Off Time (/0/x/11) the account is installed with (whole
    /// seconds). What counts is the value the store holds when the client
    /// decides to bootstrap, which a Bootstrap-Server may have rewritten.
    pub hold_off: Duration,
}

impl fmt::Debug for BootstrapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapConfig")
            .field("server", &self.server)
            .field("server_uri", &self.server_uri)
            .field("security_instance", &self.security_instance)
            .field("security_mode", &self.security_mode)
            .field("psk_identity", &String::from_utf8_lossy(&self.psk_identity))
            .field(
                "psk_key",
                &format_args!("<{} bytes, redacted>", self.psk_key.len()),
            )
            .field("preferred_format", &self.preferred_format)
            .field("supported_modes", &self.supported_modes)
            .field("finish_timeout", &self.finish_timeout)
            .field("deletable_objects", &self.deletable_objects)
            .field("hold_off", &self.hold_off)
            .finish()
    }
}

impl BootstrapConfig {
    /// A NoSec Bootstrap-Server account at `server` (Security instance 0),
    /// supporting NoSec and PSK accounts, waiting EXCHANGE_LIFETIME (247 s)
    /// for Bootstrap-Finish, with a Client Hold Off Time of 0 s.
    pub fn new(server: SocketAddr) -> Self {
        BootstrapConfig {
            server,
            server_uri: format!("coap://{server}"),
            security_instance: 0,
            security_mode: SecurityMode::NoSec,
            psk_identity: Vec::new(),
            psk_key: Vec::new(),
            preferred_format: None,
            supported_modes: vec![SecurityMode::NoSec, SecurityMode::Psk],
            finish_timeout: crate::coap::exchange::EXCHANGE_LIFETIME,
            deletable_objects: Vec::new(),
            hold_off: Duration::ZERO,
        }
    }

    /// The records of the Bootstrap-Server Security instance (Core §E.1).
    fn install(&self, store: &mut ObjectStore) {
        let r = |id| Path::resource(SECURITY_OBJECT, self.security_instance, id);
        store.create_instance(SECURITY_OBJECT, self.security_instance);
        store.set(
            r(security::SERVER_URI),
            Value::String(self.server_uri.clone()),
        );
        store.set(r(security::BOOTSTRAP_SERVER), Value::Boolean(true));
        store.set(
            r(security::SECURITY_MODE),
            Value::Integer(self.security_mode.code()),
        );
        store.set(
            r(security::PUBLIC_KEY_OR_IDENTITY),
            Value::Opaque(self.psk_identity.clone()),
        );
        store.set(r(security::SERVER_PUBLIC_KEY), Value::Opaque(Vec::new()));
        store.set(r(security::SECRET_KEY), Value::Opaque(self.psk_key.clone()));
        let hold_off = i64::try_from(self.hold_off.as_secs()).unwrap_or(i64::MAX);
        store.set(r(CLIENT_HOLD_OFF_TIME), Value::Integer(hold_off));
    }
}

/// A bootstrap session in progress.
#[derive(Debug)]
pub(super) struct BootstrapSession {
    /// The store as it will be after Finish.
    staged: ObjectStore,
    /// Objects whose instances Finish copies from `staged`.
    touched: BTreeSet<u16>,
    deadline: Instant,
}

impl BootstrapSession {
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }
}

type Refusal = (u16, String);

fn refuse(code: u16, diagnostic: impl Into<String>) -> Refusal {
    (code, diagnostic.into())
}

fn response(code_number: u16) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code::from_number(code_number).unwrap_or(0xa0));
    p
}

/// What the caller does after answering a bootstrap request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterReply {
    Nothing,
    /// Bootstrap-Finish committed: register with the new account.
    Register,
}

impl Client {
    /// Installs the Bootstrap-Server account when the store has none.
    pub(super) fn ensure_bootstrap_account(&mut self) {
        let Some(bs) = &self.config.bootstrap else {
            return;
        };
        let has_one = account::instances_of(&self.store, SECURITY_OBJECT)
            .into_iter()
            .any(|x| is_bootstrap_instance(&self.store, x));
        if !has_one {
            bs.clone().install(&mut self.store);
        }
    }

    /// The LwM2M Server accounts the client holds (what bootstrap
    /// provisioned, or what was loaded), by Short Server ID.
    pub fn accounts(&self) -> Vec<ServerAccount> {
        account::accounts(&self.store)
    }

    /// Adds (or replaces) accounts, e.g. ones restored from NV storage before
    /// [`Client::start`].
    pub fn load_accounts(&mut self, accounts: &[ServerAccount]) {
        for a in accounts {
            a.install(&mut self.store);
        }
        self.apply_account_defaults();
    }

    /// A client whose store holds `accounts` (restored from NV storage).
    pub fn with_accounts(
        config: super::ClientConfig,
        store: ObjectStore,
        accounts: &[ServerAccount],
    ) -> Self {
        let mut client = Client::new(config, store);
        client.load_accounts(accounts);
        client
    }

    /// Points registration at the first usable account: its resolved
    /// address, lifetime and binding.
    pub(super) fn select_account(&mut self) -> Result<ServerAccount, String> {
        let accounts = self.accounts();
        let mut reasons = Vec::new();
        for a in accounts {
            match account::resolve_uri(&a.server_uri) {
                Ok((addr, _secure)) => {
                    self.config.server = addr;
                    self.config.lifetime = a.lifetime;
                    // Queue mode is the client's own choice (a `Q` in its
                    // configured binding, Core §6.5), not the account's
                    // Binding (/1/x/7): it survives the account's.
                    let queue = self.config.binding.contains('Q');
                    self.config.binding = a.binding.clone();
                    if queue && !self.config.binding.contains('Q') {
                        self.config.binding.push('Q');
                    }
                    return Ok(a);
                }
                Err(e) => reasons.push(e),
            }
        }
        if reasons.is_empty() {
            Err("no LwM2M Server account".into())
        } else {
            Err(reasons.join("; "))
        }
    }

    /// The client has decided to bootstrap (Core §6.1.5: no usable account
    /// at start, registration retries exhausted (§6.2.1.1), or asked to):
    /// registration and observations in progress end, and the
    /// Bootstrap-Request goes out once the Client Hold Off Time of the
    /// Bootstrap-Server account (/0/x/11) has passed — at once when it is 0
    /// or absent. Meanwhile the state is [`RegistrationState::Bootstrapping`]
    /// and the Bootstrap-Server may start a server-initiated bootstrap
    /// (§6.1.4), which cancels the pending request. Without a
    /// Bootstrap-Server account this only reports
    /// [`ClientEvent::BootstrapFailed`].
    pub fn bootstrap(&mut self, now: Instant) {
        if self.config.bootstrap.is_none() {
            self.events.push_back(ClientEvent::BootstrapFailed {
                reason: "no Bootstrap-Server account configured".into(),
            });
            return;
        }
        let hold_off = self.client_hold_off_time();
        if hold_off.is_zero() {
            return self.send_bootstrap_request(now);
        }
        self.leave_registration();
        if let Some(id) = self.bs_exchange.take() {
            self.layer.cancel(id);
        }
        self.bs = None;
        tracing::info!(endpoint = %self.config.endpoint, hold_off_s = hold_off.as_secs(), "bootstrap decided; waiting the Client Hold Off Time");
        self.bs_retry_at = Some(now + hold_off);
        self.state = RegistrationState::Bootstrapping;
    }

    /// The Client Hold Off Time (/0/x/11) of the Bootstrap-Server account in
    /// the store; 0 when absent. A negative value is not a wait: 0.
    fn client_hold_off_time(&self) -> Duration {
        let Some(instance) = account::instances_of(&self.store, SECURITY_OBJECT)
            .into_iter()
            .find(|i| is_bootstrap_instance(&self.store, *i))
        else {
            return Duration::ZERO;
        };
        let path = Path::resource(SECURITY_OBJECT, instance, CLIENT_HOLD_OFF_TIME);
        match self.store.get(&path) {
            Some(Value::Integer(s)) if *s > 0 => Duration::from_secs(s.unsigned_abs()),
            Some(Value::Unsigned(s)) => Duration::from_secs(*s),
            Some(Value::Integer(s)) if *s < 0 => {
                tracing::warn!(endpoint = %self.config.endpoint, %path, value = s, "negative Client Hold Off Time taken as 0");
                Duration::ZERO
            }
            _ => Duration::ZERO,
        }
    }

    /// Client-initiated bootstrap (Core §6.1.5): sends Bootstrap-Request
    /// `POST /bs?ep={name}[&pct={format}]` to the Bootstrap-Server and serves
    /// its operations until Bootstrap-Finish. Registration and observations
    /// in progress end. Called when the hold-off (or a retry's back-off) is
    /// over: retries after a failed bootstrap wait the back-off only.
    pub(super) fn send_bootstrap_request(&mut self, now: Instant) {
        let Some(bs) = self.config.bootstrap.clone() else {
            return;
        };
        self.leave_registration();
        if let Some(id) = self.bs_exchange.take() {
            self.layer.cancel(id);
        }
        self.bs_retry_at = None;
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(RequestType::Post);
        options::add_strings(&mut p, CoapOption::UriPath, &["bs"]);
        let mut query = vec![format!("ep={}", self.config.endpoint)];
        if let Some(f) = bs.preferred_format {
            query.push(format!("pct={}", f.code()));
        }
        options::add_strings(&mut p, CoapOption::UriQuery, &query);
        tracing::info!(endpoint = %self.config.endpoint, server = %bs.server, "Bootstrap-Request");
        let id = self.layer.send(now, bs.server, p, true);
        self.bs_exchange = Some(id);
        self.open_session(now, &bs);
    }

    /// Ends registration activity (for bootstrap): no Register/Update in
    /// flight or due, no observations.
    fn leave_registration(&mut self) {
        if let Some((id, _)) = self.reg_exchange.take() {
            self.layer.cancel(id);
        }
        for (id, _) in self.notify_exchanges.drain() {
            self.layer.cancel(id);
        }
        self.observations.clear();
        self.next_update = None;
        self.retry_at = None;
        self.location = None;
    }

    fn open_session(&mut self, now: Instant, bs: &BootstrapConfig) {
        self.bs = Some(BootstrapSession {
            staged: self.store.clone(),
            touched: BTreeSet::new(),
            deadline: now + bs.finish_timeout,
        });
        self.state = RegistrationState::Bootstrapping;
    }

    /// The transport could not reach the server (a DTLS handshake failure,
    /// an ICMP error): counts as a failed Register or bootstrap attempt.
    pub fn registration_failed_transport(&mut self, now: Instant, reason: impl Into<String>) {
        let reason = reason.into();
        match self.state {
            RegistrationState::Bootstrapping => self.bootstrap_failed(now, reason),
            RegistrationState::Registering | RegistrationState::Registered { .. } => {
                if let Some((id, _)) = self.reg_exchange.take() {
                    self.layer.cancel(id);
                }
                self.fail(now, reason);
            }
            _ => self.fail(now, reason),
        }
    }

    /// The Bootstrap-Request was answered (or not).
    pub(super) fn bootstrap_request_outcome(
        &mut self,
        now: Instant,
        result: Result<Packet, String>,
    ) {
        self.bs_exchange = None;
        match result {
            Ok(m) if code::to_number(m.header.code.into()) == 204 => {
                tracing::info!(endpoint = %self.config.endpoint, "Bootstrap-Request accepted");
            }
            Ok(m) => {
                let c = code::to_number(m.header.code.into());
                let reason = format!("Bootstrap-Request refused with {}.{:02}", c / 100, c % 100);
                self.bootstrap_failed(now, reason);
            }
            Err(reason) => self.bootstrap_failed(now, format!("Bootstrap-Request: {reason}")),
        }
    }

    /// Bootstrap failed: the staged changes are dropped and the request is
    /// retried after the back-off.
    pub(super) fn bootstrap_failed(&mut self, now: Instant, reason: String) {
        tracing::warn!(endpoint = %self.config.endpoint, %reason, "bootstrap failed");
        self.bs = None;
        if let Some(id) = self.bs_exchange.take() {
            self.layer.cancel(id);
        }
        let backoff = self.config.retry.backoff(self.bs_failures);
        self.bs_failures += 1;
        self.bs_retry_at = Some(now + backoff);
        self.state = RegistrationState::Failed {
            reason: reason.clone(),
        };
        self.events
            .push_back(ClientEvent::BootstrapFailed { reason });
    }

    /// Whether a request from `peer` is for the bootstrap interface.
    pub(super) fn is_bootstrap_peer(&self, peer: SocketAddr) -> bool {
        self.config.bootstrap.as_ref().is_some_and(|bs| {
            bs.server == peer && (self.bs.is_some() || peer != self.config.server)
        })
    }

    /// Answers a request from the Bootstrap-Server; a request outside a
    /// session opens one (server-initiated bootstrap, Core §6.1.4).
    pub(super) fn serve_bootstrap(
        &mut self,
        now: Instant,
        message: &Packet,
    ) -> (Packet, AfterReply) {
        let Some(bs) = self.config.bootstrap.clone() else {
            return (response(403), AfterReply::Nothing);
        };
        if self.bs.is_none() {
            tracing::info!(endpoint = %self.config.endpoint, "server-initiated bootstrap");
            self.leave_registration();
            // A Bootstrap-Request waiting out the Client Hold Off Time is
            // not needed any more: the server came first.
            self.bs_retry_at = None;
            self.open_session(now, &bs);
        }
        if let Some(s) = self.bs.as_mut() {
            s.deadline = now + bs.finish_timeout;
        }
        let result = self.bootstrap_operation(message, &bs);
        match result {
            Ok((p, after)) => (p, after),
            Err((c, diagnostic)) => {
                tracing::debug!(code = c, %diagnostic, path = %options::uri_path_string(message), "bootstrap operation refused");
                let mut p = response(c);
                p.payload = diagnostic.into_bytes();
                (p, AfterReply::Nothing)
            }
        }
    }

    fn bootstrap_operation(
        &mut self,
        message: &Packet,
        bs: &BootstrapConfig,
    ) -> Result<(Packet, AfterReply), Refusal> {
        let method = match message.header.code {
            MessageClass::Request(m) => m,
            _ => return Err(refuse(400, "not a request")),
        };
        let segments = options::strings(message, CoapOption::UriPath);
        if segments == ["bs"] {
            return match method {
                RequestType::Post => self.bootstrap_finish(bs),
                _ => Err(refuse(405, "only POST /bs (Bootstrap-Finish)")),
            };
        }
        let path = Path::from_segments(&segments).map_err(|e| refuse(400, e.to_string()))?;
        match method {
            RequestType::Get
                if options::accept(message) == Some(ContentFormat::LinkFormat.code()) =>
            {
                self.bootstrap_discover(&path)
                    .map(|p| (p, AfterReply::Nothing))
            }
            RequestType::Get => self
                .bootstrap_read(&path, message)
                .map(|p| (p, AfterReply::Nothing)),
            RequestType::Put => self
                .bootstrap_write(&path, message, bs)
                .map(|p| (p, AfterReply::Nothing)),
            RequestType::Delete => self
                .bootstrap_delete(&path, bs)
                .map(|p| (p, AfterReply::Nothing)),
            other => Err(refuse(
                405,
                format!("{other:?} is not a Bootstrap Interface operation"),
            )),
        }
    }

    fn staged(&mut self) -> Result<&mut BootstrapSession, Refusal> {
        self.bs
            .as_mut()
            .ok_or_else(|| refuse(500, "no bootstrap session"))
    }

    /// Bootstrap-Discover (Core §6.1.7.3): `</>;lwm2m=1.1` then the objects
    /// and instances, Security instances with `ssid` (LwM2M Server accounts)
    /// and `uri`, Server instances with `ssid`.
    fn bootstrap_discover(&mut self, path: &Path) -> Result<Packet, Refusal> {
        if path.depth() > 1 {
            return Err(refuse(400, "Bootstrap-Discover targets / or an object"));
        }
        let registry = self.config.registry.clone();
        let version = self.config.lwm2m_version.clone();
        let staged = &self.staged()?.staged;
        let mut links = Vec::new();
        if path.depth() == 0 {
            links.push(Link::new("/").with("lwm2m", version));
        } else if registry
            .object(path.object_id().unwrap_or_default())
            .is_none()
        {
            return Err(refuse(404, format!("object {path} is not supported")));
        }
        for def in registry.objects() {
            if path.depth() == 1 && path.object_id() != Some(def.id) {
                continue;
            }
            let instances = account::instances_of(staged, def.id);
            if instances.is_empty() {
                let mut link = Link::new(format!("/{}", def.id));
                if def.version != "1.0" && !def.version.is_empty() {
                    link = link.with("ver", def.version.clone());
                }
                links.push(link);
                continue;
            }
            for i in instances {
                let mut link = Link::new(Path::instance(def.id, i).to_string());
                let value = |r| staged.get(&Path::resource(def.id, i, r));
                match def.id {
                    SECURITY_OBJECT => {
                        if !is_bootstrap_instance(staged, i) {
                            if let Some(v) = value(security::SHORT_SERVER_ID) {
                                link = link.with("ssid", v.to_text());
                            }
                        }
                        if let Some(Value::String(uri)) = value(security::SERVER_URI) {
                            link = link.with("uri", uri.clone());
                        }
                    }
                    SERVER_OBJECT => {
                        if let Some(v) = value(account::server::SHORT_SERVER_ID) {
                            link = link.with("ssid", v.to_text());
                        }
                    }
                    _ => {}
                }
                links.push(link);
            }
        }
        let mut p = response(205);
        options::set_uint(
            &mut p,
            CoapOption::ContentFormat,
            u32::from(ContentFormat::LinkFormat.code()),
        );
        p.payload = encode_links(&links).into_bytes();
        Ok(p)
    }

    /// Bootstrap-Read (Core §6.1.7.2): LwM2M 1.1 only, and only of the
    /// Server and Access Control objects — never of Security, which holds keys.
    fn bootstrap_read(&mut self, path: &Path, message: &Packet) -> Result<Packet, Refusal> {
        let version_ok = self
            .config
            .lwm2m_version
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .is_some_and(|v| v >= (1, 1));
        if !version_ok {
            return Err(refuse(405, "Bootstrap-Read is an LwM2M 1.1 operation"));
        }
        if !matches!(
            path.object_id(),
            Some(SERVER_OBJECT | ACCESS_CONTROL_OBJECT)
        ) {
            return Err(refuse(
                405,
                format!("Bootstrap-Read of {path}: only /1 and /2 may be read"),
            ));
        }
        let registry = self.config.registry.clone();
        // A single-server device without the Access Control object has no
        // /2 to read (Core §6.1.7.2 restricts the targets, it does not make
        // the object exist): 4.04, not an empty 2.05.
        let object = path.object_id().unwrap_or_default();
        if registry.object(object).is_none() {
            return Err(refuse(404, format!("object {object} is not supported")));
        }
        let preferred = self.config.preferred_format;
        let staged = &self.staged()?.staged;
        if path.depth() >= 2
            && !staged
                .instances()
                .any(|i| i.contains(path) || path.contains(&i))
        {
            return Err(refuse(404, format!("{path} does not exist")));
        }
        let records = staged.read(path);
        if path.depth() >= 3 && records.is_empty() {
            return Err(refuse(404, format!("{path} has no value")));
        }
        let format = match options::accept(message) {
            Some(c) => ContentFormat::from_code(c)
                .filter(|f| *f != ContentFormat::LinkFormat)
                .ok_or_else(|| refuse(406, format!("Accept {c} is not supported")))?,
            None => match preferred {
                f if f.carries_single_value() || f == ContentFormat::LinkFormat => {
                    ContentFormat::Tlv
                }
                f => f,
            },
        };
        let payload = format::encode(format, path, &records, &registry)
            .map_err(|e| refuse(406, e.to_string()))?;
        let mut p = response(205);
        options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(format.code()));
        p.payload = payload;
        Ok(p)
    }

    /// Bootstrap-Write (Core §6.1.7.4): creates or writes instances whether
    /// or not they exist, ignoring the resources' DM access rights. Applied to
    /// a scratch copy first; any problem leaves the staged store untouched.
    fn bootstrap_write(
        &mut self,
        path: &Path,
        message: &Packet,
        bs: &BootstrapConfig,
    ) -> Result<Packet, Refusal> {
        if path.depth() == 0 || path.depth() > 3 {
            return Err(refuse(
                400,
                "Bootstrap-Write targets an object, instance or resource",
            ));
        }
        let registry = self.config.registry.clone();
        let object = path.object_id().unwrap_or_default();
        if registry.object(object).is_none() {
            return Err(refuse(400, format!("object {object} is not supported")));
        }
        let cf = options::content_format(message)
            .ok_or_else(|| refuse(400, "Bootstrap-Write without a Content-Format"))?;
        let format = ContentFormat::from_code(cf)
            .filter(|f| *f != ContentFormat::LinkFormat)
            .ok_or_else(|| refuse(415, format!("Content-Format {cf} is not supported")))?;
        let records = format::decode(format, path, &message.payload, &registry)
            .map_err(|e| refuse(400, e.to_string()))?;
        if records.is_empty() {
            return Err(refuse(400, "Bootstrap-Write with no values"));
        }
        for r in &records {
            if !path.contains(&r.path) || r.path.depth() < 3 {
                return Err(refuse(
                    400,
                    format!("{} is not a resource below {path}", r.path),
                ));
            }
            let def = registry
                .resource(&r.path)
                .ok_or_else(|| refuse(400, format!("{} is not in the object model", r.path)))?;
            if !r.value.is_of_type(def.kind) {
                return Err(refuse(
                    400,
                    format!(
                        "{}: expected {}, got {}",
                        r.path,
                        def.kind.ddf_name(),
                        r.value.type_name()
                    ),
                ));
            }
        }
        let session = self.staged()?;
        let mut scratch = session.staged.clone();
        let mut instances: Vec<u16> = records
            .iter()
            .filter_map(|r| r.path.instance_id())
            .collect();
        instances.dedup();
        for r in &records {
            if let Some(i) = r.path.instance_id() {
                scratch.create_instance(object, i);
            }
            if r.path.depth() == 3 && registry.resource(&r.path).is_some_and(|d| d.multiple) {
                scratch.clear(&r.path);
            }
        }
        for r in records {
            scratch.set(r.path, r.value);
        }
        if object == SECURITY_OBJECT && path.depth() <= 2 {
            for i in &instances {
                account::check_security_instance(&scratch, *i, &bs.supported_modes)
                    .map_err(|e| refuse(400, e.to_string()))?;
            }
        }
        session.staged = scratch;
        session.touched.insert(object);
        Ok(response(204))
    }

    /// Bootstrap-Delete (Core §6.1.7.5): `/` removes every instance except the
    /// Bootstrap-Server account and the Device object (and objects the device
    /// keeps, see [`BootstrapConfig::deletable_objects`]); `/0` every Security
    /// instance but the Bootstrap-Server's; deleting that account is 4.00.
    fn bootstrap_delete(&mut self, path: &Path, bs: &BootstrapConfig) -> Result<Packet, Refusal> {
        if path.depth() > 2 {
            return Err(refuse(
                400,
                "Bootstrap-Delete targets /, an object or an instance",
            ));
        }
        let registry = self.config.registry.clone();
        let session = self.staged()?;
        let staged = &mut session.staged;
        let objects: Vec<u16> = match path.object_id() {
            None => {
                let mut v = vec![SECURITY_OBJECT, SERVER_OBJECT, ACCESS_CONTROL_OBJECT];
                v.extend(bs.deletable_objects.iter().filter(|o| **o != DEVICE_OBJECT));
                v
            }
            Some(DEVICE_OBJECT) => {
                return Err(refuse(400, "the Device object cannot be deleted"));
            }
            Some(o) if registry.object(o).is_none() => {
                return Err(refuse(400, format!("object {o} is not supported")));
            }
            Some(o) => vec![o],
        };
        if let Some(i) = path.instance_id() {
            let o = objects[0];
            if o == SECURITY_OBJECT && is_bootstrap_instance(staged, i) {
                return Err(refuse(
                    400,
                    format!("{path} is the Bootstrap-Server account"),
                ));
            }
            staged.delete_instance(o, i);
        } else {
            for o in &objects {
                for i in account::instances_of(staged, *o) {
                    if *o == SECURITY_OBJECT && is_bootstrap_instance(staged, i) {
                        continue;
                    }
                    staged.delete_instance(*o, i);
                }
            }
        }
        session.touched.extend(objects);
        Ok(response(202))
    }

    /// Bootstrap-Finish (Core §6.1.7.6): validates the staged configuration
    /// (4.06 Not Acceptable when inconsistent) and commits it.
    fn bootstrap_finish(&mut self, bs: &BootstrapConfig) -> Result<(Packet, AfterReply), Refusal> {
        let session = self
            .bs
            .as_ref()
            .ok_or_else(|| refuse(500, "no bootstrap session"))?;
        account::validate(&session.staged, &bs.supported_modes)
            .map_err(|e| refuse(406, e.to_string()))?;
        let Some(session) = self.bs.take() else {
            return Err(refuse(500, "no bootstrap session"));
        };
        let mut provisioned = Vec::new();
        for object in &session.touched {
            for i in account::instances_of(&self.store, *object) {
                self.store.delete_instance(*object, i);
            }
            for i in account::instances_of(&session.staged, *object) {
                let instance = Path::instance(*object, i);
                self.store.create_instance(*object, i);
                for r in session.staged.read(&instance) {
                    self.store.set(r.path, r.value);
                }
                provisioned.push(instance);
            }
        }
        self.apply_account_defaults();
        self.objects_changed = true;
        self.bs_failures = 0;
        self.failures = 0;
        if let Some(id) = self.bs_exchange.take() {
            self.layer.cancel(id);
        }
        let accounts = self.accounts();
        tracing::info!(endpoint = %self.config.endpoint, accounts = accounts.len(), "Bootstrap-Finish: configuration committed");
        self.events.push_back(ClientEvent::Provisioned {
            instances: provisioned,
        });
        self.events
            .push_back(ClientEvent::BootstrapFinished { accounts });
        self.state = RegistrationState::Idle;
        Ok((response(204), AfterReply::Register))
    }

    /// After Bootstrap-Finish was answered: register with the new account.
    pub(super) fn register_after_bootstrap(&mut self, now: Instant) {
        match self.select_account() {
            Ok(a) => {
                tracing::info!(endpoint = %self.config.endpoint, ssid = a.short_server_id, uri = %a.server_uri, "registering with the bootstrapped account");
                self.send_register(now);
            }
            Err(reason) => self.fail(now, reason),
        }
    }
}
