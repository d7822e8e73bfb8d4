//! The shape of a reconcile round's proposals: the scheduler's placements folded into the orchestrators' changes,
//! and big task writes split into Raft-sized chunks.
//!
//! A round's new tasks are placed in the same round (the runtime schedules on a scratch copy of the state with the
//! orchestrators' changes applied), so each task is proposed once, already assigned: [`merge_placements`]. Then
//! [`split`] cuts every `PutTasks` to at most [`CHUNK`] tasks. Pure; `runtime/reconcile.rs` proposes the result.

use crate::store::Op;
use skep_api::docker::{Task, TaskState};

/// Tasks per proposal: keeps Raft entries around 100-200 KB, so a batch of them replicates within a heartbeat.
pub const CHUNK: usize = 100;

/// Bytes of task JSON per proposal: tasks of a large spec (up to the API's 1 MiB) fill a chunk long before
/// [`CHUNK`] of them, and a chunk stays near the entries' target size (`crate::raft::TARGET_ENTRY_BYTES`).
pub const CHUNK_BYTES: usize = crate::raft::TARGET_ENTRY_BYTES;

/// The length of `v`'s JSON, without keeping it.
fn json_len<T: serde::Serialize>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The orchestrators' ops with the scheduler's placements folded in: a task both touched is proposed once, in the
/// scheduler's (later) version; the scheduler's other changes follow.
pub fn merge_placements(mut ops: Vec<Op>, placed: Vec<Op>) -> Vec<Op> {
    let mut later: std::collections::HashMap<String, Task> = std::collections::HashMap::new();
    for op in placed {
        if let Op::PutTasks { tasks } = op {
            later.extend(tasks.into_iter().map(|t| (t.id.clone(), t)));
        }
    }
    for op in &mut ops {
        if let Op::PutTasks { tasks } = op {
            for t in tasks.iter_mut() {
                if let Some(l) = later.remove(&t.id) {
                    *t = l;
                }
            }
        }
    }
    if !later.is_empty() {
        let mut rest: Vec<Task> = later.into_values().collect();
        rest.sort_by(|a, b| a.id.cmp(&b.id));
        ops.push(Op::PutTasks { tasks: rest });
    }
    ops
}

/// Split big `PutTasks` into chunks of at most [`CHUNK`] tasks and [`CHUNK_BYTES`] of JSON.
///
/// When nothing in the op is being stopped (a create or a scale up), its tasks are grouped by node first, so that a
/// node's new tasks come in one chunk: the tasks of one service are spread over every node, and in slot order each
/// chunk touched a hundred nodes, so every node was sent its growing set once per chunk (about ten times for ten
/// tasks). With stops in the op the order is kept, because it may be the order of a stop-first update.
pub fn split(ops: Vec<Op>) -> Vec<Op> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::PutTasks { mut tasks } if tasks.len() > 1 => {
                if tasks.len() > CHUNK && tasks.iter().all(|t| t.desired_state <= TaskState::Running) {
                    tasks.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                }
                let mut chunk: Vec<Task> = Vec::new();
                let mut bytes = 0;
                for t in tasks {
                    let n = json_len(&t);
                    if !chunk.is_empty() && (chunk.len() == CHUNK || bytes + n > CHUNK_BYTES) {
                        out.push(Op::PutTasks { tasks: std::mem::take(&mut chunk) });
                        bytes = 0;
                    }
                    bytes += n;
                    chunk.push(t);
                }
                if !chunk.is_empty() {
                    out.push(Op::PutTasks { tasks: chunk });
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::task;

    #[test]
    fn tasks_of_a_big_spec_are_split_by_bytes() {
        let mut big = task("t", "n1", TaskState::New, TaskState::Running);
        big.spec.container_spec.get_or_insert_with(Default::default).args = vec!["x".repeat(1024 * 1024)];
        let tasks: Vec<Task> = (0..9).map(|i| Task { id: format!("t{i}"), ..big.clone() }).collect();
        let ops = split(vec![Op::PutTasks { tasks }]);
        assert!(ops.len() >= 3, "{} chunks", ops.len());
        for op in &ops {
            let Op::PutTasks { tasks } = op else { panic!() };
            assert!(json_len(tasks) <= CHUNK_BYTES + 1024, "{}", json_len(tasks));
        }
        assert_eq!(ops.iter().map(|o| match o { Op::PutTasks { tasks } => tasks.len(), _ => 0 }).sum::<usize>(), 9);
    }

    #[test]
    fn big_put_tasks_are_split_in_order() {
        let tasks: Vec<Task> = (0..250).map(|i| task(&format!("t{i:03}"), "n1", TaskState::New, TaskState::Running)).collect();
        let ops = split(vec![Op::PutTasks { tasks }]);
        let sizes: Vec<usize> = ops.iter().map(|o| match o { Op::PutTasks { tasks } => tasks.len(), _ => 0 }).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let Op::PutTasks { tasks } = &ops[2] else { panic!() };
        assert_eq!(tasks[0].id, "t200");
    }

    #[test]
    fn new_tasks_are_chunked_by_node_but_an_op_with_stops_keeps_its_order() {
        let node = |i: usize| format!("n{}", i % 25);
        let tasks: Vec<Task> =
            (0..250).map(|i| task(&format!("t{i:03}"), &node(i), TaskState::Assigned, TaskState::Running)).collect();
        let ops = split(vec![Op::PutTasks { tasks: tasks.clone() }]);
        // 25 nodes x 10 tasks: every node's tasks sit in one chunk
        let mut chunks_of: std::collections::HashMap<String, std::collections::HashSet<usize>> = Default::default();
        for (i, op) in ops.iter().enumerate() {
            let Op::PutTasks { tasks } = op else { panic!() };
            for t in tasks {
                chunks_of.entry(t.node_id.clone()).or_default().insert(i);
            }
        }
        assert_eq!(chunks_of.len(), 25);
        assert!(chunks_of.values().all(|c| c.len() == 1), "{chunks_of:?}");
        let mut with_stop = tasks;
        with_stop[0].desired_state = TaskState::Shutdown;
        let ops = split(vec![Op::PutTasks { tasks: with_stop }]);
        let Op::PutTasks { tasks } = &ops[0] else { panic!() };
        assert_eq!(tasks[1].id, "t001");
    }

    #[test]
    fn a_task_both_touched_goes_out_once_in_the_schedulers_version() {
        let new = task("a", "", TaskState::Pending, TaskState::Running);
        let stop = task("b", "n1", TaskState::Running, TaskState::Shutdown);
        let ops = vec![Op::PutTasks { tasks: vec![new, stop.clone()] }, Op::DeleteTasks { ids: vec!["z".into()] }];
        let placed = task("a", "n2", TaskState::Assigned, TaskState::Running);
        let reason = task("c", "", TaskState::Pending, TaskState::Running); // an older pending task's new reason
        let merged = merge_placements(ops, vec![Op::PutTasks { tasks: vec![reason.clone(), placed.clone()] }]);
        assert_eq!(
            merged,
            vec![
                Op::PutTasks { tasks: vec![placed, stop] },
                Op::DeleteTasks { ids: vec!["z".into()] },
                Op::PutTasks { tasks: vec![reason] },
            ]
        );
    }
}
