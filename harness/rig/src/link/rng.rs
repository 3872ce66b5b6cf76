//! The link's pseudo-randomness: SplitMix64 (Steele, Lea and Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014), written
//! out here so that a seed gives the same fates on every build and every
//! version of every dependency: `--seed` must replay a link exactly.

/// One stream of draws.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in 0..1_000_000, to compare with a probability in parts per million.
    pub fn ppm(&mut self) -> u32 {
        (self.next_u64() % 1_000_000) as u32
    }

    /// A draw in `0..=bound`.
    pub fn up_to(&mut self, bound: u64) -> u64 {
        match bound {
            0 => {
                self.next_u64();
                0
            }
            u64::MAX => self.next_u64(),
            b => self.next_u64() % (b + 1),
        }
    }
}

/// The seed of one device's link: the run's `seed` mixed with the
/// device's name within its rig (`meter-2`), so that the devices of a rig
/// with `devices:` each draw their own fates, where one seed for all would
/// lose the same datagrams of every device at once and make their runs
/// move in lockstep, which no real radio cell does. A rig of one device
/// (`None`) keeps the run's seed as it is, so its replays do not change.
///
/// By name rather than by position in the rig file: a device keeps its
/// link when the list is reordered or another device added, and `--seed`
/// with the device's name replays it. The name is hashed with FNV-1a (as
/// the record hashes payloads) and mixed through one SplitMix64 step, so
/// names that differ in one letter give unrelated seeds.
pub fn device_seed(seed: u64, device: Option<&str>) -> u64 {
    match device {
        None => seed,
        Some(name) => SplitMix64::new(seed ^ super::record::fnv1a(name.as_bytes())).next_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each device of a rig its own seed, the same one for the same run
    /// seed; a rig of one device keeps the run's.
    #[test]
    fn each_device_of_a_rig_has_its_own_seed() {
        let names = ["meter-1", "meter-2", "meter-3", "meter-4"];
        let seeds: Vec<u64> = names.iter().map(|n| device_seed(7, Some(n))).collect();
        for (i, a) in seeds.iter().enumerate() {
            assert!(!seeds[i + 1..].contains(a), "{seeds:?}");
            assert_ne!(*a, 7);
        }
        assert_eq!(device_seed(7, Some("meter-2")), seeds[1]);
        assert_ne!(device_seed(8, Some("meter-2")), seeds[1]);
        assert_eq!(device_seed(7, None), 7);
    }

    /// The reference sequence of SplitMix64 from seed 0 (the first outputs
    /// of the C reference implementation, `splitmix64.c` by Sebastiano
    /// Vigna, as used to seed xoshiro).
    #[test]
    fn draws_match_the_reference_sequence() {
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }
}
