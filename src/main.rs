use clap::{Parser, Subcommand};

use widthlab::cli::{self, BoundsArgs, RunArgs};
use widthlab::config::Config;
use widthlab::http::Application;

/// widthlab: simulate deep ReLU networks at initialization and hold the measured norms of
/// signals and weight gradients against the width bounds of Arpit & Bengio (2019).
///
/// `widthlab serve` (the default) runs the HTTP service with an embedded SQLite database;
/// `widthlab run SPEC.json` runs one job spec locally and prints per-layer statistics, the
/// predictions beside them and the bound checks; `widthlab bounds` is the width calculator.
#[derive(Debug, Parser)]
#[command(name = "widthlab", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API with an embedded SQLite database (the default with no subcommand).
    Serve(Config),
    /// Run one job spec locally (no server) and print a per-layer table or the full JSON.
    ///
    /// Example: widthlab run spec.json --json
    Run(RunArgs),
    /// Print every width bound side by side: minimal width for epsilon, and with --width the
    /// epsilon each bound guarantees at that width.
    ///
    /// Example: widthlab bounds --epsilon 0.15 --delta 0.05 --depth 10 --samples 2000 --width 4000
    Bounds(BoundsArgs),
    /// Exit 0 if GET <url> answers 200 (the container health check; plain HTTP only).
    Probe {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

fn serve(config: Config) -> Result<(), cli::CliError> {
    widthlab::telemetry::init();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| cli::CliError {
        message: format!("starting tokio: {e}"),
        code: 1,
    })?;
    runtime
        .block_on(async {
            let app = Application::build(config).await?;
            let addr = app.local_addr()?;
            // Printed on stdout so scripts (and the crash test) can find a port-0 server.
            println!("widthlab listening on http://{addr}");
            tracing::info!(%addr, "listening");
            app.run_until_stopped().await
        })
        .map_err(|e| cli::CliError {
            message: format!("{e:#}"),
            code: 1,
        })
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => cli::run(&args),
        Some(Command::Bounds(args)) => cli::bounds(&args),
        Some(Command::Serve(config)) => serve(config),
        Some(Command::Probe { url }) => cli::probe(&url),
        None => serve(Config::default()),
    };
    if let Err(e) = result {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}
