//! The dashboard in a real browser: headless Debian `chromium` driven over WebDriver
//! (`chromedriver`, from `chromium-driver`) against a real server on port 0. Screenshots go to
//! `$WIDTHLAB_SCREENSHOTS` (default `target/browser-screenshots`).
//!
//! Without chromium and chromedriver on the PATH the test says so and passes, unless
//! `WIDTHLAB_REQUIRE_BROWSER=1` (set by `.ci/run`), where their absence fails it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{long_spec, spawn_app_in};
use crate::pages::failed_job_in;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names
        .iter()
        .find_map(|n| std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file()))
}

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    shots: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &PathBuf, chromium: &PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let shots = std::env::var_os("WIDTHLAB_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots"));
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        let mut driver = Driver {
            child,
            base,
            session: String::new(),
            http,
            shots,
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.base)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--hide-scrollbars"]
            }
        }}});
        let v = driver.call("POST", "/session", caps).await;
        driver.session = v["sessionId"].as_str().expect("a session").to_string();
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r = req.send().await.expect("WebDriver request");
        let status = r.status();
        let v: Value = r.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {v}");
        v["value"].clone()
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{}", self.session, path)
    }

    async fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.call("GET", &self.s("/url"), Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), json!({"script": script, "args": []}))
            .await
    }

    async fn click(&self, css: &str) {
        let e = self
            .call(
                "POST",
                &self.s("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = e[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {e}"))
            .to_string();
        self.call("POST", &self.s(&format!("/element/{id}/click")), json!({}))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .call(
                "POST",
                &self.s("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = e[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {e}"))
            .to_string();
        self.call(
            "POST",
            &self.s(&format!("/element/{id}/value")),
            json!({ "text": text }),
        )
        .await;
    }

    /// Poll `script` until it returns true; panics with `what` and a screenshot after `timeout`.
    async fn wait_until(&self, script: &str, timeout: Duration, what: &str) {
        let start = Instant::now();
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            if start.elapsed() > timeout {
                self.screenshot(&format!("timeout-{}", what.replace(' ', "-"))).await;
                let body = self.js("return document.body.innerText").await;
                panic!("the browser did not see {what} within {timeout:?}; page text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let v = self.call("GET", &self.s("/screenshot"), Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .expect("PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn quit(&self) {
        self.call("DELETE", &self.s(""), Value::Null).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let required = std::env::var("WIDTHLAB_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let (Some(chromedriver), Some(chromium)) = (
        find_program(&["chromedriver"]),
        find_program(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        assert!(
            !required,
            "WIDTHLAB_REQUIRE_BROWSER=1 but chromium or chromedriver is not on the PATH"
        );
        eprintln!(
            "SKIPPED: the browser test needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    failed_job_in(&dir, "failed-job", "a job that failed", "out of memory at layer 7").await;
    let app = spawn_app_in(dir, |_| {}).await;
    let b = Driver::start(&chromedriver, &chromium).await;
    let root = format!("{}/", app.address);

    // The index lists the failed job.
    b.goto(&root).await;
    b.wait_until(
        "return document.querySelector('tr[data-id=\"failed-job\"] .status').textContent==='failed'",
        Duration::from_secs(5),
        "the failed job on the index",
    )
    .await;
    b.screenshot("01-index").await;

    // A long job holds the only compute slot, so the preset waits in the queue while we watch.
    let blocker = app.submit(&long_spec(71)).await;
    let blocker = blocker["id"].as_str().unwrap().to_string();

    // Submit page: a bad tag is refused beside the tags field.
    b.goto(&format!("{root}submit")).await;
    b.js("var s=document.getElementById('preset');s.value='arpit2019-fig1';s.dispatchEvent(new Event('change'));return 1")
        .await;
    let spec = b.js("return document.getElementById('spec').value").await;
    assert!(
        spec.as_str().unwrap().contains("\"preset\": \"arpit2019-fig1\""),
        "{spec}"
    );
    b.type_into("#tags", "fig1 not/ok").await;
    b.click("#submit-button").await;
    b.wait_until(
        "return document.getElementById('tags-error').textContent.indexOf('tags[1]')===0",
        Duration::from_secs(5),
        "the 422 beside the tags",
    )
    .await;
    b.screenshot("02-submit-422").await;
    assert!(
        b.url().await.ends_with("/submit"),
        "a refused submission stays on the form"
    );

    // Fix it, make the preset quick, and submit: the browser lands on the job's page.
    b.js("var t=document.getElementById('tags');t.value='fig1 browser';\
          document.getElementById('spec').value='{\"preset\": \"arpit2019-fig1\", \"samples\": 100, \"trials\": 2}';return 1")
        .await;
    b.type_into("#name", "<i>Figure 1</i> from the browser").await;
    b.click("#submit-button").await;
    b.wait_until(
        "return location.pathname.indexOf('/jobs/')===0",
        Duration::from_secs(5),
        "the job page",
    )
    .await;
    let url = b.url().await;
    let id = url.rsplit('/').next().unwrap().to_string();
    let job = app.job(&id).await;
    assert_eq!(job["preset"], "arpit2019-fig1");
    assert_eq!(job["name"], "<i>Figure 1</i> from the browser");
    assert_eq!(job["tags"], json!(["fig1", "browser"]));
    b.wait_until(
        "return document.querySelector('h1').textContent==='<i>Figure 1</i> from the browser'&&!document.querySelector('h1 i')",
        Duration::from_secs(5),
        "the name as text",
    )
    .await;
    // The blocker is older, so it keeps the slot (claims go by fewest leased units, then age).
    let shown = b.js("return document.querySelector('main').dataset.status").await;
    assert!(
        shown == "queued" || shown == "running",
        "the job is not live any more: {shown}"
    );
    // A mark on the window: a reload would wipe it.
    b.js("window.__sameDocument=true;return 1").await;
    b.screenshot("03-job-queued").await;

    // Free the slot: the page follows the job to `succeeded` and shows the figure, unreloaded.
    assert!(app.cancel(&blocker).await.status().is_success());
    b.wait_until(
        "var m=document.querySelector('main');return m.dataset.status==='succeeded'&&document.getElementById('status').textContent==='succeeded'",
        Duration::from_secs(60),
        "the job succeed",
    )
    .await;
    b.wait_until(
        "var f=document.getElementById('figure');return !!f&&f.complete&&f.naturalWidth>100",
        Duration::from_secs(10),
        "the figure",
    )
    .await;
    assert_eq!(
        b.js("return window.__sameDocument===true").await,
        true,
        "the page was reloaded"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('table.verdicts tr').length")
            .await,
        4,
        "a verdict row per bound"
    );
    b.screenshot("04-job-succeeded").await;

    // Cancel a second job from its page.
    let second = app.submit(&long_spec(72)).await;
    let second = second["id"].as_str().unwrap().to_string();
    app.wait_until_running(&second).await;
    b.goto(&format!("{root}jobs/{second}")).await;
    b.wait_until(
        "return !!document.querySelector('button[data-action=cancel]')",
        Duration::from_secs(5),
        "the cancel button",
    )
    .await;
    b.screenshot("05-job-running").await;
    b.click("button[data-action=cancel]").await;
    b.wait_until(
        "return document.getElementById('status').textContent==='cancelled'",
        Duration::from_secs(20),
        "the cancel",
    )
    .await;
    assert_eq!(app.job(&second).await["status"], "cancelled");
    b.screenshot("06-job-cancelled").await;

    // The index follows a job's status by itself: a third job, cancelled behind its back.
    let third = app.submit(&long_spec(73)).await;
    let third = third["id"].as_str().unwrap().to_string();
    app.wait_until_running(&third).await;
    b.goto(&root).await;
    b.wait_until(
        &format!(
            "var r=document.querySelector('tr[data-id=\"{third}\"] .status');return !!r&&r.textContent==='running'"
        ),
        Duration::from_secs(5),
        "the running job on the index",
    )
    .await;
    b.js("window.__sameDocument=true;return 1").await;
    assert!(app.cancel(&third).await.status().is_success());
    b.wait_until(
        &format!("return document.querySelector('tr[data-id=\"{third}\"] .status').textContent==='cancelled'"),
        Duration::from_secs(15),
        "the index update the status",
    )
    .await;
    assert_eq!(
        b.js("return window.__sameDocument===true").await,
        true,
        "the index was reloaded"
    );
    b.screenshot("07-index-live").await;

    // The failed job shows its error.
    b.goto(&format!("{root}jobs/failed-job")).await;
    let error = b
        .js("var e=document.getElementById('job-error');return e?e.textContent:null")
        .await;
    assert_eq!(error, "out of memory at layer 7");
    b.screenshot("08-job-failed").await;

    // Back on the index, filtered by a tag with the form.
    b.goto(&root).await;
    b.type_into("input[name=tag]", "browser").await;
    b.click("form.filters button").await;
    b.wait_until(
        "return location.search.indexOf('tag=browser')>=0",
        Duration::from_secs(5),
        "the filter",
    )
    .await;
    let rows = b
        .js("return Array.from(document.querySelectorAll('tr[data-id]')).map(function(r){return r.dataset.id})")
        .await;
    assert_eq!(rows, json!([id]));
    b.screenshot("09-index-filtered").await;

    // The comparison page draws the job's figure.
    b.goto(&format!("{root}compare?ids={id}")).await;
    b.wait_until(
        "var f=document.getElementById('figure');return !!f&&f.complete&&f.naturalWidth>100",
        Duration::from_secs(10),
        "the comparison figure",
    )
    .await;
    b.screenshot("10-compare").await;
    b.quit().await;
    app.shutdown().await;
}
