//! The floating-point types the engine runs in (`f32`, `f64`).

use ndarray::LinalgScalar;
use num_traits::Float;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A float the dense engine can use for matrices; statistics are always kept in f64.
pub trait Real: LinalgScalar + Float + faer::traits::ComplexField + Send + Sync + std::fmt::Debug + 'static {
    fn of(x: f64) -> Self;
    fn f64(self) -> f64;
    /// One standard normal draw. The f32 draw is the f64 draw rounded (as rand_distr does),
    /// so f32 and f64 runs of one seed see the same random numbers.
    fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self;
}

impl Real for f64 {
    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
    #[inline]
    fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
        StandardNormal.sample(rng)
    }
}

impl Real for f32 {
    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let x: f64 = StandardNormal.sample(rng);
        x as f32
    }
}
