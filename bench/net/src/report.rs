//! What one measurement gives, and the markdown tables of a whole run.

use std::fmt::Write as _;

use anyhow::{Context, Result};

/// One HTTP load run (wrk or the bench's own client). Latencies in µs.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub requests: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Failed requests (connect/read/write errors, timeouts, non-2xx).
    pub errors: u64,
    /// Requests that took ≥ 1 s, when the client can tell.
    pub stalls: Option<u64>,
    /// The machine's CPU use during the run.
    pub cpu: Option<Cpu>,
    /// SYNs retransmitted during the run (client namespace, host A's namespace).
    pub syn_retrans: Option<(i64, i64)>,
    pub first_error: Option<String>,
}

impl Run {
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests, "seconds": self.seconds, "p50_us": self.p50_us, "p99_us": self.p99_us,
            "max_us": self.max_us, "errors": self.errors, "stalls_1s": self.stalls, "first_error": self.first_error,
        })
    }

    pub fn from_json(text: &str) -> Result<Run> {
        let v: serde_json::Value =
            serde_json::from_str(text.trim()).with_context(|| format!("client output {text:?}"))?;
        let n = |k: &str| v[k].as_f64().with_context(|| format!("field {k} in {v}"));
        Ok(Run {
            requests: n("requests")? as u64,
            seconds: n("seconds")?,
            p50_us: n("p50_us")? as u64,
            p99_us: n("p99_us")? as u64,
            max_us: n("max_us")? as u64,
            errors: n("errors")? as u64,
            stalls: v["stalls_1s"].as_u64(),
            cpu: None,
            syn_retrans: None,
            first_error: v["first_error"].as_str().map(String::from),
        })
    }
}

/// CPU use of the whole machine during one run, in % of its cores' time (per core: of that core's time).
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    pub busy: f64,
    pub per_core: Vec<f64>,
    /// Time in softirq (packet processing: forwarding, NAT, VXLAN, the TCP receive path).
    pub softirq: f64,
    /// The ksoftirqd threads' share: softirq work deferred to a thread when it ran too long in one go.
    pub ksoftirqd: f64,
}

impl std::fmt::Display for Cpu {
    /// `84% (100/68), si 40%, ksoftirqd 5%`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores: Vec<String> = self.per_core.iter().map(|c| format!("{c:.0}")).collect();
        write!(
            f,
            "{:.0}% ({}), si {:.0}%, ksoftirqd {:.0}%",
            self.busy,
            cores.join("/"),
            self.softirq,
            self.ksoftirqd
        )
    }
}

/// An iperf3 run.
#[derive(Debug, Clone)]
pub struct Iperf {
    /// Received, as iperf3's `end.sum_received.bits_per_second`, in Gbit/s.
    pub gbps: f64,
    pub retransmits: u64,
    pub cpu: Cpu,
}

/// The HTTP targets, in the order they run in each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The server on host B's underlay address: no NAT, no VXLAN, no proxy.
    Direct,
    /// Host A's published port through skep's routing mesh (nft DNAT + masquerade, VXLAN to B and C).
    Mesh,
    /// The mesh to one backend (webb on B): one backend process, as on the direct path.
    Mesh1,
    /// HAProxy on host A (`mode tcp`, round robin) to the same backends over the same host leg.
    Haproxy,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Direct, Target::Mesh, Target::Mesh1, Target::Haproxy];

    pub fn label(self) -> &'static str {
        match self {
            Target::Direct => "direct (host B underlay)",
            Target::Mesh => "skep routing mesh (host A)",
            Target::Mesh1 => "skep routing mesh, 1 backend (host A)",
            Target::Haproxy => "HAProxy (host A)",
        }
    }
}

