//! Faults injected between the harness and a driver, to show that the
//! harness turns a bench that misbehaves into a bench *error* (never a pass
//! or a device failure) and still leaves the bench safe. The driver inside
//! is untouched: the same wrapper serves the virtual rig and a real one.

use std::time::{Duration, Instant};

use crate::at::AtResponse;
use crate::dialect::Dialect;
use crate::error::RigError;
use crate::traits::{Modem, Power};
use crate::Transcript;

/// What happens to the call a [`Fault`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The call is not passed on: it fails at once, as a dead driver would.
    Fail,
    /// The call reaches the driver but its answer is lost: a modem command
    /// times out after its own timeout; a power switch reports an error
    /// although the supply did switch (a relay board that stops answering).
    DropResponse,
    /// The call is passed on after this delay (a slow instrument).
    Delay(Duration),
}

/// One fault: the `nth` counted call (1-based) gets `action`. A power
/// switch counts `on` and `off`; a modem counts commands sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub nth: u32,
    pub action: FaultAction,
}

impl Fault {
    pub fn new(nth: u32, action: FaultAction) -> Fault {
        Fault { nth, action }
    }
}

/// Which faults each wrapped driver gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub power: Vec<Fault>,
    pub modem: Vec<Fault>,
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.power.is_empty() && self.modem.is_empty()
    }
}

/// Counts calls and says which fault, if any, the current one gets.
#[derive(Debug)]
struct Schedule {
    faults: Vec<Fault>,
    calls: u32,
}

impl Schedule {
    fn new(faults: Vec<Fault>) -> Schedule {
        Schedule { faults, calls: 0 }
    }

    /// This call's number and its fault (the first listed for it).
    fn next(&mut self) -> (u32, Option<FaultAction>) {
        self.calls += 1;
        let n = self.calls;
        (n, self.faults.iter().find(|f| f.nth == n).map(|f| f.action))
    }
}

fn injected(driver: &str, call: &str, n: u32, what: &str) -> RigError {
    RigError::Driver {
        driver: format!("{driver} (fault injector)"),
        message: format!("call {n} ({call}) {what}"),
    }
}

/// A [`Power`] whose chosen calls fail, lose their answer or are slow.
pub struct FaultyPower {
    inner: Box<dyn Power>,
    schedule: Schedule,
}

impl FaultyPower {
    pub fn new(inner: Box<dyn Power>, faults: Vec<Fault>) -> FaultyPower {
        FaultyPower {
            inner,
            schedule: Schedule::new(faults),
        }
    }

    fn switch(&mut self, on: bool) -> Result<(), RigError> {
        let call = if on { "on" } else { "off" };
        let (n, fault) = self.schedule.next();
        let pass = |p: &mut Box<dyn Power>| if on { p.on() } else { p.off() };
        match fault {
            None => pass(&mut self.inner),
            Some(FaultAction::Fail) => Err(injected("power", call, n, "failed: injected")),
            Some(FaultAction::DropResponse) => {
                let _ = pass(&mut self.inner);
                Err(injected(
                    "power",
                    call,
                    n,
                    "got no answer: injected (the supply may have switched)",
                ))
            }
            Some(FaultAction::Delay(d)) => {
                std::thread::sleep(d);
                pass(&mut self.inner)
            }
        }
    }
}

impl Power for FaultyPower {
    fn on(&mut self) -> Result<(), RigError> {
        self.switch(true)
    }
    fn off(&mut self) -> Result<(), RigError> {
        self.switch(false)
    }
    fn is_on(&mut self) -> bool {
        self.inner.is_on()
    }
    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }
}

/// A [`Modem`] whose chosen commands fail, time out or are slow.
pub struct FaultyModem {
    inner: Box<dyn Modem>,
    schedule: Schedule,
}

impl FaultyModem {
    pub fn new(inner: Box<dyn Modem>, faults: Vec<Fault>) -> FaultyModem {
        FaultyModem {
            inner,
            schedule: Schedule::new(faults),
        }
    }
}

impl Modem for FaultyModem {
    fn open(&mut self) -> Result<(), RigError> {
        self.inner.open()
    }
    fn close(&mut self) {
        self.inner.close()
    }
    fn command(&mut self, line: &str, timeout: Duration) -> Result<AtResponse, RigError> {
        self.command_shown(line, line, timeout)
    }
    /// `shown` stands for `line` in every injected error: a line that
    /// carries a key stays masked.
    fn command_shown(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<AtResponse, RigError> {
        let (n, fault) = self.schedule.next();
        match fault {
            None => self.inner.command_shown(line, shown, timeout),
            Some(FaultAction::Fail) => Err(injected(
                "modem",
                &format!("`{shown}`"),
                n,
                "failed: injected",
            )),
            Some(FaultAction::DropResponse) => {
                let sent = Instant::now();
                let _ = self.inner.command_shown(line, shown, timeout);
                // The harness waits as long as it would for a real answer.
                std::thread::sleep(timeout.saturating_sub(sent.elapsed()));
                Err(RigError::Timeout {
                    port: "modem (fault injector: response dropped)".into(),
                    command: shown.to_string(),
                    waited: timeout,
                    last_lines: Vec::new(),
                    partial: String::new(),
                })
            }
            Some(FaultAction::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.command_shown(line, shown, timeout)
            }
        }
    }
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, RigError> {
        self.inner.wait_for_line(prefix, timeout)
    }
    fn take_urcs(&mut self) -> Vec<String> {
        self.inner.take_urcs()
    }
    fn transcript(&self) -> Transcript {
        self.inner.transcript()
    }
    /// The injected faults never cross the line: a tap hears only what the
    /// driver inside did.
    fn attach_tap(&mut self, tap: crate::at::SharedTap) -> bool {
        self.inner.attach_tap(tap)
    }
    fn dialect(&self) -> &Dialect {
        self.inner.dialect()
    }
}
