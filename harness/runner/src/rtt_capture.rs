//! The firmware's own output during a case (RTT over SWD), kept in the
//! case's artifacts as `rtt.log`: on a real board it is often the only
//! account of why the device did what the server saw.
//!
//! The debug port polls RTT on its own thread while the case runs; the
//! runner takes the lines when the case starts (what came before belongs to
//! no case: it is kept, marked, in this case's file), when a step fails (its
//! message quotes the device's last lines, RTT among them) and when it ends.
//! A port without RTT gives no lines and no file is written.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;

use rig::Debug;

/// The artifact's name in the case folder.
pub const FILE_NAME: &str = "rtt.log";

/// How many of the latest lines are kept for failure messages: enough for
/// the few a message quotes, bounded however long the run.
pub const TAIL_LINES: usize = 64;

/// Everything taken from the debug port's RTT, read once and kept twice:
/// for the case's `rtt.log` and, as a bounded tail, for the last device
/// lines a failure quotes. The probe is read only through [`RttRecord::take`],
/// so no line goes to one and not the other.
#[derive(Debug, Default)]
pub struct RttRecord {
    /// Printed between the previous case's end (or the session's start)
    /// and this case's start.
    before: Vec<String>,
    /// Printed since this case started, as far as taken.
    during: Vec<String>,
    tail: VecDeque<String>,
}

impl RttRecord {
    /// A case starts: what the port holds now was printed before it.
    pub fn start_case(&mut self, debug: Option<&mut (dyn Debug + 'static)>) {
        self.during.clear();
        self.before = take(debug);
        let before = self.before.clone();
        self.keep(before);
    }

    /// Takes what the firmware printed since the last take (a step failed
    /// and its message should quote the device's latest words).
    pub fn take(&mut self, debug: Option<&mut (dyn Debug + 'static)>) {
        let lines = take(debug);
        self.during.extend(lines.iter().cloned());
        self.keep(lines);
    }

    /// The case ends: takes what is left and writes `rtt.log` into
    /// `artifacts` when there is anything to write.
    pub fn finish_case(&mut self, debug: Option<&mut (dyn Debug + 'static)>, artifacts: &Path) {
        self.take(debug);
        let before = std::mem::take(&mut self.before);
        let during = std::mem::take(&mut self.during);
        if before.is_empty() && during.is_empty() {
            return;
        }
        let mut text = String::new();
        if !before.is_empty() {
            text.push_str("# printed before the case started\n");
            for l in &before {
                let _ = writeln!(text, "{l}");
            }
            text.push_str("# printed during the case\n");
        }
        for l in &during {
            let _ = writeln!(text, "{l}");
        }
        let path = artifacts.join(FILE_NAME);
        if let Err(e) = std::fs::write(&path, text) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// The last `n` lines taken (at most [`TAIL_LINES`]), oldest first.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let skip = self.tail.len().saturating_sub(n);
        self.tail.iter().skip(skip).cloned().collect()
    }

    fn keep(&mut self, lines: Vec<String>) {
        for l in lines {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(l);
        }
    }
}

/// The port's lines; a port that cannot be read (probe unplugged) says so
/// in the log instead of failing the case: the case is about the device.
fn take(debug: Option<&mut (dyn Debug + 'static)>) -> Vec<String> {
    let Some(debug) = debug else {
        return Vec::new();
    };
    match crate::blocking::off_runtime(|| debug.take_log()) {
        Ok(lines) => lines,
        Err(e) => vec![format!("[rtt] {} could not be read: {e}", debug.describe())],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::collections::VecDeque;

    use rig::RigError;

    use super::*;

    /// A debug port whose log gives out one batch per take.
    struct Scripted {
        takes: VecDeque<Result<Vec<String>, RigError>>,
    }

    impl Scripted {
        fn new(takes: Vec<Result<Vec<&str>, &str>>) -> Scripted {
            Scripted {
                takes: takes
                    .into_iter()
                    .map(|t| {
                        t.map(|ls| ls.into_iter().map(str::to_owned).collect())
                            .map_err(|m| RigError::Driver {
                                driver: "swd".into(),
                                message: m.into(),
                            })
                    })
                    .collect(),
            }
        }
    }

    impl Debug for Scripted {
        fn read_state(&mut self) -> Result<BTreeMap<String, String>, RigError> {
            Ok(BTreeMap::new())
        }
        fn describe(&self) -> String {
            "SWD debug port (probe P1, chip X)".into()
        }
        fn take_log(&mut self) -> Result<Vec<String>, RigError> {
            self.takes.pop_front().expect("taken twice per case")
        }
    }

    fn run_case(port: &mut Scripted) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut rtt = RttRecord::default();
        rtt.start_case(Some(port));
        rtt.finish_case(Some(port), dir.path());
        std::fs::read_to_string(dir.path().join(FILE_NAME)).ok()
    }

    #[test]
    fn the_cases_lines_are_written_in_order() {
        let mut port = Scripted::new(vec![Ok(vec![]), Ok(vec!["boot", "registered"])]);
        assert_eq!(run_case(&mut port).unwrap(), "boot\nregistered\n");
    }

    #[test]
    fn what_came_before_the_case_is_kept_and_marked() {
        let mut port = Scripted::new(vec![Ok(vec!["powered on"]), Ok(vec!["registered"])]);
        assert_eq!(
            run_case(&mut port).unwrap(),
            "# printed before the case started\npowered on\n# printed during the case\nregistered\n"
        );
    }

    #[test]
    fn a_port_that_cannot_be_read_is_noted_not_fatal() {
        let mut port = Scripted::new(vec![Ok(vec![]), Err("no probe found matching P1")]);
        assert_eq!(
            run_case(&mut port).unwrap(),
            "[rtt] SWD debug port (probe P1, chip X) could not be read: swd: no probe found matching P1\n"
        );
    }

    #[test]
    fn no_output_and_no_port_leave_no_file() {
        let mut port = Scripted::new(vec![Ok(vec![]), Ok(vec![])]);
        assert_eq!(run_case(&mut port), None);
        let dir = tempfile::tempdir().unwrap();
        let mut rtt = RttRecord::default();
        rtt.start_case(None);
        rtt.finish_case(None, dir.path());
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn a_take_during_the_case_is_in_the_file_and_the_tail_once() {
        let mut port = Scripted::new(vec![
            Ok(vec!["boot"]),
            Ok(vec!["attach failed"]),
            Ok(vec!["retrying"]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let mut rtt = RttRecord::default();
        rtt.start_case(Some(&mut port));
        rtt.take(Some(&mut port));
        assert_eq!(rtt.last_lines(8), ["boot", "attach failed"]);
        rtt.finish_case(Some(&mut port), dir.path());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            "# printed before the case started\nboot\n# printed during the case\nattach failed\nretrying\n"
        );
        assert_eq!(rtt.last_lines(2), ["attach failed", "retrying"]);
    }

    #[test]
    fn the_tail_keeps_only_the_latest_lines() {
        let many: Vec<String> = (0..TAIL_LINES + 10).map(|i| format!("line {i}")).collect();
        let mut port = Scripted::new(vec![Ok(many.iter().map(String::as_str).collect())]);
        let mut rtt = RttRecord::default();
        rtt.take(Some(&mut port));
        let kept = rtt.last_lines(usize::MAX);
        assert_eq!(kept.len(), TAIL_LINES);
        assert_eq!(kept.first().unwrap(), "line 10");
        assert_eq!(kept.last().unwrap(), &format!("line {}", TAIL_LINES + 9));
    }
}
