//! A service's `ContainerSpec.Healthcheck` (Docker's `HealthConfig`), read into a typed check with Docker's defaults,
//! and the pure state machine that turns probe results into a health status the way Docker's daemon does
//! (moby `daemon/health.go`: consecutive failures count only after the start period; during it the checks run every
//! `StartInterval`; the first success ends it).
//!
//! The spec keeps the field as JSON (clients send it in any case spelling, Go's decoder matches keys
//! case-insensitively), so [`HealthCheck::from_spec`] reads it the same way and checks it: durations 0 (inherit) or at
//! least 1 ms, as the daemon requires, and at most [`MAX_DURATION_NS`] (skep's bound), retries not negative.

use super::SECOND_NS;
use serde_json::Value;

/// Docker's defaults (moby `daemon/health.go`).
pub const DEFAULT_INTERVAL_NS: i64 = 30 * SECOND_NS;
/// See [`DEFAULT_INTERVAL_NS`].
pub const DEFAULT_TIMEOUT_NS: i64 = 30 * SECOND_NS;
/// See [`DEFAULT_INTERVAL_NS`].
pub const DEFAULT_START_INTERVAL_NS: i64 = 5 * SECOND_NS;
/// See [`DEFAULT_INTERVAL_NS`].
pub const DEFAULT_RETRIES: u64 = 3;
/// The shortest duration Docker accepts (`containertypes.MinimumDuration`).
pub const MIN_DURATION_NS: i64 = 1_000_000;
/// skep's bound on every healthcheck duration (a day): longer is a typo, and would overflow time arithmetic if absurd.
pub const MAX_DURATION_NS: i64 = 24 * 3600 * SECOND_NS;
/// skep's bound on `Retries`.
pub const MAX_RETRIES: i64 = 10_000;
/// skep's bound on the command's total length.
pub const MAX_TEST_BYTES: usize = 64 << 10;

/// What the check runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthTest {
    /// `["CMD", prog, args...]`: the program directly.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", command]`: through `/bin/sh -c`.
    Shell(String),
}

impl HealthTest {
    /// The argument vector to run.
    pub fn argv(&self) -> Vec<String> {
        match self {
            HealthTest::Cmd(v) => v.clone(),
            HealthTest::Shell(c) => vec!["/bin/sh".into(), "-c".into(), c.clone()],
        }
    }
}

/// A check with every default filled in (durations in nanoseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The command.
    pub test: HealthTest,
    /// Between checks once started.
    pub interval_ns: i64,
    /// A check running longer fails.
    pub timeout_ns: i64,
    /// Failures in this time after the start do not count.
    pub start_period_ns: i64,
    /// Between checks during the start period.
    pub start_interval_ns: i64,
    /// Consecutive failures that make the task unhealthy.
    pub retries: u64,
}

/// A healthcheck the daemon would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HealthError(pub String);

fn field<'a>(o: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).filter(|v| !v.is_null())
}

fn duration(o: &serde_json::Map<String, Value>, name: &str) -> Result<i64, HealthError> {
    let Some(v) = field(o, name) else { return Ok(0) };
    let n = v.as_i64().ok_or_else(|| HealthError(format!("{name} in Healthcheck must be an integer of nanoseconds")))?;
    if n < 0 {
        return Err(HealthError(format!("{name} in Healthcheck cannot be negative")));
    }
    if n != 0 && n < MIN_DURATION_NS {
        return Err(HealthError(format!("{name} in Healthcheck cannot be less than 1ms")));
    }
    if n > MAX_DURATION_NS {
        return Err(HealthError(format!("{name} in Healthcheck cannot be more than 24h")));
    }
    Ok(n)
}

