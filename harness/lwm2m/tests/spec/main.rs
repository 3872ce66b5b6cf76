//! The protocol core against the specifications: byte-exact vectors for the
//! content formats, the object model, block-wise transfer, and the server,
//! bootstrap and client roles run against hand-built datagrams and against
//! each other over a fake-clock link.
//!
//! One test binary, not one per file: each binary in `tests/` is linked on
//! its own (the release link is what CI pays for, not these tests' few
//! seconds), and libtest runs one binary's tests on parallel threads where
//! cargo runs binaries one after another. The tests are sans-IO — no
//! sockets, no clocks, no environment — so sharing a process changes nothing
//! they assert.
//!
//! proptest keeps the failure seeds of a module of a binary rooted at
//! `spec/main.rs` in `tests/proptest-regressions/<module>.txt`, not beside
//! the source file.

mod support;

mod access_control;
mod block;
mod blockwise;
mod bootstrap;
mod bootstrap_block1;
mod bootstrap_ets;
mod cbor_spec;
mod composite;
mod discarded_registration;
mod duplicate_cache;
mod firmware;
mod formats;
mod formats_props;
mod formats_spec;
mod model;
mod object_links;
mod pair;
mod push;
mod queue_mode;
mod registration_spec;
mod security_object;
mod server_at_scale;
mod spec_bootstrap;
mod spec_client;
mod spec_server;
