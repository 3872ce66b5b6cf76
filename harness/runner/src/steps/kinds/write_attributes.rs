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
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "WriteAttributesSpec")]
pub struct WriteAttributes {
    pub path: CasePath,
    pub attributes: Attributes,
    /// Expected response code; default 2.04.
    pub code: Code,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteAttributesSpec {
    path: CasePath,
    pmin: Option<u32>,
    pmax: Option<u32>,
    gt: Option<f64>,
    lt: Option<f64>,
    st: Option<f64>,
    code: Option<Code>,
}

impl TryFrom<WriteAttributesSpec> for WriteAttributes {
    type Error = String;
    fn try_from(w: WriteAttributesSpec) -> Result<Self, String> {
        let attributes = Attributes {
            pmin: w.pmin,
            pmax: w.pmax,
            gt: w.gt,
            lt: w.lt,
            st: w.st,
        };
        if attributes == Attributes::default() {
            return Err(format!(
                "write_attributes {}: give at least one of pmin, pmax, gt, lt, st",
                w.path
            ));
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
        ]
        .into_iter()
        .flatten()
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
    }

    #[test]
    fn no_attribute_at_all_is_a_case_error() {
        let e = serde_saphyr::from_str::<WriteAttributes>("{ path: /3 }").unwrap_err();
        assert!(e.to_string().contains("at least one of pmin"), "{e}");
    }
}
