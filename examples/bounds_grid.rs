//! Times the bounds calculator on a grid of accepted queries and prints the slowest ones.
//!
//! `cargo run --release --example bounds_grid [-- --timeout SECONDS] [-- --small]`
//!
//! Every grid point runs once, in a child process of its own (this same binary with `--one`),
//! so the process-wide memo of `exact_tail::min_width` never answers from an earlier point, and
//! a query slower than the timeout (default 10 s) is ended and reported as `>= timeout`. The time
//! reported is the child's own measurement of `bounds_answer` (process start-up excluded).
//! `--small` runs a reduced grid (used to time code that is minutes per query).
//!
//! Grid: epsilon 1e-4..1e3, delta 0.3..1e-300, depth 1..100000, samples 1..10^12, width none
//! or 1..10^9.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use widthlab::theory::bounds::{bounds_answer, BoundInputs};

const EPSILONS: [f64; 6] = [1e-4, 1e-2, 0.4, 3.0, 10.0, 1e3];
const DELTAS: [f64; 4] = [0.3, 1e-6, 1e-60, 1e-300];
const DEPTHS: [u32; 3] = [1, 100, 100_000];
const SAMPLES: [u64; 3] = [1, 64, 1_000_000_000_000];
const WIDTHS: [Option<u64>; 5] = [None, Some(1), Some(1000), Some(4_021_456), Some(1_000_000_000)];

const SMALL_EPSILONS: [f64; 3] = [1e-4, 0.4, 1e3];
const SMALL_DELTAS: [f64; 2] = [0.05, 1e-300];
const SMALL_WIDTHS: [Option<u64>; 3] = [None, Some(4_021_456), Some(1_000_000_000)];

type Query = (f64, f64, u32, u64, Option<u64>);

fn grid(small: bool) -> Vec<Query> {
    let (eps, deltas, widths): (&[f64], &[f64], &[Option<u64>]) = if small {
        (&SMALL_EPSILONS, &SMALL_DELTAS, &SMALL_WIDTHS)
    } else {
        (&EPSILONS, &DELTAS, &WIDTHS)
    };
    let mut out = Vec::new();
    for &e in eps {
        for &d in deltas {
            for &l in &DEPTHS {
                for &n in &SAMPLES {
                    for &w in widths {
                        out.push((e, d, l, n, w));
                    }
                }
            }
        }
    }
    out
}

/// Child mode: evaluate one query, print `seconds finite_or_not` on stdout.
fn one(args: &[String]) -> Result<(), String> {
    let num = |i: usize| args.get(i).ok_or_else(|| format!("missing argument {i}"));
    let epsilon: f64 = num(0)?.parse().map_err(|e| format!("epsilon: {e}"))?;
    let delta: f64 = num(1)?.parse().map_err(|e| format!("delta: {e}"))?;
    let depth: u32 = num(2)?.parse().map_err(|e| format!("depth: {e}"))?;
    let samples: u64 = num(3)?.parse().map_err(|e| format!("samples: {e}"))?;
    let width: Option<u64> = match num(4)?.as_str() {
        "-" => None,
        w => Some(w.parse().map_err(|e| format!("width: {e}"))?),
    };
    let inputs = BoundInputs::new(epsilon, delta, depth, samples).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let answer = bounds_answer(&inputs, width);
    let seconds = start.elapsed().as_secs_f64();
    // A number serialized as JSON null is a non-finite f64 that slipped through.
    let json = serde_json::to_value(&answer).map_err(|e| e.to_string())?;
    let nulls = count_nonfinite(&json, &answer);
    println!("{seconds} {nulls}");
    Ok(())
}

