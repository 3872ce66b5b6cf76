//! Serving a blob with Block2 (RFC 7959 §2.2, §2.4, §4): what the firmware
//! file server answers to each GET of a block-wise download.

use std::ops::Range;

use coap_lite::{CoapOption, MessageClass, Packet};

use super::option::{size_of_szx, BlockKind, BlockOption, MAX_NUM, MAX_SZX};
use super::BlockError;
use crate::coap::{code, options};

/// What to put in the 2.05 Content answering one GET: which bytes, which
/// Block2 option (`None` when the whole resource fits in one message and the
/// client did not ask for blocks) and Size2 (set on the first block, RFC 7959 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block2Answer {
    pub range: Range<usize>,
    pub option: Option<BlockOption>,
    pub size2: Option<u32>,
}

/// Chooses the block to answer a GET with.
///
/// - Without a Block2 option in the request, block 0 at `preferred_szx` (or
///   the whole resource, with no Block2, when it fits in one block).
/// - With Block2 (num, szx): the block at byte offset `num * 2^(szx+4)` — any
///   size the client asks, and a different size on every request if it likes
///   (§2.4), so a device that resumes mid-image simply asks for the block
///   holding its offset. When the client asks for a larger block than
///   `preferred_szx`, the answer uses the preferred size and renumbers the
///   block so it starts at the same offset (§2.4: "the server ... uses the
///   smaller SZX ... the NUM is then computed as offset / new size").
/// - A block that starts at or past the end is [`BlockError::BeyondEnd`],
///   answered 4.02 Bad Option ([`BlockError::response_code`]); block 0 of an
///   empty resource is an empty last block.
///
/// `preferred_szx` above 6 is treated as 6.
pub fn serve_block2(
    resource_len: usize,
    request_block: Option<BlockOption>,
    preferred_szx: u8,
) -> Result<Block2Answer, BlockError> {
    let preferred = preferred_szx.min(MAX_SZX);
    let Some(request) = request_block else {
        let size = size_of_szx(preferred).unwrap_or(1024);
        if resource_len <= size {
            return Ok(Block2Answer {
                range: 0..resource_len,
                option: None,
                size2: None,
            });
        }
        return Ok(Block2Answer {
            range: 0..size,
            option: Some(BlockOption::new(0, true, preferred)?),
            size2: u32::try_from(resource_len).ok(),
        });
    };
    if request.szx > MAX_SZX {
        return Err(BlockError::ReservedSzx(request.szx));
    }
    let offset = request.offset();
    if offset >= resource_len && !(offset == 0 && resource_len == 0) {
        return Err(BlockError::BeyondEnd {
            offset,
            len: resource_len,
        });
    }
    let szx = request.szx.min(preferred);
    let size = 1usize << (szx + 4);
    // Offsets of the requested size are multiples of every smaller size, so
    // the renumbered block starts exactly where the client asked.
    let num = offset / size;
    if num > MAX_NUM as usize {
        return Err(BlockError::NumTooLarge(num as u64));
    }
    let end = (offset + size).min(resource_len);
    Ok(Block2Answer {
        range: offset..end,
        option: Some(BlockOption::new(num as u32, end < resource_len, szx)?),
        size2: (offset == 0)
            .then(|| u32::try_from(resource_len).ok())
            .flatten(),
    })
}

/// Builds the whole response to a GET for `resource`: 2.05 Content with the
/// chosen block, Block2, ETag, and Size2 on the first block or whenever the
/// request carried Size2 (RFC 7959 §4: a Size2 of 0 in a request asks for the
/// size). Errors in the request's Block2 option, or a block past the end,
/// give 4.00 / 4.02 with a diagnostic payload. Token, type and message id are
/// the message layer's (`MessageLayer::respond`).
pub fn respond_block2(
    request: &Packet,
    resource: &[u8],
    etag: &[u8],
    preferred_szx: u8,
    content_format: Option<u16>,
) -> Packet {
    let answer = BlockOption::from_packet(request, BlockKind::Block2)
        .and_then(|block| serve_block2(resource.len(), block, preferred_szx));
    let mut p = Packet::new();
    match answer {
        Ok(a) => {
            p.header.code = MessageClass::from(code::from_number(205).unwrap_or(0x45));
            if !etag.is_empty() {
                p.add_option(CoapOption::ETag, etag.to_vec());
            }
            if let Some(cf) = content_format {
                options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(cf));
            }
            if let Some(option) = a.option {
                option.set_on(&mut p, BlockKind::Block2);
            }
            let size2 = a.size2.or_else(|| {
                request
                    .get_first_option(CoapOption::Size2)
                    .and_then(|_| u32::try_from(resource.len()).ok())
            });
            if let Some(size2) = size2 {
                options::set_uint(&mut p, CoapOption::Size2, size2);
            }
            p.payload = resource[a.range].to_vec();
        }
        Err(e) => {
            let number = e.response_code();
            tracing::debug!(error = %e, code = number, "Block2 request refused");
            p.header.code = MessageClass::from(code::from_number(number).unwrap_or(0x82));
            p.payload = e.to_string().into_bytes();
        }
    }
    p
}

/// An ETag for one representation (RFC 7252 §5.10.6), for servers that build
/// a body on every request (an LwM2M client's Read of live values): the
/// first four bytes of SHA-256 over the Content-Format and the body. Equal
/// bodies get equal tags, so the blocks of one Block2 transfer match while
/// the value holds still, and a value that changed between two blocks shows
/// as a changed ETag, which makes the requester start over (RFC 7959 §2.4).
pub fn representation_etag(content_format: u16, body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(content_format.to_be_bytes());
    hash.update(body);
    hash.finalize()[..4].to_vec()
}
