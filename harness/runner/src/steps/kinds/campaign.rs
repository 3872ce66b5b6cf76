//! `campaign: {image, method, concurrent, where, faults, expect}`: a
//! firmware campaign over the members of a group case, as a utility runs
//! one over its fleet: every (selected) member is updated with the
//! firmware update procedure of LwM2M 1.1 Core Appendix E.6 — the
//! `firmware` step's delivery (Package URI pull over CoAP/CoAPS/HTTP, or a
//! Block1 push) with its object 5 watch, Downloaded awaited, Execute
//! Update (/5/x/2), the new registration awaited — at most `concurrent`
//! downloads at a time (the file servers' and the network's load is the
//! downloads; the updates themselves run as they come).
//!
//! Each member ends succeeded (Update Result 1, running the role's
//! version), rolled back (it came back running the version it ran before)
//! or failed (the download failed, it dropped out, it came back with
//! anything else); every wait is bounded by the rig's
//! `firmware.download_within` and `firmware.update_within`, and a member
//! that answers none of the campaign's status reads for `answer_within`
//! ([`DROP_OUT_AFTER`] by default) has dropped out, so one lost meter never holds the
//! campaign up. The per-member report goes to the step log, to
//! `campaign.csv` in the case's folder and to the JUnit properties
//! (`campaign.succeeded`, `campaign.<member>.result`, ...); `expect` says
//! how many of each the case requires (default: all succeeded).
//!
//! `faults` make a member misbehave on purpose, for the cases that prove
//! the campaign survives it: another image role for one member
//! (`unbootable`: rolled back, `corrupted`: failed), or its power cut
//! half-way through its download and left off (dropped out).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lwm2m::firmware::{resource, FirmwareState, UpdateResult, OBJECT_ID};
use lwm2m::server::DmRequest;
use lwm2m::{Path, Value};
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::case::fields::Code;
use crate::session::{RoleError, Session};
use crate::steps::error::{bench, device, StepError};
use crate::steps::exchange::{read_value, request_on};
use crate::steps::kinds::firmware::{Firmware, FirmwareMethod};
use crate::steps::kinds::group::{member_filters, Filter};
use crate::steps::kinds::group_case::{join_all, show_member_logs, Member, Went};
use crate::steps::{wait, CaseContext, Restart, Step, StepFuture, Turn};

/// How long a member may leave the campaign's status reads unanswered
/// before it counts as dropped out, when the case says nothing
/// (`answer_within`): a few CoAP retransmissions (RFC 7252 §4.8,
/// ACK_TIMEOUT 2 s doubling) of a lossy link.
pub const DROP_OUT_AFTER: Duration = Duration::from_secs(10);
/// How long one request of the campaign may go unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How often a member's download status is read.
const POLL: Duration = Duration::from_millis(500);
/// How long after its new registration a member may take to show its
/// Update Result (it sets it as it boots; a read right after may race it).
const RESULT_WITHIN: Duration = Duration::from_secs(10);
/// Waits for a rig that gives none (`firmware.download_within` is required
/// with `firmware:`; these only bound a rig without firmware at all).
const FALLBACK_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// The firmware role every member gets (`upgrade`); the rig maps it
    /// to the device's own image.
    image: String,
    #[serde(default)]
    method: FirmwareMethod,
    /// Block size of a CoAP pull or a push (16..1024 bytes).
    block_size: Option<u32>,
    /// At most this many downloads at a time (default 1).
    concurrent: Option<usize>,
    /// Which members are updated (default: all).
    // Its `equals` takes the group step's templates, per member
    // (`"{fw_version:upgrade}"`, `"{saved:NAME}"`; `group::case_value`).
    #[serde(rename = "where")]
    filter: Option<Filter>,
    /// Members made to misbehave on purpose, by their place in the group (1 = first).
    #[serde(default)]
    faults: Vec<MemberFault>,
    /// How many must end each way (default: `succeeded: all`).
    expect: Option<Expectation>,
    /// A member that answers no status read for this long during its
    /// download has dropped out (default 10s).
    #[serde(default, deserialize_with = "rig::duration::deserialize_option")]
    #[schemars(with = "Option<rig::schema::DurationText>")]
    answer_within: Option<Duration>,
}

