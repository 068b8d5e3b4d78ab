//! Integration tests of the simulator, no server: the dense engine against the exact laws
//! (`engine`), and the exact samplers against the dense engine (`exact`).
//!
//! Run with `cargo test --release --test sim` (the debug profile is far too slow).

mod density;
mod engine;
mod exact;
mod geometry;
mod min_width;
mod predictions;
mod residual;
mod worst_case;
