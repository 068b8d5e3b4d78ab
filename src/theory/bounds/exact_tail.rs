//! Exact per-layer tail, union bound over `2 N L` events (docs/theory.md section 4.2).
//!
//! The bound holds at width `m` and per-layer tolerance `t` when
//! `2 N L P(|sqrt(X) - 1| > t) <= delta`, tested in log space as
//! `ln(2 N L) + ln P - ln delta <= 0` ([`crate::theory::exact::ln_layer_tail`], relative error
//! about 1e-13), so targets `delta / (2 N L)` down to 1e-318 (and below) are compared exactly.
//!
//! Both searches start from the Chernoff answer, which bounds the exact one from above in exact
//! arithmetic (`P <= 2 exp(-m I)`), and close the bracket with the Illinois variant of regula
//! falsi (on integers for the width), falling back to bisection when it stalls: about 10
//! evaluations of the tail, each O(log m) incomplete gamma ratios.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::{chernoff, infallible, BoundInputs, Cancelled, Never, Poll, Stop, MAX_EXACT_TAIL_WIDTH};
use crate::theory::exact::ln_layer_tail;

/// Largest per-layer tolerance the guaranteed-epsilon search considers. At width 1 with
/// `delta = 1e-300`, `N = 10^12`, `L = 10^5` the answer is about 53.
pub const MAX_TOLERANCE: f64 = 1000.0;
/// Up to this width the minimal width is found by scanning from 1, so it is the first passing
/// width even where the tail is not monotone in the width (lattice effects of tiny widths).
const SCAN_WIDTH: u64 = 256;

/// `ln(2 N L) + ln P(|sqrt(X) - 1| > t) - ln(delta)` at width `m`: `<= 0` where the bound holds.
fn excess(inputs: &BoundInputs, m: u64, t: f64) -> f64 {
    inputs.ln_union_events() + ln_layer_tail(m, t) - inputs.delta.ln()
}

type Key = (u64, u64, u32, u64);
/// Entries kept; the map is emptied when full (answers are cheap to recompute once).
const CAPACITY: usize = 4096;
static KNOWN: LazyLock<Mutex<HashMap<Key, Option<u64>>>> = LazyLock::new(Default::default);

/// Smallest m in `[1, MAX_EXACT_TAIL_WIDTH]` with `2 N L P(|sqrt(X) - 1| > epsilon') <= delta`;
/// `None` if no width up to the limit passes.
///
/// About 10 tail evaluations (well under 10 ms at any width); answers are also remembered for
/// the life of the process (a pure function of the inputs), so repeated queries are free.
pub fn min_width(inputs: &BoundInputs) -> Option<u64> {
    infallible(min_width_impl(inputs, &Never))
}

/// [`min_width`], stopping with [`Cancelled`] as soon as `cancelled()` returns `true`
/// (polled before every tail evaluation). A cancelled search is not remembered.
pub fn min_width_with(inputs: &BoundInputs, cancelled: &dyn Fn() -> bool) -> Result<Option<u64>, Cancelled> {
    min_width_impl(inputs, &Poll(cancelled))
}

/// Forget every remembered minimal width (for benchmarks that time the search itself).
pub fn clear_memo() {
    KNOWN.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

pub(super) fn min_width_impl<S: Stop>(inputs: &BoundInputs, stop: &S) -> Result<Option<u64>, S::Error> {
    let key = (
        inputs.epsilon.to_bits(),
        inputs.delta.to_bits(),
        inputs.depth,
        inputs.samples,
    );
    if let Some(&m) = KNOWN.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(m);
    }
    let m = search_width(inputs, stop)?;
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if known.len() >= CAPACITY {
        known.clear();
    }
    known.insert(key, m);
    Ok(m)
}

