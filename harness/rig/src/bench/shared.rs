//! Driver handles that more than one holder uses at once: the power switch
//! (steps, and an interrupt that cuts power while a step holds the rest of
//! the bench) and a measuring supply (power steps switch it while the
//! current sampler measures through the same connection).

use std::sync::{Arc, Mutex};

use crate::error::RigError;
use crate::power::{Identity, Reading, Supply};
use crate::traits::Power;

/// Power behind its own lock, so that an interrupt can cut it while a step
/// holds the rest of the bench.
pub type SharedPower = Arc<Mutex<Box<dyn Power>>>;

/// A measuring supply shared by power steps and the current sampler.
pub type SharedSupply = Arc<Mutex<Box<dyn Supply>>>;

/// The shared supply behind the [`Power`] (and [`Supply`]) traits: one
/// SCPI command at a time, whoever sends it.
#[derive(Clone)]
pub struct SupplyHandle(pub SharedSupply);

impl SupplyHandle {
    pub fn new(supply: Box<dyn Supply>) -> SupplyHandle {
        SupplyHandle(Arc::new(Mutex::new(supply)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Supply) -> T) -> T {
        // A holder that panicked mid-command leaves the supply usable: the
        // next command re-synchronises with the instrument.
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(s.as_mut())
    }
}

impl Power for SupplyHandle {
    fn on(&mut self) -> Result<(), RigError> {
        self.with(|s| s.on())
    }
    fn off(&mut self) -> Result<(), RigError> {
        self.with(|s| s.off())
    }
    fn is_on(&mut self) -> bool {
        self.with(|s| s.is_on())
    }
    fn describe(&self) -> String {
        self.with(|s| s.describe())
    }
}

impl Supply for SupplyHandle {
    fn identify(&mut self) -> Result<Identity, RigError> {
        self.with(|s| s.identify())
    }
    fn measure(&mut self) -> Result<Reading, RigError> {
        self.with(|s| s.measure())
    }
}

/// `power` shared behind a lock.
pub fn share(power: Box<dyn Power>) -> SharedPower {
    Arc::new(Mutex::new(power))
}
