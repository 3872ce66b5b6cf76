//! The meter's flash, modelled as two erase sectors holding an append-only
//! journal of records, the way small MCUs keep settings (e.g. Zephyr NVS,
//! EEPROM emulation in two flash pages). A power cut in the middle of a write
//! leaves a torn record at the end of a sector, never a complete one: boot
//! replays the journal and takes the last record whose CRC holds.
//!
//! Record layout (little-endian), [`HEADER_LEN`] bytes of header then the payload:
//!
//! ```text
//! magic u16 = 0x4E56 ("NV") | length u32 | sequence u64 | crc32 u32 | payload[length]
//! ```
//!
//! The CRC (CRC-32/ISO-HDLC) covers magic, length, sequence and payload.
//! Sequence numbers rise by one per record across both sectors, so the newer
//! of two valid records is the one with the higher sequence.
//!
//! Compaction: when the active sector would grow past its limit, the record
//! goes into the other sector instead (erased first), and the old sector is
//! erased after that record is durable. A cut at any point leaves one sector
//! with the newest complete record: before the new record is whole the old
//! sector still holds the previous one; after, the new one has the higher
//! sequence.
//!
//! Records are written a flash page ([`PAGE`] bytes) per write call, so a
//! SIGKILL from outside can land between pages. For tests that need a torn
//! record for certain, [`TEAR_ENV`] makes the meter kill itself part-way
//! through a chosen record ([`Tear`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path as FsPath, PathBuf};

use super::crc32::Crc32;
use crate::error::SimError;

/// The two sector files inside the state directory.
pub const SECTOR_NAMES: [&str; 2] = ["nv-a.journal", "nv-b.journal"];
/// Record header: magic, length, sequence, CRC.
pub const HEADER_LEN: usize = 2 + 4 + 8 + 4;
/// First two bytes of every record.
pub const MAGIC: u16 = 0x4E56;
/// Largest payload a record may claim; a larger length is garbage.
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// A sector is compacted once a record would take it past this many bytes.
pub const DEFAULT_SECTOR_LIMIT: u64 = 64 * 1024;
/// Bytes written per write call (a flash program page).
pub const PAGE: usize = 256;
/// Fault injection: `<n>:<bytes>` makes the n-th record this process writes
/// (counting from 1) stop after `bytes` bytes, after which the process raises
/// SIGKILL on itself — a real power cut in the middle of a flash write.
pub const TEAR_ENV: &str = "METERBENCH_NV_TEAR";

/// Encodes one record.
pub fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let mut crc = Crc32::new();
    crc.update(&out);
    crc.update(payload);
    out.extend_from_slice(&crc.finish().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// How a sector's content ends after its last valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing follows the last valid record.
    Clean,
    /// A record started but its bytes end early (a cut during the write).
    Torn { bytes: usize },
    /// Bytes that are no valid record: bad magic, length, CRC or sequence.
    Garbled { bytes: usize, reason: &'static str },
}

/// The newest valid record of a sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// What replaying one sector found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub latest: Option<Latest>,
    /// Valid records, in order.
    pub records: usize,
    /// Bytes up to the end of the last valid record.
    pub valid_len: u64,
    pub tail: Tail,
}

