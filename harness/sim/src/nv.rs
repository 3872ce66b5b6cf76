//! Non-volatile storage: what the meter keeps across power cuts, the way its
//! flash would. The content ([`NvData`], JSON) is written as a record of an
//! append-only journal in two erase sectors ([`journal`]): a write cut short
//! by a SIGKILL leaves a torn record that the next boot ignores, falling back
//! to the last record whose CRC holds — never a magically complete one.
//!
//! Kept behind the small [`NvStore`] API (open, `update`, `data`) so its
//! users do not see the journal.

pub mod crc32;
pub mod journal;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path as FsPath, PathBuf};

use lwm2m::{Path, Value};
use serde::{Deserialize, Serialize};

use crate::band::BandConfig;
use crate::error::SimError;
use crate::euicc::EuiccNv;
use crate::identity::FACTORY_FIRMWARE_VERSION;
use journal::{Journal, Tear};

/// The NV file of earlier meterbench versions (one JSON document); imported
/// when the journal is blank.
pub const NV_FILE_NAME: &str = "nv.json";
pub use journal::SECTOR_NAMES;

/// Lifetime (seconds) a factory-fresh meter registers with.
pub const DEFAULT_LIFETIME_S: u32 = 300;

/// The LwM2M client settings the AT dialect writes (`AT+LWM2MSRV`, `AT+LWM2MEP`,
/// `AT+LWM2MLT`, `AT+LWM2MSTART` / `AT+LWM2MSTOP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lwm2mSettings {
    /// `coap://host:port`; `None` until configured.
    pub server_uri: Option<String>,
    /// Endpoint client name; `None` means the identity's default.
    pub endpoint: Option<String>,
    /// Registration lifetime in seconds.
    pub lifetime_s: u32,
    /// Whether the client runs, and so starts by itself after every boot.
    pub enabled: bool,
    /// Bootstrap-Server URI (`AT+LWM2MBS`, `coap://` or `coaps://`); with
    /// one, the client registers with its provisioned accounts and
    /// bootstraps when it has none or they stop working (Core §6.1, §6.2.1.1).
    #[serde(default)]
    pub bootstrap_uri: Option<String>,
    /// The Bootstrap-Server account's per-device credential (`AT+LWM2MBSPSK`).
    #[serde(default)]
    pub bootstrap_psk: Option<crate::security::PskCredential>,
    /// The credential for a directly configured `coaps://` server (`AT+LWM2MPSK`).
    #[serde(default)]
    pub server_psk: Option<crate::security::PskCredential>,
    /// LwM2M Server accounts the last Bootstrap-Finish provisioned (keys included:
    /// this is the device's flash; `Debug` shows fingerprints only).
    #[serde(default)]
    pub accounts: Vec<crate::security::NvAccount>,
    /// Client Hold Off Time (/0/x/11, seconds) of the Bootstrap-Server
    /// account as the last Bootstrap-Finish left it; `None`: the factory
    /// value. Kept in flash like the accounts that bootstrap provisioned:
    /// the wait applies to every later decision to bootstrap (LwM2M 1.1
    /// Core §E.1, resource 11: "the number of seconds to wait before
    /// initiating a Client Initiated Bootstrap once the LwM2M Client has
    /// determined it should initiate this bootstrap mode"), also after a
    /// power cut, when the accounts restored from NV stop working.
    #[serde(default)]
    pub bootstrap_hold_off_s: Option<u64>,
}

impl Default for Lwm2mSettings {
    fn default() -> Self {
        Lwm2mSettings {
            server_uri: None,
            endpoint: None,
            lifetime_s: DEFAULT_LIFETIME_S,
            enabled: false,
            bootstrap_uri: None,
            bootstrap_psk: None,
            server_psk: None,
            accounts: Vec::new(),
            bootstrap_hold_off_s: None,
        }
    }
}

/// A resource value as stored in NV (a serde mirror of [`lwm2m::Value`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum NvValue {
    String(String),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    Boolean(bool),
    /// Hex.
    Opaque(String),
    Time(i64),
    Objlnk(u16, u16),
    Corelnk(String),
}