fn search_width<S: Stop>(inputs: &BoundInputs, stop: &S) -> Result<Option<u64>, S::Error> {
    let limit = MAX_EXACT_TAIL_WIDTH;
    let t = inputs.epsilon_prime();
    if t.is_nan() || t <= 0.0 {
        return Ok(None); // P(|sqrt X - 1| > 0) = 1: no width passes
    }
    let f = |m: u64| -> Result<f64, S::Error> {
        stop.check()?;
        Ok(excess(inputs, m, t))
    };
    // Upper bracket: the Chernoff width passes (P <= 2 exp(-m I)); doubled should rounding say
    // otherwise.
    let mc = chernoff::min_width_real(inputs);
    let mut hi = if mc.is_finite() {
        (mc.ceil().max(1.0) as u64).min(limit)
    } else {
        limit
    };
    let mut f_hi = f(hi)?;
    while f_hi.is_nan() || f_hi > 0.0 {
        if hi >= limit {
            return Ok(None);
        }
        hi = hi.saturating_mul(2).min(limit);
        f_hi = f(hi)?;
    }
    if hi <= SCAN_WIDTH {
        for m in 1..hi {
            if f(m)? <= 0.0 {
                return Ok(Some(m));
            }
        }
        return Ok(Some(hi));
    }
    let mut lo = 1u64;
    let f_lo = f(lo)?;
    if f_lo <= 0.0 {
        return Ok(Some(1));
    }
    // Illinois on integers: f(lo) > 0 >= f(hi) throughout.
    let (mut w_lo, mut w_hi) = (f_lo, f_hi);
    let mut last_kept_lo: Option<bool> = None;
    let mut slow_steps = 0;
    while hi - lo > 1 {
        let span = hi - lo;
        let interpolated = w_lo.is_finite() && w_hi.is_finite() && w_lo > 0.0 && w_hi <= 0.0 && slow_steps < 2;
        let m = if interpolated {
            let frac = w_lo / (w_lo - w_hi);
            lo + ((span as f64 * frac).round() as u64).clamp(1, span - 1)
        } else {
            lo + span / 2
        };
        let fm = f(m)?;
        if fm <= 0.0 {
            hi = m;
            w_hi = fm;
            if last_kept_lo == Some(true) {
                w_lo *= 0.5;
            }
            last_kept_lo = Some(true);
        } else {
            // NaN lands here: treated as failing, and the next step bisects.
            lo = m;
            w_lo = fm;
            if last_kept_lo == Some(false) {
                w_hi *= 0.5;
            }
            last_kept_lo = Some(false);
        }
        slow_steps = if (hi - lo) * 2 > span { slow_steps + 1 } else { 0 };
    }
    Ok(Some(hi))
}

/// Smallest per-layer tolerance the union bound guarantees at this width (to 1e-13 relative),
/// `None` for width 0, above [`MAX_EXACT_TAIL_WIDTH`] or if no tolerance up to
/// [`MAX_TOLERANCE`] passes.
pub fn per_layer_epsilon(inputs: &BoundInputs, width: u64) -> Option<f64> {
    infallible(per_layer_epsilon_impl(inputs, width, &Never))
}

/// [`per_layer_epsilon`], stopping with [`Cancelled`] as soon as `cancelled()` returns `true`.
pub fn per_layer_epsilon_with(
    inputs: &BoundInputs,
    width: u64,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<f64>, Cancelled> {
    per_layer_epsilon_impl(inputs, width, &Poll(cancelled))
}

pub(super) fn per_layer_epsilon_impl<S: Stop>(
    inputs: &BoundInputs,
    width: u64,
    stop: &S,
) -> Result<Option<f64>, S::Error> {
    if width == 0 || width > MAX_EXACT_TAIL_WIDTH {
        return Ok(None);
    }
    let g = |t: f64| -> Result<f64, S::Error> {
        stop.check()?;
        Ok(excess(inputs, width, t))
    };
    // Upper bracket from Chernoff (a valid guarantee in exact arithmetic), doubled if needed.
    let mut hi = chernoff::per_layer_epsilon(inputs, width)
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or(MAX_TOLERANCE)
        .min(MAX_TOLERANCE);
    let mut g_hi = g(hi)?;
    while g_hi.is_nan() || g_hi > 0.0 {
        if hi >= MAX_TOLERANCE {
            return Ok(None);
        }
        hi = (hi * 2.0).min(MAX_TOLERANCE);
        g_hi = g(hi)?;
    }
    // At t = 0 the tail is 1 and the excess ln(2 N L / delta) > 0.
    let mut lo = 0.0f64;
    let g_lo = g(lo)?;
    if g_lo <= 0.0 {
        return Ok(Some(0.0));
    }
    let (mut w_lo, mut w_hi) = (g_lo, g_hi);
    let mut last_kept_lo: Option<bool> = None;
    let mut slow_steps = 0;
    for _ in 0..400 {
        if hi - lo <= 1e-13 * hi {
            break;
        }
        let span = hi - lo;
        let interpolated = w_lo.is_finite() && w_hi.is_finite() && w_lo > 0.0 && w_hi <= 0.0 && slow_steps < 2;
        let mut t = if interpolated {
            lo + span * (w_lo / (w_lo - w_hi))
        } else {
            0.5 * (lo + hi)
        };
        // Stay strictly inside the bracket.
        if !(t > lo && t < hi) {
            t = 0.5 * (lo + hi);
        }
        let gt = g(t)?;
        if gt <= 0.0 {
            hi = t;
            w_hi = gt;
            if last_kept_lo == Some(true) {
                w_lo *= 0.5;
            }
            last_kept_lo = Some(true);
        } else {
            lo = t;
            w_lo = gt;
            if last_kept_lo == Some(false) {
                w_hi *= 0.5;
            }
            last_kept_lo = Some(false);
        }
        slow_steps = if (hi - lo) * 2.0 > span { slow_steps + 1 } else { 0 };
    }
    Ok(Some(hi))
}
