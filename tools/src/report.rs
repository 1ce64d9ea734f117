//! `diglett-load report`: a sweep's JSON files (one [`load::Report`] per point) as a Markdown
//! table and a PNG plot of p50/p99 latency and dropped windows against the number of streams,
//! one series per configuration (`label`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::load::Report;

/// Fonts tried for the plot's text, in order (`DIGLETT_PLOT_FONT` first): plotters draws text
/// with ab_glyph from a TrueType file, so nothing is linked from the system.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
/// Plot size (pixels).
const SIZE: (u32, u32) = (1000, 800);

/// Reads every `*.json` load report in `paths` (files, or folders of them).
pub fn read(paths: &[PathBuf]) -> Result<Vec<Report>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
        })
        .collect()
}

/// Series by configuration label (first-seen order kept by sorting labels), each sorted by
/// stream count.
fn series(reports: &[Report]) -> BTreeMap<String, Vec<&Report>> {
    let mut by: BTreeMap<String, Vec<&Report>> = BTreeMap::new();
    for r in reports {
        by.entry(r.label.clone()).or_default().push(r);
    }
    for v in by.values_mut() {
        v.sort_by_key(|r| r.streams);
    }
    by
}

fn process<'a>(r: &'a Report, prefix: &str) -> Vec<&'a crate::procstat::ProcessReport> {
    r.processes
        .iter()
        .filter(|p| p.label.starts_with(prefix))
        .collect()
}

/// A histogram's mean over every endpoint of a run (count-weighted), e.g. the workers'
/// `diglett_worker_queue_wait_seconds`; `None` if no endpoint observed it.
pub fn stage_mean(r: &Report, histogram: &str) -> Option<f64> {
    let (mut n, mut total) = (0.0, 0.0);
    for d in r.metrics.values() {
        for (key, h) in &d.histograms {
            if key.split('{').next() == Some(histogram) {
                n += h.count;
                total += h.count * h.mean;
            }
        }
    }
    (n > 0.0).then(|| total / n)
}

/// The Markdown table: one row per run.
pub fn markdown(reports: &[Report]) -> String {
    let mut s = String::from(
        "| configuration | streams | results/s | p50 ms | p90 ms | p99 ms | max ms | dropped | missing | failed sessions | gateway CPU % | gateway RSS peak MiB | gateway KiB/stream | worker CPU % | worker RSS peak MiB | load generator CPU % | worker queue wait ms | worker batch | worker ms per batch |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (label, runs) in series(reports) {
        for r in runs {
            let gw = process(r, "gateway");
            let workers = process(r, "worker");
            let me = process(r, "diglett-load");
            let cpu = |ps: &[&crate::procstat::ProcessReport]| {
                joined(ps, " + ", |p| format!("{:.0}", p.cpu_percent))
            };
            let rss = |ps: &[&crate::procstat::ProcessReport]| {
                joined(ps, " / ", |p| format!("{:.0}", p.rss_peak_mib))
            };
            let l = &r.latency_ms;
            let stage = |name: &str, scale: f64| {
                stage_mean(r, name).map_or_else(|| "–".to_owned(), |m| format!("{:.1}", m * scale))
            };
            s += &format!(
                "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.streams,
                r.results_per_s,
                l.p50,
                l.p90,
                l.p99,
                l.max,
                r.dropped,
                r.missing,
                r.sessions_failed,
                cpu(&gw),
                rss(&gw),
                r.gateway_kib_per_stream
                    .map_or_else(|| "–".to_owned(), |k| format!("{k:.0}")),
                cpu(&workers),
                rss(&workers),
                cpu(&me),
                stage("diglett_worker_queue_wait_seconds", 1000.0),
                stage("diglett_worker_batch_size", 1.0),
                stage("diglett_worker_window_inference_seconds", 1000.0),
            );
        }
    }
    s
}

/// Registers a TrueType font as plotters' `sans-serif`.
fn register_font() -> Result<(), String> {
    let mut tried = Vec::new();
    let env = std::env::var("DIGLETT_PLOT_FONT").ok();
    for path in env.iter().map(String::as_str).chain(FONT_CANDIDATES) {
        let Ok(bytes) = std::fs::read(path) else {
            tried.push(path.to_owned());
            continue;
        };
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path}: not a usable TrueType font"));
    }
    Err(format!(
        "no font for the plot's text (tried {}); set DIGLETT_PLOT_FONT to a .ttf file",
        tried.join(", ")
    ))
}

/// Draws the plot: p50 (dashed) and p99 (solid) latency on top, dropped + missing windows
/// below, against the number of streams, one colour per configuration.
pub fn plot(reports: &[Report], out: &Path, title: &str) -> Result<(), String> {
    register_font()?;
    let by = series(reports);
    let max_n = reports.iter().map(|r| r.streams).max().unwrap_or(1).max(1) as f64;
    let max_ms = reports
        .iter()
        .map(|r| r.latency_ms.p99)
        .fold(0.0f64, f64::max)
        .max(100.0)
        * 1.1;
    let max_drop = reports
        .iter()
        .map(|r| (r.dropped + r.missing) as f64)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", out.display());
    let root = BitMapBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|x| e(&x))?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 6 / 10);
    let colours = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];

    let caption = "latency, last sample sent → result (solid p99, dashed p50)";
    let mut chart = panel(&top, caption, max_n, (max_ms, "ms")).map_err(|x| e(&x))?;
    for (i, (label, runs)) in by.iter().enumerate() {
        let c = colours[i % colours.len()];
        let p99: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.streams as f64, r.latency_ms.p99))
            .collect();
        let p50: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.streams as f64, r.latency_ms.p50))
            .collect();
        chart
            .draw_series(LineSeries::new(p99.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(p99.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(DashedLineSeries::new(p50.clone(), 6, 4, c.stroke_width(1)))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(p50.iter().map(|&p| Circle::new(p, 3, c)))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;

    let caption = "windows dropped or missing";
    let mut chart = panel(&bottom, caption, max_n, (max_drop, "windows")).map_err(|x| e(&x))?;
    for (i, runs) in by.values().enumerate() {
        let c = colours[i % colours.len()];
        let pts: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.streams as f64, (r.dropped + r.missing) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// A linear axis of the plot.
type Axis = plotters::coord::types::RangedCoordf64;
/// One panel of the plot, drawn on a bitmap.
type Panel<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>;

/// One panel of the plot: concurrent streams (0 to `max_n`) across, `y` = (its top, its unit)
/// up, axes drawn.
fn panel<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    max_n: f64,
    (max_y, unit): (f64, &str),
) -> Result<Panel<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .caption(caption, ("sans-serif", 16))
        .build_cartesian_2d(0.0..max_n * 1.05, 0.0..max_y)
        .map_err(|x| x.to_string())?;
    chart
        .configure_mesh()
        .x_desc("concurrent streams")
        .y_desc(unit)
        .draw()
        .map_err(|x| x.to_string())?;
    Ok(chart)
}

/// One figure per process joined by `sep`, or "–" when no such process was watched.
fn joined(
    ps: &[&crate::procstat::ProcessReport],
    sep: &str,
    figure: impl Fn(&crate::procstat::ProcessReport) -> String,
) -> String {
    if ps.is_empty() {
        "–".to_owned()
    } else {
        ps.iter().map(|p| figure(p)).collect::<Vec<_>>().join(sep)
    }
}
