//! The empirical minimal width, searched with decisions that stay valid under repeated looks
//! (docs/theory.md, "The minimal-width search").
//!
//! P(m) is the probability over the weights that a network of width m keeps every ratio of the
//! claim within 1 +/- epsilon, for every layer and input. A *probe* at width m draws networks in
//! batches (looks at n_1 = [`FIRST_LOOK`], then doubling, up to the probe's budget) and after each
//! look decides, by one-sided Clopper-Pearson limits, `pass` (P(m) >= 1 - delta) or `fail`
//! (P(m) < 1 - delta), or goes on. The error of every look is spent from one budget
//! `alpha = 1 - confidence`: look k of probe j may err with probability at most
//! `alpha (6/pi^2)^2 / (j^2 k^2)`, and these sum to at most alpha over every look of every probe,
//! so with probability at least `confidence` *every* decision of the search is right at once
//! (a union bound; P need not be monotone or smooth for that).
//!
//! The search probes widths lo, 2 lo, 4 lo, ... up to hi until one passes (the cheap widths
//! first), then bisects between the largest failing and the smallest passing width, geometrically
//! while they differ by more than a factor 2, then on integers. A probe whose budget runs out is
//! undecided; the search works around it and stops after a few of them, and the answer lists
//! them.

use serde::{Deserialize, Serialize};

use super::verdict::{lower_limit, upper_limit};
use crate::spec::names::string_enum;

/// Networks of the first look of every probe.
pub const FIRST_LOOK: u64 = 32;

/// Undecided probes after which a cell's search stops.
pub const MAX_UNDECIDED: usize = 3;

/// `(6/pi^2)`: the sum over j >= 1 of `(6/pi^2) / j^2` is 1.
const SIX_OVER_PI2: f64 = 6.0 / (std::f64::consts::PI * std::f64::consts::PI);

string_enum! {
    /// What a probe concluded about P(m) >= 1 - delta.
    pub enum Decision {
        /// P(m) >= 1 - delta, at the search's confidence.
        Pass = "pass",
        /// P(m) < 1 - delta, at the search's confidence.
        Fail = "fail",
        /// The probe's budget ran out before either could be decided.
        Undecided = "undecided",
    }
}

/// The error a look may spend: look `look` (1-based) of probe `probe` (1-based).
pub fn look_alpha(alpha: f64, probe: u64, look: u64) -> f64 {
    alpha * SIX_OVER_PI2 * SIX_OVER_PI2 / ((probe * probe) as f64 * (look * look) as f64)
}

/// Networks drawn by the end of look `look` (1-based): 32, 64, 128, ... capped at `max`.
pub fn look_size(look: u64, max: u64) -> u64 {
    FIRST_LOOK.saturating_mul(1u64 << (look - 1).min(40)).min(max)
}

/// One probe of the search, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Probe {
    /// 1-based position in the search (it sets the probe's share of the error).
    pub index: u64,
    pub width: u64,
    /// Networks drawn, and those in which every ratio of the claim stayed within 1 +/- epsilon.
    pub networks: u64,
    pub successes: u64,
    /// Looks taken (batches of networks).
    pub looks: u64,
    /// The one-sided limits at the last look, at that look's level.
    pub lower_limit: f64,
    pub upper_limit: f64,
    /// The error that look was allowed (each of its two one-sided tests).
    pub look_alpha: f64,
    pub decision: Decision,
    /// The engine that drew the networks.
    pub engine: String,
    /// For `undecided`: why, and what it would take.
    pub note: Option<String>,
    /// Estimated floating-point operations the probe spent (the job's budget counts them).
    #[serde(default)]
    pub work_flops: f64,
}

/// Run probe `index` at `width`: `draw(from, to)` simulates networks `from..to` (0-based, in
/// order) and returns how many succeeded, or `None` when the budget does not allow them (the
/// probe is then undecided). Stops at the first look that decides.
pub fn run_probe<E>(
    index: u64,
    width: u64,
    target: f64,
    alpha: f64,
    max_networks: u64,
    engine: &str,
    mut draw: impl FnMut(u64, u64) -> Result<Option<u64>, E>,
) -> Result<Probe, E> {
    let (mut networks, mut successes, mut look) = (0u64, 0u64, 0u64);
    let mut probe = Probe {
        index,
        width,
        networks: 0,
        successes: 0,
        looks: 0,
        lower_limit: 0.0,
        upper_limit: 1.0,
        look_alpha: 0.0,
        decision: Decision::Undecided,
        engine: engine.to_string(),
        note: None,
        work_flops: 0.0,
    };
    while networks < max_networks {
        look += 1;
        let to = look_size(look, max_networks).max(networks + 1);
        let Some(s) = draw(networks, to)? else {
            probe.note = Some(format!(
                "the job's work budget ran out before look {look} ({} networks at width {width}); a larger budget \
                 would let this probe go on",
                to
            ));
            return Ok(probe);
        };
        successes += s;
        networks = to;
        let a = look_alpha(alpha, index, look);
        let (lo, hi) = (
            lower_limit(successes, networks, 1.0 - a),
            upper_limit(successes, networks, 1.0 - a),
        );
        probe = Probe {
            networks,
            successes,
            looks: look,
            lower_limit: lo,
            upper_limit: hi,
            look_alpha: a,
            ..probe
        };
        if lo >= target {
            probe.decision = Decision::Pass;
            return Ok(probe);
        }
        if hi < target {
            probe.decision = Decision::Fail;
            return Ok(probe);
        }
    }
    probe.note = Some(format!(
        "{successes} of {networks} networks succeeded: not enough to decide at this probe's error share; \
         raise max_networks_per_width (each doubling adds a look)"
    ));
    Ok(probe)
}

