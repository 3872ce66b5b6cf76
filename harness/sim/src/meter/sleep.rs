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
//! eDRX (`AT+CEDRXS`, with PSM off) changes reachability too. After each
//! exchange the radio stays connected for the network's RRC inactivity
//! time ([`EDRX_INACTIVITY`]); then it is idle, and listens only in the
//! Paging Time Window at the start of each eDRX cycle (TS 24.008
//! §10.5.5.32 values, modem/psm.rs; TS 23.682 §4.5.13). A datagram that
//! arrives between windows is not heard: the network holds it (the S-GW
//! buffers downlink data for a UE it cannot page yet, TS 23.401 §5.3.4.3,
//! up to [`EDRX_HELD_MAX`] datagrams, the oldest lost beyond) and delivers
//! it when the next window opens, where the device answers. So a request
//! the server sends in the sleep window is answered in the next paging
//! window, its CoAP retransmissions held with it (the client answers a
//! duplicate from its cache). Simplifications: the window opens at the
//! start of each cycle counted from idle entry, not at the paging
//! hyperframe TS 36.304 §7.3 derives from the UE identity, and the
//! network grants the shortest window ([`crate::modem::psm::NETWORK_PTW`]).
//! PSM, when on, governs instead: a device in PSM is not paged at all.
//! Changes are announced as URCs (`+LWM2M: edrx sleeping`,
//! `+LWM2M: paging window`).
//!
//! Each change is logged and announced as a URC (`+LWM2M: sleeping after
//! <s> s awake`, `+LWM2M: awake`), so a transcript shows the device's side.

use std::collections::VecDeque;
use std::net::SocketAddr;
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
    /// eDRX: when the radio went (or goes) idle after its last exchange;
    /// paging cycles count from here. `None` while eDRX is off.
    edrx_idle_from: Option<Instant>,
    /// eDRX: whether the radio listened when last looked at (for the URCs).
    edrx_listening: bool,
    /// eDRX: downlink the network holds until the next paging window.
    held: VecDeque<Held>,
}

/// A datagram the network holds for a device between paging windows.
#[derive(Debug)]
struct Held {
    session: u64,
    peer: SocketAddr,
    data: Vec<u8>,
}

/// How long the radio stays connected after an exchange before it goes
/// idle and eDRX applies: the network's RRC inactivity timer. Operators
/// set it (commonly 10–20 s); the virtual network uses 2 s so that cases
/// stay fast, as the rig's short PSM timers do.
pub(super) const EDRX_INACTIVITY: Duration = Duration::from_secs(2);

/// Datagrams the network holds for one device between paging windows;
/// beyond, the oldest is lost (S-GW buffering is finite).
pub(super) const EDRX_HELD_MAX: usize = 16;

