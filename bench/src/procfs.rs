//! What a server process costs, read from `/proc` (Linux): resident memory and CPU time.
//!
//! Every function takes the ids of the server's processes (one, or two for a cluster) and adds
//! them up; `None` means a figure could not be read (not Linux, or the process is gone).

use std::sync::OnceLock;

/// Resident memory (`VmRSS` of `/proc/<pid>/status`), in KiB, summed over `pids`.
pub fn rss_kib(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|pid| rss_kib_of(*pid)).sum()
}

fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and the processes it started (a Node.js cluster's primary and its workers), from
/// the parent ids in `/proc/<pid>/stat`.
pub fn with_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![pid];
    };
    let children = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent_of(*child) == Some(pid));
    std::iter::once(pid).chain(children).collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: the state, then the parent's id.
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// TCP segments with data sent so far on the established connections from local `port`
/// (`data_segs_out` in `ss -ti`), summed: how many pieces a server's bytes went out in. Each
/// one wakes the client up and costs it a read. `None` without `ss` (iproute2).
pub fn data_segments_sent(port: u16) -> Option<u64> {
    let filter = format!("( sport = :{port} )");
    let output = std::process::Command::new("ss")
        .args(["-tinH", "state", "established", &filter])
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| {
        text.split_whitespace()
            .filter_map(|word| word.strip_prefix("data_segs_out:"))
            .filter_map(|count| count.parse::<u64>().ok())
            .sum()
    })
}

/// The load average over 1, 5 and 15 minutes, from `/proc/loadavg`.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// CPU time used so far, user + system, in seconds, summed over `pids`.
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let ticks: Option<u64> = pids.iter().map(|pid| cpu_ticks_of(*pid)).sum();
    Some(ticks? as f64 / clock_ticks_per_second() as f64)
}

/// `utime + stime` from `/proc/<pid>/stat`, in clock ticks.
fn cpu_ticks_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    // Then field 3 is the state, and utime and stime are fields 14 and 15.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat`'s times, 100 on nearly every Linux.
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The soft limit on open files of this process (`ulimit -n`), from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The processor's model name, from `/proc/cpuinfo`.
pub fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = [std::process::id()];
        assert!(rss_kib(&me).is_some_and(|kib| kib > 0));
        // Burn a little CPU so the count is not zero even on a coarse clock.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(&me).is_some_and(|secs| secs > 0.0));
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
    }

    #[test]
    fn a_missing_process_has_no_figures() {
        // Above the kernel's pid_max (at most 2^22), so never a live process.
        assert_eq!(rss_kib(&[u32::MAX]), None);
        assert_eq!(cpu_seconds(&[u32::MAX]), None);
    }
}
