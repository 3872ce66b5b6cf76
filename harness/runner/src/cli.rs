//! Command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "meterbench",
    version,
    about = "Hardware-in-the-loop conformance harness for LwM2M smart meters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run conformance cases on one or more rigs and write a JUnit report.
    Run(RunArgs),
    /// Run the embedded LwM2M server alone until Ctrl-C, printing registrations.
    Serve(ServeArgs),
    /// Benchmarks against a peer in the same run, printed as ratios.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check the cases' OMA ETS ids against the catalog and print the coverage as Markdown.
    Ets(crate::ets::EtsArgs),
    /// JUnit files of many benches and shards.
    #[command(subcommand)]
    Junit(JunitCommand),
    /// The bench itself, without running cases.
    #[command(subcommand)]
    Rig(RigCommand),
    /// Rebuild a run's self-contained HTML page (RUN_DIR/index.html) from its
    /// junit.xml and artifacts, e.g. after `junit merge` into one folder.
    Report {
        /// The run folder (reports/<run-id>) holding junit.xml.
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
    },
    /// Print the JSON Schema of rig files or case files (committed as
    /// schemas/rig.schema.json and schemas/case.schema.json).
    Schema {
        #[arg(value_enum)]
        file: crate::schema::SchemaFile,
    },
    /// The virtual meter process (started by the virtual power driver).
    #[command(hide = true)]
    SimMeter {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Rig files; each case runs on each rig. Default: rigs/virtual.yaml.
    #[arg(long = "rig", value_name = "FILE")]
    pub rigs: Vec<PathBuf>,
    /// Folder of case files (searched recursively).
    #[arg(long, value_name = "DIR", default_value = "testcases")]
    pub cases: PathBuf,
    /// Where runs are written.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub report_dir: PathBuf,
    /// Folder with objects/ (OMA DDF XML) and modems/ (AT dialects).
    #[arg(long, value_name = "DIR", default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// Seed for the virtual meter's and the server's pseudo-randomness (printed and stored in the JUnit).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A value for `${NAME}` in case files (e.g. `--var SOAK_CUTS=5`); the environment is the fallback.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Run only shard I of N (1-based, like GitLab's CI_NODE_INDEX/CI_NODE_TOTAL):
    /// a case belongs to shard (FNV-1a 64 of its id mod N) + 1. Fallback: $METERBENCH_SHARD.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::shard::Shard>,
    /// Rerun a case up to N times when it ends in a bench error (never after a
    /// device failure); a pass on a rerun is reported flaky.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// How many rigs run cases at once (each keeps to its own
    /// `devices.parallel`); the test threads follow unless --test-threads is given.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Provokes a fault on purpose (`panic-in-step=N`); hidden, for the
    /// safe-end tests only (see [`InjectedFault`]).
    #[arg(long, value_name = "FAULT", value_parser = parse_fault, hide = true)]
    pub inject_fault: Option<InjectedFault>,
    /// libtest's own options: FILTER, --list, --ignored, --include-ignored, --exact, --skip, --test-threads...
    #[command(flatten)]
    pub test: libtest_mimic::Arguments,
}