/// Replays a sector's bytes. Never panics; stops at the first byte that does
/// not start a valid record with a sequence above the previous one.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut at = 0usize;
    let mut latest: Option<Latest> = None;
    let mut records = 0;
    let tail = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break Tail::Clean;
        }
        if rest.len() < HEADER_LEN {
            let magic_ok = rest.len() < 2 || rest[..2] == MAGIC.to_le_bytes();
            break if magic_ok {
                Tail::Torn { bytes: rest.len() }
            } else {
                Tail::Garbled {
                    bytes: rest.len(),
                    reason: "bad magic",
                }
            };
        }
        let garbled = |reason| Tail::Garbled {
            bytes: rest.len(),
            reason,
        };
        if rest[..2] != MAGIC.to_le_bytes() {
            break garbled("bad magic");
        }
        let len = u32::from_le_bytes(rest[2..6].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(rest[6..14].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(rest[14..18].try_into().expect("4 bytes"));
        if len > MAX_PAYLOAD {
            break garbled("length out of range");
        }
        let end = HEADER_LEN + len as usize;
        if rest.len() < end {
            break Tail::Torn { bytes: rest.len() };
        }
        let payload = &rest[HEADER_LEN..end];
        let mut c = Crc32::new();
        c.update(&rest[..14]);
        c.update(payload);
        if c.finish() != crc {
            break garbled("CRC mismatch");
        }
        if latest.as_ref().is_some_and(|l| seq <= l.seq) {
            break garbled("sequence does not rise");
        }
        latest = Some(Latest {
            seq,
            payload: payload.to_vec(),
        });
        records += 1;
        at += end;
    };
    Scan {
        latest,
        records,
        valid_len: at as u64,
        tail,
    }
}

/// Reads and replays both sectors of `dir` (a missing sector is erased).
pub fn scan_dir(dir: &FsPath) -> Result<[Scan; 2], SimError> {
    let one = |name: &str| -> Result<Scan, SimError> {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(scan(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(scan(&[])),
            Err(e) => Err(SimError::io(path, e)),
        }
    };
    Ok([one(SECTOR_NAMES[0])?, one(SECTOR_NAMES[1])?])
}

/// The sector holding the newest record, and that record.
pub fn newest(scans: &[Scan; 2]) -> Option<(usize, &Latest)> {
    scans
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.latest.as_ref().map(|l| (i, l)))
        .max_by_key(|(_, l)| l.seq)
}

/// What a torn write does once its partial bytes are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearAction {
    /// Raise SIGKILL on the process: a real power cut (the meter binary).
    Kill,
    /// Return an error and write nothing more (unit tests).
    Fail,
}

/// A planned torn write (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tear {
    /// Which append of this journal tears, counting from 1.
    pub nth_append: u64,
    /// How many bytes of that record reach the sector (clamped below the record's length).
    pub bytes: usize,
    pub action: TearAction,
}

impl Tear {
    /// Parses `<n>:<bytes>` (see [`TEAR_ENV`]).
    pub fn parse(text: &str, action: TearAction) -> Result<Tear, String> {
        let bad = || format!("{TEAR_ENV}={text:?}: expected <n>:<bytes>, e.g. 3:40");
        let (n, b) = text.split_once(':').ok_or_else(bad)?;
        let nth_append: u64 = n.trim().parse().map_err(|_| bad())?;
        let bytes: usize = b.trim().parse().map_err(|_| bad())?;
        if nth_append == 0 {
            return Err(bad());
        }
        Ok(Tear {
            nth_append,
            bytes,
            action,
        })
    }

    /// The tear [`TEAR_ENV`] asks for, if set (a malformed value is logged and ignored).
    pub fn from_env() -> Option<Tear> {
        let text = std::env::var(TEAR_ENV).ok()?;
        match Tear::parse(&text, TearAction::Kill) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    }
}

/// The writer: which sector is active, where the next record goes, its sequence.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    active: usize,
    len: u64,
    next_seq: u64,
    limit: u64,
    appends: u64,
    tear: Option<Tear>,
}

