//! `group: {read | write | execute | observe: PATH, where, all | at_least}`:
//! one LwM2M operation (LwM2M 1.1 Core §6.3 Read/Write/Execute, §6.4
//! Observe) on every member of a group case, or on the members `where`
//! selects, concurrently; each member's outcome goes into the step log, and
//! the step passes when `all` selected members (the default), or
//! `at_least` N of them, answered as the case says.
//!
//! `where` selects by registration data (the endpoint name, the binding,
//! an object in the object list, LwM2M 1.1 Core §6.2.1) or by a resource
//! value read first (`path` with `equals`): "the meters running 1.0".
//! Values in `where`, `value` and `equals` take the templates other steps'
//! values take (`{saved:NAME}`, `{fw_version:ROLE}`, `{euicc:...}`, and
//! for a written value `{fw_url:ROLE}`), expanded for each member with its
//! own saved values and its own rig mapping ([`case_value`]), so "the
//! meters not yet running the upgrade" is a `where` a case can write.

use std::fmt::Write as _;

use lwm2m::server::{Content, DmRequest, Response, WriteMode};
use lwm2m::{Path, Record};
use serde::Deserialize;
use server::code_text;
use thiserror::Error;

use crate::case::fields::{CasePath, Code};
use crate::case::model::ScalarValue;
use crate::session::Session;
use crate::steps::error::{bench, device, StepError};
use crate::steps::exchange::{request_on, values_text};
use crate::steps::firmware::{expand_urls, expand_versions, roles_in};
use crate::steps::kinds::group_case::{
    at_most, show_member_logs, Member, MemberFuture, Went, MEMBERS_AT_ONCE,
};
use crate::steps::kinds::saved;
use crate::steps::value::{matches, typed_value};
use crate::steps::{instances, CaseContext, Restart, Step, StepFuture, Turn};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Read this path on each member (expects 2.05).
    read: Option<CasePath>,
    /// Write `value` to this path on each member (expects 2.04).
    write: Option<CasePath>,
    /// Execute this path on each member, with `args` (expects 2.04).
    execute: Option<CasePath>,
    /// Observe this path on each member (expects 2.05); later
    /// `await: { notification: PATH }` steps run on every member.
    observe: Option<CasePath>,
    value: Option<ScalarValue>,
    args: Option<String>,
    /// Write-Attributes sent before an `observe` (LwM2M 1.1 Core §5.1.2).
    pmin: Option<u32>,
    pmax: Option<u32>,
    /// Which members the operation is for (default: all).
    #[serde(rename = "where")]
    filter: Option<Filter>,
    /// Every selected member must answer so (the default, with the
    /// operation's success code).
    all: Option<Check>,
    /// At least this many selected members must answer as `all` says
    /// (`at_least: 3`, or `at_least: { count: 3, equals: "2.0" }`).
    at_least: Option<AtLeastSpec>,
    /// How many members are asked at once (default 8).
    concurrent: Option<usize>,
}

/// Which members a group step acts on; every condition given must hold.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Part of the endpoint name the member registered with.
    pub endpoint: Option<String>,
    /// The binding it registered with (`U`, `UQ`, `N`).
    pub binding: Option<String>,
    /// An object its registration lists (`object: 5`).
    pub object: Option<u16>,
    /// A resource read first; with `equals`, its value.
    pub path: Option<CasePath>,
    pub equals: Option<ScalarValue>,
}

/// What an answer must be: its code, and for a read or observe its value.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub equals: Option<ScalarValue>,
    pub code: Option<Code>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AtLeastSpec {
    Count(usize),
    With {
        count: usize,
        #[serde(flatten)]
        check: Check,
    },
}

/// The operation each member gets.
#[derive(Debug, Clone)]
pub enum Operation {
    Read(CasePath),
    Write(CasePath, ScalarValue),
    Execute(CasePath, Option<String>),
    Observe {
        path: CasePath,
        pmin: Option<u32>,
        pmax: Option<u32>,
    },
}

impl Operation {
    fn path(&self) -> CasePath {
        match self {
            Operation::Read(p)
            | Operation::Write(p, _)
            | Operation::Execute(p, _)
            | Operation::Observe { path: p, .. } => *p,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Operation::Read(_) => "read",
            Operation::Write(..) => "write",
            Operation::Execute(..) => "execute",
            Operation::Observe { .. } => "observe",
        }
    }

