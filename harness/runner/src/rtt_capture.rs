//! The firmware's own output during a case (RTT over SWD), kept in the
//! case's artifacts as `rtt.log`: on a real board it is often the only
//! account of why the device did what the server saw.
//!
//! The debug port polls RTT on its own thread while the case runs; the
//! runner takes the lines when the case starts (what came before belongs to
//! no case: it is kept, marked, in this case's file) and when it ends.
//! A port without RTT gives no lines and no file is written.

use std::fmt::Write as _;
use std::path::Path;

use rig::Debug;

/// The artifact's name in the case folder.
pub const FILE_NAME: &str = "rtt.log";

/// RTT capture for one case.
pub struct CaseRtt {
    /// Printed between the previous case's end (or the session's start)
    /// and this case's start.
    before: Vec<String>,
}

impl CaseRtt {
    /// Takes what the firmware printed before the case.
    pub fn start(debug: Option<&mut (dyn Debug + 'static)>) -> CaseRtt {
        CaseRtt {
            before: take(debug),
        }
    }

    /// Takes what the firmware printed during the case and writes
    /// `rtt.log` into `artifacts` when there is anything to write.
    pub fn finish(self, debug: Option<&mut (dyn Debug + 'static)>, artifacts: &Path) {
        let during = take(debug);
        if self.before.is_empty() && during.is_empty() {
            return;
        }
        let mut text = String::new();
        if !self.before.is_empty() {
            text.push_str("# printed before the case started\n");
            for l in &self.before {
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
}

/// The port's lines; a port that cannot be read (probe unplugged) says so
/// in the log instead of failing the case: the case is about the device.
fn take(debug: Option<&mut (dyn Debug + 'static)>) -> Vec<String> {
    let Some(debug) = debug else {
        return Vec::new();
    };
    match debug.take_log() {
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
        let rtt = CaseRtt::start(Some(port));
        rtt.finish(Some(port), dir.path());
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
        CaseRtt::start(None).finish(None, dir.path());
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
