//! Serving the device management and information reporting interfaces
//! (LwM2M 1.1 Core §6.3, §6.4; Transport §6.3 Table 6.3-1 for the CoAP
//! mapping and §6.3.x for the response codes) from the object store.

use std::net::SocketAddr;
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::observe::{self, Observation};
use super::{Client, ClientEvent};
use crate::coap::block::{
    representation_etag, serve_block2, size_of_szx, Block1Outcome, BlockKind, BlockOption, MAX_SZX,
};
use crate::coap::{code, options};
use crate::format::link::{encode_links, Link};
use crate::format::{self, ContentFormat, Record};
use crate::path::Path;
use crate::server::{attribute_query, Attributes, WriteMode};

/// A response code with an optional diagnostic (RFC 7252 §5.5.2).
type Refusal = (u16, String);

fn refuse(code: u16, diagnostic: impl Into<String>) -> Refusal {
    (code, diagnostic.into())
}

fn response(code_number: u16) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code::from_number(code_number).unwrap_or(0xa0));
    p
}

fn content(format: ContentFormat, payload: Vec<u8>) -> Packet {
    let mut p = response(205);
    options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(format.code()));
    p.payload = payload;
    p
}

impl Client {
    /// Answers one request; paths whose values it changed are pushed to
    /// `changed` so observers are notified after the response goes out.
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Packet {
        match self.serve(now, peer, message, changed) {
            Ok(p) => p,
            Err((code, diagnostic)) => {
                tracing::debug!(code, %diagnostic, path = %options::uri_path_string(message), "request refused");
                let mut p = response(code);
                p.payload = diagnostic.into_bytes();
                p
            }
        }
    }

    fn serve(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        let segments = options::strings(message, CoapOption::UriPath);
        let path = Path::from_segments(&segments).map_err(|e| refuse(404, e.to_string()))?;
        if path.depth() == 0 {
            // FETCH and iPATCH on / are the composite operations (`composite.rs`).
            if let Some(reply) = self.serve_composite(now, peer, message, changed) {
                return reply;
            }
            return Err(refuse(405, "operations on / are Bootstrap-only"));
        }
        if path
            .object_id()
            .is_some_and(|o| crate::server::UNLISTED_OBJECTS.contains(&o))
        {
            // LwM2M 1.1 Core §7.1 / Appendix E.1: the Security object (and
            // OSCORE, 21) belong to the Bootstrap-Server; an LwM2M Server's
            // operation on them is refused 4.01 Unauthorized (ETS int-221).
            return Err(refuse(
                401,
                "the Security and OSCORE objects are not accessible to an LwM2M Server",
            ));
        }
        let method = match message.header.code {
            MessageClass::Request(m) => m,
            _ => return Err(refuse(400, "not a request")),
        };
        let writes = matches!(method, RequestType::Put | RequestType::Post);
        if writes && self.block1.contains_key(&path) {
            // Reassembled here rather than in `dispatch`: the right is
            // checked on the first block as on a whole Write (Core §7.3.2).
            self.authorize(peer, &path, method, message)?;
            return self.write_block1(&path, method, message, changed);
        }
        if writes && !self.block1_ignored {
            // RFC 7959 §2.5: a Write, Create or Execute body sent in blocks
            // is acted on once, whole; blocks before the last get 2.31.
            match self.block1_inbox.handle(now, (peer, path), message) {
                Block1Outcome::Single => {}
                Block1Outcome::Answer(answer) => return Ok(answer),
                Block1Outcome::Complete { request, echo } => {
                    let mut reply = self.dispatch(now, peer, &request, path, method, changed)?;
                    if let Some(echo) = echo {
                        // §2.3: the final response echoes the last block's Block1.
                        echo.set_on(&mut reply, BlockKind::Block1);
                    }
                    return Ok(reply);
                }
            }
        }
        self.dispatch(now, peer, message, path, method, changed)
    }

