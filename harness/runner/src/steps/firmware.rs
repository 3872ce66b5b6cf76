//! What firmware steps share: the watch on object 5 that checks every State /
//! Update Result transition the device makes against the specification's
//! state diagram (LwM2M 1.1 Core Appendix E.6), firmware roles in case
//! values, transfer figures and progress bars.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lwm2m::firmware::{
    resource, FirmwareRecorder, FirmwareState, ObjectVersion, UpdateResult, OBJECT_ID,
};
use lwm2m::server::{Content, ServerEvent};
use lwm2m::{Path, Record};
use server::firmware::{DeliveryMethodKind, FirmwareDelivery};
use server::ServerHandle;

use crate::case::model::ScalarValue;
use crate::session::{RoleError, Session};

/// Records object 5's transitions for the whole case, from notifications of
/// /5/0/3 and /5/0/5 (re-observed after every new registration, since a new
/// registration ends observations) and from every read of them, the case's
/// steps' reads included, and checks
/// them against the state diagram of the object 5 version the device
/// registered with (`</5>;ver=...`, 1.0 without `ver`).
pub struct FirmwareWatch {
    pub recorder: Arc<Mutex<FirmwareRecorder>>,
    /// The registration (its location) under which /5/0/3 and /5/0/5 are
    /// observed and were last read; see [`FirmwareWatch::settle`].
    observing: tokio::sync::watch::Receiver<Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long [`FirmwareWatch::settle`] waits for the re-observation.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// The object 5 version `endpoint` declared in its registration; 1.0 when it
/// declared none, or when it is not registered. A `ver` that does not parse
/// is logged and read as 1.0, the version of an object without one.
fn declared_version(server: &ServerHandle, endpoint: &str) -> ObjectVersion {
    let Some(registration) = server.registration(endpoint) else {
        return ObjectVersion::V1_0;
    };
    ObjectVersion::declared(&registration.objects, OBJECT_ID).unwrap_or_else(|e| {
        tracing::warn!(endpoint, error = %e, "object 5 version not understood; checking against 1.0");
        ObjectVersion::V1_0
    })
}

impl FirmwareWatch {
    pub async fn start(server: &ServerHandle, endpoint: &str) -> FirmwareWatch {
        let version = declared_version(server, endpoint);
        let recorder = Arc::new(Mutex::new(FirmwareRecorder::new().with_version(version)));
        let (server, endpoint, rec) = (server.clone(), endpoint.to_string(), recorder.clone());
        // Subscribed before reading the location: a registration after this
        // point comes as an event.
        let mut events = server.subscribe();
        let registration = server.registration(&endpoint);
        let location = registration.as_ref().map(|r| r.location.clone());
        let instance = registration
            .as_ref()
            .and_then(|r| crate::steps::instances::registered_instance(r, OBJECT_ID))
            .unwrap_or(0);
        let mut ids = observe_object5(&server, &endpoint, instance, &rec).await;
        let (observed, observing) = tokio::sync::watch::channel(location);
        let task = tokio::spawn(async move {
            while let Some((_, event)) = events.next().await {
                match event {
                    ServerEvent::Notification {
                        observation,
                        records,
                        ..
                    } if ids.contains(&observation) => {
                        record(&rec, &records);
                    }
                    // A step's own read of State (a power cut waiting for
                    // Updating) may be the only sight of a status the
                    // notifications miss: Updating lasts as long as the
                    // device's pmin, or less, before a restart.
                    ServerEvent::Response {
                        endpoint: from,
                        result: Ok(response),
                        ..
                    } if from == endpoint => {
                        if let Content::Records(records) = &response.content {
                            record_read(&rec, records);
                        }
                    }
                    ServerEvent::Registered(r) if r.endpoint == endpoint => {
                        let instance = crate::steps::instances::registered_instance(&r, OBJECT_ID)
                            .unwrap_or(instance);
                        ids = observe_object5(&server, &endpoint, instance, &rec).await;
                        observed.send_replace(Some(r.location.clone()));
                    }
                    _ => {}
                }
            }
        });
        FirmwareWatch {
            recorder,
            observing,
            task,
        }
    }

