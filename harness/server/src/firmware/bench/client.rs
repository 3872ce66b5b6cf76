//! The benchmark's in-process client: stop and wait, one confirmable GET
//! per block (Block2 NUM n), the next only once block n has arrived — what
//! a meter's firmware client does (LwM2M 1.1 Core §E.6, RFC 7959 §2.4). The
//! same few instructions time every server, so a ratio of two servers'
//! figures compares the servers and not a client's start-up or its own
//! per-block work (coap-client, a process per download, is timed as well,
//! as a third column).
//!
//! A datagram lost either way is recovered the RFC 7252 §4.2 way: the
//! request is sent again after a timeout that doubles each time, at most
//! `max_retransmit` times, then the download fails naming the block.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::block_wire::{self, Block, ACK, CONTENT};

/// How the client waits and how much it takes.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The first wait for an answer (RFC 7252 §4.8 ACK_TIMEOUT is 2 s).
    pub ack_timeout: Duration,
    /// Retransmissions of one request before giving up (§4.8: 4).
    pub max_retransmit: u32,
    /// A download longer than this fails (the loop's bound).
    pub max_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ack_timeout: Duration::from_secs(2),
            max_retransmit: 4,
            max_bytes: 64 << 20,
        }
    }
}

/// A finished download.
#[derive(Debug, Clone)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub blocks: u32,
    /// Requests sent again because no answer came in time.
    pub retransmissions: u32,
}

/// Why a download failed; each names the block it was at.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("no answer to block {block} after {attempts} attempts")]
    NoAnswer { block: u32, attempts: u32 },
    #[error("block {block}: the server answered {}.{:02}", code >> 5, code & 0x1f)]
    Refused { block: u32, code: u8 },
    #[error("block {block}: {reason}")]
    Malformed { block: u32, reason: String },
    #[error("the image is longer than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Downloads `path` from `server` at `block_size` bytes a block.
pub fn download(
    server: SocketAddr,
    path: &[&str],
    block_size: usize,
    opts: &ClientOptions,
) -> Result<Download, ClientError> {
    let io = |what: &str| {
        let what = format!("{what} ({server})");
        move |source| ClientError::Io { what, source }
    };
    let szx = block_wire::szx_of(block_size).ok_or_else(|| ClientError::Malformed {
        block: 0,
        reason: format!("block size {block_size} is not one of 16, 32, … 1024"),
    })?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(io("binding the client socket"))?;
    socket.connect(server).map_err(io("connecting"))?;
    // Message ids and the token start somewhere new for every download, so
    // a server's duplicate detection never mistakes one run for another.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ u32::from(socket.local_addr().map(|a| a.port()).unwrap_or(0));
    let token = seed.to_be_bytes();
    let mut message_id = seed as u16;
    let mut got = Download {
        bytes: Vec::new(),
        blocks: 0,
        retransmissions: 0,
    };
    let mut szx = szx;
    let mut buf = vec![0u8; 2048];
    // Each turn adds at least one byte (an empty non-final block fails),
    // so the loop ends within max_bytes + 1 turns.
    loop {
        let size = 16usize << szx;
        let num = (got.bytes.len() / size) as u32;
        message_id = message_id.wrapping_add(1);
        let request = block_wire::block2_request(
            message_id,
            &token,
            path,
            Block {
                num,
                more: false,
                szx,
            },
        );
        let answer = exchange(
            &socket, &request, message_id, &token, num, opts, &mut buf, &mut got,
        )?;
        let (block, len) = answer;
        got.blocks += 1;
        if !block.more {
            return Ok(got);
        }
        if len == 0 {
            return Err(ClientError::Malformed {
                block: num,
                reason: "an empty block with the more flag set".into(),
            });
        }
        if got.bytes.len() > opts.max_bytes {
            return Err(ClientError::TooLarge {
                limit: opts.max_bytes,
            });
        }
        // A server may answer with smaller blocks than asked (RFC 7959 §2.4).
        szx = block.szx;
    }
}

