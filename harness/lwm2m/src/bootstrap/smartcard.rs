//! Bootstrap from Smartcard (LwM2M 1.1 Core §6.1.3.2): the content of the
//! card's EF LwM2M_Bootstrap file (Core Appendix G.3.3), which holds the
//! Bootstrap Information as a collection of LwM2M objects, each one the TLV
//! of its object instances (Core §7.4.3), as a Bootstrap-Write would carry
//! them. A device that has a card tries it first (Core §6.1.4 Bootstrap
//! Sequence, step 1), before its factory configuration and before a
//! client-initiated bootstrap.
//!
//! The file, in the TS's BNF (Appendix G.3.3; all numbers big endian):
//!
//! ```text
//! bootstrap_data  = number_of_objects:u16  size:u16  single_object*
//! single_object   = object_id:u16  object_version  length:u16  tlv[length]
//! object_version  = 0x00                 ; implicit: 1.0, or defined in the enabler
//!                 | major:u8(1..) minor:u8  ; e.g. 0x02 0x05 is version 2.5
//! ```
//!
//! `size` counts the bytes of the objects after the 4-byte header. The file
//! is at most 32 KB ("This file size is limited to 32KB"). The version's
//! first byte tells its width: 0 is the one-byte implicit version, a major
//! version is never 0.
//!
//! Only the codec is here (sans-IO): reading the card is the device's, and
//! writing it is the lab's (meterbench writes the virtual meter's card).
//! Errors name the byte offset; no error or `Debug` output carries a key.

use std::fmt;

use crate::bootstrap::account::{self, ServerAccount};
use crate::client::ObjectStore;
use crate::format::{self, ContentFormat, Record};
use crate::model::Registry;
use crate::path::Path;

/// Largest EF LwM2M_Bootstrap file (Core Appendix G.3.3: 32 KB).
pub const MAX_FILE_SIZE: usize = 32 * 1024;

/// Bytes before the objects: number of objects and size, one HWORD each.
const HEADER: usize = 4;

/// An object's version as the file codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectVersion {
    /// `0x00`: version 1.0, or the object is defined in the LwM2M enabler
    /// itself (Security, Server: their version follows the enabler's).
    Implicit,
    /// `MAJOR MINOR`, major 1..=255.
    Explicit { major: u8, minor: u8 },
}

impl ObjectVersion {
    fn encode(self, out: &mut Vec<u8>) -> Result<(), CardError> {
        match self {
            ObjectVersion::Implicit => out.push(0),
            ObjectVersion::Explicit { major: 0, minor } => {
                return Err(CardError::Encode(format!(
                "object version 0.{minor}: a major version of 0 would read as the implicit version"
            )))
            }
            ObjectVersion::Explicit { major, minor } => out.extend([major, minor]),
        }
        Ok(())
    }
}

impl fmt::Display for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectVersion::Implicit => f.write_str("implicit"),
            ObjectVersion::Explicit { major, minor } => write!(f, "{major}.{minor}"),
        }
    }
}

/// One object on the card: its id, version and the TLV of its instances.
#[derive(Clone, PartialEq, Eq)]
pub struct CardObject {
    pub object_id: u16,
    pub version: ObjectVersion,
    /// OMA-TLV of the object's instances (object-instance TLVs, §7.4.3).
    pub instances: Vec<u8>,
}

impl fmt::Debug for CardObject {
    /// Lengths only: the Security object's TLV holds keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardObject")
            .field("object_id", &self.object_id)
            .field("version", &self.version)
            .field(
                "instances",
                &format_args!("<{} bytes of TLV>", self.instances.len()),
            )
            .finish()
    }
}

/// The content of an EF LwM2M_Bootstrap file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SmartcardBootstrap {
    pub objects: Vec<CardObject>,
}