    fn success(&self) -> Code {
        match self {
            Operation::Read(_) | Operation::Observe { .. } => Code::CONTENT,
            Operation::Write(..) | Operation::Execute(..) => Code::CHANGED,
        }
    }
}

/// How many selected members must answer as the check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    All,
    AtLeast(usize),
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "GroupSpec")]
pub struct GroupStep {
    #[schemars(skip)] // parsed from its `try_from` type
    pub operation: Operation,
    #[schemars(skip)]
    pub filter: Filter,
    #[schemars(skip)]
    pub quorum: Quorum,
    #[schemars(skip)]
    pub check: Check,
    pub concurrent: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupStepError {
    #[error("group: give exactly one of `read`, `write`, `execute` and `observe`")]
    OneOperation,
    #[error("group write {0}: give the `value` to write")]
    NoValue(String),
    #[error(
        "group: `value` goes with `write`, `args` with `execute`, `pmin` and `pmax` with `observe`"
    )]
    Misplaced,
    #[error("group: give `all` or `at_least`, not both")]
    AllOrAtLeast,
    #[error("group: `equals` checks the value a read or observe answers, not a {0}")]
    EqualsNeedsValue(&'static str),
    #[error("group: `where: {{ equals }}` needs the `path` whose value it compares")]
    EqualsWithoutPath,
    #[error("group: `concurrent` must be 1 or more")]
    Concurrent,
}

impl TryFrom<GroupSpec> for GroupStep {
    type Error = GroupStepError;
    fn try_from(g: GroupSpec) -> Result<Self, GroupStepError> {
        let operation = match (g.read, g.write, g.execute, g.observe) {
            (Some(p), None, None, None) => Operation::Read(p),
            (None, Some(p), None, None) => Operation::Write(
                p,
                g.value
                    .clone()
                    .ok_or_else(|| GroupStepError::NoValue(p.to_string()))?,
            ),
            (None, None, Some(p), None) => Operation::Execute(p, g.args.clone()),
            (None, None, None, Some(path)) => Operation::Observe {
                path,
                pmin: g.pmin,
                pmax: g.pmax,
            },
            _ => return Err(GroupStepError::OneOperation),
        };
        let misplaced = (g.value.is_some() && !matches!(operation, Operation::Write(..)))
            || (g.args.is_some() && !matches!(operation, Operation::Execute(..)))
            || ((g.pmin.is_some() || g.pmax.is_some())
                && !matches!(operation, Operation::Observe { .. }));
        if misplaced {
            return Err(GroupStepError::Misplaced);
        }
        let (quorum, check) = match (g.all, g.at_least) {
            (Some(_), Some(_)) => return Err(GroupStepError::AllOrAtLeast),
            (Some(check), None) => (Quorum::All, check),
            (None, Some(AtLeastSpec::Count(n))) => (Quorum::AtLeast(n), Check::default()),
            (None, Some(AtLeastSpec::With { count, check })) => (Quorum::AtLeast(count), check),
            (None, None) => (Quorum::All, Check::default()),
        };
        if check.equals.is_some()
            && matches!(operation, Operation::Write(..) | Operation::Execute(..))
        {
            return Err(GroupStepError::EqualsNeedsValue(operation.name()));
        }
        let filter = g.filter.unwrap_or_default();
        if filter.equals.is_some() && filter.path.is_none() {
            return Err(GroupStepError::EqualsWithoutPath);
        }
        let concurrent = g.concurrent.unwrap_or(MEMBERS_AT_ONCE);
        if concurrent == 0 {
            return Err(GroupStepError::Concurrent);
        }
        Ok(GroupStep {
            operation,
            filter,
            quorum,
            check,
            concurrent,
        })
    }
}

impl Step for GroupStep {
    fn firmware_roles(&self) -> Vec<String> {
        let mut roles = self.filter.firmware_roles();
        let texts = [
            match &self.operation {
                Operation::Write(_, v) => Some(v),
                _ => None,
            },
            self.check.equals.as_ref(),
        ];
        for v in texts.into_iter().flatten() {
            if let ScalarValue::Text(t) = v {
                roles.extend(roles_in(t));
            }
        }
        roles.sort();
        roles.dedup();
        roles
    }

