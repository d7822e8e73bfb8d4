//! Root CA rotation with the stock docker CLI and the skep CLI: `docker swarm ca --rotate` moves every node to a new
//! root without stopping anything (tasks keep running, nodes stay Ready, the cluster keeps scheduling), changes the
//! join tokens (the old ones no longer admit anyone, the new ones do), holds while a node is down and finishes when
//! it is back (the node renews from the new root through the cross-signed certificate); `skep swarm ca --rotate
//! --ca-cert --ca-key` moves to a given root; half a root, a key that is not the certificate's, and an external CA
//! are refused.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::json::str_at;
use skep_tests::services::running_per_node;
use skep_tests::{require_root_and_netns, run, wait_until, Cluster};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn swarm(c: &Cluster, i: usize) -> Result<Value> {
    c.api(i, "GET", "/swarm", None)?.json()
}

/// The trust root every node reports, and whether each reports a certificate from the cluster's issuer.
fn nodes_on(c: &Cluster, i: usize, sw: &Value) -> Result<(BTreeSet<String>, bool)> {
    let nodes = c.api(i, "GET", "/nodes", None)?.json()?;
    let nodes = nodes.as_array().context("nodes")?;
    let roots = nodes.iter().filter_map(|n| str_at(n, "Description.TLSInfo.TrustRoot")).map(str::to_owned).collect();
    let issuer = |v: &Value| (v["CertIssuerSubject"].clone(), v["CertIssuerPublicKey"].clone());
    let same = nodes.iter().all(|n| issuer(&n["Description"]["TLSInfo"]) == issuer(&sw["TLSInfo"]));
    Ok((roots, same))
}

/// The PEM certificate at the end of a `swarm ca` output.
fn pem_in(out: &str) -> Result<String> {
    let start = out.find("-----BEGIN CERTIFICATE-----").with_context(|| format!("no certificate in {out:?}"))?;
    Ok(out[start..].trim().to_owned())
}

fn same_pem(a: &str, b: &str) -> bool {
    a.split_whitespace().collect::<String>() == b.split_whitespace().collect::<String>()
}

/// The digest part of a join token (`SWMTKN-1-<digest>-<secret>`).
fn token_digest(t: &str) -> &str {
    t.split('-').nth(2).unwrap_or_default()
}

/// The whole rotation has converged: not in progress, every node trusting `root` with a certificate from it.
fn converged(c: &Cluster, i: usize, root: &str) -> Result<()> {
    let sw = swarm(c, i)?;
    ensure!(sw["RootRotationInProgress"] == false, "still rotating");
    ensure!(same_pem(str_at(&sw, "TLSInfo.TrustRoot").unwrap_or_default(), root), "the cluster trusts another root");
    let (roots, same) = nodes_on(c, i, &sw)?;
    ensure!(same, "a node's certificate is from another issuer");
    ensure!(roots.len() == 1 && roots.iter().all(|r| same_pem(r, root)), "{} trust roots among the nodes", roots.len());
    Ok(())
}

