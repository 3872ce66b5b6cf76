//! Receiving a Block1 upload (RFC 7959 §2.3, §2.5, §2.9): the receiver's
//! side, what the virtual meter runs when the server pushes an image to /5/0/0.

use coap_lite::{CoapOption, MessageClass, Packet};

use super::option::{size_of_szx, size_option, BlockKind, BlockOption, MAX_SZX};
use crate::coap::{code, options};

/// What to do with one request of a Block1 transfer.
#[derive(Debug, Clone, PartialEq)]
pub enum Block1Step {
    /// Not the last block: send this 2.31 Continue (Block1 echo) as the response.
    Continue(Packet),
    /// The last block (or a request without Block1) arrived: act on `body`
    /// and answer with your final code (2.04 Changed for a Write), adding
    /// `echo` as its Block1 option when it is `Some` (§2.3: the final
    /// response carries the Block1 of the last block).
    Complete {
        body: Vec<u8>,
        echo: Option<BlockOption>,
    },
    /// Refused: send this (4.00, 4.08 or 4.13) as the response. Any partial
    /// body has been discarded.
    Refuse(Packet),
}

/// Reassembles one Block1 transfer in order, sans-IO.
///
/// Keep one per (peer, target path): RFC 7959 §2.5 matches the blocks of a
/// transfer by endpoint and request URI, not by token. Behaviour:
/// - block 0 (re)starts the transfer; every next block must start exactly
///   where the received data ends, else 4.08 Request Entity Incomplete (§2.9.2);
///   a repeat of the block just accepted is answered 2.31 again and not appended;
/// - a block larger than `max_szx` is refused 4.13 with Block1 `0/0/max_szx`
///   so the sender retries smaller (§2.9.3);
/// - a body (Size1, or the data so far) over `max_size` is refused 4.13 with
///   Size1 = `max_size` (§4);
/// - every block but the last must be exactly its size (§2.2), else 4.00;
///   SZX 7 is 4.00 (§2.2).
#[derive(Debug, Clone)]
pub struct Block1Assembler {
    max_size: usize,
    max_szx: u8,
    data: Vec<u8>,
    /// Size exponent the current transfer uses, once block 0 arrived.
    szx: Option<u8>,
    /// Offset and length of the last accepted block, to recognise a repeat.
    last: Option<(usize, usize)>,
}

impl Block1Assembler {
    /// An assembler accepting bodies up to `max_size` bytes in blocks of at
    /// most 2^(max_szx+4) bytes (`max_szx` above 6 is taken as 6).
    pub fn new(max_size: usize, max_szx: u8) -> Self {
        Block1Assembler {
            max_size,
            max_szx: max_szx.min(MAX_SZX),
            data: Vec::new(),
            szx: None,
            last: None,
        }
    }

    /// Bytes received so far in the current transfer.
    pub fn received(&self) -> usize {
        self.data.len()
    }

    /// Whether a transfer is under way (block 0 accepted, last block not yet).
    pub fn in_progress(&self) -> bool {
        self.szx.is_some()
    }

    /// Drops a partial transfer.
    pub fn reset(&mut self) {
        self.data.clear();
        self.szx = None;
        self.last = None;
    }

    /// Handles one request (PUT/POST) of the transfer.
    pub fn handle_request(&mut self, request: &Packet) -> Block1Step {
        let block = match BlockOption::from_packet(request, BlockKind::Block1) {
            Ok(b) => b,
            Err(e) => {
                self.reset();
                return refuse(e.response_code(), None, None, e.to_string());
            }
        };
        if let Some(size1) = size_option(request, BlockKind::Block1) {
            if size1 as usize > self.max_size {
                self.reset();
                return self.too_large(size1 as usize);
            }
        }
        let Some(block) = block else {
            // A whole body in one request.
            self.reset();
            if request.payload.len() > self.max_size {
                return self.too_large(request.payload.len());
            }
            return Block1Step::Complete {
                body: request.payload.clone(),
                echo: None,
            };
        };
        let size = size_of_szx(block.szx).unwrap_or(1024);
        let len = request.payload.len();
        if block.szx > self.max_szx
            && (block.more || len > size_of_szx(self.max_szx).unwrap_or(1024))
        {
            self.reset();
            let prefer = BlockOption {
                num: 0,
                more: false,
                szx: self.max_szx,
            };
            return refuse(
                413,
                Some(prefer),
                None,
                format!("blocks of at most {} bytes", prefer.size()),
            );
        }
        if (block.more && len != size) || len > size {
            self.reset();
            return refuse(
                400,
                None,
                None,
                format!("block {block} carries {len} bytes"),
            );
        }
        let offset = block.offset();
        if block.num == 0 {
            self.reset();
            self.szx = Some(block.szx);
        } else if self.szx.is_none() {
            return refuse(408, None, None, format!("block {block} without block 0"));
        } else if self.last == Some((offset, len)) && offset + len == self.data.len() {
            // The block just accepted, sent again (§2.5: an application-level
            // retry); answer as before without appending.
            if self.data[offset..] == request.payload[..] {
                return continue_response(block);
            }
        }
        if offset != self.data.len() {
            let expected = self.data.len();
            self.reset();
            return refuse(
                408,
                None,
                None,
                format!("block {block} starts at byte {offset}, expected byte {expected}"),
            );
        }
        if offset + len > self.max_size {
            self.reset();
            return self.too_large(offset + len);
        }
        self.data.extend_from_slice(&request.payload);
        self.last = Some((offset, len));
        self.szx = Some(block.szx);
        if block.more {
            return continue_response(block);
        }
        let body = std::mem::take(&mut self.data);
        self.reset();
        Block1Step::Complete {
            body,
            echo: Some(block),
        }
    }

    fn too_large(&self, size: usize) -> Block1Step {
        let size1 = u32::try_from(self.max_size).unwrap_or(u32::MAX);
        refuse(
            413,
            None,
            Some(size1),
            format!("{size} bytes is over the limit of {} bytes", self.max_size),
        )
    }
}

/// 2.31 Continue echoing the block just accepted (§2.3).
fn continue_response(block: BlockOption) -> Block1Step {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code::from_number(231).unwrap_or(0x5f));
    block.set_on(&mut p, BlockKind::Block1);
    Block1Step::Continue(p)
}

fn refuse(
    number: u16,
    block1: Option<BlockOption>,
    size1: Option<u32>,
    diagnostic: String,
) -> Block1Step {
    tracing::debug!(code = number, %diagnostic, "Block1 request refused");
    let mut p = Packet::new();
    p.header.code = MessageClass::from(code::from_number(number).unwrap_or(0x80));
    if let Some(b) = block1 {
        b.set_on(&mut p, BlockKind::Block1);
    }
    if let Some(s) = size1 {
        options::set_uint(&mut p, CoapOption::Size1, s);
    }
    p.payload = diagnostic.into_bytes();
    Block1Step::Refuse(p)
}
