//! The node's local volumes: named (and anonymous) directories under the data root that outlive the tasks using
//! them, as Docker's `local` volume driver keeps them. The process engine mounts them into tasks; a node's API can
//! serve them as `/volumes` (list, inspect, create, remove, prune).
//!
//! # Layout
//! `<root>/<name>/_data` holds the data (Docker's layout), `<root>/<name>/volume.json` the name, labels, driver
//! options and creation time, and `<root>/<name>/users/<task ID>` one empty file per task using the volume. The
//! users are files so that "in use" survives a daemon restart, as the tasks do.
//!
//! # The local driver's options
//! With no options a volume is a plain directory. With `type`, `device` and `o` (`--opt type=tmpfs --opt
//! device=tmpfs --opt o=size=64m`, or `type=none,o=bind,device=/path`, or an NFS export) the device is mounted on
//! `_data` when the first task starts using the volume and unmounted when the last one is removed, as Docker's local
//! driver does; the flags it knows (`ro`, `nosuid`, `bind`, …) become mount flags and the rest the filesystem's data.
//! `size` (a quota on the data root's filesystem) is refused, as Docker refuses it without quota support.
//!
//! # Anonymous volumes
//! A mount without a source gets a fresh volume named by 64 random hex digits, labelled
//! `com.docker.volume.anonymous`, that is removed with the task that made it (`docker rm -v`, which swarm's
//! executor does), unless another task uses it by then. `prune` without `all` removes only anonymous volumes, as
//! Docker ≥ 23 does.
//!
//! Every operation takes one lock ([`VolumeStore`] is a cheap clone of a shared handle), so "in use" checks and
//! removals never race; the store holds no state of its own besides the files.

use crate::engine::process::procfs;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use skep_api::docker::{Volume, VolumeCreateRequest, VolumePruneResponse, VolumeUsageData, LOCAL_DRIVER};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The label Docker puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// Most volumes a node keeps (a bound on what `list` reads).
pub const MAX_VOLUMES: usize = 10_000;
/// Bounds on labels and options given to a volume.
const MAX_ENTRIES: usize = 256;
const MAX_TEXT: usize = 4096;

/// A volume operation that failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No such volume (404).
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// Tasks use it (409).
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The tasks using it.
        users: Vec<String>,
    },
    /// A bad name, driver or option (400).
    #[error("{0}")]
    Invalid(String),
    /// A file or mount operation failed (500).
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

impl VolumeError {
    /// The HTTP status a node's API answers with.
    pub fn status(&self) -> u16 {
        match self {
            VolumeError::NotFound(_) => 404,
            VolumeError::InUse { .. } => 409,
            VolumeError::Invalid(_) => 400,
            VolumeError::Io(..) => 500,
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let context = context.into();
    move |e| VolumeError::Io(context, e)
}

/// What `volume.json` keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    name: String,
    created_at: String,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
}

/// `volume ls` filters (Docker's `name`, `label`, `dangling`, `driver`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Substrings of the name (any of them).
    pub name: Vec<String>,
    /// `key` or `key=value` (all of them).
    pub label: Vec<String>,
    /// `true`: only volumes no task uses; `false`: only used ones.
    pub dangling: Option<bool>,
    /// Driver names (any of them).
    pub driver: Vec<String>,
}

fn labels_match(labels: &BTreeMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(w.as_str()),
    })
}

impl ListFilter {
    fn matches(&self, v: &Volume, users: usize) -> bool {
        (self.name.is_empty() || self.name.iter().any(|n| v.name.contains(n.as_str())))
            && labels_match(&v.labels, &self.label)
            && self.dangling.is_none_or(|d| d == (users == 0))
            && (self.driver.is_empty() || self.driver.contains(&v.driver))
    }
}

/// What a task's mount got from [`VolumeStore::acquire`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquired {
    /// The volume's name (generated for an anonymous one).
    pub name: String,
    /// The directory to mount into the task: `<root>/<name>/_data`.
    pub data: PathBuf,
    /// Made for this task alone (anonymous): removed when the task releases it.
    pub anonymous: bool,
}

/// The parsed local-driver options: what to mount on `_data`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DeviceMount {
    fstype: String,
    device: String,
    flags: MsFlags,
    data: String,
}

