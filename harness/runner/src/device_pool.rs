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
//! firmware campaign) takes every device of its rig at once
//! ([`Pool::take_group`]): it waits until the rig is idle, then marks all
//! its devices busy, and is handed each device's session; `parallel` does
//! not limit it, since it is one case. While a group waits for its rig, no
//! new single-device case starts there, so the rig drains and the group
//! cannot be starved by a stream of short cases; the group takes all or
//! nothing under one lock, so it never holds a device another trial waits
//! for while it waits itself (no deadlock).

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
    /// Group cases waiting for each rig to be idle.
    group_waiting: Vec<usize>,
}

/// What a trial asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// This device (a case that runs on every device of its rig).
    Device { rig: usize, device: usize },
    /// Any device of the rig (`each_case: any`).
    AnyOf { rig: usize },
    /// Every device of the rig at once (a group case): taken by
    /// [`Pool::take_group`], never by [`Pool::take`].
    Group { rig: usize },
}

impl Want {
    pub fn rig(self) -> usize {
        match self {
            Want::Device { rig, .. } | Want::AnyOf { rig } | Want::Group { rig } => rig,
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

/// All devices of a rig, taken by a group case; given back when dropped.
pub struct TakenGroup<'a> {
    pool: &'a Pool,
    rig: usize,
    /// The rig's devices, in the rig's order.
    pub devices: Vec<usize>,
}

impl Drop for TakenGroup<'_> {
    fn drop(&mut self) {
        let mut b = self.pool.lock();
        for &d in &self.devices {
            b.device[d] = false;
        }
        b.rig[self.rig] -= self.devices.len();
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
                group_waiting: vec![0; rigs.len()],
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

    /// Waits until rig `rig` is idle (and `--jobs` lets one more rig run),
    /// then takes all its devices at once; `None` once `stopped` says the
    /// run is stopping (the wait is given up, nothing is held).
    pub fn take_group(&self, rig: usize, stopped: impl Fn() -> bool) -> Option<TakenGroup<'_>> {
        let mut b = self.lock();
        b.group_waiting[rig] += 1;
        let taken = loop {
            if stopped() {
                break None;
            }
            let active = b.rig.iter().filter(|n| **n > 0).count();
            if b.rig[rig] == 0 && active < self.jobs {
                let devices = self.rigs[rig].devices.clone();
                for &d in &devices {
                    b.device[d] = true;
                    b.taken[d] += 1;
                }
                b.rig[rig] += devices.len();
                break Some(TakenGroup {
                    pool: self,
                    rig,
                    devices,
                });
            }
            b = self
                .freed
                .wait_timeout(b, STOP_POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        b.group_waiting[rig] -= 1;
        drop(b);
        // Single-device cases held back for this group may go on (when it
        // gave up) or learn that the rig is now taken.
        self.freed.notify_all();
        taken
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
        if b.group_waiting[rig] > 0 {
            // A group case waits for this rig: let it drain.
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
            Want::Group { .. } => None,
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

    fn rig_of(devices: Vec<usize>, parallel: usize) -> Vec<RigDevices> {
        vec![RigDevices { parallel, devices }]
    }

    #[test]
    fn a_group_takes_every_device_once_the_rig_is_idle_and_holds_back_single_cases() {
        let pool = Pool::new(rig_of(vec![0, 1, 2], 2), 1);
        let one = pool
            .take(Want::Device { rig: 0, device: 0 }, never)
            .unwrap();
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let pool = &pool;
            let group = s.spawn(move || {
                let g = pool.take_group(0, never).unwrap();
                tx.send(g.devices.clone()).unwrap();
                // Held until the checks below are done.
                let _ = released.recv();
                drop(g);
            });
            // The group waits for device 0; meanwhile no single case starts.
            let mut waited = 0;
            while pool.lock().group_waiting[0] == 0 {
                std::thread::sleep(Duration::from_millis(5));
                waited += 1;
                assert!(waited < 2000, "the group never started waiting");
            }
            assert_eq!(
                pool.free(&pool.lock(), Want::Device { rig: 0, device: 1 }),
                None,
                "a single case started while a group waited"
            );
            assert!(rx.try_recv().is_err(), "the group took a busy rig");
            drop(one);
            let devices = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(devices, [0, 1, 2]);
            // All busy, beyond `parallel`: one case, not three.
            assert_eq!(pool.lock().rig[0], 3);
            assert_eq!(pool.free(&pool.lock(), Want::AnyOf { rig: 0 }), None);
            release.send(()).unwrap();
            group.join().unwrap();
        });
        // Given back: single cases run again.
        assert_eq!(pool.lock().rig[0], 0);
        assert!(pool.free(&pool.lock(), Want::AnyOf { rig: 0 }).is_some());
    }

    #[test]
    fn single_cases_and_groups_waiting_on_one_rig_all_finish() {
        // Threads as the run has them: per-device trials and two group
        // cases on the same rig, in any order; every one gets its turn.
        let pool = Pool::new(rig_of(vec![0, 1], 2), 1);
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (pool, done) = (&pool, &done);
                s.spawn(move || {
                    if i % 3 == 0 {
                        let g = pool.take_group(0, never).unwrap();
                        assert_eq!(g.devices.len(), 2);
                    } else {
                        let t = pool
                            .take(
                                Want::Device {
                                    rig: 0,
                                    device: i % 2,
                                },
                                never,
                            )
                            .unwrap();
                        std::thread::sleep(Duration::from_millis(2));
                        drop(t);
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 8);
        let b = pool.lock();
        assert_eq!((b.rig[0], b.group_waiting[0]), (0, 0));
    }

    #[test]
    fn a_waiting_group_gives_up_when_the_run_stops_and_holds_nothing() {
        let pool = Pool::new(rig_of(vec![0, 1], 2), 1);
        let held = pool
            .take(Want::Device { rig: 0, device: 0 }, never)
            .unwrap();
        assert!(pool.take_group(0, || true).is_none());
        // Nothing is reserved any more: device 1 may be taken at once.
        assert_eq!(
            pool.free(&pool.lock(), Want::Device { rig: 0, device: 1 }),
            Some(1)
        );
        drop(held);
        assert_eq!(pool.lock().rig[0], 0);
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
