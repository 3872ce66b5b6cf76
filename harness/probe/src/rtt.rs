//! The firmware's RTT output as lines for the case's artifacts (`rtt.log`).
//!
//! RTT is a ring buffer per up channel in the target's RAM: the firmware
//! writes, the host reads and moves the read offset. Nothing reaches the
//! host unless it reads, so a thread polls every few milliseconds while a
//! case runs (waits included) and assembles lines; the runner takes them
//! after the case ([`crate::SwdDebug`]'s `rig::Debug::take_log`). The
//! thread takes the session's lock only for each poll, so fact reads,
//! flashing and resets go on meanwhile.
//!
//! What a poll cannot prevent: a firmware that writes more than a
//! channel's buffer between two polls (a 1 KiB buffer is ~10 ms of a
//! chatty log at full speed). In the SEGGER modes `NoBlockSkip` (the
//! default) and `NoBlockTrim` the firmware drops what does not fit, and
//! those bytes are lost without a trace on the host side; in
//! `BlockIfFull` the firmware waits for the host, so nothing is lost but
//! the device runs slower while it is logged. A larger buffer
//! (`BUFFER_SIZE_UP`) is the fix for lost lines.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use probe_rs::rtt::{Rtt, ScanRegion};

use crate::driver::SharedSession;
use crate::error::ProbeError;

/// Between polls; RTT buffers are typically 1 KiB, which a chatty firmware
/// fills in tens of milliseconds.
const POLL: Duration = Duration::from_millis(10);

/// A line longer than this is cut and given out in pieces: a firmware that
/// never prints a newline must not grow the host's memory without bound.
pub const MAX_LINE: usize = 4096;

/// Lines kept for the runner at most; older ones are dropped and counted,
/// so a case that is never drained (a hung step) cannot exhaust memory.
pub const MAX_PENDING_LINES: usize = 50_000;

/// Bytes of each up channel turned into text lines.
///
/// Lines end at `\n` (a `\r` before it is dropped); a line split across
/// reads is joined; bytes that are not UTF-8 become U+FFFD rather than
/// losing the line. With several channels each line says its channel
/// (`[Terminal] ...`), since their output interleaves.
#[derive(Debug, Default)]
pub struct RttLines {
    /// Per channel: its label (empty with one channel) and the bytes of
    /// the line not yet ended.
    channels: Vec<(String, Vec<u8>)>,
    lines: VecDeque<String>,
    dropped: usize,
}

impl RttLines {
    /// One assembler per up channel, named as the firmware names them
    /// (`None`: by number).
    pub fn new(names: &[Option<&str>]) -> RttLines {
        let labelled = names.len() > 1;
        let channels = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let label = match (labelled, name) {
                    (false, _) => String::new(),
                    (true, Some(n)) => format!("[{n}] "),
                    (true, None) => format!("[up {i}] "),
                };
                (label, Vec::new())
            })
            .collect();
        RttLines {
            channels,
            lines: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Bytes read from up channel `channel`.
    pub fn push(&mut self, channel: usize, bytes: &[u8]) {
        let Some((label, partial)) = self.channels.get_mut(channel) else {
            return;
        };
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(partial);
                Self::emit(&mut self.lines, &mut self.dropped, label, line);
            } else {
                partial.push(b);
                if partial.len() >= MAX_LINE {
                    let line = std::mem::take(partial);
                    Self::emit(&mut self.lines, &mut self.dropped, label, line);
                }
            }
        }
    }

    fn emit(lines: &mut VecDeque<String>, dropped: &mut usize, label: &str, mut line: Vec<u8>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        lines.push_back(format!("{label}{}", String::from_utf8_lossy(&line)));
        if lines.len() > MAX_PENDING_LINES {
            lines.pop_front();
            *dropped += 1;
        }
    }

    /// A note of the harness's own (not the firmware's), in order with
    /// the lines.
    pub fn note(&mut self, text: &str) {
        Self::emit(
            &mut self.lines,
            &mut self.dropped,
            "",
            format!("[rtt] {text}").into_bytes(),
        );
    }

    /// The complete lines so far; a line not yet ended stays for the next
    /// take. A count of lines dropped for want of room comes first.
    pub fn take(&mut self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        if self.dropped > 0 {
            out.push(format!(
                "[rtt] {} earlier lines dropped: more than {MAX_PENDING_LINES} were waiting",
                std::mem::take(&mut self.dropped)
            ));
        }
        out.extend(self.lines.drain(..));
        out
    }

    /// Ends every line not yet ended (the case is over: what the firmware
    /// printed without a newline is still shown), then takes all.
    pub fn take_all(&mut self) -> Vec<String> {
        for i in 0..self.channels.len() {
            let (label, partial) = &mut self.channels[i];
            if !partial.is_empty() {
                let line = std::mem::take(partial);
                Self::emit(&mut self.lines, &mut self.dropped, label, line);
            }
        }
        self.take()
    }
}

