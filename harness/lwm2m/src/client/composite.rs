//! The composite operations the client answers and the Send it makes
//! (LwM2M 1.1 Core §6.3.8 Read-Composite, §6.3.9 Write-Composite, §6.4.3
//! Observe-Composite, §6.4.4 Cancel Observation-Composite, §6.4.6 Send;
//! the wire forms are in [`crate::server::composite`]).
//!
//! How the client answers:
//! - FETCH / (Read-Composite, Observe-Composite with Observe 0, their
//!   cancel with Observe 1): the list's Content-Format must be SenML JSON
//!   or CBOR, else 4.15; Accept, when given, too, else 4.06 (no Accept: the
//!   answer comes in the list's format). A listed path the device does not
//!   have, or cannot read (an executable resource, the Security object), is
//!   left out of the answer, so one absent optional resource does not cost
//!   the server the rest of the readings — the ETS's "Read-Composite -
//!   Partial Presence" (int-236) and "Partially Successful Read-Composite"
//!   (int-281) expect 2.05 with the rest; none of them readable is 4.04.
//!   `/` in the list reads every readable value the device has (int-235).
//! - Access Control (Core §7.3), while the client holds two or more Server
//!   accounts ([`super::access_control::applies`]): the composite reads
//!   are "treated as non-atomic and handled as best effort by the client.
//!   That is, if any of the requested resources do not have a valid value
//!   to return, they will not be included in the response" (§6.3.8), so a
//!   listed path on an instance the server has no Read right on (§7.3.2's
//!   table: R for Read and Observe) is left out like an absent one, and an
//!   Object or `/` in the list gives only the instances it may read
//!   (§7.3.2.4). When nothing is left and something was left out for want
//!   of the right, the answer is the 4.01 Unauthorized a Read of that path
//!   alone gets (§7.3.2) rather than 4.04, which would say the path is
//!   absent; the TS names no code for a composite read with nothing to
//!   return. A notification of an Observe-Composite carries only what the
//!   observer may read, and none goes out while it may read none of it
//!   (§7.3.2.5: "the Client MUST NOT send the Notify operation").
//!   Write-Composite "is atomic and cannot have partial success ... before
//!   processing Write-Composite, the client MUST ensure that all addressed
//!   objects exist and that the Server has write access to those Objects
//!   and Resources" (§6.3.9): one record on an instance without the W
//!   right refuses the whole request with 4.01, nothing written.
//! - iPATCH / (Write-Composite) is all or nothing: every record is checked
//!   (a resource, in an existing instance, writable by the model) before
//!   any value is set, and the first that fails refuses the whole request
//!   with its code — a meter must not be left half-configured. A body sent
//!   in Block1 blocks is put together first (2.31 Continue for each block
//!   but the last) and acted on once, whole.
//! - Send ([`Client::send`]) goes Confirmable to the server as POST /dp,
//!   only while registered and while the account's Mute Send (/1/x/23) is
//!   false; its answer comes as [`ClientEvent::SendAnswered`]. An account
//!   without Mute Send does not Send: "If true or the Resource is not
//!   present, the LwM2M Client Send command capability is de-activated"
//!   (LwM2M 1.1 object 1 definition, resource 23).
//!
//! A device without these operations is what [`Client::set_composite_support`]
//! makes the client: FETCH and iPATCH get 4.05 Method Not Allowed, and
//! [`Client::send`] refuses.

use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::observe::Observation;
use super::{Client, ClientEvent, RegistrationState};
use crate::coap::{code, options, ExchangeId};
use crate::format::{ContentFormat, Record};
use crate::path::Path;
use crate::server::composite::{self as wire, is_composite_format};

/// Mute Send, in the LwM2M Server object (LwM2M 1.1 Core, Appendix E.2, /1/x/23).
pub const MUTE_SEND: u16 = 23;

type Refusal = (u16, String);

fn refuse(code: u16, diagnostic: impl Into<String>) -> Refusal {
    (code, diagnostic.into())
}

/// The client's composite state: whether it offers the operations, and the
/// Sends awaiting their answer.
#[derive(Debug)]
pub(super) struct CompositeState {
    supported: bool,
    sends: Vec<ExchangeId>,
}

impl Default for CompositeState {
    fn default() -> Self {
        CompositeState {
            supported: true,
            sends: Vec::new(),
        }
    }
}

/// Why [`Client::send`] sent nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("not registered: Send belongs to a registration (LwM2M 1.1 Core §6.4.6)")]
    NotRegistered,
    #[error("Mute Send (/1/{0}/23) is true or absent: Send is de-activated")]
    Muted(u16),
    #[error("this client does not offer Send")]
    Unsupported,
    #[error("nothing to send")]
    Empty,
    #[error("{0}")]
    Format(String),
}

