//! CPU affinity of the calling thread (Linux `sched_setaffinity(2)`). A
//! thread or process started afterwards from the pinned thread inherits its
//! mask — the servers' threads, their runtimes' workers and libcoap's child
//! process — which is how the benchmark puts the whole exchange on one core.

use std::io;

/// The CPUs the calling thread may run on.
pub(crate) fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; zeroed is the empty set, and the
    // kernel writes at most size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: cpu < CPU_SETSIZE, the set's size.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Lets the calling thread run only on `cpus`.
pub(crate) fn set(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed`; CPU_SET is given indices below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPUs process `pid` may run on, as `/proc/PID/status` lists them
/// (`Cpus_allowed_list`, e.g. `0` or `0-1`).
pub(crate) fn of_process(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_and_the_threads_it_starts_run_on_that_cpu_alone() {
        let all = allowed().unwrap();
        assert!(!all.is_empty());
        let first = all[0];
        let seen = std::thread::spawn(move || {
            set(&[first]).unwrap();
            let own = allowed().unwrap();
            let child = std::thread::spawn(|| allowed().unwrap()).join().unwrap();
            (own, child)
        })
        .join()
        .unwrap();
        assert_eq!(seen, (vec![first], vec![first]));
        // This thread was not touched.
        assert_eq!(allowed().unwrap(), all);
    }
}
