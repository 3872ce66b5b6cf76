//! The rig lease record: who holds a bench and until when.
//!
//! A flock alone cannot serve a fleet: it holds no holder record, it does not
//! work across hosts on a shared folder, and a CI job that hangs keeps it for
//! ever. So the lock file holds a record (host, pid, CI job, expiry) that the
//! holder renews; a waiter reads it to say who holds the bench, and takes the
//! bench over when the record has expired or names a dead process on the
//! waiter's own host. [`crate::lock::RigLock`] does the file operations.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Deserialize;

/// How long a lease lives without renewal when the rig file does not say.
/// The holder renews at a third of it, so a job must stall for two thirds of
/// it before another may take the bench.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The environment variable that names the lock folder; it wins over the rig
/// file, so that a lab can point every runner at one shared folder.
pub const LOCK_DIR_ENV: &str = "METERBENCH_LOCK_DIR";

/// The `lease:` part of a rig file. Its presence also makes a rig that uses
/// no hardware (the virtual rig) take the lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseSpec {
    /// The lock folder; relative to the rig file. Shared by every host that
    /// can reach the bench (a network folder when several hosts can).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Lifetime of an unrenewed lease.
    #[serde(
        default = "default_ttl",
        deserialize_with = "crate::duration::deserialize"
    )]
    #[schemars(with = "crate::schema::DurationText")]
    pub ttl: Duration,
    /// How long a second job waits for the bench before it gives up
    /// (absent: the runner's default).
    #[serde(default, deserialize_with = "crate::duration::deserialize_option")]
    #[schemars(with = "Option<crate::schema::DurationText>")]
    pub wait: Option<Duration>,
}

fn default_ttl() -> Duration {
    DEFAULT_TTL
}

/// Where a rig's lease lives and how long it lasts unrenewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    pub dir: PathBuf,
    pub ttl: Duration,
}

impl LeaseOptions {
    pub fn new(dir: impl Into<PathBuf>, ttl: Duration) -> Self {
        LeaseOptions {
            dir: dir.into(),
            ttl,
        }
    }

    /// `$METERBENCH_LOCK_DIR`, else the rig file's `lease.dir` (relative to
    /// the rig file), else `<temp dir>/meterbench-locks`; the rig file's
    /// `lease.ttl`, else [`DEFAULT_TTL`].
    pub fn for_rig(rig: &crate::model::RigFile) -> Self {
        let spec = rig.lease.as_ref();
        let dir = std::env::var_os(LOCK_DIR_ENV)
            .map(PathBuf::from)
            .or_else(|| spec.and_then(|s| s.dir.as_ref()).map(|d| rig.dir().join(d)))
            .unwrap_or_else(fallback_dir);
        let ttl = spec.map(|s| s.ttl).unwrap_or(DEFAULT_TTL);
        LeaseOptions { dir, ttl }
    }
}

fn fallback_dir() -> PathBuf {
    std::env::temp_dir().join("meterbench-locks")
}

/// The default lock directory: `$METERBENCH_LOCK_DIR`, else
/// `<temp dir>/meterbench-locks`. All jobs sharing a bench must agree on it.
pub fn default_lock_dir() -> PathBuf {
    std::env::var_os(LOCK_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(fallback_dir)
}

/// What a lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub rig: String,
    pub host: String,
    pub pid: u32,
    /// The CI job that holds the bench, when the holder ran under CI.
    pub ci_job: Option<String>,
    /// Unique per acquisition: tells our own lease from a successor's.
    pub token: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a holder may be replaced without asking anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// The holder still counts.
    Live,
    /// Not renewed in time: the holder hangs, died, or lost its host.
    Expired,
    /// On this host, and its process no longer exists.
    HolderDead,
}