    /// Answers a request whose body (if any) is whole, by method and path.
    fn dispatch(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
        path: Path,
        method: RequestType,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        let cf = options::content_format(message);
        // Access Control (Core §7.3), which applies with two or more Server accounts.
        self.authorize(peer, &path, method, message)?;
        match method {
            RequestType::Get
                if options::accept(message) == Some(ContentFormat::LinkFormat.code()) =>
            {
                self.discover(&path)
            }
            RequestType::Get => self.read_or_observe(now, peer, message, &path),
            RequestType::Put if cf.is_some() => {
                self.write(&path, WriteMode::Replace, message, changed)
            }
            RequestType::Put if message.payload.is_empty() => self.write_attributes(&path, message),
            RequestType::Put => Err(refuse(400, "Write without a Content-Format")),
            RequestType::Post => match path.depth() {
                1 => self.create(now, peer, &path, message, changed),
                2 | 4 => self.write(&path, WriteMode::PartialUpdate, message, changed),
                _ => {
                    let executable = self
                        .config
                        .registry
                        .resource(&path)
                        .is_some_and(|r| r.operations.execute);
                    if cf.is_some() && !executable {
                        self.write(&path, WriteMode::PartialUpdate, message, changed)
                    } else {
                        self.execute(&path, message)
                    }
                }
            },
            RequestType::Delete => self.delete(now, &path, changed),
            _ => Err(refuse(405, format!("{method:?} is not supported"))),
        }
    }

    /// 4.04 unless the object is known, and the instance and resource (value) exist.
    pub(super) fn check_exists(&self, path: &Path) -> Result<(), Refusal> {
        let object = path.object_id().unwrap_or_default();
        let def = self
            .config
            .registry
            .object(object)
            .ok_or_else(|| refuse(404, format!("object {object} unknown")))?;
        if let Some(instance) = path.instance_id() {
            if !self
                .store
                .instances()
                .any(|p| p == Path::instance(object, instance))
            {
                return Err(refuse(
                    404,
                    format!("{} does not exist", Path::instance(object, instance)),
                ));
            }
        }
        if let Some(resource) = path.resource_id() {
            if def.resource(resource).is_none() {
                return Err(refuse(
                    404,
                    format!("resource {resource} is not in object {object}"),
                ));
            }
        }
        Ok(())
    }

    /// Encodes what is at `path` in `accept` (or the preferred format).
    /// Errors are response codes: 4.04, 4.05 (not readable), 4.06 (format).
    pub(super) fn read_payload(
        &self,
        path: &Path,
        accept: Option<ContentFormat>,
    ) -> Result<(ContentFormat, Vec<u8>), u16> {
        self.read_payload_as(None, path, accept)
    }

    /// [`Client::read_payload`] as the server at `viewer` may see it: an
    /// Object's instances it may not read are left out (Access Control,
    /// Core §7.3.2.4; see [`Client::hide_unreadable`]).
    pub(super) fn read_payload_as(
        &self,
        viewer: Option<SocketAddr>,
        path: &Path,
        accept: Option<ContentFormat>,
    ) -> Result<(ContentFormat, Vec<u8>), u16> {
        self.check_exists(path).map_err(|(c, _)| c)?;
        let registry = &self.config.registry;
        if path.depth() >= 3 && !registry.resource(path).is_some_and(|r| r.operations.read) {
            return Err(405);
        }
        let mut records: Vec<Record> = self
            .store
            .read(path)
            .into_iter()
            .filter(|r| registry.resource(&r.path).is_none_or(|d| d.operations.read))
            .collect();
        if let Some(viewer) = viewer {
            records = self.hide_unreadable(viewer, records);
        }
        if path.depth() >= 3 && records.is_empty() {
            return Err(404);
        }
        let single = (path.depth() == 3 && !registry.resource(path).is_some_and(|r| r.multiple))
            || path.depth() == 4;
        let format = match accept {
            Some(ContentFormat::LinkFormat) => return Err(406),
            Some(f) if f.carries_single_value() && !single => {
                tracing::debug!(%path, format = %f, "single-value format asked for several values");
                return Err(406);
            }
            Some(f) => f,
            None => match self.config.preferred_format {
                f if (f.carries_single_value() || f == ContentFormat::LinkFormat) && !single => {
                    ContentFormat::Tlv
                }
                f => f,
            },
        };
        match format::encode(format, path, &records, registry) {
            Ok(payload) => Ok((format, payload)),
            Err(e) if format.carries_single_value() => {
                tracing::debug!(error = %e, "value cannot be given in the asked format");
                Err(406)
            }
            Err(e) => {
                tracing::error!(error = %e, %path, "encoding a Read response failed");
                Err(500)
            }
        }
    }

