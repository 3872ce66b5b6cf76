//! The server crate's servers serving over loopback: the embedded LwM2M and
//! bootstrap servers (CoAP and coaps) against sans-IO meters, hand-built
//! datagrams and libcoap's coap-client, and the firmware store and its CoAP,
//! CoAPS and HTTP file servers.
//!
//! One test binary, not one per file: each integration-test file is its own
//! release binary to link, and cargo runs the binaries one after another.
//! Here libtest runs the slower tests (retransmissions, DTLS handshakes)
//! side by side on its threads. So nothing in these tests may change
//! process-wide state (environment, current directory, signal handlers).

mod secure_meter;
mod virtual_meter;

mod batched_send;
mod bounded_history;
mod coaps;
mod discarded_registration;
mod firmware_bench;
mod firmware_coap;
mod firmware_coaps;
mod firmware_http;
mod firmware_push;
mod firmware_store;
mod flood;
mod raw_coap;
mod virtual_meter_session;
