//! The theory: width bounds, exact laws and predictions (docs/theory.md).
//!
//! Holds: `bounds` (the three width bounds and the calculator's answer), `exact` (exact laws of
//! one Gaussian ReLU layer), `density` (the exact density of the forward ratio through several
//! layers), `kernels` (the ReLU arc-cosine kernels of the infinite-width view), `residual`
//! (moments of a residual block's norm factor), `special` (log-space incomplete gamma and
//! binomial terms).
//! Depends on: `spec` (network shapes) only.
//!
//! Everything here is closed-form or a deterministic numerical evaluation; nothing draws random
//! numbers. The three bounds share one per-layer tolerance `epsilon' = (1 + epsilon)^(1/L) - 1`
//! and differ only in how they bound the per-layer failure probability.

pub mod bounds;
pub mod density;
pub mod exact;
pub mod kernels;
pub mod residual;
pub mod special;

pub use bounds::{Bound, BoundInputs, BoundReport};