    /// Waits until State and Update Result are observed under the device's
    /// current registration. A new registration ends the old observations,
    /// and what the device did meanwhile (Updating → Idle/Success across the
    /// restart) is only seen by the re-observation's first read: a step that
    /// changes object 5 before that read would hide a status from the
    /// recorder, which infers at most one unseen status, and only where the
    /// state diagram leaves no choice (lwm2m::firmware's recorder).
    pub async fn settle(&self, server: &ServerHandle, endpoint: &str) {
        let Some(current) = server.registration(endpoint).map(|r| r.location) else {
            return;
        };
        let mut observing = self.observing.clone();
        let caught_up = observing.wait_for(|l| l.as_deref() == Some(current.as_str()));
        if tokio::time::timeout(SETTLE_WITHIN, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(
                endpoint,
                "object 5 not re-observed after the new registration"
            );
        }
    }

    /// Stops watching and gives the verdict: the whole observed sequence
    /// (a status the recorder inferred in brackets), or the first transition
    /// the state diagram does not allow.
    pub fn finish(self) -> Result<String, lwm2m::firmware::SequenceError> {
        self.task.abort();
        let rec = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = rec.check()?;
        let mut text = format!(
            "(object 5 v{}) {}",
            rec.version(),
            rec.describe_sequence(&sequence)
        );
        // An inferred status (a coalesced notification, see
        // lwm2m::firmware's recorder) is shown with what was notified.
        if sequence.iter().any(|o| o.inferred) {
            let _ = write!(text, "; as notified: {}", rec.describe(None));
        }
        Ok(text)
    }
}

impl Drop for FirmwareWatch {
    /// A case that ends without [`FirmwareWatch::finish`] (an early error)
    /// leaves no watch running into the next case.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Observes State and Update Result of the device's object 5 instance.
async fn observe_object5(
    server: &ServerHandle,
    endpoint: &str,
    instance: u16,
    rec: &Arc<Mutex<FirmwareRecorder>>,
) -> Vec<lwm2m::server::RequestId> {
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for rid in [resource::STATE, resource::UPDATE_RESULT] {
        let path = Path::resource(OBJECT_ID, instance, rid);
        if let Ok(o) = server.observe(endpoint, path, None).await {
            if let Content::Records(records) = &o.first.content {
                values.extend(
                    records
                        .iter()
                        .find(|r| r.path == path)
                        .and_then(|r| r.value.as_f64()),
                );
            }
            ids.push(o.id);
        }
    }
    // State and Update Result as they are now, as one status: recorded one
    // by one they would pair the new State with the old Result.
    if let [state, result] = values[..] {
        let (state, result) = (state as i64, result as i64);
        let mut rec = rec.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match (
            FirmwareState::from_code(state),
            UpdateResult::from_code(result),
        ) {
            (Ok(s), Ok(r)) => rec.record_both(now, s, r),
            // Out of range: the recorder keeps the value as a violation.
            _ => {
                let _ = rec.record_resource(now, resource::STATE, state);
                let _ = rec.record_resource(now, resource::UPDATE_RESULT, result);
            }
        }
    }
    ids
}

/// Feeds values of /5/0/3 and /5/0/5 to the recorder (a value out of range
/// is kept by the recorder and fails the case at [`FirmwareWatch::finish`]).
fn record(rec: &Mutex<FirmwareRecorder>, records: &[Record]) {
    let mut rec = rec.lock().unwrap_or_else(|p| p.into_inner());
    for r in records {
        if r.path.object_id() != Some(OBJECT_ID) {
            continue;
        }
        if let (Some(rid), Some(v)) = (r.path.resource_id(), r.value.as_f64()) {
            let _ = rec.record_resource(Instant::now(), rid, v as i64);
        }
    }
}

/// A step's read of object 5, recorded only as a whole status: a read of
/// State and Update Result together, or of State alone when it is
/// Downloading or Updating, which hold only Update Result 0 (resource 5:
/// reset to Initial when a download or update starts). A lone Update Result,
/// or a lone Idle or Downloaded, paired with what notifications last said
/// of the other resource, could make a status the device never had.
fn record_read(rec: &Mutex<FirmwareRecorder>, records: &[Record]) {
    let value = |rid: u16| {
        records
            .iter()
            .find(|r| r.path.object_id() == Some(OBJECT_ID) && r.path.resource_id() == Some(rid))
            .and_then(|r| r.value.as_f64())
            .map(|v| v as i64)
    };
    let state = value(resource::STATE).map(FirmwareState::from_code);
    let result = match (&state, value(resource::UPDATE_RESULT)) {
        (_, Some(r)) => UpdateResult::from_code(r),
        (Some(Ok(FirmwareState::Downloading | FirmwareState::Updating)), None) => {
            Ok(UpdateResult::Initial)
        }
        _ => return,
    };
    if let (Some(Ok(state)), Ok(result)) = (state, result) {
        let mut rec = rec.lock().unwrap_or_else(|p| p.into_inner());
        rec.record_both(Instant::now(), state, result);
    }
}

/// Transfer figures of the case's images for the JUnit and the step log.
pub fn transfer_report(
    delivery: &FirmwareDelivery,
    images: &[String],
    log: &mut String,
) -> Vec<(String, String)> {
    let mut props = Vec::new();
    for name in images {
        if let Some(p) = delivery.progress(name) {
            let _ = writeln!(log, "  transfer: {p}");
            props.extend(p.properties());
        }
    }
    props
}

/// `"{fw_url:ROLE}"` / `"{fw_http_url:ROLE}"` in a written value become the
/// CoAP / HTTP Package URI of the image the rig maps firmware role ROLE to
/// (for object 9, or a Package URI written by hand).
pub async fn expand_urls(
    session: &mut Session,
    value: &ScalarValue,
) -> Result<ScalarValue, RoleError> {
    let ScalarValue::Text(text) = value else {
        return Ok(value.clone());
    };
    let mut out = crate::steps::euicc::expand(&session.rig.name, session.rig.euicc.as_ref(), text)?;
    for (marker, kind) in [
        ("{fw_url:", DeliveryMethodKind::PullCoap),
        ("{fw_http_url:", DeliveryMethodKind::PullHttp),
    ] {
        while let Some((range, role)) = placeholder(&out, marker)? {
            let mapped = session.firmware_role(&role).await?;
            let delivery = session
                .firmware_delivery()
                .await
                .map_err(|e| RoleError::Store(e.to_string()))?;
            let uri = delivery
                .package_uri(&mapped.image, kind)
                .await
                .map_err(|e| RoleError::Store(e.to_string()))?;
            out.replace_range(range, &session.via_link(&uri));
        }
    }
    Ok(ScalarValue::Text(out))
}

/// Firmware roles a written value, an expected value or a debug check
/// names: `{fw_url:ROLE}`, `{fw_http_url:ROLE}`, `{fw_version:ROLE}`.
const ROLE_MARKERS: [&str; 3] = ["{fw_url:", "{fw_http_url:", "{fw_version:"];

/// The roles `text` names through [`ROLE_MARKERS`].
pub fn roles_in(text: &str) -> Vec<String> {
    let mut roles = Vec::new();
    for marker in ROLE_MARKERS {
        let mut rest = text;
        while let Some(start) = rest.find(marker) {
            let after = &rest[start + marker.len()..];
            let Some(end) = after.find('}') else { break };
            roles.push(after[..end].to_string());
            rest = &after[end + 1..];
        }
    }
    roles
}

/// `"{fw_version:ROLE}"` becomes the version the device reports once it
/// runs the image the rig maps ROLE to (the role's `version`, else the
/// store manifest's): expected versions come from the rig, not the case.
pub async fn expand_versions(session: &mut Session, text: &str) -> Result<String, RoleError> {
    let mut out = crate::steps::euicc::expand(&session.rig.name, session.rig.euicc.as_ref(), text)?;
    while let Some((range, role)) = placeholder(&out, "{fw_version:")? {
        let version = session.firmware_role(&role).await?.version;
        out.replace_range(range, &version);
    }
    Ok(out)
}

/// The first `{marker ROLE}` in `text`: its byte range and ROLE.
fn placeholder(
    text: &str,
    marker: &str,
) -> Result<Option<(std::ops::Range<usize>, String)>, RoleError> {
    let Some(start) = text.find(marker) else {
        return Ok(None);
    };
    let rest = &text[start + marker.len()..];
    let end = rest
        .find('}')
        .ok_or_else(|| RoleError::Store(format!("unclosed {marker} in {text:?}")))?;
    Ok(Some((
        start..start + marker.len() + end + 1,
        rest[..end].to_string(),
    )))
}

/// Samples of the device pulling an image, as `transfer` events
/// (events.jsonl, the report's plot, the progress display): over CoAP the
/// file server's own progress, every few dozen blocks and at the end; over
/// HTTP, which has no progress events, the server's figures sampled every
/// [`HTTP_SAMPLE_EVERY`]. The figures go to the JUnit either way. Ends when
/// the transfer completes or the task is dropped.
pub fn transfer_samples(
    delivery: &FirmwareDelivery,
    kind: DeliveryMethodKind,
    image: &str,
    events: crate::events::CaseEvents,
) -> Option<tokio::task::JoinHandle<()>> {
    use server::firmware::ProgressEvent;
    let server = match kind {
        DeliveryMethodKind::PullCoaps => delivery.coaps_server(),
        DeliveryMethodKind::PullCoap => delivery.coap_server(),
        DeliveryMethodKind::PullHttp => {
            let watch = delivery.http_server()?.transfers_watch();
            return Some(tokio::spawn(http_samples(watch, image.to_string(), events)));
        }
        DeliveryMethodKind::Push => return None,
    };
    let mut events_of_server = server?.subscribe();
    let image = image.to_string();
    Some(tokio::spawn(async move {
        loop {
            let s = match events_of_server.recv().await {
                Ok(ProgressEvent::Started(s) | ProgressEvent::Progress(s))
                | Ok(ProgressEvent::Completed(s)) => s,
                Ok(ProgressEvent::Refused { .. }) => continue,
                // A slow reader missed samples: the next one still says where it is.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            if s.image != image {
                continue;
            }
            events.emit(transfer_event(&s));
            if s.complete {
                break;
            }
        }
    }))
}

/// How often an HTTP download's figures are sampled.
pub const HTTP_SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Emits the HTTP download of `image` whenever its figures changed, until
/// it completes.
async fn http_samples(
    watch: server::firmware::HttpTransfersWatch,
    image: String,
    events: crate::events::CaseEvents,
) {
    let mut last: Option<(u64, bool)> = None;
    loop {
        let latest = watch
            .transfers()
            .into_iter()
            .filter(|s| s.image == image)
            .max_by_key(|s| s.id);
        if let Some(s) = latest {
            if last != Some((s.bytes, s.complete)) {
                last = Some((s.bytes, s.complete));
                events.emit(transfer_event(&s));
                if s.complete {
                    return;
                }
            }
        }
        tokio::time::sleep(HTTP_SAMPLE_EVERY).await;
    }
}

fn transfer_event(s: &server::firmware::TransferStats) -> crate::events::Event {
    crate::events::Event::Transfer {
        image: s.image.clone(),
        peer: s.peer.to_string(),
        offset: s.offset as u64,
        size: s.size as u64,
        bytes: s.bytes,
        blocks: s.blocks,
        retransmissions: s.retransmissions(),
        elapsed_ms: s.elapsed.as_millis() as u64,
        complete: s.complete,
    }
}
