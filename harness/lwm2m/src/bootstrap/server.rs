//! The LwM2M Bootstrap-Server role, sans-IO (LwM2M 1.1 Core §6.1, Transport
//! §6.1), driven like [`crate::server::Server`]: feed `handle_datagram` /
//! `handle_timeout` with the current time, drain `poll_transmit`,
//! `poll_event`, `poll_timeout`.
//!
//! A client asks with Bootstrap-Request `POST /bs?ep={name}[&pct={format}]`
//! (§6.1.5); the server answers 2.04 Changed and then runs the
//! [`BootstrapScript`] the caller set for that endpoint (or the default
//! script), one Confirmable request at a time. Each answer is checked against
//! the codes the step expects: a match gives [`BootstrapEvent::OpCompleted`],
//! anything else ends the session with [`BootstrapEvent::Failed`] naming the
//! operation, what was expected and what came. Bootstrap-Write payloads use
//! the client's preferred content format when it named one the server can
//! write (TLV, SenML JSON/CBOR, LwM2M CBOR), else the configured default.
//! Bootstrap-Read exists only in LwM2M 1.1 (§6.1.7.2), so it is sent only to a
//! client whose Bootstrap-Discover answer said `lwm2m=1.1` or later.
//!
//! A Bootstrap-Write whose payload is larger than the block size
//! ([`BootstrapServer::set_block1_size`], 1024 bytes unless set) goes in
//! Block1 blocks (RFC 7959 §2.5), one Confirmable PUT per block, each after
//! the client's 2.31 Continue for the one before: a certificate-mode
//! Security instance (two certificates and a key, about a kilobyte in TLV)
//! otherwise makes a datagram larger than a constrained client's buffer, or
//! than the 1152 bytes RFC 7252 §4.6 advises when the path MTU is unknown.
//! The client's final answer to the last block is the operation's answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::script::{AnswerCheck, BootstrapOp, BootstrapScript};
use crate::coap::block::{size_of_szx, Block1Upload, BlockError, UploadStatus, MAX_SZX};
use crate::coap::{code, critical, options, ExchangeEvent, ExchangeId, MessageLayer, Transmit};
use crate::format::{self, parse_links, ContentFormat, Link};
use crate::model::Registry;
use crate::path::Path;
use crate::server::Content;

#[derive(Debug, Clone)]
pub struct BootstrapServerConfig {
    pub registry: Registry,
    /// Format of Bootstrap-Write payloads when the client named none (or one
    /// that cannot carry several resources); TLV is what every client reads.
    pub default_format: ContentFormat,
    /// Seeds message ids and tokens, so tests are deterministic.
    pub seed: u64,
}

/// What happened in a bootstrap session. Operations are named by their
/// `Display` text (`Bootstrap-Write /0/1`), never with the values written.
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapEvent {
    /// A Bootstrap-Request was accepted (2.04) and the session started.
    Requested {
        endpoint: String,
        peer: SocketAddr,
        preferred_format: Option<ContentFormat>,
    },
    /// A Bootstrap-Request was refused (4.00): no endpoint name, a bad
    /// `pct`, or no script for the endpoint.
    Rejected {
        peer: SocketAddr,
        endpoint: Option<String>,
        reason: String,
    },
    /// Step `index` got one of the codes it expected.
    OpCompleted {
        endpoint: String,
        index: usize,
        op: String,
        code: u16,
        content: Content,
    },
    /// Every step of the script got an expected answer. `finish_sent`:
    /// when Bootstrap-Finish was sent (a script may end without one). A
    /// client can use its new configuration only after it received that
    /// request, so a Register from before then was made with the old one;
    /// the answer's arrival is no such bound (the client may register
    /// before its 2.04 reaches us).
    Finished {
        endpoint: String,
        finish_sent: Option<Instant>,
    },
    /// The session ended at `op`: the client answered `got` (None: no answer,
    /// a Reset, or the operation could not be sent), not one of `expected`.
    Failed {
        endpoint: String,
        index: usize,
        op: String,
        expected: Vec<u16>,
        got: Option<u16>,
        reason: String,
    },
    /// A datagram was not CoAP; dropped (a CON got a Reset).
    Malformed { peer: SocketAddr, reason: String },
}

