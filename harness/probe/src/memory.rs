//! Target memory behind one small trait, so that fact decoding is the same
//! code over a live core (probe-rs) and over an ELF's image (tests, dry
//! checks).

use crate::error::ProbeError;

/// Byte reads of target memory.
pub trait TargetMemory {
    /// Fills `buf` from `address`.
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), ProbeError>;
    /// What this memory is, for errors.
    fn describe(&self) -> String;
}

/// A live core. Byte reads, so that any alignment and width work on every
/// core and probe (probe-rs splits them into the widest transfers it can).
pub(crate) struct CoreMemory<'c, 's> {
    pub core: &'c mut probe_rs::Core<'s>,
    pub name: String,
}

impl TargetMemory for CoreMemory<'_, '_> {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), ProbeError> {
        use probe_rs::MemoryInterface;
        self.core
            .read_8(address, buf)
            .map_err(|e| ProbeError::Memory {
                memory: self.name.clone(),
                address,
                len: buf.len(),
                message: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
