//! `ContainerSpec.Sysctls` for a process task: only the sysctls that belong to one of the task's own namespaces
//! (runc's `configs/validate` list), so a task can never change the host's kernel settings. The task's init writes
//! them under `/proc/sys` once it is inside its namespaces and before the program runs.

use crate::engine::EngineError;
use std::collections::BTreeMap;

/// IPC namespace sysctls named one by one (runc).
const IPC: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Whether `key` is namespaced in the namespaces every process task gets (IPC, network, UTS).
fn namespaced(key: &str) -> bool {
    IPC.contains(&key) || key.starts_with("fs.mqueue.") || key.starts_with("net.") || key == "kernel.domainname"
}

/// Checks every key and value; the keys as `/proc/sys` paths relative to it (`net/ipv4/ip_default_ttl`).
pub(crate) fn plan(sysctls: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, EngineError> {
    if sysctls.len() > 256 {
        return Err(EngineError::Invalid(format!("too many sysctls: {} (at most 256)", sysctls.len())));
    }
    sysctls
        .iter()
        .map(|(k, v)| {
            let well_formed = !k.is_empty()
                && k.len() <= 256
                && k.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            if !well_formed {
                return Err(EngineError::Invalid(format!("invalid sysctl name {k:?}")));
            }
            if k == "kernel.hostname" {
                return Err(EngineError::Invalid(
                    "sysctl \"kernel.hostname\" is not allowed as it conflicts with the Hostname field".into(),
                ));
            }
            if !namespaced(k) {
                return Err(EngineError::Invalid(format!("sysctl {k:?} is not in a separate kernel namespace")));
            }
            if v.len() > 4096 || v.contains('\n') {
                return Err(EngineError::Invalid(format!("invalid value for sysctl {k:?}")));
            }
            Ok((k.replace('.', "/"), v.clone()))
        })
        .collect()
}

/// In the task's init: writes each value under `/proc/sys` (of the task's namespaces).
pub(crate) fn apply(sysctls: &[(String, String)]) -> Result<(), String> {
    for (path, value) in sysctls {
        let file = format!("/proc/sys/{path}");
        std::fs::write(&file, value)
            .map_err(|e| format!("setting sysctl {}={value}: {e}", path.replace('/', ".")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> Result<Vec<(String, String)>, EngineError> {
        plan(&[(k.to_string(), v.to_string())].into())
    }

    #[test]
    fn only_namespaced_sysctls_are_allowed() {
        assert_eq!(one("net.ipv4.ip_default_ttl", "33").unwrap(), vec![("net/ipv4/ip_default_ttl".into(), "33".into())]);
        for ok in ["kernel.shmmax", "kernel.sem", "fs.mqueue.msg_max", "net.core.somaxconn", "kernel.domainname"] {
            assert!(one(ok, "1").is_ok(), "{ok}");
        }
        let e = one("vm.swappiness", "10").unwrap_err();
        assert_eq!(e.to_string(), "sysctl \"vm.swappiness\" is not in a separate kernel namespace");
        assert!(one("kernel.hostname", "x").unwrap_err().to_string().contains("Hostname"));
        for bad in ["net..x", "net/ipv4", "../etc", "", "net.ipv4.x y"] {
            assert!(one(bad, "1").unwrap_err().to_string().contains("invalid sysctl name"), "{bad}");
        }
        assert!(one("net.core.somaxconn", "1\n2").is_err());
    }
}
