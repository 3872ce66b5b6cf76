//! The object instances the virtual meter exposes over LwM2M and their
//! initial values: LwM2M Server (object 1), Device (object 3),
//! Connectivity Monitoring (object 4) and Portfolio (object 16), per the OMA
//! DDFs in fixtures/objects.
//!
//! Portfolio (registry 16.xml v1.0) is where a server stores data of its own
//! on the meter: one instance from the factory, /16/0, whose Identity
//! (/16/0/0, a multiple String resource the server reads and writes) holds
//! the GSMA host-device strings (id, manufacturer, model, software version).
//! It is the meter's one multiple resource that holds nothing but what a
//! server wrote, which is what the ETS's Write-Composite test (1.1-int-230)
//! replaces. GetAuthData's services are not simulated (the resource, an
//! optional one, is absent); AuthStatus stays 0 (idle, no AuthData).
//!
//! Access Control (object 2, Core Appendix E.3) is in the meter's object
//! model but has no instance from the factory: a Bootstrap-Server writes
//! them (and reads them back, Core §6.1.7.2). The meter registers with one
//! LwM2M Server at a time, and a client with one Server account gives it
//! full access rights (Core §7.3.1), so entries are stored and served but
//! enforced only once bootstrap leaves two or more Server accounts
//! (`lwm2m::client::access_control`). A rig may describe a meter without
//! the object at all (`without: [/2]`, [`registry_without`]).

use lwm2m::client::ObjectStore;
use lwm2m::{Path, Registry, Value};

use crate::identity::{Identity, MANUFACTURER, MODEL, MODEM_REVISION};
use crate::radio::Radio;

/// Short Server ID of the one LwM2M server (/1/0/0).
pub const SHORT_SERVER_ID: i64 = 1;
/// /3/0/4 Reboot (E).
pub fn reboot() -> Path {
    Path::resource(3, 0, 4)
}
/// /3/0/13 Current Time (RW): ticks every second.
pub fn current_time() -> Path {
    Path::resource(3, 0, 13)
}
/// /1/x/1 Lifetime (RW) of the Server object instance `instance`.
pub fn lifetime(instance: u16) -> Path {
    Path::resource(1, instance, 1)
}
/// Resources the meter's firmware gives every Server object account that
/// comes without them (from the factory, from a Bootstrap-Server that
/// wrote only 0, 1, 6 and 7): Default Minimum Period 0 (no minimum),
/// Default Maximum Period 3600 (an hourly notification when an observation
/// sets no pmax) and Disable Timeout 86400 (the TS's default), Core
/// Appendix E.2 resources 2, 3 and 5. See [`lwm2m::client::Client::set_account_defaults`].
pub fn server_account_defaults() -> Vec<(u16, Value)> {
    vec![
        (2, Value::Integer(0)),
        (3, Value::Integer(3600)),
        (5, Value::Integer(86_400)),
    ]
}

/// Object 16, Portfolio.
pub const PORTFOLIO: u16 = 16;
/// The factory Portfolio instance, /16/0.
pub const PORTFOLIO_INSTANCE: u16 = 0;
/// /16/x/0 Identity (RW, multiple String).
pub fn portfolio_identity(instance: u16) -> Path {
    Path::resource(PORTFOLIO, instance, 0)
}

/// Whether `path` is the Lifetime of any Server object instance (/1/x/1).
pub fn is_lifetime(path: &Path) -> bool {
    path.depth() == 3 && path.object_id() == Some(1) && path.resource_id() == Some(1)
}
/// /4/0/2 Radio Signal Strength.
pub fn radio_signal_strength() -> Path {
    Path::resource(4, 0, 2)
}
/// /4/0/3 Link Quality.
pub fn link_quality() -> Path {
    Path::resource(4, 0, 3)
}

/// Network bearer codes (object 4, resource 0): 6 = LTE-FDD, 7 = NB-IoT.
const LTE_FDD: i64 = 6;
const NB_IOT: i64 = 7;

/// Facts the initial values are made of.
#[derive(Debug, Clone)]
pub struct DeviceFacts<'a> {
    pub identity: &'a Identity,
    pub firmware_version: &'a str,
    pub lifetime_s: u32,
    /// Seconds since the Unix epoch.
    pub now_unix: i64,
    /// The instance of the factory Server object account (/1/x).
    pub server_instance: u16,
}

