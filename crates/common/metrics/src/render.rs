//! Prometheus text and JSON rendering, both driven by `Registry::for_each_series` over the one
//! table.

use std::fmt::Write as _;

use crate::Registry;

/// `# HELP` text escaping: backslash and newline.
pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label value escaping: backslash, double quote and newline.
pub fn escape_label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// JSON string body escaping (without the surrounding quotes).
pub fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn prometheus(reg: &Registry, out: &mut String) {
    let mut last = "";
    reg.for_each_series(|d, label, v| {
        if d.name != last {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {} {}", d.name, escape_help(d.help));
            let _ = writeln!(out, "# TYPE {} {}", d.name, d.kind.as_str());
            last = d.name;
        }
        let _ = writeln!(out, "{} {v}", crate::series_key(d.name, label));
    });
}

pub(crate) fn json(reg: &Registry, out: &mut String) {
    out.push_str("{\"metrics\":[");
    let mut last = "";
    let mut first_metric = true;
    let mut first_series = true;
    reg.for_each_series(|d, label, v| {
        if d.name != last {
            if !first_metric {
                out.push_str("]}");
                out.push(',');
            }
            first_metric = false;
            first_series = true;
            let _ = write!(
                out,
                "{{\"name\":\"{}\",\"help\":\"{}\",\"type\":\"{}\",\"series\":[",
                escape_json(d.name),
                escape_json(d.help),
                d.kind.as_str()
            );
            last = d.name;
        }
        if !first_series {
            out.push(',');
        }
        first_series = false;
        out.push_str("{\"labels\":{");
        if let Some((l, lv)) = label {
            let _ = write!(out, "\"{}\":\"{}\"", escape_json(l), escape_json(lv));
        }
        let _ = write!(out, "}},\"value\":{v}}}");
    });
    if !first_metric {
        out.push_str("]}");
    }
    out.push_str("]}");
}
