//! The radio's LTE-M band configuration, as LwM2M object 501 (LTE-MTC Band
//! Config, fixtures/objects/501-*.xml) and the AT dialect (`AT+MBCHAN`,
//! `AT+MBBAND`) show it: the EARFCN in use and the prioritized channels,
//! kept in NV; the band mask follows from them.
//!
//! EARFCN to band and frequency: 3GPP TS 36.101 §5.7.3, Table 5.7.3-1
//! (F_DL = F_DL_low + 0.1 (N_DL − N_Offs-DL); the uplink channel of an FDD
//! band is N_DL + 18000, so F_UL = F_UL_low + 0.1 (N_DL − N_Offs-DL)).
//!
//! A written configuration takes effect when the radio interface resets:
//! Execute on Reset (/501/0/6), "Executing this resource resets the radio
//! interface of the device", after the Reset Timeout (/501/0/5, RW Float,
//! seconds), "Time that the device will wait until reset once the Reset
//! Resource is triggered" (OMA registry 501.xml, object version 1.0). The
//! wait lets the 2.04 and anything else the server still needs to say
//! reach the device before the radio goes; [`PendingReset`] keeps it.

use std::time::{Duration, Instant};

use lwm2m::{Path, Value};
use serde::{Deserialize, Serialize};

/// One FDD band: (band, F_DL_low MHz, N_Offs-DL, last N_DL, F_UL_low MHz).
/// The LTE-M (Cat-M1) bands of TS 36.101 Table 5.5-1 whose channels fit 0..=65535.
const BANDS: [(u8, f64, u32, u32, f64); 17] = [
    (1, 2110.0, 0, 599, 1920.0),
    (2, 1930.0, 600, 1199, 1850.0),
    (3, 1805.0, 1200, 1949, 1710.0),
    (4, 2110.0, 1950, 2399, 1710.0),
    (5, 869.0, 2400, 2649, 824.0),
    (7, 2620.0, 2750, 3449, 2500.0),
    (8, 925.0, 3450, 3799, 880.0),
    (12, 729.0, 5010, 5179, 699.0),
    (13, 746.0, 5180, 5279, 777.0),
    (14, 758.0, 5280, 5379, 788.0),
    (17, 734.0, 5730, 5849, 704.0),
    (18, 860.0, 5850, 5999, 815.0),
    (19, 875.0, 6000, 6149, 830.0),
    (20, 791.0, 6150, 6449, 832.0),
    (25, 1930.0, 8040, 8689, 1850.0),
    (26, 859.0, 8690, 9039, 814.0),
    (28, 758.0, 9210, 9659, 703.0),
];

fn band_of(earfcn: u16) -> Option<&'static (u8, f64, u32, u32, f64)> {
    let n = u32::from(earfcn);
    BANDS
        .iter()
        .find(|(_, _, lo, hi, _)| (*lo..=*hi).contains(&n))
}

/// The band an EARFCN (downlink) belongs to, among the supported ones.
pub fn band(earfcn: u16) -> Option<u8> {
    band_of(earfcn).map(|b| b.0)
}

/// Downlink carrier frequency in MHz.
pub fn downlink_mhz(earfcn: u16) -> Option<f64> {
    band_of(earfcn).map(|(_, f, off, _, _)| f + 0.1 * f64::from(u32::from(earfcn) - off))
}

/// Uplink carrier frequency in MHz (the paired FDD channel).
pub fn uplink_mhz(earfcn: u16) -> Option<f64> {
    band_of(earfcn).map(|(_, _, off, _, ul)| ul + 0.1 * f64::from(u32::from(earfcn) - off))
}

/// Bit mask of every supported band (bit n−1 for band n).
pub fn supported_mask() -> u64 {
    BANDS.iter().fold(0, |m, b| m | 1 << (b.0 - 1))
}

/// The band configuration kept in NV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BandConfig {
    /// EARFCN the radio uses (/501/0/1).
    pub earfcn: u16,
    /// EARFCNs tried, in priority order (/501/0/4).
    pub channels: Vec<u16>,
}

impl Default for BandConfig {
    /// Band 20 (800 MHz, EU LTE-M), then band 3 and band 8.
    fn default() -> Self {
        BandConfig {
            earfcn: 6300,
            channels: vec![6300, 1575, 3625],
        }
    }
}

