//! What a simulation means: statistics, per-layer reports with predictions and bound checks,
//! sweep points and frontiers.
//!
//! Holds: `stats` (descriptive statistics, Clopper-Pearson), `predict` (what the exact laws
//! predict beside every measured layer), `report` (the result of one simulation), `verdict`
//! (what a simulation says about a bound's claim), `samples` (kept per-sample ratios, their
//! histograms and exact law), `sweep` (grid points, their seeds, the empirical frontier),
//! `worst_case` (the worst case over the sphere, bracketed).
//! Depends on: `spec`, `sim` (its plain outputs), `theory`. No HTTP or database.

pub mod geometry;
pub mod predict;
pub mod report;
pub mod samples;
pub mod search;
pub mod stats;
pub mod sweep;
pub mod verdict;
pub mod worst_case;
