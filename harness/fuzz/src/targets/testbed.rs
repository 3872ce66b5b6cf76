//! The fake network every role target and the capture share: addresses,
//! the meter's object store and the role configurations. A captured
//! conversation replays byte for byte only against endpoints built exactly
//! like the ones it was captured from, so both build them here.

use std::net::SocketAddr;
use std::time::Duration;

use lwm2m::bootstrap::ServerAccount;
use lwm2m::client::{BootstrapConfig, ClientConfig, ObjectStore, RetryPolicy};
use lwm2m::format::ContentFormat;
use lwm2m::{Path, Value};

use super::format::registry;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("testbed address")
}

/// The embedded LwM2M server.
pub fn server_addr() -> SocketAddr {
    addr("127.0.0.1:5683")
}

/// The embedded Bootstrap-Server.
pub fn bootstrap_addr() -> SocketAddr {
    addr("127.0.0.1:5783")
}

/// The meter.
pub fn client_addr() -> SocketAddr {
    addr("127.0.0.1:56830")
}

/// A second device, over IPv6.
pub fn other_client_addr() -> SocketAddr {
    addr("[::1]:56831")
}

pub const ENDPOINT: &str = "meter-1";
pub const SERVER_SEED: u64 = 11;
pub const CLIENT_SEED: u64 = 22;
pub const BOOTSTRAP_SEED: u64 = 33;
pub const PSK_KEY: [u8; 16] = [
    0x4b, 0xe1, 0x9f, 0x02, 0x7c, 0x33, 0xa8, 0x5d, 0x10, 0xee, 0x61, 0x2f, 0x94, 0x07, 0xc5, 0xb3,
];

/// The account the Bootstrap-Server provisions.
pub fn account() -> ServerAccount {
    ServerAccount::nosec(101, format!("coap://{}", server_addr()))
}

/// A PSK account, for the scripts that write keys.
pub fn psk_account() -> ServerAccount {
    ServerAccount::psk(
        102,
        format!("coaps://{}", server_addr()),
        ENDPOINT.as_bytes().to_vec(),
        PSK_KEY.to_vec(),
    )
}

/// The meter's store, as `lwm2m/tests/spec/pair.rs` fills it, plus an instance
/// of object 19 and the firmware object.
pub fn meter_store() -> ObjectStore {
    let mut s = ObjectStore::new(registry().clone());
    s.set(Path::resource(1, 0, 0), Value::Integer(101));
    s.set(Path::resource(1, 0, 1), Value::Integer(60));
    s.set(Path::resource(1, 0, 7), Value::String("U".into()));
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource(3, 0, 1), Value::String("VM-1".into()));
    s.set(Path::resource(3, 0, 3), Value::String("1.0".into()));
    s.set(Path::resource_instance(3, 0, 6, 0), Value::Integer(1));
    s.set(Path::resource_instance(3, 0, 6, 1), Value::Integer(5));
    s.set(Path::resource(3, 0, 9), Value::Integer(87));
    s.set(Path::resource_instance(3, 0, 11, 0), Value::Integer(0));
    s.set(Path::resource(3, 0, 13), Value::Time(1_700_000_000));
    s.set(Path::resource(3, 0, 14), Value::String("+01:00".into()));
    s.set(Path::resource(3, 0, 16), Value::String("U".into()));
    s.set(Path::resource(4, 0, 2), Value::Integer(-93));
    s.set(Path::resource(5, 0, 3), Value::Integer(0));
    s.set(Path::resource(5, 0, 5), Value::Integer(0));
    s.set(
        Path::resource_instance(19, 0, 0, 0),
        Value::Opaque(vec![1, 2, 3]),
    );
    s
}

/// The meter registering straight with the server (`bootstrap`: false), or
/// bootstrapping first with the Bootstrap-Server (`true`).
pub fn client_config(bootstrap: bool) -> ClientConfig {
    let bootstrap = bootstrap.then(|| {
        let mut bs = BootstrapConfig::new(bootstrap_addr());
        bs.finish_timeout = Duration::from_secs(60);
        bs
    });
    ClientConfig {
        endpoint: ENDPOINT.into(),
        server: server_addr(),
        lifetime: Duration::from_secs(60),
        lwm2m_version: "1.1".into(),
        binding: "U".into(),
        registry: registry().clone(),
        preferred_format: ContentFormat::Tlv,
        seed: CLIENT_SEED,
        bootstrap,
        retry: RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            bootstrap_after: 2,
        },
    }
}
