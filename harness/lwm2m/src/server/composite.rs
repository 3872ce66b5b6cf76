//! The LwM2M 1.1 composite operations and Send on the wire (LwM2M 1.1 Core
//! §6.3.8 Read-Composite, §6.3.9 Write-Composite, §6.4.3 Observe-Composite,
//! §6.4.4 Cancel Observation-Composite, §6.4.6 Send; Transport §6.4 and
//! §6.5 for the CoAP methods), shared by the server role that sends them and
//! the client role that answers them.
//!
//! - Read-Composite is a FETCH (RFC 8132 §2) on the root path whose payload
//!   lists the paths to read as SenML records carrying a name and no value
//!   (Core §7.4.4: "only the Base Name and Name fields"); Content-Format
//!   says how the list is written, Accept how the values come back.
//! - Observe-Composite is the same FETCH with Observe 0, and its cancel
//!   with Observe 1 and the observation's token (RFC 7641 §3.6).
//! - Write-Composite is an iPATCH (RFC 8132 §3) on the root path whose
//!   SenML records carry absolute paths and values.
//! - Send is a POST from the client to `/dp` with SenML records at
//!   absolute paths; the server answers 2.04 Changed.
//!
//! Bodies larger than one message go block-wise (RFC 7959), as any other:
//! an Observe-Composite notification cut to its first block (§2.6) is
//! completed by repeating the FETCH of `/` with its path list for each
//! next block (RFC 8132 §2.3.1: FETCH carries Block2, and a request for a
//! next block repeats the request, payload and all), never by a GET of `/`;
//! a Write-Composite whose SenML does not fit one block
//! ([`WRITE_COMPOSITE_BLOCK`]) is sent as iPATCH blocks with Block1
//! (RFC 7959 §2.5; RFC 8132 §3.2 allows Block1 on iPATCH), each block but
//! the last answered 2.31 Continue.
//!
//! Only SenML JSON (110) and SenML CBOR (112) carry these lists in LwM2M
//! 1.1 (Core §7.4.4, §7.4.5: TLV and the single-value formats have no
//! absolute names), so any other format is refused here with a reason.

use ciborium::Value as Cbor;
use coap_lite::{CoapOption, MessageClass, Packet, RequestType};
use serde_json::{Map, Value as Json};

use crate::coap::options;
use crate::format::{self, ContentFormat, FormatError, Record};
use crate::model::Registry;
use crate::path::Path;

/// The Uri-Path of the Send operation (LwM2M 1.1 Transport §6.5: "POST /dp").
pub const SEND_PATH: &str = "dp";

/// The largest Write-Composite body sent in one iPATCH: 1024 bytes, the
/// largest CoAP block (RFC 7959 §2.2, SZX 6), which keeps a whole message
/// within the 1152 bytes RFC 7252 §4.6 says fit any path. A larger body
/// goes in 1024-byte Block1 blocks (the device may ask for smaller ones).
pub const WRITE_COMPOSITE_BLOCK: usize = 1024;

/// SenML CBOR labels (RFC 8428 §6, Table 4) a path list may carry.
const CBOR_BN: i128 = -2;
const CBOR_N: i128 = 0;

/// Whether `format` can carry a composite payload (SenML JSON or CBOR).
pub fn is_composite_format(format: ContentFormat) -> bool {
    matches!(format, ContentFormat::SenmlJson | ContentFormat::SenmlCbor)
}

/// The format of a composite request when the case names none: SenML CBOR,
/// the compact one, unless the client listed only SenML JSON in its root
/// link's `ct` (Core §6.2.1).
pub fn default_format(client_formats: &[u16]) -> ContentFormat {
    let cbor = ContentFormat::SenmlCbor.code();
    let json = ContentFormat::SenmlJson.code();
    if !client_formats.contains(&cbor) && client_formats.contains(&json) {
        ContentFormat::SenmlJson
    } else {
        ContentFormat::SenmlCbor
    }
}

fn unsupported(format: ContentFormat) -> FormatError {
    FormatError::new(
        format,
        0,
        "composite operations carry SenML JSON (110) or SenML CBOR (112) only (LwM2M 1.1 Core §7.4.4, §7.4.5)",
    )
}

