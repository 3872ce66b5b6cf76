//! Device management requests as CoAP messages (LwM2M 1.1 Transport §6.3,
//! Table 6.3-1 / 6.4-1) and their responses decoded by Content-Format.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::{Attributes, Content, DmRequest, RequestError, Response, WriteMode};
use crate::coap::{code, options};
use crate::format::{self, parse_links, ContentFormat};
use crate::model::Registry;
use crate::path::Path;

fn base(method: RequestType, path: &Path) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    options::add_strings(&mut p, CoapOption::UriPath, &path.segments());
    p
}

/// The Uri-Query values of Write-Attributes (LwM2M 1.1 Core §5.1.2), in
/// the order of Table 5.1.2-1's notification attributes.
pub fn attribute_query(a: &Attributes) -> Vec<String> {
    let mut q = Vec::new();
    if let Some(v) = a.pmin {
        q.push(format!("pmin={v}"));
    }
    if let Some(v) = a.pmax {
        q.push(format!("pmax={v}"));
    }
    if let Some(v) = a.gt {
        q.push(format!("gt={v}"));
    }
    if let Some(v) = a.lt {
        q.push(format!("lt={v}"));
    }
    if let Some(v) = a.st {
        q.push(format!("st={v}"));
    }
    if let Some(v) = a.epmin {
        q.push(format!("epmin={v}"));
    }
    if let Some(v) = a.epmax {
        q.push(format!("epmax={v}"));
    }
    q.extend(a.unset.iter().cloned());
    q
}

/// The format the server asks for and writes in by default with a client
/// that listed `client_formats` in its root link's `ct` (LwM2M 1.1 Core
/// §6.2.1: "the LwM2M Client MAY indicate the supported Content-Formats").
/// The server's own default when the client lists it or lists nothing,
/// else the first listed format that carries several resources.
pub fn preferred_format(default: ContentFormat, client_formats: &[u16]) -> ContentFormat {
    if client_formats.is_empty() || client_formats.contains(&default.code()) {
        return default;
    }
    client_formats
        .iter()
        .filter_map(|c| ContentFormat::from_code(*c))
        .find(|f| !f.carries_single_value() && *f != ContentFormat::LinkFormat)
        .unwrap_or(default)
}

/// The format a payload is written in when the request names none: the
/// configured default, except that plain text, opaque and CBOR carry one
/// resource only, so anything wider goes as TLV (which every LwM2M client supports).
fn payload_format(
    requested: Option<ContentFormat>,
    default: ContentFormat,
    path: &Path,
    records: usize,
) -> ContentFormat {
    match requested {
        Some(f) => f,
        None if default.carries_single_value() && !(path.depth() >= 3 && records == 1) => {
            ContentFormat::Tlv
        }
        None => default,
    }
}

