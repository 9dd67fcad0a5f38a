//! A small runner for `harness = false` test files whose cases need the lab: libtest can only
//! count a test that finds no lab as passed; this counts it as **ignored** and prints
//! `SKIPPED` with the reason — or, under CI, as failed (the lab must run there).
//!
//! Contract: cases run in order on the main thread (each boots guests; TCG wants the CPUs);
//! a panic is a failure; [`skip`] ends a case as not run. Command line as `cargo test` passes
//! it: name filters (substring, or equality with `--exact`), `--skip NAME`, `--list`;
//! `--ignored` runs nothing; libtest's output/thread options are accepted and ignored. Exit
//! code 101 when a case failed, else 0.

use std::process::ExitCode;
use std::time::Instant;

use crate::Lab;

/// The payload of [`skip`]: recognised by [`run`], never a failure outside CI.
struct Skipped(String);

/// Ends the running case as not run (e.g. it needs root for a namespace): printed as
/// `ignored, SKIPPED: why` — a failure under CI, where everything must run. Unwinds without the
/// panic hook, so nothing is printed as a panic.
pub fn skip(why: impl Into<String>) -> ! {
    std::panic::resume_unwind(Box::new(Skipped(why.into())))
}

/// One case: a name and a function given the detected lab.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Lab),
}

/// Runs `cases` under this process's command line; returns `main`'s exit code.
pub fn run(cases: &[Case]) -> ExitCode {
    let (mut filters, mut exact, mut list, mut none) = (Vec::new(), false, false, false);
    let mut skips = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => none = true,
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--color" | "--format" | "-Z" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => filters.push(s.to_owned()),
        }
    }
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|c| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        c.name == f
                    } else {
                        c.name.contains(f.as_str())
                    }
                })
        })
        .filter(|c| !skips.iter().any(|s| c.name.contains(s.as_str())))
        .filter(|_| !none)
        .collect();
    if list {
        for c in &selected {
            println!("{}: test", c.name);
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} tests", selected.len());
    let t0 = Instant::now();
    let lab = if selected.is_empty() {
        Err(crate::NotAvailable {
            why: "no case selected".into(),
        })
    } else {
        Lab::detect()
    };
    let (mut passed, mut failed, mut ignored) = (0, Vec::new(), 0);
    for c in &selected {
        let started = Instant::now();
        match &lab {
            Err(e) if crate::in_ci() => {
                println!("test {} ... FAILED: {e} (required under CI)", c.name);
                failed.push(c.name);
            }
            Err(e) => {
                println!("test {} ... ignored, SKIPPED: {e}", c.name);
                ignored += 1;
            }
            Ok(lab) => {
                let r = std::panic::catch_unwind(|| (c.run)(lab));
                let secs = started.elapsed().as_secs_f64();
                match r {
                    Ok(()) => {
                        println!("test {} ... ok ({secs:.1} s)", c.name);
                        passed += 1;
                    }
                    Err(p) => match p.downcast::<Skipped>() {
                        Ok(s) if !crate::in_ci() => {
                            println!("test {} ... ignored, SKIPPED: {}", c.name, s.0);
                            ignored += 1;
                        }
                        Ok(s) => {
                            println!("test {} ... FAILED: {} (required under CI)", c.name, s.0);
                            failed.push(c.name);
                        }
                        Err(_) => {
                            println!("test {} ... FAILED ({secs:.1} s)", c.name);
                            failed.push(c.name);
                        }
                    },
                }
            }
        }
    }
    for f in &failed {
        println!("failed: {f}");
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored; 0 measured; {} \
         filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        cases.len() - selected.len(),
        t0.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