#[test]
fn the_root_ca_rotates_without_downtime_and_the_old_join_tokens_stop_working() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 1)?;
    let ids: Vec<String> = (0..4).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    c.skep_ok(0, &["service", "create", "--name", "g", "--mode", "global", "-d", "busybox", "sleep", "3600"])?;
    let before = c.wait_tasks(0, "g", T, "one task on each node", |t| running_per_node(t).len() == 4)?;
    let task_ids = |tasks: &[Value]| -> BTreeSet<String> {
        tasks.iter().filter(|t| str_at(t, "Status.State") == Some("running")).filter_map(|t| str_at(t, "ID")).map(str::to_owned).collect()
    };
    let running_before = task_ids(&before);

    // `swarm ca` shows the trust root
    let sw0 = swarm(&c, 0)?;
    let old_root = str_at(&sw0, "TLSInfo.TrustRoot").context("trust root")?.to_owned();
    let shown = c.docker(1, &["swarm", "ca"])?;
    ensure!(same_pem(&pem_in(shown.ok()?)?, &old_root), "docker swarm ca: {}", shown.stdout);
    let old_worker_token = str_at(&sw0, "JoinTokens.Worker").context("worker token")?.to_owned();

    // the stock CLI rotates and waits until every node has moved, then prints the new root
    c.set_client_timeout(Duration::from_secs(90));
    let out = c.docker(0, &["swarm", "ca", "--rotate"])?;
    let new_root = pem_in(out.ok().context("docker swarm ca --rotate")?)?;
    ensure!(!same_pem(&new_root, &old_root), "the root did not change");
    converged(&c, 2, &new_root)?;
    let sw = swarm(&c, 1)?;
    let new_worker_token = str_at(&sw, "JoinTokens.Worker").context("worker token")?.to_owned();
    ensure!(token_digest(&new_worker_token) != token_digest(&old_worker_token), "the tokens still name the old root");
    ensure!(sw["Spec"]["CAConfig"]["ForceRotate"] == 1, "ForceRotate: {}", sw["Spec"]["CAConfig"]);
    ensure!(sw["Spec"]["CAConfig"].get("SigningCAKey").is_none(), "{}", sw["Spec"]["CAConfig"]);

    // nothing stopped: the same tasks run, every node is Ready, and the managers still schedule
    let now = c.wait_tasks(0, "g", T, "one task on each node", |t| running_per_node(t).len() == 4)?;
    ensure!(task_ids(&now) == running_before, "tasks were replaced during the rotation");
    c.wait_nodes(1, T, "4 nodes Ready", |n| n.len() == 4 && n.iter().all(|v| str_at(v, "Status") == Some("Ready")))?;
    c.skep_ok(1, &["service", "create", "--name", "after", "--mode", "global", "-d", "busybox", "sleep", "3600"])?;
    c.wait_tasks(2, "after", T, "a new service on every node", |t| running_per_node(t).len() == 4)?;

    // the old token admits nobody; the new one does, and the newcomer trusts the new root
    c.start(4)?;
    let refused = c.join(4, 0, &old_worker_token)?.refused()?;
    ensure!(refused.contains("join token") || refused.contains("CA"), "joining with the old token: {refused}");
    c.join(4, 1, &new_worker_token)?.ok().context("joining with the new token")?;
    c.wait_nodes(0, T, "5 nodes Ready", |n| n.len() == 5 && n.iter().all(|v| str_at(v, "Status") == Some("Ready")))?;
    converged(&c, 0, &new_root)?;

    // a rotation holds while a node is down, and finishes once it is back (it renews through the cross-signed root)
    c.stop(3)?;
    c.wait_nodes(0, T, "the worker down", |n| n.iter().any(|v| str_at(v, "ID") == Some(&ids[3]) && str_at(v, "Status") == Some("Down")))?;
    c.docker(0, &["swarm", "ca", "--rotate", "--detach"])?.ok().context("swarm ca --rotate --detach")?;
    std::thread::sleep(Duration::from_secs(3));
    ensure!(swarm(&c, 0)?["RootRotationInProgress"] == true, "the rotation finished without the down node");
    c.start(3)?;
    let third = wait_until("the rotation to finish with the worker back", T, || -> Result<String> {
        let sw = swarm(&c, 0)?;
        ensure!(sw["RootRotationInProgress"] == false, "still rotating");
        let root = str_at(&sw, "TLSInfo.TrustRoot").unwrap_or_default().to_owned();
        converged(&c, 0, &root)?;
        Ok(root)
    })?;
    ensure!(!same_pem(&third, &new_root), "the root did not change");
    c.wait_nodes(0, T, "5 nodes Ready", |n| n.len() == 5 && n.iter().all(|v| str_at(v, "Status") == Some("Ready")))?;

    // a given root, with the skep CLI
    let dir = c.root().join("t54-ca");
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let mut openssl = Command::new("openssl");
    openssl.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650"]);
    openssl.args(["-subj", "/CN=t54-given-root", "-addext", "basicConstraints=critical,CA:TRUE"]);
    openssl.args(["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-keyout"]);
    openssl.arg(&key).arg("-out").arg(&cert);
    run(openssl, T)?.ok().context("openssl")?;
    let (cert_s, key_s) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let given = c.skep(2, &["swarm", "ca", "--rotate", "--ca-cert", &cert_s, "--ca-key", &key_s])?;
    let printed = pem_in(given.ok().context("skep swarm ca --rotate --ca-cert --ca-key")?)?;
    let want = std::fs::read_to_string(&cert)?;
    ensure!(same_pem(&printed, &want), "the given root is not the trust root: {printed}");
    converged(&c, 0, &want)?;
    let subject = c.docker(0, &["swarm", "ca"])?;
    ensure!(same_pem(&pem_in(subject.ok()?)?, &want), "docker swarm ca after the given root");

    // refused: half a root, a key that is not the certificate's, an external CA
    let version = swarm(&c, 0)?["Version"]["Index"].as_u64().context("version")?;
    let spec = swarm(&c, 0)?["Spec"].clone();
    let mut cert_only = spec.clone();
    cert_only["CAConfig"]["SigningCACert"] = Value::String(want.clone());
    let r = c.api(0, "POST", &format!("/swarm/update?version={version}"), Some(&cert_only.to_string()))?;
    ensure!(r.status == 501 && r.body.contains("external CA"), "a certificate without its key: {} {}", r.status, r.body);
    let own_key = dir.join("other-key.pem");
    let mut k = Command::new("openssl");
    k.args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"]).arg(&own_key);
    run(k, T)?.ok().context("openssl ecparam")?;
    let (cert2, key2) = (dir.join("ca2.pem"), dir.join("ca2-key.pem"));
    let mut o2 = Command::new("openssl");
    o2.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650"]);
    o2.args(["-subj", "/CN=t54-second", "-addext", "basicConstraints=critical,CA:TRUE", "-keyout"]);
    o2.arg(&key2).arg("-out").arg(&cert2);
    run(o2, T)?.ok().context("openssl second root")?;
    let wrong = c.skep(0, &["swarm", "ca", "--rotate", "--ca-cert", &cert2.to_string_lossy(), "--ca-key", &own_key.to_string_lossy()])?;
    let wrong = wrong.refused()?;
    ensure!(wrong.contains("invalid signing CA cert or key"), "a key that is not the certificate's: {wrong}");
    let mut external = spec;
    external["CAConfig"]["ExternalCAs"] = serde_json::json!([{"Protocol": "cfssl", "URL": "https://ca.example"}]);
    let r = c.api(0, "POST", &format!("/swarm/update?version={version}"), Some(&external.to_string()))?;
    ensure!(r.status == 501 && r.body.contains("ExternalCAs"), "an external CA: {} {}", r.status, r.body);
    let no_rotate = c.docker(0, &["swarm", "ca", "--ca-cert", &cert_s])?.refused()?;
    ensure!(no_rotate.contains("requires the `--rotate` flag"), "{no_rotate}");
    ensure!(swarm(&c, 0)?["RootRotationInProgress"] == false, "a refused request started a rotation");
    c.pass();
    Ok(())
}
