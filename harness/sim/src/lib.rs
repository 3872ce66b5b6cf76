//! sim — the virtual meter.
//!
//! A simulated smart meter that runs as its own OS process ([`main_from_args`],
//! the `virtual-meter` binary, or `meterbench sim-meter`): an AT modem on a
//! PTY ([`modem`]), a real LwM2M client over UDP ([`session`], on the sans-IO
//! client of the `lwm2m` crate), and NV storage that survives power cuts the
//! way flash does ([`nv`]). The harness controls it through the same traits a
//! real bench implements: [`power::VirtualPower`] (`rig::Power`, a SIGKILL is
//! a power cut) and [`debug::VirtualDebug`] (`rig::Debug`, reading NV the way
//! SWD reads flash).

pub mod app_data;
pub mod args;
pub mod band;
pub mod debug;
pub mod error;
pub mod euicc;
pub mod factory;
pub mod firmware;
pub mod identity;
pub mod meter;
pub mod modem;
pub mod network;
pub mod network_control;
pub mod nv;
pub mod objects;
pub mod parts;
pub mod power;
pub mod radio;
pub mod ram;
pub mod security;
pub mod server_uri;
pub mod session;
pub mod smartcard;
pub mod software;

pub use args::{DeviceOptions, MeterArgs};
pub use debug::VirtualDebug;
pub use error::SimError;
pub use network_control::VirtualNetwork;
pub use power::{VirtualMeterSpec, VirtualPower};

/// Runs the virtual meter process. `args` are the arguments after the program
/// name (or after `meterbench sim-meter`), see [`args`]; a factory-provisioned
/// meter's PSK key is read from [`factory::PSK_KEY_ENV`].
///
/// Logs go to stderr (the virtual power driver appends them to the device
/// log). Returns the process exit code: 0 after a clean shutdown, 2 for bad
/// arguments (or a bad key in the environment), 1 when the meter could not start.
pub fn main_from_args(args: &[String]) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // try_init: the caller (meterbench) may already have installed a subscriber.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    let args = match MeterArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let key = std::env::var(factory::PSK_KEY_ENV).ok();
    let image = match factory::FactoryImage::new(&args.factory, key.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let _span = tracing::info_span!("virtual-meter", seed = args.seed).entered();
    match meter::run(args, image) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("virtual meter stopped: {e}");
            1
        }
    }
}