impl Client {
    /// Fault injection and devices that predate LwM2M 1.1: with `false`
    /// the client answers FETCH and iPATCH with 4.05 Method Not Allowed and
    /// never Sends. On by default.
    pub fn set_composite_support(&mut self, supported: bool) {
        self.composite.supported = supported;
    }

    /// Whether Send is muted: the account's Mute Send (/1/x/23) is true or
    /// absent (object 1, resource 23: "If true or the Resource is not
    /// present, the LwM2M Client Send command capability is de-activated").
    pub fn send_muted(&self) -> bool {
        self.account_instance()
            .map(|i| Path::resource(1, i, MUTE_SEND))
            .and_then(|p| self.store.get(&p).cloned())
            != Some(crate::value::Value::Boolean(false))
    }

    /// Sends the current values at `paths` (each a resource or wider) to
    /// the server with Send (Core §6.4.6): POST /dp, Confirmable, in
    /// `format` (SenML JSON or CBOR). Paths the device does not have are
    /// left out; nothing at all is [`SendError::Empty`].
    pub fn send(
        &mut self,
        now: Instant,
        paths: &[Path],
        format: ContentFormat,
    ) -> Result<ExchangeId, SendError> {
        if !self.composite.supported {
            return Err(SendError::Unsupported);
        }
        if !matches!(self.state, RegistrationState::Registered { .. }) {
            return Err(SendError::NotRegistered);
        }
        if self.send_muted() {
            return Err(SendError::Muted(self.account_instance().unwrap_or(0)));
        }
        let records = self.composite_records(paths).unwrap_or_default();
        if records.is_empty() {
            return Err(SendError::Empty);
        }
        let packet = wire::send_request(format, &records, &self.config.registry)
            .map_err(|e| SendError::Format(e.to_string()))?;
        let id = self.layer.send(now, self.config.server, packet, true);
        self.composite.sends.push(id);
        tracing::info!(records = records.len(), %format, "Send to /dp");
        Ok(id)
    }

    /// Whether `id` is a Send awaiting its answer.
    pub(super) fn is_send(&self, id: ExchangeId) -> bool {
        self.composite.sends.contains(&id)
    }

    /// The server answered a Send (`code`), or never did (`None`: timeout or Reset).
    pub(super) fn send_outcome(&mut self, id: ExchangeId, message: Option<&Packet>) {
        self.composite.sends.retain(|s| *s != id);
        let code = message.map(|m| code::to_number(m.header.code.into()));
        self.events.push_back(ClientEvent::SendAnswered { code });
    }

    /// The readable records at `paths` the device has (`/`: all of them);
    /// `None` when it has none. The Security and OSCORE objects are never
    /// read by an LwM2M Server (Core §7.1), so they are left out. This is
    /// what a Send carries: the client's own report, not a server's read.
    fn composite_records(&self, paths: &[Path]) -> Option<Vec<Record>> {
        let (records, _) = self.composite_gather(None, paths);
        (!records.is_empty()).then_some(records)
    }

    /// The readable records at `paths`, as the server at `viewer` may see
    /// them (`None`: no server's view, for Send), and the listed paths of
    /// which something was left out because that server has no Read right
    /// on it (Core §7.3.2; [`Client::hide_unreadable`] picks, so one rule
    /// serves Read, Observe and the composites). Each listed path is read
    /// on its own — best effort, §6.3.8 — and a record listed twice (`/3`
    /// and `/3/0/9`) is answered once.
    fn composite_gather(
        &self,
        viewer: Option<SocketAddr>,
        paths: &[Path],
    ) -> (Vec<Record>, Vec<Path>) {
        let registry = &self.config.registry;
        let hidden = |p: &Path| {
            p.object_id()
                .is_some_and(|o| crate::server::UNLISTED_OBJECTS.contains(&o))
        };
        let mut out: Vec<Record> = Vec::new();
        let mut withheld = Vec::new();
        for path in paths {
            if hidden(path) || (path.depth() > 0 && self.check_exists(path).is_err()) {
                continue;
            }
            let mut records: Vec<Record> = self
                .store
                .read(path)
                .into_iter()
                .filter(|r| !hidden(&r.path))
                .filter(|r| registry.resource(&r.path).is_none_or(|d| d.operations.read))
                .collect();
            if let Some(viewer) = viewer {
                let all = records.len();
                records = self.hide_unreadable(viewer, records);
                if records.len() < all {
                    withheld.push(*path);
                }
            }
            for r in records {
                if !out.iter().any(|o| o.path == r.path) {
                    out.push(r);
                }
            }
        }
        (out, withheld)
    }