    fn describe(&self) -> String {
        let mut text = format!("group {} {}", self.operation.name(), self.operation.path());
        if let Operation::Write(_, v) = &self.operation {
            let _ = write!(text, " = {v}");
        }
        if let Some(f) = self.filter.describe() {
            let _ = write!(text, " where {f}");
        }
        match self.quorum {
            Quorum::All => text.push_str(", all"),
            Quorum::AtLeast(n) => {
                let _ = write!(text, ", at least {n}");
            }
        }
        if let Some(v) = &self.check.equals {
            let _ = write!(text, " equal {v}");
        }
        text
    }

    fn run<'a>(
        &'a self,
        _turn: Turn,
        _ctx: &'a mut CaseContext,
        _rig: &'a mut Session,
    ) -> StepFuture<'a> {
        // Refused at load time outside a group case (crate::case).
        Box::pin(async { Err(bench("a group step runs only in a group case (`group:`)")) })
    }
}

/// A value a case compares with or writes, its templates filled in the
/// way the single-device steps fill them: `{saved:NAME}` (what this
/// member's case saved, `read` step), then in text `{fw_version:ROLE}` and
/// `{euicc:...}` from the member's rig. A role the rig does not map is a
/// skip (the case does not apply); an unusable store, or a name never
/// saved, the bench's error.
pub async fn case_value(
    rig: &mut Session,
    saved_values: &std::collections::HashMap<String, String>,
    value: &ScalarValue,
) -> Result<ScalarValue, StepError> {
    match saved::expand(value, saved_values)? {
        ScalarValue::Text(t) => Ok(ScalarValue::Text(expand_versions(rig, &t).await?)),
        other => Ok(other),
    }
}

