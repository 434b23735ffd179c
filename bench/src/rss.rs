//! Resident memory of the server process, from procfs.

use anyhow::{Context, Result};

/// The resident set size of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .with_context(|| format!("no VmRSS line in {path}"))
}

/// KiB as MiB, for display.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU time (user + system) process `pid` has used, in milliseconds; `None`
/// for this process itself.
pub fn cpu_ms(pid: Option<u32>) -> Result<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |pid| format!("/proc/{pid}/stat"),
    );
    // utime and stime: the 14th and 15th fields.
    Ok(stat_ticks(&path, &[14, 15])? * 10.0)
}

/// CPU time this process's waited-for children (e.g. pgbench) have used,
/// in seconds.
pub fn children_cpu_s() -> Result<f64> {
    // cutime and cstime: the 16th and 17th fields.
    Ok(stat_ticks("/proc/self/stat", &[16, 17])? / 100.0)
}

/// The sum of the 1-based `fields` of a procfs `stat` file, in clock ticks
/// (100 per second on Linux).
fn stat_ticks(path: &str, fields: &[usize]) -> Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // Split after the parenthesized command name (which may hold spaces):
    // what follows starts at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let values: Vec<&str> = rest.split_whitespace().collect();
    fields
        .iter()
        .map(|field| {
            values
                .get(field - 3)
                .and_then(|f| f.parse::<f64>().ok())
                .with_context(|| format!("no field {field} in {path}"))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_its_own_and_its_childrens_cpu_time() {
        // Burn CPU until the reading moves past one clock tick; a reader of
        // the wrong fields never gets there (bounded by wall time).
        let started = std::time::Instant::now();
        let mut own = cpu_ms(None).expect("own stat");
        while own < 10.0 && started.elapsed() < std::time::Duration::from_secs(5) {
            std::hint::black_box((0..10_000_u64).sum::<u64>());
            own = cpu_ms(None).expect("own stat");
        }
        assert!(own >= 10.0, "{own} ms of CPU read after spinning");
        assert!(cpu_ms(Some(std::process::id())).expect("by pid") >= own);
        assert!(children_cpu_s().expect("children") >= 0.0);
        assert!(stat_ticks("/proc/self/stat", &[99]).is_err());
    }
}