impl LeaseRecord {
    /// A record for this process, valid for `ttl` from `now`.
    pub fn for_this_process(rig: &str, ttl: Duration, now: DateTime<Utc>) -> Self {
        // Milliseconds, as the file holds them: the record reads back equal.
        let now = now.trunc_subsecs(3);
        LeaseRecord {
            rig: rig.to_string(),
            host: this_host(),
            pid: std::process::id(),
            ci_job: ci_job_id(|k| std::env::var(k).ok()),
            token: new_token(),
            acquired_at: now,
            expires_at: expiry(now, ttl),
        }
    }

    /// The record with its expiry pushed to `now + ttl`.
    pub fn renewed(&self, ttl: Duration, now: DateTime<Utc>) -> Self {
        LeaseRecord {
            expires_at: expiry(now.trunc_subsecs(3), ttl),
            ..self.clone()
        }
    }

    /// Whether a waiter on `host` may take the bench at `now`.
    /// `is_alive` answers for a pid on this host (see [`pid_is_alive`]).
    pub fn staleness(
        &self,
        now: DateTime<Utc>,
        host: &str,
        is_alive: impl Fn(u32) -> bool,
    ) -> Staleness {
        if self.expires_at <= now {
            Staleness::Expired
        } else if self.host == host && !is_alive(self.pid) {
            Staleness::HolderDead
        } else {
            Staleness::Live
        }
    }

    /// The file's text: `key: value` lines a person can read with `cat`.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "# meterbench rig lease: renewed by its holder until released\n\
             rig: {}\nhost: {}\npid: {}\n",
            self.rig, self.host, self.pid
        );
        if let Some(job) = &self.ci_job {
            out.push_str(&format!("ci_job: {job}\n"));
        }
        out.push_str(&format!(
            "token: {}\nacquired_at: {}\nexpires_at: {}\n",
            self.token,
            rfc3339(self.acquired_at),
            rfc3339(self.expires_at)
        ));
        out
    }

    /// Reads [`LeaseRecord::to_text`]; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, String> {
        let mut fields = std::collections::HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!(
                    "{}:{}:1: expected `key: value`, found `{line}`",
                    path.display(),
                    n + 1
                ));
            };
            fields.insert(key.trim(), (n + 1, value.trim().to_string()));
        }
        let get = |key: &str| {
            fields
                .get(key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("{}: no `{key}` line", path.display()))
        };
        let time = |key: &str| -> Result<DateTime<Utc>, String> {
            let value = get(key)?;
            DateTime::parse_from_rfc3339(&value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    let line = fields.get(key).map(|(n, _)| *n).unwrap_or(0);
                    format!("{}:{line}: `{key}: {value}`: {e}", path.display())
                })
        };
        let pid = get("pid")?;
        Ok(LeaseRecord {
            rig: get("rig")?,
            host: get("host")?,
            pid: pid
                .parse()
                .map_err(|_| format!("{}: `pid: {pid}` is not a pid", path.display()))?,
            ci_job: fields.get("ci_job").map(|(_, v)| v.clone()),
            token: get("token")?,
            acquired_at: time("acquired_at")?,
            expires_at: time("expires_at")?,
        })
    }
}

/// "host H pid P (CI job J) until T": what a waiting job prints.
impl fmt::Display for LeaseRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {} pid {}", self.host, self.pid)?;
        if let Some(job) = &self.ci_job {
            write!(f, " (CI job {job})")?;
        }
        write!(f, " until {}", rfc3339(self.expires_at))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The CI job this process runs in, from the variables each engine sets:
/// GitLab's `CI_JOB_ID`, GitHub Actions' `GITHUB_RUN_ID` and `GITHUB_JOB`,
/// Jenkins' `BUILD_TAG`. `var` reads a variable (the environment, or a test's map).
pub fn ci_job_id(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    if let Some(id) = set("CI_JOB_ID") {
        return Some(id);
    }
    if let Some(run) = set("GITHUB_RUN_ID") {
        return Some(match set("GITHUB_JOB") {
            Some(job) => format!("{run}/{job}"),
            None => run,
        });
    }
    set("BUILD_TAG")
}

