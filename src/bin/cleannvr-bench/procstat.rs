//! Per-process CPU and memory from `/proc`, so each process's share can be
//! told apart from the load generator's.

use std::fs;

/// Kernel clock ticks per second (`USER_HZ`), the unit of `/proc/<pid>/stat` times.
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds of a whole process.
///
/// `/proc/<pid>/stat` (utime + stime, every thread including exited ones)
/// only has clock-tick resolution (10 ms), too coarse for one quiet
/// stream; the nanosecond run times in `/proc/<pid>/task/*/schedstat` miss
/// threads that have exited. The larger of the two is within a tick of the
/// truth either way.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let ticks = stat_seconds(pid)?;
    let mut ns: u64 = 0;
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            if let Ok(t) = fs::read_to_string(e.path().join("schedstat")) {
                ns += t
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Some(ticks.max(ns as f64 / 1e9))
}

fn stat_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_sec())
}

/// Sum of [`cpu_seconds`] over `pids`; processes already gone count as 0.
pub fn cpu_seconds_all(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

fn kib_field(path: &str, name: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Proportional set size in KiB (shared pages split between their users),
/// the fair measure when many copies of one program run.
pub fn pss_kib(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// The machine, for the report: CPU model, cores, kernel, memory.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = kib_field("/proc/meminfo", "MemTotal:").unwrap_or(0) / 1024;
    format!(
        "{cpu}, {cores} cores, {mem} MiB RAM, Linux {}",
        kernel.trim()
    )
}

/// 1-minute load average.
pub fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Number of online CPUs.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Busy fraction of the whole machine between two [`SysCpu`] samples.
#[derive(Clone, Copy, Debug)]
pub struct SysCpu {
    busy: u64,
    total: u64,
}

impl SysCpu {
    /// Reads the aggregate `cpu` line of `/proc/stat`.
    pub fn now() -> SysCpu {
        let text = fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        SysCpu {
            busy: total - idle,
            total,
        }
    }

    /// Fraction of all cores busy (any process) since `earlier`.
    pub fn busy_since(&self, earlier: &SysCpu) -> f64 {
        let t = self.total.saturating_sub(earlier.total);
        if t == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / t as f64
    }
}
