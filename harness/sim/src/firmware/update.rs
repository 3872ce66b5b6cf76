//! Object 5 on the device: its resources, and the state machine of LwM2M 1.1
//! Core Appendix E.6.1 (Figure E.6.1-1) driven by what the server writes and
//! executes and by the download's progress.
//!
//! | trigger | step |
//! |---|---|
//! | Package URI written (non-empty), in Idle | Idle → Downloading, pull into the inactive slot |
//! | first Package block (Block1) or a whole Package, in Idle | Idle → Downloading |
//! | image complete and its check passes | Downloading → Downloaded |
//! | download fails / check fails | Downloading → Idle with 2, 4, 5, 6, 7 or 9 |
//! | empty Package URI or empty Package | any but Updating → Idle, Update Result 0 |
//! | Execute Cancel (/5/0/10) | Downloading, Downloaded → Idle with 10 |
//! | Execute Update (/5/0/2), only in Downloaded (else 4.05) | Downloaded → Updating, then the slots swap and the process restarts |
//! | the bootloader's verdict ([`super::boot`]) | Updating → Idle with 1, or 8 after a rollback |
//!
//! Every step is written to NV before it is shown to the server, so a power
//! cut never makes the device report a state it does not hold.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lwm2m::client::Client;
use lwm2m::firmware::{
    check_transition, execute_update_response, resource, FirmwareState, FirmwareStatus,
    ProtocolSupport, UpdateResult, OBJECT_ID,
};
use lwm2m::{Path, Value};

use super::download::{
    self, DownloadEvent, DownloadEventKind, DownloadHandle, DownloadJob, Reporter, Target,
};
use super::{image, slots, FirmwareNv, Method, FACTORY_PACKAGE};
use crate::nv::{NvData, NvStore};

/// Time between Execute Update and the restart: the State=Updating
/// notification and the Execute's answer leave first.
pub const UPDATE_DELAY: Duration = Duration::from_millis(500);
/// Block sizes a pushed Package may use (SZX 6, 1024 bytes).
pub const PUSH_MAX_SZX: u8 = 6;

/// /5/0/`id`.
pub fn path(id: u16) -> Path {
    Path::resource(OBJECT_ID, 0, id)
}

/// The device's object 5.
pub struct FirmwareUpdate {
    state_dir: PathBuf,
    report: Reporter,
    seed: u64,
    /// The server account's PSK: with one, `coaps://` downloads are offered
    /// (/5/0/8) and authenticated with it.
    download_psk: Option<dtls::Psk>,
    download: Option<DownloadHandle>,
    generation: u64,
    /// Values for the client's store, in order.
    changes: Vec<(Path, Value)>,
    restart_at: Option<Instant>,
}

impl FirmwareUpdate {
    /// `report` forwards download events to the meter's loop.
    pub fn new(state_dir: impl Into<PathBuf>, report: Reporter, seed: u64) -> Self {
        FirmwareUpdate {
            state_dir: state_dir.into(),
            report,
            seed,
            download_psk: None,
            download: None,
            generation: 0,
            changes: Vec::new(),
            restart_at: None,
        }
    }

    /// The directory holding NV and the slots.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// The PSK of the server account the meter registers with (`None`
    /// without a PSK account): `coaps://` Package URIs are fetched under
    /// DTLS with it (LwM2M 1.1 Transport §5.2.8 — the file server is the
    /// LwM2M server's host and knows the key). When the offer changes, the
    /// /5/0/8 instances are queued for the running session
    /// ([`apply`](Self::apply)); a new session's store is filled with it.
    pub fn set_download_psk(&mut self, psk: Option<dtls::Psk>) {
        let offered_before = self.download_psk.is_some();
        self.download_psk = psk;
        if offered_before != self.download_psk.is_some() {
            for (i, proto) in self.protocols().iter().enumerate() {
                self.changes.push((
                    Path::resource_instance(OBJECT_ID, 0, resource::PROTOCOL_SUPPORT, i as u16),
                    Value::Integer(i64::from(proto.code())),
                ));
            }
        }
    }

