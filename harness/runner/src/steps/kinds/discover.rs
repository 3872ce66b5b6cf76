//! `discover: /3` or `{path, contains, attributes}`: a Discover, the links
//! its answer must list and the attributes those links must carry, the way
//! the TS lets a client of its version say them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lwm2m::format::Link;
use lwm2m::server::{Content, DmRequest};
use lwm2m::Path;
use serde::Deserialize;

use crate::case::fields::{CaseFieldError, CasePath, Code};
use crate::case::model::StringOr;
use crate::session::Session;
use crate::steps::error::{device, StepError};
use crate::steps::exchange::exchange;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

/// What a link attribute must say: a number (compared as a number, so
/// `lt=1` and `lt=1.0` are the same), a text, or `read` for `dim`: the
/// number of Resource Instances a Read of that resource returns (Core
/// §5.1.1 / §5.4.2: `dim` is the number of instances of a multiple
/// resource), so a case need not know how many a device has.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AttributeValue {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverFull {
    path: CasePath,
    /// Link targets that must be in the answer.
    #[serde(default)]
    contains: Vec<String>,
    /// Per link target, the attributes its link must carry.
    #[serde(default)]
    attributes: BTreeMap<String, BTreeMap<String, AttributeValue>>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "StringOr<DiscoverFull>")]
pub struct Discover {
    pub path: CasePath,
    pub contains: Vec<String>,
    pub attributes: BTreeMap<String, BTreeMap<String, AttributeValue>>,
}

/// A `discover` step that cannot be run as written.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverSpecError {
    #[error(transparent)]
    Path(#[from] CaseFieldError),
    /// Only `dim` (the number of resource instances) can be counted by a Read.
    #[error("discover {path}: `{name}: read` under {target}: only `dim` is counted by a Read")]
    ReadOnlyForDim {
        path: CasePath,
        name: String,
        target: String,
    },
}

impl TryFrom<StringOr<DiscoverFull>> for Discover {
    type Error = DiscoverSpecError;
    fn try_from(d: StringOr<DiscoverFull>) -> Result<Self, DiscoverSpecError> {
        Ok(match d {
            StringOr::Short(p) => Discover {
                path: CasePath::try_from(p)?,
                contains: Vec::new(),
                attributes: BTreeMap::new(),
            },
            StringOr::Long(f) => {
                for (target, attrs) in &f.attributes {
                    if let Some((name, _)) = attrs
                        .iter()
                        .find(|(n, v)| **v == AttributeValue::Text("read".into()) && *n != "dim")
                    {
                        return Err(DiscoverSpecError::ReadOnlyForDim {
                            path: f.path,
                            name: name.clone(),
                            target: target.clone(),
                        });
                    }
                }
                Discover {
                    path: f.path,
                    contains: f.contains,
                    attributes: f.attributes,
                }
            }
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
            for (target, attrs) in &self.attributes {
                if !applies(target, None, &version) {
                    let _ = writeln!(ctx.log, "  (<{target}>: not listed by a {version} client)");
                    continue;
                }
                let Some(link) = links.iter().find(|l| l.target == *target) else {
                    return Err(device(
                        format!("link <{target}> in the Discover answer"),
                        targets.join(","),
                    ));
                };
                for (name, want) in attrs {
                    if !applies(target, Some(name), &version) {
                        let _ = writeln!(ctx.log, "  ({name}: not a {version} attribute)");
                        continue;
                    }
                    let want = match want {
                        AttributeValue::Text(t) if t == "read" => {
                            AttributeValue::Number(instance_count(rig, target, turn).await? as f64)
                        }
                        other => other.clone(),
                    };
                    check_attribute(link, name, &want)?;
                }
                let _ = writeln!(
                    ctx.log,
                    "  -> {}",
                    lwm2m::format::encode_links(std::slice::from_ref(link))
                );
            }
            Ok(())
        })
    }
}

/// Whether a check of `target` (and of its attribute `name`) applies to a
/// client of `version`: LwM2M 1.0 Discover lists no Resource Instances
/// (1.0 Core §5.4.2), and `epmin`/`epmax` are 1.1 attributes (1.1 Core
/// Table 5.1.2-1).
fn applies(target: &str, name: Option<&str>, version: &str) -> bool {
    if version != "1.0" {
        return true;
    }
    let instance_level = target.parse::<Path>().is_ok_and(|p| p.depth() == 4);
    !instance_level && !matches!(name, Some("epmin" | "epmax"))
}

