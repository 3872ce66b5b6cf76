//! Object 9 (LwM2M Software Management, OMA registry v1.0) on the virtual
//! meter: one instance, /9/0, managing one software package (an add-on of
//! the meter's application, in meterbench's image format).
//!
//! The Package Installation State Machine (registry text of resources 7
//! and 9; `lwm2m::firmware::software::check_transition`):
//!
//! | trigger | Update State / Update Result |
//! |---|---|
//! | Package URI (/9/0/3) written, or the first Package (/9/0/2) block | INITIAL → DOWNLOAD STARTED / 1 |
//! | download complete | → DOWNLOADED |
//! | image check passes | → DELIVERED / 3 |
//! | download or check fails | → INITIAL / 50, 52, 53, 56 |
//! | Install (/9/0/4), only in DELIVERED | → INSTALLED / 2, inactive |
//! | Activate / Deactivate (/9/0/10, /9/0/11), only in INSTALLED | Activation State (/9/0/12) true / false |
//! | Uninstall (/9/0/6) in DELIVERED or INSTALLED | → INITIAL / 0 (argument "1" in INSTALLED: → DELIVERED, kept for an update) |
//!
//! Executes the state does not allow are answered 4.05. The download reuses
//! the firmware downloader ([`crate::firmware::download`]) into
//! `<state_dir>/sw-package.bin`; state survives power cuts in NV.

use std::path::PathBuf;
use std::time::Instant;

use lwm2m::client::{Client, ObjectStore};
use lwm2m::firmware::software::{check_transition, resource};
use lwm2m::firmware::{ProtocolSupport, SoftwareResult, SoftwareState, SoftwareStatus};
use lwm2m::{Path, Value};
use serde::{Deserialize, Serialize};

use crate::firmware::download::{
    self, DownloadEvent, DownloadEventKind, DownloadHandle, DownloadJob, Reporter, Target,
};
use crate::firmware::{image, slots};
use crate::nv::{NvData, NvStore};

/// Object 9's id.
pub const OBJECT_ID: u16 = 9;
/// The package file in the state directory.
pub const PACKAGE_FILE: &str = "sw-package.bin";

/// /9/0/`id`.
pub fn path(id: u16) -> Path {
    Path::resource(OBJECT_ID, 0, id)
}

/// Object 9's part of NV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SoftwareNv {
    /// /9/0/7 Update State (0–4).
    pub state: u8,
    /// /9/0/9 Update Result.
    pub result: u8,
    /// /9/0/12 Activation State.
    pub activated: bool,
    /// /9/0/0 and /9/0/1, from the package once it is delivered.
    pub pkg_name: String,
    pub pkg_version: String,
    /// /9/0/3 as written.
    pub package_uri: String,
    /// Bytes of the package file known good, and their ETag (hex), for resume.
    pub download_offset: u64,
    pub etag: Option<String>,
    /// The package is being pushed (/9/0/2), not pulled.
    pub pushed: bool,
}

/// The device's object 9.
pub struct SoftwareManagement {
    state_dir: PathBuf,
    report: Reporter,
    seed: u64,
    protocols: Vec<ProtocolSupport>,
    download: Option<DownloadHandle>,
    generation: u64,
    changes: Vec<(Path, Value)>,
}

impl SoftwareManagement {
    pub fn new(state_dir: impl Into<PathBuf>, report: Reporter, seed: u64) -> Self {
        SoftwareManagement {
            state_dir: state_dir.into(),
            report,
            seed,
            protocols: vec![ProtocolSupport::Coap, ProtocolSupport::Http],
            download: None,
            generation: 0,
            changes: Vec::new(),
        }
    }

    /// Protocols the package download accepts (object 5's resource 8 list).
    pub fn set_protocols(&mut self, protocols: Vec<ProtocolSupport>) {
        self.protocols = protocols;
    }

    fn package_path(&self) -> PathBuf {
        self.state_dir.join(PACKAGE_FILE)
    }

