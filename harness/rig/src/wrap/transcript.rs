//! The AT transcript as a wrapper around a modem driver: the
//! `at-transcript.txt` of a case. A driver with an AT engine publishes what
//! crosses its line ([`crate::at::AtEvent`]) to the tap this wrapper attaches,
//! echo, URCs and engine notes included; a driver without one is recorded
//! from the calls made to it. Either way the driver keeps no record itself.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::at::{AtEvent, AtResponse, AtTap, SharedTap, Transcript};
use crate::dialect::Dialect;
use crate::error::RigError;
use crate::traits::Modem;

/// The shared end of a recording: the tap the engine publishes to, and
/// what the runner reads a case's part from.
#[derive(Debug, Clone, Default)]
pub struct TranscriptLog(Arc<Mutex<Transcript>>);

impl TranscriptLog {
    fn lock(&self) -> MutexGuard<'_, Transcript> {
        // A recording must survive a panicking reader: it is the evidence.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything recorded so far.
    pub fn transcript(&self) -> Transcript {
        self.lock().clone()
    }

    fn record(&self, event: AtEvent<'_>) {
        self.lock().record(&event);
    }
}

impl AtTap for TranscriptLog {
    fn event(&self, event: &AtEvent<'_>) {
        self.lock().record(event);
    }
}

/// A [`Modem`] whose line is recorded; everything else is the driver's.
pub struct TranscriptRecorder<M> {
    inner: M,
    log: TranscriptLog,
    /// The driver publishes its line's events; else the calls are recorded.
    tapped: bool,
}

impl<M: Modem> TranscriptRecorder<M> {
    pub fn new(mut inner: M) -> TranscriptRecorder<M> {
        let log = TranscriptLog::default();
        let tap: SharedTap = Arc::new(log.clone());
        let tapped = inner.attach_tap(tap);
        TranscriptRecorder { inner, log, tapped }
    }

    /// The recording, to read while the recorder sits inside a bench.
    pub fn log(&self) -> TranscriptLog {
        self.log.clone()
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// For a driver without taps: what a call returned, as its line would
    /// have shown it.
    fn record_answer(&self, shown: &str, r: &Result<AtResponse, RigError>) {
        if self.tapped {
            return;
        }
        match r {
            Ok(response) => {
                for l in &response.lines {
                    self.log.record(AtEvent::Response(l));
                }
                self.log
                    .record(AtEvent::Final(&response.result.to_string()));
            }
            Err(RigError::Timeout { waited, .. }) => self.log.record(AtEvent::Timeout {
                command: shown,
                waited: *waited,
            }),
            Err(e) => self
                .log
                .record(AtEvent::Note(&format!("`{shown}` failed: {e}"))),
        }
    }
}

impl<M: Modem> Modem for TranscriptRecorder<M> {
    fn open(&mut self) -> Result<(), RigError> {
        self.inner.open()
    }
    fn close(&mut self) {
        self.inner.close()
    }
    fn command(&mut self, line: &str, timeout: Duration) -> Result<AtResponse, RigError> {
        self.command_shown(line, line, timeout)
    }
    fn command_shown(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<AtResponse, RigError> {
        if !self.tapped {
            self.log.record(AtEvent::Sent(shown));
        }
        let r = self.inner.command_shown(line, shown, timeout);
        self.record_answer(shown, &r);
        r
    }
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, RigError> {
        let r = self.inner.wait_for_line(prefix, timeout);
        if let (false, Ok(line)) = (self.tapped, &r) {
            self.log.record(if self.inner.dialect().is_urc(line) {
                AtEvent::Urc(line)
            } else {
                AtEvent::Response(line)
            });
        }
        r
    }
    fn take_urcs(&mut self) -> Vec<String> {
        let urcs = self.inner.take_urcs();
        if !self.tapped {
            for u in &urcs {
                self.log.record(AtEvent::Urc(u));
            }
        }
        urcs
    }
    /// What this recorder kept (not the driver's: it keeps none).
    fn transcript(&self) -> Transcript {
        self.log.transcript()
    }
    /// Another recorder around this one hears the same line.
    fn attach_tap(&mut self, tap: SharedTap) -> bool {
        self.inner.attach_tap(tap)
    }
    fn dialect(&self) -> &Dialect {
        self.inner.dialect()
    }
}

/// A boxed driver is a driver, so a bench can record whichever it built.
impl Modem for Box<dyn Modem> {
    fn open(&mut self) -> Result<(), RigError> {
        (**self).open()
    }
    fn close(&mut self) {
        (**self).close()
    }
    fn command(&mut self, line: &str, timeout: Duration) -> Result<AtResponse, RigError> {
        (**self).command(line, timeout)
    }
    fn command_shown(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<AtResponse, RigError> {
        (**self).command_shown(line, shown, timeout)
    }
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, RigError> {
        (**self).wait_for_line(prefix, timeout)
    }
    fn take_urcs(&mut self) -> Vec<String> {
        (**self).take_urcs()
    }
    fn transcript(&self) -> Transcript {
        (**self).transcript()
    }
    fn attach_tap(&mut self, tap: SharedTap) -> bool {
        (**self).attach_tap(tap)
    }
    fn dialect(&self) -> &Dialect {
        (**self).dialect()
    }
}
