//! `observe_composite_instance: {object, change, values}`: an
//! Observe-Composite of two instances of one multi-instance object while one
//! of them is created or deleted — ETS int-308 ("Observe-Composite and
//! Creating Object Instance") and int-309 ("... Deleting Object Instance").
//!
//! The first instance is the one the device registered (`a`); the other
//! (`b`) takes the lowest id the registration does not list, so the case
//! names no id. With `change: create`, `/O/a` and `/O/b` are observed
//! together while only `a` exists (the first answer has values under `a`
//! and none under `b`), then `b` is created (POST /O, 2.01) with `values`;
//! a notification must follow with values under both, `b`'s equal to those
//! created. With `change: delete`, `b` is created first, both are observed
//! (values under each), `b` is deleted (2.02) and the first notification
//! after that must hold values under `a` and none under `b` (LwM2M 1.1
//! Core §6.4.3: a notification carries the current values of the paths;
//! an instance that is gone has none). Every notification holds nothing
//! outside the two paths.
//!
//! The step leaves the device as it found it: it cancels the observation
//! (2.05) and deletes `b` if it exists, also when a check failed. A device
//! that does not let the server create or delete instances of the object
//! (4.05, 4.01) is skipped with its answer, as is one without the composite
//! operations (see `composite.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lwm2m::server::DmRequest;
use lwm2m::{Path, Record};
use serde::Deserialize;

use crate::case::fields::{self, CaseFieldError, Format};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::exchange::{records_text, request_on};
use crate::steps::kinds::{composite, observe_composite};
use crate::steps::value::typed_value;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

/// What happens to the second instance while it is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceChange {
    /// Created while observed (ETS int-308).
    Create,
    /// Deleted while observed (ETS int-309).
    Delete,
}

/// The payload as a case writes it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObserveCompositeInstanceSpec {
    /// A multi-instance object the device registered an instance of.
    pub object: u16,
    pub change: InstanceChange,
    /// The created instance's values, by resource (`"0/0": "00c0ffee"`,
    /// `"3": text`), relative to the instance.
    pub values: BTreeMap<String, ScalarValue>,
    /// `senml-json` or `senml-cbor` for the observation; default: one the device listed.
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "ObserveCompositeInstanceSpec")]
pub struct ObserveCompositeInstance {
    pub object: u16,
    pub change: InstanceChange,
    /// Resource ids (and a resource instance id) below the instance, with their values.
    pub values: Vec<(Vec<u16>, ScalarValue)>,
    pub format: Option<Format>,
}

/// A payload that names no resource to create, or a malformed one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InstanceSpecError {
    #[error(
        "observe_composite_instance /{0}: `values` names no resource of the instance to create"
    )]
    NoValues(u16),
    #[error("observe_composite_instance /{object}: `{key}` is not a resource below the instance (`3` or `0/0`)")]
    BadResource { object: u16, key: String },
    #[error(transparent)]
    Field(#[from] CaseFieldError),
}

impl TryFrom<ObserveCompositeInstanceSpec> for ObserveCompositeInstance {
    type Error = InstanceSpecError;
    fn try_from(s: ObserveCompositeInstanceSpec) -> Result<Self, InstanceSpecError> {
        if s.values.is_empty() {
            return Err(InstanceSpecError::NoValues(s.object));
        }
        let mut values = Vec::with_capacity(s.values.len());
        for (key, v) in s.values {
            let ids: Option<Vec<u16>> = key.split('/').map(|p| p.parse().ok()).collect();
            match ids {
                Some(ids) if (1..=2).contains(&ids.len()) => values.push((ids, v)),
                _ => {
                    return Err(InstanceSpecError::BadResource {
                        object: s.object,
                        key,
                    })
                }
            }
        }
        Ok(ObserveCompositeInstance {
            object: s.object,
            change: s.change,
            values,
            format: s.format,
        })
    }
}

