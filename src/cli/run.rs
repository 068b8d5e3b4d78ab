//! `widthlab run SPEC`: run any job kind here, through the same runner as the server, and print
//! a table or the JSON the API serves.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::{tables, CliError};
use crate::analysis::sweep::PointReport;
use crate::jobs::kinds::{run_all, runner, validate, LocalContext, Output, Stop};
use crate::spec::{default_threads, Kind, Limits};

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

/// The JSON of a finished job: a `norms` job's full report; a sweep's points (as
/// `GET /v1/jobs/{id}/sweep` serves them) and frontier.
pub fn output_json(output: &Output) -> Value {
    match output {
        Output::Norms(report) => serde_json::to_value(report).unwrap_or(Value::Null),
        Output::WidthSweep {
            spec,
            stamp,
            points,
            frontier,
        } => json!({
            "spec": spec,
            "stamp": stamp,
            "points": points.iter().map(PointReport::to_flat_json).collect::<Vec<_>>(),
            "frontier": frontier,
        }),
        Output::MinWidth { spec, stamp, cells } => json!({"spec": spec, "stamp": stamp, "cells": cells}),
        Output::Geometry { spec, stamp, layers } => json!({"spec": spec, "stamp": stamp, "layers": layers}),
        Output::WorstCase { spec, stamp, layers } => json!({"spec": spec, "stamp": stamp, "layers": layers}),
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
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let limits = Limits {
        parallel_trials: threads,
        ..Limits::default()
    };
    let spec = validate(&value, &limits)
        .map_err(|e| CliError::usage(format!("invalid spec: {e}")))?
        .spec;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CliError::failed(format!("starting {threads} threads: {e}")))?;

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(runner(spec.kind()).progress_total(&spec))
    };
    let unit = match spec.kind() {
        Kind::Norms => "layer passes",
        Kind::WidthSweep => "points",
        Kind::MinWidth => "probes",
        Kind::Geometry => "layers",
        Kind::WorstCase => "steps of networks",
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit}, eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    // A search shows its cell, networks and bracket beside the bar.
    let detail = |d: Value| {
        let end = |k: &str| d[k].as_u64().map_or("?".to_string(), |w| w.to_string());
        bar.set_message(format!(
            "eps {} depth {}: width {}, {} networks, bracket [{}, {}]",
            d["epsilon"],
            d["depth"],
            d["width"],
            d["networks"],
            end("fail"),
            end("pass")
        ));
    };
    let never = AtomicBool::new(false);
    let finished = pool
        .install(|| {
            let ctx = LocalContext::new(&progress, &never, &limits).with_detail(&detail);
            run_all(runner(spec.kind()), &spec, &ctx)
        })
        .map_err(|stop| match stop {
            Stop::Cancelled => CliError {
                message: "cancelled".into(),
                code: 130,
            },
            Stop::Failed(m) => CliError::failed(m),
        })?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &output_json(&finished.output))
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        tables::write(&mut out, &spec, &finished.output)
    };
    written.map_err(|e| CliError::failed(format!("writing output: {e}")))
}