/// Each member's `where`, with its `equals` expanded for that member
/// ([`case_value`]): `Err(why)` for a member it cannot apply to (a skip's
/// reason: the member is not selected); a bench error ends the step on
/// the member it happened on.
pub async fn member_filters(
    filter: &Filter,
    members: &mut [Member<'_>],
) -> Result<Vec<Result<Filter, String>>, Went> {
    let mut filters = Vec::with_capacity(members.len());
    for (i, m) in members.iter_mut().enumerate() {
        filters.push(match filter.expanded(m.session, &m.ctx.saved).await {
            Ok(f) => {
                // What a template became is evidence: the member's log says
                // which value it was selected by.
                if f.equals != filter.equals {
                    let _ = writeln!(m.ctx.log, "where {}", f.describe().unwrap_or_default());
                }
                Ok(f)
            }
            Err(StepError::Skip(why)) => Err(why),
            Err(e) => {
                let _ = writeln!(m.ctx.log, "  -> `where` {e}");
                return Err(Went::Member(i, e));
            }
        });
    }
    Ok(filters)
}

impl Filter {
    /// Firmware roles the filter's value names (`{fw_version:ROLE}`).
    pub fn firmware_roles(&self) -> Vec<String> {
        match &self.equals {
            Some(ScalarValue::Text(t)) => roles_in(t),
            _ => Vec::new(),
        }
    }

    /// The filter with `equals` expanded for one member ([`case_value`]).
    pub async fn expanded(
        &self,
        rig: &mut Session,
        saved_values: &std::collections::HashMap<String, String>,
    ) -> Result<Filter, StepError> {
        let Some(want) = &self.equals else {
            return Ok(self.clone());
        };
        Ok(Filter {
            equals: Some(case_value(rig, saved_values, want).await?),
            ..self.clone()
        })
    }

    fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(e) = &self.endpoint {
            parts.push(format!("endpoint contains {e:?}"));
        }
        if let Some(b) = &self.binding {
            parts.push(format!("binding {b}"));
        }
        if let Some(o) = self.object {
            parts.push(format!("object {o}"));
        }
        match (&self.path, &self.equals) {
            (Some(p), Some(v)) => parts.push(format!("{p} = {v}")),
            (Some(p), None) => parts.push(format!("{p} readable")),
            _ => {}
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    /// Whether the member is selected, and if not, why (for the log).
    /// Registration data first; a resource value only when that matched.
    pub async fn selects(&self, rig: &Session, within: std::time::Duration) -> Result<(), String> {
        if self.endpoint.is_none()
            && self.binding.is_none()
            && self.object.is_none()
            && self.path.is_none()
        {
            return Ok(());
        }
        let reg = rig
            .server
            .registration(&rig.endpoint)
            .ok_or("not registered")?;
        if let Some(e) = &self.endpoint {
            if !reg.endpoint.contains(e.as_str()) {
                return Err(format!("endpoint {} lacks {e:?}", reg.endpoint));
            }
        }
        if let Some(b) = &self.binding {
            if reg.binding != *b {
                return Err(format!("binding {}", reg.binding));
            }
        }
        if let Some(o) = self.object {
            let listed = reg
                .objects
                .iter()
                .filter_map(|l| l.path())
                .any(|p| p.object_id() == Some(o));
            if !listed {
                return Err(format!("object {o} not in its registration"));
            }
        }
        if let Some(path) = self.path {
            let path = instances::resolve_in(&reg, path).map_err(|e| e.to_string())?;
            let request = DmRequest::Read { path, format: None };
            let r = request_on(rig, request, within)
                .await
                .map_err(|e| e.to_string())?;
            let value = first_value(&r, path)
                .ok_or_else(|| format!("{path}: {} {}", code_text(r.code), values_text(&r)))?;
            if let Some(want) = &self.equals {
                if !matches(&value, want) {
                    return Err(format!("{path} = {value}"));
                }
            }
        }
        Ok(())
    }
}

/// The value at `path` in a response (its first record otherwise).
fn first_value(r: &Response, path: Path) -> Option<lwm2m::Value> {
    match &r.content {
        Content::Records(records) => records
            .iter()
            .find(|rec| rec.path == path)
            .or(records.first())
            .map(|rec| rec.value.clone()),
        _ => None,
    }
}

/// What one member made of a group step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `where` left it out (why).
    NotSelected(String),
    /// Answered as the check says (what it answered).
    Ok(String),
    /// Answered otherwise, or not at all.
    Wrong(String),
}

/// Whether the outcomes meet the quorum: the selected and the good ones
/// counted, and the verdict's words when they do not.
pub fn quorum_met(
    quorum: Quorum,
    outcomes: &[(String, Outcome)],
) -> Result<(usize, usize), String> {
    let selected = outcomes
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::NotSelected(_)))
        .count();
    let good = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Ok(_)))
        .count();
    let wrong: Vec<String> = outcomes
        .iter()
        .filter_map(|(n, o)| match o {
            Outcome::Wrong(why) => Some(format!("{n}: {why}")),
            _ => None,
        })
        .collect();
    let met = match quorum {
        Quorum::All => selected > 0 && good == selected,
        Quorum::AtLeast(n) => good >= n,
    };
    if met {
        Ok((selected, good))
    } else if selected == 0 {
        Err(format!("no member selected (of {})", outcomes.len()))
    } else {
        Err(format!(
            "{good} of {selected} selected member(s) as expected; {}",
            wrong.join("; ")
        ))
    }
}

