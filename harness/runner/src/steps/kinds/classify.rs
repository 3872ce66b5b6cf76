//! `classify`: after a power cut, how the device came back — `recovered`
//! (registered again, state consistent), `rolled_back` (old firmware,
//! failure result reported) or `broken` (does not register, or what it
//! reports disagrees with what its debug port reads). A broken device fails
//! the case; `allow` narrows what passes. The classification does not rely
//! only on what the device says over LwM2M: the version it reports must be
//! the version its debug port finds running.

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::firmware::{resource, FirmwareState, UpdateResult, OBJECT_ID};
use lwm2m::Path;
use serde::Deserialize;

use crate::session::Session;
use crate::steps::error::{device, StepError};
use crate::steps::exchange::read_value;
use crate::steps::kinds::debug::read_debug;
use crate::steps::{wait, CaseContext, Step, StepFuture, Turn, Wait};

/// How long each read of the classification may take.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// The three ways a device comes back from a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    Recovered,
    RolledBack,
    /// Never allowed: a broken device fails the case.
    #[serde(skip)]
    Broken,
}

impl Recovery {
    pub fn name(self) -> &'static str {
        match self {
            Recovery::Recovered => "recovered",
            Recovery::RolledBack => "rolled_back",
            Recovery::Broken => "broken",
        }
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Classify {
    /// How long the device may take to register again (default: the rig's
    /// restart wait, at most the step's).
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    #[schemars(with = "Option<rig::schema::DurationText>")]
    pub within: Option<Duration>,
    /// The classes that pass (default: recovered and rolled_back).
    #[serde(default)]
    pub allow: Vec<Recovery>,
}

impl Step for Classify {
    fn describe(&self) -> String {
        "classify the device after the cut".into()
    }

    fn default_wait(&self, rig: &Session, ctx: &CaseContext) -> Option<Wait> {
        match self.within {
            None => Some(wait::restart(rig, ctx)),
            Some(_) => None,
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let limit = self.within.unwrap_or(turn.within).min(turn.within);
            let registered = rig
                .server
                .await_registered(&rig.endpoint, ctx.cursor, limit)
                .await;
            let registered = match registered {
                Ok((seq, _)) => {
                    ctx.registered(seq);
                    true
                }
                Err(_) => {
                    ctx.require_new_registration = false;
                    ctx.restart = None;
                    false
                }
            };
            let c = classify(rig, registered, &mut ctx.log).await;
            let _ = writeln!(ctx.log, "  -> {}: {}", c.class.name(), c.why);
            ctx.recoveries.push(c.class);
            ctx.power_cuts.recovered(c.class.name(), &ctx.events);
            self.judge(c)
        })
    }
}

impl Classify {
    fn judge(&self, c: Classified) -> Result<(), StepError> {
        match c.class {
            Recovery::Broken => Err(device(
                "the device to recover or roll back after the cut",
                format!("broken: {}", c.why),
            )),
            class if !self.allow.is_empty() && !self.allow.contains(&class) => {
                let allowed: Vec<&str> = self.allow.iter().map(|a| a.name()).collect();
                Err(device(
                    format!("one of {}", allowed.join(", ")),
                    format!("{}: {}", class.name(), c.why),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The classification and the facts it rests on.
struct Classified {
    class: Recovery,
    why: String,
}

/// Judges the device's state against its debug port. `registered` says
/// whether it registered again within the limit.
async fn classify(rig: &mut Session, registered: bool, log: &mut String) -> Classified {
    if !registered {
        return Classified {
            class: Recovery::Broken,
            why: "it did not register again".into(),
        };
    }
    let device = rig.instance_of(3).unwrap_or(0);
    let firmware = rig.instance_of(OBJECT_ID).unwrap_or(0);
    let version = read_string(rig, Path::resource(3, device, 3)).await;
    let state = read_int(rig, Path::resource(OBJECT_ID, firmware, resource::STATE)).await;
    let result = read_int(
        rig,
        Path::resource(OBJECT_ID, firmware, resource::UPDATE_RESULT),
    )
    .await;
    let debug = read_debug(rig).ok();
    let running = debug
        .as_ref()
        .and_then(|d| d.get("firmware_version").cloned());
    let _ = writeln!(
        log,
        "  -> reports version {version:?}, /5/0/3 {state:?}, /5/0/5 {result:?}; debug port: running {running:?}, boot count {:?}, active slot {:?}",
        debug.as_ref().and_then(|d| d.get("boot_count")),
        debug.as_ref().and_then(|d| d.get("firmware.active_slot")),
    );
    let Some(version) = version else {
        return Classified {
            class: Recovery::Broken,
            why: "it does not report /3/0/3".into(),
        };
    };
    if let Some(running) = &running {
        if *running != version {
            return Classified {
                class: Recovery::Broken,
                why: format!(
                    "it reports version {version} but its debug port finds {running} running"
                ),
            };
        }
    }
    let failed = result
        .and_then(|r| UpdateResult::from_code(r).ok())
        .is_some_and(|r| !matches!(r, UpdateResult::Initial | UpdateResult::Success));
    if let (Some(s), Some(r)) = (state, result) {
        let consistent = FirmwareState::from_code(s)
            .ok()
            .zip(UpdateResult::from_code(r).ok())
            .is_some_and(|(s, r)| lwm2m::firmware::is_consistent(s, r));
        if !consistent {
            return Classified {
                class: Recovery::Broken,
                why: format!("State {s} with Update Result {r} is not a consistent status"),
            };
        }
    }
    if failed && result == Some(i64::from(UpdateResult::UpdateFailed.code())) {
        return Classified {
            class: Recovery::RolledBack,
            why: format!("running {version}, Update Result 8 reported"),
        };
    }
    Classified {
        class: Recovery::Recovered,
        why: format!("registered, running {version}, status consistent"),
    }
}

/// What the device answers for `path`, or `None` if it does not (the
/// classification reports that, it does not fail on it).
async fn read_string(rig: &Session, path: Path) -> Option<String> {
    read_value(rig, path, READ_LIMIT)
        .await
        .ok()
        .map(|v| v.to_text())
}

async fn read_int(rig: &Session, path: Path) -> Option<i64> {
    read_value(rig, path, READ_LIMIT)
        .await
        .ok()
        .and_then(|v| v.as_f64())
        .map(|v| v as i64)
}