    fn read_or_observe(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        message: &Packet,
        path: &Path,
    ) -> Result<Packet, Refusal> {
        let accept = match options::accept(message) {
            Some(code) => Some(
                ContentFormat::from_code(code)
                    .ok_or_else(|| refuse(406, format!("Accept {code} is not supported")))?,
            ),
            None => None,
        };
        let (format, payload) = self
            .read_payload_as(Some(peer), path, accept)
            .map_err(|c| refuse(c, format!("cannot read {path}")))?;
        let token = message.get_token().to_vec();
        let mut reply = self.block2_reply(message, format, payload)?;
        match options::observe(message) {
            Some(0) => {
                // RFC 7641 §4.1: observers are keyed by endpoint and token; a
                // registration with the same token replaces the old one, one
                // with another token is another observer, even of the same path.
                self.observations
                    .retain(|o| !(o.peer == peer && o.token == token));
                let sequence = self.sequence;
                self.sequence = crate::coap::observe::next(self.sequence);
                options::set_uint(&mut reply, CoapOption::Observe, sequence);
                self.observations.push(Observation {
                    peer,
                    token,
                    path: *path,
                    format,
                    last_sent: now,
                    last_records: self.hide_unreadable(peer, self.store.read(path)),
                    pending: false,
                    sent: 0,
                    last_con: now,
                    composite: None,
                });
                tracing::debug!(%peer, %path, "observation registered");
            }
            Some(1) => {
                // RFC 7641 §3.6: the GET with Observe=1 carries the token of
                // the observation it cancels; others of the same path stay.
                self.observations
                    .retain(|o| !(o.peer == peer && o.token == token));
                tracing::debug!(%peer, %path, "observation cancelled by Observe=1");
            }
            _ => {}
        }
        Ok(reply)
    }

    /// The 2.05 Content for a Read or Observe: the whole payload, or one
    /// block of it (RFC 7959 §2.4) when the request asked for a block with
    /// Block2 or the payload exceeds [`Client::set_block2_size`]. A block
    /// carries the representation's ETag (so the server notices a value
    /// that changed between blocks) and block 0 carries Size2 (§4). A block
    /// starting past the end is 4.02 Bad Option, SZX 7 is 4.00 (§2.2).
    pub(super) fn block2_reply(
        &self,
        request: &Packet,
        format: ContentFormat,
        payload: Vec<u8>,
    ) -> Result<Packet, Refusal> {
        let asked = BlockOption::from_packet(request, BlockKind::Block2)
            .map_err(|e| refuse(e.response_code(), e.to_string()))?;
        let preferred = self.block2_szx.unwrap_or(MAX_SZX);
        let fits = self
            .block2_szx
            .is_none_or(|szx| payload.len() <= size_of_szx(szx).unwrap_or(1024));
        if asked.is_none() && fits {
            return Ok(content(format, payload));
        }
        let answer = serve_block2(payload.len(), asked, preferred)
            .map_err(|e| refuse(e.response_code(), e.to_string()))?;
        let mut reply = content(format, payload[answer.range.clone()].to_vec());
        reply.add_option(
            CoapOption::ETag,
            representation_etag(format.code(), &payload),
        );
        if let Some(block) = answer.option {
            block.set_on(&mut reply, BlockKind::Block2);
        }
        if let Some(size2) = answer.size2 {
            options::set_uint(&mut reply, CoapOption::Size2, size2);
        }
        Ok(reply)
    }

    /// Cuts a notification too large for [`Client::set_block2_size`] to its
    /// first block (RFC 7959 §2.6), with Block2 0/1/SZX, ETag and Size2.
    pub(super) fn first_block2(&self, packet: &mut Packet, format: ContentFormat) {
        let Some(szx) = self.block2_szx else {
            return;
        };
        let Ok(answer) = serve_block2(packet.payload.len(), None, szx) else {
            return;
        };
        let Some(block) = answer.option else {
            return;
        };
        packet.add_option(
            CoapOption::ETag,
            representation_etag(format.code(), &packet.payload),
        );
        block.set_on(packet, BlockKind::Block2);
        if let Some(size2) = answer.size2 {
            options::set_uint(packet, CoapOption::Size2, size2);
        }
        packet.payload.truncate(answer.range.end);
    }