#[derive(Debug, Subcommand)]
pub enum JunitCommand {
    /// Merge JUnit files (one per bench or shard) into one: each bench's
    /// testsuite and properties kept, totals recounted, a case run twice refused.
    Merge {
        /// The merged file to write.
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
        /// The JUnit files to merge.
        #[arg(required = true, value_name = "JUNIT")]
        inputs: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RigCommand {
    /// The rig doctor: each part of the rig answers (supply `*IDN?`, modem AT
    /// and identity, debug port, servers, firmware store), printed as a
    /// table; exits 1 when any part fails, 2 when the rig file is invalid.
    Check(RigCheckArgs),
}

#[derive(Debug, Args)]
pub struct RigCheckArgs {
    /// The rig file to check.
    #[arg(value_name = "RIG.yaml")]
    pub rig: PathBuf,
    /// Folder with objects/ (OMA DDF XML) and modems/ (AT dialects).
    #[arg(long, value_name = "DIR", default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// How long one part may take to answer (a modem also gets its dialect's boot time).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Seed for the virtual meter (its IMEI, ICCID and serial derive from it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Serve a 1 MiB image over CoAP Block2 from meterbench's file server,
    /// a do-nothing floor server and libcoap's coap-server; time each with
    /// an in-process stop-and-wait client and with libcoap's coap-client,
    /// pinned to one core and unpinned; print medians, spread, the ratios
    /// meterbench/floor and meterbench/libcoap and whether issue 16's goals
    /// are met.
    Firmware {
        /// Timed downloads per server, client and block size (the median is reported).
        #[arg(long, default_value_t = 21)]
        runs: usize,
        /// Block sizes in bytes.
        #[arg(long = "block-size", default_values_t = [512, 1024])]
        block_sizes: Vec<usize>,
        /// Also time the file server as a task of a multi-thread runtime
        /// (the measurement behind its own-thread default).
        #[arg(long)]
        runtimes: bool,
        /// Leave out the coap-client column (faster).
        #[arg(long)]
        no_coap_client: bool,
        /// Only the pinned or only the unpinned figures.
        #[arg(long, value_parser = ["pinned", "unpinned"])]
        only: Option<String>,
    },
    /// N lightweight virtual meters (one UDP socket each, in this process)
    /// register, are observed, notify, update and de-register against the
    /// embedded server run as a child; prints registrations/s, p50/p99
    /// latency, notifications/s, the server's memory per device and, as the
    /// limit, a bare UDP echo's rate in the same run.
    Fleet(FleetArgs),
    /// The fleet benchmark's server child (or, with --echo, its bare UDP
    /// echo); stops when its stdin closes.
    #[command(hide = true)]
    FleetServer(FleetServerArgs),
    /// The fleet benchmark's meter worker: a slice of the fleet in one
    /// process (the open-file limit caps the sockets a process may hold);
    /// runs the phase named on each stdin line and answers with one JSON line.
    #[command(hide = true)]
    FleetClients(FleetClientsArgs),
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// How many meters.
    #[arg(long, default_value_t = 1000)]
    pub meters: usize,
    /// Each meter first completes a DTLS 1.2 PSK handshake with its own fresh key.
    #[arg(long)]
    pub dtls: bool,
    /// Exchanges in flight at once (the same window for the echo yardstick).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub in_flight: usize,
    /// Notifications each meter sends once observed.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub notifications: u32,
    /// Deadline of each phase (echo, handshake, register, ...).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Folder of OMA DDF XML object definitions, for the server child.
    #[arg(long, value_name = "DIR", default_value = "fixtures/objects")]
    pub objects: PathBuf,
    /// Meters (sockets) per worker process; the meters run in as many
    /// worker processes as this needs (the open-file limit is per process).
    #[arg(long, value_name = "N", default_value_t = 15_000)]
    pub per_worker: usize,
    /// Messages the server's log and event history keep (oldest dropped
    /// and counted); the server's memory per device is measured with it.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub server_log: usize,
    /// After de-registration, also measure the server's memory at these
    /// seconds (`--linger 150,260`: past the duplicate cache's early
    /// forgetting at 145 s and its EXCHANGE_LIFETIME at 247 s). Minutes
    /// long; none by default.
    #[arg(long, value_name = "SECONDS,...", value_delimiter = ',')]
    pub linger: Vec<u64>,
}

#[derive(Debug, Args)]
pub struct FleetClientsArgs {
    /// Index of this worker's first meter (meter names are fleet-NNNNNN).
    #[arg(long)]
    pub first: usize,
    /// How many meters this worker runs.
    #[arg(long)]
    pub count: usize,
    /// The LwM2M server child.
    #[arg(long)]
    pub server: SocketAddr,
    /// The bare UDP echo child.
    #[arg(long)]
    pub echo: SocketAddr,
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub in_flight: usize,
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub notifications: u32,
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// `endpoint hex-key` per line for every meter of the fleet (DTLS).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FleetServerArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Be the bare UDP echo instead of the LwM2M server.
    #[arg(long)]
    pub echo: bool,
    #[arg(long, value_name = "DIR", default_value = "fixtures/objects")]
    pub objects: PathBuf,
    /// `endpoint hex-key` per line: the PSK of each meter (DTLS).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Messages the server's log and event history keep.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub log_capacity: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// UDP address to listen on (use 0.0.0.0:5683 to let a device on the LAN in).
    #[arg(long, default_value = "127.0.0.1:5683")]
    pub bind: SocketAddr,
    /// Folder of OMA DDF XML object definitions.
    #[arg(long, value_name = "DIR", default_value = "fixtures/objects")]
    pub objects: PathBuf,
    /// Serve coaps (DTLS 1.2 PSK) instead of plain CoAP; needs --credentials.
    #[arg(long)]
    pub secure: bool,
    /// Secrets file (YAML list of `endpoint`, `identity`, `key` in hex, and
    /// optionally `bootstrap_identity`, `bootstrap_key`): which PSK each device
    /// must use. Keep it out of the repository; keys are never printed.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Also run the bootstrap server here; each device of --credentials is
    /// provisioned with an account for the LwM2M server.
    #[arg(long, value_name = "ADDR:PORT")]
    pub bootstrap_bind: Option<SocketAddr>,
}

/// Why a command-line value was refused; clap prints it after the option's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("expected NAME=VALUE, found {0:?}")]
    Var(String),
    #[error("{0}")]
    Duration(String),
    #[error("expected panic-in-step=N (N: a step's position in the case, from 1), found {0:?}")]
    Fault(String),
}

fn parse_var(text: &str) -> Result<(String, String), ArgError> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| ArgError::Var(text.to_string()))
}

