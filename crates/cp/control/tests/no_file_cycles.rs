//! House rule: no two files of a control-plane crate import each other. Checked over the files
//! on disk for `strahl-control` and `strahl-status` (crates/cp/{control,status}/src).
//!
//! What counts as "file A imports file B": any path in A's code (not its comments or strings)
//! that names an item of B — `use crate::b::…`, an inline `crate::b::f(…)`, `super::…`,
//! `self::…`, or a path starting with a child module's name (`use child::X`, `child::f()`),
//! including the first segments of a `use crate::{a::X, b}` group. A path is resolved to the
//! deepest module it names (a `mod x;` file, honouring `#[path = "…"]`, or an inline `mod x {}`,
//! which belongs to its file), so `crate::f` where `f` is a re-export in `lib.rs` is an import
//! of `lib.rs`. Declaring `mod x;` is not an import (a parent owns its children; a child test
//! module's `use super::*` is fine as long as the parent does not import it back).
//!
//! The walk starts at `lib.rs` and `main.rs` (each its own crate) and follows `mod x;`
//! declarations; a `.rs` file under `src/` that the walk does not reach fails the check, so a
//! file cannot escape it by not being found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

/// Tokens with their line numbers; comments are dropped, string contents kept (for
/// `#[path = "…"]`) but never read as code.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(b[i] == b'\n');
                        i += 1;
                    }
                }
            }
            b'"' => {
                let start_line = line;
                let mut s = String::new();
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    if i < b.len() {
                        line += usize::from(b[i] == b'\n');
                        s.push(b[i] as char);
                    }
                    i += 1;
                }
                i += 1;
                out.push((Tok::Str(s), start_line));
            }
            // Raw strings: r"…", r#"…"#, br#"…"#.
            b'r' | b'b'
                if {
                    let j = i + usize::from(c == b'b' && b.get(i + 1) == Some(&b'r')) + 1;
                    (c == b'r' || b.get(i + 1) == Some(&b'r'))
                        && matches!(b.get(j), Some(b'"') | Some(b'#'))
                        && b[j..].iter().find(|&&x| x != b'#') == Some(&b'"')
                } =>
            {
                i += if c == b'b' { 2 } else { 1 };
                let hashes = b[i..].iter().take_while(|&&x| x == b'#').count();
                i += hashes + 1;
                let mut close = vec![b'"'];
                close.extend(std::iter::repeat_n(b'#', hashes));
                let start_line = line;
                let start = i;
                while i < b.len() && !b[i..].starts_with(&close) {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
                let s = String::from_utf8_lossy(&b[start..i.min(b.len())]).into_owned();
                i += close.len();
                out.push((Tok::Str(s), start_line));
            }
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is skipped
            // as a whole.
            b'\'' => {
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + ch_len) == Some(&b'\'') {
                        i += ch_len + 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push((Tok::PathSep, line));
                i += 2;
            }
            _ if c == b'_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                let word = &src[start..i];
                // Byte strings and raw identifiers: b"…" is a string, r#ident an identifier.
                if word == "b" && b.get(i) == Some(&b'"') {
                    continue;
                }
                out.push((Tok::Ident(word.to_owned()), line));
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or(' ');
                out.push((Tok::Punct(ch), line));
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// One module: the file it lives in, its path from the crate root, its child modules.
#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    children: BTreeMap<String, Vec<String>>,
}

/// A crate's module tree (module path → module) and each file's path references.
#[derive(Default)]
struct CrateScan {
    modules: BTreeMap<Vec<String>, Module>,
    /// (file, module the reference is written in, absolute-or-relative path, line)
    refs: Vec<(PathBuf, Vec<String>, Vec<String>, usize)>,
    files: BTreeSet<PathBuf>,
}

trait Source {
    fn read(&self, path: &Path) -> Option<String>;
}

struct Disk;

impl Source for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

impl Source for BTreeMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Option<String> {
        self.get(path).cloned()
    }
}