/// Builds the store: defaults first, then the values the server wrote
/// earlier (from NV) on top, as a device restores its settings at boot.
pub fn initial_store(
    registry: Registry,
    facts: &DeviceFacts<'_>,
    radio: &Radio,
    written: &[(Path, Value)],
) -> ObjectStore {
    let mut store = ObjectStore::new(registry);
    let s = |v: &str| Value::String(v.to_owned());
    let server = facts.server_instance;
    let values = [
        // Object 1, LwM2M Server.
        (
            Path::resource(1, server, 0),
            Value::Integer(SHORT_SERVER_ID),
        ),
        (
            lifetime(server),
            Value::Integer(i64::from(facts.lifetime_s)),
        ),
        (Path::resource(1, server, 6), Value::Boolean(false)),
        (Path::resource(1, server, 7), s("U")),
        // Object 3, Device.
        (Path::resource(3, 0, 0), s(MANUFACTURER)),
        (Path::resource(3, 0, 1), s(MODEL)),
        (Path::resource(3, 0, 2), s(&facts.identity.serial)),
        (Path::resource(3, 0, 3), s(facts.firmware_version)),
        (Path::resource_instance(3, 0, 6, 0), Value::Integer(0)), // DC power
        (Path::resource_instance(3, 0, 11, 0), Value::Integer(0)), // no error
        (current_time(), Value::Time(facts.now_unix)),
        (Path::resource(3, 0, 14), s("+00:00")),
        (Path::resource(3, 0, 15), s("Etc/UTC")),
        (Path::resource(3, 0, 16), s("U")),
        (Path::resource(3, 0, 17), s("smart meter")),
        (Path::resource(3, 0, 18), s("A")),
        (Path::resource(3, 0, 19), s(MODEM_REVISION)),
        // Object 4, Connectivity Monitoring.
        (Path::resource(4, 0, 0), Value::Integer(LTE_FDD)),
        (Path::resource_instance(4, 0, 1, 0), Value::Integer(LTE_FDD)),
        (Path::resource_instance(4, 0, 1, 1), Value::Integer(NB_IOT)),
        (radio_signal_strength(), Value::Integer(radio.rssi_dbm())),
        (link_quality(), Value::Integer(radio.link_quality())),
        (Path::resource_instance(4, 0, 4, 0), s("127.0.0.1")),
        (Path::resource_instance(4, 0, 7, 0), s("meterbench.iot")),
        (Path::resource(4, 0, 8), Value::Integer(0x01a2_d001)),
        (Path::resource(4, 0, 9), Value::Integer(1)),
        (Path::resource(4, 0, 10), Value::Integer(1)),
    ];
    for (path, value) in values {
        store.set(path, value);
    }
    if store.registry().object(PORTFOLIO).is_some() {
        let identity = portfolio_identity(PORTFOLIO_INSTANCE);
        // Identity as the server last wrote it replaces the factory list
        // whole: a Write (replace) that left fewer instances must not get
        // the factory's others back at the next boot.
        if !written.iter().any(|(p, _)| identity.contains(p)) {
            let factory = [
                facts.identity.serial.as_str(),
                MANUFACTURER,
                MODEL,
                facts.firmware_version,
            ];
            for (i, v) in factory.into_iter().enumerate() {
                store.set(
                    Path::resource_instance(PORTFOLIO, PORTFOLIO_INSTANCE, 0, i as u16),
                    s(v),
                );
            }
        }
        // AuthStatus: IDLE_STATE, no GetAuthData has run.
        store.set(
            Path::resource(PORTFOLIO, PORTFOLIO_INSTANCE, 3),
            Value::Integer(0),
        );
    }
    for (path, value) in written {
        store.set(*path, value.clone());
    }
    store
}

/// The object model of a meter that goes without the whole objects among
/// `without` (`/2`: a single-server meter without Access Control, which
/// Core §7.3 lets it do): they are then unknown to it, so its
/// Bootstrap-Discover does not list them, a Bootstrap-Read or -Write of
/// them is refused and a Read is 4.04.
pub fn registry_without(registry: Registry, without: &[Path]) -> Registry {
    let gone: Vec<u16> = without
        .iter()
        .filter(|p| p.depth() == 1)
        .filter_map(Path::object_id)
        .collect();
    if gone.is_empty() {
        return registry;
    }
    Registry::from_objects(
        registry
            .objects()
            .filter(|o| !gone.contains(&o.id))
            .cloned(),
    )
}

