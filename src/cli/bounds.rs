//! `widthlab bounds`: every width bound side by side, no simulation.

use std::io::Write;

use clap::Args;

use super::CliError;
use crate::theory::bounds::{all_bounds, bounds_answer, BoundInputs};

#[derive(Debug, Args)]
pub struct BoundsArgs {
    /// Tolerance epsilon on every ratio (> 0).
    #[arg(long)]
    pub epsilon: f64,
    /// Failure probability delta, in [1e-300, 1).
    #[arg(long)]
    pub delta: f64,
    /// Depth L (number of hidden layers).
    #[arg(long)]
    pub depth: u32,
    /// Number of inputs N the claim covers at once.
    #[arg(long)]
    pub samples: u64,
    /// Width m: also print the epsilon each bound guarantees at this width.
    #[arg(long)]
    pub width: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn bounds(args: &BoundsArgs) -> Result<(), CliError> {
    let inputs = BoundInputs::new(args.epsilon, args.delta, args.depth, args.samples)
        .map_err(|e| CliError::usage(format!("--{}", e)))?;
    if args.width == Some(0) {
        return Err(CliError::usage("--width: must be an integer >= 1"));
    }
    let mut out = std::io::stdout().lock();
    let res = if args.json {
        serde_json::to_writer_pretty(&mut out, &bounds_answer(&inputs, args.width))
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        write_bounds_table(&mut out, &inputs, args.width)
    };
    res.map_err(|e| CliError {
        message: format!("writing output: {e}"),
        code: 1,
    })
}

fn write_bounds_table(out: &mut impl Write, inputs: &BoundInputs, width: Option<u64>) -> std::io::Result<()> {
    writeln!(
        out,
        "epsilon={} delta={} depth={} samples={}  per-layer epsilon'={:.6}  ln(4NL/delta)={:.6}",
        inputs.epsilon,
        inputs.delta,
        inputs.depth,
        inputs.samples,
        inputs.epsilon_prime(),
        inputs.log_term()
    )?;
    let g_head = width.map_or(String::new(), |m| format!("guaranteed epsilon at m={m}"));
    writeln!(
        out,
        "{:<11} {:>12} {:>14}  {}",
        "bound", "min_width", "unrounded", g_head
    )?;
    for b in all_bounds(inputs, width) {
        writeln!(
            out,
            "{:<11} {:>12} {:>14}  {}",
            b.bound.name(),
            b.min_width.map_or("> limit".into(), |m| m.to_string()),
            b.min_width_exact.map_or("-".into(), |m| format!("{m:.2}")),
            b.guaranteed_epsilon.map_or(String::new(), |g| format!("{g:.6}")),
        )?;
    }
    Ok(())
}
