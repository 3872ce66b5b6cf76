//! The sim crate's tests of the virtual meter: mostly the real meter process
//! (powered by `VirtualPower`, spoken to over its PTY, registering over
//! loopback UDP), plus its firmware downloader in-process.
//!
//! One test binary, not one per file: each integration-test file is its own
//! release binary to link, and cargo runs the binaries one after another.
//! Here libtest runs the slow process tests (power loss, eUICC switches,
//! DTLS bootstrap) side by side on its threads; they mostly wait on the meter.
//! So nothing in these tests may change process-wide state (environment,
//! current directory, signal handlers): a spawned meter gets its environment
//! on its own `Command`.

mod bench;
mod firmware_support;
mod meter_io;
mod support;

mod app_data_and_bands;
mod dialect_contract;
mod euicc_switch;
mod factory_device;
mod factory_rigs;
mod firmware_download;
mod firmware_software;
mod firmware_update;
mod power_loss;
mod power_saving;
mod security;
mod smartcard_bootstrap;
mod virtual_meter;
mod write_composite_blocks;
