//! Content formats (LwM2M 1.1 Core §7.4 and LwM2M 1.2 for LwM2M CBOR), typed by
//! the object model.
//!
//! Every format decodes to and encodes from the same flat list of [`Record`]s,
//! one per resource or resource instance, so that steps compare values without
//! caring which format the device chose. Decoders never panic: any input gives
//! either records or a [`FormatError`] naming the format, the byte offset and
//! what was wrong there.

mod base64;
mod cbor;
pub mod link;
mod lwm2m_cbor;
mod lwm2m_json;
mod object_links;
mod opaque;
mod senml;
mod senml_cbor;
mod senml_json;
mod single_cbor;
mod text;
mod tlv;

use crate::model::Registry;
use crate::path::Path;
use crate::value::Value;

pub use link::{encode_links, parse_links, Link};
pub use object_links::{LinkAttribute, ObjectLink, ObjectLinks};

/// CoAP Content-Format numbers LwM2M uses (IANA CoAP Content-Formats registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentFormat {
    Text,
    LinkFormat,
    Opaque,
    SenmlJson,
    SenmlCbor,
    Tlv,
    /// The LwM2M 1.0 JSON format (OMA LwM2M 1.0 TS §6.4.4), which 1.0 devices
    /// offer in place of SenML JSON.
    Lwm2mJson,
    Lwm2mCbor,
    /// `application/cbor`: one resource value as a single CBOR item (LwM2M
    /// 1.1 Core §7.4.6), like plain text and opaque.
    Cbor,
}

impl ContentFormat {
    pub const ALL: [ContentFormat; 9] = [
        ContentFormat::Text,
        ContentFormat::LinkFormat,
        ContentFormat::Opaque,
        ContentFormat::SenmlJson,
        ContentFormat::SenmlCbor,
        ContentFormat::Tlv,
        ContentFormat::Lwm2mJson,
        ContentFormat::Lwm2mCbor,
        ContentFormat::Cbor,
    ];

    pub fn code(self) -> u16 {
        match self {
            ContentFormat::Text => 0,
            ContentFormat::LinkFormat => 40,
            ContentFormat::Opaque => 42,
            ContentFormat::SenmlJson => 110,
            ContentFormat::SenmlCbor => 112,
            ContentFormat::Tlv => 11542,
            ContentFormat::Lwm2mJson => 11543,
            ContentFormat::Lwm2mCbor => 11544,
            ContentFormat::Cbor => 60,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// The name used in case files and logs (`tlv`, `senml-cbor`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ContentFormat::Text => "text",
            ContentFormat::LinkFormat => "link-format",
            ContentFormat::Opaque => "opaque",
            ContentFormat::SenmlJson => "senml-json",
            ContentFormat::SenmlCbor => "senml-cbor",
            ContentFormat::Tlv => "tlv",
            ContentFormat::Lwm2mJson => "lwm2m-json",
            ContentFormat::Lwm2mCbor => "lwm2m-cbor",
            ContentFormat::Cbor => "cbor",
        }
    }

    /// Whether the format carries exactly one resource (instance) value:
    /// plain text, opaque and CBOR (Core §7.4.1, §7.4.2, §7.4.6). A Read or
    /// Write wider than one resource needs another format.
    pub fn carries_single_value(self) -> bool {
        matches!(
            self,
            ContentFormat::Text | ContentFormat::Opaque | ContentFormat::Cbor
        )
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// One resource or resource-instance value at its full path.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub path: Path,
    pub value: Value,
}

impl Record {
    pub fn new(path: Path, value: Value) -> Self {
        Record { path, value }
    }
}

/// A record with the time and sum the payload gave it: SenML's resolved time
/// (base time + time, RFC 8428 §4.6; §4.5.3: a value below 2^28 is relative
/// to now, negative in the past) and resolved sum (base sum + sum), and LwM2M
/// 1.0 JSON's `bt` + `t`. Formats without times (TLV, LwM2M CBOR, text,
/// opaque) give `None`; so do records that carry no time and follow no base time.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedRecord {
    pub record: Record,
    /// Seconds: since the Unix epoch, or relative to now when below 2^28.
    pub time: Option<f64>,
    pub sum: Option<f64>,
}

impl From<Record> for TimedRecord {
    fn from(record: Record) -> Self {
        TimedRecord {
            record,
            time: None,
            sum: None,
        }
    }
}

/// What went wrong decoding or encoding a payload, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{format} payload, byte {offset}: {reason}")]
pub struct FormatError {
    pub format: ContentFormat,
    /// Byte offset into the payload where the problem was found (0 for encoding errors).
    pub offset: usize,
    pub reason: String,
}

impl FormatError {
    pub fn new(format: ContentFormat, offset: usize, reason: impl Into<String>) -> Self {
        FormatError {
            format,
            offset,
            reason: reason.into(),
        }
    }
}

