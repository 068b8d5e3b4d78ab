//! `Display for Spec`: the one-line description used by the CLI, pages and figure titles.

use std::fmt;

use super::{Fan, Init, Network, Spec, Task, WeightNormGain, Weights};

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Init::He { fan: Fan::Out } => f.write_str("he fan=out"),
            Init::He { fan: Fan::In } => f.write_str("he fan=in"),
            Init::Glorot => f.write_str("glorot"),
            Init::GlorotPaper => f.write_str("glorot_paper"),
            Init::Lecun => f.write_str("lecun"),
            Init::Orthogonal { gain } => write!(f, "orthogonal gain={gain}"),
            Init::Gaussian { variance } => write!(f, "gaussian variance={variance}"),
        }
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weights::Plain(init) => init.fmt(f),
            Weights::Normalized(wn) => {
                let gain = match wn.gain {
                    WeightNormGain::Naive => "naive".to_string(),
                    WeightNormGain::Derived => "derived".to_string(),
                    WeightNormGain::Fixed(g) => g.to_string(),
                    WeightNormGain::Pair(g1, g2) => format!("[{g1}, {g2}]"),
                };
                write!(f, "weight norm (gain {gain}, {})", wn.direction)
            }
        }
    }
}

impl Network {
    /// `L=10 m=100` for uniform widths, else the list.
    pub fn shape(&self) -> String {
        if self.is_residual() {
            return match self.widths.first() {
                Some(&w) if self.is_uniform() => format!("residual B={} blocks of hidden width m={w}", self.depth()),
                _ => format!("residual blocks of hidden widths {:?}", self.widths),
            };
        }
        match self.widths.first() {
            Some(&w) if self.is_uniform() => format!("L={} m={w}", self.depth()),
            _ => format!("widths={:?}", self.widths),
        }
    }
}

impl fmt::Display for Spec {
    /// `he fan=out, n0=500 L=10 m=100, N=2000 trials=1 eps=0.15 seed=7 (f64)`; a sweep names its
    /// grid instead of the widths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match &self.task {
            Task::Norms => self.network.shape(),
            Task::WidthSweep(sweep) if self.network.is_residual() => {
                format!("residual, hidden widths {:?} blocks {:?}", sweep.widths, sweep.depths)
            }
            Task::WidthSweep(sweep) => format!("widths {:?} depths {:?}", sweep.widths, sweep.depths),
            Task::Geometry(g) => {
                return write!(
                    f,
                    "angles and distances: {}, n0={} {}, {} pairs at angles {:?} deg, trials={} seed={} ({})",
                    self.network.weights,
                    self.network.input_dim,
                    self.network.shape(),
                    g.pairs,
                    g.angles_deg,
                    self.trials,
                    self.seed,
                    self.precision
                )
            }
            Task::WorstCase(w) => {
                return write!(
                    f,
                    "worst case over the unit sphere: {}, n0 {:?} x m {:?}, L={}, N={} random inputs, restarts={} steps={}, trials={} seed={} (f64)",
                    self.network.weights,
                    w.input_dims,
                    w.widths,
                    self.network.depth(),
                    self.samples,
                    w.restarts,
                    w.steps,
                    self.trials,
                    self.seed,
                )
            }
            Task::MinWidth(search) => {
                return write!(
                    f,
                    "minimal width, {} claim: {}, n0={} depths {:?}, N={} eps {:?} delta={} seed={} ({})",
                    search.claim,
                    self.network.weights,
                    self.network.input_dim,
                    search.depths,
                    self.samples,
                    search.epsilons,
                    self.delta,
                    self.seed,
                    self.precision
                )
            }
        };
        let weights = match self.network.weights {
            Weights::Normalized(wn) if self.network.is_residual() && wn.gain == WeightNormGain::Derived => {
                format!("weight norm (gain proposed, {})", wn.direction)
            }
            w => w.to_string(),
        };
        write!(
            f,
            "{weights}, n0={} {shape}, N={} trials={} eps={} seed={} ({})",
            self.network.input_dim, self.samples, self.trials, self.epsilon, self.seed, self.precision
        )
    }
}
