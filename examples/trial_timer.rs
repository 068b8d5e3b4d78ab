//! Times widthlab's engine on the side-by-side workloads of `bench/` (see bench/README.md).
//!
//! `trial_timer WORKLOAD PRECISION REPS [METHOD] [forward]` prints one JSON line:
//! `{"workload", "precision", "method", "engine", "seconds": [...], "flops"}`. A repetition is
//! one `simulate` call (fresh weights every time: the seed changes per repetition) and, for
//! the sweep, the whole sweep with its per-point summaries. With `forward`, only the forward
//! pass runs (no head, no back-propagation), for the comparison of the engines' forward passes.

use std::time::Instant;

use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;

use widthlab::jobs::kinds::{run_local, runner};
use widthlab::sim::plan::SpecPlan;
use widthlab::sim::{simulate_passes, Control, Passes};
use widthlab::spec::{parse_spec, Limits};

fn spec_for(workload: &str, precision: &str, method: &str, seed: u64) -> Option<Value> {
    let net = |n0: u64, depth: u64, width: u64| json!({"input_dim": n0, "depth": depth, "width": width, "init": {"scheme": "he", "fan": "out"}});
    let (network, samples, trials, kind) = match workload {
        "w1" => (net(500, 10, 1000), 256, 1, "norms"),
        "w2" => (net(512, 50, 512), 128, 1, "norms"),
        "w3" => (net(500, 10, 4000), 2000, 1, "norms"),
        // Many networks, as jobs draw them (the theorems are probabilities over the weights).
        "w1x16" => (net(500, 10, 1000), 256, 16, "norms"),
        "w2x16" => (net(512, 50, 512), 128, 16, "norms"),
        "sweep4x8" => (
            json!({"input_dim": 500, "depth": 10, "widths_to_sweep": [250, 500, 750, 1000], "init": {"scheme": "he", "fan": "out"}}),
            256,
            8,
            "width_sweep",
        ),
        "fig6" => (
            json!({"input_dim": 500, "depth": 10, "widths_to_sweep": [500, 1000, 2000, 4000], "init": {"scheme": "he", "fan": "out"}}),
            2000,
            1,
            "width_sweep",
        ),
        // Scale of the exact samplers.
        "single_1e6" => (net(1_000_000, 100, 1_000_000), 1, 10_000, "norms"),
        "gram_l50" => (net(1000, 50, 1000), 16, 1, "norms"),
        "gram_l10" => (net(4000, 10, 4000), 64, 1, "norms"),
        _ => return None,
    };
    Some(
        json!({"kind": kind, "network": network, "samples": samples, "trials": trials, "seed": seed,
                "precision": precision, "method": method, "epsilon": 0.15, "delta": 0.05}),
    )
}

/// Floating-point operations of one dense trial's matrix products (forward and backward).
fn dense_flops(widths: &[usize], n0: usize, samples: usize) -> f64 {
    let mut fan_in = n0;
    let mut total = 0.0;
    for (i, &w) in widths.iter().enumerate() {
        total += 2.0 * (samples * w * fan_in) as f64; // forward
        if i > 0 {
            total += 2.0 * (samples * w * fan_in) as f64; // backward to layer i
        }
        fan_in = w;
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: trial_timer WORKLOAD PRECISION REPS [METHOD]");
        std::process::exit(2);
    }
    let (workload, precision) = (args[1].as_str(), args[2].as_str());
    let reps: usize = args[3].parse().unwrap_or(3);
    let method = args.get(4).map_or("dense", String::as_str);
    let passes = match args.get(5).map(String::as_str) {
        Some("forward") => Passes::ForwardOnly,
        _ => Passes::Both,
    };
    let limits = Limits {
        max_memory_bytes: 16 << 30,
        max_work: f64::INFINITY,
        ..Limits::default()
    };
    let mut seconds = Vec::new();
    let mut engine = String::new();
    let mut flops = 0.0;
    for rep in 0..reps {
        let Some(v) = spec_for(workload, precision, method, 1000 + rep as u64) else {
            eprintln!("unknown workload {workload}");
            std::process::exit(2);
        };
        let spec = match parse_spec(&v, &limits).and_then(|s| runner(s.kind()).check(&s, &limits).map(|()| s)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        engine = spec.engine().as_str().to_string();
        let start = Instant::now();
        match spec.sweep() {
            None => {
                let sim = simulate_passes(&spec, passes, &Control::none()).expect("not cancelled");
                std::hint::black_box(&sim);
                flops = dense_flops(&spec.network.widths, spec.network.input_dim, spec.samples) * spec.trials as f64;
            }
            Some(sweep) => {
                // The whole job, as the server runs it: every point and the frontier.
                let never = AtomicBool::new(false);
                let finished = run_local(&spec, &limits, &|_, _| {}, &never).expect("not cancelled");
                std::hint::black_box(&finished);
                flops = sweep
                    .points()
                    .iter()
                    .map(|p| dense_flops(&vec![p.width; p.depth], spec.network.input_dim, spec.samples))
                    .sum::<f64>()
                    * spec.trials as f64;
            }
        }
        seconds.push(start.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        json!({"workload": workload, "precision": precision, "method": method, "engine": engine,
               "seconds": seconds, "flops": flops, "passes": format!("{passes:?}")})
    );
}
