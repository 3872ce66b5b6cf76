//! Network control: what a lab can make the device's cellular network do
//! (a network emulator refusing one subscription's attach, then accepting
//! everyone again). A case asks for it with `needs: [network-control]` and
//! the `network:` step; the rig's `network:` part says how this bench does
//! it. [`CommandNetwork`] drives an emulator through shell commands; the
//! virtual rig's driver lives with the virtual meter (`sim`).

use std::fmt;
use std::str::FromStr;

use crate::error::RigError;
use crate::model::CommandNetworkSpec;
use crate::shell::{self, NotFinished};
use crate::traits::Network;

/// One of the device's eUICC profiles, by its place on the eUICC (1-based):
/// `first-profile`, `second-profile`, `profile-<n>`. A lab knows which
/// subscription that is on its network; the case does not need to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProfileSlot(pub u8);

impl FromStr for ProfileSlot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first-profile" => Ok(ProfileSlot(1)),
            "second-profile" => Ok(ProfileSlot(2)),
            other => other
                .strip_prefix("profile-")
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| *n >= 1)
                .map(ProfileSlot)
                .ok_or_else(|| {
                    format!(
                        "`{other}`: expected first-profile, second-profile or profile-<n> (n from 1)"
                    )
                }),
        }
    }
}

impl fmt::Display for ProfileSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("first-profile"),
            2 => f.write_str("second-profile"),
            n => write!(f, "profile-{n}"),
        }
    }
}

/// What the lab makes the network do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkAction {
    /// The network refuses this profile's attach (its subscription is barred).
    Refuse(ProfileSlot),
    /// The network accepts every profile again.
    AcceptAll,
}

impl fmt::Display for NetworkAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkAction::Refuse(p) => write!(f, "refuse {p}"),
            NetworkAction::AcceptAll => f.write_str("accept-all"),
        }
    }
}

/// Whether `name` is a lowercase name (`a-z`, `0-9`, `-`), as firmware
/// roles and network profiles are written.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A network emulator driven by the rig's shell commands.
pub struct CommandNetwork {
    spec: CommandNetworkSpec,
}

impl CommandNetwork {
    pub fn new(spec: CommandNetworkSpec) -> Self {
        CommandNetwork { spec }
    }

    fn command(&self, action: &NetworkAction) -> Option<&str> {
        match action {
            NetworkAction::AcceptAll => Some(&self.spec.accept_all),
            NetworkAction::Refuse(p) => self
                .spec
                .refuse
                .iter()
                .find(|(name, _)| name.parse::<ProfileSlot>().ok() == Some(*p))
                .map(|(_, c)| c.as_str()),
        }
    }
}

impl Network for CommandNetwork {
    fn supports(&self, action: &NetworkAction) -> bool {
        self.command(action).is_some()
    }

    fn apply(&mut self, action: &NetworkAction) -> Result<(), RigError> {
        let command = self
            .command(action)
            .ok_or_else(|| RigError::Driver {
                driver: "command network".into(),
                message: format!("the rig gives no command to {action}"),
            })?
            .to_owned();
        let f = shell::run(&command, self.spec.timeout).map_err(|e| match e {
            NotFinished::Spawn(outcome) => RigError::NetworkCommand {
                command: command.clone(),
                outcome,
                stderr: String::new(),
            },
            NotFinished::Timeout => RigError::NetworkTimeout {
                command: command.clone(),
                waited: self.spec.timeout,
            },
        })?;
        if f.success {
            Ok(())
        } else {
            Err(RigError::NetworkCommand {
                command,
                outcome: f.outcome,
                stderr: f.stderr,
            })
        }
    }

    fn describe(&self) -> String {
        format!("command network (accept-all: `{}`)", self.spec.accept_all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_named_by_their_place_on_the_euicc() {
        for (text, n) in [
            ("first-profile", 1),
            ("second-profile", 2),
            ("profile-3", 3),
        ] {
            let p: ProfileSlot = text.parse().unwrap();
            assert_eq!(p, ProfileSlot(n));
            assert_eq!(p.to_string(), text);
        }
        for bad in ["profile-0", "third", "profile-", "8949020000123456788"] {
            assert!(bad.parse::<ProfileSlot>().is_err(), "{bad}");
        }
    }
}
