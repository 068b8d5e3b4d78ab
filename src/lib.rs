//! widthlab: deep ReLU networks at initialization, simulated and held against width bounds.
//!
//! Layers depend one way: `http` -> `jobs` -> `sim`/`theory`; `store` is used by `jobs` only.
//! The simulator (`spec`, `sim`, `stats`, `theory`, `report`) has no HTTP or database inside.

pub mod cli;
pub mod config;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod plot;
pub mod presets;
pub mod report;
pub mod sim;
pub mod spec;
pub mod stats;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod theory;

/// mimalloc keeps freed pages for reuse: the engine's large per-layer buffers then come back
/// without page faults trial after trial (measured: a third of a dense trial's wall time went to
/// page faults with the system allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
