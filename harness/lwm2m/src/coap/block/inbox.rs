//! Receiving Block1 request bodies from any number of peers at once (RFC 7959
//! §2.5): what both LwM2M roles put in front of their request handlers, so a
//! Register, Write, Create or Execute sent in blocks is handled once, whole.
//!
//! A [`Block1Assembler`] does one transfer; the inbox keeps one per key —
//! (peer, Uri-Path) in both roles, since RFC 7959 §2.5 matches the blocks of
//! a body by endpoint and request URI, not by token (each block may carry a
//! new token, §3.4). Memory stays bounded whatever peers send: a body is at
//! most `max_size` bytes, at most [`MAX_TRANSFERS`] transfers are kept (a new
//! one evicts the least recently active), and a transfer idle for
//! [`TRANSFER_IDLE`] is dropped — its next block then gets 4.08 Request
//! Entity Incomplete (§2.9.2), which tells the sender to start again.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, Packet};

use super::assembler::{Block1Assembler, Block1Step};
use super::option::BlockOption;
use crate::coap::exchange::EXCHANGE_LIFETIME;

/// Most Block1 transfers an inbox keeps in progress at once.
pub const MAX_TRANSFERS: usize = 32;

/// A transfer whose last block is older than this is forgotten: a sender
/// that gives up on a block does so within EXCHANGE_LIFETIME (RFC 7252 §4.8.2).
pub const TRANSFER_IDLE: Duration = EXCHANGE_LIFETIME;

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Block1Outcome {
    /// The request carries no Block1: handle it as it is. (A partial
    /// transfer under the same key was dropped: a whole request replaces it.)
    Single,
    /// Send this as the response and do nothing else: 2.31 Continue with
    /// Block1 echoed for a block that is not the last (RFC 7959 §2.3), or a
    /// refusal (4.00, 4.02, 4.08 Request Entity Incomplete, 4.13 Request
    /// Entity Too Large; §2.9).
    Answer(Packet),
    /// The last block arrived: handle `request` — the last block's header,
    /// token and options without Block1/Size1, carrying the whole body — as
    /// if it had come in one message, and add `echo` as the Block1 option of
    /// the final response (§2.3: it echoes the last block's Block1).
    Complete {
        request: Packet,
        echo: Option<BlockOption>,
    },
}

#[derive(Debug)]
struct Transfer {
    assembler: Block1Assembler,
    last: Instant,
}

/// Block1 reassembly for many peers, keyed by `K` (e.g. peer and Uri-Path).
#[derive(Debug)]
pub struct Block1Inbox<K> {
    max_size: usize,
    max_szx: u8,
    transfers: HashMap<K, Transfer>,
}

impl<K: Hash + Eq + Clone> Block1Inbox<K> {
    /// An inbox accepting bodies up to `max_size` bytes in blocks of at most
    /// 2^(`max_szx`+4) bytes (a larger block is refused 4.13 naming this
    /// size, so the sender continues smaller, §2.9.3).
    pub fn new(max_size: usize, max_szx: u8) -> Self {
        Block1Inbox {
            max_size,
            max_szx,
            transfers: HashMap::new(),
        }
    }

    /// Transfers in progress.
    pub fn in_progress(&self) -> usize {
        self.transfers.len()
    }

    /// Passes one request through: see [`Block1Outcome`].
    pub fn handle(&mut self, now: Instant, key: K, request: &Packet) -> Block1Outcome {
        if request.get_option(CoapOption::Block1).is_none() {
            if self.transfers.remove(&key).is_some() {
                tracing::debug!("a request without Block1 replaces a partial Block1 transfer");
            }
            return Block1Outcome::Single;
        }
        self.transfers
            .retain(|_, t| now.saturating_duration_since(t.last) < TRANSFER_IDLE);
        if !self.transfers.contains_key(&key) && self.transfers.len() >= MAX_TRANSFERS {
            let oldest = self
                .transfers
                .iter()
                .min_by_key(|(_, t)| t.last)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                tracing::debug!("too many Block1 transfers in progress; dropping the oldest");
                self.transfers.remove(&oldest);
            }
        }
        let (max_size, max_szx) = (self.max_size, self.max_szx);
        let transfer = self
            .transfers
            .entry(key.clone())
            .or_insert_with(|| Transfer {
                assembler: Block1Assembler::new(max_size, max_szx),
                last: now,
            });
        transfer.last = now;
        match transfer.assembler.handle_request(request) {
            Block1Step::Continue(reply) => Block1Outcome::Answer(reply),
            Block1Step::Refuse(reply) => {
                self.transfers.remove(&key);
                Block1Outcome::Answer(reply)
            }
            Block1Step::Complete { body, echo } => {
                self.transfers.remove(&key);
                let mut whole = request.clone();
                whole.clear_option(CoapOption::Block1);
                whole.clear_option(CoapOption::Size1);
                whole.payload = body;
                Block1Outcome::Complete {
                    request: whole,
                    echo,
                }
            }
        }
    }
}