/// Encodes `records`, all at or below `base`, in `format`. Plain text and
/// opaque carry exactly one resource value and need `base` to be that resource.
pub fn encode(
    format: ContentFormat,
    base: &Path,
    records: &[Record],
    registry: &Registry,
) -> Result<Vec<u8>, FormatError> {
    match format {
        ContentFormat::Text => text::encode(base, records),
        ContentFormat::Opaque => opaque::encode(base, records),
        ContentFormat::Tlv => tlv::encode(base, records, registry),
        ContentFormat::SenmlJson => senml_json::encode(base, records),
        ContentFormat::SenmlCbor => senml_cbor::encode(base, records),
        ContentFormat::Lwm2mJson => lwm2m_json::encode(base, records),
        ContentFormat::Lwm2mCbor => lwm2m_cbor::encode(base, records),
        ContentFormat::Cbor => single_cbor::encode(base, records),
        ContentFormat::LinkFormat => Err(FormatError::new(
            format,
            0,
            "link format carries links, not resource values; use format::link",
        )),
    }
}

/// Decodes a payload received for a request on `base` into records, typing
/// values by the object model. A resource the model does not know decodes as
/// Opaque in TLV and opaque, String in plain text and LwM2M JSON's `sv`, and
/// as the value's natural type in SenML and LwM2M CBOR (numbers as Integer,
/// Unsigned past i64, or Float). Every record lies at or below `base`; TLV
/// ids are read relative to it. Times and sums are dropped; [`decode_timed`]
/// keeps them.
pub fn decode(
    format: ContentFormat,
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<Record>, FormatError> {
    Ok(decode_timed(format, base, payload, registry)?
        .into_iter()
        .map(|t| t.record)
        .collect())
}

/// [`decode`], keeping the time (and SenML sum) each record carries, e.g. a
/// notification's historical readings (LwM2M 1.1 Core §7.4.4, 1.0 TS §6.4.4).
pub fn decode_timed(
    format: ContentFormat,
    base: &Path,
    payload: &[u8],
    registry: &Registry,
) -> Result<Vec<TimedRecord>, FormatError> {
    let untimed = |records: Vec<Record>| records.into_iter().map(TimedRecord::from).collect();
    match format {
        ContentFormat::Text => text::decode(base, payload, registry).map(untimed),
        ContentFormat::Opaque => opaque::decode(base, payload, registry).map(untimed),
        ContentFormat::Tlv => tlv::decode(base, payload, registry).map(untimed),
        ContentFormat::SenmlJson => senml_json::decode(base, payload, registry),
        ContentFormat::SenmlCbor => senml_cbor::decode(base, payload, registry),
        ContentFormat::Lwm2mJson => lwm2m_json::decode(base, payload, registry),
        ContentFormat::Lwm2mCbor => lwm2m_cbor::decode(base, payload, registry).map(untimed),
        ContentFormat::Cbor => single_cbor::decode(base, payload, registry).map(untimed),
        ContentFormat::LinkFormat => Err(FormatError::new(
            format,
            0,
            "link format carries links, not resource values; use format::link",
        )),
    }
}

/// The payload of a Create on an object (LwM2M 1.1 Core §6.3.6,
/// `POST /{Object ID}`): the new instance's resource values, and whether the
/// payload can name the instance id.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePayload {
    /// `true` when the instance id, if any, is in the records' paths: TLV
    /// with an Object Instance TLV around the resources, and every other
    /// format (they carry full paths). `false` when TLV carries the resource TLVs alone
    /// and leaves the id to the client (as Leshan sends a Create without an
    /// instance id); the records then lie under the `unnamed` instance.
    pub names_instance: bool,
    pub records: Vec<Record>,
}

/// Decodes a Create's payload for `object`. TLV may leave out the Object
/// Instance layer (§7.4.3: its ids are relative to the request path, and the
/// Create then names no instance): the resource TLVs decode under
/// `/object/unnamed`, the instance id the client would choose. The other
/// formats carry full paths and always name the instance.
pub fn decode_create(
    format: ContentFormat,
    object: &Path,
    unnamed: u16,
    payload: &[u8],
    registry: &Registry,
) -> Result<CreatePayload, FormatError> {
    if object.depth() != 1 {
        return Err(FormatError::new(
            format,
            0,
            format!("Create targets an object, not {object}"),
        ));
    }
    if format == ContentFormat::Tlv && tlv::omits_instance_layer(payload) {
        let instance = object.child(unnamed).expect("depth 2");
        return Ok(CreatePayload {
            names_instance: false,
            records: tlv::decode(&instance, payload, registry)?,
        });
    }
    Ok(CreatePayload {
        names_instance: true,
        records: decode(format, object, payload, registry)?,
    })
}
