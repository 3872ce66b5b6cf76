//! What a link does to the datagrams of one direction, and the named
//! profiles with the published figures they come from.

use std::fmt;
use std::time::Duration;

/// A probability in parts per million, so that a rig file's `0.2` or
/// `"20%"` compares exactly (the rig model is `Eq`) and a draw is an
/// integer comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Probability(u32);

impl Probability {
    pub const ZERO: Probability = Probability(0);
    pub const ONE: Probability = Probability(1_000_000);

    pub fn from_ppm(ppm: u32) -> Probability {
        Probability(ppm.min(1_000_000))
    }

    pub fn ppm(self) -> u32 {
        self.0
    }

    pub fn is_certain(self) -> bool {
        self.0 >= 1_000_000
    }

    /// `0.2`, `20%`, `20 %`, `0`, `1`: a fraction in 0..=1 or a percentage.
    pub fn parse(text: &str) -> Result<Probability, String> {
        let t = text.trim();
        let (number, scale) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 10_000.0),
            None => (t, 1_000_000.0),
        };
        let v: f64 = number.parse().map_err(|_| {
            format!("`{text}` is not a probability: expected a fraction such as 0.2 or a percentage such as 20%")
        })?;
        Probability::from_f64(v * scale / 1_000_000.0).map_err(|_| {
            format!("`{text}` is not a probability: it must lie between 0 and 1 (0 % and 100 %)")
        })
    }

    pub fn from_f64(v: f64) -> Result<Probability, String> {
        if !(0.0..=1.0).contains(&v) || v.is_nan() {
            return Err(format!("{v} is not between 0 and 1"));
        }
        Ok(Probability((v * 1_000_000.0).round() as u32))
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = f64::from(self.0) / 10_000.0;
        write!(f, "{pct} %")
    }
}

/// A bandwidth cap in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    pub fn bits_per_second(bps: u64) -> Rate {
        Rate(bps.max(1))
    }

    pub fn bps(self) -> u64 {
        self.0
    }

    /// How long `bytes` take to be clocked onto the link: the serialisation
    /// delay every datagram pays behind the ones queued before it.
    pub fn serialisation(self, bytes: usize) -> Duration {
        let bits = bytes as u128 * 8;
        Duration::from_nanos((bits * 1_000_000_000 / u128::from(self.0)) as u64)
    }

    /// The bytes the link clocks out in `d`.
    pub fn bytes_in(self, d: Duration) -> u64 {
        (d.as_nanos() * u128::from(self.0) / 8 / 1_000_000_000) as u64
    }

    /// `26kbit/s`, `1Mbit/s`, `62500bit/s` or `62500` (bit/s). Bits, not
    /// bytes: radio figures are quoted in bit/s.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let scale = match unit.trim() {
            "" | "bit/s" | "bps" => 1.0,
            "kbit/s" | "kbps" => 1e3,
            "Mbit/s" | "Mbps" => 1e6,
            _ => {
                return Err(format!(
                    "`{text}` is not a rate: expected bit/s, kbit/s or Mbit/s (e.g. 26kbit/s)"
                ))
            }
        };
        let v: f64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a rate: expected a number of bit/s, kbit/s or Mbit/s (e.g. 26kbit/s)"))?;
        let bps = (v * scale).round();
        if !(1.0..=1e12).contains(&bps) {
            return Err(format!(
                "`{text}` is not a rate between 1 bit/s and 1 Tbit/s"
            ));
        }
        Ok(Rate(bps as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b if b % 1_000_000 == 0 => write!(f, "{}Mbit/s", b / 1_000_000),
            b if b % 1_000 == 0 => write!(f, "{}kbit/s", b / 1_000),
            b => write!(f, "{b}bit/s"),
        }
    }
}

/// What the link does to the datagrams of one direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirectionParams {
    /// One-way propagation delay every datagram pays.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within `delay ± jitter`
    /// (never below zero). Two datagrams whose delays differ by more than
    /// the gap between them arrive swapped, as with netem's jitter.
    pub jitter: Duration,
    pub loss: Probability,
    /// A delivered datagram is delivered twice (the copy draws its own jitter).
    pub duplicate: Probability,
    /// A datagram is held back by one more `delay` (at least
    /// [`MIN_REORDER_HOLD`]), so that those sent just after overtake it.
    pub reorder: Probability,
    /// Datagrams larger than this many bytes (UDP payload) are dropped,
    /// not delivered and not fragmented: see [`crate::link`] for why.
    pub mtu: Option<usize>,
    /// Bandwidth cap: each datagram waits for those queued before it to
    /// be clocked out, then for its own bytes at this rate.
    pub rate: Option<Rate>,
    /// Bytes the queue before a rate-capped link holds: a datagram that
    /// finds this many bytes or more still to be clocked out ahead of it
    /// is dropped (tail drop).
    pub queue: usize,
}

/// The least a reordered datagram is held back, so that reordering is
/// visible on a link without delay.
pub const MIN_REORDER_HOLD: Duration = Duration::from_millis(20);

