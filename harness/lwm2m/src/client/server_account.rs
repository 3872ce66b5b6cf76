//! What the client does when its LwM2M Server account (the Server object
//! instance, /1/x, LwM2M 1.1 Core Appendix E.2) is written or executed:
//!
//! - a new Lifetime (/1/x/1) is sent at once in an Update with `lt=`
//!   (Core §6.2.2: the client sends an Update "when ... the Lifetime or
//!   Binding of the LwM2M Server Object Instance changes"; Transport §6.2.2
//!   Update carries `lt` only when it changed), and Updates then go out at
//!   half the new lifetime;
//! - Execute of Registration Update Trigger (/1/x/8): "the LwM2M Client MUST
//!   perform an Update operation with this LwM2M Server" (E.2, resource 8);
//! - Execute of Bootstrap-Request Trigger (/1/x/9): "When this Resource is
//!   executed the LwM2M Client MUST initiate a 'Client Initiated
//!   Bootstrap' procedure in using the LwM2M Bootstrap-Server Account"
//!   (E.2, resource 9; Core §6.1.3.4 Server Initiated Bootstrap): answered
//!   2.04, then the client bootstraps ([`Client::bootstrap`]) and registers
//!   with what it was given. A client without a Bootstrap-Server account
//!   answers 4.00, as Leshan's client does, rather than acknowledging a
//!   bootstrap it cannot start;
//! - Execute of Disable (/1/x/4): the client answers, de-registers, ignores
//!   that server for Disable Timeout (/1/x/5, 86400 s when absent, E.2
//!   resource 5) and then registers again (E.2, resource 4);
//! - Default Minimum / Maximum Period (/1/x/2, /1/x/3) are the pmin / pmax
//!   of an observation that has none from Write-Attributes (E.2, resources
//!   2 and 3; Core §5.1.2).
//!
//! The virtual meter holds one LwM2M Server account, so the account is the
//! first Server object instance in the store.

use std::time::{Duration, Instant};

use super::{registration, Client, RegistrationState};
use crate::path::Path;
use crate::server::Attributes;

/// The Server object (Core Appendix E.2).
pub const SERVER_OBJECT: u16 = 1;
/// /1/x/1 Lifetime.
pub const LIFETIME: u16 = 1;
/// /1/x/2 Default Minimum Period.
pub const DEFAULT_MIN_PERIOD: u16 = 2;
/// /1/x/3 Default Maximum Period.
pub const DEFAULT_MAX_PERIOD: u16 = 3;
/// /1/x/4 Disable (Execute).
pub const DISABLE: u16 = 4;
/// /1/x/5 Disable Timeout.
pub const DISABLE_TIMEOUT: u16 = 5;
/// /1/x/8 Registration Update Trigger (Execute).
pub const UPDATE_TRIGGER: u16 = 8;
/// /1/x/9 Bootstrap-Request Trigger (Execute).
pub const BOOTSTRAP_TRIGGER: u16 = 9;

/// Disable Timeout when /1/x/5 is absent (Core Appendix E.2: "If not set,
/// a default value of 86400 (1 day) will be used").
pub const DEFAULT_DISABLE_TIMEOUT: Duration = Duration::from_secs(86_400);

/// An Execute on the account that acts once its response has gone out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AccountAction {
    Update,
    Disable,
    Bootstrap,
}

impl Client {
    /// Resources (by id, with their values) that every Server object
    /// instance has when whoever made it — the Bootstrap-Server, a restored
    /// account — left them out: what a device's firmware gives its accounts,
    /// as an implementation with compiled-in resources does. Applied now,
    /// after each Bootstrap-Finish and to accounts loaded later; a value
    /// already there is kept.
    pub fn set_account_defaults(&mut self, defaults: Vec<(u16, crate::value::Value)>) {
        self.account_defaults = defaults;
        self.apply_account_defaults();
    }

