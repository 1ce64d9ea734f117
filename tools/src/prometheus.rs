//! Before/after deltas of a Prometheus text endpoint (`/metrics` of the gateway and of each
//! worker): counters that moved during a run, and the mean of every histogram observed in it
//! (Δsum / Δcount) — per-stage timings such as the worker's queue wait and inference time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every sample of a scrape: `name{labels}` → value (comments and `# EOF` skipped).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The value follows the labels' closing brace, or the name when there are none.
        let split = match line.rfind('}') {
            Some(close) => close + 1,
            None => line.find(char::is_whitespace).unwrap_or(line.len()),
        };
        let (key, rest) = line.split_at(split);
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.insert(key.to_owned(), v);
        }
    }
    out
}

/// A histogram's observations during the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistogramDelta {
    /// Observations.
    pub count: f64,
    /// Their mean (the histogram's unit; seconds for `_seconds`).
    pub mean: f64,
}

/// What changed on one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Counters (`…_total`) that moved, by how much.
    pub counters: BTreeMap<String, f64>,
    /// Histograms with observations, keyed by `name{labels}` without `_sum`/`_count`.
    pub histograms: BTreeMap<String, HistogramDelta>,
    /// Gauges (anything else but buckets) at the end of the run.
    pub gauges: BTreeMap<String, f64>,
}

/// The difference between two scrapes.
pub fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Delta {
    let moved =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let mut d = Delta::default();
    for (key, &v) in after {
        let (name, labels) = key
            .split_once('{')
            .map_or((key.as_str(), ""), |(n, l)| (n, l));
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}")
        };
        if name.ends_with("_total") {
            let m = moved(key);
            if m != 0.0 {
                d.counters.insert(key.clone(), m);
            }
        } else if let Some(base) = name.strip_suffix("_count") {
            let count = moved(key);
            let sum = moved(&format!("{base}_sum{labels}"));
            if count > 0.0 && after.contains_key(&format!("{base}_sum{labels}")) {
                d.histograms.insert(
                    format!("{base}{labels}"),
                    HistogramDelta {
                        count,
                        mean: sum / count,
                    },
                );
            }
        } else if !name.ends_with("_bucket")
            && !name.ends_with("_sum")
            && !name.ends_with("_created")
        {
            d.gauges.insert(key.clone(), v);
        }
    }
    d
}

/// Scrapes `url` (its text, parsed).
pub async fn scrape(http: &reqwest::Client, url: &str) -> Result<BTreeMap<String, f64>, String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
    Ok(parse(&text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# HELP diglett_gateway_results Results.
# TYPE diglett_gateway_results counter
diglett_gateway_results_total 10
diglett_gateway_windows_dropped_total{reason=\"overloaded\"} 0
diglett_worker_queue_wait_seconds_sum 1.0
diglett_worker_queue_wait_seconds_count 10
diglett_worker_queue_wait_seconds_bucket{le=\"0.005\"} 3
diglett_gateway_sessions_active 0
# EOF
";
    const AFTER: &str = "\
diglett_gateway_results_total 110
diglett_gateway_windows_dropped_total{reason=\"overloaded\"} 0
diglett_gateway_windows_dropped_total{reason=\"timeout\"} 2
diglett_worker_queue_wait_seconds_sum 3.0
diglett_worker_queue_wait_seconds_count 110
diglett_worker_queue_wait_seconds_bucket{le=\"0.005\"} 30
diglett_gateway_result_latency_seconds_sum{mode=\"a b\"} 0.5
diglett_gateway_result_latency_seconds_count{mode=\"a b\"} 5
diglett_gateway_sessions_active 4
";

    #[test]
    fn deltas_of_counters_histograms_and_gauges() {
        let (b, a) = (parse(BEFORE), parse(AFTER));
        assert_eq!(b.len(), 6);
        assert_eq!(
            a["diglett_gateway_result_latency_seconds_sum{mode=\"a b\"}"],
            0.5
        );
        let d = delta(&b, &a);
        assert_eq!(d.counters["diglett_gateway_results_total"], 100.0);
        assert_eq!(
            d.counters["diglett_gateway_windows_dropped_total{reason=\"timeout\"}"],
            2.0
        );
        assert!(
            !d.counters
                .contains_key("diglett_gateway_windows_dropped_total{reason=\"overloaded\"}")
        );
        let q = d.histograms["diglett_worker_queue_wait_seconds"];
        assert_eq!(q.count, 100.0);
        assert!((q.mean - 0.02).abs() < 1e-12);
        let l = d.histograms["diglett_gateway_result_latency_seconds{mode=\"a b\"}"];
        assert!((l.mean - 0.1).abs() < 1e-12);
        assert_eq!(d.gauges["diglett_gateway_sessions_active"], 4.0);
        assert_eq!(d.gauges.len(), 1);
    }
}
