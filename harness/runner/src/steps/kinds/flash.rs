//! `flash: { image: ROLE-or-path, format?: elf|hex|bin }`: writes an image
//! to the device's MCU over SWD, verified, the core left halted (a `reset`
//! runs it). A role is one the rig maps (`firmware.roles`), so that a case
//! names what it wants (`upgrade`) and each bench supplies its own file; a
//! path (anything with a `/` or an extension) is taken from the rig file's
//! folder.

use std::fmt::Write as _;
use std::path::PathBuf;

use rig::target_control::{FlashImage, FlashPhase, FlashProgress, ImageFormat};
use serde::Deserialize;

use crate::case::Need;
use crate::session::Session;
use crate::steps::error::StepError;
use crate::steps::kinds::target::on_target;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Elf,
    Hex,
    Bin,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flash {
    pub image: String,
    /// Absent: by the file's extension (ELF when it has none).
    #[serde(default)]
    pub format: Option<Format>,
}

impl Flash {
    /// A role name is a bare word; a path has a folder or an extension.
    fn role(&self) -> Option<&str> {
        let is_path = self.image.contains('/') || self.image.contains('.');
        (!is_path).then_some(self.image.as_str())
    }

    fn format_of(&self, path: &std::path::Path) -> ImageFormat {
        match self.format {
            Some(Format::Elf) => ImageFormat::Elf,
            Some(Format::Hex) => ImageFormat::Hex,
            Some(Format::Bin) => ImageFormat::Bin { base_address: None },
            None => ImageFormat::from_path(path),
        }
    }

    async fn path(&self, rig: &mut Session) -> Result<PathBuf, StepError> {
        Ok(match self.role() {
            Some(role) => rig.firmware_role(role).await?.path,
            None => rig.rig.dir().join(&self.image),
        })
    }
}

impl Step for Flash {
    fn describe(&self) -> String {
        match self.format {
            Some(f) => format!("flash {} ({f:?})", self.image),
            None => format!("flash {}", self.image),
        }
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Swd]
    }

    fn firmware_roles(&self) -> Vec<String> {
        self.role().map(str::to_owned).into_iter().collect()
    }

    fn run<'a>(
        &'a self,
        _: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = self.path(rig).await?;
            if !path.is_file() {
                // Before the probe is touched: the bench's store is wrong.
                return Err(StepError::Bench(format!(
                    "flash {}: {} does not exist",
                    self.image,
                    path.display()
                )));
            }
            let image = FlashImage {
                format: self.format_of(&path),
                path,
            };
            let _ = writeln!(
                ctx.log,
                "  flashing {} as {:?}",
                image.path.display(),
                image.format
            );
            let events = ctx.events.clone();
            let lines = on_target(rig, "flash", move |control| {
                let mut lines = Vec::new();
                // `flash` events feed events.jsonl and the progress display;
                // the step log gets a line per phase either way.
                let mut sampled = FlashSamples::default();
                let result = control.flash(&image, &mut |p| {
                    progress_line(&p, &mut lines);
                    if sampled.is_news(&p) {
                        events.emit(crate::events::Event::Flash {
                            phase: phase_name(p.phase),
                            done: p.done,
                            total: p.total,
                        });
                    }
                });
                result.map(|()| lines)
            })
            .await?;
            for line in lines {
                let _ = writeln!(ctx.log, "  {line}");
            }
            Ok(())
        })
    }
}

/// Which flash progress reports are worth an event: a new phase, each
/// further 5% of it, its end (a probe reports every page).
#[derive(Default)]
struct FlashSamples {
    last: Option<(FlashPhase, u64)>,
}

impl FlashSamples {
    fn is_news(&mut self, p: &FlashProgress) -> bool {
        let step = p.total.map_or(u64::MAX, |t| (t / 20).max(1));
        let news = match self.last {
            Some((phase, done)) if phase == p.phase => {
                p.done >= done.saturating_add(step) || p.total.is_some_and(|t| p.done >= t)
            }
            _ => true,
        };
        if news {
            self.last = Some((p.phase, p.done));
        }
        news
    }
}

fn phase_name(phase: FlashPhase) -> &'static str {
    match phase {
        FlashPhase::Erase => "erase",
        FlashPhase::Program => "program",
        FlashPhase::Verify => "verify",
    }
}

/// A step-log line when a phase starts and when it completes, so the log
/// shows how far a flash got without a line per block.
fn progress_line(p: &FlashProgress, seen: &mut Vec<String>) -> Option<String> {
    let phase = phase_name(p.phase);
    let line = match p.total {
        Some(total) if p.done >= total => format!("{phase}: {total} bytes done"),
        _ if p.done == 0 => format!("{phase}: started"),
        _ => return None,
    };
    if seen.last() == Some(&line) {
        return None;
    }
    tracing::info!(target: "meterbench::flash", "{line}");
    seen.push(line.clone());
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Flash, serde_saphyr::Error> {
        serde_saphyr::from_str(yaml)
    }

    #[test]
    fn a_bare_word_is_a_role_and_a_file_name_is_a_path() {
        let role = parse("image: upgrade").unwrap();
        assert_eq!(role.firmware_roles(), ["upgrade"]);
        assert_eq!(role.needs(), [Need::Swd]);
        let path = parse("{ image: ../fw/meter.hex }").unwrap();
        assert!(path.firmware_roles().is_empty());
        assert_eq!(path.describe(), "flash ../fw/meter.hex");
    }

    #[test]
    fn the_format_is_given_or_taken_from_the_extension() {
        let f = parse("{ image: fw/meter.img, format: bin }").unwrap();
        assert_eq!(
            f.format_of(std::path::Path::new("fw/meter.img")),
            ImageFormat::Bin { base_address: None }
        );
        let f = parse("{ image: fw/meter.hex }").unwrap();
        assert_eq!(
            f.format_of(std::path::Path::new("fw/meter.hex")),
            ImageFormat::Hex
        );
        assert!(parse("{ image: a.elf, format: srec }").is_err());
        assert!(parse("{ image: a.elf, speed: 9 }").is_err());
    }

    #[test]
    fn progress_is_logged_once_per_phase_start_and_end() {
        let mut seen = Vec::new();
        let p = |phase, done, total| FlashProgress { phase, done, total };
        let lines: Vec<String> = [
            p(FlashPhase::Erase, 0, None),
            p(FlashPhase::Erase, 0, Some(4096)),
            p(FlashPhase::Erase, 4096, Some(4096)),
            p(FlashPhase::Program, 0, Some(8192)),
            p(FlashPhase::Program, 1024, Some(8192)),
            p(FlashPhase::Program, 8192, Some(8192)),
        ]
        .iter()
        .filter_map(|x| progress_line(x, &mut seen))
        .collect();
        assert_eq!(
            lines,
            [
                "erase: started",
                "erase: 4096 bytes done",
                "program: started",
                "program: 8192 bytes done"
            ]
        );
    }
}
