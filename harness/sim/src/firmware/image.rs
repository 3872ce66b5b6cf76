//! The device side of meterbench's firmware image format: what the virtual
//! meter checks when a download completes ([`check`], whose error's
//! [`update_result`](ImageError::update_result) object 5 reports) and what
//! its bootloader checks before it runs a new image
//! ([`ImageHeader::self_test_passes`]).
//!
//! The format is defined once, in [`lwm2m::firmware::image`], which the
//! server's firmware store also writes its test images with; the meter does
//! not depend on the server (the server is meterbench's side, the meter the
//! device under test).

pub use lwm2m::firmware::image::*;
