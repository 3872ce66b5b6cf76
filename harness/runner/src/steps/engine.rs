//! Executes steps. Each step either passes, fails (the device did something
//! wrong: `StepError::Device`, or did not do it in time: `StepError::Timeout`),
//! cannot be carried out by the bench (`StepError::Bench`) or does not apply
//! (`StepError::Skip`).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use lwm2m::server::{Content, DmRequest, Response, ServerEvent};
use lwm2m::{ContentFormat, Path, Record, Value};

use server::{code_text, links_text};

use crate::case::step::{AtFinal, AtLine, CutTrigger};

use crate::case::model::ScalarValue;
use crate::case::step::{DebugCheck, Recovery};
use crate::case::{Action, AwaitTarget, Case, Need, Step, ValueCondition};
use crate::report::Verdict;
use crate::session::{Restart, RoleError, Session};
use crate::steps::evidence::Evidence;
use crate::steps::firmware::FirmwareError;
use crate::steps::instances::Unresolved;
use crate::steps::value::{has_model_type, matches, typed_value};

/// How one step went wrong.
#[derive(Debug)]
pub(super) enum StepError {
    /// The device did something wrong.
    Device {
        expected: String,
        seen: String,
    },
    /// The device did not do what the step waited for in time. A failure
    /// like `Device`, whose message also quotes what happened meanwhile
    /// (see [`crate::steps::evidence`]): "timed out" alone says nothing.
    Timeout {
        expected: String,
        seen: String,
    },
    Bench(String),
    Skip(String),
    /// A step inside a `repeat` went wrong: the failure belongs to its line.
    InRepeat {
        line: u32,
        step: String,
        round: u32,
        times: u32,
        error: Box<StepError>,
    },
}

pub(super) fn device(expected: impl Into<String>, seen: impl Into<String>) -> StepError {
    StepError::Device {
        expected: expected.into(),
        seen: seen.into(),
    }
}

pub(super) fn timed_out(expected: impl Into<String>, seen: impl Into<String>) -> StepError {
    StepError::Timeout {
        expected: expected.into(),
        seen: seen.into(),
    }
}

pub(super) fn bench(e: impl std::fmt::Display) -> StepError {
    StepError::Bench(e.to_string())
}

/// A wait on the serial port: no such line in time is the device's
/// timeout; a port that failed is the bench's.
pub(super) fn serial_wait_error(expected: impl Into<String>, e: rig::RigError) -> StepError {
    match e {
        rig::RigError::WaitTimeout { .. } => timed_out(expected, e.to_string()),
        rig::RigError::Serial { .. } => bench(e),
        _ => device(expected, e.to_string()),
    }
}

/// Sorts what the embedded servers report into the verdicts: no answer in
/// time is the device's timeout, a server that stopped or a request the
/// harness could not build is the bench's, anything else the device's.
pub(super) fn server_error(expected: impl Into<String>, e: server::ServerError) -> StepError {
    use server::ServerError as E;
    match e {
        E::Timeout { .. } | E::NoResponse { .. } => timed_out(expected, e.to_string()),
        E::Shutdown
        | E::Bind { .. }
        | E::Dtls(_)
        | E::Credential { .. }
        | E::InvalidRequest { .. } => bench(e),
        _ => device(expected, e.to_string()),
    }
}

/// Which step of a `repeat` runs: a case timeout that cuts it off names it.
#[derive(Debug, Clone)]
pub struct RepeatPosition {
    pub line: u32,
    pub step: String,
    pub round: u32,
    pub times: u32,
}

/// What a case run produced.
pub struct CaseRun {
    pub verdict: Verdict,
    pub step_log: String,
    /// Facts for the JUnit testcase, e.g. the seed of each random power cut.
    pub properties: Vec<(String, String)>,
}