/// This host's name, as the lease records it: pid liveness can only be
/// judged for holders on the same host.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// `kill(pid, 0)`: only ESRCH means the process is gone (EPERM means it
/// exists under another user).
pub fn pid_is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

fn new_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos:x}-{}",
        this_host(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LeaseRecord {
        LeaseRecord {
            rig: "bench-01".into(),
            host: "lab-7".into(),
            pid: 4242,
            ci_job: Some("918273".into()),
            token: "lab-7-4242-1".into(),
            acquired_at: "2025-03-01T10:00:00Z".parse().unwrap(),
            expires_at: "2025-03-01T10:01:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn record_text_is_exact_and_reads_back() {
        let r = record();
        assert_eq!(
            r.to_text(),
            "# meterbench rig lease: renewed by its holder until released\n\
             rig: bench-01\nhost: lab-7\npid: 4242\nci_job: 918273\n\
             token: lab-7-4242-1\nacquired_at: 2025-03-01T10:00:00.000Z\n\
             expires_at: 2025-03-01T10:01:00.000Z\n"
        );
        assert_eq!(LeaseRecord::parse(&r.to_text(), Path::new("x")), Ok(r));
    }

    #[test]
    fn holder_description_names_host_pid_job_and_expiry() {
        assert_eq!(
            record().to_string(),
            "host lab-7 pid 4242 (CI job 918273) until 2025-03-01T10:01:00.000Z"
        );
        let no_job = LeaseRecord {
            ci_job: None,
            ..record()
        };
        assert_eq!(
            no_job.to_string(),
            "host lab-7 pid 4242 until 2025-03-01T10:01:00.000Z"
        );
    }

    #[test]
    fn a_broken_record_is_named_with_file_and_line() {
        let text = record().to_text().replace(
            "expires_at: 2025-03-01T10:01:00.000Z",
            "expires_at: tomorrow",
        );
        let err = LeaseRecord::parse(&text, Path::new("/locks/bench-01.lock")).unwrap_err();
        assert!(
            err.starts_with("/locks/bench-01.lock:8: `expires_at: tomorrow`"),
            "{err}"
        );
        let err = LeaseRecord::parse("rig bench", Path::new("f.lock")).unwrap_err();
        assert!(
            err.starts_with("f.lock:1:1: expected `key: value`"),
            "{err}"
        );
    }

    #[test]
    fn staleness_is_expiry_anywhere_and_a_dead_pid_on_this_host_only() {
        let r = record();
        let before = "2025-03-01T10:00:30Z".parse().unwrap();
        let after = "2025-03-01T10:01:00Z".parse().unwrap();
        assert_eq!(r.staleness(before, "lab-7", |_| true), Staleness::Live);
        assert_eq!(r.staleness(after, "lab-7", |_| true), Staleness::Expired);
        assert_eq!(
            r.staleness(before, "lab-7", |_| false),
            Staleness::HolderDead
        );
        // A pid on another host says nothing about this one's processes.
        assert_eq!(r.staleness(before, "lab-8", |_| false), Staleness::Live);
    }

    #[test]
    fn ci_job_comes_from_gitlab_github_or_jenkins() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(ci_job_id(env(&[("CI_JOB_ID", "77")])), Some("77".into()));
        assert_eq!(
            ci_job_id(env(&[("GITHUB_RUN_ID", "5"), ("GITHUB_JOB", "bench")])),
            Some("5/bench".into())
        );
        assert_eq!(
            ci_job_id(env(&[("BUILD_TAG", "jenkins-meters-12")])),
            Some("jenkins-meters-12".into())
        );
        assert_eq!(ci_job_id(env(&[("CI_JOB_ID", " ")])), None);
        assert_eq!(ci_job_id(env(&[])), None);
    }

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not_a_holder() {
        assert!(pid_is_alive(std::process::id()));
        assert!(!pid_is_alive(0));
        assert!(!pid_is_alive(u32::MAX));
    }
}
