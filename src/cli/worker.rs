//! `widthlab worker`: a process that computes units of work from a shared database and serves
//! no HTTP. Run any number of them, on any machines that reach the database.

use clap::Args;

use super::CliError;
use crate::config::Config;
use crate::startup::{redact, shutdown_signal, Services, SHUTDOWN_GRACE};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The shared database: a postgres:// URL (a SQLite file works too, if no server uses it).
    #[arg(long = "database-url", env = "WIDTHLAB_DATABASE_URL")]
    pub database_url: String,
    /// Compute threads of this worker (default: all cores), shared by its slots.
    #[arg(long, env = "WIDTHLAB_THREADS")]
    pub threads: Option<usize>,
    /// Units this worker computes at the same time.
    #[arg(long, env = "WIDTHLAB_SLOTS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub slots: u64,
    /// Stop after claiming this many units (and finishing them); default: run until SIGTERM.
    #[arg(long = "max-units", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_units: Option<u64>,
    /// Seconds a claimed unit stays this worker's without a renewal (renewed every third of
    /// it); if the worker dies, its units go to other workers after this long.
    #[arg(long = "lease-secs", env = "WIDTHLAB_LEASE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub lease_secs: u64,
}

/// Claim and compute units until SIGTERM or ctrl-c (units in progress are given back, not
/// lost) or until `--max-units` units are done.
pub fn worker(args: &WorkerArgs) -> Result<(), CliError> {
    crate::telemetry::init();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| CliError::failed(format!("starting tokio: {e}")))?;
    runtime
        .block_on(async {
            // The job limits (memory, work) come from the environment, as for `serve`.
            let config = Config {
                database_url: args.database_url.clone(),
                threads: args.threads,
                workers: Some(args.slots as usize),
                lease_secs: args.lease_secs,
                ..Config::default()
            };
            let services = Services::build_as(config, args.max_units, "a worker").await?;
            services.recover().await?;
            let jobs = services.jobs.clone();
            let stop = shutdown_signal();
            println!(
                "widthlab worker {} computing units from {} ({} slot(s), {} thread(s))",
                jobs.worker_id(),
                redact(&args.database_url),
                args.slots,
                services.config.threads()
            );
            let claiming = tokio::spawn(jobs.clone().run_worker());
            tokio::select! {
                _ = stop => {
                    jobs.shutdown(SHUTDOWN_GRACE).await;
                }
                _ = claiming => {
                    // --max-units reached: let the last units finish.
                    jobs.idle().await;
                    jobs.shutdown(SHUTDOWN_GRACE).await;
                }
            }
            tracing::info!(worker = jobs.worker_id(), "worker stopped");
            drop(services);
            Ok::<(), anyhow::Error>(())
        })
        .map_err(|e| CliError::failed(format!("{e:#}")))
}
