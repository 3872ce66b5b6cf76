//! `discover: /3` or `{path, contains}`: a Discover and the links its answer
//! must list, the way the TS lets a client of its version say them.

use std::fmt::Write as _;

use lwm2m::server::{Content, DmRequest};
use lwm2m::Path;
use serde::Deserialize;

use crate::case::fields::{CaseFieldError, CasePath, Code};
use crate::case::model::StringOr;
use crate::session::Session;
use crate::steps::error::device;
use crate::steps::exchange::exchange;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverFull {
    path: CasePath,
    /// Link targets that must be in the answer.
    #[serde(default)]
    contains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "StringOr<DiscoverFull>")]
pub struct Discover {
    pub path: CasePath,
    pub contains: Vec<String>,
}

impl TryFrom<StringOr<DiscoverFull>> for Discover {
    type Error = CaseFieldError;
    fn try_from(d: StringOr<DiscoverFull>) -> Result<Self, CaseFieldError> {
        Ok(match d {
            StringOr::Short(p) => Discover {
                path: CasePath::try_from(p)?,
                contains: Vec::new(),
            },
            StringOr::Long(f) => Discover {
                path: f.path,
                contains: f.contains,
            },
        })
    }
}

impl Step for Discover {
    fn describe(&self) -> String {
        format!("discover {}", self.path)
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.path)?;
            let r = exchange(
                rig,
                DmRequest::Discover { path },
                turn.within,
                Code::CONTENT,
            )
            .await?;
            let Content::Links(links) = &r.content else {
                return Err(device("a link-format answer", format!("{:?}", r.content)));
            };
            let targets: Vec<&str> = links.iter().map(|l| l.target.as_str()).collect();
            let _ = writeln!(ctx.log, "  -> {}", targets.join(","));
            let version = rig
                .server
                .registration(&rig.endpoint)
                .map(|r| r.lwm2m_version)
                .unwrap_or_default();
            for want in &self.contains {
                if !discover_lists(&targets, want, &version) {
                    return Err(device(
                        format!("link <{want}> in the Discover answer"),
                        targets.join(","),
                    ));
                }
            }
            Ok(())
        })
    }
}

/// Whether a Discover answer lists `want` the way the TS lets a client of
/// `version` say it. LwM2M 1.1 Core §5.4.2 (Discover on an Object) lists
/// the Object, its Instances and their Resources; LwM2M 1.0 Core §5.4.2
/// lists the Object and the Resources of its Instances, so there an
/// instance is listed when one of its resources is (`</3>,</3/0/0>,…`).
fn discover_lists(targets: &[&str], want: &str, version: &str) -> bool {
    if targets.contains(&want) {
        return true;
    }
    let is_instance = want.parse::<Path>().is_ok_and(|p| p.depth() == 2);
    version == "1.0"
        && is_instance
        && targets.iter().any(|t| {
            t.strip_prefix(want)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_listed_by_its_resources_only_under_lwm2m_1_0() {
        let answer = ["/3", "/3/0/0", "/3/0/1"];
        assert!(discover_lists(&answer, "/3/0", "1.0"));
        assert!(!discover_lists(&answer, "/3/0", "1.1"));
        assert!(discover_lists(&answer, "/3/0/1", "1.1"));
        assert!(!discover_lists(&["/3", "/3/00/1"], "/3/0", "1.0"));
    }
}
