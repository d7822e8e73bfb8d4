//! Bounded waiting. Every wait in these tests has a deadline *and* a maximum number of tries, and its
//! error names what it waited for and what it saw last, so a failure reads as a sentence.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Default pause between two tries of [`wait_until`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);

/// Calls `probe` until it returns `Ok`, every [`DEFAULT_INTERVAL`], for at most `timeout`.
///
/// `probe` returns `Err(observed)` while the condition does not hold yet; `observed` (often an
/// `anyhow::Error` built with `ensure!`/`bail!`) describes what it saw and ends up in the final error:
/// `timed out after 10.0s (50 tries) waiting for <what>; last observed: <observed>`.
pub fn wait_until<T, E: Display>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Result<T, E>,
) -> anyhow::Result<T> {
    wait_until_every(what, timeout, DEFAULT_INTERVAL, probe)
}

/// [`wait_until`] with an explicit pause between tries.
///
/// The number of tries is capped at `timeout / interval + 2` besides the deadline, so a probe that returns
/// instantly and a probe that blocks are both bounded. A single probe is not interrupted: keep probes
/// bounded themselves (the harness's commands all have time limits).
pub fn wait_until_every<T, E: Display>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let max_tries = (timeout.as_millis() / interval.as_millis().max(1)) as u64 + 2;
    let mut last = String::from("(never probed)");
    let mut tries = 0u64;
    while tries < max_tries {
        tries += 1;
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() >= timeout {
            break;
        }
        let left = timeout.saturating_sub(start.elapsed());
        std::thread::sleep(interval.min(left));
    }
    anyhow::bail!(
        "timed out after {:.1}s ({tries} tries) waiting for {what}; last observed: {last}",
        start.elapsed().as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_wait_and_the_last_value() {
        let mut n = 0;
        let err = wait_until_every("n to reach 100", Duration::from_millis(50), Duration::from_millis(10), || {
            n += 1;
            Err::<(), _>(format!("n = {n}"))
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("waiting for n to reach 100"), "{err}");
        assert!(err.contains("last observed: n = "), "{err}");
        assert!(n <= 7, "tries are capped, got {n}");
    }

    #[test]
    fn returns_the_first_ok() {
        let mut n = 0;
        let v = wait_until_every("n = 3", Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            if n == 3 { Ok(n) } else { Err("not yet") }
        })
        .unwrap();
        assert_eq!(v, 3);
    }
}
