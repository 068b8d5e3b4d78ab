//! The `run` and `bounds` subcommands: the library without a server.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::report::{build_report, RunReport};
use crate::sim::{simulate, work_units, Control};
use crate::spec::{parse_spec, Limits};
use crate::theory::bounds::{all_bounds, bounds_answer, BoundInputs};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Path to a job spec (JSON, the format of POST /v1/jobs, presets included:
    /// `{"preset": "arpit2019-fig1"}`); `-` reads standard input.
    pub spec: PathBuf,
    /// Print the full result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Compute threads (default: all cores). Results do not depend on it.
    #[arg(long, env = "WIDTHLAB_THREADS")]
    pub threads: Option<usize>,
    /// Do not draw a progress bar on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BoundsArgs {
    /// Tolerance epsilon on every ratio (> 0).
    #[arg(long)]
    pub epsilon: f64,
    /// Failure probability delta, in (0, 1).
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

/// A CLI failure: message for stderr and exit code.
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }
}

pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let text = if args.spec.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| CliError::usage(format!("reading stdin: {e}")))?
    } else {
        std::fs::read_to_string(&args.spec)
            .map_err(|e| CliError::usage(format!("reading {}: {e}", args.spec.display())))?
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("{}: not valid JSON: {e}", args.spec.display())))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let limits = Limits {
        parallel_trials: threads,
        ..Limits::default()
    };
    let (value, _) = crate::presets::expand(&value).map_err(|e| CliError::usage(format!("invalid spec: {e}")))?;
    let spec = parse_spec(&value, &limits).map_err(|e| CliError::usage(format!("invalid spec: {e}")))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CliError {
            message: format!("starting {threads} threads: {e}"),
            code: 1,
        })?;

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(work_units(&spec))
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} layer passes, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: u64, _total: u64| bar.set_position(done);
    let interrupted = AtomicBool::new(false);
    let cancelled = || interrupted.load(Ordering::Relaxed);
    let ctl = Control {
        progress: &progress,
        cancelled: &cancelled,
    };
    let sim = pool.install(|| simulate(&spec, &ctl)).map_err(|_| CliError {
        message: "cancelled".into(),
        code: 130,
    })?;
    bar.finish_and_clear();
    let report = build_report(&spec, &sim);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        write_table(&mut out, &report)
    };
    written.map_err(|e| CliError {
        message: format!("writing output: {e}"),
        code: 1,
    })
}

fn write_table(out: &mut impl Write, r: &RunReport) -> std::io::Result<()> {
    let s = &r.spec;
    writeln!(
        out,
        "widthlab run: n0={} widths={} init={} weight_norm={} samples={} trials={} epsilon={} seed={} precision={}",
        s["network"]["input_dim"],
        compact_widths(&s["network"]["widths"]),
        s["network"]["init"],
        s["network"]["weight_norm"],
        s["samples"],
        s["trials"],
        s["epsilon"],
        s["seed"],
        s["precision"].as_str().unwrap_or("?"),
    )?;
    writeln!(out, "variance rule: {}", r.variance_rule)?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>5} {:>7} {:>10} | {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} | {:>8} {:>8} {:>9} | {:>6} {:>6}",
        "layer",
        "width",
        "variance",
        "fwd mean",
        "fwd std",
        "fwd p05",
        "fwd p95",
        "pred mean",
        "pred std",
        "grad mean",
        "grad std",
        "pred mean",
        "in f",
        "in g"
    )?;
    for l in &r.layers {
        writeln!(
            out,
            "{:>5} {:>7} {:>10.4e} | {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>8} | {:>9.4} {:>8.4} {:>9.4} | {:>6.3} {:>6.3}",
            l.layer,
            l.width,
            l.weight_variance,
            l.forward.mean,
            l.forward.std,
            l.forward.p05,
            l.forward.p95,
            l.predicted.forward.mean,
            l.predicted.forward.std.map_or("-".to_string(), |v| format!("{v:.4}")),
            l.gradient.mean,
            l.gradient.std,
            l.predicted.gradient.mean,
            l.within_epsilon.forward,
            l.within_epsilon.gradient,
        )?;
    }
    let p = &r.pooled;
    writeln!(out)?;
    writeln!(
        out,
        "pooled |1 - r|: forward mean {:.4} std {:.4} p95 {:.4} max {:.4}; gradient mean {:.4} std {:.4} p95 {:.4} max {:.4}",
        p.forward_deviation.mean,
        p.forward_deviation.std,
        p.forward_deviation.p95,
        p.forward_deviation.max,
        p.gradient_deviation.mean,
        p.gradient_deviation.std,
        p.gradient_deviation.p95,
        p.gradient_deviation.max
    )?;
    writeln!(
        out,
        "all layers and samples within 1 +/- {}: {}/{} networks (95% CI {:.3}..{:.3})",
        p.all_within.epsilon, p.all_within.successes, p.all_within.trials, p.all_within.ci_low, p.all_within.ci_high
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<11} {:>9} {:>7} {:>11} {:>9}  reason",
        "bound", "required", "width", "guaranteed", "verdict"
    )?;
    for c in &r.bound_checks {
        writeln!(
            out,
            "{:<11} {:>9} {:>7} {:>11} {:>9}  {}",
            c.bound,
            c.required_width.map_or("-".into(), |w| w.to_string()),
            c.actual_width,
            c.guaranteed_epsilon.map_or("-".into(), |g| format!("{g:.6}")),
            serde_json::to_value(c.verdict)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            c.reason
        )?;
    }
    Ok(())
}

fn compact_widths(widths: &Value) -> String {
    let ws: Vec<u64> = widths
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    match ws.first() {
        Some(&w) if ws.iter().all(|&x| x == w) => format!("{}x{}", ws.len(), w),
        _ => format!("{ws:?}"),
    }
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

/// A minimal HTTP/1.0 GET for the container health check: success iff the status is 200.
pub fn probe(url: &str) -> Result<(), CliError> {
    use std::io::Read;
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let fail = |m: String| CliError { message: m, code: 1 };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CliError::usage("--url must start with http://"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = host
        .to_socket_addrs()
        .map_err(|e| fail(format!("resolving {host}: {e}")))?
        .next()
        .ok_or_else(|| fail(format!("no address for {host}")))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| fail(format!("{addr}: {e}")))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| fail(e.to_string()))?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| fail(e.to_string()))?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(fail(format!("unhealthy: {}", String::from_utf8_lossy(&head))))
    }
}
