//! The machine's measured peak floating-point rate, for the "% of peak" column of
//! `bench/run.py`: independent chains of fused multiply-adds on the widest vectors the CPU has
//! (AVX-512, else AVX2 + FMA, else scalar), on every thread of `--threads` (default: all cores).
//!
//! `peak_probe [THREADS]` prints one JSON line `{"threads", "isa", "f64_gflops", "f32_gflops"}`.
//! Each rate is the best of 5 runs of about 0.2 s per thread. A FMA counts as two operations.

use std::time::Instant;

/// Independent accumulators per thread: enough to cover the FMA latency (4 cycles) on two ports.
const CHAINS: usize = 12;
/// FMAs per chain per run.
const STEPS: usize = 20_000_000;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CHAINS, STEPS};

    #[target_feature(enable = "avx512f")]
    pub unsafe fn f64_512() -> f64 {
        let mut acc = [_mm512_set1_pd(1.0); CHAINS];
        let (a, b) = (_mm512_set1_pd(0.999_999_9), _mm512_set1_pd(1e-9));
        for _ in 0..STEPS {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_pd(*x, a, b);
            }
        }
        acc.iter().map(|x| _mm512_reduce_add_pd(*x)).sum()
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32_512() -> f64 {
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..STEPS {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        acc.iter().map(|x| f64::from(_mm512_reduce_add_ps(*x))).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn f64_256() -> f64 {
        let mut acc = [_mm256_set1_pd(1.0); CHAINS];
        let (a, b) = (_mm256_set1_pd(0.999_999_9), _mm256_set1_pd(1e-9));
        for _ in 0..STEPS {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_pd(*x, a, b);
            }
        }
        let mut out = [0.0f64; 4];
        acc.iter()
            .map(|x| {
                _mm256_storeu_pd(out.as_mut_ptr(), *x);
                out.iter().sum::<f64>()
            })
            .sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn f32_256() -> f64 {
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..STEPS {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0.0f32; 8];
        acc.iter()
            .map(|x| {
                _mm256_storeu_ps(out.as_mut_ptr(), *x);
                out.iter().map(|v| f64::from(*v)).sum::<f64>()
            })
            .sum()
    }
}

/// (name, lanes for f64, lanes for f32, the two kernels).
type Kernels = (&'static str, usize, usize, fn() -> f64, fn() -> f64);

fn kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return (
                "avx512",
                8,
                16,
                || unsafe { x86::f64_512() },
                || unsafe { x86::f32_512() },
            );
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return (
                "avx2+fma",
                4,
                8,
                || unsafe { x86::f64_256() },
                || unsafe { x86::f32_256() },
            );
        }
    }
    ("scalar", 1, 1, scalar_f64, scalar_f64)
}

fn scalar_f64() -> f64 {
    let mut acc = [1.0f64; CHAINS];
    for _ in 0..STEPS {
        for x in acc.iter_mut() {
            *x = x.mul_add(0.999_999_9, 1e-9);
        }
    }
    acc.iter().sum()
}

/// GFLOP/s of `kernel` on `threads` threads at once, best of 5.
fn rate(threads: usize, lanes: usize, kernel: fn() -> f64) -> f64 {
    let flops = (2 * CHAINS * STEPS * lanes * threads) as f64;
    (0..5)
        .map(|_| {
            let start = Instant::now();
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| s.spawn(move || std::hint::black_box(kernel())))
                    .collect();
                for h in handles {
                    let _ = h.join();
                }
            });
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (isa, lanes64, lanes32, k64, k32) = kernels();
    println!(
        "{}",
        serde_json::json!({
            "threads": threads,
            "isa": isa,
            "f64_gflops": rate(threads, lanes64, k64),
            "f32_gflops": rate(threads, lanes32, k32),
        })
    );
}
