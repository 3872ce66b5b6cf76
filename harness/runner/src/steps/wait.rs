//! Waits that come from the device and the rig, not from the case: a step
//! without `within` whose kind asks for one of these may outlast the case's
//! own `timeout`, and the step log says which wait it took and why.

use std::time::Duration;

use lwm2m::Path;

use crate::session::Session;
use crate::steps::context::{CaseContext, Restart};

/// Time after the registration's expiry for the server's Expired event to
/// reach an `await: updated` (the server expires registrations on its own
/// timer; this only keeps the wait from racing it).
const EXPIRY_MARGIN: Duration = Duration::from_secs(2);

/// How long a step waits, and the reason for the step log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub limit: Duration,
    pub why: String,
}

impl Wait {
    /// Lets the longest of `waits` (the members' devices and rigs) stretch
    /// a step's time: a deadline and its remaining span move out to it, and
    /// the step log says which wait was taken and why.
    pub fn stretch(
        waits: impl Iterator<Item = Wait>,
        deadline: &mut std::time::Instant,
        remaining: &mut Duration,
        log: &mut String,
    ) {
        use std::fmt::Write as _;
        if let Some(wait) = waits.max_by_key(|w| w.limit) {
            let _ = writeln!(log, "  waiting up to {:?}, {}", wait.limit, wait.why);
            if wait.limit > *remaining {
                *deadline += wait.limit - *remaining;
                *remaining = wait.limit;
            }
        }
    }
}

/// What the device's current registration has left to live, plus
/// [`EXPIRY_MARGIN`]: an Update is due before the registration expires
/// (LwM2M 1.1 Core §6.2.2), whatever lifetime the device chose.
pub fn lifetime_left(rig: &Session) -> Option<Wait> {
    let reg = rig.server.registration(&rig.endpoint)?;
    let left = reg
        .expires_at()
        .map(|at| at.saturating_duration_since(std::time::Instant::now()))
        .unwrap_or(reg.lifetime);
    Some(Wait {
        limit: left + EXPIRY_MARGIN,
        why: format!(
            "as the device's registration lifetime ({}s) asks",
            reg.lifetime.as_secs()
        ),
    })
}

/// The rig's `device.reboot_within`, or after Execute Update its
/// `firmware.update_within`.
pub fn restart(rig: &Session, ctx: &CaseContext) -> Wait {
    let file = &rig.rig;
    let reboot = || Wait {
        limit: file.device.reboot_within,
        why: format!("the rig's device.reboot_within ({})", file.name),
    };
    match ctx.restart {
        Some(Restart::FirmwareUpdate) => {
            match file.firmware.as_ref().and_then(|f| f.update_within) {
                Some(limit) => Wait {
                    limit,
                    why: format!("the rig's firmware.update_within ({})", file.name),
                },
                None => reboot(),
            }
        }
        _ => reboot(),
    }
}

/// The rig's `firmware.download_within`.
pub fn download(rig: &Session) -> Option<Wait> {
    rig.rig.firmware.as_ref().map(|f| Wait {
        limit: f.download_within,
        why: format!("the rig's firmware.download_within ({})", rig.rig.name),
    })
}

/// Whether `path` is a download's progress: State or Update Result of
/// object 5 (LwM2M 1.1 Core §E.6), Update State or Update Result of
/// object 9 (Software Management).
pub fn is_delivery_status(path: &Path) -> bool {
    use lwm2m::firmware::{resource, OBJECT_ID};
    match (path.object_id(), path.resource_id()) {
        (Some(OBJECT_ID), Some(r)) => r == resource::STATE || r == resource::UPDATE_RESULT,
        (Some(9), Some(r)) => r == 7 || r == 9,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait(secs: u64, why: &str) -> Wait {
        Wait {
            limit: Duration::from_secs(secs),
            why: why.into(),
        }
    }

    #[test]
    fn the_longest_wait_moves_the_deadline_out_and_is_logged() {
        let start = Instant::now();
        let (mut deadline, mut remaining) =
            (start + Duration::from_secs(5), Duration::from_secs(5));
        let mut log = String::new();
        let waits = [
            wait(12, "as meter-1's lifetime asks"),
            wait(30, "as meter-2's reboot asks"),
        ];
        Wait::stretch(waits.into_iter(), &mut deadline, &mut remaining, &mut log);
        assert_eq!(remaining, Duration::from_secs(30));
        assert_eq!(deadline, start + Duration::from_secs(30));
        assert_eq!(log, "  waiting up to 30s, as meter-2's reboot asks\n");
    }

    #[test]
    fn a_shorter_wait_never_shortens_the_step_and_none_leaves_it_alone() {
        let start = Instant::now();
        let (mut deadline, mut remaining) =
            (start + Duration::from_secs(60), Duration::from_secs(60));
        let mut log = String::new();
        Wait::stretch(
            [wait(10, "short")].into_iter(),
            &mut deadline,
            &mut remaining,
            &mut log,
        );
        assert_eq!(
            (deadline, remaining),
            (start + Duration::from_secs(60), Duration::from_secs(60))
        );
        assert_eq!(log, "  waiting up to 10s, short\n");
        Wait::stretch(std::iter::empty(), &mut deadline, &mut remaining, &mut log);
        assert_eq!(log.lines().count(), 1);
    }
}
