//! One full trial (draw a he/out network, push every sample forward, back-propagate) through the
//! public API: `simulate` of a spec with `trials = 1`.
//!
//! Shapes: (n0 = 500, L = 10, m = 1000, 256 samples), the paper's depth at a wide width, and
//! (n0 = 512, L = 50, m = 512, 128 samples), a deep network; each in f32 and f64.
//! Run with `cargo bench --bench trial` (a few minutes: 10 samples per benchmark).
//!
//! Group `default_method`: whole simulations with the default `method: auto`, as users submit
//! them, at shapes where it picks each engine (the benchmark's name says which it picked):
//! dense at (500, 10, 1000, 256 samples), the Gram sampler at (500, 10, 1000, 64 samples, 8
//! networks) and at (1000, 50, 1000, 16 samples), and in f32 at (4000, 10, 4000, 64 samples),
//! where the sampler's products run in f32.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use widthlab::sim::plan::SpecPlan;
use widthlab::sim::{simulate, Control};
use widthlab::spec::{parse_spec, Limits, Spec};

fn spec(input_dim: usize, depth: usize, width: usize, samples: usize, precision: &str) -> Spec {
    let v = json!({
        "network": {"input_dim": input_dim, "depth": depth, "width": width, "init": {"scheme": "he", "fan": "out"}},
        "samples": samples,
        "trials": 1,
        "seed": 1,
        "precision": precision,
        // The dense engine is what this measures (`auto` could pick the Gram sampler here).
        "method": "dense",
    });
    parse_spec(&v, &Limits::default()).expect("benchmark spec is valid")
}

fn trial(c: &mut Criterion) {
    let mut group = c.benchmark_group("trial");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for (n0, depth, width, samples) in [(500, 10, 1000, 256), (512, 50, 512, 128)] {
        for precision in ["f32", "f64"] {
            let s = spec(n0, depth, width, samples, precision);
            // Multiply-adds of one trial: forward and backward products, sum over layers of
            // samples x n_l x n_{l-1} each.
            let macs = 2 * samples as u64 * s.network.weight_count();
            group.throughput(Throughput::Elements(macs));
            let id = BenchmarkId::new(precision, format!("n0={n0},L={depth},m={width},samples={samples}"));
            group.bench_with_input(id, &s, |b, s| {
                b.iter(|| simulate(black_box(s), &Control::none()).expect("never cancelled"))
            });
        }
    }
    group.finish();
}

fn default_method(c: &mut Criterion) {
    let mut group = c.benchmark_group("default_method");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for (n0, depth, width, samples, trials, precision) in [
        (500, 10, 1000, 256, 1, "f64"),
        (500, 10, 1000, 64, 8, "f64"),
        (1000, 50, 1000, 16, 1, "f64"),
        (4000, 10, 4000, 64, 1, "f32"),
    ] {
        let v = json!({
            "network": {"input_dim": n0, "depth": depth, "width": width, "init": {"scheme": "he", "fan": "out"}},
            "samples": samples, "trials": trials, "seed": 1, "precision": precision,
        });
        let s = parse_spec(&v, &Limits::default()).expect("benchmark spec is valid");
        let id = BenchmarkId::new(
            format!("{precision}/{}", s.engine().as_str()),
            format!("n0={n0},L={depth},m={width},samples={samples},trials={trials}"),
        );
        group.bench_with_input(id, &s, |b, s| {
            b.iter(|| simulate(black_box(s), &Control::none()).expect("never cancelled"))
        });
    }
    group.finish();
}

criterion_group!(benches, trial, default_method);
criterion_main!(benches);