impl From<&Value> for NvValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::String(s) => NvValue::String(s.clone()),
            Value::Integer(i) => NvValue::Integer(*i),
            Value::Unsigned(u) => NvValue::Unsigned(*u),
            Value::Float(f) => NvValue::Float(*f),
            Value::Boolean(b) => NvValue::Boolean(*b),
            Value::Opaque(b) => NvValue::Opaque(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Time(t) => NvValue::Time(*t),
            Value::Objlnk(o, i) => NvValue::Objlnk(*o, *i),
            Value::Corelnk(s) => NvValue::Corelnk(s.clone()),
        }
    }
}

impl NvValue {
    /// The value back; `None` for opaque data whose hex is damaged.
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            NvValue::String(s) => Value::String(s.clone()),
            NvValue::Integer(i) => Value::Integer(*i),
            NvValue::Unsigned(u) => Value::Unsigned(*u),
            NvValue::Float(f) => Value::Float(*f),
            NvValue::Boolean(b) => Value::Boolean(*b),
            NvValue::Opaque(h) => Value::Opaque(decode_hex(h)?),
            NvValue::Time(t) => Value::Time(*t),
            NvValue::Objlnk(o, i) => Value::Objlnk(*o, *i),
            NvValue::Corelnk(s) => Value::Corelnk(s.clone()),
        })
    }
}

fn decode_hex(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) || !h.is_ascii() {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

/// Everything the meter keeps across power cuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvData {
    /// Layout version of this file.
    pub format: u32,
    /// Incremented at the start of every boot (power-on or reboot).
    pub boot_count: u64,
    /// The running firmware's version (/3/0/3).
    pub firmware_version: String,
    /// The metering register as last committed, in watt-hours: what survives
    /// a power cut (the meter counts on in RAM between commits).
    pub energy_wh: u64,
    pub lwm2m: Lwm2mSettings,
    /// Resource values the server wrote, by path (`/3/0/14`), re-applied at boot.
    pub written: BTreeMap<String, NvValue>,
    /// The eUICC's enabled profile, a switch in progress, the lab's attach refusals.
    #[serde(default)]
    pub euicc: EuiccNv,
    /// The radio's band configuration (object 501, `AT+MBCHAN`).
    #[serde(default)]
    pub band: BandConfig,
    /// Object 5: the A/B slots, State and Update Result, the download in progress.
    #[serde(default)]
    pub firmware: crate::firmware::FirmwareNv,
    /// Object 9: the software package's state.
    #[serde(default)]
    pub software: crate::software::SoftwareNv,
    /// The stamp of the factory image written to this NV, if any
    /// ([`crate::factory`]): URIs, endpoint, lifetime and key fingerprint.
    #[serde(default)]
    pub factory: Option<String>,
    /// What `AT+CPSMS` and `AT+CEDRXS` set: the modem keeps its power
    /// saving settings across a power cycle (modem/psm.rs).
    #[serde(default)]
    pub power_saving: crate::modem::psm::PowerSaving,
}

impl Default for NvData {
    fn default() -> Self {
        NvData {
            format: 1,
            boot_count: 0,
            firmware_version: FACTORY_FIRMWARE_VERSION.to_owned(),
            energy_wh: 0,
            lwm2m: Lwm2mSettings::default(),
            written: BTreeMap::new(),
            euicc: EuiccNv::default(),
            band: BandConfig::default(),
            firmware: crate::firmware::FirmwareNv::default(),
            software: crate::software::SoftwareNv::default(),
            factory: None,
            power_saving: crate::modem::psm::PowerSaving::default(),
        }
    }
}

impl NvData {
    /// The written values that still parse, as LwM2M paths and values.
    pub fn written_values(&self) -> Vec<(Path, Value)> {
        self.written
            .iter()
            .filter_map(|(p, v)| Some((p.parse::<Path>().ok()?, v.to_value()?)))
            .collect()
    }
    pub fn record_written(&mut self, path: Path, value: &Value) {
        self.written.insert(path.to_string(), NvValue::from(value));
    }
}