/// Sends `request` until its answer comes (at most `max_retransmit` again);
/// appends the block's payload; returns its Block2 and payload length.
#[allow(clippy::too_many_arguments)]
fn exchange(
    socket: &UdpSocket,
    request: &[u8],
    message_id: u16,
    token: &[u8],
    num: u32,
    opts: &ClientOptions,
    buf: &mut [u8],
    got: &mut Download,
) -> Result<(Block, usize), ClientError> {
    let mut timeout = opts.ack_timeout.max(Duration::from_millis(1));
    for attempt in 0..=opts.max_retransmit {
        if attempt > 0 {
            got.retransmissions += 1;
        }
        socket.send(request).map_err(|source| ClientError::Io {
            what: format!("sending the request for block {num}"),
            source,
        })?;
        let deadline = Instant::now() + timeout;
        // Late answers to an earlier copy of a request are read and dropped;
        // every read waits only until the deadline, so this ends.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(|source| ClientError::Io {
                    what: "setting the read timeout".into(),
                    source,
                })?;
            let n = match socket.recv(buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                // ICMP port unreachable from a server not (yet) there: wait on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(source) => {
                    return Err(ClientError::Io {
                        what: format!("receiving block {num}"),
                        source,
                    })
                }
            };
            let Ok(answer) = block_wire::parse(&buf[..n]) else {
                continue;
            };
            if answer.message_type != ACK
                || answer.message_id != message_id
                || answer.token != token
            {
                continue;
            }
            if answer.code != CONTENT {
                return Err(ClientError::Refused {
                    block: num,
                    code: answer.code,
                });
            }
            let Some(block) = answer.block2 else {
                return Err(ClientError::Malformed {
                    block: num,
                    reason: "a 2.05 without Block2".into(),
                });
            };
            if block.offset() != got.bytes.len() {
                return Err(ClientError::Malformed {
                    block: num,
                    reason: format!(
                        "Block2 starts at byte {}, not at {} as asked",
                        block.offset(),
                        got.bytes.len()
                    ),
                });
            }
            got.bytes.extend_from_slice(answer.payload);
            return Ok((block, answer.payload.len()));
        }
        timeout = timeout.saturating_mul(2);
    }
    Err(ClientError::NoAnswer {
        block: num,
        attempts: opts.max_retransmit + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::bench::floor;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn quick(max_retransmit: u32) -> ClientOptions {
        ClientOptions {
            ack_timeout: Duration::from_millis(20),
            max_retransmit,
            max_bytes: 1 << 20,
        }
    }

    /// A floor server on a thread that drops datagram number k (counting
    /// requests received from 0) when `drop_request(k)`, and the answer to
    /// it when `drop_answer(k)`; it serves `turns` datagrams, then ends.
    fn lossy_server(
        image: Vec<u8>,
        turns: usize,
        drop_request: fn(usize) -> bool,
        drop_answer: fn(usize) -> bool,
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut out = Vec::new();
            for k in 0..turns {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    return;
                };
                if drop_request(k) {
                    continue;
                }
                if floor::answer(&image, &buf[..n], &mut out) && !drop_answer(k) {
                    socket.send_to(&out, peer).unwrap();
                }
            }
        });
        (addr, thread)
    }

    #[test]
    fn a_lost_request_and_a_lost_answer_are_each_retransmitted_once() {
        let want = image(1000);
        // 1000 bytes at 64-byte blocks: 16 blocks, 18 requests with the two
        // lost: request 2 (block 2) is lost, request 5 (block 4, after block
        // 2's resend) is answered but the answer lost.
        let (addr, server) = lossy_server(want.clone(), 18, |k| k == 2, |k| k == 5);
        let got = download(addr, &["fw", "x"], 64, &quick(4)).unwrap();
        server.join().unwrap();
        assert_eq!(got.bytes, want);
        assert_eq!((got.blocks, got.retransmissions), (16, 2));
    }

    #[test]
    fn a_server_that_never_answers_fails_after_the_bounded_retries() {
        let (addr, server) = lossy_server(image(100), 3, |_| true, |_| false);
        let err = download(addr, &["fw", "x"], 64, &quick(2)).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(
                err,
                ClientError::NoAnswer {
                    block: 0,
                    attempts: 3
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_refusal_names_its_code_and_block() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (n, peer) = socket.recv_from(&mut buf).unwrap();
            let request = block_wire::parse(&buf[..n]).unwrap();
            let mut out = Vec::new();
            // 4.04 Not Found (RFC 7252 §12.1.2: class 4, detail 4).
            block_wire::block2_response(
                &mut out,
                request.message_id,
                request.token,
                0x84,
                None,
                &[],
            );
            socket.send_to(&out, peer).unwrap();
        });
        let err = download(addr, &["fw", "nope"], 64, &quick(0)).unwrap_err();
        server.join().unwrap();
        assert_eq!(err.to_string(), "block 0: the server answered 4.04");
    }
}