    /// Every value of /9/0 for a new session's store.
    pub fn fill_store(&self, store: &mut ObjectStore, nv: &NvData) {
        let sw = &nv.software;
        for (p, v) in [
            (path(resource::PKG_NAME), Value::String(sw.pkg_name.clone())),
            (
                path(resource::PKG_VERSION),
                Value::String(sw.pkg_version.clone()),
            ),
            (
                path(resource::UPDATE_STATE),
                Value::Integer(i64::from(sw.state)),
            ),
            (
                path(resource::UPDATE_RESULT),
                Value::Integer(i64::from(sw.result)),
            ),
            (
                path(resource::ACTIVATION_STATE),
                Value::Boolean(sw.activated),
            ),
        ] {
            store.set(p, v);
        }
        if store
            .get(&path(resource::UPDATE_SUPPORTED_OBJECTS))
            .is_none()
        {
            store.set(
                path(resource::UPDATE_SUPPORTED_OBJECTS),
                Value::Boolean(false),
            );
        }
    }

    /// Block1 pushes to /9/0/2 and the Execute refusals of the state.
    pub fn configure_client(&self, client: &mut Client, nv: &NvData) {
        client.accept_block1(
            path(resource::PACKAGE),
            nv.firmware.settings.slot_size as usize,
            crate::firmware::update::PUSH_MAX_SZX,
        );
        set_refusals(client, &nv.software);
    }

    /// At boot: a pull under way resumes; a push was lost (Connection Lost).
    pub fn resume(&mut self, nv: &mut NvStore) {
        self.download = None;
        let sw = nv.data().software.clone();
        if sw.state != SoftwareState::DownloadStarted.code() {
            return;
        }
        if sw.pushed || sw.package_uri.is_empty() {
            self.fail(nv, SoftwareResult::ConnectionLost);
        } else {
            let etag = sw.etag.as_deref().and_then(|h| hex::decode(h).ok());
            self.spawn(nv, sw.package_uri.clone(), sw.download_offset, etag);
        }
    }

    pub fn on_written(&mut self, nv: &mut NvStore, p: Path, value: Option<&Value>) {
        let state = current(nv).state;
        if p == path(resource::PACKAGE_URI) {
            let uri = match value {
                Some(Value::String(s)) => s.trim().to_owned(),
                _ => String::new(),
            };
            if uri.is_empty() || state != SoftwareState::Initial {
                tracing::warn!(%uri, state = %current(nv), "object 9 Package URI ignored");
                return;
            }
            self.begin(nv, uri.clone(), false);
            self.spawn(nv, uri, 0, None);
        } else if p == path(resource::PACKAGE) {
            let body = match value {
                Some(Value::Opaque(b)) => b.clone(),
                _ => Vec::new(),
            };
            self.changes.push((p, Value::Opaque(Vec::new())));
            if body.is_empty() {
                return;
            }
            if state == SoftwareState::Initial {
                self.begin(nv, String::new(), true);
            } else if !(state == SoftwareState::DownloadStarted && nv.data().software.pushed) {
                tracing::warn!(state = %current(nv), "object 9 Package ignored");
                return;
            }
            if let Err(e) = slots::write_whole(&self.package_path(), &body) {
                tracing::error!(error = %e, "cannot store the software package");
                return self.fail(nv, SoftwareResult::NotEnoughStorage);
            }
            self.downloaded(nv);
        }
    }

    /// The first block of a pushed package starts the download.
    pub fn on_block1(&mut self, nv: &mut NvStore) {
        if current(nv).state == SoftwareState::Initial {
            self.begin(nv, String::new(), true);
        }
    }

    pub fn on_block1_refused(&mut self, nv: &mut NvStore, code: u16) {
        let state = current(nv).state;
        if state == SoftwareState::Initial && code == 413 {
            self.begin(nv, String::new(), true);
        }
        if current(nv).state == SoftwareState::DownloadStarted && nv.data().software.pushed {
            let result = if code == 413 {
                SoftwareResult::NotEnoughStorage
            } else {
                SoftwareResult::ConnectionLost
            };
            self.fail(nv, result);
        }
    }