/// Reads NV the way a debugger reads flash, without changing it: the newest
/// valid journal record (a torn tail is ignored, not cut), else the legacy
/// [`NV_FILE_NAME`], else factory-fresh NV. A record whose CRC holds but whose
/// content does not parse is corruption, an error naming the sector.
pub fn read(state_dir: &FsPath) -> Result<NvData, SimError> {
    let scans = journal::scan_dir(state_dir)?;
    match journal::newest(&scans) {
        Some((sector, latest)) => decode(&state_dir.join(SECTOR_NAMES[sector]), latest),
        None => read_legacy(state_dir),
    }
}

fn decode(path: &FsPath, latest: &journal::Latest) -> Result<NvData, SimError> {
    serde_json::from_slice(&latest.payload).map_err(|e| SimError::NvCorrupt {
        path: path.to_owned(),
        message: format!("record {}: {e}", latest.seq),
    })
}

fn read_legacy(state_dir: &FsPath) -> Result<NvData, SimError> {
    let path = state_dir.join(NV_FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SimError::NvCorrupt {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NvData::default()),
        Err(e) => Err(SimError::io(path, e)),
    }
}

/// The NV of one meter: its current content and the journal it is written to.
#[derive(Debug)]
pub struct NvStore {
    dir: PathBuf,
    data: NvData,
    /// `None` until the first write when the store was made by [`NvStore::factory`].
    journal: Option<Journal>,
    sector_limit: Option<u64>,
    tear: Option<Tear>,
}

impl NvStore {
    /// Opens the NV of `state_dir` (created if missing): replays the journal,
    /// cutting a torn tail off. Blank flash is factory-fresh NV (or the legacy
    /// file's content); a corrupt record is an error the caller decides about.
    /// Honours [`journal::TEAR_ENV`] (fault injection).
    pub fn open(state_dir: &FsPath) -> Result<Self, SimError> {
        fs::create_dir_all(state_dir).map_err(|e| SimError::io(state_dir, e))?;
        let (journal, latest) = Journal::open(state_dir)?;
        let data = match &latest {
            Some(l) => decode(&journal.active_path(), l)?,
            None => read_legacy(state_dir)?,
        };
        let mut store = NvStore {
            dir: state_dir.to_owned(),
            data,
            journal: Some(journal),
            sector_limit: None,
            tear: None,
        };
        store.set_tear(Tear::from_env());
        Ok(store)
    }

    /// Factory-fresh NV in `state_dir`: the next write supersedes whatever the
    /// journal held (its sequence continues above the old records).
    pub fn factory(state_dir: &FsPath) -> Self {
        NvStore {
            dir: state_dir.to_owned(),
            data: NvData::default(),
            journal: None,
            sector_limit: None,
            tear: Tear::from_env(),
        }
    }

    pub fn data(&self) -> &NvData {
        &self.data
    }

    /// The state directory the journal lives in.
    pub fn dir(&self) -> &FsPath {
        &self.dir
    }

    /// The sector the next record goes to.
    pub fn path(&self) -> PathBuf {
        self.journal
            .as_ref()
            .map_or_else(|| self.dir.join(SECTOR_NAMES[0]), Journal::active_path)
    }

    /// Compact once a sector would pass `bytes` (tests use small sectors).
    pub fn set_sector_limit(&mut self, bytes: u64) {
        self.sector_limit = Some(bytes);
        if let Some(j) = self.journal.as_mut() {
            j.set_sector_limit(bytes);
        }
    }

    /// Plans a torn write (fault injection); see [`journal::Tear`].
    pub fn set_tear(&mut self, tear: Option<Tear>) {
        self.tear = tear;
        if let Some(j) = self.journal.as_mut() {
            j.set_tear(tear);
        }
    }

    /// Changes the content and writes it durably before returning. On a
    /// write error the in-memory content keeps the change (the device runs
    /// on) and the error says which file failed.
    pub fn update(&mut self, change: impl FnOnce(&mut NvData)) -> Result<(), SimError> {
        change(&mut self.data);
        self.persist()
    }

