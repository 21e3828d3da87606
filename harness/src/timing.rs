//! Where the time goes: the clocks behind a trial's `timings` and the run's `harness_cpu`.
//! Only clocks here; what is timed is decided where it happens.

use std::cell::Cell;
use std::time::{Duration, Instant};

use results::CpuTime;

thread_local! {
    /// Time this thread spent compressing since [`take_compressing`] last asked.
    static COMPRESSING: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Runs `f`, counting its wall time as compression on this thread.
pub(crate) fn compressing<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    COMPRESSING.with(|c| c.set(c.get() + started.elapsed()));
    out
}

/// The compression time counted on this thread since the last call, and resets it.
pub(crate) fn take_compressing() -> Duration {
    COMPRESSING.with(|c| c.replace(Duration::ZERO))
}

/// CPU time this thread has used so far.
pub(crate) fn thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used exist on Linux.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn rusage(who: libc::c_int) -> (Duration, Duration) {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// The process's CPU clocks at one moment; [`CpuClock::since`] gives what a run used.
#[derive(Clone, Copy, Debug)]
pub struct CpuClock {
    at: Instant,
    user: Duration,
    system: Duration,
    children: Duration,
}

impl CpuClock {
    /// Reads the clocks now.
    pub fn now() -> Self {
        let (user, system) = rusage(libc::RUSAGE_SELF);
        let (child_user, child_system) = rusage(libc::RUSAGE_CHILDREN);
        Self {
            at: Instant::now(),
            user,
            system,
            children: child_user + child_system,
        }
    }

    /// What was used between `self` and now.
    pub fn since(self) -> CpuTime {
        let now = Self::now();
        CpuTime {
            wall_ms: ms(now.at - self.at),
            user_ms: ms(now.user.saturating_sub(self.user)),
            system_ms: ms(now.system.saturating_sub(self.system)),
            children_ms: ms(now.children.saturating_sub(self.children)),
        }
    }
}

/// Milliseconds of a duration, as the results write them.
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A stopwatch read in laps: each [`Laps::lap`] is the time since the one before (or since
/// the stopwatch started).
pub(crate) struct Laps(Instant);

impl Laps {
    /// Starts now.
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    /// The time since the last lap, and a new lap starts.
    pub(crate) fn lap(&mut self) -> Duration {
        let now = Instant::now();
        now - std::mem::replace(&mut self.0, now)
    }

    /// [`Laps::lap`] in milliseconds.
    pub(crate) fn lap_ms(&mut self) -> u64 {
        ms(self.lap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_counted_per_thread_and_taken_once() {
        take_compressing();
        compressing(|| std::thread::sleep(Duration::from_millis(20)));
        let other = std::thread::spawn(take_compressing).join().unwrap();
        assert_eq!(other, Duration::ZERO);
        assert!(take_compressing() >= Duration::from_millis(20));
        assert_eq!(take_compressing(), Duration::ZERO);
    }

    #[test]
    fn cpu_clocks_move_with_work() {
        let (thread, process) = (thread_cpu(), CpuClock::now());
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(thread_cpu() > thread);
        assert!(process.since().user_ms + process.since().system_ms >= 10);
    }
}