/// Encodes the path list of a Read-Composite or Observe-Composite: one
/// record per path, its full path in `n`, no base name and no value
/// (`[{"n":"/3/0/0"},{"n":"/3/0/9"}]`).
pub fn encode_paths(format: ContentFormat, paths: &[Path]) -> Result<Vec<u8>, FormatError> {
    match format {
        ContentFormat::SenmlJson => {
            let array: Vec<Json> = paths
                .iter()
                .map(|p| {
                    let mut m = Map::new();
                    m.insert("n".into(), Json::String(p.to_string()));
                    Json::Object(m)
                })
                .collect();
            serde_json::to_vec(&Json::Array(array))
                .map_err(|e| FormatError::new(format, 0, e.to_string()))
        }
        ContentFormat::SenmlCbor => {
            let array: Vec<Cbor> = paths
                .iter()
                .map(|p| Cbor::Map(vec![(Cbor::Integer(0.into()), Cbor::Text(p.to_string()))]))
                .collect();
            let mut out = Vec::new();
            ciborium::ser::into_writer(&Cbor::Array(array), &mut out)
                .map_err(|e| FormatError::new(format, 0, e.to_string()))?;
            Ok(out)
        }
        other => Err(unsupported(other)),
    }
}

/// Decodes the path list of a Read-Composite or Observe-Composite. Names
/// resolve as RFC 8428 §4.5.1 says (base name + name, the base name
/// carried to later records until replaced, §4.1); a record with a value
/// field, or a name that is not an LwM2M path, is an error naming the
/// record (by index: the list is short and one-line).
pub fn decode_paths(format: ContentFormat, payload: &[u8]) -> Result<Vec<Path>, FormatError> {
    let names: Vec<(Option<String>, Option<String>)> = match format {
        ContentFormat::SenmlJson => {
            let json: Json = serde_json::from_slice(payload)
                .map_err(|e| FormatError::new(format, 0, format!("invalid JSON: {e}")))?;
            let Json::Array(items) = json else {
                return Err(FormatError::new(
                    format,
                    0,
                    "expected a JSON array of SenML records",
                ));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let Json::Object(m) = item else {
                    return Err(FormatError::new(
                        format,
                        0,
                        format!("record {i} is not an object"),
                    ));
                };
                let mut bn = None;
                let mut n = None;
                for (key, value) in m {
                    match (key.as_str(), value) {
                        ("bn", Json::String(s)) => bn = Some(s),
                        ("n", Json::String(s)) => n = Some(s),
                        (k @ ("bn" | "n"), _) => {
                            return Err(FormatError::new(format, 0, format!("record {i}: {k} is not a string")))
                        }
                        (k, _) => {
                            return Err(FormatError::new(
                                format,
                                0,
                                format!("record {i} carries {k:?}: a path list has only bn and n (LwM2M 1.1 Core §7.4.4)"),
                            ))
                        }
                    }
                }
                out.push((bn, n));
            }
            out
        }
        ContentFormat::SenmlCbor => {
            let cbor: Cbor = ciborium::de::from_reader(payload)
                .map_err(|e| FormatError::new(format, 0, format!("invalid CBOR: {e}")))?;
            let Cbor::Array(items) = cbor else {
                return Err(FormatError::new(
                    format,
                    0,
                    "expected a CBOR array of SenML records",
                ));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let Cbor::Map(entries) = item else {
                    return Err(FormatError::new(
                        format,
                        0,
                        format!("record {i} is not a map"),
                    ));
                };
                let mut bn = None;
                let mut n = None;
                for (key, value) in entries {
                    let label = match key {
                        Cbor::Integer(l) => i128::from(l),
                        other => {
                            return Err(FormatError::new(
                                format,
                                0,
                                format!(
                                    "record {i}: label {other:?} is not allowed in a path list"
                                ),
                            ))
                        }
                    };
                    match (label, value) {
                        (CBOR_BN, Cbor::Text(s)) => bn = Some(s),
                        (CBOR_N, Cbor::Text(s)) => n = Some(s),
                        (l, _) => {
                            return Err(FormatError::new(
                                format,
                                0,
                                format!("record {i} carries label {l}: a path list has only bn (-2) and n (0) (LwM2M 1.1 Core §7.4.5)"),
                            ))
                        }
                    }
                }
                out.push((bn, n));
            }
            out
        }
        other => return Err(unsupported(other)),
    };
    let mut base = String::new();
    let mut paths = Vec::with_capacity(names.len());
    for (i, (bn, n)) in names.into_iter().enumerate() {
        if let Some(bn) = bn {
            base = bn;
        }
        let name = format!("{base}{}", n.as_deref().unwrap_or(""));
        let path: Path = name.parse().map_err(|e| {
            FormatError::new(
                format,
                0,
                format!("record {i}: {name:?} is not an LwM2M path: {e}"),
            )
        })?;
        paths.push(path);
    }
    if paths.is_empty() {
        return Err(FormatError::new(format, 0, "the path list is empty"));
    }
    Ok(paths)
}

