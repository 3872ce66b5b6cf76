//! The link's decisions, sans-IO: for each datagram, given when it
//! arrived and how long it is, what the link does with it (drop it, say
//! why, or deliver it at one or two later times). No sockets and no
//! clock: the relay ([`super::relay`]) feeds it and obeys it, and tests
//! drive it with made-up times and count.
//!
//! Every datagram draws the same four numbers from its direction's stream
//! (loss, duplicate, reorder, jitter) whatever happens to it, so that the
//! fate of the n-th datagram of a direction depends only on the seed and
//! n: `--seed` replays a link even when a dropped datagram changes what
//! follows.

use std::time::Duration;

use super::params::{Direction, DirectionParams, LinkParams, MIN_REORDER_HOLD};
use super::rng::SplitMix64;

/// Why the link dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The loss draw.
    Loss,
    /// Larger than the direction's MTU.
    Mtu,
    /// The queue before the bandwidth cap was full.
    Queue,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Loss => "lost",
            DropReason::Mtu => "over-mtu",
            DropReason::Queue => "queue-full",
        }
    }
}

/// What becomes of one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at these times since the link started (two with a duplicate).
    Deliver(Vec<Duration>),
    Drop(DropReason),
}

/// One direction's state: its stream of draws and when its bottleneck is
/// next free.
#[derive(Debug, Clone)]
struct Lane {
    params: DirectionParams,
    rng: SplitMix64,
    /// When the last queued datagram will have been clocked out.
    busy_until: Duration,
}

/// Both directions of one emulated link.
#[derive(Debug, Clone)]
pub struct LinkEmulator {
    up: Lane,
    down: Lane,
}

/// The seed of one direction's stream: the run's seed mixed with which
/// relay (`stream`, e.g. the upstream's index) and which way, so that the
/// directions and relays do not draw the same numbers.
fn lane_seed(seed: u64, stream: u64, d: Direction) -> u64 {
    let mut r = SplitMix64::new(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407));
    let base = r.next_u64();
    match d {
        Direction::Up => base,
        Direction::Down => base.rotate_left(32) ^ 0x5851_F42D_4C95_7F2D,
    }
}

impl LinkEmulator {
    /// A link with `params`, its draws seeded by the run's `seed` and the
    /// `stream` it serves.
    pub fn new(params: &LinkParams, seed: u64, stream: u64) -> LinkEmulator {
        let lane = |d: Direction| Lane {
            params: params.direction(d).clone(),
            rng: SplitMix64::new(lane_seed(seed, stream, d)),
            busy_until: Duration::ZERO,
        };
        LinkEmulator {
            up: lane(Direction::Up),
            down: lane(Direction::Down),
        }
    }

    /// What happens to a datagram of `len` bytes entering the link in
    /// direction `d` at `now` (time since the link started).
    pub fn admit(&mut self, d: Direction, now: Duration, len: usize) -> Fate {
        let lane = match d {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        };
        let p = &lane.params;
        // Always four draws, whatever the fate (see the module's docs).
        let loss = lane.rng.ppm();
        let duplicate = lane.rng.ppm();
        let reorder = lane.rng.ppm();
        let jitter = [lane.rng.next_u64(), lane.rng.next_u64()];
        if p.mtu.is_some_and(|mtu| len > mtu) {
            return Fate::Drop(DropReason::Mtu);
        }
        // Past the bottleneck: queued behind what is still being clocked
        // out, then its own serialisation delay.
        let departs = match p.rate {
            Some(rate) => {
                let start = lane.busy_until.max(now);
                let backlog = rate.bytes_in(start - now);
                if backlog >= p.queue as u64 {
                    return Fate::Drop(DropReason::Queue);
                }
                let done = start + rate.serialisation(len);
                lane.busy_until = done;
                done
            }
            None => now,
        };
        // Lost on the air after taking its slot, as a radio loses a frame.
        if loss < p.loss.ppm() {
            return Fate::Drop(DropReason::Loss);
        }
        let mut first = departs + jittered(p, jitter[0]);
        if reorder < p.reorder.ppm() {
            first += p.delay.max(MIN_REORDER_HOLD);
        }
        let mut times = vec![first];
        if duplicate < p.duplicate.ppm() {
            times.push(departs + jittered(p, jitter[1]));
        }
        Fate::Deliver(times)
    }
}

