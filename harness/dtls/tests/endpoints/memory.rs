//! What an established, idle session keeps on the heap (issue 16: a fleet
//! server holds one session per meter, and a meter talks a few times a
//! lifetime).
//!
//! Heap in use is read from glibc's `mallinfo2`, which counts every thread's
//! allocations; the other tests of this binary run on parallel threads, so
//! the measuring test runs itself again in a child process with only itself
//! selected, and the parent checks the child's verdict.

use crate::pair::{client_config, keys, Pair};
use dtls::{CipherSuite, DtlsClient, DtlsServer};

const KEY: &[u8] = b"0123456789abcdef";

/// Set in the child that measures.
const CHILD: &str = "DTLS_MEMORY_MEASURING_CHILD";

/// glibc's `struct mallinfo2` (malloc.h, glibc 2.33 and later).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// Bytes allocated now: in the heap arenas plus in separately mapped
/// chunks.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { mallinfo2() };
    info.uordblks + info.hblkhd
}

/// Connects `count` more clients, completes each handshake and moves one
/// datagram each way, so that every session is established and past its
/// final flight (application data from the peer shows it arrived).
fn open_idle_sessions(pair: &mut Pair, count: usize, suite: CipherSuite) {
    for _ in 0..count {
        let c = pair.connect(client_config("m", KEY, &[suite]));
        pair.drive();
        assert!(pair.is_connected(c), "client {c} did not connect");
        let now = pair.now;
        let peer = pair.client_addr(c);
        pair.client(c).send(now, b"POST /rd").unwrap();
        pair.drive();
        pair.server.send(now, peer, b"2.01 Created").unwrap();
        pair.drive();
        assert_eq!(pair.client_received[c], vec![b"2.01 Created".to_vec()]);
    }
    // The test's own record of the traffic is not the endpoints' memory.
    pair.log = Vec::new();
    pair.server_received = Vec::new();
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn an_idle_session_does_not_hold_the_record_buffers() {
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "memory::an_idle_session_does_not_hold_the_record_buffers",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the measuring child failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        println!("{stdout}");
        return;
    }
    const SESSIONS: usize = 32;
    for suite in [CipherSuite::PskAes128Ccm8, CipherSuite::PskAes128CbcSha256] {
        let mut pair = Pair::new(keys(&[("m", KEY)]));
        // Warm up: the context's and the allocator's one-time allocations,
        // and the tables' first growth.
        open_idle_sessions(&mut pair, 4, suite);
        pair.clients.reserve(SESSIONS);
        pair.client_events.reserve(SESSIONS);
        pair.client_received.reserve(SESSIONS);
        let before = heap_in_use();
        open_idle_sessions(&mut pair, SESSIONS, suite);
        let after = heap_in_use();
        // Both ends of each association live in this process.
        let per_pair = after.saturating_sub(before) / SESSIONS;
        println!("{suite}: {per_pair} bytes of heap per idle association (server and client)");
        // OpenSSL sizes each read and write buffer for a 16 KiB record
        // (about 16.5 KiB each): held, an idle pair took 149 KiB here
        // (CCM_8), 66 KiB of it those four buffers; released, 83-89 KiB,
        // most of it OpenSSL's handshake message buffer (21 KiB a side)
        // and SSL structure (9 KiB a side), a floor this crate cannot
        // lower (docs/perf/figures.md, "DTLS session memory").
        assert!(
            per_pair < 100 * 1024,
            "{suite}: an idle association holds {per_pair} bytes: the record buffers are kept"
        );
        // The parked sessions still work: a second exchange each way on
        // every session, then all closed.
        let now = pair.now;
        for c in 4..pair.clients.len() {
            let peer = pair.client_addr(c);
            pair.client(c).send(now, b"again").unwrap();
            pair.server.send(now, peer, b"and back").unwrap();
        }
        pair.drive();
        assert_eq!(pair.server_received.len(), SESSIONS);
        for c in 4..pair.clients.len() {
            assert_eq!(pair.client_received[c].last().unwrap(), b"and back");
        }
        pair.server.shutdown(now);
        pair.drive();
        assert_eq!(pair.server.stats().sessions, 0);
    }
}