/// Most prioritized channels accepted.
pub const MAX_CHANNELS: usize = 16;

impl BandConfig {
    /// The bands the configuration uses as a mask (bit n−1 for band n), as `AT+MBBAND?` prints it.
    pub fn mask(&self) -> u64 {
        std::iter::once(self.earfcn)
            .chain(self.channels.iter().copied())
            .filter_map(band)
            .fold(0, |m, b| m | 1 << (b - 1))
    }

    /// Checks a configuration: every channel in a supported band, at most [`MAX_CHANNELS`].
    pub fn validate(&self) -> Result<(), String> {
        if self.channels.len() > MAX_CHANNELS {
            return Err(format!("at most {MAX_CHANNELS} prioritized channels"));
        }
        for c in std::iter::once(&self.earfcn).chain(&self.channels) {
            if band(*c).is_none() {
                return Err(format!("EARFCN {c} is in no supported LTE-M band"));
            }
        }
        Ok(())
    }

    /// `6300,1575,3625`
    pub fn channels_text(&self) -> String {
        self.channels
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// /501/0/1 EARFCN (RW).
pub fn earfcn_path() -> Path {
    Path::resource(501, 0, 1)
}
/// /501/0/4 Prioritized Channels (RW, multiple).
pub fn channels_path() -> Path {
    Path::resource(501, 0, 4)
}
/// /501/0/6 Reset (E).
pub fn reset_path() -> Path {
    Path::resource(501, 0, 6)
}
/// /501/0/5 Reset Timeout (RW, seconds).
pub fn reset_timeout_path() -> Path {
    Path::resource(501, 0, 5)
}

/// Reset Timeout (/501/0/5) of a factory-fresh meter, in seconds: Reset
/// acts at once (after its 2.04 has left).
pub const DEFAULT_RESET_TIMEOUT_S: f64 = 0.0;

/// The wait a Reset Timeout value (/501/0/5, Float seconds) asks for. The
/// registry gives no range; a negative or NaN value cannot be waited and is
/// taken as 0, an absent one as [`DEFAULT_RESET_TIMEOUT_S`].
pub fn reset_delay(value: Option<&Value>) -> Duration {
    let seconds = value
        .and_then(Value::as_f64)
        .unwrap_or(DEFAULT_RESET_TIMEOUT_S);
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// A Reset (/501/0/6) waiting out its Reset Timeout (/501/0/5) before the
/// radio interface resets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PendingReset {
    due: Option<Instant>,
}

impl PendingReset {
    /// Reset was executed at `now` with `timeout`; returns when the radio
    /// resets. A Reset executed while one is pending does not postpone it
    /// (the first one's timeout still holds). A timeout too long for the
    /// clock never elapses: `None`.
    pub fn trigger(&mut self, now: Instant, timeout: Duration) -> Option<Instant> {
        let due = now.checked_add(timeout)?;
        let due = self.due.map_or(due, |pending| pending.min(due));
        self.due = Some(due);
        Some(due)
    }

    /// When the pending reset is due, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.due
    }

    /// Whether the reset is due at `now`; a due reset is taken (cleared).
    pub fn take_due(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|d| d <= now) {
            self.due = None;
            return true;
        }
        false
    }

    /// Forgets a pending reset (the radio went off or the meter rebooted).
    pub fn cancel(&mut self) -> bool {
        self.due.take().is_some()
    }
}

