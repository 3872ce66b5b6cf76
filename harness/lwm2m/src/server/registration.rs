//! Parsing the registration interface's requests (LwM2M 1.1 Core §6.2.1,
//! Transport §6.2.1 / Table 6.2.1-1): Register's and Update's query
//! parameters and object-list payload, checked against what the version
//! the client declares allows.

use std::time::Duration;

use coap_lite::{CoapOption, Packet};

use crate::coap::options;
use crate::format::{parse_links, ContentFormat, Link};

/// The lifetime when Register carries no `lt` (LwM2M 1.1 Core §6.2.1: 86400 s).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// The enabler versions this server speaks (the `lwm2m` parameter,
/// LwM2M 1.1 Core §6.2.1 "LwM2M Version"); a Register naming another is
/// answered 4.12 Precondition Failed ("Supported LwM2M Versions of the
/// Server and the Client are not compatible", Core §6.2.1 response codes).
pub const SUPPORTED_VERSIONS: [&str; 3] = ["1.0", "1.1", "1.2"];

/// Objects a client MUST NOT list in its registration: the Security
/// object (0) and the OSCORE object (21) (LwM2M 1.1 Core §6.2.1, "The
/// Security Object ID:0, and OSCORE Object ID:21, if present, MUST NOT be
/// part of the Registration Objects and Object Instances list").
pub const UNLISTED_OBJECTS: [u16; 2] = [0, 21];

/// What Register or Update carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistrationParams {
    pub endpoint: Option<String>,
    pub lifetime: Option<Duration>,
    pub lwm2m_version: Option<String>,
    pub binding: Option<String>,
    /// `Q` was present (LwM2M 1.1 and later).
    pub queue_parameter: bool,
    pub sms_number: Option<String>,
    /// `None` when the request had no payload (an Update that keeps the list).
    pub objects: Option<ObjectList>,
}

impl RegistrationParams {
    /// Queue mode as this request states it for a client of `version`:
    /// LwM2M 1.0 carries it in the binding (`UQ`, `SQ`, `UQS`; 1.0 Core
    /// §5.3.1.1), later versions in the separate `Q` parameter (1.1 Core
    /// §6.2.1). `None` when the request does not say (an Update that keeps it).
    pub fn queue_mode(&self, version: &str) -> Option<bool> {
        if version == "1.0" {
            self.binding.as_ref().map(|b| b.contains('Q'))
        } else {
            self.queue_parameter.then_some(true)
        }
    }
}

/// The Register payload read as LwM2M reads it: an optional root link
/// (`</lwm2m>;rt="oma.lwm2m";ct=11543`) naming an alternate path and the
/// Content-Formats the client supports, and the objects and instances,
/// their targets made relative to that root (LwM2M 1.1 Core §6.2.1,
/// "Alternate path" and "ct").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectList {
    /// Whether the payload had a root link (`</>` or one with `rt="oma.lwm2m"`).
    pub has_root_link: bool,
    /// The alternate path without its trailing `/`: `""` for the default root `/`.
    pub root: String,
    /// The `ct` of the root link: one number (`ct=11543`, LwM2M 1.0) or a
    /// quoted, space-separated list (`ct="60 110 112"`, 1.1).
    pub content_formats: Vec<u16>,
    /// Object and instance links, with targets relative to `root`.
    pub objects: Vec<Link>,
}

/// Why a Register/Update is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("query parameter {name}={value:?} is not valid")]
    BadValue { name: String, value: String },
    #[error("binding {binding:?} is not a binding of LwM2M {version} ({allowed})")]
    Binding {
        binding: String,
        version: String,
        allowed: &'static str,
    },
    #[error("the queue mode parameter Q does not exist in LwM2M 1.0 (queue mode is b=UQ there)")]
    QueueUnder10,
    #[error("LwM2M version {0:?} is not supported (this server speaks 1.0, 1.1 and 1.2)")]
    UnsupportedVersion(String),
    #[error("payload Content-Format {0} is not application/link-format (40)")]
    ContentFormat(u16),
    #[error("object list: {0}")]
    ObjectList(String),
}

