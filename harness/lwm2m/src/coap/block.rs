//! Block-wise transfer (RFC 7959), sans-IO: the Block1/Block2 option, and the
//! four roles a firmware update needs — serving an image with Block2,
//! downloading one with Block2, pushing one with Block1, and receiving a push.
//!
//! Nothing here sends, retransmits or times out: each state machine builds
//! coap-lite [`Packet`](coap_lite::Packet)s without token or message id and
//! consumes responses; [`MessageLayer`](crate::coap::MessageLayer) does the
//! CoAP message layer (CON retransmission, matching by token). One block is
//! one CoAP exchange, so a lost datagram costs one block's retransmission.
//!
//! # Using it
//!
//! **Firmware file server (server crate, CoAP Package URI).** For each GET on
//! an image path, answer with [`respond_block2`]:
//!
//! ```
//! # use coap_lite::{Packet, MessageClass, RequestType};
//! use lwm2m::coap::block::{respond_block2, BlockKind, BlockOption};
//! let image = vec![0xA5u8; 3000];
//! let etag = b"v2.0-3000".to_vec(); // e.g. a short hash of the image
//! let mut get = Packet::new();
//! get.header.code = MessageClass::Request(RequestType::Get);
//! BlockOption::new(2, false, 6).unwrap().set_on(&mut get, BlockKind::Block2);
//! let answer = respond_block2(&get, &image, &etag, 6, None);
//! // then: message_layer.respond(peer, &get, answer)
//! let block = BlockOption::from_packet(&answer, BlockKind::Block2).unwrap().unwrap();
//! assert_eq!((block.num, block.more), (2, false));
//! assert_eq!(answer.payload.len(), 3000 - 2048);
//! ```
//!
//! It serves any size and offset the device asks for (a resuming device
//! starts mid-image), sets ETag on every block and Size2 on block 0, and
//! answers a block past the end with 4.02 Bad Option. Keep the ETag stable for
//! one image and different between images: that is how a device notices the
//! image changed under it. [`serve_block2`] is the same choice without
//! building a packet, for servers that assemble responses themselves.
//!
//! **Device download (virtual meter, Package URI).** One [`Block2Download`]
//! per download:
//!
//! ```
//! # use lwm2m::coap::block::{Block2Download, DownloadStatus, respond_block2};
//! let image: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
//! let mut dl = Block2Download::new(vec!["fw".into(), "meter-2.0.bin".into()], 4)
//!     .unwrap()
//!     .with_limit(64 * 1024); // the flash slot: larger images fail early
//! while let Some(get) = dl.next_request() {
//!     // real code: message_layer.send(now, server, get, true) and wait for
//!     // ExchangeEvent::Response; on Timeout call next_request() again (same
//!     // block, counted in progress().retransmissions).
//!     let response = respond_block2(&get, &image, b"e1", 6, None);
//!     match dl.handle_response(&response).unwrap() {
//!         DownloadStatus::More { offset } => { /* persist `offset` and the ETag for resume */ }
//!         DownloadStatus::Complete { size } => assert_eq!(size, 1000),
//!     }
//! }
//! assert_eq!(dl.data(), &image[..]);
//! ```
//!
//! After a power cut, [`Block2Download::resume`] with the stored offset and
//! ETag continues where flash ends. Map errors to object 5's Update Result:
//! [`BlockError::ImageChanged`] → restart from 0 (or 5 Integrity Check
//! Failure), [`BlockError::TooLarge`] → 2 Not Enough Flash, a 4.04 in
//! [`BlockError::Status`] → 7 Invalid URI, exchange timeouts → 4 Connection Lost.
//!
//! **Server push (server crate, Write /5/0/0 with Block1).** One
//! [`Block1Upload`] per push: send `next_request()`, pass each response to
//! `handle_response()`, repeat until `UploadStatus::Complete { code }`
//! (2.04 expected). `Renegotiated` needs nothing but the next request; the
//! counters in `progress()` and `renegotiations()` are for the message log.
//!
//! **Device receiving a push (virtual meter's /5/0/0).** Keep a
//! [`Block1Assembler`] per (peer, path); for each PUT/POST that carries
//! Block1 (or any write to /5/0/0), call `handle_request`: answer `Continue`
//! and `Refuse` packets as they are; on `Complete { body, echo }` write the
//! image, then answer 2.04 with `echo` set as Block1.
//!
//! **Any request body, either role.** A [`Block1Inbox`] keyed by (peer,
//! Uri-Path) sits in front of the request handlers of the server's
//! registration interface and the client's device management interface:
//! `Single` requests go on as they are, `Answer` packets (2.31 Continue,
//! 4.08, 4.13) are sent as they are, and a `Complete` request carries the
//! whole body, handled as if it had come in one message.
//!
//! **A response that comes block-wise (server role).** A Read or Discover
//! answered with Block2 M=1 is continued with [`Block2Download::continuing`]:
//! the same request with Block2 for each next block, ETag pinned, until the
//! last block; the server delivers the whole body as one response.

