//! Which devices are busy while trials run on several test threads: a case
//! takes a device before it starts and gives it back when it ends, so that
//! two threads never drive one device, each rig keeps to its
//! `devices.parallel`, and at most `--jobs` rigs run cases at once.
//!
//! libtest-mimic hands trials to its threads in the order they were made
//! ([`crate::run`] interleaves them so that threads reach different
//! devices); a thread whose trial's device is busy waits here for it.
//!
//! A group case (one case that needs all of a rig's devices, such as a
//! firmware campaign) would take every device of its rig here at once —
//! waiting until the rig is idle, then marking all its devices busy — and be
//! handed each device's session; `parallel` does not limit it, since it is
//! one case. Nothing here stops that from being added beside [`Pool::take`].

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How often a waiting thread looks at the run's stop signal.
const STOP_POLL: Duration = Duration::from_millis(100);

/// One rig's devices: their indices into the run's device list, and how
/// many of them may be busy at once.
#[derive(Debug, Clone)]
pub struct RigDevices {
    pub parallel: usize,
    pub devices: Vec<usize>,
}

pub struct Pool {
    rigs: Vec<RigDevices>,
    /// Rigs that may have a busy device at once (`--jobs`).
    jobs: usize,
    busy: Mutex<Busy>,
    freed: Condvar,
}

struct Busy {
    device: Vec<bool>,
    /// Busy devices per rig.
    rig: Vec<usize>,
    /// Cases each device has taken: a pool hands the next case to its
    /// least used free device, so cases spread over the meters.
    taken: Vec<u64>,
}

/// What a trial asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// This device (a case that runs on every device of its rig).
    Device { rig: usize, device: usize },
    /// Any device of the rig (`each_case: any`).
    AnyOf { rig: usize },
}

impl Want {
    pub fn rig(self) -> usize {
        match self {
            Want::Device { rig, .. } | Want::AnyOf { rig } => rig,
        }
    }
}

/// A device taken; given back when dropped, however the case ended.
pub struct Taken<'a> {
    pool: &'a Pool,
    rig: usize,
    pub device: usize,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut b = self.pool.lock();
        b.device[self.device] = false;
        b.rig[self.rig] -= 1;
        drop(b);
        self.pool.freed.notify_all();
    }
}

impl Pool {
    pub fn new(rigs: Vec<RigDevices>, jobs: usize) -> Pool {
        let devices = rigs.iter().flat_map(|r| r.devices.iter()).count();
        Pool {
            busy: Mutex::new(Busy {
                device: vec![false; devices],
                rig: vec![0; rigs.len()],
                taken: vec![0; devices],
            }),
            rigs,
            jobs: jobs.max(1),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Busy> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many test threads keep every allowed device busy: the rigs are
    /// dealt to `jobs` lanes (rig i to lane i mod jobs, as [`crate::run`]
    /// orders them), each lane running one rig at a time, so the sum over
    /// lanes of their widest rig.
    pub fn threads(&self) -> usize {
        let mut widest = vec![0usize; self.jobs.min(self.rigs.len()).max(1)];
        let lanes = widest.len();
        for (i, r) in self.rigs.iter().enumerate() {
            let lane = &mut widest[i % lanes];
            *lane = (*lane).max(r.parallel.min(r.devices.len()).max(1));
        }
        widest.iter().sum::<usize>().max(1)
    }

    /// Waits until the trial may run, and takes its device; `None` once
    /// `stopped` says the run is stopping.
    pub fn take(&self, want: Want, stopped: impl Fn() -> bool) -> Option<Taken<'_>> {
        let rig = want.rig();
        let mut b = self.lock();
        loop {
            if stopped() {
                return None;
            }
            if let Some(device) = self.free(&b, want) {
                b.device[device] = true;
                b.rig[rig] += 1;
                b.taken[device] += 1;
                return Some(Taken {
                    pool: self,
                    rig,
                    device,
                });
            }
            b = self
                .freed
                .wait_timeout(b, STOP_POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The device `want` may take now, if any.
    fn free(&self, b: &Busy, want: Want) -> Option<usize> {
        let rig = want.rig();
        let spec = &self.rigs[rig];
        let active = b.rig.iter().filter(|n| **n > 0).count();
        if b.rig[rig] == 0 && active >= self.jobs {
            return None;
        }
        if b.rig[rig] >= spec.parallel.max(1) {
            return None;
        }
        match want {
            Want::Device { device, .. } => (!b.device[device]).then_some(device),
            Want::AnyOf { .. } => spec
                .devices
                .iter()
                .copied()
                .filter(|d| !b.device[*d])
                .min_by_key(|d| b.taken[*d]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> bool {
        false
    }

    #[test]
    fn a_rig_keeps_to_its_parallel_limit_and_its_devices_stay_single() {
        let pool = Pool::new(
            vec![RigDevices {
                parallel: 2,
                devices: vec![0, 1, 2],
            }],
            1,
        );
        let a = pool
            .take(Want::Device { rig: 0, device: 0 }, never)
            .unwrap();
        assert_eq!(
            pool.free(&pool.lock(), Want::Device { rig: 0, device: 0 }),
            None
        );
        let _b = pool
            .take(Want::Device { rig: 0, device: 1 }, never)
            .unwrap();
        // Two busy: device 2 is free but the rig is at its limit.
        assert_eq!(
            pool.free(&pool.lock(), Want::Device { rig: 0, device: 2 }),
            None
        );
        drop(a);
        assert_eq!(
            pool.free(&pool.lock(), Want::Device { rig: 0, device: 2 }),
            Some(2)
        );
    }

    #[test]
    fn a_pool_hands_out_its_least_used_free_device() {
        let pool = Pool::new(
            vec![RigDevices {
                parallel: 3,
                devices: vec![0, 1, 2],
            }],
            1,
        );
        let any = Want::AnyOf { rig: 0 };
        let first = pool.take(any, never).unwrap().device;
        let second = pool.take(any, never).unwrap().device;
        let third = pool.take(any, never).unwrap().device;
        let mut used = vec![first, second, third];
        used.sort();
        assert_eq!(used, [0, 1, 2]);
    }

    #[test]
    fn jobs_limit_how_many_rigs_run_at_once() {
        let rigs = vec![
            RigDevices {
                parallel: 1,
                devices: vec![0],
            },
            RigDevices {
                parallel: 1,
                devices: vec![1],
            },
        ];
        let one_job = Pool::new(rigs.clone(), 1);
        let _a = one_job.take(Want::AnyOf { rig: 0 }, never).unwrap();
        assert_eq!(one_job.free(&one_job.lock(), Want::AnyOf { rig: 1 }), None);
        assert_eq!(one_job.threads(), 1);
        let two_jobs = Pool::new(rigs, 2);
        let _a = two_jobs.take(Want::AnyOf { rig: 0 }, never).unwrap();
        assert_eq!(
            two_jobs.free(&two_jobs.lock(), Want::AnyOf { rig: 1 }),
            Some(1)
        );
        assert_eq!(two_jobs.threads(), 2);
    }

    #[test]
    fn a_waiting_trial_gives_up_when_the_run_stops() {
        let pool = Pool::new(
            vec![RigDevices {
                parallel: 1,
                devices: vec![0],
            }],
            1,
        );
        let _held = pool.take(Want::AnyOf { rig: 0 }, never).unwrap();
        assert!(pool.take(Want::AnyOf { rig: 0 }, || true).is_none());
    }
}
