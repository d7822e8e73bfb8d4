//! Running `nft`: in the caller's namespace or, through `nsenter --net=PATH`, in another; bounded in time and in
//! how much output is kept.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::error::NftError;
use super::rules::{
    parse_port_counters, render_dns_redirect, render_host_ports, render_ingress, render_removal, render_vips, HostPort,
    IngressPort, PortCount, VipRule, HOST_PORTS_TABLE, INGRESS_TABLE, VIP_TABLE,
};

/// How long one nft run may take before it is killed. A replace of a few thousand rules takes milliseconds; this
/// only guards against a wedged process (e.g. a netlink socket that never answers).
pub const NFT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of nft's stdout and of its stderr is kept. The rest is read and dropped, so nft never blocks on a full
/// pipe; a listing larger than this is an error, an error message larger than this is truncated.
pub const NFT_MAX_OUTPUT: usize = 256 * 1024;

/// One table as `nft list tables` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NftTable {
    /// `ip`, `ip6`, `inet`, `arp`, `bridge` or `netdev`.
    pub family: String,
    /// The table's name.
    pub name: String,
}

/// Replaces the VIP table in the sandbox namespace `ns` (`None`: the caller's own) with `rules`, atomically.
///
/// Each call states the whole desired table, so concurrent calls for one namespace do not merge: the last commit
/// wins. Callers serialize per namespace (the worker's reconcile loop does).
pub async fn apply_vips(ns: Option<&Path>, rules: &[VipRule]) -> Result<(), NftError> {
    apply(ns, &render_vips(rules)?).await
}

/// Replaces the ingress table in the node namespace `ns` (`None`: the caller's own) with `ports`, atomically.
/// `host_leg` is the node's interface on the `ingress` network. The namespace also needs [`super::enable_ip_forward`].
pub async fn apply_ingress(ns: Option<&Path>, host_leg: &str, ports: &[IngressPort]) -> Result<(), NftError> {
    apply(ns, &render_ingress(host_leg, ports)?).await
}

/// Replaces the host-mode table in the node namespace `ns` with `ports`, atomically; see
/// [`super::render_host_ports`] for `masquerade_via`.
pub async fn apply_host_ports(
    ns: Option<&Path>,
    ports: &[HostPort],
    masquerade_via: Option<&str>,
) -> Result<(), NftError> {
    apply(ns, &render_host_ports(ports, masquerade_via)?).await
}

/// Installs the sandbox's DNS redirect (see [`super::render_dns_redirect`]), atomically.
pub async fn apply_dns_redirect(ns: Option<&Path>, udp_port: u16, tcp_port: u16) -> Result<(), NftError> {
    apply(ns, &render_dns_redirect(udp_port, tcp_port)).await
}

/// Deletes the VIP table from `ns`; an absent table is fine.
pub async fn remove_vips(ns: Option<&Path>) -> Result<(), NftError> {
    apply(ns, &render_removal(VIP_TABLE)).await
}

/// Deletes the ingress table from `ns`; an absent table is fine.
pub async fn remove_ingress(ns: Option<&Path>) -> Result<(), NftError> {
    apply(ns, &render_removal(INGRESS_TABLE)).await
}

/// Deletes the host-mode table from `ns`; an absent table is fine.
pub async fn remove_host_ports(ns: Option<&Path>) -> Result<(), NftError> {
    apply(ns, &render_removal(HOST_PORTS_TABLE)).await
}

/// The new connections the ingress table in `ns` DNATed to each published port (its rules' counters; they restart
/// when the table is replaced). `timeout` bounds the `nft` run (a scrape should not wait [`NFT_TIMEOUT`]).
pub async fn ingress_connections(ns: Option<&Path>, timeout: Duration) -> Result<Vec<PortCount>, NftError> {
    let list = run_nft(ns, &["list", "table", "ip", INGRESS_TABLE], None);
    let stdout = tokio::time::timeout(timeout, list).await.map_err(|_| NftError::Timeout(timeout))??;
    Ok(parse_port_counters(&String::from_utf8_lossy(&stdout)))
}

/// Every table in `ns`, skep's and others' (for teardown checks).
pub async fn list_tables(ns: Option<&Path>) -> Result<Vec<NftTable>, NftError> {
    let stdout = run_nft(ns, &["list", "tables"], None).await?;
    let text = String::from_utf8_lossy(&stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("table"), Some(family), Some(name)) => {
                    Some(NftTable { family: family.to_owned(), name: name.to_owned() })
                }
                _ => None,
            }
        })
        .collect())
}