mod assembler;
mod download;
mod inbox;
mod option;
mod source;
mod upload;

pub use assembler::{Block1Assembler, Block1Step};
pub use download::{Block2Download, DownloadStatus, Progress};
pub use inbox::{Block1Inbox, Block1Outcome, MAX_TRANSFERS, TRANSFER_IDLE};
pub use option::{
    etag, size_of_szx, size_option, szx_fitting, szx_of_size, BlockKind, BlockOption, MAX_NUM,
    MAX_SZX,
};
pub use source::{representation_etag, respond_block2, serve_block2, Block2Answer};
pub use upload::{Block1Upload, UploadStatus};

/// What went wrong in a block-wise transfer: a bad option, a refusal by the
/// peer, or a response that does not continue the transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("SZX {0} is reserved (RFC 7959 §2.2 allows 0-6)")]
    ReservedSzx(u8),
    #[error("block option value of {0} bytes (at most 3, RFC 7959 §2.2)")]
    OptionTooLong(usize),
    #[error("block number {0} does not fit in 20 bits (RFC 7959 §2.2)")]
    NumTooLarge(u64),
    #[error("{0} option repeated (not repeatable, RFC 7959 Table 1)")]
    Repeated(&'static str),
    #[error("block at byte {offset} is past the end of the {len}-byte resource")]
    BeyondEnd { offset: usize, len: usize },
    #[error("peer answered {}.{:02}: {diagnostic}", code / 100, code % 100)]
    Status { code: u16, diagnostic: String },
    #[error("image changed, restart: ETag was {expected}, block came with {got}")]
    ImageChanged { expected: String, got: String },
    #[error("{kind} response does not continue the transfer at byte {expected_offset}: got {}", got.map(|b| b.to_string()).unwrap_or_else(|| "no block option".into()))]
    UnexpectedBlock {
        kind: &'static str,
        expected_offset: usize,
        got: Option<BlockOption>,
    },
    #[error(
        "block {block} carries {len} bytes; every block but the last must be full (RFC 7959 §2.2)"
    )]
    ShortBlock { block: BlockOption, len: usize },
    #[error("Size2 announced {announced} bytes but the transfer ended at {received}")]
    SizeMismatch { announced: usize, received: usize },
    #[error("{size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize, size: usize },
    #[error("peer refused the body: 4.13 Request Entity Too Large{}", size1.map(|s| format!(" (Size1 {s})")).unwrap_or_default())]
    EntityTooLarge { size1: Option<u32> },
    #[error("peer answered 4.08 Request Entity Incomplete: {diagnostic}")]
    Incomplete { diagnostic: String },
    #[error("peer answered {}.{:02} to a non-final block without Block1: it ignored block-wise transfer", code / 100, code % 100)]
    IgnoredBlock1 { code: u16 },
    #[error("response after the transfer completed")]
    Finished,
}

impl BlockError {
    /// The response code a server answers a request with this problem:
    /// 4.00 for SZX 7 (RFC 7959 §2.2), 4.02 Bad Option for other unusable
    /// block options and for blocks past the end.
    pub fn response_code(&self) -> u16 {
        match self {
            BlockError::ReservedSzx(_) => 400,
            BlockError::TooLarge { .. } | BlockError::EntityTooLarge { .. } => 413,
            BlockError::Incomplete { .. } => 408,
            _ => 402,
        }
    }
}
