//! `ContainerSpec.User` and `Groups` for host processes: `uid`, `uid:gid`, `name` or `name:group`, resolved against
//! the host's /etc/passwd and /etc/group the way Docker (runc's `GetExecUser` and `GetAdditionalGroups`) resolves
//! them against the image's: the user's own supplementary groups are the groups that list its name, and `Groups`
//! adds more by name or number.

use crate::engine::EngineError;

/// Who the program runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// `$HOME` (from passwd; `/` when the user has no entry, as in Docker).
    pub home: String,
    /// The user's name when it has a passwd entry (its supplementary groups are looked up by it).
    pub name: Option<String>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5] })
    })
}

fn group_gid(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

/// Resolves `user` given the contents of /etc/passwd and /etc/group.
pub(crate) fn resolve(user: &str, passwd: &str, group: &str) -> Result<Credentials, EngineError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, entry) = match u.parse::<u32>() {
        Ok(uid) => (uid, passwd_entries(passwd).find(|e| e.uid == uid)),
        Err(_) => {
            let e = passwd_entries(passwd).find(|e| e.name == u).ok_or_else(|| {
                EngineError::Invalid(format!("unable to find user {u}: no matching entries in passwd file"))
            })?;
            (e.uid, Some(e))
        }
    };
    let gid = match g {
        None | Some("") => entry.as_ref().map_or(0, |e| e.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_gid(group, g).ok_or_else(|| {
                EngineError::Invalid(format!("unable to find group {g}: no matching entries in group file"))
            })?,
        },
    };
    Ok(Credentials {
        uid,
        gid,
        home: entry.as_ref().map_or("/", |e| e.home).to_string(),
        name: entry.as_ref().map(|e| e.name.to_string()),
    })
}

/// The supplementary groups of `user`: the groups of `group` (the text of /etc/group) listing its name, then `extra`
/// (`ContainerSpec.Groups`: names or numbers), without duplicates.
pub(crate) fn supplementary(user: &Credentials, extra: &[String], group: &str) -> Result<Vec<u32>, EngineError> {
    let entries: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let members = f.get(3).map(|m| m.split(',').filter(|m| !m.is_empty()).collect()).unwrap_or_default();
            Some((*f.first()?, f.get(2)?.parse().ok()?, members))
        })
        .collect();
    let mut out: Vec<u32> = Vec::new();
    if let Some(name) = &user.name {
        out.extend(entries.iter().filter(|(_, _, m)| m.contains(&name.as_str())).map(|(_, gid, _)| *gid));
    }
    for g in extra {
        let gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entries.iter().find(|(n, _, _)| n == g).map(|(_, gid, _)| *gid).ok_or_else(|| {
                EngineError::Invalid(format!("Unable to find group {g}: no matching entries in group file"))
            })?,
        };
        out.push(gid);
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|g| seen.insert(*g));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\nnogroup:x:65534:\n";

    #[test]
    fn names_and_numbers_resolve_like_docker() {
        let c = resolve("nobody", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid, c.home.as_str(), c.name.as_deref()), (65534, 65534, "/nonexistent", Some("nobody")));
        let c = resolve("nobody:staff", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (65534, 50));
        let c = resolve("1234", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid, c.home.as_str(), c.name), (1234, 0, "/", None));
        let c = resolve("1234:99", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (1234, 99));
        let c = resolve("0", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.home.as_str()), (0, "/root"));
    }

    #[test]
    fn supplementary_groups_come_from_membership_and_groups() {
        let group = "root:x:0:\nstaff:x:50:nobody,alice\nadm:x:4:alice\nnogroup:x:65534:\n";
        let nobody = resolve("nobody", PASSWD, group).unwrap();
        assert_eq!(supplementary(&nobody, &[], group).unwrap(), vec![50]);
        assert_eq!(supplementary(&nobody, &["adm".into(), "77".into(), "staff".into()], group).unwrap(), vec![50, 4, 77]);
        let anon = resolve("1234", PASSWD, group).unwrap();
        assert!(supplementary(&anon, &[], group).unwrap().is_empty());
        let e = supplementary(&anon, &["wheel".into()], group).unwrap_err();
        assert_eq!(e.to_string(), "Unable to find group wheel: no matching entries in group file");
    }

    #[test]
    fn unknown_names_are_invalid() {
        let e = resolve("bob", PASSWD, GROUP).unwrap_err();
        assert_eq!(e.to_string(), "unable to find user bob: no matching entries in passwd file");
        let e = resolve("nobody:wheel", PASSWD, GROUP).unwrap_err();
        assert!(e.to_string().contains("unable to find group wheel"));
    }
}
