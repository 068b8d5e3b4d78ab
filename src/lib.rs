//! widthlab: deep ReLU networks at initialization, simulated and held against width bounds.
//!
//! Layers depend one way (see ARCHITECTURE.md):
//! `cli`/`startup` -> `http` -> `jobs` -> `analysis`/`figures` -> `sim`/`theory` -> `spec`,
//! with `store` called by `jobs` only. The simulator (`spec`, `sim`, `theory`, `analysis`,
//! `figures`) has no HTTP or database inside.

pub mod analysis;
pub mod cli;
pub mod config;
pub mod figures;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod sim;
pub mod spec;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod theory;

/// mimalloc keeps freed pages for reuse: the engine's large per-layer buffers then come back
/// without page faults trial after trial (measured: a third of a dense trial's wall time went to
/// page faults with the system allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
