//! `image/install.manifest`: one line per installed file — profile, mode, source, destination.
//! `image/install.sh` is what installs it; this reader lets the tests check it.

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub profile: String,
    pub mode: u32,
    /// Repository-relative path, or `@bin/NAME` for a release binary.
    pub source: String,
    pub dest: String,
}

/// The profiles a line may name.
pub const PROFILES: [&str; 3] = ["core", "dataplane", "headless"];

/// Parses the manifest; every malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [profile, mode, source, dest] = f[..] else {
            return Err(format!("line {}: expected 4 fields: {raw}", i + 1));
        };
        if !PROFILES.contains(&profile) {
            return Err(format!("line {}: unknown profile {profile}", i + 1));
        }
        let mode = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| *m <= 0o7777 && mode.len() == 4)
            .ok_or_else(|| format!("line {}: mode {mode} is not 4 octal digits", i + 1))?;
        out.push(Entry {
            line: i + 1,
            profile: profile.into(),
            mode,
            source: source.into(),
            dest: dest.into(),
        });
    }
    Ok(out)
}
