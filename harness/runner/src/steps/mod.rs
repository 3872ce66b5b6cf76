//! The step engine: runs a case's steps against a rig session and turns what
//! happened into a verdict.

mod engine;
mod evidence;
pub mod firmware;
pub mod instances;
mod not_found;
mod power;
mod recovery;
mod security;
pub mod value;

pub use engine::{run_case, RepeatPosition};