    /// Object 5 resource 8: CoAP and HTTP, then CoAPS when the meter has a
    /// PSK account (last, so that offering it only adds an instance).
    pub fn protocols(&self) -> Vec<ProtocolSupport> {
        let mut p = vec![ProtocolSupport::Coap, ProtocolSupport::Http];
        if self.download_psk.is_some() {
            p.push(ProtocolSupport::Coaps);
        }
        p
    }

    /// Every value of /5/0 for a new session's store, from NV. `written`
    /// resources (Severity, Maximum Defer Period) keep what the server wrote
    /// when the store already holds it.
    pub fn fill_store(&self, store: &mut lwm2m::client::ObjectStore, nv: &NvData) {
        let fw = &nv.firmware;
        for (p, v) in self.status_values(nv) {
            store.set(p, v);
        }
        for (i, proto) in self.protocols().iter().enumerate() {
            store.set(
                Path::resource_instance(OBJECT_ID, 0, resource::PROTOCOL_SUPPORT, i as u16),
                Value::Integer(i64::from(proto.code())),
            );
        }
        store.set(
            path(resource::DELIVERY_METHOD),
            Value::Integer(i64::from(lwm2m::firmware::DeliveryMethod::Both.code())),
        );
        store.set(
            path(resource::PACKAGE_URI),
            Value::String(fw.package_uri.clone()),
        );
        let defaults = [
            (resource::SEVERITY, Value::Integer(1)),
            (resource::MAXIMUM_DEFER_PERIOD, Value::Unsigned(0)),
        ];
        for (id, v) in defaults {
            if store.get(&path(id)).is_none() {
                store.set(path(id), v);
            }
        }
    }

    /// State, Update Result, PkgName, PkgVersion, Last State Change Time.
    fn status_values(&self, nv: &NvData) -> Vec<(Path, Value)> {
        let fw = &nv.firmware;
        let running = fw.slot(fw.active_slot);
        vec![
            (path(resource::STATE), Value::Integer(i64::from(fw.state))),
            (
                path(resource::UPDATE_RESULT),
                Value::Integer(i64::from(fw.result)),
            ),
            (
                path(resource::PKG_NAME),
                Value::String(
                    running
                        .package
                        .clone()
                        .unwrap_or_else(|| FACTORY_PACKAGE.to_owned()),
                ),
            ),
            (
                path(resource::PKG_VERSION),
                Value::String(nv.firmware_version.clone()),
            ),
            (
                path(resource::LAST_STATE_CHANGE_TIME),
                Value::Time(fw.last_state_change),
            ),
        ]
    }

    /// Tells a new session's client what object 5 accepts: Block1 pushes to
    /// /5/0/0 up to what RAM holds (the push is reassembled whole before it
    /// is written to the slot) and the slot holds, and Execute refusals for
    /// the state. A block past that limit is answered 4.13 with Size1 = the
    /// limit: RFC 7959 §2.9.3, the answer of a server that "does not
    /// currently have the resources to store blocks for a transfer that it
    /// would intend to implement in an atomic fashion".
    pub fn configure_client(&self, client: &mut Client, nv: &NvData) {
        client.accept_block1(
            path(resource::PACKAGE),
            nv.firmware.settings.push_limit() as usize,
            PUSH_MAX_SZX,
        );
        set_refusals(client, status(&nv.firmware));
    }

