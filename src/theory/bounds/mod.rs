//! Width lower bounds: `arpit2019`, `exact_tail`, `chernoff` (theory.md sections 4 and 5).
//!
//! Inputs are the same for all three: tolerance `epsilon`, failure probability `delta`,
//! depth `L` and number of samples `N`. Each answers two questions: the minimal width for
//! `epsilon`, and the guaranteed epsilon at a given width.

use serde::Serialize;

use super::exact::layer_tail;

/// Largest width any bound search looks at; beyond it the answer is reported as `None`.
pub const MAX_SEARCH_WIDTH: u64 = 1_000_000_000;
/// The exact tail sums O(sqrt(m)) chi-square tails per evaluation; above this width the
/// search would take seconds, so the exact bound answers `None` with a note.
pub const MAX_EXACT_TAIL_WIDTH: u64 = 20_000_000;

/// The bounds widthlab knows, named as stored in every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The rule of the authors' scripts: `m >= (4/epsilon') ln(4 N L / delta)`.
    Arpit2019,
    /// Exact binomial-chi-square per-layer tail with a union bound over 2 N L events.
    ExactTail,
    /// Chernoff bound on the same per-layer event.
    Chernoff,
}

impl Bound {
    pub const ALL: [Bound; 3] = [Bound::Arpit2019, Bound::ExactTail, Bound::Chernoff];

    pub fn name(self) -> &'static str {
        match self {
            Bound::Arpit2019 => "arpit2019",
            Bound::ExactTail => "exact_tail",
            Bound::Chernoff => "chernoff",
        }
    }
}

/// The quantities every bound takes. Construct with [`BoundInputs::new`], which checks ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundInputs {
    pub epsilon: f64,
    pub delta: f64,
    pub depth: u32,
    pub samples: u64,
}

/// A range error in bound inputs: the field and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BoundInputError {
    pub field: &'static str,
    pub message: String,
}

impl BoundInputs {
    pub fn new(epsilon: f64, delta: f64, depth: u32, samples: u64) -> Result<Self, BoundInputError> {
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(BoundInputError {
                field: "epsilon",
                message: format!("must be a finite number > 0, got {epsilon}"),
            });
        }
        if !(delta > 0.0 && delta < 1.0) {
            return Err(BoundInputError {
                field: "delta",
                message: format!("must lie in the open interval (0, 1), got {delta}"),
            });
        }
        if depth == 0 || depth > 100_000 {
            return Err(BoundInputError {
                field: "depth",
                message: format!("must be an integer in [1, 100000], got {depth}"),
            });
        }
        if samples == 0 || samples > 1_000_000_000_000 {
            return Err(BoundInputError {
                field: "samples",
                message: format!("must be an integer in [1, 10^12], got {samples}"),
            });
        }
        Ok(Self {
            epsilon,
            delta,
            depth,
            samples,
        })
    }

    /// Per-layer tolerance `epsilon' = (1 + epsilon)^(1/L) - 1`.
    pub fn epsilon_prime(&self) -> f64 {
        per_layer_tolerance(self.epsilon, self.depth)
    }

    /// `ln(4 N L / delta)`.
    pub fn log_term(&self) -> f64 {
        (4.0 * self.samples as f64 * self.depth as f64 / self.delta).ln()
    }

    /// Number of per-layer events in the union bound: forward and gradient, every sample and layer.
    fn union_events(&self) -> f64 {
        2.0 * self.samples as f64 * self.depth as f64
    }
}

/// `epsilon' = (1 + epsilon)^(1/L) - 1`, computed without cancellation.
pub fn per_layer_tolerance(epsilon: f64, depth: u32) -> f64 {
    (epsilon.ln_1p() / depth as f64).exp_m1()
}

/// `(1 + epsilon')^L - 1`, the inverse of [`per_layer_tolerance`].
pub fn total_tolerance(epsilon_prime: f64, depth: u32) -> f64 {
    (depth as f64 * epsilon_prime.ln_1p()).exp_m1()
}

