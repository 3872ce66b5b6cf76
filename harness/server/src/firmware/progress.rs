//! Per-transfer progress of the file servers: what the runner turns into
//! message-log lines, a progress bar and JUnit properties.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The figures of one download of one image by one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferStats {
    /// Unique per file server, in order of start.
    pub id: u64,
    pub peer: SocketAddr,
    pub image: String,
    /// Image size in bytes.
    pub size: usize,
    /// Block size of the last block served.
    pub block_size: usize,
    /// Byte offset the transfer started at (non-zero for a resumed download).
    pub start_offset: usize,
    /// End of the furthest block served so far.
    pub offset: usize,
    /// Payload bytes served for distinct blocks (repeats not counted).
    pub bytes: u64,
    /// Distinct blocks served.
    pub blocks: u32,
    /// Requests that repeated a message id already seen: CoAP-level
    /// retransmissions of a CON whose ACK was lost (RFC 7252 §4.2, §4.5).
    pub duplicates: u32,
    /// Requests (with a new message id) for a block already served: the
    /// client gave up on an exchange and asked again.
    pub repeated_blocks: u32,
    /// From the first request to the latest one.
    pub elapsed: Duration,
    /// The last block (M=0) was served.
    pub complete: bool,
}

impl TransferStats {
    /// A transfer of `image` (`size` bytes) to `peer` that starts at
    /// `offset` with blocks of `block_size`: nothing served yet.
    pub(crate) fn starting(
        id: u64,
        peer: SocketAddr,
        image: &str,
        size: usize,
        block_size: usize,
        offset: usize,
    ) -> Self {
        TransferStats {
            id,
            peer,
            image: image.to_owned(),
            size,
            block_size,
            start_offset: offset,
            offset,
            bytes: 0,
            blocks: 0,
            duplicates: 0,
            repeated_blocks: 0,
            elapsed: Duration::ZERO,
            complete: false,
        }
    }

    /// Bytes per second over `elapsed` (0 before the second block).
    pub fn throughput(&self) -> f64 {
        lwm2m::server::bytes_per_second(self.bytes, self.elapsed)
    }

    /// Retransmissions of any kind seen.
    pub fn retransmissions(&self) -> u32 {
        self.duplicates + self.repeated_blocks
    }
}

impl fmt::Display for TransferStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to {}: {}/{} bytes{}, {} blocks of {}, {} retransmissions ({} duplicate, {} repeated), {:.1} KiB/s{}",
            self.image,
            self.peer,
            self.offset,
            self.size,
            if self.start_offset > 0 {
                format!(" (resumed at {})", self.start_offset)
            } else {
                String::new()
            },
            self.blocks,
            self.block_size,
            self.retransmissions(),
            self.duplicates,
            self.repeated_blocks,
            self.throughput() / 1024.0,
            if self.complete { ", complete" } else { "" }
        )
    }
}

/// What a file server reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// The first block of a transfer was served.
    Started(TransferStats),
    /// Every [`PROGRESS_EVERY_BLOCKS`] distinct blocks.
    Progress(TransferStats),
    /// The last block was served.
    Completed(TransferStats),
    /// A request was refused (unknown image, path outside the store, bad
    /// Block2 option, wrong method): the code (e.g. "4.04") and why.
    Refused {
        peer: SocketAddr,
        path: String,
        code: String,
        reason: String,
    },
}

/// How often [`ProgressEvent::Progress`] is published.
pub const PROGRESS_EVERY_BLOCKS: u32 = 32;

impl fmt::Display for ProgressEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgressEvent::Started(s) => write!(f, "firmware download started: {s}"),
            ProgressEvent::Progress(s) => write!(f, "firmware download: {s}"),
            ProgressEvent::Completed(s) => write!(f, "firmware download finished: {s}"),
            ProgressEvent::Refused {
                peer,
                path,
                code,
                reason,
            } => write!(
                f,
                "firmware request from {peer} for {path:?} refused with {code}: {reason}"
            ),
        }
    }
}
