//! Downloading a resource with Block2 (RFC 7959 §2.4, §3.1), client side:
//! what the virtual meter runs to fetch a firmware image from its Package URI.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use super::option::{etag, size_option, BlockKind, BlockOption, MAX_SZX};
use super::BlockError;
use crate::coap::{code, options};

/// How far a transfer got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Byte offset reached in the resource (including a resume offset).
    pub offset: usize,
    /// Total size, when the peer announced it (Size2/Size1) or the transfer ended.
    pub total: Option<usize>,
    /// Blocks accepted so far.
    pub blocks: u32,
    /// Requests built for a block that was already requested before
    /// (an application-level retry after a lost exchange).
    pub retransmissions: u32,
}

/// What one response did to the download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadStatus {
    /// More blocks to fetch: send [`Block2Download::next_request`].
    More { offset: usize },
    /// The last block (M=0) arrived.
    Complete { size: usize },
}

/// A Block2 download, one block per request, sans-IO.
///
/// The caller sends each [`next_request`](Block2Download::next_request) (a
/// GET with Uri-Path and Block2 `num/0/szx`; token and message id come from
/// `MessageLayer::send`), feeds the response to
/// [`handle_response`](Block2Download::handle_response), and stops at
/// `Complete` or an error. Per RFC 7959 §2.4 the client keeps the block size
/// the server chose when it is smaller. The first response's ETag is pinned;
/// a later block with another ETag is [`BlockError::ImageChanged`], since
/// mixing two images would flash a corrupt one (§2.4: "the client ... SHOULD
/// ... compare ETag").
#[derive(Debug, Clone)]
pub struct Block2Download {
    uri_path: Vec<String>,
    uri_query: Vec<String>,
    /// The request every block repeats, when the download continues one
    /// (see [`Block2Download::continuing`]); `None`: a GET of `uri_path`.
    template: Option<Packet>,
    szx: u8,
    /// Byte offset the download started at (0, or where a resume began).
    start: usize,
    /// Bytes received from `start` on.
    data: Vec<u8>,
    etag: Option<Vec<u8>>,
    total: Option<usize>,
    limit: Option<usize>,
    blocks: u32,
    retransmissions: u32,
    /// Offset of the last request built, to count retries.
    last_requested: Option<usize>,
    /// Offset of the block the last request asked for.
    requested_block: Option<usize>,
    complete: bool,
}

impl Block2Download {
    /// Starts a download of `uri_path` (segments, no slashes) at block size `szx`.
    pub fn new(uri_path: Vec<String>, szx: u8) -> Result<Self, BlockError> {
        Block2Download::resume(uri_path, szx, 0, None)
    }

    /// Resumes at byte `offset` (e.g. what survived a power cut in flash).
    /// `etag` is the ETag the earlier part was downloaded under: a different
    /// image on the server is then detected on the first block. An offset
    /// that is not a multiple of the block size is fetched from the start of
    /// its block and the bytes before it are dropped.
    pub fn resume(
        uri_path: Vec<String>,
        szx: u8,
        offset: usize,
        etag: Option<Vec<u8>>,
    ) -> Result<Self, BlockError> {
        if szx > MAX_SZX {
            return Err(BlockError::ReservedSzx(szx));
        }
        BlockOption::at_offset(offset, szx)?;
        Ok(Block2Download {
            uri_path,
            uri_query: Vec::new(),
            template: None,
            szx,
            start: offset,
            data: Vec::new(),
            etag,
            total: None,
            limit: None,
            blocks: 0,
            retransmissions: 0,
            last_requested: None,
            requested_block: None,
            complete: false,
        })
    }

    /// Continues a request whose response came block-wise: every block is
    /// asked for with `request` itself — its method, Uri-Path, Uri-Query and
    /// Accept — and a Block2 option (RFC 7959 §2.4: the following blocks are
    /// requested "with the same options as the initial request"). The
    /// token and message id are dropped, so each block is its own exchange
    /// with its own token (RFC 7959 §3.4: "the client is free to choose
    /// tokens for each exchange"); Observe is dropped, since the rest of a
    /// notification is fetched with plain GETs (RFC 7959 §2.6). Feed it the
    /// first response with [`handle_response`](Block2Download::handle_response),
    /// then send `next_request()` until `Complete`. The block size starts
    /// at 1024 and follows whatever smaller size the peer chose.
    pub fn continuing(request: &Packet) -> Self {
        let mut template = request.clone();
        template.set_token(Vec::new());
        template.header.message_id = 0;
        for option in [
            CoapOption::Observe,
            CoapOption::Block2,
            CoapOption::Size2,
            CoapOption::Block1,
            CoapOption::Size1,
        ] {
            template.clear_option(option);
        }
        Block2Download {
            uri_path: options::strings(request, CoapOption::UriPath),
            uri_query: options::strings(request, CoapOption::UriQuery),
            template: Some(template),
            szx: MAX_SZX,
            start: 0,
            data: Vec::new(),
            etag: None,
            total: None,
            limit: None,
            blocks: 0,
            retransmissions: 0,
            last_requested: None,
            requested_block: None,
            complete: false,
        }
    }

