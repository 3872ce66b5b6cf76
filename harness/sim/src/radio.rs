//! The simulated radio link: a signal strength that wanders over time from a
//! seeded RNG, so that `AT+CSQ`, /4/0/2 and /4/0/3 change (and observations
//! have something to report) while a run stays reproducible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::modem::Csq;

/// Weakest and strongest RSSI the walk reaches, in dBm.
pub const RSSI_RANGE_DBM: (i64, i64) = (-111, -53);

#[derive(Debug, Clone)]
pub struct Radio {
    rng: StdRng,
    rssi_dbm: i64,
}

impl Radio {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7261_6469_6f00_0000);
        let rssi_dbm = rng.gen_range(-95..=-70);
        Radio { rng, rssi_dbm }
    }

    /// Moves the signal by a few dB, staying in [`RSSI_RANGE_DBM`].
    pub fn step(&mut self) {
        let delta = self.rng.gen_range(-4..=4);
        self.rssi_dbm = (self.rssi_dbm + delta).clamp(RSSI_RANGE_DBM.0, RSSI_RANGE_DBM.1);
    }

    /// Radio Signal Strength (/4/0/2), dBm.
    pub fn rssi_dbm(&self) -> i64 {
        self.rssi_dbm
    }

    /// Link Quality (/4/0/3) as 0..=100, rising with the signal.
    pub fn link_quality(&self) -> i64 {
        let (lo, hi) = RSSI_RANGE_DBM;
        (self.rssi_dbm - lo) * 100 / (hi - lo)
    }

    /// `AT+CSQ` values: rssi 0 is -113 dBm or less, 31 is -51 dBm or more, 2 dB steps (TS 27.007 §8.5).
    pub fn csq(&self) -> Csq {
        Csq {
            rssi: ((self.rssi_dbm + 113) / 2).clamp(0, 31) as u8,
            ber: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_seeded_bounded_and_moves() {
        let mut a = Radio::new(3);
        let mut b = Radio::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            a.step();
            b.step();
            assert_eq!(a.rssi_dbm(), b.rssi_dbm());
            assert!((RSSI_RANGE_DBM.0..=RSSI_RANGE_DBM.1).contains(&a.rssi_dbm()));
            assert!((0..=100).contains(&a.link_quality()));
            assert!(a.csq().rssi <= 31);
            seen.insert(a.rssi_dbm());
        }
        assert!(seen.len() > 5, "the signal changes over time");
    }

    #[test]
    fn csq_maps_dbm_per_ts_27_007() {
        let mut r = Radio::new(0);
        r.rssi_dbm = -113;
        assert_eq!(r.csq().rssi, 0);
        r.rssi_dbm = -53;
        assert_eq!(r.csq().rssi, 30);
        r.rssi_dbm = -85;
        assert_eq!(r.csq().rssi, 14);
    }
}
