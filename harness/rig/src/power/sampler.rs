//! Current recording around a measuring supply, in the spirit of smoltcp's
//! `Tracer`: a wrapper that samples on its own thread while a case runs, so
//! no driver has to know it is being recorded. What it keeps is evidence:
//! peak and mean current for the report, and every sample as a CSV.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::error::RigError;
use crate::power::supply::Supply;

/// One measurement, `t` after sampling started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: Duration,
    pub volts: f64,
    pub amps: f64,
}

/// Everything one sampling run saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CurrentRecord {
    pub samples: Vec<Sample>,
    /// Measurements that failed (the run goes on: a supply that recovers
    /// still yields a useful record).
    pub failures: usize,
    /// The first failure's message, for the report.
    pub first_failure: Option<String>,
}

/// Peak and mean of a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurrentSummary {
    pub peak_amps: f64,
    /// Arithmetic mean of samples taken at a fixed interval, so the mean
    /// current over the sampled time.
    pub mean_amps: f64,
    pub count: usize,
    /// From the first sample to the last.
    pub span: Duration,
}

impl CurrentSummary {
    /// Name/value pairs for a JUnit `<properties>` element, the unit in
    /// the value so that a report read alone says what it measured.
    pub fn properties(&self) -> Vec<(String, String)> {
        vec![
            (
                "power.current.peak".into(),
                format!("{:.6} A", self.peak_amps),
            ),
            (
                "power.current.mean".into(),
                format!("{:.6} A", self.mean_amps),
            ),
            ("power.current.samples".into(), self.count.to_string()),
            (
                "power.current.span".into(),
                format!("{:.3} s", self.span.as_secs_f64()),
            ),
        ]
    }
}

impl CurrentRecord {
    /// `None` when nothing was measured.
    pub fn summary(&self) -> Option<CurrentSummary> {
        let first = self.samples.first()?;
        let last = self.samples.last()?;
        let peak_amps = self
            .samples
            .iter()
            .map(|s| s.amps)
            .fold(f64::NEG_INFINITY, f64::max);
        let mean_amps =
            self.samples.iter().map(|s| s.amps).sum::<f64>() / self.samples.len() as f64;
        Some(CurrentSummary {
            peak_amps,
            mean_amps,
            count: self.samples.len(),
            span: last.t.saturating_sub(first.t),
        })
    }

    /// The samples as CSV: a `t_s,volts,amps` header, seconds to the
    /// millisecond, values as measured.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("t_s,volts,amps\n");
        for s in &self.samples {
            let _ = writeln!(out, "{:.3},{},{}", s.t.as_secs_f64(), s.volts, s.amps);
        }
        out
    }

    /// Writes [`CurrentRecord::to_csv`] to `path` atomically: a temporary
    /// file beside it, synced, then renamed, so a reader (or a run killed
    /// mid-write) never sees half a file.
    pub fn write_csv(&self, path: &Path) -> Result<(), RigError> {
        let io = |source| RigError::Io {
            path: path.to_path_buf(),
            source,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "current.csv".into());
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(self.to_csv().as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(())
    }
}

/// Samples a supply at a fixed interval on its own thread until stopped.
pub struct CurrentSampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<CurrentRecord>,
}

impl CurrentSampler {
    /// Starts sampling `supply` now and then every `interval`. The supply
    /// stays usable by others (power cycles in the case) between samples.
    pub fn start<S>(supply: Arc<Mutex<S>>, interval: Duration) -> std::io::Result<Self>
    where
        S: Supply + ?Sized + 'static,
    {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("current sampler".into())
            .spawn(move || sample(&*supply, interval, &stopped))?;
        Ok(CurrentSampler { stop, thread })
    }

    /// Stops and returns the record. Waits at most for the measurement in
    /// progress, which the supply's own timeout bounds.
    pub fn stop(self) -> CurrentRecord {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_else(|_| CurrentRecord {
            first_failure: Some("the current sampler panicked".into()),
            ..CurrentRecord::default()
        })
    }
}

fn sample<S: Supply + ?Sized>(
    supply: &Mutex<S>,
    interval: Duration,
    stopped: &mpsc::Receiver<()>,
) -> CurrentRecord {
    let start = Instant::now();
    let mut record = CurrentRecord::default();
    let mut next = start;
    loop {
        let measured = supply.lock().unwrap_or_else(|p| p.into_inner()).measure();
        match measured {
            Ok(r) => record.samples.push(Sample {
                t: start.elapsed(),
                volts: r.volts,
                amps: r.amps,
            }),
            Err(e) => {
                if record.failures == 0 {
                    warn!(error = %e, "current sample failed; sampling goes on");
                    record.first_failure = Some(e.to_string());
                }
                record.failures += 1;
            }
        }
        // A slow measurement delays the next tick; it never causes a burst.
        next = (next + interval).max(Instant::now());
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, amps: f64) -> Sample {
        Sample {
            t: Duration::from_millis(ms),
            volts: 3.6,
            amps,
        }
    }

    #[test]
    fn summary_is_peak_mean_count_and_span() {
        let r = CurrentRecord {
            samples: vec![at(0, 0.1), at(100, 0.5), at(200, 0.3)],
            ..Default::default()
        };
        let s = r.summary().unwrap();
        assert_eq!(s.peak_amps, 0.5);
        assert!((s.mean_amps - 0.3).abs() < 1e-12);
        assert_eq!(s.count, 3);
        assert_eq!(s.span, Duration::from_millis(200));
        assert_eq!(
            s.properties()[0],
            ("power.current.peak".into(), "0.500000 A".into())
        );
        assert_eq!(CurrentRecord::default().summary(), None);
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_sample() {
        let r = CurrentRecord {
            samples: vec![at(0, 0.1), at(1500, 0.25)],
            ..Default::default()
        };
        assert_eq!(
            r.to_csv(),
            "t_s,volts,amps\n0.000,3.6,0.1\n1.500,3.6,0.25\n"
        );
    }
}
