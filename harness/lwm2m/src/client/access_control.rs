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
//! The check (Core §7.3.2, "Authorization", and §7.3.2.1 "Obtaining Access
//! Right"):
//! - An operation on an object instance or a resource needs the Access
//!   Control Object instance whose Object ID (/2/x/0) and Object Instance ID
//!   (/2/x/1) name the instance; none: 4.01 Unauthorized. Its rights for the
//!   server are the ACL resource instance with the server's Short Server ID
//!   (/2/x/2/ssid); else, for the Access Control Owner (/2/x/3), every
//!   right; else the default ACL instance /2/x/2/0; else none.
//! - The minimum right (§7.3.2's table): R for Read, Observe and
//!   Write-Attributes, W for Write, E for Execute, D for Delete, none ("-")
//!   for Discover, which is therefore never refused.
//! - Create needs the Create bit of the instance for the object itself,
//!   Object Instance ID 65535 (MAX_ID) (§7.3.1.2.1).
//! - An Access Control Object instance is managed (written, deleted) only by
//!   its owner (E.3 resource 3); MAX_ID as owner: by bootstrap only.
//! - On an Object (§7.3.2.4): Read and Observe answer with "all the Object
//!   Instances for which the LwM2M Server has Read access right" and leave
//!   the others out (see [`Client::hide_unreadable`]); Discover and
//!   Write-Attributes need no right; Write, Execute and Delete are 4.05
//!   Method Not Allowed whatever the rights (the operation refuses them).
//! - A notification goes out only while the observer's server may Read what
//!   it carries (§7.3.2.5, see [`Client::may_notify`]).
//! - The composite operations (Core §6.3.8, §6.3.9, §6.4.3; `composite.rs`):
//!   Read-Composite and Observe-Composite leave out, best effort, what the
//!   server may not read ([`Client::hide_unreadable`]); Write-Composite,
//!   atomic, needs the W right on every record's instance
//!   ([`Client::authorize_all`]).
//! - A Create by a server makes the Access Control Object instance of the
//!   new instance, with that server as owner and full rights (Core §6.3.6
//!   Create and §7.3.1.2.2, see [`Client::grant_creator`]); a Delete removes
//!   the deleted instance's entry (§7.3.1.2.2).

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

/// Whether server `ssid` has the `access` right on the instance
/// `object`/`instance` (Core §7.3.2.1); object 2's own entries are judged
/// by [`check`] instead.
fn may(store: &ObjectStore, ssid: u16, access: Access, object: u16, instance: u16) -> bool {
    entry_for(store, object, instance)
        .is_some_and(|aco| rights(store, aco, ssid) & access as i64 != 0)
}

/// `Ok` when server `ssid` may do `access` on `path`; the reason for a
/// 4.01 Unauthorized otherwise. Call only when [`applies`].
///
/// An object-level Read (Observe, Write-Attributes) is allowed: Core
/// §7.3.2.4 answers it with the instances the server may read, which
/// [`Client::hide_unreadable`] picks; Write, Execute and Delete of an
/// object pass here and are refused 4.05 by the operation itself, as
/// §7.3.2.4 says, whatever the rights.
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
    match path.instance_id() {
        None => Ok(()),
        Some(i) if may(store, ssid, access, object, i) => Ok(()),
        Some(i) => denied(Path::instance(object, i).to_string()),
    }
}

