//! The wrappers around a driver: the power tracer records every call in
//! order with its outcome; the fault injector fails the chosen call, loses
//! its answer (a modem command then times out), or delays it, and leaves
//! every other call to the driver inside.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rig::wrap::{
    CallOutcome, Fault, FaultAction, FaultyModem, FaultyPower, PowerCall, PowerTracer,
};
use rig::{AtResponse, Dialect, FinalResult, Modem, Power, RigError, Transcript};

/// A switch whose every on/off is counted, and which fails when told to.
#[derive(Clone, Default)]
struct Switch {
    state: Arc<Mutex<(bool, u32)>>,
    fail_on: bool,
}

impl Switch {
    fn on_and_calls(&self) -> (bool, u32) {
        *self.state.lock().unwrap()
    }
}

impl Power for Switch {
    fn on(&mut self) -> Result<(), RigError> {
        let mut s = self.state.lock().unwrap();
        s.1 += 1;
        if self.fail_on {
            return Err(RigError::PowerCommand {
                command: "relay on".into(),
                outcome: "exited with 1".into(),
                stderr: "relay busy\nretry later".into(),
            });
        }
        s.0 = true;
        Ok(())
    }
    fn off(&mut self) -> Result<(), RigError> {
        let mut s = self.state.lock().unwrap();
        s.1 += 1;
        s.0 = false;
        Ok(())
    }
    fn is_on(&mut self) -> bool {
        self.state.lock().unwrap().0
    }
    fn describe(&self) -> String {
        "test switch".into()
    }
}

#[test]
fn the_tracer_records_each_call_in_order_with_its_outcome() {
    let switch = Switch::default();
    let (mut power, trace) = PowerTracer::new(Box::new(switch.clone()));
    power.on().unwrap();
    assert!(power.is_on());
    power.off().unwrap();
    let mark = trace.mark();
    let failing = Switch {
        fail_on: true,
        ..switch.clone()
    };
    let (mut power2, trace2) = PowerTracer::new(Box::new(failing));
    assert!(power2.on().is_err());
    assert!(!power2.is_on());

    let events = trace.events();
    let calls: Vec<_> = events.iter().map(|e| (e.call, e.outcome.clone())).collect();
    assert_eq!(
        calls,
        [
            (PowerCall::On, CallOutcome::Done),
            (PowerCall::IsOn, CallOutcome::Answered(true)),
            (PowerCall::Off, CallOutcome::Done),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(trace.since(mark).is_empty());
    assert_eq!(power.describe(), "test switch");

    let failed = trace2.events();
    assert!(
        matches!(&failed[0].outcome, CallOutcome::Failed(m) if m.contains("relay busy")),
        "{failed:?}"
    );
    // The log is one line per call, whatever the driver's message holds.
    let text = trace2.text_since(0);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().next().unwrap().contains(" on FAILED: "),
        "{text}"
    );
    assert!(
        text.lines().nth(1).unwrap().ends_with(" is_on -> false"),
        "{text}"
    );
}

#[test]
fn a_trace_keeps_a_bounded_tail_and_marks_stay_valid() {
    let (mut power, trace) = PowerTracer::new(Box::new(Switch::default()));
    for _ in 0..rig::wrap::tracer::TRACE_CAPACITY + 5 {
        power.is_on();
    }
    let mark = trace.mark();
    assert_eq!(mark, rig::wrap::tracer::TRACE_CAPACITY + 5);
    assert_eq!(trace.events().len(), rig::wrap::tracer::TRACE_CAPACITY);
    power.on().unwrap();
    let after = trace.since(mark);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].call, PowerCall::On);
}

#[test]
fn the_nth_power_call_fails_without_reaching_the_driver() {
    let switch = Switch::default();
    let mut power = FaultyPower::new(
        Box::new(switch.clone()),
        vec![Fault::new(2, FaultAction::Fail)],
    );
    power.on().unwrap();
    let e = power.off().unwrap_err();
    assert!(matches!(e, RigError::Driver { .. }), "{e:?}");
    assert!(e.to_string().contains("call 2 (off)"), "{e}");
    // The driver never saw the failed call: still on, one call counted.
    assert_eq!(switch.on_and_calls(), (true, 1));
    power.off().unwrap();
    assert_eq!(switch.on_and_calls(), (false, 2));
}

