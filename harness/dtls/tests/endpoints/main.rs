//! The DTLS endpoints end to end: handshakes, restarts and hostile input
//! between `OpensslClient` and `OpensslServer` on a fake clock, the same
//! endpoints over real loopback sockets, and interop with libcoap's and
//! tinydtls's clients.
//!
//! One test binary, not one per file: each binary in `tests/` is linked on
//! its own against OpenSSL, and cargo runs binaries one after another while
//! libtest runs one binary's tests on parallel threads, so the interop runs
//! (which mostly wait on a peer process) overlap the rest. Every socket is
//! bound to port 0 and every peer process gets its own port and is waited
//! for by its own test, so the tests share nothing but the tracing
//! subscriber, which is installed once.

mod pair;
mod udp_endpoint;

mod certificate;
mod handshake;
mod interop_libcoap;
mod interop_tinydtls;
mod memory;
mod restart;
mod robustness;
mod udp;
