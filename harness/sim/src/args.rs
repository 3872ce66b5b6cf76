//! The virtual meter's command line:
//! `--state-dir DIR --objects DIR --pty-link PATH [--seed N] [--serial SN] [--exit-with-parent]`.

use std::path::PathBuf;

use crate::error::SimError;

/// What the virtual meter process is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterArgs {
    /// Where NV storage lives (the meter's "flash").
    pub state_dir: PathBuf,
    /// OMA object definitions (DDF XML), e.g. fixtures/objects.
    pub objects_dir: PathBuf,
    /// Where to publish the modem's PTY slave as a symlink.
    pub pty_link: PathBuf,
    /// Seeds identity numbers, signal changes and CoAP ids.
    pub seed: u64,
    /// Overrides the serial number derived from the seed.
    pub serial: Option<String>,
    /// Exit when the parent process goes away (so a crashed harness leaves no meter running).
    pub exit_with_parent: bool,
}

impl MeterArgs {
    /// Parses the arguments after the program name (or after `sim-meter`).
    pub fn parse(args: &[String]) -> Result<Self, SimError> {
        let mut state_dir = None;
        let mut objects_dir = None;
        let mut pty_link = None;
        let mut seed = 0u64;
        let mut serial = None;
        let mut exit_with_parent = false;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| SimError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
                "--objects" => objects_dir = Some(PathBuf::from(value()?)),
                "--pty-link" => pty_link = Some(PathBuf::from(value()?)),
                "--seed" => {
                    let v = value()?;
                    seed = v.parse().map_err(|_| {
                        SimError::Usage(format!("--seed {v:?} is not an unsigned integer"))
                    })?;
                }
                "--serial" => {
                    let v = value()?;
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(SimError::Usage(format!(
                            "--serial {v:?} must be printable ASCII without spaces"
                        )));
                    }
                    serial = Some(v);
                }
                "--exit-with-parent" => exit_with_parent = true,
                other => return Err(SimError::Usage(format!("unknown argument {other:?}"))),
            }
        }
        let need = |v: Option<PathBuf>, name: &str| {
            v.ok_or_else(|| SimError::Usage(format!("{name} is required")))
        };
        Ok(MeterArgs {
            state_dir: need(state_dir, "--state-dir")?,
            objects_dir: need(objects_dir, "--objects")?,
            pty_link: need(pty_link, "--pty-link")?,
            seed,
            serial,
            exit_with_parent,
        })
    }

    /// The argument list that [`MeterArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--state-dir".to_owned(),
            self.state_dir.display().to_string(),
            "--objects".to_owned(),
            self.objects_dir.display().to_string(),
            "--pty-link".to_owned(),
            self.pty_link.display().to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ];
        if let Some(s) = &self.serial {
            v.extend(["--serial".to_owned(), s.clone()]);
        }
        if self.exit_with_parent {
            v.push("--exit-with-parent".to_owned());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_all_and_round_trips() {
        let a = MeterArgs::parse(&strings(&[
            "--state-dir",
            "/s",
            "--objects",
            "/o",
            "--pty-link",
            "/s/modem.pty",
            "--seed",
            "42",
            "--serial",
            "SN9",
            "--exit-with-parent",
        ]))
        .unwrap();
        assert_eq!(a.seed, 42);
        assert_eq!(a.serial.as_deref(), Some("SN9"));
        assert!(a.exit_with_parent);
        assert_eq!(MeterArgs::parse(&a.to_args()).unwrap(), a);
    }

    #[test]
    fn errors_name_the_argument() {
        let e = MeterArgs::parse(&strings(&["--objects", "/o", "--pty-link", "/p"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--state-dir is required"), "{e}");
        let e = MeterArgs::parse(&strings(&["--seed"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--seed needs a value"), "{e}");
        let e = MeterArgs::parse(&strings(&["--seed", "-1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an unsigned integer"), "{e}");
        let e = MeterArgs::parse(&strings(&["--bogus"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown argument \"--bogus\""), "{e}");
    }
}