impl HealthCheck {
    /// The check a spec asks for: `None` when it has none, inherits the image's (`Test` empty) or disables it
    /// (`["NONE"]`); an error for what Docker's daemon refuses, or skep's bounds.
    pub fn from_spec(v: Option<&Value>) -> Result<Option<HealthCheck>, HealthError> {
        let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
        let o = v.as_object().ok_or_else(|| HealthError("Healthcheck must be an object".into()))?;
        let test: Vec<String> = match field(o, "Test") {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| HealthError("Test in Healthcheck must be a list of strings".into()))?,
            Some(_) => return Err(HealthError("Test in Healthcheck must be a list of strings".into())),
        };
        if test.iter().map(String::len).sum::<usize>() > MAX_TEST_BYTES {
            return Err(HealthError(format!("Test in Healthcheck is longer than {MAX_TEST_BYTES} bytes")));
        }
        let interval = duration(o, "Interval")?;
        let timeout = duration(o, "Timeout")?;
        let start_period = duration(o, "StartPeriod")?;
        let start_interval = duration(o, "StartInterval")?;
        let retries = match field(o, "Retries") {
            None => 0,
            Some(v) => v.as_i64().ok_or_else(|| HealthError("Retries in Healthcheck must be an integer".into()))?,
        };
        if retries < 0 {
            return Err(HealthError("Retries in Healthcheck cannot be negative".into()));
        }
        if retries > MAX_RETRIES {
            return Err(HealthError(format!("Retries in Healthcheck cannot be more than {MAX_RETRIES}")));
        }
        let test = match test.first().map(String::as_str) {
            None => return Ok(None),
            Some("NONE") if test.len() == 1 => return Ok(None),
            Some("CMD") if test.len() >= 2 && !test[1].is_empty() => HealthTest::Cmd(test[1..].to_vec()),
            Some("CMD-SHELL") if test.len() == 2 && !test[1].trim().is_empty() => HealthTest::Shell(test[1].clone()),
            Some(k @ ("NONE" | "CMD" | "CMD-SHELL")) => {
                return Err(HealthError(format!("Test in Healthcheck: {k} with the wrong number of arguments")))
            }
            Some(other) => return Err(HealthError(format!("Test in Healthcheck: unknown type {other:?} (CMD, CMD-SHELL or NONE)"))),
        };
        let or = |v: i64, d: i64| if v == 0 { d } else { v };
        Ok(Some(HealthCheck {
            test,
            interval_ns: or(interval, DEFAULT_INTERVAL_NS),
            timeout_ns: or(timeout, DEFAULT_TIMEOUT_NS),
            start_period_ns: start_period,
            start_interval_ns: or(start_interval, DEFAULT_START_INTERVAL_NS),
            retries: if retries == 0 { DEFAULT_RETRIES } else { retries as u64 },
        }))
    }
}

/// A task's health, as Docker names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not healthy yet (no success, not enough failures).
    Starting,
    /// The last check passed.
    Healthy,
    /// `Retries` consecutive checks failed after the start period.
    Unhealthy,
}

/// Docker's health state machine for one task, fed probe results (pure; times in nanoseconds since the task started).
#[derive(Clone, Debug)]
pub struct HealthMonitor {
    check: HealthCheck,
    status: Health,
    failing: u64,
    /// The start period ended early (a success).
    started: bool,
}

impl HealthMonitor {
    /// A monitor for a task that has just started.
    pub fn new(check: HealthCheck) -> HealthMonitor {
        HealthMonitor { check, status: Health::Starting, failing: 0, started: false }
    }

    /// The current status.
    pub fn status(&self) -> Health {
        self.status
    }

    /// The check.
    pub fn check(&self) -> &HealthCheck {
        &self.check
    }

    fn in_start_period(&self, at_ns: i64) -> bool {
        !self.started && at_ns < self.check.start_period_ns
    }

    /// How long to wait before the next probe, `at_ns` after the start (the start interval during the start period).
    pub fn next_delay_ns(&self, at_ns: i64) -> i64 {
        if self.in_start_period(at_ns) {
            self.check.start_interval_ns
        } else {
            self.check.interval_ns
        }
    }

