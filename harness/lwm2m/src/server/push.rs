//! Pushing a body with Block1 (RFC 7959 §2.3, §2.5, §2.9.3), the server's
//! side: how meterbench delivers a firmware image by writing it into
//! /5/0/0 Package (LwM2M 1.1 Core §E.6, "Push" delivery method).
//!
//! One [`Push`] per [`DmRequest::WriteBlockwise`](super::DmRequest::WriteBlockwise):
//! it wraps a [`Block1Upload`] and counts what the message log, a progress
//! bar and the JUnit properties report — bytes acknowledged, blocks,
//! retransmissions and block-size renegotiations. Each block is one
//! Confirmable exchange of the [`MessageLayer`](crate::coap::MessageLayer),
//! so a lost datagram costs one block's retransmission; the layer's
//! per-exchange transmission count is folded in here.

use std::time::{Duration, Instant};

use coap_lite::{Packet, RequestType};

use crate::coap::block::{size_of_szx, Block1Upload, BlockError, UploadStatus};
use crate::format::ContentFormat;
use crate::path::Path;

/// A progress event is published every this many acknowledged blocks (and
/// for the first block, on every renegotiation and at the end), so that a
/// 1 MiB push at 16-byte blocks does not flood the event history.
pub const PUSH_PROGRESS_EVERY_BLOCKS: u32 = 16;

/// The figures of one Block1 push, as of its latest response.
#[derive(Debug, Clone, PartialEq)]
pub struct PushProgress {
    /// The resource written, e.g. /5/0/0.
    pub path: Path,
    /// Size of the whole body in bytes.
    pub total: usize,
    /// Bytes the device acknowledged so far (2.31 Continue or the final response).
    pub bytes: usize,
    /// Blocks the device acknowledged.
    pub blocks: u32,
    /// Current block size in bytes (it shrinks when the device renegotiates).
    pub block_size: usize,
    /// Block1 size exponent asked for when the push started.
    pub initial_szx: u8,
    /// Datagrams sent again: CoAP retransmissions of unacknowledged blocks
    /// (RFC 7252 §4.2) plus blocks rebuilt after a lost exchange.
    pub retransmissions: u32,
    /// How often the device made the server use a smaller block size
    /// (4.13 with Block1, RFC 7959 §2.9.3, or a smaller SZX in 2.31, §2.3).
    pub renegotiations: u32,
    /// From the first block sent to the latest response.
    pub elapsed: Duration,
    /// The limit the device announced in Size1 when it refused the body with
    /// 4.13 Request Entity Too Large (RFC 7959 §4).
    pub size1: Option<u32>,
    /// The push ended (final response, refusal, timeout or Reset).
    pub finished: bool,
}

/// Transfer rate in bytes per second, 0 before any time has passed (the
/// first report of a transfer comes at elapsed 0; its rate is unknown, not
/// infinite). Every transfer meterbench reports — Block1 push, Block2 and
/// HTTP pull — computes its rate with this.
pub fn bytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        bytes as f64 / secs
    } else {
        0.0
    }
}

impl PushProgress {
    /// Bytes per second over `elapsed` (0 before any time has passed).
    pub fn throughput(&self) -> f64 {
        bytes_per_second(self.bytes as u64, self.elapsed)
    }
}

impl std::fmt::Display for PushProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "push to {}: {}/{} bytes, {} blocks of {}, {} retransmissions, {} renegotiations, {:.1} KiB/s{}{}",
            self.path,
            self.bytes,
            self.total,
            self.blocks,
            self.block_size,
            self.retransmissions,
            self.renegotiations,
            self.throughput() / 1024.0,
            self.size1
                .map(|s| format!(", device limit {s} bytes"))
                .unwrap_or_default(),
            if self.finished { ", finished" } else { "" }
        )
    }
}

/// What one response did to the push.
#[derive(Debug)]
pub(crate) enum PushStep {
    /// Send this request (the next block, or the same offset smaller).
    Next(Packet),
    /// The device's final answer to the last block, with its code.
    Complete(u16),
    /// The device refused the transfer with this code (4.13 without a
    /// smaller Block1, 4.08, or any other error code).
    Refused(u16),
    /// The device broke the block-wise protocol (e.g. answered 2.04 to a
    /// non-final block, ignoring Block1).
    Violation(BlockError),
}

/// The state of one push in flight.
#[derive(Debug)]
pub(crate) struct Push {
    upload: Block1Upload,
    path: Path,
    initial_szx: u8,
    started: Instant,
    updated: Instant,
    /// CoAP retransmissions of blocks already answered.
    coap_retransmissions: u32,
    /// Transmissions of the block now in flight (updated after each timeout).
    in_flight_transmissions: u32,
    size1: Option<u32>,
    finished: bool,
    /// Blocks acknowledged at the last published progress event.
    published_blocks: u32,
}