/// One bound's answer for one set of inputs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoundReport {
    pub bound: Bound,
    /// Smallest width meeting `epsilon`; `None` if above the search limit (see `note`).
    pub min_width: Option<u64>,
    /// The unrounded width for bounds with a closed form (`arpit2019`, `chernoff`).
    pub min_width_exact: Option<f64>,
    /// Per-layer tolerance used for the minimal width.
    pub epsilon_prime: f64,
    /// At the requested width: the guaranteed epsilon (`None` without a width or if unbounded).
    pub width: Option<u64>,
    pub guaranteed_epsilon: Option<f64>,
    /// At the requested width: the per-layer tolerance the bound guarantees.
    pub guaranteed_epsilon_prime: Option<f64>,
    /// Caveats worth surfacing (too optimistic, vacuous lower side, search limits).
    pub notes: Vec<String>,
}

/// The inputs of a calculator answer, echoed with the derived quantities.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoundsEcho {
    pub epsilon: f64,
    pub delta: f64,
    pub depth: u32,
    pub samples: u64,
    pub width: Option<u64>,
    /// `(1 + epsilon)^(1/L) - 1`.
    pub epsilon_prime: f64,
    /// `ln(4 N L / delta)`.
    pub log_term: f64,
}

/// The calculator's answer: the inputs and every bound side by side
/// (`widthlab bounds --json` and `GET /v1/bounds`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoundsAnswer {
    pub inputs: BoundsEcho,
    pub bounds: Vec<BoundReport>,
}

pub fn bounds_answer(inputs: &BoundInputs, width: Option<u64>) -> BoundsAnswer {
    BoundsAnswer {
        inputs: BoundsEcho {
            epsilon: inputs.epsilon,
            delta: inputs.delta,
            depth: inputs.depth,
            samples: inputs.samples,
            width,
            epsilon_prime: inputs.epsilon_prime(),
            log_term: inputs.log_term(),
        },
        bounds: all_bounds(inputs, width),
    }
}

/// Evaluate every bound; `width` adds the guaranteed epsilon at that width.
pub fn all_bounds(inputs: &BoundInputs, width: Option<u64>) -> Vec<BoundReport> {
    Bound::ALL.iter().map(|&b| evaluate(b, inputs, width)).collect()
}

pub fn evaluate(bound: Bound, inputs: &BoundInputs, width: Option<u64>) -> BoundReport {
    let ep = inputs.epsilon_prime();
    let mut notes = Vec::new();
    let (min_width, min_width_exact) = match bound {
        Bound::Arpit2019 => {
            let m = arpit2019::min_width_real(inputs);
            (ceil_width(m), Some(m))
        }
        Bound::Chernoff => {
            let m = chernoff::min_width_real(inputs);
            (ceil_width(m), Some(m))
        }
        Bound::ExactTail => (exact_tail::min_width(inputs), None),
    };
    if min_width.is_none() {
        let limit = if bound == Bound::ExactTail {
            MAX_EXACT_TAIL_WIDTH
        } else {
            MAX_SEARCH_WIDTH
        };
        notes.push(format!("the minimal width exceeds the search limit of {limit}"));
    }
    let guaranteed_prime = width.and_then(|m| match bound {
        Bound::Arpit2019 => Some(arpit2019::per_layer_epsilon(inputs, m)),
        Bound::Chernoff => chernoff::per_layer_epsilon(inputs, m),
        Bound::ExactTail => exact_tail::per_layer_epsilon(inputs, m),
    });
    let guaranteed = guaranteed_prime.map(|t| total_tolerance(t, inputs.depth));
    if bound == Bound::Arpit2019 {
        notes.push(
            "per-layer tolerance shrinks like 1/m while fluctuations shrink like 1/sqrt(m): \
             as a per-layer guarantee this rule is optimistic"
                .into(),
        );
    }
    if inputs.epsilon >= 1.0 || guaranteed.is_some_and(|g| g >= 1.0) {
        notes.push("epsilon >= 1: the lower side of the claim (ratio >= 1 - epsilon) is vacuous".into());
    }
    BoundReport {
        bound,
        min_width,
        min_width_exact,
        epsilon_prime: ep,
        width,
        guaranteed_epsilon: guaranteed,
        guaranteed_epsilon_prime: guaranteed_prime,
        notes,
    }
}

