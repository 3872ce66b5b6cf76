//! The virtual meter's command line:
//! `--state-dir DIR --objects DIR [--pty-link PATH] [--seed N] [--serial SN]
//! [--exit-with-parent] [--exit-with-pid PID] [--without PATH]... [--server-instance N]
//! [--without-composite]`
//! and the factory provisioning flags ([`crate::factory`]):
//! `[--server URI | --bootstrap URI] [--endpoint EP] [--lifetime SECS] [--psk-identity ID]`,
//! the key only in the environment ([`crate::factory::PSK_KEY_ENV`]).
//!
//! Without `--pty-link` the meter has no modem: it is a device process that
//! runs its LwM2M client from its factory settings, so it needs `--server` or
//! `--bootstrap` (or NV that already holds settings, which cannot be known
//! here: the flag is required).

use std::path::PathBuf;

use lwm2m::Path;

use crate::error::SimError;
use crate::factory::FactoryArgs;

/// How this meter differs from the default one: the device a rig describes
/// (`power: {kind: virtual, without: [...], server_instance: N}`), so that
/// cases are shown to hold on a device other than the one they were written on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceOptions {
    /// Optional resources the meter does not have (`--without /3/0/15`):
    /// absent from Read and Discover, 4.04 to a Write; or optional objects
    /// (`--without /2`), absent from its object model altogether.
    pub without: Vec<Path>,
    /// The Server object instance (/1/N) of the account the meter is
    /// configured with directly (`--server-instance N`; bootstrap writes its own).
    pub server_instance: u16,
    /// No Read-/Write-/Observe-Composite and no Send (`--without-composite`).
    pub without_composite: bool,
}

impl DeviceOptions {
    /// From the rig file's options; a path that does not parse is named.
    pub fn from_rig(o: &rig::model::VirtualMeterOptions) -> Result<Self, SimError> {
        let without = o
            .without
            .iter()
            .map(|p| without_path(p))
            .collect::<Result<_, _>>()?;
        Ok(DeviceOptions {
            without,
            server_instance: o.server_instance,
            without_composite: o.without_composite,
        })
    }

    fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for p in &self.without {
            v.extend(["--without".to_owned(), p.to_string()]);
        }
        if self.without_composite {
            v.push("--without-composite".to_owned());
        }
        if self.server_instance != 0 {
            v.extend([
                "--server-instance".to_owned(),
                self.server_instance.to_string(),
            ]);
        }
        v
    }
}

/// A resource or resource instance the meter leaves out, or a whole
/// optional object (`/2`: the meter has no Access Control object).
fn without_path(text: &str) -> Result<Path, SimError> {
    text.parse::<Path>()
        .ok()
        // Security, Server and Device are mandatory (Core Appendix E): no
        // meter goes without them.
        .filter(|p| p.depth() >= 3 || (p.depth() == 1 && !matches!(p.object_id(), Some(0 | 1 | 3))))
        .ok_or_else(|| {
            SimError::Usage(format!(
                "--without {text:?}: expected a resource path like /3/0/15 or an optional object like /2"
            ))
        })
}