impl Journal {
    /// Replays `dir`'s sectors, cuts a torn or garbled tail off the active
    /// sector (so the next record follows the last valid one), and returns the
    /// journal with the newest record's payload (`None` when flash is blank).
    pub fn open(dir: &FsPath) -> Result<(Journal, Option<Latest>), SimError> {
        let scans = scan_dir(dir)?;
        let (active, latest) = match newest(&scans) {
            Some((i, l)) => (i, Some(l.clone())),
            None => (0, None),
        };
        let scan = &scans[active];
        if scan.tail != Tail::Clean {
            let path = dir.join(SECTOR_NAMES[active]);
            tracing::warn!(sector = %path.display(), tail = ?scan.tail, valid_len = scan.valid_len, "NV journal tail dropped");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| SimError::io(&path, e))?;
            f.set_len(scan.valid_len)
                .and_then(|()| f.sync_all())
                .map_err(|e| SimError::io(&path, e))?;
        }
        let journal = Journal {
            dir: dir.to_owned(),
            active,
            len: scan.valid_len,
            next_seq: latest.as_ref().map_or(1, |l| l.seq + 1),
            limit: DEFAULT_SECTOR_LIMIT,
            appends: 0,
            tear: None,
        };
        Ok((journal, latest))
    }

    /// Compacts once the active sector would pass `bytes` (tests use small limits).
    pub fn set_sector_limit(&mut self, bytes: u64) {
        self.limit = bytes;
    }

    pub fn set_tear(&mut self, tear: Option<Tear>) {
        self.tear = tear;
    }

    /// The sector the next record is appended to (unless it compacts).
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(SECTOR_NAMES[self.active])
    }

    /// Sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends one record durably (compacting into the other sector when the
    /// active one is full).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SimError> {
        let record = encode(self.next_seq, payload);
        self.appends += 1;
        let tear = self
            .tear
            .filter(|t| t.nth_append == self.appends)
            .map(|t| (t.bytes.min(record.len() - 1), t.action));
        let compact = self.len > 0 && self.len + record.len() as u64 > self.limit;
        if compact {
            let target = 1 - self.active;
            let path = self.dir.join(SECTOR_NAMES[target]);
            tracing::info!(
                from = SECTOR_NAMES[self.active],
                to = SECTOR_NAMES[target],
                seq = self.next_seq,
                "NV journal compaction"
            );
            // Erase, then program the newest state as the sector's first record.
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| SimError::io(&path, e))?;
            program(&mut f, &path, &record, tear)?;
            sync_dir(&self.dir)?;
            // Only now is the old sector not needed: erase it.
            let old = self.dir.join(SECTOR_NAMES[self.active]);
            OpenOptions::new()
                .write(true)
                .open(&old)
                .and_then(|f| f.set_len(0).and_then(|()| f.sync_all()))
                .map_err(|e| SimError::io(&old, e))?;
            self.active = target;
            self.len = record.len() as u64;
        } else {
            let path = self.active_path();
            let created = self.len == 0 && !path.exists();
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| SimError::io(&path, e))?;
            f.seek(SeekFrom::Start(self.len))
                .map_err(|e| SimError::io(&path, e))?;
            program(&mut f, &path, &record, tear)?;
            if created {
                sync_dir(&self.dir)?;
            }
            self.len += record.len() as u64;
        }
        self.next_seq += 1;
        Ok(())
    }
}

/// Writes a record a page at a time and makes it durable; a planned tear stops
/// after its byte count.
fn program(
    f: &mut File,
    path: &FsPath,
    record: &[u8],
    tear: Option<(usize, TearAction)>,
) -> Result<(), SimError> {
    let upto = tear.map_or(record.len(), |(b, _)| b);
    for page in record[..upto].chunks(PAGE) {
        f.write_all(page).map_err(|e| SimError::io(path, e))?;
    }
    f.sync_data().map_err(|e| SimError::io(path, e))?;
    match tear {
        None => Ok(()),
        Some((bytes, TearAction::Kill)) => {
            tracing::warn!(bytes, of = record.len(), sector = %path.display(), "fault injection: power cut in the middle of an NV write");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            // SIGKILL cannot be caught; this is never reached.
            std::process::abort()
        }
        Some((bytes, TearAction::Fail)) => Err(SimError::io(
            path,
            std::io::Error::other(format!(
                "simulated power loss after {bytes} of {} record bytes",
                record.len()
            )),
        )),
    }
}

