//! Parsing the registration interface's requests (LwM2M 1.1 Core §6.2.1,
//! Transport §6.2.1 / Table 6.2.1-1): Register's and Update's query
//! parameters and object-list payload.

use std::time::Duration;

use coap_lite::{CoapOption, Packet};

use crate::coap::options;
use crate::format::{parse_links, ContentFormat, Link};

/// The lifetime when Register carries no `lt` (LwM2M 1.1 Core §6.2.1: 86400 s).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// What Register or Update carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistrationParams {
    pub endpoint: Option<String>,
    pub lifetime: Option<Duration>,
    pub lwm2m_version: Option<String>,
    pub binding: Option<String>,
    pub queue_mode: bool,
    pub sms_number: Option<String>,
    /// `None` when the request had no payload (an Update that keeps the list).
    pub objects: Option<Vec<Link>>,
}

/// Why a Register/Update is refused with 4.00 Bad Request (or 4.15).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("query parameter {name}={value:?} is not valid")]
    BadValue { name: String, value: String },
    #[error("payload Content-Format {0} is not application/link-format (40)")]
    ContentFormat(u16),
    #[error("object list: {0}")]
    ObjectList(String),
}

impl ParamError {
    /// The response code: 4.15 for a payload in another format, 4.00 otherwise.
    pub fn code(&self) -> u16 {
        match self {
            ParamError::ContentFormat(_) => 415,
            _ => 400,
        }
    }
}

/// Reads the query parameters and payload of a Register or Update request.
/// Unknown parameters are ignored (a later LwM2M version may add some).
pub fn parse(packet: &Packet) -> Result<RegistrationParams, ParamError> {
    let mut p = RegistrationParams::default();
    for (name, value) in options::query(packet) {
        let bad = |v: &str| ParamError::BadValue {
            name: name.clone(),
            value: v.to_string(),
        };
        match (name.as_str(), value) {
            ("ep", Some(v)) if !v.is_empty() => p.endpoint = Some(v),
            ("lt", Some(v)) => {
                let secs: u64 = v.parse().map_err(|_| bad(&v))?;
                p.lifetime = Some(Duration::from_secs(secs));
            }
            ("lwm2m", Some(v)) => p.lwm2m_version = Some(v),
            ("b", Some(v)) => {
                // LwM2M 1.0 marks queue mode in the binding ("UQ").
                if v.contains('Q') {
                    p.queue_mode = true;
                }
                p.binding = Some(v);
            }
            ("Q", None) => p.queue_mode = true,
            ("sms", Some(v)) => p.sms_number = Some(v),
            ("ep" | "lt" | "lwm2m" | "b" | "sms", v) => {
                return Err(bad(v.as_deref().unwrap_or("")))
            }
            (other, _) => {
                tracing::debug!(parameter = other, "ignoring unknown registration parameter")
            }
        }
    }
    if let Some(cf) = options::content_format(packet) {
        if cf != ContentFormat::LinkFormat.code() {
            return Err(ParamError::ContentFormat(cf));
        }
    }
    if !packet.payload.is_empty() || packet.get_option(CoapOption::ContentFormat).is_some() {
        let text = std::str::from_utf8(&packet.payload)
            .map_err(|e| ParamError::ObjectList(format!("not UTF-8: {e}")))?;
        p.objects = Some(parse_links(text).map_err(|e| ParamError::ObjectList(e.to_string()))?);
    }
    Ok(p)
}
