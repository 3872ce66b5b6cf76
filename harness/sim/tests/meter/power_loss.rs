//! Power loss against the real meter process: a write torn by a kill in the
//! middle of an NV record (fault injection), and kills at random moments
//! while the energy register is being committed. The debug port (reading the
//! journal the way SWD reads flash) checks that nothing committed is lost.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rig::{Debug as _, Power as _};
use sim::nv::journal::{self, Tail, TEAR_ENV};
use sim::nv::SECTOR_NAMES;
use sim::{VirtualDebug, VirtualPower};

use crate::bench::{spec, Port};

fn committed(dir: &std::path::Path) -> u64 {
    VirtualDebug::new(dir).read_state().unwrap()["energy.committed_wh"]
        .parse()
        .unwrap()
}

#[test]
fn a_kill_in_the_middle_of_an_nv_record_leaves_the_previous_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), 21);
    // Record 1 is the boot count, record 2 the first energy commit (5 s in):
    // the meter kills itself after 40 bytes of record 2.
    let mut child = Command::new(&s.program)
        .args(s.command_args())
        .env(TEAR_ENV, "2:40")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the meter never tore its write");
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");

    // On "flash": one whole record, then 40 bytes of the next.
    let scans = journal::scan_dir(dir.path()).unwrap();
    assert_eq!(scans[0].records, 1);
    assert_eq!(scans[0].tail, Tail::Torn { bytes: 40 });
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["boot_count"], "1");
    assert_eq!(
        state["energy.committed_wh"], "0",
        "the torn commit is not there"
    );
    assert!(
        !state.contains_key("energy.live_wh"),
        "RAM is gone with the power"
    );

    // Power returns: the meter boots on the last whole record and writes on.
    let mut power = VirtualPower::new(s);
    power.on().unwrap();
    let mut port = Port::open(&power.spec().pty_path());
    port.wait_for("+SYSSTART");
    assert_eq!(port.command("AT"), vec!["OK"]);
    let state = VirtualDebug::new(dir.path()).read_state().unwrap();
    assert_eq!(state["boot_count"], "2");
    let scans = journal::scan_dir(dir.path()).unwrap();
    assert_eq!(scans[0].tail, Tail::Clean, "torn tail cut at boot");
    assert_eq!(scans[0].records, 2);
    power.off().unwrap();
}

#[test]
fn random_kills_never_lose_a_committed_energy_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut power = VirtualPower::new(spec(dir.path(), 22));
    // A fixed sequence of "random" moments (ms after power-on), spread over commits.
    let moments = [5_200u64, 5_010, 7_300, 10_050, 5_500];
    let mut last = 0;
    for (i, ms) in moments.iter().enumerate() {
        power.on().unwrap();
        let on_at = Instant::now();
        let mut live_seen = false;
        while on_at.elapsed() < Duration::from_millis(*ms) {
            let state = VirtualDebug::new(dir.path()).read_state().unwrap();
            let c: u64 = state["energy.committed_wh"].parse().unwrap();
            assert!(c >= last, "round {i}: committed {c} < {last} before");
            if let Some(live) = state.get("energy.live_wh") {
                let live: u64 = live.parse().unwrap();
                assert!(live >= c, "live {live} below committed {c}");
                live_seen = true;
            }
            last = c;
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            live_seen,
            "round {i}: the live register was readable while on"
        );
        power.off().unwrap();
        let after = committed(dir.path());
        assert!(
            after >= last,
            "round {i}: committed {after} after the cut < {last} before"
        );
        last = after;
    }
    assert!(last >= 5, "energy was committed across the rounds: {last}");
    assert!(
        std::fs::metadata(dir.path().join(SECTOR_NAMES[0])).is_ok()
            || std::fs::metadata(dir.path().join(SECTOR_NAMES[1])).is_ok()
    );
}
