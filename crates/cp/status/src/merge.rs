//! One Prometheus exposition from several registries of the same table.
//!
//! Contract: the control plane mirrors the data plane's registry (received as IPC stats
//! snapshots) next to its own; both declare the same metric names, so concatenating two
//! `render_prometheus` outputs would repeat `# HELP`/`# TYPE` and the same series — invalid
//! exposition. [`render_merged`] writes each metric family once and each series once per
//! source, told apart by a [`PROCESS_LABEL`] label (placed first, before the metric's own).

use std::fmt::Write as _;

use strahl_metrics::{Registry, TABLE, escape_help, escape_label_value};

/// Label naming the process a series comes from ("control", "dataplane").
pub const PROCESS_LABEL: &str = "process";

/// One series: (metric index in `TABLE`, label, value).
type Series = (usize, Option<(&'static str, &'static str)>, u64);

/// Prometheus text (format 0.0.4) of every `(process, registry)` source, appended to `out`.
pub fn render_merged(sources: &[(&str, &Registry)], out: &mut String) {
    // Collect each source's series in table order: (metric index, label, value).
    let per_source: Vec<Vec<Series>> = sources
        .iter()
        .map(|(_, reg)| {
            let mut v = Vec::with_capacity(strahl_metrics::SERIES);
            let mut idx = 0usize;
            let mut last = "";
            reg.for_each_series(|d, label, value| {
                if d.name != last && !last.is_empty() {
                    idx += 1;
                }
                last = d.name;
                v.push((idx, label, value));
            });
            v
        })
        .collect();
    for (i, d) in TABLE.iter().enumerate() {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", d.name, escape_help(d.help));
        let _ = writeln!(out, "# TYPE {} {}", d.name, d.kind.as_str());
        for ((process, _), series) in sources.iter().zip(&per_source) {
            for (_, label, value) in series.iter().filter(|(m, _, _)| *m == i) {
                let _ = write!(
                    out,
                    "{}{{{PROCESS_LABEL}=\"{}\"",
                    d.name,
                    escape_label_value(process)
                );
                if let Some((l, lv)) = label {
                    let _ = write!(out, ",{l}=\"{}\"", escape_label_value(lv));
                }
                let _ = writeln!(out, "}} {value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strahl_metrics::Metric;

    #[test]
    fn each_family_once_each_series_per_process() {
        let a = Registry::new();
        let b = Registry::new();
        a.add(Metric::IpcMessagesReceived, 3);
        b.add(Metric::IpcMessagesReceived, 7);
        let video = Registry::label_index(Metric::PacketsSent, "video").unwrap();
        b.add_at(Metric::PacketsSent, video, 42);
        let mut s = String::new();
        render_merged(&[("control", &a), ("dataplane", &b)], &mut s);
        let name = TABLE[Metric::IpcMessagesReceived as usize].name;
        assert_eq!(s.matches(&format!("# TYPE {name} ")).count(), 1);
        assert!(
            s.contains(&format!("{name}{{process=\"control\"}} 3\n")),
            "{s}"
        );
        assert!(s.contains(&format!("{name}{{process=\"dataplane\"}} 7\n")));
        let pkts = TABLE[Metric::PacketsSent as usize].name;
        assert!(s.contains(&format!(
            "{pkts}{{process=\"dataplane\",stream=\"video\"}} 42\n"
        )));
        assert!(s.contains(&format!(
            "{pkts}{{process=\"control\",stream=\"video\"}} 0\n"
        )));
        // Every series of both registries is present exactly once.
        let samples = s.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 2 * strahl_metrics::SERIES);
        assert_eq!(
            s.lines().filter(|l| l.starts_with("# HELP")).count(),
            TABLE.len()
        );
    }
}
