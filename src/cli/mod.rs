//! The command line: `serve` (the default), `worker` (units from a shared database, no HTTP),
//! `run` (any job kind, locally, no server),
//! `bounds` (the calculator) and `probe` (the container health check).
//!
//! Holds one file per subcommand and the text tables (`tables`).
//! Depends on: `startup` (to serve), `jobs::kinds` (to run a job exactly as the server does),
//! `theory` (the calculator).

mod bounds;
mod probe;
mod run;
mod tables;
mod worker;

use clap::{Parser, Subcommand};

pub use bounds::BoundsArgs;
pub use run::RunArgs;
pub use worker::WorkerArgs;

use crate::config::Config;
use crate::startup::Application;

/// widthlab: simulate deep ReLU networks at initialization and hold the measured norms of
/// signals and weight gradients against the width bounds of Arpit & Bengio (2019).
///
/// `widthlab serve` (the default) runs the HTTP service with an embedded SQLite database;
/// `widthlab run SPEC.json` runs one job spec locally and prints its results (per-layer
/// statistics with predictions and bound checks, or a sweep's points and frontier);
/// `widthlab bounds` is the width calculator.
#[derive(Debug, Parser)]
#[command(name = "widthlab", version, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API with an embedded SQLite database (the default with no subcommand).
    Serve(Config),
    /// Run one job spec locally (no server) and print a table or the full JSON.
    ///
    /// Example: widthlab run spec.json --json
    Run(RunArgs),
    /// Print every width bound side by side: minimal width for epsilon, and with --width the
    /// epsilon each bound guarantees at that width.
    ///
    /// Example: widthlab bounds --epsilon 0.15 --delta 0.05 --depth 10 --samples 2000 --width 4000
    Bounds(BoundsArgs),
    /// Compute units of work from a shared (PostgreSQL) database; no HTTP. Run as many as you
    /// have machines; stop with SIGTERM (units in progress go back to the queue).
    ///
    /// Example: widthlab worker --database-url postgres://widthlab@db/widthlab --threads 8
    Worker(WorkerArgs),
    /// Exit 0 if GET <url> answers 200 (the container health check; plain HTTP only).
    Probe {
        /// Default: /healthz of the address in WIDTHLAB_BIND (a wildcard address probed on
        /// loopback), else http://127.0.0.1:8080/healthz.
        #[arg(long)]
        url: Option<String>,
    },
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

    fn failed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }
}

/// Parse the command line and run it; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Bounds(args)) => bounds::bounds(&args),
        Some(Command::Serve(config)) => serve(config),
        Some(Command::Worker(args)) => worker::worker(&args),
        Some(Command::Probe { url }) => {
            let url = url.unwrap_or_else(|| {
                probe::health_url(&std::env::var("WIDTHLAB_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into()))
            });
            probe::probe(&url)
        }
        None => serve(Config::default()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}

fn serve(config: Config) -> Result<(), CliError> {
    crate::telemetry::init();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| CliError::failed(format!("starting tokio: {e}")))?;
    runtime
        .block_on(async {
            let app = Application::build(config).await?;
            let addr = app.local_addr()?;
            // Before the address is printed: a script may send SIGTERM as soon as it reads it.
            let stop = crate::startup::shutdown_signal();
            // Printed on stdout so scripts (and the crash test) can find a port-0 server.
            println!("widthlab listening on http://{addr}");
            tracing::info!(%addr, "listening");
            app.run_until(stop).await
        })
        .map_err(|e| CliError::failed(format!("{e:#}")))
}