/// Encodes records at absolute paths (Write-Composite, Send, and the
/// client's composite responses and notifications).
pub fn encode_records(
    format: ContentFormat,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, FormatError> {
    if !is_composite_format(format) {
        return Err(unsupported(format));
    }
    format::encode(format, &Path::ROOT, records, registry)
}

/// Decodes records at absolute paths, typed by the object model.
pub fn decode_records(
    format: ContentFormat,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    if !is_composite_format(format) {
        return Err(unsupported(format));
    }
    format::decode(format, &Path::ROOT, payload, registry)
}

fn fetch(format: ContentFormat, paths: &[Path]) -> Result<Packet, FormatError> {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Fetch);
    p.payload = encode_paths(format, paths)?;
    options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(format.code()));
    options::set_uint(&mut p, CoapOption::Accept, u32::from(format.code()));
    Ok(p)
}

/// Read-Composite (Core §6.3.8): FETCH / with the path list, answered in the same format.
pub fn read_request(format: ContentFormat, paths: &[Path]) -> Result<Packet, FormatError> {
    fetch(format, paths)
}

/// Observe-Composite (Core §6.4.3): the Read-Composite FETCH with Observe
/// 0; with `cancel`, Observe 1 (Cancel Observation-Composite, §6.4.4).
pub fn observe_request(
    format: ContentFormat,
    paths: &[Path],
    cancel: bool,
) -> Result<Packet, FormatError> {
    let mut p = fetch(format, paths)?;
    options::set_uint(&mut p, CoapOption::Observe, u32::from(cancel));
    Ok(p)
}

/// Write-Composite (Core §6.3.9): iPATCH / with the records.
pub fn write_request(
    format: ContentFormat,
    records: &[Record],
    registry: &Registry,
) -> Result<Packet, FormatError> {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::IPatch);
    p.payload = encode_records(format, records, registry)?;
    options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(format.code()));
    Ok(p)
}

/// Send (Core §6.4.6): POST /dp with the records, from the client.
pub fn send_request(
    format: ContentFormat,
    records: &[Record],
    registry: &Registry,
) -> Result<Packet, FormatError> {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Post);
    options::add_strings(&mut p, CoapOption::UriPath, &[SEND_PATH]);
    p.payload = encode_records(format, records, registry)?;
    options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(format.code()));
    Ok(p)
}

/// The records of a Send the server received; the error is the response
/// code with its diagnostic: 4.15 for a format other than SenML (or none),
/// 4.00 for a payload that does not decode or carries nothing.
pub fn decode_send(message: &Packet, registry: &Registry) -> Result<Vec<Record>, (u16, String)> {
    let cf = options::content_format(message)
        .ok_or_else(|| (415, "Send without a Content-Format".to_string()))?;
    let format = ContentFormat::from_code(cf)
        .filter(|f| is_composite_format(*f))
        .ok_or_else(|| {
            (
                415,
                format!(
                    "Send in Content-Format {cf}: SenML JSON (110) or SenML CBOR (112) expected"
                ),
            )
        })?;
    let records =
        decode_records(format, &message.payload, registry).map_err(|e| (400, e.to_string()))?;
    if records.is_empty() {
        return Err((400, "Send without any record".to_string()));
    }
    Ok(records)
}

