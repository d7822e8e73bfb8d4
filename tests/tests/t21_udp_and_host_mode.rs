//! Publishing beyond plain TCP through the mesh: a UDP port answers on every node, a port published with PROXY
//! protocol v2 tells the task the client's address, and a host-mode port answers only on the node that runs the task
//! (1 manager + 1 worker, `process` engine).

use anyhow::{ensure, Result};
use skep_tests::services::node_of;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(40);
/// A UDP responder: answers each datagram with the task's addresses.
const UDP_RESPONDER: &str = r"import socket,subprocess
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.bind(('',53))
while True:
  d,a=s.recvfrom(512)
  s.sendto(subprocess.run(['busybox','ip','-o','-4','addr'],capture_output=True).stdout,a)
";

/// A TCP responder that reads a PROXY protocol v2 header and answers with the client address it carries.
const PROXY_RESPONDER: &str = r"import socket,struct
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('',80))
s.listen(16)
while True:
  c,a=s.accept()
  h=c.recv(16)
  ok=h[:12]==b'\r\n\r\n\x00\r\nQUIT\n' and h[13]==0x11
  b=c.recv(struct.unpack('!H',h[14:16])[0]) if ok else b''
  c.sendall(('proxied-from %s\n' % socket.inet_ntoa(b[0:4]) if ok else 'no-proxy-header\n').encode())
  c.close()
";

/// One UDP datagram to `ip:port` from host `i`; the answer (empty if none within 2 s).
fn udp_ask(c: &Cluster, i: usize, ip: &str, port: u16) -> Result<String> {
    let script = format!("exec 3<>/dev/udp/{ip}/{port}; echo hi >&3; timeout 2 dd bs=4096 count=1 <&3 2>/dev/null");
    Ok(c.host(i).ns.exec("bash", &["-c", &script], Duration::from_secs(5))?.stdout)
}

/// One TCP connection to `ip:port` from host `i`; what came back.
fn tcp_ask(c: &Cluster, i: usize, ip: &str, port: u16) -> Result<String> {
    Ok(c.host(i).ns.exec("timeout", &["3", "busybox", "nc", "-w", "2", ip, &port.to_string()], Duration::from_secs(5))?.stdout)
}

/// skep's links (`skvx*`, `skh*`, `skg*`) and nftables tables (`skep_*`) in host `i`'s namespace.
fn leftovers(c: &Cluster, i: usize) -> Result<Vec<String>> {
    let links = c.host(i).ns.exec("ip", &["-o", "link", "show"], Duration::from_secs(5))?.stdout;
    let mut left: Vec<String> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or_default().to_string())
        .filter(|n| n.starts_with("skvx") || n.starts_with("skh") || n.starts_with("skg"))
        .collect();
    let tables = c.host(i).ns.exec("nft", &["list", "tables"], Duration::from_secs(5))?.stdout;
    left.extend(tables.lines().filter(|l| l.contains("skep_")).map(str::to_string));
    Ok(left)
}

#[test]
fn udp_is_published_on_every_node_and_host_mode_only_where_the_task_runs() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    if skep_tests::find_in_path("python3").is_none() {
        anyhow::bail!("python3 is needed for the UDP responder (tests/run.sh installs it)");
    }
    let mut c = Cluster::new(2)?;
    c.form(1, 1)?;
    c.skep_ok(0, &["service", "create", "-d", "--name", "dns", "-p", "5353:53/udp", "python3", "-c", UDP_RESPONDER])?;
    c.skep_ok(0, &[
        "service", "create", "-d", "--name", "hm", "--publish", "mode=host,target=80,published=8088",
        "busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr",
    ])?;
    c.skep_ok(0, &[
        "service", "create", "-d", "--name", "pp", "-p", "8090:80", "--label", "com.skep.proxy-protocol=v2",
        "python3", "-c", PROXY_RESPONDER,
    ])?;
    c.wait_running(0, "dns", 1, CONVERGE)?;
    c.wait_running(0, "pp", 1, CONVERGE)?;
    let hm = c.wait_running(0, "hm", 1, CONVERGE)?;
    let ports = &hm[0]["Status"]["PortStatus"]["Ports"];
    ensure!(ports[0]["PublishedPort"] == 8088 && ports[0]["PublishMode"] == "host", "PortStatus: {ports}");

    // UDP through the mesh, asked on both nodes (one of them runs no dns task)
    for node in 0..2 {
        let ip = c.host(node).ip.clone();
        wait_until(&format!("UDP 5353 answers on host {node}"), Duration::from_secs(10), || -> Result<()> {
            let got = udp_ask(&c, (node + 1) % 2, &ip, 5353)?;
            ensure!(got.contains("inet 10."), "no UDP answer from {ip}: {got:?}");
            Ok(())
        })?;
    }

    // host mode: the task's node answers 8088, the other does not
    let ids: Vec<String> = (0..2).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    let on = ids.iter().position(|id| id == node_of(&hm[0])).expect("hm runs on a known node");
    let off = 1 - on;
    let (on_ip, off_ip) = (c.host(on).ip.clone(), c.host(off).ip.clone());
    wait_until("the host-mode port answers on the task's node", Duration::from_secs(10), || -> Result<()> {
        let got = tcp_ask(&c, off, &on_ip, 8088)?;
        ensure!(got.contains("inet 169.254."), "no answer on {on_ip}:8088: {got:?}");
        Ok(())
    })?;
    let got = tcp_ask(&c, on, &off_ip, 8088)?;
    ensure!(!got.contains("inet"), "the node without the task answered its host-mode port: {got}");
    eprintln!("UDP 5353 answered on both nodes; host-mode 8088 only on host {on}");

    // PROXY protocol v2 through the mesh: the task learns the real client address, on both nodes
    for node in 0..2 {
        let (client, ip) = ((node + 1) % 2, c.host(node).ip.clone());
        let want = format!("proxied-from {}", c.host(client).ip);
        wait_until(&format!("the PROXY v2 port answers on host {node}"), Duration::from_secs(10), || -> Result<()> {
            let got = tcp_ask(&c, client, &ip, 8090)?;
            ensure!(got.contains(&want), "asked {ip}:8090 from {}: {got:?}", c.host(client).ip);
            Ok(())
        })?;
    }
    eprintln!("PROXY v2: the task saw the clients' own addresses");

    c.skep_ok(0, &["service", "rm", "dns", "hm", "pp"])?;
    wait_until("the host-mode port is closed again", Duration::from_secs(20), || -> Result<()> {
        let got = tcp_ask(&c, off, &on_ip, 8088)?;
        ensure!(!got.contains("inet"), "still answering: {got}");
        Ok(())
    })?;
    // with nothing published or attached, and after the worker leaves, no skep link or table is left on a host
    for i in 0..2 {
        wait_until(&format!("host {i} holds no skep links or tables"), Duration::from_secs(20), || -> Result<()> {
            let left = leftovers(&c, i)?;
            ensure!(left.is_empty(), "{left:?}");
            Ok(())
        })?;
    }
    c.skep_ok(1, &["swarm", "leave"])?;
    ensure!(leftovers(&c, 1)?.is_empty(), "after leave: {:?}", leftovers(&c, 1)?);
    c.pass();
    Ok(())
}
