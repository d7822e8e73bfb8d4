//! The `docker` engine: a task is a container of the local Docker daemon, driven through bollard.
//!
//! - `prepare` checks that the image is present locally (skep pulls nothing: a missing image is `NotFound("No such
//!   image: x")`) and creates the container `<service>.<slot>.<task ID>` (Docker's naming; see
//!   [`spec::LABEL_SERVICE_NAME`]) labelled with the task, service and node IDs and the slot. `Command` becomes the
//!   entrypoint and `Args` the command, as in Docker's swarm executor; `Env`, `Dir`, `User`, `Hostname`, `TTY`,
//!   `StopSignal` and `StopGracePeriod` (rounded up to whole seconds, Docker's unit) go into the container config.
//!   The restart policy is `no`: skep replaces failed tasks, Docker must not restart them.
//! - `start` starts it; a missing executable, which Docker only finds out here, is `NotFound` with Docker's text.
//! - `wait` uses the wait API (`condition=not-running`) and falls back to polling inspect if that stream breaks.
//!   A container killed by a signal reports `128 + signal` as Docker does ([`Exit::Code`]).
//! - `stop` is Docker's stop with the task's grace period; the signal is the container's `StopSignal`.
//! - `adopt` inspects the container ID; `list` lists containers labelled `com.skep.task.id`; `logs` reads the logs
//!   API into a buffer holding only the last `max_bytes`.

use super::spec::{self, container_spec, LABEL_TASK_ID};
use super::{Engine, EngineError, Exit, Handle};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use skep_api::docker::Task;
use std::collections::HashMap;
use std::time::Duration;

/// How long a plain API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll period of `wait` when the wait API is not usable.
const POLL: Duration = Duration::from_millis(500);

/// The `docker` engine: a bollard client of one daemon.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
}

/// What a Docker API error means for us.
fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