/// Why a card file cannot be written or read; a decoding error names the
/// byte offset in the file. Never carries resource values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("EF LwM2M_Bootstrap, byte {offset}: {reason}")]
    Decode { offset: usize, reason: String },
    #[error("EF LwM2M_Bootstrap cannot be written: {0}")]
    Encode(String),
    #[error("EF LwM2M_Bootstrap, object {object}: its TLV does not decode: {reason}")]
    Tlv { object: u16, reason: String },
}

fn decode_err(offset: usize, reason: impl Into<String>) -> CardError {
    CardError::Decode {
        offset,
        reason: reason.into(),
    }
}

fn hword(bytes: &[u8], at: usize, what: &str) -> Result<u16, CardError> {
    match bytes.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(decode_err(
            at,
            format!("file ends inside the {what} (2 bytes)"),
        )),
    }
}

impl SmartcardBootstrap {
    /// The card of `accounts`: the Security (/0) and Server (/1) instances
    /// of each, as a Bootstrap-Write would provision them (Core §E.1, §E.2),
    /// both objects with the implicit version (they are the enabler's own).
    pub fn from_accounts(
        accounts: &[ServerAccount],
        registry: &Registry,
    ) -> Result<Self, CardError> {
        let mut objects = Vec::new();
        for (object, records) in [
            (
                account::SECURITY_OBJECT,
                accounts
                    .iter()
                    .flat_map(ServerAccount::security_records)
                    .collect::<Vec<_>>(),
            ),
            (
                account::SERVER_OBJECT,
                accounts
                    .iter()
                    .flat_map(ServerAccount::server_records)
                    .collect(),
            ),
        ] {
            let instances = format::encode(
                ContentFormat::Tlv,
                &Path::object(object),
                &records,
                registry,
            )
            .map_err(|e| CardError::Encode(format!("object {object}: {}", e.reason)))?;
            objects.push(CardObject {
                object_id: object,
                version: ObjectVersion::Implicit,
                instances,
            });
        }
        Ok(SmartcardBootstrap { objects })
    }

    /// The file's bytes (Appendix G.3.3).
    pub fn encode(&self) -> Result<Vec<u8>, CardError> {
        let count = u16::try_from(self.objects.len())
            .map_err(|_| CardError::Encode(format!("{} objects", self.objects.len())))?;
        let mut body = Vec::new();
        for o in &self.objects {
            let len = u16::try_from(o.instances.len()).map_err(|_| {
                CardError::Encode(format!(
                    "object {}: {} bytes of TLV do not fit its 2-byte length",
                    o.object_id,
                    o.instances.len()
                ))
            })?;
            body.extend(o.object_id.to_be_bytes());
            o.version.encode(&mut body)?;
            body.extend(len.to_be_bytes());
            body.extend(&o.instances);
        }
        if HEADER + body.len() > MAX_FILE_SIZE {
            return Err(CardError::Encode(format!(
                "{} bytes: the file is limited to {MAX_FILE_SIZE} (Core Appendix G.3.3)",
                HEADER + body.len()
            )));
        }
        let size = u16::try_from(body.len()).expect("bounded by MAX_FILE_SIZE");
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend(count.to_be_bytes());
        out.extend(size.to_be_bytes());
        out.extend(body);
        Ok(out)
    }

