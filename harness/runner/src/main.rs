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
            let _log = init_logging(args.verbose);
            run::main(args)
        }
        cli::Command::Bench(cmd) => {
            let _log = init_logging(0);
            bench::main(cmd)
        }
        cli::Command::Ets(args) => ets::main(args),
        cli::Command::Junit(cli::JunitCommand::Merge { out, inputs }) => {
            report::merge::main(&out, &inputs)
        }
        cli::Command::Report { run_dir } => report::html::main(&run_dir),
        cli::Command::Schema { file } => schema::main(file),
        cli::Command::Rig(cli::RigCommand::Check(args)) => {
            let _log = init_logging(0);
            rig_check::main(args)
        }
        cli::Command::Serve(args) => {
            let _log = init_logging(1);
            serve::main(args)
        }
    }
}

/// Logs go to stderr so that stdout stays libtest's; `RUST_LOG` overrides.
///
/// Through a writer thread, never from the caller's: a server loop that
/// logs (a datagram at debug, an expiry at info) must not stall on a full
/// pipe when whoever reads stderr is slow (issue 16). When its queue is
/// full, lines are dropped and counted, and the count is said at exit.
/// The returned guard flushes what is queued when dropped: hold it for the
/// command's life.
fn init_logging(verbose: u8) -> LogGuard {
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
    // 8,192 lines queued at most: the queue is allocated whole, and the
    // default (128,000) was 6 MB of every process's memory, the fleet
    // server child's figure included.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(true)
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!progress::plain_output())
        .with_writer(writer)
        .try_init();
    LogGuard {
        _flush: guard,
        dropped,
    }
}

/// Log lines that may wait for a slow stderr before new ones are dropped.
const LOG_QUEUE_LINES: usize = 8192;

/// Keeps the log's writer thread until the command ends.
struct LogGuard {
    _flush: tracing_appender::non_blocking::WorkerGuard,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let lines = self.dropped.dropped_lines();
        if lines > 0 {
            eprintln!("{lines} log line(s) dropped: stderr was read slower than they came");
        }
    }
}
