//! What a run leaves behind: `reports/<run-id>/junit.xml`, `index.html`, per-case artifact
//! folders, and `reports/latest` pointing at the newest run.

pub mod html;
pub mod junit;
pub mod merge;
pub mod outcome;
pub mod previous_times;
pub mod run_dir;

pub use outcome::{CaseOutcome, EarlierAttempt, RigInfo, Verdict};
pub use run_dir::RunDir;

use std::io::Write;
use std::path::Path;

/// Writes a file so that a reader never sees half of it: temp file, fsync, rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
