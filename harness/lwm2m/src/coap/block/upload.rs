//! Uploading a payload with Block1 (RFC 7959 §2.3, §2.5, §2.9.3), the
//! sender's side: what the server runs to push a firmware image into /5/0/0.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::download::Progress;
use super::option::{size_option, BlockKind, BlockOption, MAX_SZX};
use super::BlockError;
use crate::coap::{code, options};

/// What one response did to the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// The block was accepted (2.31 Continue): send the next one.
    Continue { offset: usize },
    /// The peer asked for smaller blocks (4.13 with Block1, §2.9.3, or a
    /// smaller SZX in 2.31, §2.3); the next request resends from `offset`.
    Renegotiated { szx: u8, offset: usize },
    /// The final response (e.g. 2.04 Changed) to the last block.
    Complete { code: u16 },
}

/// A Block1 upload of one request body, sans-IO.
///
/// Each [`next_request`](Block1Upload::next_request) is the current block as a
/// PUT/POST with Uri-Path, Content-Format, Block1 `num/M/szx`, and Size1 (the
/// total, §4) on block 0. The caller sends it with `MessageLayer::send` and
/// hands the response to [`handle_response`](Block1Upload::handle_response).
/// A 4.13 Request Entity Too Large whose Block1 names a smaller size makes
/// the upload continue at that size from the same byte offset (RFC 7959
/// §2.9.3: the server "MAY ... indicate the block size it prefers"); 4.13
/// without a smaller Block1 is fatal ([`BlockError::EntityTooLarge`], with
/// the Size1 limit when given), as is 4.08 ([`BlockError::Incomplete`]; call
/// [`restart`](Block1Upload::restart) to begin again from block 0).
#[derive(Debug, Clone)]
pub struct Block1Upload {
    method: RequestType,
    uri_path: Vec<String>,
    content_format: Option<u16>,
    body: Vec<u8>,
    szx: u8,
    /// Offset of the current (unacknowledged) block.
    offset: usize,
    blocks: u32,
    retransmissions: u32,
    renegotiations: u32,
    last_requested: Option<(usize, u8)>,
    complete: bool,
}

impl Block1Upload {
    pub fn new(
        method: RequestType,
        uri_path: Vec<String>,
        content_format: Option<u16>,
        body: Vec<u8>,
        szx: u8,
    ) -> Result<Self, BlockError> {
        if szx > MAX_SZX {
            return Err(BlockError::ReservedSzx(szx));
        }
        // The last block number must fit in 20 bits.
        BlockOption::at_offset(body.len().saturating_sub(1), szx)?;
        Ok(Block1Upload {
            method,
            uri_path,
            content_format,
            body,
            szx,
            offset: 0,
            blocks: 0,
            retransmissions: 0,
            renegotiations: 0,
            last_requested: None,
            complete: false,
        })
    }

    /// Current block size exponent (shrinks on renegotiation).
    pub fn szx(&self) -> u8 {
        self.szx
    }

    /// Bytes acknowledged so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// How many times the peer made us use a smaller block size.
    pub fn renegotiations(&self) -> u32 {
        self.renegotiations
    }

    pub fn progress(&self) -> Progress {
        Progress {
            offset: self.offset,
            total: Some(self.body.len()),
            blocks: self.blocks,
            retransmissions: self.retransmissions,
        }
    }

    /// Starts over from block 0 (after 4.08 Request Entity Incomplete: the
    /// peer lost the blocks so far).
    pub fn restart(&mut self) {
        self.offset = 0;
        self.complete = false;
        self.last_requested = None;
    }

    fn current(&self) -> Result<(BlockOption, std::ops::Range<usize>), BlockError> {
        let size = 1usize << (self.szx + 4);
        let end = (self.offset + size).min(self.body.len());
        let mut block = BlockOption::at_offset(self.offset, self.szx)?;
        block.more = end < self.body.len();
        Ok((block, self.offset..end))
    }

    /// The request carrying the current block; `None` once complete. Building
    /// it again before a response arrived counts a retransmission.
    pub fn next_request(&mut self) -> Option<Packet> {
        if self.complete {
            return None;
        }
        let (block, range) = self.current().ok()?;
        if self.last_requested == Some((self.offset, self.szx)) {
            self.retransmissions += 1;
        }
        self.last_requested = Some((self.offset, self.szx));
        let mut p = Packet::new();
        p.header.code = MessageClass::Request(self.method);
        options::add_strings(&mut p, CoapOption::UriPath, &self.uri_path);
        if let Some(cf) = self.content_format {
            options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(cf));
        }
        block.set_on(&mut p, BlockKind::Block1);
        if block.num == 0 {
            if let Ok(total) = u32::try_from(self.body.len()) {
                options::set_uint(&mut p, CoapOption::Size1, total);
            }
        }
        p.payload = self.body[range].to_vec();
        Some(p)
    }

    /// Consumes the response to the last request sent.
    pub fn handle_response(&mut self, response: &Packet) -> Result<UploadStatus, BlockError> {
        if self.complete {
            return Err(BlockError::Finished);
        }
        let (sent, range) = self.current()?;
        let raw: u8 = response.header.code.into();
        let number = code::to_number(raw);
        let echo = BlockOption::from_packet(response, BlockKind::Block1)?;
        match number {
            413 => {
                let smaller = echo.map(|b| b.szx).filter(|szx| *szx < self.szx);
                match smaller {
                    Some(szx) => {
                        tracing::debug!(
                            from = self.szx,
                            to = szx,
                            offset = self.offset,
                            "4.13: renegotiating Block1 size down"
                        );
                        self.szx = szx;
                        self.renegotiations += 1;
                        Ok(UploadStatus::Renegotiated {
                            szx,
                            offset: self.offset,
                        })
                    }
                    None => Err(BlockError::EntityTooLarge {
                        size1: size_option(response, BlockKind::Block1),
                    }),
                }
            }
            408 => Err(BlockError::Incomplete {
                diagnostic: String::from_utf8_lossy(&response.payload).into_owned(),
            }),
            200..=299 => {
                let intermediate = number == 231 || (sent.more && echo.is_some());
                if sent.more && !intermediate {
                    // A final answer to a non-final block: the peer ignored Block1
                    // and acted on the first block alone (§2.3).
                    return Err(BlockError::IgnoredBlock1 { code: number });
                }
                if let Some(echo) = echo {
                    if echo.offset() != sent.offset() {
                        return Err(BlockError::UnexpectedBlock {
                            kind: "Block1",
                            expected_offset: sent.offset(),
                            got: Some(echo),
                        });
                    }
                }
                if !intermediate {
                    self.offset = range.end;
                    self.blocks += 1;
                    self.complete = true;
                    return Ok(UploadStatus::Complete { code: number });
                }
                if number == 231 && !sent.more {
                    return Err(BlockError::UnexpectedBlock {
                        kind: "Block1",
                        expected_offset: sent.offset(),
                        got: echo,
                    });
                }
                self.offset = range.end;
                self.blocks += 1;
                // §2.3: a smaller SZX in the 2.31 sets the size of later blocks.
                match echo {
                    Some(e) if e.szx < self.szx => {
                        self.szx = e.szx;
                        self.renegotiations += 1;
                        Ok(UploadStatus::Renegotiated {
                            szx: e.szx,
                            offset: self.offset,
                        })
                    }
                    _ => Ok(UploadStatus::Continue {
                        offset: self.offset,
                    }),
                }
            }
            _ => Err(BlockError::Status {
                code: number,
                diagnostic: String::from_utf8_lossy(&response.payload).into_owned(),
            }),
        }
    }
}
