//! A task engine that runs nothing: `prepare` and `start` return at once, `wait` pends until `stop` (or `remove`).
//! It counts what it is "running" so the simulator can see engine-side convergence without asking the managers, and
//! keeps each task's environment so that a rolling update's progress (tasks of the new spec) can be counted too.

use skep_api::docker::Task;
use skep_worker::engine::{Engine, EngineError, Exit, Handle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct FakeEngine {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per started task: flips to true when stopped.
    tasks: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Per started task: its `ContainerSpec.Env` (removed with the task).
    envs: Mutex<HashMap<String, Vec<String>>>,
    running: AtomicUsize,
    started: AtomicUsize,
}

impl FakeEngine {
    /// Tasks started and not stopped.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
    }

    /// Tasks ever started.
    pub fn started(&self) -> usize {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// Tasks started and not stopped whose environment holds `var` (e.g. `ROUND=1`), and those whose does not.
    pub fn running_with_env(&self, var: &str) -> (usize, usize) {
        let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let envs = self.inner.envs.lock().unwrap_or_else(|p| p.into_inner());
        let mut with = (0, 0);
        for id in tasks.iter().filter(|(_, tx)| !*tx.borrow()).map(|(id, _)| id) {
            if envs.get(id).is_some_and(|e| e.iter().any(|v| v == var)) {
                with.0 += 1;
            } else {
                with.1 += 1;
            }
        }
        with
    }

    fn stop_id(&self, id: &str) {
        let tx = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if let Some(tx) = tx {
            if !tx.send_replace(true) {
                self.inner.running.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Engine for FakeEngine {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn prepare(&self, _task: &Task) -> Result<(), EngineError> {
        Ok(())
    }

    async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
        let fresh = {
            let mut t = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
            if t.contains_key(&task.id) {
                false
            } else {
                t.insert(task.id.clone(), watch::channel(false).0);
                true
            }
        };
        if fresh {
            let env = task.spec.container_spec.as_ref().map(|c| c.env.clone()).unwrap_or_default();
            self.inner.envs.lock().unwrap_or_else(|p| p.into_inner()).insert(task.id.clone(), env);
            self.inner.running.fetch_add(1, Ordering::Relaxed);
            self.inner.started.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Handle { task_id: task.id.clone(), engine: "fake".into(), id: format!("fake-{}", task.id), pid: 0 })
    }

    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        let rx = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(&h.task_id).map(|tx| tx.subscribe());
        if let Some(mut rx) = rx {
            // Err: the entry was removed, which also ends the "process"
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
        Ok(Exit::Code(0))
    }

    async fn stop(&self, h: &Handle, _task: &Task) -> Result<(), EngineError> {
        self.stop_id(&h.task_id);
        Ok(())
    }

    async fn remove(&self, task_id: &str) -> Result<(), EngineError> {
        self.stop_id(task_id);
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        self.inner.envs.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        Ok(())
    }

    async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
        hs.iter().map(|h| (h.clone(), false)).collect()
    }

    async fn list(&self) -> Result<Vec<Handle>, EngineError> {
        Ok(vec![])
    }

    async fn logs(&self, _task_id: &str, _max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        Ok(vec![])
    }
    async fn read_logs(&self, req: &skep_api::logs::LogsRequest) -> Result<skep_api::logs::LogsBatch, EngineError> {
        Err(EngineError::NotFound(format!("no logs of {}: a simulated task", req.task_id)))
    }
}