impl GroupStep {
    /// Runs the operation on the group: each member selected, asked and
    /// judged on its own, concurrently; then the quorum.
    pub async fn run_on_group(
        &self,
        turn: Turn,
        members: &mut [Member<'_>],
        log: &mut String,
        properties: &mut Vec<(String, String)>,
    ) -> Result<(), Went> {
        let filters = member_filters(&self.filter, members).await?;
        let futures = members
            .iter_mut()
            .zip(filters)
            .map(|(m, filter)| {
                Box::pin(async move {
                    let name = m.name.clone();
                    let selected = match filter {
                        Ok(filter) => filter.selects(m.session, turn.within).await,
                        Err(why) => Err(why),
                    };
                    let outcome = match selected {
                        Err(why) => Outcome::NotSelected(why),
                        Ok(()) => match self.on_member(turn, &mut m.ctx, m.session).await {
                            Ok(seen) => Outcome::Ok(seen),
                            Err(StepError::Skip(why)) => Outcome::NotSelected(why),
                            Err(e) => Outcome::Wrong(e.to_string()),
                        },
                    };
                    let line = match &outcome {
                        Outcome::NotSelected(why) => format!("not selected: {why}"),
                        Outcome::Ok(seen) => format!("ok: {seen}"),
                        Outcome::Wrong(why) => format!("WRONG: {why}"),
                    };
                    let _ = writeln!(m.ctx.log, "  -> {line}");
                    (name, outcome)
                }) as MemberFuture<'_, _>
            })
            .collect();
        let results = at_most(futures, self.concurrent).await;
        show_member_logs(members, log);
        let key = format!("group.line{}", turn.line);
        match quorum_met(self.quorum, &results) {
            Ok((selected, good)) => {
                let _ = writeln!(log, "  group: {good} of {selected} selected as expected");
                properties.push((format!("{key}.selected"), selected.to_string()));
                properties.push((format!("{key}.succeeded"), good.to_string()));
                Ok(())
            }
            Err(seen) => {
                let expected = match self.quorum {
                    Quorum::All => "every selected member".to_string(),
                    Quorum::AtLeast(n) => format!("at least {n} member(s)"),
                };
                Err(Went::Group(device(
                    format!("{expected} to answer {}", self.expectation()),
                    seen,
                )))
            }
        }
    }

    fn expectation(&self) -> String {
        let code = self.check.code.unwrap_or(self.operation.success());
        match &self.check.equals {
            Some(v) => format!("{code} with {} = {v}", self.operation.path()),
            None => format!(
                "{code} to {} {}",
                self.operation.name(),
                self.operation.path()
            ),
        }
    }

    /// The operation on one member; what it answered when it is as expected.
    async fn on_member(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &mut Session,
    ) -> Result<String, StepError> {
        let path = instances::resolve(rig, self.operation.path())?;
        let code = self.check.code.unwrap_or(self.operation.success());
        let r = match &self.operation {
            Operation::Read(_) => {
                request_on(rig, DmRequest::Read { path, format: None }, turn.within).await?
            }
            Operation::Write(_, value) => {
                // As the `write` step: saved values, then Package URIs.
                let value = saved::expand(value, &ctx.saved)?;
                let value = expand_urls(rig, &value).await?;
                let value = typed_value(&rig.registry, &path, &value).map_err(bench)?;
                let request = DmRequest::Write {
                    path,
                    mode: WriteMode::Replace,
                    records: vec![Record::new(path, value)],
                    format: None,
                };
                request_on(rig, request, turn.within).await?
            }
            Operation::Execute(_, args) => {
                // As the `execute` step: a reboot or update follows, and
                // only a new registration proves the device came back.
                ctx.skip_to_now(rig);
                let update = path.object_id() == Some(lwm2m::firmware::OBJECT_ID)
                    && path.resource_id() == Some(lwm2m::firmware::resource::UPDATE);
                ctx.restart = Some(if update {
                    Restart::FirmwareUpdate
                } else {
                    Restart::Reboot
                });
                let request = DmRequest::Execute {
                    path,
                    arguments: args.clone(),
                };
                let r = request_on(rig, request, turn.within).await?;
                ctx.require_new_registration = true;
                r
            }
            Operation::Observe { pmin, pmax, .. } => {
                if pmin.is_some() || pmax.is_some() {
                    let attributes = lwm2m::server::Attributes {
                        pmin: *pmin,
                        pmax: *pmax,
                        ..Default::default()
                    };
                    let request = DmRequest::WriteAttributes { path, attributes };
                    let r = request_on(rig, request, turn.within).await?;
                    if r.code != Code::CHANGED.0 {
                        return Err(device(
                            format!("{} to Write-Attributes {path}", Code::CHANGED),
                            code_text(r.code),
                        ));
                    }
                }
                let before = rig.server.current_seq();
                let o = rig
                    .server
                    .observe(&rig.endpoint, path, None)
                    .await
                    .map_err(|e| device(format!("an answer to Observe {path}"), e.to_string()))?;
                if o.first.code == Code::CONTENT.0 {
                    ctx.observations.insert(path, o.id);
                    // Notifications are counted from the Observe on.
                    ctx.cursor = before;
                }
                o.first
            }
        };
        let seen = format!("{} {}", code_text(r.code), values_text(&r));
        if r.code != code.0 {
            return Err(device(format!("{code}"), seen));
        }
        if let Some(want) = &self.check.equals {
            // `{fw_version:ROLE}` is the version the rig maps the role to.
            let want = &case_value(rig, &ctx.saved, want).await?;
            match first_value(&r, path) {
                Some(v) if matches(&v, want) => {}
                Some(v) => return Err(device(format!("{path} = {want}"), format!("{path} = {v}"))),
                None => return Err(device(format!("{path} = {want}"), seen)),
            }
        }
        Ok(seen.trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Result<GroupStep, String> {
        serde_saphyr::from_str::<GroupStep>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_group_step_names_one_operation_and_its_check() {
        let g = step("{ read: /3/0/3, all: { equals: \"1.0\" } }").unwrap();
        assert!(matches!(g.operation, Operation::Read(_)));
        assert_eq!(g.quorum, Quorum::All);
        assert_eq!(g.describe(), "group read /3/0/3, all equal \"1.0\"");
        let g = step("{ write: /1/*/1, value: 45, where: { object: 5 }, at_least: 3 }").unwrap();
        assert_eq!(g.quorum, Quorum::AtLeast(3));
        assert_eq!(
            g.describe(),
            "group write /1/*/1 = 45 where object 5, at least 3"
        );
        let g = step("{ read: /3/0/3, at_least: { count: 2, equals: \"2.0\" } }").unwrap();
        assert_eq!(g.quorum, Quorum::AtLeast(2));
        assert!(g.check.equals.is_some());
        for (bad, says) in [
            ("{ read: /3/0/3, write: /3/0/3 }", "exactly one"),
            ("{ write: /3/0/14 }", "give the `value`"),
            ("{ read: /3/0/3, value: 1 }", "`value` goes with `write`"),
            ("{ read: /3/0/3, all: {}, at_least: 1 }", "not both"),
            ("{ execute: /3/0/4, all: { equals: 1 } }", "not a execute"),
            ("{ read: /3/0/3, where: { equals: 1 } }", "needs the `path`"),
        ] {
            let e = step(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// Roles named in `where`, `value` or `equals` are checked against the
    /// rig before any device is touched, as other steps' are: a rig that
    /// maps none skips the case instead of failing a member mid-step.
    #[test]
    fn roles_in_where_value_and_equals_are_the_steps_roles() {
        let g = step(
            "{ read: /3/0/3, where: { path: /3/0/3, equals: \"{fw_version:upgrade}\" }, all: { equals: \"{fw_version:same-version}\" } }",
        )
        .unwrap();
        assert_eq!(g.firmware_roles(), ["same-version", "upgrade"]);
        let g = step("{ write: /5/0/1, value: \"{fw_url:upgrade}\" }").unwrap();
        assert_eq!(g.firmware_roles(), ["upgrade"]);
        let g = step("{ read: /3/0/3, where: { path: /3/0/3, equals: \"{saved:v}\" } }").unwrap();
        assert!(g.firmware_roles().is_empty());
    }

    fn outcomes(list: &[Outcome]) -> Vec<(String, Outcome)> {
        list.iter()
            .enumerate()
            .map(|(i, o)| (format!("meter-{}", i + 1), o.clone()))
            .collect()
    }

    #[test]
    fn a_quorum_counts_only_the_selected_members() {
        let ok = || Outcome::Ok("2.05".into());
        let out = || Outcome::NotSelected("object 5 not in its registration".into());
        let wrong = || Outcome::Wrong("expected 2.05; saw 4.04".into());
        assert_eq!(
            quorum_met(Quorum::All, &outcomes(&[ok(), out(), ok()])),
            Ok((2, 2))
        );
        let e = quorum_met(Quorum::All, &outcomes(&[ok(), wrong(), ok()])).unwrap_err();
        assert!(e.starts_with("2 of 3 selected"), "{e}");
        assert!(e.contains("meter-2: expected 2.05; saw 4.04"), "{e}");
        assert_eq!(
            quorum_met(Quorum::AtLeast(2), &outcomes(&[ok(), wrong(), ok()])),
            Ok((3, 2))
        );
        let e = quorum_met(Quorum::All, &outcomes(&[out(), out()])).unwrap_err();
        assert_eq!(e, "no member selected (of 2)");
        assert!(quorum_met(Quorum::AtLeast(0), &outcomes(&[out()])).is_ok());
    }
}