/// Everything one `all` run measured.
#[derive(Default)]
pub struct Results {
    /// (overlay?, streams, run).
    pub iperf: Vec<(bool, u32, Iperf)>,
    pub wrk: Vec<(Target, Run)>,
    pub serial: Vec<(Target, Run)>,
    pub churn: Vec<(Target, Run)>,
    /// The churn runs with two client addresses.
    pub churn2: Vec<(Target, Run)>,
    /// Connections of wrk and of the churn client.
    pub conns: u32,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The runs of one target folded: median req/s, p50, p99 and CPU over the rounds, max of max, sum of errors and
/// stalls.
pub struct Folded {
    pub rounds: usize,
    pub rps: f64,
    pub rps_each: Vec<f64>,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: u64,
    pub errors: u64,
    pub stalls: Option<u64>,
    /// The CPU use of the round with the median busy share (the last one of two).
    pub cpu: Option<Cpu>,
    /// Sums over the rounds.
    pub syn_retrans: Option<(i64, i64)>,
    /// Requests per second of CPU time of the whole machine (client, servers, kernel), median over the rounds:
    /// the efficiency of the whole path, whatever the bottleneck was.
    pub per_cpu_s: f64,
}

pub fn fold(runs: &[(Target, Run)], t: Target) -> Folded {
    let mine: Vec<&Run> = runs.iter().filter(|(x, _)| *x == t).map(|(_, r)| r).collect();
    let mut cpu: Vec<Cpu> = mine.iter().filter_map(|r| r.cpu.clone()).collect();
    cpu.sort_by(|a, b| a.busy.total_cmp(&b.busy));
    Folded {
        rounds: mine.len(),
        rps: median(mine.iter().map(|r| r.rps()).collect()),
        rps_each: mine.iter().map(|r| r.rps()).collect(),
        p50_us: median(mine.iter().map(|r| r.p50_us as f64).collect()),
        p99_us: median(mine.iter().map(|r| r.p99_us as f64).collect()),
        max_us: mine.iter().map(|r| r.max_us).max().unwrap_or(0),
        errors: mine.iter().map(|r| r.errors).sum(),
        stalls: mine.iter().map(|r| r.stalls).sum(),
        cpu: (!cpu.is_empty()).then(|| cpu[cpu.len() / 2].clone()),
        per_cpu_s: median(
            mine.iter()
                .filter_map(|r| r.cpu.as_ref().map(|c| (r.rps(), c)))
                .map(|(rps, c)| {
                    let cores = c.busy * c.per_core.len() as f64 / 100.0;
                    if cores > 0.0 {
                        rps / cores
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
        syn_retrans: mine
            .iter()
            .map(|r| r.syn_retrans)
            .collect::<Option<Vec<(i64, i64)>>>()
            .map(|v| v.iter().fold((0, 0), |acc, x| (acc.0 + x.0, acc.1 + x.1))),
    }
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".into()
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

impl Results {
    /// The markdown report (tables, then the comparisons against the goals).
    pub fn render(&self, header: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{header}");
        if !self.iperf.is_empty() {
            self.render_iperf(&mut s);
        }
        if !self.wrk.is_empty() {
            self.render_wrk(&mut s);
        }
        if !self.churn.is_empty() || !self.churn2.is_empty() {
            self.render_churn(&mut s);
        }
        s
    }

    fn render_iperf(&self, s: &mut String) {
        let _ = writeln!(s, "\n## (a) Overlay throughput: iperf3, host A → host B\n");
        let _ = writeln!(
            s,
            "| path | streams | Gbit/s (median) | Gbit/s per round | retransmits (sum) | CPU (last round) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---:|---|");
        let mut streams: Vec<u32> = self.iperf.iter().map(|(_, p, _)| *p).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut ratios = Vec::new();
        for &p in &streams {
            let mut med = [0.0; 2];
            for overlay in [false, true] {
                let runs: Vec<&Iperf> = self
                    .iperf
                    .iter()
                    .filter(|(o, q, _)| *o == overlay && *q == p)
                    .map(|(_, _, r)| r)
                    .collect();
                let m = median(runs.iter().map(|r| r.gbps).collect());
                med[usize::from(overlay)] = m;
                let each: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.gbps)).collect();
                let label = if overlay {
                    "skep VXLAN overlay (task sandbox A → task sandbox B)"
                } else {
                    "underlay (host A → host B)"
                };
                let _ = writeln!(
                    s,
                    "| {label} | {p} | {m:.2} | {} | {} | {} |",
                    each.join(", "),
                    runs.iter().map(|r| r.retransmits).sum::<u64>(),
                    runs.last().map(|r| r.cpu.to_string()).unwrap_or_default()
                );
            }
            ratios.push((p, med[1], med[0]));
        }
        let _ = writeln!(s);
        for (p, o, u) in ratios {
            let _ = writeln!(
                s,
                "- overlay/underlay, {p} stream(s): **{}** (goal ≥ 0.9: {})",
                ratio(o, u),
                verdict(u > 0.0 && o / u >= 0.9)
            );
        }
    }

    fn render_wrk(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## (b) Routing mesh, keep-alive: wrk -t1 -c{} from the client namespace\n",
            self.conns
        );
        runs_table(s, &self.wrk, false);
        if !self.serial.is_empty() {
            let _ = writeln!(
                s,
                "\nOne keep-alive connection, one request at a time (the path's own latency, no queueing):\n"
            );
            let _ = writeln!(s, "| target | req/s | p50 µs | p99 µs | max µs | errors |");
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
            for t in Target::ALL {
                let f = fold(&self.serial, t);
                if f.rounds > 0 {
                    let _ = writeln!(
                        s,
                        "| {} | {:.0} | {:.0} | {:.0} | {} | {} |",
                        t.label(),
                        f.rps,
                        f.p50_us,
                        f.p99_us,
                        f.max_us,
                        f.errors
                    );
                }
            }
        }
        let [d, m, m1, h] = Target::ALL.map(|t| fold(&self.wrk, t));
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "- mesh/HAProxy req/s: **{}** (goal ≥ 1.0: {}); per CPU-second: {}; mesh/direct req/s: {}",
            ratio(m.rps, h.rps),
            verdict(h.rps > 0.0 && m.rps / h.rps >= 1.0),
            ratio(m.per_cpu_s, h.per_cpu_s),
            ratio(m.rps, d.rps)
        );
        let (added, added1) = (m.p99_us - d.p99_us, m1.p99_us - d.p99_us);
        let _ = writeln!(
            s,
            "- p99 added over direct at -c{}: mesh **{added:.0} µs** (goal ≤ 100 µs: {}); mesh to 1 backend (the same single \
             backend process as direct): **{added1:.0} µs** ({}); HAProxy: {:.0} µs",
            self.conns,
            verdict(added <= 100.0),
            verdict(added1 <= 100.0),
            h.p99_us - d.p99_us
        );
        if !self.serial.is_empty() {
            let [sd, sm, sm1, sh] = Target::ALL.map(|t| fold(&self.serial, t));
            let added = sm.p99_us - sd.p99_us;
            let _ = writeln!(
                s,
                "- added over direct, one request at a time: mesh p99 **{added:.0} µs** (goal ≤ 100 µs: {}), p50 {:.0} µs; \
                 mesh to 1 backend p99 {:.0} µs, p50 {:.0} µs; HAProxy p99 {:.0} µs, p50 {:.0} µs",
                verdict(added <= 100.0),
                sm.p50_us - sd.p50_us,
                sm1.p99_us - sd.p99_us,
                sm1.p50_us - sd.p50_us,
                sh.p99_us - sd.p99_us,
                sh.p50_us - sd.p50_us
            );
        }
    }

    fn render_churn(&self, s: &mut String) {
        for (runs, title) in [
            (&self.churn, "one client"),
            (
                &self.churn2,
                "two clients (two source addresses, the connections alternating)",
            ),
        ] {
            if runs.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "\n## (c) Connection churn, a new connection per request, {} at a time: {title} (bench client)\n",
                self.conns
            );
            runs_table(s, runs, true);
            let [_, m, _, h] = Target::ALL.map(|t| fold(runs, t));
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "- mesh/HAProxy req/s: **{}** (goal ≥ 1.0: {}); per CPU-second: {}; requests stalled ≥ 1 s through the \
                 mesh: **{}**, through HAProxy: {}",
                ratio(m.rps, h.rps),
                verdict(h.rps > 0.0 && m.rps / h.rps >= 1.0),
                ratio(m.per_cpu_s, h.per_cpu_s),
                m.stalls.unwrap_or(0),
                h.stalls.unwrap_or(0)
            );
            for (t, r) in runs.iter() {
                if let Some(e) = &r.first_error {
                    let _ = writeln!(s, "- {}: first error: {e}", t.label());
                }
            }
        }
    }
}

