//! Shared measurement and reporting helpers for every bench subcommand.
//!
//! - [`measure`] runs a closure repeatedly and returns per-iteration durations (after warm-up).
//! - [`Stats`] summarises samples as median / p99 / min (medians are what notes report).
//! - [`Plot`] writes a small self-contained SVG line chart (no external crates, no fonts needed).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Run `f` `warmup` times unmeasured, then `iters` times measured, returning each duration.
pub fn measure(warmup: usize, iters: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
    }
    let mut out = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        out.push(t.elapsed());
    }
    out
}

/// Summary of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stats {
    pub samples: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub min_us: f64,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Stats {
        assert!(!samples.is_empty(), "Stats::of needs at least one sample");
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
        Stats {
            samples: us.len(),
            median_us: pick(0.5),
            p99_us: pick(0.99),
            min_us: us[0],
        }
    }

    /// Throughput in GiB/s for `bytes` processed per iteration, at the median.
    pub fn gib_per_s(&self, bytes: usize) -> f64 {
        bytes as f64 / (1u64 << 30) as f64 / (self.median_us / 1e6)
    }
}

/// One named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A minimal SVG line chart: one or more series on shared axes.
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Log-scale x axis (frame sizes spanning 64 KiB..4 MiB read better that way).
    pub log_x: bool,
    pub series: Vec<Series>,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

impl Plot {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Plot {
        Plot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            series: Vec::new(),
        }
    }

    pub fn series(&mut self, name: &str, points: Vec<(f64, f64)>) {
        self.series.push(Series {
            name: name.into(),
            points,
        });
    }

    /// Render to an SVG document.
    pub fn to_svg(&self) -> String {
        const W: f64 = 900.0;
        const H: f64 = 520.0;
        const L: f64 = 80.0; // left margin
        const R: f64 = 230.0; // legend space
        const T: f64 = 50.0;
        const B: f64 = 60.0;
        let tx = |x: f64| if self.log_x { x.max(1e-12).log2() } else { x };
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            x0 = x0.min(tx(x));
            x1 = x1.max(tx(x));
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= 0.0 {
            y1 = 1.0;
        }
        // Round the axis up to a "nice" step so tick labels read as 0, 20, 40… rather than 21.6.
        let step = nice_step(y1 / 5.0);
        let ticks = (y1 / step).ceil().max(1.0) as usize;
        y1 = step * ticks as f64;
        let px = |x: f64| L + (tx(x) - x0) / (x1 - x0) * (W - L - R);
        let py = |y: f64| H - B - y / y1 * (H - T - B);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>"#,
            (W - R + L) / 2.0,
            esc(&self.title)
        );
        // Axes and grid.
        for i in 0..=ticks {
            let y = step * i as f64;
            let _ = write!(
                s,
                r##"<line x1="{L}" x2="{}" y1="{py}" y2="{py}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                py(y) + 4.0,
                fmt_num(y),
                py = py(y)
            );
        }
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        xs.dedup();
        // Label at most ~12 x positions, skipping any that would overlap the previous label.
        const MIN_LABEL_GAP_PX: f64 = 34.0;
        let mut last_px = f64::NEG_INFINITY;
        for &x in &xs {
            if px(x) - last_px < MIN_LABEL_GAP_PX {
                continue;
            }
            last_px = px(x);
            let _ = write!(
                s,
                r##"<line x1="{px}" x2="{px}" y1="{T}" y2="{}" stroke="#eee"/><text x="{px}" y="{}" text-anchor="middle">{}</text>"##,
                H - B,
                H - B + 16.0,
                fmt_num(x),
                px = px(x)
            );
        }
        let _ = write!(
            s,
            r#"<line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="black"/><line x1="{L}" x2="{}" y1="{}" y2="{}" stroke="black"/>"#,
            H - B,
            W - R,
            H - B,
            H - B
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (W - R + L) / 2.0,
            H - 18.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
            H / 2.0,
            H / 2.0,
            esc(&self.y_label)
        );
        for (i, ser) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = ser
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for &(x, y) in &ser.points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                    px(x),
                    py(y)
                );
            }
            let ly = T + 10.0 + i as f64 * 18.0;
            let _ = write!(
                s,
                r#"<rect x="{}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
                W - R + 14.0,
                ly - 10.0,
                W - R + 32.0,
                ly,
                esc(&ser.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Write the SVG to `path` atomically (temp file + rename).
    pub fn write(&self, path: &std::path::Path) -> Result<(), String> {
        let tmp = path.with_extension("svg.tmp");
        std::fs::write(&tmp, self.to_svg())
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("renaming to {}: {e}", path.display()))
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_pick_median_and_p99() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Stats::of(&d);
        assert_eq!(s.median_us.round(), 51.0);
        assert_eq!(s.p99_us.round(), 99.0);
        assert_eq!(s.min_us.round(), 1.0);
    }

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(21.6), 25.0);
        assert_eq!(nice_step(0.37), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1400.0), 2000.0);
    }

    #[test]
    fn svg_has_every_series() {
        let mut p = Plot::new("t", "x", "y");
        p.log_x = true;
        p.series("a<b", vec![(65536.0, 1.0), (262144.0, 2.0)]);
        p.series("c", vec![(65536.0, 3.0)]);
        let svg = p.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b"));
    }
}