/// The values of /501/0. `in_use` is the EARFCN the radio attached on (the
/// current frequencies follow it until a Reset applies a new configuration);
/// `reset_timeout_s` is /501/0/5 as last written (NV keeps what the server
/// wrote), else [`DEFAULT_RESET_TIMEOUT_S`].
pub fn band_values(config: &BandConfig, in_use: u16, reset_timeout_s: f64) -> Vec<(Path, Value)> {
    let mut v = vec![
        (earfcn_path(), Value::Integer(i64::from(config.earfcn))),
        (
            Path::resource(501, 0, 2),
            Value::Float(downlink_mhz(in_use).unwrap_or(0.0)),
        ),
        (
            Path::resource(501, 0, 3),
            Value::Float(uplink_mhz(in_use).unwrap_or(0.0)),
        ),
        (reset_timeout_path(), Value::Float(reset_timeout_s)),
        (Path::resource(501, 0, 5750), Value::String("LTE-M".into())),
    ];
    for (i, c) in config.channels.iter().enumerate() {
        v.push((
            Path::resource_instance(501, 0, 4, i as u16),
            Value::Integer(i64::from(*c)),
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earfcn_maps_to_band_and_frequency_per_ts_36_101() {
        // Band 20: F_DL = 791 + 0.1 (6300 − 6150) = 806 MHz; UL 832 + 15 = 847 MHz.
        assert_eq!(band(6300), Some(20));
        assert!((downlink_mhz(6300).unwrap() - 806.0).abs() < 1e-9);
        assert!((uplink_mhz(6300).unwrap() - 847.0).abs() < 1e-9);
        // Band 3: 1805 + 0.1 (1575 − 1200) = 1842.5 MHz.
        assert_eq!(band(1575), Some(3));
        assert!((downlink_mhz(1575).unwrap() - 1842.5).abs() < 1e-9);
        assert_eq!(band(0), Some(1));
        assert_eq!(band(3449), Some(7));
        assert_eq!(band(2700), None, "gap between bands 5 and 7");
        assert_eq!(band(65535), None);
    }

    #[test]
    fn mask_has_one_bit_per_band_used() {
        let c = BandConfig::default();
        assert_eq!(c.mask(), (1 << 19) | (1 << 2) | (1 << 7));
        let only20 = BandConfig {
            earfcn: 6200,
            channels: vec![6400],
        };
        assert_eq!(only20.mask(), 1 << 19);
        assert_eq!(supported_mask() & c.mask(), c.mask());
    }

    #[test]
    fn reset_timeout_is_read_as_seconds_and_unusable_values_as_none() {
        // OMA registry 501.xml, resource 5: Float, units s.
        assert_eq!(
            reset_delay(Some(&Value::Float(2.5))),
            Duration::from_millis(2500)
        );
        assert_eq!(
            reset_delay(Some(&Value::Integer(3))),
            Duration::from_secs(3)
        );
        assert_eq!(reset_delay(None), Duration::ZERO);
        assert_eq!(reset_delay(Some(&Value::Float(-4.0))), Duration::ZERO);
        assert_eq!(reset_delay(Some(&Value::Float(f64::NAN))), Duration::ZERO);
        assert_eq!(
            reset_delay(Some(&Value::Float(f64::INFINITY))),
            Duration::MAX
        );
    }

    #[test]
    fn the_radio_resets_once_the_reset_timeout_after_reset_was_executed() {
        // 501.xml resource 5: "Time that the device will wait until reset
        // once the Reset Resource is triggered".
        let t0 = Instant::now();
        let mut reset = PendingReset::default();
        assert_eq!(
            reset.trigger(t0, Duration::from_secs(10)),
            Some(t0 + Duration::from_secs(10))
        );
        assert!(!reset.take_due(t0 + Duration::from_millis(9_999)));
        // A second Reset meanwhile does not postpone the first.
        reset.trigger(t0 + Duration::from_secs(5), Duration::from_secs(10));
        assert_eq!(reset.deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(reset.take_due(t0 + Duration::from_secs(10)));
        assert!(!reset.take_due(t0 + Duration::from_secs(11)), "taken once");
        assert_eq!(reset.deadline(), None);
        // Timeout 0: due at once; an endless one never.
        assert_eq!(reset.trigger(t0, Duration::ZERO), Some(t0));
        assert!(reset.cancel());
        assert_eq!(reset.trigger(t0, Duration::MAX), None);
        assert_eq!(reset.deadline(), None);
    }

    #[test]
    fn band_values_carry_the_reset_timeout() {
        let v = band_values(&BandConfig::default(), 6300, 12.5);
        assert!(v.contains(&(reset_timeout_path(), Value::Float(12.5))));
    }

    #[test]
    fn validation_names_the_bad_channel() {
        let bad = BandConfig {
            earfcn: 6300,
            channels: vec![2700],
        };
        assert!(bad.validate().unwrap_err().contains("2700"));
        assert!(BandConfig::default().validate().is_ok());
    }
}