impl DockerEngine {
    /// Connects to the daemon at `socket` (`/var/run/docker.sock` or `unix:///…`) and agrees on an API version
    /// (skep speaks whatever the daemon does, down to bollard's oldest).
    pub async fn connect(socket: &str) -> Result<DockerEngine, EngineError> {
        let docker = Docker::connect_with_unix(socket, CALL_TIMEOUT.as_secs(), bollard::API_DEFAULT_VERSION)?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| EngineError::Docker(DockerError::RequestTimeoutError))??;
        Ok(DockerEngine { docker })
    }

    /// The bollard client, for callers that need more than the engine contract.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// IDs and labels of the containers of a task (normally one).
    async fn containers_of(&self, task_id: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_TASK_ID}={task_id}")])]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// The container of a prepared task.
    async fn container_of(&self, task_id: &str) -> Result<String, EngineError> {
        self.containers_of(task_id)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::Invalid(format!("task {task_id} is not prepared (no container)")))
    }

    /// A running container's handle; `pid` 0 when it is not running.
    async fn handle_of(&self, task_id: &str, id: &str) -> Result<Handle, EngineError> {
        let c = self.docker.inspect_container(id, None).await?;
        let pid = c.state.as_ref().filter(|s| s.running == Some(true)).and_then(|s| s.pid).unwrap_or(0);
        Ok(Handle { task_id: task_id.to_string(), engine: "docker".into(), id: c.id.unwrap_or_default(), pid })
    }

    /// Waits by polling inspect (the fallback when the wait API's stream breaks).
    async fn poll_exit(&self, id: &str) -> Result<Exit, EngineError> {
        loop {
            match self.docker.inspect_container(id, None).await {
                Ok(c) => {
                    let state = c.state.unwrap_or_default();
                    if state.running != Some(true) && state.restarting != Some(true) {
                        return Ok(Exit::Code(state.exit_code.unwrap_or(-1)));
                    }
                }
                Err(e) if status(&e) == Some(404) => {
                    return Err(EngineError::NotFound(format!("No such container: {id}")))
                }
                Err(e) => tracing::debug!(container = id, error = %e, "docker engine: inspect failed; retrying"),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Engine for DockerEngine {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
        spec::check_task_id(&task.id)?;
        let c = container_spec(task)?;
        if c.image.is_empty() {
            return Err(EngineError::Invalid("no image: the ContainerSpec has no Image".into()));
        }
        let signal = spec::stop_signal(c)?;
        match self.docker.inspect_image(&c.image).await {
            Ok(_) => {}
            Err(e) if status(&e) == Some(404) => {
                return Err(EngineError::NotFound(format!("No such image: {}", c.image)))
            }
            Err(e) => return Err(e.into()),
        }
        if !self.containers_of(&task.id).await?.is_empty() {
            return Ok(()); // prepared before (an agent restart between prepare and start)
        }
        let mut labels: HashMap<String, String> = c.labels.clone().into_iter().collect();
        labels.extend(spec::task_labels(task));
        let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let some_str = |s: &String| (!s.is_empty()).then(|| s.clone());
        let grace_secs = spec::grace_period(c).as_nanos().div_ceil(1_000_000_000);
        let networked = !task.networks_attachments.is_empty();
        let body = ContainerCreateBody {
            image: Some(c.image.clone()),
            entrypoint: some_vec(&c.command),
            cmd: some_vec(&c.args),
            env: some_vec(&c.env),
            working_dir: some_str(&c.dir),
            user: some_str(&c.user),
            hostname: some_str(&c.hostname),
            tty: Some(c.tty),
            labels: Some(labels),
            stop_signal: Some(signal.as_str().to_string()),
            stop_timeout: Some(grace_secs.min(i64::MAX as u128) as i64),
            host_config: Some(HostConfig {
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                // a task on skep networks gets only what the agent plumbs into it after start (its overlay
                // interfaces), and resolves through the embedded DNS the agent serves at 127.0.0.11 inside it
                network_mode: networked.then(|| "none".to_string()),
                dns: networked.then(|| vec!["127.0.0.11".to_string()]),
                dns_options: networked.then(|| vec!["ndots:0".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(spec::task_name(task)), ..Default::default() };
        self.docker.create_container(Some(options), body).await?;
        Ok(())
    }

    async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
        spec::check_task_id(&task.id)?;
        let id = self.container_of(&task.id).await?;
        match self.docker.start_container(&id, None).await {
            Ok(()) => {}
            Err(e) if status(&e) == Some(304) => {} // already started
            // Docker reports a missing executable only as text, so that text is all there is to go by.
            Err(DockerError::DockerResponseServerError { message, .. })
                if message.contains("executable file not found") || message.contains("no such file or directory") =>
            {
                return Err(EngineError::NotFound(message))
            }
            Err(e) => return Err(e.into()),
        }
        self.handle_of(&task.id, &id).await
    }

    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        let options = WaitContainerOptions { condition: "not-running".into() };
        let mut stream = self.docker.wait_container(&h.id, Some(options));
        match stream.next().await {
            Some(Ok(r)) => Ok(Exit::Code(r.status_code)),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(Exit::Code(code)),
            Some(Err(e)) if status(&e) == Some(404) => {
                Err(EngineError::NotFound(format!("No such container: {}", h.id)))
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!(container = %h.id, error = %e, "docker engine: wait API failed; polling");
                }
                self.poll_exit(&h.id).await
            }
        }
    }

    async fn stop(&self, h: &Handle, task: &Task) -> Result<(), EngineError> {
        let grace = container_spec(task).map(spec::grace_period).unwrap_or(spec::DEFAULT_GRACE);
        let secs = grace.as_nanos().div_ceil(1_000_000_000).min(i32::MAX as u128) as i32;
        // The daemon answers once the container is down: allow it the grace period.
        let docker = self.docker.clone().with_timeout(grace + CALL_TIMEOUT);
        match docker.stop_container(&h.id, Some(StopContainerOptions { t: Some(secs), signal: None })).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status(&e), Some(304 | 404)) => Ok(()), // not running / gone
            Err(e) => Err(e.into()),
        }
    }

    async fn remove(&self, task_id: &str) -> Result<(), EngineError> {
        spec::check_task_id(task_id)?;
        for id in self.containers_of(task_id).await? {
            let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => {}
                // Gone already, or its removal is under way.
                Err(e) if matches!(status(&e), Some(404 | 409)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
        let mut out = Vec::with_capacity(hs.len());
        for h in hs {
            let running = h.engine == self.name()
                && match self.docker.inspect_container(&h.id, None).await {
                    Ok(c) => {
                        let ours = c.config.and_then(|c| c.labels).and_then(|l| l.get(LABEL_TASK_ID).cloned());
                        c.id.as_deref() == Some(h.id.as_str())
                            && ours.as_deref() == Some(h.task_id.as_str())
                            && c.state.and_then(|s| s.running) == Some(true)
                    }
                    Err(_) => false,
                };
            out.push((h.clone(), running));
        }
        out
    }

    async fn list(&self) -> Result<Vec<Handle>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL_TASK_ID.to_string()])]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await?;
        let mut out = Vec::new();
        for c in list {
            let (Some(id), Some(task_id)) = (c.id, c.labels.and_then(|mut l| l.remove(LABEL_TASK_ID))) else {
                continue;
            };
            match self.handle_of(&task_id, &id).await {
                Ok(h) => out.push(h),
                Err(e) if matches!(&e, EngineError::Docker(d) if status(d) == Some(404)) => {} // just removed
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(out)
    }

    async fn logs(&self, task_id: &str, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        spec::check_task_id(task_id)?;
        let Some(id) = self.containers_of(task_id).await?.into_iter().next() else {
            return Err(EngineError::NotFound(format!("No such task: {task_id}")));
        };
        let options = LogsOptions { stdout: true, stderr: true, tail: "all".into(), ..Default::default() };
        let mut stream = self.docker.logs(&id, Some(options));
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(chunk?.as_ref());
            // Keep at most 2 × max_bytes while reading, the last max_bytes at the end.
            if buf.len() > max_bytes.saturating_mul(2).max(64 << 10) {
                buf.drain(..buf.len() - max_bytes);
            }
        }
        if buf.len() > max_bytes {
            buf.drain(..buf.len() - max_bytes);
        }
        Ok(buf)
    }
}