/// One member made to misbehave.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberFault {
    /// The member's place in the group, from 1.
    pub member: usize,
    /// Another firmware role for this member (`unbootable`, `corrupted`).
    pub image: Option<String>,
    /// `off-mid-download`: its power is cut once half its image is
    /// delivered, and stays off.
    pub power: Option<PowerFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PowerFault {
    OffMidDownload,
}

/// A count a case expects: `all` selected members, `rest` (those the
/// other counts leave: the group's size is the rig's), or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Count {
    All(AllWord),
    Exactly(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllWord {
    All,
    Rest,
}

impl Count {
    /// The number meant, of `selected` members when `numbered` of them
    /// are counted by the expectation's numbers.
    fn of(self, selected: usize, numbered: usize) -> usize {
        match self {
            Count::All(AllWord::All) => selected,
            Count::All(AllWord::Rest) => selected.saturating_sub(numbered),
            Count::Exactly(n) => n,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub succeeded: Option<Count>,
    pub failed: Option<Count>,
    pub rolled_back: Option<Count>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "CampaignSpec")]
pub struct Campaign {
    pub role: String,
    #[schemars(skip)] // parsed from its `try_from` type
    pub method: FirmwareMethod,
    pub szx: Option<u8>,
    pub concurrent: usize,
    #[schemars(skip)]
    pub filter: Filter,
    #[schemars(skip)]
    pub faults: Vec<MemberFault>,
    #[schemars(skip)]
    pub expect: Expectation,
    pub answer_within: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CampaignError {
    #[error("campaign image {0:?}: name the firmware by its role (upgrade, unbootable, corrupted): a-z, 0-9 and -")]
    Role(String),
    #[error("campaign block_size {0}: expected 16, 32, 64, 128, 256, 512 or 1024")]
    BlockSize(u32),
    #[error("campaign concurrent: at least 1 download at a time")]
    Concurrent,
    #[error("campaign faults: member {0}: members are numbered from 1")]
    Member(usize),
    #[error("campaign faults: member {0}: give `image` or `power`")]
    NoFault(usize),
}

impl TryFrom<CampaignSpec> for Campaign {
    type Error = CampaignError;
    fn try_from(c: CampaignSpec) -> Result<Self, CampaignError> {
        let role_ok = |r: &str| rig::network::is_name(r);
        if !role_ok(&c.image) {
            return Err(CampaignError::Role(c.image));
        }
        let szx = c
            .block_size
            .map(|size| {
                (0..=6u8)
                    .find(|szx| 16u32 << szx == size)
                    .ok_or(CampaignError::BlockSize(size))
            })
            .transpose()?;
        let concurrent = c.concurrent.unwrap_or(1);
        if concurrent == 0 {
            return Err(CampaignError::Concurrent);
        }
        for f in &c.faults {
            if f.member == 0 {
                return Err(CampaignError::Member(0));
            }
            if f.image.is_none() && f.power.is_none() {
                return Err(CampaignError::NoFault(f.member));
            }
            if let Some(r) = f.image.as_deref().filter(|r| !role_ok(r)) {
                return Err(CampaignError::Role(r.to_string()));
            }
        }
        Ok(Campaign {
            role: c.image,
            method: c.method,
            szx,
            concurrent,
            filter: c.filter.unwrap_or_default(),
            faults: c.faults,
            answer_within: c.answer_within.unwrap_or(DROP_OUT_AFTER),
            expect: c.expect.unwrap_or(Expectation {
                succeeded: Some(Count::All(AllWord::All)),
                ..Default::default()
            }),
        })
    }
}

impl Step for Campaign {
    fn describe(&self) -> String {
        let mut text = format!(
            "campaign {} by {}, {} download(s) at a time",
            self.role,
            self.method.name(),
            self.concurrent
        );
        if !self.faults.is_empty() {
            let _ = write!(text, ", {} member fault(s)", self.faults.len());
        }
        text
    }

    fn firmware_roles(&self) -> Vec<String> {
        let mut roles = vec![self.role.clone()];
        roles.extend(self.faults.iter().filter_map(|f| f.image.clone()));
        roles.extend(self.filter.firmware_roles());
        roles.sort();
        roles.dedup();
        roles
    }

    fn run<'a>(
        &'a self,
        _turn: Turn,
        _ctx: &'a mut CaseContext,
        _rig: &'a mut Session,
    ) -> StepFuture<'a> {
        // Refused at load time outside a group case (crate::case).
        Box::pin(async { Err(bench("a campaign runs only in a group case (`group:`)")) })
    }
}

/// How a member's update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberResult {
    Succeeded,
    RolledBack(String),
    Failed(String),
    /// Left out by `where`, or the device offers no delivery the campaign uses.
    NotSelected(String),
}