impl super::Server {
    /// The CoAP request of a composite operation to `endpoint`, `None` for
    /// any other request. The format defaults to one the client listed.
    pub(super) fn build_composite(
        &self,
        endpoint: &str,
        request: &super::DmRequest,
    ) -> Result<Option<Packet>, super::RequestError> {
        use super::DmRequest as R;
        let listed = self
            .registrations
            .get(endpoint)
            .map(|r| r.content_formats.as_slice())
            .unwrap_or(&[]);
        let pick = |f: &Option<ContentFormat>| f.unwrap_or_else(|| default_format(listed));
        let invalid = |e: FormatError| super::RequestError::Invalid(e.to_string());
        let packet = match request {
            R::ReadComposite { paths, format } => read_request(pick(format), paths),
            R::ObserveComposite { paths, format } => observe_request(pick(format), paths, false),
            R::WriteComposite { records, format } => {
                write_request(pick(format), records, &self.config.registry)
            }
            R::CancelObserveComposite { paths } => {
                let (format, _) = self.composite_observation(endpoint, paths)?;
                observe_request(format, paths, true)
            }
            _ => return Ok(None),
        };
        packet.map(Some).map_err(invalid)
    }

    /// The request the rest of a block-wise notification of `observation`
    /// is fetched with (RFC 7959 §2.6): for an Observe-Composite, its FETCH
    /// of `/` with the same path list again, Content-Format and Accept the
    /// notification's format, no Observe (RFC 8132 §2.3.1); for any other
    /// observation a GET of its path.
    pub(super) fn notification_fetch_request(
        &self,
        observation: super::RequestId,
        path: &Path,
        notification: &Packet,
    ) -> Packet {
        let composite = self.composite_paths(observation).and_then(|paths| {
            let format = options::content_format(notification)
                .and_then(ContentFormat::from_code)
                .filter(|f| is_composite_format(*f))?;
            read_request(format, &paths).ok()
        });
        composite.unwrap_or_else(|| super::fetch::notification_request(path, notification))
    }

    /// Sends a Write-Composite whose body does not fit one message as
    /// iPATCH blocks with Block1 (RFC 7959 §2.5), the way a Write of a
    /// large resource goes ([`super::DmRequest::WriteBlockwise`]): `None`
    /// when `packet` is not a Write-Composite or fits in one.
    pub(super) fn write_composite_blockwise(
        &mut self,
        now: std::time::Instant,
        endpoint: &str,
        peer: std::net::SocketAddr,
        request: &super::DmRequest,
        packet: &Packet,
    ) -> Result<Option<super::RequestId>, super::RequestError> {
        if !matches!(request, super::DmRequest::WriteComposite { .. })
            || packet.payload.len() <= WRITE_COMPOSITE_BLOCK
        {
            return Ok(None);
        }
        let format = options::content_format(packet)
            .and_then(ContentFormat::from_code)
            .ok_or_else(|| {
                super::RequestError::Invalid("Write-Composite without a Content-Format".into())
            })?;
        let szx = crate::coap::block::MAX_SZX;
        let total = packet.payload.len();
        let mut push = super::push::Push::with_method(
            now,
            RequestType::IPatch,
            Path::ROOT,
            format,
            packet.payload.clone(),
            szx,
        )
        .map_err(|e| super::RequestError::Invalid(format!("Write-Composite in blocks: {e}")))?;
        let Some(first) = push.next_request() else {
            return Err(super::RequestError::Invalid(
                "Write-Composite in blocks: nothing to send".into(),
            ));
        };
        let id = super::RequestId(self.next_request);
        self.next_request += 1;
        tracing::info!(%endpoint, bytes = total, szx, "Write-Composite sent in Block1 blocks");
        let exchange = self.send_request(now, endpoint, peer, first);
        self.pending.insert(
            exchange,
            super::Pending {
                id,
                endpoint: self.endpoint_key(endpoint),
                path: Path::ROOT,
                observe_token: None,
                push: Some(push),
                template: None,
                fetch: None,
            },
        );
        Ok(Some(id))
    }

