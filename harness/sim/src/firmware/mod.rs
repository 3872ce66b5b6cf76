//! Firmware update on the virtual meter: LwM2M object 5 (Firmware Update,
//! LwM2M 1.1 Core §E.6 and Appendix E.6.1's state diagram) over an A/B slot
//! layout, the way a meter with two flash banks updates itself.
//!
//! - [`update`]: object 5's resources and state machine on the device:
//!   Package URI → download, Package (Block1 push), Update, Cancel.
//! - [`download`]: pulls a Package URI into a slot file on its own thread:
//!   CoAP with Block2 (RFC 7959) and HTTP with Range requests, both resuming
//!   from the offset NV holds after a power cut.
//! - [`slots`]: the two slot files (`slot-a.bin`, `slot-b.bin`) beside NV.
//! - [`image`]: the image header check (SHA-256, self-test byte).
//! - [`boot`]: the bootloader step at process start: try a new slot, roll
//!   back when its self-test fails.
//! - [`at`]: the dialect's firmware settings (`AT+MBFWSZX`, `AT+MBFWSLOT`,
//!   `AT+MBFWTMO`).
//!
//! What survives a power cut is in [`FirmwareNv`] (part of NV): the slots,
//! State and Update Result, the Package URI, the download offset and ETag.

pub mod at;
pub mod boot;
pub mod download;
pub mod image;
pub mod slots;
pub mod update;

use serde::{Deserialize, Serialize};

pub use update::FirmwareUpdate;

/// Default size of one slot: an image larger than this is Update Result 2.
pub const DEFAULT_SLOT_SIZE: u64 = 256 * 1024;
/// Default RAM the meter has for a pushed Package: it holds a Block1 push
/// whole before writing it to the slot, so a push larger than this runs it
/// out of RAM (Update Result 3) although the slot could hold it. A pull
/// streams into flash block by block and needs no such buffer.
pub const DEFAULT_PUSH_RAM: u64 = 128 * 1024;
/// Default Block2 size exponent for CoAP pulls (SZX 6 = 1024 bytes).
pub const DEFAULT_SZX: u8 = 6;

/// One of the two flash banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Slot {
    #[default]
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
}

/// How the image being received arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// Pull over CoAP Block2 from the Package URI.
    Coap,
    /// Pull over HTTP from the Package URI.
    Http,
    /// Pushed by the server into /5/0/0 (Block1).
    Push,
}

/// What one slot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SlotNv {
    /// The version of the image in the slot (from its header), `None` when
    /// the slot is empty or its content is not a checked image.
    pub version: Option<String>,
    /// Name of the package (last Package URI segment), if known.
    pub package: Option<String>,
}

/// An update that has been started but whose image has not yet proven
/// itself: the bootloader runs the new slot's self-test and rolls back to
/// `previous` when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub previous: Slot,
}

/// The download settings the AT dialect changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirmwareSettings {
    /// Block2 size exponent for CoAP pulls, 0–6 (`AT+MBFWSZX`).
    pub szx: u8,
    /// Bytes one slot holds (`AT+MBFWSLOT`).
    pub slot_size: u64,
    /// Seconds without progress after which a download is given up as
    /// Connection Lost (`AT+MBFWTMO`); 0: CoAP's own retransmission limits
    /// (RFC 7252 §4.8, about 93 s) and 60 s for HTTP.
    pub stall_timeout_s: u32,
    /// Bytes of RAM a pushed Package may take ([`DEFAULT_PUSH_RAM`]).
    pub push_ram: u64,
}

impl Default for FirmwareSettings {
    fn default() -> Self {
        FirmwareSettings {
            szx: DEFAULT_SZX,
            slot_size: DEFAULT_SLOT_SIZE,
            stall_timeout_s: 0,
            push_ram: DEFAULT_PUSH_RAM,
        }
    }
}

impl FirmwareSettings {
    /// The most a push may bring: what RAM holds, and never more than the
    /// slot it is then written to.
    pub fn push_limit(&self) -> u64 {
        self.push_ram.min(self.slot_size)
    }

    /// What a push refused as too large (4.13) ran out of: RAM when the RAM
    /// buffer is the smaller limit (Update Result 3, "Out of RAM during
    /// downloading process"), else flash (2, "Not enough flash memory for
    /// the new firmware package"). Object 5 resource 5, registry v1.0/v1.1.
    pub fn push_too_large_result(&self) -> lwm2m::firmware::UpdateResult {
        if self.push_ram < self.slot_size {
            lwm2m::firmware::UpdateResult::OutOfRam
        } else {
            lwm2m::firmware::UpdateResult::NotEnoughFlash
        }
    }
}

/// Object 5's part of NV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirmwareNv {
    /// The slot the bootloader starts.
    pub active_slot: Slot,
    /// Slot A, then slot B.
    pub slots: [SlotNv; 2],
    /// /5/0/3 State (0–3).
    pub state: u8,
    /// /5/0/5 Update Result (0–10).
    pub result: u8,
    /// /5/0/1 Package URI as written.
    pub package_uri: String,
    /// How the image in the inactive slot is (being) delivered.
    pub method: Option<Method>,
    /// Bytes of the inactive slot known good: where a download resumes.
    pub download_offset: u64,
    /// ETag (hex) the first part of the download came with (CoAP ETag or
    /// HTTP entity tag), so a changed image is noticed on resume.
    pub etag: Option<String>,
    /// Set between the slot swap and the bootloader's verdict.
    pub trial: Option<Trial>,
    /// /5/0/12 Last State Change Time (Unix seconds).
    pub last_state_change: i64,
    pub settings: FirmwareSettings,
}

impl Default for FirmwareNv {
    fn default() -> Self {
        FirmwareNv {
            active_slot: Slot::A,
            slots: [
                SlotNv {
                    version: Some(crate::identity::FACTORY_FIRMWARE_VERSION.to_owned()),
                    package: Some(FACTORY_PACKAGE.to_owned()),
                },
                SlotNv::default(),
            ],
            state: 0,
            result: 0,
            package_uri: String::new(),
            method: None,
            download_offset: 0,
            etag: None,
            trial: None,
            last_state_change: 0,
            settings: FirmwareSettings::default(),
        }
    }
}

/// /5/0/6 PkgName of the factory image.
pub const FACTORY_PACKAGE: &str = "meterbench-meter";

impl FirmwareNv {
    pub fn slot(&self, slot: Slot) -> &SlotNv {
        &self.slots[slot.index()]
    }

    pub fn slot_mut(&mut self, slot: Slot) -> &mut SlotNv {
        &mut self.slots[slot.index()]
    }

    /// The slot downloads go to.
    pub fn inactive_slot(&self) -> Slot {
        self.active_slot.other()
    }
}
