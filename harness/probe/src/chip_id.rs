//! What identifies the chip at the end of the probe: the debug port's own
//! ID (ARM ADI `DPIDR`: who designed the debug port, which version) and the
//! family's device ID register ([`rig::swd::id_register`]), so that `rig
//! check` shows which silicon answered and a rig's `chip_id` refuses a
//! board that carries another chip than the one its firmware is built for.

use std::fmt;

use rig::swd::IdRegister;

/// The chip as it identified itself on attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipId {
    /// The probe-rs target the session attached as (the rig's `chip`).
    pub target: String,
    /// ARM debug port IDR; `None` where it was not read (probe-rs's fake
    /// probe has no debug port registers).
    pub dpidr: Option<u32>,
    /// The family's ID register and the device ID in it; `None` for a
    /// family meterbench has no register for.
    pub device: Option<DeviceId>,
}

/// A family ID register's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId {
    pub register: IdRegister,
    /// The whole register, revision bits included.
    pub raw: u32,
}

impl DeviceId {
    /// The bits that name the device.
    pub fn id(&self) -> u32 {
        self.raw & self.register.mask
    }

    /// A register that reads as all zeros or all ones was not read at all
    /// (the bus answered without the register: wrong family, locked part).
    pub fn is_plausible(&self) -> bool {
        self.id() != 0 && self.id() != self.register.mask
    }
}

impl ChipId {
    /// `expected` (the rig's `debug.chip_id`) against what the chip said;
    /// the error says both, and where to fix it.
    pub fn check(&self, expected: Option<u32>) -> Result<(), String> {
        let Some(want) = expected else {
            return Ok(());
        };
        match &self.device {
            Some(d) if d.is_plausible() && d.id() == want => Ok(()),
            Some(d) if d.is_plausible() => Err(format!(
                "debug.chip_id is {want:#x} but the chip's {} reads {:#x}: another chip than the rig file says is attached",
                d.register.name,
                d.id()
            )),
            Some(d) => Err(format!(
                "debug.chip_id is {want:#x} but the chip's {} at {:#010x} reads {:#010x}, which is no device ID: is `debug.chip` ({}) the right family?",
                d.register.name, d.register.address, d.raw, self.target
            )),
            None => Err(format!(
                "debug.chip_id is {want:#x} but meterbench knows no ID register for {}",
                self.target
            )),
        }
    }
}

/// The IDs only: the chip's name is the rig's, said elsewhere.
impl fmt::Display for ChipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.device {
            Some(d) => write!(
                f,
                "{} {:#x} (register {:#010x})",
                d.register.name,
                d.id(),
                d.raw
            )?,
            None => write!(f, "no device ID register known for {}", self.target)?,
        }
        if let Some(dpidr) = self.dpidr {
            write!(f, ", {}", Dpidr(dpidr))?;
        }
        Ok(())
    }
}

/// ARM ADI v5.2 §B2.2.5: DPIDR's fields.
struct Dpidr(u32);

impl fmt::Display for Dpidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let version = (v >> 12) & 0xF;
        let jep_cc = (v >> 8) & 0xF;
        let jep_id = (v >> 1) & 0x7F;
        // JEP106 bank 5 (4 continuations), 0x3B: Arm Ltd, the designer of
        // nearly every Cortex-M debug port.
        let designer = if (jep_cc, jep_id) == (4, 0x3B) {
            "Arm".to_owned()
        } else {
            format!("JEP106 {jep_cc}/{jep_id:#04x}")
        };
        write!(f, "DPIDR {v:#010x} ({designer} DPv{version})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stm32l4(raw: u32) -> ChipId {
        ChipId {
            target: "STM32L476RGTx".into(),
            dpidr: Some(0x2BA0_1477),
            device: Some(DeviceId {
                register: rig::swd::id_register("STM32L476RGTx").unwrap(),
                raw,
            }),
        }
    }

    #[test]
    fn the_device_id_ignores_the_revision_bits() {
        let c = stm32l4(0x1007_6415);
        assert_eq!(c.device.unwrap().id(), 0x415);
        assert_eq!(c.check(Some(0x415)), Ok(()));
        assert_eq!(c.check(None), Ok(()));
        assert_eq!(
            c.to_string(),
            "DBGMCU_IDCODE.DEV_ID 0x415 (register 0x10076415), DPIDR 0x2ba01477 (Arm DPv1)"
        );
    }

    #[test]
    fn another_chip_is_refused_naming_both_ids() {
        let e = stm32l4(0x1000_6461).check(Some(0x415)).unwrap_err();
        assert!(
            e.starts_with("debug.chip_id is 0x415 but the chip's DBGMCU_IDCODE.DEV_ID reads 0x461"),
            "{e}"
        );
    }

    #[test]
    fn a_register_of_zeros_or_ones_is_not_taken_for_an_id() {
        for raw in [0, 0xFFFF_FFFF] {
            let c = stm32l4(raw);
            assert!(!c.device.unwrap().is_plausible());
            let e = c.check(Some(0x415)).unwrap_err();
            assert!(e.contains("which is no device ID"), "{e}");
            assert!(e.contains("0xe0042000"), "{e}");
        }
    }

    #[test]
    fn a_family_without_a_known_register_cannot_check_an_id() {
        let c = ChipId {
            target: "esp32c3".into(),
            dpidr: None,
            device: None,
        };
        assert_eq!(c.check(None), Ok(()));
        assert!(c
            .check(Some(1))
            .unwrap_err()
            .contains("knows no ID register for esp32c3"));
        assert_eq!(c.to_string(), "no device ID register known for esp32c3");
    }
}