impl Push {
    /// A PUT of `body` to `path` in `format`, blocks of 2^(szx+4) bytes.
    pub(crate) fn new(
        now: Instant,
        path: Path,
        format: ContentFormat,
        body: Vec<u8>,
        szx: u8,
    ) -> Result<Self, BlockError> {
        Self::with_method(now, RequestType::Put, path, format, body, szx)
    }

    /// `method` (PUT, or iPATCH for a Write-Composite on `/`) of `body` to
    /// `path` in blocks.
    pub(crate) fn with_method(
        now: Instant,
        method: RequestType,
        path: Path,
        format: ContentFormat,
        body: Vec<u8>,
        szx: u8,
    ) -> Result<Self, BlockError> {
        let upload = Block1Upload::new(method, path.segments(), Some(format.code()), body, szx)?;
        Ok(Push {
            upload,
            path,
            initial_szx: szx,
            started: now,
            updated: now,
            coap_retransmissions: 0,
            in_flight_transmissions: 1,
            size1: None,
            finished: false,
            published_blocks: 0,
        })
    }

    /// The request carrying the current block.
    pub(crate) fn next_request(&mut self) -> Option<Packet> {
        self.in_flight_transmissions = 1;
        self.upload.next_request()
    }

    /// The message layer sent the block in flight `transmissions` times so far.
    pub(crate) fn set_transmissions(&mut self, transmissions: u32) {
        self.in_flight_transmissions = transmissions.max(1);
    }

    /// The exchange of the block in flight ended (answered or not): its
    /// retransmissions count.
    fn close_exchange(&mut self, now: Instant) {
        self.coap_retransmissions += self.in_flight_transmissions.saturating_sub(1);
        self.in_flight_transmissions = 1;
        self.updated = now;
    }

    /// Consumes the device's response to the block in flight.
    pub(crate) fn handle_response(&mut self, now: Instant, response: &Packet) -> PushStep {
        self.close_exchange(now);
        let step = match self.upload.handle_response(response) {
            Ok(UploadStatus::Continue { .. } | UploadStatus::Renegotiated { .. }) => {
                match self.upload.next_request() {
                    Some(packet) => return PushStep::Next(packet),
                    None => PushStep::Violation(BlockError::Finished),
                }
            }
            Ok(UploadStatus::Complete { code }) => PushStep::Complete(code),
            Err(BlockError::EntityTooLarge { size1 }) => {
                self.size1 = size1;
                PushStep::Refused(413)
            }
            Err(BlockError::Incomplete { .. }) => PushStep::Refused(408),
            Err(BlockError::Status { code, .. }) => PushStep::Refused(code),
            Err(other) => PushStep::Violation(other),
        };
        self.finished = true;
        step
    }

    /// The exchange of the block in flight ended without a response
    /// (timeout after `transmissions`, Reset, registration gone).
    pub(crate) fn abort(&mut self, now: Instant, transmissions: Option<u32>) {
        if let Some(t) = transmissions {
            self.set_transmissions(t);
        }
        self.close_exchange(now);
        self.finished = true;
    }

    pub(crate) fn progress(&self) -> PushProgress {
        let p = self.upload.progress();
        PushProgress {
            path: self.path,
            total: p.total.unwrap_or(p.offset),
            bytes: p.offset,
            blocks: p.blocks,
            block_size: size_of_szx(self.upload.szx()).unwrap_or(1024),
            initial_szx: self.initial_szx,
            retransmissions: self.coap_retransmissions
                + self.in_flight_transmissions.saturating_sub(1)
                + p.retransmissions,
            renegotiations: self.upload.renegotiations(),
            elapsed: self.updated.saturating_duration_since(self.started),
            size1: self.size1,
            finished: self.finished,
        }
    }

    /// Whether a progress event is due now: the first block, every
    /// [`PUSH_PROGRESS_EVERY_BLOCKS`], a renegotiation (`renegotiated`), or the end.
    pub(crate) fn progress_due(&mut self, renegotiated: bool) -> bool {
        let blocks = self.upload.progress().blocks;
        let due = self.finished
            || renegotiated
            || (blocks > 0 && self.published_blocks == 0)
            || blocks >= self.published_blocks + PUSH_PROGRESS_EVERY_BLOCKS;
        if due {
            self.published_blocks = blocks.max(1);
        }
        due
    }

    pub(crate) fn renegotiations(&self) -> u32 {
        self.upload.renegotiations()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_bytes_over_seconds_and_zero_before_time_passes() {
        assert_eq!(bytes_per_second(4096, Duration::from_secs(2)), 2048.0);
        assert_eq!(bytes_per_second(512, Duration::from_millis(250)), 2048.0);
        assert_eq!(bytes_per_second(4096, Duration::ZERO), 0.0);
        assert_eq!(bytes_per_second(0, Duration::from_secs(1)), 0.0);
    }
}