    pub(super) fn apply_account_defaults(&mut self) {
        let instances: Vec<Path> = self
            .store
            .instances()
            .filter(|p| p.object_id() == Some(SERVER_OBJECT))
            .collect();
        for instance in instances {
            for (id, value) in &self.account_defaults {
                let Some(path) = instance.child(*id) else {
                    continue;
                };
                if self.store.get(&path).is_none() {
                    self.store.set(path, value.clone());
                }
            }
        }
    }

    /// The Server object instance of the client's account.
    pub(super) fn account_instance(&self) -> Option<u16> {
        self.store
            .instances()
            .find(|p| p.object_id() == Some(SERVER_OBJECT))
            .and_then(|p| p.instance_id())
    }

    fn account_resource(&self, resource: u16) -> Option<Path> {
        self.account_instance()
            .map(|i| Path::resource(SERVER_OBJECT, i, resource))
    }

    /// A whole-second value of the account's `resource`, when it holds one.
    fn account_seconds(&self, resource: u16) -> Option<u64> {
        let path = self.account_resource(resource)?;
        let v = self.store.get(&path)?.as_f64()?;
        (v >= 0.0 && v <= u32::MAX as f64).then_some(v as u64)
    }

    /// Which account action an Execute of `path` asks for, if any.
    pub(super) fn account_action(&self, path: &Path) -> Option<AccountAction> {
        if *path == self.account_resource(UPDATE_TRIGGER)? {
            Some(AccountAction::Update)
        } else if *path == self.account_resource(DISABLE)? {
            Some(AccountAction::Disable)
        } else if *path == self.account_resource(BOOTSTRAP_TRIGGER)? {
            Some(AccountAction::Bootstrap)
        } else {
            None
        }
    }

    /// After a server request was answered: a changed Lifetime or an
    /// Execute on the account takes effect (see the module doc).
    pub(super) fn after_account_request(&mut self, now: Instant, changed: &[Path]) {
        let lifetime_touched = self
            .account_resource(LIFETIME)
            .is_some_and(|l| changed.iter().any(|c| c.contains(&l)));
        if lifetime_touched {
            match self.account_seconds(LIFETIME).filter(|s| *s > 0) {
                Some(s) if Duration::from_secs(s) != self.config.lifetime => {
                    tracing::info!(endpoint = %self.config.endpoint, lifetime = s, "lifetime written; updating the registration");
                    self.config.lifetime = Duration::from_secs(s);
                    self.lifetime_changed = true;
                    self.update_soon(now);
                }
                _ => {}
            }
        }
        match self.pending_account_action.take() {
            Some(AccountAction::Update) => self.update_soon(now),
            Some(AccountAction::Disable) => self.disable(now),
            Some(AccountAction::Bootstrap) => {
                tracing::info!(endpoint = %self.config.endpoint, "Bootstrap-Request Trigger executed; bootstrapping");
                self.bootstrap(now);
            }
            None => {}
        }
    }

    /// Why an Execute of `path` cannot be carried out by this client, if
    /// it cannot: Bootstrap-Request Trigger without a Bootstrap-Server account.
    pub(super) fn account_action_refusal(&self, path: &Path) -> Option<String> {
        (self.account_action(path) == Some(AccountAction::Bootstrap)
            && self.config.bootstrap.is_none())
        .then(|| format!("{path}: no Bootstrap-Server account to bootstrap with"))
    }

    /// An Update now, or right after the registration request in flight.
    fn update_soon(&mut self, now: Instant) {
        self.update_pending = true;
        if self.reg_exchange.is_none() {
            self.trigger_update(now);
        }
    }