/// The number of Resource Instances a Read of `target` returns.
async fn instance_count(rig: &Session, target: &str, turn: Turn) -> Result<usize, StepError> {
    let path: Path = target
        .parse()
        .map_err(|e| StepError::Bench(format!("dim: read under {target}: not a path: {e}")))?;
    let r = exchange(
        rig,
        DmRequest::Read { path, format: None },
        turn.within,
        Code::CONTENT,
    )
    .await?;
    match &r.content {
        Content::Records(rs) => Ok(rs.iter().filter(|r| r.path.depth() == 4).count()),
        other => Err(device(format!("values of {path}"), format!("{other:?}"))),
    }
}

/// Checks that `link` carries `name` with the value `want`.
fn check_attribute(link: &Link, name: &str, want: &AttributeValue) -> Result<(), StepError> {
    let seen = link.attribute(name);
    let ok = match (want, seen) {
        (AttributeValue::Number(n), Some(s)) => s
            .parse::<f64>()
            .is_ok_and(|v| (v - n).abs() <= 1e-9 * n.abs().max(1.0)),
        (AttributeValue::Text(t), Some(s)) => s.trim_matches('"') == t,
        (_, None) => false,
    };
    if ok {
        return Ok(());
    }
    let want = match want {
        AttributeValue::Number(n) => n.to_string(),
        AttributeValue::Text(t) => t.clone(),
    };
    Err(device(
        format!("<{}>;{name}={want} in the Discover answer", link.target),
        lwm2m::format::encode_links(std::slice::from_ref(link)),
    ))
}

/// Whether a Discover answer lists `want` the way the TS lets a client of
/// `version` say it. LwM2M 1.1 Core §5.4.2 (Discover on an Object) lists
/// the Object, its Instances and their Resources; LwM2M 1.0 Core §5.4.2
/// lists the Object and the Resources of its Instances, so there an
/// instance is listed when one of its resources is (`</3>,</3/0/0>,…`),
/// and Resource Instances are not listed at all (1.1 lists them under a
/// Discover of their Resource).
fn discover_lists(targets: &[&str], want: &str, version: &str) -> bool {
    if targets.contains(&want) {
        return true;
    }
    let depth = want.parse::<Path>().map_or(0, |p| p.depth());
    if version == "1.0" && depth == 4 {
        // 1.0 Discover lists no Resource Instances: nothing to require.
        return true;
    }
    let is_instance = depth == 2;
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
        assert!(discover_lists(&["/3/0/11"], "/3/0/11/0", "1.0"));
        assert!(!discover_lists(&["/3/0/11"], "/3/0/11/0", "1.1"));
    }

    #[test]
    fn attributes_compare_as_numbers_and_name_the_link() {
        let link: Link = lwm2m::format::parse_links("</3/0/7>;dim=2;lt=1.0;gt=6;st=1")
            .unwrap()
            .remove(0);
        assert!(check_attribute(&link, "lt", &AttributeValue::Number(1.0)).is_ok());
        assert!(check_attribute(&link, "gt", &AttributeValue::Number(6.0)).is_ok());
        assert!(check_attribute(&link, "dim", &AttributeValue::Number(2.0)).is_ok());
        let wrong = check_attribute(&link, "dim", &AttributeValue::Number(3.0)).unwrap_err();
        assert!(wrong.to_string().contains("</3/0/7>;dim=3"), "{wrong}");
        assert!(wrong.to_string().contains("dim=2"), "{wrong}");
        let absent = check_attribute(&link, "pmin", &AttributeValue::Number(10.0)).unwrap_err();
        assert!(absent.to_string().contains("pmin=10"), "{absent}");
    }

    #[test]
    fn a_1_0_client_is_not_asked_for_instance_links_or_epmin() {
        assert!(applies("/3/0/11", Some("pmax"), "1.0"));
        assert!(!applies("/3/0/11/0", None, "1.0"));
        assert!(!applies("/3/0/11", Some("epmin"), "1.0"));
        assert!(applies("/3/0/11/0", Some("epmax"), "1.1"));
    }

    #[test]
    fn read_is_only_for_dim() {
        let d: Discover = serde_saphyr::from_str(
            "{ path: /3/0, attributes: { /3/0/7: { dim: read, gt: 6, lt: \"1\" } } }",
        )
        .unwrap();
        assert_eq!(
            d.attributes["/3/0/7"]["dim"],
            AttributeValue::Text("read".into())
        );
        assert_eq!(d.attributes["/3/0/7"]["gt"], AttributeValue::Number(6.0));
        let e = serde_saphyr::from_str::<Discover>(
            "{ path: /3/0, attributes: { /3/0/7: { pmin: read } } }",
        )
        .unwrap_err();
        assert!(e.to_string().contains("only `dim`"), "{e}");
    }
}
