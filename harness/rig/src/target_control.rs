//! What a debug port that reaches the MCU itself (SWD) can do beyond
//! reporting facts: flash an image, reset, halt and run the core, read its
//! memory. A port that only reports facts (the virtual rig's NV reader)
//! has none of this: [`crate::Debug::control`] is `None` there, and a step
//! that needs it is skipped with that reason rather than faked.
//!
//! Every call blocks until the probe answers (a flash takes seconds to
//! minutes); an async caller runs them with `tokio::task::spawn_blocking`
//! or `block_in_place`, never on a runtime worker directly.

use std::path::PathBuf;

use crate::error::RigError;
use crate::facts::FactValue;

/// An image file and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashImage {
    pub path: PathBuf,
    pub format: ImageFormat,
}

/// The image formats a bench flashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// ELF: addresses from its loadable segments.
    Elf,
    /// Intel HEX: addresses in its records.
    Hex,
    /// A raw binary written from `base_address` (the start of flash when absent).
    Bin { base_address: Option<u64> },
}

impl ImageFormat {
    /// The format a file's extension names (`.elf`/`.axf`/no extension: ELF,
    /// `.hex`/`.ihex`: HEX, `.bin`: binary at the start of flash).
    pub fn from_path(path: &std::path::Path) -> ImageFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("hex" | "ihex") => ImageFormat::Hex,
            Some("bin") => ImageFormat::Bin { base_address: None },
            _ => ImageFormat::Elf,
        }
    }
}

/// One step of a flash, for a progress bar: `done` of `total` bytes of
/// `phase` (total unknown until the flash layout is ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashProgress {
    pub phase: FlashPhase,
    pub done: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashPhase {
    Erase,
    Program,
    Verify,
}

/// How the core comes out of a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMode {
    /// Reset and let the firmware run.
    Run,
    /// Reset and halt at the reset vector, before the firmware's first instruction.
    Halt,
}

/// Flash, reset, halt/run and raw reads on the device's MCU.
pub trait TargetControl: Send {
    /// Writes `image` to flash; `progress` is called as bytes are erased,
    /// programmed and verified. The core is left halted; reset to run.
    fn flash(
        &mut self,
        image: &FlashImage,
        progress: &mut dyn FnMut(FlashProgress),
    ) -> Result<(), RigError>;
    fn reset(&mut self, mode: ResetMode) -> Result<(), RigError>;
    fn halt(&mut self) -> Result<(), RigError>;
    fn run(&mut self) -> Result<(), RigError>;
    /// `len` bytes of target memory from `address`.
    fn read_memory(&mut self, address: u64, len: usize) -> Result<Vec<u8>, RigError>;
    /// A symbol of the rig's ELF, read from target memory and decoded as
    /// its type (`type_name` as in the rig file, or by the symbol's size).
    fn read_symbol(&mut self, symbol: &str, type_name: Option<&str>)
        -> Result<FactValue, RigError>;
}