impl Step for ObserveCompositeInstance {
    fn describe(&self) -> String {
        let change = match self.change {
            InstanceChange::Create => "created",
            InstanceChange::Delete => "deleted",
        };
        format!(
            "observe-composite two instances of object {} while one is {change}",
            self.object
        )
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            composite::require_version(rig, "Observe-Composite")?;
            if ctx.composite_observation.is_some() {
                return Err(bench(
                    "observe_composite_instance: an Observe-Composite is still open; cancel it first",
                ));
            }
            let format = composite::request_format(
                "observe_composite_instance",
                self.format,
                "a path list",
            )?;
            let (a, b) = self.instances(rig)?;
            let records = self.records(rig, b)?;
            let outcome = self.procedure(rig, ctx, turn, a, b, &records, format).await;
            // Put the device back, whatever happened above.
            let restored = restore(rig, ctx, turn, b).await;
            outcome.and(restored)
        })
    }
}

impl ObserveCompositeInstance {
    /// The registered instance `a` and the unused id `b` for the other.
    fn instances(&self, rig: &Session) -> Result<(Path, Path), StepError> {
        let def = rig.registry.object(self.object).ok_or_else(|| {
            bench(format!(
                "observe_composite_instance: object {} is not in the rig's object model",
                self.object
            ))
        })?;
        if !def.multiple {
            return Err(bench(format!(
                "observe_composite_instance: object {} ({}) is single-instance; a second instance cannot be created",
                self.object, def.name
            )));
        }
        let a = crate::steps::instances::resolve(
            rig,
            crate::case::fields::CasePath(Path::instance(self.object, fields::ANY_INSTANCE)),
        )?;
        let reg = rig
            .server
            .registration(&rig.endpoint)
            .ok_or_else(|| bench("await registered first"))?;
        let taken: Vec<u16> = reg
            .instances()
            .iter()
            .filter(|p| p.object_id() == Some(self.object))
            .filter_map(|p| p.instance_id())
            .collect();
        let free = (0..fields::ANY_INSTANCE)
            .find(|i| !taken.contains(i))
            .ok_or_else(|| bench(format!("no free instance id in object {}", self.object)))?;
        Ok((a, Path::instance(self.object, free)))
    }

