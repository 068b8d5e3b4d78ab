//! GFLOP/s of C = A W^T (forward) and C = D W (backward) at the shapes of the side-by-side
//! benchmark, for faer on 2 threads and on 1, and matrixmultiply with its own threading
//! (MATMUL_NUM_THREADS, set to 2 below unless given).
use std::time::Instant;

use faer::{Accum, Mat, Par};

fn gflops(flops: f64, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
}

macro_rules! probe {
    ($t:ty, $mm:ident, $name:expr) => {{
        // (samples, fan_in, fan_out) of w1, w2 and w3.
        for &(m, k, n) in &[(256usize, 1000usize, 1000usize), (128, 512, 512), (2000, 4000, 4000)] {
            let reps = if m > 1000 { 2 } else if m == 128 { 100 } else { 20 };
            let flops = 2.0 * (m * n * k) as f64;
            let a: Vec<$t> = (0..m * k).map(|i| ((i * 7) % 11) as $t - 5.0).collect();
            let w: Vec<$t> = (0..n * k).map(|i| ((i * 5) % 13) as $t - 6.0).collect(); // n x k, row-major
            let mut c: Vec<$t> = vec![0.0; m * n];
            // SAFETY: the pointers and strides describe the vectors above.
            let mm = gflops(flops, reps, || unsafe {
                matrixmultiply::$mm(m, k, n, 1.0, a.as_ptr(), k as isize, 1, w.as_ptr(), 1, k as isize, 0.0,
                                    c.as_mut_ptr(), n as isize, 1)
            });
            let fa = Mat::<$t>::from_fn(m, k, |i, j| a[i * k + j]);
            let fw = Mat::<$t>::from_fn(n, k, |i, j| w[i * k + j]);
            let mut fc = Mat::<$t>::zeros(m, n);
            let mut run = |par| gflops(flops, reps, || {
                faer::linalg::matmul::matmul(fc.as_mut(), Accum::Replace, fa.as_ref(), fw.transpose(), 1.0, par)
            });
            let (f2, f1) = (run(Par::rayon(2)), run(Par::Seq));
            println!("{} {m:>4}x{k:>4}x{n:>4}: faer 2 threads {f2:6.1}  faer 1 thread {f1:6.1}  matrixmultiply {mm:6.1}",
                     $name);
        }
    }};
}

fn main() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "2");
    }
    println!("GFLOP/s, matrixmultiply threads = {}", std::env::var("MATMUL_NUM_THREADS").unwrap());
    probe!(f32, sgemm, "f32");
    probe!(f64, dgemm, "f64");
}