/// The queue a rate-capped direction holds unless told otherwise: enough
/// for a few 1 KiB CoAP blocks, the way a modem's buffer holds a burst.
pub const DEFAULT_QUEUE: usize = 16 * 1024;

impl DirectionParams {
    /// A perfect link: everything delivered at once, once, in order.
    pub fn perfect() -> DirectionParams {
        DirectionParams {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Probability::ZERO,
            duplicate: Probability::ZERO,
            reorder: Probability::ZERO,
            mtu: None,
            rate: None,
            queue: DEFAULT_QUEUE,
        }
    }
}

impl fmt::Display for DirectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delay {} ± {}, loss {}, duplicate {}, reorder {}",
            crate::duration::format_duration(self.delay),
            crate::duration::format_duration(self.jitter),
            self.loss,
            self.duplicate,
            self.reorder
        )?;
        if let Some(mtu) = self.mtu {
            write!(f, ", MTU {mtu} B")?;
        }
        if let Some(rate) = self.rate {
            write!(f, ", rate {rate}, queue {} B", self.queue)?;
        }
        Ok(())
    }
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Device to servers (uplink).
    Up,
    /// Servers to device (downlink).
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// How a message names it.
    pub fn describe(self) -> &'static str {
        match self {
            Direction::Up => "device -> servers",
            Direction::Down => "servers -> device",
        }
    }
}

/// Both directions of a link, and the name it goes by in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkParams {
    /// The profile it was made from (`nb-iot`), or `custom`.
    pub name: String,
    pub up: DirectionParams,
    pub down: DirectionParams,
}

impl LinkParams {
    pub fn direction(&self, d: Direction) -> &DirectionParams {
        match d {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }

    /// Why no exchange can complete over this link, when none can: every
    /// datagram of a direction is lost. A case on it must fail saying so.
    pub fn impossible(&self) -> Option<String> {
        let dead: Vec<Direction> = [Direction::Up, Direction::Down]
            .into_iter()
            .filter(|d| self.direction(*d).loss.is_certain())
            .collect();
        match dead.as_slice() {
            [] => None,
            [d] => Some(format!(
                "loss 100 % on the link `{}` ({}): no datagram gets through",
                self.name,
                d.describe()
            )),
            _ => Some(format!(
                "loss 100 % on the link `{}` (both directions): no datagram gets through",
                self.name
            )),
        }
    }
}

impl fmt::Display for LinkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: up {}; down {}", self.name, self.up, self.down)
    }
}

/// The named link profiles a rig file may give (`link: nb-iot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkProfile {
    /// NB-IoT (LTE Cat-NB1) in normal coverage.
    NbIot,
    /// LTE-M (LTE Cat-M1, half-duplex FDD) in normal coverage.
    LteM,
    /// Not a radio: a link that loses, duplicates and reorders enough to
    /// exercise every retransmission path of CoAP and DTLS.
    Lossy,
}

/// The IP MTU 3GPP recommends for a UE: TS 23.401 Annex C ("Link MTU
/// considerations") recommends 1358 octets so that a UE's packet plus the
/// GTP-U/UDP/IP tunnel headers fits a 1500-octet transport network without
/// fragmentation. Used for both NB-IoT and LTE-M.
pub const CELLULAR_MTU: usize = 1358;

