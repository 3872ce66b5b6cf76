//! `meterbench serve`: the embedded server (and, if asked, the bootstrap
//! server) on its own, so an engineer can point a real device or a
//! third-party LwM2M client at it by hand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dtls::{KeyError, Psk, SecretKey};
use lwm2m::bootstrap::{BootstrapScript, BootstrapServerConfig, ServerAccount};
use lwm2m::server::ServerConfig;
use lwm2m::{ContentFormat, Registry};
use serde::Deserialize;
use server::{
    BootstrapServerEvent, BootstrapServerHandle, EmbeddedBootstrapServer, LwM2mServer,
    SecurityConfig, ServerError, ServerHandle,
};

use crate::cli::ServeArgs;

/// One device of the secrets file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSecret {
    endpoint: String,
    identity: String,
    key: String,
    bootstrap_identity: Option<String>,
    bootstrap_key: Option<String>,
}

/// A secrets file that names no usable PSK: each says the file and the
/// endpoint, never the key.
#[derive(Debug, thiserror::Error)]
enum CredentialsError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// serde-saphyr's snippet could quote a key: the position only.
    #[error("{}:{at}: expected a list of endpoint, identity, key (hex)", file.display())]
    NotADeviceList { file: PathBuf, at: String },
    #[error("{}: key of {endpoint}: {source}", file.display())]
    Key {
        file: PathBuf,
        endpoint: String,
        source: KeyError,
    },
    #[error("{}: {endpoint}: {source}", file.display())]
    Psk {
        file: PathBuf,
        endpoint: String,
        source: KeyError,
    },
    #[error("{}: {endpoint}: bootstrap_identity and bootstrap_key go together", file.display())]
    BootstrapHalf { file: PathBuf, endpoint: String },
}

struct Device {
    endpoint: String,
    server: Psk,
    bootstrap: Option<Psk>,
}

pub fn main(args: ServeArgs) -> ExitCode {
    let registry = match Registry::load_dir(&args.objects) {
        Ok(r) => r,
        Err(e) => return fail(2, &e.to_string()),
    };
    let devices = match args.credentials.as_deref().map(load_devices).transpose() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => return fail(2, &e.to_string()),
    };
    if args.secure && devices.is_empty() {
        return fail(
            2,
            "--secure needs --credentials FILE naming each device's PSK",
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let security = if args.secure {
            SecurityConfig::psk()
        } else {
            SecurityConfig::NoSec
        };
        let config = ServerConfig {
            registry: registry.clone(),
            default_format: ContentFormat::Tlv,
            seed: std::process::id() as u64,
        };
        let handle = match LwM2mServer::bind_secure(args.bind, config, security.clone()).await {
            Ok(h) => h,
            Err(e) => return fail(1, &e.to_string()),
        };
        println!(
            "meterbench LwM2M server listening on {} (Ctrl-C to stop)",
            handle.uri()
        );
        let bootstrap = match args.bootstrap_bind {
            None => None,
            Some(addr) => {
                match start_bootstrap(addr, registry, security, &handle, &devices).await {
                    Ok(b) => Some(b),
                    Err(e) => return fail(1, &e.to_string()),
                }
            }
        };
        for d in &devices {
            if args.secure {
                handle.set_psk(&d.endpoint, d.server.clone());
            }
            println!(
                "device {}: PSK identity {:?}, key {}",
                d.endpoint,
                d.server.identity,
                d.server.key.fingerprint()
            );
        }
        serve_until_stopped(&handle, bootstrap.as_ref()).await;
        let stats = handle.stats();
        if let Some(b) = bootstrap {
            b.shutdown().await;
        }
        handle.shutdown().await;
        println!(
            "stopped; {} datagrams received, {} sent, {} dropped for a full receive buffer",
            stats.datagrams_in,
            stats.datagrams_out,
            stats
                .receive_buffer_drops
                .map_or_else(|| "unknown".to_string(), |n| n.to_string())
        );
        ExitCode::SUCCESS
    })
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

async fn start_bootstrap(
    addr: std::net::SocketAddr,
    registry: Registry,
    security: SecurityConfig,
    server: &ServerHandle,
    devices: &[Device],
) -> Result<BootstrapServerHandle, ServerError> {
    let config = BootstrapServerConfig {
        registry,
        default_format: ContentFormat::Tlv,
        seed: std::process::id() as u64 ^ 0x5eed,
    };
    let secure = matches!(security, SecurityConfig::Psk(_));
    let bs = EmbeddedBootstrapServer::bind(addr, config, security).await?;
    println!("meterbench bootstrap server listening on {}", bs.uri());
    for d in devices {
        let account = if secure {
            ServerAccount::psk(
                1,
                server.uri(),
                d.server.identity.as_bytes(),
                d.server.key.expose(),
            )
        } else {
            ServerAccount::nosec(1, server.uri())
        };
        if let (true, Some(b)) = (secure, &d.bootstrap) {
            bs.set_psk(&d.endpoint, b.clone());
        }
        bs.set_script(&d.endpoint, BootstrapScript::standard(&account))
            .await?;
    }
    Ok(bs)
}

