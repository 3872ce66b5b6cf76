//! `meterbench serve`: the embedded server on its own, so an engineer can
//! point a real device or a third-party LwM2M client at it by hand.

use std::process::ExitCode;

use lwm2m::server::ServerConfig;
use lwm2m::{ContentFormat, Registry};
use server::LwM2mServer;

use crate::cli::ServeArgs;

pub fn main(args: ServeArgs) -> ExitCode {
    let registry = match Registry::load_dir(&args.objects) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let config = ServerConfig {
            registry,
            default_format: ContentFormat::Tlv,
            seed: std::process::id() as u64,
        };
        let handle = match LwM2mServer::bind(args.bind, config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        println!(
            "meterbench LwM2M server listening on udp {} (Ctrl-C to stop)",
            handle.local_addr()
        );
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                },
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        server::serve_until(&handle, stop, |_, event| {
            println!(
                "{} {}",
                chrono::Local::now().format("%H:%M:%S%.3f"),
                server::describe_event(event)
            );
        })
        .await;
        let stats = handle.stats();
        handle.shutdown().await;
        println!(
            "stopped; {} datagrams received, {} sent",
            stats.datagrams_in, stats.datagrams_out
        );
        ExitCode::SUCCESS
    })
}
