//! Non-volatile storage: what the meter keeps across power cuts, the way its
//! flash would. One JSON file in the state directory, replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory), so a SIGKILL at any instant leaves either the old or the new
//! content, never a mix.
//!
//! Kept behind the small [`NvStore`] API so that the file can later become a
//! journal with torn-write semantics without touching its users.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use lwm2m::{Path, Value};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::identity::FACTORY_FIRMWARE_VERSION;

/// Name of the NV file inside the state directory.
pub const NV_FILE_NAME: &str = "nv.json";

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
}

impl Default for Lwm2mSettings {
    fn default() -> Self {
        Lwm2mSettings {
            server_uri: None,
            endpoint: None,
            lifetime_s: DEFAULT_LIFETIME_S,
            enabled: false,
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
    /// The metering register, in watt-hours.
    pub energy_wh: u64,
    pub lwm2m: Lwm2mSettings,
    /// Resource values the server wrote, by path (`/3/0/14`), re-applied at boot.
    pub written: BTreeMap<String, NvValue>,
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

/// Reads the NV file of a state directory without opening it for writing:
/// what a debugger would read from flash. A missing file is factory-fresh NV.
pub fn read(state_dir: &FsPath) -> Result<NvData, SimError> {
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

/// The NV file of one meter: its current content and the atomic writer.
#[derive(Debug)]
pub struct NvStore {
    dir: PathBuf,
    data: NvData,
}

impl NvStore {
    /// Opens the NV of `state_dir` (created if missing). A missing file is
    /// factory-fresh NV; a corrupt one is an error the caller decides about.
    pub fn open(state_dir: &FsPath) -> Result<Self, SimError> {
        fs::create_dir_all(state_dir).map_err(|e| SimError::io(state_dir, e))?;
        let data = read(state_dir)?;
        Ok(NvStore {
            dir: state_dir.to_owned(),
            data,
        })
    }

    /// Factory-fresh NV in `state_dir`, replacing whatever was there at the next write.
    pub fn factory(state_dir: &FsPath) -> Self {
        NvStore {
            dir: state_dir.to_owned(),
            data: NvData::default(),
        }
    }

    pub fn data(&self) -> &NvData {
        &self.data
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(NV_FILE_NAME)
    }

    /// Changes the content and writes it durably before returning. On a
    /// write error the in-memory content keeps the change (the device runs
    /// on) and the error says which file failed.
    pub fn update(&mut self, change: impl FnOnce(&mut NvData)) -> Result<(), SimError> {
        change(&mut self.data);
        self.persist()
    }

    /// Writes the current content: temp file, fsync, rename, fsync directory.
    fn persist(&self) -> Result<(), SimError> {
        let final_path = self.path();
        let tmp_path = self.dir.join(format!(".{NV_FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec_pretty(&self.data).expect("NV data always serializes");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(|e| SimError::io(&tmp_path, e))?;
        file.write_all(&bytes)
            .map_err(|e| SimError::io(&tmp_path, e))?;
        file.sync_all().map_err(|e| SimError::io(&tmp_path, e))?;
        drop(file);
        fs::rename(&tmp_path, &final_path).map_err(|e| SimError::io(&final_path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SimError::io(&self.dir, e))?;
        Ok(())
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
    fn write_leaves_no_temporary_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.update(|d| d.boot_count = 3).unwrap();
        nv.update(|d| d.boot_count = 4).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(NV_FILE_NAME)]);
        assert_eq!(read(dir.path()).unwrap().boot_count, 4);
    }

    #[test]
    fn a_stale_temporary_file_does_not_shadow_the_real_one() {
        // A SIGKILL between writing the temp file and renaming leaves the temp
        // file; the old content must still be what is read.
        let dir = tempfile::tempdir().unwrap();
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.update(|d| d.boot_count = 9).unwrap();
        fs::write(
            dir.path().join(format!(".{NV_FILE_NAME}.tmp")),
            b"{\"format\":1,\"boot_co",
        )
        .unwrap();
        assert_eq!(NvStore::open(dir.path()).unwrap().data().boot_count, 9);
        // and the next write replaces the stale temp file
        let mut nv = NvStore::open(dir.path()).unwrap();
        nv.update(|d| d.boot_count = 10).unwrap();
        assert_eq!(read(dir.path()).unwrap().boot_count, 10);
    }

    #[test]
    fn corrupt_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NV_FILE_NAME), b"not json").unwrap();
        let err = NvStore::open(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(NV_FILE_NAME) && msg.contains("corrupt"),
            "{msg}"
        );
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
