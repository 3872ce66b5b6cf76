//! `firmware: {role, method, block_size, code, uri}`: reads /5/x/8 and
//! /5/x/9 first (a method the device does not offer makes the case not
//! applicable), starts recording every State / Update Result transition,
//! then writes the Package URI (pull) or pushes the image with Block1
//! (push). LwM2M 1.1 Core §E.6.

use std::fmt::Write as _;

use lwm2m::firmware::{resource, DeliveryMethod, ProtocolSupport, OBJECT_ID};
use lwm2m::server::{Content, DmRequest, WriteMode};
use lwm2m::{Path, Record, Value};
use serde::Deserialize;
use server::firmware::{DeliveryMethodKind, FirmwareDelivery};
use server::ServerHandle;

use crate::case::fields::{szx_of, Code};
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::firmware::{transfer_samples, FirmwareWatch};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSpec {
    /// What the image is to the device (`upgrade`, `corrupted`, ...): the
    /// rig's `firmware.roles` maps it to one of the device's own images.
    role: Option<String>,
    /// Refused with a message: a case names firmware by role, never by file.
    image: Option<String>,
    #[serde(default)]
    method: FirmwareMethod,
    /// Block size in bytes (16..1024): what the device asks for in a CoAP
    /// pull (set through the dialect's `fw_block_size`), what the server
    /// starts with in a push.
    block_size: Option<u32>,
    /// Expected response code of the Package URI write or the push (default
    /// 2.04), or the codes any of which the TS allows (`["2.04", "4.13"]`).
    code: Option<OneOrMany>,
    /// A Package URI to write instead of the store's (to provoke Invalid URI
    /// or Unsupported Protocol); no `role` is needed then.
    uri: Option<String>,
}

/// One expected code, or the several a device may rightly answer (a push it
/// has no room for may be refused on the block that overflows, 4.13 or
/// 5.00, or taken whole and failed in Update Result: the TS names only the
/// Result).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(Code),
    Many(Vec<Code>),
}

/// The codes a `firmware` step accepts, as its failure names them.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
pub struct Expected(Vec<Code>);

impl Expected {
    pub fn one(code: Code) -> Self {
        Expected(vec![code])
    }


    fn allows(&self, code: u16) -> bool {
        self.0.iter().any(|c| c.0 == code)
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                let codes: Vec<String> = many.iter().map(Code::to_string).collect();
                write!(f, "one of {}", codes.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FirmwareMethod {
    #[default]
    PullCoap,
    /// CoAP Block2 under DTLS 1.2 PSK (`coaps://`), the device's server PSK.
    PullCoaps,
    PullHttp,
    Push,
}

impl FirmwareMethod {
    pub fn name(self) -> &'static str {
        match self {
            FirmwareMethod::PullCoap => "pull-coap",
            FirmwareMethod::PullCoaps => "pull-coaps",
            FirmwareMethod::PullHttp => "pull-http",
            FirmwareMethod::Push => "push",
        }
    }

    fn kind(self) -> DeliveryMethodKind {
        match self {
            FirmwareMethod::PullCoap => DeliveryMethodKind::PullCoap,
            FirmwareMethod::PullCoaps => DeliveryMethodKind::PullCoaps,
            FirmwareMethod::PullHttp => DeliveryMethodKind::PullHttp,
            FirmwareMethod::Push => DeliveryMethodKind::Push,
        }
    }

    fn is_coap(self) -> bool {
        matches!(self, FirmwareMethod::PullCoap | FirmwareMethod::PullCoaps)
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "FirmwareSpec")]
pub struct Firmware {
    /// The firmware role (`upgrade`, `corrupted`); none when `uri` replaces
    /// the store's Package URI.
    pub role: Option<String>,
    pub method: FirmwareMethod,
    /// Block size exponent (RFC 7959 SZX, 0..=6).
    pub szx: Option<u8>,
    pub code: Expected,
    pub uri: Option<String>,
}

/// A `firmware` payload that names no image the rig can deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareStepError {
    #[error("firmware block_size {0}: expected 16, 32, 64, 128, 256, 512 or 1024")]
    BlockSize(u32),
    #[error("firmware: name the firmware by its role (`role: upgrade`), not by a file: the rig's `firmware.roles` maps roles to the device's own images")]
    ImageFile,
    #[error("firmware role {0:?}: use a-z, 0-9 and - (upgrade, corrupted, unbootable, too-large)")]
    RoleName(String),
    #[error("firmware: give `role` (upgrade, corrupted, ...) or a Package URI `uri`")]
    NoImage,
    #[error("firmware code: an empty list accepts no answer; give one code or several")]
    NoCode,
}

impl TryFrom<FirmwareSpec> for Firmware {
    type Error = FirmwareStepError;
    fn try_from(f: FirmwareSpec) -> Result<Self, FirmwareStepError> {
        let szx = f
            .block_size
            .map(|size| szx_of(size).ok_or(FirmwareStepError::BlockSize(size)))
            .transpose()?;
        if f.image.is_some() {
            return Err(FirmwareStepError::ImageFile);
        }
        let role = match (f.role, &f.uri) {
            (Some(r), _) if !rig::network::is_name(&r) => {
                return Err(FirmwareStepError::RoleName(r))
            }
            (Some(r), _) => Some(r),
            (None, Some(_)) => None,
            (None, None) => return Err(FirmwareStepError::NoImage),
        };
        Ok(Firmware {
            role,
            method: f.method,
            szx,
            code: match f.code {
                None => Expected::one(Code::CHANGED),
                Some(OneOrMany::One(c)) => Expected::one(c),
                Some(OneOrMany::Many(v)) if v.is_empty() => return Err(FirmwareStepError::NoCode),
                Some(OneOrMany::Many(v)) => Expected(v),
            },
            uri: f.uri,
        })
    }
}

impl Step for Firmware {
    fn describe(&self) -> String {
        match (&self.role, &self.uri) {
            (Some(role), _) => format!("firmware {role} by {}", self.method.name()),
            (None, Some(uri)) => format!("firmware Package URI {uri:?}"),
            (None, None) => "firmware".into(),
        }
    }

