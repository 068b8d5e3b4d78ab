//! The bounds calculator on extreme accepted queries: `cargo bench --bench bounds`.
//!
//! Every iteration clears the memo of `exact_tail::min_width`, so the searches themselves are
//! timed. `single/*` are single queries (the slowest of `examples/bounds_grid` among them);
//! `grid` answers every point of a grid of extreme inputs once per iteration (widths up to
//! 10^9, depth up to 100000, samples up to 10^12, delta down to 1e-300, epsilon 1e-4..1e3).
//! Budget: every single query under 100 ms on one core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use widthlab::theory::bounds::{bounds_answer, exact_tail, BoundInputs};

const EPSILONS: [f64; 6] = [1e-4, 1e-2, 0.4, 3.0, 10.0, 1e3];
const DELTAS: [f64; 4] = [0.3, 1e-6, 1e-60, 1e-300];
const DEPTHS: [u32; 3] = [1, 100, 100_000];
const SAMPLES: [u64; 3] = [1, 64, 1_000_000_000_000];
const WIDTHS: [Option<u64>; 5] = [None, Some(1), Some(1000), Some(4_021_456), Some(1_000_000_000)];

type Query = (f64, f64, u32, u64, Option<u64>);

/// (label, query): the brief's 22-second query, the slowest grid points, and extremes.
const SINGLE: [(&str, Query); 8] = [
    ("cli_example_w4e6", (0.4, 0.0003, 100, 64, Some(4_021_456))),
    ("w2e7", (0.4, 0.0003, 100, 64, Some(20_000_000))),
    ("w1e9_delta1e-6", (0.4, 1e-6, 1, 1, Some(1_000_000_000))),
    ("eps1e3_N1e12", (1e3, 1e-6, 100, 1_000_000_000_000, Some(4_021_456))),
    (
        "delta1e-300_N1e12_L1e5",
        (0.01, 1e-300, 100_000, 1_000_000_000_000, Some(1_000_000_000)),
    ),
    ("eps1e-4_w1e9", (1e-4, 0.3, 100, 1_000_000_000_000, Some(1_000_000_000))),
    ("ref_227777", (1.0, 1e-200, 10, 100, Some(227_777))),
    ("width1_delta1e-300", (3.0, 1e-300, 1, 64, Some(1))),
];

fn answer(q: &Query) -> usize {
    let (e, d, l, n, w) = *q;
    match BoundInputs::new(e, d, l, n) {
        Ok(inputs) => {
            exact_tail::clear_memo();
            bounds_answer(&inputs, w).bounds.len()
        }
        Err(_) => 0,
    }
}

fn grid() -> Vec<Query> {
    let mut out = Vec::new();
    for &e in &EPSILONS {
        for &d in &DELTAS {
            for &l in &DEPTHS {
                for &n in &SAMPLES {
                    for &w in &WIDTHS {
                        out.push((e, d, l, n, w));
                    }
                }
            }
        }
    }
    out
}

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("single");
    group.sample_size(20).measurement_time(Duration::from_secs(2));
    for (label, q) in SINGLE {
        group.bench_with_input(BenchmarkId::from_parameter(label), &q, |b, q| {
            b.iter(|| answer(black_box(q)))
        });
    }
    group.finish();
}

fn whole_grid(c: &mut Criterion) {
    let points = grid();
    let mut group = c.benchmark_group("grid");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function(format!("{}_queries", points.len()), |b| {
        b.iter(|| points.iter().map(|q| answer(black_box(q))).sum::<usize>())
    });
    group.finish();
}

criterion_group!(benches, single, whole_grid);
criterion_main!(benches);
