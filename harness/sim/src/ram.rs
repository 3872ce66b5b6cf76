//! What a debugger would read from the meter's RAM while it runs: the live
//! energy register, which NV holds only as of the last commit. The meter
//! publishes it to a small file each second; the file names the process, so
//! once the meter is powered off (the process gone) RAM reads as absent, as
//! SWD reads nothing from an unpowered MCU.

use std::fs;
use std::path::Path as FsPath;

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Name of the RAM snapshot inside the state directory.
pub const RAM_FILE_NAME: &str = "ram.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RamState {
    /// The meter process that wrote it.
    pub pid: u32,
    pub boot_count: u64,
    /// The energy register as counted now, Wh.
    pub energy_live_wh: u64,
}

/// Publishes the snapshot (written whole, then renamed: a reader never sees half of it).
pub fn publish(state_dir: &FsPath, ram: &RamState) -> Result<(), SimError> {
    let tmp = state_dir.join(format!(".{RAM_FILE_NAME}.tmp"));
    let path = state_dir.join(RAM_FILE_NAME);
    let bytes = serde_json::to_vec(ram).expect("RAM state always serializes");
    fs::write(&tmp, bytes).map_err(|e| SimError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| SimError::io(&path, e))
}

/// The snapshot, if the meter that wrote it still runs.
pub fn read_live(state_dir: &FsPath) -> Option<RamState> {
    let bytes = fs::read(state_dir.join(RAM_FILE_NAME)).ok()?;
    let ram: RamState = serde_json::from_slice(&bytes).ok()?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(ram.pid).ok()?);
    let alive = nix::sys::signal::kill(pid, None).is_ok() && !is_zombie(ram.pid);
    alive.then_some(ram)
}

/// A killed child not yet reaped still answers kill(0); /proc says it is dead.
fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_reads_live_and_a_dead_pid_reads_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_live(dir.path()), None);
        let ram = RamState {
            pid: std::process::id(),
            boot_count: 2,
            energy_live_wh: 42,
        };
        publish(dir.path(), &ram).unwrap();
        assert_eq!(read_live(dir.path()), Some(ram));
        let dead = RamState {
            pid: i32::MAX as u32,
            boot_count: 2,
            energy_live_wh: 42,
        };
        publish(dir.path(), &dead).unwrap();
        assert_eq!(read_live(dir.path()), None);
    }
}
