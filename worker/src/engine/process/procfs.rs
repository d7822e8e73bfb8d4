//! Reading `/proc/<pid>/stat`: is a process still the one we started?
//!
//! A PID alone is not an identity: after an agent restart the PID in a persisted handle may belong to a new process.
//! Its start time (field 22, clock ticks since boot) is fixed for the life of the process, so `pid + start time`
//! names one process incarnation.

/// The fields of `/proc/<pid>/stat` the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// `R`, `S`, `D`, `Z` (exited, not yet reaped), `X` (dead), …
    pub state: char,
    /// Parent PID.
    pub ppid: i64,
    /// Process group.
    pub pgrp: i64,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

impl Stat {
    /// Still running (a zombie has exited).
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state); field N is `fields[N - 3]`.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub(crate) fn read_stat(pid: i64) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The first child of `pid` (`/proc/<pid>/task/<pid>/children`, or a scan of /proc where the kernel lacks it).
pub(crate) fn first_child(pid: i64) -> Option<i64> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return text.split_whitespace().next().and_then(|c| c.parse().ok());
    }
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .find(|&c| read_stat(c).is_some_and(|s| s.ppid == pid))
}

/// `pid:<pid>:<start time>`, the process engine's [`Handle::id`](crate::engine::Handle::id).
pub(crate) fn format_id(pid: i64, start_time: u64) -> String {
    format!("pid:{pid}:{start_time}")
}

/// The inverse of [`format_id`].
pub(crate) fn parse_id(id: &str) -> Option<(i64, u64)> {
    let mut parts = id.strip_prefix("pid:")?.splitn(2, ':');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some((pid, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_from_the_last_parenthesis() {
        let text = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        let s = parse_stat(text).unwrap();
        assert_eq!(s, Stat { state: 'S', ppid: 1, pgrp: 4242, start_time: 987654 });
        assert!(s.alive());
        assert!(!parse_stat(&text.replace(") S ", ") Z ")).unwrap().alive());
        assert_eq!(parse_stat("12 (x) R 1"), None);
    }

    #[test]
    fn our_own_process_is_readable() {
        let me = read_stat(std::process::id() as i64).unwrap();
        assert!(me.alive() && me.start_time > 0);
        assert_eq!(read_stat(0), None);
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_id(&format_id(77, 123456)), Some((77, 123456)));
        assert_eq!(parse_id("0123abcd"), None);
        assert_eq!(parse_id("pid:12"), None);
    }
}
