//! Making inputs: corpus entries changed by stacked mutations, in the manner
//! of AFL's havoc stage and libFuzzer's mutation dispatcher, plus some
//! pure random bytes.
//!
//! There is no coverage feedback (that needs nightly's sanitizer coverage or
//! cargo-fuzz); depth comes from the seeds instead, which are real messages
//! and whole captured conversations, and from mutating scripts frame by
//! frame so that one datagram is changed while the conversation leading to
//! it stays intact.

use crate::frames::{self, Frame};
use crate::rng::Rng;

/// Values that sit on boundaries parsers get wrong: zero, sign bits, all
/// ones, and the lengths (13, 255, 269, 65535+269) where CoAP option
/// deltas and lengths change encoding (RFC 7252 §3.1).
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    12,
    13,
    14,
    16,
    24,
    31,
    32,
    64,
    127,
    128,
    255,
    256,
    268,
    269,
    512,
    1024,
    4096,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x1_010c,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// What the mutator draws from for one target.
pub struct Mutator<'a> {
    pub corpus: &'a [Vec<u8>],
    /// Tokens worth inserting whole (keywords, option numbers, markers).
    pub dictionary: &'a [&'a [u8]],
    pub max_len: usize,
    /// The target reads [`frames`] scripts.
    pub framed: bool,
}