    /// At boot: a pull that was under way continues from the offset NV
    /// holds; a push cannot (the server's transfer is gone) and ends as
    /// Connection Lost.
    pub fn resume(&mut self, nv: &mut NvStore, now_unix: i64) {
        self.download = None;
        self.restart_at = None;
        let fw = nv.data().firmware.clone();
        if fw.state != FirmwareState::Downloading.code() {
            return;
        }
        match fw.method {
            Some(Method::Coap | Method::Http) => {
                tracing::info!(uri = %fw.package_uri, offset = fw.download_offset, "resuming the firmware download");
                self.spawn(
                    nv,
                    fw.package_uri.clone(),
                    fw.download_offset,
                    fw.etag.as_deref().and_then(|h| hex::decode(h).ok()),
                );
            }
            _ => {
                tracing::info!("a pushed package was cut off by the restart");
                self.fail(nv, UpdateResult::ConnectionLost, now_unix);
            }
        }
    }

    /// A server Write under /5/0 changed `path` to `value`.
    pub fn on_written(&mut self, nv: &mut NvStore, p: Path, value: Option<&Value>, now_unix: i64) {
        let state = current(nv);
        if p == path(resource::PACKAGE_URI) {
            let uri = match value {
                Some(Value::String(s)) => s.trim().to_owned(),
                _ => String::new(),
            };
            if uri.is_empty() {
                return self.clear(nv, now_unix);
            }
            if state.state != FirmwareState::Idle {
                tracing::warn!(state = %state, %uri, "Package URI written while not Idle; ignored");
                return;
            }
            self.start_pull(nv, uri, now_unix);
        } else if p == path(resource::PACKAGE) {
            let body = match value {
                Some(Value::Opaque(b)) => b.clone(),
                _ => Vec::new(),
            };
            // The store need not hold the image: it is in the slot now.
            self.changes.push((p, Value::Opaque(Vec::new())));
            if body.is_empty() {
                return self.clear(nv, now_unix);
            }
            self.push_received(nv, body, now_unix);
        }
    }

    /// A Block1 block of a pushed Package arrived: Downloading starts with the first.
    pub fn on_block1(&mut self, nv: &mut NvStore, received: usize, now_unix: i64) {
        let fw = &nv.data().firmware;
        if current(nv).state == FirmwareState::Idle {
            self.download = None;
            let inactive = fw.inactive_slot();
            self.begin(nv, Method::Push, String::new(), now_unix, inactive);
        }
        tracing::debug!(received, "Package block received");
    }

    /// A Block1 push was refused by the client (4.13 too large, 4.08 gap, ...).
    /// A 4.13 is Update Result 3 when the push outgrew the RAM it is held in
    /// and 2 when it outgrew the slot ([`super::FirmwareSettings::push_too_large_result`]).
    pub fn on_block1_refused(&mut self, nv: &mut NvStore, code: u16, now_unix: i64) {
        let fw = nv.data().firmware.clone();
        let state = current(nv).state;
        let pushing = state == FirmwareState::Downloading && fw.method == Some(Method::Push);
        let too_large = fw.settings.push_too_large_result();
        if code == 413 && state == FirmwareState::Idle {
            // Refused at the first block (Size1 or the block itself).
            self.begin(
                nv,
                Method::Push,
                String::new(),
                now_unix,
                fw.inactive_slot(),
            );
            return self.fail(nv, too_large, now_unix);
        }
        if pushing {
            let result = if code == 413 {
                too_large
            } else {
                UpdateResult::ConnectionLost
            };
            self.fail(nv, result, now_unix);
        }
    }

    /// The server executed `p` (the client checked the refusals first).
    pub fn on_executed(&mut self, nv: &mut NvStore, p: Path, now: Instant, now_unix: i64) {
        let state = current(nv).state;
        if p == path(resource::UPDATE) {
            if execute_update_response(state) != 204 {
                return;
            }
            self.set_status(
                nv,
                FirmwareState::Updating,
                UpdateResult::Initial,
                now_unix,
                |_| {},
            );
            self.restart_at = Some(now + UPDATE_DELAY);
            tracing::info!("update executed; restarting into the new slot");
        } else if p == path(resource::CANCEL)
            && matches!(
                state,
                FirmwareState::Downloading | FirmwareState::Downloaded
            )
        {
            self.download = None;
            self.discard_inactive(nv);
            self.set_status(
                nv,
                FirmwareState::Idle,
                UpdateResult::Cancelled,
                now_unix,
                reset_download,
            );
        }
    }

