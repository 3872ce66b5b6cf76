//! Capturing the firmware's RTT output into the case's artifacts: a thread
//! that polls the up channels every few milliseconds, taking the session's
//! lock only for each poll so that fact reads and resets go on meanwhile.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use probe_rs::rtt::{Rtt, ScanRegion};

use crate::driver::SharedSession;
use crate::error::ProbeError;

/// Between polls; RTT buffers are typically 1 KiB, which a chatty firmware
/// fills in tens of milliseconds.
const POLL: Duration = Duration::from_millis(10);

/// A running capture; stops on [`RttCapture::stop`] or drop.
pub struct RttCapture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ProbeError>>>,
    files: Vec<PathBuf>,
}

impl RttCapture {
    /// Attaches to the control block (at `control_block`, or found by a scan
    /// of RAM) and starts the thread; one file per up channel in `dir`.
    pub(crate) fn start(
        session: SharedSession,
        control_block: Option<u64>,
        dir: &Path,
        probe: String,
        chip: String,
    ) -> Result<RttCapture, ProbeError> {
        let target_error = move |message: String| ProbeError::Target {
            probe: probe.clone(),
            chip: chip.clone(),
            operation: "RTT".into(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|source| ProbeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut rtt = {
            let mut s = session
                .lock()
                .map_err(|_| target_error("session lock poisoned".into()))?;
            let mut core = s.core(0).map_err(|e| target_error(e.to_string()))?;
            let region = match control_block {
                Some(a) => ScanRegion::Exact(a),
                None => ScanRegion::default(),
            };
            Rtt::attach_region(&mut core, &region)
                .map_err(|e| target_error(format!("no control block: {e}")))?
        };
        let mut files = Vec::new();
        let mut sinks = Vec::new();
        for (i, ch) in rtt.up_channels().iter().enumerate() {
            let name: String = ch
                .name()
                .unwrap_or("up")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let path = dir.join(format!("rtt-{i}-{name}.log"));
            let f = File::create(&path).map_err(|source| ProbeError::Io {
                path: path.clone(),
                source,
            })?;
            files.push(path.clone());
            sinks.push((path, f));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rtt-capture".into())
            .spawn(move || {
                let mut buf = vec![0u8; 4096];
                // Polls once more after the stop request, so that what the
                // firmware printed up to the stop is in the files.
                loop {
                    let stopping = flag.load(Ordering::Relaxed);
                    for (i, (path, sink)) in sinks.iter_mut().enumerate() {
                        let n = {
                            let mut s = session
                                .lock()
                                .map_err(|_| target_error("session lock poisoned".into()))?;
                            let mut core = s.core(0).map_err(|e| target_error(e.to_string()))?;
                            match rtt.up_channel(i) {
                                Some(ch) => ch
                                    .read(&mut core, &mut buf)
                                    .map_err(|e| target_error(e.to_string()))?,
                                None => 0,
                            }
                        };
                        sink.write_all(&buf[..n]).map_err(|source| ProbeError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    }
                    if stopping {
                        return Ok(());
                    }
                    std::thread::sleep(POLL);
                }
            })
            .map_err(|source| ProbeError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(RttCapture {
            stop,
            thread: Some(thread),
            files,
        })
    }

    /// Stops the thread and returns the files written; an error the thread
    /// met (probe unplugged) comes back here.
    pub fn stop(mut self) -> Result<Vec<PathBuf>, ProbeError> {
        self.halt_thread()?;
        Ok(std::mem::take(&mut self.files))
    }

    fn halt_thread(&mut self) -> Result<(), ProbeError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ProbeError::Io {
                path: self.files.first().cloned().unwrap_or_default(),
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
