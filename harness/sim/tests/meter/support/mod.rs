//! What the factory-provisioned meter's tests share: the workspace's object
//! registry and meterbench's embedded servers bound on loopback over DTLS
//! PSK, as the runner would bind them for a factory device.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lwm2m::bootstrap::BootstrapServerConfig;
use lwm2m::server::ServerConfig;
use lwm2m::{ContentFormat, Registry};
use server::{
    BootstrapServerHandle, EmbeddedBootstrapServer, LwM2mServer, SecurityConfig, ServerHandle,
};

/// The workspace root: rigs/ and fixtures/ are named relative to it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn registry() -> Registry {
    Registry::load_dir(&root().join("fixtures/objects")).unwrap()
}

/// An LwM2M server on a free loopback port, coaps with PSK; `seed` makes
/// its tokens and message ids reproducible per test.
pub async fn coaps_server(seed: u64) -> ServerHandle {
    let config = ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed,
    };
    LwM2mServer::bind_secure(
        "127.0.0.1:0".parse().unwrap(),
        config,
        SecurityConfig::psk(),
    )
    .await
    .unwrap()
}

/// A bootstrap server at `bind` (a factory device's fixed address), coaps
/// with PSK.
pub async fn bootstrap_server(bind: SocketAddr, seed: u64) -> BootstrapServerHandle {
    EmbeddedBootstrapServer::bind(
        bind,
        BootstrapServerConfig {
            registry: registry(),
            default_format: ContentFormat::Tlv,
            seed,
        },
        SecurityConfig::psk(),
    )
    .await
    .unwrap_or_else(|e| panic!("bootstrap server at {bind}: {e}"))
}
