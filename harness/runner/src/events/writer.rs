//! The one thread that writes `events.jsonl` and draws the progress
//! display: each event becomes one line, flushed at once so a reader
//! following the file sees it while the run goes on.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde::Serialize;

use crate::events::{Event, EventSink, Message};
use crate::progress::Display;

/// The run's event file and its writer thread.
pub struct EventLog {
    sink: EventSink,
    writer: Option<JoinHandle<Vec<String>>>,
}

/// One line of the file: the event with when and where it happened.
#[derive(Serialize)]
struct Line<'a> {
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rig: Option<&'a str>,
    /// The device of a rig with several; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    case: Option<&'a str>,
    #[serde(flatten)]
    event: &'a Event,
}

impl EventLog {
    /// Creates `path` (an error here means the run folder cannot be
    /// written: the run stops before any bench is touched) and starts the
    /// writer, which also feeds `display`.
    pub fn create(path: &Path, mut display: Display) -> std::io::Result<EventLog> {
        let file = File::create(path)?;
        let (tx, rx) = mpsc::channel::<Message>();
        let shown = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let mut out = Some(BufWriter::new(file));
                let mut replays = Vec::new();
                for message in rx {
                    let (at, scope, event) = match message {
                        Message::Event { at, scope, event } => (at, scope, event),
                        Message::Flush(done) => {
                            let _ = done.send(());
                            continue;
                        }
                        Message::Close => break,
                    };
                    display.show(scope.as_deref(), &event);
                    if let (Event::PowerCut(cut), Some(s)) = (&event, &scope) {
                        replays.extend(
                            cut.replay_line()
                                .map(|l| format!("{} {l}", s.trial_name())),
                        );
                    }
                    let Some(w) = out.as_mut() else { continue };
                    let line = Line {
                        at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        rig: scope.as_deref().map(|s| s.rig.as_str()),
                        device: scope.as_deref().and_then(|s| s.device.as_deref()),
                        case: scope.as_deref().map(|s| s.case.as_str()),
                        event: &event,
                    };
                    let written = serde_json::to_writer(&mut *w, &line)
                        .map_err(std::io::Error::from)
                        .and_then(|()| w.write_all(b"\n"))
                        .and_then(|()| w.flush());
                    if let Err(e) = written {
                        // The run goes on: its verdicts are in the JUnit.
                        tracing::error!(file = %shown.display(), error = %e, "events.jsonl: cannot write; no more events");
                        out = None;
                    }
                }
                display.clear();
                replays
            })?;
        Ok(EventLog {
            sink: EventSink { tx: Some(tx) },
            writer: Some(writer),
        })
    }

    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Writes everything emitted so far and stops the writer. Events
    /// emitted later (by a clone of the sink) are dropped. Returns one
    /// line per random power cut of the run (`<rig>::<case> line L round
    /// R: cut at T ms, seed S (replay: --seed N)`).
    pub fn finish(mut self) -> Vec<String> {
        if let Some(tx) = &self.sink.tx {
            let _ = tx.send(Message::Close);
        }
        self.writer
            .take()
            .and_then(|w| w.join().ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Scope;
    use std::sync::Arc;

    #[test]
    fn each_event_is_one_flushed_json_line_with_type_and_at() {
        let dir = std::env::temp_dir().join(format!("meterbench-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let log = EventLog::create(&path, Display::silent()).unwrap();
        let sink = log.sink();
        sink.emit(Event::CaseStart {
            title: "a \"quoted\"\ntitle".into(),
            file: "testcases/a.yaml".into(),
            timeout_ms: 1000,
        });
        sink.send(
            Some(Arc::new(Scope {
                rig: "virtual".into(),
                device: None,
                pooled: false,
                case: "a".into(),
            })),
            Event::CaseEnd {
                verdict: "passed",
                duration_ms: 12,
                message: None,
            },
        );
        // Flushed per line: readable before the writer stops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap().lines().count() < 2 {
            assert!(std::time::Instant::now() < deadline, "lines not flushed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        log.finish();
        sink.emit(Event::CaseStart {
            title: "after the end".into(),
            file: String::new(),
            timeout_ms: 0,
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["type"], "case_start");
        assert_eq!(lines[0]["title"], "a \"quoted\"\ntitle");
        assert!(lines[0].get("rig").is_none());
        assert_eq!(lines[1]["type"], "case_end");
        assert_eq!(lines[1]["rig"], "virtual");
        assert_eq!(lines[1]["case"], "a");
        assert_eq!(lines[1]["verdict"], "passed");
        let at = lines[1]["at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
