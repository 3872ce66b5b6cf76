//! Object 5's State and Update Result resources and the transitions between
//! them (LwM2M 1.1 Core Appendix E.6, Figure E.6.1-1 "Firmware Update State
//! Diagram"; object 5 v1.0 and v1.1 in the OMA registry, whose resource
//! texts differ on where a failed update goes and add Cancel and deferral).

use std::fmt;

use super::version::ObjectVersion;
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

/// Resource 5, Update Result (object 5 registry v1.1, range 0..11; v1.0
/// defines 0..9, see [`UpdateResult::defined_in`]).
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
    /// 10: firmware update cancelled (Cancel, resource 10; v1.1).
    Cancelled = 10,
    /// 11: firmware update deferred (v1.1): Update was executed and the
    /// user put it off; State stays Downloaded until the user accepts it
    /// (resource 3 text, v1.1).
    Deferred = 11,
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
        Deferred,
    ]
);
integer_enum!(DeliveryMethod, "Delivery Method", [Pull, Push, Both]);
integer_enum!(
    ProtocolSupport,
    "Protocol Support",
    [Coap, Coaps, Http, Https, CoapTcp, CoapTls]
);

impl UpdateResult {
    /// Results a failed download ends in, Downloading → Idle: the values
    /// resource 5 gives for the download and the package it brings (2–7, 9).
    /// 8 names the update, 1 and 10 are not failures.
    pub const DOWNLOAD_FAILURES: &'static [UpdateResult] = &[
        UpdateResult::NotEnoughFlash,
        UpdateResult::OutOfRam,
        UpdateResult::ConnectionLost,
        UpdateResult::IntegrityCheckFailure,
        UpdateResult::UnsupportedPackageType,
        UpdateResult::InvalidUri,
        UpdateResult::UnsupportedProtocol,
    ];

    /// Results a failed update ends in, Updating → Downloaded (v1.0 and
    /// v1.1) or Updating → Idle (v1.1). 8 "Firmware update failed", and the
    /// package's own faults that an update can find: 2 (not enough flash for
    /// the new package), 5 (integrity check failure: resource 3 v1.1 names
    /// it as a reason to go to Idle) and 6 (unsupported package type). 3 (out
    /// of RAM) is worded for the download, but clients report it from a
    /// failed upgrade too (Anjay's `perform_upgrade` handler may return it)
    /// and no text forbids that, so it is accepted. 4, 7 and 9 concern the
    /// connection and the URI, which an update does not use.
    pub const UPDATE_FAILURES: &'static [UpdateResult] = &[
        UpdateResult::NotEnoughFlash,
        UpdateResult::OutOfRam,
        UpdateResult::IntegrityCheckFailure,
        UpdateResult::UnsupportedPackageType,
        UpdateResult::UpdateFailed,
    ];

    /// Results a Write of the Package URI may leave in Idle when the client
    /// refuses the URI at once, without starting a download: 7 and 9. LwM2M
    /// 1.1 Core §E.6.1 (text under Figure E.6.1-1): errors are reported only
    /// through Update Result, "if the URI is invalid, it changes its Update
    /// Result resource value to 7"; resource 5 value 9 is reported "when the
    /// URI contained a URI scheme unsupported by the client".
    pub const URI_REFUSALS: &'static [UpdateResult] =
        &[UpdateResult::InvalidUri, UpdateResult::UnsupportedProtocol];

    /// Whether object 5 of `version` defines this value: v1.0 has 0..9
    /// (OMA-SUP-XML_LWM2M_Firmware_Update-V1_0_3, resource 5 range 0..9);
    /// v1.1 adds 10 (Cancel) and 11 (deferred), range 0..11.
    pub fn defined_in(self, version: ObjectVersion) -> bool {
        version >= ObjectVersion::V1_1 || self <= UpdateResult::UnsupportedProtocol
    }

    /// Whether this result reports a failure (2–9; 10 is a cancellation,
    /// 11 a deferral).
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            UpdateResult::Initial
                | UpdateResult::Success
                | UpdateResult::Cancelled
                | UpdateResult::Deferred
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

/// [`is_consistent_for`] for object 5 v1.1, the version meterbench's own
/// model declares (`fixtures/objects/5-firmware-update.xml`).
pub fn is_consistent(state: FirmwareState, result: UpdateResult) -> bool {
    is_consistent_for(MODEL_VERSION, state, result)
}