/// Prints every event until Ctrl-C or SIGTERM.
async fn serve_until_stopped(handle: &ServerHandle, bootstrap: Option<&BootstrapServerHandle>) {
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
    let bootstrap_events = async {
        let Some(bs) = bootstrap else {
            return std::future::pending().await;
        };
        let mut cursor = bs.current_seq();
        loop {
            if let Ok((seq, event)) = bs
                .await_event(cursor, std::time::Duration::from_secs(3600), |_| true)
                .await
            {
                cursor = seq;
                let text = match &event {
                    BootstrapServerEvent::Bootstrap(e) => server::describe_bootstrap_event(e),
                    BootstrapServerEvent::Security(e) => server::describe_security_event(e),
                    BootstrapServerEvent::Forbidden {
                        endpoint,
                        identity,
                        reason,
                        ..
                    } => {
                        format!("forbidden: {endpoint} (identity {identity:?}): {reason}")
                    }
                };
                println!("{} bootstrap: {text}", now());
            }
        }
    };
    tokio::select! {
        _ = server::serve_until(handle, stop, |_, event| println!("{} {}", now(), server::describe_event(event))) => {}
        _ = bootstrap_events => {}
    }
}

fn now() -> String {
    chrono::Local::now().format("%H:%M:%S%.3f").to_string()
}

fn load_devices(path: &Path) -> Result<Vec<Device>, CredentialsError> {
    let file = || path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        file: file(),
        source,
    })?;
    let entries: Vec<DeviceSecret> = serde_saphyr::from_str(&text).map_err(|e| {
        // serde-saphyr's snippet could quote a key: the position only.
        let at = e
            .location()
            .map(|l| format!("{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        CredentialsError::NotADeviceList { file: file(), at }
    })?;
    entries
        .into_iter()
        .map(|e| {
            let psk = |identity: String, key: &str| {
                let key =
                    SecretKey::from_hex(key.trim()).map_err(|source| CredentialsError::Key {
                        file: file(),
                        endpoint: e.endpoint.clone(),
                        source,
                    })?;
                Psk::new(identity, key).map_err(|source| CredentialsError::Psk {
                    file: file(),
                    endpoint: e.endpoint.clone(),
                    source,
                })
            };
            let server = psk(e.identity.clone(), &e.key)?;
            let bootstrap = match (&e.bootstrap_identity, &e.bootstrap_key) {
                (Some(i), Some(k)) => Some(psk(i.clone(), k)?),
                (None, None) => None,
                _ => {
                    return Err(CredentialsError::BootstrapHalf {
                        file: file(),
                        endpoint: e.endpoint.clone(),
                    })
                }
            };
            Ok(Device {
                endpoint: e.endpoint,
                server,
                bootstrap,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_secrets_file_names_file_and_endpoint_never_the_key() {
        let dir = std::env::temp_dir().join(format!("meterbench-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secrets.yaml");
        let secret = "c0ffee0ddba11";
        std::fs::write(
            &file,
            format!("- {{ endpoint: meter-1, identity: id1, key: \"{secret}\" }}\n"),
        )
        .unwrap();
        let e = load_devices(&file).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!("{}: key of meter-1: ", file.display())),
            "{e}"
        );
        assert!(!e.contains(secret), "{e}");
        std::fs::write(
            &file,
            "- { endpoint: meter-2, identity: id2, key: \"00ff\", bootstrap_key: \"01\" }\n",
        )
        .unwrap();
        let e = load_devices(&file).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "{}: meter-2: bootstrap_identity and bootstrap_key go together",
                file.display()
            )
        );
        std::fs::write(&file, "- { endpoint: meter-3, key: \"00ff\" }\n").unwrap();
        let e = load_devices(&file).err().unwrap().to_string();
        assert!(
            e.ends_with("expected a list of endpoint, identity, key (hex)"),
            "{e}"
        );
        assert!(!e.contains("00ff"), "{e}");
        std::fs::write(
            &file,
            "- { endpoint: meter-4, identity: id4, key: \"00ff\" }\n",
        )
        .unwrap();
        assert_eq!(load_devices(&file).ok().unwrap()[0].endpoint, "meter-4");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
