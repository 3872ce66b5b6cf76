//! The two firmware slots as files beside NV (`<state_dir>/slot-a.bin`,
//! `slot-b.bin`): flash banks a download writes into and the bootloader
//! reads from. A download appends to the inactive slot and syncs before NV
//! records the new offset, so after a power cut the slot holds at least
//! what NV says; anything past that offset is cut off on resume.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Slot;
use crate::error::SimError;

/// The file of `slot` in `state_dir`.
pub fn path(state_dir: &Path, slot: Slot) -> PathBuf {
    state_dir.join(format!("slot-{}.bin", slot.name()))
}

/// A slot opened for writing at an offset.
#[derive(Debug)]
pub struct SlotWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl SlotWriter {
    /// Opens `path` to continue at `offset`: longer content is cut to
    /// `offset`; shorter content (the file lost bytes NV claims) makes the
    /// writer start at the end of what is there, which the caller reads
    /// from [`SlotWriter::len`].
    pub fn open_at(path: &Path, offset: u64) -> Result<SlotWriter, SimError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| SimError::io(path, e))?;
        let have = file.metadata().map_err(|e| SimError::io(path, e))?.len();
        let len = have.min(offset);
        file.set_len(len).map_err(|e| SimError::io(path, e))?;
        file.seek(SeekFrom::Start(len))
            .map_err(|e| SimError::io(path, e))?;
        Ok(SlotWriter {
            file,
            path: path.to_owned(),
            len,
        })
    }

    /// Bytes in the slot.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends and makes it durable (the offset reported after this may go to NV).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), SimError> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| SimError::io(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Cuts the slot back to empty (the image changed under a resume).
    pub fn restart(&mut self) -> Result<(), SimError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(|_| ()))
            .map_err(|e| SimError::io(&self.path, e))?;
        self.len = 0;
        Ok(())
    }
}

/// Writes a whole image into `path` (a push), durably.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let mut w = SlotWriter::open_at(path, 0)?;
    w.append(bytes)
}

/// Reads a slot; a missing file is an empty slot.
pub fn read(path: &Path) -> Result<Vec<u8>, SimError> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(SimError::io(path, e)),
    }
}

/// Erases a slot.
pub fn erase(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot erase slot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_cuts_bytes_past_the_recorded_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), Slot::B);
        let mut w = SlotWriter::open_at(&p, 0).unwrap();
        w.append(&[1u8; 100]).unwrap();
        drop(w);
        let w = SlotWriter::open_at(&p, 64).unwrap();
        assert_eq!(w.len(), 64);
        assert_eq!(read(&p).unwrap().len(), 64);
        // NV claims more than the slot holds: start where the slot ends.
        let w = SlotWriter::open_at(&p, 1000).unwrap();
        assert_eq!(w.len(), 64);
        erase(&p);
        assert!(read(&p).unwrap().is_empty());
    }
}
