//! probe-rs as the bench's SWD driver factory: `rig` builds a bench from
//! its rig file and asks this for `debug: { kind: swd }`.

use std::path::Path;

use rig::bench::{PartError, SwdParts};
use rig::swd::SwdSpec;

use crate::driver::SwdDebug;

/// Makes an [`SwdDebug`] for a rig's `debug:` part (no probe is touched
/// until the first read).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeParts;

impl SwdParts for ProbeParts {
    fn debug(&self, spec: &SwdSpec, rig_dir: &Path) -> Result<Box<dyn rig::Debug>, PartError> {
        Ok(Box::new(SwdDebug::new(spec, rig_dir)?))
    }
}