/// Where a search stands: its range and the probes so far, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub lo: u64,
    pub hi: u64,
    pub probes: Vec<Probe>,
}

/// The answer of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bracket {
    /// The largest width decided to fail below `pass` (null: none; every probed width below
    /// `pass` was undecided, or `pass` is the smallest width of the range).
    pub fail: Option<u64>,
    /// The smallest width decided to pass (null: none in the range).
    pub pass: Option<u64>,
    /// True when `fail` and `pass` are adjacent integers (or `pass` is the range's lower end):
    /// the minimal width is `pass`, certified at the search's confidence.
    pub exact: bool,
    /// `below_range` (the lower end passes), `above_range` (nothing in the range passes), or null.
    pub censoring: Option<super::sweep::Censoring>,
    /// Widths whose probe was undecided (the search stopped at the first).
    pub undecided: Vec<u64>,
    /// Smallest probed width whose observed fraction reached 1 - delta (a point estimate).
    pub estimate: Option<u64>,
}

/// One bound beside a cell's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundWidth {
    pub bound: String,
    /// The width the bound requires for (epsilon, delta, depth, N) (null: beyond its limit).
    pub min_width: Option<u64>,
    /// `min_width / pass`: how many times wider than needed the bound asks for (null without both).
    pub looseness: Option<f64>,
}

/// The answer for one (epsilon, depth) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CellResult {
    pub cell: usize,
    pub epsilon: f64,
    pub depth: usize,
    /// The widths searched, [lo, hi].
    pub width_range: [u64; 2],
    /// With probability >= confidence every decision below is right at once.
    pub confidence: f64,
    pub bracket: Bracket,
    pub probes: Vec<Probe>,
    pub bounds: Vec<BoundWidth>,
    /// Networks drawn in this cell.
    pub networks: u64,
}

impl Search {
    pub fn new(lo: u64, hi: u64) -> Search {
        Search {
            lo,
            hi,
            probes: Vec::new(),
        }
    }

