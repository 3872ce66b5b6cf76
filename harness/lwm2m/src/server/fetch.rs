//! Fetching the rest of a response that came block-wise (RFC 7959 §2.4), the
//! server's side: a device answers Read /3/0 (or Discover, or sends a
//! notification) with Block2 M=1 because its body does not fit its buffer,
//! and the server must ask for the following blocks and decode the whole
//! body, never the first block alone (a TLV cut mid-record does not decode;
//! a SenML array cut between records decodes to fewer values, silently).
//!
//! One [`Fetch`] per such response. Each following block is the original
//! request again with Block2 `NUM/0/SZX` at the size the device chose, as
//! its own Confirmable exchange with a new token ([`Block2Download::continuing`]).
//! The first block's ETag is pinned: a block with another ETag means the
//! representation changed mid-transfer, and the transfer starts again from
//! block 0, at most [`MAX_RESTARTS`] times, then fails with both tags named
//! (§2.4: blocks of different representations must not be mixed). A block
//! that does not continue the body — past its end, out of order, short, or
//! a refusal such as 4.02 — fails the transfer with what came instead.
//!
//! Notifications (RFC 7959 §2.6): the device sends the first block with
//! Observe; the rest is fetched with GETs of the observed path that carry
//! the notification's Content-Format as Accept and no Observe, and the whole
//! value is delivered as one notification.

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};

use crate::coap::block::{Block2Download, BlockError, BlockKind, BlockOption, DownloadStatus};
use crate::coap::{code, options};
use crate::path::Path;

/// Largest body the server reassembles: far above any LwM2M object, yet a
/// device that never sets M=0 cannot make the server grow without bound.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// How often a transfer starts over after the ETag changed mid-way.
pub(crate) const MAX_RESTARTS: u32 = 2;

/// Whether `response` is the first block of a body with more to fetch: a
/// 2.05 Content carrying Block2 with M set, or a Block2 that is not block 0
/// (which [`Fetch`] then reports as not continuing anything), or a Block2
/// option that does not decode.
pub(crate) fn is_blockwise(response: &Packet) -> bool {
    let raw: u8 = response.header.code.into();
    if code::to_number(raw) != 205 {
        return false;
    }
    match BlockOption::from_packet(response, BlockKind::Block2) {
        Ok(Some(b)) => b.more || b.num > 0,
        Ok(None) => false,
        Err(_) => true,
    }
}

/// The request the rest of a block-wise notification is fetched with: GET
/// of the observed path, Accept the notification's Content-Format.
pub(crate) fn notification_request(path: &Path, notification: &Packet) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Get);
    options::add_strings(&mut p, CoapOption::UriPath, &path.segments());
    if let Some(cf) = options::content_format(notification) {
        options::set_uint(&mut p, CoapOption::Accept, u32::from(cf));
    }
    p
}

/// What one block did to the transfer.
#[derive(Debug)]
pub(crate) enum FetchStep {
    /// Send this request (the next block, or block 0 again after a restart).
    Next(Packet),
    /// The last block arrived: the first block's response (code,
    /// Content-Format, Observe) carrying the whole body, without Block2 or
    /// Size2 — decode it like a response that came in one message.
    Complete(Packet),
    /// The transfer cannot complete; why, for the requester.
    Failed(String),
}

/// One Block2 transfer in progress.
#[derive(Debug)]
pub(crate) struct Fetch {
    /// The request the blocks repeat (for a restart from block 0).
    request: Packet,
    download: Block2Download,
    /// The response that started the body (replaced on a restart).
    first: Packet,
    restarts: u32,
    /// A restart was sent: the next response is the new first block.
    restarting: bool,
    /// The fetch completes a notification of this observation rather than
    /// a request's response.
    notification: bool,
}

impl Fetch {
    /// Starts fetching the rest of `first`, the response to `request`.
    pub(crate) fn start(request: &Packet, first: Packet, notification: bool) -> (Self, FetchStep) {
        let mut fetch = Fetch {
            request: request.clone(),
            download: Block2Download::continuing(request).with_limit(MAX_BODY),
            first: first.clone(),
            restarts: 0,
            restarting: false,
            notification,
        };
        let step = fetch.handle_response(&first);
        (fetch, step)
    }

    pub(crate) fn is_notification(&self) -> bool {
        self.notification
    }

    /// Consumes the response to the last block request.
    pub(crate) fn handle_response(&mut self, response: &Packet) -> FetchStep {
        if self.restarting {
            self.restarting = false;
            self.first = response.clone();
        }
        match self.download.handle_response(response) {
            Ok(DownloadStatus::More { offset }) => {
                tracing::trace!(offset, szx = self.download.szx(), "Block2: next block");
                self.next()
            }
            Ok(DownloadStatus::Complete { size }) => {
                tracing::debug!(size, blocks = self.download.progress().blocks, restarts = self.restarts, "Block2 body complete");
                let mut whole = self.first.clone();
                whole.clear_option(CoapOption::Block2);
                whole.clear_option(CoapOption::Size2);
                whole.payload = self.download.data().to_vec();
                FetchStep::Complete(whole)
            }
            Err(BlockError::ImageChanged { expected, got }) if self.restarts < MAX_RESTARTS => {
                self.restarts += 1;
                tracing::debug!(%expected, %got, restart = self.restarts, "ETag changed mid-transfer: starting over from block 0");
                let szx = self.download.szx();
                self.download = Block2Download::continuing(&self.request).with_limit(MAX_BODY);
                self.restarting = true;
                match self.download.next_request() {
                    Some(mut p) => {
                        // Block 0 at the size the device already chose (§2.4).
                        if let Ok(b) = BlockOption::new(0, false, szx) {
                            b.set_on(&mut p, BlockKind::Block2);
                        }
                        FetchStep::Next(p)
                    }
                    None => FetchStep::Failed("Block2 restart could not be built".into()),
                }
            }
            Err(BlockError::ImageChanged { expected, got }) => FetchStep::Failed(format!(
                "the representation changed during every one of {} Block2 transfers (ETag {expected}, then {got}; RFC 7959 §2.4)",
                self.restarts + 1
            )),
            Err(e) => FetchStep::Failed(format!(
                "Block2 transfer broken after {} bytes: {e}",
                self.download.data().len()
            )),
        }
    }

    fn next(&mut self) -> FetchStep {
        match self.download.next_request() {
            Some(p) => FetchStep::Next(p),
            None => FetchStep::Failed("Block2 transfer has no next block".into()),
        }
    }
}
