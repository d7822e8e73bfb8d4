//! Networking on 1 manager + 2 workers with the `process` engine: an overlay network, tasks reaching a service by
//! name (embedded DNS → VIP) and by address across hosts, `tasks.<svc>` following a scale, the routing mesh answering
//! a published port on every node (also one with no task of the service) from different tasks, a killed task
//! leaving the backends, and removal leaving no sandbox behind.

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use skep_tests::services::{node_of, overlay_addrs as responder_addrs, running};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::collections::BTreeSet;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(40);
/// Each task answers a TCP connection on port 80 with its own addresses (`ip -o -4 addr`), then closes.
const RESPONDER: &[&str] = &["busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr"];

/// Runs `args` inside the network namespace of process `pid` (a task's sandbox).
fn in_task_netns(pid: u32, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("timeout")
        .args(["5", "nsenter", "-t", &pid.to_string(), "-n", "--"])
        .args(args)
        .output()
        .context("nsenter")?;
    ensure!(out.status.success(), "{args:?} in pid {pid}'s netns: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}


/// `nslookup NAME 127.0.0.11` inside a task: the addresses answered.
fn lookup(pid: u32, name: &str) -> Result<BTreeSet<String>> {
    let out = in_task_netns(pid, &["busybox", "nslookup", name, "127.0.0.11"])?;
    // busybox prints the server first ("Address: 127.0.0.11:53"), then the answers
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("Address:").map(str::trim))
        .filter(|a| !a.starts_with("127.0.0.11"))
        .map(str::to_string)
        .collect())
}

/// One TCP request to `ip:port` from host `i`'s namespace; the responder's addresses.
fn ask_from_host(c: &Cluster, i: usize, ip: &str, port: u16) -> Result<BTreeSet<String>> {
    let o = c.host(i).ns.exec("timeout", &["3", "busybox", "nc", "-w", "2", ip, &port.to_string()], Duration::from_secs(5))?;
    let got = responder_addrs(&o.stdout);
    ensure!(!got.is_empty(), "no answer from {ip}:{port} on host {i}: {} {}", o.stdout, o.stderr);
    Ok(got)
}

fn task_pid(c: &Cluster, hosts: usize) -> Vec<(usize, u32)> {
    (0..hosts)
        .flat_map(|i| c.task_processes_matching(i, "nc -ll -p 80").into_iter().map(move |p| (i, p.pid)))
        .collect()
}

