//! The rig lock: a lease per bench that survives dying CI jobs.
//!
//! `<lock dir>/<rig>.lock` holds a [`LeaseRecord`] (host, pid, CI job,
//! expiry). It is created whole and atomically (written to a temp file, then
//! hard-linked into place, which fails if the lease exists, also on NFS), so
//! two hosts sharing the folder never both win. While held, a thread renews
//! the expiry every third of the TTL; dropping the [`RigLock`] (every way a
//! run ends, the Safe-end paths included) releases it. A waiter takes the
//! bench over when the lease has expired (the holder hangs or its host died)
//! or names a process on the waiter's host that no longer exists (a killed
//! job), so no lease is ever left for a person to clear. Expiry compares wall
//! clocks: hosts sharing a lock folder need synchronised clocks (NTP).
//!
//! CI engines' own locks (GitLab resource groups, Jenkins lockable resources)
//! sit on top; this one also protects a desk bench from a CI job.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use tracing::{error, info, warn};

use crate::error::RigError;
use crate::lease::{pid_is_alive, this_host, LeaseOptions, LeaseRecord, Staleness, DEFAULT_TTL};

pub use crate::lease::default_lock_dir;

/// How often a waiter looks at the lease again.
const POLL: Duration = Duration::from_millis(200);

/// A held rig lease; released on drop.
pub struct RigLock {
    path: PathBuf,
    rig: String,
    record: LeaseRecord,
    renewer: Option<Renewer>,
}

struct Renewer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for RigLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RigLock")
            .field("rig", &self.rig)
            .field("path", &self.path)
            .field("holder", &self.record.to_string())
            .finish()
    }
}

/// Who holds the bench, as far as the lock file tells.
enum Held {
    By(LeaseRecord),
    /// The file exists but does not read as a lease (being written by a
    /// tool that cannot hard-link, or damaged): respected until it is a TTL old.
    Unreadable(String),
}

impl Held {
    fn describe(&self) -> String {
        match self {
            Held::By(r) => r.to_string(),
            Held::Unreadable(why) => format!("an unreadable lease ({why})"),
        }
    }
}

impl RigLock {
    /// Takes the lease (default TTL) or fails at once with [`RigError::Locked`].
    pub fn acquire(lock_dir: &Path, rig: &str) -> Result<RigLock, RigError> {
        Self::acquire_with(
            &LeaseOptions::new(lock_dir, DEFAULT_TTL),
            rig,
            Duration::ZERO,
            |_| {},
        )
    }

    /// Takes the lease (default TTL), waiting up to `timeout` for its holder.
    pub fn acquire_within(
        lock_dir: &Path,
        rig: &str,
        timeout: Duration,
    ) -> Result<RigLock, RigError> {
        Self::acquire_with(
            &LeaseOptions::new(lock_dir, DEFAULT_TTL),
            rig,
            timeout,
            |holder| warn!(rig, %holder, "rig is held; waiting"),
        )
    }

