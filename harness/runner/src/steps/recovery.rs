//! After a power cut: what the debug port says, and how the device came back.
//! The classification does not rely only on what the device says over LwM2M:
//! the version it reports must be the version its debug port finds running.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::firmware::{resource, UpdateResult, OBJECT_ID};
use lwm2m::Path;

use crate::case::step::{DebugCheck, Recovery};
use crate::session::Session;
use crate::steps::engine::read_value;

/// How long each read of the classification may take.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// Reads the debug port (SWD on a real bench, NV storage on the virtual rig).
pub fn read_debug(session: &mut Session) -> Result<BTreeMap<String, String>, String> {
    let rig = session.rig.name.clone();
    let debug = session
        .debug
        .as_mut()
        .ok_or_else(|| format!("rig {rig} has no debug port"))?;
    tokio::task::block_in_place(|| debug.read_state()).map_err(|e| e.to_string())
}

/// `debug: {key, save | at_least | equals}`. Returns what failed, as (expected, seen).
pub fn debug_step(
    session: &mut Session,
    key: &str,
    check: &DebugCheck,
    log: &mut String,
) -> Result<(), (String, String)> {
    let state = read_debug(session).map_err(|e| ("the debug port to answer".to_string(), e))?;
    let value = state.get(key).cloned().ok_or_else(|| {
        (
            format!("{key} on the debug port"),
            format!(
                "keys: {}",
                state.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let _ = writeln!(log, "  -> {key} = {value}");
    match check {
        DebugCheck::Save(name) => {
            session.saved.insert(name.clone(), value);
            Ok(())
        }
        DebugCheck::Equals(want) if &value == want => Ok(()),
        DebugCheck::Equals(want) => Err((format!("{key} = {want}"), format!("{key} = {value}"))),
        DebugCheck::AtLeast(name) => {
            let saved = session.saved.get(name).cloned().ok_or_else(|| {
                (
                    format!("a value saved as {name:?} by an earlier debug step"),
                    "none".to_string(),
                )
            })?;
            let (Ok(now), Ok(before)) = (value.parse::<f64>(), saved.parse::<f64>()) else {
                return Err((
                    format!("{key} and {name} to be numbers"),
                    format!("{value} and {saved}"),
                ));
            };
            if now >= before {
                Ok(())
            } else {
                Err((
                    format!("{key} at least {before} (saved as {name})"),
                    format!("{now}: lost {}", before - now),
                ))
            }
        }
    }
}

/// The classification and the facts it rests on.
pub struct Classified {
    pub class: Recovery,
    pub why: String,
}

/// Awaits the device's next registration and judges its state against its
/// debug port. `registered` says whether it registered within the limit.
pub async fn classify(session: &mut Session, registered: bool, log: &mut String) -> Classified {
    if !registered {
        return Classified {
            class: Recovery::Broken,
            why: "it did not register again".into(),
        };
    }
    let device = session.instance_of(3).unwrap_or(0);
    let firmware = session.instance_of(OBJECT_ID).unwrap_or(0);
    let version = read_string(session, Path::resource(3, device, 3)).await;
    let state = read_int(
        session,
        Path::resource(OBJECT_ID, firmware, resource::STATE),
    )
    .await;
    let result = read_int(
        session,
        Path::resource(OBJECT_ID, firmware, resource::UPDATE_RESULT),
    )
    .await;
    let debug = read_debug(session).ok();
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
        let consistent = lwm2m::firmware::FirmwareState::from_code(s)
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
async fn read_string(session: &mut Session, path: Path) -> Option<String> {
    read_value(session, path, READ_LIMIT)
        .await
        .ok()
        .map(|v| v.to_text())
}

async fn read_int(session: &mut Session, path: Path) -> Option<i64> {
    read_value(session, path, READ_LIMIT)
        .await
        .ok()
        .and_then(|v| v.as_f64())
        .map(|v| v as i64)
}