    /// What a Read-Composite or Observe-Composite answers the server at
    /// `viewer`: the records it may read at `paths`, or why there are
    /// none — 4.01 when what is there was all left out for want of the
    /// Read right (Core §7.3.2), else 4.04.
    fn composite_read_records(
        &self,
        viewer: SocketAddr,
        paths: &[Path],
    ) -> Result<Vec<Record>, Refusal> {
        let (records, withheld) = self.composite_gather(Some(viewer), paths);
        if !records.is_empty() {
            if !withheld.is_empty() {
                tracing::debug!(%viewer, withheld = %wire::path_list(&withheld), "composite read: left out for want of the Read right");
            }
            return Ok(records);
        }
        if withheld.is_empty() {
            return Err(refuse(
                404,
                format!("none of {} can be read", wire::path_list(paths)),
            ));
        }
        let who = self
            .server_of(viewer)
            .map_or_else(|_| viewer.to_string(), |ssid| format!("server {ssid}"));
        Err(refuse(
            401,
            format!(
                "{who} has no Read right on {} (Access Control, Core §7.3)",
                wire::path_list(&withheld)
            ),
        ))
    }

    /// The encoded values of a composite observation or read, as the
    /// server at `viewer` may see them.
    pub(super) fn composite_payload(
        &self,
        viewer: SocketAddr,
        paths: &[Path],
        format: ContentFormat,
    ) -> Result<Vec<u8>, Refusal> {
        let records = self.composite_read_records(viewer, paths)?;
        wire::encode_records(format, &records, &self.config.registry).map_err(|e| {
            tracing::error!(error = %e, "encoding a composite answer failed");
            refuse(500, "encoding the answer failed")
        })
    }

    /// Whether a notification of the Observe-Composite of `paths` may go
    /// to `peer`: not while Access Control leaves it none of what is there
    /// (Core §7.3.2.5). With nothing there at all it may: the notification
    /// is then the 4.04 that ends the observation (RFC 7641 §4.2), as
    /// without Access Control.
    pub(super) fn may_notify_composite(&self, peer: SocketAddr, paths: &[Path]) -> bool {
        let (records, withheld) = self.composite_gather(Some(peer), paths);
        !records.is_empty() || withheld.is_empty()
    }

    /// What an observation currently covers: its path's values, or its
    /// composite paths' values as its observer may see them.
    pub(super) fn observed_records(&self, obs: &Observation) -> Vec<Record> {
        match &obs.composite {
            Some(paths) => self.composite_gather(Some(obs.peer), paths).0,
            None => self.store.read(&obs.path),
        }
    }

    /// The attributes that pace `obs` (Core §5.1.2). An Observe-Composite
    /// targets no one path, so it takes those of the paths it covers
    /// (each with what it inherits and the account's defaults, /1/x/2 and
    /// /1/x/3) together: the largest pmin, since a notification carries
    /// every path's value and may not come before any of them allows, and
    /// the smallest pmax, since one notification serves every path whose
    /// pmax is due. ETS int-304 paces an Observe-Composite by pmin/pmax
    /// written on one of its resources (/1/x/1) and int-310 by pmax on one
    /// of its objects (/3); with no attribute on any path the defaults rule.
    pub(super) fn pacing(&self, obs: &Observation) -> crate::server::Attributes {
        let Some(paths) = &obs.composite else {
            return self.observation_attributes(&obs.path);
        };
        let each: Vec<_> = paths
            .iter()
            .map(|p| self.observation_attributes(p))
            .collect();
        crate::server::Attributes {
            pmin: each.iter().filter_map(|a| a.pmin).max(),
            pmax: each.iter().filter_map(|a| a.pmax).min(),
            ..Default::default()
        }
    }

