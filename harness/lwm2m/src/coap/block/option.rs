//! The Block1 / Block2 option value (RFC 7959 §2.2) and the SZX block sizes.

use coap_lite::{CoapOption, Packet};

use super::BlockError;
use crate::coap::options;

/// Largest usable SZX: 2^(6+4) = 1024 bytes (RFC 7959 §2.2). SZX 7 is reserved.
pub const MAX_SZX: u8 = 6;

/// Largest block number a 3-byte option value can carry: 20 bits (RFC 7959 §2.2).
pub const MAX_NUM: u32 = (1 << 20) - 1;

/// One Block1 or Block2 option: which block (`num`), whether more follow
/// (`more`, the M bit) and the size exponent (`szx`, size = 2^(szx+4)).
///
/// RFC 7959 §2.2: the option value is a uint of 0–3 bytes,
/// `NUM << 4 | M << 3 | SZX`. A value constructed through [`BlockOption::new`]
/// or [`BlockOption::decode`] always has `szx <= 6` and `num <= MAX_NUM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockOption {
    pub num: u32,
    pub more: bool,
    pub szx: u8,
}

/// Which block option a packet carries: Block1 for request payloads, Block2
/// for response payloads (RFC 7959 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Block1,
    Block2,
}

impl BlockKind {
    pub fn option(self) -> CoapOption {
        match self {
            BlockKind::Block1 => CoapOption::Block1,
            BlockKind::Block2 => CoapOption::Block2,
        }
    }

    /// The matching size option (RFC 7959 §4): Size1 for Block1, Size2 for Block2.
    pub fn size_option(self) -> CoapOption {
        match self {
            BlockKind::Block1 => CoapOption::Size1,
            BlockKind::Block2 => CoapOption::Size2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Block1 => "Block1",
            BlockKind::Block2 => "Block2",
        }
    }
}

/// Block size in bytes for an SZX (16 for 0 ... 1024 for 6); `None` for 7 and above.
pub fn size_of_szx(szx: u8) -> Option<usize> {
    (szx <= MAX_SZX).then(|| 1usize << (szx + 4))
}

/// The SZX of an exact block size (16, 32, ..., 1024); `None` for any other size.
pub fn szx_of_size(size: usize) -> Option<u8> {
    (0..=MAX_SZX).find(|szx| 1usize << (szx + 4) == size)
}

/// The largest SZX whose block fits in `bytes` (at least 0, at most [`MAX_SZX`]):
/// what a device with a `bytes`-sized buffer asks for.
pub fn szx_fitting(bytes: usize) -> u8 {
    (0..=MAX_SZX)
        .rev()
        .find(|szx| 1usize << (szx + 4) <= bytes)
        .unwrap_or(0)
}

impl BlockOption {
    /// A checked option: `szx` 0–6, `num` at most 2^20-1.
    pub fn new(num: u32, more: bool, szx: u8) -> Result<Self, BlockError> {
        if szx > MAX_SZX {
            return Err(BlockError::ReservedSzx(szx));
        }
        if num > MAX_NUM {
            return Err(BlockError::NumTooLarge(u64::from(num)));
        }
        Ok(BlockOption { num, more, szx })
    }

    /// The block holding byte `offset` at size exponent `szx` (M unset).
    pub fn at_offset(offset: usize, szx: u8) -> Result<Self, BlockError> {
        let size = size_of_szx(szx).ok_or(BlockError::ReservedSzx(szx))?;
        let num = offset / size;
        let num = u32::try_from(num).map_err(|_| BlockError::NumTooLarge(num as u64))?;
        BlockOption::new(num, false, szx)
    }

    /// Block size in bytes: 2^(szx+4).
    pub fn size(&self) -> usize {
        1usize << (self.szx.min(MAX_SZX) + 4)
    }

    /// Byte offset of the block's first byte: num * size (RFC 7959 §2.2).
    pub fn offset(&self) -> usize {
        self.num as usize * self.size()
    }

    /// The option value: `NUM << 4 | M << 3 | SZX` as a minimal uint, 0–3 bytes
    /// (RFC 7959 §2.2; all-zero is the empty value).
    pub fn encode(&self) -> Vec<u8> {
        let value = (self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx & 0x07);
        options::encode_uint(value)
    }

    /// Decodes an option value. More than 3 bytes or SZX 7 is an error
    /// (RFC 7959 §2.2: SZX 7 "MUST lead to a 4.00 Bad Request" in a request).
    /// Leading zero bytes are tolerated, as for any uint option (RFC 7252 §3.2).
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockError> {
        if bytes.len() > 3 {
            return Err(BlockError::OptionTooLong(bytes.len()));
        }
        let value = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let szx = (value & 0x07) as u8;
        if szx > MAX_SZX {
            return Err(BlockError::ReservedSzx(szx));
        }
        Ok(BlockOption {
            num: value >> 4,
            more: value & 0x08 != 0,
            szx,
        })
    }

    /// The option of `kind` in `packet`: `Ok(None)` when absent, an error when
    /// present but undecodable, or repeated (a block option is not repeatable,
    /// RFC 7959 Table 1).
    pub fn from_packet(packet: &Packet, kind: BlockKind) -> Result<Option<Self>, BlockError> {
        match packet.get_option(kind.option()) {
            None => Ok(None),
            Some(values) if values.len() > 1 => Err(BlockError::Repeated(kind.name())),
            Some(values) => match values.front() {
                Some(v) => BlockOption::decode(v).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Sets (replaces) the option of `kind` in `packet`.
    pub fn set_on(&self, packet: &mut Packet, kind: BlockKind) {
        packet.clear_option(kind.option());
        packet.add_option(kind.option(), self.encode());
    }
}

impl std::fmt::Display for BlockOption {
    /// The `NUM/M/SIZE` notation of RFC 7959's figures (`2/1/128`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.num, u8::from(self.more), self.size())
    }
}

/// The ETag of a message (RFC 7252 §5.10.6), if any.
pub fn etag(packet: &Packet) -> Option<Vec<u8>> {
    packet.get_first_option(CoapOption::ETag).cloned()
}

/// The Size1 or Size2 option (RFC 7959 §4).
pub fn size_option(packet: &Packet, kind: BlockKind) -> Option<u32> {
    options::uint(packet, kind.size_option())
}
