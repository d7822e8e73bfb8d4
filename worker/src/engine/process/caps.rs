//! Capabilities of a process task: Docker's default set, with `CapabilityAdd` and `CapabilityDrop` applied as Docker
//! applies `--cap-add`/`--cap-drop` (moby `oci/caps.TweakCapabilities`), and how the task's init installs them.
//!
//! Like Docker (moby `oci.SetCapabilities`), the set becomes the bounding set; a task running as root then gets it as
//! its effective and permitted sets at `execve`, while a task running as another user gets none (it may only regain
//! them through file capabilities, which `no_new_privs` forbids). The inheritable and ambient sets are empty.

use crate::engine::EngineError;
use caps::{CapSet, Capability, CapsHashSet};

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub(crate) const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` are one capability; `ALL` is every one.
fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

fn parse(names: &[String]) -> Result<(bool, CapsHashSet), EngineError> {
    let mut all = false;
    let mut set = CapsHashSet::new();
    for n in names {
        let n = normalize(n);
        if n == "ALL" {
            all = true;
            continue;
        }
        let cap: Capability =
            n.parse().map_err(|_| EngineError::Invalid(format!("unknown capability: {n:?}")))?;
        set.insert(cap);
    }
    Ok((all, set))
}

/// The task's capability set (Docker's `TweakCapabilities`): `ALL` in `add` is every capability but the dropped
/// ones; `ALL` in `drop` is only the added ones; otherwise the defaults minus `drop`, plus `add`.
pub(crate) fn tweak(add: &[String], drop: &[String]) -> Result<CapsHashSet, EngineError> {
    let (add_all, add) = parse(add)?;
    let (drop_all, drop) = parse(drop)?;
    Ok(if add_all {
        caps::all().into_iter().filter(|c| !drop.contains(c)).collect()
    } else if drop_all {
        add
    } else {
        DEFAULT.into_iter().filter(|c| !drop.contains(c)).chain(add).collect()
    })
}

/// The names (`CAP_CHOWN`), for the init's plan.
pub(crate) fn names(set: &CapsHashSet) -> Vec<String> {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// In the task's init, before it switches user and execs the program: the bounding set becomes `names` (the
/// capabilities this kernel does not know are skipped), the inheritable and ambient sets are emptied.
pub(crate) fn install(names: &[String]) -> Result<(), String> {
    let keep: CapsHashSet = names.iter().filter_map(|n| n.parse().ok()).collect();
    let supported = caps::runtime::thread_all_supported();
    for cap in supported.iter().filter(|c| !keep.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
    }
    caps::clear(None, CapSet::Inheritable).map_err(|e| format!("clearing the inheritable capabilities: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing the ambient capabilities: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn add_and_drop_work_like_docker() {
        let default = tweak(&[], &[]).unwrap();
        assert_eq!(default.len(), 14);
        assert!(!default.contains(&Capability::CAP_SYS_ADMIN) && !default.contains(&Capability::CAP_NET_ADMIN));
        let t = tweak(&s(&["net_admin", "CAP_SYS_TIME"]), &s(&["chown", "CAP_KILL"])).unwrap();
        assert!(t.contains(&Capability::CAP_NET_ADMIN) && t.contains(&Capability::CAP_SYS_TIME));
        assert!(!t.contains(&Capability::CAP_CHOWN) && !t.contains(&Capability::CAP_KILL));
        assert_eq!(t.len(), 14);
        assert_eq!(tweak(&s(&["NET_ADMIN"]), &s(&["ALL"])).unwrap(), [Capability::CAP_NET_ADMIN].into());
        let all = tweak(&s(&["all"]), &s(&["SYS_ADMIN"])).unwrap();
        assert!(all.contains(&Capability::CAP_SYS_MODULE) && !all.contains(&Capability::CAP_SYS_ADMIN));
        // in both lists: added (Docker adds after dropping)
        assert!(tweak(&s(&["KILL"]), &s(&["KILL"])).unwrap().contains(&Capability::CAP_KILL));
        let e = tweak(&s(&["CAP_BOGUS"]), &[]).unwrap_err();
        assert_eq!(e.to_string(), "unknown capability: \"CAP_BOGUS\"");
        assert_eq!(names(&[Capability::CAP_CHOWN].into()), vec!["CAP_CHOWN"]);
    }
}
