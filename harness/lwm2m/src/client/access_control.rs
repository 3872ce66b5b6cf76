//! Access Control (LwM2M 1.1 Core §7.3, object 2 in Appendix E.3): which
//! LwM2M Server may do what to which object instance.
//!
//! The TS asks for it only of a client with more than one LwM2M Server
//! account: with one, that server has full access rights (Core §7.3.1,
//! E.3.1) and a client "doesn't need" Access Control Object instances. The
//! client here follows that split: it checks the rights of the server a
//! request came from only while its store holds two or more Server accounts
//! (see [`applies`]); a single-server client — the virtual meter as it ships —
//! serves its one server in full, and still stores, serves and
//! Bootstrap-Reads whatever object 2 instances a Bootstrap-Server wrote.
//!
//! The check (Core §7.3.2, Figure "Access Rights check"):
//! - An operation on an object instance needs the Access Control Object
//!   instance whose Object ID (/2/x/0) and Object Instance ID (/2/x/1) name
//!   it; none: 4.01 Unauthorized. Its rights for the server are the ACL
//!   resource instance with the server's Short Server ID (/2/x/2/ssid); else,
//!   for the Access Control Owner (/2/x/3), every right; else the default ACL
//!   instance /2/x/2/0; else none.
//! - Create needs the Create bit of the instance for the object itself,
//!   Object Instance ID 65535 (MAX_ID).
//! - Read, Observe, Discover and Write-Attributes need the Read bit.
//! - An Access Control Object instance is managed (written, deleted) only by
//!   its owner (E.3 resource 3); MAX_ID as owner: by bootstrap only.
//! - An object-level Read, Observe or Discover is allowed when the server may
//!   read every instance of the object: the TS lets the client leave the
//!   other instances out of the answer; this client refuses the whole request
//!   instead, which never shows what the server may not read.

use crate::bootstrap::account::{self, SERVER_OBJECT};
use crate::path::Path;
use crate::value::Value;

use super::ObjectStore;

/// Object 2, LwM2M Access Control.
pub const ACCESS_CONTROL_OBJECT: u16 = 2;
/// /2/x/0 Object ID, /2/x/1 Object Instance ID, /2/x/2 ACL, /2/x/3 Owner (E.3).
const OBJECT_ID: u16 = 0;
const OBJECT_INSTANCE_ID: u16 = 1;
const ACL: u16 = 2;
const OWNER: u16 = 3;
/// MAX_ID (E.3): as Object Instance ID, the object itself (Create); as
/// owner, an entry that only bootstrap manages.
pub const MAX_ID: u16 = 65_535;

/// One access right, the ACL bit for it (E.3 resource 2, from the LSB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read, Observe, Discover, Write-Attributes.
    Read = 1,
    Write = 2,
    Execute = 4,
    Delete = 8,
    Create = 16,
}

/// Whether the client must check access rights: it holds more than one
/// LwM2M Server account (Core §7.3.1).
pub fn applies(store: &ObjectStore) -> bool {
    account::instances_of(store, SERVER_OBJECT).len() > 1
}

