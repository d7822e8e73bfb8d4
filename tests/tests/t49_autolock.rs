//! Encryption at rest and autolock, with the stock docker CLI: the managers' Raft logs and snapshots are encrypted
//! with their data keys, so no file of a manager holds the CA key, a join token or a secret's data in plaintext;
//! `swarm update --autolock=true` seals each manager's node key and data key with the unlock key, so a restarted
//! manager is locked (it serves nothing of the swarm, says so in Docker's words, and refuses a wrong key) until
//! `swarm unlock` is given the key; a rotated key replaces the old one; autolock turned off unseals them again.

use anyhow::{ensure, Context as _, Result};
use skep_tests::json::str_at;
use skep_tests::cluster::clean_docker_env;
use skep_tests::{require_root_and_netns, run, wait_until, Cluster, Output};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
/// A secret's data, to be looked for in every file of the managers.
const SECRET_DATA: &str = "t49-secret-data-Vq3xK";
/// What the log says when a manager's keys were sealed with a (new) unlock key.
const SEALED: &str = "are sealed with the unlock key";
const UNSEALED: &str = "are unsealed (autolock off)";

/// `echo <key> | docker swarm unlock` against host `i`.
fn docker_unlock(c: &Cluster, i: usize, key: &str) -> Result<Output> {
    let mut cmd = Command::new("sh");
    clean_docker_env(&mut cmd, &c.root().join("docker-config"));
    cmd.arg("-c")
        .arg("printf '%s\\n' \"$KEY\" | \"$DOCKER\" -H \"$HOST\" swarm unlock")
        .env("KEY", key)
        .env("DOCKER", skep_tests::docker_bin())
        .env("HOST", c.host_arg(i));
    run(cmd, T)
}

/// The key `docker swarm … ` printed (`SWMKEY-1-…`).
fn key_in(out: &str) -> Result<String> {
    let k = out.split_whitespace().find(|w| w.starts_with("SWMKEY-1-")).with_context(|| format!("no key in {out:?}"))?;
    Ok(k.to_owned())
}

/// Every file under `dir` but the harness's own (the daemon's log, its socket).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            out.extend(files(&p));
        } else if meta.is_file() && !p.ends_with("daemon.log") {
            out.push(p);
        }
    }
    out
}

/// No file of host `i`'s swarm state holds one of `needles` in plaintext, and none is readable by group or others.
fn nothing_in_plaintext(c: &Cluster, i: usize, needles: &[&str]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let swarm = c.host(i).dir.join("swarm");
    let all = files(&swarm);
    let segment = |p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "seg");
    ensure!(all.iter().any(segment), "no Raft log segment under {}", swarm.display());
    for p in all {
        let body = std::fs::read(&p).unwrap_or_default();
        for n in needles {
            ensure!(!body.windows(n.len()).any(|w| w == n.as_bytes()), "{} holds {n:?} in plaintext", p.display());
        }
        let mode = std::fs::metadata(&p)?.permissions().mode() & 0o777;
        ensure!(mode & 0o077 == 0, "{} is {mode:o}", p.display());
    }
    Ok(())
}

fn log_count(c: &Cluster, i: usize, needle: &str) -> usize {
    c.daemon(i).map(|d| d.log_tail(100_000).matches(needle).count()).unwrap_or(0)
}

/// Waits until every manager's log says `needle` `n` times.
fn wait_logs(c: &Cluster, hosts: &[usize], needle: &str, n: usize) -> Result<()> {
    wait_until(&format!("{needle:?} {n} times in every manager's log"), T, || {
        let counts: Vec<usize> = hosts.iter().map(|&i| log_count(c, i, needle)).collect();
        if counts.iter().all(|&k| k >= n) {
            Ok(())
        } else {
            Err(format!("counts {counts:?}"))
        }
    })
    .map(drop)
}

fn local_state(c: &Cluster, i: usize) -> Result<String> {
    Ok(c.docker(i, &["info", "--format", "{{.Swarm.LocalNodeState}}"])?.ok()?.trim().to_owned())
}

