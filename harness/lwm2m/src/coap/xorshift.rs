//! A tiny deterministic pseudo-random generator (xorshift64*, Vigna 2016).
//!
//! The protocol core must not pull entropy from the machine: message ids,
//! tokens, retransmission jitter and registration locations all derive from a
//! configured seed so that a test run replays byte for byte. Tokens only need
//! to be unguessable enough not to collide on one link (RFC 7252 §5.3.1 asks
//! for randomness against off-path spoofing, which DTLS covers on real links).

/// xorshift64* generator state; never zero.
#[derive(Debug, Clone)]
pub struct Xorshift64 {
    state: u64,
}

impl Xorshift64 {
    pub fn new(seed: u64) -> Self {
        // Mix the seed so that nearby seeds (0, 1, 2) give unrelated streams,
        // and keep the state non-zero (zero is a fixed point of xorshift).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Xorshift64 {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A float uniformly in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_floats_in_unit_interval() {
        let mut a = Xorshift64::new(7);
        let mut b = Xorshift64::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let f = a.next_f64();
            b.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert_ne!(Xorshift64::new(0).next_u64(), Xorshift64::new(1).next_u64());
    }
}
