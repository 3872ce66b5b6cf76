//! The folder of one run.

use std::path::{Path, PathBuf};

pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `<reports>/<run-id>/` with an id from the local time and the
    /// process id (two runs in one second on one bench still differ).
    pub fn create(reports: &Path) -> std::io::Result<RunDir> {
        let id = format!(
            "{}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S"),
            std::process::id()
        );
        let path = reports.join(&id);
        std::fs::create_dir_all(&path)?;
        Ok(RunDir { id, path })
    }

    /// Artifacts folder of one case on one rig.
    pub fn case_dir(&self, rig: &str, case_id: &str) -> std::io::Result<PathBuf> {
        let dir = self.path.join(rig).join(case_id);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub fn junit_path(&self) -> PathBuf {
        self.path.join("junit.xml")
    }

    /// Points `<reports>/latest` at this run (a relative symlink, swapped atomically).
    pub fn mark_latest(&self) -> std::io::Result<()> {
        let reports = self.path.parent().unwrap_or(Path::new("."));
        let tmp = reports.join(format!(".latest.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&self.id, &tmp)?;
        std::fs::rename(&tmp, reports.join("latest"))
    }
}
