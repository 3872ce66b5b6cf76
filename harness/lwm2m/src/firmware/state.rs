//! Object 5's State and Update Result resources and the transitions between
//! them (LwM2M 1.1 Core Appendix E.6, Figure E.6.1-1 "Firmware Update State
//! Diagram"; object 5 v1.1 in the OMA registry).

use std::fmt;

use super::FirmwareError;

/// Resource 3, State (object 5 registry: "0: Idle (before downloading or
/// after successful updating) 1: Downloading 2: Downloaded 3: Updating").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FirmwareState {
    Idle = 0,
    Downloading = 1,
    Downloaded = 2,
    Updating = 3,
}

/// Resource 5, Update Result (object 5 registry, v1.1; 10 from the Cancel
/// resource 10 of the same version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum UpdateResult {
    /// 0: initial value; reset when a download or update starts.
    Initial = 0,
    /// 1: firmware updated successfully.
    Success = 1,
    /// 2: not enough flash memory for the new package.
    NotEnoughFlash = 2,
    /// 3: out of RAM during the download.
    OutOfRam = 3,
    /// 4: connection lost during the download.
    ConnectionLost = 4,
    /// 5: integrity check failure for the new package.
    IntegrityCheckFailure = 5,
    /// 6: unsupported package type.
    UnsupportedPackageType = 6,
    /// 7: invalid URI.
    InvalidUri = 7,
    /// 8: firmware update failed.
    UpdateFailed = 8,
    /// 9: unsupported protocol (the Package URI's scheme).
    UnsupportedProtocol = 9,
    /// 10: firmware update cancelled (Cancel, resource 10).
    Cancelled = 10,
}

/// Resource 9, Firmware Update Delivery Method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DeliveryMethod {
    Pull = 0,
    Push = 1,
    Both = 2,
}

/// Resource 8, Firmware Update Protocol Support (multiple instances), and the
/// scheme of a Package URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ProtocolSupport {
    Coap = 0,
    Coaps = 1,
    Http = 2,
    Https = 3,
    CoapTcp = 4,
    CoapTls = 5,
}

macro_rules! integer_enum {
    ($ty:ident, $what:literal, [$($variant:ident),+ $(,)?]) => {
        impl $ty {
            /// Every value, in numeric order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The resource value.
            pub fn code(self) -> u8 {
                self as u8
            }

            /// Parses a resource value; out-of-range values are an error.
            pub fn from_code(value: i64) -> Result<Self, FirmwareError> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| i64::from(v.code()) == value)
                    .ok_or(FirmwareError::OutOfRange { what: $what, value })
            }
        }

        impl TryFrom<i64> for $ty {
            type Error = FirmwareError;
            fn try_from(value: i64) -> Result<Self, FirmwareError> {
                Self::from_code(value)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}({})", self, self.code())
            }
        }
    };
}
pub(crate) use integer_enum;

integer_enum!(
    FirmwareState,
    "State",
    [Idle, Downloading, Downloaded, Updating]
);
integer_enum!(
    UpdateResult,
    "Update Result",
    [
        Initial,
        Success,
        NotEnoughFlash,
        OutOfRam,
        ConnectionLost,
        IntegrityCheckFailure,
        UnsupportedPackageType,
        InvalidUri,
        UpdateFailed,
        UnsupportedProtocol,
        Cancelled,
    ]
);
integer_enum!(DeliveryMethod, "Delivery Method", [Pull, Push, Both]);
integer_enum!(
    ProtocolSupport,
    "Protocol Support",
    [Coap, Coaps, Http, Https, CoapTcp, CoapTls]
);

impl UpdateResult {
    /// Results a failed download ends in, Downloading → Idle (Figure E.6.1-1).
    pub const DOWNLOAD_FAILURES: &'static [UpdateResult] = &[
        UpdateResult::NotEnoughFlash,
        UpdateResult::OutOfRam,
        UpdateResult::ConnectionLost,
        UpdateResult::IntegrityCheckFailure,
        UpdateResult::UnsupportedPackageType,
        UpdateResult::InvalidUri,
        UpdateResult::UnsupportedProtocol,
    ];

    /// Results a failed update ends in, Updating → Downloaded (or Idle).
    pub const UPDATE_FAILURES: &'static [UpdateResult] = &[
        UpdateResult::NotEnoughFlash,
        UpdateResult::OutOfRam,
        UpdateResult::IntegrityCheckFailure,
        UpdateResult::UpdateFailed,
    ];

    /// Whether this result reports a failure (2–9; 10 is a cancellation).
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            UpdateResult::Initial | UpdateResult::Success | UpdateResult::Cancelled
        )
    }
}

/// A State / Update Result combination or step that object 5 does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{from} -> {to} is not allowed: {reason}")]
pub struct TransitionError {
    /// `State/Update Result` before, e.g. `Downloaded(2)/Initial(0)`.
    pub from: String,
    /// `State/Update Result` after.
    pub to: String,
    pub reason: String,
}