    fn write(
        &mut self,
        path: &Path,
        mode: WriteMode,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        if path.depth() < 2 {
            return Err(refuse(405, "Write needs an instance or resource path"));
        }
        self.check_exists(path)?;
        let registry = self.config.registry.clone();
        if path.depth() >= 3 && !registry.resource(path).is_some_and(|r| r.operations.write) {
            return Err(refuse(405, format!("{path} is not writable")));
        }
        let cf = options::content_format(message)
            .ok_or_else(|| refuse(400, "Write without a Content-Format"))?;
        let format = ContentFormat::from_code(cf)
            .filter(|f| *f != ContentFormat::LinkFormat)
            .ok_or_else(|| refuse(415, format!("Content-Format {cf} is not supported")))?;
        let records = format::decode(format, path, &message.payload, &registry)
            .map_err(|e| refuse(400, e.to_string()))?;
        for r in &records {
            if !path.contains(&r.path) || r.path.depth() < 3 {
                return Err(refuse(
                    400,
                    format!("{} is not a resource below {path}", r.path),
                ));
            }
            let def = registry
                .resource(&r.path)
                .ok_or_else(|| refuse(404, format!("{} is not in the model", r.path)))?;
            if !def.operations.write {
                return Err(refuse(405, format!("{} is not writable", r.path)));
            }
        }
        if mode == WriteMode::Replace {
            if path.depth() == 2 {
                // Replace on an instance: its writable resources become exactly the payload's.
                let writable: Vec<Path> = self
                    .store
                    .read(path)
                    .into_iter()
                    .filter(|r| {
                        registry
                            .resource(&r.path)
                            .is_some_and(|d| d.operations.write)
                    })
                    .map(|r| r.path)
                    .collect();
                for p in writable {
                    self.store.clear(&p);
                }
            } else {
                self.store.clear(path);
            }
        }
        for r in records {
            self.store.set(r.path, r.value);
            changed.push(r.path);
            self.events.push_back(ClientEvent::Written { path: r.path });
        }
        if changed.is_empty() {
            changed.push(*path);
        }
        Ok(response(204))
    }

    /// A Write (PUT or POST) to a path registered with `accept_block1`:
    /// blocks are reassembled (RFC 7959 §2.5) and the whole body is then
    /// written like a single-request Write; the final 2.04 echoes Block1.
    fn write_block1(
        &mut self,
        path: &Path,
        method: RequestType,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        use crate::coap::block::{Block1Step, BlockKind};
        self.check_exists(path)?;
        let Some(assembler) = self.block1.get_mut(path) else {
            return Err(refuse(500, "no Block1 assembler"));
        };
        match assembler.handle_request(message) {
            Block1Step::Continue(reply) => {
                let received = assembler.received();
                self.events.push_back(ClientEvent::Block1Received {
                    path: *path,
                    received,
                });
                Ok(reply)
            }
            Block1Step::Refuse(reply) => {
                let code = code::to_number(reply.header.code.into());
                self.events
                    .push_back(ClientEvent::Block1Refused { path: *path, code });
                Ok(reply)
            }
            Block1Step::Complete { body, echo } => {
                let mut whole = message.clone();
                whole.clear_option(CoapOption::Block1);
                whole.clear_option(CoapOption::Size1);
                whole.payload = body;
                let mode = if method == RequestType::Put {
                    WriteMode::Replace
                } else {
                    WriteMode::PartialUpdate
                };
                let mut reply = self.write(path, mode, &whole, changed)?;
                if let Some(echo) = echo {
                    echo.set_on(&mut reply, BlockKind::Block1);
                }
                Ok(reply)
            }
        }
    }

    fn execute(&mut self, path: &Path, message: &Packet) -> Result<Packet, Refusal> {
        if path.depth() != 3 {
            return Err(refuse(405, "Execute targets a resource"));
        }
        self.check_exists(path)?;
        if let Some((code, diagnostic)) = self.execute_refusals.get(path) {
            return Err(refuse(*code, diagnostic.clone()));
        }
        if !self
            .config
            .registry
            .resource(path)
            .is_some_and(|r| r.operations.execute)
        {
            return Err(refuse(405, format!("{path} is not executable")));
        }
        let arguments = match std::str::from_utf8(&message.payload) {
            Ok("") => None,
            Ok(s) => Some(s.to_string()),
            Err(e) => return Err(refuse(400, format!("Execute arguments are not text: {e}"))),
        };
        if let Some(reason) = self.account_action_refusal(path) {
            return Err(refuse(400, reason));
        }
        tracing::info!(%path, ?arguments, "executed");
        // Registration Update Trigger, Disable and Bootstrap-Request Trigger
        // act once this is answered.
        self.pending_account_action = self.account_action(path);
        self.events.push_back(ClientEvent::Executed {
            path: *path,
            arguments,
        });
        Ok(response(204))
    }