    /// Reads a file's bytes. The header's count and size must agree with
    /// the objects that follow; bytes after `size` (the card issuer's file
    /// may be larger than its content) are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, CardError> {
        if bytes.len() > MAX_FILE_SIZE {
            return Err(decode_err(
                MAX_FILE_SIZE,
                format!(
                    "{} bytes: the file is limited to {MAX_FILE_SIZE}",
                    bytes.len()
                ),
            ));
        }
        let count = hword(bytes, 0, "number of objects")?;
        let size = usize::from(hword(bytes, 2, "size")?);
        let end = HEADER + size;
        if bytes.len() < end {
            return Err(decode_err(
                bytes.len(),
                format!(
                    "the header says {size} bytes of objects, the file holds {}",
                    bytes.len() - HEADER
                ),
            ));
        }
        let body = &bytes[..end];
        let mut at = HEADER;
        let mut objects = Vec::with_capacity(usize::from(count).min(64));
        // Bounded by `count` (at most 65535) and by the body: every object
        // takes at least 5 bytes.
        for n in 0..count {
            if at >= end {
                return Err(decode_err(
                    at,
                    format!("the header says {count} objects, the size holds {n}"),
                ));
            }
            let object_id = hword(body, at, "object id")?;
            let version = match body.get(at + 2) {
                None => return Err(decode_err(at + 2, "file ends before the object version")),
                Some(0) => ObjectVersion::Implicit,
                Some(&major) => match body.get(at + 3) {
                    Some(&minor) => ObjectVersion::Explicit { major, minor },
                    None => {
                        return Err(decode_err(
                            at + 3,
                            "file ends inside the object version (major, minor)",
                        ))
                    }
                },
            };
            let len_at = at
                + if version == ObjectVersion::Implicit {
                    3
                } else {
                    4
                };
            let len = usize::from(hword(body, len_at, "object length")?);
            let tlv_at = len_at + 2;
            let Some(instances) = body.get(tlv_at..tlv_at + len) else {
                return Err(decode_err(
                    tlv_at,
                    format!(
                        "object {object_id} says {len} bytes of TLV, {} are left",
                        end.saturating_sub(tlv_at)
                    ),
                ));
            };
            objects.push(CardObject {
                object_id,
                version,
                instances: instances.to_vec(),
            });
            at = tlv_at + len;
        }
        if at != end {
            return Err(decode_err(
                at,
                format!(
                    "{} bytes after the {count} objects the header announces, within its size",
                    end - at
                ),
            ));
        }
        Ok(SmartcardBootstrap { objects })
    }

    /// Every resource value on the card, typed by `registry`.
    pub fn records(&self, registry: &Registry) -> Result<Vec<Record>, CardError> {
        let mut out = Vec::new();
        for o in &self.objects {
            let records = format::decode(
                ContentFormat::Tlv,
                &Path::object(o.object_id),
                &o.instances,
                registry,
            )
            .map_err(|e| CardError::Tlv {
                object: o.object_id,
                reason: e.to_string(),
            })?;
            out.extend(records);
        }
        Ok(out)
    }

    /// The LwM2M Server accounts the card holds (Security instances that
    /// are not the Bootstrap-Server's, each with the Server instance of the
    /// same Short Server ID), by Short Server ID. The configuration must be
    /// consistent as after a Bootstrap-Finish ([`account::validate`]).
    pub fn accounts(
        &self,
        registry: &Registry,
        supported: &[account::SecurityMode],
    ) -> Result<Vec<ServerAccount>, CardError> {
        let mut store = ObjectStore::new(registry.clone());
        for r in self.records(registry)? {
            store.set(r.path, r.value);
        }
        account::validate(&store, supported).map_err(|e| CardError::Tlv {
            object: account::SECURITY_OBJECT,
            reason: e.to_string(),
        })?;
        Ok(account::accounts(&store))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::value::Value;

    /// Core Appendix G.3.3 file of one NoSec account, coded by hand:
    /// header (2 objects, 48 bytes), then object 0 (implicit version, 23
    /// bytes of TLV: instance 0 with URI "coap://h", Bootstrap-Server
    /// false, Security Mode 3, Short Server ID 1) and object 1 (implicit
    /// version, 15 bytes: instance 0 with Short Server ID 1, Lifetime 30,
    /// Notification Storing false, Binding "U"). TLV per Core §7.4.3:
    /// `08 00 14` an object instance, id 0, 20 bytes (1-byte length);
    /// `c8 00 08` a resource, id 0, 8 bytes; `c1 id v` a 1-byte resource.
    const NOSEC_CARD: &[u8] = &[
        0x00, 0x02, 0x00, 0x30, // 2 objects, 48 bytes
        0x00, 0x00, 0x00, 0x00, 0x17, // object 0, implicit version, 23 bytes
        0x08, 0x00, 0x14, // instance 0, 20 bytes
        0xc8, 0x00, 0x08, b'c', b'o', b'a', b'p', b':', b'/', b'/', b'h', // /0/0/0
        0xc1, 0x01, 0x00, // /0/0/1 Bootstrap-Server false
        0xc1, 0x02, 0x03, // /0/0/2 Security Mode NoSec
        0xc1, 0x0a, 0x01, // /0/0/10 Short Server ID 1
        0x00, 0x01, 0x00, 0x00, 0x0f, // object 1, implicit version, 15 bytes
        0x08, 0x00, 0x0c, // instance 0, 12 bytes
        0xc1, 0x00, 0x01, // /1/0/0 Short Server ID 1
        0xc1, 0x01, 0x1e, // /1/0/1 Lifetime 30 s
        0xc1, 0x06, 0x00, // /1/0/6 Notification Storing false
        0xc1, 0x07, b'U', // /1/0/7 Binding "U"
    ];

    fn nosec_records() -> (Vec<Record>, Vec<Record>) {
        let s = |r| Path::resource(0, 0, r);
        let v = |r| Path::resource(1, 0, r);
        (
            vec![
                Record::new(s(0), Value::String("coap://h".into())),
                Record::new(s(1), Value::Boolean(false)),
                Record::new(s(2), Value::Integer(3)),
                Record::new(s(10), Value::Integer(1)),
            ],
            vec![
                Record::new(v(0), Value::Integer(1)),
                Record::new(v(1), Value::Integer(30)),
                Record::new(v(6), Value::Boolean(false)),
                Record::new(v(7), Value::String("U".into())),
            ],
        )
    }

    #[test]
    fn the_hand_coded_g33_file_decodes_to_one_nosec_account() {
        let registry = Registry::core();
        let card = SmartcardBootstrap::decode(NOSEC_CARD).unwrap();
        assert_eq!(card.objects.len(), 2);
        assert_eq!(card.objects[0].object_id, 0);
        assert_eq!(card.objects[0].version, ObjectVersion::Implicit);
        assert_eq!(card.objects[1].object_id, 1);
        let (security, server) = nosec_records();
        let records = card.records(&registry).unwrap();
        assert_eq!(records, [security, server].concat());
        let accounts = card
            .accounts(&registry, &[account::SecurityMode::NoSec])
            .unwrap();
        assert_eq!(accounts.len(), 1);
        let a = &accounts[0];
        assert_eq!(a.server_uri, "coap://h");
        assert_eq!(a.short_server_id, 1);
        assert_eq!(a.lifetime, Duration::from_secs(30));
        assert_eq!((a.security_instance, a.server_instance), (0, 0));
        assert_eq!(a.binding, "U");
    }

    #[test]
    fn the_hand_coded_g33_file_is_what_encoding_its_objects_gives() {
        let registry = Registry::core();
        let (security, server) = nosec_records();
        let objects = [(0u16, security), (1, server)]
            .into_iter()
            .map(|(id, records)| CardObject {
                object_id: id,
                version: ObjectVersion::Implicit,
                instances: format::encode(
                    ContentFormat::Tlv,
                    &Path::object(id),
                    &records,
                    &registry,
                )
                .unwrap(),
            })
            .collect();
        let card = SmartcardBootstrap { objects };
        assert_eq!(card.encode().unwrap(), NOSEC_CARD);
    }

    #[test]
    fn a_psk_account_round_trips_through_the_card() {
        let registry = Registry::core();
        let mut account = ServerAccount::psk(
            101,
            "coaps://127.0.0.1:5684",
            b"card-meter-1".to_vec(),
            vec![0x11; 16],
        );
        account.security_instance = 2;
        account.server_instance = 1;
        account.lifetime = Duration::from_secs(42);
        let card =
            SmartcardBootstrap::from_accounts(std::slice::from_ref(&account), &registry).unwrap();
        let bytes = card.encode().unwrap();
        // Header: two objects, and the size is the rest of the file.
        assert_eq!(&bytes[..2], &[0, 2]);
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            bytes.len() - 4
        );
        let back = SmartcardBootstrap::decode(&bytes).unwrap();
        assert_eq!(back, card);
        let accounts = back
            .accounts(&registry, &[account::SecurityMode::Psk])
            .unwrap();
        assert_eq!(accounts, vec![account]);
        assert!(!format!("{back:?}").contains("1111"), "{back:?}");
    }

    #[test]
    fn an_explicit_version_takes_two_bytes() {
        let card = SmartcardBootstrap {
            objects: vec![CardObject {
                object_id: 3,
                version: ObjectVersion::Explicit { major: 2, minor: 5 },
                instances: vec![0x00, 0x00],
            }],
        };
        let bytes = card.encode().unwrap();
        // 1 object, 8 bytes: id 0003, version 02 05 ("value %x0205 means version 2.5"), length 0002.
        assert_eq!(
            bytes,
            [0x00, 0x01, 0x00, 0x08, 0x00, 0x03, 0x02, 0x05, 0x00, 0x02, 0x00, 0x00]
        );
        assert_eq!(SmartcardBootstrap::decode(&bytes).unwrap(), card);
        let zero_major = SmartcardBootstrap {
            objects: vec![CardObject {
                version: ObjectVersion::Explicit { major: 0, minor: 1 },
                ..card.objects[0].clone()
            }],
        };
        assert!(matches!(zero_major.encode(), Err(CardError::Encode(_))));
    }

    #[test]
    fn damaged_files_are_refused_naming_the_offset() {
        let at = |bytes: &[u8]| match SmartcardBootstrap::decode(bytes) {
            Err(CardError::Decode { offset, reason }) => (offset, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(at(&[0x00]).0, 0);
        // Size says more than the file holds.
        assert_eq!(at(&NOSEC_CARD[..40]).0, 40);
        // Count says three objects, the size holds two.
        let mut three = NOSEC_CARD.to_vec();
        three[1] = 3;
        let (offset, reason) = at(&three);
        assert_eq!(offset, 52);
        assert!(reason.contains("3 objects"), "{reason}");
        // An object's length runs past the size.
        let mut long = NOSEC_CARD.to_vec();
        long[8] = 0x30;
        assert_eq!(at(&long).0, 9);
        // Count says one object, the size holds two.
        let mut one = NOSEC_CARD.to_vec();
        one[1] = 1;
        let (offset, reason) = at(&one);
        assert_eq!(offset, 32);
        assert!(reason.contains("after the 1 objects"), "{reason}");
        // Padding after `size` is the card issuer's, not content.
        let mut padded = NOSEC_CARD.to_vec();
        padded.extend([0xff; 16]);
        assert_eq!(
            SmartcardBootstrap::decode(&padded).unwrap(),
            SmartcardBootstrap::decode(NOSEC_CARD).unwrap()
        );
        let huge = vec![0u8; MAX_FILE_SIZE + 1];
        assert_eq!(at(&huge).0, MAX_FILE_SIZE);
    }

    #[test]
    fn a_card_without_a_server_account_is_refused() {
        let registry = Registry::core();
        let card = SmartcardBootstrap::decode(&[0, 0, 0, 0]).unwrap();
        assert!(card.objects.is_empty());
        let e = card
            .accounts(&registry, &[account::SecurityMode::NoSec])
            .unwrap_err();
        assert!(e.to_string().contains("no LwM2M Server account"), "{e}");
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panicking() {
        // A small deterministic sweep over truncations and byte flips.
        for cut in 0..NOSEC_CARD.len() {
            let _ = SmartcardBootstrap::decode(&NOSEC_CARD[..cut]);
        }
        for i in 0..NOSEC_CARD.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = NOSEC_CARD.to_vec();
                b[i] ^= flip;
                if let Ok(card) = SmartcardBootstrap::decode(&b) {
                    let _ = card.records(&Registry::core());
                }
            }
        }
    }
}
