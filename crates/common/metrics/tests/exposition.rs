//! Both exports from the one table: Prometheus text checked line by line by a small parser,
//! JSON parsed with serde_json, both compared with the registry's values.

use std::collections::{BTreeMap, HashMap};

use strahl_metrics::*;

/// A minimal Prometheus text-format (0.0.4) checker. Returns series key → value, and fails on
/// anything the format does not allow: unknown comment forms, samples before their TYPE,
/// duplicate TYPE/HELP, bad metric or label names, unquoted/unescaped label values, bad numbers,
/// counters not ending in `_total`.
fn parse_prometheus(text: &str) -> Result<BTreeMap<String, f64>, String> {
    fn valid_name(s: &str) -> bool {
        let mut cs = s.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashMap<String, ()> = HashMap::new();
    let mut samples = BTreeMap::new();
    if !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (what, name, tail) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next(),
            );
            if !valid_name(name) {
                return Err(format!("line {n}: bad metric name {name:?}"));
            }
            match what {
                "HELP" => {
                    let help = tail.ok_or(format!("line {n}: HELP without text"))?;
                    // Only \\ and \n escapes are allowed in HELP.
                    let mut it = help.chars();
                    while let Some(c) = it.next() {
                        if c == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
                            return Err(format!("line {n}: bad escape in HELP"));
                        }
                    }
                    if helps.insert(name.into(), ()).is_some() {
                        return Err(format!("line {n}: second HELP for {name}"));
                    }
                    if types.contains_key(name) {
                        return Err(format!("line {n}: HELP after TYPE for {name}"));
                    }
                }
                "TYPE" => {
                    let t = tail.ok_or(format!("line {n}: TYPE without type"))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(format!("line {n}: unknown type {t}"));
                    }
                    if t == "counter" && !name.ends_with("_total") {
                        return Err(format!("line {n}: counter {name} must end in _total"));
                    }
                    if types.insert(name.into(), t.into()).is_some() {
                        return Err(format!("line {n}: second TYPE for {name}"));
                    }
                }
                _ => return Err(format!("line {n}: unknown comment {what}")),
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("line {n}: stray line {line:?}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("line {n}: no value"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("line {n}: bad value {value:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                Some(
                    rest.strip_suffix('}')
                        .ok_or(format!("line {n}: unclosed labels"))?,
                ),
            ),
            None => (series, None),
        };
        if !valid_name(name) {
            return Err(format!("line {n}: bad sample name {name:?}"));
        }
        if !types.contains_key(name) {
            return Err(format!("line {n}: sample {name} before its TYPE"));
        }
        if let Some(labels) = labels {
            let mut rest = labels;
            while !rest.is_empty() {
                let (lname, after) = rest
                    .split_once("=\"")
                    .ok_or(format!("line {n}: bad label {rest:?}"))?;
                if !valid_name(lname) || lname.starts_with("__") {
                    return Err(format!("line {n}: bad label name {lname:?}"));
                }
                // Scan the quoted value honouring escapes.
                let mut end = None;
                let mut esc = false;
                for (i, c) in after.char_indices() {
                    match (esc, c) {
                        (true, '\\' | '"' | 'n') => esc = false,
                        (true, _) => return Err(format!("line {n}: bad escape in label value")),
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or(format!("line {n}: unterminated label value"))?;
                rest = &after[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        if samples.insert(series.to_owned(), value).is_some() {
            return Err(format!("line {n}: duplicate series {series}"));
        }
    }
    Ok(samples)
}

fn filled() -> Registry {
    let r = Registry::new();
    for (i, m) in Metric::ALL.iter().enumerate() {
        for s in 0..TABLE[*m as usize].series_count() {
            r.set_at(*m, s, (i * 10 + s + 1) as u64);
        }
    }
    r
}

#[test]
fn table_is_well_formed() {
    assert_eq!(Metric::ALL.len(), TABLE.len());
    let mut names: Vec<_> = TABLE.iter().map(|d| d.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), TABLE.len(), "duplicate metric names");
    for d in TABLE {
        assert!(d.name.starts_with("strahl_"), "{}", d.name);
        assert_eq!(
            d.kind == Kind::Counter,
            d.name.ends_with("_total"),
            "{}",
            d.name
        );
        assert!(!d.help.is_empty());
    }
    assert_eq!(
        SERIES,
        TABLE.iter().map(|d| d.series_count()).sum::<usize>()
    );
}

#[test]
fn prometheus_output_parses_and_matches_the_table() {
    let r = filled();
    let mut text = String::new();
    r.render_prometheus(&mut text);
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(samples.len(), SERIES);
    for (key, v) in r.snapshot() {
        assert_eq!(samples.get(&key).copied(), Some(v as f64), "{key}");
    }
    assert_eq!(text.matches("# TYPE ").count(), TABLE.len());
    assert_eq!(text.matches("# HELP ").count(), TABLE.len());
    assert!(text.contains("strahl_transport_chosen{transport=\"af_xdp\"} "));
}

#[test]
fn checker_rejects_broken_exposition() {
    let bad = [
        "foo 1\n",                                     // no TYPE
        "# TYPE foo counter\nfoo 1\n",                 // counter without _total
        "# TYPE foo_total counter\nfoo_total one\n",   // bad value
        "# TYPE foo gauge\nfoo{a=\"x} 1\n",            // unterminated label
        "# TYPE foo gauge\n# TYPE foo gauge\nfoo 1\n", // duplicate TYPE
        "# TYPE 1foo gauge\n1foo 1\n",                 // bad name
        "# TYPE foo gauge\nfoo 1",                     // no final newline
    ];
    for b in bad {
        assert!(parse_prometheus(b).is_err(), "accepted {b:?}");
    }
}

#[test]
fn json_output_parses_and_matches_the_table() {
    let r = filled();
    let mut text = String::new();
    r.render_json(&mut text);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let metrics = v["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), TABLE.len());
    let snap: HashMap<String, u64> = r.snapshot().into_iter().collect();
    let mut seen = 0;
    for (m, d) in metrics.iter().zip(TABLE) {
        assert_eq!(m["name"], d.name);
        assert_eq!(m["help"], d.help);
        assert_eq!(m["type"], d.kind.as_str());
        let series = m["series"].as_array().unwrap();
        assert_eq!(series.len(), d.series_count());
        for s in series {
            let labels = s["labels"].as_object().unwrap();
            let label = labels
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()));
            let key = series_key(d.name, label);
            assert_eq!(s["value"].as_u64(), snap.get(&key).copied(), "{key}");
            seen += 1;
        }
    }
    assert_eq!(seen, SERIES);
}

#[test]
fn info_gauge_and_labels() {
    let r = Registry::new();
    let i = Registry::label_index(Metric::TransportChosen, "io_uring").unwrap();
    r.set_info(Metric::TransportChosen, i);
    let j = Registry::label_index(Metric::TransportChosen, "sendmmsg").unwrap();
    r.set_info(Metric::TransportChosen, j);
    assert_eq!(r.get_at(Metric::TransportChosen, i), 0);
    assert_eq!(r.get_at(Metric::TransportChosen, j), 1);
    assert_eq!(
        Registry::label_index(Metric::TransportChosen, "carrier_pigeon"),
        None
    );
    r.add(Metric::SessionsActive, 2);
    r.sub(Metric::SessionsActive, 5);
    assert_eq!(
        r.get(Metric::SessionsActive),
        0,
        "gauge subtraction saturates"
    );
}

#[test]
fn snapshot_absorb_round_trip_skips_unknown_keys() {
    let a = filled();
    let mut snap = a.snapshot();
    snap.push(("strahl_from_the_future_total".into(), 5));
    snap.push(("strahl_transport_chosen{transport=\"warp\"}".into(), 1));
    let b = Registry::new();
    assert_eq!(b.absorb(&snap), 2);
    assert_eq!(b.snapshot(), a.snapshot());
}

#[test]
fn concurrent_increments_are_not_lost() {
    let r = Registry::new();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    r.inc(Metric::IpcMessagesReceived);
                    r.add_at(Metric::PacketsSent, 1, 2);
                }
            });
        }
    });
    assert_eq!(r.get(Metric::IpcMessagesReceived), 40_000);
    assert_eq!(r.get_at(Metric::PacketsSent, 1), 80_000);
    assert_eq!(r.get_at(Metric::PacketsSent, 0), 0);
}
