//! The firmware image format meterbench's test images use, and that the
//! virtual meter's download check and bootloader self-test verify.
//!
//! The format (header layout, [`build`], [`check`], the Update Result each
//! failure maps to) is defined once, in [`lwm2m::firmware::image`], so the
//! server that writes images and the device that checks them share one
//! implementation; it is re-exported here because the firmware store and
//! its fixture generator ([`super::generate`]) are its writers.

pub use lwm2m::firmware::image::*;
