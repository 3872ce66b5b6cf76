//! The simulated cellular network, as far as the meter sees it: whether the
//! modem is attached, and with which eUICC profile. Attaching takes
//! [`ATTACH_DELAY`]; a profile the lab marked as refused never attaches, and a
//! switch to it falls back to the previous profile after [`ATTACH_TIMEOUT`].
//!
//! Sans-IO like the rest of the meter's logic: the caller passes the time and
//! whether a profile can attach, and acts on the returned [`NetEvent`].
//! Registration status follows 3GPP TS 27.007 §10.1.22 (`+CEREG` stat: 0 not
//! registered and not searching, 1 registered home network, 2 searching).

use std::time::{Duration, Instant};

/// Time from enabling a working profile to being attached.
pub const ATTACH_DELAY: Duration = Duration::from_secs(1);
/// A profile that has not attached after this long is given up (a switch falls back).
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(8);

/// `+CEREG` stat values used.
pub mod stat {
    pub const NOT_REGISTERED: u8 = 0;
    pub const REGISTERED_HOME: u8 = 1;
    pub const SEARCHING: u8 = 2;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetState {
    /// Radio off, or detached for a switch that has not begun attaching.
    Detached,
    Attaching {
        profile: usize,
        ready_at: Instant,
        give_up: Instant,
        /// The profile to go back to if this one does not attach (a switch).
        fallback: Option<usize>,
    },
    Attached {
        profile: usize,
    },
}

/// What changed, for the meter to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEvent {
    Attached {
        profile: usize,
    },
    /// The switch target did not attach in time; `back_to` is being attached instead.
    SwitchFailed {
        failed: usize,
        back_to: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Network {
    state: NetState,
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}

impl Network {
    pub fn new() -> Self {
        Network {
            state: NetState::Detached,
        }
    }

    pub fn state(&self) -> &NetState {
        &self.state
    }

    /// The attached profile, if any.
    pub fn attached(&self) -> Option<usize> {
        match self.state {
            NetState::Attached { profile } => Some(profile),
            _ => None,
        }
    }

    /// Starts attaching `profile`; with `fallback`, gives it up for that one after the timeout.
    pub fn attach(&mut self, now: Instant, profile: usize, fallback: Option<usize>) {
        self.state = NetState::Attaching {
            profile,
            ready_at: now + ATTACH_DELAY,
            give_up: now + ATTACH_TIMEOUT,
            fallback,
        };
    }

    /// Attached at once (power-on with a working profile: the network remembers the device).
    pub fn attach_now(&mut self, profile: usize) {
        self.state = NetState::Attached { profile };
    }

    pub fn detach(&mut self) {
        self.state = NetState::Detached;
    }

    /// Advances to `now`. `can_attach` says whether the network accepts a profile.
    pub fn poll(&mut self, now: Instant, can_attach: impl Fn(usize) -> bool) -> Option<NetEvent> {
        let NetState::Attaching {
            profile,
            ready_at,
            give_up,
            fallback,
        } = self.state
        else {
            return None;
        };
        if now >= ready_at && can_attach(profile) {
            self.state = NetState::Attached { profile };
            return Some(NetEvent::Attached { profile });
        }
        if now >= give_up {
            match fallback {
                Some(back_to) => {
                    self.attach(now, back_to, None);
                    return Some(NetEvent::SwitchFailed {
                        failed: profile,
                        back_to,
                    });
                }
                // Nothing to fall back to: keep searching, as a modem does.
                None => self.attach(now, profile, None),
            }
        }
        None
    }

    /// When [`Network::poll`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            NetState::Attaching {
                ready_at, give_up, ..
            } => Some(ready_at.min(give_up)),
            _ => None,
        }
    }

    /// `+CEREG` stat.
    pub fn cereg_stat(&self) -> u8 {
        match self.state {
            NetState::Detached => stat::NOT_REGISTERED,
            NetState::Attaching { .. } => stat::SEARCHING,
            NetState::Attached { .. } => stat::REGISTERED_HOME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_profile_attaches_after_the_delay() {
        let t0 = Instant::now();
        let mut n = Network::new();
        assert_eq!(n.cereg_stat(), stat::NOT_REGISTERED);
        n.attach(t0, 1, Some(0));
        assert_eq!(n.cereg_stat(), stat::SEARCHING);
        assert_eq!(n.poll(t0, |_| true), None);
        assert_eq!(n.poll_timeout(), Some(t0 + ATTACH_DELAY));
        assert_eq!(
            n.poll(t0 + ATTACH_DELAY, |_| true),
            Some(NetEvent::Attached { profile: 1 })
        );
        assert_eq!(n.attached(), Some(1));
        assert_eq!(n.cereg_stat(), stat::REGISTERED_HOME);
    }

    #[test]
    fn a_refused_profile_falls_back_after_the_timeout_and_the_fallback_attaches() {
        let t0 = Instant::now();
        let mut n = Network::new();
        n.attach(t0, 1, Some(0));
        let refuses_1 = |p: usize| p != 1;
        assert_eq!(n.poll(t0 + ATTACH_DELAY, refuses_1), None);
        assert_eq!(
            n.poll(t0 + ATTACH_TIMEOUT - Duration::from_millis(1), refuses_1),
            None
        );
        let t1 = t0 + ATTACH_TIMEOUT;
        assert_eq!(
            n.poll(t1, refuses_1),
            Some(NetEvent::SwitchFailed {
                failed: 1,
                back_to: 0
            })
        );
        assert_eq!(n.cereg_stat(), stat::SEARCHING);
        assert_eq!(
            n.poll(t1 + ATTACH_DELAY, refuses_1),
            Some(NetEvent::Attached { profile: 0 })
        );
    }

    #[test]
    fn with_nothing_to_fall_back_to_it_keeps_searching() {
        let t0 = Instant::now();
        let mut n = Network::new();
        n.attach(t0, 0, None);
        for s in 1..30 {
            assert_eq!(n.poll(t0 + Duration::from_secs(s), |_| false), None);
            assert_eq!(n.cereg_stat(), stat::SEARCHING);
        }
    }
}