impl MemberResult {
    pub fn name(&self) -> &'static str {
        match self {
            MemberResult::Succeeded => "succeeded",
            MemberResult::RolledBack(_) => "rolled_back",
            MemberResult::Failed(_) => "failed",
            MemberResult::NotSelected(_) => "not_selected",
        }
    }

    fn detail(&self) -> &str {
        match self {
            MemberResult::Succeeded => "",
            MemberResult::RolledBack(d)
            | MemberResult::Failed(d)
            | MemberResult::NotSelected(d) => d,
        }
    }
}

/// One member's line of the campaign report.
#[derive(Debug, Clone)]
pub struct MemberReport {
    pub member: String,
    pub endpoint: String,
    pub role: String,
    pub result: MemberResult,
    pub download: Option<Duration>,
    pub update: Option<Duration>,
    /// Object 5's State / Update Result transitions as the watch saw them.
    pub transitions: String,
}

/// The Update Result a download status shows, when it ended the download
/// in failure (LwM2M 1.1 Core Appendix E.6: 2..=10 are failures; 0 and 1
/// are not, 11 is an update put off, not a download's end).
pub fn download_failure(result: Option<UpdateResult>) -> Option<UpdateResult> {
    result.filter(|r| {
        !matches!(
            r,
            UpdateResult::Initial | UpdateResult::Success | UpdateResult::Deferred
        )
    })
}

/// How a member that registered again after Execute Update ended: the
/// role's version with Update Result 1 is success; the version it ran
/// before is a rollback; anything else is a failure.
pub fn after_update(
    result: Option<UpdateResult>,
    running: Option<&str>,
    before: Option<&str>,
    target: &str,
) -> MemberResult {
    let shown = |r: Option<UpdateResult>| r.map_or("unread".to_string(), |r| r.to_string());
    match (result, running) {
        (Some(UpdateResult::Success), Some(v)) if v == target => MemberResult::Succeeded,
        (r, Some(v)) if Some(v) == before && r != Some(UpdateResult::Success) => {
            MemberResult::RolledBack(format!("Update Result {}, running {v} as before", shown(r)))
        }
        (r, v) => MemberResult::Failed(format!(
            "Update Result {}, running {}; expected Success(1) and {target}",
            shown(r),
            v.unwrap_or("an unread version")
        )),
    }
}

