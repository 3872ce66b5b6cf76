//! The rig lease: exclusive while held, renewed, released on drop, and taken
//! over from a killed or expired holder without anyone clearing it by hand.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rig::lease::{this_host, LeaseOptions, LeaseRecord, LeaseSpec, LOCK_DIR_ENV};
use rig::lock::RigLock;
use rig::{RigError, RigFile};

fn options(dir: &Path, ttl: Duration) -> LeaseOptions {
    LeaseOptions::new(dir, ttl)
}

fn read_record(path: &Path) -> LeaseRecord {
    LeaseRecord::parse(&std::fs::read_to_string(path).unwrap(), path).unwrap()
}

#[test]
fn second_lock_fails_while_the_first_is_held_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = RigLock::acquire(dir.path(), "bench-01").unwrap();
    assert_eq!(first.path(), dir.path().join("bench-01.lock"));
    let on_disk = read_record(first.path());
    assert_eq!(on_disk.pid, std::process::id());
    assert_eq!(on_disk.host, this_host());
    assert_eq!(&on_disk, first.record());

    let err = RigLock::acquire(dir.path(), "bench-01").unwrap_err();
    let RigError::Locked { rig, holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(rig, "bench-01");
    let holder = holder.as_deref().unwrap();
    assert!(
        holder.starts_with(&format!("host {} pid {}", this_host(), std::process::id())),
        "{holder}"
    );
    assert!(err.to_string().contains("in use by another job"), "{err}");

    // Another rig is independent.
    let _other = RigLock::acquire(dir.path(), "bench-02").unwrap();

    drop(first);
    assert!(!dir.path().join("bench-01.lock").exists());
    RigLock::acquire(dir.path(), "bench-01").unwrap();
}

#[test]
fn two_holders_serialize() {
    let dir = tempfile::tempdir().unwrap();
    let spans: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    std::thread::scope(|s| {
        for _ in 0..3 {
            let spans = spans.clone();
            let dir = dir.path();
            s.spawn(move || {
                let lock = RigLock::acquire_with(
                    &options(dir, Duration::from_secs(30)),
                    "bench-01",
                    Duration::from_secs(10),
                    |_| {},
                )
                .unwrap();
                let start = Instant::now();
                std::thread::sleep(Duration::from_millis(150));
                let end = Instant::now();
                drop(lock);
                spans.lock().unwrap().push((start, end));
            });
        }
    });
    let mut spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 3);
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "holders overlapped: {spans:?}");
    }
}

#[test]
fn a_waiter_is_told_the_holder_once_and_gets_the_rig_when_released() {
    let dir = tempfile::tempdir().unwrap();
    let first = RigLock::acquire(dir.path(), "virtual").unwrap();
    let holder_text = first.record().to_string();
    let started = Instant::now();
    let mut told = Vec::new();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            drop(first);
        });
        RigLock::acquire_with(
            &options(dir.path(), Duration::from_secs(60)),
            "virtual",
            Duration::from_secs(5),
            |who| told.push(who.to_string()),
        )
        .unwrap();
    });
    assert!(started.elapsed() >= Duration::from_millis(650));
    assert_eq!(told, vec![holder_text]);
}

#[test]
fn acquire_within_gives_up_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = RigLock::acquire(dir.path(), "virtual").unwrap();
    let started = Instant::now();
    let err =
        RigLock::acquire_within(dir.path(), "virtual", Duration::from_millis(300)).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    let RigError::Locked { holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(holder.as_deref(), Some(first.record().to_string().as_str()));
}

/// Writes a lease as another host's job would have left it.
fn foreign_lease(dir: &Path, rig: &str, expires_in: chrono::Duration) -> PathBuf {
    let now = chrono::Utc::now();
    let record = LeaseRecord {
        rig: rig.into(),
        host: "other-host".into(),
        pid: 4242,
        ci_job: Some("77".into()),
        token: "other-host-4242-0".into(),
        acquired_at: now - chrono::Duration::minutes(10),
        expires_at: now + expires_in,
    };
    let path = dir.join(format!("{rig}.lock"));
    std::fs::write(&path, record.to_text()).unwrap();
    path
}

#[test]
fn an_expired_lease_from_another_host_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = foreign_lease(dir.path(), "bench-01", -chrono::Duration::seconds(5));
    let started = Instant::now();
    let lock = RigLock::acquire(dir.path(), "bench-01").unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let now = read_record(&path);
    assert_eq!(now.host, this_host());
    assert_eq!(now.pid, std::process::id());
    assert_eq!(now.token, lock.record().token);
    // Nothing is left beside it: the stale file and temp files are gone.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("bench-01.lock")]);
}