    fn firmware_roles(&self) -> Vec<String> {
        self.role.iter().cloned().collect()
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(self.deliver(turn, ctx, rig))
    }
}

impl Firmware {
    async fn deliver(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &mut Session,
    ) -> Result<(), StepError> {
        let kind = self.method.kind();
        rig.firmware_delivery().await.map_err(bench)?;
        // The role's image of the rig's store (none when the case gives the URI).
        let image = match &self.role {
            Some(role) => {
                let mapped = rig.firmware_role(role).await?;
                let size = delivery_of(rig)?
                    .image(&mapped.image)
                    .map_err(bench)?
                    .bytes
                    .len();
                let _ = writeln!(
                    ctx.log,
                    "  role {role}: image {} ({size} bytes, version {})",
                    mapped.image, mapped.version
                );
                Some((mapped.image, size))
            }
            None => None,
        };

        // What the device offers decides whether the case applies at all.
        let ep = rig.endpoint.clone();
        let instance = rig.instance_of(OBJECT_ID).unwrap_or(0);
        let methods = read_ints(
            &rig.server,
            &ep,
            Path::resource(OBJECT_ID, instance, resource::DELIVERY_METHOD),
        )
        .await;
        let protocols = read_ints(
            &rig.server,
            &ep,
            Path::resource(OBJECT_ID, instance, resource::PROTOCOL_SUPPORT),
        )
        .await;
        let method = methods
            .first()
            .and_then(|m| DeliveryMethod::from_code(*m).ok());
        let protocols: Vec<ProtocolSupport> = protocols
            .iter()
            .filter_map(|p| ProtocolSupport::from_code(*p).ok())
            .collect();
        kind.applicability(method, Some(&protocols))
            .map_err(|why| StepError::Skip(format!("not applicable: {why}")))?;

        match &ctx.firmware_watch {
            None => ctx.firmware_watch = Some(FirmwareWatch::start(&rig.server, &ep).await),
            Some(watch) => watch.settle(&rig.server, &ep).await,
        }
        if let Some((name, _)) = &image {
            if !ctx.firmware_images.contains(name) {
                ctx.firmware_images.push(name.clone());
            }
        }

        match self.method {
            FirmwareMethod::Push => {
                let Some((name, _)) = &image else {
                    return Err(bench("a push needs a firmware role, not a uri"));
                };
                // The push's own progress, as the pull's file server gives
                // it: `transfer` events for events.jsonl and the display.
                let events = ctx.events.clone();
                let report = delivery_of(rig)?
                    .push(
                        &rig.server,
                        &ep,
                        name,
                        self.szx.unwrap_or(6),
                        turn.within,
                        |p| events.emit(transfer_event(p, &ep)),
                    )
                    .await
                    .map_err(|e| device("the device to take the pushed image", e.to_string()))?;
                // The last sample, with the device's final answer in it.
                if let Some(last) = delivery_of(rig)?.progress(name) {
                    ctx.events.emit(transfer_event(&last, &ep));
                }
                let _ = writeln!(ctx.log, "  push: {report}");
                if !self.code.allows(report.code) {
                    return Err(device(
                        format!("{} to the Block1 push", self.code),
                        report.to_string(),
                    ));
                }
            }
            _ => self.pull(turn, ctx, rig, instance, image).await?,
        }
        Ok(())
    }

