//! The server side of the DNS benchmark (`bench/dns/run.sh`): skep's embedded DNS, through the real
//! [`skep_dns::serve`] path, on a single-threaded tokio runtime (one core, as unbound runs with `num-threads: 1`),
//! answering from a records file.
//!
//! ```text
//! skep-bench-dns RECORDS_FILE LISTEN_ADDR      # e.g. names.skep 127.0.0.1:5301; UDP and TCP on that address
//! skep-bench-dns check SERVER NAME=COUNT…      # asks SERVER (any DNS server) for each NAME's A records over UDP and
//!                                              # fails unless it answers NOERROR with COUNT records
//! ```
//!
//! `check` is how run.sh makes sure the three servers answer the same names the same way before timing them.
//!
//! The records file has one name per line, all on one network (the server's scope):
//!
//! ```text
//! service svc0 10.1.0.0            # name (and VIP)
//! tasks svc0 10.2.0.0 10.3.0.0 …   # tasks.svc0
//! task svc0.1.abc 10.2.0.0         # a task name
//! ```
//!
//! No upstream: every benchmarked name is local. Runs until SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use skep_dns::{Records, RecordsBuilder, Upstream};

const NETWORK: &str = "bench";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("check") {
        return check(&args[1..]);
    }
    let [file, listen] = &args[..] else {
        bail!("usage: skep-bench-dns RECORDS_FILE LISTEN_ADDR");
    };
    let listen: SocketAddr = listen.parse().with_context(|| format!("listen address {listen}"))?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let records = parse(&text)?;
    let names = records.len();

    let udp = std::net::UdpSocket::bind(listen).with_context(|| format!("binding udp {listen}"))?;
    let tcp = std::net::TcpListener::bind(listen).with_context(|| format!("binding tcp {listen}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (_records_tx, records_rx) = tokio::sync::watch::channel(Arc::new(records));
        let counters = skep_dns::QueryCounters::default();
        let server = skep_dns::serve(udp, tcp, vec![NETWORK.to_string()], records_rx, Upstream::none(), counters)?;
        eprintln!("skep-bench-dns: {names} names on {listen} (udp+tcp), single-threaded tokio runtime");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        server.shutdown().await;
        Ok(())
    })
}

fn parse(text: &str) -> anyhow::Result<Records> {
    let mut builder = RecordsBuilder::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(kind) = words.next() else { continue };
        let name = words.next().with_context(|| format!("line {}: no name", n + 1))?;
        let addrs = words
            .map(|w| w.parse::<Ipv4Addr>().with_context(|| format!("line {}: address {w}", n + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        match kind {
            "service" => builder = builder.service(NETWORK, name, &[], &addrs),
            "tasks" => builder = builder.tasks(NETWORK, name, &addrs),
            "task" if addrs.len() == 1 => builder = builder.task(NETWORK, name, addrs[0]),
            _ => bail!("line {}: expected `service|tasks NAME ADDR…` or `task NAME ADDR`", n + 1),
        }
    }
    Ok(builder.build())
}

/// `check SERVER NAME=COUNT…`: one A query per name, 3 tries of 1 s each, NOERROR and COUNT answers required.
fn check(args: &[String]) -> anyhow::Result<()> {
    let Some((server, expectations)) = args.split_first() else {
        bail!("usage: skep-bench-dns check SERVER NAME=COUNT...");
    };
    let server: SocketAddr = server.parse().with_context(|| format!("server address {server}"))?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    socket.connect(server)?;
    for (id, expectation) in expectations.iter().enumerate() {
        let (name, count) = expectation.split_once('=').with_context(|| format!("{expectation}: not NAME=COUNT"))?;
        let count: u16 = count.parse().with_context(|| format!("{expectation}: count"))?;
        let id = id as u16;
        let query = a_query(id, name)?;
        let mut buf = [0u8; 1500];
        let answer = (0..3).find_map(|_| {
            socket.send(&query).ok()?;
            let len = socket.recv(&mut buf).ok()?;
            (len >= 12 && buf[..2] == id.to_be_bytes()).then_some(len)
        });
        let Some(_) = answer else { bail!("{server}: no answer for {name}") };
        let rcode = buf[3] & 0x0f;
        let answers = u16::from_be_bytes([buf[6], buf[7]]);
        if rcode != 0 || answers != count {
            bail!("{server}: {name} answered rcode {rcode} with {answers} records, expected NOERROR with {count}");
        }
    }
    Ok(())
}

/// A query for `name` IN A with recursion desired, in wire format.
fn a_query(id: u16, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            bail!("{name}: not a DNS name");
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    Ok(q)
}