    /// Takes the lease, waiting up to `timeout`. `on_wait` is told each
    /// holder found while waiting (once per holder), so the caller can say
    /// who holds the bench ("bench-01 is held by host H pid P ... until T").
    /// On timeout the error names the holder.
    pub fn acquire_with(
        options: &LeaseOptions,
        rig: &str,
        timeout: Duration,
        mut on_wait: impl FnMut(&str),
    ) -> Result<RigLock, RigError> {
        if !crate::model::is_valid_rig_name(rig) {
            return Err(RigError::Invalid {
                file: options.dir.clone(),
                field: "rig name".into(),
                message: format!("`{rig}` cannot name a lock file"),
            });
        }
        std::fs::create_dir_all(&options.dir).map_err(io(&options.dir))?;
        let path = options.dir.join(format!("{rig}.lock"));
        let deadline = Instant::now() + timeout;
        let mut told: Option<String> = None;
        loop {
            let held = match try_once(options, rig, &path)? {
                Ok(lock) => return Ok(lock),
                Err(held) => held,
            };
            let who = held.describe();
            let now = Instant::now();
            if now >= deadline {
                return Err(RigError::Locked {
                    rig: rig.into(),
                    path,
                    holder: Some(who),
                });
            }
            let key = match &held {
                Held::By(r) => r.token.clone(),
                Held::Unreadable(w) => w.clone(),
            };
            if told.as_deref() != Some(key.as_str()) {
                on_wait(&who);
                told = Some(key);
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rig(&self) -> &str {
        &self.rig
    }

    /// What this holder wrote into the lock file (its expiry as first written).
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RigError {
    let path = path.to_path_buf();
    move |source| RigError::Io { path, source }
}

/// One attempt: the lease, or who holds it. A stale holder is replaced here.
fn try_once(
    options: &LeaseOptions,
    rig: &str,
    path: &Path,
) -> Result<Result<RigLock, Held>, RigError> {
    // A few rounds: the holder may release, or another waiter take over,
    // between our create and our read.
    for _ in 0..4 {
        let record = LeaseRecord::for_this_process(rig, options.ttl, Utc::now());
        if create_whole(path, &record)? {
            info!(rig, path = %path.display(), holder = %record, "rig lease taken");
            let renewer = start_renewer(path.to_path_buf(), record.clone(), options.ttl);
            return Ok(Ok(RigLock {
                path: path.to_path_buf(),
                rig: rig.into(),
                record,
                renewer: Some(renewer),
            }));
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io(path)(e)),
        };
        let stale = match LeaseRecord::parse(&text, path) {
            Ok(holder) => match holder.staleness(Utc::now(), &this_host(), pid_is_alive) {
                Staleness::Live => return Ok(Err(Held::By(holder))),
                reason => format!("{holder}: {reason:?}"),
            },
            Err(why) => {
                let age = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default();
                if age < options.ttl {
                    return Ok(Err(Held::Unreadable(why)));
                }
                format!("unreadable for {age:?}: {why}")
            }
        };
        take_over(path, &text, &record.token, &stale);
    }
    Ok(Err(Held::Unreadable(
        "it changed hands while being read; retrying".into(),
    )))
}

/// Creates the lease file with its whole content, only if none exists.
/// False when another lease is there.
fn create_whole(path: &Path, record: &LeaseRecord) -> Result<bool, RigError> {
    let tmp = sibling(path, &record.token, "new");
    write_synced(&tmp, record.to_text().as_bytes()).map_err(io(&tmp))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        // A folder that cannot hard-link (some SMB shares): O_EXCL create;
        // a reader may briefly see it empty, which it respects as held.
        Err(_) => match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(record.to_text().as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io(path))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(path)(e)),
        },
    }
}

/// Removes a stale lease, unless it changed since it was judged stale: the
/// file is renamed aside first (atomic), then checked, and put back if what
/// was moved is a successor's fresh lease.
fn take_over(path: &Path, judged: &str, token: &str, reason: &str) {
    let aside = sibling(path, token, "stale");
    if std::fs::rename(path, &aside).is_err() {
        return; // gone already: released, or another waiter took it
    }
    match std::fs::read_to_string(&aside) {
        Ok(moved) if moved == judged => {
            warn!(path = %path.display(), reason, "taking over a stale rig lease");
        }
        _ => {
            let _ = std::fs::hard_link(&aside, path);
        }
    }
    let _ = std::fs::remove_file(&aside);
}

/// `.bench-01.lock.<token>.<what>`: hidden, unique per acquisition.
fn sibling(path: &Path, token: &str, what: &str) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("rig");
    path.with_file_name(format!(".{name}.{token}.{what}"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Whether the lease file still carries `token`.
fn still_ours(path: &Path, token: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let now = LeaseRecord::parse(&text, path)?;
    if now.token == token {
        Ok(())
    } else {
        Err(format!("now held by {now}"))
    }
}

fn start_renewer(path: PathBuf, record: LeaseRecord, ttl: Duration) -> Renewer {
    let (stop, stopped) = mpsc::channel::<()>();
    let every = (ttl / 3).max(Duration::from_millis(10));
    let thread = std::thread::spawn(move || loop {
        match stopped.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if let Err(why) = still_ours(&path, &record.token) {
            error!(rig = %record.rig, path = %path.display(), %why, "rig lease lost; no longer renewed");
            return;
        }
        let renewed = record.renewed(ttl, Utc::now());
        let tmp = sibling(&path, &record.token, "renew");
        let done = write_synced(&tmp, renewed.to_text().as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            warn!(rig = %record.rig, path = %path.display(), error = %e, "rig lease renewal failed; retrying");
        }
    });
    Renewer { stop, thread }
}

impl Drop for RigLock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            drop(r.stop);
            let _ = r.thread.join();
        }
        // Only our own lease is removed: a successor's (we were taken over
        // after stalling past the TTL) stays.
        match still_ours(&self.path, &self.record.token) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.path);
                info!(rig = %self.rig, "rig lease released");
            }
            Err(why) => {
                warn!(rig = %self.rig, path = %self.path.display(), %why, "rig lease was no longer ours at release");
            }
        }
    }
}
