//! Server configuration: one struct, from flags and `WIDTHLAB_*` environment variables.
//!
//! `Config::default()` reads the environment like the command line does; tests build their
//! `Config` field by field instead.

use clap::Args;
use sha2::Digest;

use crate::spec::{default_threads, Limits};

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "WIDTHLAB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// The database: a SQLite file path or sqlite:// URL (embedded; created and migrated on start),
    /// or a postgres:// URL (shared by API nodes and `widthlab worker`s; migrated on start).
    #[arg(long = "database-url", env = "WIDTHLAB_DATABASE_URL", default_value = "widthlab.db")]
    pub database_url: String,
    /// Compute threads for simulations (default: all cores).
    #[arg(long, env = "WIDTHLAB_THREADS")]
    pub threads: Option<usize>,
    /// Units of work this process computes at the same time (each on its share of the
    /// threads). `--workers` overrides it.
    #[arg(long = "max-running", env = "WIDTHLAB_MAX_RUNNING", default_value_t = 1)]
    pub max_running: usize,
    /// Compute slots of this process: 0 serves the API only (other processes, `widthlab
    /// worker`, compute); N computes N units at once (as `--max-running N`).
    #[arg(long, env = "WIDTHLAB_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a claimed unit stays this process's without a renewal; renewed every third of
    /// it. A worker that dies loses its units to other workers after this long.
    #[arg(long = "lease-secs", env = "WIDTHLAB_LEASE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub lease_secs: u64,
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
    /// Per-sample ratios one `keep_samples` job may keep (trials x samples x depth x 2; 422
    /// above). Each costs about 11 bytes in the database until the job is deleted.
    #[arg(
        long = "max-kept-values",
        env = "WIDTHLAB_MAX_KEPT_VALUES",
        default_value_t = 4_000_000
    )]
    pub max_kept_values: u64,
    /// Bearer tokens, comma-separated, each `name:secret` (the name is recorded as the owner of
    /// the jobs it submits) or a bare secret (named `token-` and 8 hex digits of its SHA-256).
    /// With tokens, every mutating endpoint needs `Authorization: Bearer <secret>`, and a job can
    /// be cancelled or deleted only by its owner or an admin; reads stay open.
    #[arg(long, env = "WIDTHLAB_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub tokens: Vec<Token>,
    /// Admin tokens (same format): they may also cancel and delete anyone's jobs.
    #[arg(
        long = "admin-tokens",
        env = "WIDTHLAB_ADMIN_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_tokens: Vec<Token>,
    /// Run without tokens even where that needs saying: listening beyond the loopback interface,
    /// or with a token list that is empty or blank.
    #[arg(long, env = "WIDTHLAB_OPEN")]
    pub open: bool,
    /// Queued jobs one owner may have at once (503 above; unlimited if unset).
    #[arg(long = "max-queued-per-owner", env = "WIDTHLAB_MAX_QUEUED_PER_OWNER")]
    pub max_queued_per_owner: Option<i64>,
    /// Estimated work (floating-point operations) one owner's queued and running jobs may add up
    /// to, each job counting its report's fixed 5e8 as well (503 above; 422 for a job over it by
    /// itself; unlimited if unset).
    #[arg(long = "max-owner-flops", env = "WIDTHLAB_MAX_OWNER_FLOPS")]
    pub max_owner_flops: Option<f64>,
}

/// A bearer token: the secret, and the name jobs record as their owner. The secret is never
/// printed (Debug shows the name only).
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}, <redacted>)", self.name)
    }
}

impl std::str::FromStr for Token {
    type Err = String;
    /// `name:secret` or a bare secret; surrounding spaces are dropped. An empty item (`a,,b`)
    /// is kept as a blank token, which [`Config::auth`] leaves out (or refuses, if all are).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once(':') {
            Some((name, secret)) => {
                let (name, secret) = (name.trim(), secret.trim());
                let valid_name = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
                if !valid_name {
                    return Err(format!(
                        "token name {name:?}: 1 to 64 letters, digits or - _ . @ (format: name:secret)"
                    ));
                }
                if secret.is_empty() {
                    return Err(format!("token {name}: the secret after ':' is empty"));
                }
                Ok(Token {
                    name: name.to_string(),
                    secret: secret.to_string(),
                })
            }
            None => {
                let digest = sha2::Sha256::digest(s.as_bytes());
                let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
                Ok(Token {
                    name: if s.is_empty() {
                        String::new()
                    } else {
                        format!("token-{hex}")
                    },
                    secret: s.to_string(),
                })
            }
        }
    }
}

/// Who may change what, decided at start-up from the tokens and `--open`.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Mutations need a token; jobs record the token's name as owner.
    Tokens { users: Vec<Token>, admins: Vec<Token> },
    /// No tokens: anyone who reaches the port may submit, cancel and delete.
    Open,
}

