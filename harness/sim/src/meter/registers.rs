//! The meter's registers as the application sees them: the energy register
//! (live in RAM, committed to NV every few seconds: a power cut loses at most
//! what was counted since the last commit, never a committed value), its RAM
//! snapshot for the debug port, and the reading frames it publishes in
//! object 19 (/19/0/0/0) for the server to read or observe — and pushes
//! with Send (LwM2M 1.1 Core §6.4.6) as each is made, when the server
//! unmuted Send (/1/x/23 false): a meter in push mode reports each reading
//! as it is produced rather than waiting to be asked, and Mute Send is how
//! the server turns that on and off, so a case causes it by writing it.

use std::time::Instant;

use lwm2m::client::ObjectStore;
use lwm2m::Value;

use super::Meter;
use crate::app_data::{self, Reading};
use crate::ram::{self, RamState};

/// A reading frame is published every this many ticks (seconds).
pub(super) const FRAME_TICKS: u64 = 3;

/// Register state besides NV.
#[derive(Debug, Default)]
pub(super) struct Registers {
    /// Frames published since boot.
    pub frames: u16,
}

impl Meter {
    fn reading(&self) -> Reading {
        Reading {
            counter: self.registers.frames,
            unix: u32::try_from(self.now_unix().max(0)).unwrap_or(u32::MAX),
            committed_wh: self.nv.data().energy_wh,
            live_wh: self.energy_wh,
        }
    }

    /// Puts object 19's instance into a session's store.
    pub(super) fn add_register_objects(&self, store: &mut ObjectStore) {
        for (path, value) in app_data::container_values(&self.reading()) {
            // A frame the server wrote itself stays until the meter's next one.
            if store.get(&path).is_none() || path == app_data::frame_path() {
                store.set(path, value);
            }
        }
    }

    /// Once a second: the RAM snapshot; every [`FRAME_TICKS`] a reading frame.
    pub(super) fn registers_tick(&mut self, now: Instant) {
        let snapshot = RamState {
            pid: std::process::id(),
            boot_count: self.nv.data().boot_count,
            energy_live_wh: self.energy_wh,
        };
        if let Err(e) = ram::publish(self.nv.dir(), &snapshot) {
            tracing::debug!(error = %e, "RAM snapshot not published");
        }
        if self.ticks.is_multiple_of(FRAME_TICKS) {
            self.registers.frames = self.registers.frames.wrapping_add(1);
            let reading = self.reading();
            self.set_value(
                now,
                app_data::creation_time_path(),
                Value::Time(i64::from(reading.unix)),
            );
            self.set_value(now, app_data::frame_path(), Value::Opaque(reading.encode()));
            self.send_reading(now);
        }
    }
}

impl Meter {
    /// Sends `paths` when asked over AT (`AT+LWM2MSEND`): the device-side
    /// trigger the ETS's Send tests (int-306, int-307, int-311) leave to the
    /// device. Muted or unregistered, nothing goes out (logged, not an error:
    /// the AT answer is already OK, as a modem queues such a request).
    pub(super) fn send_paths(&mut self, now: Instant, paths: &[lwm2m::Path]) {
        let Some(session) = self.active.as_mut() else {
            tracing::info!("Send asked over AT, but the client is not running");
            return;
        };
        match session
            .client()
            .send(now, paths, lwm2m::ContentFormat::SenmlCbor)
        {
            Ok(_) => tracing::info!(paths = paths.len(), "Send asked over AT"),
            Err(e) => tracing::info!(reason = %e, "Send asked over AT not made"),
        }
    }

    /// Pushes the latest reading frame and its creation time with Send,
    /// unless Send is muted (or absent), the meter lacks composite support
    /// or is not registered: then nothing goes out and nothing is owed.
    fn send_reading(&mut self, now: Instant) {
        let Some(session) = self.active.as_mut() else {
            return;
        };
        let paths = [app_data::data_path(), app_data::creation_time_path()];
        match session
            .client()
            .send(now, &paths, lwm2m::ContentFormat::SenmlCbor)
        {
            Ok(_) => tracing::debug!("reading pushed with Send"),
            Err(e) => tracing::trace!(reason = %e, "reading not sent"),
        }
    }
}
