//! `ScpiSupply` over a serial line: a real PTY pair with the simulated
//! instrument answering on the master side.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use rig::model::{ScpiAddress, ScpiCommands, ScpiPowerSpec};
use rig::power::scpi_sim::{AnswerStyle, Instrument, Load};
use rig::power::{Amps, ScpiSupply, Supply, SupplyProblem, Volts};
use rig::{Power, RigError};

/// The instrument on a PTY's master side; lines end in `\n`.
struct SerialSupply {
    path: PathBuf,
    instrument: Arc<Mutex<Instrument>>,
    /// While set, lines are read but not answered.
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
    _slave: OwnedFd,
}

impl SerialSupply {
    fn start(instrument: Instrument) -> Self {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = nix::unistd::ttyname(&pty.slave).unwrap();
        let flags = fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).unwrap();
        fcntl(
            pty.master.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .unwrap();
        let mut master = File::from(pty.master);
        let instrument = Arc::new(Mutex::new(instrument));
        let (i, silent, stop) = (
            instrument.clone(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (quiet, halt) = (silent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(30);
            let (mut received, mut line) = (Vec::new(), Vec::new());
            while !halt.load(Ordering::Relaxed) && Instant::now() < end {
                let mut buf = [0u8; 256];
                match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        for &b in &buf[..n] {
                            if b != b'\n' {
                                line.push(b);
                                continue;
                            }
                            let text = String::from_utf8_lossy(&line).into_owned();
                            line.clear();
                            received.push(text.clone());
                            if quiet.load(Ordering::Relaxed) {
                                continue;
                            }
                            if let Some(answer) = i.lock().unwrap().execute(&text) {
                                let _ = master.write_all(format!("{answer}\r\n").as_bytes());
                            }
                        }
                    }
                    Err(e) if e.kind() != ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            received
        });
        SerialSupply {
            path,
            instrument,
            silent,
            stop,
            thread: Some(thread),
            _slave: pty.slave,
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for SerialSupply {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spec(path: PathBuf, timeout: Duration) -> ScpiPowerSpec {
    ScpiPowerSpec {
        address: ScpiAddress::Serial { path, baud: 9600 },
        channel: None,
        voltage: Volts::from_milli(5000),
        current_limit: Amps::from_milli(200),
        timeout,
        check_errors: true,
        commands: ScpiCommands::default(),
    }
}

#[test]
fn on_measure_and_off_over_a_serial_line() {
    let serial = SerialSupply::start(Instrument::new(
        "Keysight Technologies,E3631A,0,2.1-5.0-1.0",
        1,
        AnswerStyle::Keysight,
    ));
    serial.instrument.lock().unwrap().outputs[0].load = Load::Ohms(50.0);
    let mut psu = ScpiSupply::new(spec(serial.path.clone(), Duration::from_secs(2)));
    assert_eq!(psu.identify().unwrap().model, "E3631A");
    psu.on().unwrap();
    let r = psu.measure().unwrap();
    assert_eq!(
        (r.volts, r.amps),
        (5.0, 0.1),
        "CR LF line ends are read as one"
    );
    psu.off().unwrap();
    assert!(!serial.instrument.lock().unwrap().outputs[0].on);
    psu.disconnect();
    assert_eq!(
        serial.finish(),
        [
            "*CLS",
            "*IDN?",
            "VOLT 5",
            "SYST:ERR?",
            "CURR 0.2",
            "SYST:ERR?",
            "OUTP ON",
            "SYST:ERR?",
            "MEAS:VOLT?",
            "MEAS:CURR?",
            "OUTP OFF",
            "SYST:ERR?"
        ]
    );
}

#[test]
fn a_silent_serial_supply_fails_within_the_timeout_naming_the_port() {
    let serial = SerialSupply::start(Instrument::new("A,B,0,1", 1, AnswerStyle::Keysight));
    serial.silent.store(true, Ordering::Relaxed);
    let timeout = Duration::from_millis(200);
    let mut psu = ScpiSupply::new(spec(serial.path.clone(), timeout));
    let started = Instant::now();
    let err = psu.identify().unwrap_err();
    assert!(started.elapsed() < timeout * 5);
    let RigError::Supply(e) = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(&e.problem, SupplyProblem::NoAnswer { command, .. } if command == "*IDN?"));
    assert!(
        err.to_string().starts_with(&format!(
            "scpi supply {} at 9600 baud: no answer to `*IDN?` within 200ms",
            serial.path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_missing_serial_port_is_a_connect_error() {
    let mut psu = ScpiSupply::new(spec(
        "/dev/nonexistent-psu".into(),
        Duration::from_millis(200),
    ));
    let err = psu.on().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("scpi supply /dev/nonexistent-psu at 9600 baud: cannot connect"),
        "{err}"
    );
}
