//! The meter asleep: PSM as the modem was told (`AT+CPSMS`, modem/psm.rs)
//! acted out on the radio, which is what makes the LwM2M client a
//! queue-mode client (LwM2M 1.1 Core §6.5; it registers with `Q`).
//!
//! After each exchange — a datagram sent or received — the radio stays
//! reachable for the Active Time (T3324); then it sleeps. A datagram that
//! arrives while it sleeps is dropped, as a real radio in PSM never hears
//! it (the network does not page a UE in PSM, TS 23.682 §4.5.4). Sending
//! wakes it at once (mobile-originated data leaves PSM), so the client's
//! own Updates and retransmissions go out as they would anyway. At the
//! latest when the periodic TAU (T3412) is due the device wakes and the
//! client sends a registration Update, which is when a queue-mode server
//! delivers what it held. Both timers restart from each exchange, as
//! T3324 and T3412 both start when the UE returns to idle (TS 24.301
//! §5.3.11 / §5.3.5).
//!
//! The timers are the ones the modem was given, unscaled: the rig gives
//! short ones (T3412 "01100101" = 10 s, T3324 "00000001" = 2 s) so that
//! cases stay fast, without skipping any of what is simulated.
//!
//! eDRX is accepted and reported by the modem but does not change
//! reachability here: a network buffers downlink data for a UE in eDRX and
//! delivers it at the next paging occasion, which on loopback would only
//! delay datagrams.
//!
//! Each change is logged and announced as a URC (`+LWM2M: sleeping after
//! <s> s awake`, `+LWM2M: awake`), so a transcript shows the device's side.

use std::time::{Duration, Instant};

use super::Meter;
use crate::modem::psm::Timer;

/// The radio as PSM makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum RadioSleep {
    /// PSM not in use: always reachable.
    #[default]
    Off,
    /// Reachable until `until`; awake since `since`.
    Awake { since: Instant, until: Instant },
    /// In PSM since `since`.
    Asleep { since: Instant },
}

/// What the meter keeps to act out PSM.
#[derive(Debug, Default)]
pub(super) struct Sleep {
    pub radio: RadioSleep,
    /// When the periodic TAU is due: the device wakes and updates.
    pub next_tau: Option<Instant>,
    /// Datagrams the live sessions have sent so far, to notice new ones
    /// (a session that ends changes the sum too: one spurious exchange,
    /// which only keeps the radio awake a little longer).
    seen_sent: u64,
    /// Datagrams lost to sleep since boot.
    pub dropped: u64,
}

fn running(t: Timer) -> Option<Duration> {
    match t {
        Timer::Running(d) => Some(d),
        Timer::Deactivated => None,
    }
}

impl Meter {
    /// Whether the client registers in queue mode: PSM requested with a
    /// running Active Time (the device will sleep between exchanges).
    pub(super) fn queue_mode(&self) -> bool {
        self.modem.power_saving.sleeps()
    }

    /// A datagram arrived: `false` when the radio sleeps and never hears it.
    pub(super) fn radio_hears(&mut self, now: Instant, bytes: usize) -> bool {
        self.sleep_timers(now);
        if let RadioSleep::Asleep { since } = self.sleep.radio {
            self.sleep.dropped += 1;
            tracing::info!(bytes, asleep_for = ?now.saturating_duration_since(since), dropped = self.sleep.dropped, "datagram arrived while the radio sleeps (PSM); lost");
            return false;
        }
        self.exchanged(now);
        true
    }

    /// After the sessions sent what they had: sending wakes the radio and
    /// restarts its timers.
    pub(super) fn sleep_after_pump(&mut self, now: Instant) {
        let sent: u64 = self
            .active
            .iter()
            .chain(self.retiring.iter().map(|(s, _)| s))
            .map(crate::session::Session::sent)
            .sum();
        if sent != self.sleep.seen_sent {
            self.sleep.seen_sent = sent;
            self.exchanged(now);
        }
    }

    /// An exchange at `now`: awake for T3324 from here, TAU due T3412 from here.
    fn exchanged(&mut self, now: Instant) {
        let ps = self.modem.power_saving;
        let Some(active) = ps.sleeps().then(|| running(ps.active_time())).flatten() else {
            self.sleep.radio = RadioSleep::Off;
            self.sleep.next_tau = None;
            return;
        };
        let since = match self.sleep.radio {
            RadioSleep::Awake { since, .. } => since,
            RadioSleep::Asleep { .. } | RadioSleep::Off => {
                if matches!(self.sleep.radio, RadioSleep::Asleep { .. }) {
                    self.urc("+LWM2M: awake");
                }
                now
            }
        };
        self.sleep.radio = RadioSleep::Awake {
            since,
            until: now + active,
        };
        self.sleep.next_tau = running(ps.periodic_tau()).map(|t| now + t);
    }

    /// Falls asleep when the Active Time has passed; wakes and updates
    /// when the periodic TAU is due.
    pub(super) fn sleep_timers(&mut self, now: Instant) {
        if !self.modem.power_saving.sleeps() {
            if self.sleep.radio != RadioSleep::Off {
                tracing::info!("PSM off: the radio stays reachable");
                self.sleep.radio = RadioSleep::Off;
                self.sleep.next_tau = None;
            }
            return;
        }
        if let RadioSleep::Awake { since, until } = self.sleep.radio {
            if until <= now {
                let awake = until.saturating_duration_since(since);
                tracing::info!(awake = ?awake, "Active Time (T3324) passed; the radio sleeps (PSM)");
                self.sleep.radio = RadioSleep::Asleep { since: until };
                self.urc(&format!(
                    "+LWM2M: sleeping after {:.1} s awake",
                    awake.as_secs_f64()
                ));
            }
        }
        if let (RadioSleep::Asleep { since }, Some(tau)) = (self.sleep.radio, self.sleep.next_tau) {
            if tau <= now {
                tracing::info!(slept = ?now.saturating_duration_since(since), "periodic TAU (T3412) due; the device wakes and updates");
                self.exchanged(now);
                if let Some(s) = self.active.as_mut() {
                    s.client().trigger_update(now);
                }
            }
        }
    }

    /// The next instant the sleep model must act.
    pub(super) fn sleep_deadline(&self) -> Option<Instant> {
        match self.sleep.radio {
            RadioSleep::Off => None,
            RadioSleep::Awake { until, .. } => Some(until),
            RadioSleep::Asleep { .. } => self.sleep.next_tau,
        }
    }
}