impl ParamError {
    /// The response code: 4.15 for a payload in another format, 4.12 for a
    /// version the server does not speak (LwM2M 1.1 Core §6.2.1), 4.00 otherwise.
    pub fn code(&self) -> u16 {
        match self {
            ParamError::ContentFormat(_) => 415,
            ParamError::UnsupportedVersion(_) => 412,
            _ => 400,
        }
    }
}

/// Reads the query parameters and payload of a Register or Update request,
/// checking only their syntax: what a value means depends on the version the
/// client registered with ([`check_register`], [`check_update`]).
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
                // Any u64 is accepted; the expiry saturates (see `Registration::expires_at`).
                let secs: u64 = v.parse().map_err(|_| bad(&v))?;
                p.lifetime = Some(Duration::from_secs(secs));
            }
            ("lwm2m", Some(v)) => p.lwm2m_version = Some(v),
            ("b", Some(v)) if !v.is_empty() => p.binding = Some(v),
            ("Q", None) => p.queue_parameter = true,
            ("sms", Some(v)) => p.sms_number = Some(v),
            ("ep" | "lt" | "lwm2m" | "b" | "sms" | "Q", v) => {
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
        let links = parse_links(text).map_err(|e| ParamError::ObjectList(e.to_string()))?;
        p.objects = Some(object_list(links)?);
    }
    Ok(p)
}

/// Checks a Register against the TS and returns the version the client
/// speaks (`1.0` when it names none, as LwM2M 1.0 clients may).
pub fn check_register(p: &RegistrationParams) -> Result<String, ParamError> {
    let version = p.lwm2m_version.clone().unwrap_or_else(|| "1.0".into());
    if !is_version_syntax(&version) {
        return Err(ParamError::BadValue {
            name: "lwm2m".into(),
            value: version,
        });
    }
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(ParamError::UnsupportedVersion(version));
    }
    check_common(p, &version)?;
    match &p.objects {
        Some(list) if !list.objects.is_empty() => Ok(version),
        // "Objects and Object Instances" is mandatory in Register (1.1 Core §6.2.1).
        _ => Err(ParamError::ObjectList(
            "Register must list the client's objects and object instances; it lists none".into(),
        )),
    }
}

/// Checks an Update from a client registered with `version`.
pub fn check_update(p: &RegistrationParams, version: &str) -> Result<(), ParamError> {
    if let Some(v) = &p.lwm2m_version {
        // Update has no `lwm2m` parameter (1.1 Core §6.2.2); naming another version is an error.
        if v != version {
            return Err(ParamError::BadValue {
                name: "lwm2m".into(),
                value: v.clone(),
            });
        }
    }
    check_common(p, version)?;
    match &p.objects {
        Some(list) if list.objects.is_empty() => Err(ParamError::ObjectList(
            "an Update's object list, when present, replaces the old one and must not be empty"
                .into(),
        )),
        _ => Ok(()),
    }
}

fn check_common(p: &RegistrationParams, version: &str) -> Result<(), ParamError> {
    if let Some(b) = &p.binding {
        check_binding(b, version)?;
    }
    if p.queue_parameter && version == "1.0" {
        return Err(ParamError::QueueUnder10);
    }
    if let Some(list) = &p.objects {
        if let Some(link) = list.objects.iter().find(|l| {
            l.path()
                .and_then(|p| p.object_id())
                .is_some_and(|o| UNLISTED_OBJECTS.contains(&o))
        }) {
            return Err(ParamError::ObjectList(format!(
                "<{}> must not be listed: the Security (0) and OSCORE (21) objects are never part of a registration (LwM2M 1.1 Core §6.2.1)",
                link.target
            )));
        }
    }
    Ok(())
}

