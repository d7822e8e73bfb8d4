//! The peers and tools: iperf3 (throughput), wrk (keep-alive HTTP load) and HAProxy (the userspace balancer the
//! routing mesh is compared with); how each is started and how its output is read.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use skep_overlay::netns::Netns;

use crate::lab;
use crate::procs::{self, in_ns, Daemon};
use crate::report::{Iperf, Run};

/// iperf3's server core and client core: each side owns one of the two cores, the kernel's work lands mostly on the
/// sender's core (veth and VXLAN transmit run the receive path in the sender's softirq).
const IPERF_SERVER_CPU: &str = "1";
const IPERF_CLIENT_CPU: &str = "0";

/// One iperf3 run from `client` to `server_ip` in `server` (`-t seconds -P streams`), the server started for it
/// (`-1`: one test, then it exits).
pub async fn iperf3(
    server: &Netns,
    server_ip: Ipv4Addr,
    client: &Netns,
    streams: u32,
    seconds: u32,
    log: &Path,
) -> Result<(f64, u64)> {
    let ip = server_ip.to_string();
    let srv = Daemon::spawn(
        in_ns(
            server,
            Some(IPERF_SERVER_CPU),
            "iperf3",
            &["-s", "-1", "-B", &ip, "-p", "5201"],
        ),
        "iperf3 server",
        log,
    )?;
    let (secs, p) = (seconds.to_string(), streams.to_string());
    let args = ["-c", &ip, "-p", "5201", "-t", &secs, "-P", &p, "-J"];
    let mut tries = 0;
    let out = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cmd = in_ns(client, Some(IPERF_CLIENT_CPU), "iperf3", &args);
        match procs::run(cmd, "iperf3 client", Duration::from_secs(u64::from(seconds) + 20)).await {
            Ok(out) => break out,
            // The server may not listen yet.
            Err(e) if tries < 25 && format!("{e:#}").contains("refused") => tries += 1,
            Err(e) => return Err(e),
        }
    };
    srv.finish(Duration::from_secs(3)).await;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3: no end.sum_received")?;
    let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    Ok((bps / 1e9, retr))
}

impl Iperf {
    pub fn new((gbps, retransmits): (f64, u64), cpu: crate::report::Cpu) -> Iperf {
        Iperf { gbps, retransmits, cpu }
    }
}

/// wrk's `done` hook: one machine-readable line with exact µs figures and the count of requests ≥ 1 s.
const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local slow = 0
  for i = 1, #latency do
    local v, c = latency(i)
    if v >= 1000000 then slow = slow + c end
  end
  local e = summary.errors
  io.write(string.format("SKBN requests=%d duration_us=%d p50=%d p99=%d max=%d connect=%d read=%d write=%d status=%d timeout=%d slow=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, slow))
end
"#;

/// Writes wrk's report script into `dir`.
pub fn write_wrk_script(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("report.lua");
    std::fs::write(&path, WRK_SCRIPT).context("write wrk script")?;
    Ok(path)
}

/// `wrk -t1 -cCONNS -dSECONDSs --latency` against `url` from the client namespace.
pub async fn wrk(client: &Netns, url: &str, conns: u32, seconds: u32, script: &Path) -> Result<Run> {
    let (c, d) = (conns.to_string(), format!("{seconds}s"));
    let script = script.to_string_lossy();
    let args = [
        "-t1",
        "-c",
        &c,
        "-d",
        &d,
        "--latency",
        "--timeout",
        "5s",
        "-s",
        &script,
        url,
    ];
    let out = procs::run(
        in_ns(client, None, "wrk", &args),
        "wrk",
        Duration::from_secs(u64::from(seconds) + 20),
    )
    .await?;
    parse_wrk(&out).with_context(|| format!("wrk output: {out}"))
}

fn parse_wrk(out: &str) -> Result<Run> {
    let line = out.lines().find(|l| l.starts_with("SKBN ")).context("no SKBN line")?;
    let get = |k: &str| -> Result<u64> {
        let prefix = format!("{k}=");
        let v = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .with_context(|| format!("no {k}"))?;
        v.parse().with_context(|| format!("{k}={v}"))
    };
    let errors = get("connect")? + get("read")? + get("write")? + get("status")? + get("timeout")?;
    Ok(Run {
        requests: get("requests")?,
        seconds: get("duration_us")? as f64 / 1e6,
        p50_us: get("p50")?,
        p99_us: get("p99")?,
        max_us: get("max")?,
        errors,
        stalls: Some(get("slow")?),
        cpu: None,
        syn_retrans: None,
        first_error: (errors > 0).then(|| {
            out.lines()
                .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
                .unwrap_or("errors")
                .trim()
                .to_string()
        }),
    })
}

/// HAProxy's configuration: `mode tcp`, round robin over the two backends, listening on host A's underlay address.
/// `threads`: `nbthread` (`None`: HAProxy's default, one thread per available CPU).
pub fn haproxy_config(threads: Option<u32>) -> String {
    let nbthread = threads.map(|n| format!("    nbthread {n}\n")).unwrap_or_default();
    format!(
        "global\n    maxconn 4096\n{nbthread}\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         listen mesh\n    bind {}:{}\n    balance roundrobin\n    server webb {}:{}\n    server webc {}:{}\n",
        lab::HOST_A,
        lab::HAPROXY_PORT,
        lab::WEB_B,
        lab::HAPROXY_BACKEND_PORT,
        lab::WEB_C,
        lab::HAPROXY_BACKEND_PORT
    )
}

/// Starts HAProxy in the foreground (`-db`) in host A's namespace.
pub fn haproxy(host_a: &Netns, dir: &Path, threads: Option<u32>) -> Result<Daemon> {
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(threads)).context("write haproxy.cfg")?;
    let cfg = cfg.to_string_lossy();
    Daemon::spawn(
        in_ns(host_a, None, "haproxy", &["-db", "-f", &cfg]),
        "haproxy",
        &dir.join("haproxy.log"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_line() {
        let r = parse_wrk("Running...\nSKBN requests=100 duration_us=2000000 p50=150 p99=900 max=1200 connect=0 read=1 write=0 status=0 timeout=2 slow=1\n")
            .unwrap();
        assert_eq!(r.requests, 100);
        assert_eq!(r.rps(), 50.0);
        assert_eq!(
            (r.p50_us, r.p99_us, r.max_us, r.errors, r.stalls),
            (150, 900, 1200, 3, Some(1))
        );
    }
}
