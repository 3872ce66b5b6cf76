//! `meterbench`: hardware-in-the-loop conformance runs for LwM2M smart meters.

mod bench;
mod blocking;
mod case;
mod cli;
mod credentials;
mod device_pool;
mod drivers;
mod ets;
mod events;
mod firmware_roles;
mod interrupt;
mod link_wiring;
mod measure;
mod progress;
mod report;
mod rig_check;
mod rig_lease;
mod rtt_capture;
mod run;
mod schema;
mod serve;
mod session;
mod shard;
mod smartcard;
mod steps;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        // The virtual meter is this same executable in its own process, so a
        // power cut can kill it like pulling a plug.
        cli::Command::SimMeter { args } => {
            let code = sim::main_from_args(&args);
            std::process::ExitCode::from(code.clamp(0, 255) as u8)
        }
        cli::Command::Run(args) => {
            init_logging(args.verbose);
            run::main(args)
        }
        cli::Command::Bench(cmd) => {
            init_logging(0);
            bench::main(cmd)
        }
        cli::Command::Ets(args) => ets::main(args),
        cli::Command::Junit(cli::JunitCommand::Merge { out, inputs }) => {
            report::merge::main(&out, &inputs)
        }
        cli::Command::Report { run_dir } => report::html::main(&run_dir),
        cli::Command::Schema { file } => schema::main(file),
        cli::Command::Rig(cli::RigCommand::Check(args)) => {
            init_logging(0);
            rig_check::main(args)
        }
        cli::Command::Serve(args) => {
            init_logging(1);
            serve::main(args)
        }
    }
}

/// Logs go to stderr so that stdout stays libtest's; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let default = match verbose {
        // libtest owns the terminal during a run; what the device did is in
        // the artifacts, so only harness errors go to stderr by default.
        0 => "error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // No colour codes in a log file or a CI log (`serve > serve.log`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!progress::plain_output())
        .with_writer(std::io::stderr)
        .try_init();
}