/// The object 5 version of meterbench's model (the fixture's
/// `<ObjectVersion>`), which the virtual meter registers with.
pub const MODEL_VERSION: ObjectVersion = ObjectVersion::V1_1;

/// Whether a device implementing object 5 `version` may report `result`
/// while in `state`:
/// - the value must be defined in that version (v1.0: 0..9, v1.1: 0..11);
/// - Downloading and Updating carry Initial: the result "MUST be reset to
///   Initial value" once a download or update is initiated (resource 5);
/// - Downloaded carries Initial, the failure of an update that kept the
///   image ("If the Update Resource failed, the state returns at
///   Downloaded", resource 3 v1.0; "may return to either Downloaded or
///   Idle", v1.1), or in v1.1 Deferred ("the state stays in Downloaded state
///   and the Update Result is set to 11", resource 3 v1.1);
/// - Idle carries the outcome of the last attempt, never Deferred; in v1.0
///   never 8 either, since a failed update returns to Downloaded and leaving
///   Downloaded resets the result to 0.
pub fn is_consistent_for(
    version: ObjectVersion,
    state: FirmwareState,
    result: UpdateResult,
) -> bool {
    use FirmwareState::*;
    if !result.defined_in(version) {
        return false;
    }
    let v1_1 = version >= ObjectVersion::V1_1;
    match state {
        Idle => result != UpdateResult::Deferred && (v1_1 || result != UpdateResult::UpdateFailed),
        Downloading | Updating => result == UpdateResult::Initial,
        Downloaded => {
            result == UpdateResult::Initial
                || UpdateResult::UPDATE_FAILURES.contains(&result)
                || (v1_1 && result == UpdateResult::Deferred)
        }
    }
}

/// [`check_transition_for`] for object 5 v1.1 ([`MODEL_VERSION`]): the
/// check the virtual meter holds itself to.
pub fn check_transition(from: FirmwareStatus, to: FirmwareStatus) -> Result<(), TransitionError> {
    check_transition_for(MODEL_VERSION, from, to)
}

