//! Firmware delivery, server side (LwM2M object 5, OMA-TS-LightweightM2M-1.1
//! Core §E.6 "Firmware Update"): the images a case may push to a meter, and
//! the file servers a meter pulls them from by Package URI (/5/0/1).
//!
//! - [`store`]: a folder of images named by a [`manifest`]; every image is
//!   checked against its manifest entry (size, SHA-256) when the store loads,
//!   so a missing or wrong image fails a case before the device is touched.
//! - [`image`]: the image format the virtual meter's bootloader checks (header
//!   with magic, version, body length, body SHA-256 and a self-test byte).
//! - [`generate`]: writes the test images deterministically, so only the
//!   manifest (with its SHA-256 values) is committed, never binaries.
//! - [`derive`]: the `corrupted` and `oversized` images made from a device's
//!   own upgrade image, written to a folder of their own for one run.
//! - [`coap_files`]: a CoAP file server, Block2 (RFC 7959) at any block size
//!   and offset the client asks, over any datagram transport ([`transport`]);
//!   [`dtls_transport`] makes it CoAPS with the LwM2M server's PSKs.
//! - [`http_files`]: an HTTP file server (axum + tower-http, Range requests).
//! - [`delivery`]: the one API a case's `firmware:` step uses — image
//!   lookup, Package URIs (file servers started on first use), push, progress.
//! - [`progress`]: per-transfer figures (bytes, blocks, retransmissions,
//!   throughput) published to the runner.
//! - [`bench`](mod@bench): our CoAP file server against libcoap's, timed with libcoap's client.

pub mod bench;
pub mod coap_files;
pub mod delivery;
pub mod derive;
pub mod dtls_transport;
mod error;
pub mod generate;
pub mod http_files;
pub mod image;
pub mod manifest;
pub mod progress;
mod serve_task;
pub mod store;
pub mod transport;

pub use coap_files::{CoapFileServer, FileService};
pub use delivery::{DeliveryError, DeliveryMethodKind, FirmwareDelivery, TransferProgress};
pub use dtls_transport::DtlsDatagramTransport;
pub use error::FirmwareError;
pub use generate::generate_fixtures;
pub use http_files::{HttpFileServer, HttpTransfersWatch};
pub use manifest::{Manifest, ManifestEntry};
pub use progress::{ProgressEvent, TransferStats};
pub use store::{Image, Integrity, Store};
pub use transport::DatagramTransport;