    fn decided(&self, d: Decision) -> impl Iterator<Item = u64> + '_ {
        self.probes.iter().filter(move |p| p.decision == d).map(|p| p.width)
    }

    /// The smallest passing width, and the largest failing width below it.
    fn ends(&self) -> (Option<u64>, Option<u64>) {
        let pass = self.decided(Decision::Pass).min();
        let fail = self
            .decided(Decision::Fail)
            .filter(|&w| pass.is_none_or(|p| w < p))
            .max();
        (fail, pass)
    }

    /// The next width to probe, or None when the search is over.
    ///
    /// Bracketing doubles from the largest width probed so far until one passes (an undecided
    /// width does not stop it: the next width up usually decides); refining probes the middle of
    /// the widest gap between probed widths within [largest fail, smallest pass] (geometric
    /// while a gap spans more than a factor 2), so widths near an undecided one are still tried
    /// on both sides. The search ends when no gap is wider than 1, or after [`MAX_UNDECIDED`]
    /// undecided probes (each is the most expensive kind: more of them would mostly be undecided
    /// too).
    pub fn next_width(&self) -> Option<u64> {
        if self.decided(Decision::Undecided).count() >= MAX_UNDECIDED {
            return None;
        }
        let (fail, pass) = self.ends();
        let probed: std::collections::BTreeSet<u64> = self.probes.iter().map(|p| p.width).collect();
        let Some(b) = pass else {
            let top = probed.last().copied();
            let next = top.map_or(self.lo, |t| t.saturating_mul(2).min(self.hi));
            return (top != Some(self.hi) && top.is_none_or(|t| next > t)).then_some(next);
        };
        let a = match fail {
            Some(f) => f,
            None if !probed.contains(&self.lo) => return Some(self.lo),
            None => self.lo,
        };
        let points: Vec<u64> = probed.range(a..=b).copied().collect();
        points
            .windows(2)
            .filter(|w| w[1] - w[0] > 1)
            .max_by(|x, y| {
                let ratio = |w: &[u64]| w[1] as f64 / w[0].max(1) as f64;
                ratio(x).total_cmp(&ratio(y)).then(y[0].cmp(&x[0]))
            })
            .map(|w| {
                let (x, y) = (w[0], w[1]);
                let m = if y > 2 * x {
                    ((x.max(1) as f64) * (y as f64)).sqrt().round() as u64
                } else {
                    x + (y - x) / 2
                };
                m.clamp(x + 1, y - 1)
            })
    }

    /// The answer so far.
    pub fn bracket(&self, target: f64) -> Bracket {
        let (fail, pass) = self.ends();
        let exact = match (fail, pass) {
            (Some(f), Some(p)) => p - f == 1,
            (None, Some(p)) => p == self.lo,
            _ => false,
        };
        let censoring = match pass {
            None if fail == Some(self.hi) => Some(super::sweep::Censoring::AboveRange),
            Some(p) if p == self.lo => Some(super::sweep::Censoring::BelowRange),
            _ => None,
        };
        let estimate = self
            .probes
            .iter()
            .filter(|p| p.networks > 0 && p.successes as f64 / p.networks as f64 >= target)
            .map(|p| p.width)
            .min();
        Bracket {
            fail,
            pass,
            exact,
            censoring,
            undecided: self.decided(Decision::Undecided).collect(),
            estimate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_error_spent_sums_below_alpha() {
        let total: f64 = (1..=2000u64)
            .map(|j| (1..=60u64).map(|k| look_alpha(0.05, j, k)).sum::<f64>())
            .sum();
        assert!(total <= 0.05, "{total}");
        assert!(total > 0.049, "{total}");
        assert_eq!(look_size(1, 10_000), 32);
        assert_eq!(look_size(3, 10_000), 128);
        assert_eq!(look_size(20, 1000), 1000);
    }

    /// A probe where P is known: decisions are right but for the spent error.
    fn probe_with(p: f64, seed: u64, max: u64) -> Probe {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        run_probe::<()>(1, 100, 0.95, 0.05, max, "bernoulli", |from, to| {
            Ok(Some((from..to).filter(|_| rng.random::<f64>() < p).count() as u64))
        })
        .unwrap()
    }

    #[test]
    fn a_probe_decides_the_side_it_is_on() {
        assert_eq!(probe_with(1.0, 1, 10_000).decision, Decision::Pass);
        assert_eq!(probe_with(0.5, 2, 10_000).decision, Decision::Fail);
        // Right at the target nothing can be decided: the budget runs out.
        let p = probe_with(0.95, 3, 2000);
        assert_eq!(p.decision, Decision::Undecided, "{p:?}");
        assert!(p.note.is_some());
    }

    #[test]
    fn the_search_brackets_a_known_threshold() {
        // P(m) = 1 above 937, 0 below: the search must end with fail 936, pass 937.
        let mut s = Search::new(1, 100_000);
        let mut guard = 0;
        while let Some(w) = s.next_width() {
            let p = if w >= 937 { 1.0 } else { 0.0 };
            let mut probe = probe_with(p, w, 4096);
            probe.width = w;
            probe.index = s.probes.len() as u64 + 1;
            s.probes.push(probe);
            guard += 1;
            assert!(guard < 60, "the search does not end: {:?}", s.probes);
        }
        let b = s.bracket(0.95);
        assert_eq!((b.fail, b.pass, b.exact), (Some(936), Some(937), true), "{b:?}");
        // Doubling to 1024, then about log2(1024) bisection steps.
        assert!(s.probes.len() <= 25, "{}", s.probes.len());
    }

    #[test]
    fn censored_and_undecided_searches_say_so() {
        let run = |threshold: u64, lo: u64, hi: u64| {
            let mut s = Search::new(lo, hi);
            while let Some(w) = s.next_width() {
                let mut probe = probe_with(if w >= threshold { 1.0 } else { 0.0 }, w, 4096);
                probe.width = w;
                s.probes.push(probe);
            }
            s.bracket(0.95)
        };
        let above = run(5000, 1, 1000);
        assert_eq!(above.censoring, Some(crate::analysis::sweep::Censoring::AboveRange));
        assert_eq!(above.pass, None);
        let below = run(5, 10, 1000);
        assert_eq!(below.censoring, Some(crate::analysis::sweep::Censoring::BelowRange));
        assert_eq!((below.pass, below.exact), (Some(10), true));
        // Undecided probes do not stop the search until there are MAX_UNDECIDED of them.
        let mut s = Search::new(1, 1000);
        for w in [1, 2] {
            s.probes.push(Probe {
                width: w,
                decision: Decision::Undecided,
                ..probe_with(0.95, 9, 64)
            });
        }
        assert_eq!(s.next_width(), Some(4));
        s.probes.push(Probe {
            width: 4,
            decision: Decision::Undecided,
            ..probe_with(0.95, 9, 64)
        });
        assert_eq!(s.next_width(), None);
        assert_eq!(s.bracket(0.95).undecided, [1, 2, 4]);
    }
}
