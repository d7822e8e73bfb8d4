//! The `docker` engine: a task is a container of the local Docker daemon, driven through bollard.
//!
//! - `prepare` pulls the image when the Docker daemon does not have it (with the service's registry credentials,
//!   [`skep_api::docker::PullOptions`]; the task shows `preparing` meanwhile, and a failed pull rejects it with the
//!   registry's error, which the restart policy then retries) and creates the container `<service>.<slot>.<task ID>` (Docker's naming; see
//!   [`spec::LABEL_SERVICE_NAME`]) labelled with the task, service and node IDs and the slot. `Command` becomes the
//!   entrypoint and `Args` the command, as in Docker's swarm executor; `Env`, `Dir`, `User`, `Hostname`, `TTY`,
//!   `StopSignal` and `StopGracePeriod` (rounded up to whole seconds, Docker's unit) go into the container config,
//!   after the swarm templates in `Env`, `Hostname` and `Mounts` are expanded (as swarmkit's agent does).
//!   `Mounts` (bind, volume, tmpfs; checked as the process engine checks them, a missing bind source rejected with
//!   the same words), `Groups`, `CapabilityAdd`/`CapabilityDrop`, `Sysctls`, `ReadOnly` and the limits (`NanoCPUs`
//!   as a CFS quota per 100 ms like swarmkit, `MemoryBytes`, `Pids`, the memory reservation) go into the host
//!   config. A limit Docker answers it cannot apply ("Limitation discarded") rejects the task: it never runs
//!   unlimited. Options the daemon's API version does not know are refused rather than dropped.
//!   The restart policy is `no`: skep replaces failed tasks, Docker must not restart them.
//! - `start` starts it; a missing executable, which Docker only finds out here, is `NotFound` with Docker's text.
//! - `wait` uses the wait API (`condition=not-running`) and falls back to polling inspect if that stream breaks.
//!   A container killed by a signal reports `128 + signal` as Docker does ([`Exit::Code`]); one the OOM killer hit
//!   (`State.OOMKilled`) is [`Exit::OomKilled`].
//! - `stop` is Docker's stop with the task's grace period; the signal is the container's `StopSignal`.
//! - `adopt` inspects the container ID; `list` lists containers labelled `com.skep.task.id`; `logs` reads the logs
//!   API into a buffer holding only the last `max_bytes`; `read_logs` reads it as records (`docker_logs.rs`), the
//!   containers logging with `json-file` bounded by the daemon's limits.

use super::spec::{self, container_spec, Limits, NodeInfo, LABEL_TASK_ID};
use super::{Engine, EngineError, Exit, Handle, TaskFile};
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HealthStatusEnum, HostConfig, Mount as DockerMount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use skep_api::docker::{Mount, MountKind, ReadOnlyDepth};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use skep_api::docker::fields::EngineKind;
use skep_api::docker::health::{Health, HealthCheck};
use skep_api::docker::Task;
use skep_api::logs::{LogsBatch, LogsRequest};
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
    /// What templates (`{{.Node.Hostname}}`) say about this node.
    node: NodeInfo,
    /// The secret and config files of tasks not prepared yet (`use_files`), bound into their containers.
    files: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<crate::secrets::shm::FileMount>>>>,
    /// How much output Docker keeps per task container.
    log_limits: crate::logs::LogLimits,
}