impl LinkProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkProfile::NbIot => "nb-iot",
            LinkProfile::LteM => "lte-m",
            LinkProfile::Lossy => "lossy",
        }
    }

    /// The profile's figures, each with where it comes from.
    pub fn params(self) -> LinkParams {
        let (up, down) = match self {
            // NB-IoT, LTE Cat-NB1:
            // - rate: 3GPP TS 36.306 §4.1C caps Cat-NB1 at a 680-bit
            //   downlink and 1000-bit uplink transport block; with the
            //   half-duplex scheduling gaps this gives the peak rates quoted
            //   for Rel-13 NB1, about 26 kbit/s down and 62 kbit/s up
            //   (e.g. the Rel-13 category table reproduced at
            //   blog.mbedded.ninja/electronics/communication-protocols/cellular).
            // - delay: measured round trips on a live NB-IoT network of
            //   837 ms (Ugwuanyi, Paul, Irvine, "Survey of IoT for
            //   Developing Countries: Performance Analysis of LoRaWAN and
            //   Cellular NB-IoT Networks", Electronics 10(18) 2224, 2021):
            //   420 ms each way. 3GPP TR 45.820 sets 10 s as the latency
            //   objective at the 164 dB coupling-loss edge, and the Rel-13
            //   table above quotes 1.6-10 s: this profile is the
            //   good-coverage end, not the cell edge.
            // - jitter: ±100 ms, a quarter of the one-way delay. Martinez
            //   et al. ("Exploring the Performance Boundaries of NB-IoT",
            //   IEEE IoT Journal, 2019) report highly variable NB-IoT
            //   delays without one figure for good coverage: the width is
            //   our estimate, not a quoted number.
            // - loss: none above IP in normal coverage: HARQ and RLC
            //   acknowledged mode repeat lost blocks below IP
            //   (TS 36.322), so losses show as delay; use `loss:` or
            //   `lossy` to test the device's own retransmissions.
            // - MTU: [`CELLULAR_MTU`].
            LinkProfile::NbIot => (
                cellular(420, 100, Rate::bits_per_second(62_000)),
                cellular(420, 100, Rate::bits_per_second(26_000)),
            ),
            // LTE-M, LTE Cat-M1, half-duplex FDD (what meter modules ship):
            // - rate: TS 36.306 §4.1A, 1000-bit transport blocks both ways
            //   (1 Mbit/s peak); with half-duplex scheduling delays about
            //   300 kbit/s down and 375 kbit/s up (the HD-FDD figures of the
            //   Rel-13 Cat-M1 summary at rfwireless-world.com, "LTE-M
            //   device categories").
            // - delay: 15 ms each way, the upper end of the 10-15 ms
            //   latency quoted for Cat-M1 (same Rel-13 table as NB-IoT's
            //   above); jitter ±5 ms, a third of it (our estimate).
            // - loss: none above IP, as for NB-IoT (HARQ, RLC AM).
            // - MTU: [`CELLULAR_MTU`].
            LinkProfile::LteM => (
                cellular(15, 5, Rate::bits_per_second(375_000)),
                cellular(15, 5, Rate::bits_per_second(300_000)),
            ),
            // Chosen, not measured: 10 % loss each way makes a confirmable
            // exchange lose its request or its answer in about one of five
            // tries (1 - 0.9²), so every case sees retransmissions, while
            // RFC 7252 §4.8's MAX_RETRANSMIT = 4 leaves an exchange failing
            // outright in 0.19⁵ ≈ 0.03 % of exchanges. 1 % duplication and
            // 2 % reordering exercise duplicate detection (§4.5) and
            // out-of-order blocks; 50 ms ± 20 ms keeps cases quick.
            LinkProfile::Lossy => {
                let d = DirectionParams {
                    delay: Duration::from_millis(50),
                    jitter: Duration::from_millis(20),
                    loss: Probability::from_ppm(100_000),
                    duplicate: Probability::from_ppm(10_000),
                    reorder: Probability::from_ppm(20_000),
                    ..DirectionParams::perfect()
                };
                (d.clone(), d)
            }
        };
        LinkParams {
            name: self.as_str().to_string(),
            up,
            down,
        }
    }
}

fn cellular(delay_ms: u64, jitter_ms: u64, rate: Rate) -> DirectionParams {
    DirectionParams {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(jitter_ms),
        mtu: Some(CELLULAR_MTU),
        rate: Some(rate),
        ..DirectionParams::perfect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_read_as_fractions_or_percentages() {
        assert_eq!(Probability::parse("0.2").unwrap().ppm(), 200_000);
        assert_eq!(Probability::parse("20%").unwrap().ppm(), 200_000);
        assert_eq!(Probability::parse("100 %").unwrap(), Probability::ONE);
        assert_eq!(Probability::parse("1").unwrap(), Probability::ONE);
        assert!(Probability::parse("1.5")
            .unwrap_err()
            .contains("between 0 and 1"));
        assert!(Probability::parse("-1%").is_err());
        assert!(Probability::parse("lots")
            .unwrap_err()
            .contains("not a probability"));
        assert_eq!(Probability::from_ppm(100_000).to_string(), "10 %");
    }

    #[test]
    fn rates_read_in_bits_per_second() {
        assert_eq!(Rate::parse("26kbit/s").unwrap().bps(), 26_000);
        assert_eq!(Rate::parse("1Mbit/s").unwrap().bps(), 1_000_000);
        assert_eq!(Rate::parse("62500").unwrap().bps(), 62_500);
        assert!(Rate::parse("26kB/s").unwrap_err().contains("bit/s"));
        assert_eq!(Rate::bits_per_second(26_000).to_string(), "26kbit/s");
    }

    #[test]
    fn serialisation_delay_is_bits_over_rate() {
        // 1024 bytes at 26 kbit/s: 8192 bits / 26000 bit/s = 315.07 ms.
        let r = Rate::bits_per_second(26_000);
        assert_eq!(r.serialisation(1024), Duration::from_nanos(315_076_923));
        assert_eq!(r.bytes_in(Duration::from_secs(1)), 3250);
    }

    #[test]
    fn only_total_loss_makes_a_link_impossible() {
        let mut p = LinkProfile::Lossy.params();
        assert_eq!(p.impossible(), None);
        p.up.loss = Probability::ONE;
        assert_eq!(
            p.impossible().unwrap(),
            "loss 100 % on the link `lossy` (device -> servers): no datagram gets through"
        );
        p.down.loss = Probability::ONE;
        assert!(p.impossible().unwrap().contains("both directions"));
    }
}