    /// Appends the current content as a new journal record.
    fn persist(&mut self) -> Result<(), SimError> {
        if self.journal.is_none() {
            fs::create_dir_all(&self.dir).map_err(|e| SimError::io(&self.dir, e))?;
            let (mut j, _) = Journal::open(&self.dir)?;
            if let Some(limit) = self.sector_limit {
                j.set_sector_limit(limit);
            }
            j.set_tear(self.tear);
            self.journal = Some(j);
        }
        let bytes = serde_json::to_vec(&self.data).expect("NV data always serializes");
        self.journal
            .as_mut()
            .expect("journal opened above")
            .append(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_factory_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let nv = NvStore::open(dir.path()).unwrap();
        assert_eq!(nv.data(), &NvData::default());
        assert_eq!(nv.data().firmware_version, FACTORY_FIRMWARE_VERSION);
        assert!(!nv.path().exists(), "opening alone writes nothing");
    }

    #[test]
    fn update_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.update(|d| {
            d.boot_count += 1;
            d.energy_wh = 1234;
            d.lwm2m.server_uri = Some("coap://127.0.0.1:5683".into());
            d.lwm2m.endpoint = Some("meter-1".into());
            d.lwm2m.lifetime_s = 60;
            d.lwm2m.enabled = true;
            d.record_written(
                "/3/0/15".parse().unwrap(),
                &Value::String("Europe/Berlin".into()),
            );
            d.record_written("/1/0/1".parse().unwrap(), &Value::Integer(120));
            d.record_written(
                "/3/0/99".parse().unwrap(),
                &Value::Opaque(vec![0, 0xff, 0x10]),
            );
        })
        .unwrap();
        let again = NvStore::open(dir.path()).unwrap();
        assert_eq!(again.data(), nv.data());
        let written = again.data().written_values();
        assert!(written.contains(&(
            "/3/0/15".parse().unwrap(),
            Value::String("Europe/Berlin".into())
        )));
        assert!(written.contains(&(
            "/3/0/99".parse().unwrap(),
            Value::Opaque(vec![0, 0xff, 0x10])
        )));
        assert_eq!(read(dir.path()).unwrap(), *nv.data());
    }