#[test]
fn a_power_answer_that_is_lost_is_an_error_although_the_supply_switched() {
    let switch = Switch::default();
    let mut power = FaultyPower::new(
        Box::new(switch.clone()),
        vec![Fault::new(1, FaultAction::DropResponse)],
    );
    assert!(power.on().is_err());
    assert_eq!(switch.on_and_calls(), (true, 1));
}

#[test]
fn a_delayed_power_call_is_passed_on_late() {
    let switch = Switch::default();
    let mut power = FaultyPower::new(
        Box::new(switch.clone()),
        vec![Fault::new(1, FaultAction::Delay(Duration::from_millis(60)))],
    );
    let t0 = Instant::now();
    power.on().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(60));
    assert_eq!(switch.on_and_calls(), (true, 1));
}

/// A modem that answers OK to everything and remembers what it was sent.
struct OkModem {
    dialect: Dialect,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Modem for OkModem {
    fn open(&mut self) -> Result<(), RigError> {
        Ok(())
    }
    fn close(&mut self) {}
    fn command(&mut self, line: &str, _: Duration) -> Result<AtResponse, RigError> {
        self.sent.lock().unwrap().push(line.to_string());
        Ok(AtResponse {
            command: line.to_string(),
            lines: Vec::new(),
            result: FinalResult::Ok,
        })
    }
    fn wait_for_line(&mut self, prefix: &str, _: Duration) -> Result<String, RigError> {
        Ok(prefix.to_string())
    }
    fn take_urcs(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn transcript(&self) -> Transcript {
        Transcript::new()
    }
    fn dialect(&self) -> &Dialect {
        &self.dialect
    }
}

fn modem(faults: Vec<Fault>) -> (FaultyModem, Arc<Mutex<Vec<String>>>) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let sent = Arc::new(Mutex::new(Vec::new()));
    let inner = OkModem {
        dialect: Dialect::find("3gpp-27007", &fixtures).unwrap(),
        sent: sent.clone(),
    };
    (FaultyModem::new(Box::new(inner), faults), sent)
}

#[test]
fn the_nth_modem_command_fails_and_the_others_are_answered() {
    let (mut m, sent) = modem(vec![Fault::new(2, FaultAction::Fail)]);
    let t = Duration::from_secs(1);
    assert!(m.command("AT", t).unwrap().is_ok());
    let e = m.command("AT+CGSN", t).unwrap_err();
    assert!(e.to_string().contains("call 2 (`AT+CGSN`)"), "{e}");
    assert!(m.command("AT+CCID", t).unwrap().is_ok());
    assert_eq!(*sent.lock().unwrap(), ["AT", "AT+CCID"]);
    assert_eq!(m.dialect().name, "3GPP TS 27.007 generic modem");
}

#[test]
fn a_dropped_response_makes_the_command_time_out_after_its_timeout() {
    let (mut m, sent) = modem(vec![Fault::new(1, FaultAction::DropResponse)]);
    let timeout = Duration::from_millis(80);
    let t0 = Instant::now();
    let e = m.command("AT+CFUN=1", timeout).unwrap_err();
    assert!(t0.elapsed() >= timeout, "{:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    match e {
        RigError::Timeout {
            command, waited, ..
        } => {
            assert_eq!(command, "AT+CFUN=1");
            assert_eq!(waited, timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The device did get the command: only its answer was lost.
    assert_eq!(*sent.lock().unwrap(), ["AT+CFUN=1"]);
}

#[test]
fn an_injected_error_shows_the_masked_line_never_the_key() {
    let (mut m, _) = modem(vec![
        Fault::new(1, FaultAction::Fail),
        Fault::new(2, FaultAction::DropResponse),
    ]);
    let line = "AT+PSK=\"5ec2e7\"";
    let shown = "AT+PSK=\"***\"";
    let t = Duration::from_millis(10);
    for _ in 0..2 {
        let e = m.command_shown(line, shown, t).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("5ec2e7"), "{text}");
        assert!(text.contains("***"), "{text}");
    }
}
