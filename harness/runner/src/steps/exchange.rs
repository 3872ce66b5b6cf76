//! Requests to the device through the rig's LwM2M server, and the checks
//! every step makes of an answer: its code, a 4.04 judged by the object
//! model, a value compared with what the case expects.

use std::time::Duration;

use lwm2m::server::{Content, DmRequest, Response};
use lwm2m::{Path, Record, Value};
use server::{code_text, links_text, LogEntry};

use crate::case::fields::Code;
use crate::session::Session;
use crate::steps::error::{device, server_error, StepError};
use crate::steps::kinds::expect_value::ValueCondition;
use crate::steps::value::matches;

/// Sends `request`, waiting up to `within` (at most a minute) for the answer.
pub async fn request_on(
    rig: &Session,
    request: DmRequest,
    within: Duration,
) -> Result<Response, StepError> {
    let timeout = within.min(Duration::from_secs(60));
    let text = server::describe_request(&request);
    rig.server
        .request(&rig.endpoint, request, timeout)
        .await
        .map_err(|e| server_error(format!("an answer to {text}"), e))
}

/// Sends `request`, waits up to `within` and requires the answer `code`.
pub async fn exchange(
    rig: &Session,
    request: DmRequest,
    within: Duration,
    code: Code,
) -> Result<Response, StepError> {
    let path = request.path();
    let text = server::describe_request(&request);
    let r = request_on(rig, request, within).await?;
    expect_code(rig, path, &text, &r, code)?;
    Ok(r)
}

/// Requires the answer `code` to `request` on `path`. A 4.04 the case did
/// not ask for is judged by [`crate::steps::not_found`]: a failure for a
/// missing mandatory resource, a skip for what the device does not offer.
pub fn expect_code(
    rig: &Session,
    path: Path,
    request: &str,
    r: &Response,
    code: Code,
) -> Result<(), StepError> {
    if r.code == Code::NOT_FOUND.0 && code != Code::NOT_FOUND {
        let registration = rig.server.registration(&rig.endpoint);
        return Err(crate::steps::not_found::judge(
            &rig.registry,
            registration.as_ref(),
            path,
            request,
        ));
    }
    if r.code != code.0 {
        return Err(device(
            format!("response {code}"),
            format!("{} {}", code_text(r.code), values_text(r)),
        ));
    }
    Ok(())
}

/// The value the device reads at `path`.
pub async fn read_value(rig: &Session, path: Path, within: Duration) -> Result<Value, StepError> {
    let request = DmRequest::Read { path, format: None };
    let r = exchange(rig, request, within, Code::CONTENT).await?;
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

/// Whether `v`, read at `path`, meets `condition` (`first`: the value the
/// wait began with, for `changes`).
pub fn check_condition(
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

pub fn records_text(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| format!("{}={}", r.path, r.value))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn values_text(r: &Response) -> String {
    match &r.content {
        Content::None => String::new(),
        Content::Records(rs) => records_text(rs),
        Content::Links(ls) => links_text(ls),
    }
}

/// Polls the server's message log from entry `from` until `find` picks an
/// entry or `within` runs out. The wire is judged from the log (what
/// crossed it, in order), not from events, so an answer the server sent
/// is seen even when no event names it. On timeout: the log as it stood,
/// for the caller to say what was seen instead.
pub async fn await_logged(
    rig: &Session,
    from: usize,
    within: Duration,
    find: impl Fn(&[LogEntry]) -> Option<&LogEntry>,
) -> Result<LogEntry, Vec<LogEntry>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let log = rig.server.log_since(from);
        if let Some(found) = find(&log) {
            return Ok(found.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(log);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
