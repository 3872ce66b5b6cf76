//! `meterbench bench`: speed measured against a peer in the same run, as a
//! ratio, so a shared and noisy machine still gives a fair comparison.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use server::firmware::bench::{run, BenchOptions, Mode};

use crate::cli::BenchCommand;

pub mod fleet;

pub fn main(cmd: BenchCommand) -> ExitCode {
    let (runs, block_sizes, runtimes, no_coap_client, only) = match cmd {
        BenchCommand::Firmware {
            runs,
            block_sizes,
            runtimes,
            no_coap_client,
            only,
        } => (runs, block_sizes, runtimes, no_coap_client, only),
        BenchCommand::Fleet(args) => return fleet::main(args),
        BenchCommand::FleetServer(args) => return fleet::server_main(args),
        BenchCommand::FleetClients(args) => return fleet::clients_main(args),
    };
    let modes = match only.as_deref() {
        Some("pinned") => vec![Mode::Pinned],
        Some("unpinned") => vec![Mode::Unpinned],
        _ => vec![Mode::Pinned, Mode::Unpinned],
    };
    let options = BenchOptions {
        repetitions: runs.max(1),
        block_sizes,
        modes,
        runtimes,
        coap_client: !no_coap_client,
        ..BenchOptions::default()
    };
    if let Err(e) = ensure_libcoap(&options.client, &options.libcoap_server) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    // The timed work runs on threads the bench makes (pinned or not); this
    // runtime only waits for it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(options)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why the benchmark has no libcoap peer to measure against.
#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("{} or {} is missing: install Debian's libcoap3-bin (apt-get install libcoap3-bin)", client.display(), server.display())]
    Missing { client: PathBuf, server: PathBuf },
    #[error("apt-get {0} failed")]
    Install(String),
}

/// The peer is libcoap (Debian's libcoap3-bin). On a fresh machine where we
/// are root with apt, install it; otherwise say what is missing.
fn ensure_libcoap(client: &Path, server: &Path) -> Result<(), PeerError> {
    if client.exists() && server.exists() {
        return Ok(());
    }
    let root = nix::unistd::geteuid().is_root();
    if !root || !Path::new("/usr/bin/apt-get").exists() {
        return Err(PeerError::Missing {
            client: client.to_path_buf(),
            server: server.to_path_buf(),
        });
    }
    eprintln!("installing libcoap3-bin (the benchmark's peer)...");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "libcoap3-bin"][..],
    ] {
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(PeerError::Install(args.join(" ")));
        }
    }
    Ok(())
}