/// The campaign's tally against what the case expects.
pub fn judge_tally(reports: &[MemberReport], expect: &Expectation) -> Result<(), (String, String)> {
    let selected = reports
        .iter()
        .filter(|r| !matches!(r.result, MemberResult::NotSelected(_)))
        .count();
    let count = |name: &str| reports.iter().filter(|r| r.result.name() == name).count();
    let mut expected = Vec::new();
    let mut wrong = false;
    let wants = [
        ("succeeded", expect.succeeded),
        ("failed", expect.failed),
        ("rolled_back", expect.rolled_back),
    ];
    let numbered = wants
        .iter()
        .filter_map(|(_, w)| match w {
            Some(Count::Exactly(n)) => Some(*n),
            _ => None,
        })
        .sum();
    for (name, want) in wants {
        if let Some(want) = want {
            let want = want.of(selected, numbered);
            expected.push(format!("{name} {want}"));
            wrong |= count(name) != want;
        }
    }
    if selected == 0 {
        wrong = true;
    }
    if !wrong {
        return Ok(());
    }
    let seen = format!(
        "{selected} member(s) updated: succeeded {}, failed {}, rolled back {}; {}",
        count("succeeded"),
        count("failed"),
        count("rolled_back"),
        reports
            .iter()
            .filter(|r| !matches!(r.result, MemberResult::Succeeded))
            .map(|r| format!("{}: {} {}", r.member, r.result.name(), r.result.detail()))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Err((
        format!("the campaign to end with {}", expected.join(", ")),
        seen,
    ))
}

/// What every member's update shares: the gate on downloads and its gauge.
struct Downloads {
    gate: Semaphore,
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl Campaign {
    pub async fn run_on_group(
        &self,
        turn: Turn,
        members: &mut [Member<'_>],
        log: &mut String,
        properties: &mut Vec<(String, String)>,
    ) -> Result<(), Went> {
        let downloads = Downloads {
            gate: Semaphore::new(self.concurrent),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        };
        let downloads = &downloads;
        // `where` as each member's own values make it (`{saved:...}`,
        // `{fw_version:ROLE}`), as the group step reads it.
        let filters = member_filters(&self.filter, members).await?;
        let futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = MemberReport> + '_>>> =
            members
                .iter_mut()
                .zip(filters)
                .enumerate()
                .map(|(i, (m, filter))| {
                    let fault = self.faults.iter().find(|f| f.member == i + 1);
                    Box::pin(self.update_member(turn, m, filter, fault, downloads))
                        as std::pin::Pin<Box<dyn std::future::Future<Output = MemberReport> + '_>>
                })
                .collect();
        let reports = join_all(futures).await;
        show_member_logs(members, log);
        let peak = downloads.peak.load(Ordering::SeqCst);
        let _ = writeln!(
            log,
            "  campaign: {} member(s), at most {peak} download(s) at once (limit {})",
            reports.len(),
            self.concurrent
        );
        for r in &reports {
            let _ = writeln!(
                log,
                "  {:<10} {:<12} {} {}",
                r.member,
                r.result.name(),
                r.role,
                r.result.detail()
            );
        }
        properties.extend(campaign_properties(&reports, self.concurrent, peak));
        if let Some(dir) = members.first().and_then(|m| m.ctx.events.artifacts()) {
            if let Err(e) = std::fs::write(dir.join("campaign.csv"), campaign_csv(&reports)) {
                tracing::warn!(error = %e, "campaign.csv not written");
            }
        }
        if peak > self.concurrent {
            return Err(Went::Group(bench(format!(
                "{peak} downloads ran at once, over the limit of {}",
                self.concurrent
            ))));
        }
        judge_tally(&reports, &self.expect)
            .map_err(|(expected, seen)| Went::Group(device(expected, seen)))
    }

    /// One member's update, start to end; never longer than the rig's
    /// download and update waits (plus [`RESULT_WITHIN`]), whatever the
    /// member does.
    async fn update_member(
        &self,
        turn: Turn,
        m: &mut Member<'_>,
        filter: Result<Filter, String>,
        fault: Option<&MemberFault>,
        downloads: &Downloads,
    ) -> MemberReport {
        let role = fault
            .and_then(|f| f.image.clone())
            .unwrap_or_else(|| self.role.clone());
        let mut report = MemberReport {
            member: m.name.clone(),
            endpoint: m.session.endpoint.clone(),
            role: role.clone(),
            result: MemberResult::Succeeded,
            download: None,
            update: None,
            transitions: String::new(),
        };
        let selected = match filter {
            Ok(filter) => filter.selects(m.session, ANSWER_WITHIN).await,
            Err(why) => Err(why),
        };
        report.result = match selected {
            Err(why) => MemberResult::NotSelected(why),
            Ok(()) => {
                self.update(turn, m, &role, fault, downloads, &mut report)
                    .await
            }
        };
        if let Some(watch) = &m.ctx.firmware_watch {
            let rec = watch.recorder.lock().unwrap_or_else(|p| p.into_inner());
            report.transitions = rec.describe(None);
        }
        let _ = writeln!(
            m.ctx.log,
            "  -> campaign: {} {}",
            report.result.name(),
            report.result.detail()
        );
        report
    }

    async fn update(
        &self,
        turn: Turn,
        m: &mut Member<'_>,
        role: &str,
        fault: Option<&MemberFault>,
        downloads: &Downloads,
        report: &mut MemberReport,
    ) -> MemberResult {
        let (ctx, rig) = (&mut m.ctx, &mut *m.session);
        let target = match rig.firmware_role(role).await {
            Ok(mapped) => mapped.version,
            Err(RoleError::NotMapped(why) | RoleError::Store(why)) => {
                return MemberResult::Failed(why)
            }
        };
        let before = read_text(rig, Path::resource(3, 0, 3)).await;
        let download_within = wait::download(rig).map_or(FALLBACK_WAIT, |w| w.limit);
        // The download: one of at most `concurrent`.
        let Ok(_permit) = downloads.gate.acquire().await else {
            return MemberResult::Failed("the campaign's download gate closed".into());
        };
        let now = downloads.active.fetch_add(1, Ordering::SeqCst) + 1;
        downloads.peak.fetch_max(now, Ordering::SeqCst);
        let started = Instant::now();
        let downloaded = self
            .download(turn, ctx, rig, role, fault, download_within)
            .await;
        downloads.active.fetch_sub(1, Ordering::SeqCst);
        drop(_permit);
        report.download = Some(started.elapsed());
        let instance = match downloaded {
            Ok(instance) => instance,
            Err(result) => return result,
        };
        // The update: Execute /5/x/2, then the new registration.
        let started = Instant::now();
        ctx.skip_to_now(rig);
        ctx.restart = Some(Restart::FirmwareUpdate);
        let update_within = wait::restart(rig, ctx).limit;
        let request = DmRequest::Execute {
            path: Path::resource(OBJECT_ID, instance, resource::UPDATE),
            arguments: None,
        };
        match request_on(rig, request, ANSWER_WITHIN).await {
            Ok(r) if r.code == Code::CHANGED.0 => {}
            Ok(r) => {
                return MemberResult::Failed(format!(
                    "Execute Update answered {}",
                    server::code_text(r.code)
                ))
            }
            Err(e) => return MemberResult::Failed(format!("Execute Update: {e}")),
        }
        ctx.require_new_registration = true;
        let _ = writeln!(
            ctx.log,
            "  -> Execute Update 2.04; awaiting the new registration"
        );
        let ep = rig.endpoint.clone();
        match rig
            .server
            .await_registered(&ep, ctx.cursor, update_within)
            .await
        {
            Ok((seq, reg)) => {
                ctx.registered(seq);
                let _ = writeln!(ctx.log, "  -> registered again at {}", reg.location);
            }
            Err(e) => {
                return MemberResult::Failed(format!(
                    "dropped out: no new registration within {update_within:?} ({e})"
                ))
            }
        }
        report.update = Some(started.elapsed());
        if let Some(watch) = &ctx.firmware_watch {
            watch.settle(&rig.server, &ep).await;
        }
        let result = self.update_result(rig, instance).await;
        let running = read_text(rig, Path::resource(3, 0, 3)).await;
        after_update(result, running.as_deref(), before.as_deref(), &target)
    }

    /// Delivers the image and waits for Downloaded; the instance of
    /// object 5, or how the member ended.
    async fn download(
        &self,
        turn: Turn,
        ctx: &mut CaseContext,
        rig: &mut Session,
        role: &str,
        fault: Option<&MemberFault>,
        within: Duration,
    ) -> Result<u16, MemberResult> {
        let step = Firmware {
            role: Some(role.to_string()),
            method: self.method,
            szx: self.szx,
            code: super::firmware::Expected::one(Code::CHANGED),
            uri: None,
        };
        let delivery_turn = Turn {
            within: turn.within.min(within),
            ..turn
        };
        match step.run(delivery_turn, ctx, rig).await {
            Ok(()) => {}
            Err(StepError::Skip(why)) => return Err(MemberResult::NotSelected(why)),
            Err(e) => return Err(MemberResult::Failed(format!("delivery: {e}"))),
        }
        let instance = rig.instance_of(OBJECT_ID).unwrap_or(0);
        let end = Instant::now() + within;
        if fault.and_then(|f| f.power) == Some(PowerFault::OffMidDownload) {
            cut_mid_download(ctx, rig, role, end).await;
        }
        let state = Path::resource(OBJECT_ID, instance, resource::STATE);
        let result = Path::resource(OBJECT_ID, instance, resource::UPDATE_RESULT);
        let mut answered = Instant::now();
        loop {
            if Instant::now() >= end {
                return Err(MemberResult::Failed(format!(
                    "not Downloaded within {within:?} (the rig's firmware.download_within)"
                )));
            }
            // No read waits past the moment the member would count as gone.
            let wait = (answered + self.answer_within)
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(100), ANSWER_WITHIN);
            let read = async {
                let s = read_value(rig, state, wait).await?;
                let r = read_value(rig, result, wait).await?;
                Ok::<_, StepError>((s, r))
            };
            match read.await {
                Ok((s, r)) => {
                    answered = Instant::now();
                    let s = code_of(&s).and_then(|c| FirmwareState::from_code(c).ok());
                    let r = code_of(&r).and_then(|c| UpdateResult::from_code(c).ok());
                    if s == Some(FirmwareState::Downloaded) {
                        let _ = writeln!(ctx.log, "  -> Downloaded");
                        return Ok(instance);
                    }
                    if let Some(failed) = download_failure(r) {
                        return Err(MemberResult::Failed(format!(
                            "download failed: Update Result {failed}"
                        )));
                    }
                }
                Err(e) => {
                    let silent = answered.elapsed();
                    let _ = writeln!(ctx.log, "  -> status not read: {e}");
                    if silent >= self.answer_within {
                        return Err(MemberResult::Failed(format!(
                            "dropped out: no answer for {:.1}s during the download (answer_within {:?})",
                            silent.as_secs_f64(),
                            self.answer_within
                        )));
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Update Result after the new registration; a device that shows 0
    /// yet (it sets the result as it boots) is read again for a while.
    async fn update_result(&self, rig: &Session, instance: u16) -> Option<UpdateResult> {
        let path = Path::resource(OBJECT_ID, instance, resource::UPDATE_RESULT);
        let end = Instant::now() + RESULT_WITHIN;
        loop {
            let r = read_value(rig, path, ANSWER_WITHIN)
                .await
                .ok()
                .and_then(|v| code_of(&v))
                .and_then(|c| UpdateResult::from_code(c).ok());
            if r != Some(UpdateResult::Initial) || Instant::now() >= end {
                return r;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The member's power is cut once half its image has gone out, and left
/// off: the member drops out of the campaign as a meter in the field does.
async fn cut_mid_download(ctx: &mut CaseContext, rig: &mut Session, role: &str, end: Instant) {
    let image = match rig.firmware_role(role).await {
        Ok(mapped) => mapped.image,
        Err(_) => return,
    };
    loop {
        let half = rig
            .firmware
            .as_ref()
            .and_then(|d| d.progress(&image))
            .is_some_and(|p| p.offset * 2 >= p.size);
        if half || Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match rig.set_power(false) {
        Ok(()) => {
            let _ = writeln!(ctx.log, "  -> power cut mid-download; left off");
        }
        Err(e) => {
            let _ = writeln!(ctx.log, "  -> power could not be cut: {e}");
        }
    }
}

fn code_of(v: &Value) -> Option<i64> {
    v.as_f64().map(|f| f as i64)
}

async fn read_text(rig: &Session, path: Path) -> Option<String> {
    read_value(rig, path, ANSWER_WITHIN)
        .await
        .ok()
        .map(|v| v.to_text())
}

/// The campaign's JUnit properties: the tally, then each member's result.
pub fn campaign_properties(
    reports: &[MemberReport],
    concurrent: usize,
    peak: usize,
) -> Vec<(String, String)> {
    let count = |name: &str| {
        reports
            .iter()
            .filter(|r| r.result.name() == name)
            .count()
            .to_string()
    };
    let mut out = vec![
        ("campaign.members".to_string(), reports.len().to_string()),
        ("campaign.concurrent".to_string(), concurrent.to_string()),
        ("campaign.peak_downloads".to_string(), peak.to_string()),
        ("campaign.succeeded".to_string(), count("succeeded")),
        ("campaign.failed".to_string(), count("failed")),
        ("campaign.rolled_back".to_string(), count("rolled_back")),
        ("campaign.not_selected".to_string(), count("not_selected")),
    ];
    for r in reports {
        out.push((
            format!("campaign.{}.result", r.member),
            r.result.name().to_string(),
        ));
        if !r.result.detail().is_empty() {
            out.push((
                format!("campaign.{}.detail", r.member),
                r.result.detail().to_string(),
            ));
        }
    }
    out
}

/// `campaign.csv`: one row per member.
pub fn campaign_csv(reports: &[MemberReport]) -> String {
    let secs = |d: Option<Duration>| d.map_or(String::new(), |d| format!("{:.3}", d.as_secs_f64()));
    let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out =
        String::from("member,endpoint,image,result,download_s,update_s,transitions,detail\n");
    for r in reports {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.member,
            r.endpoint,
            r.role,
            r.result.name(),
            secs(r.download),
            secs(r.update),
            quoted(&r.transitions),
            quoted(r.result.detail())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(yaml: &str) -> Result<Campaign, String> {
        serde_saphyr::from_str::<Campaign>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_campaign_names_its_role_its_limit_and_its_faults() {
        let c = campaign("{ image: upgrade, concurrent: 2, block_size: 1024, faults: [ { member: 2, image: unbootable }, { member: 4, power: off-mid-download } ], expect: { succeeded: 2, rolled_back: 1, failed: 1 } }").unwrap();
        assert_eq!(
            (c.role.as_str(), c.concurrent, c.szx),
            ("upgrade", 2, Some(6))
        );
        assert_eq!(c.firmware_roles(), ["unbootable", "upgrade"]);
        assert_eq!(c.faults[1].power, Some(PowerFault::OffMidDownload));
        assert_eq!(c.expect.succeeded, Some(Count::Exactly(2)));
        assert_eq!(
            c.describe(),
            "campaign upgrade by pull-coap, 2 download(s) at a time, 2 member fault(s)"
        );
        // By default every selected member must succeed.
        let c = campaign("{ image: upgrade }").unwrap();
        assert_eq!(c.expect.succeeded, Some(Count::All(AllWord::All)));
        assert_eq!(c.answer_within, DROP_OUT_AFTER);
        let c = campaign("{ image: upgrade, answer_within: 3s }").unwrap();
        assert_eq!(c.answer_within, Duration::from_secs(3));
        assert_eq!(c.concurrent, 1);
        for (bad, says) in [
            ("{ image: meter-2.0.bin }", "by its role"),
            ("{ image: upgrade, concurrent: 0 }", "at least 1"),
            ("{ image: upgrade, block_size: 1000 }", "1024"),
            (
                "{ image: upgrade, faults: [ { member: 0, image: corrupted } ] }",
                "from 1",
            ),
            (
                "{ image: upgrade, faults: [ { member: 1 } ] }",
                "give `image` or `power`",
            ),
        ] {
            let e = campaign(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_member_is_judged_by_its_update_result_and_the_version_it_runs() {
        use UpdateResult::*;
        assert_eq!(
            after_update(Some(Success), Some("2.0"), Some("1.0"), "2.0"),
            MemberResult::Succeeded
        );
        // Back on the old image: rolled back, whatever the result says.
        assert!(matches!(
            after_update(Some(UpdateFailed), Some("1.0"), Some("1.0"), "2.0"),
            MemberResult::RolledBack(d) if d.contains("UpdateFailed(8)")
        ));
        // "Success" but not the new version: failed, not succeeded.
        assert!(matches!(
            after_update(Some(Success), Some("1.5"), Some("1.0"), "2.0"),
            MemberResult::Failed(_)
        ));
        assert!(matches!(
            after_update(None, None, Some("1.0"), "2.0"),
            MemberResult::Failed(_)
        ));
        // Already on the new version, an unbootable image: back on it, rolled back.
        assert!(matches!(
            after_update(Some(UpdateFailed), Some("2.0"), Some("2.0"), "2.0"),
            MemberResult::RolledBack(_)
        ));
        assert_eq!(
            download_failure(Some(IntegrityCheckFailure)),
            Some(IntegrityCheckFailure)
        );
        assert_eq!(download_failure(Some(Initial)), None);
        assert_eq!(download_failure(Some(Deferred)), None);
    }

    fn report(member: &str, result: MemberResult) -> MemberReport {
        MemberReport {
            member: member.into(),
            endpoint: format!("ep-{member}"),
            role: "upgrade".into(),
            result,
            download: Some(Duration::from_millis(1500)),
            update: None,
            transitions: "Idle -> Downloading".into(),
        }
    }

    #[test]
    fn the_tally_is_checked_against_the_expectation() {
        let reports = vec![
            report("meter-1", MemberResult::Succeeded),
            report(
                "meter-2",
                MemberResult::RolledBack("Update Result 8".into()),
            ),
            report(
                "meter-3",
                MemberResult::NotSelected("object 5 not in its registration".into()),
            ),
            report("meter-4", MemberResult::Failed("dropped out".into())),
        ];
        let all = Expectation {
            succeeded: Some(Count::All(AllWord::All)),
            ..Default::default()
        };
        let (expected, seen) = judge_tally(&reports, &all).unwrap_err();
        assert_eq!(expected, "the campaign to end with succeeded 3");
        assert!(
            seen.starts_with("3 member(s) updated: succeeded 1, failed 1, rolled back 1"),
            "{seen}"
        );
        assert!(seen.contains("meter-4: failed dropped out"), "{seen}");
        let mixed = Expectation {
            succeeded: Some(Count::Exactly(1)),
            failed: Some(Count::Exactly(1)),
            rolled_back: Some(Count::Exactly(1)),
        };
        assert!(judge_tally(&reports, &mixed).is_ok());
        // `rest`: what the numbers leave of the selected members.
        let rest = Expectation {
            succeeded: Some(Count::All(AllWord::Rest)),
            failed: Some(Count::Exactly(1)),
            rolled_back: Some(Count::Exactly(1)),
        };
        assert!(judge_tally(&reports, &rest).is_ok());
        let props = campaign_properties(&reports, 2, 2);
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("campaign.succeeded"), Some("1"));
        assert_eq!(get("campaign.rolled_back"), Some("1"));
        assert_eq!(get("campaign.meter-4.result"), Some("failed"));
        let csv = campaign_csv(&reports);
        assert_eq!(csv.lines().count(), 5);
        assert!(
            csv.contains("meter-2,ep-meter-2,upgrade,rolled_back,1.500,,\"Idle -> Downloading\",\"Update Result 8\""),
            "{csv}"
        );
    }
}
