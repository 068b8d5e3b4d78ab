//! What a simulation says about a bound's claim (docs/theory.md, "Verdicts").
//!
//! A bound claims, at every width m: with probability at least 1 - delta over the weights,
//! every layer's ratio of every one of the N samples lies within 1 +/- guaranteed_epsilon(m).
//! A job with T networks is evidence about that claim at its actual width. The number of
//! networks in which every ratio stayed within the tolerance is Binomial(T, P); with the
//! one-sided Clopper-Pearson limits at level [`CONFIDENCE`]:
//!
//! * `holds`: the lower limit is at least 1 - delta (the claim is supported);
//! * `violated`: the upper limit is below 1 - delta (the claim is refuted);
//! * `inconclusive`: neither (one network decides nothing, say); the check says how many more
//!   networks without a failure would support the claim;
//! * `not_applicable`: the theorem does not cover this network (another init, weight norm, or
//!   the gradient claim with unequal hidden widths).
//!
//! Each decision is a one-sided test with error at most 1 - CONFIDENCE.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF};

use crate::spec::names::string_enum;

/// Confidence of each one-sided decision.
pub const CONFIDENCE: f64 = 0.95;

/// Largest number of additional networks [`additional_networks_needed`] looks for.
const MAX_NETWORKS_NEEDED: u64 = 100_000_000;

string_enum! {
    /// What a simulation says about a bound's claim.
    pub enum Verdict {
        Holds = "holds",
        Violated = "violated",
        Inconclusive = "inconclusive",
        NotApplicable = "not_applicable",
    }
}

pub use crate::spec::Claim;

/// One-sided Clopper-Pearson lower limit at `confidence` for `successes` of `trials`.
pub fn lower_limit(successes: u64, trials: u64, confidence: f64) -> f64 {
    if successes == 0 || trials == 0 {
        return 0.0;
    }
    if successes == trials {
        // P(all successes) = p^n = 1 - confidence.
        return (1.0 - confidence).powf(1.0 / trials as f64);
    }
    let (k, n) = (successes as f64, trials as f64);
    Beta::new(k, n - k + 1.0).map_or(f64::NAN, |b| b.inverse_cdf(1.0 - confidence))
}

/// One-sided Clopper-Pearson upper limit at `confidence`.
pub fn upper_limit(successes: u64, trials: u64, confidence: f64) -> f64 {
    if successes >= trials {
        return 1.0;
    }
    if successes == 0 {
        return 1.0 - (1.0 - confidence).powf(1.0 / trials as f64);
    }
    let (k, n) = (successes as f64, trials as f64);
    Beta::new(k + 1.0, n - k).map_or(f64::NAN, |b| b.inverse_cdf(confidence))
}

/// `ln P(Bin(n, q) <= f)`, summed term by term in log space (each term from the previous one,
/// exact for any n). O(f).
fn ln_binomial_cdf(n: u64, q: f64, f: u64) -> f64 {
    let (ln_q, ln_1q) = (q.ln(), (-q).ln_1p());
    let mut term = n as f64 * ln_1q; // j = 0
    let mut total = term;
    for j in 0..f.min(n) {
        term += ((n - j) as f64 / (j + 1) as f64).ln() + ln_q - ln_1q;
        let (hi, lo) = if term > total { (term, total) } else { (total, term) };
        total = hi + (lo - hi).exp().ln_1p();
    }
    total
}

/// The fewest additional networks, all without a failure, after which the one-sided lower limit
/// of `successes` of `trials` reaches `target` (None: more than [`MAX_NETWORKS_NEEDED`], or
/// more than 10^5 failures already, where it is not worth the count).
///
/// The lower limit of s of n reaches `target` exactly when `P(Bin(n, 1 - target) <= n - s)`,
/// the chance of so few failures were the claim true at its boundary, is at most
/// 1 - CONFIDENCE; that is what is searched, so no Beta quantile is needed.
pub fn additional_networks_needed(successes: u64, trials: u64, target: f64) -> Option<u64> {
    let failures = trials - successes.min(trials);
    if failures > 100_000 {
        return None;
    }
    let alpha = (1.0 - CONFIDENCE).ln();
    let ok = |extra: u64| ln_binomial_cdf(trials + extra, 1.0 - target, failures) <= alpha;
    if ok(0) {
        return Some(0);
    }
    if !ok(MAX_NETWORKS_NEEDED) {
        return None;
    }
    let (mut lo, mut hi) = (0u64, 1u64);
    while !ok(hi) {
        lo = hi;
        hi = (hi * 2).min(MAX_NETWORKS_NEEDED);
    }
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

/// The evidence about one claim of one bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    pub claim: Claim,
    /// The tolerance tested: the bound's guaranteed epsilon at the actual width.
    pub tolerance: Option<f64>,
    /// Networks, and networks in which every ratio of the claim stayed within the tolerance.
    pub trials: u64,
    pub successes: u64,
    /// One-sided Clopper-Pearson limits at [`CONFIDENCE`].
    pub lower_limit: f64,
    pub upper_limit: f64,
    /// 1 - delta.
    pub target: f64,
    pub verdict: Verdict,
    /// For `inconclusive`: how many more networks, all without a failure, would support the
    /// claim (null if more than 10^8 or if it cannot be supported that way).
    pub more_networks_needed: Option<u64>,
    pub reason: String,
}

