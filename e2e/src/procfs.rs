//! What `/proc` tells about the processes a run started: their tree (to find agents under an
//! operator, or to check that nothing outlived a shutdown), their memory and CPU time.

/// One process as `/proc/PID/stat` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// The executable's name (`comm`, at most 15 bytes).
    pub name: String,
    /// Clock ticks after boot; with the pid, it tells a process from a later one reusing its pid.
    pub start_time: u64,
}

impl ProcessInfo {
    /// The process `pid`, if it exists (and is not a zombie: a zombie has stopped running).
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `comm` is in parentheses and may itself hold spaces or parentheses: split at the last.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat.get(open + 1..close)?.to_owned();
        let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
        // Fields after comm, from 0: state, ppid, ..., starttime is the 20th.
        if fields.first() == Some(&"Z") {
            return None;
        }
        Some(Self {
            pid,
            ppid: fields.get(1)?.parse().ok()?,
            name,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// Whether this very process (not a later one with its pid) still runs.
    pub fn is_running(&self) -> bool {
        Self::read(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }
}

/// Every running process.
pub fn processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(ProcessInfo::read)
        .collect()
}

/// The running children of `pid`.
pub fn children(pid: u32) -> Vec<ProcessInfo> {
    processes().into_iter().filter(|p| p.ppid == pid).collect()
}

/// Every running descendant of `pid` (children, their children, ...).
pub fn descendants(pid: u32) -> Vec<ProcessInfo> {
    let all = processes();
    let mut found: Vec<ProcessInfo> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

/// Resident memory of `pid` in KiB (`VmRSS`), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Proportional memory of `pid` in KiB (`Pss` of `smaps_rollup`): pages shared with other
/// processes (the same binary's code, for every agent) count by their share, so the sum over
/// processes is what they really take together.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A memory figure of `/proc/PID/status` in KiB, e.g. `VmHWM` (peak resident memory).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time `pid` has used so far (user and system), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    // utime and stime, the 14th and 15th fields of stat (11 and 12 after comm).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// `getconf CLK_TCK`: the unit of the CPU times in `/proc` (100 on every common Linux).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_child() {
        let me = ProcessInfo::read(std::process::id()).unwrap();
        assert!(me.is_running());
        assert!(rss_kib(me.pid).unwrap() > 0);
        assert!(status_kib(me.pid, "VmHWM").unwrap() >= rss_kib(me.pid).unwrap() / 2);
        assert!(cpu_seconds(me.pid).unwrap() >= 0.0);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = descendants(me.pid);
        assert!(
            found
                .iter()
                .any(|p| p.pid == child.id() && p.name == "sleep"),
            "{found:?}"
        );
        assert!(children(me.pid).iter().any(|p| p.pid == child.id()));
        let info = ProcessInfo::read(child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!info.is_running());
    }
}
