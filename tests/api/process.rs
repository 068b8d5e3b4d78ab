//! The real binary as a child process, for the tests that kill, restart or starve it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// `widthlab serve` on `db`, port 0, 2 threads, one job at a time; only these flags configure it
/// (no tokens or limits from the environment of the test run).
pub fn serve_command(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_widthlab"));
    clear_widthlab_env(&mut command);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(db)
        .args(["--threads", "2", "--max-running", "1"]);
    command
}

/// Remove every `WIDTHLAB_*` variable from a child's environment.
pub fn clear_widthlab_env(command: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WIDTHLAB_") {
            command.env_remove(k);
        }
    }
}

/// A `widthlab serve` child process, killed (SIGKILL) and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub client: reqwest::Client,
}

impl Server {
    pub fn start(db: &Path, log: &Path) -> Server {
        Server::spawn(serve_command(db), log)
    }

    /// Start `command` (a `widthlab serve`, possibly wrapped) with stderr appended to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start widthlab serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Server {
            child,
            address: String::new(),
            client: reqwest::Client::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server printed its address");
        let address = line
            .trim()
            .strip_prefix("widthlab listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(address.starts_with("http://127.0.0.1:"), "{address}");
        server.address = address;
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub async fn submit(&self, spec: &Value) -> String {
        let r = self
            .client
            .post(format!("{}/v1/jobs", self.address))
            .json(spec)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }

    pub async fn wait_for(&self, id: &str, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(&self.client, &self.address, id, timeout, what, pred).await
    }

    pub async fn wait_until_running(&self, id: &str) -> Value {
        self.wait_for(id, Duration::from_secs(20), "running with progress", |j| {
            j["status"] == "running" && j["progress"]["done"].as_u64().unwrap_or(0) > 0
        })
        .await
    }

    pub async fn wait_succeeded(&self, id: &str, timeout: Duration) -> Value {
        let job = self
            .wait_for(id, timeout, "a terminal status", |j| {
                TERMINAL.contains(&j["status"].as_str().unwrap_or(""))
            })
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        job
    }

    /// Wait for the process to exit by itself; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