#[test]
fn tasks_reach_services_by_name_across_hosts_and_the_mesh_answers_on_every_node() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;

    // the ingress network exists from `swarm init`
    let nets: Value = skep_tests::json::parse(&c.skep_ok(0, &["network", "ls", "--format", "json"])?)?;
    ensure!(nets.to_string().contains("ingress"), "no ingress network: {nets}");
    c.skep_ok(0, &["network", "create", "-d", "overlay", "--subnet", "10.50.0.0/24", "app"])?;
    // bad input: a clash, an overlapping subnet, an unknown network
    let dup = c.skep(0, &["network", "create", "app"])?;
    ensure!(!dup.success() && dup.stderr.contains("already exists"), "duplicate network: {}", dup.stderr);
    let overlap = c.skep(0, &["network", "create", "--subnet", "10.50.0.0/16", "other"])?;
    ensure!(!overlap.success() && overlap.stderr.contains("overlaps"), "overlap: {}", overlap.stderr);
    let unknown = c.skep(0, &["service", "create", "--name", "x", "--network", "nope", "busybox", "true"])?;
    ensure!(!unknown.success(), "service on an unknown network was accepted");

    let mut api = vec!["service", "create", "-d", "--name", "api", "--network", "app", "--replicas", "2"];
    api.extend(RESPONDER);
    c.skep_ok(0, &api)?;
    // web: one task only, so one worker has none; published through the mesh
    let mut web = vec!["service", "create", "-d", "--name", "web", "--network", "app", "--replicas", "2", "-p", "8080:80"];
    web.extend(RESPONDER);
    c.skep_ok(0, &web)?;
    let api_tasks = c.wait_running(0, "api", 2, CONVERGE)?;
    c.wait_running(0, "web", 2, CONVERGE)?;
    let busy = c.skep(0, &["service", "create", "--name", "clash", "-p", "8080:81", "busybox", "true"])?;
    ensure!(!busy.success() && busy.stderr.contains("already in use"), "port clash: {}", busy.stderr);

    // addresses from the allocator: distinct, inside the subnet
    let addrs: Vec<String> = running(&api_tasks)
        .iter()
        .map(|t| t["NetworksAttachments"][0]["Addresses"][0].as_str().unwrap_or_default().to_string())
        .collect();
    ensure!(addrs.iter().all(|a| a.starts_with("10.50.0.")) && addrs[0] != addrs[1], "api addresses: {addrs:?}");
    let svc: Value = skep_tests::json::parse(&c.skep_ok(0, &["service", "inspect", "api"])?)?;
    let vip = svc[0]["Endpoint"]["VirtualIPs"][0]["Addr"].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string();
    ensure!(vip.starts_with("10.50.0."), "api VIP: {}", svc[0]["Endpoint"]);

    // a web task asks for api by name, and reaches it through the VIP and directly across hosts
    let pids = task_pid(&c, 3);
    ensure!(pids.len() == 4, "task programs: {pids:?}");
    let web_pid = {
        let web_nodes: BTreeSet<String> = c.tasks(0, "web")?.iter().filter(|t| t["Status"]["State"] == "running").map(|t| node_of(t).to_string()).collect();
        let ids: Vec<String> = (0..3).map(|i| c.node_id(i)).collect::<Result<_>>()?;
        let (i, pid) = pids.iter().copied().find(|(i, _)| web_nodes.contains(&ids[*i])).context("a web task's process")?;
        eprintln!("asking from a task on host {i}");
        pid
    };
    wait_until("api resolves to its VIP inside a web task", Duration::from_secs(10), || -> Result<()> {
        let got = lookup(web_pid, "api")?;
        ensure!(got == BTreeSet::from([vip.clone()]), "api -> {got:?}, VIP {vip}");
        Ok(())
    })?;
    let api_ips: BTreeSet<String> = addrs.iter().map(|a| a.split('/').next().unwrap_or_default().to_string()).collect();
    let got = lookup(web_pid, "tasks.api")?;
    ensure!(got == api_ips, "tasks.api -> {got:?}, want {api_ips:?}");
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        let out = in_task_netns(web_pid, &["busybox", "nc", "-w", "2", &vip, "80"])?;
        let who = responder_addrs(&out);
        ensure!(who.iter().any(|a| api_ips.contains(a)), "VIP answered by {who:?}");
        seen.extend(who.intersection(&api_ips).cloned());
    }
    ensure!(seen == api_ips, "the VIP balanced over {seen:?} of {api_ips:?}");
    eprintln!("api VIP {vip} balanced over {seen:?}");
    for ip in &api_ips {
        let out = in_task_netns(web_pid, &["busybox", "nc", "-w", "2", ip, "80"])?;
        ensure!(responder_addrs(&out).contains(ip), "{ip} direct: {out}");
    }

    // scale: tasks.api follows
    let t0 = std::time::Instant::now();
    lookup(web_pid, "tasks.api")?;
    let one_lookup = t0.elapsed();
    c.skep_ok(0, &["service", "scale", "-d", "api=3"])?;
    c.wait_running(0, "api", 3, CONVERGE)?;
    // how long DNS lags the store: from the API reporting 3 running to the answer listing 3 (printed, not asserted)
    let seen_running = std::time::Instant::now();
    wait_until("tasks.api lists 3 addresses", Duration::from_secs(10), || -> Result<()> {
        let got = lookup(web_pid, "tasks.api")?;
        ensure!(got.len() == 3, "tasks.api -> {got:?}");
        Ok(())
    })?;
    eprintln!(
        "DNS followed the scale {} ms after the API showed it; one nslookup alone takes {} ms",
        seen_running.elapsed().as_millis(),
        one_lookup.as_millis()
    );

    // the mesh: every node answers 8080, from both web tasks
    let mut responders = BTreeSet::new();
    for i in 0..3 {
        let ip = c.host(i).ip.clone();
        wait_until(&format!("host {i} answers the published port"), Duration::from_secs(10), || {
            ask_from_host(&c, (i + 1) % 3, &ip, 8080).map(|_| ())
        })?;
        for _ in 0..6 {
            responders.extend(ask_from_host(&c, (i + 1) % 3, &ip, 8080)?);
        }
    }
    let web_tasks = c.tasks(0, "web")?;
    let web_ingress: BTreeSet<String> = running(&web_tasks)
        .iter()
        .flat_map(|t| t["NetworksAttachments"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["Network"]["Ingress"] == true)
        .filter_map(|a| a["Addresses"][0].as_str().map(|s| s.split('/').next().unwrap_or_default().to_string()))
        .collect();
    ensure!(web_ingress.len() == 2, "web ingress addresses: {web_ingress:?}");
    ensure!(web_ingress.is_subset(&responders), "mesh answered from {responders:?}, web tasks are {web_ingress:?}");
    eprintln!("mesh: every node answered 8080, from {responders:?}");

    // a killed web task leaves the backends: every answer comes from a running task
    let victim = task_pid(&c, 3).into_iter().find(|(_, p)| *p != web_pid && {
        in_task_netns(*p, &["busybox", "ip", "-o", "-4", "addr"]).map(|o| responder_addrs(&o).iter().any(|a| web_ingress.contains(a))).unwrap_or(false)
    });
    ensure!(victim.is_some(), "no second web task process found");
    if let Some((_, pid)) = victim {
        let gone = responder_addrs(&in_task_netns(pid, &["busybox", "ip", "-o", "-4", "addr"])?);
        nix_kill(pid);
        wait_until("the killed task is out of the mesh", Duration::from_secs(15), || -> Result<()> {
            for _ in 0..6 {
                let who = ask_from_host(&c, 0, &c.host(1).ip, 8080)?;
                ensure!(who.is_disjoint(&gone), "answered by the killed task {who:?}");
            }
            Ok(())
        })?;
        eprintln!("killed task {gone:?} is out of the mesh");
    }

    // removal: services, then the network; no sandbox is left on any host
    c.skep_ok(0, &["service", "rm", "web", "api"])?;
    wait_until("the app network can be removed", Duration::from_secs(20), || -> Result<()> {
        let o = c.skep(0, &["network", "rm", "app"])?;
        ensure!(o.success(), "{}", o.stderr);
        Ok(())
    })?;
    wait_until("no task sandbox or network namespace left", Duration::from_secs(20), || -> Result<()> {
        let left: Vec<String> = skep_tests::netns::list_netns()?
            .into_iter()
            .filter(|n| n.starts_with(c.stem()) && n.contains("-x-"))
            .filter(|n| std::fs::metadata(format!("/run/netns/{n}")).map(|m| m.len() == 0).unwrap_or(false) && is_mounted(n))
            .collect();
        ensure!(left.is_empty(), "{left:?}");
        Ok(())
    })?;
    c.pass();
    Ok(())
}

