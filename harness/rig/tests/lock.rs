//! The rig lock: exclusive while held, released on drop.

use std::time::{Duration, Instant};

use rig::lock::RigLock;
use rig::RigError;

#[test]
fn second_lock_fails_while_the_first_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let first = RigLock::acquire(dir.path(), "bench-01").unwrap();
    assert_eq!(first.path(), dir.path().join("bench-01.lock"));
    let err = RigLock::acquire(dir.path(), "bench-01").unwrap_err();
    let RigError::Locked { rig, holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(rig, "bench-01");
    let holder = holder.as_deref().unwrap();
    assert!(
        holder.contains(&format!("pid {}", std::process::id())),
        "{holder}"
    );
    assert!(err.to_string().contains("in use by another job"), "{err}");

    // Another rig is independent.
    let _other = RigLock::acquire(dir.path(), "bench-02").unwrap();

    drop(first);
    RigLock::acquire(dir.path(), "bench-01").unwrap();
}

#[test]
fn acquire_within_waits_for_release() {
    let dir = tempfile::tempdir().unwrap();
    let first = RigLock::acquire(dir.path(), "virtual").unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        RigLock::acquire_within(dir.path(), "virtual", Duration::from_secs(5)).unwrap();
    });
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn acquire_within_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RigLock::acquire(dir.path(), "virtual").unwrap();
    let err =
        RigLock::acquire_within(dir.path(), "virtual", Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, RigError::Locked { .. }), "{err:?}");
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