/// Scans the crate rooted at `root` (lib.rs or main.rs).
fn scan_crate(src: &dyn Source, root: &Path) -> Result<CrateScan, String> {
    let mut scan = CrateScan::default();
    let mut queue = vec![(root.to_path_buf(), Vec::<String>::new(), true)];
    while let Some((file, modpath, owns_dir)) = queue.pop() {
        let text = src
            .read(&file)
            .ok_or_else(|| format!("cannot read {}", file.display()))?;
        scan.files.insert(file.clone());
        scan.modules.entry(modpath.clone()).or_default().file = file.clone();
        // Directory a plain `mod x;` in this file resolves in.
        let dir = if owns_dir {
            file.parent().unwrap_or(Path::new("")).to_path_buf()
        } else {
            file.with_extension("")
        };
        let toks = lex(&text);
        // The file's own `mod x` declarations first: a path may name a child declared below it.
        let mut d = 0usize;
        for w in toks.windows(2) {
            match (&w[0].0, &w[1].0) {
                (Tok::Punct('{'), _) => d += 1,
                (Tok::Punct('}'), _) => d = d.saturating_sub(1),
                (Tok::Ident(kw), Tok::Ident(name)) if kw == "mod" && d == 0 => {
                    let mut child = modpath.clone();
                    child.push(name.clone());
                    scan.modules
                        .entry(modpath.clone())
                        .or_default()
                        .children
                        .insert(name.clone(), child);
                }
                _ => {}
            }
        }
        // (module path, brace depth at which it closes)
        let mut stack: Vec<(Vec<String>, usize)> = vec![(modpath.clone(), 0)];
        let mut depth = 0usize;
        let mut pending_path: Option<String> = None;
        let mut i = 0;
        while i < toks.len() {
            let here = stack.last().map(|s| s.0.clone()).unwrap_or_default();
            match &toks[i].0 {
                Tok::Punct('#') => {
                    // #[path = "…"]
                    if let (
                        Some(Tok::Punct('[')),
                        Some(Tok::Ident(p)),
                        Some(Tok::Punct('=')),
                        Some(Tok::Str(s)),
                    ) = (
                        toks.get(i + 1).map(|t| &t.0),
                        toks.get(i + 2).map(|t| &t.0),
                        toks.get(i + 3).map(|t| &t.0),
                        toks.get(i + 4).map(|t| &t.0),
                    ) && p == "path"
                    {
                        pending_path = Some(s.clone());
                    }
                    i += 1;
                }
                Tok::Punct('{') => {
                    depth += 1;
                    pending_path = None;
                    i += 1;
                }
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if stack.len() > 1 && stack.last().is_some_and(|s| s.1 == depth) {
                        stack.pop();
                    }
                    pending_path = None;
                    i += 1;
                }
                Tok::Punct(';') => {
                    pending_path = None;
                    i += 1;
                }
                Tok::Ident(kw) if kw == "mod" => {
                    let Some(Tok::Ident(name)) = toks.get(i + 1).map(|t| &t.0) else {
                        i += 1;
                        continue;
                    };
                    let mut child = here.clone();
                    child.push(name.clone());
                    scan.modules
                        .entry(here.clone())
                        .or_default()
                        .children
                        .insert(name.clone(), child.clone());
                    match toks.get(i + 2).map(|t| &t.0) {
                        Some(Tok::Punct(';')) => {
                            if stack.len() > 1 {
                                return Err(format!(
                                    "{}: `mod {name};` inside an inline module is not supported by this check",
                                    file.display()
                                ));
                            }
                            let (path, owns) = match pending_path.take() {
                                Some(p) => (file.parent().unwrap_or(Path::new("")).join(p), false),
                                None => {
                                    let flat = dir.join(format!("{name}.rs"));
                                    if src.read(&flat).is_some() {
                                        (flat, false)
                                    } else {
                                        (dir.join(name).join("mod.rs"), true)
                                    }
                                }
                            };
                            queue.push((path, child, owns));
                            i += 3;
                        }
                        Some(Tok::Punct('{')) => {
                            scan.modules.entry(child.clone()).or_default().file = file.clone();
                            stack.push((child, depth));
                            depth += 1;
                            pending_path = None;
                            i += 3;
                        }
                        _ => i += 1,
                    }
                }
                Tok::Ident(first) if i == 0 || toks[i - 1].0 != Tok::PathSep => {
                    let line = toks[i].1;
                    let starts_path = toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep);
                    let anchored = matches!(first.as_str(), "crate" | "super" | "self");
                    let child_mod = scan
                        .modules
                        .get(&here)
                        .is_some_and(|m| m.children.contains_key(first));
                    if !starts_path || !(anchored || child_mod) {
                        i += 1;
                        continue;
                    }
                    // Collect `a::b::c`, and for a group `a::{x::y, z}` each member's head.
                    let mut segs = vec![first.clone()];
                    let mut j = i + 1;
                    while toks.get(j).map(|t| &t.0) == Some(&Tok::PathSep) {
                        match toks.get(j + 1).map(|t| &t.0) {
                            Some(Tok::Ident(s)) => {
                                segs.push(s.clone());
                                j += 2;
                            }
                            Some(Tok::Punct('{')) => {
                                let (heads, end) = group_heads(&toks, j + 1);
                                for head in heads {
                                    let mut p = segs.clone();
                                    p.extend(head);
                                    scan.refs.push((file.clone(), here.clone(), p, line));
                                }
                                // Past the group: its members are not paths of their own.
                                j = end;
                                break;
                            }
                            _ => break,
                        }
                    }
                    scan.refs.push((file.clone(), here.clone(), segs, line));
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }
    Ok(scan)
}

/// The leading `a::b` of each top-level member of the group whose `{` is at `open`, and the
/// index of its closing `}`.
fn group_heads(toks: &[(Tok, usize)], open: usize) -> (Vec<Vec<String>>, usize) {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur: Option<Vec<String>> = Some(Vec::new());
    let mut k = open;
    while k < toks.len() {
        match &toks[k].0 {
            Tok::Punct('{') => {
                depth += 1;
                if depth > 1 {
                    cur = None;
                }
            }
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Punct(',') if depth == 1 => {
                if let Some(c) = cur.take().filter(|c| !c.is_empty()) {
                    out.push(c);
                }
                cur = Some(Vec::new());
            }
            Tok::Ident(s) if depth == 1 => {
                if let Some(c) = cur.as_mut() {
                    let after_sep = k > 0 && toks[k - 1].0 == Tok::PathSep;
                    if c.is_empty() || after_sep {
                        c.push(s.clone());
                    } else {
                        // `as` or a later word: the head is complete.
                        out.push(std::mem::take(c));
                        cur = None;
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
    if let Some(c) = cur.filter(|c| !c.is_empty()) {
        out.push(c);
    }
    (out, k)
}

/// The file a path written in module `here` names (its deepest known module's file).
fn resolve(scan: &CrateScan, here: &[String], segs: &[String]) -> Option<PathBuf> {
    let mut abs: Vec<String> = here.to_vec();
    let mut rest = segs;
    match segs.first().map(String::as_str) {
        Some("crate") => {
            abs.clear();
            rest = &segs[1..];
        }
        Some("self") => rest = &segs[1..],
        _ => {}
    }
    while rest.first().map(String::as_str) == Some("super") {
        abs.pop()?;
        rest = &rest[1..];
    }
    let mut best = scan.modules.get(&abs).map(|m| m.file.clone());
    for s in rest {
        abs.push(s.clone());
        match scan.modules.get(&abs) {
            Some(m) => best = Some(m.file.clone()),
            None => break,
        }
    }
    best
}

/// Every pair of files that import each other, as readable lines.
fn two_cycles(scans: &[CrateScan]) -> Vec<String> {
    // (from, to) → first (line, path) seen.
    let mut edges: BTreeMap<(PathBuf, PathBuf), (usize, String)> = BTreeMap::new();
    for scan in scans {
        for (file, here, segs, line) in &scan.refs {
            if let Some(to) = resolve(scan, here, segs)
                && &to != file
            {
                edges
                    .entry((file.clone(), to))
                    .or_insert((*line, segs.join("::")));
            }
        }
    }
    let mut out = Vec::new();
    // Shown relative to crates/cp (or as given, for the fake trees).
    let short = |p: &Path| {
        let s = p.display().to_string();
        match s.find("/control/src/").or_else(|| s.find("/status/src/")) {
            Some(i) => s[i + 1..].to_owned(),
            None => s,
        }
    };
    for ((a, b), (la, pa)) in &edges {
        if a < b
            && let Some((lb, pb)) = edges.get(&(b.clone(), a.clone()))
        {
            out.push(format!(
                "{} ⇄ {}: {}:{la} uses `{pa}`, {}:{lb} uses `{pb}`",
                short(a),
                short(b),
                short(a),
                short(b)
            ));
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.insert(p);
        }
    }
}

#[test]
fn control_plane_files_never_import_each_other() {
    let cp = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/cp")
        .to_path_buf();
    let mut scans = Vec::new();
    let mut unreached = Vec::new();
    for krate in ["control", "status"] {
        let src = cp.join(krate).join("src");
        let mut reached = BTreeSet::new();
        for root in ["lib.rs", "main.rs"] {
            if src.join(root).exists() {
                let scan = scan_crate(&Disk, &src.join(root)).unwrap_or_else(|e| panic!("{e}"));
                reached.extend(scan.files.iter().cloned());
                scans.push(scan);
            }
        }
        let mut on_disk = BTreeSet::new();
        rs_files(&src, &mut on_disk);
        assert!(
            on_disk.len() > 3,
            "found only {on_disk:?} under {}",
            src.display()
        );
        unreached.extend(on_disk.difference(&reached).cloned());
    }
    assert!(
        unreached.is_empty(),
        "files the module walk did not reach (extend the walk or remove them): {unreached:?}"
    );
    // The walk must see the references it is meant to check, or the test passes vacuously.
    let refs: usize = scans.iter().map(|s| s.refs.len()).sum();
    assert!(refs > 20, "only {refs} module references found");
    let cycles = two_cycles(&scans);
    assert!(
        cycles.is_empty(),
        "files that import each other (move the shared item to where it belongs, or into a \
         small module both use):\n{}",
        cycles.join("\n")
    );
}

fn fake(files: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), (*s).to_owned()))
        .collect()
}

#[test]
fn detects_each_kind_of_two_cycle_and_ignores_what_is_not_an_import() {
    let cases: [(&[(&str, &str)], bool); 7] = [
        // use crate::… both ways.
        (
            &[
                ("s/lib.rs", "mod a;\nmod b;"),
                ("s/a.rs", "use crate::b::B;"),
                ("s/b.rs", "use crate::a::A;"),
            ],
            true,
        ),
        // An inline path one way, a `use` group the other.
        (
            &[
                ("s/lib.rs", "mod a;\nmod b;"),
                ("s/a.rs", "fn f() { crate::b::g(); }"),
                ("s/b.rs", "use crate::{x, a::A};\nmod x {}"),
            ],
            true,
        ),
        // A #[path] child importing its parent that re-exports from it.
        (
            &[
                ("s/lib.rs", "pub mod d;"),
                (
                    "s/d.rs",
                    "#[path = \"d_host.rs\"]\nmod host;\npub use host::X;",
                ),
                ("s/d_host.rs", "use super::*;"),
            ],
            true,
        ),
        // A root re-export named through `crate::item`, by a file the root re-exports from.
        (
            &[
                (
                    "s/lib.rs",
                    "mod m;\nmod r;\npub use m::render;\npub use r::X;",
                ),
                ("s/r.rs", "fn f() { crate::render(); }"),
                ("s/m.rs", ""),
            ],
            true,
        ),
        // One direction only; a child test module's `use super::*` with no way back.
        (
            &[
                ("s/lib.rs", "mod a;\nmod b;"),
                (
                    "s/a.rs",
                    "use crate::b::B;\n#[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod tests;",
                ),
                ("s/a_tests.rs", "use super::*;"),
                ("s/b.rs", "mod tests { use super::*; }"),
            ],
            false,
        ),
        // Comments, strings and doc links are not imports.
        (
            &[
                ("s/lib.rs", "mod a;\nmod b;"),
                ("s/a.rs", "use crate::b::B;"),
                (
                    "s/b.rs",
                    "//! see [`crate::a::A`]\n/* crate::a::A */ const S: &str = \"crate::a::A\";\nconst R: &str = r#\"crate::a\"#; fn f<'a>(c: char) -> bool { c == 'x' }",
                ),
            ],
            false,
        ),
        // `super::` inside an inline module of a file is that file (a self-edge, no cycle).
        (
            &[
                ("s/lib.rs", "mod a;\nmod b;"),
                ("s/a.rs", "use crate::b::B;"),
                ("s/b.rs", "pub struct B;\nmod inner { use super::B; }"),
            ],
            false,
        ),
    ];
    for (n, (files, cyclic)) in cases.iter().enumerate() {
        let src = fake(files);
        let scan = scan_crate(&src, Path::new("s/lib.rs")).unwrap();
        assert_eq!(
            scan.files.len(),
            files.len(),
            "case {n}: every file reached"
        );
        let cycles = two_cycles(&[scan]);
        assert_eq!(!cycles.is_empty(), *cyclic, "case {n}: {cycles:?}");
    }
}