    /// The token of an Observe-Composite (a new one; `true`: the
    /// observation is recorded when the answer says so) or of the
    /// observation a Cancel Observation-Composite ends (forgotten at once,
    /// like Cancel-Observe, so that notifications crossing it get Reset).
    pub(super) fn composite_token(
        &mut self,
        endpoint: &str,
        id: super::RequestId,
        request: &super::DmRequest,
    ) -> Result<(Vec<u8>, bool), super::RequestError> {
        match request {
            super::DmRequest::ObserveComposite { paths, format } => {
                // This client's entries of observations that ended (or
                // never began) go: only its own observations and requests
                // are looked at (the indexes by endpoint), so the cost
                // does not grow with the fleet (issue 16). Ending a
                // registration drops its entries (`end_registration`).
                let live: Vec<super::RequestId> = self
                    .observation_tokens(endpoint)
                    .iter()
                    .filter_map(|t| self.observations.get(t).map(|o| o.id))
                    .chain(
                        self.pending
                            .of_endpoint(endpoint)
                            .iter()
                            .filter_map(|e| self.pending.get(e).map(|p| p.id)),
                    )
                    .collect();
                let key = self.endpoint_key(endpoint);
                let owned = self.composite_by.entry(key).or_default();
                let composite = &mut self.composite_observations;
                owned.retain(|id| {
                    let keep = live.contains(id);
                    if !keep {
                        composite.remove(id);
                    }
                    keep
                });
                owned.push(id);
                let listed = self
                    .registrations
                    .get(endpoint)
                    .map(|r| r.content_formats.clone())
                    .unwrap_or_default();
                let format = format.unwrap_or_else(|| default_format(&listed));
                self.composite_observations
                    .insert(id, (format, paths.clone()));
                Ok((self.layer.new_token(), true))
            }
            super::DmRequest::CancelObserveComposite { paths } => {
                let (_, observation) = self.composite_observation(endpoint, paths)?;
                let token = self
                    .newest_observation(endpoint, |o| o.id == observation)
                    .ok_or_else(|| {
                        super::RequestError::Invalid(format!(
                            "no Observe-Composite of {} on {endpoint}",
                            path_list(paths)
                        ))
                    })?;
                self.observations.remove(&token);
                self.composite_observations.remove(&observation);
                Ok((token, false))
            }
            _ => Err(super::RequestError::Invalid(
                "not a composite observation request".into(),
            )),
        }
    }

    /// The newest established Observe-Composite of exactly `paths` (in any
    /// order) on `endpoint`: its format and id.
    fn composite_observation(
        &self,
        endpoint: &str,
        paths: &[Path],
    ) -> Result<(ContentFormat, super::RequestId), super::RequestError> {
        let mut wanted = paths.to_vec();
        wanted.sort();
        self.observation_tokens(endpoint)
            .iter()
            .filter_map(|t| self.observations.get(t))
            .filter_map(|o| {
                let (format, observed) = self.composite_observations.get(&o.id)?;
                let mut observed = observed.clone();
                observed.sort();
                (observed == wanted).then_some((*format, o.id))
            })
            .max_by_key(|(_, id)| *id)
            .ok_or_else(|| {
                super::RequestError::Invalid(format!(
                    "no Observe-Composite of {} on {endpoint}",
                    path_list(paths)
                ))
            })
    }

    /// Paths of the Observe-Composite `id` while it is established.
    pub fn composite_paths(&self, id: super::RequestId) -> Option<Vec<Path>> {
        self.composite_observations
            .get(&id)
            .map(|(_, paths)| paths.clone())
    }

    /// A Send (POST /dp, Core §6.4.6) from `peer`: decoded and published as
    /// [`super::ServerEvent::Sent`] when `peer` is a registered client's
    /// address, answered 2.04 Changed. From an address no registration has
    /// it is answered 4.04 Not Found, the way Leshan's server does: Send
    /// belongs to a registration (the TS gives the client no way to send
    /// before registering), and the server has no endpoint to report it for.
    pub(super) fn receive_send(
        &mut self,
        peer: std::net::SocketAddr,
        message: &Packet,
    ) -> super::Reply {
        let Some(endpoint) = self.by_peer.get(&peer).map(|e| e.to_string()) else {
            tracing::info!(%peer, "Send from an address with no registration");
            return super::Reply::error(
                404,
                format!("no registration for {peer}: Register before Send"),
            );
        };
        match decode_send(message, &self.config.registry) {
            Ok(records) => {
                tracing::debug!(%endpoint, records = records.len(), "Send received");
                self.events
                    .push_back(super::ServerEvent::Sent { endpoint, records });
                super::Reply::code(204)
            }
            Err((code, diagnostic)) => {
                self.events.push_back(super::ServerEvent::Malformed {
                    peer,
                    reason: format!("Send from {endpoint}: {diagnostic}"),
                });
                super::Reply::error(code, diagnostic)
            }
        }
    }
}

/// `/3/0/0, /3/0/9` for messages.
pub fn path_list(paths: &[Path]) -> String {
    paths
        .iter()
        .map(Path::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
