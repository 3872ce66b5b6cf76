//! LwM2M object 19 (BinaryAppDataContainer, fixtures/objects/19-*.xml): the
//! meter's application data channel. Instance 0's Data (resource 0) holds,
//! in resource instance 0, the meter's latest reading frame, refreshed every
//! few seconds so an observation of /19/0/0 gets notifications; the server
//! may write its own blobs into the other resource instances (downlink).

use lwm2m::{Path, Value};

/// Frame layout version.
pub const FRAME_VERSION: u8 = 1;
/// Bytes in a reading frame.
pub const FRAME_LEN: usize = 24;

/// /19/0/0 Data (RW, multiple opaque).
pub fn data_path() -> Path {
    Path::resource(19, 0, 0)
}
/// /19/0/0/0: the meter's reading frame.
pub fn frame_path() -> Path {
    Path::resource_instance(19, 0, 0, 0)
}
/// /19/0/2 Data Creation Time.
pub fn creation_time_path() -> Path {
    Path::resource(19, 0, 2)
}

/// One meter reading, as the device sends it upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Frame counter since boot (wraps).
    pub counter: u16,
    /// Seconds since the Unix epoch (wraps in 2106).
    pub unix: u32,
    /// Energy register as last committed to NV, Wh.
    pub committed_wh: u64,
    /// Energy register as counted now, Wh.
    pub live_wh: u64,
}

impl Reading {
    /// `version u8 | flags u8 | counter u16 | unix u32 | committed u64 | live u64`, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FRAME_LEN);
        v.push(FRAME_VERSION);
        v.push(0);
        v.extend_from_slice(&self.counter.to_be_bytes());
        v.extend_from_slice(&self.unix.to_be_bytes());
        v.extend_from_slice(&self.committed_wh.to_be_bytes());
        v.extend_from_slice(&self.live_wh.to_be_bytes());
        v
    }

    /// Reads a frame back; `None` unless it is a whole version-1 frame.
    pub fn decode(b: &[u8]) -> Option<Reading> {
        if b.len() != FRAME_LEN || b[0] != FRAME_VERSION {
            return None;
        }
        Some(Reading {
            counter: u16::from_be_bytes([b[2], b[3]]),
            unix: u32::from_be_bytes(b[4..8].try_into().ok()?),
            committed_wh: u64::from_be_bytes(b[8..16].try_into().ok()?),
            live_wh: u64::from_be_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// The initial values of /19/0.
pub fn container_values(reading: &Reading) -> Vec<(Path, Value)> {
    vec![
        (frame_path(), Value::Opaque(reading.encode())),
        (Path::resource(19, 0, 1), Value::Integer(1)), // best effort
        (creation_time_path(), Value::Time(i64::from(reading.unix))),
        (
            Path::resource(19, 0, 3),
            Value::String("meter readings".into()),
        ),
        (
            Path::resource(19, 0, 4),
            Value::String("application/octet-stream".into()),
        ),
        (Path::resource(19, 0, 5), Value::Integer(1)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_has_a_fixed_layout() {
        let r = Reading {
            counter: 0x0102,
            unix: 0x6553_f100,
            committed_wh: 1000,
            live_wh: 1004,
        };
        let b = r.encode();
        assert_eq!(b.len(), FRAME_LEN);
        assert_eq!(&b[..8], &[1, 0, 0x01, 0x02, 0x65, 0x53, 0xf1, 0x00]);
        assert_eq!(&b[8..16], &1000u64.to_be_bytes());
        assert_eq!(Reading::decode(&b), Some(r));
        assert_eq!(Reading::decode(&b[..23]), None);
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(Reading::decode(&v2), None);
    }
}