    /// A request on `/` that is a composite operation: its answer, `None`
    /// for anything else.
    pub(super) fn serve_composite(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Option<Result<Packet, Refusal>> {
        let method = match message.header.code {
            MessageClass::Request(m @ (RequestType::Fetch | RequestType::IPatch)) => m,
            _ => return None,
        };
        if !self.composite.supported {
            return Some(Err(refuse(405, format!("{method:?} is not supported"))));
        }
        Some(match method {
            RequestType::Fetch => self.read_composite(now, peer, message),
            _ => self.write_composite_blockwise(now, peer, message, changed),
        })
    }

    /// iPATCH / with its body whole, or in Block1 blocks (RFC 7959 §2.5;
    /// RFC 8132 §3.2 allows Block1 on iPATCH; the server sends a
    /// Write-Composite larger than one block so): reassembled by the
    /// client's Block1 inbox, like a Write's, each block but the last
    /// answered 2.31 Continue and the values set only once the last block
    /// makes the body whole, all or nothing as ever. The final answer
    /// echoes the last block's Block1 (§2.3).
    fn write_composite_blockwise(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        if self.block1_ignored {
            return self.write_composite(peer, message, changed);
        }
        match self.block1_inbox.handle(now, (peer, Path::ROOT), message) {
            crate::coap::block::Block1Outcome::Single => {
                self.write_composite(peer, message, changed)
            }
            crate::coap::block::Block1Outcome::Answer(answer) => Ok(answer),
            crate::coap::block::Block1Outcome::Complete { request, echo } => {
                let mut reply = self.write_composite(peer, &request, changed)?;
                if let Some(echo) = echo {
                    echo.set_on(&mut reply, crate::coap::block::BlockKind::Block1);
                }
                Ok(reply)
            }
        }
    }

    fn request_format(message: &Packet) -> Result<ContentFormat, Refusal> {
        let cf = options::content_format(message)
            .ok_or_else(|| refuse(415, "composite request without a Content-Format"))?;
        ContentFormat::from_code(cf)
            .filter(|f| is_composite_format(*f))
            .ok_or_else(|| {
                refuse(
                    415,
                    format!("Content-Format {cf}: SenML JSON or CBOR expected"),
                )
            })
    }

    fn read_composite(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
    ) -> Result<Packet, Refusal> {
        let list_format = Self::request_format(message)?;
        let format = match options::accept(message) {
            None => list_format,
            Some(a) => ContentFormat::from_code(a)
                .filter(|f| is_composite_format(*f))
                .ok_or_else(|| refuse(406, format!("Accept {a}: SenML JSON or CBOR only")))?,
        };
        let paths = wire::decode_paths(list_format, &message.payload)
            .map_err(|e| refuse(400, e.to_string()))?;
        let token = message.get_token().to_vec();
        if options::observe(message) == Some(1) {
            self.observations
                .retain(|o| !(o.peer == peer && o.token == token));
            tracing::debug!(%peer, paths = %wire::path_list(&paths), "Observe-Composite cancelled");
        }
        let payload = self.composite_payload(peer, &paths, format)?;
        // A large answer (a read of `/`) goes block-wise like a Read's
        // (RFC 7959 §2.4; RFC 8132 §2.3.1: FETCH takes Block2): the server
        // repeats the FETCH with the next block number.
        let mut reply = self.block2_reply(message, format, payload)?;
        if options::observe(message) == Some(0) {
            self.observations
                .retain(|o| !(o.peer == peer && o.token == token));
            let sequence = self.sequence;
            self.sequence = crate::coap::observe::next(self.sequence);
            options::set_uint(&mut reply, CoapOption::Observe, sequence);
            let last_records = self.composite_gather(Some(peer), &paths).0;
            self.observations.push(Observation {
                peer,
                token,
                path: Path::ROOT,
                format,
                last_sent: now,
                last_records,
                pending: false,
                sent: 0,
                last_con: now,
                composite: Some(paths),
            });
            tracing::debug!(%peer, "Observe-Composite registered");
        }
        Ok(reply)
    }

    fn write_composite(
        &mut self,
        peer: SocketAddr,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        let format = Self::request_format(message)?;
        let registry = self.config.registry.clone();
        let records = wire::decode_records(format, &message.payload, &registry)
            .map_err(|e| refuse(400, e.to_string()))?;
        if records.is_empty() {
            return Err(refuse(400, "Write-Composite without any record"));
        }
        // Core §6.3.9: "the Server has write access to those Objects and
        // Resources", every one, before anything is written; the right is
        // judged first, as for a Write (`management.rs`), so a server
        // learns nothing of instances it may not touch.
        self.authorize_all(
            peer,
            super::access_control::Access::Write,
            records.iter().map(|r| &r.path),
        )?;
        // All or nothing: check every record before setting any.
        for r in &records {
            if r.path.depth() < 3 {
                return Err(refuse(400, format!("{} is not a resource", r.path)));
            }
            self.check_exists(&r.path)?;
            let def = registry
                .resource(&r.path)
                .ok_or_else(|| refuse(404, format!("{} is not in the model", r.path)))?;
            if !def.operations.write {
                return Err(refuse(405, format!("{} is not writable", r.path)));
            }
        }
        for r in records {
            self.store.set(r.path, r.value);
            changed.push(r.path);
            self.events.push_back(ClientEvent::Written { path: r.path });
        }
        let mut reply = Packet::new();
        reply.header.code = MessageClass::from(code::from_number(204).unwrap_or(0x44));
        Ok(reply)
    }
}

impl Client {
    /// The payload of a notification of `obs` (Observe or Observe-Composite).
    pub(super) fn observation_payload(
        &self,
        obs: &Observation,
    ) -> Result<(ContentFormat, Vec<u8>), u16> {
        match &obs.composite {
            Some(paths) => self
                .composite_payload(obs.peer, paths, obs.format)
                .map(|p| (obs.format, p))
                .map_err(|(c, _)| c),
            None => self.read_payload(&obs.path, Some(obs.format)),
        }
    }
}
