//! The rolling updater's decisions, swarmkit's semantics (moby/swarmkit `manager/orchestrator/update/updater.go`),
//! made from the store alone so that a new leader carries on an update where the old one was.
//!
//! swarmkit's updater is a goroutine per update holding its progress in memory (which tasks it made, when each came
//! up); skep's orchestrator is a pure function run on every store change and on a tick, so the progress is read back
//! from what the store keeps anyway:
//! - the update's phase and start time are the service's `UpdateStatus`;
//! - the tasks an update made are the service's tasks made from the current template since `UpdateStatus.StartedAt`;
//! - when each came up is the store's `running_at` (when it first reported `running`; with a healthcheck that is
//!   when it became healthy).
//!
//! From these, each round: a slot is *busy* while its new task is not yet running, and for `Delay` after it came up
//! or ended (swarmkit's worker waits `Delay` after each slot); at most `Parallelism` slots are busy (0: all at once).
//! A new task that ends on its own (failed, rejected, complete) before it ran, or within `Monitor` after it came up,
//! is a failure; when failures exceed `MaxFailureRatio` of the service's slots, `FailureAction` applies: `pause`
//! (state `paused`, or `rollback_paused` during a rollback), `rollback` (the previous spec becomes the spec, state
//! `rollback_started`; a rollback is never rolled back, it pauses) or `continue`. An update completes once no slot is
//! out of date, every new task came up, and `Monitor` has passed since the last one did. During a rollback the
//! spec's `RollbackConfig` drives all of this instead of its `UpdateConfig`.
//!
//! Everything here is pure: facts in, a [`Decision`] out; [`super::reconcile`] gathers the facts and carries the
//! decision out.

use skep_api::docker::{Service, UpdateConfig, UpdateStatus, SECOND_NS};

/// swarmkit's default `Monitor` (5 s), for an `UpdateConfig` that leaves it 0.
pub const DEFAULT_MONITOR_NS: i64 = 5 * SECOND_NS;

/// Where an update is (`UpdateStatus.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No update has started since the last spec change.
    Idle,
    /// `updating`.
    Updating,
    /// `paused`: nothing more is updated until the next update of the service.
    Paused,
    /// `completed`.
    Completed,
    /// `rollback_started`.
    RollbackStarted,
    /// `rollback_paused`.
    RollbackPaused,
    /// `rollback_completed`.
    RollbackCompleted,
}

impl Phase {
    /// The phase a service's `UpdateStatus` says (an unknown word reads as idle).
    pub fn of(svc: &Service) -> Phase {
        match svc.update_status.as_ref().map(|u| u.state.as_str()) {
            Some("updating") => Phase::Updating,
            Some("paused") => Phase::Paused,
            Some("completed") => Phase::Completed,
            Some("rollback_started") => Phase::RollbackStarted,
            Some("rollback_paused") => Phase::RollbackPaused,
            Some("rollback_completed") => Phase::RollbackCompleted,
            _ => Phase::Idle,
        }
    }

    fn rolling_back(self) -> bool {
        matches!(self, Phase::RollbackStarted | Phase::RollbackPaused | Phase::RollbackCompleted)
    }
}

/// `UpdateConfig.FailureAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Stop updating (the default).
    Pause,
    /// Go on.
    Continue,
    /// Go back to the previous spec.
    Rollback,
}

/// `UpdateConfig.Order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Stop the old task, then start the new one (the default).
    StopFirst,
    /// Start the new task; stop the old one once the new one runs.
    StartFirst,
}

/// The settings an update runs with: the `UpdateConfig`, or during a rollback the `RollbackConfig`, with
/// swarmkit's defaults for what is absent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Slots updated at once (`usize::MAX` for 0: all).
    pub parallelism: usize,
    /// After a slot's new task came up (or ended), before the slot is free for the next one.
    pub delay_ns: i64,
    /// How long a new task is watched after it came up.
    pub monitor_ns: i64,
    /// What a failure does.
    pub failure_action: FailureAction,
    /// Failures tolerated, as a share of the slots.
    pub max_failure_ratio: f64,
    /// Old task first or new task first.
    pub order: Order,
}

impl Settings {
    /// The settings for `svc` in `phase`.
    pub fn of(svc: &Service, phase: Phase) -> Settings {
        let config = if phase.rolling_back() { svc.spec.rollback_config.as_ref() } else { svc.spec.update_config.as_ref() };
        Settings::from_config(config)
    }

    fn from_config(u: Option<&UpdateConfig>) -> Settings {
        let Some(u) = u else {
            return Settings {
                parallelism: 1,
                delay_ns: 0,
                monitor_ns: DEFAULT_MONITOR_NS,
                failure_action: FailureAction::Pause,
                max_failure_ratio: 0.0,
                order: Order::StopFirst,
            };
        };
        Settings {
            parallelism: if u.parallelism == 0 { usize::MAX } else { usize::try_from(u.parallelism).unwrap_or(usize::MAX) },
            delay_ns: u.delay.max(0),
            monitor_ns: if u.monitor > 0 { u.monitor } else { DEFAULT_MONITOR_NS },
            failure_action: match u.failure_action.as_str() {
                "continue" => FailureAction::Continue,
                "rollback" => FailureAction::Rollback,
                _ => FailureAction::Pause,
            },
            max_failure_ratio: u.max_failure_ratio.clamp(0.0, 1.0),
            order: if u.order == "start-first" { Order::StartFirst } else { Order::StopFirst },
        }
    }
}

