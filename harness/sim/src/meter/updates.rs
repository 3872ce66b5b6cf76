//! The meter's side of firmware update (object 5) and software management
//! (object 9): routing client events and download progress to
//! [`FirmwareUpdate`](crate::firmware::FirmwareUpdate) and
//! [`SoftwareManagement`](crate::software::SoftwareManagement), applying
//! what they change to the client, and the restart into a new slot.
//! Kept beside `meter.rs` so that the loop itself only calls in here.

use std::time::{Duration, Instant};

use lwm2m::client::ClientEvent;
use lwm2m::firmware::resource as fw;
use lwm2m::firmware::software::resource as sw;
use lwm2m::Path;

use super::Meter;
use std::sync::Arc;

use crate::firmware::boot;
use crate::firmware::download::{DownloadEvent, Reporter, Target};

/// Time for the PTY writer to pass the last URC on before the process image is replaced.
const URC_DRAIN: Duration = Duration::from_millis(100);

/// Forwards a download thread's events to the meter's inbox.
pub(super) fn reporter(inbox: std::sync::mpsc::Sender<super::Input>) -> Reporter {
    Arc::new(move |event| {
        // A closed inbox means the meter is stopping; the event no longer matters.
        let _ = inbox.send(super::Input::Download(event));
    })
}

fn is(path: &Path, object: u16, resources: &[u16]) -> bool {
    path.object_id() == Some(object)
        && path.instance_id() == Some(0)
        && path.resource_id().is_some_and(|r| resources.contains(&r))
}

impl Meter {
    /// Handles the client events that belong to objects 5 and 9; returns
    /// false for the others. Only the active session's events come here.
    pub(super) fn on_update_event(&mut self, now: Instant, event: &ClientEvent) -> bool {
        let unix = self.now_unix();
        match event {
            ClientEvent::Written { path } if is(path, 5, &[fw::PACKAGE, fw::PACKAGE_URI]) => {
                let value = self.stored(path);
                self.firmware
                    .on_written(&mut self.nv, *path, value.as_ref(), unix);
            }
            ClientEvent::Written { path } if is(path, 9, &[sw::PACKAGE, sw::PACKAGE_URI]) => {
                let value = self.stored(path);
                self.software
                    .on_written(&mut self.nv, *path, value.as_ref());
            }
            ClientEvent::Executed { path, .. } if is(path, 5, &[fw::UPDATE, fw::CANCEL]) => {
                self.firmware.on_executed(&mut self.nv, *path, now, unix);
            }
            ClientEvent::Executed { path, arguments }
                if is(
                    path,
                    9,
                    &[sw::INSTALL, sw::UNINSTALL, sw::ACTIVATE, sw::DEACTIVATE],
                ) =>
            {
                self.software
                    .on_executed(&mut self.nv, *path, arguments.as_deref());
            }
            ClientEvent::Block1Received { path, received } if is(path, 5, &[fw::PACKAGE]) => {
                self.firmware.on_block1(&mut self.nv, *received, unix);
            }
            ClientEvent::Block1Received { path, .. } if is(path, 9, &[sw::PACKAGE]) => {
                self.software.on_block1(&mut self.nv);
            }
            ClientEvent::Block1Refused { path, code } if is(path, 5, &[fw::PACKAGE]) => {
                self.firmware.on_block1_refused(&mut self.nv, *code, unix);
            }
            ClientEvent::Block1Refused { path, code } if is(path, 9, &[sw::PACKAGE]) => {
                self.software.on_block1_refused(&mut self.nv, *code);
            }
            _ => return false,
        }
        self.apply_updates(now);
        true
    }

    /// Answers the firmware settings commands (`AT+MBFW...`, [`crate::firmware::at`]);
    /// false leaves the line to the modem's interpreter. NV is written before the answer.
    pub(super) fn firmware_at(&mut self, line: &str) -> bool {
        let settings = &self.nv.data().firmware.settings;
        let Some((resp, changed)) = crate::firmware::at::handle(settings, line, self.modem.echo)
        else {
            return false;
        };
        if let Some(new) = changed {
            if let Err(e) = self.nv.update(|d| d.firmware.settings = new) {
                tracing::error!(error = %e, "cannot write firmware settings to NV");
            }
            // A new slot size changes what a push may carry.
            self.configure_update_objects();
        }
        tracing::debug!(line = %line, response = ?resp.lines(), "AT");
        self.write(resp.to_bytes());
        true
    }

    /// Progress or the end of a download thread.
    pub(super) fn on_download(&mut self, now: Instant, event: DownloadEvent) {
        let unix = self.now_unix();
        match event.target {
            Target::Firmware => self.firmware.on_download(&mut self.nv, event, unix),
            Target::Software => self.software.on_download(&mut self.nv, event),
        }
        self.apply_updates(now);
    }

    /// Shows queued object 5 / 9 changes to the server.
    pub(super) fn apply_updates(&mut self, now: Instant) {
        let client = self.active.as_mut().map(|s| s.client());
        self.firmware.apply(client, self.nv.data(), now);
        let client = self.active.as_mut().map(|s| s.client());
        self.software.apply(client, self.nv.data(), now);
    }

    /// Restarts into the new slot once Execute Update's delay is over.
    pub(super) fn update_timers(&mut self, now: Instant) {
        if self.firmware.restart_due(now) {
            self.restart_for_update(now);
        }
    }

    /// Objects 5 and 9 for a new session: values from NV, Block1 and
    /// Execute rules in the client.
    pub(super) fn fill_update_objects(&self, store: &mut lwm2m::client::ObjectStore) {
        self.firmware.fill_store(store, self.nv.data());
        self.software.fill_store(store, self.nv.data());
    }

    pub(super) fn configure_update_objects(&mut self) {
        if let Some(s) = self.active.as_mut() {
            self.firmware.configure_client(s.client(), self.nv.data());
            self.software.configure_client(s.client(), self.nv.data());
        }
    }

    /// At every boot: settle downloads a power cut or reboot interrupted.
    pub(super) fn resume_updates(&mut self) {
        let unix = self.now_unix();
        self.firmware.resume(&mut self.nv, unix);
        self.software.resume(&mut self.nv);
    }

    /// The value a Write left in the store.
    fn stored(&mut self, path: &Path) -> Option<lwm2m::Value> {
        self.active
            .as_mut()
            .and_then(|s| s.client().store().get(path).cloned())
    }

    /// Execute Update: swap slots in NV and restart the process into them
    /// (the bootloader step of the new process checks the image).
    fn restart_for_update(&mut self, now: Instant) {
        self.firmware.prepare_restart(&mut self.nv);
        if let Some(mut s) = self.active.take() {
            s.client().stop(now);
            s.flush();
        }
        self.retiring.clear();
        self.persist_energy();
        self.urc("+LWM2M: firmware update restart");
        std::thread::sleep(URC_DRAIN);
        let e = boot::reexec();
        // Only reached when exec failed: restart in-process instead, through
        // the same bootloader step.
        tracing::error!(error = %e, "cannot re-execute the meter; restarting in-process");
        let dir = self.firmware.state_dir().to_owned();
        boot::run(&dir, &mut self.nv);
        self.boot(now);
    }
}
