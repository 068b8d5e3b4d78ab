//! Width lower bounds: `arpit2019`, `exact_tail`, `chernoff` (docs/theory.md sections 4 and 5).
//!
//! Inputs are the same for all three: tolerance `epsilon`, failure probability `delta`,
//! depth `L` and number of samples `N`. Each answers two questions: the minimal width for
//! `epsilon`, and the guaranteed epsilon at a given width.
//!
//! Accepted inputs (checked by [`BoundInputs::new`]): `epsilon` finite and > 0, `delta` in
//! `[1e-300, 1)`, depth in `[1, 100000]`, samples in `[1, 10^12]`. Every width `>= 1` is
//! accepted; the exact tail answers up to [`MAX_EXACT_TAIL_WIDTH`] (`None` with a note above).
//! Over these ranges every number of an answer is finite or `None` with a note saying why, and
//! one full answer (three bounds, with a width) takes well under 100 ms on one core
//! (`cargo run --release --example bounds_grid` times a grid of extreme queries).
//!
//! The searches can be stopped: the `*_with` functions take a `cancelled` closure, polled
//! between two evaluations of the exact tail (each at most about a millisecond), and return
//! [`Cancelled`] once it answers `true`.

use std::convert::Infallible;

use serde::Serialize;

pub mod arpit2019;
pub mod chernoff;
pub mod exact_tail;

/// Largest width any bound search looks at; beyond it the answer is reported as `None`.
pub const MAX_SEARCH_WIDTH: u64 = 1_000_000_000;
/// Largest width at which the exact tail is evaluated (its minimal-width search stops here and
/// its guaranteed epsilon is `None` above it). One evaluation costs O(log m) incomplete gamma
/// ratios, about 0.1 ms at 10^9, so this is the general search limit.
pub const MAX_EXACT_TAIL_WIDTH: u64 = MAX_SEARCH_WIDTH;
/// Smallest accepted `delta`. Everything is computed in log space, so smaller values would not
/// overflow anything (`ln 4NL/delta` is at most 771 here); the limit keeps the accepted range
/// inside what the tests pin against independent values (per-layer targets `delta / (2 N L)`
/// from 0.5 down to 5e-318), and a `delta` below 1e-300 has no practical meaning.
pub const MIN_DELTA: f64 = 1e-300;

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

/// A computation stopped because its caller's `cancelled` closure answered `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bound computation was cancelled by its caller")]
pub struct Cancelled;