fn sync_dir(dir: &FsPath) -> Result<(), SimError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SimError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sector(records: &[(u64, &[u8])]) -> Vec<u8> {
        records.iter().flat_map(|(s, p)| encode(*s, p)).collect()
    }

    #[test]
    fn record_layout_is_header_then_payload() {
        let r = encode(7, b"hi");
        assert_eq!(&r[..2], &[0x56, 0x4E]);
        assert_eq!(&r[2..6], &2u32.to_le_bytes());
        assert_eq!(&r[6..14], &7u64.to_le_bytes());
        assert_eq!(&r[HEADER_LEN..], b"hi");
        let mut crc = Crc32::new();
        crc.update(&r[..14]);
        crc.update(b"hi");
        assert_eq!(&r[14..18], &crc.finish().to_le_bytes());
    }

    #[test]
    fn replay_takes_the_last_valid_record() {
        let s = scan(&sector(&[(1, b"one"), (2, b"two"), (3, b"three")]));
        assert_eq!(s.records, 3);
        assert_eq!(s.tail, Tail::Clean);
        assert_eq!(
            s.latest,
            Some(Latest {
                seq: 3,
                payload: b"three".to_vec()
            })
        );
    }

    #[test]
    fn every_truncation_of_the_last_record_falls_back_to_the_previous() {
        let good = sector(&[(1, b"old")]);
        let next = encode(2, b"new-value");
        for cut in 1..next.len() {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&next[..cut]);
            let s = scan(&bytes);
            assert_eq!(s.latest.as_ref().unwrap().payload, b"old", "cut at {cut}");
            assert_eq!(s.valid_len, good.len() as u64);
            assert!(
                matches!(s.tail, Tail::Torn { bytes } if bytes == cut),
                "{:?}",
                s.tail
            );
        }
    }

    #[test]
    fn a_flipped_payload_bit_is_a_crc_mismatch() {
        let mut bytes = sector(&[(1, b"old"), (2, b"new")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let s = scan(&bytes);
        assert_eq!(s.latest.unwrap().payload, b"old");
        assert_eq!(
            s.tail,
            Tail::Garbled {
                bytes: HEADER_LEN + 3,
                reason: "CRC mismatch"
            }
        );
    }

    #[test]
    fn garbage_lengths_magics_and_replayed_sequences_stop_the_replay() {
        let mut huge = encode(2, b"x");
        huge[2..6].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        let mut bytes = sector(&[(1, b"a")]);
        bytes.extend_from_slice(&huge);
        assert!(matches!(
            scan(&bytes).tail,
            Tail::Garbled {
                reason: "length out of range",
                ..
            }
        ));

        let mut bytes = sector(&[(1, b"a")]);
        bytes.extend_from_slice(&[0xFF; 40]); // erased flash reads 0xFF
        let s = scan(&bytes);
        assert_eq!(s.latest.unwrap().payload, b"a");
        assert!(matches!(
            s.tail,
            Tail::Garbled {
                reason: "bad magic",
                ..
            }
        ));

        let s = scan(&sector(&[(5, b"a"), (5, b"b")]));
        assert_eq!(s.latest.unwrap().payload, b"a");
        assert!(matches!(
            s.tail,
            Tail::Garbled {
                reason: "sequence does not rise",
                ..
            }
        ));
    }

    #[test]
    fn newest_of_two_sectors_wins_by_sequence() {
        let a = scan(&sector(&[(1, b"a1"), (2, b"a2")]));
        let b = scan(&sector(&[(3, b"b3")]));
        let scans = [a, b];
        let (i, l) = newest(&scans).unwrap();
        assert_eq!((i, l.payload.as_slice()), (1, &b"b3"[..]));
    }

    #[test]
    fn open_drops_a_torn_tail_and_appends_after_the_last_valid_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = sector(&[(1, b"first")]);
        bytes.extend_from_slice(&encode(2, b"second")[..10]);
        fs::write(dir.path().join(SECTOR_NAMES[0]), &bytes).unwrap();
        let (mut j, latest) = Journal::open(dir.path()).unwrap();
        assert_eq!(latest.unwrap().payload, b"first");
        assert_eq!(j.next_seq(), 2);
        let on_disk = fs::read(dir.path().join(SECTOR_NAMES[0])).unwrap();
        assert_eq!(on_disk.len(), HEADER_LEN + 5, "torn tail truncated");
        j.append(b"third").unwrap();
        let s = scan(&fs::read(dir.path().join(SECTOR_NAMES[0])).unwrap());
        assert_eq!((s.records, s.tail), (2, Tail::Clean));
        assert_eq!(s.latest.unwrap().payload, b"third");
    }

    #[test]
    fn compaction_moves_the_newest_record_to_the_other_sector_and_erases_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.set_sector_limit(200);
        let payload = [b'x'; 50];
        let mut seen_b = false;
        for n in 0..20u8 {
            let mut p = payload.to_vec();
            p.push(n);
            j.append(&p).unwrap();
            let scans = scan_dir(dir.path()).unwrap();
            let (_, l) = newest(&scans).unwrap();
            assert_eq!(l.payload.last(), Some(&n));
            let sizes: Vec<u64> = SECTOR_NAMES
                .iter()
                .map(|s| fs::metadata(dir.path().join(s)).map_or(0, |m| m.len()))
                .collect();
            assert!(sizes.iter().all(|s| *s <= 200), "{sizes:?}");
            assert!(sizes.contains(&0), "one sector is erased: {sizes:?}");
            seen_b |= j.active_path().ends_with(SECTOR_NAMES[1]);
        }
        assert!(seen_b, "compaction switched sectors");
        let (j2, latest) = Journal::open(dir.path()).unwrap();
        assert_eq!(latest.unwrap().seq, 20);
        assert_eq!(j2.next_seq(), 21);
    }

    #[test]
    fn a_torn_compaction_keeps_the_old_sector() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.set_sector_limit(100);
        j.append(&[1; 40]).unwrap();
        // Each record is 58 bytes: every further append compacts (58 + 58 > 100).
        j.append(&[2; 40]).unwrap(); // into b, a erased
        j.append(&[3; 40]).unwrap(); // into a, b erased
        j.set_tear(Some(Tear {
            nth_append: 4,
            bytes: 30,
            action: TearAction::Fail,
        }));
        // Into b, torn after 30 bytes: a must not have been erased.
        let err = j.append(&[4; 40]).unwrap_err().to_string();
        assert!(err.contains("simulated power loss"), "{err}");
        let (_, latest) = Journal::open(dir.path()).unwrap();
        assert_eq!(latest.unwrap().payload, vec![3; 40]);
    }

    #[test]
    fn tear_spec_parses_and_names_the_variable_when_wrong() {
        assert_eq!(
            Tear::parse("3:40", TearAction::Kill).unwrap(),
            Tear {
                nth_append: 3,
                bytes: 40,
                action: TearAction::Kill
            }
        );
        for bad in ["", "3", "0:4", "x:1", "1:-1"] {
            let e = Tear::parse(bad, TearAction::Kill).unwrap_err();
            assert!(e.contains(TEAR_ENV), "{e}");
        }
    }

    proptest! {
        #[test]
        fn scan_never_panics_and_valid_len_is_within_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = scan(&bytes);
            prop_assert!(s.valid_len as usize <= bytes.len());
        }

        #[test]
        fn any_garbage_after_valid_records_keeps_them(tail in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut bytes = sector(&[(1, b"a"), (2, b"b")]);
            bytes.extend_from_slice(&tail);
            let s = scan(&bytes);
            // The garbage may by chance be a valid record 3; it can never lose record 2.
            prop_assert!(s.latest.unwrap().seq >= 2);
        }
    }
}
