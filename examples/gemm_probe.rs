//! Probe: GFLOP/s of the engine's GEMM shapes, faer vs ndarray (matrixmultiply).
use ndarray::Array2;
use std::time::Instant;
use widthlab::sim::gemm::gemm;
fn main() {
    for &(m, k, n) in &[(256usize, 1000usize, 1000usize), (256, 500, 1000), (2000, 4000, 4000)] {
        let a = Array2::<f64>::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let w = Array2::<f64>::from_shape_fn((n, k), |(i, j)| ((i * 5 + j * 2) % 13) as f64 - 6.0);
        let mut c = Array2::<f64>::zeros((m, n));
        let flops = 2.0 * (m * n * k) as f64;
        for (name, par) in [("faer seq", faer::Par::Seq), ("faer par2", faer::Par::rayon(2))] {
            let t = Instant::now();
            let reps = if m > 1000 { 1 } else { 5 };
            for _ in 0..reps {
                gemm(1.0, a.view(), w.t(), c.view_mut(), par);
            }
            println!(
                "{m}x{k}x{n} {name}: {:.1} GFLOP/s",
                flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
            );
        }
        // backward shape: d (m x n) times W (n x k)
        let d = Array2::<f64>::from_shape_fn((m, n), |(i, j)| ((i * 3 + j) % 7) as f64 - 3.0);
        let mut back = Array2::<f64>::zeros((m, k));
        for (name, par) in [
            ("faer back seq", faer::Par::Seq),
            ("faer back par2", faer::Par::rayon(2)),
        ] {
            let t = Instant::now();
            let reps = if m > 1000 { 1 } else { 5 };
            for _ in 0..reps {
                gemm(1.0, d.view(), w.view(), back.view_mut(), par);
            }
            println!(
                "{m}x{n}x{k} {name}: {:.1} GFLOP/s",
                flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
            );
        }
        let t = Instant::now();
        let reps = if m > 1000 { 1 } else { 5 };
        for _ in 0..reps {
            ndarray::linalg::general_mat_mul(1.0, &a, &w.t(), 0.0, &mut c);
        }
        println!(
            "{m}x{k}x{n} ndarray: {:.1} GFLOP/s",
            flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
        );
    }
}
