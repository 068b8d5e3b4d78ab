//! Descriptive statistics and the Clopper-Pearson interval.

use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF};

/// Summary of a set of ratios. Undefined values (NaN: a dead network with no output error, or a
/// signal that overflowed: `sim::TrialRatios::undefined_past_overflow`)
/// are counted in `undefined` and left out of everything else. A statistic that is not a finite
/// number (of no defined values, or overflowing) is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatioStats {
    pub count: u64,
    pub undefined: u64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub mean: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub std: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub min: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub max: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub p01: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub p05: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub p50: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub p95: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub p99: f64,
}

/// Summary of deviations |1 - r| (null where not a finite number, e.g. of no defined ratio).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviationStats {
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub mean: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub std: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub p95: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub max: f64,
}

/// JSON has no NaN or infinity (serde_json writes them as null): read null back as NaN.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Mean, sample standard deviation, min and max of a handful of values (e.g. across trials);
/// null where not a finite number (an undefined or infinite value among them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Spread {
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub mean: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub std: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub min: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub max: f64,
}

/// Quantile with linear interpolation between order statistics (NumPy's default).
/// `sorted` must be sorted and non-empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Mean and sample standard deviation (n - 1 denominator; 0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// The mean of the values that are not NaN (NaN when there are none), without sorting them.
pub fn defined_mean(values: &[f64]) -> f64 {
    let (sum, n) = values
        .iter()
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Values from which a sort runs on the current pool's threads.
const PARALLEL_SORT_MIN: usize = 1 << 16;

/// Sort the defined values of `values` in place (NaNs moved out) and return how many were NaN.
fn sort_defined(values: &mut Vec<f64>) -> u64 {
    let before = values.len();
    values.retain(|v| !v.is_nan());
    // Unstable is the same order here: values equal under total_cmp are the same bits, so any
    // correct sort, on any number of threads, gives the same array.
    if values.len() >= PARALLEL_SORT_MIN {
        values.par_sort_unstable_by(f64::total_cmp);
    } else {
        values.sort_unstable_by(f64::total_cmp);
    }
    (before - values.len()) as u64
}

pub fn ratio_stats(mut values: Vec<f64>) -> RatioStats {
    let undefined = sort_defined(&mut values);
    if values.is_empty() {
        let nan = f64::NAN;
        return RatioStats {
            count: 0,
            undefined,
            mean: nan,
            std: nan,
            min: nan,
            max: nan,
            p01: nan,
            p05: nan,
            p50: nan,
            p95: nan,
            p99: nan,
        };
    }
    let (mean, std) = mean_std(&values);
    RatioStats {
        count: values.len() as u64,
        undefined,
        mean,
        std,
        min: values[0],
        max: values[values.len() - 1],
        p01: quantile(&values, 0.01),
        p05: quantile(&values, 0.05),
        p50: quantile(&values, 0.50),
        p95: quantile(&values, 0.95),
        p99: quantile(&values, 0.99),
    }
}

pub fn deviation_stats(ratios: &[f64]) -> DeviationStats {
    let mut dev: Vec<f64> = ratios.iter().map(|r| (1.0 - r).abs()).collect();
    sort_defined(&mut dev);
    if dev.is_empty() {
        return DeviationStats {
            mean: f64::NAN,
            std: f64::NAN,
            p95: f64::NAN,
            max: f64::NAN,
        };
    }
    let (mean, std) = mean_std(&dev);
    DeviationStats {
        mean,
        std,
        p95: quantile(&dev, 0.95),
        max: dev[dev.len() - 1],
    }
}

pub fn spread(values: &[f64]) -> Spread {
    let (mean, std) = mean_std(values);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Spread { mean, std, min, max }
}

/// Fraction of `ratios` within [1 - epsilon, 1 + epsilon]; NaN counts as outside.
pub fn fraction_within(ratios: &[f64], epsilon: f64) -> f64 {
    if ratios.is_empty() {
        return f64::NAN;
    }
    ratios.iter().filter(|r| (1.0 - **r).abs() <= epsilon).count() as f64 / ratios.len() as f64
}

/// Two-sided Clopper-Pearson interval at level `1 - alpha` for `successes` out of `trials`.
pub fn clopper_pearson(successes: u64, trials: u64, alpha: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (successes as f64, trials as f64);
    let lower = if successes == 0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0).map_or(f64::NAN, |b| b.inverse_cdf(alpha / 2.0))
    };
    let upper = if successes >= trials {
        1.0
    } else {
        Beta::new(k + 1.0, n - k).map_or(f64::NAN, |b| b.inverse_cdf(1.0 - alpha / 2.0))
    };
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // numpy.quantile(range(1, 11), [0.05, 0.5, 0.99]) = 1.45, 5.5, 9.91
        assert!((quantile(&v, 0.05) - 1.45).abs() < 1e-12);
        assert!((quantile(&v, 0.5) - 5.5).abs() < 1e-12);
        assert!((quantile(&v, 0.99) - 9.91).abs() < 1e-12);
    }

    #[test]
    fn clopper_pearson_reference() {
        // scipy.stats.binomtest(k, n).proportion_ci(method="exact"):
        // (7, 10) -> (0.3475471499, 0.9332604888); (0, 1) -> (0, 0.975); (20, 20) -> (0.8315665, 1)
        let (lo, hi) = clopper_pearson(7, 10, 0.05);
        assert!((lo / 0.3475471499 - 1.0).abs() < 1e-6, "{lo}");
        assert!((hi / 0.9332604888 - 1.0).abs() < 1e-6, "{hi}");
        let (lo, hi) = clopper_pearson(0, 1, 0.05);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.975).abs() < 1e-9);
        let (lo, hi) = clopper_pearson(20, 20, 0.05);
        assert!((lo / 0.8315665 - 1.0).abs() < 1e-6, "{lo}");
        assert_eq!(hi, 1.0);
    }

    /// Large sets sort on the pool's threads: the statistics are the same bits on one thread,
    /// on two, and as the sequential sort gives them (ties and NaNs included).
    #[test]
    fn parallel_sorts_give_the_same_statistics() {
        let n = 4 * PARALLEL_SORT_MIN + 7;
        let values: Vec<f64> = (0..n)
            .map(|i| match i % 1000 {
                0 => f64::NAN,
                1 => 0.0,
                _ => ((i as f64 * 0.618_033_988_75).fract() * 3.0).round() / 4.0 + (i % 97) as f64,
            })
            .collect();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| (ratio_stats(values.clone()), deviation_stats(&values)))
        };
        let one = on(1);
        assert_eq!(on(2), one);
        let mut sequential: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sequential.sort_unstable_by(f64::total_cmp);
        assert_eq!(one.0.undefined, (n as u64).div_ceil(1000));
        assert_eq!(one.0.p50.to_bits(), quantile(&sequential, 0.5).to_bits());
        assert_eq!(one.0.mean.to_bits(), mean_std(&sequential).0.to_bits());
    }

    #[test]
    fn nan_is_undefined_not_counted() {
        let s = ratio_stats(vec![1.0, f64::NAN, 3.0]);
        assert_eq!((s.count, s.undefined), (2, 1));
        assert_eq!(s.mean, 2.0);
        assert_eq!(fraction_within(&[1.0, f64::NAN], 0.1), 0.5);
    }
}
