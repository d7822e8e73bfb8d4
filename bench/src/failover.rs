//! Leader failover: per trial, wait until the cluster is healthy, find the leader, `SIGKILL` it, then start a write
//! to a surviving member every [`STAGGER`] (each on a new connection, bounded by [`ATTEMPT_TIMEOUT`]) until the
//! first 200; the figure is the time from the kill to that reply. Then the killed member is restarted on its data and the cluster must be
//! healthy again before the next trial.
//!
//! In the same trial, a client writes once through the other survivor right after the kill, as a user's command
//! would (skep: a Docker API write, `POST /configs/create`, which reads then proposes like `docker config create`;
//! etcd: the same put as above), and waits for the answer up to [`TRIAL_LIMIT`]. Its figure is the kill → its
//! acknowledgement. A refusal is counted, and the write sent again 20 ms later (so a system that refuses at once
//! and one that holds the write until a leader is elected both get a figure); for skep, any refusal is a failure of
//! its goal (a write is held until the new leader takes it).

use crate::cluster::{Cluster, Value, MEMBERS};
use crate::http::{Conn, Endpoint, Req};
use std::time::Duration;
use tokio::time::Instant;

/// Bound of one write attempt (connect + request): a write that hangs, e.g. forwarded to the dead leader, is
/// given up after this; later attempts have started meanwhile.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// A new attempt starts this often: the resolution of the figure.
pub const STAGGER: Duration = Duration::from_millis(20);
/// At most this many attempts in flight (ATTEMPT_TIMEOUT / STAGGER = 50 would be the steady state).
const MAX_IN_FLIGHT: usize = 64;
/// A trial without an acknowledged write after this is a failure.
pub const TRIAL_LIMIT: Duration = Duration::from_secs(30);
/// Bound for the cluster to become healthy again after the restart.
const HEAL_LIMIT: Duration = Duration::from_secs(60);
/// Quiet time after healing, so the restarted member has caught up before the next kill.
const SETTLE: Duration = Duration::from_secs(1);

/// One trial's outcome.
#[derive(Debug)]
pub struct Trial {
    pub killed: usize,
    pub target: usize,
    /// Kill → first 200, or `None` when the trial hit [`TRIAL_LIMIT`].
    pub recovery: Option<Duration>,
    /// Failed attempts before the first 200, and the last failure message.
    pub attempts_failed: u32,
    pub last_error: Option<String>,
    /// The one client write through the other survivor: kill → acknowledged (`None`: not within [`TRIAL_LIMIT`]).
    pub client_write: Option<Duration>,
    /// Its refusals before that, and the first refusal's message.
    pub client_refusals: u32,
    pub client_first_refusal: Option<String>,
}

/// Pause between a refused client write and the next copy.
const RESEND_PAUSE: Duration = Duration::from_millis(20);

/// The one client write of a trial (see the module docs): `(kill → 2xx, refusals, first refusal)`.
async fn client_write(ep: Endpoint, req: Req, t0: Instant) -> (Option<Duration>, u32, Option<String>) {
    let mut refusals = 0;
    let mut first = None;
    while t0.elapsed() < TRIAL_LIMIT {
        let left = TRIAL_LIMIT.saturating_sub(t0.elapsed());
        let r = tokio::time::timeout(left, async {
            let mut c = Conn::connect(&ep).await?;
            c.send(&req).await
        })
        .await;
        let e = match r {
            Ok(Ok((s, _))) if (200..300).contains(&s) => return (Some(t0.elapsed()), refusals, first),
            Ok(Ok((s, body))) => format!("HTTP {s}: {}", String::from_utf8_lossy(&body).trim()),
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => break,
        };
        refusals += 1;
        first.get_or_insert(format!("after {:.3} s: {}", t0.elapsed().as_secs_f64(), truncate(&e, 160)));
        tokio::time::sleep(RESEND_PAUSE).await;
    }
    (None, refusals, first)
}

/// Runs `trials` trials on `cluster`; `progress` gets a line per trial.
pub async fn run(cluster: &mut Cluster, trials: usize, mut progress: impl FnMut(&str)) -> anyhow::Result<Vec<Trial>> {
    let value = Value::new(256);
    let mut out = Vec::new();
    for t in 0..trials {
        cluster.wait_healthy(HEAL_LIMIT).await?;
        tokio::time::sleep(SETTLE).await;
        let leader = cluster.leader().await?;
        let target = (leader + 1) % MEMBERS;
        let ep = cluster.endpoint(target);
        let other = (leader + 2) % MEMBERS;
        let client_req = cluster.client_write_req(&format!("failover-client-{t}"), &value);
        let t0 = Instant::now();
        cluster.kill(leader).await?;
        let client = tokio::spawn(client_write(cluster.endpoint(other), client_req, t0));
        let mut trial = Trial {
            killed: leader,
            target,
            recovery: None,
            attempts_failed: 0,
            last_error: None,
            client_write: None,
            client_refusals: 0,
            client_first_refusal: None,
        };
        // A new attempt every STAGGER, each on its own connection, so neither a fast "no leader" error nor a
        // write held until the election ends limits the resolution: both systems are sampled every STAGGER.
        let mut attempts = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(STAGGER);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let limit = tokio::time::sleep_until(t0 + TRIAL_LIMIT);
        tokio::pin!(limit);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick(), if attempts.len() < MAX_IN_FLIGHT => {
                    let req = cluster.put_req(&format!("failover-{t}-{seq}"), &value);
                    seq += 1;
                    let ep = ep.clone();
                    attempts.spawn(async move {
                        let r = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
                            let mut c = Conn::connect(&ep).await?;
                            c.send(&req).await
                        })
                        .await;
                        match r {
                            Ok(Ok((200, _))) => Ok(Instant::now()),
                            Ok(Ok((s, body))) => Err(format!("HTTP {s}: {}", String::from_utf8_lossy(&body).trim())),
                            Ok(Err(e)) => Err(format!("{e:#}")),
                            Err(_) => Err(format!("attempt timed out after {ATTEMPT_TIMEOUT:?}")),
                        }
                    });
                }
                Some(r) = attempts.join_next(), if !attempts.is_empty() => match r {
                    Ok(Ok(at)) => {
                        trial.recovery = Some(at - t0);
                        break;
                    }
                    Ok(Err(e)) => {
                        trial.attempts_failed += 1;
                        trial.last_error = Some(e);
                    }
                    Err(e) => anyhow::bail!("attempt task failed: {e}"),
                },
                _ = &mut limit => break,
            }
        }
        attempts.abort_all();
        // bounded by TRIAL_LIMIT from the kill
        (trial.client_write, trial.client_refusals, trial.client_first_refusal) = client.await?;
        let secs = |d: Option<Duration>| d.map(|d| format!("{:.3} s", d.as_secs_f64())).unwrap_or_else(|| "NO WRITE".into());
        progress(&format!(
            "{} trial {}/{}: killed member {}, wrote via {}: {} ({} failed attempts{}); one client write via {}: {} \
             ({} refused{})",
            cluster.name(),
            t + 1,
            trials,
            leader + 1,
            target + 1,
            secs(trial.recovery),
            trial.attempts_failed,
            trial.last_error.as_deref().map(|e| format!(", last: {}", truncate(e, 120))).unwrap_or_default(),
            other + 1,
            secs(trial.client_write),
            trial.client_refusals,
            trial.client_first_refusal.as_deref().map(|e| format!(", first: {e}")).unwrap_or_default(),
        ));
        out.push(trial);
        cluster.restart(leader).await?;
    }
    cluster.wait_healthy(HEAL_LIMIT).await?;
    Ok(out)
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
