//! A task's secrets and configs on this node: kept in memory as they arrive with the assignments, and handed to the
//! engine as [`TaskFile`]s (content, target, owner, mode) for the tasks that use them, never written to the node's
//! disk.
//!
//! The contents come with the assignment of the first task of this node that uses them and are dropped when the
//! managers say no task here needs them any more ([`Dependencies`]); `tasks.json` holds tasks, whose specs only name
//! them. When a task starts, [`task_files`] turns its references into files at their targets (`/run/secrets/<name>`
//! for a relative secret target, `/<name>` for a relative config target, an absolute target as is, as Docker joins
//! them); the engine puts them on a tmpfs and binds them read-only into the task (`process`: a tmpfs of the task's
//! own; `docker`: [`shm`], since the Docker daemon must see the files to bind them).
//!
//! # Layout
//! - this file: the contents in memory and a task's files.
//! - [`shm`]: files on `/dev/shm` for engines whose tasks are not this daemon's children (Docker).

pub mod shm;

use crate::engine::TaskFile;
use skep_api::docker::{target_path, Task, CONFIGS_DIR, SECRETS_DIR};
use skep_api::wire::{Dependency, DependencyContent, DependencyKey, DependencyKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The secrets and configs this node holds for its tasks, in memory only.
pub type Dependencies = BTreeMap<DependencyKey, Arc<DependencyContent>>;

/// Apply an answer's dependencies to what the node holds.
pub fn apply(held: &mut Dependencies, added: Vec<Dependency>, removed: &[DependencyKey]) {
    for k in removed {
        held.remove(k);
    }
    for d in added {
        held.insert(d.key, Arc::new(d.content));
    }
}

/// Does the task use secrets or configs?
pub fn uses_files(task: &Task) -> bool {
    task.spec.container_spec.as_ref().is_some_and(|c| !c.secrets.is_empty() || !c.configs.is_empty())
}

/// The files of a task's secret and config references, from what the node holds (the content rendered for the task
/// when templated). Errors are the task's refusal: a dependency that did not arrive, a template that did not render,
/// an owner that is not a number.
pub fn task_files(task: &Task, held: &Dependencies) -> Result<Vec<TaskFile>, String> {
    let c = task.spec.container_spec.as_ref().ok_or("the task has no ContainerSpec")?;
    let secrets = c.secrets.iter().map(|r| (DependencyKind::Secret, &r.secret_id, &r.secret_name, &r.file));
    let configs = c.configs.iter().map(|r| (DependencyKind::Config, &r.config_id, &r.config_name, &r.file));
    let mut out = Vec::new();
    for (kind, id, name, file) in secrets.chain(configs) {
        let (noun, base) = match kind {
            DependencyKind::Secret => ("secret", SECRETS_DIR),
            DependencyKind::Config => ("config", CONFIGS_DIR),
        };
        let file = file.as_ref().ok_or_else(|| format!("{noun} {name} has no target"))?;
        let target = target_path(base, &file.name).ok_or_else(|| format!("invalid target {:?} of {noun} {name}", file.name))?;
        let own = DependencyKey { kind, id: id.clone(), task: Some(task.id.clone()) };
        let shared = DependencyKey { kind, id: id.clone(), task: None };
        let content = held
            .get(&own)
            .or_else(|| held.get(&shared))
            .ok_or_else(|| format!("{noun} {name} ({id}) is not available on this node"))?;
        let data = match &**content {
            DependencyContent::Data(d) => d.clone(),
            DependencyContent::Error(e) => return Err(e.clone()),
        };
        let owner = |s: &str| if s.is_empty() { Ok(0) } else { s.parse::<u32>().map_err(|_| format!("invalid owner {s:?} of {noun} {name}")) };
        out.push(TaskFile { target: target.into(), data, uid: owner(&file.uid)?, gid: owner(&file.gid)?, mode: file.mode & 0o777 });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{ContainerSpec, FileTarget, SecretReference, SwarmConfigReference};

    fn target(name: &str, mode: u32) -> Option<FileTarget> {
        Some(FileTarget { name: name.into(), uid: "1000".into(), gid: "1001".into(), mode })
    }

    fn task() -> Task {
        let mut c = ContainerSpec::default();
        c.secrets.push(SecretReference { file: target("db", 0o400), secret_id: "s1".into(), secret_name: "db".into() });
        c.configs.push(SwarmConfigReference { file: target("/etc/app.conf", 0o444), config_id: "c1".into(), config_name: "app".into(), runtime: None });
        c.configs.push(SwarmConfigReference { file: target("tpl", 0o440), config_id: "t1".into(), config_name: "tpl".into(), runtime: None });
        let mut t = Task { id: "task1".into(), ..Default::default() };
        t.spec.container_spec = Some(c);
        t
    }

    fn key(kind: DependencyKind, id: &str, task: Option<&str>) -> DependencyKey {
        DependencyKey { kind, id: id.into(), task: task.map(String::from) }
    }

    #[test]
    fn a_tasks_files_have_their_targets_content_owner_and_mode() {
        let mut held = Dependencies::new();
        let data = |d: &[u8]| DependencyContent::Data(d.to_vec());
        apply(
            &mut held,
            vec![
                Dependency { key: key(DependencyKind::Secret, "s1", None), content: data(b"pw") },
                Dependency { key: key(DependencyKind::Config, "c1", None), content: data(b"conf") },
                Dependency { key: key(DependencyKind::Config, "t1", Some("task1")), content: data(b"slot 1") },
                Dependency { key: key(DependencyKind::Config, "t1", Some("other")), content: data(b"slot 2") },
            ],
            &[],
        );
        let files = task_files(&task(), &held).unwrap();
        let got: Vec<(String, &[u8], u32, u32, u32)> =
            files.iter().map(|f| (f.target.display().to_string(), &f.data[..], f.uid, f.gid, f.mode)).collect();
        assert_eq!(
            got,
            [
                ("/run/secrets/db".to_string(), &b"pw"[..], 1000, 1001, 0o400),
                ("/etc/app.conf".to_string(), &b"conf"[..], 1000, 1001, 0o444),
                ("/tpl".to_string(), &b"slot 1"[..], 1000, 1001, 0o440),
            ]
        );
        TaskFile::check_all(&files).unwrap();
        // the managers took the secret back (no task here needs it): a task starting now is refused
        apply(&mut held, vec![], &[key(DependencyKind::Secret, "s1", None)]);
        assert_eq!(task_files(&task(), &held).unwrap_err(), "secret db (s1) is not available on this node");
        // a template that did not render refuses the task with its error
        held.insert(key(DependencyKind::Secret, "s1", None), Arc::new(data(b"pw")));
        held.insert(key(DependencyKind::Config, "t1", Some("task1")), Arc::new(DependencyContent::Error("failed to expand templated config t1: x".into())));
        assert_eq!(task_files(&task(), &held).unwrap_err(), "failed to expand templated config t1: x");
    }
}