fn integer(store: &ObjectStore, path: Path) -> Option<i64> {
    match store.get(&path)? {
        Value::Integer(i) => Some(*i),
        Value::Unsigned(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// The Access Control Object instance for `object`/`instance` (MAX_ID: the object).
fn entry_for(store: &ObjectStore, object: u16, instance: u16) -> Option<u16> {
    account::instances_of(store, ACCESS_CONTROL_OBJECT)
        .into_iter()
        .find(|x| {
            let r = |id| integer(store, Path::resource(ACCESS_CONTROL_OBJECT, *x, id));
            r(OBJECT_ID) == Some(i64::from(object))
                && r(OBJECT_INSTANCE_ID) == Some(i64::from(instance))
        })
}

/// The rights bits entry `aco` gives server `ssid`.
fn rights(store: &ObjectStore, aco: u16, ssid: u16) -> i64 {
    let acl = |id| {
        integer(
            store,
            Path::resource_instance(ACCESS_CONTROL_OBJECT, aco, ACL, id),
        )
    };
    if let Some(bits) = acl(ssid) {
        return bits;
    }
    if integer(store, Path::resource(ACCESS_CONTROL_OBJECT, aco, OWNER)) == Some(i64::from(ssid)) {
        // The owner without an ACL instance of its own: every right on the instance.
        return (Access::Read as i64)
            | (Access::Write as i64)
            | (Access::Execute as i64)
            | (Access::Delete as i64);
    }
    acl(0).unwrap_or(0)
}

/// `Ok` when server `ssid` may do `access` on `path`; the reason for a
/// 4.01 Unauthorized otherwise. Call only when [`applies`].
pub fn check(store: &ObjectStore, ssid: u16, access: Access, path: &Path) -> Result<(), String> {
    let Some(object) = path.object_id() else {
        return Ok(());
    };
    if object == ACCESS_CONTROL_OBJECT {
        return check_own_entry(store, ssid, access, path);
    }
    let denied = |what: String| {
        Err(format!(
            "server {ssid} has no {access:?} right on {what} (Access Control, Core §7.3)"
        ))
    };
    if access == Access::Create {
        let aco = entry_for(store, object, MAX_ID);
        return match aco {
            Some(aco) if rights(store, aco, ssid) & Access::Create as i64 != 0 => Ok(()),
            _ => denied(format!("object {object}")),
        };
    }
    let instances: Vec<u16> = match path.instance_id() {
        Some(i) => vec![i],
        None => account::instances_of(store, object),
    };
    for i in instances {
        let allowed = entry_for(store, object, i)
            .is_some_and(|aco| rights(store, aco, ssid) & access as i64 != 0);
        if !allowed {
            return denied(Path::instance(object, i).to_string());
        }
    }
    Ok(())
}

/// Object 2 itself: anyone may read an entry; only its owner manages it,
/// and no LwM2M Server creates one (the client and bootstrap do, E.3.1).
fn check_own_entry(
    store: &ObjectStore,
    ssid: u16,
    access: Access,
    path: &Path,
) -> Result<(), String> {
    if access == Access::Read {
        return Ok(());
    }
    let owner = path
        .instance_id()
        .and_then(|i| integer(store, Path::resource(ACCESS_CONTROL_OBJECT, i, OWNER)));
    match owner {
        Some(o) if o == i64::from(ssid) && access != Access::Create => Ok(()),
        _ => Err(format!(
            "server {ssid} does not own {path}: only the Access Control Owner manages it (Core §E.3)"
        )),
    }
}

impl super::Client {
    /// Refuses (4.01 Unauthorized, Core §6.3 and §7.3) a request whose
    /// server lacks the right for it, while Access Control applies. The
    /// server is the account whose URI resolves to the request's source; a
    /// request from no account's address has no rights at all.
    pub(super) fn authorize(
        &self,
        peer: std::net::SocketAddr,
        path: &Path,
        method: coap_lite::RequestType,
        has_body: bool,
    ) -> Result<(), (u16, String)> {
        use coap_lite::RequestType as M;
        if !applies(&self.store) {
            return Ok(());
        }
        let access = match method {
            M::Put if has_body => Access::Write,
            M::Post if path.depth() == 1 => Access::Create,
            M::Post if path.depth() == 3 && !has_body => Access::Execute,
            M::Post if path.depth() == 3 => match self.config.registry.resource(path) {
                Some(r) if r.operations.execute => Access::Execute,
                _ => Access::Write,
            },
            M::Post => Access::Write,
            M::Delete => Access::Delete,
            // GET (Read, Observe, Discover), empty PUT (Write-Attributes).
            _ => Access::Read,
        };
        let ssid = account::accounts(&self.store)
            .into_iter()
            .find(|a| account::resolve_uri(&a.server_uri).is_ok_and(|(addr, _)| addr == peer))
            .map(|a| a.short_server_id)
            .ok_or_else(|| {
                (
                    401,
                    format!(
                        "{peer} is none of the client's LwM2M Servers (Access Control, Core §7.3)"
                    ),
                )
            })?;
        check(&self.store, ssid, access, path).map_err(|e| (401, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Registry;

    /// Two accounts (ssid 101 and 102) and Access Control entries as a
    /// Bootstrap-Server writes them for a two-server meter.
    fn two_server_store() -> ObjectStore {
        let mut s = ObjectStore::new(Registry::core());
        for (i, ssid) in [(0u16, 101i64), (1, 102)] {
            s.set(Path::resource(1, i, 0), Value::Integer(ssid));
        }
        s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
        s.set(Path::resource(5, 0, 3), Value::Integer(0));
        // /2/0: /3/0 owned by 101; 102 may only read (ACL[102] = R).
        s.set(Path::resource(2, 0, 0), Value::Integer(3));
        s.set(Path::resource(2, 0, 1), Value::Integer(0));
        s.set(Path::resource_instance(2, 0, 2, 102), Value::Integer(1));
        s.set(Path::resource(2, 0, 3), Value::Integer(101));
        // /2/1: Create on object 5 by default (ACL[0] = C), owner bootstrap only.
        s.set(Path::resource(2, 1, 0), Value::Integer(5));
        s.set(Path::resource(2, 1, 1), Value::Integer(i64::from(MAX_ID)));
        s.set(Path::resource_instance(2, 1, 2, 0), Value::Integer(16));
        s.set(Path::resource(2, 1, 3), Value::Integer(i64::from(MAX_ID)));
        s
    }

    #[test]
    fn rights_come_from_the_servers_acl_then_ownership_then_the_default() {
        let s = two_server_store();
        assert!(applies(&s));
        let dev = Path::resource(3, 0, 4);
        // The owner without its own ACL instance: every right.
        assert_eq!(check(&s, 101, Access::Execute, &dev), Ok(()));
        // 102's own ACL instance: R only.
        assert_eq!(check(&s, 102, Access::Read, &dev), Ok(()));
        let e = check(&s, 102, Access::Execute, &dev).unwrap_err();
        assert!(e.contains("server 102 has no Execute right on /3/0"), "{e}");
        // No entry for /5/0: nobody may touch it; Create of /5 by the default ACL.
        assert!(check(&s, 101, Access::Read, &Path::instance(5, 0)).is_err());
        assert_eq!(check(&s, 102, Access::Create, &Path::object(5)), Ok(()));
        assert!(check(&s, 102, Access::Create, &Path::object(3)).is_err());
        // Object-level read: every instance must be readable.
        assert_eq!(check(&s, 102, Access::Read, &Path::object(3)), Ok(()));
        assert!(check(&s, 102, Access::Read, &Path::object(5)).is_err());
    }

    #[test]
    fn an_access_control_entry_is_managed_by_its_owner_only() {
        let s = two_server_store();
        assert_eq!(
            check(&s, 101, Access::Write, &Path::resource(2, 0, 2)),
            Ok(())
        );
        assert!(check(&s, 102, Access::Write, &Path::resource(2, 0, 2)).is_err());
        assert_eq!(check(&s, 102, Access::Read, &Path::instance(2, 0)), Ok(()));
        // MAX_ID owner: bootstrap only.
        assert!(check(&s, 101, Access::Delete, &Path::instance(2, 1)).is_err());
        assert!(check(&s, 101, Access::Create, &Path::object(2)).is_err());
    }

    #[test]
    fn one_server_account_means_no_check() {
        let mut s = ObjectStore::new(Registry::core());
        s.set(Path::resource(1, 0, 0), Value::Integer(101));
        assert!(!applies(&s));
    }
}