    /// Record a probe that began `at_ns` after the start; `passed` is exit code 0 within the timeout.
    pub fn record(&mut self, at_ns: i64, passed: bool) -> Health {
        if passed {
            self.failing = 0;
            self.started = true;
            self.status = Health::Healthy;
        } else if !self.in_start_period(at_ns) {
            self.failing += 1;
            if self.failing >= self.check.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Option<HealthCheck>, HealthError> {
        HealthCheck::from_spec(Some(&v))
    }

    #[test]
    fn the_forms_of_test_and_dockers_defaults() {
        let c = parse(json!({"Test": ["CMD", "true", "x"]})).unwrap().unwrap();
        assert_eq!(c.test.argv(), ["true", "x"]);
        assert_eq!((c.interval_ns, c.timeout_ns, c.start_period_ns, c.retries), (30 * SECOND_NS, 30 * SECOND_NS, 0, 3));
        let c = parse(json!({"test": ["CMD-SHELL", "exit 1"], "interval": 2_000_000_000i64, "RETRIES": 5})).unwrap().unwrap();
        assert_eq!(c.test.argv(), ["/bin/sh", "-c", "exit 1"]);
        assert_eq!((c.interval_ns, c.retries), (2 * SECOND_NS, 5));
        assert_eq!(parse(json!({"Test": ["NONE"]})).unwrap(), None);
        assert_eq!(parse(json!({"Test": []})).unwrap(), None);
        assert_eq!(parse(json!({})).unwrap(), None);
        assert_eq!(HealthCheck::from_spec(None).unwrap(), None);
    }

    #[test]
    fn bad_checks_are_refused_with_the_daemons_words() {
        let cases = [
            (json!({"Test": ["CMD", "true"], "Interval": -1}), "Interval in Healthcheck cannot be negative"),
            (json!({"Test": ["CMD", "true"], "Timeout": 5}), "Timeout in Healthcheck cannot be less than 1ms"),
            (json!({"Test": ["CMD", "true"], "StartPeriod": MAX_DURATION_NS + 1}), "StartPeriod in Healthcheck cannot be more than 24h"),
            (json!({"Test": ["CMD", "true"], "Retries": -1}), "Retries in Healthcheck cannot be negative"),
            (json!({"Test": ["CMD"]}), "Test in Healthcheck: CMD with the wrong number of arguments"),
            (json!({"Test": ["CMD-SHELL", "a", "b"]}), "Test in Healthcheck: CMD-SHELL with the wrong number of arguments"),
            (json!({"Test": ["RUN", "x"]}), "Test in Healthcheck: unknown type \"RUN\" (CMD, CMD-SHELL or NONE)"),
            (json!({"Test": "true"}), "Test in Healthcheck must be a list of strings"),
        ];
        for (v, want) in cases {
            assert_eq!(parse(v).unwrap_err().0, want);
        }
    }

    fn check(retries: u64, start_period_s: i64) -> HealthCheck {
        HealthCheck {
            test: HealthTest::Cmd(vec!["true".into()]),
            interval_ns: SECOND_NS,
            timeout_ns: SECOND_NS,
            start_period_ns: start_period_s * SECOND_NS,
            start_interval_ns: SECOND_NS / 2,
            retries,
        }
    }

    #[test]
    fn retries_consecutive_failures_make_a_task_unhealthy_and_a_success_resets_them() {
        let mut m = HealthMonitor::new(check(3, 0));
        assert_eq!(m.record(SECOND_NS, false), Health::Starting);
        assert_eq!(m.record(2 * SECOND_NS, false), Health::Starting);
        assert_eq!(m.record(3 * SECOND_NS, true), Health::Healthy);
        assert_eq!(m.record(4 * SECOND_NS, false), Health::Healthy);
        assert_eq!(m.record(5 * SECOND_NS, false), Health::Healthy);
        assert_eq!(m.record(6 * SECOND_NS, false), Health::Unhealthy);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_and_it_probes_at_the_start_interval() {
        let mut m = HealthMonitor::new(check(1, 10));
        assert_eq!(m.next_delay_ns(0), SECOND_NS / 2);
        for i in 0..5 {
            assert_eq!(m.record(i * SECOND_NS, false), Health::Starting);
        }
        assert_eq!(m.record(11 * SECOND_NS, false), Health::Unhealthy);
        assert_eq!(m.next_delay_ns(11 * SECOND_NS), SECOND_NS);
        // a success ends the start period early: the next failure counts
        let mut m = HealthMonitor::new(check(1, 10));
        m.record(SECOND_NS, true);
        assert_eq!(m.next_delay_ns(2 * SECOND_NS), SECOND_NS);
        assert_eq!(m.record(2 * SECOND_NS, false), Health::Unhealthy);
    }
}