/// Why RTT could not be attached: no control block is a property of the
/// firmware (or of a firmware not started yet), anything else is the probe's.
#[derive(Debug)]
pub(crate) enum AttachError {
    NoControlBlock(String),
    Probe(ProbeError),
}

/// A running capture; stops on [`RttCapture::stop`] or drop.
pub(crate) struct RttCapture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ProbeError>>>,
    /// The first poll's error: no thread was started.
    failed: Option<ProbeError>,
    lines: Arc<Mutex<RttLines>>,
    channels: usize,
}

impl RttCapture {
    /// Attaches to the control block (at `control_block`, or found by a scan
    /// of RAM), reads once at once (so what the firmware printed so far is
    /// there for the next take) and starts the polling thread.
    pub(crate) fn start(
        session: SharedSession,
        control_block: Option<u64>,
        target_error: impl Fn(String) -> ProbeError + Send + 'static,
    ) -> Result<RttCapture, AttachError> {
        let mut rtt = {
            let mut s = session
                .lock()
                .map_err(|_| AttachError::Probe(target_error("session lock poisoned".into())))?;
            let mut core = s
                .core(0)
                .map_err(|e| AttachError::Probe(target_error(e.to_string())))?;
            let region = match control_block {
                Some(a) => ScanRegion::Exact(a),
                None => ScanRegion::default(),
            };
            match Rtt::attach_region(&mut core, &region) {
                Ok(rtt) => rtt,
                Err(
                    e @ (probe_rs::rtt::Error::ControlBlockNotFound
                    | probe_rs::rtt::Error::NoControlBlockLocation
                    | probe_rs::rtt::Error::ControlBlockCorrupted(_)),
                ) => return Err(AttachError::NoControlBlock(e.to_string())),
                Err(e) => return Err(AttachError::Probe(target_error(e.to_string()))),
            }
        };
        let names: Vec<Option<String>> = rtt
            .up_channels()
            .iter()
            .map(|c| c.name().map(str::to_owned))
            .collect();
        let names: Vec<Option<&str>> = names.iter().map(Option::as_deref).collect();
        let channels = names.len();
        let lines = Arc::new(Mutex::new(RttLines::new(&names)));
        let mut buf = vec![0u8; 4096];
        let stop = Arc::new(AtomicBool::new(false));
        if let Err(e) = poll(&session, &mut rtt, &lines, &mut buf) {
            // What the first poll read before failing is kept.
            return Ok(RttCapture {
                stop,
                thread: None,
                failed: Some(target_error(e)),
                lines,
                channels,
            });
        }
        let flag = stop.clone();
        let sink = lines.clone();
        let thread = std::thread::Builder::new()
            .name("rtt-capture".into())
            .spawn(move || {
                // Polls once more after the stop request, so that what the
                // firmware printed up to the stop is taken.
                loop {
                    let stopping = flag.load(Ordering::Relaxed);
                    poll(&session, &mut rtt, &sink, &mut buf).map_err(&target_error)?;
                    if stopping {
                        return Ok(());
                    }
                    std::thread::sleep(POLL);
                }
            })
            .map_err(|e| {
                AttachError::Probe(ProbeError::Io {
                    path: "rtt-capture thread".into(),
                    source: e,
                })
            })?;
        Ok(RttCapture {
            stop,
            thread: Some(thread),
            failed: None,
            lines,
            channels,
        })
    }

    /// How many up channels the firmware has.
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    /// The lines so far; when the thread has ended (a failed poll: probe
    /// unplugged, the target reset under it), its error, after the lines
    /// read before it.
    pub(crate) fn take(&mut self) -> (Vec<String>, Option<ProbeError>) {
        let ended = self.thread.as_ref().is_none_or(JoinHandle::is_finished);
        let error = if ended {
            self.halt_thread().err()
        } else {
            None
        };
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let taken = if ended {
            lines.take_all()
        } else {
            lines.take()
        };
        (taken, error)
    }