impl Evidence {
    /// A claim the theorem does not make here.
    pub fn not_applicable(claim: Claim, delta: f64, reason: impl Into<String>) -> Evidence {
        Evidence {
            claim,
            tolerance: None,
            trials: 0,
            successes: 0,
            lower_limit: 0.0,
            upper_limit: 1.0,
            target: 1.0 - delta,
            verdict: Verdict::NotApplicable,
            more_networks_needed: None,
            reason: reason.into(),
        }
    }

    /// Judge a claim at `tolerance` from each network's largest deviation (NaN or infinite for a
    /// network whose ratio is undefined: a failure).
    pub fn judge(claim: Claim, tolerance: f64, max_deviation: &[f64], delta: f64) -> Evidence {
        let trials = max_deviation.len() as u64;
        let successes = max_deviation.iter().filter(|d| **d <= tolerance).count() as u64;
        let target = 1.0 - delta;
        let lower = lower_limit(successes, trials, CONFIDENCE);
        let upper = upper_limit(successes, trials, CONFIDENCE);
        let within = format!("{successes} of {trials} networks within 1 +/- {tolerance:.6}");
        let bounds = format!("one-sided {:.0}% limits {lower:.4}..{upper:.4}", CONFIDENCE * 100.0);
        let (verdict, more, reason) = if lower >= target {
            (
                Verdict::Holds,
                None,
                format!("{within}; {bounds}: lower limit >= 1 - delta = {target}"),
            )
        } else if upper < target {
            (
                Verdict::Violated,
                None,
                format!("{within}; {bounds}: upper limit < 1 - delta = {target}"),
            )
        } else {
            let more = additional_networks_needed(successes, trials, target);
            let need = match more {
                Some(n) => format!("{n} more networks without a failure would support it"),
                None => "no feasible number of further networks without a failure would support it".into(),
            };
            (
                Verdict::Inconclusive,
                more,
                format!("{within}; {bounds} contain 1 - delta = {target}: {need}"),
            )
        };
        Evidence {
            claim,
            tolerance: Some(tolerance),
            trials,
            successes,
            lower_limit: lower,
            upper_limit: upper,
            target,
            verdict,
            more_networks_needed: more,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn one_sided_limits_match_scipy() {
        // One-sided 95% limits of 7 of 10: scipy.stats.beta.ppf(0.05, 7, 4) = 0.39337578389458766,
        // beta.ppf(0.95, 8, 3) = 0.9127355660858496.
        assert!(rel(lower_limit(7, 10, 0.95), 0.393_375_783_894_587_66) < 1e-6);
        assert!(rel(upper_limit(7, 10, 0.95), 0.912_735_566_085_849_6) < 1e-6);
        // k = n: lower = alpha^(1/n); k = 0: upper = 1 - alpha^(1/n).
        assert!(rel(lower_limit(59, 59, 0.95), 0.05f64.powf(1.0 / 59.0)) < 1e-12);
        assert!(rel(upper_limit(0, 1, 0.95), 0.95) < 1e-12);
    }

    #[test]
    fn fifty_nine_clean_networks_support_a_claim_at_delta_five_percent() {
        // 0.05^(1/58) = 0.9497 < 0.95 <= 0.05^(1/59) = 0.9505.
        assert_eq!(additional_networks_needed(0, 0, 0.95), Some(59));
        assert_eq!(additional_networks_needed(1, 1, 0.95), Some(58));
        assert_eq!(additional_networks_needed(59, 59, 0.95), Some(0));
        // One failure in 10: the lower limit of 9+k of 10+k reaches 0.95 only with many more;
        // the count agrees with the Beta quantiles themselves.
        let more = additional_networks_needed(9, 10, 0.95).unwrap();
        assert!(lower_limit(9 + more, 10 + more, 0.95) >= 0.95);
        assert!(lower_limit(9 + more - 1, 10 + more - 1, 0.95) < 0.95);
        // Far out: ln(0.05) / ln(1 - 1e-6) = 2995730.8 clean networks in all; with one failure
        // the Poisson limit gives about 4.7439 / 1e-6 (P(Poisson(4.7439) <= 1) = 0.05).
        assert_eq!(additional_networks_needed(1, 1, 0.999_999), Some(2_995_731 - 1));
        let one_failure = additional_networks_needed(0, 1, 0.999_999).unwrap() as f64;
        assert!((one_failure / 4.7439e6 - 1.0).abs() < 1e-3, "{one_failure}");
        // Beyond 10^8 networks: not counted.
        assert_eq!(additional_networks_needed(1, 1, 0.999_999_99), None);
    }

    #[test]
    fn verdicts_follow_the_limits() {
        let clean = vec![0.01; 59];
        assert_eq!(Evidence::judge(Claim::Both, 0.1, &clean, 0.05).verdict, Verdict::Holds);
        let one = vec![0.5];
        let e = Evidence::judge(Claim::Both, 0.1, &one, 0.05);
        assert_eq!(e.verdict, Verdict::Inconclusive);
        let bad = vec![0.5; 10];
        assert_eq!(Evidence::judge(Claim::Both, 0.1, &bad, 0.05).verdict, Verdict::Violated);
        // An undefined ratio is a failure.
        let nan = vec![f64::NAN; 10];
        assert_eq!(Evidence::judge(Claim::Both, 0.1, &nan, 0.05).verdict, Verdict::Violated);
    }
}