    /// `link` with the Write-Attributes assigned at `path` itself
    /// (`;pmin=10;pmax=60;gt=50;lt=42.2`, in that order).
    fn attribute_links(&self, path: &Path, link: Link) -> Link {
        match self.attributes.get(path) {
            Some(attrs) => with_attributes(link, attrs),
            None => link,
        }
    }

    /// Discover (LwM2M 1.0.2 TS §5.4.2; the same three cases in 1.1.1 Core's
    /// Discover; Transport §6.3: GET with Accept 40, answered 2.05 in
    /// application/link-format). What is listed depends on the target:
    ///
    /// - an Object: the Object with the Attributes assigned to the Object
    ///   level (and `ver` when its version is not 1.0, Core §6.2 / Table 3
    ///   "Object Version"), then each Object Instance and its instantiated
    ///   Resources as bare links — the TS example is
    ///   `</3>;pmin=10,</3/0>,</3/0/1>,...,</3/0/16>`, without `dim` or the
    ///   lower levels' attributes;
    /// - an Object Instance: the instance with the Attributes assigned to
    ///   it (not the Object's), and its Resources with `dim` for multiple
    ///   resources and the Attributes assigned to each, e.g.
    ///   `</3/0>;pmax=60,...,</3/0/7>;dim=8;gt=50;lt=42.2,...`;
    /// - a Resource: the Resource with `dim` and its attached Attributes —
    ///   "the assigned R-Attributes and the R-Attributes inherited from the
    ///   Object and Object Instance", e.g. `</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2`;
    ///   a 1.1 client follows it with its Resource Instances, each with the
    ///   Attributes assigned to it (`</3/0/7/0>,</3/0/7/1>;pmax=100`).
    ///
    /// A Resource Instance is not a Discover target in 1.1: 4.05 Method Not
    /// Allowed ("target is not allowed for Discover", Transport §6.3).
    fn discover(&self, path: &Path) -> Result<Packet, Refusal> {
        if path.depth() > 3 {
            return Err(refuse(
                405,
                "Discover targets an object, an instance or a resource, not a resource instance",
            ));
        }
        self.check_exists(path)?;
        let registry = &self.config.registry;
        let object = path.object_id().unwrap_or_default();
        let mut links = Vec::new();
        if path.depth() == 1 {
            let mut link = Link::new(path.to_string());
            if let Some(def) = registry
                .object(object)
                .filter(|d| d.version != "1.0" && !d.version.is_empty())
            {
                link = link.with("ver", def.version.clone());
            }
            links.push(self.attribute_links(path, link));
        }
        for instance in self
            .store
            .instances()
            .filter(|i| path.contains(i) || i.contains(path))
        {
            match path.depth() {
                1 => links.push(Link::new(instance.to_string())),
                2 => links.push(self.attribute_links(&instance, Link::new(instance.to_string()))),
                _ => {}
            }
            for (res, count) in self.present_resources(&instance) {
                if !path.contains(&res) {
                    continue;
                }
                let mut link = Link::new(res.to_string());
                if path.depth() == 1 {
                    links.push(link);
                    continue;
                }
                if registry.resource(&res).is_some_and(|d| d.multiple) {
                    link = link.with("dim", count.to_string());
                }
                links.push(if path.depth() == 3 {
                    with_attributes(link, &observe::effective(&self.attributes, &res))
                } else {
                    self.attribute_links(&res, link)
                });
                if path.depth() == 3 && self.config.lwm2m_version != "1.0" {
                    links.extend(self.resource_instance_links(&res));
                }
            }
        }
        if path.depth() == 3 && links.is_empty() {
            return Err(refuse(404, format!("{path} has no value")));
        }
        Ok(content(
            ContentFormat::LinkFormat,
            encode_links(&links).into_bytes(),
        ))
    }

