//! Server configuration: one struct, from flags and `WIDTHLAB_*` environment variables.
//!
//! `Config::default()` reads the environment like the command line does; tests build their
//! `Config` field by field instead.

use clap::Args;

use crate::spec::{default_threads, Limits};

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "WIDTHLAB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// SQLite database: a file path or a sqlite:// URL. Created and migrated on start.
    #[arg(long = "database-url", env = "WIDTHLAB_DATABASE_URL", default_value = "widthlab.db")]
    pub database_url: String,
    /// Compute threads for simulations (default: all cores).
    #[arg(long, env = "WIDTHLAB_THREADS")]
    pub threads: Option<usize>,
    /// Jobs computed at the same time.
    #[arg(long = "max-running", env = "WIDTHLAB_MAX_RUNNING", default_value_t = 1)]
    pub max_running: usize,
    /// Queued jobs accepted before POST /v1/jobs answers 503.
    #[arg(long = "max-queued", env = "WIDTHLAB_MAX_QUEUED", default_value_t = 1000)]
    pub max_queued: i64,
    /// Open HTTP connections at most (one more is closed at once).
    #[arg(long = "max-connections", env = "WIDTHLAB_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request head, and may stay idle between requests.
    #[arg(
        long = "header-read-timeout-secs",
        env = "WIDTHLAB_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub header_read_timeout_secs: u64,
    /// Largest request body in bytes (413 above).
    #[arg(long = "max-body-bytes", env = "WIDTHLAB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Per-request timeout in seconds (event streams excepted).
    #[arg(
        long = "request-timeout-secs",
        env = "WIDTHLAB_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub request_timeout_secs: u64,
    /// Memory a single job may use, in MiB (estimated before it runs; 422 above).
    #[arg(
        long = "max-job-memory-mib",
        env = "WIDTHLAB_MAX_JOB_MEMORY_MIB",
        default_value_t = 4096
    )]
    pub max_job_memory_mib: u64,
    /// Work a single job may do, in floating-point operations (estimated; 422 above).
    #[arg(long = "max-job-flops", env = "WIDTHLAB_MAX_JOB_FLOPS", default_value_t = 2e14)]
    pub max_job_flops: f64,
    /// Bearer tokens (comma-separated). When set, every mutating endpoint needs
    /// `Authorization: Bearer <token>`; reads stay open.
    #[arg(long, env = "WIDTHLAB_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub tokens: Vec<Token>,
}

/// A bearer token; never printed (Debug is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = String;
    /// Surrounding spaces are dropped; an empty item (`WIDTHLAB_TOKENS=` or `a,,b`) is kept as
    /// an empty token, which [`Config::tokens`] leaves out.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.trim().to_string()))
    }
}

impl Config {
    /// The configured bearer tokens, empty items left out. None: mutations are open.
    pub fn tokens(&self) -> Vec<&Token> {
        self.tokens.iter().filter(|t| !t.0.is_empty()).collect()
    }

    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads).max(1)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_memory_bytes: self.max_job_memory_mib.saturating_mul(1 << 20),
            max_work: self.max_job_flops,
            parallel_trials: self.threads(),
            ..Limits::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        <Wrapper as clap::Parser>::parse_from(["widthlab"]).config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_token_items_are_ignored() {
        // `WIDTHLAB_TOKENS=` (as docker compose passes an unset variable) must not stop the server.
        let config = Config {
            tokens: vec!["".parse().unwrap(), " a ".parse().unwrap()],
            ..Config::default()
        };
        assert_eq!(config.tokens(), vec![&Token("a".into())]);
        let open = Config {
            tokens: vec!["".parse().unwrap()],
            ..Config::default()
        };
        assert!(open.tokens().is_empty());
    }
}
