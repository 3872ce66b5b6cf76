//! Object 9, LwM2M Software Management (OMA registry, v1.0): the Update State
//! and Update Result resources and the Package Installation State Machine.

use std::fmt;

use super::state::{integer_enum, TransitionError};
use super::FirmwareError;

/// Object 9 resource ids.
pub mod resource {
    pub const PKG_NAME: u16 = 0;
    pub const PKG_VERSION: u16 = 1;
    pub const PACKAGE: u16 = 2;
    pub const PACKAGE_URI: u16 = 3;
    pub const INSTALL: u16 = 4;
    pub const CHECKPOINT: u16 = 5;
    pub const UNINSTALL: u16 = 6;
    pub const UPDATE_STATE: u16 = 7;
    pub const UPDATE_SUPPORTED_OBJECTS: u16 = 8;
    pub const UPDATE_RESULT: u16 = 9;
    pub const ACTIVATE: u16 = 10;
    pub const DEACTIVATE: u16 = 11;
    pub const ACTIVATION_STATE: u16 = 12;
    pub const PACKAGE_SETTINGS: u16 = 13;
    pub const USER_NAME: u16 = 14;
    pub const PASSWORD: u16 = 15;
}

/// Resource 7, Update State.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SoftwareState {
    /// 0: INITIAL, before downloading.
    Initial = 0,
    /// 1: DOWNLOAD STARTED, the download is on-going.
    DownloadStarted = 1,
    /// 2: DOWNLOADED, the package is completely downloaded.
    Downloaded = 2,
    /// 3: DELIVERED, downloaded and verified, ready to install; stays here
    /// when Install fails.
    Delivered = 3,
    /// 4: INSTALLED.
    Installed = 4,
}

/// Resource 9, Update Result. 4–49 are reserved, 55 is undefined and 60–200
/// reserved in the registry; those values are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SoftwareResult {
    /// 0: initial value; reset before a new download and by Uninstall.
    Initial = 0,
    /// 1: downloading.
    Downloading = 1,
    /// 2: software successfully installed.
    Installed = 2,
    /// 3: successfully downloaded and package integrity verified.
    DownloadedVerified = 3,
    /// 50: not enough storage for the new package.
    NotEnoughStorage = 50,
    /// 51: out of memory during the download.
    OutOfMemory = 51,
    /// 52: connection lost during the download.
    ConnectionLost = 52,
    /// 53: package integrity check failure.
    IntegrityCheckFailure = 53,
    /// 54: unsupported package type.
    UnsupportedPackageType = 54,
    /// 56: invalid URI.
    InvalidUri = 56,
    /// 57: device defined update error.
    UpdateError = 57,
    /// 58: software installation failure.
    InstallationFailure = 58,
    /// 59: uninstallation failure during forUpdate.
    UninstallationFailure = 59,
}

integer_enum!(
    SoftwareState,
    "Update State",
    [Initial, DownloadStarted, Downloaded, Delivered, Installed]
);
integer_enum!(
    SoftwareResult,
    "Update Result",
    [
        Initial,
        Downloading,
        Installed,
        DownloadedVerified,
        NotEnoughStorage,
        OutOfMemory,
        ConnectionLost,
        IntegrityCheckFailure,
        UnsupportedPackageType,
        InvalidUri,
        UpdateError,
        InstallationFailure,
        UninstallationFailure,
    ]
);

impl SoftwareResult {
    /// Results a failed download or verification ends in (back to INITIAL).
    pub const DOWNLOAD_FAILURES: &'static [SoftwareResult] = &[
        SoftwareResult::NotEnoughStorage,
        SoftwareResult::OutOfMemory,
        SoftwareResult::ConnectionLost,
        SoftwareResult::IntegrityCheckFailure,
        SoftwareResult::UnsupportedPackageType,
        SoftwareResult::InvalidUri,
        SoftwareResult::UpdateError,
    ];
}

/// An Update State and Update Result observed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SoftwareStatus {
    pub state: SoftwareState,
    pub result: SoftwareResult,
}

impl SoftwareStatus {
    pub fn new(state: SoftwareState, result: SoftwareResult) -> Self {
        SoftwareStatus { state, result }
    }
}

impl fmt::Display for SoftwareStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.state, self.result)
    }
}

/// Whether `result` can be reported in `state` (registry text of resources 7 and 9).
pub fn is_consistent(state: SoftwareState, result: SoftwareResult) -> bool {
    use SoftwareResult as R;
    use SoftwareState::*;
    match state {
        Initial => result == R::Initial || R::DOWNLOAD_FAILURES.contains(&result),
        DownloadStarted | Downloaded => matches!(result, R::Initial | R::Downloading),
        Delivered => matches!(
            result,
            R::Initial | R::DownloadedVerified | R::InstallationFailure
        ),
        Installed => matches!(result, R::Installed | R::UninstallationFailure),
    }
}

/// Checks one step of object 9's Package Installation State Machine:
///
/// | from | to | Update Result after | trigger |
/// |---|---|---|---|
/// | INITIAL | DOWNLOAD STARTED | 0, 1 | Package / Package URI written |
/// | DOWNLOAD STARTED | DOWNLOADED | 0, 1 | download complete |
/// | DOWNLOAD STARTED | INITIAL | 0, 50–52, 54, 56, 57 | cancelled or failed |
/// | DOWNLOADED | DELIVERED | 3 | integrity verified |
/// | DOWNLOADED | INITIAL | 0, 50–54, 56, 57 | verification failed |
/// | DELIVERED | INSTALLED | 2 | Install |
/// | DELIVERED | DELIVERED | 58 | Install failed |
/// | DELIVERED, INSTALLED | INITIAL | 0 | Uninstall |
/// | INSTALLED | DELIVERED | 0, 3 | Uninstall "1" (for update) |
/// | INSTALLED | INSTALLED | 59 | Uninstall for update failed |
/// | DOWNLOAD STARTED | DOWNLOAD STARTED | 0 → 1 | result set after state |
/// | INITIAL | INITIAL | any → 0 | reset before a new download |
pub fn check_transition(from: SoftwareStatus, to: SoftwareStatus) -> Result<(), TransitionError> {
    use SoftwareResult as R;
    use SoftwareState::*;
    if from == to {
        return Ok(());
    }
    let fail = |reason: &str| Err(TransitionError::new(from, to, reason));
    if !is_consistent(to.state, to.result) {
        return fail("that Update Result cannot be reported in that Update State");
    }
    let r = to.result;
    let ok = match (from.state, to.state) {
        (Initial, DownloadStarted) | (DownloadStarted, Downloaded) => true,
        (DownloadStarted, Initial) => r != R::IntegrityCheckFailure,
        (Downloaded, Delivered) => r == R::DownloadedVerified,
        (Downloaded, Initial) => true,
        (Delivered, Installed) => r == R::Installed,
        (Delivered, Delivered) => r == R::InstallationFailure,
        (Delivered | Installed, Initial) => r == R::Initial,
        (Installed, Delivered) => matches!(r, R::Initial | R::DownloadedVerified),
        (Installed, Installed) => r == R::UninstallationFailure,
        (DownloadStarted, DownloadStarted) => from.result == R::Initial && r == R::Downloading,
        (Initial, Initial) => r == R::Initial,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        fail("no such step in the Package Installation State Machine")
    }
}