/// Whether server `ssid` may read the value at `path` (a resource or
/// resource instance): object 2's entries anyone may; any other needs the
/// Read right on its instance (Core §7.3.2.1).
pub fn may_read(store: &ObjectStore, ssid: u16, path: &Path) -> bool {
    match (path.object_id(), path.instance_id()) {
        (Some(ACCESS_CONTROL_OBJECT), _) => true,
        (Some(object), Some(instance)) => may(store, ssid, Access::Read, object, instance),
        _ => true,
    }
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
    /// The Short Server ID of the LwM2M Server at `peer`: the account whose
    /// URI resolves to the request's source. A request from no account's
    /// address has no rights at all (4.01).
    pub(super) fn server_of(&self, peer: std::net::SocketAddr) -> Result<u16, (u16, String)> {
        account::accounts(&self.store)
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
            })
    }

    /// Refuses (4.01 Unauthorized, Core §6.3 and §7.3) a request whose
    /// server lacks the right for it, while Access Control applies. The
    /// right asked for follows §7.3.2's table; Discover asks for none.
    pub(super) fn authorize(
        &self,
        peer: std::net::SocketAddr,
        path: &Path,
        method: coap_lite::RequestType,
        message: &coap_lite::Packet,
    ) -> Result<(), (u16, String)> {
        use crate::coap::options;
        use crate::format::ContentFormat;
        use coap_lite::RequestType as M;
        if !applies(&self.store) {
            return Ok(());
        }
        let has_body = options::content_format(message).is_some();
        let discover =
            method == M::Get && options::accept(message) == Some(ContentFormat::LinkFormat.code());
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
            // GET (Read, Observe), empty PUT (Write-Attributes).
            _ => Access::Read,
        };
        let ssid = self.server_of(peer)?;
        if discover {
            // §7.3.2: Discover's minimum access right is "-", and on an
            // Object "no access right is needed" (§7.3.2.4).
            return Ok(());
        }
        check(&self.store, ssid, access, path).map_err(|e| (401, e))
    }

    /// Refuses (4.01 Unauthorized) the whole request unless `peer`'s
    /// server has `access` on every one of `paths`, while Access Control
    /// applies: Write-Composite "is atomic and cannot have partial
    /// success", so "before processing Write-Composite, the client MUST
    /// ensure ... that the Server has write access to those Objects and
    /// Resources" (Core §6.3.9). The refusal names the first path refused.
    pub(super) fn authorize_all<'p>(
        &self,
        peer: std::net::SocketAddr,
        access: Access,
        paths: impl IntoIterator<Item = &'p Path>,
    ) -> Result<(), (u16, String)> {
        if !applies(&self.store) {
            return Ok(());
        }
        let ssid = self.server_of(peer)?;
        paths
            .into_iter()
            .try_for_each(|p| check(&self.store, ssid, access, p))
            .map_err(|e| (401, e))
    }

    /// `records` without the values `peer`'s server may not read, while
    /// Access Control applies: a Read or Observe of an Object answers with
    /// "all the Object Instances for which the LwM2M Server has Read access
    /// right" (Core §7.3.2.4), the others left out rather than the request
    /// refused. A peer that is no server's sees nothing.
    pub(super) fn hide_unreadable(
        &self,
        peer: std::net::SocketAddr,
        records: Vec<crate::format::Record>,
    ) -> Vec<crate::format::Record> {
        if !applies(&self.store) {
            return records;
        }
        let Ok(ssid) = self.server_of(peer) else {
            return Vec::new();
        };
        records
            .into_iter()
            .filter(|r| may_read(&self.store, ssid, &r.path))
            .collect()
    }

    /// Whether a notification of `obs` may go out: "the LwM2M Client MUST
    /// check if the LwM2M Server is authorized for the Read operation. If
    /// the LwM2M Server is not authorized, the Client MUST NOT send the
    /// Notify operation" (Core §7.3.2.5). An Object's observation always
    /// may: it carries only the instances still readable
    /// ([`Client::hide_unreadable`]).
    /// An Observe-Composite's notification carries what the observer may
    /// read of it and goes out while that is something
    /// ([`Client::may_notify_composite`]).
    pub(super) fn may_notify(&self, obs: &super::observe::Observation) -> bool {
        if !applies(&self.store) {
            return true;
        }
        if let Some(paths) = &obs.composite {
            return self.may_notify_composite(obs.peer, paths);
        }
        if obs.path.depth() < 2 {
            return true;
        }
        self.server_of(obs.peer)
            .is_ok_and(|ssid| may_read(&self.store, ssid, &obs.path))
    }

    /// After `peer`'s server created `created`: its Access Control Object
    /// instance, with "Access Control Owner MUST be the LwM2M Server" and
    /// "The LwM2M Server MUST have full access rights" (Core §6.3.6 Create;
    /// §7.3.1.2.2 gives the values: Object ID, the new Object Instance ID,
    /// the creator's Short Server ID as owner), made only "when the LwM2M
    /// Client has more than one LwM2M Server Account". The full rights are
    /// written as the creator's own ACL instance, R|W|E|D (E.3 resource 2;
    /// Create has no meaning on an instance), so a Read of the entry shows
    /// them. `None` when no entry is due (one account, object 2 itself, a
    /// client without object 2); else the entry's path.
    pub(super) fn grant_creator(
        &mut self,
        peer: std::net::SocketAddr,
        created: Path,
    ) -> Option<Path> {
        let (object, instance) = (created.object_id()?, created.instance_id()?);
        if !applies(&self.store)
            || object == ACCESS_CONTROL_OBJECT
            || self.config.registry.object(ACCESS_CONTROL_OBJECT).is_none()
        {
            return None;
        }
        let ssid = self.server_of(peer).ok()?;
        if let Some(stale) = entry_for(&self.store, object, instance) {
            // An entry left for an earlier instance of that id is not this one's.
            self.store.delete_instance(ACCESS_CONTROL_OBJECT, stale);
        }
        let taken = account::instances_of(&self.store, ACCESS_CONTROL_OBJECT);
        let aco = (0..MAX_ID).find(|i| !taken.contains(i))?;
        let full = (Access::Read as i64)
            | (Access::Write as i64)
            | (Access::Execute as i64)
            | (Access::Delete as i64);
        let at = |r| Path::resource(ACCESS_CONTROL_OBJECT, aco, r);
        self.store.create_instance(ACCESS_CONTROL_OBJECT, aco);
        self.store
            .set(at(OBJECT_ID), Value::Integer(i64::from(object)));
        self.store
            .set(at(OBJECT_INSTANCE_ID), Value::Integer(i64::from(instance)));
        self.store.set(
            Path::resource_instance(ACCESS_CONTROL_OBJECT, aco, ACL, ssid),
            Value::Integer(full),
        );
        self.store.set(at(OWNER), Value::Integer(i64::from(ssid)));
        tracing::debug!(%created, entry = %Path::instance(ACCESS_CONTROL_OBJECT, aco), ssid, "Access Control entry made for a created instance");
        Some(Path::instance(ACCESS_CONTROL_OBJECT, aco))
    }

    /// After `deleted` (an instance of another object than 2) went: its
    /// Access Control Object instance goes too — "when an Object Instance
    /// is removed via Delete operation performed by the LwM2M Server which
    /// is the Access Control Owner, the associated Access Control Object
    /// Instance MUST be removed" (Core §7.3.1.2.2). Only the owner may
    /// delete unless it granted D to others; an entry left behind would hand
    /// its rights to a later instance of that id, so it goes whoever
    /// deleted. Returns the removed entry's path.
    pub(super) fn drop_entry_of(&mut self, deleted: Path) -> Option<Path> {
        let (object, instance) = (deleted.object_id()?, deleted.instance_id()?);
        if object == ACCESS_CONTROL_OBJECT {
            return None;
        }
        let aco = entry_for(&self.store, object, instance)?;
        self.store.delete_instance(ACCESS_CONTROL_OBJECT, aco);
        Some(Path::instance(ACCESS_CONTROL_OBJECT, aco))
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
        // Object-level read is never refused: the answer leaves out what
        // the server may not read (Core §7.3.2.4), see below.
        assert_eq!(check(&s, 102, Access::Read, &Path::object(3)), Ok(()));
        assert_eq!(check(&s, 102, Access::Read, &Path::object(5)), Ok(()));
    }

    #[test]
    fn only_the_instances_a_server_may_read_are_readable_by_it() {
        // Core §7.3.2.4: "retrieve all the Object Instances for which the
        // LwM2M Server has Read access right".
        let s = two_server_store();
        assert!(may_read(&s, 102, &Path::resource(3, 0, 0)));
        assert!(may_read(&s, 101, &Path::resource(3, 0, 0)));
        // /5/0 has no entry: no server may read it.
        assert!(!may_read(&s, 101, &Path::resource(5, 0, 3)));
        // Object 2's entries anyone may read.
        assert!(may_read(&s, 102, &Path::resource(2, 1, 0)));
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
