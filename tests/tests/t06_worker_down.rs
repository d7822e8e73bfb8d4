//! Worker liveness: a worker whose daemon dies is marked Down after the missed-heartbeat bound, and Ready
//! again when it returns.

use anyhow::Result;
use skep_tests::json::{find_by, str_at};
use skep_tests::{require_root_and_netns, Cluster};
use std::time::{Duration, Instant};

/// Heartbeat period 1 s × 3 missed periods, plus slack for the leader's tick and our polling.
const DOWN_BOUND: Duration = Duration::from_secs(10);

#[test]
fn a_killed_worker_is_marked_down_within_ten_seconds_and_ready_after_restart() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    let victim = c.node_id(1)?;
    let other = c.node_id(2)?;

    c.kill(1)?;
    let t0 = Instant::now();
    let status = |n: &[serde_json::Value], id: &str| find_by(n, "ID", id).and_then(|v| str_at(v, "Status")).map(str::to_owned);
    let nodes = c.wait_nodes(0, DOWN_BOUND + Duration::from_secs(10), "the killed worker Down", |n| {
        status(n, &victim).as_deref() == Some("Down")
    })?;
    let elapsed = t0.elapsed();
    eprintln!("worker marked Down after {} ms", elapsed.as_millis());
    assert!(elapsed <= DOWN_BOUND, "marked Down after {elapsed:?}, bound {DOWN_BOUND:?}");
    assert_eq!(status(&nodes, &other).as_deref(), Some("Ready"), "the other worker must stay Ready");

    c.start(1)?;
    let t1 = Instant::now();
    c.wait_nodes(0, Duration::from_secs(30), "the restarted worker Ready", |n| status(n, &victim).as_deref() == Some("Ready"))?;
    eprintln!("worker Ready again {} ms after its daemon answered", t1.elapsed().as_millis());
    c.pass();
    Ok(())
}
