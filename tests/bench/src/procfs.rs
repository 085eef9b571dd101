//! Figures of a process read from outside it: CPU time, start time and memory under
//! `/proc/<pid>`, and the clock those start times are counted on.

use std::{
    fs, io,
    time::{Duration, Instant},
};

/// What `/proc/<pid>/stat` tells, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// User plus system CPU time.
    pub cpu_ticks: u64,
    /// When the process started, counted from boot.
    pub start_ticks: u64,
}

/// What `/proc/<pid>/status` tells about memory, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size since start or the last reset (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads fields 14 (utime), 15 (stime) and 22 (starttime) of a stat line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from its closing one.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
    })
}

/// Reads `VmRSS` and `VmHWM` of a status file.
pub fn parse_status(text: &str) -> Option<Memory> {
    let kib = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some(Memory {
        rss_kib: kib("VmRSS:")?,
        peak_kib: kib("VmHWM:")?,
    })
}

/// The stat figures of a running process.
pub fn stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

/// The memory figures of a running process.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status(&text).ok_or_else(|| io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

/// Resets the peak resident set size to the current one, so the next `VmHWM` is the peak of
/// what follows (`5` in `clear_refs`, Linux 4.0 and later).
pub fn reset_peak(pid: u32) -> io::Result<()> {
    fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat` times.
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// Converts clock ticks to a duration.
pub fn ticks(count: u64) -> Duration {
    let per_second = ticks_per_second().max(1);
    Duration::from_secs(count / per_second)
        + Duration::from_nanos((count % per_second) * 1_000_000_000 / per_second)
}

/// Maps instants of this process onto time since boot, the clock process start times are
/// counted on (`CLOCK_BOOTTIME`).
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    instant: Instant,
    since_boot: Duration,
}

impl BootClock {
    /// Pairs now with the boot clock's now.
    pub fn now() -> Self {
        let instant = Instant::now();
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let since_boot = Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        );
        BootClock {
            instant,
            since_boot,
        }
    }

    /// Time since boot at `at`.
    pub fn since_boot(&self, at: Instant) -> Duration {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.since_boot + after,
            None => self
                .since_boot
                .saturating_sub(self.instant.duration_since(at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    120 35 0 0 20 0 9 0 987654 1000 300 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 155,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("4242 (short) S 1"), None);
    }

    #[test]
    fn status_gives_current_and_peak_resident_memory() {
        let text = "Name:\tgpu-provisioner\nVmHWM:\t   20480 kB\nVmRSS:\t   16384 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 16384,
                peak_kib: 20480
            })
        );
        assert_eq!(parse_status("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let pid = std::process::id();
        assert!(memory(pid).unwrap().rss_kib > 0);
        let started = ticks(stat(pid).unwrap().start_ticks);
        assert!(started <= BootClock::now().since_boot(Instant::now()));
    }

    #[test]
    fn ticks_convert_to_durations() {
        let per_second = ticks_per_second();
        assert_eq!(ticks(per_second * 3), Duration::from_secs(3));
        assert_eq!(ticks(per_second / 2), Duration::from_millis(500));
    }
}