    #[test]
    fn writes_go_to_the_journal_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.update(|d| d.boot_count = 3).unwrap();
        nv.update(|d| d.boot_count = 4).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECTOR_NAMES[0])]);
        assert_eq!(read(dir.path()).unwrap().boot_count, 4);
        let scans = journal::scan_dir(dir.path()).unwrap();
        assert_eq!(scans[0].records, 2, "one record per update");
    }

    /// A record of `data` as the journal writes it, for hand-made sectors.
    fn record(seq: u64, data: &NvData) -> Vec<u8> {
        journal::encode(seq, &serde_json::to_vec(data).unwrap())
    }

    #[test]
    fn a_torn_last_record_falls_back_to_the_previous_one_at_every_cut() {
        let old = NvData {
            energy_wh: 100,
            ..NvData::default()
        };
        let new = NvData {
            energy_wh: 110,
            ..NvData::default()
        };
        let torn = record(2, &new);
        for cut in (1..torn.len()).step_by(7) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = record(1, &old);
            bytes.extend_from_slice(&torn[..cut]);
            fs::write(dir.path().join(SECTOR_NAMES[0]), &bytes).unwrap();
            assert_eq!(
                read(dir.path()).unwrap().energy_wh,
                100,
                "debug read, cut {cut}"
            );
            let mut nv = NvStore::open(dir.path()).unwrap();
            assert_eq!(nv.data().energy_wh, 100, "cut at {cut}");
            // The next write lands after the last valid record and is read back.
            nv.update(|d| d.energy_wh = 120).unwrap();
            assert_eq!(read(dir.path()).unwrap().energy_wh, 120, "cut at {cut}");
        }
    }

    #[test]
    fn a_garbled_tail_is_ignored_and_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let good = NvData {
            boot_count: 7,
            ..NvData::default()
        };
        let mut bytes = record(1, &good);
        let mut bad = record(2, &NvData::default());
        let n = bad.len();
        bad[n / 2] ^= 0x40; // a bit flipped in the payload
        bytes.extend_from_slice(&bad);
        bytes.extend_from_slice(&[0xFF; 64]);
        fs::write(dir.path().join(SECTOR_NAMES[0]), &bytes).unwrap();
        let nv = NvStore::open(dir.path()).unwrap();
        assert_eq!(nv.data().boot_count, 7);
        assert_eq!(
            fs::metadata(dir.path().join(SECTOR_NAMES[0]))
                .unwrap()
                .len(),
            record(1, &good).len() as u64
        );
    }

    #[test]
    fn an_interrupted_update_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.update(|d| d.energy_wh = 5).unwrap();
        nv.set_tear(Some(journal::Tear {
            nth_append: 2,
            bytes: 40,
            action: journal::TearAction::Fail,
        }));
        let err = nv.update(|d| d.energy_wh = 6).unwrap_err().to_string();
        assert!(err.contains("simulated power loss"), "{err}");
        // After the "power cut": the committed value is the old one.
        assert_eq!(read(dir.path()).unwrap().energy_wh, 5);
        assert_eq!(NvStore::open(dir.path()).unwrap().data().energy_wh, 5);
    }

    #[test]
    fn compaction_keeps_the_newest_content_in_bounded_space() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.set_sector_limit(2048);
        for e in 0..200u64 {
            nv.update(|d| d.energy_wh = e).unwrap();
        }
        let total: u64 = SECTOR_NAMES
            .iter()
            .map(|n| fs::metadata(dir.path().join(n)).map_or(0, |m| m.len()))
            .sum();
        assert!(total <= 2048, "journal compacted: {total} bytes");
        assert_eq!(read(dir.path()).unwrap().energy_wh, 199);
        assert_eq!(NvStore::open(dir.path()).unwrap().data().energy_wh, 199);
    }

    #[test]
    fn the_legacy_file_is_imported_when_the_journal_is_blank() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = NvData {
            boot_count: 9,
            ..NvData::default()
        };
        fs::write(
            dir.path().join(NV_FILE_NAME),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        assert_eq!(nv.data().boot_count, 9);
        nv.update(|d| d.boot_count = 10).unwrap();
        assert_eq!(read(dir.path()).unwrap().boot_count, 10);
    }

    #[test]
    fn factory_store_supersedes_a_corrupt_record() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(SECTOR_NAMES[0]),
            journal::encode(4, b"not json"),
        )
        .unwrap();
        let err = NvStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(SECTOR_NAMES[0]) && err.contains("corrupt") && err.contains("record 4"),
            "{err}"
        );
        let mut nv = NvStore::factory(dir.path());
        nv.update(|d| d.boot_count = 1).unwrap();
        assert_eq!(read(dir.path()).unwrap().boot_count, 1);
    }

    #[test]
    fn records_of_an_older_layout_gain_the_new_fields_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let old = br#"{"format":1,"boot_count":2,"firmware_version":"1.0","energy_wh":3,
            "lwm2m":{"server_uri":null,"endpoint":null,"lifetime_s":300,"enabled":false},"written":{}}"#;
        fs::write(dir.path().join(SECTOR_NAMES[0]), journal::encode(1, old)).unwrap();
        let d = read(dir.path()).unwrap();
        assert_eq!((d.boot_count, d.energy_wh), (2, 3));
        assert_eq!(d.band, BandConfig::default());
        assert_eq!(d.euicc, EuiccNv::default());
    }

    #[test]
    fn damaged_opaque_hex_is_skipped_not_fatal() {
        assert_eq!(NvValue::Opaque("abc".into()).to_value(), None);
        assert_eq!(NvValue::Opaque("zz".into()).to_value(), None);
        assert_eq!(
            NvValue::Opaque("00ff".into()).to_value(),
            Some(Value::Opaque(vec![0, 255]))
        );
    }
}
