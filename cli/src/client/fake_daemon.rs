//! A fake daemon for the client's end-to-end tests: hyper's server on a unix socket in a temp dir that answers canned
//! JSON and records every request; and `run_cli`, which runs a command line against it.

use super::{run, ApiClient, ClientCommand};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type Handler = dyn Fn(&str, &str, &str) -> (u16, String) + Send + Sync;

/// A fake daemon: `handler(method, path, body) -> (status, body)`; paths arrive without the `/v1.50` prefix.
pub(crate) struct FakeDaemon {
    /// The temp dir holding the socket.
    pub(crate) dir: PathBuf,
    /// `("METHOD path", body)` of every request, in order.
    pub(crate) seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDaemon {
    pub(crate) fn start(
        handler: impl Fn(&str, &str, &str) -> (u16, String) + Send + Sync + 'static,
    ) -> FakeDaemon {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "skep-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let listener = tokio::net::UnixListener::bind(dir.join("api.sock")).unwrap();
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, handler) = (seen2.clone(), handler.clone());
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (seen, handler) = (seen.clone(), handler.clone());
                    async move {
                        let method = req.method().to_string();
                        let full = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await?.to_bytes();
                        let body = String::from_utf8_lossy(&body).to_string();
                        let (status, reply) = match full.strip_prefix("/v1.50") {
                            Some(path) => {
                                seen.lock()
                                    .unwrap()
                                    .push((format!("{method} {path}"), body.clone()));
                                handler(&method, path, &body)
                            }
                            None => (400, json!({"message": "no version prefix"}).to_string()),
                        };
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .status(status)
                                .header("Content-Type", "application/json")
                                .body(Full::new(Bytes::from(reply)))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeDaemon { dir, seen, task }
    }

    pub(crate) fn client(&self) -> ApiClient {
        ApiClient::new(&format!("unix://{}", self.dir.join("api.sock").display())).unwrap()
    }

    /// `METHOD path` of every request, in order.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }

    /// The bodies of every request, in order.
    pub(crate) fn bodies(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.1.clone()).collect()
    }

    /// The JSON body of the first request whose `METHOD path` starts with `prefix`.
    pub(crate) fn body_of(&self, prefix: &str) -> Value {
        let seen = self.seen.lock().unwrap();
        let (_, body) = seen
            .iter()
            .find(|(r, _)| r.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request {prefix}"));
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run a command line (without `skep`) against the fake daemon; returns stdout and the error text.
pub(crate) async fn run_cli(d: &FakeDaemon, args: &[&str]) -> (String, Option<String>) {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCommand,
    }
    let cli = Cli::try_parse_from(std::iter::once("skep").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let r = run(&d.client(), cli.cmd, &mut out).await;
    (
        String::from_utf8(out).unwrap(),
        r.err().map(|e| super::error_text(&e)),
    )
}
