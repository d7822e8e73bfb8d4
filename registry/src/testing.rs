//! A real registry for tests: Debian's `docker-registry` (the distribution project's registry 2.x) started on an
//! address, optionally behind htpasswd basic auth, in a directory of its own; killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The registry binary (Debian's package `docker-registry`).
pub const REGISTRY_BIN: &str = "docker-registry";

/// A running registry.
pub struct LocalRegistry {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Its directory (config, storage, htpasswd, log).
    pub dir: PathBuf,
}

impl LocalRegistry {
    /// Whether the binary is installed.
    pub fn available() -> bool {
        Command::new(REGISTRY_BIN).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// Whether a test that needs a registry must be skipped: `true`, with the reason printed, when the binary is
    /// missing. With `SKEP_TESTS_REQUIRE_REGISTRY` set, a missing binary fails the test instead (panics).
    pub fn skip() -> bool {
        if LocalRegistry::available() {
            return false;
        }
        assert!(std::env::var_os("SKEP_TESTS_REQUIRE_REGISTRY").is_none(), "docker-registry is not installed");
        println!("skipped: docker-registry is not installed (apt-get install docker-registry)");
        true
    }

    /// Starts a registry on `addr` (`ip:port`) keeping its files in `dir`; with `user` set, every request needs
    /// that user's password (htpasswd, bcrypt, made with `htpasswd -B`). `wrap` prefixes the command (`ip netns exec
    /// <ns>`). Waits until it answers `/v2/` (from this process's network namespace, so callers in another one wait
    /// themselves).
    pub fn start(dir: &Path, addr: &str, user: Option<(&str, &str)>, wrap: &[&str]) -> std::io::Result<LocalRegistry> {
        std::fs::create_dir_all(dir.join("data"))?;
        let auth = match user {
            Some((u, p)) => {
                let out = Command::new("htpasswd").args(["-Bbn", u, p]).output()?;
                if !out.status.success() {
                    return Err(std::io::Error::other("htpasswd failed"));
                }
                std::fs::write(dir.join("htpasswd"), out.stdout)?;
                format!("auth:\n  htpasswd:\n    realm: skep-test\n    path: {}\n", dir.join("htpasswd").display())
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(REGISTRY_BIN);
                c
            }
            None => Command::new(REGISTRY_BIN),
        };
        let child = cmd.arg("serve").arg(dir.join("config.yml")).stdout(log.try_clone()?).stderr(log).stdin(Stdio::null()).spawn()?;
        let mut r = LocalRegistry { child, addr: addr.to_string(), dir: dir.to_path_buf() };
        if wrap.is_empty() {
            r.wait_ready()?;
        }
        Ok(r)
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        for _ in 0..200 {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            if let Some(s) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                return Err(std::io::Error::other(format!("docker-registry exited ({s}): {log}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other("docker-registry did not listen within 10 s"))
    }

    /// Stops it (the directory stays: a test may restart a registry on the same storage).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