/// LwM2M 1.0 bindings are a closed list (1.0 Core §5.3.1.1, Table 5.3.1.1-1:
/// U, UQ, S, SQ, US, UQS); from 1.1 the binding is a set of transport
/// letters and queue mode moved to `Q` (1.1 Core §6.2.1, object 1 v1.1
/// resource 7). LwM2M 1.1 has four transports — U (UDP), T (TCP), S (SMS),
/// N (Non-IP) — and 1.2 adds M (MQTT) and H (HTTP) (1.2 Core §6.2.1,
/// object 1 v1.2 resource 7), so `b=M` from a 1.1 client names a transport
/// its version does not have.
fn check_binding(binding: &str, version: &str) -> Result<(), ParamError> {
    let err = |allowed| ParamError::Binding {
        binding: binding.to_string(),
        version: version.to_string(),
        allowed,
    };
    if version == "1.0" {
        const ALLOWED: [&str; 6] = ["U", "UQ", "S", "SQ", "US", "UQS"];
        return if ALLOWED.contains(&binding) {
            Ok(())
        } else {
            Err(err("U, UQ, S, SQ, US or UQS"))
        };
    }
    let (letters, allowed) = if version == "1.1" {
        (
            "UTSN",
            "letters among U, T, S, N, each once; queue mode is Q",
        )
    } else {
        (
            "UMHTSN",
            "letters among U, M, H, T, S, N, each once; queue mode is Q",
        )
    };
    let mut seen = String::new();
    for c in binding.chars() {
        if !letters.contains(c) || seen.contains(c) {
            return Err(err(allowed));
        }
        seen.push(c);
    }
    Ok(())
}

fn is_version_syntax(v: &str) -> bool {
    let mut parts = v.split('.');
    let number = |s: Option<&str>| {
        s.is_some_and(|s| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
    };
    number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

/// Splits the root link from the objects and makes targets relative to it.
fn object_list(links: Vec<Link>) -> Result<ObjectList, ParamError> {
    let mut list = ObjectList::default();
    let root_link = links
        .iter()
        .find(|l| {
            l.attribute("rt")
                .is_some_and(|rt| rt.split(' ').any(|t| t == "oma.lwm2m"))
        })
        .or_else(|| links.iter().find(|l| l.target == "/"))
        .cloned();
    if let Some(root) = &root_link {
        list.has_root_link = true;
        list.root = root.target.trim_end_matches('/').to_string();
        if let Some(ct) = root.attribute("ct") {
            for code in ct.split(' ').filter(|s| !s.is_empty()) {
                let code = code.parse().map_err(|_| {
                    ParamError::ObjectList(format!(
                        "ct={ct:?} on <{}> is not a list of Content-Format numbers",
                        root.target
                    ))
                })?;
                list.content_formats.push(code);
            }
        }
    }
    let prefix = format!("{}/", list.root);
    for mut link in links {
        if root_link.as_ref().is_some_and(|r| r.target == link.target) {
            continue;
        }
        match relative_to(&list.root, &link.target) {
            Some(target) => link.target = target,
            // Not an LwM2M object of this client (the TS puts them all
            // under the alternate path): kept out of the object list.
            None => {
                tracing::debug!(target = %link.target, root = %prefix, "link outside the alternate path ignored");
                continue;
            }
        }
        list.objects.push(link);
    }
    Ok(list)
}

/// `target` made relative to the alternate path `root` (`""` for the
/// default root), or `None` when it lies outside it.
fn relative_to(root: &str, target: &str) -> Option<String> {
    if root.is_empty() {
        return Some(target.to_string());
    }
    target
        .strip_prefix(root)
        .filter(|rest| rest.starts_with('/'))
        .map(str::to_string)
}

impl ObjectList {
    /// An Update's list without a root link keeps the alternate path and the
    /// Content-Formats of the registration it updates: its targets are read
    /// relative to `root` (those outside it are kept as they are).
    pub fn inherit(&mut self, root: &str, content_formats: &[u16]) {
        if self.has_root_link {
            return;
        }
        for link in &mut self.objects {
            if let Some(target) = relative_to(root, &link.target) {
                link.target = target;
            }
        }
        self.root = root.to_string();
        self.content_formats = content_formats.to_vec();
    }
}