impl DockerEngine {
    /// Pulls `image` through the Docker daemon with the service's credentials; the first error the daemon reports
    /// in the progress stream (or answers) rejects the task with the registry's words.
    async fn pull(&self, image: &str, auth: Option<&skep_api::docker::PullOptions>) -> Result<(), EngineError> {
        let creds = match auth {
            Some(a) => skep_registry::Credentials::from_header(&a.registry_auth).map_err(|e| EngineError::Invalid(e.to_string()))?,
            None => skep_registry::Credentials::default(),
        };
        let docker_creds = (!creds.is_empty()).then(|| bollard::auth::DockerCredentials {
            username: (!creds.username.is_empty()).then(|| creds.username.clone()),
            password: (!creds.password.is_empty()).then(|| creds.password.clone()),
            identitytoken: (!creds.identity_token.is_empty()).then(|| creds.identity_token.clone()),
            registrytoken: (!creds.registry_token.is_empty()).then(|| creds.registry_token.clone()),
            ..Default::default()
        });
        let options = bollard::query_parameters::CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
        let mut progress = self.docker.create_image(Some(options), None, docker_creds);
        let pulling = async {
            while let Some(item) = progress.next().await {
                match item {
                    Ok(info) => {
                        if let Some(e) = info.error_detail.and_then(|d| d.message) {
                            return Err(EngineError::Pull(format!("pulling {image}: {e}")));
                        }
                    }
                    Err(DockerError::DockerResponseServerError { message, .. }) => {
                        return Err(EngineError::Pull(format!("pulling {image}: {message}")))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        };
        tokio::time::timeout(PULL_TIMEOUT, pulling)
            .await
            .map_err(|_| EngineError::Pull(format!("pulling {image}: no end within {PULL_TIMEOUT:?}")))??;
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Err(EngineError::NotFound(format!("No such image: {image}"))),
            Err(e) => Err(e.into()),
        }
    }
}

/// How long one pull may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// What a Docker API error means for us.
/// Docker's health status as skep's (`None`: no check, or no container).
fn health_of(status: Option<HealthStatusEnum>) -> Option<Health> {
    match status {
        Some(HealthStatusEnum::HEALTHY) => Some(Health::Healthy),
        Some(HealthStatusEnum::UNHEALTHY) => Some(Health::Unhealthy),
        Some(HealthStatusEnum::STARTING) => Some(Health::Starting),
        _ => None,
    }
}

pub(crate) fn status(e: &DockerError) -> Option<u16> {
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
        Ok(DockerEngine { docker, node: NodeInfo::local(), files: Default::default(), log_limits: Default::default() })
    }

    /// How much output Docker keeps per task container (its `json-file` driver's `max-size` and `max-file`).
    pub fn with_log_limits(mut self, limits: crate::logs::LogLimits) -> DockerEngine {
        self.log_limits = limits;
        self
    }

    /// What templates say about this node (default [`NodeInfo::local`]).
    pub fn with_node(mut self, node: NodeInfo) -> DockerEngine {
        self.node = node;
        self
    }

    /// The daemon's API version is at least 1.`minor`.
    fn speaks(&self, minor: usize) -> bool {
        let v = self.docker.client_version();
        v.major_version > 1 || (v.major_version == 1 && v.minor_version >= minor)
    }

    /// Fails unless the daemon's API has `what` (added in 1.`minor`): Docker would ignore it.
    fn require(&self, minor: usize, what: &str) -> Result<(), EngineError> {
        if self.speaks(minor) {
            return Ok(());
        }
        let v = self.docker.client_version();
        Err(EngineError::Invalid(format!(
            "{what} needs Docker API 1.{minor}; this Docker daemon speaks {}.{}",
            v.major_version, v.minor_version
        )))
    }

    /// `Mounts` as Docker's host config takes them.
    fn mounts(&self, mounts: &[(Mount, MountKind)]) -> Result<Vec<DockerMount>, EngineError> {
        let mut out = Vec::with_capacity(mounts.len());
        for (m, kind) in mounts {
            let mut d = DockerMount {
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                consistency: (!m.consistency.is_empty()).then(|| m.consistency.clone()),
                ..Default::default()
            };
            match kind {
                MountKind::Bind { source, propagation, recursive, create_source, read_only } => {
                    if !std::path::Path::new(source).exists() {
                        if !create_source {
                            return Err(EngineError::Invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                            )));
                        }
                        std::fs::create_dir_all(source)
                            .map_err(|e| EngineError::io(format!("creating bind source {source}"), e))?;
                    }
                    if matches!(read_only, ReadOnlyDepth::TopOnly | ReadOnlyDepth::ForceRecursive) {
                        self.require(44, "BindOptions.ReadOnlyNonRecursive/ReadOnlyForceRecursive")?;
                    }
                    d.typ = Some(MountType::BIND);
                    d.source = Some(source.clone());
                    d.bind_options = Some(MountBindOptions {
                        propagation: Some(
                            propagation.as_str().parse().unwrap_or(MountBindOptionsPropagationEnum::RPRIVATE),
                        ),
                        non_recursive: (!recursive).then_some(true),
                        read_only_non_recursive: (*read_only == ReadOnlyDepth::TopOnly).then_some(true),
                        read_only_force_recursive: (*read_only == ReadOnlyDepth::ForceRecursive).then_some(true),
                        ..Default::default()
                    });
                }
                MountKind::Volume { name, labels, driver_options, no_copy, .. } => {
                    d.typ = Some(MountType::VOLUME);
                    d.source = name.clone();
                    d.volume_options = Some(MountVolumeOptions {
                        no_copy: Some(*no_copy),
                        labels: (!labels.is_empty()).then(|| labels.clone().into_iter().collect()),
                        driver_config: Some(MountVolumeOptionsDriverConfig {
                            name: Some(skep_api::docker::LOCAL_DRIVER.into()),
                            options: (!driver_options.is_empty()).then(|| driver_options.clone().into_iter().collect()),
                        }),
                        ..Default::default()
                    });
                }
                MountKind::Tmpfs { size_bytes, mode, exec, .. } => {
                    let options = if *exec {
                        self.require(46, "TmpfsOptions.Options")?;
                        Some(vec![vec!["exec".to_string()]])
                    } else {
                        None
                    };
                    d.typ = Some(MountType::TMPFS);
                    d.tmpfs_options = Some(MountTmpfsOptions {
                        size_bytes: size_bytes.map(|s| s as i64),
                        mode: mode.map(i64::from),
                        options,
                    });
                }
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// Limits in Docker's host config (swarmkit's executor: the CPU limit as a CFS quota per 100 ms).
fn apply_limits(h: &mut HostConfig, l: &Limits) {
    if let Some(quota) = l.cpu_quota_us() {
        h.cpu_period = Some(spec::CPU_PERIOD_US as i64);
        h.cpu_quota = Some(quota as i64);
    }
    let some = |n: u64| (n > 0).then_some(n as i64);
    h.memory = some(l.memory_bytes);
    h.memory_reservation = some(l.memory_reservation);
    h.pids_limit = some(l.pids);
}

impl DockerEngine {

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

    /// The spec's `Healthcheck` as Docker's `HealthConfig` (`None`: the image's own, if any, applies). Docker runs
    /// it; [`Engine::watch_health`] follows the result.
    fn health_config(&self, c: &skep_api::docker::ContainerSpec) -> Result<Option<HealthConfig>, EngineError> {
        let Some(o) = c.healthcheck.as_ref().and_then(|v| v.as_object()) else { return Ok(None) };
        // checked here as the managers check it (bounds, forms)
        HealthCheck::from_spec(c.healthcheck.as_ref()).map_err(|e| EngineError::Invalid(e.0))?;
        let get = |name: &str| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).filter(|v| !v.is_null());
        let int = |name: &str| get(name).and_then(|v| v.as_i64()).filter(|n| *n != 0);
        let test = get("Test").and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok()).filter(|t| !t.is_empty());
        if int("StartInterval").is_some() {
            self.require(44, "Healthcheck.StartInterval")?;
        }
        Ok(Some(HealthConfig {
            test,
            interval: int("Interval"),
            timeout: int("Timeout"),
            retries: int("Retries"),
            start_period: int("StartPeriod"),
            start_interval: int("StartInterval"),
        }))
    }

    /// Read-only binds of the task's secret and config files (`use_files`), as Docker binds its own.
    fn file_mounts(&self, task_id: &str) -> Vec<DockerMount> {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id).unwrap_or_default();
        files
            .into_iter()
            .map(|f| DockerMount {
                target: Some(f.target.display().to_string()),
                source: Some(f.source.display().to_string()),
                typ: Some(bollard::models::MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            })
            .collect()
    }

    /// The exit code through the wait API, or by polling when its stream breaks.
    async fn wait_exit(&self, h: &Handle) -> Result<Exit, EngineError> {
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
}

impl Engine for DockerEngine {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn use_files(&self, task_id: &str, files: Vec<TaskFile>) -> Result<(), EngineError> {
        TaskFile::check_all(&files)?;
        let mounts = crate::secrets::shm::write(task_id, &files)?;
        let mut m = self.files.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, f| f.iter().all(|f| f.source.exists())); // tasks refused before they were created
        m.insert(task_id.to_string(), mounts);
        Ok(())
    }

    async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
        spec::check_task_id(&task.id)?;
        spec::check_fields(task, EngineKind::Docker)?;
        let c = &spec::expanded(task, &self.node)?;
        let mut mounts = self.mounts(&spec::mounts(c)?)?;
        mounts.extend(self.file_mounts(&task.id));
        let security = spec::security(c)?;
        let limits = spec::limits(task)?;
        if c.image.is_empty() {
            return Err(EngineError::Invalid("no image: the ContainerSpec has no Image".into()));
        }
        let signal = spec::stop_signal(c)?;
        match self.docker.inspect_image(&c.image).await {
            Ok(_) => {}
            Err(e) if status(&e) == Some(404) => self.pull(&c.image, c.pull_options.as_ref()).await?,
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
        let mut host_config = HostConfig {
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
            // a task on skep networks gets only what the agent plumbs into it after start (its overlay
            // interfaces), and resolves through the embedded DNS the agent serves at 127.0.0.11 inside it
            network_mode: networked.then(|| "none".to_string()),
            dns: networked.then(|| vec!["127.0.0.11".to_string()]),
            dns_options: networked.then(|| vec!["ndots:0".to_string()]),
            mounts: (!mounts.is_empty()).then_some(mounts),
            cap_add: some_vec(&security.capability_add),
            cap_drop: some_vec(&security.capability_drop),
            group_add: some_vec(&security.groups),
            sysctls: (!security.sysctls.is_empty()).then(|| security.sysctls.clone().into_iter().collect()),
            readonly_rootfs: security.read_only.then_some(true),
            log_config: Some(super::docker_logs::log_config(self.log_limits)),
            ..Default::default()
        };
        apply_limits(&mut host_config, &limits);
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
            host_config: Some(host_config),
            healthcheck: self.health_config(c)?,
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(spec::task_name(task)), ..Default::default() };
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(c) => c,
            // Docker refuses a bad mount, capability or sysctl with a 400 whose text says why: keep just the text
            Err(DockerError::DockerResponseServerError { status_code: 400, message }) => {
                return Err(EngineError::Invalid(message))
            }
            Err(e) => return Err(e.into()),
        };
        // Docker drops a limit the kernel cannot apply with only a warning: the task must not run unlimited
        if let Some(w) = created.warnings.iter().find(|w| w.contains("Limitation discarded") || w.contains("discarded")) {
            let _ = self.remove(&task.id).await;
            return Err(EngineError::Invalid(format!("cannot apply the task's resource limits: {w}")));
        }
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

