//! `write_attributes: {path, pmin, pmax, gt, lt, st, code}`: a
//! Write-Attributes (LwM2M 1.1 Core §6.3.4, Transport §6.3: PUT with the
//! attributes as Uri-Query and no payload), answered 2.04 unless the case
//! expects another code — e.g. 4.01 on the Security object (ETS int-221).

use std::fmt::Write as _;

use lwm2m::server::{Attributes, DmRequest};
use serde::Deserialize;
use server::code_text;

use crate::case::fields::{CasePath, Code};
use crate::session::Session;
use crate::steps::exchange::exchange;
use crate::steps::{instances, CaseContext, Step, StepError, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "WriteAttributesSpec")]
pub struct WriteAttributes {
    pub path: CasePath,
    #[schemars(skip)] // parsed from its `try_from` type
    pub attributes: Attributes,
    /// Expected response code; default 2.04.
    pub code: Code,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteAttributesSpec {
    path: CasePath,
    pmin: Option<u32>,
    pmax: Option<u32>,
    gt: Option<f64>,
    lt: Option<f64>,
    st: Option<f64>,
    /// LwM2M 1.1 evaluation periods (Core Table 5.1.2-1; ETS int-261).
    epmin: Option<u32>,
    epmax: Option<u32>,
    /// Attributes to remove (`?pmin`), to leave the device as it was.
    #[serde(default)]
    unset: Vec<String>,
    code: Option<Code>,
}

/// The notification attributes a case may write or unset (LwM2M 1.1 Core
/// Table 5.1.2-1).
const NAMES: [&str; 7] = ["pmin", "pmax", "gt", "lt", "st", "epmin", "epmax"];

/// A `write_attributes` step that cannot be sent as written.
#[derive(Debug, thiserror::Error)]
pub enum WriteAttributesSpecError {
    #[error("write_attributes {path}: unset `{name}`: not one of {}", NAMES.join(", "))]
    UnknownUnset { path: CasePath, name: String },
    #[error(
        "write_attributes {0}: give at least one of pmin, pmax, gt, lt, st, epmin, epmax, or unset"
    )]
    Nothing(CasePath),
}

impl TryFrom<WriteAttributesSpec> for WriteAttributes {
    type Error = WriteAttributesSpecError;
    fn try_from(w: WriteAttributesSpec) -> Result<Self, WriteAttributesSpecError> {
        let attributes = Attributes {
            pmin: w.pmin,
            pmax: w.pmax,
            gt: w.gt,
            lt: w.lt,
            st: w.st,
            epmin: w.epmin,
            epmax: w.epmax,
            unset: w.unset,
        };
        if let Some(bad) = attributes
            .unset
            .iter()
            .find(|n| !NAMES.contains(&n.as_str()))
        {
            return Err(WriteAttributesSpecError::UnknownUnset {
                path: w.path,
                name: bad.clone(),
            });
        }
        if attributes == Attributes::default() {
            return Err(WriteAttributesSpecError::Nothing(w.path));
        }
        Ok(WriteAttributes {
            path: w.path,
            attributes,
            code: w.code.unwrap_or(Code::CHANGED),
        })
    }
}

impl Step for WriteAttributes {
    fn describe(&self) -> String {
        let a = &self.attributes;
        let parts: Vec<String> = [
            a.pmin.map(|v| format!("pmin={v}")),
            a.pmax.map(|v| format!("pmax={v}")),
            a.gt.map(|v| format!("gt={v}")),
            a.lt.map(|v| format!("lt={v}")),
            a.st.map(|v| format!("st={v}")),
            a.epmin.map(|v| format!("epmin={v}")),
            a.epmax.map(|v| format!("epmax={v}")),
        ]
        .into_iter()
        .flatten()
        .chain(a.unset.iter().cloned())
        .collect();
        format!("write attributes {}?{}", self.path, parts.join("&"))
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.path)?;
            let version = rig
                .server
                .registration(&rig.endpoint)
                .map(|r| r.lwm2m_version)
                .unwrap_or_default();
            if let Some(why) = needs_1_1(path, &self.attributes, &version) {
                return Err(StepError::Skip(format!(
                    "not applicable: {why}, and the device registered as LwM2M {version}"
                )));
            }
            let request = DmRequest::WriteAttributes {
                path,
                attributes: self.attributes.clone(),
            };
            let r = exchange(rig, request, turn.within, self.code).await?;
            let _ = writeln!(ctx.log, "  -> {}", code_text(r.code));
            Ok(())
        })
    }
}