/// Feeds `script` to `nft -f -`: one transaction, committed whole or not at all.
async fn apply(ns: Option<&Path>, script: &str) -> Result<(), NftError> {
    tracing::debug!(ns = ?ns, bytes = script.len(), "applying nftables transaction");
    run_nft(ns, &["-f", "-"], Some(script)).await.map(drop)
}

/// Runs nft with `args` (and `stdin`), returns its stdout if it exits 0.
async fn run_nft(ns: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>, NftError> {
    let nft = find_program("nft", &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]);
    let mut cmd = match ns {
        None => Command::new(nft),
        Some(path) => {
            // Checked here so that a vanished sandbox is a clear error rather than nsenter's message.
            if let Err(source) = std::fs::metadata(path) {
                return Err(NftError::Netns { path: path.to_owned(), source });
            }
            let nsenter = find_program("nsenter", &["/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter"]);
            let mut cmd = Command::new(nsenter);
            let mut net = std::ffi::OsString::from("--net=");
            net.push(path);
            cmd.arg(net).arg(nft);
            cmd
        }
    };
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the child (the timeout below fires) kills it.
        .kill_on_drop(true);
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();

    let run = async {
        let mut child = cmd.spawn().map_err(|source| NftError::Spawn { program, source })?;
        let input = child.stdin.take();
        let output = child.stdout.take();
        let errors = child.stderr.take();
        let write = async {
            if let (Some(mut pipe), Some(text)) = (input, stdin) {
                pipe.write_all(text.as_bytes()).await?;
                pipe.shutdown().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let (written, stdout, stderr) = tokio::join!(write, read_bounded(output), read_bounded(errors));
        let status = child.wait().await.map_err(NftError::Io)?;
        let (stderr, _) = stderr.map_err(NftError::Io)?;
        if !status.success() {
            return Err(NftError::Failed { status, stderr: String::from_utf8_lossy(&stderr).trim_end().to_owned() });
        }
        written.map_err(NftError::Io)?;
        let (stdout, truncated) = stdout.map_err(NftError::Io)?;
        if truncated {
            return Err(NftError::OutputTooLarge(NFT_MAX_OUTPUT));
        }
        Ok(stdout)
    };
    tokio::time::timeout(NFT_TIMEOUT, run).await.map_err(|_| NftError::Timeout(NFT_TIMEOUT))?
}

/// Reads up to [`NFT_MAX_OUTPUT`] bytes and drains the rest; returns the bytes and whether some were dropped.
async fn read_bounded<R: AsyncRead + Unpin>(pipe: Option<R>) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(mut pipe) = pipe else { return Ok((Vec::new(), false)) };
    let mut kept = Vec::new();
    (&mut pipe).take(NFT_MAX_OUTPUT as u64).read_to_end(&mut kept).await?;
    let dropped = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await?;
    Ok((kept, dropped > 0))
}

/// The first of `candidates` that exists, else `name` for a PATH lookup. Services often run with a PATH without
/// /usr/sbin, where nft lives.
fn find_program(name: &'static str, candidates: &[&'static str]) -> &'static str {
    candidates.iter().copied().find(|c| Path::new(c).exists()).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nft's refusal comes back typed, with its message. `-c` only checks, so this commits nothing anywhere.
    #[tokio::test]
    async fn refusal_is_typed_with_stderr() {
        if find_program("nft", &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]) == "nft" {
            eprintln!("SKIPPED refusal_is_typed_with_stderr: no nft binary");
            return;
        }
        let result =
            run_nft(None, &["-c", "-f", "-"], Some("table ip skep_check {\n\tchain c {\n\t\tnonsense\n\t}\n}\n")).await;
        match result {
            Err(NftError::Failed { status, stderr }) => {
                assert!(!status.success());
                assert!(stderr.contains("syntax error"), "{stderr}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn output_reading_is_bounded() {
        let big = vec![b'x'; NFT_MAX_OUTPUT + 10];
        let (kept, dropped) = read_bounded(Some(&big[..])).await.unwrap();
        assert_eq!((kept.len(), dropped), (NFT_MAX_OUTPUT, true));
        let (kept, dropped) = read_bounded(Some(&b"small"[..])).await.unwrap();
        assert_eq!((kept.as_slice(), dropped), (&b"small"[..], false));
    }
}
