//! Task logs on this node: serving its own tasks' records to managers ([`EngineLogs`], the transport's
//! `TaskLogs` call), and, on a manager, reading any task's records from the node that ran it (locally for this
//! node's own tasks, over the node transport otherwise) for the API's `/services/{id}/logs` and `/tasks/{id}/logs`.

use super::NodeHandle;
use crate::error::{ApiError, ApiResult};
use skep_api::logs::{LogsBatch, LogsRequest};
use skep_api::wire::{ErrorKind, Request, Response, WireError};
use skep_manager::control::logs::{self as control_logs, LogTarget};
use skep_manager::rpc::TaskLogSource;
use skep_worker::engine::{AnyEngine, Engine as _, EngineError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// This node's engine as the source of its tasks' logs.
pub(crate) struct EngineLogs(pub(crate) Arc<AnyEngine>);

impl TaskLogSource for EngineLogs {
    fn read(&self, req: LogsRequest) -> Pin<Box<dyn Future<Output = Result<LogsBatch, WireError>> + Send + '_>> {
        Box::pin(async move {
            self.0.read_logs(&req).await.map_err(|e| match e {
                EngineError::NotFound(m) => WireError::new(ErrorKind::NotFound, m),
                EngineError::Invalid(m) => WireError::new(ErrorKind::InvalidArgument, m),
                e => WireError::new(ErrorKind::Internal, e.to_string()),
            })
        })
    }
}

/// Why a node's records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    /// The node has no logs of the task (never started there, or removed since): nothing to show.
    #[error("no logs of this task on its node")]
    NotFound,
    /// The node could not be asked, or failed: the reader shows this once for the task.
    #[error("{0}")]
    Failed(String),
}

/// Bound on one call: the node's long poll plus the way there and back.
const CALL_BOUND: Duration = Duration::from_secs(4);

impl NodeHandle {
    /// `/services/{id}/logs`: the service's ID, whether it has a TTY, and the tasks to read.
    pub async fn service_log_targets(&self, reference: &str) -> ApiResult<(String, bool, Vec<LogTarget>)> {
        let m = self.require_manager().await?;
        Ok(m.query(|st| control_logs::service_targets(st, reference)).await?)
    }

    /// `/tasks/{id}/logs`: whether the task has a TTY, and where to read it (`None`: it never ran).
    pub async fn task_log_target(&self, reference: &str) -> ApiResult<(bool, Option<LogTarget>)> {
        let m = self.require_manager().await?;
        Ok(m.query(|st| control_logs::task_target(st, reference)).await?)
    }

    /// One batch of `target`'s records from its node.
    pub async fn read_task_logs(&self, target: &LogTarget, req: LogsRequest) -> Result<LogsBatch, LogReadError> {
        let (own, endpoint, local) = {
            let running = self.inner.running.read().await;
            let Some(r) = running.as_ref() else {
                return Err(LogReadError::Failed(ApiError::unavailable(super::msg::NOT_IN_SWARM).to_string()));
            };
            (r.state.node_id == target.node_id, r.endpoint.clone(), r.logs.clone())
        };
        let answer = if own {
            local.read(req).await
        } else {
            let addr = target
                .node_addr
                .parse()
                .map_err(|_| LogReadError::Failed(format!("node {} has no cluster address", target.node_id)))?;
            let deadline = tokio::time::Instant::now() + CALL_BOUND;
            match endpoint.call_until::<Request, Response>(addr, skep_pki::NODE_SAN, &Request::TaskLogs(req), deadline).await {
                Ok(Response::TaskLogs(b)) => Ok(b),
                Ok(Response::Error(e)) => Err(e),
                Ok(other) => Err(WireError::new(ErrorKind::Internal, format!("unexpected answer {other:?}"))),
                Err(e) => return Err(LogReadError::Failed(format!("node {} did not answer: {e}", target.node_id))),
            }
        };
        answer.map_err(|e| match e.kind {
            ErrorKind::NotFound => LogReadError::NotFound,
            _ => LogReadError::Failed(e.message),
        })
    }
}
