//! The virtual network as a lab controls it: which of the meter's eUICC
//! profiles the network refuses to attach. A real lab does this on its
//! network emulator, beside the device and not through its modem; so does
//! the virtual rig: [`VirtualNetwork`] (`rig::Network`) writes
//! [`LAB_NETWORK_FILE`] in the meter's state folder, outside its NV storage
//! (the network's state is not the device's and survives its power cuts),
//! and the meter reads it every second before its network model attaches.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rig::{NetworkAction, RigError};
use serde::{Deserialize, Serialize};

/// File name of the lab's network settings inside the state folder.
pub const LAB_NETWORK_FILE: &str = "lab-network.json";

const DRIVER: &str = "virtual network";

/// What the lab set on the virtual network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabNetwork {
    /// Profiles whose attach the network refuses, by place on the eUICC (1-based).
    pub refused_profiles: BTreeSet<u8>,
}

impl LabNetwork {
    /// The settings in `state_dir`; none (the network accepts everyone) when
    /// the file is missing or unreadable (logged).
    pub fn load(state_dir: &Path) -> LabNetwork {
        let path = state_dir.join(LAB_NETWORK_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "lab network settings unreadable; accepting every profile");
                LabNetwork::default()
            }),
            Err(_) => LabNetwork::default(),
        }
    }

    /// Writes the settings atomically (a meter reading meanwhile sees the
    /// old or the new ones, never half).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(LAB_NETWORK_FILE);
        let tmp = state_dir.join(format!("{LAB_NETWORK_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &path)
    }

    /// Whether the network refuses the profile at `index` (0-based, as the meter counts).
    pub fn refuses(&self, index: usize) -> bool {
        u8::try_from(index + 1).is_ok_and(|slot| self.refused_profiles.contains(&slot))
    }
}

/// `rig::Network` for the virtual rig.
#[derive(Debug, Clone)]
pub struct VirtualNetwork {
    state_dir: PathBuf,
    /// How many profiles the virtual eUICC holds.
    profiles: u8,
}

impl VirtualNetwork {
    /// Controls the network of the meter whose state folder is `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        VirtualNetwork {
            state_dir: state_dir.into(),
            profiles: 2,
        }
    }
}

impl rig::Network for VirtualNetwork {
    fn supports(&self, action: &NetworkAction) -> bool {
        match action {
            NetworkAction::AcceptAll => true,
            NetworkAction::Refuse(p) => p.0 <= self.profiles,
        }
    }

    fn apply(&mut self, action: &NetworkAction) -> Result<(), RigError> {
        let mut lab = LabNetwork::load(&self.state_dir);
        match action {
            NetworkAction::AcceptAll => lab.refused_profiles.clear(),
            NetworkAction::Refuse(p) if p.0 <= self.profiles => {
                lab.refused_profiles.insert(p.0);
            }
            NetworkAction::Refuse(p) => {
                return Err(RigError::Driver {
                    driver: DRIVER.into(),
                    message: format!("the virtual eUICC has no {p}"),
                })
            }
        }
        tracing::info!(%action, "virtual network");
        lab.save(&self.state_dir).map_err(|source| RigError::Io {
            path: self.state_dir.join(LAB_NETWORK_FILE),
            source,
        })
    }

    fn describe(&self) -> String {
        format!("virtual network (state {})", self.state_dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig::{Network, ProfileSlot};

    #[test]
    fn the_lab_refuses_a_profile_and_accepts_everyone_again() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LabNetwork::load(dir.path()), LabNetwork::default());
        let mut n = VirtualNetwork::new(dir.path());
        n.apply(&NetworkAction::Refuse(ProfileSlot(2))).unwrap();
        let lab = LabNetwork::load(dir.path());
        assert!(lab.refuses(1) && !lab.refuses(0));
        n.apply(&NetworkAction::AcceptAll).unwrap();
        assert!(!LabNetwork::load(dir.path()).refuses(1));
        assert!(!n.supports(&NetworkAction::Refuse(ProfileSlot(3))));
        assert!(n.apply(&NetworkAction::Refuse(ProfileSlot(3))).is_err());
    }

    #[test]
    fn unreadable_settings_accept_everyone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LAB_NETWORK_FILE), "not json").unwrap();
        assert_eq!(LabNetwork::load(dir.path()), LabNetwork::default());
    }
}