    /// Disable (/1/x/4): De-register, then register again after the
    /// Disable Timeout.
    fn disable(&mut self, now: Instant) {
        let timeout = self
            .account_seconds(DISABLE_TIMEOUT)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_DISABLE_TIMEOUT);
        tracing::info!(endpoint = %self.config.endpoint, ?timeout, "server account disabled");
        let until = now + timeout;
        self.stop(now);
        self.disabled_until = Some(until);
        if self.state == RegistrationState::Idle {
            self.retry_at = Some(until);
        }
    }

    /// Whether the account is disabled at `now`: its server's requests
    /// are ignored (E.2 resource 4: the client "MUST NOT send any message
    /// to the Server and ignore all the messages from the LwM2M Server for
    /// the period").
    pub(super) fn is_disabled(&self, now: Instant) -> bool {
        self.disabled_until.is_some_and(|t| now < t)
    }

    /// The De-register of a Disable was answered: register again when the
    /// Disable Timeout ends.
    pub(super) fn deregistered(&mut self) {
        if let Some(until) = self.disabled_until {
            self.retry_at = Some(until);
        }
    }

    /// The attributes in force for an observation of `path`: those written
    /// (see [`super::observe::effective`]), else the account's Default
    /// Minimum / Maximum Period.
    pub(super) fn observation_attributes(&self, path: &Path) -> Attributes {
        let mut a = super::observe::effective(&self.attributes, path);
        let period = |r| self.account_seconds(r).and_then(|s| u32::try_from(s).ok());
        if a.pmin.is_none() {
            a.pmin = period(DEFAULT_MIN_PERIOD);
        }
        if a.pmax.is_none() {
            a.pmax = period(DEFAULT_MAX_PERIOD).filter(|p| *p > 0);
        }
        a
    }

    /// The Update to send: with `lt=` when the lifetime changed since the
    /// last Register or Update.
    pub(super) fn update_packet(&mut self, location: &str) -> coap_lite::Packet {
        let lifetime = std::mem::take(&mut self.lifetime_changed).then_some(self.config.lifetime);
        self.update_pending = false;
        registration::update(location, &self.store, self.objects_changed, lifetime)
    }

    /// Whether an Update is owed at once (the object list, the lifetime, or
    /// an Update Trigger since the last Register/Update).
    pub(super) fn update_owed(&self) -> bool {
        self.objects_changed || self.lifetime_changed || self.update_pending
    }

    /// The registration request in flight is this kind.
    #[cfg(test)]
    fn in_flight(&self) -> Option<super::RegOp> {
        self.reg_exchange.map(|(_, op)| op)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

    use super::*;
    use crate::client::{ClientConfig, ClientEvent, ObjectStore};
    use crate::coap::options;
    use crate::format::ContentFormat;
    use crate::model::Registry;
    use crate::value::Value;

    fn server() -> SocketAddr {
        "127.0.0.1:5683".parse().unwrap()
    }

    fn registry() -> Registry {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects");
        Registry::load_dir(&dir).expect("fixtures/objects loads")
    }

    /// A client whose account is /1/1 (not /1/0, to show it is found),
    /// registered at /rd/1 with a 30 s lifetime.
    fn registered(extra: &[(u16, Value)]) -> (Client, Instant) {
        let registry = registry();
        let mut store = ObjectStore::new(registry.clone());
        store.set(Path::resource(1, 1, 0), Value::Integer(1));
        store.set(Path::resource(1, 1, 1), Value::Integer(30));
        store.set(Path::resource(1, 1, 7), Value::String("U".into()));
        for (r, v) in extra {
            store.set(Path::resource(1, 1, *r), v.clone());
        }
        store.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
        let t0 = Instant::now();
        let mut c = Client::new(
            ClientConfig {
                endpoint: "meter-1".into(),
                server: server(),
                lifetime: Duration::from_secs(30),
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
        c.start(t0);
        let register = sent(&mut c).remove(0);
        let mut created = reply(&register, ResponseType::Created);
        created.add_option(CoapOption::LocationPath, b"rd".to_vec());
        created.add_option(CoapOption::LocationPath, b"1".to_vec());
        c.handle_datagram(t0, server(), &created.to_bytes().unwrap());
        assert!(matches!(c.state(), RegistrationState::Registered { .. }));
        while c.poll_event().is_some() {}
        (c, t0)
    }

    fn sent(c: &mut Client) -> Vec<Packet> {
        std::iter::from_fn(|| c.poll_transmit())
            .map(|t| Packet::from_bytes(&t.payload).unwrap())
            .collect()
    }

    fn reply(to: &Packet, code: ResponseType) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Acknowledgement);
        p.header.code = MessageClass::Response(code);
        p.header.message_id = to.header.message_id;
        p.set_token(to.get_token().to_vec());
        p
    }

    fn request(method: RequestType, mid: u16, path: &str, text: Option<&str>) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(method);
        p.header.message_id = mid;
        p.set_token(vec![mid as u8]);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        if let Some(t) = text {
            options::set_uint(&mut p, CoapOption::ContentFormat, 0);
            p.payload = t.as_bytes().to_vec();
        }
        p.to_bytes().unwrap()
    }

    fn code_of(p: &Packet) -> u8 {
        p.header.code.into()
    }

    fn queries(p: &Packet) -> Vec<String> {
        options::strings(p, CoapOption::UriQuery)
    }

    #[test]
    fn a_written_lifetime_goes_out_at_once_in_an_update_with_lt() {
        // Core §6.2.2 / Transport §6.2.2: Update `POST /rd/1?lt=40` after
        // the 2.04 to the Write of /1/1/1 (ETS int-102).
        let (mut c, t0) = registered(&[]);
        let t = t0 + Duration::from_secs(2);
        c.handle_datagram(
            t,
            server(),
            &request(RequestType::Put, 0x10, "/1/1/1", Some("40")),
        );
        let out = sent(&mut c);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(code_of(&out[0]), 0x44, "the Write is answered 2.04 first");
        assert_eq!(options::uri_path_string(&out[1]), "/rd/1");
        assert_eq!(queries(&out[1]), ["lt=40"]);
        assert_eq!(c.config().lifetime, Duration::from_secs(40));
        // Answered: the next Update is due at half the new lifetime, without lt.
        c.handle_datagram(
            t,
            server(),
            &reply(&out[1], ResponseType::Changed).to_bytes().unwrap(),
        );
        let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert!(events.contains(&ClientEvent::Updated), "{events:?}");
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(20)));
        c.handle_timeout(t + Duration::from_secs(20));
        let next = sent(&mut c);
        assert_eq!(options::uri_path_string(&next[0]), "/rd/1");
        assert!(queries(&next[0]).is_empty(), "{:?}", queries(&next[0]));
    }

    #[test]
    fn writing_the_same_lifetime_or_another_resource_sends_no_update() {
        let (mut c, t0) = registered(&[]);
        c.handle_datagram(
            t0,
            server(),
            &request(RequestType::Put, 0x11, "/1/1/1", Some("30")),
        );
        c.handle_datagram(
            t0,
            server(),
            &request(RequestType::Put, 0x12, "/1/1/6", Some("1")),
        );
        let out = sent(&mut c);
        assert_eq!(out.len(), 2, "two answers and nothing else: {out:?}");
        assert!(out.iter().all(|p| code_of(p) == 0x44));
    }

    #[test]
    fn a_lifetime_written_while_an_update_is_in_flight_follows_it() {
        let (mut c, t0) = registered(&[]);
        c.trigger_update(t0);
        let first = sent(&mut c).remove(0);
        assert_eq!(c.in_flight(), Some(crate::client::RegOp::Update));
        c.handle_datagram(
            t0,
            server(),
            &request(RequestType::Put, 0x13, "/1/1/1", Some("90")),
        );
        assert_eq!(
            sent(&mut c).len(),
            1,
            "only the 2.04: one registration request at a time"
        );
        c.handle_datagram(
            t0,
            server(),
            &reply(&first, ResponseType::Changed).to_bytes().unwrap(),
        );
        c.handle_timeout(t0);
        let out = sent(&mut c);
        assert_eq!(queries(&out[0]), ["lt=90"], "{out:?}");
    }

    #[test]
    fn executing_registration_update_trigger_sends_an_update() {
        // Core Appendix E.2, resource 8 (ETS int-104).
        let (mut c, t0) = registered(&[]);
        c.handle_datagram(
            t0,
            server(),
            &request(RequestType::Post, 0x20, "/1/1/8", None),
        );
        let out = sent(&mut c);
        assert_eq!(code_of(&out[0]), 0x44);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(code_of(&out[1]), 0x02, "POST");
        assert_eq!(options::uri_path_string(&out[1]), "/rd/1");
        assert!(queries(&out[1]).is_empty());
    }

    #[test]
    fn disable_deregisters_ignores_the_server_and_registers_after_the_timeout() {
        // Core Appendix E.2, resources 4 and 5 (ETS int-103).
        let (mut c, t0) = registered(&[(5, Value::Integer(7))]);
        c.handle_datagram(
            t0,
            server(),
            &request(RequestType::Post, 0x30, "/1/1/4", None),
        );
        let out = sent(&mut c);
        assert_eq!(code_of(&out[0]), 0x44, "Execute answered first");
        assert_eq!(code_of(&out[1]), 0x04, "then DELETE /rd/1");
        assert_eq!(options::uri_path_string(&out[1]), "/rd/1");
        c.handle_datagram(
            t0,
            server(),
            &reply(&out[1], ResponseType::Deleted).to_bytes().unwrap(),
        );
        assert_eq!(c.state(), &RegistrationState::Idle);
        // Disabled: a Read from the server is ignored.
        let t1 = t0 + Duration::from_secs(3);
        c.handle_datagram(
            t1,
            server(),
            &request(RequestType::Get, 0x31, "/3/0/0", None),
        );
        assert!(
            sent(&mut c).is_empty(),
            "requests are ignored while disabled"
        );
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(7)));
        c.handle_timeout(t0 + Duration::from_secs(7));
        let out = sent(&mut c);
        assert_eq!(options::uri_path_string(&out[0]), "/rd");
        assert_eq!(c.state(), &RegistrationState::Registering);
    }

    #[test]
    fn disable_without_a_timeout_waits_a_day() {
        let (mut c, t0) = registered(&[]);
        c.handle_datagram(
            t0,
            server(),
            &request(RequestType::Post, 0x32, "/1/1/4", None),
        );
        let out = sent(&mut c);
        c.handle_datagram(
            t0,
            server(),
            &reply(&out[1], ResponseType::Deleted).to_bytes().unwrap(),
        );
        assert_eq!(c.poll_timeout(), Some(t0 + DEFAULT_DISABLE_TIMEOUT));
    }

    #[test]
    fn account_defaults_fill_only_what_the_account_lacks() {
        let (mut c, _) = registered(&[(5, Value::Integer(7))]);
        c.set_account_defaults(vec![(2, Value::Integer(0)), (5, Value::Integer(86_400))]);
        assert_eq!(
            c.store().get(&Path::resource(1, 1, 2)),
            Some(&Value::Integer(0))
        );
        assert_eq!(
            c.store().get(&Path::resource(1, 1, 5)),
            Some(&Value::Integer(7))
        );
        // An account loaded later (as from NV) gets them too.
        let mut account = crate::bootstrap::ServerAccount::nosec(9, "coap://127.0.0.1:5683");
        account.server_instance = 3;
        c.load_accounts(std::slice::from_ref(&account));
        let p = account.server_path();
        assert_eq!(
            c.store().get(&p.child(5).unwrap()),
            Some(&Value::Integer(86_400))
        );
        assert_eq!(
            c.store().get(&p.child(2).unwrap()),
            Some(&Value::Integer(0))
        );
    }

    #[test]
    fn default_periods_apply_to_observations_without_attributes() {
        let (c, _) = registered(&[(2, Value::Integer(5)), (3, Value::Integer(60))]);
        let a = c.observation_attributes(&Path::resource(3, 0, 0));
        assert_eq!((a.pmin, a.pmax), (Some(5), Some(60)));
        let (c, _) = registered(&[(3, Value::Integer(0))]);
        let a = c.observation_attributes(&Path::resource(3, 0, 0));
        assert_eq!(
            (a.pmin, a.pmax),
            (None, None),
            "0: no default maximum period"
        );
    }
}