    /// Stops the thread and returns every line, unfinished ones included,
    /// and the error the thread met, if any.
    pub(crate) fn stop(mut self) -> (Vec<String>, Option<ProbeError>) {
        let error = self.halt_thread().err();
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        (lines.take_all(), error)
    }

    fn halt_thread(&mut self) -> Result<(), ProbeError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ProbeError::Io {
                path: "rtt-capture thread".into(),
                source: std::io::Error::other("RTT capture thread panicked"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for RttCapture {
    fn drop(&mut self) {
        let _ = self.halt_thread();
    }
}

/// Reads every up channel until it is empty (bounded: a firmware that
/// writes as fast as the probe reads must not keep one poll going).
fn poll(
    session: &SharedSession,
    rtt: &mut Rtt,
    lines: &Mutex<RttLines>,
    buf: &mut [u8],
) -> Result<(), String> {
    const READS_PER_POLL: usize = 16;
    let mut s = session
        .lock()
        .map_err(|_| "session lock poisoned".to_owned())?;
    let mut core = s.core(0).map_err(|e| e.to_string())?;
    for (i, ch) in rtt.up_channels().iter_mut().enumerate() {
        for _ in 0..READS_PER_POLL {
            let n = ch.read(&mut core, buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(i, &buf[..n]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_split_across_reads_is_joined_and_crlf_ends_it() {
        let mut l = RttLines::new(&[Some("Terminal")]);
        l.push(0, b"meter bo");
        assert!(l.take().is_empty(), "an unfinished line waits");
        l.push(0, b"oted ok\r\nreg");
        l.push(0, b"istered\n");
        assert_eq!(l.take(), ["meter booted ok", "registered"]);
        assert!(l.take().is_empty(), "taken lines are gone");
    }

    #[test]
    fn bytes_that_are_not_utf8_keep_their_line() {
        let mut l = RttLines::new(&[None]);
        l.push(0, b"temp \xff\xfe ok\n");
        // A character split across two reads is still one character.
        l.push(0, "caf\u{e9}".as_bytes().split_last().unwrap().1);
        l.push(0, &["caf\u{e9}".as_bytes()[4]]);
        l.push(0, b"\n");
        assert_eq!(l.take(), ["temp \u{fffd}\u{fffd} ok", "caf\u{e9}"]);
    }

    #[test]
    fn several_channels_keep_their_own_partial_lines_and_say_which() {
        let mut l = RttLines::new(&[Some("Terminal"), None, Some("Metering")]);
        l.push(0, b"boot ");
        l.push(2, b"E=12");
        l.push(1, b"raw\n");
        l.push(0, b"done\n");
        l.push(2, b"3 Wh\n");
        assert_eq!(
            l.take(),
            ["[up 1] raw", "[Terminal] boot done", "[Metering] E=123 Wh"]
        );
        // Bytes for a channel the control block does not have are ignored.
        l.push(7, b"x\n");
        assert!(l.take().is_empty());
    }

    #[test]
    fn an_endless_line_is_cut_and_the_pending_lines_are_bounded() {
        let mut l = RttLines::new(&[None]);
        l.push(0, &vec![b'a'; MAX_LINE + 10]);
        let lines = l.take();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(l.take_all(), ["a".repeat(10)]);

        for i in 0..MAX_PENDING_LINES + 3 {
            l.push(0, format!("{i}\n").as_bytes());
        }
        let lines = l.take();
        assert_eq!(lines.len(), MAX_PENDING_LINES + 1);
        assert!(lines[0].contains("3 earlier lines dropped"), "{}", lines[0]);
        assert_eq!(lines[1], "3");
        assert_eq!(lines.last().unwrap(), &(MAX_PENDING_LINES + 2).to_string());
    }

    #[test]
    fn take_all_ends_what_the_firmware_left_unfinished() {
        let mut l = RttLines::new(&[Some("a"), Some("b")]);
        l.push(0, b"half");
        l.note("capture stopped");
        assert_eq!(l.take_all(), ["[rtt] capture stopped", "[a] half"]);
    }
}