    /// An event of a download thread.
    pub fn on_download(&mut self, nv: &mut NvStore, event: DownloadEvent, now_unix: i64) {
        if !event.is_from(Target::Firmware, self.download.as_ref()) {
            return;
        }
        match event.kind {
            DownloadEventKind::Progress { offset, etag } => {
                let etag = etag.map(hex::encode);
                if let Err(e) = nv.update(|d| {
                    d.firmware.download_offset = offset;
                    d.firmware.etag = etag;
                }) {
                    tracing::error!(error = %e, "cannot record the download offset");
                }
            }
            DownloadEventKind::Complete { size } => {
                self.download = None;
                tracing::info!(size, "firmware image downloaded");
                self.verify(nv, now_unix);
            }
            DownloadEventKind::Failed(f) => {
                self.download = None;
                tracing::warn!(reason = %f.reason, "firmware download failed");
                self.fail(nv, f.kind.update_result(), now_unix);
            }
        }
    }

    /// Applies pending value changes to the client and refreshes which
    /// Executes it refuses. Without a session the changes are dropped: the
    /// next session's store is built from NV.
    pub fn apply(&mut self, client: Option<&mut Client>, nv: &NvData, now: Instant) {
        let changes = std::mem::take(&mut self.changes);
        let Some(client) = client else { return };
        for (p, v) in changes {
            if let Err(e) = client.set_value(now, p, v) {
                tracing::debug!(path = %p, error = %e, "object 5 value not set");
            }
        }
        set_refusals(client, status(&nv.firmware));
    }

    /// Whether Execute Update's restart is due.
    pub fn restart_due(&self, now: Instant) -> bool {
        self.restart_at.is_some_and(|t| t <= now)
    }

    /// When the restart is due, for the loop's wake-up.
    pub fn restart_deadline(&self) -> Option<Instant> {
        self.restart_at
    }

    /// Swaps the slots in NV and marks the new one as on trial: the
    /// bootloader of the next start verifies it (or rolls back).
    pub fn prepare_restart(&mut self, nv: &mut NvStore) {
        self.restart_at = None;
        self.download = None;
        if let Err(e) = nv.update(super::boot::swap) {
            tracing::error!(error = %e, "cannot record the slot swap");
        }
    }

    fn start_pull(&mut self, nv: &mut NvStore, uri: String, now_unix: i64) {
        let method = match lwm2m::firmware::PackageUri::parse(&uri).map(|u| u.protocol) {
            Ok(ProtocolSupport::Http | ProtocolSupport::Https) => Method::Http,
            _ => Method::Coap,
        };
        let inactive = nv.data().firmware.inactive_slot();
        self.begin(nv, method, uri.clone(), now_unix, inactive);
        self.spawn(nv, uri, 0, None);
    }

    fn spawn(&mut self, nv: &NvStore, uri: String, offset: u64, etag: Option<Vec<u8>>) {
        let fw = &nv.data().firmware;
        self.generation += 1;
        let job = DownloadJob {
            target: Target::Firmware,
            generation: self.generation,
            uri,
            slot: slots::path(&self.state_dir, fw.inactive_slot()),
            offset,
            etag,
            szx: fw.settings.szx,
            limit: fw.settings.slot_size,
            stall: stall(fw),
            protocols: self.protocols(),
            psk: self.download_psk.clone(),
            seed: self.seed ^ self.generation.rotate_left(17) ^ nv.data().boot_count,
        };
        match download::spawn(job, self.report.clone()) {
            Ok(h) => self.download = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start the download"),
        }
    }

