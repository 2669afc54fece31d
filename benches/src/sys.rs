//! Process facts from `/proc`: resident memory, CPU time per process and per thread, and the
//! open-file limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Raises this process's open-file soft limit to its hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> anyhow::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    Ok(rlimit::Resource::NOFILE.get()?.0)
}

/// This process's open-file soft limit, if it can be read.
pub fn nofile_limit() -> Option<u64> {
    rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
}

/// The number of ephemeral ports (`/proc/sys/net/ipv4/ip_local_port_range`), if readable.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    Some(hi.saturating_sub(lo) + 1)
}

/// Memory of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory { rss_kib: field("VmRSS:"), peak_rss_kib: field("VmHWM:") })
}

/// The memory of several processes added up (the nodes of a local cluster). `peak_rss_kib` is
/// the sum of each process's own peak, an upper bound of their peak together.
pub fn memory_sum(pids: &[u32]) -> anyhow::Result<Memory> {
    let mut total = Memory { rss_kib: 0, peak_rss_kib: 0 };
    for pid in pids {
        let m = memory(*pid).map_err(|e| anyhow::anyhow!("/proc/{pid}/status: {e}"))?;
        total.rss_kib += m.rss_kib;
        total.peak_rss_kib += m.peak_rss_kib;
    }
    Ok(total)
}

/// `(comm, utime + stime ticks)` from the text of a `stat` file.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // Fields after the comm start with field 3 (state); utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU ticks of a whole process (all threads), or `None` if it cannot be read.
fn process_ticks(pid: &str) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, t)| t)
}

/// CPU ticks per thread of a process: tid -> (name, ticks).
fn thread_ticks(pid: &str) -> HashMap<u64, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(tid) = name.to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        if let Some(parsed) = std::fs::read_to_string(entry.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
            out.insert(tid, parsed);
        }
    }
    out
}

/// A snapshot of a process's CPU time, to diff against a later one.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    pid: String,
    at: Instant,
    total: Option<u64>,
    threads: HashMap<u64, (String, u64)>,
}

/// One thread's share of the CPU between two snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadCpu {
    pub tid: u64,
    pub name: String,
    /// Percent of one core.
    pub cpu_pct: f64,
}

/// CPU use of a process between two snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUsage {
    /// Percent of one core (200 = both cores of a 2-core machine).
    pub cpu_pct: f64,
    /// Busiest threads first (threads of the same name are listed separately).
    pub threads: Vec<ThreadCpu>,
}

impl CpuSnapshot {
    /// Snapshot of process `pid` (`"self"` for this process).
    pub fn take(pid: &str) -> Self {
        CpuSnapshot { pid: pid.to_owned(), at: Instant::now(), total: process_ticks(pid), threads: thread_ticks(pid) }
    }

    /// The CPU used since `self`, with the `top` busiest threads.
    pub fn usage_since(&self, top: usize) -> Option<CpuUsage> {
        let now = CpuSnapshot::take(&self.pid);
        let secs = now.at.duration_since(self.at).max(Duration::from_millis(1)).as_secs_f64();
        let pct = |ticks: u64| ticks as f64 / TICKS_PER_SEC / secs * 100.0;
        let total = now.total?.saturating_sub(self.total?);
        let mut threads: Vec<ThreadCpu> = now
            .threads
            .iter()
            .map(|(tid, (name, t))| {
                let before = self.threads.get(tid).map(|(_, b)| *b).unwrap_or(0);
                ThreadCpu { tid: *tid, name: name.clone(), cpu_pct: round1(pct(t.saturating_sub(before))) }
            })
            .filter(|t| t.cpu_pct > 0.0)
            .collect();
        threads.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
        threads.truncate(top);
        Some(CpuUsage { cpu_pct: round1(pct(total)), threads })
    }
}

impl CpuUsage {
    /// The use of several processes together: percentages added up, the `top` busiest threads
    /// of all of them.
    pub fn sum(parts: &[CpuUsage], top: usize) -> Option<CpuUsage> {
        if parts.is_empty() {
            return None;
        }
        let mut threads: Vec<ThreadCpu> = parts.iter().flat_map(|p| p.threads.iter().cloned()).collect();
        threads.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
        threads.truncate(top);
        Some(CpuUsage { cpu_pct: round1(parts.iter().map(|p| p.cpu_pct).sum()), threads })
    }
}

/// Rounds to one decimal.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let line = "1234 (actix-rt|system:0 x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(line), Some(("actix-rt|system:0 x".to_owned(), 300)));
    }

    #[test]
    fn reads_own_memory_and_cpu() -> anyhow::Result<()> {
        let m = memory(std::process::id())?;
        assert!(m.rss_kib > 0 && m.peak_rss_kib >= m.rss_kib);
        let snap = CpuSnapshot::take("self");
        assert!(snap.usage_since(4).is_some());
        let me = std::process::id();
        let two = memory_sum(&[me, me])?;
        assert!(two.rss_kib >= m.rss_kib && two.peak_rss_kib >= two.rss_kib);
        assert!(memory_sum(&[u32::MAX]).is_err());
        Ok(())
    }

    #[test]
    fn reads_limits() {
        assert!(nofile_limit().is_some_and(|n| n > 0));
        assert!(ephemeral_ports().is_some_and(|n| n > 0));
    }

    #[test]
    fn cpu_of_several_processes_adds_up() {
        let t = |tid, pct| ThreadCpu { tid, name: format!("t{tid}"), cpu_pct: pct };
        let a = CpuUsage { cpu_pct: 30.0, threads: vec![t(1, 20.0), t(2, 10.0)] };
        let b = CpuUsage { cpu_pct: 45.5, threads: vec![t(3, 45.5)] };
        let Some(s) = CpuUsage::sum(&[a, b], 2) else { panic!("no sum") };
        assert_eq!(s.cpu_pct, 75.5);
        assert_eq!(s.threads.iter().map(|t| t.tid).collect::<Vec<_>>(), vec![3, 1]);
        assert!(CpuUsage::sum(&[], 2).is_none());
    }
}
