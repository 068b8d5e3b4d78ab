//! Probe: standard normals per second, widthlab's 8-lane ziggurat against rand_distr's scalar
//! one, on one thread and on every thread of the pool (one sub-stream per 32 000 values).
//! `cargo run --release --example normal_probe`

use std::time::Instant;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use widthlab::sim::normal::{fill_normal, kernel, NormalLanes};
use widthlab::sim::rng::TrialRng;

fn rate(n: usize, f: impl Fn()) -> f64 {
    f();
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let n = 20_000_000usize;
    let mut buf = vec![0.0f64; n];
    let ptr = std::sync::Mutex::new(&mut buf);
    let chunk = 32_000;
    let lanes_1 = rate(n, || {
        fill_normal(&mut ptr.lock().unwrap()[..], 1.0, &mut NormalLanes::from_key(1))
    });
    let lanes_all = rate(n, || {
        ptr.lock()
            .unwrap()
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(b, c)| {
                fill_normal(c, 1.0, &mut NormalLanes::from_key(b as u64));
            })
    });
    let scalar = |c: &mut [f64], seed: u64| {
        let mut rng = TrialRng::seed_from_u64(seed);
        c.iter_mut().for_each(|x| *x = StandardNormal.sample(&mut rng));
    };
    let scalar_1 = rate(n, || scalar(&mut ptr.lock().unwrap()[..], 1));
    let scalar_all = rate(n, || {
        ptr.lock()
            .unwrap()
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(b, c)| scalar(c, b as u64))
    });
    // The same draws into one cache-resident block, so memory traffic does not count.
    let mut small = vec![0.0f64; chunk];
    let mut lanes = NormalLanes::from_key(3);
    let t = Instant::now();
    for _ in 0..n / chunk {
        fill_normal(&mut small, 1.0, &mut lanes);
    }
    let lanes_cached = n as f64 / t.elapsed().as_secs_f64() / 1e6;
    let mut rng = TrialRng::seed_from_u64(3);
    let t = Instant::now();
    for _ in 0..n / chunk {
        small.iter_mut().for_each(|x| *x = StandardNormal.sample(&mut rng));
    }
    let scalar_cached = n as f64 / t.elapsed().as_secs_f64() / 1e6;
    println!("in cache, 1 thread: 8-lane {lanes_cached:.0}, rand_distr {scalar_cached:.0}");
    let threads = rayon::current_num_threads();
    println!(
        "kernel {}; million normals/s (f64), 1 thread / {threads} threads:",
        kernel()
    );
    println!("  8-lane ziggurat       {lanes_1:6.0} / {lanes_all:6.0}");
    println!("  rand_distr ziggurat   {scalar_1:6.0} / {scalar_all:6.0}");
}