/// Docker's local driver options: `type`, `device`, `o` (each needing the others as Docker requires), nothing else.
fn device_mount(opts: &BTreeMap<String, String>) -> Result<Option<DeviceMount>, VolumeError> {
    if opts.is_empty() {
        return Ok(None);
    }
    for k in opts.keys() {
        match k.as_str() {
            "type" | "device" | "o" => {}
            "size" => return Err(VolumeError::Invalid("quota size requested but no quota support".into())),
            _ => return Err(VolumeError::Invalid(format!("invalid option: {k:?}"))),
        }
    }
    for (opt, required) in [("device", &["type"][..]), ("type", &["device"][..]), ("o", &["device", "type"][..])] {
        if opts.contains_key(opt) {
            if let Some(missing) = required.iter().find(|r| !opts.contains_key(**r)) {
                return Err(VolumeError::Invalid(format!("missing required option: {missing:?}")));
            }
        }
    }
    let (mut flags, mut data) = (MsFlags::empty(), Vec::new());
    for o in opts.get("o").map(String::as_str).unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        let (set, clear) = match o {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            other => {
                data.push(other);
                (MsFlags::empty(), MsFlags::empty())
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    Ok(Some(DeviceMount {
        fstype: opts.get("type").cloned().unwrap_or_default(),
        device: opts.get("device").cloned().unwrap_or_default(),
        flags,
        data: data.join(","),
    }))
}

fn check_bounds(what: &str, m: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    if m.len() > MAX_ENTRIES || m.iter().any(|(k, v)| k.len() > MAX_TEXT || v.len() > MAX_TEXT) {
        return Err(VolumeError::Invalid(format!("too many or too long {what} (at most {MAX_ENTRIES} of {MAX_TEXT} bytes)")));
    }
    Ok(())
}

/// The node's volumes. Cheap to clone; all clones share one lock.
#[derive(Clone, Debug)]
pub struct VolumeStore {
    root: PathBuf,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl VolumeStore {
    /// Volumes under `root` (`<data root>/volumes`); nothing is created until a volume is.
    pub fn new(root: PathBuf) -> VolumeStore {
        VolumeStore { root, lock: Arc::new(tokio::sync::Mutex::new(())) }
    }

    /// Where the volumes live.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn read_meta(&self, name: &str) -> Result<Meta, VolumeError> {
        skep_api::docker::check_volume_name(name).map_err(|_| VolumeError::NotFound(name.to_string()))?;
        let path = self.dir(name).join("volume.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VolumeError::NotFound(name.into())),
            Err(e) => return Err(io(format!("read {}", path.display()))(e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| io(format!("decode {}", path.display()))(std::io::Error::other(e)))
    }

    fn users_of(&self, name: &str) -> Vec<String> {
        let mut users: Vec<String> = std::fs::read_dir(self.dir(name).join("users"))
            .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        users.sort();
        users
    }

    fn view(&self, meta: Meta) -> Volume {
        Volume {
            mountpoint: self.dir(&meta.name).join("_data").display().to_string(),
            name: meta.name,
            driver: LOCAL_DRIVER.into(),
            created_at: meta.created_at,
            labels: meta.labels,
            options: (!meta.options.is_empty()).then_some(meta.options),
            scope: "local".into(),
            usage_data: None,
        }
    }

    /// Creates the volume unless it exists (then it is returned as it is, as Docker does).
    fn create_locked(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<Meta, VolumeError> {
        skep_api::docker::check_volume_name(name).map_err(|e| VolumeError::Invalid(format!("create {name}: {e}")))?;
        match self.read_meta(name) {
            Ok(m) => return Ok(m),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        check_bounds("labels", labels)?;
        check_bounds("driver options", options)?;
        device_mount(options)?;
        let dir = self.dir(name);
        std::fs::create_dir_all(dir.join("_data")).map_err(io(format!("mkdir {}", dir.display())))?;
        let meta = Meta {
            name: name.to_string(),
            created_at: skep_api::time::format(std::time::SystemTime::now()),
            labels: labels.clone(),
            options: options.clone(),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| io("encode volume.json")(std::io::Error::other(e)))?;
        let tmp = dir.join("volume.json.tmp");
        std::fs::write(&tmp, json).map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, dir.join("volume.json")).map_err(io(format!("rename {}", tmp.display())))?;
        Ok(meta)
    }

    /// `POST /volumes/create`: the local driver only; an empty name makes an anonymous volume.
    pub async fn create(&self, req: &VolumeCreateRequest) -> Result<Volume, VolumeError> {
        if !req.driver.is_empty() && req.driver != LOCAL_DRIVER {
            return Err(VolumeError::Invalid(format!(
                "volume driver {:?} is not supported: skep has the local driver only",
                req.driver
            )));
        }
        let _g = self.lock.lock().await;
        let mut labels = req.labels.clone();
        let name = if req.name.is_empty() {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
            random_name()
        } else {
            req.name.clone()
        };
        let meta = self.create_locked(&name, &labels, &req.driver_opts)?;
        Ok(self.view(meta))
    }

    /// `GET /volumes/{name}`, with its usage.
    pub async fn inspect(&self, name: &str) -> Result<Volume, VolumeError> {
        let _g = self.lock.lock().await;
        let meta = self.read_meta(name)?;
        let users = self.users_of(name).len() as i64;
        let mut v = self.view(meta);
        v.usage_data = Some(VolumeUsageData { size: -1, ref_count: users });
        Ok(v)
    }

    /// The tasks using a volume.
    pub async fn users(&self, name: &str) -> Result<Vec<String>, VolumeError> {
        let _g = self.lock.lock().await;
        self.read_meta(name)?;
        Ok(self.users_of(name))
    }

    fn names(&self) -> Result<Vec<String>, VolumeError> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("read {}", self.root.display()))(e)),
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| skep_api::docker::check_volume_name(n).is_ok())
            .take(MAX_VOLUMES)
            .collect();
        names.sort();
        Ok(names)
    }

    /// `GET /volumes`: the volumes matching `filter`, by name.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Volume>, VolumeError> {
        let _g = self.lock.lock().await;
        let mut out = Vec::new();
        for name in self.names()? {
            let Ok(meta) = self.read_meta(&name) else { continue };
            let users = self.users_of(&name).len();
            let v = self.view(meta);
            if filter.matches(&v, users) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Removes the volume's files (after unmounting its device, if mounted); the caller holds the lock and has
    /// checked it is unused. Returns the bytes freed.
    fn remove_locked(&self, name: &str) -> Result<u64, VolumeError> {
        let dir = self.dir(name);
        let data = dir.join("_data");
        unmount_if_mounted(&data)?;
        let size = du(&data, 100_000);
        std::fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
        Ok(size)
    }

    /// `DELETE /volumes/{name}`: refused while a task uses it, unless `force` (then the users are forgotten; the
    /// tasks keep their mount of the old directory until they end, as with Docker's `-f`).
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let _g = self.lock.lock().await;
        self.read_meta(name)?;
        let users = self.users_of(name);
        if !users.is_empty() && !force {
            return Err(VolumeError::InUse { name: name.to_string(), users });
        }
        self.remove_locked(name).map(|_| ())
    }

    /// `POST /volumes/prune`: removes the unused volumes matching `labels` (`key` or `key=value`); anonymous ones
    /// only unless `all`.
    pub async fn prune(&self, all: bool, labels: &[String]) -> Result<VolumePruneResponse, VolumeError> {
        let _g = self.lock.lock().await;
        let mut report = VolumePruneResponse::default();
        for name in self.names()? {
            let Ok(meta) = self.read_meta(&name) else { continue };
            let anonymous = meta.labels.contains_key(ANONYMOUS_LABEL);
            if (!all && !anonymous) || !labels_match(&meta.labels, labels) || !self.users_of(&name).is_empty() {
                continue;
            }
            report.space_reclaimed += self.remove_locked(&name)?;
            report.volumes_deleted.push(name);
        }
        Ok(report)
    }

    /// For a task's mount: the volume `name` (created with `labels` and `options` if missing; an anonymous one
    /// when `None`), its device mounted if it has one, and `task_id` recorded as a user.
    pub async fn acquire(
        &self,
        name: Option<&str>,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
        task_id: &str,
    ) -> Result<Acquired, VolumeError> {
        let _g = self.lock.lock().await;
        let (name, anonymous) = match name {
            Some(n) => (n.to_string(), false),
            None => (random_name(), true),
        };
        let mut labels = labels.clone();
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let meta = self.create_locked(&name, &labels, options)?;
        let dir = self.dir(&name);
        let data = dir.join("_data");
        if let Some(dev) = device_mount(&meta.options)? {
            if !is_mount_point(&data) {
                let data2 = data.clone();
                let mounted = tokio::task::spawn_blocking(move || {
                    nix::mount::mount(
                        Some(dev.device.as_str()),
                        &data2,
                        Some(dev.fstype.as_str()),
                        dev.flags,
                        (!dev.data.is_empty()).then_some(dev.data.as_str()),
                    )
                })
                .await
                .map_err(|e| VolumeError::Io(format!("mount volume {name}"), std::io::Error::other(e)))?;
                mounted.map_err(|e| VolumeError::Io(format!("mount volume {name}"), e.into()))?;
            }
        }
        let users = dir.join("users");
        std::fs::create_dir_all(&users).map_err(io(format!("mkdir {}", users.display())))?;
        std::fs::write(users.join(task_id), b"").map_err(io(format!("record user of volume {name}")))?;
        Ok(Acquired { name, data, anonymous })
    }

    /// A task no longer uses the volume: its user record goes; the device is unmounted when no user is left, and an
    /// anonymous volume is removed then. Releasing what was released is not an error.
    pub async fn release(&self, acquired: &Acquired, task_id: &str) -> Result<(), VolumeError> {
        let _g = self.lock.lock().await;
        let dir = self.dir(&acquired.name);
        match std::fs::remove_file(dir.join("users").join(task_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("forget user of volume {}", acquired.name))(e)),
        }
        if !dir.exists() || !self.users_of(&acquired.name).is_empty() {
            return Ok(());
        }
        if acquired.anonymous {
            self.remove_locked(&acquired.name).map(|_| ())
        } else {
            unmount_if_mounted(&dir.join("_data"))
        }
    }
}

