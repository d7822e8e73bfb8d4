//! A headless Chromium driven over the Chrome DevTools Protocol, for tests of the web view.
//!
//! The protocol goes over `--remote-debugging-pipe` (JSON messages ended by a NUL byte, commands read from the
//! browser's fd 3 and answers written to its fd 4), so no port is opened and no WebSocket client is needed: a shell
//! maps the child's stdin and stdout to those descriptors. The browser runs inside a host's namespace (it reaches
//! that host's loopback, where the daemon serves the page) in its own process group with a fresh profile directory;
//! [`Browser`]'s drop kills the group and removes the profile, also when a test fails.

use crate::netns::Netns;
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for one protocol answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The browser: `SKEP_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("SKEP_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether the browser is there; when not, prints why and returns `false` (a skipped test), unless
/// `SKEP_TESTS_REQUIRE_NETNS=1` (CI), where a missing browser is a failure.
pub fn require_chromium() -> bool {
    let path = chromium();
    if path.exists() {
        return true;
    }
    if std::env::var("SKEP_TESTS_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("SKEP_TESTS_REQUIRE_NETNS=1 but {} is missing (apt-get install chromium)", path.display());
    }
    eprintln!("skipped: needs {} (apt-get install chromium)", path.display());
    false
}

/// A headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    profile: PathBuf,
}

impl Browser {
    /// Start the browser inside `ns` (its window `width`×`height`), logging to `log`.
    pub fn launch(ns: &Netns, width: u32, height: u32, log: &Path) -> Result<Browser> {
        Browser::launch_with(ns.command("sh"), width, height, log)
    }

    /// Start the browser with `sh`, which is `Command::new("sh")` or that shell wrapped (as in a namespace).
    pub fn launch_with(mut cmd: Command, width: u32, height: u32, log: &Path) -> Result<Browser> {
        let profile = std::env::temp_dir().join(format!("skep-chromium-{}", crate::netns::unique_stem()));
        std::fs::create_dir_all(&profile)?;
        cmd.args(["-c", r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#])
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank");
        let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
        crate::process::harden(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(e).context("starting chromium");
            }
        };
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let (tx, answers) = mpsc::channel();
        if let Some(out) = stdout {
            std::thread::spawn(move || {
                let mut r = BufReader::new(out);
                let mut buf = Vec::new();
                while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                    if buf.last() == Some(&0) {
                        buf.pop();
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    buf.clear();
                }
            });
        }
        let Some(stdin) = stdin else { bail!("chromium's stdin was not piped") };
        Ok(Browser { child, stdin, answers, next_id: 0, session: None, profile })
    }

    /// Send `method` with `params` (to the attached page once there is one) and wait for its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.stdin.write_all(&bytes).with_context(|| format!("sending {method} to chromium"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.answers.recv_timeout(left).with_context(|| format!("no answer to {method} from chromium"))?;
            if v["id"] != json!(id) {
                continue; // an event, or a late answer
            }
            if let Some(e) = v.get("error") {
                bail!("{method}: {e}");
            }
            return Ok(v["result"].clone());
        }
    }

    /// Open `url` in a new page and attach to it (later calls go to that page).
    pub fn open(&mut self, url: &str) -> Result<()> {
        self.session = None; // targets are the browser's, not a page's
        let target = self.call("Target.createTarget", json!({ "url": url }))?;
        let id = target["targetId"].as_str().context("no targetId")?.to_string();
        let attached = self.call("Target.attachToTarget", json!({ "targetId": id, "flatten": true }))?;
        self.session = Some(attached["sessionId"].as_str().context("no sessionId")?.to_string());
        Ok(())
    }

    /// The value of the JavaScript expression `expr` in the page (awaited when a promise).
    pub fn eval(&mut self, expr: &str) -> Result<Value> {
        let params = json!({ "expression": expr, "returnByValue": true, "awaitPromise": true });
        let r = self.call("Runtime.evaluate", params)?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("evaluating {expr}: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Save a PNG of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        use base64::Engine as _;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = r["data"].as_str().context("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data).context("screenshot data")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        crate::process::signal_group(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