    pub fn on_executed(&mut self, nv: &mut NvStore, p: Path, arguments: Option<&str>) {
        let sw = nv.data().software.clone();
        let state = current(nv).state;
        let id = p.resource_id().unwrap_or(u16::MAX);
        match (id, state) {
            (resource::INSTALL, SoftwareState::Delivered) => {
                tracing::info!(package = %sw.pkg_name, version = %sw.pkg_version, "software installed");
                self.set(
                    nv,
                    SoftwareState::Installed,
                    SoftwareResult::Installed,
                    |s| s.activated = false,
                );
            }
            (resource::UNINSTALL, SoftwareState::Installed) if arguments == Some("1") => {
                self.set(
                    nv,
                    SoftwareState::Delivered,
                    SoftwareResult::DownloadedVerified,
                    |s| s.activated = false,
                );
            }
            (resource::UNINSTALL, SoftwareState::Installed | SoftwareState::Delivered) => {
                slots::erase(&self.package_path());
                tracing::info!(package = %sw.pkg_name, "software uninstalled");
                self.set(nv, SoftwareState::Initial, SoftwareResult::Initial, |s| {
                    *s = SoftwareNv::default()
                });
            }
            (resource::ACTIVATE, SoftwareState::Installed) => {
                self.set(nv, state, SoftwareResult::Installed, |s| s.activated = true)
            }
            (resource::DEACTIVATE, SoftwareState::Installed) => {
                self.set(nv, state, SoftwareResult::Installed, |s| {
                    s.activated = false
                })
            }
            _ => tracing::warn!(path = %p, state = %current(nv), "object 9 execute ignored"),
        }
    }

    pub fn on_download(&mut self, nv: &mut NvStore, event: DownloadEvent) {
        if !event.is_from(Target::Software, self.download.as_ref()) {
            return;
        }
        match event.kind {
            DownloadEventKind::Progress { offset, etag } => {
                let etag = etag.map(hex::encode);
                if let Err(e) = nv.update(|d| {
                    d.software.download_offset = offset;
                    d.software.etag = etag;
                }) {
                    tracing::error!(error = %e, "cannot record the software download offset");
                }
            }
            DownloadEventKind::Complete { .. } => {
                self.download = None;
                self.downloaded(nv);
            }
            DownloadEventKind::Failed(f) => {
                self.download = None;
                self.fail(nv, f.kind.software_result());
            }
        }
    }

    /// Applies pending changes to the client and refreshes the Execute refusals.
    pub fn apply(&mut self, client: Option<&mut Client>, nv: &NvData, now: Instant) {
        let changes = std::mem::take(&mut self.changes);
        let Some(client) = client else { return };
        for (p, v) in changes {
            if let Err(e) = client.set_value(now, p, v) {
                tracing::debug!(path = %p, error = %e, "object 9 value not set");
            }
        }
        set_refusals(client, &nv.software);
    }

    fn spawn(&mut self, nv: &NvStore, uri: String, offset: u64, etag: Option<Vec<u8>>) {
        let fw = &nv.data().firmware;
        self.generation += 1;
        let job = DownloadJob {
            target: Target::Software,
            generation: self.generation,
            uri,
            slot: self.package_path(),
            offset,
            etag,
            szx: fw.settings.szx,
            limit: fw.settings.slot_size,
            stall: crate::firmware::update::stall(fw),
            protocols: self.protocols.clone(),
            psk: None,
            seed: self.seed ^ 0x9 ^ self.generation.rotate_left(23) ^ nv.data().boot_count,
        };
        match download::spawn(job, self.report.clone()) {
            Ok(h) => self.download = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start the software download"),
        }
    }

    /// INITIAL → DOWNLOAD STARTED (result reset first, then Downloading).
    fn begin(&mut self, nv: &mut NvStore, uri: String, pushed: bool) {
        self.download = None;
        slots::erase(&self.package_path());
        self.set(nv, SoftwareState::Initial, SoftwareResult::Initial, |_| {});
        self.set(
            nv,
            SoftwareState::DownloadStarted,
            SoftwareResult::Initial,
            |s| {
                s.package_uri = uri;
                s.pushed = pushed;
                s.download_offset = 0;
                s.etag = None;
            },
        );
        self.set(
            nv,
            SoftwareState::DownloadStarted,
            SoftwareResult::Downloading,
            |_| {},
        );
    }