/// Runs `case` on the session. Never panics on device behaviour; the case's
/// own timeout bounds the whole run.
pub async fn run_case(session: &mut Session, case: &Case) -> CaseRun {
    let mut log = String::new();
    let mut properties = Vec::new();
    session.cursor = session.server.current_seq();
    // "Since the previous step began" starts with this case: nothing an
    // earlier case left behind counts for it (nor quotes in its failures).
    session.previous_step_seq = session.cursor;
    session.previous_step_logs = (
        session.server.log_len(),
        session.bootstrap.as_ref().map(|b| b.log_len()).unwrap_or(0),
    );
    session.previous_step_bootstrap_seq = session
        .bootstrap
        .as_ref()
        .map(|b| b.current_seq())
        .unwrap_or_default();
    session.round = 0;
    session.repeat_position = None;
    session.require_new_registration = false;
    session.restart = None;
    session.network_changed = false;
    session.observations.clear();
    session.firmware_images.clear();
    session.saved.clear();
    session.recoveries.clear();
    if let Some(bs) = &session.bootstrap {
        session.bootstrap_cursor = bs.current_seq();
    }
    // A case's own bootstrap script does not outlive it.
    if session.bootstrap.is_some() {
        let standard = lwm2m::bootstrap::BootstrapScript::standard(&session.server_account());
        if let Err(e) = session.set_bootstrap_script(standard).await {
            return CaseRun {
                verdict: Verdict::Error {
                    message: format!("bench setup: {e}"),
                },
                step_log: log,
                properties,
            };
        }
    }
    if let Some(w) = session.firmware_watch.take() {
        let _ = w.finish();
    }
    let mut verdict = run_steps(session, case, &mut log, &mut properties).await;
    for task in session.progress_tasks.drain(..) {
        task.abort();
    }
    if matches!(verdict, Verdict::Passed) {
        // The status after the case's last restart (Idle/8 after a rollback)
        // is seen only once object 5 is observed again: wait for it, so the
        // recorder judges the whole sequence.
        if let Some(watch) = &session.firmware_watch {
            watch.settle(&session.server, &session.endpoint).await;
        }
    }
    finish_firmware(session, case, &mut verdict, &mut log, &mut properties);
    if !session.recoveries.is_empty() {
        // The soak's tally: how many cuts ended recovered, rolled back, broken.
        for class in [Recovery::Recovered, Recovery::RolledBack, Recovery::Broken] {
            let n = session.recoveries.iter().filter(|c| **c == class).count();
            properties.push((format!("recovery.{}", class.name()), n.to_string()));
        }
        let _ = writeln!(
            log,
            "  recoveries: {}",
            session
                .recoveries
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    cancel_observations(session).await;
    restore_network(session, &mut log);
    CaseRun {
        verdict,
        step_log: log,
        properties,
    }
}

async fn run_steps(
    session: &mut Session,
    case: &Case,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) -> Verdict {
    let started = Instant::now();
    let mut deadline = started + case.timeout;
    if let Some(reason) = missing_part(session, case) {
        let _ = writeln!(log, "skipped: {reason}");
        return Verdict::Skipped { reason };
    }
    // A firmware role the rig does not map: not applicable; a mapped image
    // that does not exist fails the case before the device is touched.
    match check_roles(session, &case.steps).await {
        Ok(()) => {}
        Err(RoleError::NotMapped(reason)) => {
            let _ = writeln!(log, "skipped: {reason}");
            return Verdict::Skipped { reason };
        }
        Err(RoleError::Store(message)) => {
            let _ = writeln!(log, "ERROR: {message}");
            return Verdict::Error {
                message: format!("{}: {message}", case.file.display()),
            };
        }
    }
    if let Err(e) = ensure_powered(session, log) {
        return Verdict::Error {
            message: format!("bench setup: {e}"),
        };
    }

    let mut objects_checked = false;
    for step in &case.steps {
        // A device that lacks an object the case needs: not applicable.
        // Known once the device is registered (its object list).
        if !objects_checked {
            if let Some(reg) = session.server.registration(&session.endpoint) {
                objects_checked = true;
                if let Some(reason) = missing_object(&reg, case) {
                    let _ = writeln!(log, "skipped: {reason}");
                    return Verdict::Skipped { reason };
                }
                if let Some(reason) = missing_resource(session, case, log).await {
                    let _ = writeln!(log, "skipped: {reason}");
                    return Verdict::Skipped { reason };
                }
            }
        }
        let t = started.elapsed();
        let _ = writeln!(
            log,
            "[{:>7.3}s] line {:>3}: {}",
            t.as_secs_f64(),
            step.line,
            step.describe()
        );
        if let Some(note) = &step.note {
            let _ = writeln!(log, "  note: {note}");
        }
        let mut remaining = deadline.saturating_duration_since(Instant::now());
        if let Some((wait, why)) = device_wait(session, step) {
            let _ = writeln!(log, "  waiting up to {wait:?}, {why}");
            if wait > remaining {
                deadline += wait - remaining;
                remaining = wait;
            }
        }
        let step_seq = session.server.current_seq();
        let step_logs = (
            session.server.log_len(),
            session.bootstrap.as_ref().map(|b| b.log_len()).unwrap_or(0),
        );
        let step_bootstrap_seq = session
            .bootstrap
            .as_ref()
            .map(|b| b.current_seq())
            .unwrap_or_default();
        let result = match tokio::time::timeout(
            remaining,
            run_step(session, case, step, remaining, log, properties),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => {
                let e = timed_out(
                    format!(
                        "the case to finish within its timeout of {:?}",
                        case.timeout
                    ),
                    "it was still running this step at the timeout",
                );
                // Cut off inside a `repeat`: the step that was running.
                match session.repeat_position.take() {
                    Some(p) => Err(StepError::InRepeat {
                        line: p.line,
                        step: p.step,
                        round: p.round,
                        times: p.times,
                        error: Box::new(e),
                    }),
                    None => Err(e),
                }
            }
        };
        match result {
            Ok(()) => {
                session.previous_step_seq = step_seq;
                session.previous_step_logs = step_logs;
                session.previous_step_bootstrap_seq = step_bootstrap_seq;
            }
            Err(e) => {
                let at = format!("step `{}`", step.describe());
                return judge(session, case, step.line, at, e, log);
            }
        }
    }
    let _ = writeln!(log, "[{:>7.3}s] passed", started.elapsed().as_secs_f64());
    Verdict::Passed
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

/// How long a step waits when the case gives it no `within` and the wait
/// is the device's or the rig's to set, not the case's, with the reason for
/// the step log. Such a wait may outlast the case's own `timeout`.
///
/// - `await: updated`, and a `power_cut` on a `message` (the device's next
///   datagram comes on its own schedule): as long as the current
///   registration has left to live plus [`EXPIRY_MARGIN`], because an Update
///   is due before the registration expires (LwM2M 1.1 Core §6.2.2),
///   whatever lifetime the device chose.
/// - `await: registered` / `reregistered`, `classify`: the rig's
///   `device.reboot_within`, or after Execute Update its
///   `firmware.update_within`.
/// - an `await` on object 5's State or Update Result (object 9's Update
///   State or Result), a `power_cut` on a fraction `delivered`: the rig's
///   `firmware.download_within`.
fn device_wait(session: &Session, step: &Step) -> Option<(Duration, String)> {
    if step.within.is_some() {
        return None;
    }
    let lifetime_left = || {
        let reg = session.server.registration(&session.endpoint)?;
        let left = reg
            .expires_at()
            .map(|at| at.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or(reg.lifetime);
        Some((
            left + EXPIRY_MARGIN,
            format!(
                "as the device's registration lifetime ({}s) asks",
                reg.lifetime.as_secs()
            ),
        ))
    };
    let rig = &session.rig;
    let restart = || match session.restart {
        Some(Restart::FirmwareUpdate) => {
            match rig.firmware.as_ref().and_then(|f| f.update_within) {
                Some(w) => (
                    w,
                    format!("the rig's firmware.update_within ({})", rig.name),
                ),
                None => (
                    rig.device.reboot_within,
                    format!("the rig's device.reboot_within ({})", rig.name),
                ),
            }
        }
        _ => (
            rig.device.reboot_within,
            format!("the rig's device.reboot_within ({})", rig.name),
        ),
    };
    let download = || {
        rig.firmware.as_ref().map(|f| {
            (
                f.download_within,
                format!("the rig's firmware.download_within ({})", rig.name),
            )
        })
    };
    match &step.action {
        Action::Await(AwaitTarget::Updated)
        | Action::PowerCut {
            trigger: CutTrigger::Message(_),
            ..
        } => lifetime_left(),
        Action::Await(AwaitTarget::Registered | AwaitTarget::Reregistered) => Some(restart()),
        Action::Classify { within: None, .. } => Some(restart()),
        Action::Await(AwaitTarget::Value { path, .. }) if is_delivery_status(path) => download(),
        Action::PowerCut {
            trigger: CutTrigger::Delivered(_),
            ..
        } => download(),
        _ => None,
    }
}

/// Whether `path` is a download's progress: State or Update Result of
/// object 5 (LwM2M 1.1 Core §E.6), Update State or Update Result of
/// object 9 (Software Management).
fn is_delivery_status(path: &Path) -> bool {
    use lwm2m::firmware::{resource, OBJECT_ID};
    match (path.object_id(), path.resource_id()) {
        (Some(OBJECT_ID), Some(r)) => r == resource::STATE || r == resource::UPDATE_RESULT,
        (Some(9), Some(r)) => r == 7 || r == 9,
        _ => false,
    }
}

/// Time after the registration's expiry for the server's Expired event to
/// reach an `await: updated` (the server expires registrations on its own
/// timer; this only keeps the wait from racing it).
const EXPIRY_MARGIN: Duration = Duration::from_secs(2);

/// The verdict of a step that went wrong at `line` (`at` says which step).
fn judge(
    session: &Session,
    case: &Case,
    line: u32,
    at: String,
    error: StepError,
    log: &mut String,
) -> Verdict {
    match error {
        StepError::InRepeat {
            line: inner,
            step,
            round,
            times,
            error,
        } => {
            let at = format!("step `{step}` (round {round}/{times} of the repeat at line {line})");
            judge(session, case, inner, at, *error, log)
        }
        StepError::Device { expected, seen } => {
            let seen = with_evidence(session, seen, &Evidence::gather(session));
            let _ = writeln!(log, "  FAILED: expected {expected}\n  saw: {seen}");
            failure(case, line, &at, &expected, &seen, None, log)
        }
        StepError::Timeout { expected, seen } => {
            // Waiting ran out: what happened meanwhile is the news.
            let evidence = Evidence::gather(session);
            let seen = with_evidence(session, seen, &evidence);
            let _ = writeln!(log, "  FAILED: expected {expected}\n  saw: {seen}");
            let meanwhile = evidence.headline();
            failure(case, line, &at, &expected, &seen, meanwhile.as_deref(), log)
        }
        StepError::Bench(e) => {
            let message = format!("{}:{line}: {at}: bench error: {e}", case.file.display());
            let _ = writeln!(log, "  ERROR: {e}");
            Verdict::Error { message }
        }
        StepError::Skip(reason) => {
            let _ = writeln!(log, "  skipped: {reason}");
            Verdict::Skipped { reason }
        }
    }
}

/// `seen` with the servers' reports and the device's last lines under it.
fn with_evidence(session: &Session, mut seen: String, evidence: &Evidence) -> String {
    if !evidence.is_empty() {
        seen.push_str("\nmeanwhile on the servers:\n  ");
        seen.push_str(&evidence.lines().join("\n  "));
    }
    let last = session.last_device_lines(8);
    if !last.is_empty() {
        seen.push_str("\nlast lines from the device:\n  ");
        seen.push_str(&last.join("\n  "));
    }
    seen
}

/// A failure at `line`: the message names file:line, the step, what was
/// expected and seen, and (for a wait that ran out) the telling report of
/// what happened meanwhile; the detail holds it all and the step log.
fn failure(
    case: &Case,
    line: u32,
    at: &str,
    expected: &str,
    seen: &str,
    meanwhile: Option<&str>,
    log: &str,
) -> Verdict {
    let mut message = format!(
        "{}:{line}: {at}: expected {expected}; saw {}",
        case.file.display(),
        seen.lines().next().unwrap_or_default()
    );
    if let Some(m) = meanwhile {
        message.push_str("; meanwhile: ");
        message.push_str(m);
    }
    let detail = format!("{message}\n\nexpected: {expected}\nseen: {seen}\n\nsteps:\n{log}");
    Verdict::Failed { message, detail }
}

/// Every firmware role a case names must be mapped by the rig, to an image
/// that is in the rig's store.
async fn check_roles(session: &mut Session, steps: &[Step]) -> Result<(), RoleError> {
    let mut roles = Vec::new();
    for s in steps {
        s.firmware_roles(&mut roles);
    }
    roles.sort();
    roles.dedup();
    for role in roles {
        session.firmware_role(&role).await?;
    }
    Ok(())
}

/// After a case that changed the network: the lab accepts every profile
/// again, so the next case starts from an ordinary network.
fn restore_network(session: &mut Session, log: &mut String) {
    if !std::mem::take(&mut session.network_changed) {
        return;
    }
    if let Some(n) = session.network.as_mut() {
        let action = rig::NetworkAction::AcceptAll;
        match tokio::task::block_in_place(|| n.apply(&action)) {
            Ok(()) => {
                let _ = writeln!(log, "  network: accept-all (restored after the case)");
            }
            Err(e) => {
                tracing::warn!(error = %e, "network not restored");
                let _ = writeln!(log, "  network: accept-all failed: {e}");
            }
        }
    }
}

/// Adds the transfer figures and judges object 5's observed transitions: a
/// transition the state diagram does not allow fails a case that otherwise passed.
fn finish_firmware(
    session: &mut Session,
    case: &Case,
    verdict: &mut Verdict,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) {
    if let Some(delivery) = &session.firmware {
        properties.extend(crate::steps::firmware::transfer_report(
            delivery,
            &session.firmware_images,
            log,
        ));
    }
    let Some(watch) = session.firmware_watch.take() else {
        return;
    };
    match watch.finish() {
        Ok(sequence) => {
            let _ = writeln!(log, "  object 5 transitions: {sequence}");
            properties.push(("firmware.transitions".into(), sequence));
        }
        Err(violation) => {
            let _ = writeln!(log, "  object 5 transitions: {violation}");
            properties.push(("firmware.transitions".into(), violation.clone()));
            if *verdict == Verdict::Passed {
                let last = case.steps.last().map(|s| s.line).unwrap_or(1);
                *verdict = failure(
                    case,
                    last,
                    "step `object 5 state machine`",
                    "only transitions the specification allows",
                    &violation,
                    None,
                    log,
                );
            }
        }
    }
}

/// A case needing a part the rig lacks is skipped before it starts.
fn missing_part(session: &Session, case: &Case) -> Option<String> {
    let rig = &session.rig;
    let mut actions = Vec::new();
    for s in &case.steps {
        s.network_actions(&mut actions);
    }
    let named = case.needs.iter().find_map(|need| {
        let missing = match need {
            Need::Modem => rig.modem.is_none(),
            Need::Power => rig.power.is_none(),
            Need::Debug => rig.debug.is_none(),
            Need::NetworkControl => rig.network.is_none(),
            Need::Object(_) | Need::Resource(_) => false,
        };
        missing.then(|| match need {
            Need::NetworkControl => format!(
                "rig {} has no network control (no `network:` part): it cannot make the network refuse a profile",
                rig.name
            ),
            _ => format!("rig {} has no {need}", rig.name),
        })
    });
    named.or_else(|| {
        // A `network` step needs network control even when `needs` forgot it.
        let first = actions.first()?;
        let Some(network) = session.network.as_ref() else {
            return Some(format!(
                "rig {} has no network control (no `network:` part), for `network: {first}`",
                rig.name
            ));
        };
        actions
            .iter()
            .find(|a| !network.supports(a))
            .map(|a| format!("rig {}'s network control cannot {a}", rig.name))
    })
}

/// The first object the case needs that the registration does not list.
fn missing_object(reg: &lwm2m::server::Registration, case: &Case) -> Option<String> {
    case.needs.iter().find_map(|need| match need {
        Need::Resource(path) if !reg.has_object(path.object_id().unwrap_or_default()) => {
            Some(format!(
                "the device does not offer object {} (its object list: {}), so not {path}",
                path.object_id().unwrap_or_default(),
                links_text(&reg.objects)
            ))
        }
        Need::Object(id) if !reg.has_object(*id) => Some(format!(
            "the device does not offer object {id} (its object list: {})",
            links_text(&reg.objects)
        )),
        _ => None,
    })
}

/// The first optional resource the case needs that the device does not
/// offer, by the Discover answer of its object instance (LwM2M 1.1 Core
/// §5.4.2 lists the resources an instance has). A Discover that fails says
/// nothing either way: the case runs and its steps decide.
async fn missing_resource(session: &mut Session, case: &Case, log: &mut String) -> Option<String> {
    for need in &case.needs {
        let Need::Resource(path) = need else {
            continue;
        };
        // `resource/5/*/8`: the instance the device registered.
        let path = &match (path.object_id(), path.instance_id()) {
            (Some(object), Some(crate::case::step::ANY_INSTANCE)) => {
                let Some(i) = session.instance_of(object) else {
                    return Some(format!(
                        "the device registered no instance of object {object}, so not {}",
                        crate::case::step::shown(path)
                    ));
                };
                lwm2m::Path::resource(object, i, path.resource_id().unwrap_or_default())
            }
            _ => *path,
        };
        let instance = path.parent();
        let answer = session
            .server
            .request(
                &session.endpoint,
                DmRequest::Discover { path: instance },
                Duration::from_secs(30),
            )
            .await;
        let links = match answer {
            Ok(Response {
                code: 205,
                content: Content::Links(links),
                ..
            }) => links,
            Ok(Response { code: 404, .. }) => {
                return Some(format!(
                    "the device does not offer {instance} (Discover answered 4.04), so not {path}"
                ))
            }
            other => {
                let _ = writeln!(
                    log,
                    "  Discover {instance} to check for {path} told nothing: {other:?}"
                );
                continue;
            }
        };
        let _ = writeln!(log, "  Discover {instance} -> {}", links_text(&links));
        if !links.iter().any(|l| l.path() == Some(*path)) {
            return Some(format!(
                "the device does not offer the optional resource {path} (Discover {instance}: {})",
                links_text(&links)
            ));
        }
    }
    None
}

/// A rig with power control starts each case with the device on and pointed at our server.
fn ensure_powered(session: &mut Session, log: &mut String) -> Result<(), String> {
    if session.power_is_on() == Some(false) {
        let _ = writeln!(log, "setup: power on and bring-up");
        session.set_power(true)?;
        session.bring_up()?;
    }
    Ok(())
}

async fn cancel_observations(session: &mut Session) {
    let paths: Vec<Path> = session.observations.keys().copied().collect();
    for path in paths {
        if session.server.registration(&session.endpoint).is_some() {
            let _ = session
                .server
                .request(
                    &session.endpoint,
                    DmRequest::CancelObserve { path },
                    Duration::from_secs(5),
                )
                .await;
        }
    }
    session.observations.clear();
}

async fn run_step(
    session: &mut Session,
    case: &Case,
    step: &Step,
    remaining: Duration,
    log: &mut String,
    properties: &mut Vec<(String, String)>,
) -> Result<(), StepError> {
    // `/5/*/3`: the instance the device registered.
    let resolved;
    let step = if step.action.has_any_instance() {
        let reg = session.server.registration(&session.endpoint);
        resolved = match crate::steps::instances::resolve(step, reg.as_ref()) {
            Ok(s) => s,
            Err(Unresolved::NotOffered(why)) => {
                return Err(StepError::Skip(format!("not applicable: {why}")))
            }
            Err(Unresolved::NotRegistered(why)) => return Err(bench(why)),
        };
        &resolved
    } else {
        step
    };
    let within = step
        .within
        .or_else(|| device_wait(session, step).map(|(w, _)| w))
        .unwrap_or(remaining)
        .min(remaining);
    match &step.action {
        Action::Power(action) => crate::steps::power::power(session, *action, log).await,
        Action::PowerCut { .. } => {
            crate::steps::power::power_cut(session, case, step, within, log, properties).await
        }
        Action::At {
            line,
            expect,
            contains,
        } => at(session, line, expect, contains.as_deref(), log),
        Action::Await(target) => await_target(session, target, within, log).await,
        Action::Read {
            path,
            format,
            mandatory,
            code,
        } => read(session, *path, *format, *mandatory, *code, within, log).await,
        Action::Write {
            path,
            value,
            format,
            mode,
            code,
        } => {
            let value = crate::steps::firmware::expand_urls(session, value)
                .await
                .map_err(role_error)?;
            let value = typed_value(&session.registry, path, &value).map_err(bench)?;
            let request = DmRequest::Write {
                path: *path,
                mode: *mode,
                records: vec![Record::new(*path, value)],
                format: *format,
            };
            let r = exchange(session, request, within, *code).await?;
            let _ = writeln!(log, "  -> {}", code_text(r.code));
            Ok(())
        }
        Action::Execute { path, args, code } => {
            session.cursor = session.server.current_seq();
            // Execute Update (/5/x/2) restarts into new firmware: the rig's update wait.
            let update = path.object_id() == Some(lwm2m::firmware::OBJECT_ID)
                && path.resource_id() == Some(lwm2m::firmware::resource::UPDATE);
            session.restart = Some(if update {
                Restart::FirmwareUpdate
            } else {
                Restart::Reboot
            });
            let request = DmRequest::Execute {
                path: *path,
                arguments: args.clone(),
            };
            let r = exchange(session, request, within, *code).await?;
            // After an Execute (reboot, update) the old registration no longer proves anything.
            session.require_new_registration = true;
            let _ = writeln!(log, "  -> {}", code_text(r.code));
            Ok(())
        }
        Action::Discover { path, contains } => {
            let r = exchange(session, DmRequest::Discover { path: *path }, within, 205).await?;
            let Content::Links(links) = &r.content else {
                return Err(device("a link-format answer", format!("{:?}", r.content)));
            };
            let targets: Vec<&str> = links.iter().map(|l| l.target.as_str()).collect();
            let _ = writeln!(log, "  -> {}", targets.join(","));
            let version = session
                .server
                .registration(&session.endpoint)
                .map(|r| r.lwm2m_version)
                .unwrap_or_default();
            for want in contains {
                if !discover_lists(&targets, want, &version) {
                    return Err(device(
                        format!("link <{want}> in the Discover answer"),
                        targets.join(","),
                    ));
                }
            }
            Ok(())
        }
        Action::Observe {
            path,
            format,
            pmin,
            pmax,
        } => {
            if pmin.is_some() || pmax.is_some() {
                let attributes = lwm2m::server::Attributes {
                    pmin: *pmin,
                    pmax: *pmax,
                    ..Default::default()
                };
                let request = DmRequest::WriteAttributes {
                    path: *path,
                    attributes,
                };
                exchange(session, request, within, 204).await?;
            }
            let before = session.server.current_seq();
            let r = session
                .server
                .observe(&session.endpoint, *path, *format)
                .await
                .map_err(|e| server_error(format!("an answer to Observe {path}"), e))?;
            expect_code(session, *path, &format!("Observe {path}"), &r.first, 205)?;
            let _ = writeln!(
                log,
                "  -> {} {}",
                code_text(r.first.code),
                values_text(&r.first)
            );
            session.observations.insert(*path, r.id);
            // Notifications are counted from the Observe on.
            session.cursor = before;
            Ok(())
        }
        Action::CancelObserve { path } => {
            let r = request_on(session, DmRequest::CancelObserve { path: *path }, within).await?;
            session.observations.remove(path);
            let _ = writeln!(log, "  -> {}", code_text(r.code));
            Ok(())
        }
        Action::ExpectValue { path, condition } => {
            let condition = role_versions(session, condition).await?;
            let v = read_value(session, *path, within).await?;
            let _ = writeln!(log, "  -> {v}");
            check_condition(*path, &v, &condition, None)
        }
        Action::Network(action) => {
            let rig = session.rig.name.clone();
            let network = session
                .network
                .as_mut()
                .ok_or_else(|| StepError::Skip(format!("rig {rig} has no network control")))?;
            if !network.supports(action) {
                return Err(StepError::Skip(format!(
                    "rig {rig}'s network control cannot {action}"
                )));
            }
            tokio::task::block_in_place(|| network.apply(action)).map_err(bench)?;
            session.network_changed = true;
            let _ = writeln!(log, "  -> the network will {action}");
            Ok(())
        }
        Action::ExpectRegistration(want) => {
            let reg = session
                .server
                .registration(&session.endpoint)
                .ok_or_else(|| {
                    device(
                        format!("{} registered", session.endpoint),
                        "no registration",
                    )
                })?;
            let _ = writeln!(
                log,
                "  -> {} lifetime {:?} objects {}",
                reg.location,
                reg.lifetime,
                links_text(&reg.objects)
            );
            for o in &want.objects {
                let p: Path = o.parse().map_err(|e: lwm2m::PathError| bench(e))?;
                let listed = reg
                    .objects
                    .iter()
                    .filter_map(|l| l.path())
                    .any(|l| l == p || (p.depth() == 1 && l.object_id() == p.object_id()));
                if !listed {
                    return Err(device(
                        format!("{p} in the registration's object list"),
                        links_text(&reg.objects),
                    ));
                }
            }
            if let Some(v) = &want.lwm2m {
                if &reg.lwm2m_version != v {
                    return Err(device(
                        format!("lwm2m={v}"),
                        format!("lwm2m={}", reg.lwm2m_version),
                    ));
                }
            }
            if let Some(b) = &want.binding {
                if &reg.binding != b {
                    return Err(device(format!("b={b}"), format!("b={}", reg.binding)));
                }
            }
            if let Some(lt) = want.lifetime {
                if reg.lifetime != lt {
                    return Err(device(
                        format!("lt={}", lt.as_secs()),
                        format!("lt={}", reg.lifetime.as_secs()),
                    ));
                }
            }
            Ok(())
        }
        Action::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Action::Firmware(f) => match crate::steps::firmware::run(session, f, within, log).await {
            Ok(()) => Ok(()),
            Err(FirmwareError::Device { expected, seen }) => Err(device(expected, seen)),
            Err(FirmwareError::Bench(e)) => Err(StepError::Bench(e)),
            Err(FirmwareError::NotApplicable(why)) => {
                Err(StepError::Skip(format!("not applicable: {why}")))
            }
        },
        Action::StopFileServers => {
            if let Some(delivery) = session.firmware.take() {
                let images = std::mem::take(&mut session.firmware_images);
                properties.extend(crate::steps::firmware::transfer_report(
                    &delivery, &images, log,
                ));
                delivery.shutdown().await;
            }
            let _ = writeln!(log, "  -> file servers stopped");
            Ok(())
        }
        Action::Bootstrap(ops) => {
            if session.bootstrap.is_none() {
                return Err(StepError::Skip(
                    "this rig does not onboard its device by bootstrap".into(),
                ));
            }
            let script = crate::steps::security::script(session, ops);
            // The bootstrap server could not take the script: the harness's fault.
            session
                .set_bootstrap_script(script)
                .await
                .map_err(|e| bench(format!("bootstrap server: {e}")))?;
            let _ = writeln!(
                log,
                "  the bootstrap server will run {} operations",
                ops.len()
            );
            Ok(())
        }
        Action::Credentials(change) => {
            if session.credentials.is_none() {
                return Err(StepError::Skip(
                    "this rig uses no credentials (device.security: psk)".into(),
                ));
            }
            // Making or installing a credential failed: the harness's fault.
            crate::steps::security::change(session, *change, log)
                .await
                .map_err(|e| bench(format!("credentials: {e}")))
        }
        Action::ExpectOldCredentialRefused => {
            let old = session.replaced_server_psk.clone().ok_or_else(|| {
                bench("no credential was replaced earlier in this case (credentials: rotate)")
            })?;
            let addr = session.server.local_addr();
            let probe = tokio::task::spawn_blocking(move || {
                crate::steps::security::probe(addr, old, Duration::from_secs(10))
            })
            .await
            .map_err(bench)?
            .map_err(StepError::Bench)?;
            match probe {
                crate::steps::security::Probe::Refused(why) => {
                    let _ = writeln!(log, "  -> the replaced credential is refused: {why}");
                    Ok(())
                }
                crate::steps::security::Probe::Accepted => Err(device(
                    "the replaced server credential to be refused",
                    "the server still accepts it",
                )),
            }
        }
        Action::Debug { key, check } => {
            if session.debug.is_none() {
                return Err(StepError::Skip(format!(
                    "rig {} has no debug port",
                    session.rig.name
                )));
            }
            let check = match check {
                DebugCheck::Equals(text) => DebugCheck::Equals(
                    crate::steps::firmware::expand_versions(session, text)
                        .await
                        .map_err(role_error)?,
                ),
                other => other.clone(),
            };
            crate::steps::recovery::debug_step(session, key, &check, log)
                .map_err(|(e, s)| device(e, s))
        }
        Action::Classify {
            within: limit,
            allow,
        } => {
            let limit = limit.unwrap_or(within).min(within);
            let registered = session
                .server
                .await_registered(&session.endpoint, session.cursor, limit)
                .await
                .map(|(seq, _)| session.cursor = seq)
                .is_ok();
            session.require_new_registration = false;
            session.restart = None;
            let c = crate::steps::recovery::classify(session, registered, log).await;
            let _ = writeln!(log, "  -> {}: {}", c.class.name(), c.why);
            session.recoveries.push(c.class);
            match c.class {
                Recovery::Broken => Err(device(
                    "the device to recover or roll back after the cut",
                    format!("broken: {}", c.why),
                )),
                class if !allow.is_empty() && !allow.contains(&class) => Err(device(
                    format!(
                        "one of {}",
                        allow
                            .iter()
                            .map(|a| a.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("{}: {}", class.name(), c.why),
                )),
                _ => Ok(()),
            }
        }
        Action::Repeat { times, steps } => {
            for round in 1..=*times {
                session.round = round;
                let _ = writeln!(log, "  round {round}/{times}");
                for inner in steps {
                    let _ = writeln!(log, "  line {:>3}: {}", inner.line, inner.describe());
                    session.repeat_position = Some(RepeatPosition {
                        line: inner.line,
                        step: inner.describe(),
                        round,
                        times: *times,
                    });
                    let result =
                        Box::pin(run_step(session, case, inner, remaining, log, properties)).await;
                    session.repeat_position = None;
                    if let Err(error) = result {
                        session.round = 0;
                        // The failure is the inner step's, at its own line.
                        return Err(StepError::InRepeat {
                            line: inner.line,
                            step: inner.describe(),
                            round,
                            times: *times,
                            error: Box::new(error),
                        });
                    }
                }
            }
            session.round = 0;
            Ok(())
        }
    }
}

fn at(
    session: &mut Session,
    line: &AtLine,
    expect: &AtFinal,
    contains: Option<&str>,
    log: &mut String,
) -> Result<(), StepError> {
    let rig = session.rig.name.clone();
    let vars = session.device_vars();
    let modem = session
        .modem
        .as_mut()
        .ok_or_else(|| StepError::Skip(format!("rig {rig} has no modem")))?;
    // A dialect's secret variables (keys) reach the modem only: the
    // transcript, the log and any message show them masked.
    let (line, text) = match line {
        AtLine::Literal(l) => (l.clone(), l.clone()),
        AtLine::Named(n, extra) => {
            let mut vars = vars.clone();
            vars.extend(extra.clone());
            modem.dialect().render_shown(n, &vars).map_err(bench)?
        }
    };
    let timeout = modem.dialect().command_timeout;
    let r = tokio::task::block_in_place(|| modem.command_shown(&line, &text, timeout))
        .map_err(bench)?;
    let _ = writeln!(log, "  -> {}", r.summary());
    let got = if r.is_ok() {
        AtFinal::Ok
    } else if let Some(n) = r.cme_error() {
        AtFinal::Cme(n)
    } else {
        AtFinal::Error
    };
    if &got != expect {
        return Err(device(format!("{text} to answer {expect:?}"), r.summary()));
    }
    if let Some(c) = contains {
        if !r.lines.iter().any(|l| l.contains(c)) {
            return Err(device(
                format!("{text} to answer a line containing {c:?}"),
                r.summary(),
            ));
        }
    }
    Ok(())
}

async fn await_target(
    session: &mut Session,
    target: &AwaitTarget,
    within: Duration,
    log: &mut String,
) -> Result<(), StepError> {
    let ep = session.endpoint.clone();
    match target {
        AwaitTarget::Registered => {
            if !session.require_new_registration {
                if let Some(r) = session.server.registration(&ep) {
                    let _ = writeln!(log, "  -> already registered at {}", r.location);
                    // What happened before is consumed: a later await wants news.
                    session.cursor = session.server.current_seq();
                    return Ok(());
                }
            }
            let (seq, reg) = session
                .server
                .await_registered(&ep, session.cursor, within)
                .await
                .map_err(|e| server_error(format!("{ep} to register within {within:?}"), e))?;
            session.cursor = seq;
            session.require_new_registration = false;
            session.restart = None;
            let _ = writeln!(
                log,
                "  -> registered at {} objects {}",
                reg.location,
                links_text(&reg.objects)
            );
            learn_firmware_version(session).await;
            Ok(())
        }
        AwaitTarget::Deregistered => {
            if !session.require_new_registration && session.server.registration(&ep).is_none() {
                let _ = writeln!(log, "  -> not registered");
                session.cursor = session.server.current_seq();
                return Ok(());
            }
            let (seq, event) = session
                .server
                .await_deregistered(&ep, session.cursor, within)
                .await
                .map_err(|e| server_error(format!("{ep} to de-register within {within:?}"), e))?;
            session.cursor = seq;
            let _ = writeln!(log, "  -> {}", server::describe_event(&event));
            if matches!(event, ServerEvent::Expired { .. }) {
                return Err(device(
                    format!("{ep} to send De-register"),
                    "its registration expired instead",
                ));
            }
            Ok(())
        }
        AwaitTarget::Updated => {
            let ep2 = ep.clone();
            let lifetime = session.server.registration(&ep).map(|r| r.lifetime);
            let (seq, event) = session
                .server
                .await_event(session.cursor, within, move |e| match e {
                    ServerEvent::Updated(r) => r.endpoint == ep2,
                    ServerEvent::Expired { endpoint } => *endpoint == ep2,
                    _ => false,
                })
                .await
                .map_err(|e| {
                    server_error(
                        format!("a registration Update from {ep} within {within:?}"),
                        e,
                    )
                })?;
            session.cursor = seq;
            let _ = writeln!(log, "  -> {}", server::describe_event(&event));
            if matches!(event, ServerEvent::Expired { .. }) {
                // §6.2.2: the Update is due before the lifetime runs out.
                return Err(device(
                    format!(
                        "a registration Update from {ep} before its lifetime{} ran out",
                        lifetime
                            .map(|l| format!(" of {}s", l.as_secs()))
                            .unwrap_or_default()
                    ),
                    "the registration expired with no Update",
                ));
            }
            Ok(())
        }
        AwaitTarget::Value { path, condition } => {
            let condition = &role_versions(session, condition).await?;
            let end = Instant::now() + within;
            let first = read_value(session, *path, within).await?;
            let _ = writeln!(log, "  -> {first}");
            let mut last = first.clone();
            loop {
                if check_condition(*path, &last, condition, Some(&first)).is_ok() {
                    let _ = writeln!(log, "  -> {last}");
                    return Ok(());
                }
                if Instant::now() >= end {
                    return Err(timed_out(
                        format!("{path} {condition} within {within:?}"),
                        format!("{path} = {last} at the end of the wait"),
                    ));
                }
                tokio::time::sleep(
                    Duration::from_millis(500).min(end.saturating_duration_since(Instant::now())),
                )
                .await;
                last = read_value(
                    session,
                    *path,
                    end.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(100)),
                )
                .await?;
            }
        }
        AwaitTarget::Notifications { path, count } => {
            let id = *session.observations.get(path).ok_or_else(|| {
                bench(format!(
                    "no observe step started an observation of {path} in this case"
                ))
            })?;
            let mut seen = 0;
            while seen < *count {
                let (seq, event) = session
                    .server
                    .await_event(session.cursor, within, move |e| matches!(e, ServerEvent::Notification { observation, .. } if *observation == id))
                    .await
                    .map_err(|e| server_error(format!("{count} notification(s) of {path} within {within:?}"), e))
                    .map_err(|e| match e {
                        StepError::Timeout { expected, seen: why } => timed_out(expected, format!("{seen} arrived ({why})")),
                        other => other,
                    })?;
                session.cursor = seq;
                seen += 1;
                if let ServerEvent::Notification { records, .. } = &event {
                    let _ = writeln!(log, "  -> notification {seen}: {}", records_text(records));
                }
            }
            Ok(())
        }
        AwaitTarget::Reregistered => {
            let after = session.previous_step_seq.min(session.cursor);
            let (seq, reg) = session
                .server
                .await_registered(&ep, after, within)
                .await
                .map_err(|e| {
                    server_error(format!("{ep} to register again within {within:?}"), e)
                })?;
            session.cursor = seq;
            session.require_new_registration = false;
            session.restart = None;
            let _ = writeln!(log, "  -> registered again at {}", reg.location);
            Ok(())
        }
        AwaitTarget::Bootstrapped => {
            let bs = session.bootstrap.as_ref().ok_or_else(|| {
                StepError::Skip("this rig does not onboard its device by bootstrap".into())
            })?;
            let outcome = bs
                .await_bootstrap_finished(&ep, session.bootstrap_cursor, within)
                .await
                .map_err(|e| {
                    server_error(format!("{ep} to complete bootstrap within {within:?}"), e)
                })?;
            session.bootstrap_cursor = outcome.seq;
            // The device registers anew with what it was given; that may
            // already have happened since the step that started the bootstrap.
            session.require_new_registration = true;
            session.cursor = session.previous_step_seq.min(session.cursor);
            for (i, op, code) in &outcome.operations {
                let _ = writeln!(log, "  -> {i}: {op} {}", code_text(*code));
            }
            Ok(())
        }
        AwaitTarget::HandshakeRefused => {
            let identity = session
                .replaced_server_psk
                .as_ref()
                .map(|p| p.identity.clone())
                .or_else(|| {
                    session
                        .credentials
                        .as_ref()
                        .map(|c| c.server.identity.clone())
                });
            let (seq, event) = session
                .server
                .await_handshake_failed(identity.as_deref(), session.cursor, within)
                .await
                .map_err(|e| {
                    server_error(format!("a refused DTLS handshake within {within:?}"), e)
                })?;
            session.cursor = seq;
            let _ = writeln!(log, "  -> {}", server::describe_security_event(&event));
            Ok(())
        }
        AwaitTarget::Forbidden => {
            // Refused for this device: its own endpoint, or its identity
            // claiming another endpoint.
            let identity = session
                .credentials
                .as_ref()
                .map(|c| c.server.identity.clone());
            let ep2 = ep.clone();
            let (seq, event) = session
                .server
                .await_event(session.cursor, within, move |e| {
                    matches!(e, ServerEvent::Forbidden { endpoint, identity: id, .. }
                        if *endpoint == ep2 || (id.is_some() && *id == identity))
                })
                .await
                .map_err(|e| server_error(format!("a 4.03 Forbidden within {within:?}"), e))?;
            session.cursor = seq;
            let _ = writeln!(log, "  -> {}", server::describe_event(&event));
            Ok(())
        }
        AwaitTarget::SerialLine(prefix) => {
            let rig = session.rig.name.clone();
            let modem = session
                .modem
                .as_mut()
                .ok_or_else(|| StepError::Skip(format!("rig {rig} has no modem")))?;
            let line = tokio::task::block_in_place(|| modem.wait_for_line(prefix, within))
                .map_err(|e| {
                    serial_wait_error(
                        format!("a line starting {prefix:?} on the serial port within {within:?}"),
                        e,
                    )
                })?;
            let _ = writeln!(log, "  -> {line}");
            Ok(())
        }
    }
}

/// A condition with `{fw_version:ROLE}` replaced by the version the rig's
/// firmware role runs as: what the device must report, from the rig, not the case.
async fn role_versions(
    session: &mut Session,
    condition: &ValueCondition,
) -> Result<ValueCondition, StepError> {
    let text = match condition {
        ValueCondition::Equals(ScalarValue::Text(t))
        | ValueCondition::NotEquals(ScalarValue::Text(t)) => t.clone(),
        other => return Ok(other.clone()),
    };
    let version = ScalarValue::Text(
        crate::steps::firmware::expand_versions(session, &text)
            .await
            .map_err(role_error)?,
    );
    Ok(match condition {
        ValueCondition::Equals(_) => ValueCondition::Equals(version),
        _ => ValueCondition::NotEquals(version),
    })
}

/// A role the rig does not map: the case does not apply; a store that
/// cannot serve it: the bench's fault.
fn role_error(e: RoleError) -> StepError {
    match e {
        RoleError::NotMapped(why) => StepError::Skip(why),
        RoleError::Store(why) => StepError::Bench(why),
    }
}

async fn read(
    session: &mut Session,
    path: Path,
    format: Option<ContentFormat>,
    mandatory: bool,
    code: u16,
    within: Duration,
    log: &mut String,
) -> Result<(), StepError> {
    let r = exchange(session, DmRequest::Read { path, format }, within, code).await?;
    if code != 205 {
        return Ok(());
    }
    if let Some(f) = format {
        if r.format != Some(f) {
            return Err(device(
                format!("a {} answer", f.name()),
                format!("{:?}", r.format),
            ));
        }
    }
    let Content::Records(records) = &r.content else {
        return Err(device("resource values", format!("{:?}", r.content)));
    };
    let _ = writeln!(log, "  -> {}", records_text(records));
    for rec in records {
        if let Some(def) = session.registry.resource(&rec.path) {
            if !has_model_type(def.kind, &rec.value) {
                return Err(device(
                    format!("{} ({}) of type {:?}", rec.path, def.name, def.kind),
                    format!("{} {}", rec.value.type_name(), rec.value),
                ));
            }
        }
    }
    if mandatory {
        let object = path
            .object_id()
            .and_then(|o| session.registry.object(o))
            .ok_or_else(|| bench(format!("{path} is not in the object model")))?;
        for def in object.mandatory_resources().filter(|d| d.operations.read) {
            let present = records.iter().any(|r| {
                r.path.object_id() == path.object_id() && r.path.resource_id() == Some(def.id)
            });
            if !present {
                return Err(device(
                    format!("mandatory resource {}/{} ({})", path, def.id, def.name),
                    "absent from the answer",
                ));
            }
        }
    }
    Ok(())
}

async fn request_on(
    session: &mut Session,
    request: DmRequest,
    within: Duration,
) -> Result<Response, StepError> {
    let timeout = within.min(Duration::from_secs(60));
    let ep = session.endpoint.clone();
    let text = server::describe_request(&request);
    session
        .server
        .request(&ep, request, timeout)
        .await
        .map_err(|e| server_error(format!("an answer to {text}"), e))
}

/// Sends `request`, waits up to `within` and requires the answer `code`.
async fn exchange(
    session: &mut Session,
    request: DmRequest,
    within: Duration,
    code: u16,
) -> Result<Response, StepError> {
    let path = request.path();
    let text = server::describe_request(&request);
    let r = request_on(session, request, within).await?;
    expect_code(session, path, &text, &r, code)?;
    Ok(r)
}

/// Requires the answer `code` to `request` on `path`. A 4.04 the case did
/// not ask for is judged by [`crate::steps::not_found`]: a failure for a
/// missing mandatory resource, a skip for what the device does not offer.
fn expect_code(
    session: &Session,
    path: Path,
    request: &str,
    r: &Response,
    code: u16,
) -> Result<(), StepError> {
    if r.code == 404 && code != 404 {
        let registration = session.server.registration(&session.endpoint);
        return Err(crate::steps::not_found::judge(
            &session.registry,
            registration.as_ref(),
            path,
            request,
        ));
    }
    if r.code != code {
        return Err(device(
            format!("response {}", code_text(code)),
            format!("{} {}", code_text(r.code), values_text(r)),
        ));
    }
    Ok(())
}

pub(super) async fn read_value(
    session: &mut Session,
    path: Path,
    within: Duration,
) -> Result<Value, StepError> {
    let r = exchange(session, DmRequest::Read { path, format: None }, within, 205).await?;
    match &r.content {
        Content::Records(records) => records
            .iter()
            .find(|rec| rec.path == path)
            .or(records.first())
            .map(|rec| rec.value.clone())
            .ok_or_else(|| device(format!("a value at {path}"), "an empty answer")),
        other => Err(device(format!("a value at {path}"), format!("{other:?}"))),
    }
}

fn check_condition(
    path: Path,
    v: &Value,
    condition: &ValueCondition,
    first: Option<&Value>,
) -> Result<(), StepError> {
    let ok = match condition {
        ValueCondition::Equals(e) => matches(v, e),
        ValueCondition::NotEquals(e) => !matches(v, e),
        ValueCondition::Changes => first.is_some_and(|f| f != v),
    };
    if ok {
        Ok(())
    } else {
        Err(device(
            format!("{path} {condition}"),
            format!("{path} = {v}"),
        ))
    }
}

async fn learn_firmware_version(session: &mut Session) {
    if session.info.firmware_version.is_none() {
        if let Ok(Value::String(v)) =
            read_value(session, Path::resource(3, 0, 3), Duration::from_secs(5)).await
        {
            session.info.firmware_version = Some(v);
        }
    }
}

fn records_text(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| format!("{}={}", r.path, r.value))
        .collect::<Vec<_>>()
        .join(" ")
}

fn values_text(r: &Response) -> String {
    match &r.content {
        Content::None => String::new(),
        Content::Records(rs) => records_text(rs),
        Content::Links(ls) => links_text(ls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::ServerError;

    #[test]
    fn a_wait_that_runs_out_is_a_timeout_of_the_device() {
        let e = server_error(
            "meter-1 to register within 5s",
            ServerError::Timeout {
                what: "meter-1 to register".into(),
                after: Duration::from_secs(5),
            },
        );
        assert!(matches!(e, StepError::Timeout { .. }), "{e:?}");
        let e = server_error(
            "an answer to Read /3/0/0",
            ServerError::NoResponse {
                endpoint: "meter-1".into(),
                request: "Read /3/0/0".into(),
                attempts: 5,
            },
        );
        assert!(matches!(e, StepError::Timeout { .. }), "{e:?}");
    }

    #[test]
    fn a_bootstrap_exchange_the_device_answered_wrongly_is_a_failure() {
        let e = server_error(
            "meter-1 to complete bootstrap within 30s",
            ServerError::BootstrapFailed {
                endpoint: "meter-1".into(),
                index: 2,
                op: "Bootstrap-Write /0/1".into(),
                expected: vec![204],
                got: Some(400),
                reason: "refused".into(),
            },
        );
        let StepError::Device { seen, .. } = e else {
            panic!("{e:?}")
        };
        assert!(seen.contains("Bootstrap-Write /0/1"), "{seen}");
        let e = server_error(
            "an answer to Read /3/0/0",
            ServerError::Reset {
                endpoint: "meter-1".into(),
                request: "Read /3/0/0".into(),
            },
        );
        assert!(matches!(e, StepError::Device { .. }), "{e:?}");
    }

    #[test]
    fn a_harness_or_credential_problem_is_a_bench_error() {
        for e in [
            ServerError::Shutdown,
            ServerError::Credential {
                endpoint: "meter-1".into(),
                reason: "no key".into(),
            },
            ServerError::Dtls("no context".into()),
            ServerError::InvalidRequest {
                request: "Block1 Write /5/0/0".into(),
                reason: "SZX 7".into(),
            },
        ] {
            let e = server_error("anything", e);
            assert!(matches!(e, StepError::Bench(_)), "{e:?}");
        }
    }

    #[test]
    fn a_serial_wait_that_runs_out_is_a_timeout_and_a_dead_port_the_bench() {
        let e = serial_wait_error(
            "a line starting \"+LWM2M\"",
            rig::RigError::WaitTimeout {
                port: "/dev/pts/3".into(),
                prefix: "+LWM2M".into(),
                waited: Duration::from_secs(1),
                last_lines: vec![],
            },
        );
        assert!(matches!(e, StepError::Timeout { .. }), "{e:?}");
        let e = serial_wait_error(
            "a line starting \"+LWM2M\"",
            rig::RigError::Serial {
                port: "/dev/pts/3".into(),
                command: None,
                source: std::io::Error::other("gone"),
            },
        );
        assert!(matches!(e, StepError::Bench(_)), "{e:?}");
    }
}
