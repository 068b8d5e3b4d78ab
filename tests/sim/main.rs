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

/// `spec` simulated on a pool of one thread and on a pool of two, in that order (the
/// thread-count tests compare the two bit for bit).
fn on_one_and_two_threads(spec: &widthlab::spec::Spec) -> Vec<widthlab::sim::Simulation> {
    [1, 2]
        .iter()
        .map(|&k| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(k).build().expect("a pool");
            pool.install(|| widthlab::sim::simulate(spec, &widthlab::sim::Control::none()))
                .expect("not cancelled")
        })
        .collect()
}
