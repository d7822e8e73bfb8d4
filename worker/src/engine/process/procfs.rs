//! Reading `/proc`: is a process still the one we started (`/proc/<pid>/stat`), and what is mounted where
//! (`/proc/<pid>/mountinfo`).
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

/// One line of `/proc/<pid>/mountinfo` (proc(5)), the fields the engine uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// Where it is mounted (octal escapes such as `\040` decoded).
    pub mount_point: std::path::PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub options: String,
    /// Propagation tags: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
    /// Filesystem type (`ext4`, `cgroup2`).
    pub fstype: String,
    /// Per-superblock options (`rw,memory` for a v1 cgroup hierarchy).
    pub super_options: String,
}

impl MountInfo {
    /// In a shared peer group.
    pub fn shared(&self) -> bool {
        self.optional.iter().any(|t| t.starts_with("shared:"))
    }

    /// A slave of some peer group.
    pub fn slave(&self) -> bool {
        self.optional.iter().any(|t| t.starts_with("master:"))
    }
}

/// `\040` → space, as the kernel escapes paths in mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of `/proc/<pid>/mountinfo`; malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                mount_point: unescape(l.get(4)?).into(),
                options: l.get(5)?.to_string(),
                optional: l.get(6..).unwrap_or_default().iter().map(|s| s.to_string()).collect(),
                fstype: r.first()?.to_string(),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// Reads `/proc/<pid>/mountinfo` (`pid` may be `self`).
pub(crate) fn read_mountinfo(pid: &str) -> Option<Vec<MountInfo>> {
    Some(parse_mountinfo(&std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?))
}

/// The mount that holds `path` (the longest mount point that is a prefix of it); `path` should be canonical.
pub(crate) fn mount_of<'a>(mounts: &'a [MountInfo], path: &std::path::Path) -> Option<&'a MountInfo> {
    mounts.iter().filter(|m| path.starts_with(&m.mount_point)).max_by_key(|m| m.mount_point.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_parsed() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\nbogus line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, std::path::PathBuf::from("/mnt/with space"));
        assert_eq!(m[0].options, "rw,noatime");
        assert!(m[0].shared() && m[0].slave());
        assert_eq!((m[0].fstype.as_str(), m[0].super_options.as_str()), ("ext3", "rw,errors=continue"));
        assert_eq!(m[1].super_options, "rw,name=systemd");
        assert!(!m[1].shared() && !m[1].slave());
        assert_eq!(mount_of(&m, std::path::Path::new("/mnt/with space/x")).unwrap().fstype, "ext3");
        assert!(read_mountinfo("self").is_some_and(|m| !m.is_empty()));
    }

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