    /// Writes the Package URI the device pulls from.
    async fn pull(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &mut Session,
        instance: u16,
        image: Option<(String, usize)>,
    ) -> Result<(), StepError> {
        let kind = self.method.kind();
        let coap = self.method.is_coap();
        if let (Some(szx), true) = (self.szx, coap) {
            rig.modem_command("fw_block_size", &[("szx", szx.to_string())])
                .map_err(bench)?;
        }
        let uri = match (&self.uri, &image) {
            (Some(u), _) => u.clone(),
            (None, Some((name, _))) => delivery_of(rig)?
                .package_uri(name, kind)
                .await
                .map_err(bench)?,
            (None, None) => return Err(bench("firmware step with neither role nor uri")),
        };
        // Over the rig's emulated link, if it has one.
        let uri = rig.via_link(&uri);
        let path = Path::resource(OBJECT_ID, instance, resource::PACKAGE_URI);
        let request = DmRequest::Write {
            path,
            mode: WriteMode::Replace,
            records: vec![Record::new(path, Value::String(uri.clone()))],
            format: None,
        };
        let limit = turn.within.min(std::time::Duration::from_secs(60));
        let r = rig
            .server
            .request(&rig.endpoint, request, limit)
            .await
            .map_err(|e| device("an answer to the Package URI write", e.to_string()))?;
        let _ = writeln!(
            ctx.log,
            "  wrote Package URI {uri} -> {}",
            server::code_text(r.code)
        );
        if let (None, Some((name, _))) = (&self.uri, &image) {
            let events = ctx.events.clone();
            if let Some(task) = transfer_samples(delivery_of(rig)?, kind, name, events) {
                ctx.progress_tasks.push(task);
            }
        }
        if !self.code.allows(r.code) {
            return Err(device(
                format!("{} to the Package URI write", self.code),
                server::code_text(r.code),
            ));
        }
        Ok(())
    }
}

/// A push sample as a `transfer` event; a push knows the device by its
/// endpoint, not by an address.
fn transfer_event(p: &server::firmware::TransferProgress, endpoint: &str) -> crate::events::Event {
    crate::events::Event::Transfer {
        image: p.image.clone(),
        peer: p
            .peer
            .map_or_else(|| endpoint.to_string(), |a| a.to_string()),
        offset: p.offset as u64,
        size: p.size as u64,
        bytes: p.bytes,
        blocks: p.blocks,
        retransmissions: p.retransmissions,
        elapsed_ms: p.elapsed.as_millis() as u64,
        complete: p.complete,
    }
}

fn delivery_of(rig: &Session) -> Result<&FirmwareDelivery, StepError> {
    rig.firmware
        .as_ref()
        .ok_or_else(|| bench("firmware delivery not started"))
}

async fn read_ints(server: &ServerHandle, ep: &str, path: Path) -> Vec<i64> {
    match server.read(ep, path, None).await {
        Ok(r) => match r.content {
            Content::Records(records) => records
                .iter()
                .filter_map(|r| r.value.as_f64())
                .map(|v| v as i64)
                .collect(),
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firmware(yaml: &str) -> Result<Firmware, String> {
        serde_saphyr::from_str::<Firmware>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn the_expected_answer_is_one_code_or_any_of_several() {
        let f = firmware("{ role: upgrade }").unwrap();
        assert!(f.code.allows(204) && !f.code.allows(413));
        assert_eq!(f.code.to_string(), "2.04");
        let f = firmware("{ role: out-of-ram, method: push, code: \"4.13\" }").unwrap();
        assert!(f.code.allows(413) && !f.code.allows(204));
        let f =
            firmware("{ role: out-of-ram, method: push, code: [\"2.04\", \"4.13\", \"5.00\"] }")
                .unwrap();
        assert!([204, 413, 500].iter().all(|&c| f.code.allows(c)));
        assert!(!f.code.allows(404));
        assert_eq!(f.code.to_string(), "one of 2.04, 4.13, 5.00");
        let e = firmware("{ role: upgrade, code: [] }").unwrap_err();
        assert!(e.contains("empty list"), "{e}");
    }
}