impl Mutator<'_> {
    /// The next input.
    pub fn generate(&self, rng: &mut Rng) -> Vec<u8> {
        if self.corpus.is_empty() || rng.one_in(16) {
            return self.random_bytes(rng);
        }
        let base = &self.corpus[rng.below(self.corpus.len())];
        if rng.one_in(32) {
            return base.clone();
        }
        let mut out = if self.framed && rng.below(3) != 0 {
            self.mutate_script(rng, base)
        } else {
            let mut data = base.clone();
            self.havoc(rng, &mut data);
            data
        };
        out.truncate(self.max_len);
        out
    }

    fn random_bytes(&self, rng: &mut Rng) -> Vec<u8> {
        // Mostly short: most decoders decide in the first bytes.
        let cap = match rng.below(4) {
            0 => 8,
            1 => 64,
            2 => 512,
            _ => self.max_len,
        };
        let mut data = vec![0; rng.below(cap.min(self.max_len) + 1)];
        rng.fill(&mut data);
        data
    }

    /// One to sixteen stacked byte-level mutations.
    pub fn havoc(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let rounds = 1 << rng.below(5);
        for _ in 0..rounds {
            self.mutate_once(rng, data);
            if data.len() > self.max_len {
                data.truncate(self.max_len);
            }
        }
    }

    fn other_entry<'b>(&'b self, rng: &mut Rng) -> &'b [u8] {
        self.corpus
            .get(rng.below(self.corpus.len().max(1)))
            .map_or(&[], Vec::as_slice)
    }

    fn mutate_once(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let len = data.len();
        match rng.below(15) {
            // Flip one bit.
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            // Set one byte at random.
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.byte();
            }
            // Insert random bytes.
            2 => {
                let at = rng.below(len + 1);
                let mut extra = vec![0; 1 + rng.below(8)];
                rng.fill(&mut extra);
                data.splice(at..at, extra);
            }
            // Delete a range.
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                data.drain(at..at + n);
            }
            // Duplicate a range somewhere else.
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                let chunk = data[at..at + n].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, chunk);
            }
            // Splice: our head, another entry's tail.
            5 => {
                let other = self.other_entry(rng);
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            // Insert a chunk of another entry.
            6 => {
                let other = self.other_entry(rng);
                if !other.is_empty() {
                    let at = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - at).min(64));
                    let to = rng.below(len + 1);
                    data.splice(to..to, other[at..at + n].iter().copied());
                }
            }
            // Overwrite with an interesting integer, 1/2/4/8 bytes, either endianness.
            7 if len > 0 => {
                let v = *rng.choose(INTERESTING).unwrap_or(&0);
                let width = 1 << rng.below(4);
                let bytes = if rng.one_in(2) {
                    v.to_be_bytes()[8 - width..].to_vec()
                } else {
                    v.to_le_bytes()[..width].to_vec()
                };
                let at = rng.below(len);
                let end = (at + width).min(len);
                data[at..end].copy_from_slice(&bytes[..end - at]);
            }
            // Small arithmetic on a byte or a big-endian u16: length-field tweaks.
            8 if len > 0 => {
                let delta = 1 + rng.below(35) as u16;
                let at = rng.below(len);
                if at + 1 < len && rng.one_in(2) {
                    let v = u16::from_be_bytes([data[at], data[at + 1]]);
                    let v = if rng.one_in(2) {
                        v.wrapping_add(delta)
                    } else {
                        v.wrapping_sub(delta)
                    };
                    data[at..at + 2].copy_from_slice(&v.to_be_bytes());
                } else if rng.one_in(2) {
                    data[at] = data[at].wrapping_add(delta as u8);
                } else {
                    data[at] = data[at].wrapping_sub(delta as u8);
                }
            }
            // A byte (or u16) that states the remaining length, give or take a few:
            // where a length field is, this makes it almost right.
            9 if len > 0 => {
                let at = rng.below(len);
                let rest = (len - at - 1) as i64 + rng.below(5) as i64 - 2;
                let rest = rest.max(0) as u64;
                if at + 1 < len && rng.one_in(2) {
                    data[at..at + 2].copy_from_slice(&(rest as u16).to_be_bytes());
                } else {
                    data[at] = rest as u8;
                }
            }
            // Dictionary token, inserted or written over.
            10 if !self.dictionary.is_empty() => {
                let token = self.dictionary[rng.below(self.dictionary.len())];
                let at = rng.below(len + 1);
                if rng.one_in(2) || at + token.len() > len {
                    data.splice(at..at, token.iter().copied());
                } else {
                    data[at..at + token.len()].copy_from_slice(token);
                }
            }
            // Truncate.
            11 if len > 0 => data.truncate(rng.below(len)),
            // Swap two bytes.
            12 if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                data.swap(a, b);
            }
            // A long run of one byte: deep nesting, long numbers, big counts.
            13 => {
                let b = if len > 0 && rng.one_in(2) {
                    data[rng.below(len)]
                } else {
                    rng.byte()
                };
                let cap = if rng.one_in(8) { 4096 } else { 64 };
                let n = 1 + rng.below(cap);
                let at = rng.below(len + 1);
                data.splice(at..at, std::iter::repeat_n(b, n));
            }
            // Repeat the whole input (or its tail) after itself.
            14 if len > 0 && len < self.max_len / 2 => {
                let from = rng.below(len);
                data.extend_from_within(from..);
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] = data[i].wrapping_add(1);
                } else {
                    data.push(rng.byte());
                }
            }
        }
    }

    /// Frame-aware mutation of a script: one frame's data, or the frame list.
    fn mutate_script(&self, rng: &mut Rng, base: &[u8]) -> Vec<u8> {
        let mut owned: Vec<(u8, Vec<u8>)> = frames::parse(base)
            .into_iter()
            .map(|f| (f.kind(), f.data.to_vec()))
            .collect();
        let rounds = 1 + rng.below(3);
        for _ in 0..rounds {
            let n = owned.len();
            match rng.below(8) {
                // Mutate one frame's data (most of the time).
                0..=3 if n > 0 => {
                    let i = rng.below(n);
                    self.havoc(rng, &mut owned[i].1);
                }
                // Drop a frame.
                4 if n > 0 => {
                    owned.remove(rng.below(n));
                }
                // Repeat a frame (a retransmission, a duplicate).
                5 if n > 0 => {
                    let i = rng.below(n);
                    let f = owned[i].clone();
                    owned.insert(rng.below(n + 1), f);
                }
                // Swap two frames (reordering).
                6 if n > 1 => {
                    let (a, b) = (rng.below(n), rng.below(n));
                    owned.swap(a, b);
                }
                // Take a frame from another script, or change a frame's kind.
                _ => {
                    let other: Vec<Frame<'_>> = frames::parse(self.other_entry(rng));
                    if let (Some(f), true) = (rng.choose(&other), rng.one_in(2)) {
                        owned.insert(rng.below(n + 1), (f.kind(), f.data.to_vec()));
                    } else if n > 0 {
                        let i = rng.below(n);
                        owned[i].0 = rng.byte() & 7;
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (kind, data) in &owned {
            frames::push(&mut out, *kind, data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_stay_within_the_limit_and_follow_the_seed() {
        let corpus = vec![b"hello world".to_vec(), vec![0; 40]];
        let m = Mutator {
            corpus: &corpus,
            dictionary: &[b"ep="],
            max_len: 100,
            framed: false,
        };
        let mut a = Rng::new(1);
        let mut b = Rng::new(1);
        for _ in 0..10_000 {
            let x = m.generate(&mut a);
            assert!(x.len() <= 100);
            assert_eq!(x, m.generate(&mut b));
        }
    }

    #[test]
    fn script_mutation_keeps_frames_well_formed() {
        let script = frames::Script::new()
            .deliver(false, b"abcdef")
            .advance_ms(10)
            .into_bytes();
        let corpus = vec![script];
        let m = Mutator {
            corpus: &corpus,
            dictionary: &[],
            max_len: 4096,
            framed: true,
        };
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let s = m.mutate_script(&mut rng, &corpus[0]);
            assert_eq!(frames::encode(frames::parse(&s)), s);
        }
    }
}