#[derive(Debug)]
struct Session {
    peer: SocketAddr,
    script: BootstrapScript,
    next: usize,
    format: ContentFormat,
    preferred: Option<ContentFormat>,
    /// The LwM2M version the client's Bootstrap-Discover announced.
    version: Option<String>,
    in_flight: Option<ExchangeId>,
    finish_sent: Option<Instant>,
    /// The Bootstrap-Write in flight in Block1 blocks, if it is one.
    upload: Option<Block1Upload>,
}

/// The Bootstrap-Write block size unless set: SZX 6, 1024 bytes, the largest
/// block (RFC 7959 §2.2) and RFC 7252 §4.6's payload size for an unknown
/// path MTU.
pub const DEFAULT_BLOCK1_SZX: u8 = MAX_SZX;

/// The Bootstrap-Server towards any number of clients, one session each.
pub struct BootstrapServer {
    config: BootstrapServerConfig,
    layer: MessageLayer,
    scripts: HashMap<String, BootstrapScript>,
    default_script: Option<BootstrapScript>,
    sessions: BTreeMap<String, Session>,
    exchanges: HashMap<ExchangeId, String>,
    events: VecDeque<BootstrapEvent>,
    /// See [`BootstrapServer::set_block1_size`].
    block1_szx: u8,
}

impl BootstrapServer {
    pub fn new(config: BootstrapServerConfig) -> Self {
        let layer = MessageLayer::new(config.seed);
        BootstrapServer {
            config,
            layer,
            scripts: HashMap::new(),
            default_script: None,
            sessions: BTreeMap::new(),
            exchanges: HashMap::new(),
            events: VecDeque::new(),
            block1_szx: DEFAULT_BLOCK1_SZX,
        }
    }

    /// Bootstrap-Writes with a payload larger than 2^(`szx`+4) bytes (16 to
    /// 1024, RFC 7959 §2.2) go in Block1 blocks of that size; a larger
    /// `szx` is taken as 6. Sessions started from now on use it.
    pub fn set_block1_size(&mut self, szx: u8) {
        self.block1_szx = szx.min(MAX_SZX);
    }

    /// The script run for `endpoint`'s next Bootstrap-Request (replaces any earlier one).
    pub fn set_script(&mut self, endpoint: impl Into<String>, script: BootstrapScript) {
        self.scripts.insert(endpoint.into(), script);
    }

    pub fn remove_script(&mut self, endpoint: &str) -> Option<BootstrapScript> {
        self.scripts.remove(endpoint)
    }

    /// The script for endpoints without one of their own; `None` refuses them.
    pub fn set_default_script(&mut self, script: Option<BootstrapScript>) {
        self.default_script = script;
    }

    /// Whether a session with `endpoint` is running.
    pub fn in_session(&self, endpoint: &str) -> bool {
        self.sessions.contains_key(endpoint)
    }