#[test]
fn a_live_lease_from_another_host_makes_the_waiter_time_out_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    foreign_lease(dir.path(), "bench-01", chrono::Duration::minutes(5));
    let mut told = Vec::new();
    let err = RigLock::acquire_with(
        &options(dir.path(), Duration::from_secs(60)),
        "bench-01",
        Duration::from_millis(500),
        |who| told.push(who.to_string()),
    )
    .unwrap_err();
    let RigError::Locked { holder, .. } = &err else {
        panic!("{err:?}")
    };
    let holder = holder.as_deref().unwrap();
    // The pid of another host says nothing here: only expiry frees it.
    assert!(
        holder.starts_with("host other-host pid 4242 (CI job 77) until "),
        "{holder}"
    );
    assert_eq!(told, vec![holder.to_string()]);
    assert!(err.to_string().contains(holder), "{err}");
}

#[test]
fn the_holder_renews_its_lease_so_it_never_expires_while_held() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(600);
    let lock = RigLock::acquire_with(
        &options(dir.path(), ttl),
        "bench-01",
        Duration::ZERO,
        |_| {},
    )
    .unwrap();
    let first_expiry = lock.record().expires_at;
    // Past the first expiry: had it not been renewed, anyone could take it.
    std::thread::sleep(Duration::from_millis(1500));
    let on_disk = read_record(lock.path());
    assert_eq!(on_disk.token, lock.record().token);
    assert!(on_disk.expires_at > first_expiry, "{on_disk:?}");
    assert!(on_disk.expires_at > chrono::Utc::now());
    assert!(matches!(
        RigLock::acquire_with(
            &options(dir.path(), ttl),
            "bench-01",
            Duration::ZERO,
            |_| {}
        ),
        Err(RigError::Locked { .. })
    ));
}

#[test]
fn a_holder_that_was_taken_over_leaves_its_successors_lease_alone() {
    let dir = tempfile::tempdir().unwrap();
    let stalled = RigLock::acquire(dir.path(), "bench-01").unwrap();
    // Its lease expires (as if it had stalled) and another host takes the bench.
    let path = foreign_lease(dir.path(), "bench-01", chrono::Duration::minutes(5));
    drop(stalled);
    assert_eq!(read_record(&path).host, "other-host");
}

#[test]
fn rig_names_that_escape_the_lock_dir_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../x", "a/b", "", ".hidden"] {
        assert!(
            matches!(
                RigLock::acquire(dir.path(), bad),
                Err(RigError::Invalid { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_rig_file_names_the_lease_folder_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.yaml");
    let rig = RigFile::parse(
        "name: bench-01\ndevice: { endpoint: m1, lifetime: 30s }\nlease: { dir: locks, ttl: 2m, wait: 20m }\n",
        &file,
    )
    .unwrap();
    assert_eq!(
        rig.lease,
        Some(LeaseSpec {
            dir: Some("locks".into()),
            ttl: Duration::from_secs(120),
            wait: Some(Duration::from_secs(1200)),
        })
    );
    let opts = LeaseOptions::for_rig(&rig);
    assert_eq!(opts.ttl, Duration::from_secs(120));
    match std::env::var_os(LOCK_DIR_ENV) {
        // The environment wins, so a lab can point all runners at one folder.
        Some(env) => assert_eq!(opts.dir, PathBuf::from(env)),
        None => assert_eq!(opts.dir, dir.path().join("locks")),
    }

    let err = RigFile::parse(
        "name: bench-01\ndevice: { endpoint: m1, lifetime: 30s }\nlease: { ttl: soon }\n",
        &file,
    )
    .unwrap_err();
    assert!(err.to_string().contains("bench.yaml:3"), "{err}");
}

/// The holder process of the next test: takes the lease, says so on stdout,
/// then waits to be killed (ends by itself after 60 s).
#[test]
#[ignore = "helper process started by a_killed_holder_is_taken_over_at_once"]
fn lease_holder_process() {
    let Some(dir) = std::env::var_os("METERBENCH_TEST_LEASE_DIR") else {
        return;
    };
    let _lock = RigLock::acquire_with(
        &options(Path::new(&dir), Duration::from_secs(3600)),
        "bench-01",
        Duration::ZERO,
        |_| {},
    )
    .unwrap();
    println!("LEASE-HELD");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_holder_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // libtest names a test by its module path without the binary's name.
    let holder = concat!(module_path!(), "::lease_holder_process")
        .split_once("::")
        .unwrap()
        .1;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            holder,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("METERBENCH_TEST_LEASE_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let held = lines.any(|l| l.map(|l| l.contains("LEASE-HELD")).unwrap_or(false));
    assert!(held, "the holder process did not take the lease");

    let path = dir.path().join("bench-01.lock");
    assert_eq!(read_record(&path).pid, child.id());
    // Alive, with an hour to go: it holds the bench.
    assert!(matches!(
        RigLock::acquire(dir.path(), "bench-01"),
        Err(RigError::Locked { .. })
    ));

    // SIGKILL: no Drop runs, the file stays with a live-looking expiry.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(path.exists());
    let started = Instant::now();
    let lock = RigLock::acquire(dir.path(), "bench-01").unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(read_record(&path).pid, std::process::id());
    drop(lock);
}