    /// The values to create `b` with, typed by the object model.
    fn records(&self, rig: &Session, b: Path) -> Result<Vec<Record>, StepError> {
        self.values
            .iter()
            .map(|(ids, v)| {
                let mut all = b.ids().to_vec();
                all.extend(ids);
                let path = Path::from_ids(&all)
                    .ok_or_else(|| bench(format!("{b}/{ids:?} is not a path")))?;
                let value = typed_value(&rig.registry, &path, v)
                    .map_err(|e| bench(format!("observe_composite_instance {path}: {e}")))?;
                Ok(Record::new(path, value))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn procedure(
        &self,
        rig: &Session,
        ctx: &mut CaseContext,
        turn: Turn,
        a: Path,
        b: Path,
        records: &[Record],
        format: Option<lwm2m::ContentFormat>,
    ) -> Result<(), StepError> {
        let paths = vec![a, b];
        if self.change == InstanceChange::Delete {
            create(rig, ctx, turn, b, records).await?;
        }
        let mut open = observe_composite::start(rig, paths.clone(), format, turn).await?;
        ctx.composite_observation = Some(open.clone());
        let first = match &open.observation.first.content {
            lwm2m::server::Content::Records(r) => r.clone(),
            _ => Vec::new(),
        };
        let _ = writeln!(ctx.log, "  -> {}", records_text(&first));
        let b_exists = self.change == InstanceChange::Delete;
        check_instances(
            &paths,
            &first,
            a,
            b,
            b_exists,
            "the Observe-Composite's answer",
        )?;
        match self.change {
            InstanceChange::Create => {
                create(rig, ctx, turn, b, records).await?;
                // Notifications of `a` alone may come before the one
                // the creation causes: each is checked, the wait ends with
                // the first that has `b`.
                let deadline = tokio::time::Instant::now() + turn.within;
                loop {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let step_turn = Turn {
                        within: left,
                        ..turn
                    };
                    let what = format!("a notification with values under {b} after its Create");
                    let got =
                        observe_composite::next_notification(rig, ctx, &mut open, step_turn, &what)
                            .await?;
                    let has_b = got.iter().any(|r| b.contains(&r.path));
                    check_instances(&paths, &got, a, b, has_b, "a notification")?;
                    if has_b {
                        check_created(records, &got)?;
                        break;
                    }
                }
            }
            InstanceChange::Delete => {
                delete(rig, ctx, turn, b).await?;
                // A notification sent before the Delete was answered may
                // still show `b`; the first one after it must not.
                open.cursor = rig.server.current_seq();
                let what = format!("a notification after the Delete of {b}");
                let got =
                    observe_composite::next_notification(rig, ctx, &mut open, turn, &what).await?;
                check_instances(
                    &paths,
                    &got,
                    a,
                    b,
                    false,
                    "the first notification after the Delete",
                )?;
            }
        }
        ctx.composite_observation = None;
        observe_composite::cancel(rig, ctx, &open, turn).await
    }
}

/// Every record lies under `a` or `b`, `a` has values, and `b` has values
/// exactly when `b_exists`.
fn check_instances(
    paths: &[Path],
    records: &[Record],
    a: Path,
    b: Path,
    b_exists: bool,
    what: &str,
) -> Result<(), StepError> {
    if let Some(r) = records
        .iter()
        .find(|r| !paths.iter().any(|p| p.contains(&r.path)))
    {
        return Err(device(
            format!("{what}: values under {a} and {b} only"),
            format!("{} = {}", r.path, r.value),
        ));
    }
    if !records.iter().any(|r| a.contains(&r.path)) {
        return Err(device(
            format!("{what}: values under {a}"),
            format!("none in {}", records_text(records)),
        ));
    }
    let under_b = records.iter().any(|r| b.contains(&r.path));
    if under_b != b_exists {
        let expected = if b_exists {
            format!("{what}: values under {b}, which exists")
        } else {
            format!("{what}: no value under {b}, which does not exist")
        };
        return Err(device(expected, records_text(records)));
    }
    Ok(())
}

/// Each value `b` was created with is in the notification, equal by meaning.
fn check_created(created: &[Record], got: &[Record]) -> Result<(), StepError> {
    for c in created {
        let same = got.iter().any(|r| {
            r.path == c.path
                && (r.value == c.value
                    || (r.value.as_f64().is_some() && r.value.as_f64() == c.value.as_f64()))
        });
        if !same {
            return Err(device(
                format!("{} = {} (as created) in the notification", c.path, c.value),
                records_text(got),
            ));
        }
    }
    Ok(())
}

/// Create (Core §6.3.6: POST /O with the new instance's values), 2.01.
async fn create(
    rig: &Session,
    ctx: &mut CaseContext,
    turn: Turn,
    b: Path,
    records: &[Record],
) -> Result<(), StepError> {
    let request = DmRequest::Create {
        object: Path::object(b.object_id().unwrap_or_default()),
        records: records.to_vec(),
        format: None,
    };
    let text = server::describe_request(&request);
    let r = request_on(rig, request, turn.within).await?;
    let _ = writeln!(ctx.log, "  create {b}: {}", server::code_text(r.code));
    match r.code {
        201 => Ok(()),
        401 | 405 => Err(StepError::Skip(format!(
            "not applicable: the device does not let this server create instances of {} (it answered {} to {text})",
            Path::object(b.object_id().unwrap_or_default()),
            server::code_text(r.code)
        ))),
        other => Err(device(
            format!("2.01 Created to {text}"),
            server::code_text(other),
        )),
    }
}

/// Delete (Core §6.3.7) of `b`, 2.02.
async fn delete(
    rig: &Session,
    ctx: &mut CaseContext,
    turn: Turn,
    b: Path,
) -> Result<(), StepError> {
    let request = DmRequest::Delete { path: b };
    let text = server::describe_request(&request);
    let r = request_on(rig, request, turn.within).await?;
    let _ = writeln!(ctx.log, "  delete {b}: {}", server::code_text(r.code));
    match r.code {
        202 => Ok(()),
        401 | 405 => Err(StepError::Skip(format!(
            "not applicable: the device does not let this server delete {b} (it answered {} to {text})",
            server::code_text(r.code)
        ))),
        other => Err(device(format!("2.02 Deleted to {text}"), server::code_text(other))),
    }
}

/// Cancels a composite observation still open and deletes `b` if the
/// device still lists it, so the device is as the step found it.
async fn restore(
    rig: &Session,
    ctx: &mut CaseContext,
    turn: Turn,
    b: Path,
) -> Result<(), StepError> {
    let within = turn.within.max(std::time::Duration::from_secs(5));
    let turn = Turn { within, ..turn };
    if let Some(open) = ctx.composite_observation.take() {
        observe_composite::cancel(rig, ctx, &open, turn).await?;
    }
    let r = request_on(rig, DmRequest::Delete { path: b }, within).await?;
    match r.code {
        // Deleted now, or already gone (the procedure deleted it).
        202 | 404 => Ok(()),
        other => Err(device(
            format!("{b} deleted (2.02) or gone (4.04) at the end of the step"),
            server::code_text(other),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwm2m::Value;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    fn rec(path: &str, v: i64) -> Record {
        Record::new(p(path), Value::Integer(v))
    }

    /// ETS int-308/309's pass criteria, on what a notification holds: values
    /// under `a`, under `b` exactly when it exists, nothing else. A
    /// notification still showing a deleted instance fails, naming it.
    #[test]
    fn a_notification_shows_exactly_the_instances_that_exist() {
        let (a, b) = (p("/19/0"), p("/19/1"));
        let paths = [a, b];
        let both = [rec("/19/0/1", 1), rec("/19/1/1", 2)];
        let only_a = [rec("/19/0/1", 1)];
        check_instances(&paths, &both, a, b, true, "n").unwrap();
        check_instances(&paths, &only_a, a, b, false, "n").unwrap();
        match check_instances(
            &paths,
            &both,
            a,
            b,
            false,
            "the first notification after the Delete",
        ) {
            Err(StepError::Device { expected, seen }) => {
                assert!(expected.contains("no value under /19/1"), "{expected}");
                assert!(seen.contains("/19/1/1"), "{seen}");
            }
            other => panic!("expected the device's failure, got {other:?}"),
        }
        assert!(
            check_instances(&paths, &only_a, a, b, true, "n").is_err(),
            "created instance missing"
        );
        let outside = [rec("/19/0/1", 1), rec("/3/0/9", 80)];
        assert!(
            check_instances(&paths, &outside, a, b, false, "n").is_err(),
            "a path not observed"
        );
        assert!(
            check_instances(&paths, &[rec("/19/1/1", 2)], a, b, true, "n").is_err(),
            "a missing"
        );
    }

    #[test]
    fn the_created_values_must_come_back_as_created() {
        let created = [Record::new(
            p("/19/1/0/0"),
            Value::Opaque(vec![0xc0, 0xff, 0xee]),
        )];
        let same = [Record::new(
            p("/19/1/0/0"),
            Value::Opaque(vec![0xc0, 0xff, 0xee]),
        )];
        check_created(&created, &same).unwrap();
        let other = [Record::new(p("/19/1/0/0"), Value::Opaque(vec![0x00]))];
        assert!(check_created(&created, &other).is_err());
    }
}