    /// Server-initiated bootstrap (Core §6.1.4): runs `endpoint`'s script
    /// towards `peer` without waiting for a Bootstrap-Request.
    pub fn start(&mut self, now: Instant, endpoint: &str, peer: SocketAddr) -> bool {
        let Some(script) = self.script_for(endpoint) else {
            return false;
        };
        self.begin(now, endpoint.to_string(), peer, script, None);
        true
    }

    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        self.layer.handle_datagram(now, peer, datagram);
        self.process_layer_events(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.process_layer_events(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<BootstrapEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.layer.poll_timeout()
    }

    fn script_for(&self, endpoint: &str) -> Option<BootstrapScript> {
        self.scripts
            .get(endpoint)
            .or(self.default_script.as_ref())
            .cloned()
    }

    fn process_layer_events(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                ExchangeEvent::Request { peer, message } => {
                    self.handle_request(now, peer, &message)
                }
                ExchangeEvent::Response { id, message, .. } => {
                    self.handle_response(now, id, Ok(message))
                }
                ExchangeEvent::Unsolicited { peer, message } => self.layer.reject(peer, &message),
                ExchangeEvent::Acknowledged { .. } => {}
                ExchangeEvent::Reset { id, .. } => {
                    if let Some(id) = id {
                        self.handle_response(now, id, Err("the client answered with Reset".into()));
                    }
                }
                ExchangeEvent::Timeout {
                    id, transmissions, ..
                } => self.handle_response(
                    now,
                    id,
                    Err(format!("no response after {transmissions} transmissions")),
                ),
                ExchangeEvent::Malformed { peer, reason } => {
                    self.events
                        .push_back(BootstrapEvent::Malformed { peer, reason });
                }
            }
        }
    }

    /// Bootstrap-Request (Core §6.1.5, Transport §6.1 Table 6.1-1).
    ///
    /// A request with a critical option the Bootstrap-Server does not
    /// implement is not acted on: a CON gets 4.02 Bad Option, a NON a Reset
    /// (RFC 7252 §5.4.1, [`critical::BOOTSTRAP_SERVER_REQUEST_OPTIONS`]).
    /// A new Bootstrap-Request from an endpoint whose session is running
    /// restarts the session from its first step (the client gave up on the
    /// old one, Core §6.1.5); a retransmission of the same request is a
    /// duplicate, answered again by the message layer without restarting.
    fn handle_request(&mut self, now: Instant, peer: SocketAddr, message: &Packet) {
        match critical::refusal(message, critical::BOOTSTRAP_SERVER_REQUEST_OPTIONS) {
            Some(critical::Refusal::Respond(answer)) => {
                return self.layer.respond(peer, message, answer);
            }
            Some(critical::Refusal::Reject) => return self.layer.reject(peer, message),
            None => {}
        }
        let path = options::strings(message, CoapOption::UriPath);
        let method = match message.header.code {
            MessageClass::Request(m) => m,
            _ => return,
        };
        if path != ["bs"] {
            return self.reply(peer, message, 404, "only /bs exists here");
        }
        if method != RequestType::Post {
            return self.reply(peer, message, 405, "Bootstrap-Request is a POST");
        }
        let mut endpoint = None;
        let mut preferred = None;
        for (name, value) in options::query(message) {
            match (name.as_str(), value) {
                ("ep", Some(v)) if !v.is_empty() => endpoint = Some(v),
                ("pct", Some(v)) => match v.parse::<u16>() {
                    Ok(code) => preferred = ContentFormat::from_code(code),
                    Err(_) => {
                        let reason = format!("pct={v:?} is not a content format number");
                        self.events.push_back(BootstrapEvent::Rejected {
                            peer,
                            endpoint: endpoint.clone(),
                            reason: reason.clone(),
                        });
                        return self.reply(peer, message, 400, &reason);
                    }
                },
                (other, _) => {
                    tracing::debug!(parameter = other, "ignoring Bootstrap-Request parameter")
                }
            }
        }
        let Some(endpoint) = endpoint else {
            let reason = "Bootstrap-Request without ep".to_string();
            self.events.push_back(BootstrapEvent::Rejected {
                peer,
                endpoint: None,
                reason: reason.clone(),
            });
            return self.reply(peer, message, 400, &reason);
        };
        let Some(script) = self.script_for(&endpoint) else {
            let reason = format!("no bootstrap configuration for endpoint {endpoint:?}");
            tracing::info!(%endpoint, %peer, "Bootstrap-Request refused: no script");
            self.events.push_back(BootstrapEvent::Rejected {
                peer,
                endpoint: Some(endpoint),
                reason: reason.clone(),
            });
            return self.reply(peer, message, 400, &reason);
        };
        let mut ok = Packet::new();
        ok.header.code = MessageClass::from(code::from_number(204).unwrap_or(0x44));
        self.layer.respond(peer, message, ok);
        self.events.push_back(BootstrapEvent::Requested {
            endpoint: endpoint.clone(),
            peer,
            preferred_format: preferred,
        });
        self.begin(now, endpoint, peer, script, preferred);
    }

    fn reply(&mut self, peer: SocketAddr, request: &Packet, code_number: u16, diagnostic: &str) {
        let mut p = Packet::new();
        p.header.code = MessageClass::from(code::from_number(code_number).unwrap_or(0x80));
        p.payload = diagnostic.as_bytes().to_vec();
        self.layer.respond(peer, request, p);
    }

    fn begin(
        &mut self,
        now: Instant,
        endpoint: String,
        peer: SocketAddr,
        script: BootstrapScript,
        preferred: Option<ContentFormat>,
    ) {
        if let Some(old) = self.sessions.remove(&endpoint) {
            // A new Bootstrap-Request restarts the session (the client gave up on the old one).
            if let Some(id) = old.in_flight {
                self.layer.cancel(id);
                self.exchanges.remove(&id);
            }
        }
        let format = match preferred {
            Some(
                f @ (ContentFormat::Tlv
                | ContentFormat::SenmlCbor
                | ContentFormat::SenmlJson
                | ContentFormat::Lwm2mCbor),
            ) => f,
            _ => self.config.default_format,
        };
        tracing::info!(%endpoint, %peer, steps = script.steps.len(), %format, "bootstrap session starts");
        self.sessions.insert(
            endpoint.clone(),
            Session {
                peer,
                script,
                next: 0,
                format,
                preferred,
                version: None,
                in_flight: None,
                finish_sent: None,
                upload: None,
            },
        );
        self.send_next(now, &endpoint);
    }

    /// Sends the session's next step, or ends the session when none is left.
    fn send_next(&mut self, now: Instant, endpoint: &str) {
        let Some(session) = self.sessions.get(endpoint) else {
            return;
        };
        let index = session.next;
        let Some(step) = session.script.steps.get(index).cloned() else {
            tracing::info!(%endpoint, "bootstrap session finished");
            let finish_sent = self.sessions.remove(endpoint).and_then(|s| s.finish_sent);
            self.events.push_back(BootstrapEvent::Finished {
                endpoint: endpoint.to_string(),
                finish_sent,
            });
            return;
        };
        let packet = match self.build(session, &step.op) {
            Ok(p) => p,
            Err(reason) => {
                return self.fail(endpoint, index, &step.op, step.expect.clone(), None, reason)
            }
        };
        let szx = session
            .script
            .block1_szx
            .unwrap_or(self.block1_szx)
            .min(MAX_SZX);
        let packet = match Self::in_blocks(packet, szx) {
            Ok((first, upload)) => {
                if let Some(s) = self.sessions.get_mut(endpoint) {
                    s.upload = upload;
                }
                first
            }
            Err(reason) => {
                return self.fail(endpoint, index, &step.op, step.expect.clone(), None, reason)
            }
        };
        self.send_packet(now, endpoint, packet);
        if let Some(s) = self.sessions.get_mut(endpoint) {
            if matches!(step.op, BootstrapOp::Finish) {
                s.finish_sent = Some(now);
            }
        }
        tracing::debug!(%endpoint, op = %step.op, "bootstrap operation sent");
    }

    /// Sends one Confirmable request of `endpoint`'s session: an operation
    /// or one block of it.
    fn send_packet(&mut self, now: Instant, endpoint: &str, packet: Packet) {
        let Some(peer) = self.sessions.get(endpoint).map(|s| s.peer) else {
            return;
        };
        let id = self.layer.send(now, peer, packet, true);
        self.exchanges.insert(id, endpoint.to_string());
        if let Some(s) = self.sessions.get_mut(endpoint) {
            s.in_flight = Some(id);
        }
    }

    /// `packet` as it goes: whole when its payload fits one block, else its
    /// first Block1 block (`2^(szx+4)` bytes, Block1 0/1/SZX and Size1 with
    /// the whole size, RFC 7959 §2.5 and §4) and the upload that sends the
    /// rest.
    fn in_blocks(packet: Packet, szx: u8) -> Result<(Packet, Option<Block1Upload>), String> {
        let limit = size_of_szx(szx).unwrap_or(1024);
        let MessageClass::Request(method) = packet.header.code else {
            return Ok((packet, None));
        };
        if packet.payload.len() <= limit {
            return Ok((packet, None));
        }
        let mut upload = Block1Upload::new(
            method,
            options::strings(&packet, CoapOption::UriPath),
            options::content_format(&packet),
            packet.payload,
            szx,
        )
        .map_err(|e| format!("cannot send the payload in Block1 blocks: {e}"))?;
        let first = upload
            .next_request()
            .ok_or_else(|| "a Block1 upload with no block".to_string())?;
        Ok((first, Some(upload)))
    }

    /// The answer to a block of a Block1 Bootstrap-Write: `Ok(None)` when it
    /// asked for the next block, which is sent; `Ok(Some(message))` when it
    /// is the operation's answer (the final response, or an error code the
    /// script may expect); `Err` when the client broke the transfer.
    fn continue_upload(
        &mut self,
        now: Instant,
        endpoint: &str,
        message: Packet,
    ) -> Result<Option<Packet>, String> {
        let Some(upload) = self
            .sessions
            .get_mut(endpoint)
            .and_then(|s| s.upload.as_mut())
        else {
            return Ok(Some(message));
        };
        match upload.handle_response(&message) {
            Ok(UploadStatus::Continue { .. } | UploadStatus::Renegotiated { .. }) => {
                let next = upload
                    .next_request()
                    .ok_or_else(|| "Block1: no block left to send".to_string())?;
                self.send_packet(now, endpoint, next);
                Ok(None)
            }
            Ok(UploadStatus::Complete { .. }) => Ok(Some(message)),
            // An error answer (4.xx, 5.xx) ends the operation as it is: the
            // script may expect it (an invalid Security instance: 4.00).
            Err(
                BlockError::Status { .. }
                | BlockError::EntityTooLarge { .. }
                | BlockError::Incomplete { .. },
            ) => Ok(Some(message)),
            Err(e) => Err(format!("Block1 transfer: {e}")),
        }
    }

    fn build(&self, session: &Session, op: &BootstrapOp) -> Result<Packet, String> {
        let mut p = Packet::new();
        let (method, path) = match op {
            BootstrapOp::Discover { path } => {
                options::set_uint(
                    &mut p,
                    CoapOption::Accept,
                    u32::from(ContentFormat::LinkFormat.code()),
                );
                (RequestType::Get, *path)
            }
            BootstrapOp::Delete { path } => (RequestType::Delete, *path),
            BootstrapOp::Write { path, records } => {
                if path.depth() == 0 || path.depth() > 3 {
                    return Err(format!(
                        "Bootstrap-Write needs an object, instance or resource path, not {path}"
                    ));
                }
                let payload = format::encode(session.format, path, records, &self.config.registry)
                    .map_err(|e| format!("cannot encode the records: {e}"))?;
                options::set_uint(
                    &mut p,
                    CoapOption::ContentFormat,
                    u32::from(session.format.code()),
                );
                p.payload = payload;
                (RequestType::Put, *path)
            }
            BootstrapOp::Read { path } => {
                if !version_at_least(session.version.as_deref(), 1, 1) {
                    return Err(format!(
                        "not sent: Bootstrap-Read is LwM2M 1.1 and the client announced {}",
                        session
                            .version
                            .as_deref()
                            .map(|v| format!("lwm2m={v}"))
                            .unwrap_or_else(|| "no version (no Bootstrap-Discover yet)".into())
                    ));
                }
                options::set_uint(&mut p, CoapOption::Accept, u32::from(session.format.code()));
                (RequestType::Get, *path)
            }
            BootstrapOp::Finish => {
                p.header.code = MessageClass::Request(RequestType::Post);
                options::add_strings(&mut p, CoapOption::UriPath, &["bs"]);
                return Ok(p);
            }
        };
        p.header.code = MessageClass::Request(method);
        options::add_strings(&mut p, CoapOption::UriPath, &path.segments());
        Ok(p)
    }

    fn fail(
        &mut self,
        endpoint: &str,
        index: usize,
        op: &BootstrapOp,
        expected: Vec<u16>,
        got: Option<u16>,
        reason: String,
    ) {
        tracing::warn!(%endpoint, %op, ?expected, ?got, %reason, "bootstrap session failed");
        if let Some(s) = self.sessions.remove(endpoint) {
            if let Some(id) = s.in_flight {
                self.layer.cancel(id);
                self.exchanges.remove(&id);
            }
        }
        self.events.push_back(BootstrapEvent::Failed {
            endpoint: endpoint.to_string(),
            index,
            op: op.to_string(),
            expected,
            got,
            reason,
        });
    }

    fn handle_response(&mut self, now: Instant, id: ExchangeId, result: Result<Packet, String>) {
        let Some(endpoint) = self.exchanges.remove(&id) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&endpoint) else {
            return;
        };
        if session.in_flight != Some(id) {
            return;
        }
        session.in_flight = None;
        let index = session.next;
        let Some(step) = session.script.steps.get(index).cloned() else {
            return;
        };
        let message = match result {
            Ok(m) => m,
            Err(reason) => return self.fail(&endpoint, index, &step.op, step.expect, None, reason),
        };
        let message = match self.continue_upload(now, &endpoint, message) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(reason) => return self.fail(&endpoint, index, &step.op, step.expect, None, reason),
        };
        if let Some(s) = self.sessions.get_mut(&endpoint) {
            s.upload = None;
        }
        let got = code::to_number(message.header.code.into());
        if !step.expect.contains(&got) {
            let diagnostic = String::from_utf8_lossy(&message.payload).into_owned();
            let reason = if diagnostic.is_empty() {
                format!("answered {}.{:02}", got / 100, got % 100)
            } else {
                format!("answered {}.{:02}: {diagnostic}", got / 100, got % 100)
            };
            return self.fail(&endpoint, index, &step.op, step.expect, Some(got), reason);
        }
        let content = match decode_content(&message, &step.op, &self.config.registry) {
            Ok(c) => c,
            Err(reason) => {
                return self.fail(
                    &endpoint,
                    index,
                    &step.op,
                    step.expect,
                    Some(got),
                    format!("response payload: {reason}"),
                )
            }
        };
        if let Some(reason) = step
            .checks
            .iter()
            .find_map(|c| check_answer(c, &content).err())
        {
            return self.fail(&endpoint, index, &step.op, step.expect, Some(got), reason);
        }
        let Some(session) = self.sessions.get_mut(&endpoint) else {
            return;
        };
        if let (BootstrapOp::Discover { .. }, Content::Links(links)) = (&step.op, &content) {
            if let Some(v) = links
                .iter()
                .find(|l| l.target == "/")
                .and_then(|l| l.attribute("lwm2m"))
            {
                session.version = Some(v.to_string());
            }
        }
        session.next += 1;
        tracing::debug!(%endpoint, op = %step.op, code = got, preferred = ?session.preferred, "bootstrap operation answered");
        self.events.push_back(BootstrapEvent::OpCompleted {
            endpoint: endpoint.clone(),
            index,
            op: step.op.to_string(),
            code: got,
            content,
        });
        self.send_next(now, &endpoint);
    }
}