fn ceil_width(m: f64) -> Option<u64> {
    if m.is_finite() && m <= MAX_SEARCH_WIDTH as f64 {
        Some((m.ceil() as u64).max(1))
    } else {
        None
    }
}

/// Smallest `m` in `[1, limit]` with `ok(m)`, assuming `ok` is monotone; `None` if none.
fn search_min_width(limit: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
    // Infeasible within the limit: one evaluation instead of a whole doubling search.
    if !ok(limit) {
        return None;
    }
    let mut hi = 1u64;
    while !ok(hi) {
        if hi >= limit {
            return None;
        }
        hi = (hi * 2).min(limit);
    }
    let mut lo = hi / 2; // ok(lo) is false (or lo = 0)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Smallest `t` in `[0, t_max]` with `ok(t)` to relative precision 1e-12 (monotone `ok`).
fn search_min_tolerance(t_max: f64, ok: impl Fn(f64) -> bool) -> Option<f64> {
    if !ok(t_max) {
        return None;
    }
    let (mut lo, mut hi) = (0.0, t_max);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    Some(hi)
}

/// The rule as the authors' scripts encode it.
pub mod arpit2019 {
    use super::BoundInputs;

    /// `(4 / epsilon') ln(4 N L / delta)`, unrounded.
    pub fn min_width_real(inputs: &BoundInputs) -> f64 {
        4.0 / inputs.epsilon_prime() * inputs.log_term()
    }

    /// Per-layer tolerance at width m: `(4/m) ln(4 N L / delta)`.
    pub fn per_layer_epsilon(inputs: &BoundInputs, width: u64) -> f64 {
        4.0 / width as f64 * inputs.log_term()
    }

    /// `epsilon(m) = (1 + (4/m) ln(4NL/delta))^L - 1`.
    pub fn guaranteed_epsilon(inputs: &BoundInputs, width: u64) -> f64 {
        super::total_tolerance(per_layer_epsilon(inputs, width), inputs.depth)
    }
}

/// Exact per-layer tail, union bound over `2 N L` events.
pub mod exact_tail {
    use super::*;

    fn holds(inputs: &BoundInputs, width: u64, t: f64) -> bool {
        inputs.union_events() * layer_tail(width, t) <= inputs.delta
    }

    /// Smallest m with `2 N L P(|sqrt(X) - 1| > epsilon') <= delta`.
    ///
    /// The search costs up to a second; its answers are remembered for the life of the process
    /// (a pure function of the inputs, so a repeat is the same number), which makes every
    /// point of a sweep, a job's report and repeated `/v1/bounds` queries after the first free.
    pub fn min_width(inputs: &BoundInputs) -> Option<u64> {
        use std::collections::HashMap;
        use std::sync::{LazyLock, Mutex};
        type Key = (u64, u64, u32, u64);
        /// Entries kept; the map is emptied when full (answers are cheap to recompute once).
        const CAPACITY: usize = 4096;
        static KNOWN: LazyLock<Mutex<HashMap<Key, Option<u64>>>> = LazyLock::new(Default::default);
        let key = (
            inputs.epsilon.to_bits(),
            inputs.delta.to_bits(),
            inputs.depth,
            inputs.samples,
        );
        if let Some(&m) = KNOWN.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return m;
        }
        let t = inputs.epsilon_prime();
        let m = search_min_width(MAX_EXACT_TAIL_WIDTH, |m| holds(inputs, m, t));
        let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= CAPACITY {
            known.clear();
        }
        known.insert(key, m);
        m
    }

    /// Smallest per-layer tolerance the union bound guarantees at this width.
    pub fn per_layer_epsilon(inputs: &BoundInputs, width: u64) -> Option<f64> {
        if width > MAX_EXACT_TAIL_WIDTH || width == 0 {
            return None;
        }
        // Only the upper tail survives past t = 1; it vanishes by t = 1000 for any width >= 1
        // at the probabilities a union bound can ask for.
        search_min_tolerance(1000.0, |t| holds(inputs, width, t))
    }
}

