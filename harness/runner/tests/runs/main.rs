//! meterbench's end-to-end tests, each a run of the real binary against the
//! virtual meter, a scripted modem, an SCPI simulator or a device process.
//!
//! One test binary, not one per file: libtest then runs the long runs (every
//! shipped case on the virtual rig, and again on the differing rig) side by
//! side on the test threads instead of one binary after another. The runs
//! mostly wait on the device, so this halves the suite's wall time.

// Each file uses some of the helpers; together they use all of them.
#[allow(dead_code)]
mod support;

mod bootstrap_offers_scope;
mod browser_report;
mod certificate_mode;
mod cleanup;
mod composite;
mod composite_ets;
mod devices;
mod differing_rig;
mod e2e;
mod ets_coverage;
mod ets_portfolio_out_of_ram;
mod events;
mod example_rigs;
mod factory_rigs;
mod firmware_roles;
mod fleet_bench;
mod group_cases;
mod html_report;
mod interop;
mod junit_flaky_retries;
mod lease_runs;
mod links;
mod queue_mode;
mod rig_check;
mod safe_end;
mod schemas;
mod serve_hostile_datagrams;
mod shard_ci_pipelines;
mod smartcard_bootstrap;
mod tshark_captures;
mod unsupported_modem_action;
