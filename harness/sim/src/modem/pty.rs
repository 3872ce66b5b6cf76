//! The modem's serial port: a pseudo-terminal whose slave side the harness
//! opens as if it were `/dev/ttyUSB0`, published at a stable path by a
//! symlink (the slave's `/dev/pts/N` changes every boot).

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::error::SimError;

/// Names the PTY descriptors a re-executed meter adopts (`<master>,<slave>`).
pub const HANDOVER_ENV: &str = "METERBENCH_PTY_FDS";

/// The PTY pair of this process (the first one opened or adopted).
static KEPT: std::sync::OnceLock<(std::os::fd::RawFd, std::os::fd::RawFd)> =
    std::sync::OnceLock::new();

/// Prepares the PTY to survive an `exec` of this process: clears
/// close-on-exec on the pair and returns the environment variable that
/// tells the new image to adopt it ([`Pty::open_or_inherit`]). `None` when
/// no PTY is open.
pub fn exec_handover() -> Option<(&'static str, String)> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let (m, s) = *KEPT.get()?;
    for fd in [m, s] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).ok()?;
    }
    Some((HANDOVER_ENV, format!("{m},{s}")))
}

/// An open PTY pair and the symlink that names its slave.
#[derive(Debug)]
pub struct Pty {
    master: File,
    /// Held open for the life of the process: with no slave open, reads on
    /// the master fail with EIO, and the harness closes and reopens the port
    /// (power cycles, reconnects) whenever it likes.
    _slave: OwnedFd,
    slave_path: PathBuf,
    link: PathBuf,
}

impl Pty {
    /// Creates the PTY, puts the slave in raw mode (no echo, no line editing,
    /// no CR/LF translation: the AT bytes pass unchanged) and points `link`
    /// at the slave, atomically (symlink under a temporary name, rename over).
    pub fn open(link: &Path) -> Result<Self, SimError> {
        let pair =
            nix::pty::openpty(None, None).map_err(|e| SimError::Pty(format!("openpty: {e}")))?;
        let mut tio =
            tcgetattr(&pair.slave).map_err(|e| SimError::Pty(format!("tcgetattr: {e}")))?;
        cfmakeraw(&mut tio);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &tio)
            .map_err(|e| SimError::Pty(format!("tcsetattr: {e}")))?;
        let slave_path = nix::unistd::ttyname(&pair.slave)
            .map_err(|e| SimError::Pty(format!("ttyname: {e}")))?;

        let file_name = link.file_name().ok_or_else(|| {
            SimError::Usage(format!("--pty-link {} has no file name", link.display()))
        })?;
        let tmp = link.with_file_name(format!(
            ".{}.{}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let _ = fs::remove_file(&tmp);
        if let Some(parent) = link.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| SimError::io(parent, e))?;
        }
        std::os::unix::fs::symlink(&slave_path, &tmp).map_err(|e| SimError::io(&tmp, e))?;
        fs::rename(&tmp, link).map_err(|e| SimError::io(link, e))?;

        {
            use std::os::fd::AsRawFd;
            let _ = KEPT.set((pair.master.as_raw_fd(), pair.slave.as_raw_fd()));
        }
        Ok(Pty {
            master: File::from(pair.master),
            _slave: pair.slave,
            slave_path,
            link: link.to_owned(),
        })
    }

    /// The PTY an earlier image of this process handed over across `exec`
    /// (a firmware update restarts the meter in place, [`exec_handover`]),
    /// else a new one: the harness's open port keeps working across the
    /// restart, as a real meter's UART does.
    pub fn open_or_inherit(link: &Path) -> Result<Self, SimError> {
        match Self::inherited(link) {
            Some(pty) => {
                tracing::info!(pty = %pty.slave_path.display(), "modem port kept across the restart");
                Ok(pty)
            }
            None => Self::open(link),
        }
    }

    fn inherited(link: &Path) -> Option<Pty> {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        use std::os::fd::{FromRawFd, RawFd};
        let value = std::env::var(HANDOVER_ENV).ok()?;
        let (m, sl) = value.split_once(',')?;
        let (m, sl): (RawFd, RawFd) = (m.parse().ok()?, sl.parse().ok()?);
        if m < 3 || sl < 3 || m == sl {
            return None;
        }
        // Both must be open descriptors of this process, or nothing is adopted.
        fcntl(m, FcntlArg::F_GETFD).ok()?;
        fcntl(sl, FcntlArg::F_GETFD).ok()?;
        // SAFETY: the previous image of this process opened these two
        // descriptors (the PTY pair), cleared close-on-exec on them and named
        // them in HANDOVER_ENV; nothing else in this new image owns them.
        let (master, slave) = unsafe { (File::from_raw_fd(m), OwnedFd::from_raw_fd(sl)) };
        for fd in [m, sl] {
            let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        }
        let slave_path = nix::unistd::ttyname(&slave).ok()?;
        if fs::read_link(link).ok().as_deref() != Some(slave_path.as_path()) {
            let _ = fs::remove_file(link);
            std::os::unix::fs::symlink(&slave_path, link).ok()?;
        }
        let _ = KEPT.set((m, sl));
        Some(Pty {
            master,
            _slave: slave,
            slave_path,
            link: link.to_owned(),
        })
    }

    /// The slave device, e.g. `/dev/pts/7`.
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    pub fn link(&self) -> &Path {
        &self.link
    }

    /// A handle on the master side for a reader or writer thread.
    pub fn master(&self) -> Result<File, SimError> {
        self.master
            .try_clone()
            .map_err(|e| SimError::Pty(format!("dup master: {e}")))
    }

    /// Removes the link if it still names this PTY (a newer boot may have replaced it).
    pub fn remove_link(&self) {
        if fs::read_link(&self.link).is_ok_and(|target| target == self.slave_path) {
            let _ = fs::remove_file(&self.link);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn link_names_a_raw_slave_that_carries_bytes_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem.pty");
        let pty = Pty::open(&link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), pty.slave_path());

        let mut port = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&link)
            .unwrap();
        port.write_all(b"AT\r").unwrap();
        let mut master = pty.master().unwrap();
        let mut buf = [0u8; 3];
        master.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"AT\r", "raw mode: CR is not turned into LF");

        master.write_all(b"\r\nOK\r\n").unwrap();
        let mut back = [0u8; 6];
        port.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"\r\nOK\r\n");

        pty.remove_link();
        assert!(fs::symlink_metadata(&link).is_err());
    }

    #[test]
    fn a_second_pty_replaces_the_link_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem.pty");
        let first = Pty::open(&link).unwrap();
        let second = Pty::open(&link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), second.slave_path());
        first.remove_link();
        assert!(
            fs::read_link(&link).is_ok(),
            "the older PTY must not remove the newer link"
        );
    }
}
