//! What a simulation means: statistics, per-layer reports with predictions and bound checks,
//! sweep points and frontiers.
//!
//! Holds: `stats` (descriptive statistics, Clopper-Pearson), `report` (the result of one
//! simulation), `sweep` (grid points, their seeds, the empirical frontier).
//! Depends on: `spec`, `sim` (its plain outputs), `theory`. No HTTP or database.

pub mod report;
pub mod stats;
pub mod sweep;
