//! The bootloader step and the restart that leads to it.
//!
//! Execute Update swaps the active slot in NV and marks the new image as on
//! trial ([`swap`]), then the process restarts itself ([`reexec`]: the same
//! executable and arguments, the same PID, so the virtual power driver keeps
//! tracking it). At the next start, before the application runs, [`run`]
//! looks at a slot on trial: its image must pass the integrity check and its
//! self-test byte; then its version runs and object 5 reports Update Result
//! 1 (Core §E.6: Updating → Idle, "Firmware updated successfully"). If not,
//! the bootloader boots the previous slot again (rollback) and object 5
//! reports 8 ("Firmware update failed"), Updating → Idle.

use std::path::Path as FsPath;

use lwm2m::firmware::{FirmwareState, UpdateResult};

use super::{image, slots, FirmwareNv, Trial};
use crate::identity::FACTORY_FIRMWARE_VERSION;
use crate::nv::{NvData, NvStore};

/// What the bootloader did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// No update pending: the active slot runs as before.
    Normal,
    /// The new slot passed its self-test and runs `version`.
    Updated { version: String },
    /// The new slot failed (`reason`); the previous slot runs again.
    RolledBack { reason: String },
}

/// Makes the inactive slot active, on trial (NV change, one record).
pub fn swap(d: &mut NvData) {
    let fw = &mut d.firmware;
    if fw.trial.is_some() {
        return;
    }
    fw.trial = Some(Trial {
        previous: fw.active_slot,
    });
    fw.active_slot = fw.inactive_slot();
}

/// The bootloader: settles a pending update before the meter starts.
/// Also finishes an update whose swap a power cut prevented (State still
/// Updating, no trial yet).
pub fn run(state_dir: &FsPath, nv: &mut NvStore) -> BootOutcome {
    let mut fw = nv.data().firmware.clone();
    if fw.trial.is_none() && fw.state == FirmwareState::Updating.code() {
        tracing::info!("an update was executed but the swap did not happen; swapping now");
        let mut d = nv.data().clone();
        swap(&mut d);
        fw = d.firmware;
    }
    let outcome = match fw.trial {
        None => BootOutcome::Normal,
        Some(trial) => try_slot(state_dir, &mut fw, trial),
    };
    let running = fw
        .slot(fw.active_slot)
        .version
        .clone()
        .unwrap_or_else(|| FACTORY_FIRMWARE_VERSION.to_owned());
    let changed = fw != nv.data().firmware;
    if changed || nv.data().firmware_version != running {
        if let Err(e) = nv.update(|d| {
            d.firmware = fw;
            d.firmware_version = running.clone();
        }) {
            tracing::error!(error = %e, "bootloader cannot record its verdict");
        }
    }
    match &outcome {
        BootOutcome::Normal => {}
        BootOutcome::Updated { version } => {
            tracing::info!(%version, slot = nv.data().firmware.active_slot.name(), "bootloader: new image runs")
        }
        BootOutcome::RolledBack { reason } => {
            tracing::warn!(%reason, version = %running, "bootloader: new image failed; rolled back")
        }
    }
    outcome
}

fn try_slot(state_dir: &FsPath, fw: &mut FirmwareNv, trial: Trial) -> BootOutcome {
    let slot = fw.active_slot;
    let verdict = slots::read(&slots::path(state_dir, slot))
        .map_err(|e| e.to_string())
        .and_then(|bytes| image::check(&bytes).map_err(|e| e.to_string()))
        .and_then(|h| {
            if h.self_test_passes() {
                Ok(h)
            } else {
                Err(format!(
                    "self-test of version {} failed (self-test byte {:#04x})",
                    h.version, h.self_test
                ))
            }
        });
    fw.trial = None;
    fw.state = FirmwareState::Idle.code();
    fw.method = None;
    fw.download_offset = 0;
    fw.etag = None;
    match verdict {
        Ok(h) => {
            fw.slot_mut(slot).version = Some(h.version.clone());
            fw.result = UpdateResult::Success.code();
            BootOutcome::Updated { version: h.version }
        }
        Err(reason) => {
            fw.active_slot = trial.previous;
            fw.result = UpdateResult::UpdateFailed.code();
            BootOutcome::RolledBack { reason }
        }
    }
}

/// Restarts the meter into its (new) firmware: replaces the process image
/// with `/proc/self/exe` and the same arguments. Returns only on failure.
pub fn reexec() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    tracing::info!("restarting the meter process");
    let mut command = std::process::Command::new("/proc/self/exe");
    command.args(args);
    // The modem's PTY stays open across the restart, as a UART would.
    if let Some((name, value)) = crate::modem::pty::exec_handover() {
        command.env(name, value);
    }
    command.exec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::Slot;

    fn nv_with_trial(dir: &FsPath, image: &[u8]) -> NvStore {
        let mut nv = NvStore::open(dir).unwrap();
        slots::write_whole(&slots::path(dir, Slot::B), image).unwrap();
        nv.update(|d| {
            d.firmware.slots[1].version = Some("2.0".into());
            d.firmware.state = FirmwareState::Updating.code();
            swap(d);
        })
        .unwrap();
        nv
    }

    #[test]
    fn a_good_image_runs_after_the_swap() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = nv_with_trial(dir.path(), &image::build("2.0", 0, b"body"));
        assert_eq!(
            run(dir.path(), &mut nv),
            BootOutcome::Updated {
                version: "2.0".into()
            }
        );
        let d = crate::nv::read(dir.path()).unwrap();
        assert_eq!(d.firmware.active_slot, Slot::B);
        assert_eq!(d.firmware_version, "2.0");
        assert_eq!(d.firmware.result, 1);
        assert_eq!(d.firmware.state, 0);
        assert_eq!(d.firmware.trial, None);
        assert_eq!(run(dir.path(), &mut nv), BootOutcome::Normal);
    }

    #[test]
    fn a_failing_self_test_rolls_back_with_result_8() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = nv_with_trial(dir.path(), &image::build("2.0", 0xBD, b"body"));
        assert!(matches!(
            run(dir.path(), &mut nv),
            BootOutcome::RolledBack { .. }
        ));
        let d = crate::nv::read(dir.path()).unwrap();
        assert_eq!(d.firmware.active_slot, Slot::A);
        assert_eq!(d.firmware_version, FACTORY_FIRMWARE_VERSION);
        assert_eq!((d.firmware.state, d.firmware.result), (0, 8));
    }

    #[test]
    fn a_cut_between_execute_and_swap_still_updates() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        slots::write_whole(
            &slots::path(dir.path(), Slot::B),
            &image::build("3.1", 0, b"x"),
        )
        .unwrap();
        nv.update(|d| d.firmware.state = FirmwareState::Updating.code())
            .unwrap();
        assert_eq!(
            run(dir.path(), &mut nv),
            BootOutcome::Updated {
                version: "3.1".into()
            }
        );
        assert_eq!(nv.data().firmware_version, "3.1");
    }
}
