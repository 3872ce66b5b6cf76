//! Observations the client serves (LwM2M 1.1 Core §6.4, RFC 7641 §4) and the
//! notification attributes that pace them (Core §5.1.2: pmin, pmax, gt, lt, st).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::format::{ContentFormat, Record};
use crate::path::Path;
use crate::server::Attributes;

/// Every CON_EVERY-th notification of an observation is Confirmable, the
/// rest Non-confirmable: NON keeps a metering link cheap, and the periodic
/// CON is RFC 7641 §4.5's check that the observer is still there (a CON
/// that is never acknowledged, or a Reset, ends the observation).
pub const CON_EVERY: u32 = 8;

/// The longest an observation goes without a Confirmable notification:
/// "A server that transmits notifications mostly in non-confirmable
/// messages MUST send a notification in a confirmable message instead of a
/// non-confirmable message at least every 24 hours" (RFC 7641 §4.5). A
/// meter notifying once a day (pmax=86400) would otherwise send a CON only
/// every [`CON_EVERY`] days.
pub const CON_AT_LEAST_EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct Observation {
    pub peer: SocketAddr,
    pub token: Vec<u8>,
    pub path: Path,
    pub format: ContentFormat,
    /// When the last notification (or the first response) went out.
    pub last_sent: Instant,
    /// What that notification carried; gt/lt/st compare against it.
    pub last_records: Vec<Record>,
    /// A change that met the conditions is waiting for pmin to pass.
    pub pending: bool,
    /// Notifications sent so far (the first response not counted).
    pub sent: u32,
    /// When the observer last confirmed it is there: the Observe request,
    /// or the last Confirmable notification sent (see [`CON_AT_LEAST_EVERY`]).
    pub last_con: Instant,
    /// For an Observe-Composite (Core §6.4.3, `composite.rs`): the paths it
    /// covers (`path` is then `/`); `None` for an Observe of `path`.
    pub composite: Option<Vec<Path>>,
}

impl Observation {
    /// Whether a change at `changed` concerns this observation.
    pub fn covers(&self, changed: &Path) -> bool {
        match &self.composite {
            Some(paths) => paths
                .iter()
                .any(|p| p.contains(changed) || changed.contains(p)),
            None => self.path.contains(changed) || changed.contains(&self.path),
        }
    }
}

impl Observation {
    /// Whether the next notification goes Confirmable: every
    /// [`CON_EVERY`]-th, and any due [`CON_AT_LEAST_EVERY`] after the last.
    pub fn next_is_confirmable(&self, now: Instant) -> bool {
        self.sent % CON_EVERY == CON_EVERY - 1 || now >= self.last_con + CON_AT_LEAST_EVERY
    }
}

/// The attributes in force at `path`: set at the object, overridden by the
/// instance, then the resource, then the resource instance (Core §5.1.2:
/// attributes at a lower level take precedence).
pub fn effective(attributes: &BTreeMap<Path, Attributes>, path: &Path) -> Attributes {
    let mut out = Attributes::default();
    for depth in 1..=path.depth() {
        let Some(prefix) = Path::from_ids(&path.ids()[..depth]) else {
            continue;
        };
        if let Some(a) = attributes.get(&prefix) {
            out.pmin = a.pmin.or(out.pmin);
            out.pmax = a.pmax.or(out.pmax);
            out.gt = a.gt.or(out.gt);
            out.lt = a.lt.or(out.lt);
            out.st = a.st.or(out.st);
            out.epmin = a.epmin.or(out.epmin);
            out.epmax = a.epmax.or(out.epmax);
        }
    }
    out
}

/// pmin as a duration (absent = 0).
pub fn pmin(a: &Attributes) -> Duration {
    Duration::from_secs(u64::from(a.pmin.unwrap_or(0)))
}

/// pmax as a duration, when it applies: absent, 0 or below pmin means no
/// periodic notification (Core §5.1.2: pmax is ignored if smaller than pmin).
pub fn pmax(a: &Attributes) -> Option<Duration> {
    let pmax = a.pmax.filter(|p| *p > 0 && *p >= a.pmin.unwrap_or(0))?;
    Some(Duration::from_secs(u64::from(pmax)))
}

/// Whether a numeric change from `old` (last notified) to `new` calls for a
/// notification under gt/lt/st (Core §5.1.2.1): crossing gt or lt in either
/// direction, or moving by at least st. With none of them set, any change does.
pub fn numeric_condition(a: &Attributes, old: f64, new: f64) -> bool {
    if a.gt.is_none() && a.lt.is_none() && a.st.is_none() {
        return old != new;
    }
    let crosses = |t: f64| (old <= t && new > t) || (old > t && new <= t);
    let lt_crosses = |t: f64| (old >= t && new < t) || (old < t && new >= t);
    a.gt.is_some_and(crosses)
        || a.lt.is_some_and(lt_crosses)
        || a.st.is_some_and(|st| (new - old).abs() >= st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_levels_override_higher_ones() {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            Path::object(3),
            Attributes {
                pmin: Some(10),
                pmax: Some(60),
                ..Default::default()
            },
        );
        attrs.insert(
            Path::resource(3, 0, 9),
            Attributes {
                pmin: Some(1),
                ..Default::default()
            },
        );
        let e = effective(&attrs, &Path::resource(3, 0, 9));
        assert_eq!((e.pmin, e.pmax), (Some(1), Some(60)));
        let e = effective(&attrs, &Path::resource(3, 0, 10));
        assert_eq!((e.pmin, e.pmax), (Some(10), Some(60)));
    }

    #[test]
    fn thresholds_and_steps() {
        let a = Attributes {
            gt: Some(50.0),
            ..Default::default()
        };
        assert!(numeric_condition(&a, 40.0, 51.0));
        assert!(numeric_condition(&a, 51.0, 40.0));
        assert!(!numeric_condition(&a, 40.0, 45.0));
        let a = Attributes {
            st: Some(5.0),
            ..Default::default()
        };
        assert!(!numeric_condition(&a, 10.0, 14.0));
        assert!(numeric_condition(&a, 10.0, 15.0));
        assert!(numeric_condition(&Attributes::default(), 1.0, 2.0));
        assert_eq!(
            pmax(&Attributes {
                pmin: Some(10),
                pmax: Some(5),
                ..Default::default()
            }),
            None
        );
    }
}