    /// The Resource Instances of a multiple resource, each with the
    /// Attributes assigned to it: what LwM2M 1.1 Discover on a Resource adds
    /// after the Resource (ETS 1.1 int-260 expects `</3/0/7/0>,</3/0/7/1>`
    /// after `</3/0/7>`, int-261 a `pmax` written on `/3/0/11/0`). A single
    /// resource has none.
    fn resource_instance_links(&self, res: &Path) -> Vec<Link> {
        if !self
            .config
            .registry
            .resource(res)
            .is_some_and(|d| d.multiple)
        {
            return Vec::new();
        }
        self.store
            .read(res)
            .into_iter()
            .filter(|r| r.path.depth() == 4)
            .map(|r| self.attribute_links(&r.path, Link::new(r.path.to_string())))
            .collect()
    }

    /// The Resources an instance has, in id order, each with its number of
    /// Resource Instances (1 for a single resource): those holding a value,
    /// and the executable ones, which hold none but exist on every instance
    /// (Execute accepts them).
    fn present_resources(&self, instance: &Path) -> Vec<(Path, usize)> {
        let (object, id) = (
            instance.object_id().unwrap_or_default(),
            instance.instance_id().unwrap_or_default(),
        );
        let mut resources: Vec<(Path, usize)> = Vec::new();
        for r in self.store.read(instance) {
            let Some(rid) = r.path.resource_id() else {
                continue;
            };
            let res = Path::resource(object, id, rid);
            match resources.last_mut() {
                Some((p, n)) if *p == res => *n += 1,
                _ => resources.push((res, 1)),
            }
        }
        let executables: Vec<Path> = self
            .config
            .registry
            .object(object)
            .into_iter()
            .flat_map(|d| d.resources.values())
            .filter(|d| d.operations.execute)
            .map(|d| Path::resource(object, id, d.id))
            .collect();
        for res in executables {
            if !resources.iter().any(|(p, _)| *p == res) {
                resources.push((res, 0));
            }
        }
        resources.sort();
        resources
    }

    fn create(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        path: &Path,
        message: &Packet,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        let object = path.object_id().unwrap_or_default();
        let registry = self.config.registry.clone();
        let def = registry
            .object(object)
            .ok_or_else(|| refuse(404, format!("object {object} unknown")))?;
        let existing: Vec<u16> = self
            .store
            .instances()
            .filter(|p| path.contains(p))
            .filter_map(|p| p.instance_id())
            .collect();
        // The id the client picks when the server names none (Core §6.3.6).
        let free = (0..u16::MAX)
            .find(|i| !existing.contains(i))
            .unwrap_or_default();
        let records = if message.payload.is_empty() {
            Vec::new()
        } else {
            let cf = options::content_format(message)
                .ok_or_else(|| refuse(400, "Create without a Content-Format"))?;
            let format = ContentFormat::from_code(cf)
                .filter(|f| *f != ContentFormat::LinkFormat)
                .ok_or_else(|| refuse(415, format!("Content-Format {cf} is not supported")))?;
            // With or without the Object Instance layer (TLV resources alone
            // leave the id to us; Leshan sends that form): both decode here.
            format::decode_create(format, path, free, &message.payload, &registry)
                .map_err(|e| refuse(400, e.to_string()))?
                .records
        };
        let mut ids: Vec<u16> = records
            .iter()
            .filter_map(|r| r.path.instance_id())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let instance = match ids.as_slice() {
            [] => free,
            [one] => *one,
            _ => return Err(refuse(400, "Create with more than one instance")),
        };
        if existing.contains(&instance) {
            return Err(refuse(
                400,
                format!("{} already exists", Path::instance(object, instance)),
            ));
        }
        if !def.multiple && !existing.is_empty() {
            return Err(refuse(400, format!("object {object} is single-instance")));
        }
        for r in &records {
            if r.path.depth() < 3 || registry.resource(&r.path).is_none() {
                return Err(refuse(
                    400,
                    format!("{} is not a resource of object {object}", r.path),
                ));
            }
        }
        self.store.create_instance(object, instance);
        for r in records {
            self.store.set(r.path, r.value);
        }
        let created = Path::instance(object, instance);
        changed.push(created);
        // With two or more Server accounts, its Access Control entry
        // (Core §6.3.6, §7.3.1.2.2): another new instance, /2/x.
        if let Some(entry) = self.grant_creator(peer, created) {
            changed.push(entry);
        }
        self.objects_changed_now(now);
        self.events
            .push_back(ClientEvent::Created { path: created });
        let mut reply = response(201);
        options::add_strings(&mut reply, CoapOption::LocationPath, &created.segments());
        Ok(reply)
    }