impl BoundInputs {
    pub fn new(epsilon: f64, delta: f64, depth: u32, samples: u64) -> Result<Self, BoundInputError> {
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(BoundInputError {
                field: "epsilon",
                message: format!("must be a finite number > 0, got {epsilon}"),
            });
        }
        if !(MIN_DELTA..1.0).contains(&delta) {
            return Err(BoundInputError {
                field: "delta",
                message: format!("must lie in [1e-300, 1), got {delta:e}"),
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

    /// Per-layer tolerance `epsilon' = (1 + epsilon)^(1/L) - 1` (finite for every accepted
    /// epsilon; 0 when it underflows, for epsilon below about 1e-303 L).
    pub fn epsilon_prime(&self) -> f64 {
        per_layer_tolerance(self.epsilon, self.depth)
    }

    /// `ln(4 N L / delta)`, as `ln 4 + ln N + ln L - ln delta` (no overflow: at most 771).
    pub fn log_term(&self) -> f64 {
        2.0 * std::f64::consts::LN_2 + (self.samples as f64).ln() + f64::from(self.depth).ln() - self.delta.ln()
    }

    /// `ln(2 N L)`, the log of the number of per-layer events in the union bound (forward and
    /// gradient, every sample and layer).
    fn ln_union_events(&self) -> f64 {
        std::f64::consts::LN_2 + (self.samples as f64).ln() + f64::from(self.depth).ln()
    }
}

/// `epsilon' = (1 + epsilon)^(1/L) - 1`, computed without cancellation (and never above
/// `f64::MAX`).
pub fn per_layer_tolerance(epsilon: f64, depth: u32) -> f64 {
    (epsilon.ln_1p() / depth as f64).exp_m1().min(f64::MAX)
}

/// `(1 + epsilon')^L - 1`, the inverse of [`per_layer_tolerance`] (infinite when it overflows).
pub fn total_tolerance(epsilon_prime: f64, depth: u32) -> f64 {
    (depth as f64 * epsilon_prime.ln_1p()).exp_m1()
}

/// One bound's answer for one set of inputs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoundReport {
    pub bound: Bound,
    /// Smallest width meeting `epsilon`; `None` if above the search limit (see `note`).
    pub min_width: Option<u64>,
    /// The unrounded width for bounds with a closed form (`arpit2019`, `chernoff`); `None` when
    /// it is not a finite number (see `notes`).
    pub min_width_exact: Option<f64>,
    /// Per-layer tolerance used for the minimal width.
    pub epsilon_prime: f64,
    /// At the requested width: the guaranteed epsilon (`None` without a width, if unbounded,
    /// or if it overflows a double; see `notes`).
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

/// How a search learns that its caller gave up: polled between evaluations of the exact tail.
pub(crate) trait Stop {
    type Error;
    fn check(&self) -> Result<(), Self::Error>;
}

/// Never stops (the plain functions).
pub(crate) struct Never;

impl Stop for Never {
    type Error = Infallible;
    fn check(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Stops once the caller's closure answers `true`.
pub(crate) struct Poll<'a>(pub &'a dyn Fn() -> bool);

impl Stop for Poll<'_> {
    type Error = Cancelled;
    fn check(&self) -> Result<(), Cancelled> {
        if (self.0)() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// The calculator's answer for these inputs (every bound; with `width`, the guarantees there).
pub fn bounds_answer(inputs: &BoundInputs, width: Option<u64>) -> BoundsAnswer {
    infallible(answer_impl(inputs, width, &Never))
}

/// [`bounds_answer`], stopping with [`Cancelled`] as soon as `cancelled()` returns `true`
/// (polled between evaluations of the exact tail, so within about a millisecond).
pub fn bounds_answer_with(
    inputs: &BoundInputs,
    width: Option<u64>,
    cancelled: &dyn Fn() -> bool,
) -> Result<BoundsAnswer, Cancelled> {
    answer_impl(inputs, width, &Poll(cancelled))
}

fn answer_impl<S: Stop>(inputs: &BoundInputs, width: Option<u64>, stop: &S) -> Result<BoundsAnswer, S::Error> {
    Ok(BoundsAnswer {
        inputs: BoundsEcho {
            epsilon: inputs.epsilon,
            delta: inputs.delta,
            depth: inputs.depth,
            samples: inputs.samples,
            width,
            epsilon_prime: inputs.epsilon_prime(),
            log_term: inputs.log_term(),
        },
        bounds: all_bounds_impl(inputs, width, stop)?,
    })
}

/// Evaluate every bound; `width` adds the guaranteed epsilon at that width.
pub fn all_bounds(inputs: &BoundInputs, width: Option<u64>) -> Vec<BoundReport> {
    infallible(all_bounds_impl(inputs, width, &Never))
}

/// [`all_bounds`], stopping with [`Cancelled`] as soon as `cancelled()` returns `true`.
pub fn all_bounds_with(
    inputs: &BoundInputs,
    width: Option<u64>,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<BoundReport>, Cancelled> {
    all_bounds_impl(inputs, width, &Poll(cancelled))
}

fn all_bounds_impl<S: Stop>(inputs: &BoundInputs, width: Option<u64>, stop: &S) -> Result<Vec<BoundReport>, S::Error> {
    Bound::ALL
        .iter()
        .map(|&b| evaluate_impl(b, inputs, width, stop))
        .collect()
}

/// One bound's minimal width and, with `width`, its guarantee there.
pub fn evaluate(bound: Bound, inputs: &BoundInputs, width: Option<u64>) -> BoundReport {
    infallible(evaluate_impl(bound, inputs, width, &Never))
}

/// [`evaluate`], stopping with [`Cancelled`] as soon as `cancelled()` returns `true`.
pub fn evaluate_with(
    bound: Bound,
    inputs: &BoundInputs,
    width: Option<u64>,
    cancelled: &dyn Fn() -> bool,
) -> Result<BoundReport, Cancelled> {
    evaluate_impl(bound, inputs, width, &Poll(cancelled))
}

fn evaluate_impl<S: Stop>(
    bound: Bound,
    inputs: &BoundInputs,
    width: Option<u64>,
    stop: &S,
) -> Result<BoundReport, S::Error> {
    let ep = inputs.epsilon_prime();
    let mut notes = Vec::new();
    if ep == 0.0 {
        notes.push(format!(
            "epsilon' = (1 + epsilon)^(1/L) - 1 underflows to 0 in double precision (epsilon = {:e}, L = {}): \
             no width meets it",
            inputs.epsilon, inputs.depth
        ));
    }
    let (min_width, min_width_exact) = match bound {
        Bound::Arpit2019 => {
            let m = arpit2019::min_width_real(inputs);
            (ceil_width(m), m.is_finite().then_some(m))
        }
        Bound::Chernoff => {
            let m = chernoff::min_width_real(inputs);
            (ceil_width(m), m.is_finite().then_some(m))
        }
        Bound::ExactTail => (exact_tail::min_width_impl(inputs, stop)?, None),
    };
    if bound != Bound::ExactTail && min_width_exact.is_none() {
        notes.push("the unrounded width is not a finite double (epsilon' too small)".into());
    }
    if min_width.is_none() {
        let limit = if bound == Bound::ExactTail {
            MAX_EXACT_TAIL_WIDTH
        } else {
            MAX_SEARCH_WIDTH
        };
        notes.push(format!("the minimal width exceeds the search limit of {limit}"));
    }
    let guaranteed_prime = match width {
        None => None,
        Some(0) => {
            notes.push("width 0 guarantees nothing".into());
            None
        }
        Some(m) => match bound {
            Bound::Arpit2019 => Some(arpit2019::per_layer_epsilon(inputs, m)),
            Bound::Chernoff => {
                let t = chernoff::per_layer_epsilon(inputs, m);
                if t.is_none() {
                    notes.push(format!(
                        "no per-layer tolerance up to {:e} meets the target at width {m}",
                        chernoff::MAX_TOLERANCE
                    ));
                }
                t
            }
            Bound::ExactTail if m > MAX_EXACT_TAIL_WIDTH => {
                notes.push(format!(
                    "the exact tail is evaluated up to width {MAX_EXACT_TAIL_WIDTH}: no guarantee at {m}"
                ));
                None
            }
            Bound::ExactTail => {
                let t = exact_tail::per_layer_epsilon_impl(inputs, m, stop)?;
                if t.is_none() {
                    notes.push(format!(
                        "no per-layer tolerance up to {} meets the target at width {m}",
                        exact_tail::MAX_TOLERANCE
                    ));
                }
                t
            }
        },
    };
    let guaranteed = guaranteed_prime.and_then(|t| {
        let g = total_tolerance(t, inputs.depth);
        if g.is_finite() {
            Some(g)
        } else {
            notes.push(format!(
                "the guaranteed epsilon (1 + {t:e})^{} - 1 exceeds the largest double",
                inputs.depth
            ));
            None
        }
    });
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
    Ok(BoundReport {
        bound,
        min_width,
        min_width_exact,
        epsilon_prime: ep,
        width,
        guaranteed_epsilon: guaranteed,
        guaranteed_epsilon_prime: guaranteed_prime,
        notes,
    })
}

fn ceil_width(m: f64) -> Option<u64> {
    if m.is_finite() && m <= MAX_SEARCH_WIDTH as f64 {
        Some((m.ceil() as u64).max(1))
    } else {
        None
    }
}

/// Smallest `t` in `[0, t_max]` with `ok(t)` to relative precision 1e-13 (monotone `ok`), by
/// bisection; `None` if `ok(t_max)` fails.
fn search_min_tolerance(t_max: f64, ok: impl Fn(f64) -> bool) -> Option<f64> {
    if !ok(t_max) {
        return None;
    }
    let (mut lo, mut hi) = (0.0, t_max);
    for _ in 0..2000 {
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
        // docs/theory.md's table (6 decimals) and the same values to full precision from Python.
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
    fn exact_tail_widths_at_tiny_delta() {
        // (epsilon, delta, L, N) -> width. Independent values (tools/exact_tail_reference.py,
        // mpmath at 50 digits over every k from 0 to n): 2 N L P at the width and one below:
        //   (0.5, 1e-300, 1, 1):    m = 7367:   9.37690227477e-301 <= 1e-300, m - 1: 1.02937528034e-300
        //   (0.2, 1e-150, 1, 1):    m = 22049:  9.89041928029e-151 <= 1e-150, m - 1: 1.00451598569e-150
        //   (1, 1e-200, 10, 100):   m = 227777: 9.98764992659e-201 <= 1e-200, m - 1: 1.00080268903e-200
        //   (0.05, 0.2, 1, 1):      m = 1354:   0.199763949498 <= 0.2, m - 1: 0.200014702017
        //   (3, 0.3, 1, 1):         m = 1:      0.00467773498105 <= 0.3
        //   (2, 0.05, 1, 1000):     m = 6:      0.0288993164256 <= 0.05, m - 1: 0.116945246861
        // and for the last three a scan from m = 1 finds no smaller passing width.
        // The code before the log-space sums answered 7321, 22041 and 226556 for the first three.
        let cases = [
            (0.5, 1e-300, 1, 1, 7367),
            (0.2, 1e-150, 1, 1, 22049),
            (1.0, 1e-200, 10, 100, 227777),
            (0.05, 0.2, 1, 1, 1354),
            (3.0, 0.3, 1, 1, 1),
            (2.0, 0.05, 1, 1000, 6),
        ];
        for (eps, delta, depth, n, want) in cases {
            let inputs = BoundInputs::new(eps, delta, depth, n).unwrap();
            exact_tail::clear_memo();
            assert_eq!(exact_tail::min_width(&inputs), Some(want), "{eps} {delta} {depth} {n}");
            // The guarantee at the width meets epsilon', one below it does not.
            let t = inputs.epsilon_prime();
            assert!(exact_tail::per_layer_epsilon(&inputs, want).unwrap() <= t);
            if want > 1 {
                assert!(exact_tail::per_layer_epsilon(&inputs, want - 1).unwrap() > t);
            }
        }
    }

    #[test]
    fn exact_tail_lies_between_chernoff_and_zero() {
        // Exact tail <= Chernoff bound, so its width never exceeds Chernoff's.
        for (eps, delta, depth, n) in [
            (0.1, 1e-300, 10, 1_000_000_000_000u64),
            (10.0, 0.3, 1, 1),
            (0.01, 1e-9, 3, 7),
        ] {
            let inputs = BoundInputs::new(eps, delta, depth, n).unwrap();
            let exact = exact_tail::min_width(&inputs).unwrap();
            let chern = evaluate(Bound::Chernoff, &inputs, None).min_width.unwrap();
            assert!(exact <= chern, "{exact} > {chern}");
        }
    }

    #[test]
    fn log_term_without_overflow() {
        // 4 N L / delta = 4e317 overflows a double; its log does not.
        let inputs = BoundInputs::new(0.1, 1e-300, 100_000, 1_000_000_000_000).unwrap();
        let want = (4.0f64).ln() + 1e12f64.ln() + 1e5f64.ln() + 300.0 * 10f64.ln();
        assert!(rel(inputs.log_term(), want) < 1e-15);
        assert!((want - 731.305_768).abs() < 1e-5, "{want}");
        // Refused below the range, naming delta and the range.
        let err = BoundInputs::new(0.1, 1e-320, 10, 10).unwrap_err();
        assert_eq!(err.field, "delta");
        assert!(err.message.contains("[1e-300, 1)"), "{}", err.message);
        assert!(BoundInputs::new(0.1, 1e-300, 10, 10).is_ok());
        assert!(BoundInputs::new(0.1, 0.999, 10, 10).is_ok());
    }

    #[test]
    fn every_number_is_finite_at_extreme_inputs() {
        let epsilons = [1e-300, 1e-4, 0.3, 1.0, 3.0, 1e3, 1e300, f64::MAX];
        let deltas = [1e-300, 0.5];
        let depths = [1, 100_000];
        let samples = [1, 1_000_000_000_000u64];
        let widths = [None, Some(1), Some(1_000_000_000), Some(u64::MAX)];
        for &e in &epsilons {
            for &d in &deltas {
                for &l in &depths {
                    for &n in &samples {
                        let inputs = BoundInputs::new(e, d, l, n).unwrap();
                        for &w in &widths {
                            let a = bounds_answer(&inputs, w);
                            assert!(a.inputs.log_term.is_finite() && a.inputs.epsilon_prime.is_finite());
                            for r in &a.bounds {
                                let all = [r.min_width_exact, r.guaranteed_epsilon, r.guaranteed_epsilon_prime];
                                assert!(
                                    all.iter().flatten().all(|v| v.is_finite()) && r.epsilon_prime.is_finite(),
                                    "{e} {d} {l} {n} {w:?}: {r:?}"
                                );
                                if r.min_width.is_none() || (w.is_some() && r.guaranteed_epsilon.is_none()) {
                                    assert!(!r.notes.is_empty(), "a None without a note: {r:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cancellation_stops_the_searches() {
        use std::cell::Cell;
        let inputs = BoundInputs::new(0.1, 1e-200, 10, 123_456).unwrap();
        exact_tail::clear_memo();
        assert_eq!(
            bounds_answer_with(&inputs, Some(50_000), &|| true).unwrap_err(),
            Cancelled
        );
        assert_eq!(exact_tail::min_width_with(&inputs, &|| true), Err(Cancelled));
        assert_eq!(exact_tail::per_layer_epsilon_with(&inputs, 7, &|| true), Err(Cancelled));
        // Cancelled after a few polls: still an error, and nothing remembered.
        let polls = Cell::new(0);
        let after_three = || {
            polls.set(polls.get() + 1);
            polls.get() > 3
        };
        assert_eq!(
            evaluate_with(Bound::ExactTail, &inputs, None, &after_three),
            Err(Cancelled)
        );
        assert_eq!(polls.get(), 4);
        // Never cancelled: the same answer as the plain function.
        let plain = bounds_answer(&inputs, Some(50_000));
        assert_eq!(bounds_answer_with(&inputs, Some(50_000), &|| false), Ok(plain));
    }

    #[test]
    fn input_ranges_name_the_field() {
        assert_eq!(BoundInputs::new(0.0, 0.05, 10, 10).unwrap_err().field, "epsilon");
        assert_eq!(BoundInputs::new(0.1, 1.0, 10, 10).unwrap_err().field, "delta");
        assert_eq!(BoundInputs::new(0.1, 0.5, 0, 10).unwrap_err().field, "depth");
        assert_eq!(BoundInputs::new(0.1, 0.5, 3, 0).unwrap_err().field, "samples");
    }
}