/// Is /run/netns/NAME still a namespace in some daemon's mount namespace? (Checked through the daemons' mountinfo.)
fn is_mounted(name: &str) -> bool {
    let needle = format!("/run/netns/{name} ");
    std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|e| {
        e.file_name().to_str().is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
            && std::fs::read_to_string(e.path().join("mountinfo")).is_ok_and(|m| m.contains(&needle))
    })
}

fn nix_kill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}

#[test]
fn two_overlays_are_isolated_and_dnsrr_answers_task_addresses() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.form(1, 1)?;
    c.skep_ok(0, &["network", "create", "-d", "overlay", "red"])?;
    c.skep_ok(0, &["network", "create", "-d", "overlay", "blue"])?;
    let mut a = vec!["service", "create", "-d", "--name", "a", "--network", "red", "--replicas", "1"];
    a.extend(RESPONDER);
    c.skep_ok(0, &a)?;
    let mut b = vec!["service", "create", "-d", "--name", "b", "--network", "blue", "--replicas", "2"];
    b.extend(RESPONDER);
    c.skep_ok(0, &b)?;
    let mut rr = vec!["service", "create", "-d", "--name", "rr", "--network", "red", "--endpoint-mode", "dnsrr", "--replicas", "2"];
    rr.extend(RESPONDER);
    c.skep_ok(0, &rr)?;
    for (s, n) in [("a", 1), ("b", 2), ("rr", 2)] {
        c.wait_running(0, s, n, CONVERGE)?;
    }
    let addr_of = |svc: &str| -> Result<BTreeSet<String>> {
        Ok(running(&c.tasks(0, svc)?)
            .iter()
            .filter_map(|t| t["NetworksAttachments"][0]["Addresses"][0].as_str().map(|a| a.split('/').next().unwrap_or_default().to_string()))
            .collect())
    };
    let (a_ips, b_ips, rr_ips) = (addr_of("a")?, addr_of("b")?, addr_of("rr")?);
    // the task of `a`: the process whose sandbox holds a's address
    let a_pid = task_pid(&c, 2)
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| in_task_netns(*p, &["busybox", "ip", "-o", "-4", "addr"]).map(|o| !responder_addrs(&o).is_disjoint(&a_ips)).unwrap_or(false))
        .context("a's task process")?;
    wait_until("dnsrr answers the task addresses", Duration::from_secs(10), || -> Result<()> {
        let got = lookup(a_pid, "rr")?;
        ensure!(got == rr_ips, "rr -> {got:?}, tasks {rr_ips:?}");
        Ok(())
    })?;
    for ip in &rr_ips {
        let out = in_task_netns(a_pid, &["busybox", "nc", "-w", "2", ip, "80"])?;
        ensure!(responder_addrs(&out).contains(ip), "{ip} on red: {out}");
    }
    // blue is another network: its names are not answered and its addresses are not reachable from red
    let b_names = in_task_netns(a_pid, &["busybox", "nslookup", "b", "127.0.0.11"]).unwrap_or_default();
    ensure!(b_ips.iter().all(|ip| !b_names.contains(ip.as_str())), "b resolved from red: {b_names}");
    for ip in &b_ips {
        let out = in_task_netns(a_pid, &["busybox", "nc", "-w", "1", ip, "80"]).unwrap_or_default();
        ensure!(responder_addrs(&out).is_empty(), "{ip} on blue answered a task on red: {out}");
    }
    eprintln!("red {a_ips:?}+{rr_ips:?} and blue {b_ips:?} are isolated; dnsrr rr -> {rr_ips:?}");
    c.pass();
    Ok(())
}
