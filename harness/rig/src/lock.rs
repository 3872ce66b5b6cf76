//! The rig lock: two jobs never share a bench. An exclusive `flock(2)` on
//! `<lock dir>/<rig name>.lock`, released when the [`RigLock`] is dropped
//! (and by the kernel if the process dies, so a crashed job never leaves a
//! stale lock). CI engines' own locks (GitLab resource groups, Jenkins
//! lockable resources) sit on top; this one also protects a desk bench.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tracing::info;

use crate::error::RigError;

/// A held rig lock.
pub struct RigLock {
    _lock: Flock<File>,
    path: PathBuf,
    rig: String,
}

impl std::fmt::Debug for RigLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RigLock")
            .field("rig", &self.rig)
            .field("path", &self.path)
            .finish()
    }
}

/// The default lock directory: `$METERBENCH_LOCK_DIR`, else
/// `<temp dir>/meterbench-locks`. All jobs on one host must agree on it.
pub fn default_lock_dir() -> PathBuf {
    std::env::var_os("METERBENCH_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("meterbench-locks"))
}

impl RigLock {
    /// Takes the lock or fails at once with [`RigError::Locked`].
    pub fn acquire(lock_dir: &Path, rig: &str) -> Result<RigLock, RigError> {
        Self::try_once(lock_dir, rig)
    }

    /// Takes the lock, waiting up to `timeout` for another job to release it.
    pub fn acquire_within(
        lock_dir: &Path,
        rig: &str,
        timeout: Duration,
    ) -> Result<RigLock, RigError> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::try_once(lock_dir, rig) {
                Err(RigError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rig(&self) -> &str {
        &self.rig
    }

    fn try_once(lock_dir: &Path, rig: &str) -> Result<RigLock, RigError> {
        if !crate::model::is_valid_rig_name(rig) {
            return Err(RigError::Invalid {
                file: lock_dir.to_path_buf(),
                field: "rig name".into(),
                message: format!("`{rig}` cannot name a lock file"),
            });
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RigError::Io { path, source }
        };
        std::fs::create_dir_all(lock_dir).map_err(io(lock_dir))?;
        let path = lock_dir.join(format!("{rig}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(RigError::Locked {
                    rig: rig.into(),
                    path,
                    holder: (!holder.is_empty()).then(|| holder.to_owned()),
                });
            }
            Err((_, errno)) => {
                return Err(RigError::Io {
                    path,
                    source: std::io::Error::from(errno),
                })
            }
        };
        // Say who holds it, for the next job's error message.
        let who = format!(
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| lock.write_all(who.as_bytes()));
        info!(rig, path = %path.display(), "rig lock taken");
        Ok(RigLock {
            _lock: lock,
            path,
            rig: rig.into(),
        })
    }
}

impl Drop for RigLock {
    fn drop(&mut self) {
        // Dropping the Flock unlocks; the file stays (removing it would race
        // with a job that opened it and is about to lock it).
        info!(rig = %self.rig, "rig lock released");
    }
}