/// 64 random hex digits, Docker's anonymous volume names.
fn random_name() -> String {
    (0..4).map(|_| format!("{:016x}", rand::random::<u64>())).collect()
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else { return false };
    procfs::read_mountinfo("self").unwrap_or_default().iter().any(|m| m.mount_point == path)
}

fn unmount_if_mounted(data: &Path) -> Result<(), VolumeError> {
    while is_mount_point(data) {
        nix::mount::umount2(data, MntFlags::MNT_DETACH)
            .map_err(|e| VolumeError::Io(format!("unmount {}", data.display()), e.into()))?;
    }
    Ok(())
}

/// Bytes in a directory tree, reading at most `max_entries` entries (an estimate beyond).
fn du(dir: &Path, max_entries: usize) -> u64 {
    let (mut total, mut seen, mut stack) = (0u64, 0usize, vec![dir.to_path_buf()]);
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > max_entries {
                return total;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Root(PathBuf);
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn store(name: &str) -> (VolumeStore, Root) {
        let dir = std::env::temp_dir().join(format!("skep-vol-{name}-{}-{:x}", std::process::id(), rand::random::<u32>()));
        (VolumeStore::new(dir.clone()), Root(dir))
    }
    fn req(name: &str) -> VolumeCreateRequest {
        VolumeCreateRequest { name: name.into(), ..Default::default() }
    }
    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn create_inspect_list_remove() {
        let (s, _root) = store("crud");
        assert!(s.list(&ListFilter::default()).await.unwrap().is_empty(), "no root yet: empty");
        let mut r = req("data1");
        r.labels = map(&[("tier", "db")]);
        let v = s.create(&r).await.unwrap();
        assert_eq!((v.name.as_str(), v.driver.as_str(), v.scope.as_str()), ("data1", "local", "local"));
        assert!(v.mountpoint.ends_with("/data1/_data") && Path::new(&v.mountpoint).is_dir());
        assert_eq!(v.options, None);
        // creating it again returns it as it is
        let again = s.create(&VolumeCreateRequest { labels: map(&[("other", "x")]), ..req("data1") }).await.unwrap();
        assert_eq!(again, v);
        s.create(&req("data2")).await.unwrap();
        let anon = s.create(&req("")).await.unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.labels.contains_key(ANONYMOUS_LABEL));

        let names = |vs: Vec<Volume>| vs.into_iter().map(|v| v.name).collect::<Vec<_>>();
        let all = names(s.list(&ListFilter::default()).await.unwrap());
        assert_eq!(all.len(), 3);
        let f = ListFilter { label: vec!["tier=db".into()], ..Default::default() };
        assert_eq!(names(s.list(&f).await.unwrap()), vec!["data1"]);
        let f = ListFilter { name: vec!["data".into()], ..Default::default() };
        assert_eq!(names(s.list(&f).await.unwrap()), vec!["data1", "data2"]);
        let inspected = s.inspect("data1").await.unwrap();
        assert_eq!(inspected.usage_data, Some(VolumeUsageData { size: -1, ref_count: 0 }));
        assert_eq!(inspected.labels, map(&[("tier", "db")]));

        s.remove("data2", false).await.unwrap();
        assert!(matches!(s.remove("data2", false).await, Err(VolumeError::NotFound(_))));
        assert_eq!(s.inspect("nosuch").await.unwrap_err().to_string(), "get nosuch: no such volume");
        assert!(matches!(s.inspect("../etc").await, Err(VolumeError::NotFound(_))));
    }

    #[tokio::test]
    async fn bad_input_is_refused() {
        let (s, _root) = store("bad");
        let e = s.create(&req("a b")).await.unwrap_err();
        assert!(matches!(e, VolumeError::Invalid(_)) && e.to_string().contains("invalid characters"), "{e}");
        let e = s.create(&VolumeCreateRequest { driver: "nfs".into(), ..req("v1") }).await.unwrap_err();
        assert_eq!(e.status(), 400);
        let with = |kv: &[(&str, &str)]| VolumeCreateRequest { driver_opts: map(kv), ..req("v1") };
        assert_eq!(s.create(&with(&[("bogus", "1")])).await.unwrap_err().to_string(), "invalid option: \"bogus\"");
        assert_eq!(
            s.create(&with(&[("type", "tmpfs")])).await.unwrap_err().to_string(),
            "missing required option: \"device\""
        );
        assert_eq!(
            s.create(&with(&[("o", "size=1m"), ("device", "tmpfs")])).await.unwrap_err().to_string(),
            "missing required option: \"type\""
        );
        assert!(s.create(&with(&[("size", "1g")])).await.unwrap_err().to_string().contains("quota"));
        assert!(s.list(&ListFilter::default()).await.unwrap().is_empty(), "nothing half-created");
    }

    #[tokio::test]
    async fn users_block_removal_and_anonymous_volumes_go_with_their_task() {
        let (s, _root) = store("users");
        let a = s.acquire(Some("shared"), &map(&[("l", "1")]), &BTreeMap::new(), "task1").await.unwrap();
        assert!(a.data.is_dir() && !a.anonymous);
        std::fs::write(a.data.join("f"), b"kept").unwrap();
        s.acquire(Some("shared"), &BTreeMap::new(), &BTreeMap::new(), "task2").await.unwrap();
        assert_eq!(s.users("shared").await.unwrap(), vec!["task1", "task2"]);
        let e = s.remove("shared", false).await.unwrap_err();
        assert_eq!(e.to_string(), "remove shared: volume is in use - [task1, task2]");
        assert_eq!(e.status(), 409);
        assert_eq!(s.inspect("shared").await.unwrap().labels, map(&[("l", "1")]));
        let dangling = ListFilter { dangling: Some(true), ..Default::default() };
        assert!(s.list(&dangling).await.unwrap().is_empty());

        let anon = s.acquire(None, &BTreeMap::new(), &BTreeMap::new(), "task1").await.unwrap();
        assert!(anon.anonymous && anon.data.is_dir());
        s.release(&a, "task1").await.unwrap();
        s.release(&a, "task1").await.unwrap();
        s.release(&anon, "task1").await.unwrap();
        assert!(matches!(s.inspect(&anon.name).await, Err(VolumeError::NotFound(_))), "anonymous volume removed");
        // a named volume outlives its users, content and all
        s.release(&a, "task2").await.unwrap();
        assert_eq!(std::fs::read(a.data.join("f")).unwrap(), b"kept");
        assert_eq!(s.list(&dangling).await.unwrap().len(), 1);

        // prune: anonymous only by default, everything unused with `all`
        s.create(&req("")).await.unwrap();
        let used = s.acquire(Some("busy"), &BTreeMap::new(), &BTreeMap::new(), "task3").await.unwrap();
        let r = s.prune(false, &[]).await.unwrap();
        assert_eq!(r.volumes_deleted.len(), 1);
        let r = s.prune(true, &["nolabel".into()]).await.unwrap();
        assert!(r.volumes_deleted.is_empty());
        let r = s.prune(true, &[]).await.unwrap();
        assert_eq!(r.volumes_deleted, vec!["shared"]);
        assert_eq!(r.space_reclaimed, 4);
        assert_eq!(s.users(&used.name).await.unwrap(), vec!["task3"]);
        s.remove("busy", true).await.unwrap();
    }

    #[tokio::test]
    async fn a_device_volume_is_mounted_while_used() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: mounting needs root");
            return;
        }
        let (s, _root) = store("device");
        let opts = map(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m,nodev")]);
        let a = s.acquire(Some("tmpvol"), &BTreeMap::new(), &opts, "task1").await.unwrap();
        assert!(is_mount_point(&a.data));
        let mounts = procfs::read_mountinfo("self").unwrap();
        let m = mounts.iter().find(|m| m.mount_point == a.data.canonicalize().unwrap()).unwrap();
        assert_eq!(m.fstype, "tmpfs");
        assert_eq!(s.inspect("tmpvol").await.unwrap().options, Some(opts.clone()));
        // a second user does not mount it twice
        s.acquire(Some("tmpvol"), &BTreeMap::new(), &opts, "task2").await.unwrap();
        s.release(&a, "task1").await.unwrap();
        assert!(is_mount_point(&a.data));
        s.release(&a, "task2").await.unwrap();
        assert!(!is_mount_point(&a.data), "unmounted with its last user");
        s.remove("tmpvol", false).await.unwrap();
    }
}
