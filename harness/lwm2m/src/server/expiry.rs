//! Bookkeeping whose cost must not grow with the number of registered
//! clients: the registration deadlines (LwM2M 1.1 Core §6.2.2: a
//! registration ends `lt` seconds after its Register or last Update) and
//! the registration locations (Core §6.2.1: the server assigns the
//! Location-Path the client then updates and de-registers at).
//!
//! A server carrying tens of thousands of meters sees one datagram after
//! another; scanning every registration per datagram to find the next
//! expiry made each Register cost O(n), so the registration rate fell as the
//! table grew (issue 16 measured 2,094/s at 1,000 registered, 81/s at
//! 11,000). Here the next deadline is the first key of an ordered set:
//! O(log n) to insert, move or remove one, O(1) to peek.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

/// Registration deadlines in time order, each with its endpoint name.
///
/// The server keeps it in step with its registrations (insert on
/// Register, move on Update, remove on De-register or any other end). An
/// entry that no longer matches a registration (the caller moved a
/// deadline without telling) is harmless: the server checks the
/// registration itself before expiring it, so a stale entry costs one
/// early wake-up, never a wrong expiry.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    /// The name is the registration's shared key (no copy of it here).
    by_time: BTreeSet<(Instant, Arc<str>)>,
}

impl Deadlines {
    /// Records that `endpoint` expires at `at`; `None` (a lifetime beyond
    /// the clock's range, see `Registration::expires_at`) never expires and
    /// is not recorded.
    pub(super) fn insert(&mut self, at: Option<Instant>, endpoint: &Arc<str>) {
        if let Some(at) = at {
            self.by_time.insert((at, endpoint.clone()));
        }
    }

    /// Forgets the deadline `at` of `endpoint` (as `insert` was given it).
    pub(super) fn remove(&mut self, at: Option<Instant>, endpoint: &Arc<str>) {
        if let Some(at) = at {
            self.by_time.remove(&(at, endpoint.clone()));
        }
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Takes the earliest entry if it is due at `now` (deadline `<= now`:
    /// the registration is gone at that very instant).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Arc<str>)> {
        if self.next()? <= now {
            self.by_time.pop_first()
        } else {
            None
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_time.len()
    }
}

/// Hands out registration location names: a sequence number in lowercase
/// hex, at least four digits, starting at a seeded random 16-bit offset.
///
/// A sequence never repeats within a server's life, so there is nothing to
/// retry: the old scheme (four random hex digits drawn until one was free)
/// collided long before 65,536 registrations and looped forever at 65,536.
/// Past `ffff` the ids simply grow a digit (`10000`, ...). The first id is
/// the old scheme's first draw (same seed, same location) and the ids stay
/// four digits for a small fleet, so existing captures and vectors read the
/// same. The random start keeps what the old scheme gave: a client still
/// holding a location from an earlier server (a restart between its
/// Register and its Update) seldom lands on another device's registration
/// — its Update gets 4.04 and it registers again (Core §6.2.2). The
/// location is not a secret: under DTLS the server checks who may update
/// it ([`super::Authorizer`]), so it need not be unguessable.
#[derive(Debug)]
pub(super) struct LocationIds {
    next: u64,
}

impl LocationIds {
    /// `start` comes from the seeded generator, so that a test run
    /// replays the same locations for the same seed.
    pub(super) fn new(start: u16) -> Self {
        LocationIds {
            next: u64::from(start),
        }
    }

    /// The next location id (the part after `/rd/`). Counting by one from
    /// below 2^16, it cannot wrap within any server's life.
    pub(super) fn next_id(&mut self) -> String {
        let id = self.next;
        self.next += 1;
        format!("{id:04x}")
    }

    /// The number the next `next_id` will write.
    pub(super) fn peek(&self) -> u64 {
        self.next
    }

    /// The number of a location this scheme wrote (`/rd/0abc` -> 0xabc):
    /// what the server keys its locations by, so that it holds a `u64`
    /// per device rather than a second copy of the string. Anything else
    /// — another path, upper case, a leading zero the scheme never
    /// writes — is `None`: no registration lives there.
    pub(super) fn parse(location: &str) -> Option<u64> {
        let id = location.strip_prefix("/rd/")?;
        let number = u64::from_str_radix(id, 16).ok()?;
        (format!("{number:04x}") == id).then_some(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_due_deadlines_pop_and_in_time_order() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.insert(Some(t0 + Duration::from_secs(20)), &Arc::from("b"));
        d.insert(Some(t0 + Duration::from_secs(10)), &Arc::from("a"));
        d.insert(None, &Arc::from("never"));
        assert_eq!(d.len(), 2);
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(9)), None);
        let (_, first) = d.pop_due(t0 + Duration::from_secs(20)).unwrap();
        let (_, second) = d.pop_due(t0 + Duration::from_secs(20)).unwrap();
        assert_eq!((&*first, &*second), ("a", "b"));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn a_removed_deadline_no_longer_wakes() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.insert(Some(t0), &Arc::from("a"));
        d.remove(Some(t0), &Arc::from("a"));
        assert_eq!(d.next(), None);
    }

    #[test]
    fn location_ids_count_up_from_the_seeded_start_and_grow_past_ffff() {
        let mut ids = LocationIds::new(0x0abc);
        assert_eq!(ids.next_id(), "0abc");
        assert_eq!(ids.next_id(), "0abd");
        let mut ids = LocationIds::new(0xffff);
        assert_eq!(ids.next_id(), "ffff");
        assert_eq!(ids.next_id(), "10000");
    }

    #[test]
    fn a_location_parses_back_to_its_number_only_as_written() {
        assert_eq!(LocationIds::parse("/rd/0abc"), Some(0xabc));
        assert_eq!(LocationIds::parse("/rd/10000"), Some(0x10000));
        assert_eq!(
            LocationIds::parse("/rd/abc"),
            None,
            "never written without the zero"
        );
        assert_eq!(LocationIds::parse("/rd/0ABC"), None);
        assert_eq!(LocationIds::parse("/rd/00abc"), None);
        assert_eq!(LocationIds::parse("/rd/xyz1"), None);
        assert_eq!(LocationIds::parse("/bs/0abc"), None);
        assert_eq!(LocationIds::parse("/rd/"), None);
    }
}
