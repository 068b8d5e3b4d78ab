//! The rule as the authors' scripts encode it (docs/theory.md section 4.1). Closed forms, plain
//! (not log-space) arithmetic; relative error a few ulps.

use super::BoundInputs;

/// `(4 / epsilon') ln(4 N L / delta)`, unrounded (infinite when `epsilon'` underflows to 0).
pub fn min_width_real(inputs: &BoundInputs) -> f64 {
    4.0 / inputs.epsilon_prime() * inputs.log_term()
}

/// Per-layer tolerance at width m: `(4/m) ln(4 N L / delta)`.
pub fn per_layer_epsilon(inputs: &BoundInputs, width: u64) -> f64 {
    4.0 / width as f64 * inputs.log_term()
}

/// `epsilon(m) = (1 + (4/m) ln(4NL/delta))^L - 1` (infinite when it overflows a double).
pub fn guaranteed_epsilon(inputs: &BoundInputs, width: u64) -> f64 {
    super::total_tolerance(per_layer_epsilon(inputs, width), inputs.depth)
}
