//! Where daemons put their tasks' secret and config files, for tests to look into: the `process` engine mounts a
//! tmpfs per task at `<task dir>/files` in the daemon's mount namespace and the task's (seen through their
//! `/proc/<pid>/mountinfo`, not from the test's namespace); the `docker` engine writes them under
//! `/dev/shm/skep-task-files/<task ID>/`.

use std::path::Path;

/// Where the `docker` engine writes task files.
pub const DOCKER_TASK_FILES: &str = "/dev/shm/skep-task-files";

/// The task-file tmpfs mounts under `data_root` (mount points) that any process of the machine still sees: the
/// daemon that made them, or a task whose mount namespace holds its copy (a restarted daemon runs in a new mount
/// namespace and no longer sees those of the tasks it adopted).
pub fn task_file_mounts(data_root: &Path) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return vec![] };
    for e in procs.flatten().filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())) {
        let info = std::fs::read_to_string(e.path().join("mountinfo")).unwrap_or_default();
        out.extend(
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| Path::new(p).starts_with(data_root) && p.ends_with("/files"))
                .map(str::to_owned),
        );
    }
    out.into_iter().collect()
}

/// Whether the `docker` engine still holds files for the task `task_id`.
pub fn docker_task_files_exist(task_id: &str) -> bool {
    !task_id.is_empty() && Path::new(DOCKER_TASK_FILES).join(task_id).exists()
}

/// Every file under `dir` whose content contains `needle`, not descending into directories named in `skip` (e.g.
/// `raft`, where a manager keeps the swarm's secrets by design).
pub fn files_containing(dir: &Path, needle: &[u8], skip: &[&str]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return found };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && !p.file_name().is_some_and(|n| skip.iter().any(|s| n == *s)) {
            found.extend(files_containing(&p, needle, skip));
        } else if ft.is_file() && std::fs::read(&p).is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle)) {
            found.push(p);
        }
    }
    found
}
