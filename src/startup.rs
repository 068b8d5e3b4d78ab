//! Building the application: the store, the job system and its metrics (everything a process
//! that runs jobs needs), and the HTTP listener when serving.
//!
//! `Application::build` binds its own listener (port 0 picks one), so tests start the real
//! application and read the port back; [`Services::build`] is the same without HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{router, serve, AppState, ConnectionLimits};
use crate::jobs::{Jobs, JobsConfig};
use crate::metrics::Metrics;
use crate::store::{is_postgres_url, DatabaseLock, JobStore, PgStore, SqliteStore};

/// How long shutdown waits for running jobs to stop and go back to the queue.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
/// How long shutdown waits for in-flight HTTP requests.
pub const HTTP_GRACE: Duration = Duration::from_secs(5);

/// Store, job system and metrics, ready to run jobs; no HTTP. Holds the database's lock when
/// the database is a SQLite file (one process serves it at a time); a PostgreSQL database is
/// shared by any number of processes.
pub struct Services {
    pub jobs: Arc<Jobs>,
    pub config: Arc<Config>,
    lock: Option<DatabaseLock>,
}

/// Open the store a URL names: `postgres://` (or `postgresql://`) is PostgreSQL, anything else
/// a SQLite file, locked for this process (`role` says what it is doing, for the error a
/// second process gets).
pub async fn open_store(url: &str, role: &str) -> anyhow::Result<(Arc<dyn JobStore>, Option<DatabaseLock>)> {
    if is_postgres_url(url) {
        let store = PgStore::connect(url)
            .await
            .with_context(|| format!("opening the PostgreSQL database {}", redact(url)))?;
        return Ok((Arc::new(store), None));
    }
    // Before anything is read: a second process on the same file stops here.
    let lock = DatabaseLock::acquire(url, role).with_context(|| format!("database {url}"))?;
    let store = SqliteStore::connect(url)
        .await
        .with_context(|| format!("opening the database {url}"))?;
    Ok((Arc::new(store), Some(lock)))
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Services {
    /// Open (and lock, for SQLite) and migrate the database and build the job system. Jobs a
    /// crash left running are re-queued by [`Services::recover`], once nothing else can fail.
    pub async fn build(config: Config) -> anyhow::Result<Services> {
        let role = format!("serving {}", config.bind);
        Self::build_as(config, None, &role).await
    }

    /// [`Services::build`] for a process that stops after claiming `max_units` units; `role`
    /// names it in the SQLite lock file.
    pub async fn build_as(config: Config, max_units: Option<u64>, role: &str) -> anyhow::Result<Services> {
        let (store, lock) = open_store(&config.database_url, role).await?;
        let jobs = Jobs::new(
            store,
            JobsConfig {
                threads: config.threads(),
                max_running: config.compute_slots().max(1),
                max_queued: config.max_queued,
                max_queued_per_owner: config.max_queued_per_owner,
                max_owner_flops: config.max_owner_flops,
                limits: config.limits(),
                lease: Duration::from_secs(config.lease_secs),
                poll: JobsConfig::DEFAULT_POLL,
                max_units,
                compute: config.compute_slots() > 0,
            },
            Arc::new(Metrics::new()),
        )?;
        Ok(Services {
            jobs,
            config: Arc::new(config),
            lock,
        })
    }

    /// Re-queue the jobs an earlier crash left running (SQLite: this process holds the lock, so
    /// no other process is running them; PostgreSQL leaves running units to their leases).
    pub async fn recover(&self) -> anyhow::Result<()> {
        let requeued = self
            .jobs
            .recover()
            .await
            .with_context(|| format!("recovering jobs in {}", redact(&self.config.database_url)))?;
        if requeued > 0 {
            tracing::warn!(requeued, "jobs left running by an earlier crash were re-queued");
        }
        Ok(())
    }
}

/// A built server: database locked and migrated, listener bound, worker ready to start.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    port: u16,
    lock: Option<DatabaseLock>,
}

impl Application {
    /// Build the services, bind the listener, then recover crashed jobs: a process that cannot
    /// serve changes nothing in the database.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let auth = config.auth().map_err(|e| anyhow::anyhow!("{e}"))?;
        let services = Services::build(config).await?;
        let bind = services.config.bind.clone();
        let listener = TcpListener::bind(&bind)
            .await
            .with_context(|| format!("listening on {bind}"))?;
        let port = listener.local_addr()?.port();
        services.recover().await?;
        tracing::info!("{}", auth.describe());
        Ok(Application {
            listener,
            state: AppState {
                jobs: services.jobs,
                config: services.config,
                auth: Arc::new(auth),
            },
            port,
            lock: services.lock,
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
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.state.config.header_read_timeout_secs.max(1)),
            max_connections: self.state.config.max_connections,
            grace: HTTP_GRACE,
        };
        let worker = jobs.computes().then(|| tokio::spawn(jobs.clone().run_worker()));
        let app = router(self.state);
        // On the signal, stop the jobs first: event streams then end and running work goes back
        // to the queue, so the graceful shutdown of the server cannot wait on a long stream.
        let stopping = jobs.clone();
        let signal = async move {
            shutdown.await;
            stopping.begin_shutdown();
        };
        serve(self.listener, app, limits, signal).await;
        jobs.shutdown(SHUTDOWN_GRACE).await;
        if let Some(worker) = worker {
            worker.abort();
        }
        // The database is free for the next process once this one has stopped using it.
        drop(self.lock);
        Ok(())
    }
}

/// Resolves on ctrl-c or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: call it before announcing the server, so that a signal sent as soon
/// as the address is printed stops it gracefully instead of killing it. Needs a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn recv(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(interrupt) => {},
                _ = recv(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}