/// `delay ± jitter` for the draw `r`, never below zero.
fn jittered(p: &DirectionParams, r: u64) -> Duration {
    let j = p.jitter.as_nanos() as u64;
    if j == 0 {
        return p.delay;
    }
    let offset = r % (2 * j + 1);
    let nanos = (p.delay.as_nanos() as u64 + offset).saturating_sub(j);
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::super::params::{LinkProfile, Probability, Rate};
    use super::*;

    fn link(d: DirectionParams) -> LinkParams {
        LinkParams {
            name: "test".into(),
            up: d.clone(),
            down: d,
        }
    }

    fn fates(e: &mut LinkEmulator, n: usize) -> Vec<Fate> {
        (0..n)
            .map(|i| e.admit(Direction::Up, Duration::from_millis(i as u64 * 10), 100))
            .collect()
    }

    #[test]
    fn a_perfect_link_delivers_everything_once_at_once() {
        let mut e = LinkEmulator::new(&link(DirectionParams::perfect()), 1, 0);
        for (i, f) in fates(&mut e, 50).into_iter().enumerate() {
            assert_eq!(f, Fate::Deliver(vec![Duration::from_millis(i as u64 * 10)]));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_fates_and_another_seed_others() {
        let p = LinkProfile::Lossy.params();
        let a = fates(&mut LinkEmulator::new(&p, 42, 0), 500);
        let b = fates(&mut LinkEmulator::new(&p, 42, 0), 500);
        let c = fates(&mut LinkEmulator::new(&p, 43, 0), 500);
        let other_relay = fates(&mut LinkEmulator::new(&p, 42, 1), 500);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, other_relay);
    }

    #[test]
    fn loss_duplication_and_reordering_happen_at_their_rates() {
        let p = link(DirectionParams {
            loss: Probability::from_ppm(100_000),
            duplicate: Probability::from_ppm(50_000),
            reorder: Probability::from_ppm(200_000),
            delay: Duration::from_millis(5),
            ..DirectionParams::perfect()
        });
        let mut e = LinkEmulator::new(&p, 7, 0);
        let all = fates(&mut e, 10_000);
        let lost = all
            .iter()
            .filter(|f| **f == Fate::Drop(DropReason::Loss))
            .count();
        let twice = all
            .iter()
            .filter(|f| matches!(f, Fate::Deliver(t) if t.len() == 2))
            .count();
        // Held back: delivered later than the plain 5 ms.
        let held = all
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                matches!(f, Fate::Deliver(t) if t[0] > Duration::from_millis(*i as u64 * 10 + 5))
            })
            .count();
        // 10 000 draws: within ±15 % of the expected counts.
        assert!((850..=1150).contains(&lost), "{lost} lost");
        assert!((380..=520).contains(&twice), "{twice} duplicated"); // 5 % of 9 000
        assert!((1530..=2070).contains(&held), "{held} reordered"); // 20 % of 9 000
    }

    #[test]
    fn a_reordered_datagram_is_overtaken_by_the_next() {
        let p = link(DirectionParams {
            reorder: Probability::ONE,
            ..DirectionParams::perfect()
        });
        let mut e = LinkEmulator::new(&p, 1, 0);
        let Fate::Deliver(first) = e.admit(Direction::Up, Duration::ZERO, 10) else {
            panic!()
        };
        assert_eq!(first, vec![MIN_REORDER_HOLD]);
        // Sent 1 ms later, unheld on a link that only reorders the first:
        let mut p2 = p.clone();
        p2.up.reorder = Probability::ZERO;
        let mut e2 = LinkEmulator::new(&p2, 1, 0);
        let Fate::Deliver(second) = e2.admit(Direction::Up, Duration::from_millis(1), 10) else {
            panic!()
        };
        assert!(second[0] < first[0]);
    }

    #[test]
    fn datagrams_over_the_mtu_are_dropped_and_the_rest_pass() {
        let p = link(DirectionParams {
            mtu: Some(1358),
            ..DirectionParams::perfect()
        });
        let mut e = LinkEmulator::new(&p, 1, 0);
        assert!(matches!(
            e.admit(Direction::Down, Duration::ZERO, 1358),
            Fate::Deliver(_)
        ));
        assert_eq!(
            e.admit(Direction::Down, Duration::ZERO, 1359),
            Fate::Drop(DropReason::Mtu)
        );
    }

    #[test]
    fn a_rate_cap_spaces_datagrams_by_their_serialisation_and_drops_past_the_queue() {
        // 8 kbit/s: 1000 bytes take exactly 1 s to clock out.
        let p = link(DirectionParams {
            rate: Some(Rate::bits_per_second(8_000)),
            queue: 2_500,
            ..DirectionParams::perfect()
        });
        let mut e = LinkEmulator::new(&p, 1, 0);
        // A burst of five 1000-byte datagrams at t = 0.
        let burst: Vec<Fate> = (0..5)
            .map(|_| e.admit(Direction::Down, Duration::ZERO, 1000))
            .collect();
        let secs = |s: u64| Fate::Deliver(vec![Duration::from_secs(s)]);
        // The first is clocked at once; two more fit the 2500-byte queue
        // behind it (1000 and 2000 bytes queued); the rest find it full.
        assert_eq!(burst[0], secs(1));
        assert_eq!(burst[1], secs(2));
        assert_eq!(burst[2], secs(3));
        assert_eq!(burst[3], Fate::Drop(DropReason::Queue));
        assert_eq!(burst[4], Fate::Drop(DropReason::Queue));
        // Once drained, a datagram pays only its own serialisation.
        assert_eq!(
            e.admit(Direction::Down, Duration::from_secs(10), 500),
            Fate::Deliver(vec![Duration::from_millis(10_500)])
        );
        // The other direction has its own bottleneck.
        assert_eq!(e.admit(Direction::Up, Duration::ZERO, 1000), secs(1));
    }

    #[test]
    fn jitter_stays_within_delay_plus_or_minus_jitter() {
        let p = link(DirectionParams {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(30),
            ..DirectionParams::perfect()
        });
        let mut e = LinkEmulator::new(&p, 9, 0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let Fate::Deliver(t) = e.admit(Direction::Up, Duration::ZERO, 10) else {
                panic!()
            };
            assert!(t[0] >= Duration::from_millis(70) && t[0] <= Duration::from_millis(130));
            seen.insert(t[0].as_millis());
        }
        assert!(
            seen.len() > 50,
            "jitter varies: {} distinct delays",
            seen.len()
        );
    }

    #[test]
    fn total_loss_drops_every_datagram() {
        let p = link(DirectionParams {
            loss: Probability::ONE,
            ..DirectionParams::perfect()
        });
        let mut e = LinkEmulator::new(&p, 3, 0);
        assert!(fates(&mut e, 1000)
            .iter()
            .all(|f| *f == Fate::Drop(DropReason::Loss)));
    }
}
