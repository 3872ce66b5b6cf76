//! Object 5 (Firmware Update) and object 9 (Software Management) as types
//! that read like the spec, and the state-machine rules a conformance case
//! checks a device against (LwM2M 1.1 Core Appendix E.6, OMA registry
//! objects 5 v1.0 / v1.1 and 9 v1.0).
//!
//! # Using it
//!
//! **A device model (virtual meter).** Keep a [`FirmwareStatus`]; before
//! changing it call [`check_transition`] (object 5 v1.1, the version the
//! model declares; a debug assertion is enough: the simulator must never
//! emit a step a real device is failed for). Answer
//! Execute /5/0/2 with [`execute_update_response`]; parse a written Package
//! URI with [`PackageUri::parse`] and report its error's `result` (7 or 9),
//! either at once (Idle → Idle) or through Downloading → Idle. Download with
//! [`Block2Download`](crate::coap::block::Block2Download), receive pushes with
//! [`Block1Assembler`](crate::coap::block::Block1Assembler).
//!
//! **Test images.** [`image`] is the format of meterbench's firmware images:
//! the server's firmware store builds them with [`image::build`], the virtual
//! meter checks them with [`image::check`] and reports
//! [`image::ImageError::update_result`].
//!
//! **A conformance check (runner/server).** Read the object 5 version the
//! device registered with ([`ObjectVersion::declared`] on the registration's
//! object list: `</5>;ver=1.1`, 1.0 without `ver`), observe /5/0/3 and
//! /5/0/5, feed each notification to a [`FirmwareRecorder`] made
//! [`with_version`](TransitionRecorder::with_version) with
//! [`record_resource`](TransitionRecorder::record_resource), and at the end
//! of the case call [`check`](TransitionRecorder::check): the error shows the
//! first disallowed step and the whole observed sequence with times.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lwm2m::firmware::{resource, FirmwareRecorder, ObjectVersion};
//! let t0 = Instant::now();
//! let mut rec = FirmwareRecorder::new().with_version(ObjectVersion::V1_1);
//! for (ms, res, value) in [(0, 3, 0), (0, 5, 0), (100, 3, 1), (900, 3, 2), (1000, 3, 3),
//!                          (5000, 3, 0), (5001, 5, 1)] {
//!     rec.record_resource(t0 + Duration::from_millis(ms), res, value).unwrap();
//! }
//! let steps = rec.check().unwrap();
//! assert_eq!(steps.len(), 5); // Idle, Downloading, Downloaded, Updating, Idle/Success
//! assert!(steps[4].merged);   // State=0 and Result=1 arrived separately
//! ```

pub mod image;
mod recorder;
pub mod software;
mod state;
mod uri;
mod version;

pub use recorder::{
    Firmware, FirmwareRecorder, Observed, Recording, SequenceError, Software, SoftwareRecorder,
    TransitionRecorder, UpdateMachine,
};
pub use software::{SoftwareResult, SoftwareState, SoftwareStatus};
pub use state::{
    check_transition, check_transition_for, is_consistent, is_consistent_for, DeliveryMethod,
    FirmwareState, FirmwareStatus, ProtocolSupport, TransitionError, UpdateResult, MODEL_VERSION,
};
pub use uri::{PackageUri, PackageUriError};
pub use version::ObjectVersion;

/// Object 5's id.
pub const OBJECT_ID: u16 = 5;

/// Object 5 resource ids (registry v1.1: 0–3 and 5–13; v1.0 has 0–3 and
/// 5–9). There is no resource 4: it was Update Supported Objects in 1.0 and
/// was removed. There is no resource 14 either.
pub mod resource {
    pub const PACKAGE: u16 = 0;
    pub const PACKAGE_URI: u16 = 1;
    pub const UPDATE: u16 = 2;
    pub const STATE: u16 = 3;
    pub const UPDATE_RESULT: u16 = 5;
    pub const PKG_NAME: u16 = 6;
    pub const PKG_VERSION: u16 = 7;
    pub const PROTOCOL_SUPPORT: u16 = 8;
    pub const DELIVERY_METHOD: u16 = 9;
    pub const CANCEL: u16 = 10;
    pub const SEVERITY: u16 = 11;
    pub const LAST_STATE_CHANGE_TIME: u16 = 12;
    pub const MAXIMUM_DEFER_PERIOD: u16 = 13;
}

/// A resource value that is not one of the values the registry defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    #[error("{value} is not a defined {what} value")]
    OutOfRange { what: &'static str, value: i64 },
    /// An object version (`ver` attribute, `<ObjectVersion>`) that is not `major.minor`.
    #[error("object version {text:?} is not major.minor")]
    BadVersion { text: String },
}

/// The response code for Execute on /5/0/2 (Update) in `state`: 2.04 in
/// Downloaded, else 4.05 Method Not Allowed. Registry text of resource 2:
/// the update "can only be executed" when State is Downloaded; meterbench
/// expects devices to refuse it with 4.05, the code LwM2M uses for an
/// operation not allowed on a resource in its current state.
pub fn execute_update_response(state: FirmwareState) -> u16 {
    if state == FirmwareState::Downloaded {
        204
    } else {
        405
    }
}
