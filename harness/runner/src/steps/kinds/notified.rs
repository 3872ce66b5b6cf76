//! `notified: {path, in_order: [v, ...], until}`: the values the
//! notifications of an observation (started by an `observe` step) carried,
//! in the order a procedure allows them, e.g. State /5/x/3 going
//! Idle → Downloading → Downloaded while a firmware image is delivered
//! (ETS 1.0-int-760; LwM2M 1.1 Core Appendix E.6, the object 5 state
//! diagram).
//!
//! Each value may be skipped or repeated: a client sends a notification no
//! sooner than `pmin` after the previous one and then reports the value it
//! has at that moment, so a state it passed through meanwhile is never
//! notified; and it notifies again after `pmax` with nothing changed
//! (LwM2M 1.1 Core §5.1.2, Table 5.1.2-1; RFC 7641 §4.5: a notification
//! carries the current state). What must not happen is a value out of the
//! list or one that goes back in it. With `until`, the step waits for a
//! notification carrying that value; without, it checks the notifications
//! that have arrived so far.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use lwm2m::server::ServerEvent;
use lwm2m::{Path, Value};
use serde::Deserialize;
use server::EventSeq;

use crate::case::fields::CasePath;
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{bench, device, timed_out, StepError};
use crate::steps::value::matches;
use crate::steps::wait::{self, Wait};
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifiedSpec {
    /// The observed path (an earlier `observe` step's).
    path: CasePath,
    /// The values notifications may carry, in the order they may come;
    /// each may be skipped (pmin) or repeated (pmax).
    in_order: Vec<ScalarValue>,
    /// Wait for a notification carrying this value (one of `in_order`).
    until: Option<ScalarValue>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "NotifiedSpec")]
pub struct Notified {
    pub path: CasePath,
    pub in_order: Vec<ScalarValue>,
    pub until: Option<ScalarValue>,
}

/// A `notified` payload that no sequence of notifications could meet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifiedError {
    #[error("notified {0}: `in_order` lists no value")]
    NoValues(CasePath),
    #[error("notified {path}: `until: {until}` is not one of `in_order`")]
    UntilNotListed { path: CasePath, until: ScalarValue },
}

impl TryFrom<NotifiedSpec> for Notified {
    type Error = NotifiedError;
    fn try_from(n: NotifiedSpec) -> Result<Self, NotifiedError> {
        if n.in_order.is_empty() {
            return Err(NotifiedError::NoValues(n.path));
        }
        if let Some(until) = &n.until {
            if !n.in_order.contains(until) {
                return Err(NotifiedError::UntilNotListed {
                    path: n.path,
                    until: until.clone(),
                });
            }
        }
        Ok(Notified {
            path: n.path,
            in_order: n.in_order,
            until: n.until,
        })
    }
}

impl Step for Notified {
    fn describe(&self) -> String {
        let until = self
            .until
            .as_ref()
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        format!(
            "notifications of {} in the order {}{until}",
            self.path,
            shown(&self.in_order)
        )
    }

    /// A download's progress takes the rig's download wait.
    fn default_wait(&self, rig: &Session, _: &CaseContext) -> Option<Wait> {
        if self.until.is_some() && wait::is_delivery_status(&self.path.0) {
            wait::download(rig)
        } else {
            None
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move { self.watch(turn.within, ctx, rig).await })
    }
}

impl Notified {
    async fn watch(
        &self,
        within: Duration,
        ctx: &mut CaseContext,
        rig: &Session,
    ) -> Result<(), StepError> {
        let path = instances::resolve(rig, self.path)?;
        let id = *ctx.observations.get(&path).ok_or_else(|| {
            bench(format!(
                "no observe step started an observation of {path} in this case"
            ))
        })?;
        let of_this = move |e: &ServerEvent| matches!(e, ServerEvent::Notification { observation, .. } if *observation == id);
        let mut order = Order::new(&self.in_order);
        let mut after = EventSeq::START;
        let mut reached = false;
        // Notifications that came before this step: request ids are unique
        // per server, so only this observation's count.
        for (seq, event) in rig.server.events_since(EventSeq::START) {
            if of_this(&event) {
                after = seq;
                reached |= self.take(&mut order, path, &event, ctx)?;
            }
        }
        let end = Instant::now() + within;
        while self.until.is_some() && !reached {
            let left = end.saturating_duration_since(Instant::now());
            let (seq, event) =
                rig.server
                    .await_event(after, left, of_this)
                    .await
                    .map_err(|_| {
                        timed_out(
                            format!(
                                "a notification of {path} = {} within {within:?}",
                                self.until
                                    .as_ref()
                                    .map(|u| u.to_string())
                                    .unwrap_or_default()
                            ),
                            order.seen_text(),
                        )
                    })?;
            after = seq;
            reached = self.take(&mut order, path, &event, ctx)?;
        }
        Ok(())
    }

