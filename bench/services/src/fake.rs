//! A task engine that runs nothing: `prepare` and `start` return at once, `wait` pends until `stop` (or `remove`).
//! It counts what it is "running" so the simulator can see engine-side convergence without asking the managers.

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
}