impl Auth {
    /// The start-up line saying which mode is on (names, never secrets).
    pub fn describe(&self) -> String {
        match self {
            Auth::Open => {
                "authentication off: anyone who can reach this port may submit, cancel and delete jobs".into()
            }
            Auth::Tokens { users, admins } => {
                let names = |ts: &[Token]| ts.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
                format!(
                    "authentication on: {} token(s) ({}), {} admin token(s) ({})",
                    users.len(),
                    names(users),
                    admins.len(),
                    names(admins)
                )
            }
        }
    }
}

impl Config {
    /// Decide the authentication mode, refusing configurations that are probably mistakes: a
    /// token list given but blank (`WIDTHLAB_TOKENS=" , "`), or no tokens on an address beyond
    /// the loopback interface, unless `--open` says it is meant.
    pub fn auth(&self) -> Result<Auth, String> {
        let real = |ts: &[Token]| -> Vec<Token> { ts.iter().filter(|t| !t.secret.is_empty()).cloned().collect() };
        let (users, admins) = (real(&self.tokens), real(&self.admin_tokens));
        if !users.is_empty() || !admins.is_empty() {
            let mut names: Vec<&str> = users.iter().chain(&admins).map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!(
                    "two tokens are named {:?}: names identify owners, give each its own",
                    w[0]
                ));
            }
            return Ok(Auth::Tokens { users, admins });
        }
        if self.open {
            return Ok(Auth::Open);
        }
        if !self.tokens.is_empty() || !self.admin_tokens.is_empty() {
            return Err(
                "WIDTHLAB_TOKENS (or --tokens) is set but holds no token: give name:secret,... or pass --open \
                 (WIDTHLAB_OPEN=true) to run without authentication"
                    .into(),
            );
        }
        let loopback = self
            .bind
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(self.bind.starts_with("localhost:"));
        if !loopback {
            return Err(format!(
                "listening on {} without tokens would let anyone who reaches it submit, cancel and delete jobs: set \
                 WIDTHLAB_TOKENS=name:secret,... or pass --open (WIDTHLAB_OPEN=true) if that is meant",
                self.bind
            ));
        }
        Ok(Auth::Open)
    }

    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads).max(1)
    }

    /// Units this process computes at once (0: none, an API-only server).
    pub fn compute_slots(&self) -> usize {
        self.workers.unwrap_or(self.max_running)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_memory_bytes: self.max_job_memory_mib.saturating_mul(1 << 20),
            max_work: self.max_job_flops,
            parallel_trials: self.threads(),
            max_kept_values: self.max_kept_values,
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

    fn config(tokens: &[&str], bind: &str, open: bool) -> Config {
        Config {
            tokens: tokens.iter().map(|t| t.parse().unwrap()).collect(),
            bind: bind.into(),
            open,
            ..Config::default()
        }
    }

    #[test]
    fn blank_token_items_are_ignored_among_real_ones() {
        let c = config(&["", " alice:s3cret "], "127.0.0.1:8080", false);
        match c.auth().unwrap() {
            Auth::Tokens { users, .. } => {
                assert_eq!(users.len(), 1);
                assert_eq!((users[0].name.as_str(), users[0].secret.as_str()), ("alice", "s3cret"));
            }
            Auth::Open => panic!("tokens were given"),
        }
    }

    #[test]
    fn a_blank_token_list_is_refused_unless_open() {
        let blank = config(&[" ", " "], "127.0.0.1:8080", false);
        assert!(blank.auth().unwrap_err().contains("holds no token"));
        assert!(matches!(
            config(&[" ", " "], "127.0.0.1:8080", true).auth(),
            Ok(Auth::Open)
        ));
        // No tokens at all: fine on loopback, refused on every interface unless --open.
        assert!(matches!(config(&[], "127.0.0.1:8080", false).auth(), Ok(Auth::Open)));
        assert!(config(&[], "0.0.0.0:8080", false)
            .auth()
            .unwrap_err()
            .contains("--open"));
        assert!(matches!(config(&[], "0.0.0.0:8080", true).auth(), Ok(Auth::Open)));
    }

    #[test]
    fn bare_tokens_get_stable_names_and_secrets_never_print() {
        let t: Token = "hunter2".parse().unwrap();
        assert!(t.name.starts_with("token-") && t.name.len() == 14, "{}", t.name);
        assert_eq!(t, "hunter2".parse().unwrap());
        assert!(!format!("{t:?}").contains("hunter2"));
        assert!("bad name:x".parse::<Token>().is_err());
        assert!("alice:".parse::<Token>().is_err());
        let dup = config(&["alice:a", "alice:b"], "127.0.0.1:1", false);
        assert!(dup.auth().unwrap_err().contains("alice"));
    }
}
