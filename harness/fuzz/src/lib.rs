//! A fuzz harness for meterbench on stable Rust: no cargo-fuzz, no nightly,
//! no sanitizer coverage.
//!
//! Every decoder of untrusted bytes and every datagram entry of the protocol
//! crates is a [`targets::Target`]. A pass feeds each target inputs made by
//! [`mutate::Mutator`] from its corpus (`corpus/<target>/`: spec vectors
//! from the crates' tests, see [`seeds`], and captured traffic, see
//! [`capture`]) and from pure random bytes, with a seeded [`rng::Rng`] so a
//! pass replays exactly. [`engine`] runs each input under `catch_unwind`,
//! times it, and writes whatever panics or hangs to `crashes/`. Inputs that
//! once crashed are kept in `regressions/<target>/` and replayed by the
//! crate's test.
//!
//! The stateful targets read [`frames`] scripts and are driven by
//! [`targets::driver::Driver`] the way the tokio shells drive the sans-IO
//! cores.

pub mod capture;
pub mod engine;
pub mod frames;
pub mod mutate;
pub mod rng;
pub mod seeds;
pub mod targets;

use std::path::PathBuf;

/// This crate's directory (`harness/fuzz`), where `corpus/`,
/// `regressions/` and `crashes/` live.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Seeds of a target: its corpus files, then its regressions (inputs that
/// once crashed are good starting points too).
pub fn corpus_of(
    target: &str,
    corpus_dir: &std::path::Path,
    regressions_dir: &std::path::Path,
) -> Vec<Vec<u8>> {
    engine::load_dir(&corpus_dir.join(target))
        .into_iter()
        .chain(engine::load_dir(&regressions_dir.join(target)))
        .map(|(_, bytes)| bytes)
        .collect()
}
