//! CPU time and resident memory of processes, sampled from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (Linux).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A process to watch: a label for the report and its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// e.g. `gateway`, `worker`.
    pub label: String,
    /// Its pid.
    pub pid: u32,
}

/// Resolves `LABEL=PID`, `LABEL=NAME` or `NAME` (a process name as in `/proc/<pid>/comm`,
/// every match; labels of several matches get `#1`, `#2`, …).
pub fn resolve(spec: &str) -> Result<Vec<Watched>, String> {
    let (label, what) = spec.split_once('=').unwrap_or((spec, spec));
    if label.is_empty() || what.is_empty() {
        return Err(format!(
            "bad process {spec:?}: expected LABEL=PID, LABEL=NAME or NAME"
        ));
    }
    if let Ok(pid) = what.parse::<u32>() {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("no process {pid} ({label})"));
        }
        return Ok(vec![Watched {
            label: label.to_owned(),
            pid,
        }]);
    }
    // The kernel keeps the first 15 bytes of a name in `comm`.
    let name: String = what.chars().take(15).collect();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect();
    pids.sort_unstable();
    match pids.as_slice() {
        [] => Err(format!("no process named {what:?}")),
        [pid] => Ok(vec![Watched {
            label: label.to_owned(),
            pid: *pid,
        }]),
        many => Ok(many
            .iter()
            .enumerate()
            .map(|(i, &pid)| Watched {
                label: format!("{label}#{}", i + 1),
                pid,
            })
            .collect()),
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When.
    pub at: Instant,
    /// User + system CPU time so far, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set (KiB).
    pub rss_kib: u64,
}

/// `utime + stime` (ticks) from the text of `/proc/<pid>/stat`.
pub fn parse_stat(stat: &str) -> Option<u64> {
    // The name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` (KiB) from the text of `/proc/<pid>/status`.
pub fn parse_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Reads a process now; `None` if it is gone.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Reading {
        at: Instant::now(),
        cpu_ticks: parse_stat(&stat)?,
        rss_kib: parse_rss(&status)?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, Linux's USER_HZ, if that fails).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// A process's figures over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Label.
    pub label: String,
    /// Pid.
    pub pid: u32,
    /// CPU over the run, % of one core (200% = both cores of a 2-core machine).
    pub cpu_percent: f64,
    /// Highest CPU over one sampling interval, % of one core.
    pub cpu_percent_peak: f64,
    /// Resident memory before the sessions opened (MiB).
    pub rss_idle_mib: f64,
    /// Mean resident memory during the run (MiB).
    pub rss_mean_mib: f64,
    /// Highest resident memory sampled during the run (MiB).
    pub rss_peak_mib: f64,
}

/// Samples of one process: the idle reading, then one per interval during the run.
#[derive(Debug, Clone)]
pub struct Series {
    /// What.
    pub watched: Watched,
    /// Before the run.
    pub idle: Option<Reading>,
    /// During the run, in time order.
    pub run: Vec<Reading>,
}

impl Series {
    /// The figures (`None` without two readings in the run).
    pub fn report(&self, ticks_per_s: u64) -> Option<ProcessReport> {
        let (first, last) = (self.run.first()?, self.run.last()?);
        let cpu = |a: &Reading, b: &Reading| {
            let wall = b.at.saturating_duration_since(a.at).as_secs_f64();
            if wall <= 0.0 {
                return 0.0;
            }
            100.0 * b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / ticks_per_s as f64 / wall
        };
        if self.run.len() < 2 {
            return None;
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        Some(ProcessReport {
            label: self.watched.label.clone(),
            pid: self.watched.pid,
            cpu_percent: cpu(first, last),
            cpu_percent_peak: self
                .run
                .windows(2)
                .map(|w| cpu(&w[0], &w[1]))
                .fold(0.0, f64::max),
            rss_idle_mib: mib(self.idle.map_or(first.rss_kib, |r| r.rss_kib)),
            rss_mean_mib: mib(self.run.iter().map(|r| r.rss_kib).sum::<u64>())
                / self.run.len() as f64,
            rss_peak_mib: mib(self.run.iter().map(|r| r.rss_kib).max().unwrap_or(0)),
        })
    }
}

/// Samples `watched` every `every` until `stop` resolves; returns one series per process.
pub async fn sample(
    watched: Vec<Watched>,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Vec<Series> {
    let mut series: Vec<Series> = watched
        .into_iter()
        .map(|w| Series {
            idle: read(w.pid),
            watched: w,
            run: Vec::new(),
        })
        .collect();
    let mut tick = tokio::time::interval(every);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {
                for s in &mut series {
                    if let Some(r) = read(s.watched.pid) {
                        s.run.push(r);
                    }
                }
            }
        }
    }
    for s in &mut series {
        if let Some(r) = read(s.watched.pid) {
            s.run.push(r);
        }
    }
    series
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_parse() {
        let stat = "1234 (diglett (x) y) S 1 1234 1234 0 -1 4194560 2000 0 0 0 \
                    150 25 0 0 20 0 9 0 100 1000000 5000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(175));
        assert_eq!(parse_stat("garbage"), None);
        let status =
            "Name:\tdiglett-gateway\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(parse_rss(status), Some(51_234));
        assert_eq!(parse_rss("Name: x\n"), None);
    }

    #[test]
    fn this_process_is_readable_and_resolvable() {
        let me = std::process::id();
        let r = read(me).unwrap();
        assert!(r.rss_kib > 0);
        let w = resolve(&format!("me={me}")).unwrap();
        assert_eq!(
            w,
            [Watched {
                label: "me".into(),
                pid: me
            }]
        );
        assert!(resolve("=1").is_err());
        assert!(resolve("no-such-process-name-at-all").is_err());
        assert!(clock_ticks() > 0);
    }

    #[test]
    fn series_report() {
        let t = Instant::now();
        let at = |ms: u64, ticks: u64, rss: u64| Reading {
            at: t + Duration::from_millis(ms),
            cpu_ticks: ticks,
            rss_kib: rss,
        };
        let s = Series {
            watched: Watched {
                label: "gateway".into(),
                pid: 1,
            },
            idle: Some(at(0, 0, 1024)),
            // 100 ticks/s: 50 ticks in the first second (50%), 150 in the next (150%).
            run: vec![at(0, 0, 2048), at(1000, 50, 4096), at(2000, 200, 3072)],
        };
        let r = s.report(100).unwrap();
        assert!((r.cpu_percent - 100.0).abs() < 1e-9, "{r:?}");
        assert!((r.cpu_percent_peak - 150.0).abs() < 1e-9, "{r:?}");
        assert!((r.rss_idle_mib - 1.0).abs() < 1e-9);
        assert!((r.rss_peak_mib - 4.0).abs() < 1e-9);
        assert!((r.rss_mean_mib - 3.0).abs() < 1e-9);
        assert!(Series { run: vec![], ..s }.report(100).is_none());
    }
}
