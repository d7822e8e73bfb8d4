//! Markdown tables of the results, with the skep/etcd ratios.

use crate::failover::Trial;
use crate::store::Point;
use crate::System;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::Duration;

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

pub fn store_table(points: &[Point], value_size: usize, seconds: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Store writes ({value_size} B values, {} s per point, all clients on the leader)\n", seconds.as_secs());
    let _ = writeln!(s, "| system | clients | writes/s | p50 ms | p99 ms | max ms | errors |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} |",
            p.system,
            p.clients,
            p.writes_per_sec(),
            ms(p.hist.value_at_quantile(0.5)),
            ms(p.hist.value_at_quantile(0.99)),
            ms(p.hist.max()),
            p.errors
        );
    }
    let mut clients: Vec<usize> = points.iter().map(|p| p.clients).collect();
    clients.dedup();
    clients.sort_unstable();
    clients.dedup();
    let find = |sys: &str, n: usize| points.iter().find(|p| p.system == sys && p.clients == n);
    for (a, b) in [("skep", "etcd"), ("skep", "skep-plaintext")] {
        ratio_rows(&mut s, &clients, a, b, |sys, n| find(sys, n));
    }
    for p in points.iter().filter(|p| p.errors > 0) {
        let _ = writeln!(
            s,
            "\n{} clients={}: {} failed writes, first: {}",
            p.system,
            p.clients,
            p.errors,
            p.first_error.as_deref().unwrap_or("")
        );
    }
    s
}

/// A table of `a`/`b` ratios for each client count both were run with (none if either is missing).
fn ratio_rows<'a>(
    s: &mut String,
    clients: &[usize],
    a: &str,
    b: &str,
    find: impl Fn(&str, usize) -> Option<&'a Point>,
) {
    let mut header = false;
    for &n in clients {
        let (Some(k), Some(e)) = (find(a, n), find(b, n)) else { continue };
        if !header {
            let _ = writeln!(s, "\n| clients | writes/s {a}/{b} | p50 {a}/{b} | p99 {a}/{b} |");
            let _ = writeln!(s, "|---:|---:|---:|---:|");
            header = true;
        }
        let q = |p: &Point, x: f64| p.hist.value_at_quantile(x) as f64;
        let _ = writeln!(
            s,
            "| {n} | {} | {} | {} |",
            ratio(k.writes_per_sec(), e.writes_per_sec()),
            ratio(q(k, 0.5), q(e, 0.5)),
            ratio(q(k, 0.99), q(e, 0.99)),
        );
    }
}

pub fn failover_table(rows: &[(System, Vec<Trial>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Leader failover (SIGKILL leader → first acknowledged write through a survivor)\n");
    let _ = writeln!(s, "| system | trials | acknowledged | p50 s | p99 s | max s | min s |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    let mut first = Vec::new();
    for (sys, trials) in rows {
        let h = hist(trials.iter().filter_map(|t| t.recovery));
        secs_row(&mut s, &format!("{sys:?}").to_lowercase(), trials.len(), &h, None);
        first.push((*sys, h));
    }
    failover_ratios(&mut s, &first);
    let _ = writeln!(
        s,
        "\n### One client write through the other survivor right after the kill (skep: `POST /configs/create`)\n"
    );
    let _ = writeln!(s, "| system | trials | acknowledged | p50 s | p99 s | max s | min s | refusals |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut client = Vec::new();
    for (sys, trials) in rows {
        let h = hist(trials.iter().filter_map(|t| t.client_write));
        let refusals = trials.iter().map(|t| t.client_refusals).sum::<u32>();
        secs_row(&mut s, &format!("{sys:?}").to_lowercase(), trials.len(), &h, Some(refusals));
        client.push((*sys, h));
    }
    failover_ratios(&mut s, &client);
    // the first few refusals of each system (etcd's are all alike)
    for (sys, trials) in rows {
        let name = format!("{sys:?}").to_lowercase();
        let refused: Vec<_> = trials.iter().enumerate().filter(|(_, t)| t.client_first_refusal.is_some()).collect();
        for (i, t) in refused.iter().take(3) {
            let e = t.client_first_refusal.as_deref().unwrap_or_default();
            let _ = writeln!(s, "\n{name} trial {}: client write refused {} time(s), first {e}", i + 1, t.client_refusals);
        }
        if refused.len() > 3 {
            let _ = writeln!(s, "\n{name}: {} more trials with refusals", refused.len() - 3);
        }
    }
    s
}

fn hist(d: impl Iterator<Item = Duration>) -> Histogram<u64> {
    let mut h = crate::store::new_hist();
    for t in d {
        h.saturating_record(t.as_micros().max(1) as u64);
    }
    h
}

/// One row of seconds: trials, acknowledged, p50, p99, max, min (and refusals, if given).
fn secs_row(s: &mut String, name: &str, trials: usize, h: &Histogram<u64>, refusals: Option<u32>) {
    let ok = h.len();
    let sec = |us: u64| if ok > 0 { format!("{:.3}", us as f64 / 1e6) } else { "n/a".into() };
    let _ = write!(
        s,
        "| {name} | {trials} | {ok} | {} | {} | {} | {} |",
        sec(h.value_at_quantile(0.5)),
        sec(h.value_at_quantile(0.99)),
        sec(h.max()),
        sec(h.min()),
    );
    match refusals {
        Some(r) => {
            let _ = writeln!(s, " {r} |");
        }
        None => {
            let _ = writeln!(s);
        }
    }
}

/// p50 and p99 of skep over etcd, when both ran.
fn failover_ratios(s: &mut String, rows: &[(System, Histogram<u64>)]) {
    let find = |sys: System| rows.iter().find(|(x, h)| *x == sys && !h.is_empty()).map(|(_, h)| h);
    if let (Some(k), Some(e)) = (find(System::Skep), find(System::Etcd)) {
        let q = |h: &Histogram<u64>, x: f64| h.value_at_quantile(x) as f64;
        let _ = writeln!(
            s,
            "\nskep/etcd: p50 {}, p99 {}",
            ratio(q(k, 0.5), q(e, 0.5)),
            ratio(q(k, 0.99), q(e, 0.99))
        );
    }
}

pub fn fsync_table(rows: &[(&'static str, Histogram<u64>)], count: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Disk fsync ({count} × write 4 KiB + fdatasync)\n");
    let _ = writeln!(s, "| mode | p50 ms | p99 ms | max ms |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for (mode, h) in rows {
        let _ = writeln!(s, "| {mode} | {} | {} | {} |", ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()));
    }
    s
}