/// Why this Write-Attributes is LwM2M 1.1 only, if it is: attributes on
/// a Resource Instance, and `epmin`/`epmax`, came with 1.1 (Core §5.1.2,
/// Table 5.1.2-1); a 1.0 device may refuse them and still be right.
fn needs_1_1(path: lwm2m::Path, a: &Attributes, version: &str) -> Option<String> {
    if version != "1.0" {
        return None;
    }
    if path.depth() == 4 {
        return Some(format!(
            "attributes on a Resource Instance ({path}) are LwM2M 1.1"
        ));
    }
    let epmin = a.epmin.is_some() || a.unset.iter().any(|n| n == "epmin");
    let epmax = a.epmax.is_some() || a.unset.iter().any(|n| n == "epmax");
    (epmin || epmax).then(|| "epmin and epmax are LwM2M 1.1 attributes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_code_come_from_the_case() {
        let w: WriteAttributes =
            serde_saphyr::from_str("{ path: /0, pmin: 10, code: \"4.01\" }").unwrap();
        assert_eq!(w.attributes.pmin, Some(10));
        assert_eq!(w.code, Code(401));
        assert_eq!(w.describe(), "write attributes /0?pmin=10");
        let w: WriteAttributes = serde_saphyr::from_str("{ path: /3/0/7, gt: 6.5 }").unwrap();
        assert_eq!(w.code, Code::CHANGED);
        let w: WriteAttributes =
            serde_saphyr::from_str("{ path: /3/0/11/0, pmax: 100, epmin: 1, epmax: 20 }").unwrap();
        assert_eq!(
            (w.attributes.epmin, w.attributes.epmax),
            (Some(1), Some(20))
        );
        assert_eq!(
            w.describe(),
            "write attributes /3/0/11/0?pmax=100&epmin=1&epmax=20"
        );
    }

    #[test]
    fn unset_sends_bare_names_and_refuses_unknown_ones() {
        let w: WriteAttributes =
            serde_saphyr::from_str("{ path: /3, unset: [pmin, pmax] }").unwrap();
        assert_eq!(w.describe(), "write attributes /3?pmin&pmax");
        let e =
            serde_saphyr::from_str::<WriteAttributes>("{ path: /3, unset: [pmn] }").unwrap_err();
        assert!(e.to_string().contains("unset `pmn`"), "{e}");
    }

    #[test]
    fn resource_instance_and_epmin_attributes_are_skipped_for_a_1_0_device() {
        let epmin = Attributes {
            epmin: Some(1),
            ..Default::default()
        };
        let pmax = Attributes {
            pmax: Some(100),
            ..Default::default()
        };
        let instance = lwm2m::Path::resource_instance(3, 0, 11, 0);
        let resource = lwm2m::Path::resource(3, 0, 11);
        assert!(needs_1_1(instance, &pmax, "1.0").is_some());
        assert!(needs_1_1(resource, &epmin, "1.0").is_some());
        assert!(needs_1_1(resource, &pmax, "1.0").is_none());
        assert!(needs_1_1(instance, &epmin, "1.1").is_none());
    }

    #[test]
    fn no_attribute_at_all_is_a_case_error() {
        let e = serde_saphyr::from_str::<WriteAttributes>("{ path: /3 }").unwrap_err();
        assert!(e.to_string().contains("at least one of pmin"), "{e}");
    }
}