impl TransitionError {
    pub(crate) fn new(
        from: impl fmt::Display,
        to: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        TransitionError {
            from: from.to_string(),
            to: to.to_string(),
            reason: reason.into(),
        }
    }
}

/// A State and Update Result observed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirmwareStatus {
    pub state: FirmwareState,
    pub result: UpdateResult,
}

impl FirmwareStatus {
    pub fn new(state: FirmwareState, result: UpdateResult) -> Self {
        FirmwareStatus { state, result }
    }
}

impl fmt::Display for FirmwareStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.state, self.result)
    }
}

/// Whether a device may report `result` while in `state`: Downloading and
/// Updating always carry Initial (the result "MUST be reset to Initial value"
/// when a download or update starts, registry text of resource 5); Downloaded
/// carries Initial, or the failure of an update that kept the image; Idle
/// carries anything (the outcome of the last attempt).
pub fn is_consistent(state: FirmwareState, result: UpdateResult) -> bool {
    use FirmwareState::*;
    match state {
        Idle => true,
        Downloading | Updating => result == UpdateResult::Initial,
        Downloaded => {
            result == UpdateResult::Initial || UpdateResult::UPDATE_FAILURES.contains(&result)
        }
    }
}

/// Checks one step of object 5's state machine (LwM2M 1.1 Core E.6.1,
/// Figure E.6.1-1). Allowed, with the Update Result the step must leave:
///
/// | from | to | Update Result after | trigger |
/// |---|---|---|---|
/// | Idle | Downloading | 0 | Package URI written, or first Package block |
/// | Downloading | Downloaded | 0 | download complete |
/// | Downloading | Idle | 0, 10 | empty Package URI / Package, Cancel |
/// | Downloading | Idle | 2, 3, 4, 5, 6, 7, 9 | download failed |
/// | Downloaded | Updating | 0 | Execute Update |
/// | Downloaded | Idle | 0, 10 | empty Package URI / Package, Cancel |
/// | Updating | Idle | 1 | update succeeded |
/// | Updating | Downloaded | 2, 3, 5, 8 | update failed, image kept |
/// | Updating | Idle | 2, 3, 5, 8 | update failed, image discarded \* |
/// | Idle | Idle | any → 0 | empty Package URI resets the result |
///
/// \* Figure E.6.1-1 returns a failed update to Downloaded; clients that
/// erase the image on failure (Zephyr's, for one) go to Idle, which the
/// resource 5 text does not forbid, so it is accepted.
///
/// No change at all is allowed. Anything else — a skipped state
/// (Idle → Downloaded), Updating without Downloaded, a result change while
/// Downloading — is an error naming the rule.
pub fn check_transition(from: FirmwareStatus, to: FirmwareStatus) -> Result<(), TransitionError> {
    use FirmwareState::*;
    use UpdateResult as R;
    if from == to {
        return Ok(());
    }
    let fail = |reason: &str| Err(TransitionError::new(from, to, reason));
    if !is_consistent(to.state, to.result) {
        return fail("that Update Result cannot be reported in that State (resource 5: reset to 0 when a download or update starts)");
    }
    let r = to.result;
    match (from.state, to.state) {
        (Idle, Downloading) | (Downloading, Downloaded) | (Downloaded, Updating) => Ok(()),
        (Downloading, Idle) => {
            if r == R::Initial || r == R::Cancelled || R::DOWNLOAD_FAILURES.contains(&r) {
                Ok(())
            } else {
                fail("a download ends in Idle only when cancelled (0, 10) or failed (2-7, 9)")
            }
        }
        (Downloaded, Idle) => {
            if r == R::Initial || r == R::Cancelled {
                Ok(())
            } else {
                fail("Downloaded returns to Idle only when the package is cleared (0) or cancelled (10)")
            }
        }
        (Updating, Idle) => {
            if r == R::Success || R::UPDATE_FAILURES.contains(&r) {
                Ok(())
            } else {
                fail("Updating ends in Idle with Success (1) or an update failure (2, 3, 5, 8)")
            }
        }
        (Updating, Downloaded) => {
            if R::UPDATE_FAILURES.contains(&r) {
                Ok(())
            } else {
                fail("Updating returns to Downloaded only when the update failed (2, 3, 5, 8)")
            }
        }
        (Idle, Idle) => {
            if r == R::Initial {
                Ok(())
            } else {
                fail("in Idle the Update Result only changes back to 0, or by a download or update")
            }
        }
        (s, t) if s == t => fail("the Update Result does not change within this State"),
        (Idle, Downloaded) => fail("Downloaded must be reached through Downloading"),
        (Idle | Downloading, Updating) => {
            fail("Updating is entered only from Downloaded, by Execute Update")
        }
        (_, Downloading) => fail("Downloading is entered only from Idle"),
        _ => fail("no such step in Figure E.6.1-1"),
    }
}
