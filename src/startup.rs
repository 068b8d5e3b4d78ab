//! Building the application: the store, the job system and its metrics (everything a process
//! that runs jobs needs), and the HTTP listener when serving.
//!
//! `Application::build` binds its own listener (port 0 picks one), so tests start the real
//! application and read the port back; [`Services::build`] is the same without HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::jobs::{Jobs, JobsConfig};
use crate::metrics::Metrics;
use crate::store::{JobStore, SqliteStore};

/// How long shutdown waits for running jobs to stop and go back to the queue.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Store, job system and metrics, ready to run jobs; no HTTP.
pub struct Services {
    pub jobs: Arc<Jobs>,
    pub config: Arc<Config>,
}

impl Services {
    /// Open and migrate the database, build the job system, re-queue jobs a crash left running.
    pub async fn build(config: Config) -> anyhow::Result<Services> {
        let store: Arc<dyn JobStore> = Arc::new(SqliteStore::connect(&config.database_url).await?);
        let jobs = Jobs::new(
            store,
            JobsConfig {
                threads: config.threads(),
                max_running: config.max_running,
                max_queued: config.max_queued,
                limits: config.limits(),
            },
            Arc::new(Metrics::new()),
        )?;
        let requeued = jobs.recover().await?;
        if requeued > 0 {
            tracing::warn!(requeued, "jobs left running by an earlier crash were re-queued");
        }
        Ok(Services {
            jobs,
            config: Arc::new(config),
        })
    }
}

/// A built server: listener bound, database migrated, worker ready to start.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    port: u16,
}

impl Application {
    /// Build the services and bind the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let services = Services::build(config).await?;
        let listener = TcpListener::bind(&services.config.bind).await?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            state: AppState {
                jobs: services.jobs,
                config: services.config,
            },
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` resolves; then stop accepting, re-queue running jobs, return.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let jobs = self.state.jobs.clone();
        let worker = tokio::spawn(jobs.clone().run_worker());
        let app = router(self.state);
        // On the signal, stop the jobs first: event streams then end and running work goes back
        // to the queue, so the graceful shutdown of the server cannot wait on a long stream.
        let stopping = jobs.clone();
        let signal = async move {
            shutdown.await;
            stopping.begin_shutdown();
        };
        axum::serve(self.listener, app).with_graceful_shutdown(signal).await?;
        jobs.shutdown(SHUTDOWN_GRACE).await;
        worker.abort();
        Ok(())
    }

    /// Serve until ctrl-c or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