fn parse_duration(text: &str) -> Result<std::time::Duration, ArgError> {
    rig::duration::parse_duration(text).map_err(ArgError::Duration)
}

/// A fault `--inject-fault` provokes on purpose. It exists only so that the
/// tests can prove the safe end (a panic in a step is reported as a bench
/// error, the run goes on and the bench is left as `after_run` says) without
/// a broken step kind in the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The Nth step of every case (counted from 1, top-level steps) panics
    /// instead of running.
    PanicInStep(usize),
}

fn parse_fault(text: &str) -> Result<InjectedFault, ArgError> {
    text.strip_prefix("panic-in-step=")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .map(InjectedFault::PanicInStep)
        .ok_or_else(|| ArgError::Fault(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_var_without_name_is_refused_naming_the_text() {
        assert_eq!(parse_var("A=b=c"), Ok(("A".into(), "b=c".into())));
        let e = parse_var("=x").unwrap_err();
        assert_eq!(e.to_string(), "expected NAME=VALUE, found \"=x\"");
        assert!(parse_var("novalue").is_err());
    }

    #[test]
    fn a_bad_duration_keeps_the_duration_parsers_message() {
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        let e = parse_duration("soon").unwrap_err();
        assert!(e.to_string().contains("`soon`"), "{e}");
    }

    #[test]
    fn an_injected_fault_names_a_step_from_one() {
        assert_eq!(
            parse_fault("panic-in-step=2"),
            Ok(InjectedFault::PanicInStep(2))
        );
        for bad in ["panic-in-step=0", "panic-in-step=x", "crash"] {
            assert_eq!(parse_fault(bad), Err(ArgError::Fault(bad.into())));
        }
    }

    #[test]
    fn the_fault_option_is_accepted_but_hidden_from_help() {
        let cli = Cli::try_parse_from(["meterbench", "run", "--inject-fault", "panic-in-step=1"])
            .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("parsed as run")
        };
        assert_eq!(args.inject_fault, Some(InjectedFault::PanicInStep(1)));
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let help = cmd
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("inject-fault"), "{help}");
    }
}