    fn delete(
        &mut self,
        now: Instant,
        path: &Path,
        changed: &mut Vec<Path>,
    ) -> Result<Packet, Refusal> {
        if path.depth() != 2 {
            return Err(refuse(405, "Delete targets an object instance"));
        }
        self.check_exists(path)?;
        let (object, instance) = (
            path.object_id().unwrap_or_default(),
            path.instance_id().unwrap_or_default(),
        );
        self.store.delete_instance(object, instance);
        self.attributes.retain(|p, _| !path.contains(p));
        changed.push(*path);
        // Its Access Control entry goes with it (Core §7.3.1.2.2).
        if let Some(entry) = self.drop_entry_of(*path) {
            self.attributes.retain(|p, _| !entry.contains(p));
            changed.push(entry);
        }
        self.objects_changed_now(now);
        self.events.push_back(ClientEvent::Deleted { path: *path });
        Ok(response(202))
    }

    /// The object list changed: tell the server with an Update (Core §6.2.2),
    /// now or as soon as the registration request in flight completes.
    pub(super) fn objects_changed_now(&mut self, now: Instant) {
        self.objects_changed = true;
        if self.next_update.is_some() {
            self.next_update = Some(now);
        }
    }

    /// Write-Attributes (Core §5.1.2, §6.3.4): `pmin=10&pmax=60&gt=50&lt=5&st=1`,
    /// and 1.1's `epmin`/`epmax` (kept and reported by Discover; the client
    /// samples on change, so they pace nothing here); a name without a value
    /// removes that attribute. Unknown names are ignored.
    fn write_attributes(&mut self, path: &Path, message: &Packet) -> Result<Packet, Refusal> {
        self.check_exists(path)?;
        let mut attrs: Attributes = self.attributes.get(path).cloned().unwrap_or_default();
        for (name, value) in options::query(message) {
            let bad = || {
                refuse(
                    400,
                    format!(
                        "attribute {name}={} is not valid",
                        value.as_deref().unwrap_or("")
                    ),
                )
            };
            let int = |v: &Option<String>| {
                v.as_deref()
                    .map(|s| s.parse::<u32>().map_err(|_| bad()))
                    .transpose()
            };
            let float = |v: &Option<String>| {
                v.as_deref()
                    .map(|s| {
                        s.parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .ok_or_else(bad)
                    })
                    .transpose()
            };
            match name.as_str() {
                "pmin" => attrs.pmin = int(&value)?,
                "pmax" => attrs.pmax = int(&value)?,
                "gt" => attrs.gt = float(&value)?,
                "lt" => attrs.lt = float(&value)?,
                "epmin" => attrs.epmin = int(&value)?,
                "epmax" => attrs.epmax = int(&value)?,
                "st" => {
                    attrs.st = float(&value)?;
                    if attrs.st.is_some_and(|s| s < 0.0) {
                        return Err(bad());
                    }
                }
                other => tracing::debug!(attribute = other, "ignoring unsupported attribute"),
            }
        }
        if let (Some(lt), Some(gt)) = (attrs.lt, attrs.gt) {
            // Core §5.1.2: lt must be below gt (and lt + 2*st < gt when st is set).
            if lt >= gt || attrs.st.is_some_and(|st| lt + 2.0 * st >= gt) {
                return Err(refuse(400, "lt must stay below gt (by more than 2*st)"));
            }
        }
        if attrs == Attributes::default() {
            self.attributes.remove(path);
        } else {
            self.attributes.insert(*path, attrs);
        }
        Ok(response(204))
    }
}

/// `link` with the notification attributes `attrs` appended in the order of
/// [`attribute_query`]: pmin, pmax, gt, lt, st.
fn with_attributes(link: Link, attrs: &Attributes) -> Link {
    attribute_query(attrs)
        .into_iter()
        .fold(link, |l, q| match q.split_once('=') {
            Some((k, v)) => l.with(k, v),
            None => l.with_flag(q),
        })
}
