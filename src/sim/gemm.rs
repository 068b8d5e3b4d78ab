//! Matrix products of the dense engine, through faer on ndarray views.
//!
//! faer (pure Rust, kernels chosen at run time, AVX-512 where present) measured faster than
//! ndarray's matrixmultiply here; see the notes of issue 5. `Par::Seq` keeps a product on the
//! calling thread (trials in parallel); `Par::Rayon` splits one product over the current pool
//! (one large trial). faer splits the output into blocks and runs the full inner dimension in
//! each, so the result does not depend on the number of threads.

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{ArrayView2, ArrayViewMut2};

use super::real::Real;

/// `c = alpha * a * b` (c is overwritten). Shapes: a (m x k), b (k x n), c (m x n).
pub fn gemm<T: Real>(alpha: T, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, c: ArrayViewMut2<'_, T>, par: Par) {
    product(Accum::Replace, alpha, a, b, c, par)
}

/// `c += alpha * a * b`.
pub fn gemm_add<T: Real>(alpha: T, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, c: ArrayViewMut2<'_, T>, par: Par) {
    product(Accum::Add, alpha, a, b, c, par)
}

fn product<T: Real>(
    accum: Accum,
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    mut c: ArrayViewMut2<'_, T>,
    par: Par,
) {
    assert_eq!(a.ncols(), b.nrows(), "gemm: inner dimensions differ");
    assert_eq!((a.nrows(), b.ncols()), c.dim(), "gemm: output shape differs");
    let (cr, cc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the views are valid for their shapes and strides for the lifetime of this call,
    // and `c` is borrowed mutably, so it does not alias `a` or `b`.
    let (a, b, c) = unsafe {
        (
            MatRef::<T>::from_raw_parts(a.as_ptr(), a.nrows(), a.ncols(), a.strides()[0], a.strides()[1]),
            MatRef::<T>::from_raw_parts(b.as_ptr(), b.nrows(), b.ncols(), b.strides()[0], b.strides()[1]),
            MatMut::<T>::from_raw_parts_mut(c.as_mut_ptr(), c.nrows(), c.ncols(), cr, cc),
        )
    };
    faer::linalg::matmul::matmul(c, accum, a, b, alpha, par);
}

/// Threads for one product: all of the pool when trials cannot fill it, else one.
pub fn par_for(trials: usize) -> Par {
    let threads = rayon::current_num_threads();
    if trials < threads && threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    }
}