/// Chernoff bound with the cumulant function of one term `Y = 2 ReLU(z)^2`.
pub mod chernoff {
    use super::*;

    /// `Lambda(s) = ln(1/2 + 1/2 (1 - 4s)^(-1/2))`, s < 1/4.
    pub fn cumulant(s: f64) -> f64 {
        (0.5 + 0.5 / (1.0 - 4.0 * s).sqrt()).ln()
    }

    /// Rate `I(a) = sup_s (s a - Lambda(s))`, a >= 0; `I(1) = 0`, `I(0) = ln 2`.
    ///
    /// With `u = (1 - 4s)^(-1/2)` the stationarity condition `Lambda'(s) = a` reads
    /// `2 u^3 / (1 + u) = a`, increasing in u > 0, solved by bisection in u.
    pub fn rate(a: f64) -> f64 {
        if a <= 0.0 {
            return if a == 0.0 {
                std::f64::consts::LN_2
            } else {
                f64::INFINITY
            };
        }
        let f = |u: f64| 2.0 * u * u * u / (1.0 + u) - a;
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        while f(hi) < 0.0 {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if f(mid) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo <= 1e-16 * hi {
                break;
            }
        }
        let u = 0.5 * (lo + hi);
        let s = (1.0 - 1.0 / (u * u)) / 4.0;
        // ln(1/2 + u/2) written to keep precision near u = 1.
        (s * a - (0.5 * (u - 1.0)).ln_1p()).max(0.0)
    }

    /// Two-sided rate at per-layer tolerance t: `min(I((1+t)^2), I((1-t)^2))`.
    pub fn two_sided_rate(t: f64) -> f64 {
        let up = rate((1.0 + t) * (1.0 + t));
        if t >= 1.0 {
            // sqrt(X) >= 0 > 1 - t: only the upper side can fail (at t = 1, X = 0 has rate ln 2).
            return if t == 1.0 { up.min(std::f64::consts::LN_2) } else { up };
        }
        up.min(rate((1.0 - t) * (1.0 - t)))
    }

    /// `ln(4 N L / delta) / min(I((1+epsilon')^2), I((1-epsilon')^2))`, unrounded.
    pub fn min_width_real(inputs: &BoundInputs) -> f64 {
        inputs.log_term() / two_sided_rate(inputs.epsilon_prime())
    }

