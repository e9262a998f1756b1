//! What the figures were measured on, and what a process costs, read from `/proc` (Linux).

use std::path::Path;

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI this
/// runs on).
const TICKS_PER_SEC: u64 = 100;

/// The machine, build and commit printed beside the figures.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical cores the process may use.
    pub cores: usize,
    /// The CPU's model name.
    pub cpu_model: String,
    /// Physical memory, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// The build profile of this binary (and of the daemons beside it).
    pub profile: String,
    /// The commit of the checkout it ran from (`git describe --always --dirty`).
    pub commit: String,
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':').map(str::trim))
}

impl Machine {
    /// Reads the machine's description.
    pub fn describe() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let memory_kib = field(&read("/proc/meminfo"), "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let commit = std::process::Command::new("git")
            .args(["describe", "--always", "--dirty", "--abbrev=12"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown (not run from a checkout)".into());
        Machine {
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            cpu_model: field(&cpuinfo, "model name").unwrap_or("unknown").to_string(),
            memory_mib: memory_kib / 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            profile: env!("EXCHANGE_BENCH_PROFILE").to_string(),
            commit,
        }
    }
}

/// CPU time a process has used so far (user + system, all threads), in microseconds; 0 when
/// the process is gone.
pub fn cpu_us(pid: u32) -> u64 {
    let stat = read(format!("/proc/{pid}/stat"));
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis,
    // where field 3 (state) is the first; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 1_000_000 / TICKS_PER_SEC
}

/// The peak resident memory of a process (`VmHWM`), MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    field(&read(format!("/proc/{pid}/status")), "VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib as f64 / 1024.0)
        .unwrap_or(0.0)
}

/// The load averages over 1, 5 and 15 minutes (other work on the machine skews every figure).
pub fn load_average() -> String {
    read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Free space of the file system holding `dir`, GiB (from `df`; `None` if it cannot tell).
pub fn free_disk_gib(dir: &Path) -> Option<f64> {
    let out = std::process::Command::new("df").args(["-Pk"]).arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: f64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_a_peak() {
        let pid = std::process::id();
        // Spend CPU until at least one tick is counted (bounded: never a timed assertion).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_us(pid) == 0 {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "no CPU time ever counted");
        }
        assert!(peak_rss_mib(pid) > 0.0);
        assert_eq!(cpu_us(u32::MAX), 0, "a process that does not exist costs nothing");
    }

    #[test]
    fn cpuinfo_fields_are_read_by_name() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(field(text, "model name"), Some("Some CPU @ 2.0GHz"));
        assert_eq!(field(text, "cache size"), None);
    }
}