/// Fields that are numbers in Rust but came out as JSON null although the Rust value is `Some`
/// (or a plain f64): the signature of an infinity or NaN.
fn count_nonfinite(json: &serde_json::Value, answer: &widthlab::theory::bounds::BoundsAnswer) -> usize {
    let mut bad = 0;
    if json["inputs"]["log_term"].is_null() || json["inputs"]["epsilon_prime"].is_null() {
        bad += 1;
    }
    for (b, r) in json["bounds"].as_array().into_iter().flatten().zip(&answer.bounds) {
        for (field, some) in [
            ("min_width_exact", r.min_width_exact.is_some()),
            ("guaranteed_epsilon", r.guaranteed_epsilon.is_some()),
            ("guaranteed_epsilon_prime", r.guaranteed_epsilon_prime.is_some()),
        ] {
            if some && b[field].is_null() {
                bad += 1;
            }
        }
        if b["epsilon_prime"].is_null() {
            bad += 1;
        }
    }
    bad
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        if let Err(e) = one(&args[1..]) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    let timeout = args
        .iter()
        .position(|a| a == "--timeout")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0);
    let small = args.iter().any(|a| a == "--small");
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("current_exe: {e}");
            std::process::exit(1);
        }
    };
    let queries = grid(small);
    eprintln!("{} queries, timeout {timeout} s each", queries.len());
    // (seconds, timed out, non-finite fields, query)
    let mut results: Vec<(f64, bool, usize, Query)> = Vec::new();
    let wall = Instant::now();
    for (i, &q) in queries.iter().enumerate() {
        let (e, d, l, n, w) = q;
        let w_arg = w.map_or("-".to_string(), |w| w.to_string());
        let mut child = match Command::new(&exe)
            .args([
                "--one",
                &e.to_string(),
                &d.to_string(),
                &l.to_string(),
                &n.to_string(),
                &w_arg,
            ])
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(err) => {
                eprintln!("spawn: {err}");
                std::process::exit(1);
            }
        };
        let started = Instant::now();
        let mut timed_out = false;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) => {
                    if started.elapsed().as_secs_f64() > timeout {
                        let _ = child.kill();
                        let _ = child.wait();
                        timed_out = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(err) => {
                    eprintln!("wait: {err}");
                    break;
                }
            }
        }
        let (secs, bad) = if timed_out {
            (timeout, 0)
        } else {
            let out = child
                .wait_with_output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let mut it = out.split_whitespace();
            let secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
            let bad = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            (secs, bad)
        };
        results.push((secs, timed_out, bad, q));
        if (i + 1) % 50 == 0 {
            eprintln!(
                "{} / {} done ({:.0} s)",
                i + 1,
                queries.len(),
                wall.elapsed().as_secs_f64()
            );
        }
    }
    results.sort_by(|a, b| b.0.total_cmp(&a.0));
    let num = |v: f64| {
        if (1e-4..1e6).contains(&v) {
            v.to_string()
        } else {
            format!("{v:e}")
        }
    };
    let fmt = |q: &Query| {
        format!(
            "--epsilon {} --delta {} --depth {} --samples {}{}",
            num(q.0),
            num(q.1),
            q.2,
            q.3,
            q.4.map_or(String::new(), |w| format!(" --width {w}"))
        )
    };
    println!("slowest queries (of {}):", results.len());
    for (secs, timed_out, bad, q) in results.iter().take(15) {
        let t = if *timed_out {
            format!(">= {secs:.3} s (timed out)")
        } else {
            format!("{:.3} ms", secs * 1e3)
        };
        let nf = if *bad > 0 {
            format!("  [{bad} non-finite field(s)]")
        } else {
            String::new()
        };
        println!("  {t:>28}  {}{nf}", fmt(q));
    }
    let timeouts = results.iter().filter(|r| r.1).count();
    let over_100ms = results.iter().filter(|r| r.0 > 0.1).count();
    let nonfinite = results.iter().filter(|r| r.2 > 0).count();
    println!(
        "timed out: {timeouts}; over 100 ms: {over_100ms}; answers with non-finite numbers: {nonfinite}; \
         wall {:.1} s",
        wall.elapsed().as_secs_f64()
    );
}
