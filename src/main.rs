use clap::{Parser, Subcommand};

use widthlab::cli::{self, BoundsArgs, RunArgs};

/// widthlab: simulate deep ReLU networks at initialization and hold the measured norms of
/// signals and weight gradients against the width bounds of Arpit & Bengio (2019).
#[derive(Debug, Parser)]
#[command(name = "widthlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one job spec locally (no server) and print a per-layer table or the full JSON.
    ///
    /// Example: widthlab run spec.json --json
    Run(RunArgs),
    /// Print every width bound side by side: minimal width for epsilon, and with --width the
    /// epsilon each bound guarantees at that width.
    ///
    /// Example: widthlab bounds --epsilon 0.15 --delta 0.05 --depth 10 --samples 2000 --width 4000
    Bounds(BoundsArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => cli::run(&args),
        Some(Command::Bounds(args)) => cli::bounds(&args),
        None => {
            eprintln!("usage: widthlab <run|bounds> ...; see widthlab --help");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}