    /// Idle → Downloading: the inactive slot is erased for the new image.
    fn begin(
        &mut self,
        nv: &mut NvStore,
        method: Method,
        uri: String,
        now_unix: i64,
        slot: super::Slot,
    ) {
        slots::erase(&slots::path(&self.state_dir, slot));
        self.set_status(
            nv,
            FirmwareState::Downloading,
            UpdateResult::Initial,
            now_unix,
            |fw| {
                fw.method = Some(method);
                if method != Method::Push {
                    fw.package_uri = uri;
                }
                fw.download_offset = 0;
                fw.etag = None;
                *fw.slot_mut(slot) = super::SlotNv::default();
            },
        );
    }

    fn push_received(&mut self, nv: &mut NvStore, body: Vec<u8>, now_unix: i64) {
        let fw = nv.data().firmware.clone();
        let state = current(nv).state;
        let pushing = state == FirmwareState::Downloading && fw.method == Some(Method::Push);
        if state == FirmwareState::Idle {
            self.download = None;
            self.begin(
                nv,
                Method::Push,
                String::new(),
                now_unix,
                fw.inactive_slot(),
            );
        } else if !pushing {
            tracing::warn!(state = %current(nv), "Package written while busy; ignored");
            return;
        }
        if body.len() as u64 > fw.settings.slot_size {
            return self.fail(nv, UpdateResult::NotEnoughFlash, now_unix);
        }
        let slot = slots::path(&self.state_dir, fw.inactive_slot());
        if let Err(e) = slots::write_whole(&slot, &body) {
            tracing::error!(error = %e, "cannot write the pushed image");
            return self.fail(nv, UpdateResult::NotEnoughFlash, now_unix);
        }
        let len = body.len() as u64;
        if let Err(e) = nv.update(|d| d.firmware.download_offset = len) {
            tracing::error!(error = %e, "cannot record the pushed image");
        }
        self.verify(nv, now_unix);
    }

    /// The download check: Downloaded, or Idle with 5 / 6.
    fn verify(&mut self, nv: &mut NvStore, now_unix: i64) {
        let fw = nv.data().firmware.clone();
        let slot = fw.inactive_slot();
        let bytes = match slots::read(&slots::path(&self.state_dir, slot)) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the downloaded image");
                return self.fail(nv, UpdateResult::IntegrityCheckFailure, now_unix);
            }
        };
        match image::check(&bytes) {
            Ok(header) => {
                tracing::info!(version = %header.version, size = bytes.len(), "image checked");
                let package = package_name(&fw.package_uri, fw.method);
                self.set_status(
                    nv,
                    FirmwareState::Downloaded,
                    UpdateResult::Initial,
                    now_unix,
                    |fw| {
                        fw.download_offset = bytes.len() as u64;
                        *fw.slot_mut(slot) = super::SlotNv {
                            version: Some(header.version.clone()),
                            package: Some(package),
                        };
                    },
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "downloaded image refused");
                self.fail(nv, e.update_result(), now_unix);
            }
        }
    }

    /// A download (or push) failed: Downloading → Idle with `result`.
    fn fail(&mut self, nv: &mut NvStore, result: UpdateResult, now_unix: i64) {
        self.download = None;
        self.discard_inactive(nv);
        self.set_status(nv, FirmwareState::Idle, result, now_unix, reset_download);
    }

    /// Empty Package URI or Package: back to Idle with Update Result 0.
    fn clear(&mut self, nv: &mut NvStore, now_unix: i64) {
        let state = current(nv).state;
        if state == FirmwareState::Updating {
            tracing::warn!("empty package written while Updating; ignored");
            return;
        }
        self.download = None;
        if state != FirmwareState::Idle {
            self.discard_inactive(nv);
        }
        self.set_status(
            nv,
            FirmwareState::Idle,
            UpdateResult::Initial,
            now_unix,
            |fw| {
                reset_download(fw);
                fw.package_uri.clear();
            },
        );
        self.changes
            .push((path(resource::PACKAGE_URI), Value::String(String::new())));
    }

    fn discard_inactive(&self, nv: &mut NvStore) {
        let slot = nv.data().firmware.inactive_slot();
        slots::erase(&slots::path(&self.state_dir, slot));
        if let Err(e) = nv.update(|d| *d.firmware.slot_mut(slot) = super::SlotNv::default()) {
            tracing::error!(error = %e, "cannot record the erased slot");
        }
    }

    /// Records a step in NV, then queues it for the server (Update Result
    /// first when it goes back to 0, so no half-step is inconsistent).
    fn set_status(
        &mut self,
        nv: &mut NvStore,
        state: FirmwareState,
        result: UpdateResult,
        now_unix: i64,
        also: impl FnOnce(&mut FirmwareNv),
    ) {
        let from = current(nv);
        let to = FirmwareStatus::new(state, result);
        if let Err(e) = check_transition(from, to) {
            // The simulator must never make a step a real device is failed for.
            tracing::error!(error = %e, "object 5 transition not allowed");
            debug_assert!(false, "object 5 transition not allowed: {e}");
        }
        tracing::info!(from = %from, to = %to, "object 5");
        let result_first = result == UpdateResult::Initial;
        let r = nv.update(|d| {
            d.firmware.state = state.code();
            d.firmware.result = result.code();
            d.firmware.last_state_change = now_unix;
            also(&mut d.firmware);
        });
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot record the object 5 state");
        }
        let st = (
            path(resource::STATE),
            Value::Integer(i64::from(state.code())),
        );
        let re = (
            path(resource::UPDATE_RESULT),
            Value::Integer(i64::from(result.code())),
        );
        if result_first {
            self.changes.extend([re, st]);
        } else {
            self.changes.extend([st, re]);
        }
        self.changes.push((
            path(resource::LAST_STATE_CHANGE_TIME),
            Value::Time(now_unix),
        ));
    }
}