    /// Smallest t with `m * two_sided_rate(t) >= ln(4NL/delta)`.
    pub fn per_layer_epsilon(inputs: &BoundInputs, width: u64) -> Option<f64> {
        let need = inputs.log_term() / width as f64;
        search_min_tolerance(1e6, |t| two_sided_rate(t) >= need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    fn paper(epsilon: f64) -> BoundInputs {
        BoundInputs::new(epsilon, 0.05, 10, 2000).unwrap()
    }

    #[test]
    fn log_term_reference() {
        assert!(rel(paper(0.1).log_term(), 14.285514) < 1e-6);
    }

    #[test]
    fn arpit_guaranteed_epsilon_table() {
        // theory.md's table (6 decimals) and the same values to full precision from Python.
        let expected = [
            (500, 1.950933, 1.9509332620740483),
            (1000, 0.743145, 0.7431449778101527),
            (2000, 0.325388, 0.32538751239181063),
            (4000, 0.152397, 0.15239729519243328),
            (8000, 0.073768, 0.07376770625710716),
        ];
        for (m, table, full) in expected {
            let got = arpit2019::guaranteed_epsilon(&paper(0.1), m);
            assert!(rel(got, full) < 1e-6, "m={m}: {got} vs {full}");
            assert!((got - table).abs() <= 5e-7, "m={m}: {got} does not round to {table}");
        }
    }

    #[test]
    fn arpit_minimal_widths() {
        let cases = [
            (0.1, 0.05, 10, 2000, 5967),
            (0.15, 0.05, 10, 2000, 4061),
            (0.5, 0.05, 10, 2000, 1381),
            (1.0, 0.05, 10, 2000, 797),
            (0.1, 0.05, 20, 50000, 15239),
            (0.05, 0.05, 50, 10000, 71719),
        ];
        for (eps, delta, depth, n, want) in cases {
            let inputs = BoundInputs::new(eps, delta, depth, n).unwrap();
            let r = evaluate(Bound::Arpit2019, &inputs, None);
            assert_eq!(r.min_width, Some(want), "eps={eps} L={depth} N={n}");
        }
    }

    /// epsilon with epsilon' exactly `t` for L = 10.
    fn eps_for_prime(t: f64) -> f64 {
        total_tolerance(t, 10)
    }

    #[test]
    fn exact_tail_minimal_widths() {
        for (t, want) in [(0.05, 11750), (0.1, 2938), (0.2, 735)] {
            let inputs = paper(eps_for_prime(t));
            assert!(rel(inputs.epsilon_prime(), t) < 1e-12);
            assert_eq!(exact_tail::min_width(&inputs), Some(want), "epsilon'={t}");
        }
    }

    #[test]
    fn chernoff_minimal_widths() {
        // scipy: 14406.899978762021, 3630.918997165834, 921.5408821778976
        for (t, want, real) in [
            (0.05, 14407, 14406.899978762021),
            (0.1, 3631, 3630.918997165834),
            (0.2, 922, 921.5408821778976),
        ] {
            let inputs = paper(eps_for_prime(t));
            let r = evaluate(Bound::Chernoff, &inputs, None);
            assert_eq!(r.min_width, Some(want));
            assert!(rel(r.min_width_exact.unwrap(), real) < 1e-6);
        }
    }

    #[test]
    fn shared_epsilon_prime_example() {
        let eps = 1.1f64.powi(10) - 1.0;
        assert!(rel(eps, 1.5937424601) < 1e-10);
        let inputs = paper(eps);
        let reports = all_bounds(&inputs, None);
        let arpit = &reports[0];
        assert_eq!(arpit.min_width, Some(572));
        assert!((arpit.min_width_exact.unwrap() - 571.42).abs() < 0.01);
        assert_eq!(reports[1].min_width, Some(2938));
        assert_eq!(reports[2].min_width, Some(3631));
    }

    #[test]
    fn guaranteed_epsilon_inverts_min_width() {
        // At the minimal width the guarantee meets epsilon; one below it does not.
        let inputs = paper(eps_for_prime(0.1));
        let at = exact_tail::per_layer_epsilon(&inputs, 2938).unwrap();
        let below = exact_tail::per_layer_epsilon(&inputs, 2937).unwrap();
        assert!(at <= 0.1 && below > 0.1, "{at} {below}");
        let at = chernoff::per_layer_epsilon(&inputs, 3631).unwrap();
        let below = chernoff::per_layer_epsilon(&inputs, 3630).unwrap();
        assert!(at <= 0.1 && below > 0.1, "{at} {below}");
    }

    #[test]
    fn chernoff_rate_known_points() {
        assert!(chernoff::rate(1.0).abs() < 1e-12);
        assert!(rel(chernoff::rate(0.0), std::f64::consts::LN_2) < 1e-12);
        // I is the Legendre transform: I(a) >= s a - Lambda(s) for any s.
        for a in [0.3, 0.8, 1.2, 2.5] {
            let i = chernoff::rate(a);
            for s in [-3.0, -1.0, -0.1, 0.05, 0.2, 0.24] {
                assert!(i >= s * a - chernoff::cumulant(s) - 1e-12);
            }
        }
    }

    #[test]
    fn input_ranges_name_the_field() {
        assert_eq!(BoundInputs::new(0.0, 0.05, 10, 10).unwrap_err().field, "epsilon");
        assert_eq!(BoundInputs::new(0.1, 1.0, 10, 10).unwrap_err().field, "delta");
        assert_eq!(BoundInputs::new(0.1, 0.5, 0, 10).unwrap_err().field, "depth");
        assert_eq!(BoundInputs::new(0.1, 0.5, 3, 0).unwrap_err().field, "samples");
    }
}