/// Builds the CoAP request (without message id or token). `observe_token`
/// is set by the caller for Observe and Cancel-Observe.
pub fn build(
    request: &DmRequest,
    registry: &Registry,
    default: ContentFormat,
) -> Result<Packet, RequestError> {
    let invalid = |e: format::FormatError| RequestError::Invalid(e.to_string());
    let p = match request {
        DmRequest::Read { path, format } => {
            let mut p = base(RequestType::Get, path);
            options::set_uint(
                &mut p,
                CoapOption::Accept,
                u32::from(format.unwrap_or(default).code()),
            );
            p
        }
        DmRequest::Observe { path, format } => {
            let mut p = base(RequestType::Get, path);
            options::set_uint(&mut p, CoapOption::Observe, 0);
            options::set_uint(
                &mut p,
                CoapOption::Accept,
                u32::from(format.unwrap_or(default).code()),
            );
            p
        }
        DmRequest::CancelObserve { path } => {
            let mut p = base(RequestType::Get, path);
            options::set_uint(&mut p, CoapOption::Observe, 1);
            p
        }
        DmRequest::Write {
            path,
            mode,
            records,
            format,
        } => {
            if path.depth() < 2 {
                return Err(RequestError::Invalid(format!(
                    "Write needs an instance or resource path, not {path}"
                )));
            }
            let method = match mode {
                WriteMode::Replace => RequestType::Put,
                WriteMode::PartialUpdate => RequestType::Post,
            };
            let fmt = payload_format(*format, default, path, records.len());
            let mut p = base(method, path);
            p.payload = format::encode(fmt, path, records, registry).map_err(invalid)?;
            options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(fmt.code()));
            p
        }
        DmRequest::Execute { path, arguments } => {
            if path.depth() != 3 {
                return Err(RequestError::Invalid(format!(
                    "Execute needs a resource path, not {path}"
                )));
            }
            let mut p = base(RequestType::Post, path);
            if let Some(args) = arguments {
                p.payload = args.as_bytes().to_vec();
            }
            p
        }
        DmRequest::Discover { path } => {
            let mut p = base(RequestType::Get, path);
            options::set_uint(
                &mut p,
                CoapOption::Accept,
                u32::from(ContentFormat::LinkFormat.code()),
            );
            p
        }
        DmRequest::Create {
            object,
            records,
            format,
        } => {
            if object.depth() != 1 {
                return Err(RequestError::Invalid(format!(
                    "Create targets an object, not {object}"
                )));
            }
            let fmt = payload_format(*format, default, object, usize::MAX);
            let mut p = base(RequestType::Post, object);
            p.payload = format::encode(fmt, object, records, registry).map_err(invalid)?;
            options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(fmt.code()));
            p
        }
        DmRequest::Delete { path } => base(RequestType::Delete, path),
        DmRequest::WriteAttributes { path, attributes } => {
            let mut p = base(RequestType::Put, path);
            options::add_strings(&mut p, CoapOption::UriQuery, &attribute_query(attributes));
            p
        }
        DmRequest::ReadComposite { .. }
        | DmRequest::WriteComposite { .. }
        | DmRequest::ObserveComposite { .. }
        | DmRequest::CancelObserveComposite { .. } => {
            // They need the client's formats and observations: see `composite.rs`.
            return Err(RequestError::Invalid(
                "composite requests are built by Server::request".into(),
            ));
        }
        DmRequest::WriteBlockwise { path, .. } => {
            // One request per block: `Server` drives a `Block1Upload` instead.
            return Err(RequestError::Invalid(format!(
                "the Block1 Write to {path} is sent block by block, not as one message"
            )));
        }
    };
    Ok(p)
}

/// The path a request targets; the base for decoding its response.
pub fn target(request: &DmRequest) -> Path {
    request.path()
}

/// Decodes a response by its Content-Format. Error responses' payloads are
/// diagnostics, not content, and are not decoded.
pub fn decode(
    message: &Packet,
    path: &Path,
    registry: &Registry,
) -> Result<Response, RequestError> {
    let raw: u8 = message.header.code.into();
    let number = code::to_number(raw);
    let cf = options::content_format(message);
    let format = cf.and_then(ContentFormat::from_code);
    let mut response = Response {
        code: number,
        format,
        content: Content::None,
    };
    if !(200..300).contains(&number) || message.payload.is_empty() {
        return Ok(response);
    }
    response.content = match (cf, format) {
        (_, Some(ContentFormat::LinkFormat)) => {
            let text = std::str::from_utf8(&message.payload).map_err(|e| {
                RequestError::Decode(format!("link-format payload is not UTF-8: {e}"))
            })?;
            Content::Links(parse_links(text).map_err(|e| RequestError::Decode(e.to_string()))?)
        }
        (_, Some(f)) => Content::Records(
            format::decode(f, path, &message.payload, registry)
                .map_err(|e| RequestError::Decode(e.to_string()))?,
        ),
        (Some(other), None) => {
            return Err(RequestError::Decode(format!(
                "unsupported Content-Format {other}"
            )));
        }
        (None, None) => {
            return Err(RequestError::Decode(format!(
                "{} payload bytes without a Content-Format",
                message.payload.len()
            )));
        }
    };
    Ok(response)
}
