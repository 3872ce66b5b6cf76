//! One lease per bench, however many devices it has. A run takes all of a
//! rig's devices (each its own session, opened when its first case starts),
//! so the rig's lease (`<lock dir>/<rig>.lock`, [`rig::RigLock`]) is taken
//! by the first of them and shared by the rest, and released when the last
//! closes. Per-device leases would let two jobs each hold part of a bench
//! and wait on the other's part.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rig::lease::LeaseOptions;
use rig::{RigError, RigLock};

/// The leases this process holds, by their file: a second session of the
/// same rig shares the first's instead of waiting on its own process.
/// Each behind its own mutex, held while it is acquired: two devices of one
/// rig opening at once must not both wait for the file (the second would
/// wait on the first until its wait ran out), while another rig's lease is
/// taken meanwhile.
type Held = HashMap<PathBuf, Arc<Mutex<Weak<RigLock>>>>;
static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// Takes `rig`'s lease, or shares the one a session of the same rig in
/// this process already holds. `on_wait` as for [`RigLock::acquire_with`].
pub fn acquire_shared(
    options: &LeaseOptions,
    rig: &str,
    timeout: Duration,
    on_wait: impl FnMut(&str),
) -> Result<Arc<RigLock>, RigError> {
    let key = options.dir.join(format!("{rig}.lock"));
    let slot = {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.get_or_insert_with(HashMap::new)
            .entry(key)
            .or_default()
            .clone()
    };
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lock) = slot.upgrade() {
        return Ok(lock);
    }
    let lock = Arc::new(RigLock::acquire_with(options, rig, timeout, on_wait)?);
    *slot = Arc::downgrade(&lock);
    Ok(lock)
}