fn reset_download(fw: &mut FirmwareNv) {
    fw.method = None;
    fw.download_offset = 0;
    fw.etag = None;
}

/// The State and Update Result NV holds.
pub fn status(fw: &FirmwareNv) -> FirmwareStatus {
    FirmwareStatus::new(
        FirmwareState::from_code(i64::from(fw.state)).unwrap_or(FirmwareState::Idle),
        UpdateResult::from_code(i64::from(fw.result)).unwrap_or(UpdateResult::Initial),
    )
}

fn current(nv: &NvStore) -> FirmwareStatus {
    status(&nv.data().firmware)
}

/// The download's stall timeout from the firmware settings (0: none); the
/// software download (object 9) uses the same setting.
pub(crate) fn stall(fw: &FirmwareNv) -> Option<Duration> {
    (fw.settings.stall_timeout_s > 0)
        .then(|| Duration::from_secs(u64::from(fw.settings.stall_timeout_s)))
}

/// PkgName of a downloaded image: the last segment of its Package URI.
fn package_name(uri: &str, method: Option<Method>) -> String {
    if method == Some(Method::Push) {
        return "pushed-package".to_owned();
    }
    lwm2m::firmware::PackageUri::parse(uri)
        .ok()
        .and_then(|u| u.path.last().cloned())
        .unwrap_or_else(|| "package".to_owned())
}

/// Update (/5/0/2) only in Downloaded, Cancel (/5/0/10) only while a
/// package is on its way or waiting: 4.05 otherwise.
fn set_refusals(client: &mut Client, status: FirmwareStatus) {
    let update = (execute_update_response(status.state) != 204).then(|| {
        (
            405,
            format!(
                "Update needs State Downloaded (2); the device is {}",
                status.state
            ),
        )
    });
    client.set_execute_refusal(path(resource::UPDATE), update);
    let cancel = (!matches!(
        status.state,
        FirmwareState::Downloading | FirmwareState::Downloaded
    ))
    .then(|| {
        (
            405,
            format!("nothing to cancel; the device is {}", status.state),
        )
    });
    client.set_execute_refusal(path(resource::CANCEL), cancel);
}
