//! Handshake flight retransmission on the caller's clock (RFC 6347 §4.2.4).
//!
//! OpenSSL keeps its own DTLS timer on the wall clock, which a sans-IO
//! endpoint driven by a caller's (possibly simulated) clock cannot use. So the
//! endpoint parks OpenSSL's timer far in the future (see `ossl::ffi`) and runs
//! the state machine of §4.2.4 itself: every datagram OpenSSL writes while
//! handshaking belongs to the current flight; when the timer fires, or when
//! the peer retransmits its previous flight, the stored datagrams are sent
//! again byte for byte. The timeout starts at `initial`, doubles per
//! retransmission and is capped at `max` (§4.2.4.1).
//!
//! Byte-identical retransmission is safe: a peer that already processed a
//! record discards the copy as a replay (§4.1.2.6), one that lost it
//! processes it; and the sender of the final flight resends it when the peer
//! repeats its own, as §4.2.4 prescribes.

use std::time::{Duration, Instant};

use crate::config::RetransmitPolicy;

/// The last flight sent and its timer.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    datagrams: Vec<Vec<u8>>,
    deadline: Option<Instant>,
    timeout: Duration,
    retransmissions: u32,
}

/// What a timer expiry asks for.
pub(crate) enum Expiry {
    /// Send these again.
    Resend(Vec<Vec<u8>>),
    /// The retransmission budget is spent.
    Exhausted(u32),
}

impl Flight {
    /// Records a new flight; `armed` starts the timer (a flight that expects
    /// an answer), otherwise it is only kept to answer peer retransmissions
    /// (the final flight, §4.2.4 "FINISHED" state).
    pub(crate) fn begin(
        &mut self,
        datagrams: Vec<Vec<u8>>,
        now: Instant,
        policy: &RetransmitPolicy,
        armed: bool,
    ) {
        self.datagrams = datagrams;
        self.timeout = policy.initial;
        self.retransmissions = 0;
        self.deadline = armed.then(|| now + policy.initial);
    }

    /// Forgets the flight.
    pub(crate) fn clear(&mut self) {
        self.datagrams.clear();
        self.deadline = None;
    }

    /// When the timer fires.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether a flight is stored.
    pub(crate) fn is_stored(&self) -> bool {
        !self.datagrams.is_empty()
    }

    /// The stored datagrams, for a resend prompted by the peer.
    pub(crate) fn datagrams(&self) -> Vec<Vec<u8>> {
        self.datagrams.clone()
    }

    /// Fires the timer if due.
    pub(crate) fn on_timeout(&mut self, now: Instant, policy: &RetransmitPolicy) -> Option<Expiry> {
        let deadline = self.deadline?;
        if now < deadline {
            return None;
        }
        if self.retransmissions >= policy.max_retransmissions {
            self.deadline = None;
            return Some(Expiry::Exhausted(self.retransmissions));
        }
        self.retransmissions += 1;
        self.timeout = (self.timeout * 2).min(policy.max);
        self.deadline = Some(now + self.timeout);
        Some(Expiry::Resend(self.datagrams.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_doubles_and_budget_ends() {
        let policy = RetransmitPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(3),
            max_retransmissions: 2,
        };
        let t0 = Instant::now();
        let mut f = Flight::default();
        f.begin(vec![vec![1]], t0, &policy, true);
        assert_eq!(f.deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(f.on_timeout(t0, &policy).is_none());
        let t1 = t0 + Duration::from_secs(1);
        assert!(matches!(f.on_timeout(t1, &policy), Some(Expiry::Resend(d)) if d == vec![vec![1]]));
        assert_eq!(f.deadline(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert!(matches!(f.on_timeout(t2, &policy), Some(Expiry::Resend(_))));
        assert_eq!(
            f.deadline(),
            Some(t2 + Duration::from_secs(3)),
            "capped at max"
        );
        assert!(matches!(
            f.on_timeout(t2 + Duration::from_secs(3), &policy),
            Some(Expiry::Exhausted(2))
        ));
        assert_eq!(f.deadline(), None);
    }
}
