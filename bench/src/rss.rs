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
