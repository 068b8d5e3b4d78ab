//! The theory of `theory.md`: width bounds, exact laws and predictions.
//!
//! Everything here is closed-form or a deterministic numerical evaluation; nothing draws random
//! numbers. The three bounds share one per-layer tolerance `epsilon' = (1 + epsilon)^(1/L) - 1`
//! and differ only in how they bound the per-layer failure probability.

pub mod bounds;
pub mod exact;
pub mod predict;
pub mod special;

pub use bounds::{Bound, BoundInputs, BoundReport};