/// What the orchestrator found about one service's tasks this round (see the module docs for the terms).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Slots (replicated) or nodes (global) the service has.
    pub slots: usize,
    /// Slots whose task is out of date.
    pub dirty: usize,
    /// Slots whose new task, made by this update, is not running yet.
    pub in_flight: usize,
    /// Slots busy for the updater (in flight, or within `Delay` after their new task came up or ended).
    pub busy: usize,
    /// New tasks that failed within the monitor period, oldest first (their IDs).
    pub failures: Vec<String>,
    /// When the last new task came up (Unix ns), if any did.
    pub last_up_ns: Option<i64>,
}

/// What the updater wants this round.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Out-of-date slots to start updating now.
    pub budget: usize,
    /// The status to write, when it changes.
    pub status: Option<UpdateStatus>,
    /// Roll the service back, with this message.
    pub rollback: Option<String>,
}

fn ts(now_ns: i64) -> String {
    skep_api::time::format_unix_nanos(now_ns.max(0) as u128)
}

fn status(svc: &Service, state: &str, message: String, completed_ns: Option<i64>, now_ns: i64) -> UpdateStatus {
    let started = svc.update_status.as_ref().map(|u| u.started_at.clone()).filter(|s| !s.is_empty());
    UpdateStatus {
        state: state.into(),
        started_at: started.unwrap_or_else(|| ts(now_ns)),
        completed_at: completed_ns.map(ts).unwrap_or_default(),
        message,
    }
}

