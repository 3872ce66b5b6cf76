//! A rig file's `faults:` part: which calls the fault injectors
//! ([`super::FaultyPower`], [`super::FaultyModem`]) spoil, so that a
//! stand-in bench shows how the harness meets a misbehaving driver without
//! any test code. The YAML is checked strictly: an unknown key or action is
//! a rig file error with its line and column.
//!
//! ```yaml
//! faults:
//!   power: [{ call: 2, action: fail }]
//!   modem: [{ call: 3, action: drop_response }, { call: 5, action: { delay: 2s } }]
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use super::fault::{Fault, FaultAction, FaultPlan};

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    /// Power calls counted: `on` and `off`.
    #[serde(default)]
    pub power: Vec<FaultSpec>,
    /// Modem calls counted: commands sent.
    #[serde(default)]
    pub modem: Vec<FaultSpec>,
    /// Faults are refused on a rig with real parts (anything but
    /// `virtual`) unless this says the parts are stand-ins: a `faults:`
    /// block copied into a lab's rig would otherwise turn real runs into
    /// bench errors the hardware never caused.
    #[serde(default)]
    pub on_real_parts: bool,
}

/// One spoiled call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Which call, counting from 1.
    pub call: NonZeroU32,
    pub action: FaultActionSpec,
}

/// [`FaultAction`] as a rig file writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultActionSpec {
    /// The call fails at once, as a dead driver's would.
    Fail,
    /// The call reaches the driver, its answer is lost.
    DropResponse,
    /// The call is passed on this late (`500ms`, `2s`).
    Delay(
        #[serde(deserialize_with = "crate::duration::deserialize")]
        #[schemars(with = "crate::schema::DurationText")]
        Duration,
    ),
}

impl FaultsSpec {
    pub fn plan(&self) -> FaultPlan {
        let faults = |specs: &[FaultSpec]| {
            specs
                .iter()
                .map(|f| {
                    let action = match f.action {
                        FaultActionSpec::Fail => FaultAction::Fail,
                        FaultActionSpec::DropResponse => FaultAction::DropResponse,
                        FaultActionSpec::Delay(d) => FaultAction::Delay(d),
                    };
                    Fault::new(f.call.get(), action)
                })
                .collect()
        };
        FaultPlan {
            power: faults(&self.power),
            modem: faults(&self.modem),
        }
    }
}