    /// Adds Uri-Query options to every request.
    pub fn with_query(mut self, query: Vec<String>) -> Self {
        self.uri_query = query;
        self
    }

    /// Refuses resources larger than `bytes` (the flash slot), with
    /// [`BlockError::TooLarge`] as soon as Size2 or the data shows it.
    pub fn with_limit(mut self, bytes: usize) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// Next byte offset wanted.
    pub fn offset(&self) -> usize {
        self.start + self.data.len()
    }

    /// Current block size exponent (may have shrunk to the server's choice).
    pub fn szx(&self) -> u8 {
        self.szx
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The ETag pinned by the first response (or given to `resume`).
    pub fn etag(&self) -> Option<&[u8]> {
        self.etag.as_deref()
    }

    /// Bytes received since `start` (the whole resource when started at 0).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    pub fn progress(&self) -> Progress {
        Progress {
            offset: self.offset(),
            total: self.total,
            blocks: self.blocks,
            retransmissions: self.retransmissions,
        }
    }

    /// The GET for the next block; `None` once complete. Calling it again
    /// before a response arrived builds the same request and counts a retry.
    pub fn next_request(&mut self) -> Option<Packet> {
        if self.complete {
            return None;
        }
        let offset = self.offset();
        if self.last_requested == Some(offset) {
            self.retransmissions += 1;
        }
        self.last_requested = Some(offset);
        let block = BlockOption::at_offset(offset, self.szx).ok()?;
        self.requested_block = Some(block.offset());
        let mut p = match &self.template {
            Some(template) => template.clone(),
            None => {
                let mut p = Packet::new();
                p.header.code = MessageClass::Request(RequestType::Get);
                options::add_strings(&mut p, CoapOption::UriPath, &self.uri_path);
                options::add_strings(&mut p, CoapOption::UriQuery, &self.uri_query);
                p
            }
        };
        block.set_on(&mut p, BlockKind::Block2);
        if offset == 0 {
            // RFC 7959 §4: Size2 0 in a request asks for the total size.
            options::set_uint(&mut p, CoapOption::Size2, 0);
        }
        Some(p)
    }

    /// Consumes the response to the last request.
    pub fn handle_response(&mut self, response: &Packet) -> Result<DownloadStatus, BlockError> {
        if self.complete {
            return Err(BlockError::Finished);
        }
        let raw: u8 = response.header.code.into();
        if code::to_number(raw) != 205 {
            return Err(BlockError::Status {
                code: code::to_number(raw),
                diagnostic: String::from_utf8_lossy(&response.payload).into_owned(),
            });
        }
        let tag = etag(response);
        match (&self.etag, &tag) {
            (Some(pinned), got) if got.as_ref() != Some(pinned) => {
                return Err(BlockError::ImageChanged {
                    expected: hex::encode(pinned),
                    got: got
                        .as_deref()
                        .map(hex::encode)
                        .unwrap_or_else(|| "none".into()),
                });
            }
            (None, Some(t)) => self.etag = Some(t.clone()),
            _ => {}
        }
        if let Some(size2) = size_option(response, BlockKind::Block2) {
            let size2 = size2 as usize;
            self.check_limit(size2)?;
            self.total = Some(size2);
        }
        let wanted = self.offset();
        let block = BlockOption::from_packet(response, BlockKind::Block2)?;
        let (block_offset, more) = match block {
            Some(b) => {
                // All blocks but the last carry exactly `size` bytes (§2.2).
                if b.more && response.payload.len() != b.size() {
                    return Err(BlockError::ShortBlock {
                        block: b,
                        len: response.payload.len(),
                    });
                }
                if b.szx < self.szx {
                    tracing::debug!(
                        from = self.szx,
                        to = b.szx,
                        "server chose a smaller Block2 size"
                    );
                    self.szx = b.szx;
                }
                (b.offset(), b.more)
            }
            // No Block2: the server sent the whole representation (§2.2).
            None => (0, false),
        };
        let end = block_offset + response.payload.len();
        if more && end <= wanted && Some(block_offset) == self.requested_block {
            // The server shrank the block (§2.4) and this smaller block ends
            // before a resume offset: nothing to keep, ask for the next one.
            self.requested_block = None;
            return Ok(DownloadStatus::More { offset: wanted });
        }
        let fresh = block_offset <= wanted && (end > wanted || (!more && end == wanted));
        if !fresh {
            return Err(BlockError::UnexpectedBlock {
                kind: "Block2",
                expected_offset: wanted,
                got: block,
            });
        }
        self.check_limit(end)?;
        self.data
            .extend_from_slice(&response.payload[wanted - block_offset..]);
        self.blocks += 1;
        if more {
            return Ok(DownloadStatus::More {
                offset: self.offset(),
            });
        }
        let size = self.offset();
        if let Some(total) = self.total {
            if total != size {
                return Err(BlockError::SizeMismatch {
                    announced: total,
                    received: size,
                });
            }
        }
        self.total = Some(size);
        self.complete = true;
        Ok(DownloadStatus::Complete { size })
    }

    fn check_limit(&self, size: usize) -> Result<(), BlockError> {
        match self.limit {
            Some(limit) if size > limit => Err(BlockError::TooLarge { limit, size }),
            _ => Ok(()),
        }
    }
}