    /// DOWNLOADED, then the check: DELIVERED / 3, or INITIAL / 53 (or 54).
    fn downloaded(&mut self, nv: &mut NvStore) {
        self.set(
            nv,
            SoftwareState::Downloaded,
            SoftwareResult::Downloading,
            |_| {},
        );
        let bytes = slots::read(&self.package_path()).unwrap_or_default();
        match image::check(&bytes) {
            Ok(h) => {
                let name = lwm2m::firmware::PackageUri::parse(&nv.data().software.package_uri)
                    .ok()
                    .and_then(|u| u.path.last().cloned())
                    .unwrap_or_else(|| "pushed-package".to_owned());
                self.set(
                    nv,
                    SoftwareState::Delivered,
                    SoftwareResult::DownloadedVerified,
                    |s| {
                        s.pkg_name = name;
                        s.pkg_version = h.version.clone();
                        s.download_offset = bytes.len() as u64;
                    },
                );
                self.push_names(nv);
            }
            Err(e) => {
                tracing::warn!(error = %e, "software package refused");
                let result = match e.update_result() {
                    lwm2m::firmware::UpdateResult::IntegrityCheckFailure => {
                        SoftwareResult::IntegrityCheckFailure
                    }
                    _ => SoftwareResult::UnsupportedPackageType,
                };
                self.fail(nv, result);
            }
        }
    }

    fn fail(&mut self, nv: &mut NvStore, result: SoftwareResult) {
        self.download = None;
        slots::erase(&self.package_path());
        self.set(nv, SoftwareState::Initial, result, |s| {
            s.download_offset = 0;
            s.etag = None;
            s.pushed = false;
        });
    }

    fn push_names(&mut self, nv: &NvStore) {
        let sw = &nv.data().software;
        self.changes.extend([
            (path(resource::PKG_NAME), Value::String(sw.pkg_name.clone())),
            (
                path(resource::PKG_VERSION),
                Value::String(sw.pkg_version.clone()),
            ),
        ]);
    }

    /// Records a status in NV, then queues it for the server.
    fn set(
        &mut self,
        nv: &mut NvStore,
        state: SoftwareState,
        result: SoftwareResult,
        also: impl FnOnce(&mut SoftwareNv),
    ) {
        let from = current(nv);
        let to = SoftwareStatus::new(state, result);
        if let Err(e) = check_transition(from, to) {
            tracing::error!(error = %e, "object 9 transition not allowed");
            debug_assert!(false, "object 9 transition not allowed: {e}");
        }
        let before = nv.data().software.clone();
        if let Err(e) = nv.update(|d| {
            d.software.state = state.code();
            d.software.result = result.code();
            also(&mut d.software);
        }) {
            tracing::error!(error = %e, "cannot record the object 9 state");
        }
        let after = nv.data().software.clone();
        tracing::info!(from = %from, to = %to, activated = after.activated, "object 9");
        self.changes.extend([
            (
                path(resource::UPDATE_STATE),
                Value::Integer(i64::from(state.code())),
            ),
            (
                path(resource::UPDATE_RESULT),
                Value::Integer(i64::from(result.code())),
            ),
        ]);
        if before.activated != after.activated {
            self.changes.push((
                path(resource::ACTIVATION_STATE),
                Value::Boolean(after.activated),
            ));
        }
        if after.pkg_name != before.pkg_name || after.pkg_version != before.pkg_version {
            self.push_names(nv);
        }
    }
}

fn status(sw: &SoftwareNv) -> SoftwareStatus {
    SoftwareStatus::new(
        SoftwareState::from_code(i64::from(sw.state)).unwrap_or(SoftwareState::Initial),
        SoftwareResult::from_code(i64::from(sw.result)).unwrap_or(SoftwareResult::Initial),
    )
}

fn current(nv: &NvStore) -> SoftwareStatus {
    status(&nv.data().software)
}

/// Install only in DELIVERED; Activate, Deactivate only in INSTALLED;
/// Uninstall in DELIVERED or INSTALLED: 4.05 otherwise.
fn set_refusals(client: &mut Client, sw: &SoftwareNv) {
    let state = status(sw).state;
    let rule = |allowed: &[SoftwareState], what: &str| {
        (!allowed.contains(&state)).then(|| {
            (
                405,
                format!("{what} is not allowed in Update State {state}"),
            )
        })
    };
    client.set_execute_refusal(
        path(resource::INSTALL),
        rule(&[SoftwareState::Delivered], "Install"),
    );
    client.set_execute_refusal(
        path(resource::UNINSTALL),
        rule(
            &[SoftwareState::Delivered, SoftwareState::Installed],
            "Uninstall",
        ),
    );
    client.set_execute_refusal(
        path(resource::ACTIVATE),
        rule(&[SoftwareState::Installed], "Activate"),
    );
    client.set_execute_refusal(
        path(resource::DEACTIVATE),
        rule(&[SoftwareState::Installed], "Deactivate"),
    );
}