/// Where `now` falls in an eDRX schedule (`cycle`, window `ptw`) whose
/// idle period began at `idle`: `Ok(until)` listening until `until` (still
/// connected, or in a paging window), `Err(next)` asleep until the window
/// that opens at `next`.
pub(super) fn edrx_phase(
    idle: Instant,
    cycle: Duration,
    ptw: Duration,
    now: Instant,
) -> Result<Instant, Instant> {
    if now < idle {
        return Ok(idle + ptw);
    }
    let since = now - idle;
    let cycle_ns = cycle.as_nanos().max(1);
    let into = Duration::from_nanos((since.as_nanos() % cycle_ns) as u64);
    let start = now - into;
    if into < ptw {
        Ok(start + ptw)
    } else {
        Err(start + cycle)
    }
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

    /// A datagram arrived: `false` when the radio sleeps and never hears it
    /// (PSM: lost; eDRX between paging windows: held by the network for
    /// the next window).
    pub(super) fn radio_hears(
        &mut self,
        now: Instant,
        session: u64,
        peer: SocketAddr,
        data: &[u8],
    ) -> bool {
        let bytes = data.len();
        self.sleep_timers(now);
        if let Some(Err(next)) = self.edrx_now(now) {
            if self.sleep.held.len() >= EDRX_HELD_MAX {
                self.sleep.held.pop_front();
                self.sleep.dropped += 1;
                tracing::info!(
                    held = EDRX_HELD_MAX,
                    "the network holds no more for this device (eDRX); the oldest datagram is lost"
                );
            }
            self.sleep.held.push_back(Held {
                session,
                peer,
                data: data.to_vec(),
            });
            tracing::info!(bytes, held = self.sleep.held.len(), window_in = ?next.saturating_duration_since(now), "datagram arrived between paging windows (eDRX); held by the network for the next window");
            return false;
        }
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

    /// Where `now` falls in the eDRX schedule, when eDRX governs (on, PSM
    /// off, and the radio has exchanged something since boot).
    fn edrx_now(&self, now: Instant) -> Option<Result<Instant, Instant>> {
        let ps = self.modem.power_saving;
        if ps.sleeps() {
            return None;
        }
        let (cycle, ptw) = ps.edrx_schedule()?;
        Some(edrx_phase(self.sleep.edrx_idle_from?, cycle, ptw, now))
    }

    /// eDRX transitions: announces sleep and paging windows, and hands the
    /// device what the network held when a window opens.
    fn edrx_timers(&mut self, now: Instant) {
        let listening = match self.edrx_now(now) {
            None => {
                self.sleep.edrx_listening = true;
                if !self.sleep.held.is_empty() {
                    // eDRX (or the link) went away: nothing holds any more.
                    self.deliver_held(now);
                }
                return;
            }
            Some(phase) => phase.is_ok(),
        };
        if listening == self.sleep.edrx_listening {
            return;
        }
        self.sleep.edrx_listening = listening;
        if listening {
            tracing::info!(held = self.sleep.held.len(), "eDRX paging window opens");
            self.urc("+LWM2M: paging window");
            self.deliver_held(now);
        } else {
            tracing::info!("eDRX: the radio sleeps until the next paging window");
            self.urc("+LWM2M: edrx sleeping");
        }
    }

    /// The network delivers what it held, in order; receiving it is an exchange.
    fn deliver_held(&mut self, now: Instant) {
        let held: Vec<Held> = self.sleep.held.drain(..).collect();
        if held.is_empty() {
            return;
        }
        tracing::info!(
            datagrams = held.len(),
            "held datagrams delivered in the paging window"
        );
        for h in held {
            match self.session_mut(h.session) {
                Some(s) => s.handle_datagram(now, h.peer, &h.data),
                None => tracing::debug!(
                    session = h.session,
                    "held datagram for a closed session dropped"
                ),
            }
        }
        self.exchanged(now);
    }

    /// An exchange at `now`: awake for T3324 from here, TAU due T3412 from
    /// here; with eDRX, connected for the inactivity time from here.
    fn exchanged(&mut self, now: Instant) {
        let ps = self.modem.power_saving;
        self.sleep.edrx_idle_from = ps.edrx_schedule().map(|_| now + EDRX_INACTIVITY);
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
        self.edrx_timers(now);
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
        if let Some(phase) = self.edrx_now(Instant::now()) {
            // The next window opens or closes.
            return Some(phase.unwrap_or_else(|next| next));
        }
        match self.sleep.radio {
            RadioSleep::Off => None,
            RadioSleep::Awake { until, .. } => Some(until),
            RadioSleep::Asleep { .. } => self.sleep.next_tau,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5.12 s cycle with a 1.28 s window (LTE-M, eDRX "0000", PTW
    /// "0000"): connected until idle entry, then listening 1.28 s at the
    /// start of each cycle and asleep until the next.
    #[test]
    fn the_radio_listens_only_in_the_paging_window_of_each_cycle() {
        let t0 = Instant::now();
        let idle = t0 + EDRX_INACTIVITY;
        let (cycle, ptw) = (Duration::from_millis(5_120), Duration::from_millis(1_280));
        let at = |ms: u64| edrx_phase(idle, cycle, ptw, idle + Duration::from_millis(ms));
        assert_eq!(edrx_phase(idle, cycle, ptw, t0), Ok(idle + ptw));
        assert_eq!(at(0), Ok(idle + ptw));
        assert_eq!(at(1_279), Ok(idle + ptw));
        assert_eq!(at(1_280), Err(idle + cycle));
        assert_eq!(at(5_119), Err(idle + cycle));
        assert_eq!(at(5_120), Ok(idle + cycle + ptw));
        assert_eq!(at(11_000), Ok(idle + cycle * 2 + ptw));
        assert_eq!(at(12_000), Err(idle + cycle * 3));
    }
}
