//! Observe sequence numbers (RFC 7641 §3.4, §4.4).

use std::time::{Duration, Instant};

/// Notifications more than this far apart in time are taken as newer whatever
/// their sequence numbers say (RFC 7641 §3.4: 128 seconds).
pub const REORDER_WINDOW: Duration = Duration::from_secs(128);

/// Observe option values are 24-bit (RFC 7641 §2).
pub const SEQUENCE_MODULUS: u32 = 1 << 24;

/// The freshest notification a client has accepted for one observation, to
/// discard notifications that arrive out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserveSeq {
    pub value: u32,
    pub received: Instant,
}

impl ObserveSeq {
    pub fn new(value: u32, received: Instant) -> Self {
        ObserveSeq {
            value: value % SEQUENCE_MODULUS,
            received,
        }
    }

    /// Whether a notification with sequence `v2` received at `t2` is newer than
    /// this one (the three conditions of RFC 7641 §3.4), and if so records it.
    pub fn accept(&mut self, v2: u32, t2: Instant) -> bool {
        let fresh = is_newer(self.value, self.received, v2, t2);
        if fresh {
            *self = ObserveSeq::new(v2, t2);
        }
        fresh
    }
}

/// RFC 7641 §3.4: (V1 < V2 and V2 - V1 < 2^23) or (V1 > V2 and V1 - V2 > 2^23)
/// or (T2 > T1 + 128 seconds).
pub fn is_newer(v1: u32, t1: Instant, v2: u32, t2: Instant) -> bool {
    const HALF: u32 = 1 << 23;
    let (v1, v2) = (v1 % SEQUENCE_MODULUS, v2 % SEQUENCE_MODULUS);
    (v1 < v2 && v2 - v1 < HALF) || (v1 > v2 && v1 - v2 > HALF) || t2 > t1 + REORDER_WINDOW
}

/// The sequence number after `v`, wrapping at 2^24.
pub fn next(v: u32) -> u32 {
    (v + 1) % SEQUENCE_MODULUS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_follows_rfc7641_section_3_4() {
        let t = Instant::now();
        assert!(is_newer(5, t, 6, t));
        assert!(!is_newer(6, t, 5, t));
        assert!(!is_newer(5, t, 5, t));
        // Wrap-around: 2^24-1 is older than 3.
        assert!(is_newer(SEQUENCE_MODULUS - 1, t, 3, t));
        assert!(!is_newer(3, t, SEQUENCE_MODULUS - 1, t));
        // Long silence makes anything newer.
        assert!(is_newer(6, t, 5, t + Duration::from_secs(129)));
        assert!(!is_newer(6, t, 5, t + Duration::from_secs(128)));
    }

    #[test]
    fn accept_keeps_the_freshest() {
        let t = Instant::now();
        let mut s = ObserveSeq::new(10, t);
        assert!(s.accept(12, t));
        assert!(!s.accept(11, t));
        assert_eq!(s.value, 12);
        assert_eq!(next(SEQUENCE_MODULUS - 1), 0);
    }
}
