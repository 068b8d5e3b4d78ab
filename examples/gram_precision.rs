//! How far the f32 results of an engine are from its f64 results on the same random draws
//! (an f32 draw is the f64 draw rounded), per sample, for the Gram sampler and, as the yardstick,
//! the dense engine. Also times both precisions of each engine.
//!
//! The Gram sampler runs here in f32 at every shape, also where `plan::gram_precision` would
//! keep an f32 spec in f64 (B > n0 / 2 or B > width / 4), to show why it does.
//!
//! `cargo run --release --example gram_precision [TRIALS] [n0,L,width,B ...]` prints one line per
//! shape (the built-in list, or the shapes given) and engine:
//! the largest and the median relative difference |r32 - r64| / r64 over every sample, layer and
//! network, forward and gradient ratios, and the seconds of one f32 and one f64 run.

use std::time::Instant;

use serde_json::json;
use widthlab::sim::real::Real;
use widthlab::sim::rng::trial_rng;
use widthlab::sim::{dense, exact, Passes, TrialRatios};
use widthlab::spec::{parse_spec, Limits};

/// Every trial of one shape through one engine at precision `T` (products on both threads,
/// as a single-network job runs them); the seconds it took.
fn run<T: Real>(
    n0: usize,
    depth: usize,
    width: usize,
    samples: usize,
    trials: usize,
    gram: bool,
) -> (Vec<TrialRatios>, f64) {
    let v = json!({"network": {"input_dim": n0, "depth": depth, "width": width, "init": {"scheme": "he", "fan": "out"}},
                   "samples": samples});
    let limits = Limits {
        max_memory_bytes: 16 << 30,
        max_work: f64::INFINITY,
        ..Limits::default()
    };
    let spec = parse_spec(&v, &limits).expect("a valid spec");
    let par = faer::Par::rayon(rayon::current_num_threads());
    let start = Instant::now();
    let out = (0..trials)
        .map(|t| {
            let mut rng = trial_rng(11, t as u64);
            let (net, input) = (&spec.network, spec.input);
            let mut tick = || Ok(());
            if gram {
                exact::run_trial_gram::<T>(net, samples, input, &mut rng, par, Passes::Both, &mut tick)
            } else {
                dense::run_trial::<T>(net, samples, input, &mut rng, par, Passes::Both, &mut tick)
            }
            .expect("not cancelled")
        })
        .collect();
    (out, start.elapsed().as_secs_f64())
}

/// Largest and median relative difference over finite, positive f64 values.
fn spread(a: impl Iterator<Item = (f64, f64)>) -> (f64, f64, usize) {
    let mut d: Vec<f64> = a
        .filter(|(_, y)| y.is_finite() && *y > 0.0)
        .map(|(x, y)| (x - y).abs() / y)
        .collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    (
        d.last().copied().unwrap_or(f64::NAN),
        d.get(n / 2).copied().unwrap_or(f64::NAN),
        n,
    )
}

fn main() {
    let trials: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    println!(
        "n0    L  width    B  engine      forward max  forward med  gradient max  gradient med  values   f32 s   f64 s"
    );
    // (n0, depth, width, samples): the engine-choice table, the benchmark's Gram workloads, and
    // two where B exceeds the expected number of active units (a singular Gram matrix).
    let given: Vec<(usize, usize, usize, usize)> = std::env::args()
        .skip(2)
        .filter_map(|a| {
            let v: Vec<usize> = a.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 4).then(|| (v[0], v[1], v[2], v[3]))
        })
        .collect();
    let built_in = [
        (500, 10, 1000, 16),
        (500, 10, 1000, 64),
        (500, 10, 1000, 256),
        (100, 50, 1000, 16),
        (1000, 50, 1000, 16),
        (4000, 10, 4000, 64),
        (500, 10, 4000, 256),
        (1000, 10, 1000, 250),
        (1000, 10, 768, 256),
        (500, 10, 300, 128),
        (300, 10, 300, 256),
        (1000, 10, 1000, 900),
    ];
    let shapes = if given.is_empty() { &built_in[..] } else { &given[..] };
    for &(n0, depth, width, b) in shapes {
        for (gram, engine) in [(true, "exact_gram"), (false, "dense")] {
            let (s32, t32) = run::<f32>(n0, depth, width, b, trials, gram);
            let (s64, t64) = run::<f64>(n0, depth, width, b, trials, gram);
            let pairs = |f: fn(&TrialRatios) -> &Vec<f64>| {
                s32.iter()
                    .zip(&s64)
                    .flat_map(move |(a, b)| f(a).iter().copied().zip(f(b).iter().copied()))
                    .collect::<Vec<_>>()
            };
            let (fmax, fmed, n) = spread(pairs(|t| &t.forward).into_iter());
            let (gmax, gmed, _) = spread(pairs(|t| &t.gradient).into_iter());
            println!(
                "{n0:<5} {depth:>2} {width:>6} {b:>4}  {engine:<11} {fmax:>11.2e}  {fmed:>11.2e}  {gmax:>12.2e}  {gmed:>12.2e}  {n:>6}  {t32:>6.3}  {t64:>6.3}"
            );
        }
    }
}
