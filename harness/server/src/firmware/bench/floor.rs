//! The do-nothing server, the benchmark's floor: it answers each confirmable
//! Block2 GET with the asked slice of one image held in memory, and does
//! nothing else — no path check, no duplicate detection, no transfer
//! figures, no log, no async runtime (a blocking socket on its own thread,
//! which the kernel wakes directly). What a real server costs above it is
//! the cost of what it does beyond moving the bytes (issue 16).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::block_wire::{self, Block, BAD_REQUEST, CON, CONTENT, GET};

/// How often the serving thread looks at its stop flag while idle.
const STOP_POLL: Duration = Duration::from_millis(50);
/// The block size a request without Block2 gets (SZX 6, 1024 bytes).
const DEFAULT_SZX: u8 = 6;

/// The answer to one datagram, written into `out`; `false` when there is
/// none (anything but a well-formed CON GET is ignored).
pub(crate) fn answer(image: &[u8], datagram: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(request) = block_wire::parse(datagram) else {
        return false;
    };
    if request.message_type != CON || request.code != GET {
        return false;
    }
    let asked = request.block2.unwrap_or(Block {
        num: 0,
        more: false,
        szx: DEFAULT_SZX,
    });
    let start = asked.offset();
    if asked.szx == 7 || (start >= image.len() && !(start == 0 && image.is_empty())) {
        block_wire::block2_response(
            out,
            request.message_id,
            request.token,
            BAD_REQUEST,
            None,
            &[],
        );
        return true;
    }
    let end = (start + asked.size()).min(image.len());
    let block = Block {
        more: end < image.len(),
        ..asked
    };
    block_wire::block2_response(
        out,
        request.message_id,
        request.token,
        CONTENT,
        Some(block),
        &image[start..end],
    );
    true
}

/// The floor server: a thread answering on a loopback socket until dropped.
pub struct FloorServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FloorServer {
    /// Binds `addr` and serves `image` from a thread of its own (which
    /// inherits the caller's CPU affinity).
    pub fn start(addr: SocketAddr, image: Arc<[u8]>) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(STOP_POLL))?;
        let local_addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-floor".into())
            .spawn(move || serve(&socket, &image, &flag))?;
        Ok(FloorServer {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs until `stop` is set; each turn waits at most [`STOP_POLL`].
fn serve(socket: &UdpSocket, image: &[u8], stop: &AtomicBool) {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(1100);
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if answer(image, &buf[..n], &mut out) {
            let _ = socket.send_to(&out, peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::bench::block_wire::ACK;

    fn block(num: u32, szx: u8) -> Block {
        Block {
            num,
            more: false,
            szx,
        }
    }

    #[test]
    fn each_block2_get_gets_its_slice_with_the_more_flag_until_the_last() {
        let image: Vec<u8> = (0..100u8).collect();
        let mut out = Vec::new();
        let req = block_wire::block2_request(7, &[1, 2], &["fw", "x"], block(1, 1));
        assert!(answer(&image, &req, &mut out));
        let m = block_wire::parse(&out).unwrap();
        assert_eq!(
            (m.message_type, m.code, m.message_id, m.token),
            (ACK, CONTENT, 7, &[1, 2][..])
        );
        assert_eq!(
            m.block2,
            Some(Block {
                more: true,
                ..block(1, 1)
            })
        );
        assert_eq!(m.payload, &image[32..64]);

        let req = block_wire::block2_request(8, &[], &[], block(3, 1));
        assert!(answer(&image, &req, &mut out));
        let m = block_wire::parse(&out).unwrap();
        assert_eq!(
            m.block2,
            Some(block(3, 1)),
            "the last block has no more flag"
        );
        assert_eq!(m.payload, &image[96..100]);
    }

    #[test]
    fn a_block_past_the_end_is_a_bad_request_and_non_gets_are_ignored() {
        let image = vec![0u8; 64];
        let mut out = Vec::new();
        let req = block_wire::block2_request(9, &[], &[], block(4, 0));
        assert!(answer(&image, &req, &mut out));
        assert_eq!(block_wire::parse(&out).unwrap().code, BAD_REQUEST);
        // An ACK (type 2) is not a request.
        let mut ack = req.clone();
        ack[0] = 0x60;
        assert!(!answer(&image, &ack, &mut out));
        assert!(!answer(&image, &[0x40], &mut out));
    }
}
