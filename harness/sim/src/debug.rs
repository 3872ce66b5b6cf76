//! The virtual rig's debug port: reads the meter's NV journal directly, as a
//! real bench reads flash over SWD — what the device holds, independent of
//! what it says over LwM2M — and, while the meter runs, its live energy
//! register from the RAM snapshot ([`crate::ram`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rig::RigError;

use crate::{nv, ram};

/// `rig::Debug` for the virtual rig.
#[derive(Debug, Clone)]
pub struct VirtualDebug {
    state_dir: PathBuf,
}

impl VirtualDebug {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        VirtualDebug {
            state_dir: state_dir.into(),
        }
    }
}

impl rig::Debug for VirtualDebug {
    /// Keys: `boot_count`, `firmware_version`, `energy_wh` (= `energy.committed_wh`,
    /// the register as last committed to NV), `energy.live_wh` (only while the
    /// meter runs), `lwm2m.server_uri`, `lwm2m.endpoint`, `lwm2m.lifetime_s`,
    /// `lwm2m.enabled` (and the bootstrap keys of [`crate::security::debug_state`]), `euicc.enabled` (1-based profile index, as `AT+MBPROF`), `euicc.switching`,
    /// `euicc.last_result`, `band.earfcn`, `band.channels`, `band.mask`,
    /// `nv.sequence` (newest valid journal record), `firmware.active_slot`
    /// (`a`/`b`), `firmware.slot_a_version`, `firmware.slot_b_version` (empty:
    /// no checked image), `firmware.download_offset`, `firmware.state`,
    /// `firmware.result`, `software.state`, and `written:<path>` for each
    /// value the server wrote. A meter never booted reads factory-fresh.
    fn read_state(&mut self) -> Result<BTreeMap<String, String>, RigError> {
        let data = nv::read(&self.state_dir).map_err(|e| RigError::Driver {
            driver: "virtual debug".to_owned(),
            message: e.to_string(),
        })?;
        let mut m = BTreeMap::new();
        m.insert("boot_count".to_owned(), data.boot_count.to_string());
        m.insert("firmware_version".to_owned(), data.firmware_version.clone());
        m.insert("energy_wh".to_owned(), data.energy_wh.to_string());
        m.insert("energy.committed_wh".to_owned(), data.energy_wh.to_string());
        if let Some(r) = ram::read_live(&self.state_dir) {
            m.insert("energy.live_wh".to_owned(), r.energy_live_wh.to_string());
        }
        m.insert(
            "euicc.enabled".to_owned(),
            (data.euicc.enabled + 1).to_string(),
        );
        m.insert(
            "euicc.switching".to_owned(),
            data.euicc.switching.is_some().to_string(),
        );
        m.insert(
            "euicc.last_result".to_owned(),
            data.euicc.last_result.to_string(),
        );
        m.insert("band.earfcn".to_owned(), data.band.earfcn.to_string());
        m.insert("band.channels".to_owned(), data.band.channels_text());
        m.insert("band.mask".to_owned(), data.band.mask().to_string());
        let scans = nv::journal::scan_dir(&self.state_dir).map_err(|e| RigError::Driver {
            driver: "virtual debug".to_owned(),
            message: e.to_string(),
        })?;
        let seq = nv::journal::newest(&scans).map_or(0, |(_, l)| l.seq);
        m.insert("nv.sequence".to_owned(), seq.to_string());
        m.insert(
            "lwm2m.server_uri".to_owned(),
            data.lwm2m.server_uri.clone().unwrap_or_default(),
        );
        m.insert(
            "lwm2m.endpoint".to_owned(),
            data.lwm2m.endpoint.clone().unwrap_or_default(),
        );
        m.insert(
            "lwm2m.lifetime_s".to_owned(),
            data.lwm2m.lifetime_s.to_string(),
        );
        m.insert("lwm2m.enabled".to_owned(), data.lwm2m.enabled.to_string());
        // Bootstrap settings and provisioned accounts, keys as fingerprints.
        crate::security::debug_state(&data.lwm2m, &mut m);
        let fw = &data.firmware;
        m.insert(
            "firmware.active_slot".to_owned(),
            fw.active_slot.name().to_owned(),
        );
        for slot in [crate::firmware::Slot::A, crate::firmware::Slot::B] {
            m.insert(
                format!("firmware.slot_{}_version", slot.name()),
                fw.slot(slot).version.clone().unwrap_or_default(),
            );
        }
        m.insert(
            "firmware.download_offset".to_owned(),
            fw.download_offset.to_string(),
        );
        m.insert("firmware.state".to_owned(), fw.state.to_string());
        m.insert("firmware.result".to_owned(), fw.result.to_string());
        m.insert("software.state".to_owned(), data.software.state.to_string());
        for (path, value) in data.written_values() {
            m.insert(format!("written:{path}"), value.to_text());
        }
        Ok(m)
    }

    fn describe(&self) -> String {
        format!(
            "virtual debug port (NV journal {}/{{{}}})",
            self.state_dir.display(),
            nv::SECTOR_NAMES.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig::Debug;

    #[test]
    fn reads_what_nv_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = nv::NvStore::open(dir.path()).unwrap();
        store
            .update(|d| {
                d.boot_count = 3;
                d.energy_wh = 77;
                d.lwm2m.server_uri = Some("coap://127.0.0.1:1".into());
                d.record_written(
                    "/3/0/15".parse().unwrap(),
                    &lwm2m::Value::String("Europe/Paris".into()),
                );
            })
            .unwrap();
        let state = VirtualDebug::new(dir.path()).read_state().unwrap();
        assert_eq!(state["boot_count"], "3");
        assert_eq!(state["energy_wh"], "77");
        assert_eq!(state["firmware_version"], "1.0");
        assert_eq!(state["energy.committed_wh"], "77");
        assert!(
            !state.contains_key("energy.live_wh"),
            "no meter runs: RAM reads absent"
        );
        assert_eq!(state["euicc.enabled"], "1");
        assert_eq!(state["band.earfcn"], "6300");
        assert_eq!(state["nv.sequence"], "1");
        assert_eq!(state["lwm2m.server_uri"], "coap://127.0.0.1:1");
        assert_eq!(state["written:/3/0/15"], "Europe/Paris");
        assert_eq!(state["firmware.active_slot"], "a");
        assert_eq!(state["firmware.slot_a_version"], "1.0");
        assert_eq!(state["firmware.slot_b_version"], "");
        assert_eq!(state["firmware.download_offset"], "0");
    }

    #[test]
    fn fresh_meter_reads_factory_state_and_corrupt_nv_is_a_driver_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut dbg = VirtualDebug::new(dir.path());
        assert_eq!(dbg.read_state().unwrap()["boot_count"], "0");
        // A record whose CRC holds but whose content is not NV data.
        std::fs::write(
            dir.path().join(nv::SECTOR_NAMES[0]),
            nv::journal::encode(1, b"{"),
        )
        .unwrap();
        let e = dbg.read_state().unwrap_err().to_string();
        assert!(
            e.starts_with("virtual debug:") && e.contains("corrupt"),
            "{e}"
        );
    }
}
