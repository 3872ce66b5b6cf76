//! The rig crate's integration tests: rig files, the AT engine and modem
//! dialects against scripted PTY modems, SCPI and command power, the
//! driver wrappers, and the rig lease.
//!
//! One test binary, not one per file: each binary is linked on its own
//! (the slowest part of a release build on CI's two cores) and cargo runs
//! the binaries one after another, so tests that wait on a PTY, a shell
//! command or a loopback supply never overlapped. Here libtest runs them
//! side by side on its test threads. So no test here may change what the
//! process shares (environment, current directory, signal handling): the
//! others run beside it.

mod scripted_modem;
mod support;

mod at_engine;
mod bench_build;
mod command_network;
mod command_power;
mod command_power_values;
mod dialect;
mod driver_wrappers;
mod factory_rig_checks;
mod factory_rigs;
mod firmware_roles;
mod link_relay;
mod lock;
mod modem_dialects;
mod rig_file;
mod scpi_rig_file;
mod scpi_sampler;
mod scpi_serial;
mod scpi_sim;
mod scpi_supply;
mod serial_pty;
mod smartcard_rig_checks;
mod swd_rig_file;
mod transcript_recorder;