/// One row per target: medians over the rounds. `churn`: with the stall and SYN-retransmit columns.
fn runs_table(s: &mut String, runs: &[(Target, Run)], churn: bool) {
    let extra = if churn {
        " stalled ≥ 1 s | SYN retransmits (client, host A) |"
    } else {
        ""
    };
    let extra_align = if churn { "---:|---|" } else { "" };
    let _ = writeln!(
        s,
        "| target | req/s (median) | req/s per round | p50 ms | p99 ms | max ms |{extra} errors | req per CPU-second | CPU: all (per core), softirq, ksoftirqd |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|{extra_align}---:|---:|---|");
    for t in Target::ALL {
        let f = fold(runs, t);
        if f.rounds == 0 {
            continue;
        }
        let each: Vec<String> = f.rps_each.iter().map(|r| format!("{r:.0}")).collect();
        let extra = if churn {
            format!(
                " {} | {} |",
                f.stalls.unwrap_or(0),
                f.syn_retrans.map(|(c, a)| format!("{c}, {a}")).unwrap_or_default()
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {} | {} |{extra} {} | {:.0} | {} |",
            t.label(),
            f.rps,
            each.join(", "),
            ms(f.p50_us),
            ms(f.p99_us),
            ms(f.max_us as f64),
            f.errors,
            f.per_cpu_s,
            f.cpu.as_ref().map(ToString::to_string).unwrap_or_default()
        );
    }
}