#[test]
fn autolocked_managers_keep_nothing_in_plaintext_restart_locked_and_unlock_only_with_the_key() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(3, 0)?;
    let managers = [0, 1, 2];
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, SECRET_DATA);
    let made = c.api(0, "POST", "/secrets/create", Some(&format!(r#"{{"Name":"t49-secret","Data":"{data}"}}"#)))?;
    ensure!(made.status == 201, "secret create: {} {}", made.status, made.body);
    // without autolock, the CLI says there is no key
    let none = c.docker(0, &["swarm", "unlock-key"])?.refused()?;
    ensure!(none.contains("no unlock key is set"), "{none}");

    let out = c.docker(0, &["swarm", "update", "--autolock=true"])?;
    let key = key_in(out.ok().context("swarm update --autolock=true")?)?;
    let shown = c.docker(1, &["swarm", "unlock-key", "-q"])?.ok()?.trim().to_owned();
    ensure!(shown == key, "unlock-key on another manager: {shown} != {key}");
    let sw = c.api(2, "GET", "/swarm", None)?.json()?;
    ensure!(sw["Spec"]["EncryptionConfig"]["AutoLockManagers"] == true, "{sw}");
    wait_logs(&c, &managers, SEALED, 1)?;

    // nothing a manager keeps shows the CA key, a join token, the secret or the unlock key
    let tokens = c.api(0, "GET", "/swarm", None)?.json()?;
    let worker_token = str_at(&tokens, "JoinTokens.Worker").context("worker token")?.to_owned();
    for i in managers {
        nothing_in_plaintext(&c, i, &["PRIVATE KEY", "SWMTKN", SECRET_DATA, &worker_token, &key])?;
    }

    // a restarted manager is locked: it says so, serves nothing of the swarm, refuses a wrong key
    c.restart(2)?;
    ensure!(local_state(&c, 2)? == "locked", "after a restart: {}", local_state(&c, 2)?);
    let refused = c.docker(2, &["node", "ls"])?.refused()?;
    ensure!(refused.contains("Swarm is encrypted and needs to be unlocked"), "{refused}");
    let leave = c.docker(2, &["swarm", "leave"])?.refused()?;
    ensure!(leave.contains("Please unlock it first"), "{leave}");
    let wrong = docker_unlock(&c, 2, "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")?.refused()?;
    ensure!(wrong.contains("invalid key provided"), "{wrong}");
    ensure!(local_state(&c, 2)? == "locked", "a wrong key unlocked it");
    docker_unlock(&c, 2, &key)?.ok().context("unlock with the key")?;
    ensure!(local_state(&c, 2)? == "active", "after unlock: {}", local_state(&c, 2)?);
    let again = docker_unlock(&c, 2, &key)?.refused()?;
    ensure!(again.contains("swarm is not locked"), "{again}");
    // it is a working manager again: a write through it, read back through another
    c.docker(2, &["secret", "ls"])?.ok().context("secret ls on the unlocked manager")?;
    c.docker(2, &["network", "create", "-d", "overlay", "after-unlock"])?.ok().context("a write through it")?;
    c.docker(0, &["network", "inspect", "after-unlock"])?.ok().context("read back elsewhere")?;

    // rotation: the old key no longer opens a restarted manager, the new one does
    let rotated = c.docker(0, &["swarm", "unlock-key", "--rotate"])?;
    let new_key = key_in(rotated.ok().context("unlock-key --rotate")?)?;
    ensure!(new_key != key, "the key did not change");
    ensure!(rotated.stdout.contains("Successfully rotated manager unlock key."), "{}", rotated.stdout);
    wait_logs(&c, &managers, SEALED, 2)?;
    c.restart(1)?;
    ensure!(local_state(&c, 1)? == "locked", "manager 1 after a restart");
    let old = docker_unlock(&c, 1, &key)?.refused()?;
    ensure!(old.contains("invalid key provided"), "the old key: {old}");
    // the skep CLI unlocks too (the key on standard input)
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("printf '%s\\n' \"$KEY\" | \"$SKEP\" -H \"$HOST\" swarm unlock")
        .env("KEY", &new_key)
        .env("SKEP", skep_tests::skep_bin()?)
        .env("HOST", c.host_arg(1));
    run(cmd, T)?.ok().context("skep swarm unlock with the new key")?;
    ensure!(local_state(&c, 1)? == "active", "after skep swarm unlock");
    for i in managers {
        nothing_in_plaintext(&c, i, &["PRIVATE KEY", SECRET_DATA, &new_key])?;
    }

    // autolock off: the keys are unsealed and a restart needs nothing
    c.docker(0, &["swarm", "update", "--autolock=false"])?.ok().context("autolock off")?;
    wait_logs(&c, &managers, UNSEALED, 1)?;
    c.restart(0)?;
    wait_until("manager 0 back without an unlock", T, || match local_state(&c, 0) {
        Ok(s) if s == "active" => Ok(()),
        Ok(s) => Err(s),
        Err(e) => Err(e.to_string()),
    })?;
    let gone = c.skep(0, &["swarm", "unlock-key"])?.refused()?;
    ensure!(gone.contains("no unlock key is set"), "{gone}");
    c.wait_nodes(0, T, "three managers, all reachable", |n| {
        n.len() == 3 && n.iter().all(|v| matches!(str_at(v, "ManagerStatus"), Some("Leader") | Some("Reachable")))
    })?;
    // the Raft files stay encrypted without autolock: still no secret in plaintext
    for i in managers {
        nothing_in_plaintext(&c, i, &["SWMTKN", SECRET_DATA])?;
    }
    c.pass();
    Ok(())
}