/// The updater's decision for `svc` at `now_ns`, given this round's [`Facts`].
pub fn decide(svc: &Service, facts: &Facts, now_ns: i64) -> Decision {
    let phase = Phase::of(svc);
    let settings = Settings::of(svc, phase);
    let mut d = Decision::default();
    match phase {
        Phase::Paused | Phase::RollbackPaused => return d,
        Phase::Idle if facts.dirty == 0 => return d,
        Phase::Idle => {
            d.status = Some(UpdateStatus {
                state: "updating".into(),
                started_at: ts(now_ns),
                completed_at: String::new(),
                message: "update in progress".into(),
            });
        }
        Phase::Completed | Phase::RollbackCompleted if facts.dirty == 0 => return d,
        // a completed update whose tasks went out of date again (a node came back with old tasks): keep them current
        Phase::Completed | Phase::RollbackCompleted => {
            d.budget = settings.parallelism.saturating_sub(facts.busy);
            return d;
        }
        Phase::Updating | Phase::RollbackStarted => {}
    }
    let rolling_back = phase == Phase::RollbackStarted;
    // failures beyond the ratio: the failure action
    if settings.failure_action != FailureAction::Continue && facts.slots > 0 {
        let ratio = facts.failures.len() as f64 / facts.slots as f64;
        if ratio > settings.max_failure_ratio {
            let task = facts.failures.last().cloned().unwrap_or_default();
            match (settings.failure_action, rolling_back) {
                (FailureAction::Rollback, false) => {
                    d.rollback = Some(format!("update rolled back due to failure or early termination of task {task}"));
                }
                (_, true) => {
                    let msg = format!("rollback paused due to failure or early termination of task {task}");
                    d.status = Some(status(svc, "rollback_paused", msg, None, now_ns));
                }
                (_, false) => {
                    let msg = format!("update paused due to failure or early termination of task {task}");
                    d.status = Some(status(svc, "paused", msg, None, now_ns));
                }
            }
            return d;
        }
    }
    if facts.dirty > 0 {
        d.budget = settings.parallelism.saturating_sub(facts.busy);
        return d;
    }
    let monitored = facts.last_up_ns.is_some_and(|up| now_ns < up.saturating_add(settings.monitor_ns));
    if facts.in_flight == 0 && !monitored && d.status.is_none() {
        let (state, message) = if rolling_back {
            // Docker's text, plus why an automatic rollback happened (Docker loses the reason here)
            let reason = svc.update_status.as_ref().map(|u| u.message.as_str()).unwrap_or_default();
            let message = if reason.starts_with("update rolled back") {
                format!("rollback completed: {reason}")
            } else {
                "rollback completed".to_string()
            };
            ("rollback_completed", message)
        } else {
            ("completed", "update completed".to_string())
        };
        d.status = Some(status(svc, state, message, Some(now_ns), now_ns));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = SECOND_NS;
    const T0: i64 = 1_800_000_000 * S;

    fn svc(state: Option<&str>, u: UpdateConfig) -> Service {
        let mut s = Service::default();
        s.spec.update_config = Some(u.clone());
        s.spec.rollback_config = Some(UpdateConfig { parallelism: 3, ..u });
        s.update_status = state.map(|st| UpdateStatus { state: st.into(), started_at: ts(T0), ..Default::default() });
        s
    }

    fn cfg(parallelism: u64, action: &str, ratio: f64) -> UpdateConfig {
        UpdateConfig { parallelism, failure_action: action.into(), max_failure_ratio: ratio, monitor: 5 * S, ..Default::default() }
    }

    #[test]
    fn an_update_starts_with_the_parallelism_and_keeps_at_most_that_many_slots_busy() {
        let s = svc(None, cfg(2, "pause", 0.0));
        let facts = Facts { slots: 5, dirty: 5, ..Default::default() };
        let d = decide(&s, &facts, T0);
        assert_eq!(d.budget, 2);
        assert_eq!(d.status.unwrap().state, "updating");
        let s = svc(Some("updating"), cfg(2, "pause", 0.0));
        assert_eq!(decide(&s, &Facts { slots: 5, dirty: 3, busy: 2, ..Default::default() }, T0).budget, 0);
        assert_eq!(decide(&s, &Facts { slots: 5, dirty: 3, busy: 1, ..Default::default() }, T0).budget, 1);
        // parallelism 0: everything at once
        let s = svc(Some("updating"), cfg(0, "pause", 0.0));
        assert_eq!(decide(&s, &Facts { slots: 5, dirty: 5, ..Default::default() }, T0).budget, usize::MAX);
    }

    #[test]
    fn a_rollback_uses_the_rollback_config() {
        let s = svc(Some("rollback_started"), cfg(1, "pause", 0.0));
        assert_eq!(decide(&s, &Facts { slots: 5, dirty: 5, ..Default::default() }, T0).budget, 3);
    }

    #[test]
    fn failures_beyond_the_ratio_pause_roll_back_or_are_ignored() {
        let facts = Facts { slots: 4, dirty: 2, failures: vec!["t1".into()], ..Default::default() };
        // 1/4 > 0: pause
        let d = decide(&svc(Some("updating"), cfg(1, "pause", 0.0)), &facts, T0);
        let st = d.status.unwrap();
        assert_eq!((st.state.as_str(), d.budget), ("paused", 0));
        assert_eq!(st.message, "update paused due to failure or early termination of task t1");
        assert_eq!(st.started_at, ts(T0));
        // 1/4 is within 0.25: go on
        let d = decide(&svc(Some("updating"), cfg(1, "pause", 0.25)), &facts, T0);
        assert_eq!((d.status, d.budget), (None, 1));
        // rollback
        let d = decide(&svc(Some("updating"), cfg(1, "rollback", 0.0)), &facts, T0);
        assert_eq!(d.rollback.as_deref(), Some("update rolled back due to failure or early termination of task t1"));
        // a rollback is never rolled back: it pauses
        let d = decide(&svc(Some("rollback_started"), cfg(1, "rollback", 0.0)), &facts, T0);
        assert_eq!(d.status.unwrap().state, "rollback_paused");
        // continue
        let d = decide(&svc(Some("updating"), cfg(1, "continue", 0.0)), &facts, T0);
        assert_eq!((d.status, d.rollback, d.budget), (None, None, 1));
    }

    #[test]
    fn a_paused_update_does_nothing() {
        for st in ["paused", "rollback_paused"] {
            let d = decide(&svc(Some(st), cfg(1, "pause", 0.0)), &Facts { slots: 3, dirty: 3, ..Default::default() }, T0);
            assert_eq!(d, Decision::default());
        }
    }

    #[test]
    fn it_completes_once_every_new_task_is_up_and_the_monitor_period_passed() {
        let s = svc(Some("updating"), cfg(1, "pause", 0.0));
        let up = Facts { slots: 3, last_up_ns: Some(T0 + 10 * S), ..Default::default() };
        assert_eq!(decide(&s, &Facts { in_flight: 1, ..up.clone() }, T0 + 20 * S).status, None);
        assert_eq!(decide(&s, &up, T0 + 12 * S).status, None, "within the monitor period");
        let st = decide(&s, &up, T0 + 15 * S).status.unwrap();
        assert_eq!((st.state.as_str(), st.message.as_str()), ("completed", "update completed"));
        assert_eq!((st.started_at, st.completed_at), (ts(T0), ts(T0 + 15 * S)));
        let st = decide(&svc(Some("rollback_started"), cfg(1, "pause", 0.0)), &up, T0 + 15 * S).status.unwrap();
        assert_eq!((st.state.as_str(), st.message.as_str()), ("rollback_completed", "rollback completed"));
    }

    #[test]
    fn nothing_out_of_date_starts_no_update() {
        let s = svc(None, cfg(1, "pause", 0.0));
        assert_eq!(decide(&s, &Facts { slots: 3, ..Default::default() }, T0), Decision::default());
    }
}
