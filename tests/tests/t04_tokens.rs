//! Join tokens: rotation invalidates the old worker token, the new one works, and a token naming another
//! CA is refused.

use anyhow::{Context as _, Result};
use skep_tests::json::{count_eq, req_str};
use skep_tests::{require_root_and_netns, Cluster, Role};
use std::time::Duration;

/// `SWMTKN-1-<CA digest>-<secret>` split into its parts.
fn parts(token: &str) -> Result<(String, String)> {
    let p: Vec<&str> = token.split('-').collect();
    anyhow::ensure!(p.len() == 4 && p[0] == "SWMTKN" && p[1] == "1", "not a join token: {token}");
    Ok((p[2].to_owned(), p[3].to_owned()))
}

#[test]
fn a_rotated_worker_token_replaces_the_old_one_and_a_foreign_ca_digest_is_refused() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(4)?;
    c.form(1, 1)?;
    let old = c.join_token(0, Role::Worker)?;
    let rotated = c.skep_ok(0, &["swarm", "join-token", "--rotate", "worker"])?;
    eprintln!("rotate said: {}", rotated.trim());
    let new = c.join_token(0, Role::Worker)?;
    let ((old_ca, old_secret), (new_ca, new_secret)) = (parts(&old)?, parts(&new)?);
    assert_eq!(old_ca, new_ca, "rotating the token must not change the CA digest");
    assert_ne!(old_secret, new_secret, "rotation kept the secret");
    assert_eq!(c.join_token(0, Role::Manager).map(|t| parts(&t).map(|p| p.0))??, old_ca);

    c.start(2)?;
    let msg = c.join(2, 0, &old)?.refused().context("joining with the rotated-out token")?;
    assert!(!msg.trim().is_empty(), "the refusal should say why");
    eprintln!("old token refused: {}", msg.trim());
    assert_eq!(req_str(&c.info(2)?, "Swarm.LocalNodeState")?, "inactive");
    c.join(2, 0, &new)?.ok().context("joining with the new token")?;

    c.start(3)?;
    let foreign_ca: String = old_ca.chars().map(|ch| if ch == '0' { '1' } else { '0' }).collect();
    let forged = format!("SWMTKN-1-{foreign_ca}-{new_secret}");
    let msg = c.join(3, 0, &forged)?.refused().context("joining with a token of another CA")?;
    eprintln!("foreign CA digest refused: {}", msg.trim());
    c.join(3, 0, "SWMTKN-1-garbage")?.refused().context("joining with a malformed token")?;
    assert_eq!(req_str(&c.info(3)?, "Swarm.LocalNodeState")?, "inactive");

    c.wait_nodes(0, Duration::from_secs(30), "3 Ready nodes (h1, the old worker, the new-token joiner)", |n| {
        n.len() == 3 && count_eq(n, "Status", "Ready") == 3
    })?;
    c.pass();
    Ok(())
}
