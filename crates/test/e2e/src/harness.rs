//! A minimal test runner for test files built with `harness = false`, for tests that may have to
//! skip at run time (namespace tests without root): libtest can only count such a test as
//! passed, this runner counts it as **ignored** (not run) and prints why.
//!
//! Contract:
//! - Each [`Case`] is a plain function returning [`Outcome`]; a panic is a failure (its message
//!   is printed by the panic hook as under libtest). Cases run one after another, in order, on
//!   the main thread — the e2e cases are CPU-bound streams that must not overlap anyway.
//! - Command line (what `cargo test` passes through): name filters (a case runs when it contains
//!   any of them, or equals one with `--exact`; none: every case), `--list`, `--ignored` (runs nothing: no case is statically ignored),
//!   `--include-ignored`; libtest's output and thread options (`--nocapture`, `--test-threads`,
//!   `-q`, `--color`, `--format`, `--show-output`) are accepted and have no effect. Anything
//!   else is a usage error (exit 2).
//! - Output mirrors libtest's (`test NAME ... ok|FAILED|ignored, REASON`, a summary line), and
//!   the exit code is 101 when a case failed, else 0.

use std::process::ExitCode;
use std::time::Instant;

/// What a case that returned (did not panic) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Not run, with the reason (printed, and counted as ignored).
    Skipped(String),
}

/// One test case.
pub struct Case {
    pub name: &'static str,
    pub run: fn() -> Outcome,
}

struct Args {
    filters: Vec<String>,
    exact: bool,
    list: bool,
    only_ignored: bool,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        filters: Vec::new(),
        exact: false,
        list: false,
        only_ignored: false,
    };
    let mut it = args.peekable();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--exact" => a.exact = true,
            "--list" => a.list = true,
            "--ignored" => a.only_ignored = true,
            "--include-ignored" | "--nocapture" | "--show-output" | "-q" | "--quiet" => {}
            "--test-threads" | "--color" | "--format" | "-Z" => {
                it.next();
            }
            s if s.starts_with("--test-threads=")
                || s.starts_with("--color=")
                || s.starts_with("--format=") => {}
            s if s.starts_with('-') => return Err(format!("unsupported option {s:?}")),
            s => a.filters.push(s.to_owned()),
        }
    }
    Ok(a)
}

/// Runs `cases` under the command line of this process; returns the exit code for `main`.
pub fn run(cases: &[Case]) -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|c| {
            args.filters.is_empty()
                || args.filters.iter().any(|f| {
                    if args.exact {
                        c.name == f
                    } else {
                        c.name.contains(f.as_str())
                    }
                })
        })
        .collect();
    let filtered_out = cases.len() - selected.len();
    if args.list {
        for c in &selected {
            println!("{}: test", c.name);
        }
        return ExitCode::SUCCESS;
    }
    // No case is statically ignored, so `--ignored` selects none of them.
    let selected = if args.only_ignored {
        Vec::new()
    } else {
        selected
    };
    let t0 = Instant::now();
    println!(
        "\nrunning {} test{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    );
    let (mut passed, mut failed, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
    for c in selected {
        let started = Instant::now();
        let r = std::panic::catch_unwind(c.run);
        let secs = started.elapsed().as_secs_f64();
        match r {
            Ok(Outcome::Passed) => {
                println!("test {} ... ok ({secs:.1} s)", c.name);
                passed.push(c.name);
            }
            Ok(Outcome::Skipped(why)) => {
                // Visible in a normal `cargo test` run: the runner never captures output.
                println!("test {} ... ignored, SKIPPED: {why}", c.name);
                ignored.push(c.name);
            }
            Err(_) => {
                println!("test {} ... FAILED ({secs:.1} s)", c.name);
                failed.push(c.name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for f in &failed {
            println!("    {f}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {} ignored; 0 measured; {filtered_out} filtered \
         out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        passed.len(),
        failed.len(),
        ignored.len(),
        t0.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, String> {
        parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn accepts_what_cargo_test_passes_and_refuses_the_rest() {
        let a = p(&[
            "two",
            "--exact",
            "--test-threads",
            "1",
            "--nocapture",
            "one",
        ])
        .unwrap();
        assert_eq!(a.filters, ["two", "one"]);
        assert!(a.exact && !a.list);
        assert!(p(&["--list", "--format=terse"]).unwrap().list);
        assert!(p(&["--bogus"]).is_err());
    }
}