/// Takes the resources the meter does not have out of a prepared store:
/// they are then absent from Read and Discover, and a Write to them is 4.04.
pub fn remove_resources(store: &mut ObjectStore, without: &[Path]) {
    for path in without {
        store.clear(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_object_holds_identity_and_nv_overrides_defaults() {
        let id = Identity::derive(5, Some("SN-5"));
        let facts = DeviceFacts {
            identity: &id,
            firmware_version: "1.0",
            lifetime_s: 90,
            now_unix: 1_700_000_000,
            server_instance: 0,
        };
        let written = vec![(
            Path::resource(3, 0, 15),
            Value::String("Europe/Oslo".into()),
        )];
        let store = initial_store(Registry::default(), &facts, &Radio::new(5), &written);
        assert_eq!(
            store.get(&Path::resource(3, 0, 0)),
            Some(&Value::String("meterbench".into()))
        );
        assert_eq!(
            store.get(&Path::resource(3, 0, 2)),
            Some(&Value::String("SN-5".into()))
        );
        assert_eq!(
            store.get(&Path::resource(3, 0, 3)),
            Some(&Value::String("1.0".into()))
        );
        assert_eq!(store.get(&lifetime(0)), Some(&Value::Integer(90)));
        assert_eq!(
            store.get(&current_time()),
            Some(&Value::Time(1_700_000_000))
        );
        assert_eq!(
            store.get(&Path::resource(3, 0, 15)),
            Some(&Value::String("Europe/Oslo".into()))
        );
        assert_eq!(
            store.get(&Path::resource(3, 0, 16)),
            Some(&Value::String("U".into()))
        );
        assert_eq!(
            store.get(&Path::resource_instance(4, 0, 4, 0)),
            Some(&Value::String("127.0.0.1".into()))
        );
        let instances: Vec<_> = store.instances().collect();
        assert_eq!(
            instances,
            vec![
                Path::instance(1, 0),
                Path::instance(3, 0),
                Path::instance(4, 0)
            ]
        );
    }
}

#[cfg(test)]
mod differing_device_tests {
    use super::*;

    #[test]
    fn a_meter_without_access_control_has_no_object_2_to_bootstrap() {
        let core = Registry::core();
        assert!(core.object(2).is_some(), "the default meter has object 2");
        let r = registry_without(core.clone(), &[Path::resource(3, 0, 15), Path::object(2)]);
        assert!(r.object(2).is_none());
        assert_eq!(r.len(), core.len() - 1);
        assert!(r.object(3).is_some_and(|d| d.resource(15).is_some()));
    }

    #[test]
    fn the_factory_account_takes_its_instance_and_left_out_resources_are_gone() {
        let id = Identity::derive(5, None);
        let facts = DeviceFacts {
            identity: &id,
            firmware_version: "1.0",
            lifetime_s: 42,
            now_unix: 1_700_000_000,
            server_instance: 1,
        };
        let mut store = initial_store(Registry::default(), &facts, &Radio::new(5), &[]);
        assert_eq!(store.get(&lifetime(1)), Some(&Value::Integer(42)));
        assert!(is_lifetime(&lifetime(1)) && !is_lifetime(&Path::resource(3, 0, 1)));
        assert!(!store.instances().any(|i| i == Path::instance(1, 0)));
        remove_resources(&mut store, &[Path::resource(3, 0, 15)]);
        assert_eq!(store.get(&Path::resource(3, 0, 15)), None);
        assert!(store
            .read(&Path::instance(3, 0))
            .iter()
            .all(|r| r.path != Path::resource(3, 0, 15)));
        assert!(store.get(&Path::resource(3, 0, 14)).is_some());
    }
}

#[cfg(test)]
mod portfolio_tests {
    use super::*;

    fn facts(id: &Identity) -> DeviceFacts<'_> {
        DeviceFacts {
            identity: id,
            firmware_version: "1.0",
            lifetime_s: 30,
            now_unix: 1_700_000_000,
            server_instance: 0,
        }
    }

    fn identity_values(store: &ObjectStore) -> Vec<(Path, Value)> {
        store
            .read(&portfolio_identity(PORTFOLIO_INSTANCE))
            .into_iter()
            .map(|r| (r.path, r.value))
            .collect()
    }

    #[test]
    fn the_meter_has_one_portfolio_instance_with_the_gsma_identity_strings() {
        let id = Identity::derive(7, Some("SN-7"));
        let store = initial_store(Registry::core(), &facts(&id), &Radio::new(7), &[]);
        assert!(store.instances().any(|i| i == Path::instance(16, 0)));
        assert!(!store.instances().any(|i| i == Path::instance(16, 1)));
        let s = |v: &str| Value::String(v.into());
        assert_eq!(
            identity_values(&store),
            vec![
                (Path::resource_instance(16, 0, 0, 0), s("SN-7")),
                (Path::resource_instance(16, 0, 0, 1), s(MANUFACTURER)),
                (Path::resource_instance(16, 0, 0, 2), s(MODEL)),
                (Path::resource_instance(16, 0, 0, 3), s("1.0")),
            ]
        );
        assert_eq!(
            store.get(&Path::resource(16, 0, 3)),
            Some(&Value::Integer(0)),
            "AuthStatus idle"
        );
        // The registry's Identity is one the server may write (RW, multiple).
        let def = store
            .registry()
            .resource(&portfolio_identity(0))
            .expect("object 16 in the meter's model");
        assert!(def.operations.write && def.multiple);
    }

    #[test]
    fn identity_the_server_wrote_replaces_the_factory_list_whole() {
        let id = Identity::derive(7, None);
        let written = vec![
            (
                Path::resource_instance(16, 0, 0, 0),
                Value::String("aa".into()),
            ),
            (
                Path::resource_instance(16, 0, 0, 1),
                Value::String("bb".into()),
            ),
        ];
        let store = initial_store(Registry::core(), &facts(&id), &Radio::new(7), &written);
        assert_eq!(
            identity_values(&store),
            written,
            "no factory instance 2 or 3 comes back"
        );
    }

    #[test]
    fn a_meter_built_without_object_16_has_no_portfolio() {
        let id = Identity::derive(7, None);
        let registry = registry_without(Registry::core(), &[Path::object(16)]);
        let store = initial_store(registry, &facts(&id), &Radio::new(7), &[]);
        assert!(!store.instances().any(|i| i.object_id() == Some(16)));
        assert!(store.read(&Path::object(16)).is_empty());
    }
}