/// `lwm2m` version text ("1.1", "1.2") at least major.minor.
fn version_at_least(version: Option<&str>, major: u32, minor: u32) -> bool {
    let Some((a, b)) = version.and_then(|v| v.split_once('.')) else {
        return false;
    };
    match (a.parse::<u32>(), b.parse::<u32>()) {
        (Ok(a), Ok(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Parses a Bootstrap-Discover payload (Core §6.1.7.3). LwM2M 1.1 clients
/// start it with `</>;lwm2m=1.1`; LwM2M 1.0 clients with a bare
/// `lwm2m="1.0",` item, which is turned into the 1.1 form here.
pub fn parse_discover(text: &str) -> Result<Vec<Link>, String> {
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("lwm2m=") {
        let (version, tail) = match rest.split_once(',') {
            Some((v, t)) => (v, t),
            None => (rest, ""),
        };
        let mut links = vec![Link::new("/").with("lwm2m", version.trim().trim_matches('"'))];
        links.extend(parse_links(tail).map_err(|e| e.to_string())?);
        return Ok(links);
    }
    parse_links(text).map_err(|e| e.to_string())
}

/// Whether `content`, a Discover's links or a Read's records (nothing:
/// an empty answer), shows what `check` asks; `Err` says what it showed.
/// Only instance links and records count: a Discover lists an object
/// without instances as `</1>`, which is not an instance of it.
fn check_answer(check: &AnswerCheck, content: &Content) -> Result<(), String> {
    let shown: Vec<Path> = match content {
        Content::Links(links) => links
            .iter()
            .filter_map(|l| l.path())
            .filter(|p| p.depth() >= 2)
            .collect(),
        Content::Records(records) => records.iter().map(|r| r.path).collect(),
        Content::None => Vec::new(),
    };
    let under = |p: &Path| shown.iter().filter(|s| p.contains(s)).collect::<Vec<_>>();
    match check {
        AnswerCheck::Lists(p) if under(p).is_empty() => Err(format!(
            "the answer shows nothing at {p} (it shows {})",
            list(&shown)
        )),
        AnswerCheck::Omits(p) if !under(p).is_empty() => Err(format!(
            "the answer still shows {}, expected nothing at {p}",
            list(&under(p).into_iter().copied().collect::<Vec<_>>())
        )),
        AnswerCheck::BootstrapAccount => {
            let Content::Links(links) = content else {
                return Err("no Discover links to find the Bootstrap-Server account in".into());
            };
            let account = links.iter().any(|l| {
                l.path()
                    .is_some_and(|p| p.depth() == 2 && p.object_id() == Some(0))
                    && !l.has_attribute("ssid")
            });
            if account {
                Ok(())
            } else {
                Err(format!(
                    "no Security instance without ssid (the Bootstrap-Server account) among {}",
                    list(&shown)
                ))
            }
        }
        _ => Ok(()),
    }
}

fn list(paths: &[Path]) -> String {
    if paths.is_empty() {
        return "no instance".into();
    }
    paths
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes a success response's payload; error responses carry diagnostics
/// (RFC 7252 §5.5.2), not content.
fn decode_content(
    message: &Packet,
    op: &BootstrapOp,
    registry: &Registry,
) -> Result<Content, String> {
    let number = code::to_number(message.header.code.into());
    if message.payload.is_empty() || !(200..300).contains(&number) {
        return Ok(Content::None);
    }
    let cf = options::content_format(message);
    match (op, cf.and_then(ContentFormat::from_code)) {
        (BootstrapOp::Discover { .. }, Some(ContentFormat::LinkFormat) | None) => {
            let text = std::str::from_utf8(&message.payload)
                .map_err(|e| format!("link-format payload is not UTF-8: {e}"))?;
            parse_discover(text).map(Content::Links)
        }
        (BootstrapOp::Read { path }, Some(f)) if f != ContentFormat::LinkFormat => {
            format::decode(f, path, &message.payload, registry)
                .map(Content::Records)
                .map_err(|e| e.to_string())
        }
        (_, _) => match cf {
            Some(cf) => Err(format!("unexpected Content-Format {cf}")),
            None => Err(format!(
                "{} payload bytes without a Content-Format",
                message.payload.len()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_payloads_of_both_versions_parse() {
        let links = parse_discover(r#"</>;lwm2m=1.1,</0/0>;uri="coap://127.0.0.1:5783",</0/1>;ssid=101;uri="coap://127.0.0.1:5683",</1/0>;ssid=101,</3/0>"#).unwrap();
        assert_eq!(links[0].attribute("lwm2m"), Some("1.1"));
        assert_eq!(links[2].attribute("ssid"), Some("101"));
        let links = parse_discover(r#"lwm2m="1.0",</0/0>,</1/0>;ssid=1"#).unwrap();
        assert_eq!(links[0].target, "/");
        assert_eq!(links[0].attribute("lwm2m"), Some("1.0"));
        assert_eq!(links.len(), 3);
        assert!(parse_discover("lwm2m=1.1,garbage").is_err());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least(Some("1.1"), 1, 1));
        assert!(version_at_least(Some("1.2"), 1, 1));
        assert!(version_at_least(Some("2.0"), 1, 1));
        assert!(!version_at_least(Some("1.0"), 1, 1));
        assert!(!version_at_least(Some("x"), 1, 1));
        assert!(!version_at_least(None, 1, 1));
    }
}