/// What the virtual meter process is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterArgs {
    /// Where NV storage lives (the meter's "flash").
    pub state_dir: PathBuf,
    /// OMA object definitions (DDF XML), e.g. fixtures/objects.
    pub objects_dir: PathBuf,
    /// Where to publish the modem's PTY slave as a symlink; `None`: no modem.
    pub pty_link: Option<PathBuf>,
    /// Seeds identity numbers, signal changes and CoAP ids.
    pub seed: u64,
    /// Overrides the serial number derived from the seed.
    pub serial: Option<String>,
    /// Exit when the parent process goes away (so a crashed harness leaves no meter running).
    pub exit_with_parent: bool,
    /// Exit when this process goes away: the harness, for a meter started in
    /// the background by a shell command whose own process ends at once.
    pub exit_with_pid: Option<u32>,
    /// How this meter differs from the default one.
    pub device: DeviceOptions,
    /// The account the meter leaves the factory with.
    pub factory: FactoryArgs,
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
        let mut exit_with_pid = None;
        let mut device = DeviceOptions::default();
        let mut factory = FactoryArgs::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| SimError::Usage(format!("{flag} needs a value")))
            };
            if factory.parse_flag(flag, &mut value)? {
                continue;
            }
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
                "--without-composite" => device.without_composite = true,
                "--exit-with-pid" => {
                    let v = value()?;
                    exit_with_pid = Some(v.parse().ok().filter(|p| *p > 1).ok_or_else(|| {
                        SimError::Usage(format!("--exit-with-pid {v:?} is not a process id"))
                    })?);
                }
                "--without" => device.without.push(without_path(&value()?)?),
                "--server-instance" => {
                    let v = value()?;
                    device.server_instance =
                        v.parse().ok().filter(|n| *n != u16::MAX).ok_or_else(|| {
                            SimError::Usage(format!(
                                "--server-instance {v:?} is not an instance id (0 to 65534)"
                            ))
                        })?;
                }
                other => return Err(SimError::Usage(format!("unknown argument {other:?}"))),
            }
        }
        let need = |v: Option<PathBuf>, name: &str| {
            v.ok_or_else(|| SimError::Usage(format!("{name} is required")))
        };
        factory.check()?;
        if pty_link.is_none() && factory.account.is_none() {
            return Err(SimError::Usage(
                "--pty-link is required unless the meter is factory-provisioned \
                 (--server or --bootstrap): without a modem nothing else configures it"
                    .to_owned(),
            ));
        }
        Ok(MeterArgs {
            state_dir: need(state_dir, "--state-dir")?,
            objects_dir: need(objects_dir, "--objects")?,
            pty_link,
            seed,
            serial,
            exit_with_parent,
            exit_with_pid,
            device,
            factory,
        })
    }

    /// The argument list that [`MeterArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--state-dir".to_owned(),
            self.state_dir.display().to_string(),
            "--objects".to_owned(),
            self.objects_dir.display().to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ];
        if let Some(p) = &self.pty_link {
            v.extend(["--pty-link".to_owned(), p.display().to_string()]);
        }
        if let Some(s) = &self.serial {
            v.extend(["--serial".to_owned(), s.clone()]);
        }
        if self.exit_with_parent {
            v.push("--exit-with-parent".to_owned());
        }
        if let Some(pid) = self.exit_with_pid {
            v.extend(["--exit-with-pid".to_owned(), pid.to_string()]);
        }
        v.extend(self.device.to_args());
        v.extend(self.factory.to_args());
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
        assert_eq!(a.device, DeviceOptions::default());
        assert_eq!(MeterArgs::parse(&a.to_args()).unwrap(), a);
    }

    #[test]
    fn a_differing_device_round_trips() {
        let a = MeterArgs::parse(&strings(&[
            "--state-dir",
            "/s",
            "--objects",
            "/o",
            "--pty-link",
            "/p",
            "--without",
            "/3/0/15",
            "--without",
            "/3/0/14",
            "--server-instance",
            "1",
            "--without-composite",
        ]))
        .unwrap();
        assert_eq!(
            a.device.without,
            [Path::resource(3, 0, 15), Path::resource(3, 0, 14)]
        );
        assert_eq!(a.device.server_instance, 1);
        assert!(a.device.without_composite);
        assert_eq!(MeterArgs::parse(&a.to_args()).unwrap(), a);
        let e = MeterArgs::parse(&strings(&["--without", "/3"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a resource path"), "{e}");
        // An optional object may go: the meter without Access Control.
        let a = MeterArgs::parse(&strings(&[
            "--state-dir",
            "/s",
            "--objects",
            "/o",
            "--pty-link",
            "/p",
            "--without",
            "/2",
        ]))
        .unwrap();
        assert_eq!(a.device.without, [Path::object(2)]);
        let e = MeterArgs::parse(&strings(&["--server-instance", "65535"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an instance id"), "{e}");
    }

    #[test]
    fn factory_flags_make_a_meter_without_a_modem() {
        let a = MeterArgs::parse(&strings(&[
            "--state-dir",
            "/s",
            "--objects",
            "/o",
            "--server",
            "coaps://127.0.0.1:5684",
            "--endpoint",
            "factory-ep",
            "--lifetime",
            "45",
            "--psk-identity",
            "dev-7",
            "--exit-with-pid",
            "4242",
        ]))
        .unwrap();
        assert_eq!(a.pty_link, None);
        assert_eq!(a.exit_with_pid, Some(4242));
        assert_eq!(
            a.factory.account,
            Some(crate::factory::FactoryAccount::Server(
                "coaps://127.0.0.1:5684".into()
            ))
        );
        assert_eq!(a.factory.endpoint.as_deref(), Some("factory-ep"));
        assert_eq!(a.factory.lifetime_s, Some(45));
        assert_eq!(a.factory.psk_identity.as_deref(), Some("dev-7"));
        assert_eq!(MeterArgs::parse(&a.to_args()).unwrap(), a);
        let b = MeterArgs::parse(&strings(&[
            "--state-dir",
            "/s",
            "--objects",
            "/o",
            "--bootstrap",
            "coap://127.0.0.1:5783",
        ]))
        .unwrap();
        assert_eq!(MeterArgs::parse(&b.to_args()).unwrap(), b);
    }

    #[test]
    fn factory_mistakes_name_the_flag() {
        let base = ["--state-dir", "/s", "--objects", "/o"];
        let err = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            MeterArgs::parse(&strings(&v)).unwrap_err().to_string()
        };
        let e = err(&[]);
        assert!(e.contains("--pty-link is required unless"), "{e}");
        let e = err(&["--server", "coap://h", "--bootstrap", "coap://h"]);
        assert!(e.contains("--bootstrap given after --server"), "{e}");
        let e = err(&["--server", "http://h"]);
        assert!(e.contains("--server") && e.contains("coap://"), "{e}");
        let e = err(&["--server", "coaps://h"]);
        assert!(e.contains("needs --psk-identity"), "{e}");
        let e = err(&["--endpoint", "ep", "--pty-link", "/p"]);
        assert!(e.contains("--endpoint is factory provisioning"), "{e}");
        let e = err(&["--server", "coap://h", "--lifetime", "0"]);
        assert!(e.contains("--lifetime \"0\""), "{e}");
        let e = err(&["--server", "coap://h", "--endpoint", "a b"]);
        assert!(e.contains("--endpoint"), "{e}");
        let e = err(&["--server", "coap://h", "--exit-with-pid", "x"]);
        assert!(e.contains("--exit-with-pid"), "{e}");
        let e = err(&["--psk-key", "00"]);
        assert!(e.contains("unknown argument \"--psk-key\""), "{e}");
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