/// Checks one step of object 5's state machine for a device implementing
/// object 5 `version` (LwM2M 1.1 Core Appendix E.6.1, Figure E.6.1-1, and
/// the registry text of resources 3, 5 and 10 of that version). Allowed, with
/// the Update Result the step leaves:
///
/// | from | to | Update Result after | trigger | source |
/// |---|---|---|---|---|
/// | Idle (any) | Downloading | 0 | Package URI written, or first Package block | Fig. E.6.1-1; res. 5 "reset to Initial" |
/// | Idle (any) | Idle | 0 | empty Package URI or Package: reset | res. 3 |
/// | Idle (any) | Idle | 7, 9 | Package URI refused at the Write, no download | §E.6.1 text; res. 5 value 9 |
/// | Downloading | Downloaded | 0 | download complete | Fig. E.6.1-1; res. 3 |
/// | Downloading | Idle | 0 | reset | res. 3 |
/// | Downloading | Idle | 2, 3, 4, 5, 6, 7, 9 | download failed | Fig. E.6.1-1; res. 5 |
/// | Downloading | Idle | 10 (v1.1) | Cancel | res. 10 v1.1 |
/// | Downloaded (any) | Updating | 0 | Execute Update, or the user accepts a deferred update | Fig. E.6.1-1; res. 3 |
/// | Downloaded (any) | Idle | 0 | reset | res. 3 |
/// | Downloaded (any) | Idle | 10 (v1.1) | Cancel, also of a deferred update | res. 10 v1.1 |
/// | Downloaded (not 11) | Downloaded | 11 (v1.1) | Execute Update, deferred by the user | res. 3 and 5 v1.1 |
/// | Updating | Idle | 1 | update succeeded | Fig. E.6.1-1; res. 3 |
/// | Updating | Downloaded | 2, 3, 5, 6, 8 | update failed, image kept | res. 3 (v1.0: "returns at Downloaded") |
/// | Updating | Idle | 2, 3, 5, 6, 8 (v1.1 only) | update failed, image dropped | res. 3 v1.1: "may return to either Downloaded or Idle" |
///
/// Both statuses must also be ones the version allows ([`is_consistent_for`]).
/// No change at all is allowed. Everything else is an error naming the
/// rule: a skipped state (Idle → Downloaded, Idle → Updating), a way back
/// into Downloading, a reset or Cancel while Updating (resource 10: "MUST
/// respond with Method Not Allowed"), Updating → Idle with a failure in
/// v1.0, a value the version does not define.
pub fn check_transition_for(
    version: ObjectVersion,
    from: FirmwareStatus,
    to: FirmwareStatus,
) -> Result<(), TransitionError> {
    use FirmwareState::*;
    use UpdateResult as R;
    if from == to {
        return Ok(());
    }
    let fail = |reason: String| Err(TransitionError::new(from, to, reason));
    for s in [from, to] {
        if !s.result.defined_in(version) {
            return fail(format!(
                "Update Result {} is not defined in object 5 v{version} (resource 5: 0..9 in v1.0, 0..11 from v1.1)",
                s.result.code()
            ));
        }
        if !is_consistent_for(version, s.state, s.result) {
            return fail(format!(
                "{s} cannot be reported in object 5 v{version} (resource 5: reset to 0 when a download or update starts; Downloaded keeps only an update failure{}; Idle never holds 11{})",
                if version >= ObjectVersion::V1_1 { " or 11" } else { "" },
                if version >= ObjectVersion::V1_1 { "" } else { " nor 8" },
            ));
        }
    }
    let v1_1 = version >= ObjectVersion::V1_1;
    let r = to.result;
    let rule = |ok: bool, reason: &str| if ok { Ok(()) } else { fail(reason.to_string()) };
    match (from.state, to.state) {
        // Downloading and Updating hold only 0 (checked above).
        (Idle, Downloading) | (Downloaded, Updating) => Ok(()),
        (Downloading, Downloaded) => rule(
            r == R::Initial,
            "a completed download is Downloaded with 0; a failed one goes to Idle",
        ),
        (Idle, Idle) => rule(
            r == R::Initial || R::URI_REFUSALS.contains(&r),
            "in Idle the Update Result changes only to 0 (reset) or to 7 / 9 (Package URI refused at the Write, Core §E.6.1)",
        ),
        (Downloading, Idle) => rule(
            r == R::Initial
                || R::DOWNLOAD_FAILURES.contains(&r)
                || (v1_1 && r == R::Cancelled),
            if v1_1 {
                "a download ends in Idle only when reset (0), failed (2-7, 9) or cancelled (10)"
            } else {
                "a download ends in Idle only when reset (0) or failed (2-7, 9)"
            },
        ),
        (Downloaded, Idle) => rule(
            r == R::Initial || (v1_1 && r == R::Cancelled),
            if v1_1 {
                "Downloaded returns to Idle only by a reset (0) or Cancel (10); Success needs Updating"
            } else {
                "Downloaded returns to Idle only by a reset (0); Success needs Updating"
            },
        ),
        (Downloaded, Downloaded) => rule(
            v1_1 && r == R::Deferred,
            if v1_1 {
                "in Downloaded the Update Result changes only to 11 (update deferred); a failure needs Updating first"
            } else {
                "in Downloaded the Update Result does not change without an update (v1.0 has no deferral)"
            },
        ),
        (Updating, Idle) => {
            if r == R::Success || (v1_1 && R::UPDATE_FAILURES.contains(&r)) {
                Ok(())
            } else if R::UPDATE_FAILURES.contains(&r) {
                fail("in object 5 v1.0 a failed update returns to Downloaded (resource 3: \"the state returns at Downloaded\"); Idle after a failure is v1.1".into())
            } else if r == R::Cancelled || r == R::Initial {
                fail("an update under way cannot be cancelled or reset (resource 10: Method Not Allowed once the update started)".into())
            } else {
                fail("Updating ends in Idle with Success (1) or, from v1.1, an update failure (2, 3, 5, 6, 8)".into())
            }
        }
        (Updating, Downloaded) => rule(
            R::UPDATE_FAILURES.contains(&r),
            "Updating returns to Downloaded only when the update failed (2, 3, 5, 6, 8)",
        ),
        (Downloading, Downloading) | (Updating, Updating) => {
            fail("the Update Result does not change within this State".into())
        }
        (Idle, Downloaded) => fail("Downloaded must be reached through Downloading".into()),
        (Idle | Downloading, Updating) => {
            fail("Updating is entered only from Downloaded, by Execute Update".into())
        }
        (Downloaded | Updating, Downloading) => {
            fail("Downloading is entered only from Idle".into())
        }
    }
}
