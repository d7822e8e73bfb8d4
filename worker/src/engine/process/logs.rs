//! A task's output on the process engine. The supervisor (`init.rs`) copies the program's stdout and stderr, through
//! pipes, to `<task dir>/logs` as timestamped records in size-bounded segments ([`crate::logs`]); the supervisor
//! outlives the agent, so output is kept while the daemon is down and read after it restarts. What the init steps
//! themselves print (before the program runs) goes to `<task dir>/init.log`.

use crate::engine::EngineError;
use crate::logs::reader;
use skep_api::logs::LogsRequest;
use std::path::Path;

/// The task's log segments, under its task directory.
pub(crate) const LOG_DIR: &str = "logs";
/// The init steps' own output.
pub(crate) const INIT_LOG: &str = "init.log";

/// The last `max_bytes` of the task's output as it printed it (stdout and stderr interleaved as they were read).
pub(crate) fn tail(dir: &Path, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
    let logs = dir.join(LOG_DIR);
    let io = |e| EngineError::io(format!("read {}", logs.display()), e);
    let mut out = Vec::new();
    let mut req = LogsRequest::default();
    loop {
        let b = reader::read(&logs, &req, 1 << 20).map_err(io)?;
        for r in &b.records {
            out.extend_from_slice(&r.line);
            if !r.partial {
                out.push(b'\n');
            }
        }
        if out.len() > max_bytes {
            out.drain(..out.len() - max_bytes);
        }
        if b.at_end || b.past_until {
            return Ok(out);
        }
        req.cursor = Some(b.cursor);
    }
}