    /// Docker reports a container's health as an event (`health_status: <status>`) when it changes: this follows
    /// those events (one long-lived stream per container) instead of inspecting the container every `POLL`, which
    /// cost dockerd two inspects a second per task on top of the checks themselves. The container is inspected once
    /// for where it is; the stream replays from before that inspect (events older than it are skipped), so no change
    /// falls between the two. A broken stream is opened again the same way.
    async fn watch_health(&self, h: &Handle, _task: &Task, tx: tokio::sync::watch::Sender<Health>) -> bool {
        let mut last = Health::Starting;
        let mut first = true;
        loop {
            let before_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
            let status = match self.docker.inspect_container(&h.id, None).await {
                Ok(c) => c.state.and_then(|s| s.health).and_then(|h| h.status),
                Err(e) if status(&e) == Some(404) => None,
                Err(e) => {
                    tracing::debug!(container = %h.id, error = %e, "docker engine: inspect failed; retrying");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            let now = match health_of(status) {
                Some(now) => now,
                // no check (none in the spec nor the image), or the container is gone: `wait` says what happened
                None if first => return false,
                None => last,
            };
            first = false;
            if now != last {
                last = now;
                tx.send_replace(now);
            }
            let filters = HashMap::from([("container", vec![h.id.clone()]), ("event", vec!["health_status".to_string()])]);
            // the stream replays from the start of that second; what came before the inspect is in its answer
            let since = (before_ns / 1_000_000_000).to_string();
            let opts = bollard::query_parameters::EventsOptionsBuilder::new().since(&since).filters(&filters).build();
            let mut events = self.docker.events(Some(opts));
            while let Some(ev) = events.next().await {
                let Ok(ev) = ev else { break };
                if ev.time_nano.is_some_and(|t| t < before_ns) {
                    continue;
                }
                // `health_status: healthy` (Docker 20.10 and later; older daemons send `health_status:healthy`)
                let word = ev.action.as_deref().and_then(|a| a.strip_prefix("health_status:")).map(str::trim);
                let now = match word {
                    Some("healthy") => Health::Healthy,
                    Some("unhealthy") => Health::Unhealthy,
                    Some("starting") => Health::Starting,
                    _ => continue,
                };
                if now != last {
                    last = now;
                    tx.send_replace(now);
                }
            }
            tracing::debug!(container = %h.id, "docker engine: the health event stream ended; following it again");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        let exit = self.wait_exit(h).await?;
        crate::secrets::shm::remove(&h.task_id); // the container is over: its secrets go
        let Exit::Code(code) = exit else { return Ok(exit) };
        match self.docker.inspect_container(&h.id, None).await {
            Ok(c) if code != 0 && c.state.as_ref().and_then(|s| s.oom_killed) == Some(true) => {
                let limit = c.host_config.and_then(|h| h.memory).unwrap_or(0);
                Ok(Exit::OomKilled { code, memory_limit: u64::try_from(limit).unwrap_or(0) })
            }
            _ => Ok(exit),
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
        crate::secrets::shm::remove(task_id);
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

    async fn read_logs(&self, req: &LogsRequest) -> Result<LogsBatch, EngineError> {
        spec::check_task_id(&req.task_id)?;
        let Some(id) = self.containers_of(&req.task_id).await?.into_iter().next() else {
            return Err(EngineError::NotFound(format!("No such task: {}", req.task_id)));
        };
        super::docker_logs::read(&self.docker, &id, req).await
    }
}
