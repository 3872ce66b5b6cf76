//! `bootstrap_offers: /2`: the rest of the case applies only to a device
//! whose latest Bootstrap-Discover of `/` (LwM2M 1.1 Core §6.1.7.3) in this
//! case listed this object (its `</2>` link or an instance of it);
//! otherwise the case is skipped, quoting what the device listed.
//!
//! Optional objects a device may lack are decided from what it said, not
//! assumed: a single-server device needs no Access Control object (Core
//! §7.3), so ETS LightweightM2M-1.1-int-8's Bootstrap-Write of /2/0 applies
//! only where the Bootstrap-Discover shows object 2. The registration's
//! object list cannot tell: it lists instances, and object 2 has none until
//! a Bootstrap-Server writes one. A case with no Bootstrap-Discover of `/`
//! before this step has made a mistake, which the step reports as the
//! harness's (an error), not as a skip.
//!
//! Only the case's own Discover counts (the bootstrap server's events after
//! the case began, [`CaseContext::case_start`]): the bootstrap server keeps
//! the whole run's history, and an earlier case's Discover may describe a
//! device configured otherwise (a bootstrap since may have deleted or
//! written object 2), or hide that this case forgot its own.

use std::fmt::Write as _;

use lwm2m::bootstrap::BootstrapEvent;
use lwm2m::server::Content;
use lwm2m::Path;
use serde::Deserialize;
use server::{links_text, BootstrapServerEvent, EventSeq};

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::{bench, StepError};
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
pub struct BootstrapOffers(
    #[serde(deserialize_with = "object_path")]
    #[schemars(with = "crate::schema::ObjectPath")]
    Path,
);

fn object_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Path, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<Path>()
        .ok()
        .filter(|p| p.depth() == 1)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bootstrap_offers: {text:?}: give an object path like /2"
            ))
        })
}

/// The links of `endpoint`'s latest Bootstrap-Discover of `/` among
/// `events` numbered above `after` (the case's start).
fn latest_discover(
    endpoint: &str,
    events: &[(EventSeq, BootstrapServerEvent)],
    after: EventSeq,
) -> Option<Vec<lwm2m::format::Link>> {
    events
        .iter()
        .rev()
        .filter(|(seq, _)| *seq > after)
        .find_map(|(_, e)| match e {
            BootstrapServerEvent::Bootstrap(BootstrapEvent::OpCompleted {
                endpoint: ep,
                op,
                content: Content::Links(links),
                ..
            }) if ep == endpoint && op == "Bootstrap-Discover /" => Some(links.clone()),
            _ => None,
        })
}

/// `Ok` when `links` show `object`; the skip naming what they show otherwise.
fn judge(object: Path, links: &[lwm2m::format::Link]) -> Result<(), StepError> {
    let shown = links
        .iter()
        .filter_map(|l| l.path())
        .any(|p| object.contains(&p));
    if shown {
        return Ok(());
    }
    Err(StepError::Skip(format!(
        "not applicable: the device does not offer object {} (its Bootstrap-Discover of /: {})",
        object.object_id().unwrap_or_default(),
        links_text(links)
    )))
}

impl Step for BootstrapOffers {
    fn describe(&self) -> String {
        format!("the device's Bootstrap-Discover lists {}", self.0)
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Bootstrap]
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let bs = crate::steps::kinds::bootstrap::bootstrap_server(rig)?;
            let after = ctx.case_start.bootstrap_seq;
            let links = latest_discover(&rig.endpoint, &bs.events_since(after), after)
                .ok_or_else(|| {
                    bench(format!(
                        "bootstrap_offers {}: no Bootstrap-Discover of / by {} in this case to decide by (the case's bootstrap script must discover / first)",
                        self.0, rig.endpoint
                    ))
                })?;
            let _ = writeln!(ctx.log, "  Bootstrap-Discover / -> {}", links_text(&links));
            judge(self.0, &links)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::format::parse_links;

    fn discovered(seq: u64, ep: &str, links: &str) -> (EventSeq, BootstrapServerEvent) {
        (
            EventSeq(seq),
            BootstrapServerEvent::Bootstrap(BootstrapEvent::OpCompleted {
                endpoint: ep.into(),
                index: 0,
                op: "Bootstrap-Discover /".into(),
                code: 205,
                content: Content::Links(parse_links(links).unwrap()),
            }),
        )
    }

    #[test]
    fn an_object_link_or_an_instance_shows_the_object() {
        let with = parse_links("</>;lwm2m=1.1,</0/0>,</1/0>;ssid=1,</2>;ver=1.1,</3/0>").unwrap();
        assert!(judge(Path::object(2), &with).is_ok());
        let instance = parse_links("</>;lwm2m=1.1,</2/7>,</3/0>").unwrap();
        assert!(judge(Path::object(2), &instance).is_ok());
        let without = parse_links("</>;lwm2m=1.1,</0/0>,</1/0>;ssid=1,</3/0>").unwrap();
        let StepError::Skip(reason) = judge(Path::object(2), &without).unwrap_err() else {
            panic!("a device without the object is a skip");
        };
        assert!(reason.contains("does not offer object 2"), "{reason}");
        assert!(reason.contains("</3/0>"), "{reason}");
        // `</>` is no object: /2 is not "shown" by the root link.
        assert!(judge(Path::object(2), &parse_links("</>;lwm2m=1.1").unwrap()).is_err());
    }

    #[test]
    fn the_latest_discover_of_this_endpoint_counts() {
        let events = [
            discovered(1, "meter-1", "</2>"),
            discovered(2, "other", "</3/0>"),
            discovered(3, "meter-1", "</3/0>"),
        ];
        let links = latest_discover("meter-1", &events, EventSeq::START).unwrap();
        assert!(judge(Path::object(2), &links).is_err());
        assert!(latest_discover("meter-9", &events, EventSeq::START).is_none());
    }

    #[test]
    fn an_earlier_cases_discover_does_not_count() {
        // Event 1 is an earlier case's Discover (the device then had /2);
        // this case began after event 2 and has not discovered yet.
        let events = [
            discovered(1, "meter-1", "</2>,</3/0>"),
            discovered(2, "other", "</2>"),
        ];
        assert!(latest_discover("meter-1", &events, EventSeq(2)).is_none());
        // Its own Discover, event 3, decides, whatever the earlier one said.
        let mut events = events.to_vec();
        events.push(discovered(3, "meter-1", "</3/0>"));
        let links = latest_discover("meter-1", &events, EventSeq(2)).unwrap();
        assert!(judge(Path::object(2), &links).is_err());
    }

    #[test]
    fn only_an_object_path_parses() {
        let s: BootstrapOffers = serde_saphyr::from_str("/2").unwrap();
        assert_eq!(s.0, Path::object(2));
        let e = serde_saphyr::from_str::<BootstrapOffers>("/2/0").unwrap_err();
        assert!(e.to_string().contains("give an object path like /2"), "{e}");
    }
}