    /// Checks the value one notification carried; whether it is `until`'s.
    fn take(
        &self,
        order: &mut Order,
        path: Path,
        event: &ServerEvent,
        ctx: &mut CaseContext,
    ) -> Result<bool, StepError> {
        let ServerEvent::Notification { records, .. } = event else {
            return Ok(false);
        };
        let Some(v) = records
            .iter()
            .find(|r| r.path == path)
            .or(records.first())
            .map(|r| r.value.clone())
        else {
            // An empty notification (a link-format answer) carries no value.
            return Ok(false);
        };
        let _ = writeln!(ctx.log, "  -> notified {path} = {v}");
        order.push(v.clone()).map_err(|seen| {
            device(
                format!(
                    "notifications of {path} in the order {} (each may be skipped or repeated)",
                    shown(&self.in_order)
                ),
                seen,
            )
        })?;
        Ok(self.until.as_ref().is_some_and(|u| matches(&v, u)))
    }
}

/// Where a sequence of notified values stands in the allowed order.
#[derive(Debug)]
struct Order<'a> {
    allowed: &'a [ScalarValue],
    /// Index in `allowed` of the last value notified.
    at: usize,
    seen: Vec<Value>,
}

impl<'a> Order<'a> {
    fn new(allowed: &'a [ScalarValue]) -> Self {
        Order {
            allowed,
            at: 0,
            seen: Vec::new(),
        }
    }

    /// Takes the next notified value: it must be the current one of the
    /// order or a later one. The error tells the values notified so far.
    fn push(&mut self, v: Value) -> Result<(), String> {
        let next = self.allowed[self.at..]
            .iter()
            .position(|e| matches(&v, e))
            .map(|i| self.at + i);
        self.seen.push(v);
        match next {
            Some(i) => {
                self.at = i;
                Ok(())
            }
            None => Err(self.seen_text()),
        }
    }

    fn seen_text(&self) -> String {
        if self.seen.is_empty() {
            "no notification".into()
        } else {
            let values: Vec<String> = self.seen.iter().map(|v| v.to_string()).collect();
            format!("notified {}", values.join(", "))
        }
    }
}

fn shown(values: &[ScalarValue]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[i64]) -> Vec<ScalarValue> {
        values.iter().map(|v| ScalarValue::Integer(*v)).collect()
    }

    fn run(allowed: &[i64], notified: &[i64]) -> Result<(), String> {
        let allowed = ints(allowed);
        let mut order = Order::new(&allowed);
        for v in notified {
            order.push(Value::Integer(*v))?;
        }
        Ok(())
    }

    #[test]
    fn states_may_be_skipped_or_repeated_but_not_reversed() {
        // Idle → Downloading → Downloaded (Core Appendix E.6).
        run(&[0, 1, 2], &[0, 1, 2]).unwrap();
        // pmin coalesced Downloading away.
        run(&[0, 1, 2], &[2]).unwrap();
        // pmax repeated a state.
        run(&[0, 1, 2], &[1, 1, 2, 2]).unwrap();
        let e = run(&[0, 1, 2], &[0, 2, 1]).unwrap_err();
        assert_eq!(e, "notified 0, 2, 1");
    }

    #[test]
    fn a_value_outside_the_order_fails_with_what_was_notified() {
        // Update Result must stay 0 while a download goes well.
        let e = run(&[0], &[0, 5]).unwrap_err();
        assert_eq!(e, "notified 0, 5");
    }

    #[test]
    fn a_step_whose_until_is_not_in_the_order_is_refused_when_the_case_loads() {
        let e = serde_saphyr::from_str::<Notified>("{ path: /5/*/3, in_order: [0, 1], until: 2 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`until: 2` is not one of `in_order`"), "{e}");
        let e = serde_saphyr::from_str::<Notified>("{ path: /5/*/3, in_order: [] }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lists no value"), "{e}");
        let n: Notified =
            serde_saphyr::from_str("{ path: /5/*/3, in_order: [0, 1, 2], until: 2 }").unwrap();
        assert_eq!(
            n.describe(),
            "notifications of /5/*/3 in the order 0, 1, 2 until 2"
        );
    }
}
