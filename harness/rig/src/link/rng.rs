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

#[cfg(test)]
mod tests {
    use super::*;

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
